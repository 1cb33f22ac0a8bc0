//! Auto-PGD (Croce & Hein, ICML 2020), the first two attacks of AutoAttack:
//! APGD with the cross-entropy or the DLR loss, untargeted, or targeted at
//! the top-k other classes (APGD-T), in L∞, L2 and L1.
//!
//! L1 is l1-APGD from "Mind the box" (Croce & Hein, ICML 2021), as the
//! reference's `norm='L1'` branch of `autopgd_base.py`: a random start is a
//! standard Gaussian δ projected onto the L1 ball ∩ box; each step moves
//! the coordinates whose |gradient| is among the top `k` (k starts at 20%
//! of the coordinates, as the reference code, or at ⅔ of a given start's
//! nonzero count) by `step·sign(g)/k`, with no momentum, and is projected
//! exactly onto the L1 ball ∩ box ([`super::l1_box_projection`]); the
//! step starts at ε. Every max(⌊0.04·N⌋, 1) iterations k becomes ⅔ of the
//! best point's nonzero count, and if that count fell below 95% of the
//! last one the step is reset to ε and the run restarts from its best
//! point, else the step is divided by 1.5 (kept within [ε/10, ε]).
//! `use_largereps` is AutoAttack's L1 schedule (`decr_eps_pgd`): 30% of the
//! iterations at 3ε, 30% at 2ε and the rest at ε, each stage starting from
//! the previous one's best point projected onto the smaller ball (the first
//! from a Gaussian start projected at 3ε); only the last stage's points,
//! inside the ε-ball, can count as adversarial. Unlike the reference the
//! box is the model's range rather than [0, 1].
//!
//! Follows the reference implementation (`fra31/auto-attack`, as ported in
//! torchattacks 3.5): a random start on the ε-sphere, first step 2ε,
//! momentum 0.75, checkpoints every `k` iterations starting at 0.22·N and
//! shrinking by 0.03·N down to 0.06·N; at a checkpoint a sample's step is
//! halved, and it restarts from its best point, if the loss increased on at
//! most ρ = 0.75 of the steps since the last checkpoint, or if neither the
//! step nor the best loss changed since then. Restarts (and, for APGD-T,
//! target classes) run only on samples still robust. Every iterate is
//! offered to the best-point tracker, so an input counts as robust only if
//! no iterate of any run broke it.

use serde::{Deserialize, Serialize};

use super::{
    gather, logits_at, sign, Attack, AttackBatch, AttackMethod, AttackOutcome, BestTracker, Budget,
    Norm,
};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::{Classifier, InputGradient, Objective};
use crate::rng::Rng;

/// Iterations per run (AutoAttack's 100).
pub const DEFAULT_STEPS: usize = 100;
/// Runs per input (per target class for APGD-T).
pub const DEFAULT_RESTARTS: usize = 1;
/// The loss.
pub const DEFAULT_LOSS: ApgdLoss = ApgdLoss::Ce;
/// The step-halving threshold ρ (the reference's 0.75).
pub const DEFAULT_RHO: f32 = 0.75;

/// APGD's loss, written `ce` or `dlr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApgdLoss {
    /// Cross-entropy (targeted: minus the cross-entropy of the target).
    Ce,
    /// Difference of logits ratio (Croce & Hein 2020), scale invariant.
    Dlr,
}

