//! Projected gradient descent (Madry et al. 2018) in L∞, L2 and L1,
//! untargeted or targeted, with optional random starts and restarts.
//!
//! Each L∞/L2 step follows torchattacks' `PGD` / `PGDL2` exactly: ascend the
//! cross-entropy on the label (descend it on the target) by `step_size` times
//! the gradient's sign (L∞) or the gradient over its L2 norm plus 1e-10 (L2),
//! clamp δ to the ε-ball, then clamp `x + δ` to the valid range.
//!
//! L1 is sparse L1 descent (SLIDE; Tramèr & Boneh, NeurIPS 2019), as
//! Foolbox's `SparseL1DescentAttack`: the gradient's coordinates that the
//! box blocks (at the lower bound and pointing down, at the upper bound and
//! pointing up) are zeroed, only those whose |gradient| is at or above its
//! `quantile` (0.99: the top 1%, NumPy's linear interpolation over all
//! coordinates, the zeroed ones included) move, each by the sign over the
//! number moved (a step of L1 length `step_size`), and the point is
//! projected. Unlike Foolbox, the projection is the exact one onto the L1
//! ball ∩ box ([`super::l1_box_projection`]) rather than an L1-ball
//! projection followed by clipping, the default step is Foolbox's
//! `rel_stepsize` 0.2·ε with our 40 steps (Foolbox: 10), and a targeted
//! attack blocks coordinates by its descent direction (Foolbox checks the
//! raw gradient's sign). Unlike
//! torchattacks, every iterate (the start included, and the point after the
//! last step) is scored and the best per sample is kept, across restarts too:
//! a sample is robust only if no point of any restart broke it.

use serde::{Deserialize, Serialize};

use super::spec::{default_eot, is_default_eot, read_eot_samples, read_target};
use super::{
    choose_targets, logits_at, loss_gradient, project, sign, Attack, AttackBatch, AttackMethod,
    AttackOutcome, BestTracker, Budget, Norm, Target,
};
use crate::entry::Entry;
use crate::error::Result;
use crate::model::Classifier;

/// Gradient steps per restart (Foolbox's 40).
pub const DEFAULT_STEPS: usize = 40;
/// Start from a random point of the ε-ball (Madry et al.).
pub const DEFAULT_RANDOM_START: bool = true;
/// Runs per input.
pub const DEFAULT_RESTARTS: usize = 1;

/// SLIDE's share of coordinates left still: the top 1% move (Foolbox's
/// `quantile` 0.99).
pub const DEFAULT_QUANTILE: f64 = 0.99;

/// The step length when none is given: Madry et al.'s 2.5·ε/steps in L∞
/// and L2; Foolbox's `rel_stepsize` 0.2·ε for sparse L1 descent.
pub fn default_step_size(norm: Norm, eps: f64, steps: usize) -> f64 {
    match norm {
        Norm::Linf | Norm::L2 => 2.5 * eps / steps as f64,
        Norm::L1 => 0.2 * eps,
    }
}

/// A `pgd` plan entry: `norm` (default `linf`), `eps` (required; a list
/// gives a curve), `step_size` (default 2.5·ε/`steps`; 0.2·ε in L1),
/// `steps` (default 40), `random_start` (default true), `restarts`
/// (default 1), an optional `target`, `eot_samples` (default 1: draws of a
/// randomized model each gradient averages over), and for L1 only
/// `quantile` (default 0.99). Lengths are in input units, in the budget's
/// norm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PgdConfig {
    /// Budget norm.
    #[schemars(extend("default" = Norm::Linf))]
    pub norm: Norm,
    /// Budget.
    pub eps: f64,
    /// Step length.
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "2.5·ε/steps (L1: 0.2·ε)"}}))]
    pub step_size: f64,
    /// Gradient steps per restart.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_STEPS))]
    pub steps: usize,
    /// Start from a random point of the ε-ball.
    #[schemars(extend("default" = DEFAULT_RANDOM_START))]
    pub random_start: bool,
    /// Runs per input; the best point is kept.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_RESTARTS))]
    pub restarts: usize,
    /// Targeted mode: `least_likely`, `random` or a class index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "untargeted"}}))]
    pub target: Option<Target>,
    /// L1 only (sparse L1 descent): the quantile of |gradient| a coordinate
    /// must reach to move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "0.99 (L1 only)"}}))]
    pub quantile: Option<f64>,
    /// Draws of a randomized model each gradient averages over
    /// (Expectation over Transformation); 1 is a plain gradient.
    #[serde(default = "default_eot", skip_serializing_if = "is_default_eot")]
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = super::DEFAULT_EOT_SAMPLES))]
    pub eot_samples: usize,
}

impl PgdConfig {
    /// Untargeted PGD with budget `eps` and every other setting at its default.
    pub fn new(norm: Norm, eps: f64) -> Self {
        PgdConfig {
            norm,
            eps,
            step_size: default_step_size(norm, eps, DEFAULT_STEPS),
            steps: DEFAULT_STEPS,
            random_start: DEFAULT_RANDOM_START,
            restarts: DEFAULT_RESTARTS,
            target: None,
            quantile: (norm == Norm::L1).then_some(DEFAULT_QUANTILE),
            eot_samples: super::DEFAULT_EOT_SAMPLES,
        }
    }

