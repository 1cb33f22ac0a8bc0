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

use super::{
    choose_targets, logits_at, loss_gradient, project, sign, Attack, AttackBatch, AttackOutcome,
    BestTracker, Norm, Target,
};
use crate::error::Result;
use crate::model::Classifier;

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
