//! The new user's first hour, end to end through the real binary: a
//! 3×32×32, 4-class PyTorch model with a skip connection written in
//! `forward`, exported by the bridge (`tests/fixtures/new_user`, made by
//! `examples/new_user_fixture.py`), audited on a folder with one subfolder
//! per class and `--limit 40`, with no plan: the `cifar` preset must be
//! chosen and said so, the summary must place its figures against the
//! standard threat model and carry its column key, and the whole summary is
//! compared with a golden file (timings and paths masked).
//!
//! Regenerate the golden after an intended change with
//! `XAI_BLESS=1 cargo test --release --test tests -- it::new_user` and
//! review the diff.

use super::{fixture, validate_against_schema, xai};

/// The summary with what differs between machines and runs masked: the
/// temporary folder, and seconds in square brackets.
fn normalized(stdout: &str, dir: &std::path::Path) -> String {
    let text = stdout.replace(&dir.display().to_string(), "<tmp>");
    let root = super::root().display().to_string();
    let text = text.replace(&root, "<repo>");
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        // "[0.3 s]" → "[… s]"
        while let Some(start) = l.find('[') {
            let Some(len) = l[start..].find(" s]") else {
                break;
            };
            let inner = &l[start + 1..start + len];
            if inner.parse::<f64>().is_err() {
                break;
            }
            l.replace_range(start..start + len + 3, "[… s]");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn a_new_users_model_gets_the_cifar_preset_a_threat_model_headline_and_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("new_user/model.safetensors");
    let images = fixture("new_user/images");
    let run = xai(
        dir.path(),
        &[
            "run",
            model.to_str().unwrap(),
            "--data",
            images.to_str().unwrap(),
            "--limit",
            "40",
            "--out",
            "report.json",
        ],
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let report_path = dir.path().join("report.json");
    validate_against_schema(&report_path);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(
        report["plan_origin"]["preset"], "cifar",
        "{}",
        report["plan_origin"]
    );
    assert!(
        report["plan_origin"]["reason"]
            .as_str()
            .unwrap()
            .contains("3×32×32"),
        "{}",
        report["plan_origin"]
    );
    assert_eq!(report["samples"].as_array().unwrap().len(), 40);
    assert_eq!(
        report["model"]["class_names"],
        serde_json::json!(["bird", "cat", "dog", "frog"])
    );
    let text = normalized(&run.stdout, dir.path());
    for needle in ["cifar", "8/255", "RobustBench"] {
        assert!(
            text.contains(needle),
            "the summary lacks {needle:?}:\n{text}"
        );
    }
    let golden = fixture("new_user/summary.golden.txt");
    if std::env::var_os("XAI_BLESS").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    let want = std::fs::read_to_string(&golden)
        .expect("the golden summary exists (XAI_BLESS=1 writes it)");
    if text != want {
        let first = text
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(text.lines().count().min(want.lines().count()));
        panic!(
            "the summary differs from {} from line {}:\n--- got\n{text}\n--- golden\n{want}",
            golden.display(),
            first + 1
        );
    }
}
