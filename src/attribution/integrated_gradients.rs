//! Integrated Gradients (Sundararajan et al. 2017) with Captum's semantics:
//! `(x − x′) ⊙ ∫₀¹ ∂z_c(x′ + α(x − x′))/∂x dα`, the integral approximated by
//! Gauss–Legendre quadrature (Captum's default: α = ½(1 + node), weight =
//! ½·w over the Legendre nodes on [−1, 1]) or by a Riemann sum (left, right,
//! middle, trapezoid). The baseline x′ is zero (Captum's default), a Gaussian
//! blur of the input, or uniform noise over the valid range.
//!
//! The convergence delta `Σ attributions − (z_c(x) − z_c(x′))` is returned
//! per input: completeness says it is zero for the exact integral, so it
//! measures the quadrature's error. The steps are batched (several α per
//! model call), accumulated in a fixed order so that results do not depend on
//! how the work was cut.
//!
//! Plan keys ([`IntegratedGradientsConfig`]): `steps`, `integration`,
//! `baseline`, `blur_sigma`.

use serde::{Deserialize, Serialize};

pub use super::quadrature::{gauss_legendre, Integration};
use super::{
    check_batch, class_scores, logit_gradient, tensor4, tile_classes, Attribution, ExplainBatch,
    Explanation, MethodSettings, Purpose, MAX_GRAD_ROWS,
};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::Classifier;

/// Quadrature points (Captum's `n_steps` default).
pub const DEFAULT_STEPS: usize = 50;

/// Quadrature rule (Captum's default).
pub const DEFAULT_INTEGRATION: Integration = Integration::GaussLegendre;

/// Path start (Captum's default).
pub const DEFAULT_BASELINE: BaselineKind = BaselineKind::Zero;

/// The blurred baseline's Gaussian σ, pixels.
pub const DEFAULT_BLUR_SIGMA: f64 = 5.0;

/// The baselines a plan can name (`baseline = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BaselineKind {
    /// All zeros in input units.
    Zero,
    /// The low end of the model's range.
    Black,
    /// The input blurred by a Gaussian of σ `blur_sigma` pixels.
    Blur,
    /// Uniform noise over the model's range, seeded per input.
    Uniform,
}

impl BaselineKind {
    /// Names as written in plans (and serialized).
    pub const CHOICES: &'static [(&'static str, BaselineKind)] = &[
        ("zero", BaselineKind::Zero),
        ("black", BaselineKind::Black),
        ("blur", BaselineKind::Blur),
        ("uniform", BaselineKind::Uniform),
    ];
}

/// The `integrated_gradients` method's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct IntegratedGradientsConfig {
    /// Quadrature points (Captum's `n_steps`; default 50; at least 2 for
    /// the Riemann rules).
    #[schemars(range(min = 1))]
    pub steps: usize,
    /// `gausslegendre` (default) or `riemann_{left,right,middle,trapezoid}`
    /// (Captum's `method`).
    pub integration: Integration,
    /// `zero` (default: Captum's), `black` (the range's low end), `blur` or
    /// `uniform`.
    pub baseline: BaselineKind,
    /// With `baseline = "blur"` only: the Gaussian σ in pixels (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = DEFAULT_BLUR_SIGMA))]
    pub blur_sigma: Option<f64>,
}

impl Default for IntegratedGradientsConfig {
    fn default() -> Self {
        IntegratedGradientsConfig {
            steps: DEFAULT_STEPS,
            integration: DEFAULT_INTEGRATION,
            baseline: DEFAULT_BASELINE,
            blur_sigma: None,
        }
    }
}

impl MethodSettings for IntegratedGradientsConfig {
    type Method = IntegratedGradients;

    fn from_entry(e: &mut Entry) -> Self {
        let integration = e
            .choice("integration", Integration::CHOICES)
            .unwrap_or(DEFAULT_INTEGRATION);
        let mut steps = e.positive_int("steps").unwrap_or(DEFAULT_STEPS);
        let min = integration.min_steps();
        if steps < min {
            e.fail(
                "steps",
                format!(
                    "must be at least {min} with integration \"{}\", found {steps}",
                    integration.name()
                ),
            );
            steps = min;
        }
        let baseline = e
            .choice("baseline", BaselineKind::CHOICES)
            .unwrap_or(DEFAULT_BASELINE);
        let blur_sigma = if baseline == BaselineKind::Blur {
            Some(e.positive_float("blur_sigma").unwrap_or(DEFAULT_BLUR_SIGMA))
        } else {
            if e.take("blur_sigma").is_some() {
                e.fail(
                    "blur_sigma",
                    "does not apply with the other settings of this entry (only with baseline = \"blur\")",
                );
            }
            None
        };
        IntegratedGradientsConfig {
            steps,
            integration,
            baseline,
            blur_sigma,
        }
    }

