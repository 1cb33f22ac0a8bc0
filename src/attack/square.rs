//! The Square attack (Andriushchenko et al., ECCV 2020): a score-based
//! random search that needs only the logits, so gradient masking cannot hide
//! a model from it — the last attack of AutoAttack, and the sanity check
//! that a white-box attack's robustness is real.
//!
//! Follows the reference (`fra31/auto-attack`, `square.py`, L∞ and L2 as
//! ported in torchattacks 3.5): margin loss `z_y − max_{j≠y} z_j`; L∞
//! starts from vertical stripes of ±ε and proposes squares of ±2ε; L2
//! starts from a grid of pseudo-Gaussian bumps and moves mass between two
//! windows; the window side follows the p schedule (p_init halved at
//! iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000, counted on a
//! 10,000-query budget: rescaled to the budget unless `rescale_schedule` is
//! off, as AutoAttack runs it). A proposal is kept when it lowers the
//! margin; a sample stops as soon as it is misclassified. Unlike the
//! reference, which draws one window position per iteration for the whole
//! batch, each sample draws its own from its own generator, so results do
//! not depend on the batch.
//!
//! L1 is the reference's `norm == 'L1'` branch (Croce, Singh & Hein, "Mind
//! the box", ICML 2021): bumps weighted 1/(k+1)⁴ ring by ring and of unit L1
//! mass; the start is a 5×5 grid of ±bumps of side ⌊h/5⌋ (a sign per
//! channel) projected onto the L1 ball ∩ box; a proposal gives window 1, per
//! channel, a ±bump plus window 1's own normalised content, rescaled to the
//! channel's mass in both windows plus its share of the unspent budget
//! (times the channel count, as the reference), empties window 2, and is
//! projected onto the L1 ball ∩ box ([`super::l1_box_projection`]); the
//! side is odd, at least 3 and at most the image's. Differs from the
//! reference: the box is the model's range and the start's bumps are scaled
//! by its width (the reference's unit-mass bumps assume `[0, 1]`), so a
//! model saved for `[0, 255]` with ε·255 is attacked alike; the projection
//! is at ε itself with round-off corrected (the reference projects at
//! ε·(1 − 10⁻⁶) for float safety); each sample draws its own windows, bump
//! and transposition; a corner is drawn in `[0, h − s)` as the reference
//! draws it, and is 0 when the window spans the side; the side's square
//! root is rounded half away from zero (Python's `round` goes to even). At
//! ε = 0 every point is the clean input, so no query is spent.

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
/// Whether the p schedule is rescaled to the query budget (the reference
/// class's `resc_schedule` default; AutoAttack turns it off).
pub const DEFAULT_RESCALE_SCHEDULE: bool = true;

fn default_rescale_schedule() -> bool {
    DEFAULT_RESCALE_SCHEDULE
}

fn is_default_rescale_schedule(v: &bool) -> bool {
    *v == DEFAULT_RESCALE_SCHEDULE
}

/// A `square` plan entry: `norm` (`linf`, the default, `l2` or `l1`),
/// `eps` (required; a list gives a curve), `queries` (default 5,000),
/// `p_init` (in (0, 1], default 0.8), `restarts` (default 1) and
/// `rescale_schedule` (default true: the p schedule's iterations are
/// counted on a 10,000-query budget and rescaled to `queries`; false counts
/// them as they come, as AutoAttack does).
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
    /// Whether the p schedule is rescaled to `queries` (the reference's
    /// `resc_schedule`; AutoAttack runs Square without it).
    #[serde(
        default = "default_rescale_schedule",
        skip_serializing_if = "is_default_rescale_schedule"
    )]
    #[schemars(extend("default" = DEFAULT_RESCALE_SCHEDULE))]
    pub rescale_schedule: bool,
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
            rescale_schedule: DEFAULT_RESCALE_SCHEDULE,
        }
    }

    /// AutoAttack's Square (`autoattack.py`: `p_init=.8`, `n_queries=5000`,
    /// `n_restarts=1`, `resc_schedule=False`).
    pub fn autoattack(norm: Norm, eps: f64) -> Self {
        SquareConfig {
            rescale_schedule: false,
            ..SquareConfig::new(norm, eps)
        }
    }

    /// Reads the settings; one config per ε.
    pub fn from_entry(e: &mut Entry, budget: &Budget) -> Vec<Self> {
        let queries = e.positive_int("queries").unwrap_or(DEFAULT_QUERIES);
        let p_init = match e.nonneg_float("p_init") {
            Some(p) if p == 0.0 || p > 1.0 => {
                e.fail("p_init", format!("must lie in (0, 1], found {p}"));
                DEFAULT_P_INIT
            }
            p => p.unwrap_or(DEFAULT_P_INIT),
        };
        let restarts = e.positive_int("restarts").unwrap_or(DEFAULT_RESTARTS);
        let rescale_schedule = e
            .boolean("rescale_schedule")
            .unwrap_or(DEFAULT_RESCALE_SCHEDULE);
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
                rescale_schedule,
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
            rescale_schedule: self.rescale_schedule,
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
    /// Whether the p schedule is rescaled to `queries`.
    pub rescale_schedule: bool,
}

