//! The Square attack (Andriushchenko et al., ECCV 2020): a score-based
//! random search that needs only the logits, so gradient masking cannot hide
//! a model from it — the last attack of AutoAttack, and the sanity check
//! that a white-box attack's robustness is real.
//!
//! Follows the reference (as ported in torchattacks 3.5): margin loss
//! `z_y − max_{j≠y} z_j`; L∞ starts from vertical stripes of ±ε and proposes
//! squares of ±2ε; L2 starts from a grid of pseudo-Gaussian bumps and moves
//! mass between two windows; the window side follows the p schedule
//! (p_init halved at iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000,
//! 8000 of a 10,000-query budget, rescaled to the budget). A proposal is
//! kept when it lowers the margin; a sample stops as soon as it is
//! misclassified. Unlike the reference, which draws one window position per
//! iteration for the whole batch, each sample draws its own from its own
//! generator, so results do not depend on the batch.

use serde::{Deserialize, Serialize};

use super::{
    logits_at, project, Attack, AttackBatch, AttackMethod, AttackOutcome, BestTracker, Budget, Norm,
};
use crate::entry::Entry;
use crate::error::Result;
use crate::model::Classifier;
use crate::rng::Rng;

/// Queries per input (AutoAttack's 5,000).
pub const DEFAULT_QUERIES: usize = 5000;
/// Initial share of pixels a square covers (the reference's 0.8).
pub const DEFAULT_P_INIT: f64 = 0.8;
/// Runs per input.
pub const DEFAULT_RESTARTS: usize = 1;

/// The norms Square runs in (the L1 version of Croce et al. 2022 is not
/// implemented: an L1 budget is refused, never run in another norm).
pub const SQUARE_NORMS: &[Norm] = &[Norm::Linf, Norm::L2];

/// A `square` plan entry: `norm` (default `linf`), `eps` (required; a list
/// gives a curve), `queries` (default 5,000), `p_init` (in (0, 1], default
/// 0.8) and `restarts` (default 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SquareConfig {
    /// Budget norm.
    #[schemars(extend("default" = Norm::Linf))]
    pub norm: Norm,
    /// Budget, in input units.
    pub eps: f64,
    /// Runs per input, on inputs still robust.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_RESTARTS))]
    pub restarts: usize,
    /// Queries per input.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_QUERIES))]
    pub queries: usize,
    /// Initial share of pixels a square covers.
    #[schemars(extend("default" = DEFAULT_P_INIT))]
    pub p_init: f64,
}

impl SquareConfig {
    /// Square with budget `eps`, every setting at its default.
    pub fn new(norm: Norm, eps: f64) -> Self {
        SquareConfig {
            norm,
            eps,
            restarts: DEFAULT_RESTARTS,
            queries: DEFAULT_QUERIES,
            p_init: DEFAULT_P_INIT,
        }
    }

    /// Reads the settings; one config per ε.
    pub fn from_entry(e: &mut Entry, budget: &Budget) -> Vec<Self> {
        super::refuse_norm(e, budget, "Square", SQUARE_NORMS);
        let queries = e.positive_int("queries").unwrap_or(DEFAULT_QUERIES);
        let p_init = match e.nonneg_float("p_init") {
            Some(p) if p == 0.0 || p > 1.0 => {
                e.fail("p_init", format!("must lie in (0, 1], found {p}"));
                DEFAULT_P_INIT
            }
            p => p.unwrap_or(DEFAULT_P_INIT),
        };
        let restarts = e.positive_int("restarts").unwrap_or(DEFAULT_RESTARTS);
        let norm = budget.norm();
        budget
            .eps_list(e)
            .into_iter()
            .map(|eps| SquareConfig {
                norm,
                eps,
                restarts,
                queries,
                p_init,
            })
            .collect()
    }

    /// The runnable attack.
    pub fn build(&self) -> Square {
        Square {
            norm: self.norm,
            eps: self.eps as f32,
            queries: self.queries,
            p_init: self.p_init as f32,
            restarts: self.restarts,
        }
    }
}