/// An `apgd` plan entry: `norm` (default `linf`), `eps` (required; a list
/// gives a curve), `steps` (default 100), `restarts` (default 1), `loss`
/// (`ce`, the default, or `dlr`) and `target_classes` (APGD-T: attack the
/// that many most likely other classes; untargeted when unset),
/// `eot_samples` (default 1: draws of a randomized model each gradient
/// averages over, the reference's `eot_iter`). Settings of the reference
/// implementation (`fra31/auto-attack`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApgdConfig {
    /// Budget norm.
    #[schemars(extend("default" = Norm::Linf))]
    pub norm: Norm,
    /// Budget, in input units.
    pub eps: f64,
    /// Iterations per run.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_STEPS))]
    pub steps: usize,
    /// Runs per input, on inputs still robust.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_RESTARTS))]
    pub restarts: usize,
    /// The loss.
    #[schemars(extend("default" = DEFAULT_LOSS))]
    pub loss: ApgdLoss,
    /// APGD-T: the number of most likely other classes attacked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "untargeted"}}))]
    pub target_classes: Option<usize>,
    /// L1 only: AutoAttack's L1 schedule, 30% of the steps at 3ε, 30% at
    /// 2ε, the rest at ε (the reference's `use_largereps`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("default" = false))]
    pub use_largereps: bool,
    /// Draws of a randomized model each gradient averages over (the
    /// reference's `eot_iter`); 1 is a plain gradient.
    #[serde(
        default = "super::spec::default_eot",
        skip_serializing_if = "super::spec::is_default_eot"
    )]
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = super::DEFAULT_EOT_SAMPLES))]
    pub eot_samples: usize,
}

impl ApgdConfig {
    /// Untargeted APGD-CE with budget `eps`, every setting at its default.
    pub fn new(norm: Norm, eps: f64) -> Self {
        ApgdConfig {
            norm,
            eps,
            steps: DEFAULT_STEPS,
            restarts: DEFAULT_RESTARTS,
            loss: DEFAULT_LOSS,
            target_classes: None,
            use_largereps: false,
            eot_samples: super::DEFAULT_EOT_SAMPLES,
        }
    }

    /// Reads the settings; one config per ε.
    pub fn from_entry(e: &mut Entry, budget: &Budget) -> Vec<Self> {
        let steps = e.positive_int("steps").unwrap_or(DEFAULT_STEPS);
        let restarts = e.positive_int("restarts").unwrap_or(DEFAULT_RESTARTS);
        let loss = e
            .choice("loss", &[("ce", ApgdLoss::Ce), ("dlr", ApgdLoss::Dlr)])
            .unwrap_or(DEFAULT_LOSS);
        let target_classes = e.positive_int("target_classes");
        let norm = budget.norm();
        let use_largereps = e.boolean("use_largereps").unwrap_or(false);
        let eot_samples = super::spec::read_eot_samples(e);
        if use_largereps && norm != Norm::L1 {
            e.fail(
                "use_largereps",
                format!("is AutoAttack's L1 schedule: it needs norm = \"l1\", not \"{norm}\""),
            );
        }
        budget
            .eps_list(e)
            .into_iter()
            .map(|eps| ApgdConfig {
                norm,
                eps,
                steps,
                restarts,
                loss,
                target_classes,
                use_largereps: use_largereps && norm == Norm::L1,
                eot_samples,
            })
            .collect()
    }

    /// The runnable attack.
    pub fn build(&self) -> Apgd {
        Apgd {
            norm: self.norm,
            eps: self.eps as f32,
            steps: self.steps,
            restarts: self.restarts,
            loss: self.loss,
            target_classes: self.target_classes,
            rho: DEFAULT_RHO,
            use_largereps: self.use_largereps,
            eot: self.eot_samples,
        }
    }
}

impl AttackMethod for ApgdConfig {
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
    /// AutoAttack's names: APGD-CE, APGD-DLR, and APGD-T for the targeted
    /// DLR loss (`APGD-T (CE)` for the targeted cross-entropy).
    fn label(&self) -> String {
        match (self.loss, self.target_classes) {
            (ApgdLoss::Ce, None) => "APGD-CE".into(),
            (ApgdLoss::Dlr, None) => "APGD-DLR".into(),
            (ApgdLoss::Dlr, Some(_)) => "APGD-T".into(),
            (ApgdLoss::Ce, Some(_)) => "APGD-T (CE)".into(),
        }
    }
}

