//! ROAD, RemOve And Debias (Rong, Leemann, Borisov, Kasneci & Kasneci,
//! ICML 2022, "A Consistent and Efficient Evaluation Strategy for
//! Attribution Methods"): a faithfulness metric like deletion, but removed
//! pixels are filled by *noisy linear imputation* instead of a constant, so
//! the shape of the removed region (which a constant fill leaks to the
//! model) says little about which pixels were removed.
//!
//! Imputation, as the authors' `NoisyLinearImputer`
//! (github.com/tleemann/road_evaluation, `road/imputations.py`): every
//! removed pixel equals the weighted mean of its 8 neighbours inside the
//! image (direct neighbours weight 1/6, diagonal ones 1/12; a neighbour
//! outside the image drops out and the weights of the others are not
//! rescaled to 1 but the pixel's own coefficient is their sum, so the mean
//! is over the neighbours that exist); a removed neighbour is itself an
//! unknown. Per channel this is the sparse system
//! `d_i x_i − Σ_{j removed} w_ij x_j = Σ_{k kept} w_ik v_k` over the removed
//! pixels `i`, `d_i = Σ` of the in-image neighbour weights. Its matrix is
//! symmetric (`w` depends only on the offset, and offsets come in ± pairs)
//! and, as long as one pixel is kept, positive definite (a weighted graph
//! Laplacian with every connected component of removed pixels touching a
//! kept pixel), so we solve it with conjugate gradients written here, in
//! f64, to a relative residual of [`CG_TOLERANCE`]. The authors then add
//! Gaussian noise of standard deviation 0.01 (images in `[0, 1]`) to each
//! imputed value; here the standard deviation is in input units
//! (`road_noise`, default 1% of the model's range width).
//!
//! The metric: pixels ranked by their score (the sum over channels) are
//! removed most relevant first (MoRF) or least relevant first (LeRF), a
//! share `f` of them for each of the `road_fractions` (default 10%, 20%, …,
//! 90%: the paper's curves run from 10% to 90% in steps of 10%); the curve
//! is the softmax probability of the explained class on each imputed image.
//! A faithful map makes the MoRF curve fall fast (low area) and the LeRF
//! curve stay high (high area); the per-input scalars are each curve's area
//! divided by the span of the fractions (its mean height, [`curve_area`])
//! and the gap LeRF − MoRF (higher: more faithful).

use super::{tensor4, MAX_FORWARD_ROWS};
use crate::error::Result;
use crate::model::Classifier;
use crate::rng::Rng;
use crate::stats::softmax;

/// The authors' neighbour weights: `((dy, dx), weight)`.
pub const NEIGHBOURS: [((isize, isize), f64); 8] = [
    ((1, 1), 1.0 / 12.0),
    ((0, 1), 1.0 / 6.0),
    ((-1, 1), 1.0 / 12.0),
    ((1, -1), 1.0 / 12.0),
    ((0, -1), 1.0 / 6.0),
    ((-1, -1), 1.0 / 12.0),
    ((1, 0), 1.0 / 6.0),
    ((-1, 0), 1.0 / 6.0),
];

/// Conjugate gradients stop when `‖r‖ ≤ CG_TOLERANCE · ‖b‖`.
pub const CG_TOLERANCE: f64 = 1e-10;

/// The removal fractions by default: 10%, 20%, …, 90%.
pub const DEFAULT_FRACTIONS: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// The imputation system of one `h × w` mask: for each removed pixel (in
/// index order) its diagonal and its removed neighbours.
struct System {
    /// Pixel index of each unknown.
    unknowns: Vec<usize>,
    /// `d_i`.
    diagonal: Vec<f64>,
    /// `(unknown j, w_ij)` per unknown.
    coupled: Vec<Vec<(usize, f64)>>,
    /// `(pixel k, w_ik)` of the kept neighbours, per unknown.
    kept: Vec<Vec<(usize, f64)>>,
}

