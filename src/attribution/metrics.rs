//! How far an attribution map can be trusted, per input, cheaply enough for
//! an audit (Quantus' categories; Captum's definitions where it has one):
//! - faithfulness: ROAD ([`super::road`]), infidelity and faithfulness
//!   correlation ([`super::faithfulness`]), and deletion and insertion curves (Petsiuk et al. 2018, RISE):
//!   pixels ranked by attribution are removed from the input (set to a
//!   baseline value), or added to an all-baseline image, in equal steps while
//!   the softmax probability of the explained class is tracked; the area under
//!   the curve (trapezoid rule over the removed fraction) is low for a
//!   faithful map under deletion and high under insertion;
//! - robustness: max-sensitivity (Captum `sensitivity_max`), the largest
//!   `‖e(x′) − e(x)‖ / ‖e(x)‖` (Frobenius) over uniform perturbations x′ in an
//!   L∞ ball (computed by the runner, which can re-explain; the ratio is here);
//! - complexity: sparseness, the Gini index of the absolute attributions
//!   (Chalasani et al. 2020; Quantus `Sparseness`);
//! - how an attack moves a map: the overlap of the top-k pixels and Spearman's
//!   rank correlation between two maps (Ghorbani et al. 2019), on the
//!   absolute per-pixel scores;
//! - how similar two maps look: SSIM (Wang et al. 2004, scikit-image's
//!   defaults), for the sanity checks ([`super::sanity`]).
//!
//! A pixel's score is the sum of its channels' attributions.

use super::{tensor4, MAX_FORWARD_ROWS};
use crate::error::Result;
use crate::model::Classifier;
use crate::stats::softmax;

/// Per-pixel scores of one map `[C, H, W]`: the sum over channels.
pub fn pixel_scores(map: &[f32], c: usize) -> Vec<f32> {
    let hw = map.len() / c.max(1);
    let mut out = map[..hw].to_vec();
    for ch in 1..c {
        for (o, v) in out.iter_mut().zip(&map[ch * hw..(ch + 1) * hw]) {
            *o += v;
        }
    }
    out
}

/// Pixel indices by decreasing score; ties keep the lower index first, NaN last.
pub fn ranking(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => a.cmp(&b),
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => y.total_cmp(&x).then(a.cmp(&b)),
        }
    });
    order
}

/// Which curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// Remove the top pixels from the input.
    Deletion,
    /// Add the top pixels to an all-baseline image.
    Insertion,
}

/// How deletion and insertion curves are sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveSettings {
    /// Equal steps from no pixel to all pixels (the curve has `steps + 1` points).
    pub steps: usize,
    /// The value a removed (or not yet inserted) pixel takes, every channel.
    pub baseline: f32,
}

/// Deletion or insertion curves for a batch `x` (`[N, C, H, W]` row-major):
/// for each input, the softmax probability of `classes[i]` after `⌊t·P/steps⌋`
/// of its `P` pixels, taken in `orders[i]`, are removed or inserted, for
/// `t = 0..=steps`.
pub fn perturbation_curves(
    model: &dyn Classifier,
    x: &[f32],
    shape: [usize; 4],
    classes: &[u32],
    orders: &[Vec<usize>],
    curve: Curve,
    settings: CurveSettings,
) -> Result<Vec<Vec<f32>>> {
    let CurveSettings { steps, baseline } = settings;
    let [n, c, h, w] = shape;
    let (hw, per) = (h * w, c * h * w);
    let points = steps + 1;
    // Rows are (input, step) pairs in that order.
    let mut curves = vec![Vec::with_capacity(points); n];
    let total = n * points;
    let mut row = 0;
    while row < total {
        let count = MAX_FORWARD_ROWS.min(total - row);
        let mut values = Vec::with_capacity(count * per);
        for r in row..row + count {
            let (i, t) = (r / points, r % points);
            let changed = t * hw / steps;
            let start = values.len();
            let xi = &x[i * per..(i + 1) * per];
            match curve {
                Curve::Deletion => {
                    values.extend_from_slice(xi);
                    for &p in &orders[i][..changed] {
                        for ch in 0..c {
                            values[start + ch * hw + p] = baseline;
                        }
                    }
                }
                Curve::Insertion => {
                    values.resize(start + per, baseline);
                    for &p in &orders[i][..changed] {
                        for ch in 0..c {
                            values[start + ch * hw + p] = xi[ch * hw + p];
                        }
                    }
                }
            }
        }
        let logits: Vec<Vec<f32>> = model
            .logits(&tensor4(values, [count, c, h, w])?)?
            .to_vec2()?;
        for (k, z) in logits.iter().enumerate() {
            let i = (row + k) / points;
            curves[i].push(softmax(z)[classes[i] as usize]);
        }
        row += count;
    }
    Ok(curves)
}

