//! Fast Minimum-Norm attack (Pintor et al., NeurIPS 2021): each input's
//! smallest adversarial perturbation found, in L2 or L∞, so a report can say
//! how far inputs sit from the decision boundary.
//!
//! FMN descends the logit difference `z_y − max_{j≠y} z_j` with normalised
//! gradient steps inside an ε-ball whose radius adapts every step: while no
//! adversarial is known it jumps to the linearised boundary distance
//! (‖δ‖ + loss/‖∇‖_dual, never below the last radius times 1 + γ), then grows
//! by (1 + γ); once one is known it shrinks by (1 − γ) below the best norm
//! found. Gradient coordinates blocked by the valid range are left out of the
//! step and the estimate (without this, FMN stalled on a third of the MNIST
//! digits, circling just inside the boundary). Step size α and γ follow cosine
//! annealing from their initial to their final values. The best (smallest)
//! adversarial is kept; a budget, when given, only decides what counts as a
//! success.

use serde::{Deserialize, Serialize};

use super::{
    gather, project, to_tensor, Attack, AttackBatch, AttackMethod, AttackOutcome, BestTracker,
    Budget, Norm,
};
use crate::entry::Entry;
use crate::error::Result;
use crate::model::{Classifier, Objective};
use crate::stats::argmax;

/// Iterations.
pub const DEFAULT_STEPS: usize = 100;
/// Initial step size, as a share of the range width (the reference's 1.0).
pub const DEFAULT_ALPHA_INIT: f32 = 1.0;
/// Initial ε step (the reference's 0.05).
pub const DEFAULT_GAMMA_INIT: f32 = 0.05;

/// The norms FMN runs in here (the paper's L1 and L0 versions are not
/// implemented: an L1 budget is refused, never run in another norm).
pub const FMN_NORMS: &[Norm] = &[Norm::Linf, Norm::L2];

/// PGD bisection rounds below the distance found: FMN alone is weaker than
/// PGD in L∞ (see the module docs), so it is refined there by default.
pub fn default_refine(norm: Norm) -> usize {
    match norm {
        Norm::Linf => 8,
        Norm::L2 | Norm::L1 => 0,
    }
}

/// An `fmn` plan entry: `norm` (default `linf`), `eps` (optional: only
/// decides what counts as a success; a list gives a curve), `steps`
/// (default 100) and `refine` (PGD bisection rounds; default 8 in L∞, 0 in
/// L2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FmnConfig {
    /// The norm minimised.
    #[schemars(extend("default" = Norm::Linf))]
    pub norm: Norm,
    /// Budget deciding success, in input units (unset: any adversarial
    /// counts).
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "none: any adversarial counts"}}))]
    pub eps: Option<f64>,
    /// Iterations.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_STEPS))]
    pub steps: usize,
    /// PGD bisection rounds after FMN (unset: 8 in L∞, 0 in L2; see
    /// [`default_refine`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "8 in L∞, 0 in L2"}}))]
    pub refine: Option<usize>,
}

impl FmnConfig {
    /// FMN in `norm`, every setting at its default.
    pub fn new(norm: Norm, eps: Option<f64>) -> Self {
        FmnConfig {
            norm,
            eps,
            steps: DEFAULT_STEPS,
            refine: None,
        }
    }

    /// Reads the settings; one config per ε (one without a budget when
    /// `eps` is unwritten).
    pub fn from_entry(e: &mut Entry, budget: &Budget) -> Vec<Self> {
        super::refuse_norm(e, budget, "FMN", FMN_NORMS);
        let steps = e.positive_int("steps").unwrap_or(DEFAULT_STEPS);
        let refine = e.nonneg_int("refine");
        let norm = budget.norm();
        budget
            .eps_or_none()
            .into_iter()
            .map(|eps| FmnConfig {
                norm,
                eps,
                steps,
                refine,
            })
            .collect()
    }

