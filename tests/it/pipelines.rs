//! `run` in pipelines: CI gates (plan `[gates]`, `--gate`, exit code 1,
//! JUnit XML), determinism with every random component — random starts,
//! restarts, random targets, Square, random spatial transforms, noise
//! inputs — across runs and batch sizes, `diff` between two reports, and
//! resuming after SIGKILL or Ctrl-C.

use serde_json::Value;

use super::{root, without_timings, xai};

fn model() -> String {
    root()
        .join("assets/mnist_cnn.safetensors")
        .display()
        .to_string()
}

const GATED_PLAN: &str = r#"
seed = 5
[[attack]]
name = "fgsm-linf-0.1"
kind = "fgsm"
eps = 0.1

[[attack]]
name = "pgd-linf-0.1"
kind = "pgd"
eps = 0.1
step_size = 0.025
steps = 5

[[stress]]
name = "calibration"
kind = "calibration"

[gates]
clean_accuracy = ">= 0.9"
"robust_accuracy.pgd-linf-0.1" = ">= 0.0"
"stress.ece" = "<= 0.5"
"#;

fn summary_value(report: &std::path::Path, pointer: &str) -> f64 {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing"))
}

#[test]
fn gates_pass_fail_and_write_junit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("gated.toml"), GATED_PLAN).unwrap();
    let common = ["run", &model(), "--plan", "gated.toml", "--limit", "60"];
    let pass = xai(
        d,
        &[&common[..], &["--out", "a.json", "--junit", "a.xml"]].concat(),
    );
    assert_eq!(pass.code, 0, "{}\n{}", pass.stdout, pass.stderr);
    assert!(
        pass.stdout.contains("0 of 3 gates failed"),
        "{}",
        pass.stdout
    );
    let xml = std::fs::read_to_string(d.join("a.xml")).unwrap();
    assert!(xml.contains("tests=\"3\" failures=\"0\""), "{xml}");

    // Thresholds on either side of the values in the report: `>=` holds at
    // the value, `>` does not; the run still writes its report and exits 1.
    let robust = summary_value(&d.join("a.json"), "/summary/attacks/1/robust_accuracy");
    let ece = summary_value(&d.join("a.json"), "/summary/stress/calibration/0/ece");
    let at = format!("robust_accuracy.pgd-linf-0.1 >= {robust}");
    let above = format!("robust_accuracy.pgd-linf-0.1 > {robust}");
    let ece_gate = format!("stress.ece < {ece}");
    let fail = xai(
        d,
        &[
            &common[..],
            &[
                "--out", "b.json", "--junit", "b.xml", "--gate", &at, "--gate", &above, "--gate",
                &ece_gate,
            ],
        ]
        .concat(),
    );
    assert_eq!(fail.code, 1, "{}\n{}", fail.stdout, fail.stderr);
    assert!(
        fail.stdout.contains("2 of 6 gates failed"),
        "{}",
        fail.stdout
    );
    let fail_lines: Vec<&str> = fail
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("FAIL"))
        .collect();
    assert_eq!(fail_lines.len(), 2, "{}", fail.stdout);
    assert!(
        fail_lines
            .iter()
            .any(|l| l.contains("robust_accuracy.pgd-linf-0.1")
                && l.contains(&format!("{robust:.4}")))
    );
    assert!(fail_lines.iter().any(|l| l.contains("stress.ece")));
    assert!(
        d.join("b.json").exists(),
        "a failed gate still leaves the report"
    );
    let xml = std::fs::read_to_string(d.join("b.xml")).unwrap();
    assert!(xml.contains("tests=\"6\" failures=\"2\""), "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 2, "{xml}");
}

