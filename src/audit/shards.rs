//! The shard files a merge takes, and the check that they make one whole
//! job before any is adopted: every shard `1..=N` once, each of this job and
//! finished. The files are named one by one, by a directory (every
//! `*.shard-K-of-N` file in it) or by a glob pattern; what counts is what
//! each file's header says (its job, its index and count), not its name, so
//! a shard copied under another name is still found doubled.
//!
//! A merge waits for nothing: it works on the files that exist, and a
//! refusal lists every problem at once — shards missing (with the files
//! expected), given twice, of another job (naming what differs: the model,
//! the data, the seed...), of another split, or unfinished — each by its
//! index and file. The merged report records how long each shard took.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::checkpoint::{read_shard, read_shard_header, shard_name, BatchPart, ShardHeader};
use crate::data::batch::batch_ranges;
use crate::error::{Error, Remedy, Result};
use crate::report::types::{ShardTiming, ShardTimings};
use crate::util::list_and;

/// The shape of the job's batches, which the shards' records must fit.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Values per input.
    pub per: usize,
    /// The model's classes.
    pub classes: usize,
    /// The plan's attacks.
    pub attacks: usize,
    /// Inputs in the data.
    pub inputs: usize,
    /// Inputs per batch.
    pub batch_size: usize,
}

/// The batches of every shard, and how long each shard took.
#[derive(Debug)]
pub struct Gathered {
    /// Every batch of the job, each once.
    pub parts: Vec<BatchPart>,
    /// Per shard, for the report.
    pub timings: ShardTimings,
}

