//! DeepLIFT SHAP (Lundberg & Lee 2017, "A Unified Approach to Interpreting
//! Model Predictions", §4.2), as Captum 0.9's `DeepLiftShap` with its
//! default `multiply_by_inputs=True`: for each input, DeepLIFT (the rescale
//! rule, [`super::deeplift`]) against every baseline of a baseline
//! distribution, the maps averaged over the baselines. Captum expands the
//! batch to inputs × baselines (`repeat_interleave` of the inputs, `repeat`
//! of the baselines) and takes the mean per input; so does this, in rows of
//! at most [`MAX_GRAD_ROWS`].
//!
//! Convergence delta: Captum returns one per (input, baseline) pair,
//! `Σ map_b − (z(x) − z(b))` with `map_b` the map against baseline `b`; the
//! report keeps one per input, the mean of its pairs' deltas, which is the
//! averaged map's own delta: `Σ map − (z(x) − mean_b z(b))`. It is 0 up to
//! rounding where DeepLIFT's is (networks of ReLU, leaky ReLU, sigmoid, tanh
//! and linear layers), and like DeepLIFT's not through max pooling, GELU or
//! SiLU.
//!
//! Baselines are GradientSHAP's set ([`super::gradient_shap::BaselineSet`],
//! drawn by the same code): `"uniform"` (the default: `baseline_samples`
//! images of uniform noise over the model's range, per input, from its
//! seeded generator, so maps never depend on the batch size), `"black"` or a
//! number (one constant image: then the map is DeepLIFT's against it; Captum
//! refuses a single baseline and points to `DeepLift`).
//! [`DeepLiftShap::attribute_with`] takes the baselines explicitly, so a
//! set given to Captum can be replayed.
//!
//! Runs on the reference path whatever engine the audit uses.
//!
//! Plan keys ([`DeepLiftShapConfig`]): `baselines`, `baseline_samples`.

use serde::{Deserialize, Serialize};

use super::deeplift::raw_score;
use super::gradient_shap::{
    read_baseline_keys, BaselineImages, BaselineSet, ShapBaselineName, ShapBaselines,
    DEFAULT_BASELINE_SAMPLES,
};
use super::{
    check_batch, tensor4, Attribution, ExplainBatch, Explanation, MethodSettings, MAX_GRAD_ROWS,
};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::Classifier;

/// The baselines by default: uniform noise over the model's range (a
/// distribution, as Captum requires; one constant image would be DeepLIFT).
pub const DEFAULT_BASELINES: ShapBaselines = ShapBaselines::Named(ShapBaselineName::Uniform);

/// The `deeplift_shap` method's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct DeepLiftShapConfig {
    /// `"uniform"` (default: `baseline_samples` uniform-noise images over
    /// the model's range, per input), `"black"` (one image at the range's
    /// low end) or a number in input units; `"zero"` is 0.
    pub baselines: ShapBaselines,
    /// With `baselines = "uniform"` only: images in the set (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_BASELINE_SAMPLES))]
    pub baseline_samples: Option<usize>,
}

impl Default for DeepLiftShapConfig {
    fn default() -> Self {
        DeepLiftShapConfig {
            baselines: DEFAULT_BASELINES,
            baseline_samples: Some(DEFAULT_BASELINE_SAMPLES),
        }
    }
}

impl MethodSettings for DeepLiftShapConfig {
    type Method = DeepLiftShap;

    fn from_entry(e: &mut Entry) -> Self {
        let (baselines, baseline_samples) = read_baseline_keys(e, DEFAULT_BASELINES);
        DeepLiftShapConfig {
            baselines,
            baseline_samples,
        }
    }

    fn build(&self, _input_hw: (usize, usize)) -> DeepLiftShap {
        DeepLiftShap {
            baselines: self.baselines.resolve(self.baseline_samples),
        }
    }
}

/// DeepLIFT averaged over a baseline distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeepLiftShap {
    /// Where the baselines come from.
    pub baselines: BaselineSet,
}