    /// Reads the settings; one config per ε (the default step length
    /// follows each ε).
    pub fn from_entry(e: &mut Entry, budget: &Budget) -> Vec<Self> {
        let target = read_target(e);
        let steps = e.positive_int("steps").unwrap_or(DEFAULT_STEPS);
        let step_size = e.nonneg_float("step_size");
        let random_start = e.boolean("random_start").unwrap_or(DEFAULT_RANDOM_START);
        let restarts = e.positive_int("restarts").unwrap_or(DEFAULT_RESTARTS);
        let norm = budget.norm();
        let quantile = e.float_in("quantile", 0.0, 1.0);
        if quantile.is_some() && norm != Norm::L1 {
            e.fail(
                "quantile",
                format!("applies to sparse L1 descent only (norm = \"l1\"), not norm = \"{norm}\""),
            );
        }
        let quantile = (norm == Norm::L1).then(|| quantile.unwrap_or(DEFAULT_QUANTILE));
        let eot_samples = read_eot_samples(e);
        budget
            .eps_list(e)
            .into_iter()
            .map(|eps| PgdConfig {
                norm,
                eps,
                step_size: step_size.unwrap_or_else(|| default_step_size(norm, eps, steps)),
                steps,
                random_start,
                restarts,
                target,
                quantile,
                eot_samples,
            })
            .collect()
    }

    /// The runnable attack.
    pub fn build(&self) -> Pgd {
        Pgd {
            norm: self.norm,
            eps: self.eps as f32,
            step_size: self.step_size as f32,
            steps: self.steps,
            random_start: self.random_start,
            restarts: self.restarts,
            target: self.target,
            l1_step: L1Step::Sparse {
                quantile: self.quantile.unwrap_or(DEFAULT_QUANTILE) as f32,
            },
            eot: self.eot_samples,
        }
    }
}

impl AttackMethod for PgdConfig {
    fn norm(&self) -> Norm {
        self.norm
    }
    fn eps(&self) -> Option<f64> {
        Some(self.eps)
    }
    fn attack(&self) -> Result<Box<dyn Attack>> {
        Ok(Box::new(self.build()))
    }
    fn eot_samples(&self) -> Option<usize> {
        Some(self.eot_samples)
    }
    fn label(&self) -> String {
        super::targeted_label("PGD", self.target)
    }
    fn target(&self) -> Option<Target> {
        self.target
    }
}

/// A PGD configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Pgd {
    /// Budget norm.
    pub norm: Norm,
    /// Budget.
    pub eps: f32,
    /// Step length (in the budget's norm).
    pub step_size: f32,
    /// Gradient steps per restart.
    pub steps: usize,
    /// Start from a random point in the ε-ball (torchattacks' sampling).
    pub random_start: bool,
    /// Independent runs; the best point per sample is kept.
    pub restarts: usize,
    /// Targeted mode.
    pub target: Option<Target>,
    /// The L1 step (unused in L∞ and L2).
    pub l1_step: L1Step,
    /// Draws each gradient averages over (1: none).
    pub eot: usize,
}

/// How a step moves in L1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum L1Step {
    /// Along the gradient over its L1 norm (Foolbox's
    /// `L1FastGradientAttack`): every coordinate moves, in proportion.
    Dense,
    /// Sparse L1 descent: only coordinates whose |gradient| reaches this
    /// quantile move, by its sign.
    Sparse {
        /// In `[0, 1]`.
        quantile: f32,
    },
}

/// NumPy's `quantile` (linear interpolation) of `values`, sorted ascending.
fn quantile_of_sorted(sorted: &[f32], q: f32) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q.clamp(0.0, 1.0) as f64 * (sorted.len() - 1) as f64;
    let below = pos.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let frac = (pos - below as f64) as f32;
    sorted[below] + frac * (sorted[above] - sorted[below])
}

/// The sparse L1 direction at `adv` for the ascent direction `dir·grad`:
/// coordinates the box blocks zeroed, the rest kept where |gradient|
/// reaches the `quantile`, as signs over their count (L1 length 1).
pub fn sparse_l1_direction(
    adv: &[f32],
    grad: &[f32],
    dir: f32,
    quantile: f32,
    range: (f32, f32),
) -> Vec<f32> {
    let (lo, hi) = range;
    let g: Vec<f32> = adv
        .iter()
        .zip(grad)
        .map(|(&a, &gi)| {
            let d = dir * gi;
            if (a <= lo && d < 0.0) || (a >= hi && d > 0.0) {
                0.0
            } else {
                d
            }
        })
        .collect();
    let mut sorted: Vec<f32> = g.iter().map(|v| v.abs()).collect();
    sorted.sort_by(f32::total_cmp);
    let threshold = quantile_of_sorted(&sorted, quantile);
    let mut e: Vec<f32> = g
        .iter()
        .map(|&d| if d.abs() >= threshold { sign(d) } else { 0.0 })
        .collect();
    let count = e.iter().map(|v| v.abs()).sum::<f32>().max(1e-12);
    for v in e.iter_mut() {
        *v /= count;
    }
    e
}

