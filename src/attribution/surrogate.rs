//! What LIME and KernelSHAP share (Captum's `LimeBase`): interpretable
//! features that are segments of the input, the model's score on copies
//! with some segments switched off (set to a baseline value), and the
//! weighted linear fits (scikit-learn's `Lasso` and `LinearRegression`, as
//! Captum calls them) whose coefficients become the map, each pixel (all
//! its channels) getting its segment's coefficient (Captum's
//! `return_input_shape=True`).
//!
//! Segments: `"grid"`, square patches of `patch_size` pixels in row-major
//! order, the last row and column cropped at the border.

use serde::{Deserialize, Serialize};

use super::{
    check_batch, class_scores, tensor4, ExplainBatch, Fill, SettingError, MAX_FORWARD_ROWS,
};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::Classifier;

/// The patch side by default: an eighth of the shorter side, rounded up (4
/// px, 49 segments on 28×28; 28 px, 64 segments on 224×224).
pub fn default_patch_size(input_hw: (usize, usize)) -> usize {
    input_hw.0.min(input_hw.1).div_ceil(8).max(1)
}

/// How the input is cut into features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// Square patches of `patch_size` pixels.
    Grid,
}

impl SegmentKind {
    /// Names as written in plans (and serialized).
    pub const CHOICES: &'static [(&'static str, SegmentKind)] = &[("grid", SegmentKind::Grid)];
}

/// The segmentation keys both methods read: `segments`, `patch_size`,
/// `baseline`, with their defaults; the patch size is `None` when unset.
pub fn read_segment_keys(e: &mut Entry) -> (SegmentKind, Option<usize>, Fill) {
    let segments = e
        .choice("segments", SegmentKind::CHOICES)
        .unwrap_or(SegmentKind::Grid);
    let patch_size = e.positive_int("patch_size");
    let baseline = Fill::from_entry(e, "baseline").unwrap_or(DEFAULT_BASELINE);
    (segments, patch_size, baseline)
}

/// Off segments' value by default: black, the low end of the model's range.
pub const DEFAULT_BASELINE: Fill = Fill::Named(super::NamedFill::Black);

/// Fills in an unset patch size and checks that the grid has at least two
/// segments (the `patch_size` key's error otherwise).
pub fn resolve_patch_size(
    patch_size: &mut Option<usize>,
    input_hw: (usize, usize),
) -> std::result::Result<(), SettingError> {
    let p = *patch_size.get_or_insert(default_patch_size(input_hw));
    let count = Segments::grid(input_hw, p).count;
    if count < 2 {
        return Err(SettingError {
            key: "patch_size",
            message: format!(
                "{p} px patches cut the {}×{} input into {count} segment; at least 2 are needed",
                input_hw.0, input_hw.1
            ),
        });
    }
    Ok(())
}

/// A segmentation: the segment of every pixel of an `H`×`W` plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    /// `(height, width)`.
    pub hw: (usize, usize),
    /// Segment index of each pixel, row-major `[H·W]`.
    pub of_pixel: Vec<usize>,
    /// Segments (interpretable features).
    pub count: usize,
}

impl Segments {
    /// Square patches of `patch` pixels, row-major, cropped at the border.
    pub fn grid(hw: (usize, usize), patch: usize) -> Segments {
        let (h, w) = hw;
        let patch = patch.max(1);
        let cols = w.div_ceil(patch);
        let rows = h.div_ceil(patch);
        let mut of_pixel = Vec::with_capacity(h * w);
        for y in 0..h {
            for x in 0..w {
                of_pixel.push((y / patch) * cols + x / patch);
            }
        }
        Segments {
            hw,
            of_pixel,
            count: rows * cols,
        }
    }

    /// A map `[C·H·W]` giving every pixel (all channels) its segment's value.
    pub fn paint(&self, values: &[f64], channels: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(channels * self.of_pixel.len());
        for _ in 0..channels {
            out.extend(self.of_pixel.iter().map(|&s| values[s] as f32));
        }
        out
    }
}