impl AttackMethod for SquareConfig {
    fn norm(&self) -> Norm {
        self.norm
    }
    fn eps(&self) -> Option<f64> {
        Some(self.eps)
    }
    fn attack(&self) -> Result<Box<dyn Attack>> {
        super::check_norm(self.norm, "Square", SQUARE_NORMS)?;
        Ok(Box::new(self.build()))
    }
    fn label(&self) -> String {
        "Square".into()
    }
    fn is_black_box(&self) -> bool {
        true
    }
}

/// A Square configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Square {
    /// Budget norm.
    pub norm: Norm,
    /// Budget.
    pub eps: f32,
    /// Queries per sample (after the initial one).
    pub queries: usize,
    /// Initial share of pixels a square covers.
    pub p_init: f32,
    /// Independent runs on samples still robust.
    pub restarts: usize,
}

/// The reference's schedule for the square size.
fn p_selection(p_init: f32, iteration: usize, queries: usize) -> f32 {
    let it = (iteration as f64 / queries.max(1) as f64 * 10_000.0) as usize;
    let div = match it {
        0..=10 => 1.0,
        11..=50 => 2.0,
        51..=200 => 4.0,
        201..=500 => 8.0,
        501..=1000 => 16.0,
        1001..=2000 => 32.0,
        2001..=4000 => 64.0,
        4001..=6000 => 128.0,
        6001..=8000 => 256.0,
        _ => 512.0,
    };
    p_init / div
}

fn margin(z: &[f32], y: usize) -> f32 {
    let other = z
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != y)
        .map(|(_, &v)| v)
        .fold(f32::NEG_INFINITY, f32::max);
    z[y] - other
}

fn random_sign(rng: &mut Rng) -> f32 {
    if rng.uniform_f32() < 0.5 {
        -1.0
    } else {
        1.0
    }
}

/// The reference's centred rectangles `x × y`, normalised.
fn eta_rectangles(x: usize, y: usize) -> Vec<f32> {
    let mut d = vec![0f32; x * y];
    let (xc, yc) = (x / 2 + 1, y / 2 + 1);
    let (mut c0, mut c1) = (xc as isize - 1, yc as isize - 1);
    for counter in 0..xc.max(yc) {
        let r0 =
            c0.max(0) as usize..((c0 + 2 * counter as isize + 1).min(x as isize)).max(0) as usize;
        let r1 =
            c1.max(0) as usize..((c1 + 2 * counter as isize + 1).min(y as isize)).max(0) as usize;
        let add = 1.0 / ((counter + 1) as f32).powi(2);
        for i in r0.clone() {
            for j in r1.clone() {
                d[i * y + j] += add;
            }
        }
        c0 -= 1;
        c1 -= 1;
    }
    let n = d.iter().map(|v| v * v).sum::<f32>().sqrt();
    d.iter().map(|v| v / n).collect()
}

/// The reference's pseudo-Gaussian bump of side `s` (random transpose).
fn eta(s: usize, rng: &mut Rng) -> Vec<f32> {
    let mut d = vec![0f32; s * s];
    let top = eta_rectangles(s / 2, s);
    let bottom = eta_rectangles(s - s / 2, s);
    d[..top.len()].copy_from_slice(&top);
    for (o, v) in d[top.len()..].iter_mut().zip(&bottom) {
        *o = -v;
    }
    let n = d.iter().map(|v| v * v).sum::<f32>().sqrt();
    d.iter_mut().for_each(|v| *v /= n);
    if rng.uniform_f32() > 0.5 {
        let mut t = vec![0f32; s * s];
        for i in 0..s {
            for j in 0..s {
                t[j * s + i] = d[i * s + j];
            }
        }
        d = t;
    }
    d
}