    /// The runnable attack.
    pub fn build(&self) -> Fmn {
        Fmn {
            norm: self.norm,
            steps: self.steps,
            eps: self.eps.map(|e| e as f32),
            alpha_init: DEFAULT_ALPHA_INIT,
            gamma_init: DEFAULT_GAMMA_INIT,
            refine: self.refine.unwrap_or(default_refine(self.norm)),
        }
    }
}

impl AttackMethod for FmnConfig {
    fn norm(&self) -> Norm {
        self.norm
    }
    fn eps(&self) -> Option<f64> {
        self.eps
    }
    fn attack(&self) -> Result<Box<dyn Attack>> {
        super::check_norm(self.norm, "FMN", FMN_NORMS)?;
        Ok(Box::new(self.build()))
    }
    fn label(&self) -> String {
        "FMN".into()
    }
    fn is_minimum_norm(&self) -> bool {
        true
    }
}

/// An FMN configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Fmn {
    /// The norm minimised.
    pub norm: Norm,
    /// Iterations.
    pub steps: usize,
    /// Budget deciding success (`None`: any adversarial found is a success).
    pub eps: Option<f32>,
    /// Initial L2 step size as a share of the model's range width
    /// (`hi − lo`; 1.0 is the reference's 1.0 on `[0, 1]` inputs), final =
    /// initial / 100. In L∞ the step is this share of the current radius.
    pub alpha_init: f32,
    /// Initial ε step (final 0.001).
    pub gamma_init: f32,
    /// Bisection rounds of PGD below the FMN distance (0: none).
    pub refine: usize,
}

/// PGD from the clean points with a budget per sample (40 steps of ε/10),
/// returning the final points and whether each is misclassified.
#[allow(clippy::too_many_arguments)]
fn pgd_per_sample(
    model: &dyn Classifier,
    x: &[f32],
    labels: &[u32],
    eps: &[f32],
    norm: Norm,
    shape: [usize; 4],
    range: (f32, f32),
) -> Result<(Vec<f32>, Vec<bool>, usize)> {
    let per = shape[1] * shape[2] * shape[3];
    let mut adv = x.to_vec();
    let steps = 40;
    let mut found = vec![false; eps.len()];
    let mut best = x.to_vec();
    for step in 0..=steps {
        let (logits, grad) = if step < steps {
            super::loss_gradient(model, &adv, shape, labels, None, 1)?
        } else {
            (super::logits_at(model, &adv, shape)?, Vec::new())
        };
        for r in 0..eps.len() {
            let span = r * per..(r + 1) * per;
            if !found[r] && argmax(&logits[r]) != labels[r] {
                found[r] = true;
                best[span.clone()].copy_from_slice(&adv[span.clone()]);
            }
            if step == steps {
                continue;
            }
            let g = &grad[span.clone()];
            let a = &mut adv[span.clone()];
            let alpha = eps[r] / 10.0;
            match norm {
                Norm::Linf => a
                    .iter_mut()
                    .zip(g)
                    .for_each(|(ai, gi)| *ai += alpha * super::sign(*gi)),
                Norm::L2 => {
                    let gn = g.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-10;
                    a.iter_mut()
                        .zip(g)
                        .for_each(|(ai, gi)| *ai += alpha * gi / gn);
                }
                Norm::L1 => {
                    let gn = g.iter().map(|v| v.abs()).sum::<f32>() + 1e-10;
                    a.iter_mut()
                        .zip(g)
                        .for_each(|(ai, gi)| *ai += alpha * gi / gn);
                }
            }
            project(a, &x[span], norm, eps[r], range);
        }
    }
    Ok((best, found, steps))
}

fn cosine(init: f32, fin: f32, k: usize, steps: usize) -> f32 {
    fin + 0.5 * (init - fin) * (1.0 + (std::f32::consts::PI * k as f32 / steps as f32).cos())
}

fn norm_of(v: &[f32], norm: Norm) -> f32 {
    match norm {
        Norm::Linf => v.iter().fold(0f32, |m, a| m.max(a.abs())),
        Norm::L2 => v.iter().map(|a| a * a).sum::<f32>().sqrt(),
        Norm::L1 => v.iter().map(|a| a.abs()).sum(),
    }
}

