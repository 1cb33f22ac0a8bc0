//! The faithfulness metrics ROAD, infidelity and faithfulness correlation:
//! against independent references (`tests/fixtures/captum/faithfulness.safetensors`,
//! written by `examples/compare_faithfulness.py`; see tests/fixtures/README.md)
//! and through an audit.
//!
//! - ROAD's linear imputation (noise 0) against the same system built with
//!   scipy.sparse and solved by `spsolve` on 4 shipped digits with 10% to
//!   90% of their pixels removed: equal to 1e-6 (measured 3.1e-8: our
//!   conjugate gradients stop at a relative residual of 1e-10, and the
//!   values are rounded to f32).
//! - Infidelity against Captum 0.9's `infidelity` on 32 digits for the
//!   shipped CNN and residual model, with Captum's saliency maps and the
//!   fixture's perturbations replayed, `normalize` off and on: relative
//!   error ≤ 1e-4 (measured at most 7.8e-6; float32 forward passes in torch
//!   and here).
//! - The three metrics in a report: deterministic given the seed, the same
//!   at batch sizes 100 and 7, summarized, and valid against the schema.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use xai_audit::attribution::faithfulness::infidelity_with;
use xai_audit::attribution::road::impute;
use xai_audit::model::load_model;
use xai_audit::report::io::read_report;

use super::{fixture, root, xai};

fn load() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("captum/faithfulness.safetensors"), &Device::Cpu)
        .unwrap()
}

fn pixels(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap()
        .iter()
        .map(|&p| p as f32 / 255.0)
        .collect()
}

#[test]
fn road_imputation_equals_scipys_solution_of_the_same_system() {
    let t = load();
    let x = pixels(&t["road/x_u8"]);
    let masks: Vec<u8> = t["road/masks"].flatten_all().unwrap().to_vec1().unwrap();
    let reference: Vec<f64> = t["road/imputed"].flatten_all().unwrap().to_vec1().unwrap();
    let hw = 28 * 28;
    let n = x.len() / hw;
    let mut worst = 0f64;
    for i in 0..n {
        let removed: Vec<bool> = masks[i * hw..(i + 1) * hw]
            .iter()
            .map(|&m| m == 1)
            .collect();
        let ours = impute(&x[i * hw..(i + 1) * hw], 1, 28, 28, &removed);
        for (p, (a, b)) in ours
            .iter()
            .zip(&reference[i * hw..(i + 1) * hw])
            .enumerate()
        {
            let diff = (*a as f64 - b).abs();
            if !removed[p] {
                assert_eq!(*a, x[i * hw + p], "a kept pixel changed");
            }
            worst = worst.max(diff);
        }
    }
    eprintln!("ROAD imputation vs scipy spsolve: max abs difference {worst:.2e} ({n} digits)");
    assert!(worst <= 1e-6, "{worst:e}");
}

#[test]
fn infidelity_with_the_fixtures_perturbations_equals_captum() {
    let t = load();
    let x = pixels(&t["infidelity/x_u8"]);
    let labels: Vec<u32> = t["infidelity/labels"]
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&l| l as u32)
        .collect();
    let n = labels.len();
    // I = 0.1 · (q − 128) / 32 in float32, as the script computes it.
    let perturbations: Vec<f32> = t["infidelity/perturbations_u8"]
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap()
        .iter()
        .map(|&q| 0.1f32 * (q as f32 - 128.0) / 32.0)
        .collect();
    for stem in ["mnist_cnn", "mnist_resnet"] {
        let net = load_model(&root().join(format!("assets/{stem}.safetensors")), None)
            .unwrap()
            .network;
        let maps: Vec<f32> = t[&format!("{stem}/saliency")]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (normalize, key) in [(false, "infidelity"), (true, "infidelity_normalized")] {
            let theirs: Vec<f64> = t[&format!("{stem}/{key}")].to_vec1().unwrap();
            let ours = infidelity_with(
                &net,
                &x,
                [n, 1, 28, 28],
                &labels,
                &maps,
                &perturbations,
                normalize,
            )
            .unwrap();
            let worst = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs() / b.abs())
                .fold(0f64, f64::max);
            eprintln!("{stem} {key} vs captum 0.9: max relative error {worst:.2e} ({n} digits)");
            assert!(worst <= 1e-4, "{stem} {key}: {worst:e}");
        }
    }
}

