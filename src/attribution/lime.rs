//! LIME (Ribeiro, Singh & Guestrin 2016, "Why Should I Trust You?") with the
//! semantics of Captum 0.9's `Lime` defaults: the interpretable features are
//! segments of the input ([`super::surrogate`]: a grid of square patches);
//! each of `samples` perturbations switches every segment on or off with
//! probability ½ (Captum's `default_perturb_func`), an off segment's pixels
//! (all channels) taking the `baseline` value; each perturbed copy is
//! weighted by the exponential kernel on the cosine distance to the input,
//! `exp(−d²/(2·kernel_width²))` with `d = 1 − cos(x, x′)` (Captum's
//! `get_exp_kernel_similarity_function("cosine", 1.0)`); the explained class
//! score is fitted on the on/off vectors by a weighted Lasso with an
//! intercept (Captum's `SkLearnLasso(alpha=0.01)`, scikit-learn's objective
//! `(1/(2n))·Σ w̃ᵢ(yᵢ − xᵢ·β − b)² + α‖β‖₁`, solved by
//! [`super::surrogate::lasso`]). Each pixel gets its segment's coefficient
//! (Captum's `return_input_shape=True`): units of the class score per
//! segment switched on. Forward passes only.
//!
//! Samples are drawn per input from its own generator, so maps never
//! depend on the batch size; [`Lime::attribute_with`] takes them explicitly
//! so Captum's can be replayed.
//!
//! Plan keys ([`LimeConfig`]): `samples`, `segments`, `patch_size`,
//! `baseline`, `kernel_width`, `alpha`.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::surrogate::{
    design, lasso, perturbed_scores, read_segment_keys, resolve_patch_size, Perturbed, SegmentKind,
    Segmenter, Segments,
};
use super::{
    check_batch, tensor4, Attribution, ExplainBatch, Explanation, Fill, MethodSettings, Purpose,
    SettingError,
};
use crate::entry::Entry;
use crate::error::Result;
use crate::model::{ArchSpec, Classifier};

/// Perturbations per input. Captum's `Lime.attribute` default is 25, too
/// few for the 49 segments of a 28×28 grid.
pub const DEFAULT_SAMPLES: usize = 200;

/// The kernel width on the cosine distance (Captum's default).
pub const DEFAULT_KERNEL_WIDTH: f64 = 1.0;

/// The Lasso's L1 weight (Captum's `SkLearnLasso(alpha=0.01)`).
pub const DEFAULT_ALPHA: f64 = 0.01;

/// The `lime` method's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct LimeConfig {
    /// Perturbations per input (Captum's `n_samples`, whose default is 25;
    /// default 200).
    #[schemars(range(min = 1))]
    pub samples: usize,
    /// How the input is cut into features: `"grid"` (default: square
    /// patches) or `"slic"` (SLIC superpixels of each input).
    pub segments: SegmentKind,
    /// With `segments = "grid"` only: the patch side in pixels. Unset in a
    /// plan: an eighth of the shorter side, rounded up (4 on 28×28, 28 on
    /// 224×224), filled in when the plan is resolved against the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "⌈min(H, W)/8⌉ (4 on 28×28)"}}))]
    pub patch_size: Option<usize>,
    /// With `segments = "slic"` only: about how many superpixels (default
    /// 64).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = super::surrogate::DEFAULT_N_SEGMENTS))]
    pub n_segments: Option<usize>,
    /// With `segments = "slic"` only: the weight of spatial against colour
    /// distance, colours scaled to `[0, 1]` by the model's range (default
    /// 0.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = super::surrogate::DEFAULT_COMPACTNESS))]
    pub compactness: Option<f64>,
    /// The value of an off segment's pixels: a number in input units,
    /// `"zero"`, or `"black"`, the low end of the model's range (default).
    pub baseline: Fill,
    /// Width of the exponential kernel on the cosine distance (default 1).
    pub kernel_width: f64,
    /// The Lasso's L1 weight α (default 0.01).
    pub alpha: f64,
}

impl Default for LimeConfig {
    fn default() -> Self {
        LimeConfig {
            samples: DEFAULT_SAMPLES,
            segments: SegmentKind::Grid,
            patch_size: None,
            n_segments: None,
            compactness: None,
            baseline: super::surrogate::DEFAULT_BASELINE,
            kernel_width: DEFAULT_KERNEL_WIDTH,
            alpha: DEFAULT_ALPHA,
        }
    }
}

impl MethodSettings for LimeConfig {
    type Method = Lime;

    fn from_entry(e: &mut Entry) -> Self {
        let samples = e.positive_int("samples").unwrap_or(DEFAULT_SAMPLES);
        let keys = read_segment_keys(e);
        LimeConfig {
            samples,
            segments: keys.segments,
            patch_size: keys.patch_size,
            n_segments: keys.n_segments,
            compactness: keys.compactness,
            baseline: keys.baseline,
            kernel_width: e
                .positive_float("kernel_width")
                .unwrap_or(DEFAULT_KERNEL_WIDTH),
            alpha: e.positive_float("alpha").unwrap_or(DEFAULT_ALPHA),
        }
    }

    /// An unset `patch_size` follows the input size; the grid needs at
    /// least two segments.
    fn resolve(&mut self, model: &ArchSpec) -> std::result::Result<(), SettingError> {
        let [_, h, w] = model.input.shape;
        resolve_patch_size(self.segments, &mut self.patch_size, (h, w))
    }

