//! ONNX models exported from PyTorch by `examples/onnx_fixtures.py` (both
//! exporters, one model per pattern the importer maps; see
//! `tests/fixtures/onnx/README.md`) against PyTorch's logits and input
//! gradients and onnxruntime's logits, on the reference and on the fast
//! engine; `convert` of an imported graph; and the softmax-output flag.
//! The bad files (unsupported op, dynamic size, two outputs, truncated) are
//! in the battery.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use xai_audit::engine::{select, Engine};
use xai_audit::model::{load_model, Classifier, Objective};

use super::cli::npy_bytes;
use super::{fixture, root, xai};

/// Every fixture model with a reference beside it.
fn models() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixture("onnx"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .filter(|p| reference_path(p).exists())
        .collect();
    v.sort();
    v
}

fn reference_path(model: &std::path::Path) -> PathBuf {
    let mut name = model.file_name().unwrap().to_os_string();
    name.push(".ref.safetensors");
    model.with_file_name(name)
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    max_abs(&(a - b).unwrap())
}

fn cosines(a: &Tensor, b: &Tensor) -> Vec<f64> {
    let a: Vec<Vec<f32>> = a.flatten_from(1).unwrap().to_vec2().unwrap();
    let b: Vec<Vec<f32>> = b.flatten_from(1).unwrap().to_vec2().unwrap();
    a.iter()
        .zip(&b)
        .map(|(u, v)| {
            let dot: f64 = u.iter().zip(v).map(|(x, y)| *x as f64 * *y as f64).sum();
            let nu = u.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let nv = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            if nu == 0.0 && nv == 0.0 {
                1.0
            } else {
                dot / (nu * nv)
            }
        })
        .collect()
}

/// What differs from the references for one model under one engine.
fn check(model: &std::path::Path, engine: Engine) -> Vec<String> {
    let name = format!(
        "{} ({engine:?})",
        model.file_name().unwrap().to_string_lossy()
    );
    let mut problems = Vec::new();
    let loaded = match load_model(model, None) {
        Ok(l) => l,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    let selected = select(&loaded.network, engine).unwrap();
    if let Some(why) = &selected.fallback {
        problems.push(format!("{name}: fell back: {why}"));
    }
    let net = selected.classifier;
    let r: HashMap<String, Tensor> =
        candle_core::safetensors::load(reference_path(model), &Device::Cpu).unwrap();
    let x = &r["x"];
    let labels: Vec<u32> = r["labels"]
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as u32)
        .collect();
    let logits = net.logits(x).unwrap();
    for key in ["logits", "logits_ort"] {
        let rel = max_abs_diff(&logits, &r[key]) / max_abs(&r[key]).max(1e-12);
        if rel > 1e-4 {
            problems.push(format!(
                "{name}: logits differ from {key} by {rel:e} relative"
            ));
        }
    }
    for (objective, key) in [
        (Objective::CrossEntropy(&labels), "grad_ce"),
        (Objective::Logit(&labels), "grad_logit"),
        (Objective::Margin(&labels), "grad_margin"),
    ] {
        let g = net.input_grad(x, objective).unwrap();
        let scale = max_abs(&r[key]);
        let d = max_abs_diff(&g.grad, &r[key]);
        if d > 1e-4 * scale.max(1.0) {
            problems.push(format!("{name} {key}: differs by {d} (max |grad| {scale})"));
        }
        for (i, c) in cosines(&g.grad, &r[key]).iter().enumerate() {
            if *c < 0.9999 {
                problems.push(format!("{name} {key}: sample {i} cosine {c}"));
            }
        }
    }
    problems
}

#[test]
fn every_exported_pattern_matches_pytorch_and_onnxruntime() {
    let models = models();
    assert!(models.len() >= 25, "{} fixture models", models.len());
    let problems: Vec<String> = models
        .iter()
        .flat_map(|m| {
            let mut p = check(m, Engine::Reference);
            p.extend(check(m, Engine::Auto));
            p
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// An imported graph converted to safetensors computes the same function.
#[test]
fn convert_writes_an_imported_graph_with_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("concat.safetensors");
    let model = fixture("onnx/concat.dynamo.onnx");
    let r = xai(
        &root(),
        &[
            "convert",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let a = load_model(&model, None).unwrap();
    let b = load_model(&out, None).unwrap();
    assert_eq!(a.network.spec().nodes, b.network.spec().nodes);
    assert!(b.unused.is_empty(), "{:?}", b.unused);
    let x =
        candle_core::safetensors::load(reference_path(&model), &Device::Cpu).unwrap()["x"].clone();
    let d = max_abs_diff(
        &a.network.logits(&x).unwrap(),
        &b.network.logits(&x).unwrap(),
    );
    assert_eq!(d, 0.0);
}

/// Sub/Div by constants on the input become the model's mean and std, so
/// ε stays in input units.
#[test]
fn input_normalization_is_recognized() {
    for file in ["onnx/normalize.opset13.onnx", "onnx/normalize.dynamo.onnx"] {
        let loaded = load_model(&fixture(file), None).unwrap();
        let input = &loaded.network.spec().input;
        let mean = input.mean.as_ref().expect("mean recognized");
        let std = input.std.as_ref().expect("std recognized");
        for (got, want) in mean.iter().zip([0.485f32, 0.456, 0.406]) {
            assert!((got - want).abs() < 1e-6, "{file}: mean {mean:?}");
        }
        for (got, want) in std.iter().zip([0.229f32, 0.224, 0.225]) {
            assert!((got - want).abs() < 1e-6, "{file}: std {std:?}");
        }
    }
}

/// A model that ends in softmax loads, and the audit says it outputs
/// probabilities.
#[test]
fn a_softmax_output_raises_the_sanity_flag() {
    let dir = tempfile::tempdir().unwrap();
    let r: HashMap<String, Tensor> = candle_core::safetensors::load(
        fixture("onnx/softmax.opset17.onnx.ref.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let x = &r["x"];
    let dims = x.dims().to_vec();
    let values: Vec<u8> = x
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let labels: Vec<u8> = (0..dims[0] as i64)
        .flat_map(|_| 0i64.to_le_bytes())
        .collect();
    std::fs::write(dir.path().join("x.npy"), npy_bytes("<f4", &dims, &values)).unwrap();
    std::fs::write(
        dir.path().join("y.npy"),
        npy_bytes("<i8", &dims[..1], &labels),
    )
    .unwrap();
    let model = fixture("onnx/softmax.opset17.onnx");
    let r = xai(
        dir.path(),
        &[
            "run",
            model.to_str().unwrap(),
            "--data",
            "x.npy",
            "--labels",
            "y.npy",
            "--plan",
            root().join("attacks/quick.toml").to_str().unwrap(),
            "--out",
            "r.json",
        ],
    );
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let report = std::fs::read_to_string(dir.path().join("r.json")).unwrap();
    assert!(report.contains("softmax_outputs"), "{report}");
}