impl System {
    fn new(removed: &[bool], h: usize, w: usize) -> Self {
        let mut index = vec![usize::MAX; h * w];
        let unknowns: Vec<usize> = (0..h * w).filter(|&p| removed[p]).collect();
        for (u, &p) in unknowns.iter().enumerate() {
            index[p] = u;
        }
        let m = unknowns.len();
        let (mut diagonal, mut coupled, mut kept) =
            (vec![0f64; m], vec![Vec::new(); m], vec![Vec::new(); m]);
        for (u, &p) in unknowns.iter().enumerate() {
            let (y, x) = ((p / w) as isize, (p % w) as isize);
            for ((dy, dx), weight) in NEIGHBOURS {
                let (ny, nx) = (y + dy, x + dx);
                if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                    continue;
                }
                let q = ny as usize * w + nx as usize;
                diagonal[u] += weight;
                if removed[q] {
                    coupled[u].push((index[q], weight));
                } else {
                    kept[u].push((q, weight));
                }
            }
        }
        System {
            unknowns,
            diagonal,
            coupled,
            kept,
        }
    }

    fn apply(&self, x: &[f64], out: &mut [f64]) {
        for (u, o) in out.iter_mut().enumerate() {
            let mut v = self.diagonal[u] * x[u];
            for &(j, weight) in &self.coupled[u] {
                v -= weight * x[j];
            }
            *o = v;
        }
    }

    /// Conjugate gradients from zero; returns the solution and the
    /// iterations taken.
    fn solve(&self, b: &[f64]) -> (Vec<f64>, usize) {
        let m = b.len();
        let mut x = vec![0f64; m];
        let mut r = b.to_vec();
        let norm_b = dot(b, b).sqrt();
        if norm_b == 0.0 {
            return (x, 0);
        }
        let mut p = r.clone();
        let mut ap = vec![0f64; m];
        let mut rr = dot(&r, &r);
        // Exact arithmetic converges in m steps; leave room for round-off.
        for iteration in 0..10 * m + 10 {
            if rr.sqrt() <= CG_TOLERANCE * norm_b {
                return (x, iteration);
            }
            self.apply(&p, &mut ap);
            let alpha = rr / dot(&p, &ap);
            for k in 0..m {
                x[k] += alpha * p[k];
                r[k] -= alpha * ap[k];
            }
            let next = dot(&r, &r);
            let beta = next / rr;
            rr = next;
            for k in 0..m {
                p[k] = r[k] + beta * p[k];
            }
        }
        (x, 10 * m + 10)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The image `[C, H, W]` with its `removed` pixels (`H · W` flags, every
/// channel) filled by linear imputation, noise-free; every kept pixel is
/// unchanged. At least one pixel must be kept.
pub fn impute(image: &[f32], c: usize, h: usize, w: usize, removed: &[bool]) -> Vec<f32> {
    impute_noisy(image, c, h, w, removed, 0.0, None)
}

/// [`impute`] plus Gaussian noise of standard deviation `noise_std` (input
/// units) on each imputed value, drawn from `rng` channel by channel, pixel
/// by pixel in index order (no draws when `rng` is `None` or the standard
/// deviation is 0).
pub fn impute_noisy(
    image: &[f32],
    c: usize,
    h: usize,
    w: usize,
    removed: &[bool],
    noise_std: f32,
    mut rng: Option<&mut Rng>,
) -> Vec<f32> {
    let hw = h * w;
    let mut out = image.to_vec();
    assert!(
        removed.iter().any(|r| !r),
        "linear imputation needs one kept pixel"
    );
    let system = System::new(removed, h, w);
    for ch in 0..c {
        let plane = &image[ch * hw..(ch + 1) * hw];
        let b: Vec<f64> = system
            .kept
            .iter()
            .map(|ks| ks.iter().map(|&(q, wt)| wt * plane[q] as f64).sum())
            .collect();
        let (x, _) = system.solve(&b);
        for (u, &p) in system.unknowns.iter().enumerate() {
            let noise = match rng.as_deref_mut() {
                Some(r) if noise_std > 0.0 => noise_std * r.normal(),
                _ => 0.0,
            };
            out[ch * hw + p] = x[u] as f32 + noise;
        }
    }
    out
}

/// Pixels removed for fraction `f` of `pixels`: `round(f · pixels)`, at
/// most all but one (the imputation needs a kept pixel).
pub fn removed_count(fraction: f64, pixels: usize) -> usize {
    ((fraction * pixels as f64).round() as usize).min(pixels.saturating_sub(1))
}

/// How ROAD curves are sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct RoadSettings {
    /// Shares of the pixels removed, increasing, each in (0, 1).
    pub fractions: Vec<f64>,
    /// Standard deviation of the imputation noise, input units.
    pub noise_std: f32,
}

/// One input's ROAD curves: the explained class's softmax probability at
/// each fraction.
#[derive(Debug, Clone, PartialEq)]
pub struct RoadCurves {
    /// Most relevant pixels removed first.
    pub morf: Vec<f32>,
    /// Least relevant pixels removed first.
    pub lerf: Vec<f32>,
    /// Whether the model still predicts the explained class, per fraction,
    /// MoRF order.
    pub kept: Vec<bool>,
}

/// ROAD curves for a batch `x` (`[N, C, H, W]` row-major) whose pixels are
/// ranked by `orders[i]` (most relevant first), explained class
/// `classes[i]`; `rngs[i]` draws input `i`'s noise (MoRF then LeRF, fraction
/// by fraction), so curves do not depend on the batch.
pub fn road_curves(
    model: &dyn Classifier,
    x: &[f32],
    shape: [usize; 4],
    classes: &[u32],
    orders: &[Vec<usize>],
    settings: &RoadSettings,
    rngs: &mut [Rng],
) -> Result<Vec<RoadCurves>> {
    let [n, c, h, w] = shape;
    let (hw, per) = (h * w, c * h * w);
    let points = settings.fractions.len();
    // Rows are (input, MoRF/LeRF, fraction), in that order.
    let mut images = Vec::with_capacity(n * 2 * points * per);
    for i in 0..n {
        let xi = &x[i * per..(i + 1) * per];
        for lerf in [false, true] {
            for &f in &settings.fractions {
                let k = removed_count(f, hw);
                let mut removed = vec![false; hw];
                let chosen = if lerf {
                    &orders[i][hw - k..]
                } else {
                    &orders[i][..k]
                };
                for &p in chosen {
                    removed[p] = true;
                }
                images.extend(impute_noisy(
                    xi,
                    c,
                    h,
                    w,
                    &removed,
                    settings.noise_std,
                    Some(&mut rngs[i]),
                ));
            }
        }
    }
    let total = n * 2 * points;
    let mut probabilities = Vec::with_capacity(total);
    let mut kept = Vec::with_capacity(total);
    let mut row = 0;
    while row < total {
        let count = MAX_FORWARD_ROWS.min(total - row);
        let chunk = images[row * per..(row + count) * per].to_vec();
        let logits: Vec<Vec<f32>> = model
            .logits(&tensor4(chunk, [count, c, h, w])?)?
            .to_vec2()?;
        for (k, z) in logits.iter().enumerate() {
            let i = (row + k) / (2 * points);
            let class = classes[i] as usize;
            probabilities.push(softmax(z)[class]);
            kept.push(
                z.iter()
                    .enumerate()
                    .all(|(j, &v)| j == class || v < z[class]),
            );
        }
        row += count;
    }
    Ok(probabilities
        .chunks(2 * points)
        .zip(kept.chunks(2 * points))
        .map(|(p, k)| RoadCurves {
            morf: p[..points].to_vec(),
            lerf: p[points..].to_vec(),
            kept: k[..points].to_vec(),
        })
        .collect())
}

/// The area under a curve sampled at `fractions` (trapezoid rule) divided
/// by their span: the curve's mean height; the value itself for one point.
pub fn curve_area(fractions: &[f64], curve: &[f32]) -> f64 {
    if curve.len() < 2 {
        return curve.first().map_or(0.0, |&v| v as f64);
    }
    let mut area = 0.0;
    for k in 1..curve.len() {
        area += (fractions[k] - fractions[k - 1]) * (curve[k] as f64 + curve[k - 1] as f64) / 2.0;
    }
    area / (fractions[curve.len() - 1] - fractions[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::test_models::linear;

    fn mask(h: usize, w: usize, removed: &[usize]) -> Vec<bool> {
        let mut m = vec![false; h * w];
        for &p in removed {
            m[p] = true;
        }
        m
    }

    #[test]
    fn a_constant_image_is_reproduced_where_removed() {
        let (h, w) = (6, 7);
        let image = vec![0.37f32; 2 * h * w];
        // Corners, edges and an interior block, most of the image.
        let removed: Vec<usize> = (0..h * w).filter(|p| p % 5 != 3).collect();
        let out = impute(&image, 2, h, w, &mask(h, w, &removed));
        for v in out {
            assert!((v - 0.37).abs() < 1e-6, "{v}");
        }
    }

    #[test]
    fn a_linear_ramp_is_reproduced_inside_the_image() {
        // The weighted neighbour mean of a linear function is exact where
        // the neighbours are symmetric, i.e. every removed pixel off the
        // border; kept pixels ring the image.
        let (h, w) = (8, 9);
        let ramp: Vec<f32> = (0..h * w)
            .map(|p| 0.5 + 0.25 * (p / w) as f32 - 0.125 * (p % w) as f32)
            .collect();
        let removed: Vec<usize> = (0..h * w)
            .filter(|&p| {
                let (y, x) = (p / w, p % w);
                y > 0 && x > 0 && y < h - 1 && x < w - 1 && (y + x) % 3 != 0
            })
            .collect();
        let mut image = ramp.clone();
        for &p in &removed {
            image[p] = -9.0;
        }
        let out = impute(&image, 1, h, w, &mask(h, w, &removed));
        for p in 0..h * w {
            assert!(
                (out[p] - ramp[p]).abs() < 1e-5,
                "{p}: {} vs {}",
                out[p],
                ramp[p]
            );
        }
    }

    #[test]
    fn one_removed_pixel_is_the_weighted_mean_of_its_neighbours() {
        let (h, w) = (3, 3);
        let image: Vec<f32> = (0..9).map(|v| v as f32).collect();
        // Centre: (1+3+5+7)/6 + (0+2+6+8)/12 = 16/6 + 16/12 = 4.
        assert!((impute(&image, 1, h, w, &mask(h, w, &[4]))[4] - 4.0).abs() < 1e-6);
        // Corner 0: neighbours 1, 3 (1/6 each) and 4 (1/12), weights sum 5/12:
        // (1/6 + 3/6 + 4/12) / (5/12) = 1/(5/12) = 2.4.
        assert!((impute(&image, 1, h, w, &mask(h, w, &[0]))[0] - 2.4).abs() < 1e-6);
    }

    #[test]
    fn conjugate_gradients_meet_the_tolerance() {
        let (h, w) = (28, 28);
        let image: Vec<f32> = (0..h * w)
            .map(|p| ((p * 37) % 101) as f32 / 100.0)
            .collect();
        let removed: Vec<bool> = (0..h * w).map(|p| (p * 7919) % 10 != 0).collect();
        let system = System::new(&removed, h, w);
        let b: Vec<f64> = system
            .kept
            .iter()
            .map(|ks| ks.iter().map(|&(q, wt)| wt * image[q] as f64).sum())
            .collect();
        let (x, iterations) = system.solve(&b);
        let mut ax = vec![0f64; x.len()];
        system.apply(&x, &mut ax);
        let r: f64 = ax.iter().zip(&b).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
        assert!(r.sqrt() <= CG_TOLERANCE * dot(&b, &b).sqrt() * 1.01);
        assert!(iterations < x.len(), "{iterations} iterations");
    }

    #[test]
    fn noise_has_the_stated_scale_and_follows_the_generator() {
        let (h, w) = (20, 20);
        let image = vec![0.5f32; h * w];
        let removed = vec![true; h * w - 1]
            .into_iter()
            .chain([false])
            .collect::<Vec<_>>();
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            impute_noisy(&image, 1, h, w, &removed, 0.2, Some(&mut rng))
        };
        let a = draw(1);
        assert_eq!(a, draw(1));
        assert_ne!(a, draw(2));
        let sd = (a[..h * w - 1]
            .iter()
            .map(|v| ((v - 0.5) as f64).powi(2))
            .sum::<f64>()
            / (h * w - 1) as f64)
            .sqrt();
        assert!((sd - 0.2).abs() < 0.03, "{sd}");
    }

    #[test]
    fn removed_counts_keep_a_pixel() {
        assert_eq!(removed_count(0.1, 784), 78);
        assert_eq!(removed_count(0.9, 784), 706);
        assert_eq!(removed_count(0.9999, 784), 783);
    }

    #[test]
    fn curve_area_is_the_mean_height() {
        assert!((curve_area(&[0.1, 0.5, 0.9], &[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-12);
        assert!((curve_area(&[0.1, 0.9], &[1.0, 0.0]) - 0.5).abs() < 1e-12);
        assert_eq!(curve_area(&[0.3], &[0.25]), 0.25);
    }

    #[test]
    fn curves_rank_morf_below_lerf_for_the_true_weights() {
        // A linear two-class model on 4×4 inputs: class 0's logit rests on
        // the first row only. Removing that row first (MoRF) must hurt
        // class 0 more than removing the rest first (LeRF).
        let (h, w) = (4, 4);
        let mut weights = vec![0f32; 2 * h * w];
        weights[..w].fill(2.0);
        let model = linear(h, w, &weights, &[0.0, 0.0]);
        let x: Vec<f32> = (0..h * w).map(|p| if p < w { 1.0 } else { 0.0 }).collect();
        let scores: Vec<f32> = weights[..h * w].to_vec();
        let order = crate::attribution::metrics::ranking(&scores);
        let settings = RoadSettings {
            fractions: vec![0.25, 0.5],
            noise_std: 0.0,
        };
        let mut rngs = vec![Rng::new(0)];
        let curves = road_curves(
            &model,
            &x,
            [1, 1, h, w],
            &[0],
            &[order],
            &settings,
            &mut rngs,
        )
        .unwrap();
        let c = &curves[0];
        assert!(c.morf[0] < c.lerf[0], "{c:?}");
    }
}