#[test]
fn gates_on_unknown_metrics_or_bad_conditions_fail_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("gated.toml"), GATED_PLAN).unwrap();
    let run = |extra: &[&str]| {
        xai(
            d,
            &[
                &[
                    "run",
                    &model(),
                    "--plan",
                    "gated.toml",
                    "--out",
                    "out/r.json",
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    run(&["--gate", "robust_accuracy.pgd-linf-0.3 >= 0.5"]).expect_error(&[
        "--gate",
        "pgd-linf-0.3",
        "no attack",
    ]);
    run(&["--gate", "equivariance.consistency.shift >= 0.5"])
        .expect_error(&["equivariance entry `shift`"]);
    run(&["--gate", "clean_accuracy ~ 1"]).expect_error(&["--gate", "clean_accuracy"]);
    std::fs::write(
        d.join("bad.toml"),
        format!("{GATED_PLAN}\"stress.mce\" = \"at most 0.1\"\n"),
    )
    .unwrap();
    xai(
        d,
        &["run", &model(), "--plan", "bad.toml", "--out", "out/r.json"],
    )
    .expect_error(&["bad.toml", "stress.mce"]);
    assert!(!d.join("out/r.json").exists());
}

const RANDOM_PLAN: &str = r#"
seed = 11
[[attack]]
name = "pgd-random"
kind = "pgd"
eps = 0.2
step_size = 0.05
steps = 4
random_start = true
restarts = 2
target = "random"

[[attack]]
name = "square"
kind = "square"
eps = 0.2
queries = 40

[[attack]]
name = "spatial"
kind = "spatial"
mode = "random"

[[stress]]
name = "noise"
kind = "noise"
count = 30
"#;

#[test]
fn random_components_are_deterministic_across_runs_and_batch_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("random.toml"), RANDOM_PLAN).unwrap();
    for (name, batch) in [("a", "100"), ("b", "100"), ("c", "7")] {
        let r = xai(
            d,
            &[
                "run",
                &model(),
                "--plan",
                "random.toml",
                "--limit",
                "30",
                "--batch-size",
                batch,
                "--out",
                &format!("{name}.json"),
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let (a, ta) = without_timings(d, "a");
    let (b, tb) = without_timings(d, "b");
    let (mut c, tc) = without_timings(d, "c");
    assert_eq!(a, b, "two identical runs differ outside their timings");
    assert_eq!(ta, tb, "two identical runs wrote different sidecars");
    // Batch 7 vs 100: the same report once the batch size itself is set aside.
    c["plan"]["batch_size"] = a["plan"]["batch_size"].clone();
    assert_eq!(a, c, "the batch size changed the results");
    assert_eq!(ta, tc, "the batch size changed the sidecar");
    // The random components did something: not a vacuous comparison.
    let s = &a["summary"]["attacks"];
    assert!(
        s.as_array()
            .unwrap()
            .iter()
            .any(|x| x["successes"].as_u64().unwrap() > 0),
        "{s}"
    );
}

const ATTACKS_ONLY: &str = r#"
seed = 1
[[attack]]
name = "fgsm"
kind = "fgsm"
eps = 0.1

[[attack]]
name = "pgd"
kind = "pgd"
eps = 0.1
step_size = 0.025
steps = 10
"#;

/// Indices whose adversarial prediction under attack `k` is wrong, read
/// straight from a report's JSON.
fn broken(report: &Value, k: usize) -> Vec<u64> {
    report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["attacks"][k]["prediction"] != s["label"])
        .map(|s| s["index"].as_u64().unwrap())
        .collect()
}

#[test]
fn diff_lists_changes_flips_and_regressions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("p.toml"), ATTACKS_ONLY).unwrap();
    for (m, out) in [("mnist_cnn", "cnn.json"), ("mnist_mlp", "mlp.json")] {
        let model = root()
            .join(format!("assets/{m}.safetensors"))
            .display()
            .to_string();
        let r = xai(
            d,
            &[
                "run", &model, "--plan", "p.toml", "--limit", "120", "--out", out,
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let load = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(d.join(f)).unwrap()).unwrap()
    };
    let (cnn, mlp) = (load("cnn.json"), load("mlp.json"));

    // A report against itself: nothing changed.
    let same = xai(d, &["diff", "cnn.json", "cnn.json"]);
    assert_eq!(same.code, 0, "{}", same.stderr);
    assert!(same.stdout.contains("no regression"), "{}", same.stdout);
    assert!(same.stdout.contains("newly broken    0"), "{}", same.stdout);

    // The MLP is far less robust than the CNN: a regression, exit 1.
    let worse = xai(d, &["diff", "cnn.json", "mlp.json", "--json"]);
    assert_eq!(worse.code, 1, "{}", worse.stderr);
    let j: Value = serde_json::from_str(&worse.stdout).unwrap();
    assert_eq!(j["regression"], true);
    for (k, name) in ["fgsm", "pgd"].iter().enumerate() {
        let m = j["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == format!("robust_accuracy.{name}"))
            .unwrap();
        assert_eq!(m["old"], cnn["summary"]["attacks"][k]["robust_accuracy"]);
        assert_eq!(m["new"], mlp["summary"]["attacks"][k]["robust_accuracy"]);
        let (b_old, b_new) = (broken(&cnn, k), broken(&mlp, k));
        let newly: Vec<u64> = b_new
            .iter()
            .filter(|i| !b_old.contains(i))
            .copied()
            .collect();
        let healed: Vec<u64> = b_old
            .iter()
            .filter(|i| !b_new.contains(i))
            .copied()
            .collect();
        let f = j["flips"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == *name)
            .unwrap();
        assert_eq!(f["newly_broken"], serde_json::json!(newly), "{name}");
        assert_eq!(f["newly_robust"], serde_json::json!(healed), "{name}");
        assert!(!newly.is_empty(), "{name}: no flips, a vacuous check");
    }
    // The other way round is an improvement; a huge threshold forgives anything.
    assert_eq!(xai(d, &["diff", "mlp.json", "cnn.json"]).code, 0);
    assert_eq!(
        xai(d, &["diff", "cnn.json", "mlp.json", "--threshold", "100"]).code,
        0
    );
}

const SLOW_PLAN: &str = r#"
seed = 3
batch_size = 50
[[attack]]
name = "pgd"
kind = "pgd"
eps = 0.1
step_size = 0.01
steps = 40
random_start = true

[[attack]]
name = "square"
kind = "square"
eps = 0.1
queries = 100
"#;

/// Starts `run` on 1,000 digits and stops it with `signal` once the
/// checkpoint holds at least two batches; returns the exit status and stderr.
fn run_and_stop(
    d: &std::path::Path,
    out: &str,
    signal: &str,
) -> (std::process::ExitStatus, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xai-audit"))
        .args(["run", &model(), "--plan", "slow.toml", "--out", out])
        .current_dir(d)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let partial = d.join(format!("{out}.partial"));
    // Two records of 50 inputs × 2 attacks × 784 floats are over 600 kB.
    let started = std::time::Instant::now();
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) < 650_000 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be interrupted"
        );
        assert!(
            started.elapsed().as_secs() < 120,
            "no checkpoint after 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn killed_or_interrupted_runs_resume_to_the_uninterrupted_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("slow.toml"), SLOW_PLAN).unwrap();
    let full = xai(
        d,
        &["run", &model(), "--plan", "slow.toml", "--out", "full.json"],
    );
    assert_eq!(full.code, 0, "{}", full.stderr);
    let (want, want_tensors) = without_timings(d, "full");

    // SIGKILL: no chance to clean up; the checkpoint's last record may be torn.
    let (status, _) = run_and_stop(d, "killed.json", "-KILL");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(
        !d.join("killed.json").exists(),
        "a killed run left a report"
    );
    let resumed = xai(
        d,
        &[
            "run",
            &model(),
            "--plan",
            "slow.toml",
            "--out",
            "killed.json",
            "--resume",
        ],
    );
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        !d.join("killed.json.partial").exists(),
        "the checkpoint outlived the report"
    );
    let (got, got_tensors) = without_timings(d, "killed");
    assert_eq!(got, want, "resumed after SIGKILL: the report differs");
    assert_eq!(
        got_tensors, want_tensors,
        "resumed after SIGKILL: the sidecar differs"
    );

    // SIGINT (Ctrl-C): stops after the batch in hand, says how to resume.
    let (status, stderr) = run_and_stop(d, "stopped.json", "-INT");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped.json.partial") && stderr.contains("--resume"),
        "{stderr}"
    );
    assert!(!d.join("stopped.json").exists());
    let resumed = xai(
        d,
        &[
            "run",
            &model(),
            "--plan",
            "slow.toml",
            "--out",
            "stopped.json",
            "--resume",
        ],
    );
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let (got, got_tensors) = without_timings(d, "stopped");
    assert_eq!(got, want, "resumed after SIGINT: the report differs");
    assert_eq!(got_tensors, want_tensors);

    // A checkpoint of another job is refused rather than mixed in.
    let _ = run_and_stop(d, "other.json", "-KILL");
    xai(
        d,
        &[
            "run",
            &model(),
            "--plan",
            "slow.toml",
            "--out",
            "other.json",
            "--resume",
            "--seed",
            "4",
        ],
    )
    .expect_error(&["other.json.partial", "another job"]);
}

