//! Trains the shipped MNIST models on the real digits in `../shared/data/mnist`
//! (train split), reproducibly from a seed, and saves them as safetensors with
//! the spec embedded.
//!
//! ```text
//! cargo run --release --example train -- --model cnn --out assets/mnist_cnn.safetensors
//! cargo run --release --example train -- --model mlp --out assets/mnist_mlp.safetensors
//! ```
//!
//! Weights start from PyTorch's default initialisation (uniform ±1/√fan_in)
//! drawn from a ChaCha generator: candle's CPU generator cannot be seeded.
//! Training uses AdamW, a cosine learning-rate decay and random shifts of up
//! to two pixels; the test split is only read to report accuracy.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use clap::Parser;

use xai_audit::data::{self, LoadOptions};
use xai_audit::model::ops::cross_entropy;
use xai_audit::model::{save_model, ArchSpec, Network};
use xai_audit::rng::Rng;

#[derive(Parser)]
struct Args {
    /// `cnn` or `mlp`.
    #[arg(long, default_value = "cnn")]
    model: String,
    /// Folder with the MNIST IDX files.
    #[arg(long, default_value = "../shared/data/mnist")]
    data_dir: PathBuf,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Largest random shift in pixels (0 disables augmentation).
    #[arg(long, default_value_t = 2)]
    max_shift: i32,
}

const CNN: &str = r#"{
  "version": 1, "name": "mnist-cnn",
  "input": {"shape": [1, 28, 28], "range": [0.0, 1.0], "mean": [0.1307], "std": [0.3081]},
  "classes": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
  "layers": [
    {"op": "conv2d", "param": "features.0", "in_channels": 1, "out_channels": 16, "kernel_size": 3, "padding": 1},
    {"op": "relu"},
    {"op": "max_pool2d", "kernel_size": 2},
    {"op": "conv2d", "param": "features.3", "in_channels": 16, "out_channels": 32, "kernel_size": 3, "padding": 1},
    {"op": "relu"},
    {"op": "max_pool2d", "kernel_size": 2},
    {"op": "flatten"},
    {"op": "linear", "param": "classifier.0", "in_features": 1568, "out_features": 128},
    {"op": "relu"},
    {"op": "linear", "param": "classifier.2", "in_features": 128, "out_features": 10}
  ]}"#;

const MLP: &str = r#"{
  "version": 1, "name": "mnist-mlp",
  "input": {"shape": [1, 28, 28], "range": [0.0, 1.0], "mean": [0.1307], "std": [0.3081]},
  "classes": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
  "layers": [
    {"op": "flatten"},
    {"op": "linear", "param": "net.1", "in_features": 784, "out_features": 256},
    {"op": "relu"},
    {"op": "linear", "param": "net.3", "in_features": 256, "out_features": 256},
    {"op": "relu"},
    {"op": "linear", "param": "net.5", "in_features": 256, "out_features": 10}
  ]}"#;

/// PyTorch's default init for conv and linear: weight and bias uniform in ±1/√fan_in.
fn init_params(spec: &ArchSpec, rng: &mut Rng) -> Result<Vec<(String, Var)>> {
    let mut vars = Vec::new();
    let params = spec.params();
    for p in &params {
        let fan_in = if p.name.ends_with(".weight") {
            p.shape[1..].iter().product::<usize>()
        } else {
            let weight = params
                .iter()
                .find(|q| q.name == p.name.replace(".bias", ".weight"))
                .context("bias without weight")?;
            weight.shape[1..].iter().product::<usize>()
        };
        let bound = 1.0 / (fan_in as f32).sqrt();
        let n: usize = p.shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.uniform_range(-bound, bound)).collect();
        let t = Tensor::from_vec(values, p.shape.as_slice(), &Device::Cpu)?;
        vars.push((p.name.clone(), Var::from_tensor(&t)?));
    }
    Ok(vars)
}

