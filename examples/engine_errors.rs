//! How far the fast engine's numbers are from the candle reference, per
//! sample, for each convolution kernel set: the relative L2 error of each
//! sample's logits and of its cross-entropy and label-logit input gradients
//! (median, 99th percentile, max over the inputs), and how many predictions
//! differ. The distribution the engine's exactness claims rest on.
//!
//! ```text
//! cargo run --release --example engine_errors -- assets/mnist_resnet.safetensors
//! cargo run --release --example engine_errors -- MODEL --data DIR --limit 100
//! ```

use std::path::PathBuf;

use anyhow::Result;
use candle_core::Tensor;
use clap::Parser;
use xai_audit::data::batch::{batch_tensor, load_for_model, DataRequest};
use xai_audit::engine::{FastNet, Kernels};
use xai_audit::model::{load_model, Classifier, Objective};

#[derive(Parser)]
struct Args {
    /// The model (.safetensors with its spec).
    model: PathBuf,
    /// Inputs (default: the shipped digits).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
}

fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    let n = t.dim(0)?;
    Ok(t.reshape((n, ()))?.to_vec2()?)
}

/// Per-sample ‖a − b‖ / ‖b‖.
fn relative(a: &Tensor, b: &Tensor) -> Result<Vec<f64>> {
    Ok(rows(a)?
        .iter()
        .zip(rows(b)?)
        .map(|(x, y)| {
            let d: f64 = x
                .iter()
                .zip(&y)
                .map(|(p, q)| (*p as f64 - *q as f64).powi(2))
                .sum();
            let n: f64 = y.iter().map(|q| (*q as f64).powi(2)).sum();
            (d / n.max(f64::MIN_POSITIVE)).sqrt()
        })
        .collect())
}

fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.1e}  p99 {:.1e}  max {:.1e}",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

fn argmax(r: &[f32]) -> usize {
    r.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
        .0
}

fn main() -> Result<()> {
    let args = Args::parse();
    let net = load_model(&args.model, None)?.network;
    let data = load_for_model(
        &DataRequest {
            path: args.data.as_deref(),
            limit: Some(args.limit),
            class_names: Some(&net.spec().classes),
            ..Default::default()
        },
        net.input_shape(),
        net.num_classes(),
    )?;
    println!("{} on {} inputs", args.model.display(), data.len());
    for (name, kernels) in [("im2col", Kernels::Exact), ("winograd", Kernels::Winograd)] {
        let fast = FastNet::compile_with(&net, kernels).map_err(anyhow::Error::msg)?;
        let (w, total) = fast.winograd_convolutions();
        let (mut logits, mut ce, mut logit, mut flips) = (vec![], vec![], vec![], 0);
        for first in (0..data.len()).step_by(args.batch_size) {
            let len = args.batch_size.min(data.len() - first);
            let x = batch_tensor(&data, first, len, net.input_range())?;
            let labels = &data.labels[first..first + len];
            let (zr, zf) = (net.logits(&x)?, fast.logits(&x)?);
            logits.extend(relative(&zf, &zr)?);
            flips += rows(&zf)?
                .iter()
                .zip(rows(&zr)?)
                .filter(|(a, b)| argmax(a) != argmax(b))
                .count();
            for (objective, out) in [
                (Objective::CrossEntropy(labels), &mut ce),
                (Objective::Logit(labels), &mut logit),
            ] {
                let (r, f) = (
                    net.input_grad(&x, objective)?,
                    fast.input_grad(&x, objective)?,
                );
                out.extend(relative(&f.grad, &r.grad)?);
            }
        }
        println!("{name} ({w} of {total} convolutions by Winograd), relative L2 error per sample:");
        println!("  logits                 {}", summary(logits));
        println!("  cross-entropy gradient {}", summary(ce));
        println!("  label-logit gradient   {}", summary(logit));
        println!("  predictions differing from the reference: {flips}");
    }
    Ok(())
}
