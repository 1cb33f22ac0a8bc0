//! Compares our logits and input gradients with a PyTorch reference file made by
//! `examples/export_pytorch.py reference` (same weights, same inputs):
//!
//! ```text
//! python examples/export_pytorch.py reference assets/mnist_cnn.safetensors \
//!     --data assets/mnist-sample/sample-images-idx3-ubyte.gz --count 1000 --out ref.safetensors
//! cargo run --release --example compare_reference -- assets/mnist_cnn.safetensors ref.safetensors
//! ```

use anyhow::{Context, Result};
use candle_core::Device;
use xai_audit::model::{load_model, Classifier, Objective};

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

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (model, reference) = match args.as_slice() {
        [_, m, r] => (m, r),
        _ => anyhow::bail!("usage: compare_reference MODEL.safetensors REF.safetensors"),
    };
    let net = load_model(model.as_ref(), None)?.network;
    let r = candle_core::safetensors::load(reference, &Device::Cpu)
        .with_context(|| reference.clone())?;
    let x = &r["x"];
    let labels: Vec<u32> = r["labels"]
        .to_vec1::<f32>()?
        .iter()
        .map(|&v| v as u32)
        .collect();
    let n = labels.len();
    let mut max_logit_diff = 0f32;
    let mut worst = [(1f64, 0usize); 3];
    let mut zero_grads = [0usize; 3];
    for start in (0..n).step_by(100) {
        let len = 100.min(n - start);
        let xb = x.narrow(0, start, len)?;
        let yb = &labels[start..start + len];
        let ours = net.logits(&xb)?;
        let theirs = r["logits"].narrow(0, start, len)?;
        let d: f32 = (ours - theirs)?.abs()?.flatten_all()?.max(0)?.to_scalar()?;
        max_logit_diff = max_logit_diff.max(d);
        for (k, (objective, key)) in [
            (Objective::CrossEntropy(yb), "grad_ce"),
            (Objective::Logit(yb), "grad_logit"),
            (Objective::Margin(yb), "grad_margin"),
        ]
        .into_iter()
        .enumerate()
        {
            let g: Vec<Vec<f32>> = net
                .input_grad(&xb, objective)?
                .grad
                .flatten_from(1)?
                .to_vec2()?;
            let t: Vec<Vec<f32>> = r[key].narrow(0, start, len)?.flatten_from(1)?.to_vec2()?;
            for (i, (a, b)) in g.iter().zip(&t).enumerate() {
                let c = cosine(a, b);
                if c < worst[k].0 {
                    worst[k] = (c, start + i);
                }
                if b.iter().all(|v| *v == 0.0) {
                    zero_grads[k] += 1;
                }
            }
        }
    }
    println!("{n} inputs: max |logit difference| {max_logit_diff:.3e}");
    for (k, key) in ["grad_ce", "grad_logit", "grad_margin"].iter().enumerate() {
        println!(
            "{key}: lowest per-input cosine {:.7} (input {}), {} all-zero reference gradients",
            worst[k].0, worst[k].1, zero_grads[k]
        );
    }
    Ok(())
}
