//! DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and
//! accurate method to fool deep neural networks", CVPR 2016): each input's
//! distance to the decision boundary, found by stepping to the nearest
//! boundary of the model linearised at the current point, in L2 or L∞.
//!
//! Follows Foolbox 3's `L2DeepFoolAttack` / `LinfDeepFoolAttack` (its
//! defaults too: 50 steps, overshoot 0.02, the 10 most likely classes, the
//! logit-difference loss). The candidates are the top classes of the clean
//! logits (the first is the label: only correctly classified inputs are
//! attacked). At each step, for every other candidate `k`,
//! `f_k = z_k − z_y` and its input gradient `w_k`; the distance to `k`'s
//! linearised boundary is `|f_k| / ‖w_k‖₂` (L2) or `|f_k| / ‖w_k‖₁` (L∞,
//! the dual norm); the nearest `k` gives the step `r = (d + 10⁻⁴)·w/‖w‖₂`
//! (L2) or `(d + 10⁻⁴)·sign(w)` (L∞); the steps are summed and the point is
//! `clip(x + (1 + overshoot)·Σr)`. An input stops at its first adversarial
//! point, which is kept (DeepFool moves away from `x`, so that is its
//! smallest); one that is still robust after `steps` steps is a failure.
//!
//! What differs from Foolbox, and why:
//! - the 10⁻⁴ added to each step's distance is in units of the range width
//!   (`10⁻⁴·(hi − lo)`), and a gradient's norm is guarded by a floor rather
//!   than Foolbox's `+ 1e-8`: both otherwise depend on the unit of the
//!   inputs, so the same model saved for `[0, 255]` would take other steps;
//! - inputs stop one by one, where Foolbox stops the batch only once every
//!   input is adversarial (each input's own result is the same);
//! - the gradient count reported is the budget, `steps × (candidates − 1)`
//!   per input, so that it does not depend on the batch.
//!
//! torchattacks' `DeepFool` (L2 only) differs again: it takes every class
//! as a candidate, from the full Jacobian. Untargeted only. A one-output
//! (binary logistic) model is seen as the logits `[0, z]` (see
//! [`crate::model::BinaryLogits`]), so `f` is the log-odds. `eps`, when
//! given, only decides what counts as a success.

use serde::{Deserialize, Serialize};

use super::{
    gather, logits_at, reached_goal, to_tensor, Attack, AttackBatch, AttackMethod, AttackOutcome,
    BestTracker, Budget, Norm,
};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::{Classifier, Objective};

/// Linearisation steps (Foolbox, torchattacks, the paper: 50).
pub const DEFAULT_STEPS: usize = 50;
/// Overshoot past the linearised boundary (Foolbox, torchattacks: 0.02).
pub const DEFAULT_OVERSHOOT: f64 = 0.02;
/// Most likely classes considered, the label included (Foolbox: 10).
pub const DEFAULT_CANDIDATES: usize = 10;
/// The norm when `norm` is unwritten: the paper's L2.
pub const DEFAULT_NORM: Norm = Norm::L2;

/// Added to each step's distance, as a share of the range width (Foolbox's
/// absolute 1e-4 on `[0, 1]` inputs), so steps cross the boundary.
const STEP_MARGIN: f32 = 1e-4;
/// Floor of a gradient's norm, against division by zero.
const GRAD_FLOOR: f32 = 1e-12;

/// A `deepfool` plan entry: `norm` (`l2`, the default, or `linf`), `eps`
/// (optional: only decides what counts as a success; a list gives a
/// curve), `steps` (default 50), `overshoot` (0.02) and `candidates` (10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeepFoolConfig {
    /// The norm minimised: `l2` or `linf`.
    #[schemars(extend("default" = DEFAULT_NORM))]
    pub norm: Norm,
    /// Budget deciding success, in input units (unset: any adversarial
    /// counts).
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "none: any adversarial counts"}}))]
    pub eps: Option<f64>,
    /// Linearisation steps.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_STEPS))]
    pub steps: usize,
    /// How far past the linearised boundary each point is placed (the
    /// summed step is scaled by 1 + overshoot).
    #[schemars(range(min = 0.0))]
    #[schemars(extend("default" = DEFAULT_OVERSHOOT))]
    pub overshoot: f64,
    /// Most likely clean classes considered, the label included (capped at
    /// the model's classes).
    #[schemars(range(min = 2))]
    #[schemars(extend("default" = DEFAULT_CANDIDATES))]
    pub candidates: usize,
}

impl DeepFoolConfig {
    /// DeepFool in `norm`, every setting at its default.
    pub fn new(norm: Norm, eps: Option<f64>) -> Self {
        DeepFoolConfig {
            norm,
            eps,
            steps: DEFAULT_STEPS,
            overshoot: DEFAULT_OVERSHOOT,
            candidates: DEFAULT_CANDIDATES,
        }
    }

