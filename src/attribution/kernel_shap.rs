//! KernelSHAP (Lundberg & Lee 2017, "A Unified Approach to Interpreting
//! Model Predictions") with the semantics of Captum 0.9's `KernelShap`: the
//! interpretable features are segments of the input ([`super::surrogate`]:
//! a grid of square patches), an off segment's pixels (all channels) taking
//! the `baseline` value. The first two of `samples` perturbations are all
//! segments on and all off; each further one switches on `k` segments, `k`
//! drawn from `1..M` with probability ∝ (M − 1)/(k(M − k)) (the Shapley
//! kernel's mass for coalitions of size `k`), then that many segments
//! uniformly. Because the sampling follows the kernel, the fit weights each
//! sample 1, except the all-on and all-off samples, weighted 10⁶ (Captum's
//! `inf_weight`, standing in for the kernel's infinite weight). The
//! explained class score is fitted on the on/off vectors by weighted least
//! squares with an intercept (Captum's `SkLearnLinearRegression`, solved by
//! [`super::surrogate::weighted_least_squares`]: minimum norm when the
//! samples do not determine the fit). Each pixel gets its segment's Shapley
//! value estimate (Captum's `return_input_shape=True`), in units of the
//! class score; on an additive model they are exact. Forward passes only.
//!
//! Samples are drawn per input from its own generator, so maps never
//! depend on the batch size; [`KernelShap::attribute_with`] takes them
//! explicitly so Captum's can be replayed.
//!
//! Plan keys ([`KernelShapConfig`]): `samples`, `segments`, `patch_size`,
//! `baseline`.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::surrogate::{
    design, perturbed_scores, read_segment_keys, resolve_patch_size, weighted_least_squares,
    SegmentKind, Segmenter, Segments,
};
use super::{
    check_batch, tensor4, Attribution, ExplainBatch, Explanation, Fill, MethodSettings, Purpose,
    SettingError,
};
use crate::entry::Entry;
use crate::error::Result;
use crate::model::{ArchSpec, Classifier};

/// Perturbations per input, the all-on and all-off ones included. Captum's
/// `KernelShap.attribute` default is 25, fewer than the 49 segments of a
/// 28×28 grid (the fit would then be the minimum-norm one).
pub const DEFAULT_SAMPLES: usize = 200;

/// The fit weight of the all-on and all-off samples (Captum's `inf_weight`).
pub const EXTREME_WEIGHT: f64 = 1e6;

/// The `kernel_shap` method's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct KernelShapConfig {
    /// Perturbations per input, the all-on and all-off ones included
    /// (Captum's `n_samples`, whose default is 25; default 200; at least 2).
    #[schemars(range(min = 2))]
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
}

impl Default for KernelShapConfig {
    fn default() -> Self {
        KernelShapConfig {
            samples: DEFAULT_SAMPLES,
            segments: SegmentKind::Grid,
            patch_size: None,
            n_segments: None,
            compactness: None,
            baseline: super::surrogate::DEFAULT_BASELINE,
        }
    }
}

impl MethodSettings for KernelShapConfig {
    type Method = KernelShap;

    fn from_entry(e: &mut Entry) -> Self {
        let mut samples = e.positive_int("samples").unwrap_or(DEFAULT_SAMPLES);
        if samples < 2 {
            e.fail(
                "samples",
                format!("must be at least 2 (all segments on, all off), found {samples}"),
            );
            samples = DEFAULT_SAMPLES;
        }
        let keys = read_segment_keys(e);
        KernelShapConfig {
            samples,
            segments: keys.segments,
            patch_size: keys.patch_size,
            n_segments: keys.n_segments,
            compactness: keys.compactness,
            baseline: keys.baseline,
        }
    }

    /// An unset `patch_size` follows the input size; the grid needs at
    /// least two segments.
    fn resolve(&mut self, model: &ArchSpec) -> std::result::Result<(), SettingError> {
        let [_, h, w] = model.input.shape;
        resolve_patch_size(self.segments, &mut self.patch_size, (h, w))
    }

    fn build(&self, input_hw: (usize, usize)) -> KernelShap {
        let patch = self
            .patch_size
            .unwrap_or(super::surrogate::default_patch_size(input_hw));
        KernelShap {
            samples: self.samples,
            segmenter: Segmenter::new(
                self.segments,
                patch,
                self.n_segments,
                self.compactness,
                input_hw,
            ),
            baseline: self.baseline,
        }
    }
}