/// The reference's schedule for the square size: `iteration` counted as
/// it comes, or on a 10,000-query budget (`rescale`).
fn p_selection(p_init: f32, iteration: usize, queries: usize, rescale: bool) -> f32 {
    let it = if rescale {
        (iteration as f64 / queries.max(1) as f64 * 10_000.0) as usize
    } else {
        iteration
    };
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

/// A window's first row (or column) for side `s` in `n`: drawn in
/// `[0, n − s)` as the reference's `random_int(0, n − s)` draws it, and 0
/// when the window spans the side.
fn corner(rng: &mut Rng, n: usize, s: usize) -> usize {
    if n > s {
        rng.below((n - s) as u64) as usize
    } else {
        0
    }
}

/// Scales `v` to unit norm (L1 for `Norm::L1`, else L2); a zero `v` stays.
fn unit_norm(v: &mut [f32], norm: Norm) {
    let n = match norm {
        Norm::L1 => v.iter().map(|a| a.abs()).sum::<f32>(),
        _ => v.iter().map(|a| a * a).sum::<f32>().sqrt(),
    };
    if n > 0.0 {
        v.iter_mut().for_each(|a| *a /= n);
    }
}

/// The reference's centred rectangles `x × y`: nested rings weighted
/// 1/(k+1)² (L2) or 1/(k+1)⁴ (L1), of unit norm in `norm`.
fn eta_rectangles(x: usize, y: usize, norm: Norm) -> Vec<f32> {
    let mut d = vec![0f32; x * y];
    let (xc, yc) = (x / 2 + 1, y / 2 + 1);
    let (mut c0, mut c1) = (xc as isize - 1, yc as isize - 1);
    let power = if norm == Norm::L1 { 4 } else { 2 };
    for counter in 0..xc.max(yc) {
        let r0 =
            c0.max(0) as usize..((c0 + 2 * counter as isize + 1).min(x as isize)).max(0) as usize;
        let r1 =
            c1.max(0) as usize..((c1 + 2 * counter as isize + 1).min(y as isize)).max(0) as usize;
        let add = 1.0 / ((counter + 1) as f32).powi(power);
        for i in r0.clone() {
            for j in r1.clone() {
                d[i * y + j] += add;
            }
        }
        c0 -= 1;
        c1 -= 1;
    }
    unit_norm(&mut d, norm);
    d
}

/// The reference's bump of side `s`: a positive top half over a negative
/// bottom half, unit norm in `norm` (L2 for L∞ and L2), transposed at
/// random.
fn eta(s: usize, norm: Norm, rng: &mut Rng) -> Vec<f32> {
    let mut d = vec![0f32; s * s];
    let top = eta_rectangles(s / 2, s, norm);
    let bottom = eta_rectangles(s - s / 2, s, norm);
    d[..top.len()].copy_from_slice(&top);
    for (o, v) in d[top.len()..].iter_mut().zip(&bottom) {
        *o = -v;
    }
    unit_norm(&mut d, norm);
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
    fn p(&self, iteration: usize) -> f32 {
        p_selection(self.p_init, iteration, self.queries, self.rescale_schedule)
    }

    /// The L2 and L1 start before scaling: one ±bump (random sign per
    /// channel) per block of a grid of side ⌊h/5⌋ blocks.
    fn bump_grid(&self, c: usize, h: usize, w: usize, rng: &mut Rng) -> Vec<f32> {
        let s = (h / 5).max(1);
        let start = (h - s * 5.min(h / s)) / 2;
        let mut delta = vec![0f32; c * h * w];
        let mut vh = start;
        for _ in 0..h / s {
            let mut vw = start;
            for _ in 0..w / s {
                let bump = eta(s, self.norm, rng);
                for ch in 0..c {
                    let sign = random_sign(rng);
                    for i in 0..s {
                        for j in 0..s {
                            if vh + i < h && vw + j < w {
                                delta[(ch * h + vh + i) * w + vw + j] += bump[i * s + j] * sign;
                            }
                        }
                    }
                }
                vw += s;
            }
            vh += s;
        }
        delta
    }

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
            Norm::L2 => {
                let delta = self.bump_grid(c, h, w, rng);
                let n = delta.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-12;
                for (a, d) in adv.iter_mut().zip(&delta) {
                    *a += d / n * self.eps;
                }
            }
            Norm::L1 => {
                // Unit-mass bumps on [0, 1], scaled with the range; the
                // projection below brings the grid into the ball, as the
                // reference's start.
                let width = range.1 - range.0;
                let delta = self.bump_grid(c, h, w, rng);
                for (a, d) in adv.iter_mut().zip(&delta) {
                    *a += d * width;
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
        match self.norm {
            Norm::Linf => {
                let n_features = (c * h * w) as f32;
                let p = self.p(iteration);
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
            Norm::L2 => self.propose_l2(x, best, [c, h, w], iteration, rng, range),
            Norm::L1 => self.propose_l1(x, best, [c, h, w], iteration, rng, range),
        }
    }

    /// L2: window 1 gets a bump plus its own normalised content, scaled so
    /// the image keeps its norm; window 2 is emptied.
    fn propose_l2(
        &self,
        x: &[f32],
        best: &[f32],
        [c, h, w]: [usize; 3],
        iteration: usize,
        rng: &mut Rng,
        range: (f32, f32),
    ) -> Vec<f32> {
        let n_features = (c * h * w) as f32;
        let p = self.p(iteration);
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
        let in_w1 = |i: usize, j: usize| (vh..vh + s).contains(&i) && (vw..vw + s).contains(&j);
        let in_w2 = |i: usize, j: usize| (vh2..vh2 + s).contains(&i) && (vw2..vw2 + s).contains(&j);
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
            let bump = eta(s, Norm::L2, rng);
            let sign = random_sign(rng);
            let mut new: Vec<f32> = (0..s * s)
                .map(|k| {
                    bump[k] * sign
                        + delta[(ch * h + vh + k / s) * w + vw + k % s] / (1e-12 + norm_w1)
                })
                .collect();
            let nn = new.iter().map(|v| v * v).sum::<f32>().sqrt();
            let target = ((self.eps * self.eps - norm_image * norm_image).max(0.0) / c as f32
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

    /// L1 (the reference's `norm == 'L1'` branch): per channel, window 1
    /// gets a ±bump plus its own content of unit mass, rescaled to
    /// `c·(max(ε − ‖δ‖₁, 0)/c + m)` with `m` the channel's mass in both
    /// windows; window 2 is emptied; then the exact projection onto the L1
    /// ball ∩ box does the rest.
    fn propose_l1(
        &self,
        x: &[f32],
        best: &[f32],
        [c, h, w]: [usize; 3],
        iteration: usize,
        rng: &mut Rng,
        range: (f32, f32),
    ) -> Vec<f32> {
        let n_features = (c * h * w) as f32;
        let p = self.p(iteration);
        let mut s = ((p * n_features / c as f32).sqrt().round() as usize).max(3);
        if s % 2 == 0 {
            s += 1;
        }
        let s = s.min(h.min(w));
        let (vh, vw) = (corner(rng, h, s), corner(rng, w, s));
        let (vh2, vw2) = (corner(rng, h, s), corner(rng, w, s));
        let at = |ch: usize, i: usize, j: usize| (ch * h + i) * w + j;
        let in_w1 = |i: usize, j: usize| (vh..vh + s).contains(&i) && (vw..vw + s).contains(&j);
        let in_w2 = |i: usize, j: usize| (vh2..vh2 + s).contains(&i) && (vw2..vw2 + s).contains(&j);
        let mut delta: Vec<f32> = best.iter().zip(x).map(|(b, xi)| b - xi).collect();
        let norm_image: f32 = delta.iter().map(|v| v.abs()).sum();
        let unspent = (self.eps - norm_image).max(0.0) / c as f32;
        // One bump per proposal, its sign per channel, as the reference.
        let bump = eta(s, Norm::L1, rng);
        let mut windows: Vec<Vec<f32>> = Vec::with_capacity(c);
        for ch in 0..c {
            // The channel's mass in window 1 and in both, before any change.
            let (mut mass_w1, mut mass_both) = (0f32, 0f32);
            for i in 0..h {
                for j in 0..w {
                    let v = delta[at(ch, i, j)].abs();
                    if in_w1(i, j) {
                        mass_w1 += v;
                    }
                    if in_w1(i, j) || in_w2(i, j) {
                        mass_both += v;
                    }
                }
            }
            let sign = random_sign(rng);
            let mut new: Vec<f32> = (0..s * s)
                .map(|k| bump[k] * sign + delta[at(ch, vh + k / s, vw + k % s)] / (1e-12 + mass_w1))
                .collect();
            let mass: f32 = new.iter().map(|v| v.abs()).sum();
            let target = (unspent + mass_both) * c as f32;
            new.iter_mut()
                .for_each(|v| *v = *v / (1e-12 + mass) * target);
            windows.push(new);
        }
        for ch in 0..c {
            for i in vh2..vh2 + s {
                for j in vw2..vw2 + s {
                    delta[at(ch, i, j)] = 0.0;
                }
            }
        }
        for (ch, new) in windows.iter().enumerate() {
            for (k, v) in new.iter().enumerate() {
                delta[at(ch, vh + k / s, vw + k % s)] = *v;
            }
        }
        let mut out: Vec<f32> = x.iter().zip(&delta).map(|(xi, d)| xi + d).collect();
        project(&mut out, x, Norm::L1, self.eps, range);
        out
    }
}

impl Attack for Square {
    fn run(&self, model: &dyn Classifier, batch: &AttackBatch) -> Result<AttackOutcome> {
        let [_, c, h, w] = batch.shape;
        let per = batch.item_len();
        let range = model.input_range();
        let mut best = BestTracker::new(batch, None);
        let mut rngs: Vec<Rng> = (0..batch.len()).map(|i| batch.sample_rng(i)).collect();
        let mut queries_used = 0;
        // At ε = 0 every proposal is the clean input: nothing to query.
        if h < 2 || w < 2 || self.eps <= 0.0 {
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
        assert_eq!(p_selection(0.8, 10, 10_000, true), 0.8);
        assert_eq!(p_selection(0.8, 11, 10_000, true), 0.4);
        assert_eq!(p_selection(0.8, 9_000, 10_000, true), 0.8 / 512.0);
        // Rescaled to a 1,000-query budget: iteration 5 is reference iteration 50.
        assert_eq!(p_selection(0.8, 5, 1_000, true), 0.4);
        // AutoAttack's 5,000 queries without rescaling: iteration 2,500 is
        // in (2000, 4000], not (4000, 6000].
        assert_eq!(p_selection(0.8, 2_500, 5_000, false), 0.8 / 64.0);
        assert_eq!(p_selection(0.8, 2_500, 5_000, true), 0.8 / 128.0);
        assert_eq!(p_selection(0.8, 4_999, 5_000, false), 0.8 / 128.0);
    }

    #[test]
    fn bumps_are_unit_norm_and_antisymmetric_in_sign() {
        let mut rng = Rng::new(0);
        let d = eta(5, Norm::L2, &mut rng);
        let n: f32 = d.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5);
        let sum: f32 = d.iter().sum();
        assert!(
            d.iter().any(|&v| v > 0.0) && d.iter().any(|&v| v < 0.0),
            "{sum}"
        );
    }

    #[test]
    fn l1_bumps_have_unit_mass_and_rings_weighted_by_the_fourth_power() {
        // 3×3: the centre is in both rings (1 + 1/2⁴), the rest in the outer one.
        let r = eta_rectangles(3, 3, Norm::L1);
        assert!((r[4] / r[0] - 17.0).abs() < 1e-4, "{r:?}");
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let mut rng = Rng::new(1);
        for s in [1, 3, 5, 7, 28] {
            let d = eta(s, Norm::L1, &mut rng);
            let mass: f32 = d.iter().map(|v| v.abs()).sum();
            assert!((mass - 1.0).abs() < 1e-5, "side {s}: {mass}");
        }
    }
}
