//! GradientSHAP (Lundberg & Lee 2017, "A Unified Approach to Interpreting
//! Model Predictions"; Erion et al. 2021's expected gradients) with the
//! semantics of Captum 0.9's `GradientShap`, which is `NoiseTunnel`
//! (`smoothgrad`) over `InputBaselineXGradient`: for each of `samples` draws
//! per input, a noisy copy `x̃ = x + N(0, stdev²)` (input units, not clipped),
//! a baseline `b` drawn uniformly from the baseline set and `α ~ U(0, 1)`;
//! the gradient `g` of the explained class score at `α·x̃ + (1 − α)·b`
//! (Captum's `_scale_input`, in that order of operations); the attribution is
//! the mean over the draws of `(x̃ − b) ⊙ g`. On a linear model it is
//! `w ⊙ (x − E[b])` in expectation, exactly with a single baseline and no
//! noise.
//!
//! Baselines (`baselines`): `"black"` (one image at the low end of the
//! model's range, the default), a number in input units (one constant
//! image), or `"uniform"`: `baseline_samples` images of i.i.d. uniform noise
//! over the model's range, drawn per input from its own seeded generator.
//! Captum takes any tensor of baselines; these are the ones a plan can name
//! without data.
//!
//! The draws are per input, so maps never depend on the batch size: the
//! baseline images from the input's `Purpose::Baseline` generator, then, from
//! its `Purpose::Noise` generator, sample by sample, the baseline index, `α`
//! and the noise. [`GradientShap::attribute_with`] takes the draws explicitly,
//! so Captum's (`np.random.choice`, `torch.normal`, `np.random.uniform`, in
//! that order) can be replayed.
//!
//! Plan keys ([`GradientShapConfig`]): `samples`, `stdev`, `baselines`,
//! `baseline_samples`.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use toml::Value;

use super::{
    check_batch, logit_gradient, tensor4, Attribution, ExplainBatch, Explanation, MethodSettings,
    Purpose, MAX_GRAD_ROWS,
};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::Classifier;

/// Draws per input (Captum's `n_samples` default).
pub const DEFAULT_SAMPLES: usize = 5;

/// Noise standard deviation in input units (Captum's `stdevs` default: no
/// noise).
pub const DEFAULT_STDEV: f64 = 0.0;

/// The baselines by default: black, the low end of the model's range.
pub const DEFAULT_BASELINES: ShapBaselines = ShapBaselines::Named(ShapBaselineName::Black);

/// Uniform-noise baseline images per input, with `baselines = "uniform"`.
pub const DEFAULT_BASELINE_SAMPLES: usize = 10;

/// The baseline set a plan names.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ShapBaselines {
    /// One constant image of this value, in input units.
    Value(f64),
    /// A set that follows the model's range.
    Named(ShapBaselineName),
}

/// Baseline sets a plan can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShapBaselineName {
    /// One image at the low end of the model's range.
    Black,
    /// `baseline_samples` images of uniform noise over the model's range,
    /// per input.
    Uniform,
}

/// The `gradient_shap` method's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct GradientShapConfig {
    /// Draws per input (Captum's `n_samples`; default 5).
    #[schemars(range(min = 1))]
    pub samples: usize,
    /// Noise standard deviation in input units (Captum's `stdevs`; default
    /// 0, no noise).
    pub stdev: f64,
    /// `"black"` (default: the low end of the model's range), a number in
    /// input units, or `"uniform"` (`baseline_samples` uniform-noise images
    /// over the model's range, per input); `"zero"` is 0.
    pub baselines: ShapBaselines,
    /// With `baselines = "uniform"` only: images in the set (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_BASELINE_SAMPLES))]
    pub baseline_samples: Option<usize>,
}

impl Default for GradientShapConfig {
    fn default() -> Self {
        GradientShapConfig {
            samples: DEFAULT_SAMPLES,
            stdev: DEFAULT_STDEV,
            baselines: DEFAULT_BASELINES,
            baseline_samples: None,
        }
    }
}

