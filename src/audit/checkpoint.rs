//! Checkpoints: `<report>.partial` beside the report holds every finished
//! batch's attack results, so `run --resume` after a kill (SIGINT or
//! SIGKILL) skips them and finishes with the report an uninterrupted run
//! writes. `run --shard K/N` writes the same format for its batches
//! (`<report>.shard-K-of-N`), which `merge` adopts. This file owns the
//! format and the interrupt flag.
//!
//! The file is a header line (`xai-audit partial 2`), a JSON line naming the
//! job (model and data hashes, the resolved plan, the engine; a shard file's
//! also names the shard, `"shard": {"index": K, "of": N}`, so that a merge
//! can tell each file's index whatever its name), then one record per
//! batch: `len: u64`, the payload, and the payload's SHA-256 (first 8
//! bytes). Records are appended and synced one at a time; a record cut
//! short by a kill fails its length or checksum and is dropped on resume,
//! with everything after it. The payload stores what cannot be recomputed
//! cheaply (adversarials, their logits, success, targets, gradient
//! evaluations, seconds) and how long the batch took on which machine (a
//! merge reports each shard's time); clean predictions and norms are
//! recomputed, and deterministically so. Format 1 recorded neither the
//! shard nor the times.

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{Error, Remedy, Result};

const MAGIC: &[u8] = b"xai-audit partial 2\n";

/// The header of format 1, which older builds wrote.
const MAGIC_1: &[u8] = b"xai-audit partial 1\n";

/// Set by the SIGINT handler; checked between batches.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks the running audit to stop after the current batch.
pub fn request_stop() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// One attack's results for one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackPart {
    /// Gradient evaluations per input.
    pub gradient_evaluations: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// Per input.
    pub success: Vec<bool>,
    /// Per input, for targeted attacks.
    pub targets: Option<Vec<u32>>,
    /// `[len, C, H, W]`, row-major.
    pub adversarial: Vec<f32>,
    /// `[len, K]`, row-major.
    pub logits: Vec<f32>,
}

/// One finished batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPart {
    /// Index of its first input.
    pub first: usize,
    /// Inputs in it.
    pub len: usize,
    /// Wall-clock seconds the batch took: its attacks, and for a shard its
    /// clean pass too.
    pub seconds: f64,
    /// The machine it ran on, when known.
    pub host: Option<String>,
    /// In plan order.
    pub attacks: Vec<AttackPart>,
}

/// The checkpoint file of one run.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    file: std::fs::File,
    /// Batches restored from an earlier run or adopted from shards.
    pub restored: Vec<BatchPart>,
    /// The machine this run is on, recorded with the batches it appends.
    pub host: Option<String>,
    per: usize,
    classes: usize,
}

