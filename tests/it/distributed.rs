//! Shards across machines, started as a scheduler starts them. The shipped
//! Slurm scripts (`docs/distributed/submit.sh`, `audit.sbatch`) run under
//! plain bash: `submit.sh` against a stand-in `sbatch` that records its
//! calls, then `audit.sbatch` once per index of the array it submitted, with
//! the variables Slurm sets, and once more as the merge. The Kubernetes
//! manifests (`audit-shards.yaml`, `audit-merge.yaml`) are parsed, and each
//! pod's command runs with its `JOB_COMPLETION_INDEX`, the shared volume
//! mapped to a folder. Both merge from the shards' directory into the
//! report and sidecar a single run writes, timings aside. Then `merge`
//! refusing missing, doubled and foreign shards by index, and `run --shard
//! auto` naming the variables it lacks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

use super::{fixture, root, without_timings, xai, Run};

/// Inherited variables that would change which shard a process is, or what
/// it records: none leaks from the test's own environment.
const SCHEDULER_ENV: [&str; 8] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_ARRAY_TASK_COUNT",
    "JOB_COMPLETION_INDEX",
    "HOSTNAME",
    "SLURMD_NODENAME",
];

/// The options that keep the tests fast: 24 inputs in 8 batches, so that 3
/// and 4 shards each hold two or three.
const FAST: [&str; 4] = ["--limit", "24", "--batch-size", "3"];

fn binary() -> String {
    env!("CARGO_BIN_EXE_xai-audit").to_string()
}

fn model() -> String {
    root()
        .join("assets/mnist_cnn.safetensors")
        .display()
        .to_string()
}

fn plan() -> String {
    fixture("shard-plan.toml").display().to_string()
}