/// An APGD configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Apgd {
    /// Budget norm.
    pub norm: Norm,
    /// Budget.
    pub eps: f32,
    /// Iterations per run.
    pub steps: usize,
    /// Runs (per target class for APGD-T), on still-robust samples.
    pub restarts: usize,
    /// The loss.
    pub loss: ApgdLoss,
    /// Targeted at the `n` most likely other classes (APGD-T), or untargeted.
    pub target_classes: Option<usize>,
    /// Step-halving threshold ρ.
    pub rho: f32,
    /// L1 only: AutoAttack's 3ε, 2ε, ε schedule.
    pub use_largereps: bool,
    /// Draws each gradient averages over (1: none).
    pub eot: usize,
}

/// One APGD run's budget, length and start.
struct Stage<'a> {
    /// The ball's radius for this run.
    eps: f32,
    /// Iterations.
    steps: usize,
    /// A starting point per row (`None`: a random start).
    init: Option<&'a [f32]>,
    /// Whether its points may count (a larger-ε stage's may not).
    offer: bool,
}

/// The share of coordinates an l1-APGD step starts with (the reference's
/// `topk = .2`).
pub const L1_INITIAL_TOPK: f32 = 0.2;

/// The number of nonzero coordinates of `a − x`.
fn nonzero(a: &[f32], x: &[f32]) -> usize {
    a.iter().zip(x).filter(|(p, q)| p != q).count()
}

/// One l1-APGD step for one sample: the coordinates whose |gradient| is at
/// or above the one at rank ⌊(1 − topk)·d⌋ of the sorted magnitudes move by
/// `step·sign(g)` over their count, then the exact L1 ∩ box projection.
fn l1_step_sample(
    eps: f32,
    step: f32,
    topk: f32,
    adv: &mut [f32],
    x: &[f32],
    grad: &[f32],
    range: (f32, f32),
) {
    let d = grad.len();
    let mut sorted: Vec<f32> = grad.iter().map(|g| g.abs()).collect();
    sorted.sort_by(f32::total_cmp);
    let rank = (((1.0 - topk) * d as f32).max(0.0) as usize).min(d.saturating_sub(1));
    let threshold = sorted.get(rank).copied().unwrap_or(0.0);
    let signs: Vec<f32> = grad
        .iter()
        .map(|&g| if g.abs() >= threshold { sign(g) } else { 0.0 })
        .collect();
    let count = signs.iter().map(|v| v.abs()).sum::<f32>() + 1e-10;
    for (a, s) in adv.iter_mut().zip(&signs) {
        *a += step * s / count;
    }
    super::project(adv, x, Norm::L1, eps, range);
}

/// The DLR loss and its gradient with respect to the logits. Untargeted:
/// `−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12)`; targeted at `t`:
/// `−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12)`, z sorted descending.
pub fn dlr_loss(z: &[f32], y: usize, target: Option<usize>) -> (f32, Vec<f32>) {
    let k = z.len();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| z[b].total_cmp(&z[a]).then(a.cmp(&b)));
    let at = |r: usize| order[r.min(k - 1)];
    let mut dnum = vec![0f32; k];
    let mut dden = vec![0f32; k];
    let (num, den) = match target {
        None => {
            let other = if order[0] == y { order[1] } else { order[0] };
            dnum[y] += 1.0;
            dnum[other] -= 1.0;
            dden[at(0)] += 1.0;
            dden[at(2)] -= 1.0;
            (z[y] - z[other], z[at(0)] - z[at(2)] + 1e-12)
        }
        Some(t) => {
            dnum[y] += 1.0;
            dnum[t] -= 1.0;
            dden[at(0)] += 1.0;
            dden[at(2)] -= 0.5;
            dden[at(3)] -= 0.5;
            (z[y] - z[t], z[at(0)] - 0.5 * (z[at(2)] + z[at(3)]) + 1e-12)
        }
    };
    let loss = -num / den;
    let grad = (0..k)
        .map(|j| -dnum[j] / den + num / (den * den) * dden[j])
        .collect();
    (loss, grad)
}