/// `baselines`: a number, `"zero"`, `"black"` or `"uniform"`; `None` when
/// unset or wrong (recorded in the entry).
fn read_baselines(e: &mut Entry) -> Option<ShapBaselines> {
    const KEY: &str = "baselines";
    match e.take(KEY)? {
        Value::String(s) => match s.as_str() {
            "black" => Some(ShapBaselines::Named(ShapBaselineName::Black)),
            "uniform" => Some(ShapBaselines::Named(ShapBaselineName::Uniform)),
            "zero" => Some(ShapBaselines::Value(0.0)),
            other => {
                e.fail(
                    KEY,
                    format!("\"{other}\" is not a number, \"zero\", \"black\" or \"uniform\""),
                );
                None
            }
        },
        Value::Float(f) if !f.is_finite() => {
            e.fail(KEY, format!("must be finite, found {f}"));
            None
        }
        Value::Float(f) => Some(ShapBaselines::Value(f)),
        Value::Integer(i) => Some(ShapBaselines::Value(i as f64)),
        other => {
            e.fail(KEY, format!("must be a number, found {}", other.type_str()));
            None
        }
    }
}

/// Reads `baselines` and `baseline_samples` (GradientSHAP's keys, shared
/// with DeepLiftSHAP), unset ones at `default`: `baseline_samples` is
/// `Some` exactly with `"uniform"` baselines, and refused otherwise.
pub fn read_baseline_keys(e: &mut Entry, default: ShapBaselines) -> (ShapBaselines, Option<usize>) {
    let baselines = read_baselines(e).unwrap_or(default);
    let baseline_samples = if baselines == ShapBaselines::Named(ShapBaselineName::Uniform) {
        Some(
            e.positive_int("baseline_samples")
                .unwrap_or(DEFAULT_BASELINE_SAMPLES),
        )
    } else {
        if e.take("baseline_samples").is_some() {
            e.fail(
                "baseline_samples",
                "does not apply with the other settings of this entry (only with baselines = \"uniform\")",
            );
        }
        None
    };
    (baselines, baseline_samples)
}

impl ShapBaselines {
    /// The baseline set these settings name, `baseline_samples` images when
    /// uniform.
    pub fn resolve(self, baseline_samples: Option<usize>) -> BaselineSet {
        match self {
            ShapBaselines::Value(v) => BaselineSet::Constant(v as f32),
            ShapBaselines::Named(ShapBaselineName::Black) => BaselineSet::Black,
            ShapBaselines::Named(ShapBaselineName::Uniform) => BaselineSet::Uniform {
                count: baseline_samples.unwrap_or(DEFAULT_BASELINE_SAMPLES),
            },
        }
    }
}

impl MethodSettings for GradientShapConfig {
    type Method = GradientShap;

    fn from_entry(e: &mut Entry) -> Self {
        let samples = e.positive_int("samples").unwrap_or(DEFAULT_SAMPLES);
        let stdev = e.nonneg_float("stdev").unwrap_or(DEFAULT_STDEV);
        let (baselines, baseline_samples) = read_baseline_keys(e, DEFAULT_BASELINES);
        GradientShapConfig {
            samples,
            stdev,
            baselines,
            baseline_samples,
        }
    }

    fn build(&self, _input_hw: (usize, usize)) -> GradientShap {
        GradientShap {
            samples: self.samples,
            stdev: self.stdev as f32,
            baselines: self.baselines.resolve(self.baseline_samples),
        }
    }
}

/// The baseline distribution, resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BaselineSet {
    /// One image of this value, in input units.
    Constant(f32),
    /// One image at the low end of the model's range.
    Black,
    /// This many uniform-noise images over the model's range, per input.
    Uniform {
        /// Images in the set.
        count: usize,
    },
}

/// A batch's baseline images, drawn from a [`BaselineSet`].
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineImages {
    /// Images `[B, C, H, W]`, row-major, in input units.
    pub images: Vec<f32>,
    /// Whether each input has its own images (input `i`'s are block `i` of
    /// `N` equal blocks) rather than all inputs sharing every image.
    pub per_input: bool,
}