/// Area under a curve sampled at equal steps over [0, 1] (trapezoid rule).
pub fn auc(curve: &[f32]) -> f64 {
    if curve.len() < 2 {
        return curve.first().map_or(0.0, |&v| v as f64);
    }
    let steps = (curve.len() - 1) as f64;
    let inner: f64 = curve.iter().map(|&v| v as f64).sum::<f64>();
    let ends = (curve[0] as f64 + curve[curve.len() - 1] as f64) / 2.0;
    (inner - ends) / steps
}

/// The Gini index of the absolute attributions (Quantus `Sparseness`):
/// 0 when all are equal, → 1 when one value holds everything.
pub fn gini(map: &[f32]) -> f64 {
    let n = map.len();
    if n == 0 {
        return 0.0;
    }
    // Quantus adds 1e-7 so that an all-zero map is defined (Gini 0).
    let mut a: Vec<f64> = map.iter().map(|&v| (v as f64).abs() + 1e-7).collect();
    a.sort_by(f64::total_cmp);
    let total: f64 = a.iter().sum();
    let nf = n as f64;
    let weighted: f64 = a
        .iter()
        .enumerate()
        .map(|(i, &v)| (2.0 * (i as f64 + 1.0) - nf - 1.0) * v)
        .sum();
    weighted / (nf * total)
}

/// The `k` pixels with the largest absolute scores (ties: lower index).
fn top_k_set(scores: &[f32], k: usize) -> Vec<usize> {
    let abs: Vec<f32> = scores.iter().map(|v| v.abs()).collect();
    let mut top = ranking(&abs);
    top.truncate(k);
    top.sort_unstable();
    top
}

/// The share of the `k` largest-|score| pixels two maps have in common.
pub fn top_k_overlap(a: &[f32], b: &[f32], k: usize) -> f64 {
    if k == 0 {
        return 1.0;
    }
    let (ta, tb) = (top_k_set(a, k), top_k_set(b, k));
    let common = ta.iter().filter(|p| tb.binary_search(p).is_ok()).count();
    common as f64 / k as f64
}

/// Ranks from 1 (smallest), ties sharing their average rank.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0f64; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            ranks[o] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rank correlation of the absolute scores (Pearson correlation
/// of average ranks); `None` when either map is constant.
pub fn spearman(a: &[f32], b: &[f32]) -> Option<f64> {
    let abs = |v: &[f32]| v.iter().map(|x| x.abs() as f64).collect::<Vec<_>>();
    rank_correlation(&abs(a), &abs(b))
}

/// Spearman's rank correlation of the signed scores; `None` when either map
/// is constant.
pub fn spearman_signed(a: &[f32], b: &[f32]) -> Option<f64> {
    let wide = |v: &[f32]| v.iter().map(|x| *x as f64).collect::<Vec<_>>();
    rank_correlation(&wide(a), &wide(b))
}

/// Pearson correlation of the average ranks of `a` and `b`.
fn rank_correlation(a: &[f64], b: &[f64]) -> Option<f64> {
    pearson(&average_ranks(a), &average_ranks(b))
}

/// Pearson's correlation of `a` and `b` (same length); `None` when either
/// is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

/// Side of SSIM's uniform window (scikit-image's default `win_size`).
pub const SSIM_WINDOW: usize = 7;

/// Mean structural similarity (Wang et al. 2004) of two `h × w` images with
/// values in `[0, 1]` (data range 1), as scikit-image's
/// `structural_similarity` computes it by default: a 7×7 uniform window,
/// K1 = 0.01, K2 = 0.03, sample (co)variances (`use_sample_covariance`), and
/// the mean over the windows that lie inside the image (it crops the
/// border its padding filled). `None` when the image is smaller than the
/// window.
pub fn ssim(a: &[f32], b: &[f32], h: usize, w: usize) -> Option<f64> {
    let k = SSIM_WINDOW;
    if h < k || w < k {
        return None;
    }
    let np = (k * k) as f64;
    let cov_norm = np / (np - 1.0);
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let (mut total, mut count) = (0f64, 0usize);
    for r in 0..=h - k {
        for q in 0..=w - k {
            let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0f64, 0f64, 0f64, 0f64, 0f64);
            for dr in 0..k {
                for dq in 0..k {
                    let i = (r + dr) * w + q + dq;
                    let (x, y) = (a[i] as f64, b[i] as f64);
                    sx += x;
                    sy += y;
                    sxx += x * x;
                    syy += y * y;
                    sxy += x * y;
                }
            }
            let (ux, uy) = (sx / np, sy / np);
            let vx = cov_norm * (sxx / np - ux * ux);
            let vy = cov_norm * (syy / np - uy * uy);
            let vxy = cov_norm * (sxy / np - ux * uy);
            total += ((2.0 * ux * uy + c1) * (2.0 * vxy + c2))
                / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
            count += 1;
        }
    }
    Some(total / count as f64)
}

