//! `xai-audit run` end to end on the shipped CNN and sample: the report's
//! numbers against the summary it printed, the report against
//! `reports/schema.json`, the schema against the Rust types, the tensor
//! sidecar, determinism, PNG export, and bad plans and outputs failing
//! cleanly without leaving a report behind.

use std::collections::HashMap;

use candle_core::Device;
use xai_audit::attack::Norm;
use xai_audit::report::io::{read_report, schema_json};
use xai_audit::report::types::{Report, SampleRecord};

use super::{root, xai};

fn model() -> String {
    root()
        .join("assets/mnist_cnn.safetensors")
        .display()
        .to_string()
}

fn plan(name: &str) -> String {
    root().join("attacks").join(name).display().to_string()
}

/// Parses the attack table's rows: name → (robust %, success %), the first
/// two figures ending in `%` (the ε column may hold spaces: `0.0314 (8/255)`).
fn printed_rows(stdout: &str) -> HashMap<String, (f64, f64)> {
    let mut rows = HashMap::new();
    let mut in_table = false;
    for line in stdout.lines() {
        if line.starts_with("attack ") && line.contains("robust acc") {
            in_table = true;
            continue;
        }
        if in_table {
            if line.starts_with("key:") {
                break;
            }
            let cols: Vec<&str> = line.split_whitespace().collect();
            let pct: Vec<f64> = cols
                .iter()
                .filter_map(|s| s.strip_suffix('%'))
                .map(|s| s.parse::<f64>().unwrap())
                .collect();
            rows.insert(cols[0].to_string(), (pct[0], pct[1]));
        }
    }
    rows
}

