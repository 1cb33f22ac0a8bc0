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

/// SLIC's segment count asked for by default: about as many as the default
/// grid has on a square input (64).
pub const DEFAULT_N_SEGMENTS: usize = 64;

/// SLIC's compactness by default, for channel values scaled to `[0, 1]`: a
/// spatial distance of one grid interval weighs as much as a colour
/// distance of 0.1.
pub const DEFAULT_COMPACTNESS: f64 = 0.1;

/// How the input is cut into features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    /// Square patches of `patch_size` pixels.
    Grid,
    /// SLIC superpixels of each input (Achanta et al. 2012), about
    /// `n_segments` of them, with `compactness`.
    Slic,
}

impl SegmentKind {
    /// Names as written in plans (and serialized).
    pub const CHOICES: &'static [(&'static str, SegmentKind)] =
        &[("grid", SegmentKind::Grid), ("slic", SegmentKind::Slic)];
}

/// The segmentation keys both methods read, unset ones `None` (the patch
/// size follows the input size; SLIC's keys apply only with `"slic"`, the
/// patch size only with `"grid"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentKeys {
    /// `segments`.
    pub segments: SegmentKind,
    /// `patch_size` (grid only).
    pub patch_size: Option<usize>,
    /// `n_segments` (SLIC only, filled in with its default).
    pub n_segments: Option<usize>,
    /// `compactness` (SLIC only, filled in with its default).
    pub compactness: Option<f64>,
    /// `baseline`.
    pub baseline: Fill,
}

/// Reads `segments`, `patch_size`, `n_segments`, `compactness` and
/// `baseline`; a key that does not apply with the chosen segments is an
/// error naming it.
pub fn read_segment_keys(e: &mut Entry) -> SegmentKeys {
    let segments = e
        .choice("segments", SegmentKind::CHOICES)
        .unwrap_or(SegmentKind::Grid);
    let patch_size = e.positive_int("patch_size");
    let n_segments = e.positive_int("n_segments");
    let compactness = e.positive_float("compactness");
    let baseline = Fill::from_entry(e, "baseline").unwrap_or(DEFAULT_BASELINE);
    let misplaced: &[(&str, bool)] = match segments {
        SegmentKind::Grid => &[
            ("n_segments", n_segments.is_some()),
            ("compactness", compactness.is_some()),
        ],
        SegmentKind::Slic => &[("patch_size", patch_size.is_some())],
    };
    for &(key, set) in misplaced {
        if set {
            let with = match segments {
                SegmentKind::Grid => "segments = \"slic\"",
                SegmentKind::Slic => "segments = \"grid\"",
            };
            e.fail(key, format!("applies only with {with}"));
        }
    }
    let slic = segments == SegmentKind::Slic;
    SegmentKeys {
        segments,
        patch_size: patch_size.filter(|_| !slic),
        n_segments: slic.then(|| n_segments.unwrap_or(DEFAULT_N_SEGMENTS)),
        compactness: slic.then(|| compactness.unwrap_or(DEFAULT_COMPACTNESS)),
        baseline,
    }
}

/// Off segments' value by default: black, the low end of the model's range.
pub const DEFAULT_BASELINE: Fill = Fill::Named(super::NamedFill::Black);

