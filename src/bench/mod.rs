//! `xai-audit bench`: PGD L∞ throughput in images per second, the figure the
//! performance work is measured by, and ([`attributions`]) the cost of each
//! attribution method. Speed lives here and in `benches/`, never in a test's
//! assertions.

pub mod attributions;

use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

use crate::attack::pgd::Pgd;
use crate::attack::{Attack, AttackBatch, Norm};
use crate::audit::clean::predictions_from_logits;
use crate::data::batch::{batch_tensor, load_for_model, DataRequest};
use crate::error::Result;
use crate::model::{load_model_with, Classifier, ModelOptions};

/// The model and the `limit` inputs a benchmark runs on (an image folder's
/// class-stratified `limit`).
pub(crate) fn bench_inputs(
    model: &Path,
    arch: Option<&Path>,
    data: Option<&Path>,
    limit: usize,
) -> Result<(crate::model::LoadedModel, crate::data::Dataset)> {
    let opts = ModelOptions {
        arch: arch.map(Path::to_path_buf),
        strip_prefix: None,
    };
    bench_inputs_with(model, &opts, data, limit)
}

/// [`bench_inputs`] with every model option.
fn bench_inputs_with(
    model: &Path,
    model_opts: &ModelOptions,
    data: Option<&Path>,
    limit: usize,
) -> Result<(crate::model::LoadedModel, crate::data::Dataset)> {
    let loaded = load_model_with(model, model_opts)?;
    let request = DataRequest {
        path: data,
        resize: false,
        limit: Some(limit.max(1)),
        class_names: Some(&loaded.network.spec().classes),
    };
    let net = &loaded.network;
    let data = load_for_model(&request, net.input_shape(), net.num_classes())?;
    Ok((loaded, data))
}

/// Runs PGD (ε 0.1, step 0.01, `steps` steps, no random start) over the first
/// `limit` inputs in batches of `batch_size`; returns a printable summary.
pub fn pgd_throughput(
    model: &Path,
    model_opts: &ModelOptions,
    data: Option<&Path>,
    limit: usize,
    batch_size: usize,
    steps: usize,
    engine: crate::engine::Engine,
) -> Result<String> {
    let (loaded, data) = bench_inputs_with(model, model_opts, data, limit)?;
    let selected = crate::engine::select(&loaded.network, engine)?;
    if let Some(why) = &selected.fallback {
        eprintln!("warning: {why}");
    }
    let engine_name = selected.name;
    let net = selected.classifier.as_ref();
    let pgd = Pgd {
        norm: Norm::Linf,
        eps: 0.1,
        step_size: 0.01,
        steps,
        random_start: false,
        restarts: 1,
        target: None,
    };
    let [_, c, h, w] = data.shape;
    let batch_size = batch_size.max(1);
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
    let mut out = String::new();
    let _ = writeln!(
        out,
        "PGD-{steps} L∞ (ε 0.1, step 0.01, no random start) on {} inputs, batch {batch_size}, {threads} threads, {engine_name} engine",
        data.len()
    );
    let _ = writeln!(out, "model {}", model.display());
    let _ = writeln!(
        out,
        "time {seconds:.2} s, {:.1} images/s, robust accuracy {:.2}%",
        data.len() as f64 / seconds,
        100.0 * robust as f64 / data.len() as f64
    );
    // Work done: `steps` forward+gradient passes, the clean and the final forward.
    if let Ok(fast) = crate::engine::FastNet::compile(&loaded.network) {
        let (f, b) = fast.flops_per_sample();
        let flops = data.len() as f64 * (steps as f64 * (f + b) + 2.0 * f);
        let peak = crate::engine::peak_gflops(1024, threads);
        let _ = writeln!(
            out,
            "hot path {:.1} GFLOP/s ({:.2} MFLOP per forward, {:.2} per input gradient); \
             machine SGEMM peak {peak:.1} GFLOP/s (1024³, {threads} threads): {:.0}% of peak",
            flops / seconds / 1e9,
            f / 1e6,
            b / 1e6,
            100.0 * flops / seconds / 1e9 / peak
        );
    }
    Ok(out)
}