impl DeepLiftShap {
    /// The maps `[N, C, H, W]` and per-input convergence deltas (the mean
    /// over the input's baselines) for `batch` against `baselines`: what
    /// [`Attribution::explain`] computes after drawing them, public so that
    /// a baseline set given to Captum can be replayed.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the batch does not fit the model, the
    /// baselines do not fit the batch, or the classifier does not expose
    /// its layers; model errors.
    pub fn attribute_with(
        &self,
        model: &dyn Classifier,
        batch: &ExplainBatch,
        baselines: &BaselineImages,
    ) -> Result<Explanation> {
        let shape = check_batch(model, batch)?;
        let net = model.network().ok_or_else(|| {
            Error::Invalid(
                "DeepLiftShap needs the model's layers, and this classifier does not expose them"
                    .into(),
            )
        })?;
        let [n, c, h, w] = shape;
        let per = c * h * w;
        let set = baselines.len(per);
        if set == 0
            || baselines.images.len() != set * per
            || (baselines.per_input && set % n.max(1) != 0)
        {
            return Err(Error::Invalid(format!(
                "deeplift_shap: {} baseline values are not whole images of {per} values{}",
                baselines.images.len(),
                if baselines.per_input {
                    format!(", as many for each of {n} inputs")
                } else {
                    String::new()
                }
            )));
        }
        // Rows (input, baseline), input-major as Captum's repeat_interleave.
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for i in 0..n {
            let (first, count) = baselines.of_input(i, n, per);
            rows.extend((first..first + count).map(|b| (i, b)));
        }
        let x: Vec<f32> = batch.x.flatten_all()?.to_vec1()?;
        let mut sums = vec![0f64; n * per];
        let mut delta_sums = vec![0f64; n];
        let mut pairs = vec![0usize; n];
        for chunk in rows.chunks(MAX_GRAD_ROWS) {
            let mut xs = Vec::with_capacity(chunk.len() * per);
            let mut bs = Vec::with_capacity(chunk.len() * per);
            let mut classes = Vec::with_capacity(chunk.len());
            for &(i, b) in chunk {
                xs.extend_from_slice(&x[i * per..(i + 1) * per]);
                bs.extend_from_slice(&baselines.images[b * per..(b + 1) * per]);
                classes.push(batch.classes[i]);
            }
            let rows_shape = [chunk.len(), c, h, w];
            let dl = net.deeplift_gradient(
                &tensor4(xs.clone(), rows_shape)?,
                &tensor4(bs.clone(), rows_shape)?,
                &classes,
            )?;
            let m: Vec<f32> = dl.multipliers.flatten_all()?.to_vec1()?;
            let z: Vec<Vec<f32>> = dl.outputs.to_vec2()?;
            let z0: Vec<Vec<f32>> = dl.baseline_outputs.to_vec2()?;
            for (r, &(i, _)) in chunk.iter().enumerate() {
                let mut total = 0f64;
                let out = &mut sums[i * per..(i + 1) * per];
                for (j, o) in out.iter_mut().enumerate() {
                    let k = r * per + j;
                    // Captum's map: multipliers × (x − b), in f32.
                    let a = (xs[k] - bs[k]) * m[k];
                    *o += a as f64;
                    total += a as f64;
                }
                let class = classes[r];
                delta_sums[i] += total - (raw_score(&z[r], class) - raw_score(&z0[r], class));
                pairs[i] += 1;
            }
        }
        let mut maps = Vec::with_capacity(n * per);
        for i in 0..n {
            let k = pairs[i].max(1) as f64;
            maps.extend(sums[i * per..(i + 1) * per].iter().map(|s| (s / k) as f32));
        }
        let delta = (0..n)
            .map(|i| delta_sums[i] / pairs[i].max(1) as f64)
            .collect();
        Ok(Explanation {
            maps: tensor4(maps, shape)?,
            convergence_delta: Some(delta),
            noise: None,
        })
    }

    /// Baseline images per input.
    fn per_input(&self) -> usize {
        match self.baselines {
            BaselineSet::Constant(_) | BaselineSet::Black => 1,
            BaselineSet::Uniform { count } => count.max(1),
        }
    }
}