/// What the model says about the perturbed copies of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Perturbed {
    /// The explained class score of each copy, `[input][sample]`.
    pub scores: Vec<Vec<f32>>,
    /// Each copy's cosine similarity to its input (torch's
    /// `cosine_similarity` over all values, what LIME's kernel needs),
    /// `[input][sample]`.
    pub cosines: Vec<Vec<f64>>,
}

/// The explained class score of each perturbed copy of each input: `masks[i]`
/// holds input `i`'s on/off vectors, `samples × segments` row-major (1 on:
/// the input's pixels; 0 off: `fill`, in input units). Copies are evaluated
/// in forward calls of at most [`MAX_FORWARD_ROWS`] rows.
///
/// # Errors
/// [`Error::Invalid`] when the batch does not fit the model or the masks do
/// not fit the segments; model errors.
pub fn perturbed_scores(
    model: &dyn Classifier,
    batch: &ExplainBatch,
    segments: &Segments,
    fill: f32,
    masks: &[Vec<u8>],
) -> Result<Perturbed> {
    let [n, c, h, w] = check_batch(model, batch)?;
    if (h, w) != segments.hw {
        return Err(Error::Invalid(format!(
            "segments set up for {:?} inputs, got {h}×{w}",
            segments.hw
        )));
    }
    let m = segments.count;
    if masks.len() != n || masks.iter().any(|k| k.is_empty() || k.len() % m != 0) {
        return Err(Error::Invalid(format!(
            "perturbation masks: need, for each of {n} inputs, whole rows of {m} segments"
        )));
    }
    let per = c * h * w;
    let x: Vec<f32> = batch.x.flatten_all()?.to_vec1()?;
    // (input, sample) pairs in order.
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (0..masks[i].len() / m).map(move |k| (i, k)))
        .collect();
    let mut scores: Vec<Vec<f32>> = masks
        .iter()
        .map(|k| Vec::with_capacity(k.len() / m))
        .collect();
    let mut cosines: Vec<Vec<f64>> = scores
        .iter()
        .map(|s| Vec::with_capacity(s.capacity()))
        .collect();
    for chunk in pairs.chunks(MAX_FORWARD_ROWS) {
        let mut rows = Vec::with_capacity(chunk.len() * per);
        let mut classes = Vec::with_capacity(chunk.len());
        for &(i, k) in chunk {
            let mask = &masks[i][k * m..(k + 1) * m];
            let xi = &x[i * per..(i + 1) * per];
            let (mut dot, mut norm_x, mut norm_p) = (0f64, 0f64, 0f64);
            for (j, &v) in xi.iter().enumerate() {
                let on = mask[segments.of_pixel[j % (h * w)]] != 0;
                let p = if on { v } else { fill };
                rows.push(p);
                dot += v as f64 * p as f64;
                norm_x += v as f64 * v as f64;
                norm_p += p as f64 * p as f64;
            }
            // torch's cosine_similarity: x·y / sqrt(max(‖x‖²‖y‖², ε²)), ε 1e-8.
            cosines[i].push(dot / (norm_x * norm_p).max(1e-16).sqrt());
            classes.push(batch.classes[i]);
        }
        let logits = model.logits(&tensor4(rows, [chunk.len(), c, h, w])?)?;
        for (&(i, _), z) in chunk.iter().zip(class_scores(model, &logits, &classes)?) {
            scores[i].push(z);
        }
    }
    Ok(Perturbed { scores, cosines })
}

/// Checks that every input's masks are 0/1 and returns the design matrix
/// `[samples × segments]` as f64.
pub fn design(mask: &[u8]) -> Result<Vec<f64>> {
    if let Some(bad) = mask.iter().find(|&&b| b > 1) {
        return Err(Error::Invalid(format!(
            "perturbation masks must be 0 or 1, found {bad}"
        )));
    }
    Ok(mask.iter().map(|&b| b as f64).collect())
}

/// Weighted means of the columns of `x` (`n × m`, row-major) and of `y`.
fn weighted_centre(x: &[f64], y: &[f64], w: &[f64], m: usize) -> (Vec<f64>, f64) {
    let total: f64 = w.iter().sum();
    let mut x_mean = vec![0f64; m];
    let mut y_mean = 0f64;
    for (i, &wi) in w.iter().enumerate() {
        for j in 0..m {
            x_mean[j] += wi * x[i * m + j];
        }
        y_mean += wi * y[i];
    }
    for v in &mut x_mean {
        *v /= total;
    }
    (x_mean, y_mean / total)
}