/// The checkpoint schedule: `(first interval, shrink, minimum)` for N iterations.
fn schedule(steps: usize) -> (usize, usize, usize) {
    let n = steps as f64;
    (
        ((0.22 * n) as usize).max(1),
        ((0.03 * n) as usize).max(1),
        ((0.06 * n) as usize).max(1),
    )
}

/// `v / ‖v‖₂` with the reference's 1e-12 guard.
fn l2_normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt() + 1e-12;
    v.iter().map(|a| a / n).collect()
}

/// Projects `p` onto the L2 ε-ball around `x` and the range as the reference
/// does: `x + (p − x)/(‖p − x‖ + 1e-12) · min(ε, ‖p − x‖)`, clipped.
fn project_l2(p: &mut [f32], x: &[f32], eps: f32, range: (f32, f32)) {
    let d: Vec<f32> = p.iter().zip(x).map(|(a, b)| a - b).collect();
    let n = d.iter().map(|a| a * a).sum::<f32>().sqrt();
    let scale = eps.min(n) / (n + 1e-12);
    for ((a, &xi), di) in p.iter_mut().zip(x).zip(&d) {
        *a = (xi + di * scale).clamp(range.0, range.1);
    }
}

/// One APGD step for one sample: a (sign or normalised) gradient step, then
/// momentum towards it, each projected.
#[allow(clippy::too_many_arguments)]
fn step_sample(
    norm: Norm,
    eps: f32,
    step: f32,
    momentum: f32,
    adv: &mut [f32],
    old: &[f32],
    x: &[f32],
    grad: &[f32],
    range: (f32, f32),
) {
    let (lo, hi) = range;
    match norm {
        Norm::Linf => {
            for i in 0..adv.len() {
                let z = (adv[i] + step * sign(grad[i]))
                    .max(x[i] - eps)
                    .min(x[i] + eps)
                    .clamp(lo, hi);
                let m = adv[i] + (z - adv[i]) * momentum + (adv[i] - old[i]) * (1.0 - momentum);
                adv[i] = m.max(x[i] - eps).min(x[i] + eps).clamp(lo, hi);
            }
        }
        // l1-APGD has its own step ([`l1_step_sample`]): no momentum.
        Norm::L1 => l1_step_sample(eps, step, 1.0, adv, x, grad, range),
        Norm::L2 => {
            let g = l2_normalized(grad);
            let mut z: Vec<f32> = adv.iter().zip(&g).map(|(a, gi)| a + step * gi).collect();
            project_l2(&mut z, x, eps, range);
            let mut m: Vec<f32> = (0..adv.len())
                .map(|i| adv[i] + (z[i] - adv[i]) * momentum + (adv[i] - old[i]) * (1.0 - momentum))
                .collect();
            project_l2(&mut m, x, eps, range);
            adv.copy_from_slice(&m);
        }
    }
    // The reference projects with plain float ops; keep ‖δ‖ ≤ ε exact.
    super::project(adv, x, norm, eps, range);
}

/// Logits rows, loss per sample and flattened input gradients.
type LossAndGrad = (Vec<Vec<f32>>, Vec<f32>, Vec<f32>);

impl Apgd {
    /// Loss values and input gradients at `x` for `rows` of the batch.
    fn loss_and_grad(
        &self,
        model: &dyn Classifier,
        x: &[f32],
        shape: [usize; 4],
        labels: &[u32],
        targets: Option<&[u32]>,
    ) -> Result<LossAndGrad> {
        let t = super::to_tensor(x, shape)?;
        let InputGradient {
            logits,
            value,
            grad,
        } = match (self.loss, targets) {
            (ApgdLoss::Ce, None) => {
                super::eot_input_grad(model, &t, Objective::CrossEntropy(labels), self.eot)?
            }
            (ApgdLoss::Ce, Some(targets)) => {
                let loss = |i: usize, z: &[f32]| {
                    // −CE(target): ascending it descends the target's cross-entropy.
                    let mut lp = vec![0f32; z.len()];
                    crate::model::ops::log_softmax_row(z, &mut lp);
                    let t = targets[i] as usize;
                    let grad = lp
                        .iter()
                        .enumerate()
                        .map(|(j, l)| if j == t { 1.0 - l.exp() } else { -l.exp() })
                        .collect();
                    (lp[t], grad)
                };
                super::eot_input_grad(model, &t, Objective::Custom(&loss), self.eot)?
            }
            (ApgdLoss::Dlr, _) => {
                let loss = |i: usize, z: &[f32]| {
                    dlr_loss(z, labels[i] as usize, targets.map(|t| t[i] as usize))
                };
                super::eot_input_grad(model, &t, Objective::Custom(&loss), self.eot)?
            }
        };
        Ok((
            logits.to_vec2()?,
            value.to_vec1()?,
            grad.flatten_all()?.to_vec1()?,
        ))
    }