    fn build(&self, _input_hw: (usize, usize)) -> IntegratedGradients {
        IntegratedGradients {
            steps: self.steps,
            integration: self.integration,
            baseline: match self.baseline {
                BaselineKind::Zero => Baseline::Zero,
                BaselineKind::Black => Baseline::Black,
                BaselineKind::Blur => Baseline::Blur {
                    sigma: self.blur_sigma.unwrap_or(DEFAULT_BLUR_SIGMA) as f32,
                },
                BaselineKind::Uniform => Baseline::Uniform,
            },
        }
    }
}

/// The reference input x′ the path starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Baseline {
    /// All zeros in input units (Captum's default; black on `[0, 1]` and
    /// `[0, 255]` models, mid-grey on `[-1, 1]` ones).
    Zero,
    /// Black: the low end of the model's range, the same image whatever
    /// the range.
    Black,
    /// The input blurred by a Gaussian of this standard deviation in pixels
    /// (Sturmfels et al. 2020, "Visualizing the Impact of Feature
    /// Attribution Baselines"), edges extended.
    Blur {
        /// Standard deviation, pixels.
        sigma: f32,
    },
    /// Uniform noise over the model's valid range, seeded per input.
    Uniform,
}

impl Baseline {
    /// The baseline for each input of `batch`, row-major like `x`.
    pub fn values(
        &self,
        x: &[f32],
        shape: [usize; 4],
        range: (f32, f32),
        batch: &ExplainBatch,
    ) -> Vec<f32> {
        let [n, c, h, w] = shape;
        let per = c * h * w;
        match *self {
            Baseline::Zero => vec![0.0; x.len()],
            Baseline::Black => vec![range.0; x.len()],
            Baseline::Blur { sigma } => {
                let mut out = vec![0f32; x.len()];
                for plane in 0..n * c {
                    let span = plane * h * w..(plane + 1) * h * w;
                    out[span.clone()].copy_from_slice(&gaussian_blur(&x[span], h, w, sigma));
                }
                out
            }
            Baseline::Uniform => {
                let mut out = Vec::with_capacity(x.len());
                for i in 0..n {
                    let mut rng = batch.rng(i, Purpose::Baseline);
                    for _ in 0..per {
                        out.push(rng.uniform_range(range.0, range.1));
                    }
                }
                out
            }
        }
    }
}

/// A separable Gaussian blur of one `h`×`w` plane (kernel radius ⌈3σ⌉,
/// normalised; pixels beyond the edge repeat the edge).
pub fn gaussian_blur(plane: &[f32], h: usize, w: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return plane.to_vec();
    }
    let radius = (3.0 * sigma).ceil() as i64;
    let kernel: Vec<f64> = (-radius..=radius)
        .map(|d| (-(d * d) as f64 / (2.0 * (sigma as f64).powi(2))).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / total).collect();
    let clampi = |v: i64, len: usize| v.clamp(0, len as i64 - 1) as usize;
    let mut rows = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0f64;
            for (k, &kv) in kernel.iter().enumerate() {
                let xx = clampi(x as i64 + k as i64 - radius, w);
                s += kv * plane[y * w + xx] as f64;
            }
            rows[y * w + x] = s as f32;
        }
    }
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0f64;
            for (k, &kv) in kernel.iter().enumerate() {
                let yy = clampi(y as i64 + k as i64 - radius, h);
                s += kv * rows[yy * w + x] as f64;
            }
            out[y * w + x] = s as f32;
        }
    }
    out
}

/// Integrated Gradients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntegratedGradients {
    /// Quadrature points (Captum's `n_steps`, default 50).
    pub steps: usize,
    /// Quadrature rule (Captum's default: Gauss–Legendre).
    pub integration: Integration,
    /// Path start.
    pub baseline: Baseline,
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        IntegratedGradientsConfig::default().build((0, 0))
    }
}

