//! The Lie derivative of the softmax (Gruver, Finzi, Goldblum & Wilson,
//! "The Lie Derivative for Measuring Learned Equivariance", ICLR 2023): for
//! a one-parameter group `T_t` (translation in x or y, rotation) applied by
//! bilinear resampling, `L = d/dt softmax(f(T_t x))` at `t = 0`; per input
//! the mean over classes of `|L|`. An exactly invariant model has `L = 0`.
//!
//! - `exact`: the chain rule, `dp/dt = (diag p − p pᵀ) · J_z(x) · v` with
//!   `v = dT_t x/dt` the symmetric derivative of the bilinear resampling at
//!   `t = 0` (central differences of the image, see
//!   [`transform::translate_generator`](crate::transform::translate_generator)).
//!   Our classifier offers vector–Jacobian products, so `J_z · v` costs one
//!   input gradient per class: exact up to float rounding, whatever `v`.
//! - `finite_difference`: `(p(T_h x) − p(T_−h x)) / 2h`, two forward passes
//!   per transformation, with the plan's step (`step_px`, default 0.01 px;
//!   `step_deg`, default 0.1°). Bilinear resampling has a kink at `t = 0`
//!   (the one-sided derivatives differ), so the central difference is off by
//!   O(h), not O(h²), and a ReLU network's kinks add to that: keep steps small.
//!
//! Units: translations per pixel, rotations per radian.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::consistency::ShiftMode;
use super::types::{LieDerivativeSummary, LieTransformSummary, SampleLieDerivative};
use super::{Context, Outcome, Progress};
use crate::entry::Entry;
use crate::error::Result;
use crate::model::Objective;
use crate::stats::{mean, median, softmax_f64};
use crate::transform::{
    rotate, rotate_generator, translate, translate_circular, translate_generator, Axis, Border,
};

/// A one-parameter group of transformations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LieTransform {
    /// Horizontal translation, per pixel.
    TranslateX,
    /// Vertical translation, per pixel.
    TranslateY,
    /// Rotation about the centre, per radian.
    Rotate,
}

impl LieTransform {
    /// The name used in plans and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            LieTransform::TranslateX => "translate_x",
            LieTransform::TranslateY => "translate_y",
            LieTransform::Rotate => "rotate",
        }
    }

    /// Every transformation.
    pub const ALL: [LieTransform; 3] = [
        LieTransform::TranslateX,
        LieTransform::TranslateY,
        LieTransform::Rotate,
    ];
}

/// How the derivative in `t` is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LieMethod {
    /// Exact Jacobian–vector product (one input gradient per class).
    Exact,
    /// Central finite difference in `t` (two forward passes per transform).
    FiniteDifference,
}

impl LieMethod {
    /// Every method, by the name plans and reports use.
    pub const NAMES: &'static [(&'static str, LieMethod)] = &[
        ("exact", LieMethod::Exact),
        ("finite_difference", LieMethod::FiniteDifference),
    ];
}

/// Default method: the exact Jacobian–vector product.
pub const DEFAULT_METHOD: LieMethod = LieMethod::Exact;
/// Default finite-difference step of translations, pixels.
pub const DEFAULT_STEP_PX: f64 = 0.01;
/// Default finite-difference step of rotations, degrees.
pub const DEFAULT_STEP_DEG: f64 = 0.1;
/// Default edges of translations: zero fill.
pub const DEFAULT_BORDER: ShiftMode = ShiftMode::Zero;

/// `kind = "lie_derivative"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LieDerivativeConfig {
    /// The transformations, each reported separately (default: all three).
    #[schemars(extend("default" = LieTransform::ALL))]
    pub transforms: Vec<LieTransform>,
    /// Exact or finite difference (default exact).
    #[schemars(extend("default" = DEFAULT_METHOD))]
    pub method: LieMethod,
    /// Finite-difference step of translations, in pixels, in (0, 1]
    /// (default 0.01).
    #[schemars(extend("default" = DEFAULT_STEP_PX))]
    pub step_px: f64,
    /// Finite-difference step of rotations, in degrees, in (0, 45]
    /// (default 0.1).
    #[schemars(extend("default" = DEFAULT_STEP_DEG))]
    pub step_deg: f64,
    /// Edges of translations: zero fill or circular (rotations: zero fill;
    /// default zero).
    #[schemars(extend("default" = DEFAULT_BORDER))]
    pub border: ShiftMode,
}