/// KernelSHAP over a segmentation.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelShap {
    /// Perturbations per input, the all-on and all-off ones included.
    pub samples: usize,
    /// How each input is cut into the interpretable features.
    pub segmenter: Segmenter,
    /// Off segments' value (a number in input units, or black).
    pub baseline: Fill,
}

impl KernelShap {
    /// Each input's on/off vectors over its `segments`, `samples ×
    /// segments` row-major: all on, all off, then coalitions whose size
    /// follows the Shapley kernel, from the input's own generator. With a
    /// single segment, the rows alternate all on and all off.
    pub fn draw(&self, batch: &ExplainBatch, segments: &[Segments]) -> Vec<Vec<u8>> {
        segments
            .iter()
            .enumerate()
            .map(|(i, segmentation)| {
                let m = segmentation.count;
                // Cumulative mass of the coalition sizes 1..m−1.
                let mass: Vec<f64> = (1..m)
                    .map(|k| (m - 1) as f64 / (k * (m - k)) as f64)
                    .scan(0.0, |acc, p| {
                        *acc += p;
                        Some(*acc)
                    })
                    .collect();
                let total = mass.last().copied().unwrap_or(0.0);
                let mut rng = batch.rng(i, Purpose::Perturbation);
                let mut out = Vec::with_capacity(self.samples * m);
                for s in 0..self.samples {
                    if s < 2 || m < 2 {
                        out.extend(std::iter::repeat_n((s % 2 == 0) as u8, m));
                        continue;
                    }
                    let u = rng.uniform_f64() * total;
                    let k = 1 + mass.iter().position(|&c| u < c).unwrap_or(m - 2);
                    let mut order: Vec<usize> = (0..m).collect();
                    // The first k of a partial Fisher–Yates shuffle.
                    for j in 0..k {
                        let pick = j + rng.below((m - j) as u64) as usize;
                        order.swap(j, pick);
                    }
                    let mut row = vec![0u8; m];
                    for &j in &order[..k] {
                        row[j] = 1;
                    }
                    out.extend(row);
                }
                out
            })
            .collect()
    }

    /// The maps `[N, C, H, W]` for the batch, each input cut into
    /// `segments[i]`, with the given on/off vectors (`masks[i]`: input
    /// `i`'s, `samples × segments` row-major, 0 or 1); rows with every
    /// segment on or every segment off weigh [`EXTREME_WEIGHT`] in the fit,
    /// the others 1.
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
        let scores = perturbed_scores(model, batch, segments, fill, masks)?.scores;
        let mut maps = Vec::with_capacity(shape.iter().product());
        for i in 0..shape[0] {
            let m = segments[i].count;
            let x = design(&masks[i])?;
            let y: Vec<f64> = scores[i].iter().map(|&v| v as f64).collect();
            let w: Vec<f64> = masks[i]
                .chunks(m)
                .map(|row| {
                    let on = row.iter().filter(|&&b| b != 0).count();
                    if on == 0 || on == m {
                        EXTREME_WEIGHT
                    } else {
                        1.0
                    }
                })
                .collect();
            let beta = weighted_least_squares(&x, &y, &w, m);
            maps.extend(segments[i].paint(&beta, shape[1]));
        }
        tensor4(maps, shape)
    }
}

impl Attribution for KernelShap {
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

    /// Two classes' weights; class 0 is explained.
    fn weights() -> Vec<f32> {
        (0..48).map(|j| ((j * 7) % 5) as f32 * 0.2 - 0.4).collect()
    }

    fn grid() -> Segments {
        Segments::grid((4, 6), 2)
    }

    fn kernel_shap(samples: usize, baseline: f64) -> KernelShap {
        KernelShapConfig {
            samples,
            patch_size: Some(2),
            baseline: Fill::Value(baseline),
            ..KernelShapConfig::default()
        }
        .build((4, 6))
    }