    fn build(&self, input_hw: (usize, usize)) -> Lime {
        let patch = self
            .patch_size
            .unwrap_or(super::surrogate::default_patch_size(input_hw));
        Lime {
            samples: self.samples,
            segmenter: Segmenter::new(
                self.segments,
                patch,
                self.n_segments,
                self.compactness,
                input_hw,
            ),
            baseline: self.baseline,
            kernel_width: self.kernel_width,
            alpha: self.alpha,
        }
    }
}

/// LIME over a segmentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Lime {
    /// Perturbations per input.
    pub samples: usize,
    /// How each input is cut into the interpretable features.
    pub segmenter: Segmenter,
    /// Off segments' value (a number in input units, or black).
    pub baseline: Fill,
    /// Width of the exponential kernel on the cosine distance.
    pub kernel_width: f64,
    /// The Lasso's L1 weight.
    pub alpha: f64,
}

impl Lime {
    /// Each input's on/off vectors over its `segments`, `samples ×
    /// segments` row-major, each segment on with probability ½, from the
    /// input's own generator.
    pub fn draw(&self, batch: &ExplainBatch, segments: &[Segments]) -> Vec<Vec<u8>> {
        segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut rng = batch.rng(i, Purpose::Perturbation);
                (0..self.samples * s.count)
                    .map(|_| (rng.uniform_f32() < 0.5) as u8)
                    .collect()
            })
            .collect()
    }

    /// The maps `[N, C, H, W]` for the batch, each input cut into
    /// `segments[i]`, with the given on/off vectors (`masks[i]`: input
    /// `i`'s, `samples × segments` row-major, 0 or 1).
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] when the batch does not fit the model or
    /// the masks do not fit the segments; model errors.
    pub fn attribute_with(
        &self,
        model: &dyn Classifier,
        batch: &ExplainBatch,
        segments: &[Segments],
        masks: &[Vec<u8>],
    ) -> Result<Tensor> {
        let shape = check_batch(model, batch)?;
        let fill = self.baseline.resolve(model.input_range());
        let Perturbed { scores, cosines } = perturbed_scores(model, batch, segments, fill, masks)?;
        let mut maps = Vec::with_capacity(shape.iter().product());
        for i in 0..shape[0] {
            let x = design(&masks[i])?;
            let y: Vec<f64> = scores[i].iter().map(|&v| v as f64).collect();
            let width2 = 2.0 * self.kernel_width * self.kernel_width;
            let w: Vec<f64> = cosines[i]
                .iter()
                .map(|c| (-(1.0 - c).powi(2) / width2).exp())
                .collect();
            let beta = lasso(&x, &y, &w, segments[i].count, self.alpha);
            maps.extend(segments[i].paint(&beta, shape[1]));
        }
        tensor4(maps, shape)
    }
}

impl Attribution for Lime {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        let shape = check_batch(model, batch)?;
        let x: Vec<f32> = batch.x.flatten_all()?.to_vec1()?;
        let segments = self.segmenter.segments(&x, shape, model.input_range());
        let masks = self.draw(batch, &segments);
        Ok(Explanation::maps(
            self.attribute_with(model, batch, &segments, &masks)?,
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

    fn lime(samples: usize, alpha: f64) -> Lime {
        LimeConfig {
            samples,
            patch_size: Some(2),
            alpha,
            ..LimeConfig::default()
        }
        .build((4, 4))
    }

    fn weights() -> Vec<f32> {
        (0..16)
            .map(|j| if j % 4 < 2 { 0.5 } else { -0.25 })
            .collect()
    }

    fn run(l: &Lime, first_index: usize, x: &Tensor, seed: u64) -> Vec<f32> {
        let net = linear(4, 4, &weights(), &[0.3]);
        let classes = vec![1u32; x.dims()[0]];
        l.explain(
            &net,
            &ExplainBatch {
                x,
                classes: &classes,
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

    /// On an additive (linear) model with a black baseline and a tiny L1
    /// weight, the Lasso recovers each segment's contribution Σ w·x.
    #[test]
    fn on_a_linear_model_each_segment_gets_its_contribution() {
        let xs: Vec<f32> = (0..16).map(|j| 0.2 + 0.05 * j as f32).collect();
        let x = Tensor::from_slice(&xs, (1, 1, 4, 4), &Device::Cpu).unwrap();
        let m = run(&lime(300, 1e-6), 0, &x, 1);
        let w = weights();
        let segments = Segments::grid((4, 4), 2);
        let mut want = [0f32; 4];
        for j in 0..16 {
            want[segments.of_pixel[j]] += w[j] * xs[j];
        }
        for j in 0..16 {
            let v = m[j];
            let t = want[segments.of_pixel[j]];
            assert!((v - t).abs() < 1e-3 * t.abs().max(1.0), "{j}: {v} vs {t}");
        }
    }

    #[test]
    fn maps_do_not_depend_on_the_batch_and_seeds_reproduce() {
        let xs: Vec<f32> = (0..32).map(|j| (j as f32 * 0.37).sin().abs()).collect();
        let both = Tensor::from_slice(&xs, (2, 1, 4, 4), &Device::Cpu).unwrap();
        let second = Tensor::from_slice(&xs[16..], (1, 1, 4, 4), &Device::Cpu).unwrap();
        let l = lime(30, 0.01);
        let a = run(&l, 10, &both, 5);
        let b = run(&l, 11, &second, 5);
        assert_eq!(a[16..], b[..]);
        assert_eq!(a, run(&l, 10, &both, 5));
        assert_ne!(a, run(&l, 10, &both, 6));
    }
}