/// `‖after − before‖ / ‖before‖` (Frobenius), or the plain distance when
/// `before` is all zeros (as Captum's `sensitivity_max` divides by 1 then).
pub fn relative_change(before: &[f32], after: &[f32]) -> f64 {
    let (mut diff, mut base) = (0f64, 0f64);
    for (b, a) in before.iter().zip(after) {
        diff += (*a as f64 - *b as f64).powi(2);
        base += (*b as f64).powi(2);
    }
    let base = base.sqrt();
    diff.sqrt() / if base == 0.0 { 1.0 } else { base }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_is_descending_and_stable() {
        assert_eq!(ranking(&[0.1, 0.5, f32::NAN, 0.5, -1.0]), [1, 3, 0, 4, 2]);
    }

    #[test]
    fn auc_is_the_trapezoid_rule() {
        assert_eq!(auc(&[1.0, 1.0, 1.0]), 1.0);
        assert_eq!(auc(&[1.0, 0.0]), 0.5);
        assert!((auc(&[0.0, 0.25, 0.5, 0.75, 1.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn gini_of_equal_and_concentrated_maps() {
        assert!(gini(&[0.3; 10]).abs() < 1e-9);
        let mut one = vec![0f32; 100];
        one[7] = -5.0;
        // (n − 1)/n for a single non-zero value (less a hair for Quantus' 1e-7).
        assert!((gini(&one) - 0.99).abs() < 1e-5, "{}", gini(&one));
        // Scale-free and sign-blind.
        let v = [0.1f32, -0.4, 0.2, 0.9];
        let w: Vec<f32> = v.iter().map(|x| -3.0 * x).collect();
        assert!((gini(&v) - gini(&w)).abs() < 1e-6);
        // By hand: |v| sorted 0.1 0.2 0.4 0.9, Σ(2i − n − 1)a = −0.3 − 0.2 + 0.4 + 2.7 = 2.6.
        assert!((gini(&v) - 2.6 / (4.0 * 1.6)).abs() < 1e-5);
    }

    #[test]
    fn top_k_overlap_counts_shared_pixels_by_magnitude() {
        let a = [5.0f32, -4.0, 0.1, 0.2, 3.0];
        let b = [0.0f32, 4.0, 0.3, 9.0, -3.5];
        // top-3 |a| = {0, 1, 4}, |b| = {3, 4, 1}: {1, 4} shared.
        assert!((top_k_overlap(&a, &b, 3) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(top_k_overlap(&a, &a, 2), 1.0);
    }

    #[test]
    fn spearman_matches_hand_values() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
        // Ties: ranks (1.5, 1.5, 3) vs (1, 2, 3) → r = √3/2 (scipy.stats.spearmanr).
        let r = spearman(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!((r - 3f64.sqrt() / 2.0).abs() < 1e-12, "{r}");
        assert_eq!(average_ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn relative_change_is_frobenius_and_absolute_for_zero_maps() {
        assert!((relative_change(&[3.0, 4.0], &[3.0, 5.0]) - 0.2).abs() < 1e-12);
        assert!((relative_change(&[0.0, 0.0], &[3.0, 4.0]) - 5.0).abs() < 1e-12);
    }

    #[test]
    fn ssim_matches_scikit_image() {
        // scikit-image 0.26 `structural_similarity(a, b, data_range=1.0)`
        // on these 9×11 images: 0.014060927792702205 and, against √a,
        // 0.9217032421151548.
        let (h, w) = (9, 11);
        let a: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 23) as f32 / 22.0).collect();
        let b: Vec<f32> = (0..h * w)
            .map(|i| ((i * 53 + 7) % 19) as f32 / 18.0)
            .collect();
        let root: Vec<f32> = a.iter().map(|v| v.sqrt()).collect();
        assert!((ssim(&a, &b, h, w).unwrap() - 0.014060927792702205).abs() < 1e-6);
        assert!((ssim(&a, &root, h, w).unwrap() - 0.9217032421151548).abs() < 1e-6);
        assert!((ssim(&a, &a, h, w).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(ssim(&a[..36], &b[..36], 6, 6), None);
    }

    #[test]
    fn signed_spearman_sees_the_sign_and_the_absolute_one_does_not() {
        let a = [1.0f32, -2.0, 3.0, -4.0];
        let neg: Vec<f32> = a.iter().map(|v| -v).collect();
        assert!((spearman_signed(&a, &neg).unwrap() + 1.0).abs() < 1e-12);
        assert!((spearman(&a, &neg).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn pixel_scores_sum_channels() {
        assert_eq!(pixel_scores(&[1.0, 2.0, 10.0, 20.0], 2), [11.0, 22.0]);
    }
}