impl Attribution for IntegratedGradients {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        let shape = check_batch(model, batch)?;
        if self.steps < self.integration.min_steps() {
            return Err(Error::Invalid(format!(
                "integrated gradients needs at least {} steps with this rule",
                self.integration.min_steps()
            )));
        }
        let [n, c, h, w] = shape;
        let len = n * c * h * w;
        let x: Vec<f32> = batch.x.flatten_all()?.to_vec1()?;
        let base = self.baseline.values(&x, shape, model.input_range(), batch);
        let diff: Vec<f32> = x.iter().zip(&base).map(|(a, b)| a - b).collect();
        let (alphas, weights) = self.integration.alphas_and_weights(self.steps);
        let per_call = (MAX_GRAD_ROWS / n.max(1)).max(1);
        let mut total = vec![0f32; len];
        for first in (0..self.steps).step_by(per_call) {
            let count = per_call.min(self.steps - first);
            let mut scaled = Vec::with_capacity(count * len);
            for &alpha in &alphas[first..first + count] {
                let a = alpha as f32;
                scaled.extend(base.iter().zip(&diff).map(|(b, d)| b + a * d));
            }
            let t = tensor4(scaled, [count * n, c, h, w])?;
            let grad: Vec<f32> = logit_gradient(model, &t, &tile_classes(batch.classes, count))?
                .grad
                .flatten_all()?
                .to_vec1()?;
            // Step by step in a fixed order: chunking never changes the sum.
            for (j, &wj) in weights[first..first + count].iter().enumerate() {
                let wj = wj as f32;
                for (acc, g) in total.iter_mut().zip(&grad[j * len..(j + 1) * len]) {
                    *acc += wj * g;
                }
            }
        }
        let attributions: Vec<f32> = total.iter().zip(&diff).map(|(g, d)| g * d).collect();