/// Lasso with sample weights and an intercept, as scikit-learn's
/// `Lasso(alpha).fit(X, y, sample_weight=w)` (Captum's `SkLearnLasso`):
/// minimises `(1/(2n)) Σᵢ w̃ᵢ (yᵢ − xᵢ·β − b)² + α‖β‖₁` with the weights
/// rescaled to sum to `n` (`w̃ = w·n/Σw`), by scikit-learn's algorithm:
/// weighted centring, rows scaled by `√w̃`, cyclic coordinate descent with
/// gap-safe screening (Fercoq et al. 2015), stopping when the largest update
/// is at most `tol` of the largest coefficient and the duality gap at most
/// `tol·‖y‖²` (tol 1e-4, at most 1,000 sweeps). Computed in f64.
/// `x` is `n × m` row-major; returns β (`m`).
pub fn lasso(x: &[f64], y: &[f64], w: &[f64], m: usize, alpha: f64) -> Vec<f64> {
    const TOL: f64 = 1e-4;
    const MAX_ITER: usize = 1000;
    let n = y.len();
    let total: f64 = w.iter().sum();
    if n == 0 || total <= 0.0 {
        return vec![0.0; m];
    }
    let sw: Vec<f64> = w.iter().map(|v| v * n as f64 / total).collect();
    let (x_mean, y_mean) = weighted_centre(x, y, &sw, m);
    // Column-major, centred, rows scaled by √w̃.
    let mut cols = vec![0f64; n * m];
    let mut yc = vec![0f64; n];
    for i in 0..n {
        let r = sw[i].sqrt();
        for j in 0..m {
            cols[j * n + i] = (x[i * m + j] - x_mean[j]) * r;
        }
        yc[i] = (y[i] - y_mean) * r;
    }
    let l1 = alpha * n as f64;
    let col = |j: usize| &cols[j * n..(j + 1) * n];
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let norm2: Vec<f64> = (0..m).map(|j| dot(col(j), col(j))).collect();
    let mut beta = vec![0f64; m];
    let mut resid = yc.clone();
    let tol = TOL * dot(&yc, &yc);
    // The duality gap and ‖Xᵀr‖∞ (scikit-learn's formulation A), with Xᵀr.
    let gap = |beta: &[f64], resid: &[f64], xtr: &mut [f64]| -> (f64, f64) {
        let mut dual_norm = 0f64;
        for (j, v) in xtr.iter_mut().enumerate() {
            *v = dot(col(j), resid);
            dual_norm = dual_norm.max(v.abs());
        }
        let r2 = dot(resid, resid);
        let ry = dot(resid, &yc);
        let l1_norm: f64 = beta.iter().map(|b| b.abs()).sum();
        let primal = 0.5 * r2 + l1 * l1_norm;
        let scale = if dual_norm > l1 { l1 / dual_norm } else { 1.0 };
        let dual = -0.5 * scale * scale * r2 + scale * ry;
        (primal - dual, dual_norm)
    };
    let mut xtr = vec![0f64; m];
    let (mut g, mut dual_norm) = gap(&beta, &resid, &mut xtr);
    if g <= tol {
        return beta;
    }
    let mut excluded = vec![false; m];
    let mut active: Vec<usize> = Vec::with_capacity(m);
    // Gap-safe screening: drops features whose coefficient must be zero.
    let screen = |g: f64,
                  dual_norm: f64,
                  xtr: &[f64],
                  beta: &mut [f64],
                  resid: &mut [f64],
                  excluded: &mut [bool],
                  active: &mut Vec<usize>| {
        active.clear();
        for j in 0..m {
            if excluded[j] {
                continue;
            }
            if norm2[j] == 0.0 {
                beta[j] = 0.0;
                excluded[j] = true;
                continue;
            }
            let xj_theta = xtr[j] / l1.max(dual_norm);
            let d_j = (1.0 - xj_theta.abs()) / norm2[j].sqrt();
            if d_j <= (2.0 * g).sqrt() / l1 {
                active.push(j);
            } else {
                if beta[j] != 0.0 {
                    for (r, v) in resid.iter_mut().zip(col(j)) {
                        *r += beta[j] * v;
                    }
                    beta[j] = 0.0;
                }
                excluded[j] = true;
            }
        }
    };
    screen(
        g,
        dual_norm,
        &xtr,
        &mut beta,
        &mut resid,
        &mut excluded,
        &mut active,
    );
    for iter in 0..MAX_ITER {
        let mut w_max = 0f64;
        let mut d_w_max = 0f64;
        for &j in &active {
            if norm2[j] == 0.0 {
                continue;
            }
            let old = beta[j];
            let tmp = dot(col(j), &resid) + old * norm2[j];
            beta[j] = tmp.signum() * (tmp.abs() - l1).max(0.0) / norm2[j];
            if beta[j] != old {
                let d = old - beta[j];
                for (r, v) in resid.iter_mut().zip(col(j)) {
                    *r += d * v;
                }
            }
            d_w_max = d_w_max.max((beta[j] - old).abs());
            w_max = w_max.max(beta[j].abs());
        }
        if w_max == 0.0 || d_w_max / w_max <= TOL || iter == MAX_ITER - 1 {
            (g, dual_norm) = gap(&beta, &resid, &mut xtr);
            if g <= tol {
                break;
            }
            screen(
                g,
                dual_norm,
                &xtr,
                &mut beta,
                &mut resid,
                &mut excluded,
                &mut active,
            );
        }
    }
    beta
}