/// The dual norm of the gradient (L1 for L∞, L2 for L2, L∞ for L1).
fn dual_norm(v: &[f32], norm: Norm) -> f32 {
    match norm {
        Norm::Linf => v.iter().map(|a| a.abs()).sum(),
        Norm::L2 => v.iter().map(|a| a * a).sum::<f32>().sqrt(),
        Norm::L1 => v.iter().fold(0f32, |m, a| m.max(a.abs())),
    }
}

impl Attack for Fmn {
    fn run(&self, model: &dyn Classifier, batch: &AttackBatch) -> Result<AttackOutcome> {
        super::check_norm(self.norm, "FMN", FMN_NORMS)?;
        let per = batch.item_len();
        let range = model.input_range();
        let mut best = BestTracker::new(batch, None);
        // Only inputs classified correctly have a boundary to find.
        let rows = best.unbroken();
        let n = rows.len();
        let mut best_norm = vec![f32::INFINITY; n];
        let mut best_point: Vec<f32> = gather(batch.x, &rows, per);
        let x = best_point.clone();
        let labels: Vec<u32> = rows.iter().map(|&i| batch.labels[i]).collect();
        let shape = [n, batch.shape[1], batch.shape[2], batch.shape[3]];
        let mut adv = x.clone();
        let mut eps = vec![0f32; n];
        let mut found = vec![false; n];
        let mut evaluations = 0;
        // The L2 step follows the range: a fixed 1.0 is the whole range on
        // [0, 1] but 1/255 of it on [0, 255], where FMN then never moved.
        let width = range.1 - range.0;
        let alpha_init = match self.norm {
            Norm::L2 | Norm::L1 => self.alpha_init * width,
            Norm::Linf => self.alpha_init,
        };
        let (gamma_final, alpha_final) = (0.001f32, alpha_init / 100.0);
        for k in 0..=self.steps {
            if n == 0 {
                break;
            }
            let g = model.input_grad(&to_tensor(&adv, shape)?, Objective::Margin(&labels))?;
            evaluations += 1;
            let logits: Vec<Vec<f32>> = g.logits.to_vec2()?;
            let loss: Vec<f32> = g.value.to_vec1()?;
            let grad: Vec<f32> = g.grad.flatten_all()?.to_vec1()?;
            for r in 0..n {
                let span = r * per..(r + 1) * per;
                let delta: Vec<f32> = adv[span.clone()]
                    .iter()
                    .zip(&x[span.clone()])
                    .map(|(a, b)| a - b)
                    .collect();
                let d_norm = norm_of(&delta, self.norm);
                let is_adv = argmax(&logits[r]) != labels[r];
                if is_adv && d_norm < best_norm[r] {
                    best_norm[r] = d_norm;
                    best_point[span.clone()].copy_from_slice(&adv[span.clone()]);
                }
                found[r] |= is_adv;
            }
            if k == self.steps {
                break;
            }
            let gamma = cosine(self.gamma_init, gamma_final, k, self.steps);
            let alpha = cosine(alpha_init, alpha_final, k, self.steps);
            for r in 0..n {
                let span = r * per..(r + 1) * per;
                // Coordinates at a bound of the valid range that the descent
                // direction pushes against cannot move: leaving them out keeps
                // the boundary estimate and the step honest on saturated
                // pixels (MNIST digits are mostly 0 and 1).
                let free: Vec<f32> = adv[span.clone()]
                    .iter()
                    .zip(&grad[span.clone()])
                    .map(|(&a, &g)| {
                        if (a <= range.0 && g > 0.0) || (a >= range.1 && g < 0.0) {
                            0.0
                        } else {
                            g
                        }
                    })
                    .collect();
                let gr = &free[..];
                let is_adv = argmax(&logits[r]) != labels[r];
                let d_norm = norm_of(
                    &adv[span.clone()]
                        .iter()
                        .zip(&x[span.clone()])
                        .map(|(a, b)| a - b)
                        .collect::<Vec<_>>(),
                    self.norm,
                );
                eps[r] = if is_adv {
                    (eps[r] * (1.0 - gamma)).min(best_norm[r])
                } else if found[r] {
                    eps[r] * (1.0 + gamma)
                } else {
                    // The linear estimate of the boundary distance, never
                    // shrinking while no adversarial is known.
                    (d_norm + loss[r] / dual_norm(gr, self.norm).max(1e-12))
                        .max(eps[r] * (1.0 + gamma))
                };
                let gn = gr.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                let a = &mut adv[span.clone()];
                let radius = eps[r].max(0.0);
                for (ai, gi) in a.iter_mut().zip(gr) {
                    // Descend the logit difference: along the normalised
                    // gradient in L2, along its sign scaled to the current
                    // radius in L∞ (the L∞ steepest descent; an L2-normalised
                    // step moves each pixel by ~α/√d and left FMN weaker than
                    // PGD at the same ε).
                    *ai -= match self.norm {
                        Norm::L2 | Norm::L1 => alpha * gi / gn,
                        Norm::Linf => alpha * radius * super::sign(*gi),
                    };
                }
                project(a, &x[span], self.norm, eps[r].max(0.0), range);
            }
        }
        // Bisection below the FMN distance with PGD: FMN's adaptive radius can
        // settle on a boundary region that fixed-budget PGD undercuts (seen in
        // L∞ on the MNIST MLP), so the smallest point either finds is kept.
        if self.refine > 0 && n > 0 {
            let mut lo = vec![0f32; n];
            let mut hi: Vec<f32> = best_norm.clone();
            for _ in 0..self.refine {
                let active: Vec<usize> = (0..n)
                    .filter(|&r| hi[r].is_finite() && hi[r] - lo[r] > 1e-4 * width)
                    .collect();
                if active.is_empty() {
                    break;
                }
                let mid: Vec<f32> = active.iter().map(|&r| 0.5 * (lo[r] + hi[r])).collect();
                let xs = gather(&x, &active, per);
                let ys: Vec<u32> = active.iter().map(|&r| labels[r]).collect();
                let shape = [active.len(), batch.shape[1], batch.shape[2], batch.shape[3]];
                let (points, found, used) =
                    pgd_per_sample(model, &xs, &ys, &mid, self.norm, shape, range)?;
                evaluations += used;
                for (k, &r) in active.iter().enumerate() {
                    if found[k] {
                        let span = k * per..(k + 1) * per;
                        let p = &points[span];
                        let d: Vec<f32> = p
                            .iter()
                            .zip(&x[r * per..(r + 1) * per])
                            .map(|(a, b)| a - b)
                            .collect();
                        let dn = norm_of(&d, self.norm);
                        if dn < best_norm[r] {
                            best_norm[r] = dn;
                            best_point[r * per..(r + 1) * per].copy_from_slice(p);
                        }
                        hi[r] = dn.min(mid[k]);
                    } else {
                        lo[r] = mid[k];
                    }
                }
            }
        }
        let success: Vec<bool> = (0..n)
            .map(|r| best_norm[r].is_finite() && self.eps.is_none_or(|e| best_norm[r] <= e))
            .collect();
        best.offer_kept(model, batch, &rows, &best_point, &success, None)?;
        Ok(best.into_outcome(None, evaluations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_annealing_runs_from_initial_to_final() {
        assert!((cosine(1.0, 0.01, 0, 100) - 1.0).abs() < 1e-6);
        assert!((cosine(1.0, 0.01, 100, 100) - 0.01).abs() < 1e-6);
        assert!((cosine(1.0, 0.0, 50, 100) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn dual_norms() {
        assert_eq!(dual_norm(&[1.0, -2.0], Norm::Linf), 3.0);
        assert_eq!(dual_norm(&[3.0, -4.0], Norm::L2), 5.0);
        assert_eq!(norm_of(&[3.0, -4.0], Norm::Linf), 4.0);
    }
}
