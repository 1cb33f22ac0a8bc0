//! Two faithfulness metrics that ask whether a map's sums predict how the
//! explained score changes (beside deletion/insertion in `metrics` and
//! ROAD in [`super::road`]); both use the explained class's score `f`
//! (its logit, or a one-output model's log-odds: [`Classifier::class_score`]),
//! as the methods explain it:
//!
//! - infidelity (Yeh, Hsieh, Suggala, Inouye & Ravikumar, NeurIPS 2019, "On
//!   the (In)fidelity and Sensitivity of Explanations"; Captum 0.9's
//!   `captum.metrics.infidelity`): `E_I[(Iᵀ·Φ − (f(x) − f(x − I)))²]`,
//!   estimated over `samples` perturbations `I` per input — here Gaussian
//!   noise `I ~ N(0, σ²)` on every input value, σ in input units, and the
//!   perturbed input `x − I` is not clipped to the model's range (Captum's
//!   own example does not clip; clipping would make the applied
//!   perturbation differ from `I`, and on MNIST's black background would
//!   push every pixel one way). With `normalize` (Captum's flag), the map
//!   is first rescaled by the least-squares `β = E[IᵀΦ · Δf] / E[(IᵀΦ)²]`
//!   (0 when the denominator is), so the value does not depend on the map's
//!   scale: `β²·E[(IᵀΦ)²] − 2β·E[IᵀΦ·Δf] + E[Δf²]`. Units: the score's,
//!   squared. Lower is more faithful.
//! - faithfulness correlation (Bhatt, Weller & Moura, IJCAI 2020,
//!   "Evaluating and Aggregating Feature-based Model Explanations"; Quantus'
//!   `FaithfulnessCorrelation`): over `runs` random subsets of `subset`
//!   pixels (every channel), the Pearson correlation between the sum of the
//!   subset's attributions and the drop `f(x) − f(x_S)` of the score when the
//!   subset is set to the baseline value. In [−1, 1], higher is more
//!   faithful; `None` when either series is constant (an all-zero map).

use super::metrics::{pearson, pixel_scores};
use super::{class_scores, tensor4, MAX_FORWARD_ROWS};
use crate::error::Result;
use crate::model::Classifier;
use crate::rng::Rng;

/// Scores `f` of `classes[i / rows_per_class]` for the rows of `images`
/// (`[rows, C, H, W]` row-major), in forward calls of at most
/// [`MAX_FORWARD_ROWS`] rows.
fn scores(
    model: &dyn Classifier,
    images: &[f32],
    chw: [usize; 3],
    classes: &[u32],
    rows_per_class: usize,
) -> Result<Vec<f32>> {
    let [c, h, w] = chw;
    let per = c * h * w;
    let total = images.len() / per;
    let mut out = Vec::with_capacity(total);
    let mut row = 0;
    while row < total {
        let count = MAX_FORWARD_ROWS.min(total - row);
        let chunk = images[row * per..(row + count) * per].to_vec();
        let logits = model.logits(&tensor4(chunk, [count, c, h, w])?)?;
        let targets: Vec<u32> = (row..row + count)
            .map(|r| classes[r / rows_per_class])
            .collect();
        out.extend(class_scores(model, &logits, &targets)?);
        row += count;
    }
    Ok(out)
}