    /// One APGD run on batch rows `rows` at `stage`'s budget, offering every
    /// iterate to `best` when the stage's points count; returns the gradient
    /// evaluations and the run's highest-loss point per row (the next
    /// stage's start under `use_largereps`).
    #[allow(clippy::too_many_arguments)]
    fn single_run(
        &self,
        model: &dyn Classifier,
        batch: &AttackBatch,
        rows: &[usize],
        targets: Option<&[u32]>,
        rngs: &mut [Rng],
        best: &mut BestTracker,
        stage: &Stage,
    ) -> Result<(usize, Vec<f32>)> {
        let per = batch.item_len();
        let n = rows.len();
        let range = model.input_range();
        let shape = [n, batch.shape[1], batch.shape[2], batch.shape[3]];
        let x = gather(batch.x, rows, per);
        let labels: Vec<u32> = rows.iter().map(|&i| batch.labels[i]).collect();
        let sub_targets: Option<Vec<u32>> = targets.map(|t| rows.iter().map(|&i| t[i]).collect());
        let eps = stage.eps;
        let steps = stage.steps.max(1);

        let mut adv = x.clone();
        match stage.init {
            Some(init) => adv.copy_from_slice(init),
            None => {
                // Random start on the ε-sphere (then clipped), as the
                // reference; in L1 a standard Gaussian δ projected onto the
                // L1 ball ∩ box.
                for (r, &i) in rows.iter().enumerate() {
                    let rng = &mut rngs[i];
                    let xs = &x[r * per..(r + 1) * per];
                    let a = &mut adv[r * per..(r + 1) * per];
                    match self.norm {
                        Norm::Linf | Norm::L2 => {
                            let t: Vec<f32> = match self.norm {
                                Norm::Linf => {
                                    (0..per).map(|_| 2.0 * rng.uniform_f32() - 1.0).collect()
                                }
                                _ => (0..per).map(|_| rng.normal()).collect(),
                            };
                            let scale = match self.norm {
                                Norm::Linf => t.iter().fold(0f32, |m, v| m.max(v.abs())),
                                _ => t.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-12,
                            };
                            for ((ai, xi), ti) in a.iter_mut().zip(xs).zip(&t) {
                                *ai = xi + eps * ti / scale.max(f32::MIN_POSITIVE);
                            }
                        }
                        Norm::L1 => {
                            for (ai, xi) in a.iter_mut().zip(xs) {
                                *ai = xi + rng.normal();
                            }
                        }
                    }
                }
            }
        }
        for r in 0..n {
            let span = r * per..(r + 1) * per;
            super::project(&mut adv[span.clone()], &x[span], self.norm, eps, range);
        }

        let (logits, mut loss, mut grad) =
            self.loss_and_grad(model, &adv, shape, &labels, sub_targets.as_deref())?;
        let mut evaluations = 1;
        if stage.offer {
            best.offer_rows(rows, &adv, &logits, batch.labels, targets);
        }
        let mut x_best = adv.clone();
        let mut grad_best = grad.clone();
        let mut loss_best = loss.clone();
        let l1 = self.norm == Norm::L1;
        // The reference's first step: 2ε (L∞, L2), ε (L1).
        let alpha = if l1 { 1.0 } else { 2.0 };
        let mut step = vec![alpha * eps; n];
        let mut old = adv.clone();
        let (mut k, shrink, k_min) = schedule(steps);
        if l1 {
            k = ((0.04 * steps as f64) as usize).max(1);
        }
        // l1-APGD's sparsity: the share of coordinates a step moves, and the
        // best point's nonzero count at the last checkpoint.
        let (mut topk, mut sparsity_old): (Vec<f32>, Vec<f32>) = match stage.init {
            None => (vec![L1_INITIAL_TOPK; n], vec![per as f32; n]),
            Some(_) => (0..n)
                .map(|r| {
                    let span = r * per..(r + 1) * per;
                    let nz = nonzero(&adv[span.clone()], &x[span]) as f32;
                    (nz / per as f32 / 1.5, nz)
                })
                .unzip(),
        };
        let mut since_check = 0;
        let mut loss_steps: Vec<Vec<f32>> = Vec::with_capacity(steps);
        let mut loss_best_last_check = loss_best.clone();
        let mut reduced_last_check = vec![true; n];

        for i in 0..steps {
            let momentum = if i > 0 { 0.75 } else { 1.0 };
            let prev = adv.clone();
            for (r, &step_r) in step.iter().enumerate() {
                let span = r * per..(r + 1) * per;
                if l1 {
                    l1_step_sample(
                        eps,
                        step_r,
                        topk[r],
                        &mut adv[span.clone()],
                        &x[span.clone()],
                        &grad[span],
                        range,
                    );
                } else {
                    step_sample(
                        self.norm,
                        eps,
                        step_r,
                        momentum,
                        &mut adv[span.clone()],
                        &old[span.clone()],
                        &x[span.clone()],
                        &grad[span],
                        range,
                    );
                }
            }
            old = prev;
            let (logits, new_loss, new_grad) =
                self.loss_and_grad(model, &adv, shape, &labels, sub_targets.as_deref())?;
            evaluations += 1;
            if stage.offer {
                best.offer_rows(rows, &adv, &logits, batch.labels, targets);
            }
            loss = new_loss;
            grad = new_grad;
            loss_steps.push(loss.clone());
            for r in 0..n {
                if loss[r] > loss_best[r] {
                    let span = r * per..(r + 1) * per;
                    x_best[span.clone()].copy_from_slice(&adv[span.clone()]);
                    grad_best[span.clone()].copy_from_slice(&grad[span]);
                    loss_best[r] = loss[r];
                }
            }
            since_check += 1;
            if since_check == k && l1 {
                for r in 0..n {
                    let span = r * per..(r + 1) * per;
                    let sparsity = nonzero(&x_best[span.clone()], &x[span.clone()]) as f32;
                    // 0/0 is NaN, not below 0.95, as in the reference.
                    let sparser = sparsity / sparsity_old[r] < 0.95;
                    topk[r] = sparsity / per as f32 / 1.5;
                    if sparser {
                        step[r] = alpha * eps;
                    } else {
                        step[r] /= 1.5;
                    }
                    step[r] = step[r].clamp(alpha * eps / 10.0, alpha * eps);
                    sparsity_old[r] = sparsity;
                    if sparser {
                        adv[span.clone()].copy_from_slice(&x_best[span.clone()]);
                        grad[span.clone()].copy_from_slice(&grad_best[span]);
                    }
                }
                since_check = 0;
            } else if since_check == k {
                for r in 0..n {
                    // Increases among the last k steps (the reference compares
                    // with a zero loss before the first step, kept here).
                    let mut increases = 0usize;
                    for c in 0..k {
                        let cur = loss_steps[i - c][r];
                        let before = if i > c { loss_steps[i - c - 1][r] } else { 0.0 };
                        if cur > before {
                            increases += 1;
                        }
                    }
                    let oscillating = increases as f32 <= k as f32 * self.rho;
                    let stalled = !reduced_last_check[r] && loss_best_last_check[r] >= loss_best[r];
                    let reduce = oscillating || stalled;
                    reduced_last_check[r] = reduce;
                    loss_best_last_check[r] = loss_best[r];
                    if reduce {
                        step[r] /= 2.0;
                        let span = r * per..(r + 1) * per;
                        adv[span.clone()].copy_from_slice(&x_best[span.clone()]);
                        grad[span.clone()].copy_from_slice(&grad_best[span]);
                    }
                }
                k = k.saturating_sub(shrink).max(k_min);
                since_check = 0;
            }
        }
        let _ = loss;
        Ok((evaluations, x_best))
    }