const PLAN: &str = r#"
seed = 5

[[attack]]
name = "fgsm"
kind = "fgsm"
eps = 0.1

[[attribution]]
name = "sal"
method = "saliency"
on = ["fgsm"]
metrics = ["road", "infidelity", "faithfulness_correlation"]
road_fractions = [0.2, 0.5, 0.8]
infidelity_samples = 4
correlation_runs = 12
"#;

#[test]
fn faithfulness_metrics_are_seeded_batch_independent_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), PLAN).unwrap();
    let model = root().join("assets/mnist_cnn.safetensors");
    let model = model.to_str().unwrap();
    let run = |out: &str, batch: &str| {
        let r = xai(
            dir.path(),
            &[
                "run",
                model,
                "--plan",
                "p.toml",
                "--limit",
                "12",
                "--out",
                out,
                "--batch-size",
                batch,
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        r
    };
    let a = run("a/r.json", "100");
    let again = run("c/r.json", "100");
    run("b/r.json", "7");
    assert!(a.stdout.contains("ROAD MoRF"), "{}", a.stdout);
    let ra = read_report(&dir.path().join("a/r.json")).unwrap();
    let rb = read_report(&dir.path().join("b/r.json")).unwrap();
    let rc = read_report(&dir.path().join("c/r.json")).unwrap();
    assert_eq!(ra.samples, rc.samples, "{}", again.stderr);
    let close = |u: Option<f64>, v: Option<f64>, tol: f64, what: &str| match (u, v) {
        (Some(u), Some(v)) => assert!(
            (u - v).abs() <= tol * u.abs().max(1.0),
            "{what}: {u} vs {v}"
        ),
        (u, v) => assert_eq!(u, v, "{what}"),
    };
    for (sa, sb) in ra.samples.iter().zip(&rb.samples) {
        let (x, y) = (&sa.attributions[0], &sb.attributions[0]);
        let mut pairs = vec![(&x.clean, &y.clean)];
        pairs.extend(
            x.attacks
                .iter()
                .zip(&y.attacks)
                .map(|(u, v)| (&u.map, &v.map)),
        );
        for (u, v) in pairs {
            let what = format!("input {}", sa.index);
            assert!(
                u.road_morf_auc.is_some() && u.infidelity.is_some(),
                "{what}"
            );
            close(u.road_morf_auc, v.road_morf_auc, 1e-5, &what);
            close(u.road_lerf_auc, v.road_lerf_auc, 1e-5, &what);
            close(u.road_gap, v.road_gap, 1e-5, &what);
            close(u.infidelity, v.infidelity, 1e-4, &what);
            close(
                u.faithfulness_correlation,
                v.faithfulness_correlation,
                1e-4,
                &what,
            );
        }
    }
    let summary = &ra.summary.attributions[0].clean;
    assert_eq!(summary.mean_road_morf_curve.as_ref().unwrap().len(), 3);
    assert_eq!(summary.road_morf_kept.as_ref().unwrap().len(), 3);
    let gap = summary.mean_road_gap.unwrap();
    assert!(
        (gap - (summary.mean_road_lerf_auc.unwrap() - summary.mean_road_morf_auc.unwrap())).abs()
            < 1e-9
    );
    // Saliency is better than chance on the CNN: a positive gap and a
    // positive correlation on average.
    assert!(gap > 0.0, "ROAD gap {gap}");
    assert!(summary.mean_faithfulness_correlation.unwrap() > 0.0);
    super::validate_against_schema(&dir.path().join("a/r.json"));
    let tensors =
        xai_audit::report::tensors::read_tensors(&dir.path().join("a/r.safetensors")).unwrap();
    for kind in ["road_morf", "road_lerf"] {
        let t = &tensors[&format!("attr_curve/sal/clean/{kind}")];
        assert_eq!(t.dims(), [12, 3]);
    }
}
