//! α-scaling (Hein, Andriushchenko & Bitterwolf, CVPR 2019): a ReLU network
//! is piecewise affine, so along a ray `α·x` its logits grow linearly and the
//! softmax tends to one class with probability 1. Per input, the smallest
//! `α ≥ 1` at which the max-softmax reaches the target (0.999 in the paper;
//! MNIST's plain model needs a median α of 1.5 on uniform noise), and the mean
//! max-softmax (MMC) against α for `α·x` and for `α·x` clipped to the valid range.
//!
//! The search walks the plan's α grid and bisects inside the first bracket
//! `(α_{k−1}, α_k]` whose right end reaches the target; where the confidence
//! is monotone along the ray (a linear model's is), that is the smallest α to
//! within the bisection's resolution. The ray starts at black, the low end
//! of the model's range: `lo + α·(x − lo)`, which is the paper's `α·x` on
//! `[0, 1]` (and `[0, 255]`) images and the same image on a `[-1, 1]` model,
//! where scaling about 0 would scale about mid-grey.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::ood::max_softmax;
use super::spec::MAX_COUNT;
use super::types::{AlphaPoint, AlphaScalingSummary, AlphaSetSummary, Quantile, SampleAlpha};
use super::{Context, Outcome, Progress};
use crate::entry::Entry;
use crate::error::Result;
use crate::stats::{mean, quantile};

/// Where α-scaling takes its inputs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlphaInputs {
    /// Uniform noise in the valid range.
    Uniform,
    /// The audited data.
    Data,
}

impl AlphaInputs {
    /// Every input set, by the name plans and reports use.
    pub const NAMES: &'static [(&'static str, AlphaInputs)] = &[
        ("uniform", AlphaInputs::Uniform),
        ("data", AlphaInputs::Data),
    ];
}

/// Default input sets: uniform noise and the data.
pub const DEFAULT_INPUTS: &[AlphaInputs] = &[AlphaInputs::Uniform, AlphaInputs::Data];
/// Default α grid: dense near 1, where MNIST models already saturate.
pub const DEFAULT_ALPHAS: &[f64] = &[
    1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0,
];
/// Default target confidence: Hein et al.'s 0.999.
pub const DEFAULT_TARGET_CONFIDENCE: f64 = 0.999;
/// Default bisection steps inside the first bracket reaching the target.
pub const DEFAULT_BISECTION_STEPS: usize = 10;

/// `kind = "alpha_scaling"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AlphaScalingConfig {
    /// Input sets, each reported separately (default: uniform and data).
    #[schemars(extend("default" = DEFAULT_INPUTS))]
    pub inputs: Vec<AlphaInputs>,
    /// Uniform-noise inputs to draw (absent: as many as data inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "as many as the data's inputs"}}))]
    pub count: Option<usize>,
    /// Scale factors, starting at 1, increasing; MMC is reported at each and
    /// the search for the smallest α reaching the target walks them (default
    /// 1, 1.25, 1.5, 2, 3, 5, 10, 20, 50, 100, 1000).
    #[schemars(extend("default" = DEFAULT_ALPHAS))]
    pub alphas: Vec<f64>,
    /// The confidence whose smallest α is sought, strictly between 0 and 1
    /// (default 0.999, as in Hein et al.).
    #[schemars(extend("default" = DEFAULT_TARGET_CONFIDENCE))]
    pub target_confidence: f64,
    /// Bisection steps refining α inside the first bracket that reaches it,
    /// 0 to 60 (default 10).
    #[schemars(extend("default" = DEFAULT_BISECTION_STEPS))]
    pub bisection_steps: usize,
    /// Keep the uniform-noise inputs in the sidecar (for cross-checks;
    /// default false).
    #[schemars(extend("default" = false))]
    pub save_inputs: bool,
}

impl AlphaScalingConfig {
    /// Reads the entry's keys, defaults filled in; problems are recorded in `e`.
    pub fn from_entry(e: &mut Entry) -> Self {
        let inputs = e
            .names("inputs", AlphaInputs::NAMES)
            .unwrap_or_else(|| DEFAULT_INPUTS.to_vec());
        let count = e.int_in("count", 1, MAX_COUNT);
        let alphas = e
            .floats_in("alphas", 1.0, 1e12)
            .unwrap_or_else(|| DEFAULT_ALPHAS.to_vec());
        if alphas[0] != 1.0 || alphas.windows(2).any(|w| w[1] <= w[0]) {
            e.fail("alphas", "must start at 1 and increase");
        }
        let target_confidence = e
            .float_in("target_confidence", 0.0, 1.0)
            .unwrap_or(DEFAULT_TARGET_CONFIDENCE);
        if target_confidence <= 0.0 || target_confidence >= 1.0 {
            e.fail(
                "target_confidence",
                format!("must be strictly between 0 and 1, found {target_confidence}"),
            );
        }
        AlphaScalingConfig {
            inputs,
            count,
            alphas,
            target_confidence,
            bisection_steps: e
                .int_in("bisection_steps", 0, 60)
                .unwrap_or(DEFAULT_BISECTION_STEPS),
            save_inputs: e.boolean("save_inputs").unwrap_or(false),
        }
    }
}