/// Runs `program` with `args` in `dir`, with `env` set and no scheduler
/// variable of the test's own.
fn run(program: &str, dir: &Path, args: &[String], env: &[(String, String)]) -> Run {
    let mut command = Command::new(program);
    command.args(args).current_dir(dir);
    for name in SCHEDULER_ENV {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the command runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// Asserts that the report `dir/name.json` and its sidecar are those of the
/// single run `single_dir/single.json`, timings aside, and returns the
/// report's per-shard timings.
fn assert_single_run_report(dir: &Path, name: &str, single_dir: &Path) -> Value {
    let (got, got_tensors) = without_timings(dir, name);
    let (want, want_tensors) = without_timings(single_dir, "single");
    assert_eq!(got, want, "the merged report differs from the single run's");
    assert!(
        got_tensors == want_tensors,
        "the merged sidecar differs from the single run's"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    super::validate_against_schema(&dir.join(format!("{name}.json")));
    report["timings"]["shards"].clone()
}

/// Checks the merged report's timings: `n` shards of `inputs` inputs each,
/// on the machines `host(k)` names.
fn assert_shard_timings(timings: &Value, n: usize, inputs: &[u64], host: impl Fn(usize) -> String) {
    assert_eq!(timings["count"], n, "{timings:#}");
    let shards = timings["shards"].as_array().unwrap();
    assert_eq!(shards.len(), n);
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(s["index"], i + 1, "{s}");
        assert_eq!(s["inputs"], inputs[i], "{s}");
        assert!(s["seconds"].as_f64().unwrap() > 0.0, "{s}");
        assert_eq!(s["host"], host(i + 1), "{s}");
    }
    let slowest = timings["slowest"].as_u64().unwrap();
    let note = timings["load_balance"].as_str().unwrap();
    assert!(
        note.starts_with(&format!("shard {slowest} of {n} was the slowest")),
        "{note}"
    );
    assert!(timings["slowest_over_fastest"].as_f64().unwrap() >= 1.0);
}

/// The indices of a Slurm `--array=A-B[:S]`.
fn array_indices(spec: &str) -> Vec<usize> {
    let (range, step) = spec.split_once(':').unwrap_or((spec, "1"));
    let (a, b) = range.split_once('-').expect("a range");
    let (a, b, step): (usize, usize, usize) = (
        a.parse().unwrap(),
        b.parse().unwrap(),
        step.parse().unwrap(),
    );
    (a..=b).step_by(step).collect()
}

#[test]
fn a_slurm_job_array_shards_and_merges_into_the_single_run_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_dir(&root().join("assets/mnist-sample"), &d.join("data"));
    // A stand-in for sbatch: records its arguments, answers with a job id.
    let bin = d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(
        bin.join("sbatch"),
        "#!/bin/sh\necho \"$*\" >> \"$SBATCH_LOG\"\necho 4242\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("sbatch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let job = pairs(&[
        ("XAI_AUDIT", &binary()),
        ("MODEL", &model()),
        ("DATA", "data"),
        ("PLAN", &plan()),
        ("OUT", "audit/report.json"),
        ("AUDIT_OPTIONS", &FAST.join(" ")),
    ]);
    let docs = root().join("docs/distributed");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = d.join("sbatch.log");
    let mut env = job.clone();
    env.extend(pairs(&[
        ("PATH", &path),
        ("SBATCH_LOG", &log.display().to_string()),
    ]));
    let submit = run(
        "bash",
        d,
        &[docs.join("submit.sh").display().to_string()],
        &env,
    );
    assert_eq!(submit.code, 0, "{}", submit.stderr);
    let calls: Vec<Vec<String>> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    // The array, then the merge once every task has succeeded.
    let script = calls[0].last().unwrap().clone();
    assert!(calls[0].contains(&"--parsable".to_string()), "{calls:?}");
    let array = calls[0]
        .iter()
        .find_map(|a| a.strip_prefix("--array="))
        .expect("an array");
    assert!(
        calls[1].contains(&"--dependency=afterok:4242".to_string()),
        "{calls:?}"
    );
    assert_eq!(
        calls[1][calls[1].len() - 2..],
        [script.clone(), "merge".into()]
    );
    let ids = array_indices(array);
    assert_eq!(ids.len(), 4, "{array}");

    // Slurm runs the script once per index, with the array's variables.
    let (min, max) = (ids[0], ids[ids.len() - 1]);
    let step = ids.get(1).map_or(1, |&second| second - min);
    for (task, id) in ids.iter().enumerate() {
        let mut env = job.clone();
        env.extend(pairs(&[
            ("SLURM_ARRAY_JOB_ID", "4242"),
            ("SLURM_JOB_ID", &(4242 + task).to_string()),
            ("SLURM_ARRAY_TASK_ID", &id.to_string()),
            ("SLURM_ARRAY_TASK_MIN", &min.to_string()),
            ("SLURM_ARRAY_TASK_MAX", &max.to_string()),
            ("SLURM_ARRAY_TASK_STEP", &step.to_string()),
            ("SLURM_ARRAY_TASK_COUNT", &ids.len().to_string()),
            ("SLURMD_NODENAME", &format!("node-{}", task + 1)),
        ]));
        let r = run("bash", d, std::slice::from_ref(&script), &env);
        assert_eq!(r.code, 0, "task {id}: {}", r.stderr);
        assert!(
            r.stdout
                .starts_with(&format!("shard {}/4 (SLURM_ARRAY_TASK_ID={id} ", task + 1)),
            "{}",
            r.stdout
        );
    }
    assert!(
        !d.join("audit/report.json").exists(),
        "a shard wrote a report"
    );
    let mut env = job.clone();
    env.extend(pairs(&[("SLURM_JOB_ID", "4246")]));
    let merged = run("bash", d, &strings(&[&script, "merge"]), &env);
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    assert!(
        merged.stdout.contains("balance shard "),
        "{}",
        merged.stdout
    );

    let single = xai(
        d,
        &[
            &["run", &model(), "--data", "data", "--plan", &plan()][..],
            &FAST,
            &["--out", "single.json"],
        ]
        .concat(),
    );
    assert_eq!(single.code, 0, "{}", single.stderr);
    let timings = assert_single_run_report(&d.join("audit"), "report", d);
    assert_shard_timings(&timings, 4, &[6, 6, 6, 6], |k| format!("node-{k}"));
}

/// The YAML documents of a manifest file, as JSON values.
fn manifest(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect()
}

/// A Job's one container: its command and where the shared volume is
/// mounted.
fn container(job: &Value) -> (Vec<String>, String) {
    let containers = job["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{job:#}");
    let command = containers[0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().expect("every word a string").to_string())
        .collect();
    let mount = containers[0]["volumeMounts"][0]["mountPath"]
        .as_str()
        .unwrap()
        .to_string();
    (command, mount)
}

#[test]
fn a_kubernetes_indexed_job_shards_and_merges_into_the_single_run_report() {
    let docs = root().join("docs/distributed");
    let shard_docs = manifest(&docs.join("audit-shards.yaml"));
    let claim = shard_docs
        .iter()
        .find(|d| d["kind"] == "PersistentVolumeClaim")
        .expect("the shared volume's claim");
    assert_eq!(claim["spec"]["accessModes"][0], "ReadWriteMany");
    let job = shard_docs.iter().find(|d| d["kind"] == "Job").unwrap();
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let n = job["spec"]["completions"].as_u64().unwrap() as usize;
    assert_eq!(n, 3);
    let (command, mount) = container(job);
    let at = command.iter().position(|a| a == "--shards").unwrap();
    assert_eq!(
        command[at + 1],
        n.to_string(),
        "--shards is not `completions`"
    );
    let merge_docs = manifest(&docs.join("audit-merge.yaml"));
    assert_eq!(merge_docs.len(), 1);
    assert_eq!(merge_docs[0]["kind"], "Job");
    let (merge_command, merge_mount) = container(&merge_docs[0]);
    assert_eq!(merge_mount, mount);
    for d in shard_docs.iter().chain(&merge_docs) {
        if d["kind"] == "Job" {
            let claim_name =
                &d["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"];
            assert_eq!(*claim_name, claim["metadata"]["name"]);
        }
    }

    // The shared volume, here: the model, the data and the plan where the
    // pods find them.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let volume = d.join("volume");
    copy_dir(&root().join("assets/mnist-sample"), &volume.join("data"));
    std::fs::copy(model(), volume.join("model.safetensors")).unwrap();
    std::fs::copy(plan(), volume.join("plan.toml")).unwrap();
    let local = |command: &[String]| -> Vec<String> {
        assert_eq!(command[0], "xai-audit");
        let volume = volume.display().to_string();
        let mut args: Vec<String> = command[1..]
            .iter()
            .map(|a| a.replacen(&mount, &volume, 1))
            .collect();
        args.extend(strings(&FAST));
        args
    };
    for index in 0..n {
        let env = pairs(&[
            ("JOB_COMPLETION_INDEX", &index.to_string()),
            ("HOSTNAME", &format!("xai-audit-shards-{index}-x7k2p")),
        ]);
        let r = run(&binary(), d, &local(&command), &env);
        assert_eq!(r.code, 0, "index {index}: {}", r.stderr);
        assert!(
            r.stdout.starts_with(&format!(
                "shard {}/{n} (JOB_COMPLETION_INDEX={index})",
                index + 1
            )),
            "{}",
            r.stdout
        );
    }
    // `kubectl wait --for=condition=complete`: every pod has succeeded.
    let merged = run(&binary(), d, &local(&merge_command), &[]);
    assert_eq!(merged.code, 0, "{}", merged.stderr);

    // The single run: a pod's command without the shard.
    let mut single = local(&command);
    for flag in ["--shard", "--shards"] {
        let at = single.iter().position(|a| a == flag).unwrap();
        single.drain(at..at + 2);
    }
    let out = single.iter().position(|a| a == "--out").unwrap();
    single[out + 1] = d.join("single.json").display().to_string();
    let r = run(&binary(), d, &single, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let timings = assert_single_run_report(&volume.join("out"), "report", d);
    assert_shard_timings(&timings, 3, &[9, 9, 6], |k| {
        format!("xai-audit-shards-{}-x7k2p", k - 1)
    });
}

#[test]
fn merge_refuses_missing_doubled_and_foreign_shards_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let job = |extra: &[&str]| -> Vec<String> {
        strings(&[&[model().as_str(), "--plan", &plan()][..], &FAST, extra].concat())
    };
    for k in 1..=4 {
        let shard = format!("{k}/4");
        let mut args = strings(&["run"]);
        args.extend(job(&["--shard", &shard, "--out", "shards/r.json"]));
        let r = run(&binary(), d, &args, &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    // Shard 1 of the same split, but another seed.
    let mut args = strings(&["run"]);
    args.extend(job(&[
        "--seed",
        "12",
        "--shard",
        "1/4",
        "--out",
        "other/r.json",
    ]));
    assert_eq!(run(&binary(), d, &args, &[]).code, 0);
    let shards = d.join("shards");
    std::fs::rename(
        shards.join("r.json.shard-2-of-4"),
        d.join("r.json.shard-2-of-4"),
    )
    .unwrap();
    std::fs::copy(
        shards.join("r.json.shard-3-of-4"),
        shards.join("copy.shard-3-of-4"),
    )
    .unwrap();

    let merge = |sources: &[&str]| {
        let mut args = strings(&["merge", &model()]);
        args.extend(strings(sources));
        args.extend(job(&["--out", "shards/r.json"])[1..].iter().cloned());
        run(&binary(), d, &args, &[])
    };
    let refused = merge(&["shards", "other/r.json.shard-1-of-4"]);
    refused.expect_error(&[
        "error: cannot merge the shards:\n",
        "\n  other/r.json.shard-1-of-4 (shard 1 of 4) belongs to another job: its seed is 12, not 11\n",
        "\n  shard 3 of 4 is given twice: shards/copy.shard-3-of-4 and shards/r.json.shard-3-of-4\n",
        "\n  shard 2 of 4 is missing: expected shards/r.json.shard-2-of-4\n",
        "help: run it with the job's options (xai-audit run ... --shard 2/4), then merge again",
    ]);
    assert!(!shards.join("r.json").exists());
    assert!(!shards.join("r.json.partial").exists());

    // Missing alone, through a glob: the shard and the files expected.
    std::fs::remove_file(shards.join("copy.shard-3-of-4")).unwrap();
    merge(&["shards/r.json.shard-*"]).expect_error(&[
        "error: cannot merge the shards: shard 2 of 4 is missing: expected shards/r.json.shard-2-of-4\n",
    ]);
    // A shard of 4 given with shards of 2 (foreign by split).
    let mut args = strings(&["run"]);
    args.extend(job(&["--shard", "2/2", "--out", "halves/r.json"]));
    assert_eq!(run(&binary(), d, &args, &[]).code, 0);
    merge(&["shards", "halves"]).expect_error(&[
        "halves/r.json.shard-2-of-2 (shard 2 of 2) is of a split into 2 shards; the other files are of 4",
    ]);

    // Put back, the set merges.
    std::fs::rename(
        d.join("r.json.shard-2-of-4"),
        shards.join("r.json.shard-2-of-4"),
    )
    .unwrap();
    let merged = merge(&["shards"]);
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    assert!(shards.join("r.json").exists());
}

#[test]
fn shard_auto_names_the_scheduler_variables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let auto = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = strings(&["run", &model(), "--shard", "auto", "--out", "r.json"]);
        args.extend(strings(extra));
        run(&binary(), d, &args, &pairs(env))
    };
    auto(&[], &[]).expect_error(&[
        "neither SLURM_ARRAY_TASK_ID",
        "nor JOB_COMPLETION_INDEX",
        "--shard K/N",
    ]);
    auto(&[], &[("JOB_COMPLETION_INDEX", "1")]).expect_error(&[
        "JOB_COMPLETION_INDEX=1 (a pod of a Kubernetes Indexed Job)",
        "pass --shards N",
    ]);
    auto(&["--shards", "3"], &[("JOB_COMPLETION_INDEX", "3")]).expect_error(&[
        "--shards is 3, but JOB_COMPLETION_INDEX=3",
        "numbered 0 to 2",
    ]);
    // `--array=1,3,8`: three tasks, indices 1 to 8.
    let sparse = [
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "8"),
        ("SLURM_ARRAY_TASK_STEP", "1"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ];
    auto(&[], &sparse).expect_error(&["not contiguous", "SLURM_ARRAY_TASK_COUNT=3"]);
    let both = [
        ("SLURM_ARRAY_TASK_ID", "1"),
        ("SLURM_ARRAY_TASK_MIN", "0"),
        ("SLURM_ARRAY_TASK_MAX", "3"),
        ("SLURM_ARRAY_TASK_STEP", "1"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
        ("JOB_COMPLETION_INDEX", "2"),
    ];
    auto(&[], &both).expect_error(&[
        "disagree",
        "SLURM_ARRAY_TASK_ID=1",
        "JOB_COMPLETION_INDEX=2",
    ]);
    auto(&["--shards", "5"], &both[..5])
        .expect_error(&["--shards is 5", "SLURM_ARRAY_TASK_COUNT=4"]);
    xai(d, &["run", &model(), "--shard", "2/4", "--shards", "4"])
        .expect_error(&["--shards goes with --shard auto"]);
    let written: Vec<PathBuf> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(written.is_empty(), "{written:?}");
}

/// docs/distributed.md quotes every shipped script and manifest whole, so
/// the text these tests run is the text a reader copies.
#[test]
fn the_guide_quotes_the_tested_files_verbatim() {
    let guide = std::fs::read_to_string(root().join("docs/distributed.md")).unwrap();
    let mut quoted = 0;
    for entry in std::fs::read_dir(root().join("docs/distributed")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            guide.contains(&format!("\n{text}```\n")),
            "docs/distributed.md does not quote {} as it is",
            path.display()
        );
        quoted += 1;
    }
    assert_eq!(quoted, 4);
    assert!(guide.contains("kubectl wait --for=condition=complete"));
    assert!(guide.contains("--dependency=afterok"));
}