    fn run(k: &KernelShap, first_index: usize, x: &Tensor, seed: u64) -> Vec<f32> {
        let net = linear(4, 6, &weights(), &[0.3, -0.1]);
        let classes = vec![0u32; x.dims()[0]];
        k.explain(
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

    /// An additive model's Shapley values are its terms: each segment gets
    /// Σ w·(x − baseline) over its pixels, whatever the samples.
    #[test]
    fn on_a_linear_model_each_segment_gets_its_exact_shapley_value() {
        let xs: Vec<f32> = (0..24).map(|j| 0.1 + 0.03 * j as f32).collect();
        let x = Tensor::from_slice(&xs, (1, 1, 4, 6), &Device::Cpu).unwrap();
        let k = kernel_shap(40, 0.2);
        let m = run(&k, 0, &x, 2);
        let w = weights();
        let mut want = [0f32; 6];
        for j in 0..24 {
            want[grid().of_pixel[j]] += w[j] * (xs[j] - 0.2);
        }
        for j in 0..24 {
            let t = want[grid().of_pixel[j]];
            assert!((m[j] - t).abs() < 1e-5, "{j}: {} vs {t}", m[j]);
        }
    }

    /// With SLIC superpixels, each input its own: every superpixel gets the
    /// additive model's exact term, and maps do not depend on the batch.
    #[test]
    fn slic_superpixels_get_their_exact_shapley_values() {
        let k = KernelShapConfig {
            samples: 80,
            segments: SegmentKind::Slic,
            n_segments: Some(6),
            compactness: Some(0.1),
            baseline: Fill::Value(0.0),
            ..KernelShapConfig::default()
        }
        .build((4, 6));
        let xs: Vec<f32> = (0..48)
            .map(|j| {
                if j % 6 < 3 {
                    0.9
                } else {
                    0.2 + 0.01 * j as f32
                }
            })
            .collect();
        let both = Tensor::from_slice(&xs, (2, 1, 4, 6), &Device::Cpu).unwrap();
        let second = Tensor::from_slice(&xs[24..], (1, 1, 4, 6), &Device::Cpu).unwrap();
        let m = run(&k, 0, &both, 3);
        // The same draws; the forward passes of 160 and 80 rows may round
        // differently in the last bit.
        for (a, b) in m[24..].iter().zip(run(&k, 1, &second, 3)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let w = weights();
        for i in 0..2 {
            let x = &xs[i * 24..(i + 1) * 24];
            let segments = crate::attribution::surrogate::slic(x, [1, 4, 6], (0.0, 1.0), 6, 0.1);
            assert!(segments.count >= 2);
            let mut want = vec![0f32; segments.count];
            for j in 0..24 {
                want[segments.of_pixel[j]] += w[j] * x[j];
            }
            for j in 0..24 {
                let t = want[segments.of_pixel[j]];
                assert!(
                    (m[i * 24 + j] - t).abs() < 1e-5,
                    "{i} {j}: {} vs {t}",
                    m[i * 24 + j]
                );
            }
        }
    }

    #[test]
    fn samples_start_all_on_then_all_off_and_are_never_extreme_after() {
        let x = Tensor::zeros((1, 1, 4, 6), candle_core::DType::F32, &Device::Cpu).unwrap();
        let k = kernel_shap(50, 0.0);
        let batch = ExplainBatch {
            x: &x,
            classes: &[0],
            first_index: 0,
            seed: 4,
            stream: 0,
        };
        let masks = k.draw(&batch, &[grid()]);
        let rows: Vec<&[u8]> = masks[0].chunks(6).collect();
        assert_eq!(rows[0], [1; 6]);
        assert_eq!(rows[1], [0; 6]);
        for r in &rows[2..] {
            let on = r.iter().filter(|&&b| b == 1).count();
            assert!((1..6).contains(&on), "{r:?}");
        }
    }

    #[test]
    fn maps_do_not_depend_on_the_batch_and_seeds_reproduce() {
        let xs: Vec<f32> = (0..48).map(|j| (j as f32 * 0.37).sin().abs()).collect();
        let both = Tensor::from_slice(&xs, (2, 1, 4, 6), &Device::Cpu).unwrap();
        let second = Tensor::from_slice(&xs[24..], (1, 1, 4, 6), &Device::Cpu).unwrap();
        // Too few samples to determine the fit, so the draws show.
        let k = kernel_shap(4, 0.0);
        let a = run(&k, 10, &both, 5);
        let b = run(&k, 11, &second, 5);
        assert_eq!(a[24..], b[..]);
        assert_eq!(a, run(&k, 10, &both, 5));
        assert_ne!(a, run(&k, 10, &both, 6));
    }
}