/// Quantile levels of the smallest α reported per input set.
pub const QUANTILE_LEVELS: [f64; 5] = [0.1, 0.25, 0.5, 0.75, 0.9];

/// Results on one input set.
#[derive(Debug, Clone)]
pub struct AlphaSet {
    /// Smallest α per input (`None`: not reached on the grid).
    pub alpha: Vec<Option<f64>>,
    /// Max-softmax per input per grid α, unclipped.
    pub scaled: Vec<Vec<f64>>,
    /// Max-softmax per input per grid α, clipped to the valid range.
    pub clipped: Vec<Vec<f64>>,
}

/// The uniform-noise inputs of an α-scaling entry, in `[0, 1]`.
pub fn uniform_inputs(ctx: &Context, name: &str, count: usize) -> Vec<f32> {
    let per = ctx.item_len();
    let mut x = Vec::with_capacity(count * per);
    for i in 0..count {
        let mut rng = ctx.rng(&format!("stress/{name}/uniform"), i);
        x.extend((0..per).map(|_| rng.uniform_f32()));
    }
    x
}

/// Scales each input of `x` (model units, `[M, C, H, W]`) by its own factor
/// about `origin` (the range's low end): `origin + α·(x − origin)`.
fn scaled(
    x: &[f32],
    per: usize,
    alphas: &[f64],
    origin: f32,
    clip: Option<(f32, f32)>,
) -> Vec<f32> {
    let o = origin as f64;
    let mut out = Vec::with_capacity(x.len());
    for (item, &a) in x.chunks(per).zip(alphas) {
        out.extend(item.iter().map(|&v| {
            let s = (o + a * (v as f64 - o)) as f32;
            match clip {
                Some((lo, hi)) => s.clamp(lo, hi),
                None => s,
            }
        }));
    }
    out
}

/// α-scaling of the inputs `x` (model units): the grid's confidences and each
/// input's smallest α reaching `spec.target_confidence`.
pub fn scale_inputs(
    ctx: &Context,
    x: &[f32],
    spec: &AlphaScalingConfig,
    progress: &mut dyn FnMut(f64),
) -> Result<AlphaSet> {
    let per = ctx.item_len();
    let n = x.len() / per;
    let range = ctx.model.input_range();
    let confidences = |imgs: &[f32]| -> Result<Vec<f64>> {
        Ok(ctx
            .logits_model(imgs)?
            .iter()
            .map(|z| max_softmax(z))
            .collect())
    };
    let mut out = AlphaSet {
        alpha: Vec::with_capacity(n),
        scaled: Vec::with_capacity(n),
        clipped: Vec::with_capacity(n),
    };
    for (b, chunk) in x.chunks(ctx.batch_size * per).enumerate() {
        let len = chunk.len() / per;
        let mut sc = vec![Vec::with_capacity(spec.alphas.len()); len];
        let mut cl = vec![Vec::with_capacity(spec.alphas.len()); len];
        for &a in &spec.alphas {
            let factors = vec![a; len];
            let plain = scaled(chunk, per, &factors, range.0, None);
            let conf = confidences(&plain)?;
            let clipped = scaled(chunk, per, &factors, range.0, Some(range));
            // Where nothing was clipped (α = 1 on valid inputs) the pass is the same.
            let conf_clipped = if clipped == plain {
                conf.clone()
            } else {
                confidences(&clipped)?
            };
            for (row, c) in sc.iter_mut().zip(conf) {
                row.push(c);
            }
            for (row, c) in cl.iter_mut().zip(conf_clipped) {
                row.push(c);
            }
        }
        // Brackets (below, reached) for inputs that first reach the target
        // past the grid's first point.
        let mut alpha: Vec<Option<f64>> = vec![None; len];
        let mut brackets: Vec<(usize, f64, f64)> = Vec::new();
        for (i, row) in sc.iter().enumerate() {
            match row.iter().position(|&c| c >= spec.target_confidence) {
                Some(0) => alpha[i] = Some(spec.alphas[0]),
                Some(k) => brackets.push((i, spec.alphas[k - 1], spec.alphas[k])),
                None => {}
            }
        }
        for _ in 0..spec.bisection_steps {
            if brackets.is_empty() {
                break;
            }
            let items: Vec<f32> = brackets
                .iter()
                .flat_map(|&(i, _, _)| chunk[i * per..(i + 1) * per].iter().copied())
                .collect();
            let mids: Vec<f64> = brackets
                .iter()
                .map(|&(_, lo, hi)| 0.5 * (lo + hi))
                .collect();
            let conf = confidences(&scaled(&items, per, &mids, range.0, None))?;
            for ((bracket, &mid), c) in brackets.iter_mut().zip(&mids).zip(conf) {
                if c >= spec.target_confidence {
                    bracket.2 = mid;
                } else {
                    bracket.1 = mid;
                }
            }
        }
        for (i, _, hi) in brackets {
            alpha[i] = Some(hi);
        }
        out.alpha.extend(alpha);
        out.scaled.extend(sc);
        out.clipped.extend(cl);
        progress(((b + 1) * ctx.batch_size).min(n) as f64 / n.max(1) as f64);
    }
    Ok(out)
}