    /// Reads the settings; one config per ε (one without a budget when
    /// `eps` is unwritten). `target` is refused: DeepFool is untargeted.
    pub fn from_entry(e: &mut Entry, budget: &Budget) -> Vec<Self> {
        if e.take("target").is_some() {
            e.fail(
                "target",
                "does not apply: DeepFool is untargeted (use cw or pgd for a targeted attack)",
            );
        }
        let steps = e.positive_int("steps").unwrap_or(DEFAULT_STEPS);
        let overshoot = e.nonneg_float("overshoot").unwrap_or(DEFAULT_OVERSHOOT);
        let candidates = e
            .int_in("candidates", 2, i64::MAX)
            .unwrap_or(DEFAULT_CANDIDATES);
        let norm = budget.norm.unwrap_or(DEFAULT_NORM);
        if !supported(norm) {
            e.fail("norm", unsupported(norm));
        }
        budget
            .eps_or_none()
            .into_iter()
            .map(|eps| DeepFoolConfig {
                norm,
                eps,
                steps,
                overshoot,
                candidates,
            })
            .collect()
    }

    /// The runnable attack, or why the settings cannot run (for a config
    /// built through the library or read from JSON).
    pub fn build(&self) -> Result<DeepFool> {
        let invalid = |key: &str, why: String| Err(Error::Invalid(format!("`{key}` {why}")));
        if !supported(self.norm) {
            return invalid("norm", unsupported(self.norm));
        }
        if self.steps == 0 {
            return invalid("steps", "must be at least 1, found 0".into());
        }
        if self.candidates < 2 {
            return invalid(
                "candidates",
                format!("must be at least 2, found {}", self.candidates),
            );
        }
        if !(self.overshoot.is_finite() && self.overshoot >= 0.0) {
            return invalid(
                "overshoot",
                format!("must be finite and ≥ 0, found {}", self.overshoot),
            );
        }
        if let Some(eps) = self.eps {
            if !(eps.is_finite() && eps >= 0.0) {
                return invalid("eps", format!("must be finite and ≥ 0, found {eps}"));
            }
        }
        Ok(DeepFool {
            linf: self.norm == Norm::Linf,
            eps: self.eps.map(|e| e as f32),
            steps: self.steps,
            overshoot: self.overshoot as f32,
            candidates: self.candidates,
        })
    }
}

fn supported(norm: Norm) -> bool {
    norm == Norm::L2 || norm == Norm::Linf
}

fn unsupported(norm: Norm) -> String {
    format!("must be \"l2\" or \"linf\" for DeepFool, found \"{norm}\"")
}

impl AttackMethod for DeepFoolConfig {
    fn norm(&self) -> Norm {
        self.norm
    }
    fn eps(&self) -> Option<f64> {
        self.eps
    }
    fn attack(&self) -> Result<Box<dyn Attack>> {
        Ok(Box::new(self.build()?))
    }
    fn label(&self) -> String {
        "DeepFool".into()
    }
    fn is_minimum_norm(&self) -> bool {
        true
    }
}

/// A runnable DeepFool configuration (see [`DeepFoolConfig`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DeepFool {
    /// L∞ (else L2).
    pub linf: bool,
    /// Budget deciding success (`None`: any adversarial found counts).
    pub eps: Option<f32>,
    /// Linearisation steps.
    pub steps: usize,
    /// Overshoot.
    pub overshoot: f32,
    /// Classes considered, the label included.
    pub candidates: usize,
}

/// The `count` classes with the largest logits, largest first (ties: lower
/// index first).
fn top_classes(row: &[f32], count: usize) -> Vec<u32> {
    let mut order = super::classes_by_logit(row);
    order.truncate(count);
    order.into_iter().map(|c| c as u32).collect()
}

impl DeepFool {
    /// The distance to the linearised boundary of `f` with gradient `g`:
    /// `|f|` over the dual norm of `g` (L2 for L2, L1 for L∞).
    fn distance(&self, f: f32, g: &[f32]) -> f32 {
        let dual = if self.linf {
            g.iter().map(|v| v.abs()).sum::<f32>()
        } else {
            g.iter().map(|v| v * v).sum::<f32>().sqrt()
        };
        f.abs() / dual.max(GRAD_FLOOR)
    }
}