/// `<report>.partial`.
pub fn partial_path(report: &Path) -> PathBuf {
    let mut name = report
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    report.with_file_name(name)
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn encode(b: &BatchPart) -> Vec<u8> {
    let mut out = Vec::new();
    put_u64(&mut out, b.first as u64);
    put_u64(&mut out, b.len as u64);
    out.extend_from_slice(&b.seconds.to_le_bytes());
    let host = b.host.as_deref().unwrap_or_default().as_bytes();
    put_u64(&mut out, host.len() as u64);
    out.extend_from_slice(host);
    put_u64(&mut out, b.attacks.len() as u64);
    for a in &b.attacks {
        put_u64(&mut out, a.gradient_evaluations);
        out.extend_from_slice(&a.seconds.to_le_bytes());
        out.extend(a.success.iter().map(|&s| s as u8));
        match &a.targets {
            Some(t) => {
                out.push(1);
                for v in t {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            None => out.push(0),
        }
        for v in a.adversarial.iter().chain(&a.logits) {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// A cursor over a payload; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn f64(&mut self) -> Option<f64> {
        Some(f64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn f32s(&mut self, n: usize) -> Option<Vec<f32>> {
        let bytes = self.take(n.checked_mul(4)?)?;
        Some(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
}

fn decode(payload: &[u8], per: usize, classes: usize, attacks: usize) -> Option<BatchPart> {
    let mut r = Reader(payload);
    let first = r.u64()? as usize;
    let len = r.u64()? as usize;
    let seconds = r.f64()?;
    let host_len = usize::try_from(r.u64()?).ok()?;
    let host = String::from_utf8(r.take(host_len)?.to_vec()).ok()?;
    if r.u64()? as usize != attacks {
        return None;
    }
    let mut parts = Vec::with_capacity(attacks);
    for _ in 0..attacks {
        let gradient_evaluations = r.u64()?;
        let seconds = r.f64()?;
        let success = r.take(len)?.iter().map(|&b| b != 0).collect();
        let targets = match r.take(1)?[0] {
            0 => None,
            _ => Some(
                r.take(len.checked_mul(4)?)?
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
        };
        let adversarial = r.f32s(len.checked_mul(per)?)?;
        let logits = r.f32s(len.checked_mul(classes)?)?;
        parts.push(AttackPart {
            gradient_evaluations,
            seconds,
            success,
            targets,
            adversarial,
            logits,
        });
    }
    r.0.is_empty().then_some(BatchPart {
        first,
        len,
        seconds,
        host: (!host.is_empty()).then_some(host),
        attacks: parts,
    })
}

/// The whole records at the start of `body` (in file order, each batch once)
/// and how many bytes they span; reading stops at the first torn or
/// corrupt record.
fn read_records(
    body: &[u8],
    per: usize,
    classes: usize,
    attacks: usize,
) -> (Vec<BatchPart>, usize) {
    let mut out: Vec<BatchPart> = Vec::new();
    let mut at = 0usize;
    loop {
        let rest = &body[at..];
        let Some(len) = rest
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
        else {
            break;
        };
        let Some(payload) = rest.get(8..8usize.saturating_add(len)) else {
            break;
        };
        if rest.get(8 + len..16 + len) != Some(&checksum(payload)[..]) {
            break;
        }
        match decode(payload, per, classes, attacks) {
            Some(b) if !out.iter().any(|o| o.first == b.first) => out.push(b),
            _ => break,
        }
        at += 16 + len;
    }
    (out, at)
}

/// `<report>.shard-K-of-N`: one shard's batches, in the checkpoint format.
pub fn shard_path(report: &Path, k: usize, n: usize) -> PathBuf {
    let mut name = report
        .file_name()
        .map(|x| x.to_os_string())
        .unwrap_or_default();
    name.push(format!(".shard-{k}-of-{n}"));
    report.with_file_name(name)
}

/// The report name and `(K, N)` of a file named like a shard
/// (`<report>.shard-K-of-N`), or `None`.
pub fn shard_name(file_name: &str) -> Option<(&str, usize, usize)> {
    let (report, rest) = file_name.rsplit_once(".shard-")?;
    let (k, n) = rest.split_once("-of-")?;
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((report, number(k)?, number(n)?))
}

/// The job record a shard file starts with: the job's, naming shard `k` of
/// `n` as well.
pub fn shard_job(job: &serde_json::Value, k: usize, n: usize) -> serde_json::Value {
    let mut record = job.clone();
    if let Some(fields) = record.as_object_mut() {
        fields.insert("shard".into(), serde_json::json!({ "index": k, "of": n }));
    }
    record
}

/// What a shard file says about itself: which shard of which job.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardHeader {
    /// `K`, 1-based.
    pub index: usize,
    /// `N`.
    pub count: usize,
    /// The job, as [`shard_job`] was given it.
    pub job: serde_json::Value,
}

/// Reads the header of a shard file (its first two lines only): a file
/// that is no shard, or a shard of format 1 (which named no index), is an
/// error naming the file.
pub fn read_shard_header(path: &Path) -> Result<ShardHeader> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = |what: &str| -> Result<Vec<u8>> {
        let mut out = Vec::new();
        reader
            .read_until(b'\n', &mut out)
            .map_err(|e| Error::io(path, e))?;
        if out.last() != Some(&b'\n') {
            return Err(Error::format(
                path,
                format!("not an xai-audit shard file (no {what} line)"),
            ));
        }
        Ok(out)
    };
    let magic = line("header")?;
    if magic == MAGIC_1 {
        return Err(Error::format(
            path,
            "a shard file of an older xai-audit (format 1, which records no shard index): rerun this shard",
        ));
    }
    if magic != MAGIC {
        return Err(Error::format(path, "not an xai-audit shard file"));
    }
    let record: serde_json::Value = serde_json::from_slice(&line("job")?).map_err(|_| {
        Error::format(
            path,
            "not an xai-audit shard file (its job line is not JSON)",
        )
    })?;
    let mut job = record;
    let shard = job
        .as_object_mut()
        .and_then(|fields| fields.remove("shard"));
    let Some(shard) = shard else {
        return Err(Error::format(
            path,
            "the checkpoint of an interrupted run, not a shard file: resume that run instead",
        ));
    };
    let number = |key: &str| {
        shard
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
    };
    match (number("index"), number("of")) {
        (Some(index), Some(count)) if 1 <= index && index <= count => {
            Ok(ShardHeader { index, count, job })
        }
        _ => Err(Error::format(
            path,
            format!("a shard file whose shard record is invalid: {shard}"),
        )),
    }
}

/// Reads the batches of a finished shard file whose header
/// [`read_shard_header`] has checked against the job: all of the file must
/// be whole, or the error names it.
pub fn read_shard(
    path: &Path,
    per: usize,
    classes: usize,
    attacks: usize,
) -> Result<Vec<BatchPart>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let body = bytes
        .strip_prefix(MAGIC)
        .and_then(|b| Some(&b[b.iter().position(|&c| c == b'\n')? + 1..]))
        .ok_or_else(|| Error::format(path, "not an xai-audit shard file"))?;
    let (parts, at) = read_records(body, per, classes, attacks);
    if at != body.len() {
        return Err(Error::format(
            path,
            format!(
                "cut short or corrupt after {} whole batches: rerun this shard",
                parts.len()
            ),
        ));
    }
    Ok(parts)
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(payload);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

impl Checkpoint {
    /// Opens the checkpoint for a job identified by `job` (JSON naming the
    /// model, data, plan and engine). With `resume`, an existing file of the
    /// same job gives back its complete batches; one of another job is an
    /// error naming the difference. Without `resume`, any old file is
    /// replaced.
    pub fn open(
        path: &Path,
        job: &serde_json::Value,
        resume: bool,
        per: usize,
        classes: usize,
        attacks: usize,
    ) -> Result<Checkpoint> {
        let header = format!("{}\n", job);
        let mut restored = Vec::new();
        let mut keep = 0u64;
        if resume && path.exists() {
            let mut bytes = Vec::new();
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| Error::io(path, e))?;
            if bytes.starts_with(MAGIC_1) {
                return Err(
                    Error::format(path, "a checkpoint of an older xai-audit (format 1)")
                        .remedied(Remedy::StartAfresh),
                );
            }
            let body = bytes
                .strip_prefix(MAGIC)
                .and_then(|b| b.strip_prefix(header.as_bytes()))
                .ok_or_else(|| {
                    Error::format(
                        path,
                        "this checkpoint belongs to another job (model, data, plan, seed, batch size or engine differ)",
                    )
                    .remedied(Remedy::StartAfresh)
                })?;
            let (parts, at) = read_records(body, per, classes, attacks);
            restored = parts;
            keep = (MAGIC.len() + header.len() + at) as u64;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(keep == 0)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        if keep == 0 {
            file.write_all(MAGIC)
                .and_then(|_| file.write_all(header.as_bytes()))
                .and_then(|_| file.sync_data())
                .map_err(|e| Error::io(path, e))?;
        } else {
            // Drop a torn tail, then append after the last whole record.
            file.set_len(keep)
                .and_then(|_| file.seek(SeekFrom::End(0)).map(|_| ()))
                .map_err(|e| Error::io(path, e))?;
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            file,
            restored,
            host: None,
            per,
            classes,
        })
    }

    /// Appends a finished batch and syncs it to disk.
    pub fn append(&mut self, batch: &BatchPart) -> Result<()> {
        debug_assert!(batch
            .attacks
            .iter()
            .all(|a| a.adversarial.len() == batch.len * self.per
                && a.logits.len() == batch.len * self.classes));
        let payload = encode(batch);
        let mut record = Vec::with_capacity(payload.len() + 16);
        put_u64(&mut record, payload.len() as u64);
        record.extend_from_slice(&payload);
        record.extend_from_slice(&checksum(&payload));
        self.file
            .write_all(&record)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Takes `parts` (from shard files) as finished batches.
    pub fn adopt(&mut self, parts: Vec<BatchPart>) {
        self.restored.extend(parts);
    }

    /// The finished batch starting at input `first`, if it holds `len` inputs.
    pub fn finished(&self, first: usize, len: usize) -> Option<&BatchPart> {
        self.restored
            .iter()
            .find(|p| p.first == first && p.len == len)
    }

    /// Closes the file, keeping it (a shard's output).
    pub fn keep(self) {}

    /// Removes the file once the report is written.
    pub fn finish(self) -> Result<()> {
        drop(self.file);
        std::fs::remove_file(&self.path).map_err(|e| Error::io(&self.path, e))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: usize, len: usize, seed: f32) -> BatchPart {
        BatchPart {
            first,
            len,
            seconds: 0.5 * seed as f64,
            host: (seed > 1.0).then(|| "node-7".to_string()),
            attacks: vec![
                AttackPart {
                    gradient_evaluations: 40,
                    seconds: 1.5,
                    success: (0..len).map(|i| i % 2 == 0).collect(),
                    targets: Some((0..len as u32).collect()),
                    adversarial: (0..len * 3).map(|i| i as f32 * seed).collect(),
                    logits: (0..len * 2).map(|i| -(i as f32) * seed).collect(),
                },
                AttackPart {
                    gradient_evaluations: 1,
                    seconds: 0.25,
                    success: vec![true; len],
                    targets: None,
                    adversarial: vec![seed; len * 3],
                    // NaN logits (a broken model) must survive too; `b` has them.
                    logits: vec![if seed > 1.0 { f32::NAN } else { -7.25 }; len * 2],
                },
            ],
        }
    }

    #[test]
    fn batches_survive_a_torn_tail_and_a_foreign_job_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json.partial");
        let job = serde_json::json!({"model": "abc", "seed": 1});
        let mut cp = Checkpoint::open(&path, &job, false, 3, 2, 2).unwrap();
        let (a, b) = (batch(0, 4, 0.5), batch(4, 3, 2.0));
        cp.append(&a).unwrap();
        cp.append(&b).unwrap();
        drop(cp);
        // A third record cut short, as a SIGKILL mid-write leaves it.
        let mut bytes = std::fs::read(&path).unwrap();
        let whole = bytes.len();
        let mut torn = Vec::new();
        put_u64(&mut torn, 500);
        torn.extend_from_slice(&[7u8; 100]);
        bytes.extend_from_slice(&torn);
        std::fs::write(&path, &bytes).unwrap();

        let cp = Checkpoint::open(&path, &job, true, 3, 2, 2).unwrap();
        assert_eq!(cp.restored.len(), 2);
        assert_eq!(cp.restored[0], a);
        assert_eq!(cp.restored[1].attacks[0], b.attacks[0]);
        assert!(cp.restored[1].attacks[1].logits.iter().all(|v| v.is_nan()));
        drop(cp);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            whole,
            "torn tail dropped"
        );

        // A corrupted byte inside the second record drops it (checksum).
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 20] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let cp = Checkpoint::open(&path, &job, true, 3, 2, 2).unwrap();
        assert_eq!(cp.restored, vec![a]);
        drop(cp);

        let other = serde_json::json!({"model": "abc", "seed": 2});
        let err = Checkpoint::open(&path, &other, true, 3, 2, 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("r.json.partial") && err.contains("another job"),
            "{err}"
        );
        // Without --resume the old file is replaced.
        let cp = Checkpoint::open(&path, &other, false, 3, 2, 2).unwrap();
        assert!(cp.restored.is_empty());
        cp.finish().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn partial_path_sits_beside_the_report() {
        assert_eq!(
            partial_path(Path::new("out/r.json")),
            PathBuf::from("out/r.json.partial")
        );
    }
}