impl LieDerivativeConfig {
    /// Reads the entry's keys, defaults filled in; problems are recorded in `e`.
    pub fn from_entry(e: &mut Entry) -> Self {
        let known: Vec<(&str, LieTransform)> =
            LieTransform::ALL.iter().map(|t| (t.as_str(), *t)).collect();
        let transforms = e
            .names("transforms", &known)
            .unwrap_or_else(|| LieTransform::ALL.to_vec());
        let method = e
            .choice("method", LieMethod::NAMES)
            .unwrap_or(DEFAULT_METHOD);
        let step_px = e.float_in("step_px", 0.0, 1.0).unwrap_or(DEFAULT_STEP_PX);
        let step_deg = e
            .float_in("step_deg", 0.0, 45.0)
            .unwrap_or(DEFAULT_STEP_DEG);
        for (key, v) in [("step_px", step_px), ("step_deg", step_deg)] {
            if v <= 0.0 {
                e.fail(key, "must be positive");
            }
        }
        LieDerivativeConfig {
            transforms,
            method,
            step_px,
            step_deg,
            border: e
                .choice("border", ShiftMode::NAMES)
                .unwrap_or(DEFAULT_BORDER),
        }
    }
}

fn border(mode: ShiftMode) -> Border {
    match mode {
        ShiftMode::Zero => Border::Zero,
        ShiftMode::Circular => Border::Circular,
    }
}

/// `dT_t x / dt` at `t = 0` for one `[C, H, W]` image in `[0, 1]`.
pub fn generator(t: LieTransform, x: &[f32], shape: [usize; 3], mode: ShiftMode) -> Vec<f32> {
    match t {
        LieTransform::TranslateX => translate_generator(x, shape, Axis::X, border(mode)),
        LieTransform::TranslateY => translate_generator(x, shape, Axis::Y, border(mode)),
        LieTransform::Rotate => rotate_generator(x, shape),
    }
}

/// `T_t x` for one image: `t` in pixels for translations, radians for rotations.
pub fn apply(
    t: LieTransform,
    x: &[f32],
    shape: [usize; 3],
    amount: f64,
    mode: ShiftMode,
) -> Vec<f32> {
    let shift = |dx: f64, dy: f64| match mode {
        ShiftMode::Zero => translate(x, shape, dx, dy),
        ShiftMode::Circular => translate_circular(x, shape, dx, dy),
    };
    match t {
        LieTransform::TranslateX => shift(amount, 0.0),
        LieTransform::TranslateY => shift(0.0, amount),
        LieTransform::Rotate => rotate(x, shape, amount.to_degrees()),
    }
}

/// Mean over classes of `|dp/dt|` given `p` and `dz/dt`.
fn mean_abs_softmax_derivative(p: &[f64], dz: &[f64]) -> f64 {
    let pdz: f64 = p.iter().zip(dz).map(|(a, b)| a * b).sum();
    p.iter()
        .zip(dz)
        .map(|(pk, dk)| (pk * (dk - pdz)).abs())
        .sum::<f64>()
        / p.len() as f64
}

/// Exact Lie derivatives of a batch (`x` in `[0, 1]`), `[transform][input]`.
pub fn exact(
    ctx: &Context,
    x: &[f32],
    logits: &[Vec<f32>],
    transforms: &[LieTransform],
    mode: ShiftMode,
) -> Result<Vec<Vec<f64>>> {
    let shape = ctx.shape();
    let [c, h, w] = shape;
    let per = ctx.item_len();
    let len = x.len() / per;
    let k = ctx.model.num_classes();
    let (lo, hi) = ctx.model.input_range();
    // Generators in the model's units: the range's affine map scales them.
    let generators: Vec<Vec<f32>> = transforms
        .iter()
        .map(|&t| {
            x.chunks(per)
                .flat_map(|img| generator(t, img, shape, mode))
                .map(|v| v * (hi - lo))
                .collect()
        })
        .collect();
    let input = Tensor::from_vec(ctx.to_model(x), (len, c, h, w), &Device::Cpu)?;
    // dz[t][i][j] = ⟨∂z_j/∂x_i, v_t,i⟩.
    let mut dz = vec![vec![vec![0f64; k]; len]; transforms.len()];
    for j in 0..k {
        let classes = vec![j as u32; len];
        let g: Vec<f32> = ctx
            .model
            .input_grad(&input, Objective::Logit(&classes))?
            .grad
            .flatten_all()?
            .to_vec1()?;
        for (rows, v) in dz.iter_mut().zip(&generators) {
            for ((row, gi), vi) in rows.iter_mut().zip(g.chunks(per)).zip(v.chunks(per)) {
                row[j] = gi.iter().zip(vi).map(|(a, b)| *a as f64 * *b as f64).sum();
            }
        }
    }
    Ok(dz
        .iter()
        .map(|rows| {
            rows.iter()
                .zip(logits)
                .map(|(d, z)| mean_abs_softmax_derivative(&softmax_f64(z), d))
                .collect()
        })
        .collect())
}