impl Attack for DeepFool {
    fn run(&self, model: &dyn Classifier, batch: &AttackBatch) -> Result<AttackOutcome> {
        let classes = model.num_classes();
        if classes < 2 {
            return Err(Error::Invalid(format!(
                "DeepFool needs at least 2 classes, the model has {classes}"
            )));
        }
        let candidates = self.candidates.min(classes);
        let per = batch.item_len();
        let (lo, hi) = model.input_range();
        let margin = STEP_MARGIN * (hi - lo);
        let mut best = BestTracker::new(batch, None);
        // Only inputs classified correctly have a boundary to find; their
        // top clean class is the label.
        let rows = best.unbroken();
        let n = rows.len();
        let x = gather(batch.x, &rows, per);
        let labels: Vec<u32> = rows.iter().map(|&i| batch.labels[i]).collect();
        let ranked: Vec<Vec<u32>> = rows
            .iter()
            .map(|&i| {
                let mut top = top_classes(&batch.clean_logits[i], candidates);
                // The label first even on a tie for the top logit.
                top.retain(|&c| c != batch.labels[i]);
                top.insert(0, batch.labels[i]);
                top.truncate(candidates);
                top
            })
            .collect();
        let mut point = x.clone();
        let mut total = vec![0f32; n * per];
        let mut done = vec![false; n];
        let mut found = vec![false; n];
        for step in 0..=self.steps {
            let act: Vec<usize> = (0..n).filter(|&r| !done[r]).collect();
            if act.is_empty() {
                break;
            }
            let shape = [act.len(), batch.shape[1], batch.shape[2], batch.shape[3]];
            let points = gather(&point, &act, per);
            let logits = logits_at(model, &points, shape)?;
            let mut still: Vec<usize> = Vec::with_capacity(act.len());
            for (k, &r) in act.iter().enumerate() {
                if reached_goal(&logits[k], labels[r], None) {
                    done[r] = true;
                    found[r] = true;
                } else if step == self.steps {
                    done[r] = true;
                } else {
                    still.push(r);
                }
            }
            if still.is_empty() {
                continue;
            }
            let shape = [still.len(), batch.shape[1], batch.shape[2], batch.shape[3]];
            let xs = to_tensor(&gather(&point, &still, per), shape)?;
            // Per still-robust input: the nearest candidate's (distance, f, gradient).
            let mut nearest: Vec<Option<(f32, Vec<f32>)>> = vec![None; still.len()];
            for c in 1..candidates {
                let loss = |i: usize, row: &[f32]| {
                    let r = still[i];
                    let (k, y) = (ranked[r][c] as usize, ranked[r][0] as usize);
                    let mut grad = vec![0f32; row.len()];
                    grad[k] = 1.0;
                    grad[y] = -1.0;
                    (row[k] - row[y], grad)
                };
                let g = model.input_grad(&xs, Objective::Custom(&loss))?;
                let values: Vec<f32> = g.value.to_vec1()?;
                let grad: Vec<f32> = g.grad.flatten_all()?.to_vec1()?;
                for (i, slot) in nearest.iter_mut().enumerate() {
                    let gi = &grad[i * per..(i + 1) * per];
                    let d = self.distance(values[i], gi);
                    if slot.as_ref().is_none_or(|(best_d, _)| d < *best_d) {
                        *slot = Some((d, gi.to_vec()));
                    }
                }
            }
            for (i, &r) in still.iter().enumerate() {
                let Some((d, g)) = &nearest[i] else { continue };
                let d = d + margin;
                let span = r * per..(r + 1) * per;
                if self.linf {
                    for (t, gj) in total[span.clone()].iter_mut().zip(g) {
                        *t += d * super::sign(*gj);
                    }
                } else {
                    let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt().max(GRAD_FLOOR);
                    for (t, gj) in total[span.clone()].iter_mut().zip(g) {
                        *t += d * gj / norm;
                    }
                }
                for ((p, &x0), &t) in point[span.clone()]
                    .iter_mut()
                    .zip(&x[span.clone()])
                    .zip(&total[span])
                {
                    *p = (x0 + (1.0 + self.overshoot) * t).clamp(lo, hi);
                }
            }
        }
        let success: Vec<bool> = (0..n)
            .map(|r| {
                found[r]
                    && self.eps.is_none_or(|e| {
                        let span = r * per..(r + 1) * per;
                        let dist = if self.linf {
                            point[span.clone()]
                                .iter()
                                .zip(&x[span])
                                .fold(0f64, |m, (a, b)| m.max((*a as f64 - *b as f64).abs()))
                        } else {
                            point[span.clone()]
                                .iter()
                                .zip(&x[span])
                                .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                                .sum::<f64>()
                                .sqrt()
                        };
                        dist <= e as f64
                    })
            })
            .collect();
        best.offer_kept(model, batch, &rows, &point, &success, None)?;
        Ok(best.into_outcome(None, self.steps * (candidates - 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_classes_are_ordered_by_logit() {
        assert_eq!(top_classes(&[0.1, 3.0, -1.0, 2.0], 3), vec![1, 3, 0]);
        assert_eq!(top_classes(&[0.1, 3.0], 10), vec![1, 0]);
    }

    #[test]
    fn distances_use_the_dual_norm() {
        let l2 = DeepFoolConfig::new(Norm::L2, None).build().unwrap();
        let linf = DeepFoolConfig::new(Norm::Linf, None).build().unwrap();
        // |f| = 10, w = (3, −4): L2 distance 10/5, L∞ distance 10/7.
        assert!((l2.distance(-10.0, &[3.0, -4.0]) - 2.0).abs() < 1e-6);
        assert!((linf.distance(-10.0, &[3.0, -4.0]) - 10.0 / 7.0).abs() < 1e-6);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_key() {
        let few = DeepFoolConfig {
            candidates: 1,
            ..DeepFoolConfig::new(Norm::L2, None)
        };
        assert!(few
            .build()
            .unwrap_err()
            .to_string()
            .contains("`candidates`"));
        let bad = DeepFoolConfig {
            overshoot: f64::NAN,
            ..DeepFoolConfig::new(Norm::L2, None)
        };
        assert!(bad.build().unwrap_err().to_string().contains("`overshoot`"));
    }
}