#[test]
fn quick_plan_report_matches_the_printed_summary_and_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let r = xai(
        dir.path(),
        &[
            "run",
            &model(),
            "--plan",
            &plan("quick.toml"),
            "--limit",
            "60",
            "--out",
            "out/quick.json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let path = dir.path().join("out/quick.json");
    let report = read_report(&path).unwrap();
    super::validate_against_schema(&path);
    assert_eq!(report.summary.count, 60);
    assert_eq!(report.samples.len(), 60);
    let clean_line = format!(
        "clean accuracy {:.2}%",
        100.0 * report.summary.clean_accuracy
    );
    assert!(
        r.stdout.contains(&clean_line),
        "{clean_line} not in\n{}",
        r.stdout
    );
    let rows = printed_rows(&r.stdout);
    let budgeted = report
        .summary
        .attacks
        .iter()
        .filter(|a| a.distance.is_none());
    assert_eq!(rows.len(), budgeted.count(), "{}", r.stdout);
    for a in &report.summary.attacks {
        let (robust, success) = rows[&a.name];
        assert!(
            (robust - 100.0 * a.robust_accuracy).abs() < 0.006,
            "{}: printed {robust}",
            a.name
        );
        assert!(
            (success - 100.0 * a.attack_success_rate).abs() < 0.006,
            "{}: printed {success}",
            a.name
        );
        // The summary is consistent with the per-sample records.
        let idx = report
            .plan
            .attacks
            .iter()
            .position(|p| p.name == a.name)
            .unwrap();
        let robust_count = report
            .samples
            .iter()
            .filter(|s| s.attacks[idx].prediction == s.label)
            .count();
        assert_eq!(robust_count as f64 / 60.0, a.robust_accuracy);
        assert!(a.robust_accuracy <= report.summary.clean_accuracy);
    }
    // The sidecar holds the clean inputs and one adversarial batch per attack.
    let tensors =
        candle_core::safetensors::load(dir.path().join("out/quick.safetensors"), &Device::Cpu)
            .unwrap();
    assert_eq!(report.tensors.as_deref(), Some("quick.safetensors"));
    assert_eq!(tensors["x/clean"].dims(), [60, 1, 28, 28]);
    for a in &report.plan.attacks {
        assert_eq!(
            tensors[&format!("x/adv/{}", a.name)].dims(),
            [60, 1, 28, 28]
        );
    }
}

#[test]
fn default_plan_report_validates_against_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let r = xai(dir.path(), &["run", &model(), "--limit", "8"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let path = dir.path().join("reports/mnist_cnn.json");
    super::validate_against_schema(&path);
    let report = read_report(&path).unwrap();
    summary_figures_match_the_samples(&report, &r.stdout);
    let kinds: Vec<(&str, String)> = report
        .summary
        .attacks
        .iter()
        .map(|a| (a.kind.as_str(), a.norm.to_string()))
        .collect();
    assert!(
        kinds.contains(&("fgsm", "linf".into()))
            && kinds.contains(&("pgd", "linf".into()))
            && kinds.contains(&("pgd", "l2".into()))
    );
}

/// The minimum-norm distances and the per-threat-model robust accuracies,
/// recomputed from the per-input records, and where the summary prints them.
fn summary_figures_match_the_samples(report: &Report, stdout: &str) {
    let correct: Vec<&SampleRecord> = report
        .samples
        .iter()
        .filter(|s| s.prediction == s.label)
        .collect();
    let mut minimum_norm = 0;
    for (j, a) in report.summary.attacks.iter().enumerate() {
        let Some(d) = &a.distance else {
            assert_ne!(a.kind, "fmn", "{a:?}");
            continue;
        };
        minimum_norm += 1;
        // Sorted distances, unbroken inputs last as +∞; numpy's linear rule.
        let mut v: Vec<f64> = correct
            .iter()
            .map(|s| {
                let sa = &s.attacks[j];
                match (sa.success, a.norm) {
                    (false, _) => f64::INFINITY,
                    (true, Norm::L2) => sa.perturbation_l2,
                    (true, Norm::Linf) => sa.perturbation_linf,
                    (true, Norm::L1) => sa.perturbation_l1.unwrap(),
                }
            })
            .collect();
        v.sort_by(f64::total_cmp);
        let q = |level: f64| {
            let pos = level * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            let x = v[lo] + (pos - lo as f64) * (v[hi] - v[lo]);
            x.is_finite().then_some(x)
        };
        assert_eq!(d.inputs, correct.len());
        assert_eq!(d.broken, v.iter().filter(|x| x.is_finite()).count());
        for (got, level) in [
            (d.percentile_25, 0.25),
            (d.median, 0.5),
            (d.percentile_75, 0.75),
        ] {
            match (got, q(level)) {
                (Some(g), Some(e)) => assert!((g - e).abs() < 1e-12, "{}: {g} vs {e}", a.name),
                (g, e) => assert_eq!(g, e, "{}", a.name),
            }
        }
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{} ", a.name)))
            .unwrap();
        assert!(
            row.contains(&format!("{} of {}", d.broken, d.inputs)),
            "{row}"
        );
        if let Some(m) = d.median {
            assert!(row.contains(&format!("{m:.4}")), "{row}");
        }
        assert!(
            !row.contains('%') || a.eps.is_some(),
            "no robust accuracy: {row}"
        );
    }
    assert!(
        minimum_norm > 0,
        "the default plan has a minimum-norm attack"
    );
    // Per threat model: robust only if clean-correct and every attack at
    // that norm and ε leaves the label.
    let mut expected: Vec<(Norm, f64, Vec<usize>)> = Vec::new();
    for (j, a) in report.summary.attacks.iter().enumerate() {
        let Some(eps) = a.eps else { continue };
        match expected
            .iter_mut()
            .find(|(n, e, _)| *n == a.norm && *e == eps)
        {
            Some(t) => t.2.push(j),
            None => expected.push((a.norm, eps, vec![j])),
        }
    }
    assert_eq!(report.summary.threat_models.len(), expected.len());
    for (t, (norm, eps, members)) in report.summary.threat_models.iter().zip(&expected) {
        assert_eq!((t.norm, t.eps), (*norm, *eps));
        let names: Vec<&str> = members
            .iter()
            .map(|&j| report.summary.attacks[j].name.as_str())
            .collect();
        assert_eq!(t.attacks, names);
        let robust = correct
            .iter()
            .filter(|s| members.iter().all(|&j| s.attacks[j].prediction == s.label))
            .count();
        assert_eq!(t.robust, robust, "{t:?}");
        let head = format!(
            "  {} ε {}: {:.2}% ({robust} of {})",
            norm.symbol(),
            eps,
            100.0 * t.robust_accuracy,
            report.summary.count
        );
        assert!(stdout.contains(&head), "{head} not in\n{stdout}");
    }
    // The MNIST model at the default plan's L∞ 0.3 meets AutoAttack's
    // MNIST threat model, but not its protocol.
    assert!(stdout.contains("  L∞ ε 0.3: "), "{stdout}");
    assert!(
        stdout.contains("    the standard threat model: AutoAttack's L∞ 0.3 for 1×28×28 greyscale (MNIST)\n    attacks FGSM, PGD only: not the AutoAttack standard protocol"),
        "{stdout}"
    );
    for key in [
        "key: robust acc    share of all ",
        "     success rate  share of the ",
    ] {
        assert!(stdout.contains(key), "{key} not in\n{stdout}");
    }
}

#[test]
fn schema_file_matches_the_rust_types() {
    let on_disk = std::fs::read_to_string(root().join("reports/schema.json")).unwrap();
    assert!(
        on_disk == schema_json(),
        "reports/schema.json is stale: regenerate with `cargo run --release -- schema > reports/schema.json`"
    );
}

#[test]
fn same_inputs_and_seed_give_the_same_report_apart_from_timings() {
    let dir = tempfile::tempdir().unwrap();
    for out in ["a.json", "b.json"] {
        let r = xai(
            dir.path(),
            &[
                "run",
                &model(),
                "--plan",
                &plan("quick.toml"),
                "--limit",
                "20",
                "--seed",
                "3",
                "--out",
                out,
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let mut a = read_report(&dir.path().join("a.json")).unwrap();
    let mut b = read_report(&dir.path().join("b.json")).unwrap();
    assert_eq!(a.plan.seed, 3);
    b.timings = a.timings.clone();
    a.tensors = None;
    b.tensors = None;
    assert_eq!(a, b);
    let ta = std::fs::read(dir.path().join("a.safetensors")).unwrap();
    let tb = std::fs::read(dir.path().join("b.safetensors")).unwrap();
    assert_eq!(ta, tb, "tensor sidecars differ");
}

#[test]
fn save_images_writes_clean_adversarial_and_perturbation_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let r = xai(
        dir.path(),
        &[
            "run",
            &model(),
            "--plan",
            &plan("quick.toml"),
            "--limit",
            "2",
            "--save-images",
            "png",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for name in [
        "00000_clean.png",
        "00001_pgd-linf-0.1_adv.png",
        "00001_pgd-linf-0.1_delta.png",
    ] {
        let img = image::open(dir.path().join("png").join(name)).unwrap();
        assert_eq!((img.width(), img.height()), (28, 28), "{name}");
    }
    // Attribution heatmaps (`_attr_`) are counted by the attribution tests.
    let pngs = std::fs::read_dir(dir.path().join("png"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("_attr_")
        })
        .count();
    assert_eq!(pngs, 2 * (1 + 2 * 3));
}

#[test]
fn bad_plans_fail_before_any_work_and_leave_no_report() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("kind.toml", "[[attack]]\nname = \"a\"\nkind = \"carlini\"\neps = 0.1\n", "`kind`"),
        ("key.toml", "[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = 0.1\nstep = 0.1\n", "`step`"),
        ("eps.toml", "[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = -1.0\n", "`eps`"),
        ("nan.toml", "[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = nan\n", "`eps`"),
        ("steps.toml", "[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = 0.1\nsteps = 0\n", "`steps`"),
        ("dup.toml", "[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.1\n[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.2\n", "twice"),
        ("target.toml", "[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = 0.1\ntarget = 10\n", "`target` class 10"),
    ];
    for (file, text, needle) in cases {
        std::fs::write(dir.path().join(file), text).unwrap();
        xai(
            dir.path(),
            &["run", &model(), "--plan", file, "--out", "r.json"],
        )
        .expect_error(&[file, needle]);
        assert!(!dir.path().join("r.json").exists(), "{file} left a report");
    }
}

#[test]
fn unwritable_output_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "not a directory").unwrap();
    xai(
        dir.path(),
        &[
            "run",
            &model(),
            "--plan",
            &plan("quick.toml"),
            "--limit",
            "2",
            "--out",
            "file/r.json",
        ],
    )
    .expect_error(&["file"]);
    xai(
        dir.path(),
        &["run", &model(), "--limit", "2", "--out", "r.txt"],
    )
    .expect_error(&["r.txt", ".json"]);
}

/// Issue 14: a typo in a plan gets the nearest known word.
#[test]
fn plan_typos_suggest_the_nearest_known_word() {
    let cases = [
        (
            "[[attack]]\nname = \"p\"\nkind = \"pgd\"\neps = 0.1\nstpes = 10\n",
            "`stpes` is not a known key for this kind (known: name, kind, norm, eps, target, steps, step_size, random_start, restarts, quantile, eot_samples); did you mean `steps`?",
        ),
        (
            "[[attack]]\nname = \"p\"\nkind = \"pgdd\"\neps = 0.1\n",
            "did you mean `pgd`?",
        ),
        (
            "[[attack]]\nname = \"p\"\nkind = \"pgd\"\nnorm = \"l22\"\neps = 0.1\n",
            "`norm`",
        ),
        (
            "[[attribution]]\nname = \"s\"\nmethod = \"salency\"\n",
            "did you mean `saliency`?",
        ),
        (
            "[[attribution]]\nname = \"s\"\nmethod = \"smoothgrad\"\nstdv = 0.1\n",
            "did you mean `stdev`?",
        ),
        (
            "[[stress]]\nname = \"c\"\nkind = \"calibraton\"\n",
            "did you mean `calibration`?",
        ),
    ];
    for (text, needle) in cases {
        let err = xai_audit::plan::Plan::from_toml(text, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle) && err.contains("p.toml"), "{err}");
    }
}