/// Central finite-difference Lie derivatives of a batch, `[transform][input]`.
pub fn finite_difference(
    ctx: &Context,
    x: &[f32],
    transforms: &[LieTransform],
    mode: ShiftMode,
    step_px: f64,
    step_deg: f64,
) -> Result<Vec<Vec<f64>>> {
    let shape = ctx.shape();
    let per = ctx.item_len();
    let mut out = Vec::with_capacity(transforms.len());
    for &t in transforms {
        let h = match t {
            LieTransform::Rotate => step_deg.to_radians(),
            _ => step_px,
        };
        let moved = |amount: f64| -> Result<Vec<Vec<f64>>> {
            let imgs: Vec<f32> = x
                .chunks(per)
                .flat_map(|img| apply(t, img, shape, amount, mode))
                .collect();
            Ok(ctx
                .logits_data(&imgs)?
                .iter()
                .map(|z| softmax_f64(z))
                .collect())
        };
        let (plus, minus) = (moved(h)?, moved(-h)?);
        out.push(
            plus.iter()
                .zip(&minus)
                .map(|(a, b)| {
                    a.iter()
                        .zip(b)
                        .map(|(pa, pb)| ((pa - pb) / (2.0 * h)).abs())
                        .sum::<f64>()
                        / a.len() as f64
                })
                .collect(),
        );
    }
    Ok(out)
}

/// Runs a `kind = "lie_derivative"` entry.
pub fn run(
    ctx: &Context,
    name: &str,
    spec: &LieDerivativeConfig,
    progress: Progress,
) -> Result<Outcome<LieDerivativeSummary, SampleLieDerivative>> {
    let n = ctx.len();
    let per = ctx.item_len();
    let mut values: Vec<Vec<f64>> = vec![Vec::with_capacity(n); spec.transforms.len()];
    for first in (0..n).step_by(ctx.batch_size) {
        let len = ctx.batch_size.min(n - first);
        let x = &ctx.data.pixels[first * per..(first + len) * per];
        let batch = match spec.method {
            LieMethod::Exact => exact(
                ctx,
                x,
                &ctx.clean_logits[first..first + len],
                &spec.transforms,
                spec.border,
            )?,
            LieMethod::FiniteDifference => finite_difference(
                ctx,
                x,
                &spec.transforms,
                spec.border,
                spec.step_px,
                spec.step_deg,
            )?,
        };
        for (all, b) in values.iter_mut().zip(batch) {
            all.extend(b);
        }
        progress((first + len) as f64 / n as f64);
    }
    let transforms = spec
        .transforms
        .iter()
        .zip(&values)
        .map(|(&t, v)| {
            let (unit, step) = match t {
                LieTransform::Rotate => ("per_rad", spec.step_deg.to_radians()),
                _ => ("per_px", spec.step_px),
            };
            LieTransformSummary {
                transform: t,
                unit: unit.to_string(),
                step: (spec.method == LieMethod::FiniteDifference).then_some(step),
                mean: mean(v.iter().copied()).unwrap_or(0.0),
                median: median(v).unwrap_or(0.0),
                max: v.iter().copied().fold(0.0, f64::max),
            }
        })
        .collect();
    let samples = (0..n)
        .map(|i| SampleLieDerivative {
            name: name.to_string(),
            values: values.iter().map(|v| v[i] as f32).collect(),
        })
        .collect();
    Ok(Outcome {
        summary: LieDerivativeSummary {
            name: name.to_string(),
            method: spec.method,
            border: spec.border,
            transforms,
        },
        samples,
        tensors: Vec::new(),
        warnings: Vec::new(),
        seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_derivative_by_hand() {
        // Two classes, p = (0.5, 0.5), dz = (1, −1): dp₀ = 0.5·(1 − 0) = 0.5.
        let v = mean_abs_softmax_derivative(&[0.5, 0.5], &[1.0, -1.0]);
        assert!((v - 0.5).abs() < 1e-12);
        // Shifting every logit alike changes nothing.
        assert!(mean_abs_softmax_derivative(&[0.2, 0.3, 0.5], &[2.0, 2.0, 2.0]).abs() < 1e-12);
    }
}