/// The files `args` name: a file as it is, a directory's files named like
/// shards (`*.shard-K-of-N`), and the files a glob pattern (a path that
/// does not exist and holds `*`, `?` or `[`) matches; sorted, each once.
pub fn shard_files(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for arg in args {
        let text = arg.to_string_lossy();
        if arg.is_dir() {
            let found = shards_in(arg)?;
            if found.is_empty() {
                return Err(Error::format(
                    arg,
                    "a directory holding no shard file (`*.shard-K-of-N`)",
                ));
            }
            files.extend(found);
        } else if !arg.exists() && text.contains(['*', '?', '[']) {
            let matches = glob::glob(&text)
                .map_err(|e| Error::format(arg, format!("not a valid glob pattern: {e}")))?;
            let mut found = Vec::new();
            for m in matches {
                let path = m.map_err(|e| Error::io(e.path().to_path_buf(), e.into()))?;
                if path.is_dir() {
                    found.extend(shards_in(&path)?);
                } else {
                    found.push(path);
                }
            }
            if found.is_empty() {
                return Err(Error::format(arg, "no shard file matches this pattern"));
            }
            files.extend(found);
        } else {
            files.push(arg.clone());
        }
    }
    // The same file named twice (a directory and a pattern) is one file.
    let mut seen = Vec::new();
    files.retain(|f| {
        let key = f.canonicalize().unwrap_or_else(|_| f.clone());
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    files.sort();
    Ok(files)
}

/// The files in `dir` named like shards.
fn shards_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| shard_name(n).is_some());
        if named && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Reads the shard files `args` name (see [`shard_files`]) for the job
/// `job`: every shard `1..=N` once, of this job, each holding all its
/// batches (every `N`-th of `layout`'s, starting with batch `K − 1`). Any
/// other set is refused with every problem named by index and file.
pub fn gather(args: &[PathBuf], job: &Value, layout: &Layout) -> Result<Gathered> {
    let mut headers = Vec::new();
    for path in shard_files(args)? {
        let header = read_shard_header(&path)?;
        headers.push((path, header));
    }
    let (ours, foreign): (Vec<_>, Vec<_>) = headers.into_iter().partition(|(_, h)| h.job == *job);
    let mut problems: Vec<String> = foreign
        .iter()
        .map(|(path, h)| {
            format!(
                "{} belongs to another job: {}",
                label(path, h),
                differences(&h.job, job)
            )
        })
        .collect();
    let Some(count) = usual_count(&ours) else {
        problems.push("no file given is a shard of this job".into());
        return Err(Error::Shards { problems });
    };
    let (mut ours, split): (Vec<_>, Vec<_>) = ours.into_iter().partition(|(_, h)| h.count == count);
    for (path, h) in &split {
        problems.push(format!(
            "{} is of a split into {} shards; the other files are of {count}",
            label(path, h),
            h.count
        ));
    }
    ours.sort_by_key(|(_, h)| h.index);
    let mut missing = Vec::new();
    for k in 1..=count {
        let holders: Vec<String> = ours
            .iter()
            .filter(|(_, h)| h.index == k)
            .map(|(p, _)| p.display().to_string())
            .collect();
        match holders.len() {
            0 => missing.push(k),
            1 => {}
            n => problems.push(format!(
                "shard {k} of {count} is given {}: {}",
                if n == 2 {
                    "twice".into()
                } else {
                    format!("{n} times")
                },
                list_and(&holders)
            )),
        }
    }
    if !missing.is_empty() {
        let expected: Vec<String> = missing
            .iter()
            .map(|&k| expected_file(&ours[0].0, k, count))
            .collect();
        problems.push(format!(
            "{} {} of {count} {} missing: expected {}",
            if missing.len() == 1 {
                "shard"
            } else {
                "shards"
            },
            list_and(&missing),
            if missing.len() == 1 { "is" } else { "are" },
            list_and(&expected)
        ));
        return Err(Error::Shards { problems }.remedied(Remedy::RunShards { missing, of: count }));
    }
    if !problems.is_empty() {
        return Err(Error::Shards { problems });
    }
    let batches: Vec<(usize, usize)> = batch_ranges(layout.inputs, layout.batch_size).collect();
    let mut parts = Vec::new();
    let mut timings = Vec::new();
    for (path, h) in &ours {
        let held = read_shard(path, layout.per, layout.classes, layout.attacks)?;
        let own: Vec<(usize, usize)> = batches
            .iter()
            .enumerate()
            .filter(|(b, _)| b % count == h.index - 1)
            .map(|(_, &batch)| batch)
            .collect();
        let range = |&(first, len): &(usize, usize)| format!("{first}..{}", first + len);
        let lacking: Vec<String> = own
            .iter()
            .filter(|&&(f, l)| !held.iter().any(|p| (p.first, p.len) == (f, l)))
            .map(range)
            .collect();
        if !lacking.is_empty() {
            problems.push(format!(
                "{} is unfinished: it holds {} of its {} batches (inputs {} are missing); \
                 run that shard again, resuming, to finish it",
                label(path, h),
                own.len() - lacking.len(),
                own.len(),
                lacking.join(", ")
            ));
        }
        let stray: Vec<String> = held
            .iter()
            .map(|p| (p.first, p.len))
            .filter(|batch| !own.contains(batch))
            .map(|batch| range(&batch))
            .collect();
        if !stray.is_empty() {
            problems.push(format!(
                "{} holds inputs {}, which are not shard {}'s",
                label(path, h),
                stray.join(", "),
                h.index
            ));
        }
        timings.push(timing(h.index, &held));
        parts.extend(held);
    }
    if !problems.is_empty() {
        return Err(Error::Shards { problems });
    }
    Ok(Gathered {
        parts,
        timings: shard_timings(count, timings),
    })
}

/// `path (shard K of N)`.
fn label(path: &Path, h: &ShardHeader) -> String {
    format!("{} (shard {} of {})", path.display(), h.index, h.count)
}

/// The shard count most of `ours` have (the larger on a tie).
fn usual_count(ours: &[(PathBuf, ShardHeader)]) -> Option<usize> {
    let votes = |n: usize| ours.iter().filter(|(_, h)| h.count == n).count();
    ours.iter()
        .map(|(_, h)| h.count)
        .max_by_key(|&n| (votes(n), n))
}

/// Where shard `k` of `n` would be, beside `like` (a shard of the same
/// job) and named like it.
fn expected_file(like: &Path, k: usize, n: usize) -> String {
    let name = like
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let report = shard_name(name).map_or(name, |(report, _, _)| report);
    like.with_file_name(format!("{report}.shard-{k}-of-{n}"))
        .display()
        .to_string()
}

/// What differs between a shard's job `theirs` and the merge's `ours`, as
/// clauses (`its seed is 12, not 11; its engine is ...`).
fn differences(theirs: &Value, ours: &Value) -> String {
    let at = |v: &Value, pointer: &str| v.pointer(pointer).cloned().unwrap_or(Value::Null);
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let short = |v: &Value| show(v).chars().take(12).collect::<String>();
    let mut found = Vec::new();
    for (pointer, what) in [
        ("/tool", "xai-audit version"),
        ("/data_count", "input count"),
        ("/plan/seed", "seed"),
        ("/plan/batch_size", "batch size"),
        ("/engine", "engine"),
    ] {
        let (a, b) = (at(theirs, pointer), at(ours, pointer));
        if a != b {
            found.push(format!("its {what} is {}, not {}", show(&a), show(&b)));
        }
    }
    for (pointer, what) in [
        ("/model_sha256", "model differs"),
        ("/data_sha256", "data differ"),
    ] {
        let (a, b) = (at(theirs, pointer), at(ours, pointer));
        if a != b {
            found.push(format!(
                "its {what} (sha256 {}…, not {}…)",
                short(&a),
                short(&b)
            ));
        }
    }
    let entries = |v: &Value| {
        let mut plan = at(v, "/plan");
        if let Some(fields) = plan.as_object_mut() {
            fields.remove("seed");
            fields.remove("batch_size");
        }
        plan
    };
    if entries(theirs) != entries(ours) {
        found.push("its plan's entries differ".into());
    }
    if found.is_empty() {
        "its job record differs".into()
    } else {
        found.join("; ")
    }
}

/// Shard `index`'s time, inputs and machines, from the batches it held.
fn timing(index: usize, held: &[BatchPart]) -> ShardTiming {
    let mut hosts: Vec<&str> = Vec::new();
    for h in held.iter().filter_map(|p| p.host.as_deref()) {
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    ShardTiming {
        index,
        seconds: held.iter().map(|p| p.seconds).sum(),
        inputs: held.iter().map(|p| p.len).sum(),
        batches: held.len(),
        host: (!hosts.is_empty()).then(|| hosts.join(", ")),
    }
}

/// The shards' times with the slowest and fastest of those that held a
/// batch, and a line on the balance.
fn shard_timings(count: usize, shards: Vec<ShardTiming>) -> ShardTimings {
    let busy: Vec<&ShardTiming> = shards.iter().filter(|s| s.batches > 0).collect();
    // Ties go to the lower index.
    let slowest = busy
        .iter()
        .copied()
        .reduce(|a, b| if b.seconds > a.seconds { b } else { a });
    let fastest = busy
        .iter()
        .copied()
        .reduce(|a, b| if b.seconds < a.seconds { b } else { a });
    let (Some(slowest), Some(fastest)) = (slowest, fastest) else {
        return ShardTimings {
            count,
            shards,
            slowest: 1,
            fastest: 1,
            slowest_over_fastest: None,
            load_balance: format!("none of the {count} shards held a batch"),
        };
    };
    let ratio = (fastest.seconds > 0.0).then(|| slowest.seconds / fastest.seconds);
    let mut note = format!(
        "shard {} of {count} was the slowest: {:.2} s for {} inputs, {}the fastest, shard {} \
         ({:.2} s for {} inputs)",
        slowest.index,
        slowest.seconds,
        slowest.inputs,
        ratio.map_or(String::new(), |r| format!("{r:.2}× ")),
        fastest.index,
        fastest.seconds,
        fastest.inputs
    );
    let idle: Vec<usize> = shards
        .iter()
        .filter(|s| s.batches == 0)
        .map(|s| s.index)
        .collect();
    if !idle.is_empty() {
        note.push_str(&format!(
            "; shard{} {} held no batch (more shards than batches)",
            if idle.len() == 1 { "" } else { "s" },
            list_and(&idle)
        ));
    }
    ShardTimings {
        count,
        slowest: slowest.index,
        fastest: fastest.index,
        slowest_over_fastest: ratio,
        load_balance: note,
        shards,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checkpoint::{shard_job, shard_path, AttackPart, Checkpoint};

    const LAYOUT: Layout = Layout {
        per: 2,
        classes: 2,
        attacks: 1,
        inputs: 7,
        batch_size: 2,
    };

    fn job(seed: u64) -> Value {
        serde_json::json!({"model_sha256": "ab".repeat(32), "data_sha256": "cd".repeat(32),
            "data_count": 7, "plan": {"seed": seed, "batch_size": 2, "attacks": ["pgd"]},
            "engine": "fast", "tool": "0.1.0"})
    }

    /// Writes shard `k` of `n` of `job` for [`LAYOUT`] (batches of 2 over 7
    /// inputs), holding its first `batches` batches (all by default).
    fn write_shard(path: &Path, job: &Value, k: usize, n: usize, batches: Option<usize>) {
        let mut cp = Checkpoint::open(path, &shard_job(job, k, n), false, 2, 2, 1).unwrap();
        cp.host = Some(format!("node-{k}"));
        let own = batch_ranges(7, 2)
            .enumerate()
            .filter(|(b, _)| b % n == k - 1)
            .map(|(_, r)| r)
            .take(batches.unwrap_or(usize::MAX));
        for (first, len) in own {
            cp.append(&BatchPart {
                first,
                len,
                seconds: k as f64,
                host: cp.host.clone(),
                attacks: vec![AttackPart {
                    gradient_evaluations: 1,
                    seconds: 0.5,
                    success: vec![true; len],
                    targets: None,
                    adversarial: vec![0.5; len * 2],
                    logits: vec![1.0; len * 2],
                }],
            })
            .unwrap();
        }
        cp.keep();
    }

    fn refusal(args: &[PathBuf]) -> String {
        gather(args, &job(1), &LAYOUT).unwrap_err().to_string()
    }

    #[test]
    fn a_whole_set_from_a_directory_or_a_glob_merges_with_its_timings() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.json");
        for k in 1..=3 {
            write_shard(&shard_path(&out, k, 3), &job(1), k, 3, None);
        }
        // Files beside the shards that are not named like one are ignored.
        std::fs::write(dir.path().join("r.json"), "{}").unwrap();
        let pattern = dir.path().join("r.json.shard-*");
        for args in [vec![dir.path().to_path_buf()], vec![pattern.clone()]] {
            let got = gather(&args, &job(1), &LAYOUT).unwrap();
            let mut firsts: Vec<usize> = got.parts.iter().map(|p| p.first).collect();
            firsts.sort();
            assert_eq!(firsts, [0, 2, 4, 6]);
            let t = &got.timings;
            assert_eq!(t.count, 3);
            // Batches 0, 3 (inputs 0..2, 6..7) are shard 1's; 1 is 2's; 2 is 3's.
            let rows: Vec<(usize, f64, usize, usize)> = t
                .shards
                .iter()
                .map(|s| (s.index, s.seconds, s.inputs, s.batches))
                .collect();
            assert_eq!(rows, [(1, 2.0, 3, 2), (2, 2.0, 2, 1), (3, 3.0, 2, 1)]);
            assert_eq!(t.shards[2].host.as_deref(), Some("node-3"));
            assert_eq!((t.slowest, t.fastest), (3, 1));
            assert_eq!(t.slowest_over_fastest, Some(1.5));
            assert!(
                t.load_balance
                    == "shard 3 of 3 was the slowest: 3.00 s for 2 inputs, 1.50× the fastest, \
                        shard 1 (2.00 s for 3 inputs)",
                "{}",
                t.load_balance
            );
        }
        // The directory and the pattern name the same files: each counts once.
        assert!(gather(&[dir.path().to_path_buf(), pattern], &job(1), &LAYOUT).is_ok());
        let none = dir.path().join("nothing-*");
        assert!(refusal(&[none]).contains("no shard file matches"));
    }

    #[test]
    fn missing_doubled_foreign_and_unfinished_shards_are_named_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let out = d.join("r.json");
        let path = |k: usize| shard_path(&out, k, 4);
        for k in [1, 3] {
            write_shard(&path(k), &job(1), k, 4, None);
        }
        let e = gather(&[d.to_path_buf()], &job(1), &LAYOUT).unwrap_err();
        assert!(matches!(
            &e,
            Error::Remedied { remedy: Remedy::RunShards { missing, of: 4 }, .. } if missing == &[2, 4]
        ));
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "shards 2 and 4 of 4 are missing: expected {} and {}",
                path(2).display(),
                path(4).display()
            )),
            "{text}"
        );

        // Shard 3 copied under another name, shard 2 of another seed, and
        // one of a split into 3.
        std::fs::copy(path(3), d.join("copy.shard-9-of-9")).unwrap();
        write_shard(&path(2), &job(2), 2, 4, None);
        write_shard(&d.join("r.json.shard-3-of-3"), &job(1), 3, 3, None);
        write_shard(&path(4), &job(1), 4, 4, None);
        let text = refusal(&[d.to_path_buf()]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "cannot merge the shards:", "{text}");
        assert!(
            text.contains(&format!(
                "{} (shard 2 of 4) belongs to another job: its seed is 2, not 1",
                path(2).display()
            )),
            "{text}"
        );
        assert!(
            text.contains("r.json.shard-3-of-3 (shard 3 of 3) is of a split into 3 shards; the other files are of 4"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "shard 3 of 4 is given twice: {} and {}",
                d.join("copy.shard-9-of-9").display(),
                path(3).display()
            )),
            "{text}"
        );
        assert!(text.contains("shard 2 of 4 is missing"), "{text}");

        // An unfinished shard: one of its two batches.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.json");
        write_shard(&shard_path(&out, 1, 2), &job(1), 1, 2, Some(1));
        write_shard(&shard_path(&out, 2, 2), &job(1), 2, 2, None);
        let text = refusal(&[dir.path().to_path_buf()]);
        assert!(
            text.contains("(shard 1 of 2) is unfinished: it holds 1 of its 2 batches (inputs 4..6 are missing)"),
            "{text}"
        );
    }

    #[test]
    fn what_differs_in_a_foreign_job_is_said() {
        let mut theirs = job(1);
        theirs["engine"] = "reference".into();
        theirs["model_sha256"] = "ef".repeat(32).into();
        theirs["plan"]["attacks"] = serde_json::json!(["fgsm"]);
        assert_eq!(
            differences(&theirs, &job(1)),
            "its engine is reference, not fast; its model differs (sha256 efefefefefef…, \
             not abababababab…); its plan's entries differ"
        );
    }

    #[test]
    fn a_checkpoint_or_a_stranger_is_not_a_shard() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("r.json.partial");
        Checkpoint::open(&partial, &job(1), false, 2, 2, 1)
            .unwrap()
            .keep();
        assert!(refusal(&[partial]).contains("not a shard file"));
        let text = dir.path().join("notes.shard-1-of-2");
        std::fs::write(&text, "hello\n").unwrap();
        assert!(refusal(&[text]).contains("not an xai-audit shard file"));
        let old = dir.path().join("old.shard-1-of-2");
        std::fs::write(&old, "xai-audit partial 1\n{}\n").unwrap();
        assert!(refusal(&[old]).contains("older xai-audit"));
    }
}
