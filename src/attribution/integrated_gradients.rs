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

use super::{
    check_batch, class_scores, logit_gradient, tensor4, tile_classes, Attribution, ExplainBatch,
    Explanation, Purpose, MAX_GRAD_ROWS,
};
use crate::error::{Error, Result};
use crate::model::Classifier;

/// How the path integral is approximated (Captum's `method` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integration {
    /// Gauss–Legendre quadrature (`gausslegendre`).
    GaussLegendre,
    /// Left Riemann sum (`riemann_left`).
    RiemannLeft,
    /// Right Riemann sum (`riemann_right`).
    RiemannRight,
    /// Midpoint rule (`riemann_middle`).
    RiemannMiddle,
    /// Trapezoid rule (`riemann_trapezoid`).
    RiemannTrapezoid,
}

impl Integration {
    /// Captum's names, as written in plans.
    pub const NAMES: &'static [&'static str] = &[
        "gausslegendre",
        "riemann_left",
        "riemann_right",
        "riemann_middle",
        "riemann_trapezoid",
    ];

    /// Parses a Captum name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "gausslegendre" => Integration::GaussLegendre,
            "riemann_left" => Integration::RiemannLeft,
            "riemann_right" => Integration::RiemannRight,
            "riemann_middle" => Integration::RiemannMiddle,
            "riemann_trapezoid" => Integration::RiemannTrapezoid,
            _ => return None,
        })
    }

    /// The fewest steps the rule is defined for (Captum: 2 for Riemann sums).
    pub fn min_steps(self) -> usize {
        match self {
            Integration::GaussLegendre => 1,
            _ => 2,
        }
    }

    /// `(alphas, step sizes)` for `n` steps, as Captum's
    /// `approximation_parameters` builds them.
    pub fn alphas_and_weights(self, n: usize) -> (Vec<f64>, Vec<f64>) {
        let nf = n as f64;
        let linspace = |a: f64, b: f64| -> Vec<f64> {
            if n == 1 {
                return vec![a];
            }
            (0..n)
                .map(|i| a + (b - a) * i as f64 / (nf - 1.0))
                .collect()
        };
        match self {
            Integration::GaussLegendre => {
                let (nodes, weights) = gauss_legendre(n);
                (
                    nodes.iter().map(|t| 0.5 * (1.0 + t)).collect(),
                    weights.iter().map(|w| 0.5 * w).collect(),
                )
            }
            Integration::RiemannLeft => (linspace(0.0, 1.0 - 1.0 / nf), vec![1.0 / nf; n]),
            Integration::RiemannRight => (linspace(1.0 / nf, 1.0), vec![1.0 / nf; n]),
            Integration::RiemannMiddle => (linspace(0.5 / nf, 1.0 - 0.5 / nf), vec![1.0 / nf; n]),
            Integration::RiemannTrapezoid => {
                let mut w = vec![1.0 / nf; n];
                w[0] /= 2.0;
                w[n - 1] /= 2.0;
                (linspace(0.0, 1.0), w)
            }
        }
    }
}