/// Infidelity of each input's map (`maps`, shaped like `x`: `[N, C, H, W]`
/// row-major) under the given perturbations `[N, samples, C, H, W]` (the
/// input is moved to `x − I`), as Captum's `infidelity` computes it.
pub fn infidelity_with(
    model: &dyn Classifier,
    x: &[f32],
    shape: [usize; 4],
    classes: &[u32],
    maps: &[f32],
    perturbations: &[f32],
    normalize: bool,
) -> Result<Vec<f64>> {
    let [n, c, h, w] = shape;
    let per = c * h * w;
    let samples = perturbations.len() / (n * per).max(1);
    let clean = scores(model, x, [c, h, w], classes, 1)?;
    let mut moved = Vec::with_capacity(perturbations.len());
    for (r, noise) in perturbations.chunks(per).enumerate() {
        let xi = &x[(r / samples) * per..(r / samples + 1) * per];
        moved.extend(xi.iter().zip(noise).map(|(v, e)| v - e));
    }
    let perturbed = scores(model, &moved, [c, h, w], classes, samples)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let map = &maps[i * per..(i + 1) * per];
        let (mut aa, mut ab, mut bb) = (0f64, 0f64, 0f64);
        for s in 0..samples {
            let r = i * samples + s;
            let noise = &perturbations[r * per..(r + 1) * per];
            let a: f64 = map
                .iter()
                .zip(noise)
                .map(|(m, e)| *m as f64 * *e as f64)
                .sum();
            let b = clean[i] as f64 - perturbed[r] as f64;
            aa += a * a;
            ab += a * b;
            bb += b * b;
        }
        let value = if normalize {
            let beta = if aa == 0.0 { 0.0 } else { ab / aa };
            beta * beta * aa - 2.0 * beta * ab + bb
        } else {
            aa - 2.0 * ab + bb
        };
        out.push(value / samples as f64);
    }
    Ok(out)
}

/// Gaussian perturbations `[N, samples, C, H, W]` of standard deviation
/// `stdev`, input `i`'s drawn from `rngs[i]` sample by sample.
pub fn gaussian_perturbations(
    rngs: &mut [Rng],
    samples: usize,
    per: usize,
    stdev: f32,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(rngs.len() * samples * per);
    for rng in rngs.iter_mut() {
        for _ in 0..samples * per {
            out.push(stdev * rng.normal());
        }
    }
    out
}

/// How faithfulness correlation samples its subsets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrelationSettings {
    /// Random subsets per input.
    pub runs: usize,
    /// Pixels per subset.
    pub subset: usize,
    /// The value the subset's pixels take, every channel.
    pub baseline: f32,
}