/// Weighted least squares with an intercept, as scikit-learn's
/// `LinearRegression().fit(X, y, sample_weight=w)` (Captum's
/// `SkLearnLinearRegression`): weighted centring, rows scaled by `√w`, then
/// the minimum-norm least-squares solution with singular values below
/// `1e-6` of the largest treated as zero (`scipy.linalg.lstsq(cond=1e-6)`),
/// by one-sided Jacobi SVD in f64. `x` is `n × m` row-major; returns β (`m`).
pub fn weighted_least_squares(x: &[f64], y: &[f64], w: &[f64], m: usize) -> Vec<f64> {
    const COND: f64 = 1e-6;
    let n = y.len();
    let total: f64 = w.iter().sum();
    if n == 0 || total <= 0.0 {
        return vec![0.0; m];
    }
    let (x_mean, y_mean) = weighted_centre(x, y, w, m);
    let mut cols: Vec<Vec<f64>> = (0..m)
        .map(|j| {
            (0..n)
                .map(|i| (x[i * m + j] - x_mean[j]) * w[i].sqrt())
                .collect()
        })
        .collect();
    let yc: Vec<f64> = (0..n).map(|i| (y[i] - y_mean) * w[i].sqrt()).collect();
    let mut v: Vec<Vec<f64>> = (0..m)
        .map(|j| (0..m).map(|k| if j == k { 1.0 } else { 0.0 }).collect())
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    // Hestenes' one-sided Jacobi: rotate column pairs until all are
    // orthogonal; then X·V = U·Σ column by column.
    for _sweep in 0..100 {
        let mut rotated = false;
        for p in 0..m {
            for q in p + 1..m {
                let a = dot(&cols[p], &cols[p]);
                let b = dot(&cols[q], &cols[q]);
                let g = dot(&cols[p], &cols[q]);
                if g == 0.0 || g.abs() <= 1e-15 * (a * b).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (b - a) / (2.0 * g);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for vecs in [&mut cols, &mut v] {
                    let (lo, hi) = vecs.split_at_mut(q);
                    for (up, uq) in lo[p].iter_mut().zip(hi[0].iter_mut()) {
                        let (x_p, x_q) = (*up, *uq);
                        *up = c * x_p - s * x_q;
                        *uq = s * x_p + c * x_q;
                    }
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let sigma2: Vec<f64> = cols.iter().map(|u| dot(u, u)).collect();
    let s_max = sigma2.iter().cloned().fold(0.0, f64::max).sqrt();
    let mut beta = vec![0f64; m];
    for j in 0..m {
        if sigma2[j].sqrt() <= COND * s_max || sigma2[j] == 0.0 {
            continue;
        }
        let coef = dot(&cols[j], &yc) / sigma2[j];
        for (b, vk) in beta.iter_mut().zip(&v[j]) {
            *b += coef * vk;
        }
    }
    beta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn grid_patches_are_row_major_and_cropped() {
        let s = Segments::grid((5, 5), 2);
        assert_eq!(s.count, 9);
        assert_eq!(s.of_pixel[0], 0);
        assert_eq!(s.of_pixel[4], 2);
        assert_eq!(s.of_pixel[24], 8);
        assert_eq!(s.of_pixel[2 * 5 + 1], 3);
        assert_eq!(default_patch_size((28, 28)), 4);
        assert_eq!(default_patch_size((224, 224)), 28);
        assert_eq!(Segments::grid((28, 28), 4).count, 49);
    }

    fn random_design(n: usize, m: usize, rng: &mut Rng) -> Vec<f64> {
        (0..n * m)
            .map(|_| (rng.uniform_f32() < 0.5) as u8 as f64)
            .collect()
    }

    /// An exact linear response is recovered by least squares, over- and
    /// under-determined alike (under-determined: the minimum-norm solution
    /// still reproduces every sample).
    #[test]
    fn least_squares_recovers_a_linear_response() {
        let mut rng = Rng::new(3);
        let m = 6;
        let truth = [0.5, -1.0, 2.0, 0.0, 0.25, -0.75];
        for n in [40, 4] {
            let x = random_design(n, m, &mut rng);
            let y: Vec<f64> = (0..n)
                .map(|i| 1.5 + (0..m).map(|j| truth[j] * x[i * m + j]).sum::<f64>())
                .collect();
            let w: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 % 3.0).collect();
            let beta = weighted_least_squares(&x, &y, &w, m);
            if n > m {
                for j in 0..m {
                    assert!((beta[j] - truth[j]).abs() < 1e-9, "{j}: {}", beta[j]);
                }
            }
            // Residuals of the centred fit vanish.
            let (xm, ym) = weighted_centre(&x, &y, &w, m);
            for i in 0..n {
                let fit: f64 = (0..m).map(|j| beta[j] * (x[i * m + j] - xm[j])).sum();
                assert!((fit - (y[i] - ym)).abs() < 1e-9, "sample {i} of {n}");
            }
        }
    }

    /// The Lasso solution satisfies its optimality conditions: for the
    /// weighted, centred problem, |x_jᵀ r|/n ≤ α where β_j = 0 and
    /// x_jᵀ r / n = α·sign(β_j) otherwise (to the solver's tolerance).
    #[test]
    fn lasso_meets_its_optimality_conditions() {
        let mut rng = Rng::new(5);
        let (n, m) = (60, 8);
        let x = random_design(n, m, &mut rng);
        let y: Vec<f64> = (0..n)
            .map(|i| {
                x[i * m] * 1.0 - x[i * m + 1] * 0.5
                    + 0.01 * x[i * m + 2]
                    + rng.normal() as f64 * 0.05
            })
            .collect();
        let w: Vec<f64> = (0..n).map(|_| 0.2 + rng.uniform_f64()).collect();
        let alpha = 0.02;
        let beta = lasso(&x, &y, &w, m, alpha);
        assert!(beta[0] > 0.8 && beta[1] < -0.3, "{beta:?}");
        let total: f64 = w.iter().sum();
        let sw: Vec<f64> = w.iter().map(|v| v * n as f64 / total).collect();
        let (xm, ym) = weighted_centre(&x, &y, &sw, m);
        for j in 0..m {
            let mut g = 0f64;
            for i in 0..n {
                let fit: f64 = (0..m).map(|k| beta[k] * (x[i * m + k] - xm[k])).sum();
                g += sw[i] * (x[i * m + j] - xm[j]) * (y[i] - ym - fit);
            }
            g /= n as f64;
            if beta[j] == 0.0 {
                assert!(g.abs() <= alpha * 1.01, "{j}: {g}");
            } else {
                assert!((g - alpha * beta[j].signum()).abs() < 2e-3, "{j}: {g}");
            }
        }
    }
}