    /// One run on `rows`: a single stage at ε, or AutoAttack's L1 schedule
    /// (3ε, 2ε, ε over 30%, 30% and 40% of the steps, each stage from the
    /// last one's best point) under `use_largereps`.
    #[allow(clippy::too_many_arguments)]
    fn run_rows(
        &self,
        model: &dyn Classifier,
        batch: &AttackBatch,
        rows: &[usize],
        targets: Option<&[u32]>,
        rngs: &mut [Rng],
        best: &mut BestTracker,
    ) -> Result<usize> {
        if !(self.use_largereps && self.norm == Norm::L1) {
            let stage = Stage {
                eps: self.eps,
                steps: self.steps,
                init: None,
                offer: true,
            };
            return Ok(self
                .single_run(model, batch, rows, targets, rngs, best, &stage)?
                .0);
        }
        let n = self.steps as f64;
        let first = (0.3 * n).ceil() as usize;
        let schedule = [
            (3.0 * self.eps, first),
            (2.0 * self.eps, first),
            (self.eps, self.steps.saturating_sub(2 * first).max(1)),
        ];
        let per = batch.item_len();
        let x = gather(batch.x, rows, per);
        let mut init: Vec<f32> = x.clone();
        for (r, &i) in rows.iter().enumerate() {
            for v in &mut init[r * per..(r + 1) * per] {
                *v += rngs[i].normal();
            }
        }
        let range = model.input_range();
        let mut evaluations = 0;
        for (s, &(eps, steps)) in schedule.iter().enumerate() {
            for r in 0..rows.len() {
                let span = r * per..(r + 1) * per;
                super::project(&mut init[span.clone()], &x[span], Norm::L1, eps, range);
            }
            let stage = Stage {
                eps,
                steps,
                init: Some(&init),
                offer: s == schedule.len() - 1,
            };
            let (used, next) = self.single_run(model, batch, rows, targets, rngs, best, &stage)?;
            evaluations += used;
            init = next;
        }
        Ok(evaluations)
    }
}