/// `k` distinct indices below `n`, by a partial Fisher–Yates shuffle.
fn subset(rng: &mut Rng, n: usize, k: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + rng.below((n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(k);
    all
}

/// Faithfulness correlation of each input's map (`maps`, shaped like `x`),
/// the subsets of input `i` drawn from `rngs[i]`.
pub fn faithfulness_correlation(
    model: &dyn Classifier,
    x: &[f32],
    shape: [usize; 4],
    classes: &[u32],
    maps: &[f32],
    settings: CorrelationSettings,
    rngs: &mut [Rng],
) -> Result<Vec<Option<f64>>> {
    let [n, c, h, w] = shape;
    let (hw, per) = (h * w, c * h * w);
    let CorrelationSettings {
        runs,
        subset: size,
        baseline,
    } = settings;
    let clean = scores(model, x, [c, h, w], classes, 1)?;
    let mut sums = Vec::with_capacity(n * runs);
    let mut images = Vec::with_capacity(n * runs * per);
    for i in 0..n {
        let xi = &x[i * per..(i + 1) * per];
        let pixel = pixel_scores(&maps[i * per..(i + 1) * per], c);
        for _ in 0..runs {
            let chosen = subset(&mut rngs[i], hw, size);
            sums.push(chosen.iter().map(|&p| pixel[p] as f64).sum::<f64>());
            let start = images.len();
            images.extend_from_slice(xi);
            for &p in &chosen {
                for ch in 0..c {
                    images[start + ch * hw + p] = baseline;
                }
            }
        }
    }
    let perturbed = scores(model, &images, [c, h, w], classes, runs)?;
    Ok((0..n)
        .map(|i| {
            let drops: Vec<f64> = perturbed[i * runs..(i + 1) * runs]
                .iter()
                .map(|&f| clean[i] as f64 - f as f64)
                .collect();
            pearson(&sums[i * runs..(i + 1) * runs], &drops)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::test_models::linear;

    fn linear_case() -> (crate::model::Network, Vec<f32>, Vec<f32>) {
        let (h, w) = (5, 6);
        let weights: Vec<f32> = (0..2 * h * w)
            .map(|k| ((k * 37) % 17) as f32 / 8.0 - 1.0)
            .collect();
        let model = linear(h, w, &weights, &[0.3, -0.2]);
        let x: Vec<f32> = (0..2 * h * w)
            .map(|k| ((k * 13) % 11) as f32 / 10.0)
            .collect();
        (model, weights, x)
    }

    #[test]
    fn faithfulness_correlation_is_one_for_the_exact_map_of_a_linear_model() {
        // f = w·x + b, so the drop when S goes to the baseline is
        // Σ_S w (x − baseline): exactly the sum of the map w ⊙ (x − baseline).
        let (model, weights, x) = linear_case();
        let (h, w) = (5, 6);
        let hw = h * w;
        let baseline = 0.2f32;
        let classes = [0u32, 1];
        let mut maps = Vec::new();
        for (i, &class) in classes.iter().enumerate() {
            let wc = &weights[class as usize * hw..(class as usize + 1) * hw];
            let xi = &x[i * hw..(i + 1) * hw];
            maps.extend(wc.iter().zip(xi).map(|(a, v)| a * (v - baseline)));
        }
        let settings = CorrelationSettings {
            runs: 20,
            subset: 7,
            baseline,
        };
        let mut rngs = vec![Rng::new(1), Rng::new(2)];
        let rho = faithfulness_correlation(
            &model,
            &x,
            [2, 1, h, w],
            &classes,
            &maps,
            settings,
            &mut rngs,
        )
        .unwrap();
        for r in rho {
            assert!((r.unwrap() - 1.0).abs() < 1e-6, "{r:?}");
        }
        // A map of zeros has no correlation.
        let zeros = vec![0f32; 2 * hw];
        let mut rngs = vec![Rng::new(1), Rng::new(2)];
        let none = faithfulness_correlation(
            &model,
            &x,
            [2, 1, h, w],
            &classes,
            &zeros,
            settings,
            &mut rngs,
        )
        .unwrap();
        assert_eq!(none, [None, None]);
    }

    #[test]
    fn infidelity_of_a_linear_model_is_zero_for_its_gradient() {
        // f(x) − f(x − I) = wᵀI exactly: the gradient map has infidelity 0,
        // a map twice the gradient E[(wᵀI)²] unnormalized and 0 normalized.
        let (model, weights, x) = linear_case();
        let (h, w) = (5, 6);
        let hw = h * w;
        let classes = [1u32, 0];
        let mut grad = Vec::new();
        for &class in &classes {
            grad.extend_from_slice(&weights[class as usize * hw..(class as usize + 1) * hw]);
        }
        let mut rngs = vec![Rng::new(3), Rng::new(4)];
        let noise = gaussian_perturbations(&mut rngs, 8, hw, 0.1);
        let shape = [2, 1, h, w];
        let exact = infidelity_with(&model, &x, shape, &classes, &grad, &noise, false).unwrap();
        for v in &exact {
            assert!(v.abs() < 1e-8, "{v}");
        }
        let double: Vec<f32> = grad.iter().map(|g| 2.0 * g).collect();
        let plain = infidelity_with(&model, &x, shape, &classes, &double, &noise, false).unwrap();
        let normal = infidelity_with(&model, &x, shape, &classes, &double, &noise, true).unwrap();
        for i in 0..2 {
            let mut expected = 0f64;
            for s in 0..8 {
                let e = &noise[(i * 8 + s) * hw..(i * 8 + s + 1) * hw];
                let a: f64 = grad[i * hw..(i + 1) * hw]
                    .iter()
                    .zip(e)
                    .map(|(g, v)| (*g as f64) * (*v as f64))
                    .sum();
                expected += a * a / 8.0;
            }
            assert!(
                (plain[i] - expected).abs() < 1e-5 * expected,
                "{}",
                plain[i]
            );
            assert!(normal[i].abs() < 1e-8, "{}", normal[i]);
        }
    }

    #[test]
    fn subsets_are_distinct_and_seeded() {
        let mut a = Rng::new(9);
        let s = subset(&mut a, 50, 20);
        let mut sorted = s.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 20);
        assert!(s.iter().all(|&p| p < 50));
        assert_eq!(s, subset(&mut Rng::new(9), 50, 20));
    }
}