impl Square {
    fn init_point(
        &self,
        x: &[f32],
        c: usize,
        h: usize,
        w: usize,
        rng: &mut Rng,
        range: (f32, f32),
    ) -> Vec<f32> {
        let mut adv = x.to_vec();
        match self.norm {
            Norm::Linf => {
                // Vertical stripes: one sign per channel and column.
                for ch in 0..c {
                    for col in 0..w {
                        let s = random_sign(rng) * self.eps;
                        for row in 0..h {
                            adv[(ch * h + row) * w + col] += s;
                        }
                    }
                }
            }
            // L1 is refused in `run` before any proposal.
            Norm::L2 | Norm::L1 => {
                let s = (h / 5).max(1);
                let start = (h - s * 5.min(h / s)) / 2;
                let mut delta = vec![0f32; x.len()];
                let mut vh = start;
                for _ in 0..h / s {
                    let mut vw = start;
                    for _ in 0..w / s {
                        let bump = eta(s, rng);
                        for ch in 0..c {
                            let sign = random_sign(rng);
                            for i in 0..s {
                                for j in 0..s {
                                    if vh + i < h && vw + j < w {
                                        delta[(ch * h + vh + i) * w + vw + j] +=
                                            bump[i * s + j] * sign;
                                    }
                                }
                            }
                        }
                        vw += s;
                    }
                    vh += s;
                }
                let n = delta.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-12;
                for (a, d) in adv.iter_mut().zip(&delta) {
                    *a += d / n * self.eps;
                }
            }
        }
        project(&mut adv, x, self.norm, self.eps, range);
        adv
    }

    /// A proposal from the current best point of one sample.
    #[allow(clippy::too_many_arguments)]
    fn propose(
        &self,
        x: &[f32],
        best: &[f32],
        c: usize,
        h: usize,
        w: usize,
        iteration: usize,
        rng: &mut Rng,
        range: (f32, f32),
    ) -> Vec<f32> {
        let n_features = (c * h * w) as f32;
        let p = p_selection(self.p_init, iteration, self.queries);
        match self.norm {
            Norm::Linf => {
                let s =
                    ((p * n_features / c as f32).sqrt().round() as usize).clamp(1, h.min(w) - 1);
                let vh = rng.below((h - s) as u64) as usize;
                let vw = rng.below((w - s) as u64) as usize;
                let mut new = best.to_vec();
                for ch in 0..c {
                    let v = 2.0 * self.eps * random_sign(rng);
                    for i in vh..vh + s {
                        for j in vw..vw + s {
                            new[(ch * h + i) * w + j] += v;
                        }
                    }
                }
                project(&mut new, x, Norm::Linf, self.eps, range);
                new
            }
            Norm::L2 | Norm::L1 => {
                let mut s = ((p * n_features / c as f32).sqrt().round() as usize).max(3);
                if s % 2 == 0 {
                    s += 1;
                }
                let s = s.min(h.min(w) - 1).max(1);
                let vh = rng.below((h - s) as u64) as usize;
                let vw = rng.below((w - s) as u64) as usize;
                let vh2 = rng.below((h - s) as u64) as usize;
                let vw2 = rng.below((w - s) as u64) as usize;
                let mut delta: Vec<f32> = best.iter().zip(x).map(|(b, xi)| b - xi).collect();
                let in_w1 =
                    |i: usize, j: usize| (vh..vh + s).contains(&i) && (vw..vw + s).contains(&j);
                let in_w2 =
                    |i: usize, j: usize| (vh2..vh2 + s).contains(&i) && (vw2..vw2 + s).contains(&j);
                let norm_image = delta.iter().map(|v| v * v).sum::<f32>().sqrt();
                let mut windows_sq = 0f32;
                for ch in 0..c {
                    for i in 0..h {
                        for j in 0..w {
                            if in_w1(i, j) || in_w2(i, j) {
                                windows_sq += delta[(ch * h + i) * w + j].powi(2);
                            }
                        }
                    }
                }
                let norm_windows = windows_sq.sqrt();
                for ch in 0..c {
                    let mut w1_sq = 0f32;
                    for i in vh..vh + s {
                        for j in vw..vw + s {
                            w1_sq += delta[(ch * h + i) * w + j].powi(2);
                        }
                    }
                    let norm_w1 = w1_sq.sqrt();
                    let bump = eta(s, rng);
                    let sign = random_sign(rng);
                    let mut new: Vec<f32> = (0..s * s)
                        .map(|k| {
                            bump[k] * sign
                                + delta[(ch * h + vh + k / s) * w + vw + k % s] / (1e-12 + norm_w1)
                        })
                        .collect();
                    let nn = new.iter().map(|v| v * v).sum::<f32>().sqrt();
                    let target = ((self.eps * self.eps - norm_image * norm_image).max(0.0)
                        / c as f32
                        + norm_windows * norm_windows)
                        .sqrt();
                    new.iter_mut().for_each(|v| *v = *v / (1e-12 + nn) * target);
                    for i in vh2..vh2 + s {
                        for j in vw2..vw2 + s {
                            delta[(ch * h + i) * w + j] = 0.0;
                        }
                    }
                    for k in 0..s * s {
                        delta[(ch * h + vh + k / s) * w + vw + k % s] = new[k];
                    }
                }
                let n = delta.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-12;
                let mut out: Vec<f32> = x
                    .iter()
                    .zip(&delta)
                    .map(|(xi, d)| xi + d / n * self.eps)
                    .collect();
                project(&mut out, x, Norm::L2, self.eps, range);
                out
            }
        }
    }
}