/// Nodes (ascending, in [−1, 1]) and weights of `n`-point Gauss–Legendre
/// quadrature, by Newton's iteration on the Legendre polynomial `P_n`
/// (three-term recurrence) from Tricomi's initial guesses; exact for
/// polynomials of degree ≤ 2n − 1.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    assert!(n >= 1, "Gauss–Legendre needs at least one node");
    // (P_n(t), P_n'(t)).
    let legendre = |t: f64| -> (f64, f64) {
        let (mut p0, mut p1) = (1.0f64, t);
        for k in 2..=n {
            let kf = k as f64;
            let p2 = ((2.0 * kf - 1.0) * t * p1 - (kf - 1.0) * p0) / kf;
            p0 = p1;
            p1 = p2;
        }
        let p = if n == 1 { t } else { p1 };
        let prev = if n == 1 { 1.0 } else { p0 };
        // P_n'(t) = n (t P_n − P_{n−1}) / (t² − 1).
        (p, n as f64 * (t * p - prev) / (t * t - 1.0))
    };
    let mut nodes = vec![0f64; n];
    let mut weights = vec![0f64; n];
    let nf = n as f64;
    for i in 0..n.div_ceil(2) {
        // Root i (descending order): Tricomi's approximation, then Newton.
        let mut t = (std::f64::consts::PI * (i as f64 + 0.75) / (nf + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (p, d) = legendre(t);
            dp = d;
            let step = p / d;
            t -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        let (_, d) = legendre(t);
        if d.is_finite() {
            dp = d;
        }
        let w = 2.0 / ((1.0 - t * t) * dp * dp);
        // Store ascending: the largest root goes last.
        nodes[n - 1 - i] = t;
        weights[n - 1 - i] = w;
        nodes[i] = -t;
        weights[i] = w;
    }
    if n % 2 == 1 {
        nodes[n / 2] = 0.0;
    }
    (nodes, weights)
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
        IntegratedGradients {
            steps: 50,
            integration: Integration::GaussLegendre,
            baseline: Baseline::Zero,
        }
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

    #[test]
    fn gauss_legendre_matches_tabulated_nodes_and_weights() {
        let (t, w) = gauss_legendre(1);
        assert_eq!((t, w), (vec![0.0], vec![2.0]));
        let (t, w) = gauss_legendre(2);
        let r = 1.0 / 3f64.sqrt();
        assert!(
            (t[0] + r).abs() < 1e-15 && (t[1] - r).abs() < 1e-15,
            "{t:?}"
        );
        assert!(w.iter().all(|&v| (v - 1.0).abs() < 1e-14), "{w:?}");
        let (t, w) = gauss_legendre(3);
        let r = 0.6f64.sqrt();
        let expect_t = [-r, 0.0, r];
        let expect_w = [5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0];
        for i in 0..3 {
            assert!((t[i] - expect_t[i]).abs() < 1e-15, "{t:?}");
            assert!((w[i] - expect_w[i]).abs() < 1e-14, "{w:?}");
        }
        // Abramowitz & Stegun, table 25.4, n = 5.
        let (t, w) = gauss_legendre(5);
        let expect_t = [
            -0.906_179_845_938_664,
            -0.538_469_310_105_683,
            0.0,
            0.538_469_310_105_683,
            0.906_179_845_938_664,
        ];
        let expect_w = [
            0.236_926_885_056_189,
            0.478_628_670_499_366,
            0.568_888_888_888_889,
            0.478_628_670_499_366,
            0.236_926_885_056_189,
        ];
        for i in 0..5 {
            assert!((t[i] - expect_t[i]).abs() < 1e-14, "{t:?}");
            assert!((w[i] - expect_w[i]).abs() < 1e-14, "{w:?}");
        }
    }

    #[test]
    fn gauss_legendre_integrates_polynomials_of_degree_2n_minus_1_exactly() {
        for n in [7usize, 20, 50, 64] {
            let (t, w) = gauss_legendre(n);
            assert!(t.windows(2).all(|p| p[0] < p[1]), "ascending");
            assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-13);
            for degree in [2 * n - 2, 2 * n - 1] {
                let q: f64 = t
                    .iter()
                    .zip(&w)
                    .map(|(x, wi)| wi * x.powi(degree as i32))
                    .sum();
                let exact = if degree % 2 == 1 {
                    0.0
                } else {
                    2.0 / (degree as f64 + 1.0)
                };
                assert!(
                    (q - exact).abs() < 1e-13,
                    "n {n} degree {degree}: {q} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn riemann_rules_match_captum() {
        let (a, w) = Integration::RiemannLeft.alphas_and_weights(4);
        assert_eq!(a, [0.0, 0.25, 0.5, 0.75]);
        assert_eq!(w, [0.25; 4]);
        let (a, _) = Integration::RiemannRight.alphas_and_weights(4);
        assert_eq!(a, [0.25, 0.5, 0.75, 1.0]);
        let (a, _) = Integration::RiemannMiddle.alphas_and_weights(4);
        assert_eq!(a, [0.125, 0.375, 0.625, 0.875]);
        let (a, w) = Integration::RiemannTrapezoid.alphas_and_weights(3);
        assert_eq!(a, [0.0, 0.5, 1.0]);
        assert_eq!(w, [1.0 / 6.0, 1.0 / 3.0, 1.0 / 6.0]);
        let (a, w) = Integration::GaussLegendre.alphas_and_weights(2);
        let r = 0.5 / 3f64.sqrt();
        assert!((a[0] - (0.5 - r)).abs() < 1e-15 && (a[1] - (0.5 + r)).abs() < 1e-15);
        assert!(w.iter().all(|v| (v - 0.5).abs() < 1e-15), "{w:?}");
    }

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