impl BaselineImages {
    /// Images in the whole set, for images of `per` values.
    pub fn len(&self, per: usize) -> usize {
        self.images.len() / per.max(1)
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The first index and the count of input `i`'s images, in a batch of
    /// `n` inputs with images of `per` values.
    pub fn of_input(&self, i: usize, n: usize, per: usize) -> (usize, usize) {
        let set = self.len(per);
        if self.per_input {
            let count = set / n.max(1);
            (i * count, count)
        } else {
            (0, set)
        }
    }
}

impl BaselineSet {
    /// The baseline images of `batch` (`shape` `[N, C, H, W]`) on a model of
    /// `range`: one constant image shared by all inputs, or `count` uniform
    /// images per input from its `Purpose::Baseline` generator.
    pub fn draw(
        &self,
        batch: &ExplainBatch,
        shape: [usize; 4],
        range: (f32, f32),
    ) -> BaselineImages {
        let [n, c, h, w] = shape;
        let per = c * h * w;
        match *self {
            BaselineSet::Constant(v) => BaselineImages {
                images: vec![v; per],
                per_input: false,
            },
            BaselineSet::Black => BaselineImages {
                images: vec![range.0; per],
                per_input: false,
            },
            BaselineSet::Uniform { count } => {
                let mut images = Vec::with_capacity(n * count.max(1) * per);
                for i in 0..n {
                    let mut rng = batch.rng(i, Purpose::Baseline);
                    for _ in 0..count.max(1) * per {
                        images.push(rng.uniform_range(range.0, range.1));
                    }
                }
                BaselineImages {
                    images,
                    per_input: true,
                }
            }
        }
    }
}

/// GradientSHAP.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradientShap {
    /// Draws per input (Captum's `n_samples`).
    pub samples: usize,
    /// Noise standard deviation in input units (Captum's `stdevs`).
    pub stdev: f32,
    /// Where the baselines come from.
    pub baselines: BaselineSet,
}

/// The random draws of one batch, explicit so they can be replayed. Rows
/// are `(input, sample)` pairs, input-major (Captum's `repeat_interleave`
/// order): row `r = i·samples + k`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapDraws {
    /// Baseline images `[B, C, H, W]`, row-major, in input units.
    pub baselines: Vec<f32>,
    /// The baseline of each row, an index into `baselines` (`[N·samples]`).
    pub baseline_index: Vec<usize>,
    /// The noise of each row `[N·samples, C, H, W]`, already scaled by the
    /// standard deviation, in input units.
    pub noise: Vec<f32>,
    /// `α` of each row, in `[0, 1)` (`[N·samples]`).
    pub alphas: Vec<f32>,
}

impl GradientShap {
    /// Draws the baselines, indices, noise and `α`s for `batch` (see the
    /// module doc for the order), each input from its own generators.
    pub fn draw(&self, batch: &ExplainBatch, shape: [usize; 4], range: (f32, f32)) -> ShapDraws {
        let [n, c, h, w] = shape;
        let per = c * h * w;
        let s = self.samples.max(1);
        let set = self.baselines.draw(batch, shape, range);
        let mut draws = ShapDraws {
            baselines: Vec::new(),
            baseline_index: Vec::with_capacity(n * s),
            noise: Vec::with_capacity(n * s * per),
            alphas: Vec::with_capacity(n * s),
        };
        for i in 0..n {
            let (first, count) = set.of_input(i, n, per);
            let mut rng = batch.rng(i, Purpose::Noise);
            for _ in 0..s {
                draws
                    .baseline_index
                    .push(first + rng.below(count as u64) as usize);
                draws.alphas.push(rng.uniform_f32());
                for _ in 0..per {
                    draws.noise.push(if self.stdev > 0.0 {
                        self.stdev * rng.normal()
                    } else {
                        0.0
                    });
                }
            }
        }
        draws.baselines = set.images;
        draws
    }