impl Pgd {
    /// Fills `adv` with a random start around `x` for one sample: uniform in
    /// [−ε, ε] per coordinate (L∞), or a Gaussian direction scaled to a radius
    /// uniform in [0, ε] (L2), as torchattacks does; uniform in the L1 ball
    /// (as Foolbox's `uniform_l1_n_balls`: d + 1 exponential draws eᵢ, δᵢ =
    /// ±ε·eᵢ/Σⱼeⱼ over the first d, random signs); then projected.
    fn random_start(
        &self,
        adv: &mut [f32],
        x: &[f32],
        rng: &mut crate::rng::Rng,
        range: (f32, f32),
    ) {
        match self.norm {
            Norm::Linf => {
                for (a, &xi) in adv.iter_mut().zip(x) {
                    *a = xi + rng.uniform_range(-self.eps, self.eps);
                }
            }
            Norm::L2 => {
                let noise: Vec<f32> = (0..x.len()).map(|_| rng.normal()).collect();
                let n = noise.iter().map(|v| v * v).sum::<f32>().sqrt();
                let r = rng.uniform_f32();
                let scale = if n > 0.0 { r / n * self.eps } else { 0.0 };
                for ((a, &xi), d) in adv.iter_mut().zip(x).zip(&noise) {
                    *a = xi + d * scale;
                }
            }
            Norm::L1 => {
                let exp = |rng: &mut crate::rng::Rng| -(1.0 - rng.uniform_f64()).ln();
                let draws: Vec<f64> = (0..x.len()).map(|_| exp(rng)).collect();
                let total = draws.iter().sum::<f64>() + exp(rng);
                for ((a, &xi), e) in adv.iter_mut().zip(x).zip(&draws) {
                    let s = if rng.uniform_f32() < 0.5 { -1.0 } else { 1.0 };
                    *a = (xi as f64 + s * self.eps as f64 * e / total) as f32;
                }
            }
        }
        project(adv, x, self.norm, self.eps, range);
    }

    /// One step from `adv` along `grad` (ascending when `ascend`), projected.
    fn step(&self, adv: &mut [f32], x: &[f32], grad: &[f32], ascend: bool, range: (f32, f32)) {
        let dir = if ascend { 1.0 } else { -1.0 };
        match self.norm {
            Norm::Linf => {
                for (a, g) in adv.iter_mut().zip(grad) {
                    *a += dir * self.step_size * sign(*g);
                }
            }
            Norm::L2 => {
                let gn = grad.iter().map(|g| g * g).sum::<f32>().sqrt() + 1e-10;
                for (a, g) in adv.iter_mut().zip(grad) {
                    *a += dir * self.step_size * (g / gn);
                }
            }
            Norm::L1 => match self.l1_step {
                L1Step::Dense => {
                    let gn = grad.iter().map(|g| g.abs()).sum::<f32>().max(1e-12);
                    for (a, g) in adv.iter_mut().zip(grad) {
                        *a += dir * self.step_size * (g / gn);
                    }
                }
                L1Step::Sparse { quantile } => {
                    let e = sparse_l1_direction(adv, grad, dir, quantile, range);
                    for (a, ei) in adv.iter_mut().zip(&e) {
                        *a += self.step_size * ei;
                    }
                }
            },
        }
        project(adv, x, self.norm, self.eps, range);
    }
}

impl Attack for Pgd {
    fn run(&self, model: &dyn Classifier, batch: &AttackBatch) -> Result<AttackOutcome> {
        let targets = choose_targets(self.target, batch, model.num_classes())?;
        let targets = targets.as_deref();
        let range = model.input_range();
        let per = batch.item_len();
        let mut best = BestTracker::new(batch, targets);
        let mut rngs: Vec<_> = (0..batch.len()).map(|i| batch.sample_rng(i)).collect();
        let mut evaluations = 0;
        for _ in 0..self.restarts.max(1) {
            let mut adv = batch.x.to_vec();
            if self.random_start {
                for (i, rng) in rngs.iter_mut().enumerate() {
                    let span = i * per..(i + 1) * per;
                    self.random_start(&mut adv[span.clone()], &batch.x[span], rng, range);
                }
            }
            for _ in 0..self.steps {
                let (logits, grad) =
                    loss_gradient(model, &adv, batch.shape, batch.labels, targets, self.eot)?;
                evaluations += super::eot_draws(model, self.eot);
                best.offer(&adv, &logits, batch.labels, targets);
                for i in 0..batch.len() {
                    let span = i * per..(i + 1) * per;
                    self.step(
                        &mut adv[span.clone()],
                        &batch.x[span.clone()],
                        &grad[span],
                        targets.is_none(),
                        range,
                    );
                }
            }
            let logits = logits_at(model, &adv, batch.shape)?;
            best.offer(&adv, &logits, batch.labels, targets);
        }
        Ok(AttackOutcome {
            adversarial: best.adversarial,
            logits: best.logits,
            success: best.success,
            targets: targets.map(|t| t.to_vec()),
            gradient_evaluations: evaluations,
        })
    }
}