/// The fewest classes the DLR loss is defined for: it divides by the gap to
/// the third-largest logit.
pub const DLR_MIN_CLASSES: usize = 3;

/// The fewest classes targeted DLR is defined for: it uses the fourth-largest
/// logit.
pub const TARGETED_DLR_MIN_CLASSES: usize = 4;

impl Apgd {
    /// The fewest classes this configuration is defined for: DLR divides by
    /// the gap to the third-largest logit (targeted DLR: the fourth), so it
    /// needs 3 classes (4 targeted); cross-entropy needs 2.
    pub fn min_classes(&self) -> usize {
        match (self.loss, self.target_classes) {
            (ApgdLoss::Ce, _) => 2,
            (ApgdLoss::Dlr, None) => DLR_MIN_CLASSES,
            (ApgdLoss::Dlr, Some(_)) => TARGETED_DLR_MIN_CLASSES,
        }
    }
}

impl Attack for Apgd {
    fn run(&self, model: &dyn Classifier, batch: &AttackBatch) -> Result<AttackOutcome> {
        let k = model.num_classes();
        if k < self.min_classes() {
            // Never run silently: below this the loss reads logits that do
            // not exist and the attack fails quietly (robustness overstated).
            return Err(Error::Invalid(format!(
                "APGD with the {} loss needs at least {} classes, the model has {k}",
                match (self.loss, self.target_classes) {
                    (ApgdLoss::Dlr, Some(_)) => "targeted DLR",
                    (ApgdLoss::Dlr, None) => "DLR",
                    (ApgdLoss::Ce, _) => "cross-entropy",
                },
                self.min_classes()
            )));
        }
        let mut rngs: Vec<Rng> = (0..batch.len()).map(|i| batch.sample_rng(i)).collect();
        let mut evaluations = 0;
        match self.target_classes {
            None => {
                let mut best = BestTracker::new(batch, None);
                for _ in 0..self.restarts.max(1) {
                    let rows = best.unbroken();
                    if rows.is_empty() {
                        break;
                    }
                    evaluations +=
                        self.run_rows(model, batch, &rows, None, &mut rngs, &mut best)?;
                }
                let draws = super::eot_draws(model, self.eot);
                Ok(best.into_outcome(None, evaluations * draws))
            }
            Some(n_targets) => {
                // Robust means no target run succeeded: track untargeted
                // success (any misclassification) across target classes.
                let mut best = BestTracker::new(batch, None);
                for rank in 2..(n_targets + 2).min(k + 1) {
                    // The `rank`-th most likely class on the clean input.
                    let targets: Vec<u32> = batch
                        .clean_logits
                        .iter()
                        .map(|row| super::classes_by_logit(row)[rank - 1] as u32)
                        .collect();
                    for _ in 0..self.restarts.max(1) {
                        let rows = best.unbroken();
                        if rows.is_empty() {
                            break;
                        }
                        let mut targeted = BestTracker::new(batch, Some(&targets));
                        evaluations += self.run_rows(
                            model,
                            batch,
                            &rows,
                            Some(&targets),
                            &mut rngs,
                            &mut targeted,
                        )?;
                        // A point that reaches the target is misclassified: hand
                        // every point the targeted run found over as untargeted.
                        let shape = [rows.len(), batch.shape[1], batch.shape[2], batch.shape[3]];
                        let points = gather(&targeted.adversarial, &rows, batch.item_len());
                        let logits = logits_at(model, &points, shape)?;
                        best.offer_rows(&rows, &points, &logits, batch.labels, None);
                    }
                }
                let draws = super::eot_draws(model, self.eot);
                Ok(best.into_outcome(None, evaluations * draws))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlr_matches_its_definition_and_finite_differences() {
        let z = [2.0f32, 0.5, 3.0, -1.0, 1.0];
        // y = 0: π = [2, 0, 4, 1, 3]; max other = z₂ = 3; den = 3 − 1 = 2.
        let (l, g) = dlr_loss(&z, 0, None);
        assert!((l - (-(2.0 - 3.0) / 2.0)).abs() < 1e-6);
        let (lt, _) = dlr_loss(&z, 0, Some(4));
        // targeted: −(2 − 1) / (3 − (1 + 0.5)/2)
        assert!((lt - (-(1.0) / (3.0 - 0.75))).abs() < 1e-6);
        for target in [None, Some(1)] {
            let (_, g) = if target.is_none() {
                (l, g.clone())
            } else {
                dlr_loss(&z, 0, target)
            };
            for j in 0..z.len() {
                let h = 1e-3;
                let mut zp = z;
                let mut zm = z;
                zp[j] += h;
                zm[j] -= h;
                let fd = (dlr_loss(&zp, 0, target).0 - dlr_loss(&zm, 0, target).0) / (2.0 * h);
                assert!(
                    (fd - g[j]).abs() < 2e-3,
                    "{target:?} class {j}: {fd} vs {}",
                    g[j]
                );
            }
        }
    }

    #[test]
    fn checkpoint_schedule_matches_the_reference() {
        // 100 iterations: first interval 22, shrink 3, minimum 6.
        assert_eq!(schedule(100), (22, 3, 6));
        assert_eq!(schedule(10), (2, 1, 1));
    }
}
