//! Our logits and input gradients against PyTorch's, on models exported from
//! PyTorch by `examples/export_pytorch.py` with reference outputs computed by
//! PyTorch itself (`tests/fixtures/*.ref.safetensors`, see its README).
//! `tiny_all_ops` uses every op, batch norm with real running statistics, and
//! inputs whose max-pool windows tie, so the gradient routing is checked too.
//! The shipped CNN and residual CNN are checked on 64 sample digits, and the
//! residual CNN's sample accuracy through `eval --engine reference` against
//! PyTorch's.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use xai_audit::model::load::SpecSource;
use xai_audit::model::{load_model, Classifier, Objective};

use super::fixture;

fn reference(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name), &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Per-sample cosine similarity between two gradient batches.
fn cosines(a: &Tensor, b: &Tensor) -> Vec<f64> {
    let a: Vec<Vec<f32>> = a.flatten_from(1).unwrap().to_vec2().unwrap();
    let b: Vec<Vec<f32>> = b.flatten_from(1).unwrap().to_vec2().unwrap();
    a.iter()
        .zip(&b)
        .map(|(u, v)| {
            let dot: f64 = u.iter().zip(v).map(|(x, y)| *x as f64 * *y as f64).sum();
            let nu: f64 = u.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let nv: f64 = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            if nu == 0.0 && nv == 0.0 {
                1.0
            } else {
                dot / (nu * nv)
            }
        })
        .collect()
}

fn check(model: &str, reference_file: &str) {
    let loaded = load_model(&fixture(model), None).unwrap();
    let net = &loaded.network;
    let r = reference(reference_file);
    let x = &r["x"];
    let labels: Vec<u32> = r["labels"]
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as u32)
        .collect();
    let logits = net.logits(x).unwrap();
    let d = max_abs_diff(&logits, &r["logits"]);
    assert!(d <= 1e-4, "{model}: logits differ from PyTorch by {d}");
    for (objective, key) in [
        (Objective::CrossEntropy(&labels), "grad_ce"),
        (Objective::Logit(&labels), "grad_logit"),
        (Objective::Margin(&labels), "grad_margin"),
    ] {
        let g = net.input_grad(x, objective).unwrap();
        let scale: f32 = r[key]
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        let d = max_abs_diff(&g.grad, &r[key]);
        assert!(
            d <= 1e-4 * scale.max(1.0),
            "{model} {key}: gradient differs from PyTorch by {d} (max |grad| {scale})"
        );
        for (i, c) in cosines(&g.grad, &r[key]).iter().enumerate() {
            assert!(
                *c >= 0.9999,
                "{model} {key}: sample {i} gradient cosine {c}"
            );
        }
    }
}

#[test]
fn every_op_with_batch_norm_residuals_and_max_pool_ties_matches_pytorch() {
    check("tiny_all_ops.safetensors", "tiny_all_ops.ref.safetensors");
}

#[test]
fn asymmetric_kernels_ceil_mode_and_global_pool_match_pytorch() {
    check("tiny_head.safetensors", "tiny_head.ref.safetensors");
    let loaded = load_model(&fixture("tiny_head.safetensors"), None).unwrap();
    assert_eq!(loaded.network.spec().class_names(), ["cat", "dog", "bird"]);
}

#[test]
fn half_precision_weights_are_promoted_to_f32() {
    check("tiny_f16.safetensors", "tiny_f16.ref.safetensors");
    check("tiny_bf16.safetensors", "tiny_bf16.ref.safetensors");
}

#[test]
fn mlp_matches_pytorch_and_metadata_wins_over_sidecar() {
    check("mlp.safetensors", "mlp.ref.safetensors");
    let loaded = load_model(&fixture("mlp.safetensors"), None).unwrap();
    assert_eq!(loaded.spec_source, SpecSource::Metadata);
    assert_eq!(loaded.network.spec().name.as_deref(), Some("mlp"));
}

#[test]
fn sidecar_is_used_when_metadata_has_no_spec() {
    let loaded = load_model(&fixture("mlp_nometa.safetensors"), None).unwrap();
    assert!(matches!(loaded.spec_source, SpecSource::Sidecar(_)));
    let r = reference("mlp.ref.safetensors");
    let d = max_abs_diff(&loaded.network.logits(&r["x"]).unwrap(), &r["logits"]);
    assert!(d <= 1e-4, "{d}");
}

#[test]
fn integer_running_counters_are_ignored_not_reported() {
    let loaded = load_model(&fixture("tiny_all_ops.safetensors"), None).unwrap();
    assert!(loaded
        .tensors
        .iter()
        .any(|t| t.name.ends_with("num_batches_tracked") && t.dtype == "I64"));
    assert!(loaded.unused.is_empty(), "{:?}", loaded.unused);
}

/// A shipped model's logits (within 1e-4) and input gradients for the three
/// objectives (per-digit cosine ≥ 0.9999) on the reference path, against
/// PyTorch's on the first 64 sample digits.
fn check_shipped(asset: &str, reference_file: &str) {
    let loaded = load_model(&super::root().join("assets").join(asset), None).unwrap();
    let r = reference(reference_file);
    let logits = loaded.network.logits(&r["x"]).unwrap();
    let d = max_abs_diff(&logits, &r["logits"]);
    assert!(d <= 1e-4, "{asset}: logits differ by {d}");
    let labels: Vec<u32> = r["labels"]
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as u32)
        .collect();
    for (objective, key) in [
        (Objective::CrossEntropy(&labels), "grad_ce"),
        (Objective::Logit(&labels), "grad_logit"),
        (Objective::Margin(&labels), "grad_margin"),
    ] {
        let g = loaded.network.input_grad(&r["x"], objective).unwrap();
        for (i, c) in cosines(&g.grad, &r[key]).iter().enumerate() {
            assert!(*c >= 0.9999, "{asset} digit {i}: {key} cosine {c}");
        }
    }
}

#[test]
fn shipped_cnn_matches_pytorch_on_sample_digits() {
    // Reference: `export_pytorch.py reference assets/mnist_cnn.safetensors --count 64`.
    check_shipped("mnist_cnn.safetensors", "mnist_cnn.ref.safetensors");
}

#[test]
fn shipped_resnet_matches_pytorch_on_sample_digits() {
    // Reference: `export_pytorch.py reference assets/mnist_resnet.safetensors --count 64`
    // (tests/fixtures/README.md). Batch norm, the projection shortcut, the
    // average pool and GELU all sit on the path from input to logits.
    check_shipped("mnist_resnet.safetensors", "mnist_resnet.ref.safetensors");
}

#[test]
fn shipped_resnet_reference_engine_has_pytorchs_sample_accuracy() {
    // PyTorch: 988 of the 1,000 sample digits (examples/train_resnet.py, assets/README.md).
    let run = super::xai(
        &super::root(),
        &[
            "eval",
            "assets/mnist_resnet.safetensors",
            "--engine",
            "reference",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.lines().any(|l| l == "clean accuracy 98.80%"),
        "{}",
        run.stdout
    );
}