impl Attack for Square {
    fn run(&self, model: &dyn Classifier, batch: &AttackBatch) -> Result<AttackOutcome> {
        super::check_norm(self.norm, "Square", SQUARE_NORMS)?;
        let [_, c, h, w] = batch.shape;
        let per = batch.item_len();
        let range = model.input_range();
        let mut best = BestTracker::new(batch, None);
        let mut rngs: Vec<Rng> = (0..batch.len()).map(|i| batch.sample_rng(i)).collect();
        let mut queries_used = 0;
        if h < 2 || w < 2 {
            return Ok(best.into_outcome(None, 0));
        }
        for _ in 0..self.restarts.max(1) {
            let rows = best.unbroken();
            if rows.is_empty() {
                break;
            }
            let x = super::gather(batch.x, &rows, per);
            let mut cur: Vec<f32> = Vec::with_capacity(x.len());
            for (r, &i) in rows.iter().enumerate() {
                cur.extend(self.init_point(
                    &x[r * per..(r + 1) * per],
                    c,
                    h,
                    w,
                    &mut rngs[i],
                    range,
                ));
            }
            let logits = logits_at(model, &cur, [rows.len(), c, h, w])?;
            queries_used += 1;
            best.offer_rows(&rows, &cur, &logits, batch.labels, None);
            let mut margins: Vec<f32> = rows
                .iter()
                .zip(&logits)
                .map(|(&i, z)| margin(z, batch.labels[i] as usize))
                .collect();
            for iteration in 0..self.queries {
                // Per-sample early stop: only samples not yet misclassified query.
                let active: Vec<usize> = (0..rows.len()).filter(|&r| margins[r] > 0.0).collect();
                if active.is_empty() {
                    break;
                }
                let mut proposals = Vec::with_capacity(active.len() * per);
                for &r in &active {
                    let i = rows[r];
                    let span = r * per..(r + 1) * per;
                    proposals.extend(self.propose(
                        &x[span.clone()],
                        &cur[span],
                        c,
                        h,
                        w,
                        iteration,
                        &mut rngs[i],
                        range,
                    ));
                }
                let logits = logits_at(model, &proposals, [active.len(), c, h, w])?;
                queries_used += 1;
                let active_rows: Vec<usize> = active.iter().map(|&r| rows[r]).collect();
                best.offer_rows(&active_rows, &proposals, &logits, batch.labels, None);
                for (a, &r) in active.iter().enumerate() {
                    let m = margin(&logits[a], batch.labels[rows[r]] as usize);
                    if m < margins[r] {
                        margins[r] = m;
                        cur[r * per..(r + 1) * per]
                            .copy_from_slice(&proposals[a * per..(a + 1) * per]);
                    }
                }
            }
        }
        // Queries, not gradients: reported in the same field, as model calls per sample.
        Ok(best.into_outcome(None, queries_used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_schedule_halves_at_the_reference_iterations() {
        assert_eq!(p_selection(0.8, 10, 10_000), 0.8);
        assert_eq!(p_selection(0.8, 11, 10_000), 0.4);
        assert_eq!(p_selection(0.8, 9_000, 10_000), 0.8 / 512.0);
        // Rescaled to a 1,000-query budget: iteration 5 is reference iteration 50.
        assert_eq!(p_selection(0.8, 5, 1_000), 0.4);
    }

    #[test]
    fn bumps_are_unit_norm_and_antisymmetric_in_sign() {
        let mut rng = Rng::new(0);
        let d = eta(5, &mut rng);
        let n: f32 = d.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5);
        let sum: f32 = d.iter().sum();
        assert!(
            d.iter().any(|&v| v > 0.0) && d.iter().any(|&v| v < 0.0),
            "{sum}"
        );
    }
}
