//! `xai-audit bench`: PGD L∞ throughput in images per second, the figure the
//! performance work is measured by, with the nominal work done ([`flops`]),
//! the machine's SGEMM peak, the process's peak memory and a digest of the
//! inputs (so a side-by-side run with another tool can check it attacked the
//! same ones); and ([`attributions`]) the cost of each attribution method.
//! Speed lives here and in `benches/`, never in a test's assertions.

pub mod attributions;
pub mod flops;

use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::attack::pgd::Pgd;
use crate::attack::{Attack, AttackBatch, Norm};
use crate::audit::clean::predictions_from_logits;
use crate::data::arrays::ArrayOptions;
use crate::data::batch::{batch_tensor, load_for_model, DataRequest};
use crate::error::Result;
use crate::model::{load_model_with, Classifier, ModelOptions};

/// The model and the `limit` inputs a benchmark runs on (an image folder's
/// class-stratified `limit`).
pub(crate) fn bench_inputs_with(
    model: &Path,
    model_opts: &ModelOptions,
    data: Option<&Path>,
    arrays: &ArrayOptions,
    limit: usize,
) -> Result<(crate::model::LoadedModel, crate::data::Dataset)> {
    let loaded = load_model_with(model, model_opts)?;
    let net = &loaded.network;
    let request = DataRequest {
        path: data,
        resize: false,
        limit: Some(limit.max(1)),
        class_names: Some(&net.spec().classes),
        arrays: arrays.clone(),
        range: Some(net.input_range()),
    };
    let data = load_for_model(&request, net.input_shape(), net.num_classes())?;
    Ok((loaded, data))
}

/// What `xai-audit bench` runs: PGD L∞ without random start, its
/// settings, and how inputs are batched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgdBench {
    /// Inputs to attack (an IDX file's first, an image folder's
    /// class-stratified `limit`).
    pub limit: usize,
    /// Inputs per batch.
    pub batch_size: usize,
    /// PGD steps.
    pub steps: usize,
    /// The L∞ budget, in the model's input units.
    pub eps: f32,
    /// The step length, in the model's input units.
    pub step_size: f32,
    /// Which implementation runs the model.
    pub engine: crate::engine::Engine,
}

impl Default for PgdBench {
    /// PGD-40, ε 0.1, step 0.01 on 1,000 inputs in batches of 100, engine
    /// `auto`: the figure the README's speed section quotes.
    fn default() -> Self {
        PgdBench {
            limit: 1000,
            batch_size: 100,
            steps: 40,
            eps: 0.1,
            step_size: 0.01,
            engine: crate::engine::Engine::Auto,
        }
    }
}