/// Shifts each 28×28 image by up to `max_shift` pixels in x and y, zero filled.
fn augment(
    pixels: &[f32],
    idx: &[usize],
    hw: usize,
    side: usize,
    max_shift: i32,
    rng: &mut Rng,
) -> Vec<f32> {
    let mut out = vec![0f32; idx.len() * hw];
    for (k, &i) in idx.iter().enumerate() {
        let src = &pixels[i * hw..(i + 1) * hw];
        let (dy, dx) = if max_shift > 0 {
            (
                rng.int_inclusive(-max_shift as i64, max_shift as i64) as i32,
                rng.int_inclusive(-max_shift as i64, max_shift as i64) as i32,
            )
        } else {
            (0, 0)
        };
        let dst = &mut out[k * hw..(k + 1) * hw];
        for y in 0..side as i32 {
            let sy = y - dy;
            if sy < 0 || sy >= side as i32 {
                continue;
            }
            for x in 0..side as i32 {
                let sx = x - dx;
                if sx < 0 || sx >= side as i32 {
                    continue;
                }
                dst[(y * side as i32 + x) as usize] = src[(sy * side as i32 + sx) as usize];
            }
        }
    }
    out
}

fn accuracy(net: &Network, set: &data::Dataset) -> Result<f64> {
    let hw = set.item_len();
    let mut correct = 0usize;
    for start in (0..set.len()).step_by(500) {
        let n = 500.min(set.len() - start);
        let x = Tensor::from_slice(
            &set.pixels[start * hw..(start + n) * hw],
            (n, 1, 28, 28),
            &Device::Cpu,
        )?;
        let pred: Vec<u32> = net.forward(&x)?.argmax(1)?.to_vec1()?;
        correct += pred
            .iter()
            .zip(&set.labels[start..start + n])
            .filter(|(p, y)| p == y)
            .count();
    }
    Ok(correct as f64 / set.len() as f64)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let spec_text = match args.model.as_str() {
        "cnn" => CNN,
        "mlp" => MLP,
        other => anyhow::bail!("--model must be cnn or mlp, not {other}"),
    };
    let spec = ArchSpec::from_json(spec_text, "built-in")?;
    let opts = LoadOptions {
        channels: 1,
        size: Some((28, 28)),
        resize: false,
        limit: None,
        ..Default::default()
    };
    let train = data::load(&args.data_dir.join("train-images-idx3-ubyte.gz"), &opts)?;
    let test = data::load(&args.data_dir.join("test-images-idx3-ubyte.gz"), &opts)?;
    eprintln!("train {} digits, test {} digits", train.len(), test.len());

    let mut rng = Rng::new(args.seed);
    let vars = init_params(&spec, &mut rng)?;
    let tensors: HashMap<String, Tensor> = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    let (net, _) = Network::from_tensors(spec.clone(), &tensors)?;
    let mut opt = AdamW::new(
        vars.iter().map(|(_, v)| v.clone()).collect(),
        ParamsAdamW {
            lr: args.lr,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;

    let hw = train.item_len();
    let steps_per_epoch = train.len().div_ceil(args.batch_size);
    let total_steps = steps_per_epoch * args.epochs;
    let mut step = 0usize;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let started = Instant::now();
    for epoch in 0..args.epochs {
        rng.shuffle(&mut order);
        let mut loss_sum = 0f64;
        for batch in order.chunks(args.batch_size) {
            let lr = args.lr
                * 0.5
                * (1.0 + (std::f64::consts::PI * step as f64 / total_steps as f64).cos());
            opt.set_learning_rate(lr);
            let pixels = augment(&train.pixels, batch, hw, 28, args.max_shift, &mut rng);
            let x = Tensor::from_vec(pixels, (batch.len(), 1, 28, 28), &Device::Cpu)?;
            let labels: Vec<u32> = batch.iter().map(|&i| train.labels[i]).collect();
            let loss = cross_entropy(&net.forward(&x)?, &labels)?.mean_all()?;
            opt.backward_step(&loss)?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            step += 1;
        }
        eprintln!(
            "epoch {:>2}: loss {:.4}, test accuracy {:.2}% ({:.0}s)",
            epoch + 1,
            loss_sum / steps_per_epoch as f64,
            100.0 * accuracy(&net, &test)?,
            started.elapsed().as_secs_f64()
        );
    }
    let acc = accuracy(&net, &test)?;
    let named: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
        .collect();
    save_model(&args.out, &spec, &named)?;
    println!(
        "{}: test accuracy {:.2}% on {} digits, seed {}, {} epochs, {:.0}s",
        args.out.display(),
        100.0 * acc,
        test.len(),
        args.seed,
        args.epochs,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
