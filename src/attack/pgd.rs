//! Projected gradient descent (Madry et al. 2018) in L∞ and L2, untargeted or
//! targeted, with optional random starts and restarts.
//!
//! Each step follows torchattacks' `PGD` / `PGDL2` exactly: ascend the
//! cross-entropy on the label (descend it on the target) by `step_size` times
//! the gradient's sign (L∞) or the gradient over its L2 norm plus 1e-10 (L2),
//! clamp δ to the ε-ball, then clamp `x + δ` to the valid range. Unlike
//! torchattacks, every iterate (the start included, and the point after the
//! last step) is scored and the best per sample is kept, across restarts too:
//! a sample is robust only if no point of any restart broke it.

use serde::{Deserialize, Serialize};

use super::spec::read_target;
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

/// The step length when none is given: Madry et al.'s 2.5·ε/steps.
pub fn default_step_size(eps: f64, steps: usize) -> f64 {
    2.5 * eps / steps as f64
}

/// A `pgd` plan entry: `norm` (default `linf`), `eps` (required; a list
/// gives a curve), `step_size` (default 2.5·ε/`steps`), `steps` (default
/// 40), `random_start` (default true), `restarts` (default 1) and an
/// optional `target`. Lengths are in input units, in the budget's norm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PgdConfig {
    /// Budget norm.
    #[schemars(extend("default" = Norm::Linf))]
    pub norm: Norm,
    /// Budget.
    pub eps: f64,
    /// Step length.
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "2.5·ε/steps"}}))]
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
}

impl PgdConfig {
    /// Untargeted PGD with budget `eps` and every other setting at its default.
    pub fn new(norm: Norm, eps: f64) -> Self {
        PgdConfig {
            norm,
            eps,
            step_size: default_step_size(eps, DEFAULT_STEPS),
            steps: DEFAULT_STEPS,
            random_start: DEFAULT_RANDOM_START,
            restarts: DEFAULT_RESTARTS,
            target: None,
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
        budget
            .eps_list(e)
            .into_iter()
            .map(|eps| PgdConfig {
                norm,
                eps,
                step_size: step_size.unwrap_or_else(|| default_step_size(eps, steps)),
                steps,
                random_start,
                restarts,
                target,
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
}

impl Pgd {
    /// Fills `adv` with a random start around `x` for one sample: uniform in
    /// [−ε, ε] per coordinate (L∞), or a Gaussian direction scaled to a radius
    /// uniform in [0, ε] (L2), as torchattacks does; then clipped.
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
                    loss_gradient(model, &adv, batch.shape, batch.labels, targets)?;
                evaluations += 1;
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