        // Completeness: Σ attributions against z_c(x) − z_c(x′).
        let mut ends = x;
        ends.extend_from_slice(&base);
        let logits = model.logits(&tensor4(ends, [2 * n, c, h, w])?)?;
        let z = class_scores(model, &logits, &tile_classes(batch.classes, 2))?;
        let per = c * h * w;
        let delta = (0..n)
            .map(|i| {
                let sum: f64 = attributions[i * per..(i + 1) * per]
                    .iter()
                    .map(|&a| a as f64)
                    .sum();
                sum - (z[i] as f64 - z[n + i] as f64)
            })
            .collect();
        Ok(Explanation {
            maps: tensor4(attributions, shape)?,
            convergence_delta: Some(delta),
            noise: None,
        })
    }

    fn model_calls(&self) -> usize {
        self.steps
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{Device, Tensor};

    use super::*;
    use crate::attribution::test_models::linear;
    use crate::model::{ArchSpec, Network};

    fn batch<'a>(x: &'a Tensor, classes: &'a [u32]) -> ExplainBatch<'a> {
        ExplainBatch {
            x,
            classes,
            first_index: 0,
            seed: 3,
            stream: 0,
        }
    }

    #[test]
    fn on_a_linear_model_ig_is_x_minus_baseline_times_w_and_complete() {
        let (h, w) = (3, 4);
        let weights: Vec<f32> = (0..2 * h * w).map(|i| (i as f32 * 0.37).sin()).collect();
        let net = linear(h, w, &weights, &[0.3, -0.2]);
        let xs: Vec<f32> = (0..3 * h * w)
            .map(|i| ((i * 7) % 11) as f32 / 10.0)
            .collect();
        let x = Tensor::from_slice(&xs, (3, 1, h, w), &Device::Cpu).unwrap();
        let classes = [1u32, 0, 1];
        for baseline in [
            Baseline::Zero,
            Baseline::Blur { sigma: 1.0 },
            Baseline::Uniform,
        ] {
            for integration in [Integration::GaussLegendre, Integration::RiemannLeft] {
                let ig = IntegratedGradients {
                    steps: 7,
                    integration,
                    baseline,
                };
                let b = batch(&x, &classes);
                let out = ig.explain(&net, &b).unwrap();
                let maps: Vec<f32> = out.maps.flatten_all().unwrap().to_vec1().unwrap();
                let base = baseline.values(&xs, [3, 1, h, w], (0.0, 1.0), &b);
                for i in 0..3 {
                    for j in 0..h * w {
                        let v = i * h * w + j;
                        let expect = (xs[v] - base[v]) * weights[classes[i] as usize * h * w + j];
                        assert!(
                            (maps[v] - expect).abs() < 1e-6,
                            "{baseline:?} {integration:?} [{i}, {j}]: {} vs {expect}",
                            maps[v]
                        );
                    }
                }
                for d in out.convergence_delta.unwrap() {
                    assert!(d.abs() < 1e-5, "{baseline:?} {integration:?}: delta {d}");
                }
            }
        }
    }

    /// `z = sigmoid(v·x)` on 1×1×3 inputs: IG has the closed form
    /// `(x_i − b_i) v_i (σ(v·x) − σ(v·b)) / (v·(x − b))`. (The identity
    /// linear layer keeps the sigmoid, which a one-output model's last
    /// layer would not be; class 1 explains z.)
    #[test]
    fn ig_converges_to_the_closed_form_on_a_sigmoid_model() {
        let spec = r#"{"version": 1, "input": {"shape": [1, 1, 3]},
            "layers": [{"op": "flatten"}, {"op": "linear", "param": "fc", "in_features": 3, "out_features": 1},
                       {"op": "sigmoid"}, {"op": "linear", "param": "id", "in_features": 1, "out_features": 1, "bias": false}]}"#;
        let v = [2.0f32, -1.5, 3.0];
        let mut t = HashMap::new();
        t.insert(
            "fc.weight".to_string(),
            Tensor::from_slice(&v, (1, 3), &Device::Cpu).unwrap(),
        );
        t.insert(
            "fc.bias".to_string(),
            Tensor::from_slice(&[-0.5f32], 1, &Device::Cpu).unwrap(),
        );
        t.insert(
            "id.weight".to_string(),
            Tensor::from_slice(&[1f32], (1, 1), &Device::Cpu).unwrap(),
        );
        let net = Network::from_tensors(ArchSpec::from_json(spec, "t").unwrap(), &t)
            .unwrap()
            .0;
        let xs = [0.9f32, 0.2, 0.7];
        let x = Tensor::from_slice(&xs, (1, 1, 1, 3), &Device::Cpu).unwrap();
        let sig = |s: f64| 1.0 / (1.0 + (-s).exp());
        let dot: f64 = xs.iter().zip(&v).map(|(a, b)| (a * b) as f64).sum();
        let gap = sig(dot - 0.5) - sig(-0.5);
        let exact: Vec<f64> = (0..3)
            .map(|i| xs[i] as f64 * v[i] as f64 * gap / dot)
            .collect();
        let error = |integration, steps| -> f64 {
            let ig = IntegratedGradients {
                steps,
                integration,
                baseline: Baseline::Zero,
            };
            let m: Vec<f32> = ig
                .explain(&net, &batch(&x, &[1]))
                .unwrap()
                .maps
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            m.iter()
                .zip(&exact)
                .map(|(a, e)| (*a as f64 - e).abs())
                .fold(0.0, f64::max)
        };
        assert!(error(Integration::GaussLegendre, 50) < 1e-6);
        assert!(error(Integration::GaussLegendre, 8) < 1e-5);
        assert!(error(Integration::RiemannMiddle, 50) < 1e-3);
        // Captum's trapezoid weights sum to 1 − 1/n (n points 1/(n−1) apart,
        // weighted 1/n): a first-order rule like left and right.
        assert!(
            error(Integration::RiemannTrapezoid, 200) < error(Integration::RiemannTrapezoid, 20)
        );
        // First-order rules: error ~ 1/steps, and it shrinks with more steps.
        assert!(error(Integration::RiemannLeft, 200) < error(Integration::RiemannLeft, 20));
        assert!(error(Integration::RiemannRight, 200) < 0.01);
    }

    #[test]
    fn blur_keeps_constants_and_spreads_a_point() {
        let flat = vec![0.25f32; 20];
        assert!(gaussian_blur(&flat, 4, 5, 2.0)
            .iter()
            .all(|&v| (v - 0.25).abs() < 1e-6));
        let mut point = vec![0f32; 49];
        point[24] = 1.0;
        let b = gaussian_blur(&point, 7, 7, 1.0);
        assert!((b.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(b[24] < 1.0 && b[24] > b[23] && b[23] > b[22] && b[23] == b[25]);
    }
}
