//! Compares our logits and input gradients on an ONNX model with PyTorch's and
//! onnxruntime's, from a reference file written by `examples/onnx_fixtures.py`
//! or `examples/onnx_zoo.py`:
//!
//! ```text
//! python examples/onnx_zoo.py target/onnx-zoo
//! cargo run --release --example compare_onnx -- \
//!     target/onnx-zoo/resnet18.dynamo.onnx target/onnx-zoo/resnet18.ref.safetensors
//! ```
//!
//! Prints max |Δlogit| / max |logit| against PyTorch (`logits`) and
//! onnxruntime (`logits_ort`, or `logits_ort.<tag>` for a model file named
//! `<name>.<tag>.onnx`, as the zoo's one reference per model holds one per
//! exporter), the lowest per-input gradient cosine for each objective, and
//! PASS or FAIL against the issue's thresholds (1e-4 relative, cosine ≥
//! 0.9999); exits with 1 on FAIL.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use xai_audit::model::{load_model, Classifier, Objective};

/// Largest accepted max |Δlogit| / max |logit|.
const MAX_RELATIVE_LOGIT_ERROR: f64 = 1e-4;
/// Smallest accepted per-input gradient cosine.
const MIN_GRADIENT_COSINE: f64 = 0.9999;
/// Inputs per forward/backward pass.
const BATCH: usize = 32;

fn cosine(u: &[f32], v: &[f32]) -> f64 {
    let dot: f64 = u.iter().zip(v).map(|(a, b)| *a as f64 * *b as f64).sum();
    let nu = u.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
    let nv = v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
    if nu == 0.0 && nv == 0.0 {
        1.0
    } else {
        dot / (nu * nv)
    }
}

fn max_abs(t: &Tensor) -> Result<f64> {
    Ok(t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? as f64)
}

/// The onnxruntime logits for this model file: `logits_ort`, else
/// `logits_ort.<tag>` from `<name>.<tag>.onnx`.
fn ort_key(model: &Path, reference: &HashMap<String, Tensor>) -> Option<String> {
    if reference.contains_key("logits_ort") {
        return Some("logits_ort".into());
    }
    let stem = model.file_stem()?.to_str()?;
    let tag = stem.rsplit('.').next()?;
    let key = format!("logits_ort.{tag}");
    reference.contains_key(&key).then_some(key)
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (model, reference) = match args.as_slice() {
        [_, m, r] => (m, r),
        _ => anyhow::bail!("usage: compare_onnx MODEL.onnx REF.safetensors"),
    };
    let net = load_model(model.as_ref(), None)
        .with_context(|| format!("loading {model}"))?
        .network;
    let r = candle_core::safetensors::load(reference, &Device::Cpu)
        .with_context(|| reference.clone())?;
    let x = &r["x"];
    let labels: Vec<u32> = r["labels"]
        .to_vec1::<f32>()?
        .iter()
        .map(|&v| v as u32)
        .collect();
    let n = labels.len();

    let mut ours = Vec::new();
    let mut worst = [(1f64, 0usize); 3];
    let keys = ["grad_ce", "grad_logit", "grad_margin"];
    for start in (0..n).step_by(BATCH) {
        let len = BATCH.min(n - start);
        let xb = x.narrow(0, start, len)?;
        let yb = &labels[start..start + len];
        ours.push(net.logits(&xb)?);
        for (k, objective) in [
            Objective::CrossEntropy(yb),
            Objective::Logit(yb),
            Objective::Margin(yb),
        ]
        .into_iter()
        .enumerate()
        {
            let g: Vec<Vec<f32>> = net
                .input_grad(&xb, objective)?
                .grad
                .flatten_from(1)?
                .to_vec2()?;
            let t: Vec<Vec<f32>> = r[keys[k]]
                .narrow(0, start, len)?
                .flatten_from(1)?
                .to_vec2()?;
            for (i, (a, b)) in g.iter().zip(&t).enumerate() {
                let c = cosine(a, b);
                if c < worst[k].0 {
                    worst[k] = (c, start + i);
                }
            }
        }
    }
    let ours = Tensor::cat(&ours, 0)?;

    let mut pass = true;
    println!("{model}: {n} inputs, {} classes", ours.dim(1)?);
    let mut against = vec![("PyTorch", "logits".to_string())];
    match ort_key(model.as_ref(), &r) {
        Some(key) => against.push(("onnxruntime", key)),
        None => println!("  no onnxruntime logits for this file in {reference}"),
    }
    for (who, key) in against {
        let theirs = &r[key.as_str()];
        let rel = max_abs(&(&ours - theirs)?)? / max_abs(theirs)?.max(f64::MIN_POSITIVE);
        let ok = rel <= MAX_RELATIVE_LOGIT_ERROR;
        pass &= ok;
        println!(
            "  logits vs {who:<11} ({key}): max |Δ| / max |logit| {rel:.2e}  {}",
            verdict(ok)
        );
    }
    for (k, key) in keys.iter().enumerate() {
        let ok = worst[k].0 >= MIN_GRADIENT_COSINE;
        pass &= ok;
        println!(
            "  {key:<11} vs PyTorch: lowest per-input cosine {:.7} (input {})  {}",
            worst[k].0,
            worst[k].1,
            verdict(ok)
        );
    }
    println!("  {}", verdict(pass));
    if !pass {
        std::process::exit(1);
    }
    Ok(())
}