    /// The maps `[N, C, H, W]` for the batch with the given draws: what
    /// [`Attribution::explain`] computes after drawing them, public so that
    /// draws made elsewhere (Captum's, in the tests) can be replayed.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the batch does not fit the model or the draws
    /// do not fit the batch; model errors.
    pub fn attribute_with(
        &self,
        model: &dyn Classifier,
        batch: &ExplainBatch,
        draws: &ShapDraws,
    ) -> Result<Tensor> {
        let shape = check_batch(model, batch)?;
        let [n, c, h, w] = shape;
        let per = c * h * w;
        let s = self.samples.max(1);
        let set = draws.baselines.len() / per.max(1);
        if draws.baselines.len() != set * per
            || set == 0
            || draws.baseline_index.len() != n * s
            || draws.alphas.len() != n * s
            || draws.noise.len() != n * s * per
        {
            return Err(Error::Invalid(format!(
                "gradient_shap: draws for {n} inputs × {s} samples × {per} values need {} noise values, {} indices and α, and whole baselines (got {}, {}, {}, {})",
                n * s * per,
                n * s,
                draws.noise.len(),
                draws.baseline_index.len(),
                draws.alphas.len(),
                draws.baselines.len()
            )));
        }
        if let Some(&bad) = draws.baseline_index.iter().find(|&&b| b >= set) {
            return Err(Error::Invalid(format!(
                "gradient_shap: baseline index {bad} outside the {set} baselines"
            )));
        }
        let x: Vec<f32> = batch.x.flatten_all()?.to_vec1()?;
        let inputs_per_call = (MAX_GRAD_ROWS / s).max(1);
        let mut maps = vec![0f32; n * per];
        for first in (0..n).step_by(inputs_per_call) {
            let count = inputs_per_call.min(n - first);
            let mut points = Vec::with_capacity(count * s * per);
            let mut diffs = Vec::with_capacity(count * s * per);
            let mut classes = Vec::with_capacity(count * s);
            for i in first..first + count {
                let xi = &x[i * per..(i + 1) * per];
                for k in 0..s {
                    let r = i * s + k;
                    let eps = &draws.noise[r * per..(r + 1) * per];
                    let b = draws.baseline_index[r];
                    let base = &draws.baselines[b * per..(b + 1) * per];
                    let a = draws.alphas[r];
                    for j in 0..per {
                        let noisy = xi[j] + eps[j];
                        points.push(a * noisy + (1.0 - a) * base[j]);
                        diffs.push(noisy - base[j]);
                    }
                    classes.push(batch.classes[i]);
                }
            }
            let grad: Vec<f32> =
                logit_gradient(model, &tensor4(points, [count * s, c, h, w])?, &classes)?
                    .grad
                    .flatten_all()?
                    .to_vec1()?;
            for i in 0..count {
                let out = &mut maps[(first + i) * per..(first + i + 1) * per];
                for k in 0..s {
                    let row = (i * s + k) * per;
                    for (j, o) in out.iter_mut().enumerate() {
                        *o += diffs[row + j] * grad[row + j];
                    }
                }
                for o in out.iter_mut() {
                    *o /= s as f32;
                }
            }
        }
        tensor4(maps, shape)
    }
}