fn summarize(set: &AlphaSet, inputs: AlphaInputs, spec: &AlphaScalingConfig) -> AlphaSetSummary {
    let n = set.alpha.len();
    let share = |count: usize| if n == 0 { 0.0 } else { count as f64 / n as f64 };
    let curve = spec
        .alphas
        .iter()
        .enumerate()
        .map(|(k, &alpha)| AlphaPoint {
            alpha,
            mmc_scaled: mean(set.scaled.iter().map(|r| r[k])).unwrap_or(0.0),
            share_above_target_scaled: share(
                set.scaled
                    .iter()
                    .filter(|r| r[k] >= spec.target_confidence)
                    .count(),
            ),
            mmc_clipped: mean(set.clipped.iter().map(|r| r[k])).unwrap_or(0.0),
            share_above_0_95_clipped: share(set.clipped.iter().filter(|r| r[k] >= 0.95).count()),
        })
        .collect();
    AlphaSetSummary {
        inputs,
        count: n,
        reached_share: share(set.alpha.iter().filter(|a| a.is_some()).count()),
        median_alpha: quantile(&set.alpha, 0.5),
        alpha_quantiles: QUANTILE_LEVELS
            .iter()
            .map(|&level| Quantile {
                level,
                alpha: quantile(&set.alpha, level),
            })
            .collect(),
        curve,
    }
}

fn matrix(rows: &[Vec<f64>]) -> Result<Tensor> {
    let cols = rows.first().map_or(0, Vec::len);
    let flat: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
    Ok(Tensor::from_vec(flat, (rows.len(), cols), &Device::Cpu)?)
}

/// Runs a `kind = "alpha_scaling"` entry.
pub fn run(
    ctx: &Context,
    name: &str,
    spec: &AlphaScalingConfig,
    progress: Progress,
) -> Result<Outcome<AlphaScalingSummary, SampleAlpha>> {
    let mut sets = Vec::new();
    let mut samples = Vec::new();
    let mut tensors = Vec::new();
    let parts = spec.inputs.len() as f64;
    for (k, &inputs) in spec.inputs.iter().enumerate() {
        let mut part = |f: f64| progress((k as f64 + f) / parts);
        let (label, set) = match inputs {
            AlphaInputs::Data => (
                "data",
                scale_inputs(ctx, &ctx.to_model(&ctx.data.pixels), spec, &mut part)?,
            ),
            AlphaInputs::Uniform => {
                let x = uniform_inputs(ctx, name, spec.count.unwrap_or(ctx.len()));
                if spec.save_inputs {
                    tensors.push((
                        crate::sidecar::stress(name, "uniform/inputs"),
                        ctx.images_tensor(&x)?,
                    ));
                }
                (
                    "uniform",
                    scale_inputs(ctx, &ctx.to_model(&x), spec, &mut part)?,
                )
            }
        };
        if inputs == AlphaInputs::Data {
            samples = set
                .alpha
                .iter()
                .map(|&alpha| SampleAlpha {
                    name: name.to_string(),
                    alpha,
                })
                .collect();
        }
        tensors.push((
            crate::sidecar::stress(name, &format!("{label}/confidence_scaled")),
            matrix(&set.scaled)?,
        ));
        tensors.push((
            crate::sidecar::stress(name, &format!("{label}/confidence_clipped")),
            matrix(&set.clipped)?,
        ));
        sets.push(summarize(&set, inputs, spec));
    }
    Ok(Outcome {
        summary: AlphaScalingSummary {
            name: name.to_string(),
            target_confidence: spec.target_confidence,
            sets,
        },
        samples,
        tensors,
        warnings: Vec::new(),
        seconds: 0.0,
    })
}
