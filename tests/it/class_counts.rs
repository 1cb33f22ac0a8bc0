//! Class-count rules, the second kind of issue 13: losses and caps that
//! depend on how many classes a model has. Each case runs the real binary on
//! a real model with few classes — the shipped CNN with its output layer cut
//! to the first k digits, on the shipped digits of those classes — through
//! every attack kind, and each entry either runs honestly or is refused by
//! name. Before the fix, APGD with the DLR loss on a 2-class model reported
//! 95% robust where APGD-CE found 60%, and APGD-T asked for 9 targets on a
//! 4-class model silently used 3.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;

use super::{root, xai};

/// Inputs per run.
const N: usize = 30;

/// The shipped CNN cut to its first `k` outputs, saved as `cnn{k}.safetensors`,
/// and the shipped digits of classes below `k` as an IDX pair `d{k}-…`.
fn k_class_model_and_data(dir: &Path, k: usize) -> (String, String) {
    let cnn = root().join("assets/mnist_cnn.safetensors");
    let net = xai_audit::model::load_model(&cnn, None).unwrap().network;
    let mut spec = serde_json::to_value(net.spec()).unwrap();
    let layers = spec["layers"].as_array_mut().unwrap();
    let last = layers.last_mut().unwrap();
    let param = last["param"].as_str().unwrap().to_string();
    last["out_features"] = Value::from(k);
    spec["classes"] = (0..k).map(|c| Value::from(c.to_string())).collect();
    let spec = xai_audit::model::ArchSpec::from_json(&spec.to_string(), "test").unwrap();
    let bytes = std::fs::read(&cnn).unwrap();
    let tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
    let mut out: Vec<(String, Tensor)> = Vec::new();
    for (name, t) in tensors {
        let t = if name.starts_with(&format!("{param}.")) {
            t.narrow(0, 0, k).unwrap()
        } else {
            t
        };
        out.push((name, t));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let model = format!("cnn{k}.safetensors");
    xai_audit::model::save_model(&dir.join(&model), &spec, &out).unwrap();

    let data = xai_audit::data::shipped_sample(&Default::default()).unwrap();
    let keep: Vec<usize> = (0..data.len())
        .filter(|&i| (data.labels[i] as usize) < k)
        .take(N)
        .collect();
    let pixels: Vec<u8> = keep
        .iter()
        .flat_map(|&i| data.item(i).iter().map(|p| (p * 255.0).round() as u8))
        .collect();
    let labels: Vec<u8> = keep.iter().map(|&i| data.labels[i] as u8).collect();
    let stem = format!("d{k}");
    xai_audit::data::write_idx_images(
        &dir.join(format!("{stem}-images-idx3-ubyte")),
        keep.len(),
        28,
        28,
        &pixels,
        false,
    )
    .unwrap();
    xai_audit::data::write_idx_labels(
        &dir.join(format!("{stem}-labels-idx1-ubyte")),
        &labels,
        false,
    )
    .unwrap();
    (model, format!("{stem}-images-idx3-ubyte"))
}

/// Every attack kind, with budgets that keep the run short; none uses DLR.
const EVERY_KIND: &str = r#"
[[attack]]
name = "fgsm"
kind = "fgsm"
eps = 0.1

[[attack]]
name = "pgd"
kind = "pgd"
eps = 0.1
steps = 20

[[attack]]
name = "pgd-random-target"
kind = "pgd"
eps = 0.3
steps = 20
target = "random"

[[attack]]
name = "apgd-ce"
kind = "apgd"
eps = 0.1
steps = 20

[[attack]]
name = "apgd-t-ce"
kind = "apgd"
eps = 0.1
steps = 20
target_classes = 9

[[attack]]
name = "square"
kind = "square"
eps = 0.1
queries = 200

[[attack]]
name = "spatial"
kind = "spatial"
mode = "random"
samples = 5

[[attack]]
name = "fmn-l2"
kind = "fmn"
norm = "l2"
steps = 30

[[attack]]
name = "fmn-linf"
kind = "fmn"
steps = 30
refine = 2

[[attack]]
name = "ensemble"
kind = "ensemble"
members = ["pgd", "apgd-ce", "square"]

[[attack]]
name = "autoattack"
kind = "autoattack"
eps = 0.1
"#;

fn run(dir: &Path, model: &str, data: &str, plan: &str) -> super::Run {
    std::fs::write(dir.join("p.toml"), plan).unwrap();
    xai(
        dir,
        &[
            "run", model, "--data", data, "--plan", "p.toml", "--out", "r.json",
        ],
    )
}

fn attack<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["summary"]["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no attack {name}"))
}