impl Attribution for GradientShap {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        let shape = check_batch(model, batch)?;
        let draws = self.draw(batch, shape, model.input_range());
        Ok(Explanation::maps(
            self.attribute_with(model, batch, &draws)?,
        ))
    }

    fn model_calls(&self) -> usize {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::attribution::test_models::linear;

    const W: [f32; 8] = [1.0, -2.0, 0.5, 0.0, 0.3, 0.3, -0.3, 0.3];

    fn run(
        g: GradientShap,
        first_index: usize,
        x: &Tensor,
        classes: &[u32],
        seed: u64,
    ) -> Vec<f32> {
        let net = linear(2, 2, &W, &[0.1, -0.2]);
        g.explain(
            &net,
            &ExplainBatch {
                x,
                classes,
                first_index,
                seed,
                stream: 0,
            },
        )
        .unwrap()
        .maps
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
    }

    /// The gradient of a linear model is constant, so with one baseline and
    /// no noise every draw gives w ⊙ (x − b), whatever α.
    #[test]
    fn on_a_linear_model_with_one_baseline_it_is_w_times_x_minus_baseline() {
        let xs = [0.1f32, 0.7, 0.3, 0.9, 0.5, 0.2, 0.8, 0.4];
        let x = Tensor::from_slice(&xs, (2, 1, 2, 2), &Device::Cpu).unwrap();
        let g = GradientShap {
            samples: 7,
            stdev: 0.0,
            baselines: BaselineSet::Constant(0.25),
        };
        let m = run(g, 0, &x, &[0, 1], 3);
        for i in 0..2 {
            for j in 0..4 {
                let want = W[(i * 4) + j] * (xs[i * 4 + j] - 0.25);
                assert!(
                    (m[i * 4 + j] - want).abs() < 1e-6,
                    "{i} {j}: {}",
                    m[i * 4 + j]
                );
            }
        }
    }

    /// With a baseline set and noise, a linear model's map is the mean of
    /// w ⊙ (x̃ − b) over the draws: its sum is the mean score gap.
    #[test]
    fn noise_and_a_baseline_set_average_over_the_draws() {
        let xs = [0.1f32, 0.7, 0.3, 0.9];
        let x = Tensor::from_slice(&xs, (1, 1, 2, 2), &Device::Cpu).unwrap();
        let g = GradientShap {
            samples: 6,
            stdev: 0.3,
            baselines: BaselineSet::Uniform { count: 3 },
        };
        let net = linear(2, 2, &W, &[0.1, -0.2]);
        let batch = ExplainBatch {
            x: &x,
            classes: &[0],
            first_index: 4,
            seed: 1,
            stream: 0,
        };
        let draws = g.draw(&batch, [1, 1, 2, 2], (0.0, 1.0));
        assert_eq!(draws.baselines.len(), 12);
        assert!(draws.baseline_index.iter().all(|&b| b < 3));
        assert!(draws.noise.iter().any(|v| v.abs() > 0.05));
        let m: Vec<f32> = g
            .attribute_with(&net, &batch, &draws)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for j in 0..4 {
            let mut want = 0f32;
            for k in 0..6 {
                let b = draws.baseline_index[k];
                want += W[j] * (xs[j] + draws.noise[k * 4 + j] - draws.baselines[b * 4 + j]);
            }
            want /= 6.0;
            assert!((m[j] - want).abs() < 1e-5, "{j}: {} vs {want}", m[j]);
        }
    }

    #[test]
    fn maps_do_not_depend_on_the_batch_and_seeds_reproduce() {
        let g = GradientShap {
            samples: 4,
            stdev: 0.2,
            baselines: BaselineSet::Uniform { count: 5 },
        };
        let xs = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
        let both = Tensor::from_slice(&xs, (2, 1, 2, 2), &Device::Cpu).unwrap();
        let second = Tensor::from_slice(&xs[4..], (1, 1, 2, 2), &Device::Cpu).unwrap();
        let a = run(g, 10, &both, &[0, 1], 5);
        let b = run(g, 11, &second, &[1], 5);
        assert_eq!(a[4..], b[..]);
        assert_eq!(a, run(g, 10, &both, &[0, 1], 5));
        assert_ne!(a, run(g, 10, &both, &[0, 1], 6));
    }

    #[test]
    fn draws_that_do_not_fit_are_refused() {
        let g = GradientShap {
            samples: 2,
            stdev: 0.0,
            baselines: BaselineSet::Black,
        };
        let net = linear(2, 2, &W, &[0.1, -0.2]);
        let x = Tensor::zeros((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let batch = ExplainBatch {
            x: &x,
            classes: &[0],
            first_index: 0,
            seed: 0,
            stream: 0,
        };
        let mut d = g.draw(&batch, [1, 1, 2, 2], (0.0, 1.0));
        d.baseline_index[1] = 3;
        let err = g.attribute_with(&net, &batch, &d).unwrap_err().to_string();
        assert!(err.contains("baseline index 3"), "{err}");
        d.baseline_index[1] = 0;
        d.alphas.pop();
        assert!(g.attribute_with(&net, &batch, &d).is_err());
    }
}