#[test]
fn shards_merge_into_the_single_run_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("random.toml"), RANDOM_PLAN).unwrap();
    let common = [
        "--plan",
        "random.toml",
        "--limit",
        "45",
        "--batch-size",
        "10",
    ];
    let single = xai(
        d,
        &[&["run", &model()][..], &common, &["--out", "single.json"]].concat(),
    );
    assert_eq!(single.code, 0, "{}", single.stderr);
    for k in ["1/3", "2/3", "3/3"] {
        let r = xai(
            d,
            &[
                &["run", &model()][..],
                &common,
                &["--out", "m.json", "--shard", k],
            ]
            .concat(),
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(!d.join("m.json").exists(), "a shard wrote a report");
    }
    let shards = [
        "m.json.shard-1-of-3",
        "m.json.shard-2-of-3",
        "m.json.shard-3-of-3",
    ];
    // Batches 0, 3 go to shard 1; 1, 4 to shard 2; 2 to shard 3.
    let missing = xai(
        d,
        &[
            &["merge", &model(), shards[0], shards[2]][..],
            &common,
            &["--out", "m.json"],
        ]
        .concat(),
    );
    missing.expect_error(&[
        "shard 2 of 3 is missing: expected m.json.shard-2-of-3",
        "--shard 2/3",
    ]);
    std::fs::copy(d.join(shards[0]), d.join("copy.shard-1-of-3")).unwrap();
    let twice = xai(
        d,
        &[
            &["merge", &model(), "copy.shard-1-of-3"][..],
            &shards,
            &common,
            &["--out", "m.json"],
        ]
        .concat(),
    );
    twice.expect_error(&["shard 1 of 3 is given twice: copy.shard-1-of-3 and m.json.shard-1-of-3"]);
    std::fs::remove_file(d.join("copy.shard-1-of-3")).unwrap();
    let other = xai(
        d,
        &[
            &["merge", &model()][..],
            &shards,
            &common,
            &["--seed", "12", "--out", "m.json"],
        ]
        .concat(),
    );
    other.expect_error(&[shards[0], "another job"]);
    let merged = xai(
        d,
        &[
            &["merge", &model()][..],
            &shards,
            &common,
            &["--out", "m.json"],
        ]
        .concat(),
    );
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    let (want, want_tensors) = without_timings(d, "single");
    let (got, got_tensors) = without_timings(d, "m");
    assert_eq!(got, want, "the merged report differs from the single run's");
    assert_eq!(got_tensors, want_tensors, "the merged sidecar differs");
    xai(d, &["run", &model(), "--shard", "4/3"]).expect_error(&["--shard", "between 1 and N"]);
}