#[test]
fn every_attack_kind_runs_honestly_on_two_three_and_four_classes() {
    for k in [2usize, 3, 4] {
        let dir = tempfile::tempdir().unwrap();
        let (model, data) = k_class_model_and_data(dir.path(), k);
        let r = run(dir.path(), &model, &data, EVERY_KIND);
        assert_eq!(r.code, 0, "{k} classes: {}", r.stderr);
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap())
                .unwrap();
        let s = &report["summary"];
        let clean = s["clean_accuracy"].as_f64().unwrap();
        assert!(
            clean > 0.9,
            "{k} classes: the cut CNN still knows its digits ({clean})"
        );
        let robust = |name: &str| attack(&report, name)["robust_accuracy"].as_f64().unwrap();
        for a in s["attacks"].as_array().unwrap() {
            let ra = a["robust_accuracy"].as_f64().unwrap();
            assert!(
                ra <= clean,
                "{k} classes: {} robust {ra} > clean {clean}",
                a["name"]
            );
            // Every prediction names one of the model's classes.
            let j = s["attacks"]
                .as_array()
                .unwrap()
                .iter()
                .position(|b| b == a)
                .unwrap();
            for sample in report["samples"].as_array().unwrap() {
                let p = sample["attacks"][j]["prediction"].as_u64().unwrap();
                assert!(
                    (p as usize) < k,
                    "{k} classes: {} predicts class {p}",
                    a["name"]
                );
                assert!(sample["attacks"][j]["top5"].as_array().unwrap().len() == k.min(5));
            }
        }
        // The composite attacks are at least as strong as their parts.
        for part in ["pgd", "apgd-ce", "square"] {
            assert!(
                robust("ensemble") <= robust(part),
                "{k} classes: ensemble vs {part}"
            );
        }
        assert!(robust("autoattack") <= robust("apgd-ce") + 1.01 / N as f64);
        let warnings: Vec<&str> = report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        let has = |needle: &str| warnings.iter().any(|w| w.contains(needle));
        // APGD-T asked for 9 targets attacks the k − 1 there are, and says so.
        assert!(
            has(&format!(
                "apgd-t-ce: `target_classes` = 9, but the model has only {} other classes",
                k - 1
            )),
            "{k} classes: {warnings:?}"
        );
        // AutoAttack's APGD-T needs targeted DLR's 4 classes: replaced, said.
        assert_eq!(
            has("autoattack: autoattack/apgd-t uses the targeted DLR loss, which needs at least 4 classes"),
            k < 4,
            "{k} classes: {warnings:?}"
        );
        assert!(has(&format!(
            "the model has {k} classes: each input's top-5 list holds all {k}"
        )));
        let aa_members = report["plan"]["attacks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "autoattack")
            .unwrap()["members"]
            .clone();
        let t_loss = aa_members
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "autoattack/apgd-t")
            .unwrap()["loss"]
            .clone();
        assert_eq!(t_loss, if k < 4 { "ce" } else { "dlr" }, "{k} classes");
    }
}

#[test]
fn dlr_below_its_class_count_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (m2, d2) = k_class_model_and_data(dir.path(), 2);
    let (m3, d3) = k_class_model_and_data(dir.path(), 3);
    let (m4, d4) = k_class_model_and_data(dir.path(), 4);
    let dlr =
        "[[attack]]\nname = \"apgd-dlr\"\nkind = \"apgd\"\neps = 0.1\nsteps = 5\nloss = \"dlr\"\n";
    let dlr_t = "[[attack]]\nname = \"apgd-t-dlr\"\nkind = \"apgd\"\neps = 0.1\nsteps = 5\nloss = \"dlr\"\ntarget_classes = 2\n";
    // Issue 13, case 1: DLR on 2 classes reported 95% robust against CE's 60%.
    run(dir.path(), &m2, &d2, dlr).expect_error(&[
        "p.toml",
        "attack[0] \"apgd-dlr\"",
        "`loss` \"dlr\" needs at least 3 classes",
        "the model has 2",
        "loss = \"ce\"",
    ]);
    run(dir.path(), &m3, &d3, dlr_t).expect_error(&[
        "attack[0] \"apgd-t-dlr\"",
        "needs at least 4 classes",
        "the model has 3",
    ]);
    assert!(
        !dir.path().join("r.json").exists(),
        "no report after a refusal"
    );
    // At their class counts both run.
    let r = run(dir.path(), &m3, &d3, dlr);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(dir.path(), &m4, &d4, dlr_t);
    assert_eq!(r.code, 0, "{}", r.stderr);
}