/// Runs PGD as `bench` says over the inputs in batches; returns a printable
/// summary. Its lines are read by `benches/pgd_vs_torchattacks.sh`: keep
/// their words when changing them.
pub fn pgd_throughput(
    model: &Path,
    model_opts: &ModelOptions,
    data: Option<&Path>,
    arrays: &ArrayOptions,
    bench: &PgdBench,
) -> Result<String> {
    for (name, value) in [("eps", bench.eps), ("step size", bench.step_size)] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(crate::error::Error::Invalid(format!(
                "the PGD {name} must be a finite number ≥ 0, got {value}"
            )));
        }
    }
    let (loaded, data) = bench_inputs_with(model, model_opts, data, arrays, bench.limit)?;
    let selected = crate::engine::select(&loaded.network, bench.engine)?;
    if let Some(why) = &selected.fallback {
        eprintln!("warning: {why}");
    }
    let engine_name = selected.name;
    let net = selected.classifier.as_ref();
    let steps = bench.steps;
    let pgd = Pgd {
        norm: Norm::Linf,
        eps: bench.eps,
        step_size: bench.step_size,
        steps,
        random_start: false,
        restarts: 1,
        target: None,
        l1_step: crate::attack::pgd::L1Step::Dense,
        eot: 1,
    };
    let [_, c, h, w] = data.shape;
    let batch_size = bench.batch_size.max(1);
    let threads = rayon::current_num_threads();
    let started = Instant::now();
    let mut robust = 0usize;
    for first in (0..data.len()).step_by(batch_size) {
        let len = batch_size.min(data.len() - first);
        let xt = batch_tensor(&data, first, len, net.input_range())?;
        let logits = net.logits(&xt)?;
        let x: Vec<f32> = xt.flatten_all()?.to_vec1()?;
        let clean_logits: Vec<Vec<f32>> = logits.to_vec2()?;
        let labels = &data.labels[first..first + len];
        let indices: Vec<usize> = (first..first + len).collect();
        let outcome = pgd.run(
            net,
            &AttackBatch {
                x: &x,
                shape: [len, c, h, w],
                labels,
                clean_logits: &clean_logits,
                indices: &indices,
                seed: 0,
                stream: 0,
            },
        )?;
        let rows: Vec<f32> = outcome.logits.iter().flatten().copied().collect();
        let adv = candle_core::Tensor::from_vec(
            rows,
            (len, net.num_classes()),
            &candle_core::Device::Cpu,
        )?;
        let p = predictions_from_logits(&adv)?;
        robust += p
            .predicted
            .iter()
            .zip(labels)
            .filter(|(p, y)| p == y)
            .count();
    }
    let seconds = started.elapsed().as_secs_f64();
    let n = data.len();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "PGD-{steps} L∞ (ε {}, step {}, no random start) on {n} inputs, batch {batch_size}, {threads} threads, {engine_name} engine",
        bench.eps, bench.step_size
    );
    let _ = writeln!(out, "model {}", model.display());
    let _ = writeln!(
        out,
        "data {}, {n}×{c}×{h}×{w}, inputs sha256 {}",
        data.source,
        inputs_digest(&data)
    );
    let _ = writeln!(
        out,
        "time {seconds:.2} s, {:.1} images/s, robust accuracy {:.2}%",
        n as f64 / seconds,
        100.0 * robust as f64 / n as f64
    );
    let forward = flops::forward_flops_per_sample(&loaded.network)?;
    let per_image = flops::pgd_flops_per_sample(forward, steps);
    let rate = n as f64 * per_image / seconds / 1e9;
    let peak = crate::engine::peak_gflops(1024, threads);
    let _ = writeln!(
        out,
        "work {:.4} MFLOP per forward, {:.4} MFLOP per image (steps × (forward + input gradient) + final forward, 2 FLOPs per multiply-add)",
        forward / 1e6,
        per_image / 1e6
    );
    let _ = writeln!(
        out,
        "hot path {rate:.1} GFLOP/s; machine SGEMM peak {peak:.1} GFLOP/s (1024³, {threads} threads): {:.0}% of peak",
        100.0 * rate / peak
    );
    match peak_rss_bytes() {
        Some(bytes) => {
            let _ = writeln!(
                out,
                "peak RSS {:.1} MiB (VmHWM)",
                bytes as f64 / (1024.0 * 1024.0)
            );
        }
        None => {
            let _ = writeln!(out, "peak RSS unknown (no /proc/self/status)");
        }
    }
    Ok(out)
}

/// SHA-256 over the inputs as attacked, before they are mapped to the
/// model's range: every pixel as a little-endian f32, item after item, then
/// every label as a little-endian u32. `benches/pgd_torchattacks.py` prints
/// the same digest of what it read, so the two sides are known to attack the
/// same inputs.
fn inputs_digest(data: &crate::data::Dataset) -> String {
    let mut hasher = Sha256::new();
    for p in &data.pixels {
        hasher.update(p.to_le_bytes());
    }
    for l in &data.labels {
        hasher.update(l.to_le_bytes());
    }
    crate::util::hex(&hasher.finalize())
}

/// The process's peak resident set (Linux's `VmHWM`), in bytes; `None`
/// where `/proc/self/status` does not say.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_hwm_bytes(&status)
}

/// `VmHWM:   123456 kB` → bytes.
fn vm_hwm_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut words = line["VmHWM:".len()..].split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\txai-audit\nVmPeak:\t  99 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(vm_hwm_bytes(status), Some(2048 * 1024));
        assert_eq!(vm_hwm_bytes("VmRSS:\t1 kB\n"), None);
        assert_eq!(vm_hwm_bytes("VmHWM:\t12 MB\n"), None);
        #[cfg(target_os = "linux")]
        assert!(peak_rss_bytes().unwrap() > 0);
    }

    #[test]
    fn the_digest_covers_pixels_and_labels() {
        let data = crate::data::Dataset {
            pixels: vec![0.0, 0.5, 1.0, 0.25],
            shape: [2, 1, 1, 2],
            labels: vec![3, 1],
            class_names: (0..10).map(|i| i.to_string()).collect(),
            source: "test".into(),
            sha256: String::new(),
        };
        let mut bytes = Vec::new();
        for p in &data.pixels {
            bytes.extend(p.to_le_bytes());
        }
        for l in &data.labels {
            bytes.extend(l.to_le_bytes());
        }
        assert_eq!(inputs_digest(&data), crate::util::sha256_hex(&bytes));
        let mut relabelled = data.clone();
        relabelled.labels[0] = 4;
        assert_ne!(inputs_digest(&relabelled), inputs_digest(&data));
    }
}
