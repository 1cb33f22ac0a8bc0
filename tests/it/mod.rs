//! Integration test modules and their shared helpers.

mod attacks;
mod attributions;
mod autoattack;
mod battery;
mod binary;
mod class_counts;
mod cli;
mod distributed;
mod engine;
mod engine_graphs;
mod fab;
mod faithfulness;
mod fuzz_regressions;
mod gradients;
mod honest_data;
mod html;
mod html_diff;
mod layering;
mod lrp;
mod minimum_norm;
mod new_user;
mod new_user_bridge;
mod no_flags;
mod onnx;
mod pipelines;
mod plan_schema;
mod pytorch_parity;
mod randomized;
mod range_invariance;
mod references;
mod run;
mod sanity_checks;
mod shap;
mod square;
mod stress;
mod strong;
mod summary;
mod tui;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// The result of running the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `xai-audit` with `args` in `dir`.
pub fn xai(dir: &Path, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_xai-audit"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

impl Run {
    /// Asserts a clean error: exit code 2, no panic, and `needles` in stderr.
    pub fn expect_error(&self, needles: &[&str]) {
        assert_eq!(
            self.code, 2,
            "expected exit code 2; stderr:\n{}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "panic:\n{}", self.stderr);
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr lacks {n:?}:\n{}",
                self.stderr
            );
        }
    }
}

/// The report with its timing fields removed, and the sidecar's bytes.
pub fn without_timings(dir: &Path, name: &str) -> (serde_json::Value, Vec<u8>) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    let obj = v.as_object_mut().unwrap();
    assert!(obj.remove("timings").is_some());
    obj.remove("tensors");
    (
        v,
        std::fs::read(dir.join(format!("{name}.safetensors"))).unwrap(),
    )
}

/// Asserts that a report file validates against `reports/schema.json`.
pub fn validate_against_schema(report_path: &Path) {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("reports/schema.json")).unwrap())
            .unwrap();
    let instance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .take(5)
        .collect();
    assert!(errors.is_empty(), "report does not validate: {errors:?}");
}