/// With grid segments, fills in an unset patch size and checks that the
/// grid has at least two segments (the `patch_size` key's error otherwise).
pub fn resolve_patch_size(
    segments: SegmentKind,
    patch_size: &mut Option<usize>,
    input_hw: (usize, usize),
) -> std::result::Result<(), SettingError> {
    if segments != SegmentKind::Grid {
        return Ok(());
    }
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

/// How a method cuts each input into segments.
#[derive(Debug, Clone, PartialEq)]
pub enum Segmenter {
    /// The same grid for every input.
    Grid(Segments),
    /// SLIC superpixels of each input ([`slic`]).
    Slic {
        /// Segments asked for.
        n_segments: usize,
        /// Spatial against colour distance.
        compactness: f64,
    },
}

impl Segmenter {
    /// From the settings; `patch` is the grid's patch side.
    pub fn new(
        keys: SegmentKind,
        patch: usize,
        n_segments: Option<usize>,
        compactness: Option<f64>,
        input_hw: (usize, usize),
    ) -> Segmenter {
        match keys {
            SegmentKind::Grid => Segmenter::Grid(Segments::grid(input_hw, patch)),
            SegmentKind::Slic => Segmenter::Slic {
                n_segments: n_segments.unwrap_or(DEFAULT_N_SEGMENTS),
                compactness: compactness.unwrap_or(DEFAULT_COMPACTNESS),
            },
        }
    }

    /// The segments of each input of `x` (`[N, C, H, W]` row-major, values
    /// in `range`).
    pub fn segments(&self, x: &[f32], shape: [usize; 4], range: (f32, f32)) -> Vec<Segments> {
        let [n, c, h, w] = shape;
        let per = c * h * w;
        (0..n)
            .map(|i| match self {
                Segmenter::Grid(s) => s.clone(),
                Segmenter::Slic {
                    n_segments,
                    compactness,
                } => slic(
                    &x[i * per..(i + 1) * per],
                    [c, h, w],
                    range,
                    *n_segments,
                    *compactness,
                ),
            })
            .collect()
    }
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

/// SLIC superpixels (Achanta et al. 2012, "SLIC Superpixels Compared to
/// State-of-the-Art Superpixel Methods", TPAMI 34(11)) of one image
/// `[C, H, W]`: k-means over (channel values, position) with `K ≈
/// n_segments` centres seeded on a regular grid of interval `S = √(HW/K)`,
/// each moved to the lowest-gradient pixel of its 3×3 neighbourhood; each
/// pixel joins the nearest centre within 2S×2S by `D² = d_c² + (d_s/S)²·m²`
/// (`m` = `compactness`), 10 iterations; then connectivity is enforced:
/// components smaller than S²/4 pixels join the segment to their left or
/// above. Colour distances are on the channel values scaled to `[0, 1]` by
/// the model's `range`, not CIELAB (the channels need not be RGB), so `m`
/// is on that scale. Segments are numbered in row-major order of their
/// first pixel.
pub fn slic(
    image: &[f32],
    chw: [usize; 3],
    range: (f32, f32),
    n_segments: usize,
    compactness: f64,
) -> Segments {
    const ITERATIONS: usize = 10;
    let [c, h, w] = chw;
    let hw = h * w;
    let width = (range.1 - range.0) as f64;
    let scale = if width > 0.0 { 1.0 / width } else { 1.0 };
    let value = |ch: usize, p: usize| (image[ch * hw + p] - range.0) as f64 * scale;
    let colour_gap = |p: usize, q: usize| -> f64 {
        (0..c).map(|ch| (value(ch, p) - value(ch, q)).powi(2)).sum()
    };
    let step = (hw as f64 / n_segments.max(1) as f64).sqrt().max(1.0);
    let rows = ((h as f64 / step).round() as usize).clamp(1, h);
    let cols = ((w as f64 / step).round() as usize).clamp(1, w);
    // Centres: (y, x, colour...), seeded on the grid, moved downhill.
    let gradient = |y: usize, x: usize| -> f64 {
        let at = |yy: usize, xx: usize| yy * w + xx;
        let (l, r) = (at(y, x.saturating_sub(1)), at(y, (x + 1).min(w - 1)));
        let (u, d) = (at(y.saturating_sub(1), x), at((y + 1).min(h - 1), x));
        colour_gap(l, r) + colour_gap(u, d)
    };
    let mut centres: Vec<Vec<f64>> = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for k in 0..cols {
            let y0 = (((r as f64 + 0.5) * h as f64 / rows as f64) as usize).min(h - 1);
            let x0 = (((k as f64 + 0.5) * w as f64 / cols as f64) as usize).min(w - 1);
            let mut best = (gradient(y0, x0), y0, x0);
            for y in y0.saturating_sub(1)..=(y0 + 1).min(h - 1) {
                for x in x0.saturating_sub(1)..=(x0 + 1).min(w - 1) {
                    let g = gradient(y, x);
                    if g < best.0 {
                        best = (g, y, x);
                    }
                }
            }
            let (_, y, x) = best;
            let mut centre = vec![y as f64, x as f64];
            centre.extend((0..c).map(|ch| value(ch, y * w + x)));
            centres.push(centre);
        }
    }
    let spatial = (compactness / step).powi(2);
    let distance = |centre: &[f64], p: usize| -> f64 {
        let (y, x) = ((p / w) as f64, (p % w) as f64);
        let ds = (y - centre[0]).powi(2) + (x - centre[1]).powi(2);
        let dc: f64 = (0..c)
            .map(|ch| (value(ch, p) - centre[2 + ch]).powi(2))
            .sum();
        dc + ds * spatial
    };
    let reach = (2.0 * step).ceil() as i64;
    let mut label = vec![usize::MAX; hw];
    for _ in 0..ITERATIONS {
        let mut best = vec![f64::INFINITY; hw];
        label.fill(usize::MAX);
        for (k, centre) in centres.iter().enumerate() {
            let (cy, cx) = (centre[0].round() as i64, centre[1].round() as i64);
            for y in (cy - reach).max(0)..(cy + reach + 1).min(h as i64) {
                for x in (cx - reach).max(0)..(cx + reach + 1).min(w as i64) {
                    let p = y as usize * w + x as usize;
                    let d = distance(centre, p);
                    if d < best[p] {
                        best[p] = d;
                        label[p] = k;
                    }
                }
            }
        }
        // A pixel out of every centre's reach joins the nearest centre.
        for (p, l) in label.iter_mut().enumerate() {
            if *l == usize::MAX {
                let mut nearest = (f64::INFINITY, 0);
                for (k, centre) in centres.iter().enumerate() {
                    let d = distance(centre, p);
                    if d < nearest.0 {
                        nearest = (d, k);
                    }
                }
                *l = nearest.1;
            }
        }
        let mut sums = vec![vec![0f64; 2 + c]; centres.len()];
        let mut counts = vec![0usize; centres.len()];
        for (p, &k) in label.iter().enumerate() {
            counts[k] += 1;
            sums[k][0] += (p / w) as f64;
            sums[k][1] += (p % w) as f64;
            for ch in 0..c {
                sums[k][2 + ch] += value(ch, p);
            }
        }
        for (k, centre) in centres.iter_mut().enumerate() {
            if counts[k] > 0 {
                for (v, s) in centre.iter_mut().zip(&sums[k]) {
                    *v = s / counts[k] as f64;
                }
            }
        }
    }
    // Connectivity: 4-connected components in row-major order; a small one
    // joins the component left of or above its first pixel.
    let min_size = ((step * step) / 4.0) as usize;
    let mut of_pixel = vec![usize::MAX; hw];
    let mut count = 0;
    let mut stack = Vec::new();
    let mut component = Vec::new();
    for start in 0..hw {
        if of_pixel[start] != usize::MAX {
            continue;
        }
        component.clear();
        stack.push(start);
        of_pixel[start] = count;
        while let Some(p) = stack.pop() {
            component.push(p);
            let (y, x) = (p / w, p % w);
            let mut visit = |q: usize| {
                if of_pixel[q] == usize::MAX && label[q] == label[start] {
                    of_pixel[q] = count;
                    stack.push(q);
                }
            };
            if x > 0 {
                visit(p - 1);
            }
            if x + 1 < w {
                visit(p + 1);
            }
            if y > 0 {
                visit(p - w);
            }
            if y + 1 < h {
                visit(p + w);
            }
        }
        let (y, x) = (start / w, start % w);
        let adjacent = if x > 0 {
            Some(of_pixel[start - 1])
        } else if y > 0 {
            Some(of_pixel[start - w])
        } else {
            None
        };
        match adjacent {
            Some(a) if component.len() < min_size => {
                for &p in &component {
                    of_pixel[p] = a;
                }
            }
            _ => count += 1,
        }
    }
    Segments {
        hw: (h, w),
        of_pixel,
        count,
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
    segments: &[Segments],
    fill: f32,
    masks: &[Vec<u8>],
) -> Result<Perturbed> {
    let [n, c, h, w] = check_batch(model, batch)?;
    if segments.len() != n || masks.len() != n {
        return Err(Error::Invalid(format!(
            "{} segmentations and {} mask sets for {n} inputs",
            segments.len(),
            masks.len()
        )));
    }
    for (s, k) in segments.iter().zip(masks) {
        if (h, w) != s.hw || s.of_pixel.len() != h * w {
            return Err(Error::Invalid(format!(
                "segments set up for {:?} inputs, got {h}×{w}",
                s.hw
            )));
        }
        let m = s.count;
        if m == 0 || k.is_empty() || k.len() % m != 0 {
            return Err(Error::Invalid(format!(
                "perturbation masks: need whole rows of {m} segments, got {} values",
                k.len()
            )));
        }
    }
    let per = c * h * w;
    let x: Vec<f32> = batch.x.flatten_all()?.to_vec1()?;
    // (input, sample) pairs in order.
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (0..masks[i].len() / segments[i].count).map(move |k| (i, k)))
        .collect();
    let mut scores: Vec<Vec<f32>> = masks.iter().map(|k| Vec::with_capacity(k.len())).collect();
    let mut cosines: Vec<Vec<f64>> = scores
        .iter()
        .map(|s| Vec::with_capacity(s.capacity()))
        .collect();
    for chunk in pairs.chunks(MAX_FORWARD_ROWS) {
        let mut rows = Vec::with_capacity(chunk.len() * per);
        let mut classes = Vec::with_capacity(chunk.len());
        for &(i, k) in chunk {
            let m = segments[i].count;
            let mask = &masks[i][k * m..(k + 1) * m];
            let xi = &x[i * per..(i + 1) * per];
            let (mut dot, mut norm_x, mut norm_p) = (0f64, 0f64, 0f64);
            for (j, &v) in xi.iter().enumerate() {
                let on = mask[segments[i].of_pixel[j % (h * w)]] != 0;
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

    /// Each segment's pixels form one 4-connected piece.
    fn connected(s: &Segments) -> bool {
        let (h, w) = s.hw;
        let mut seen = vec![false; h * w];
        let mut pieces = 0;
        for start in 0..h * w {
            if seen[start] {
                continue;
            }
            pieces += 1;
            let mut stack = vec![start];
            seen[start] = true;
            while let Some(p) = stack.pop() {
                let (y, x) = (p / w, p % w);
                let mut near = Vec::new();
                if x > 0 {
                    near.push(p - 1);
                }
                if x + 1 < w {
                    near.push(p + 1);
                }
                if y > 0 {
                    near.push(p - w);
                }
                if y + 1 < h {
                    near.push(p + w);
                }
                for q in near {
                    if !seen[q] && s.of_pixel[q] == s.of_pixel[p] {
                        seen[q] = true;
                        stack.push(q);
                    }
                }
            }
        }
        pieces == s.count
    }

    /// Two flat regions split by a vertical edge off the grid lines: no
    /// superpixel straddles the edge, every segment is one connected piece
    /// numbered in row-major order, and all numbers are used.
    #[test]
    fn slic_follows_edges_and_gives_connected_segments() {
        let (h, w) = (20, 20);
        let image: Vec<f32> = (0..h * w)
            .map(|p| if p % w < 7 { 0.9 } else { 0.1 })
            .collect();
        let s = slic(&image, [1, h, w], (0.0, 1.0), 16, 0.1);
        assert!(s.count >= 4, "{}", s.count);
        assert!(connected(&s));
        let mut first_seen = Vec::new();
        for &l in &s.of_pixel {
            if !first_seen.contains(&l) {
                first_seen.push(l);
            }
        }
        assert_eq!(first_seen, (0..s.count).collect::<Vec<_>>());
        for seg in 0..s.count {
            let sides: Vec<bool> = (0..h * w)
                .filter(|&p| s.of_pixel[p] == seg)
                .map(|p| p % w < 7)
                .collect();
            assert!(
                sides.iter().all(|&b| b == sides[0]),
                "segment {seg} straddles the edge"
            );
        }
        // The range scales colours: the same image on [0, 255] cuts alike.
        let wide: Vec<f32> = image.iter().map(|v| v * 255.0).collect();
        assert_eq!(slic(&wide, [1, h, w], (0.0, 255.0), 16, 0.1), s);
    }

    /// On a flat image only position counts: one compact superpixel per
    /// seed, each a rectangle of 3 to 5 pixels a side (ties between
    /// equidistant seeds go to the first).
    #[test]
    fn slic_on_a_flat_image_is_a_regular_tiling() {
        let image = vec![0.5f32; 3 * 12 * 12];
        let s = slic(&image, [3, 12, 12], (0.0, 1.0), 9, 0.1);
        assert_eq!(s.count, 9);
        assert!(connected(&s));
        for seg in 0..9 {
            let pixels: Vec<usize> = (0..144).filter(|&p| s.of_pixel[p] == seg).collect();
            let ys: Vec<usize> = pixels.iter().map(|p| p / 12).collect();
            let xs: Vec<usize> = pixels.iter().map(|p| p % 12).collect();
            let height = ys.iter().max().unwrap() - ys.iter().min().unwrap() + 1;
            let width = xs.iter().max().unwrap() - xs.iter().min().unwrap() + 1;
            assert_eq!(pixels.len(), height * width, "segment {seg} is a rectangle");
            assert!(
                (3..=5).contains(&height) && (3..=5).contains(&width),
                "segment {seg}"
            );
        }
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