impl Attribution for DeepLiftShap {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        let shape = check_batch(model, batch)?;
        let baselines = self.baselines.draw(batch, shape, model.input_range());
        self.attribute_with(model, batch, &baselines)
    }

    fn model_calls(&self) -> usize {
        2 * self.per_input()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::attribution::deeplift::DeepLift;
    use crate::attribution::test_models::mlp;
    use crate::attribution::{Fill, NamedFill};

    /// The test MLP's outputs by hand (its weights in `test_models::mlp`).
    fn relu_mlp_outputs(x: [f32; 2]) -> [f64; 2] {
        let w1 = [[1.0f64, -2.0], [0.5, 1.5], [-1.0, -0.5]];
        let b1 = [0.1f64, -0.2, 0.3];
        let w2 = [[2.0f64, -1.0, 0.5], [-1.5, 1.0, 2.5]];
        let b2 = [0.05f64, -0.05];
        let hidden: Vec<f64> = (0..3)
            .map(|h| (w1[h][0] * x[0] as f64 + w1[h][1] * x[1] as f64 + b1[h]).max(0.0))
            .collect();
        [0, 1].map(|k| (0..3).map(|h| w2[k][h] * hidden[h]).sum::<f64>() + b2[k])
    }

    fn batch<'a>(x: &'a Tensor, classes: &'a [u32], first_index: usize) -> ExplainBatch<'a> {
        ExplainBatch {
            x,
            classes,
            first_index,
            seed: 7,
            stream: 0,
        }
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn maps_sum_to_the_output_minus_the_mean_baseline_output() {
        let net = mlp("relu");
        let xs = [0.7f32, 0.2, 0.1, 0.9];
        let x = Tensor::from_slice(&xs, (2, 1, 1, 2), &Device::Cpu).unwrap();
        let method = DeepLiftShap {
            baselines: BaselineSet::Uniform { count: 6 },
        };
        let classes = [0u32, 1];
        let b = batch(&x, &classes, 3);
        let baselines = method.baselines.draw(&b, [2, 1, 1, 2], (0.0, 1.0));
        assert_eq!(baselines.images.len(), 2 * 6 * 2);
        let e = method.attribute_with(&net, &b, &baselines).unwrap();
        let maps = flat(&e.maps);
        let deltas = e.convergence_delta.unwrap();
        for i in 0..2 {
            let c = classes[i] as usize;
            let z = relu_mlp_outputs([xs[2 * i], xs[2 * i + 1]])[c];
            let (first, count) = baselines.of_input(i, 2, 2);
            let mean_z0 = (first..first + count)
                .map(|k| {
                    let im = &baselines.images[2 * k..2 * k + 2];
                    relu_mlp_outputs([im[0], im[1]])[c]
                })
                .sum::<f64>()
                / count as f64;
            let sum = (maps[2 * i] + maps[2 * i + 1]) as f64;
            assert!(
                (sum - (z - mean_z0)).abs() < 1e-5,
                "{i}: {sum} vs {}",
                z - mean_z0
            );
            assert!(deltas[i].abs() < 1e-5, "{i}: delta {}", deltas[i]);
        }
        // Not one baseline's DeepLIFT: the average differs from the first.
        let first = BaselineImages {
            images: baselines.images[..2].to_vec(),
            per_input: false,
        };
        let one = flat(&method.attribute_with(&net, &b, &first).unwrap().maps);
        assert!(one.iter().zip(&maps).any(|(a, m)| (a - m).abs() > 1e-3));
    }

    #[test]
    fn with_one_baseline_it_is_deeplift() {
        let net = mlp("relu");
        let x = Tensor::from_slice(&[0.7f32, 0.2, 0.1, 0.9], (2, 1, 1, 2), &Device::Cpu).unwrap();
        let classes = [1u32, 0];
        let b = batch(&x, &classes, 0);
        for (set, fill) in [
            (BaselineSet::Constant(0.3), Fill::Value(0.3)),
            (BaselineSet::Black, Fill::Named(NamedFill::Black)),
        ] {
            let ours = DeepLiftShap { baselines: set }.explain(&net, &b).unwrap();
            let theirs = DeepLift { baseline: fill }.explain(&net, &b).unwrap();
            assert_eq!(flat(&ours.maps), flat(&theirs.maps), "{set:?}");
            let (d, t) = (
                ours.convergence_delta.unwrap(),
                theirs.convergence_delta.unwrap(),
            );
            for (o, t) in d.iter().zip(&t) {
                assert!((o - t).abs() < 1e-6, "{set:?}: {o} vs {t}");
            }
        }
    }

    #[test]
    fn maps_do_not_depend_on_the_batch_size() {
        let net = mlp("tanh");
        let xs: Vec<f32> = (0..2 * 150)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        let classes: Vec<u32> = (0..150).map(|i| (i % 2) as u32).collect();
        // 150 inputs × 3 baselines = 450 rows: three gradient calls, with
        // inputs split across them.
        let method = DeepLiftShap {
            baselines: BaselineSet::Uniform { count: 3 },
        };
        let all = Tensor::from_slice(&xs, (150, 1, 1, 2), &Device::Cpu).unwrap();
        let whole = flat(
            &method
                .explain(&net, &batch(&all, &classes, 0))
                .unwrap()
                .maps,
        );
        for (first, len) in [(0, 1), (67, 5), (149, 1)] {
            let x = Tensor::from_slice(
                &xs[2 * first..2 * (first + len)],
                (len, 1, 1, 2),
                &Device::Cpu,
            )
            .unwrap();
            let part = flat(
                &method
                    .explain(&net, &batch(&x, &classes[first..first + len], first))
                    .unwrap()
                    .maps,
            );
            for (j, (p, w)) in part.iter().zip(&whole[2 * first..]).enumerate() {
                assert!(
                    (p - w).abs() <= 1e-6 * w.abs().max(1e-3),
                    "{first}+{j}: {p} vs {w}"
                );
            }
        }
    }

    #[test]
    fn baselines_that_do_not_fit_are_refused() {
        let net = mlp("relu");
        let x = Tensor::from_slice(&[0.7f32, 0.2, 0.1, 0.9], (2, 1, 1, 2), &Device::Cpu).unwrap();
        let classes = [0u32, 1];
        let method = DeepLiftShap {
            baselines: BaselineSet::Black,
        };
        for images in [vec![], vec![0.0; 3]] {
            let bad = BaselineImages {
                images,
                per_input: false,
            };
            assert!(method
                .attribute_with(&net, &batch(&x, &classes, 0), &bad)
                .is_err());
        }
        let odd = BaselineImages {
            images: vec![0.0; 6],
            per_input: true,
        };
        assert!(method
            .attribute_with(&net, &batch(&x, &classes, 0), &odd)
            .is_err());
    }
}
