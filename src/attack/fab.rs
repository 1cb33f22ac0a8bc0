//! The Fast Adaptive Boundary attack (Croce & Hein, ICML 2020, "Minimally
//! distorted adversarial examples with a fast adaptive boundary attack"):
//! each input's smallest adversarial perturbation found, untargeted (FAB)
//! or aimed at the hyperplanes of the most likely other classes (FAB-T, the
//! third attack of AutoAttack's standard version).
//!
//! Follows the reference (`fra31/auto-attack`, `fab_base.py`, as ported in
//! torchattacks 3.5). Each step linearises the classifier at the iterate
//! `x₁`: for every other class `j` (FAB-T: the current target only) the
//! hyperplane `f_j − f_y = 0`; the closest one in the dual norm is chosen
//! and both `x₁` and the clean input `x₀` are projected onto it inside the
//! valid range (`d₁`, `d₂`, exact minimum-norm projections, see
//! [`boundary_projection`]). The next iterate is the biased mix
//! `(x₁ + η·d₁)(1 − α) + (x₀ + η·d₂)·α`, `α = min(‖d₁‖/(‖d₁‖ + ‖d₂‖), α_max)`,
//! clipped to the range; an iterate that is adversarial is recorded when it
//! is the smallest so far and pulled back towards `x₀` by `β`. Restart 0
//! starts at `x₀`, later ones at a random point at half the start radius
//! (`eps`, else the reference's 0.3 / 1.0 / 5.0 in L∞ / L2 / L1 times the
//! range width).
//!
//! Success means misclassified (FAB-T too: the targets only steer the
//! search), within `eps` when one is given; only such points are returned,
//! so as an ensemble member FAB never hands over a point outside the ball.
//!
//! Differs from the reference: the projections are solved exactly by
//! sorting breakpoints (the reference bisects over sorted indices, with the
//! same solution); on a hyperplane out of reach inside the range the
//! projection goes to the corner of the range that gets closest to it (the
//! reference's fallback is not documented); without `eps` every restart runs
//! on every input and the smallest point is kept (the reference's restarts
//! only retry inputs not yet broken within its default ε); random starts are
//! drawn per input ([`AttackBatch::sample_rng`]), so batch size never
//! changes a result. Untargeted FAB differentiates every class's logit, one
//! backward pass per class per step (as the reference): on 1,000 classes use
//! FAB-T.

use serde::{Deserialize, Serialize};

use super::{
    gather, logits_at, to_tensor, Attack, AttackBatch, AttackMethod, AttackOutcome, BestTracker,
    Budget, Norm,
};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::{Classifier, Objective};
use crate::rng::Rng;
use crate::stats::argmax;

/// Iterations per run (the reference's 100; torchattacks' default is 10).
pub const DEFAULT_STEPS: usize = 100;
/// Runs per input (per target class for FAB-T): AutoAttack's FAB-T uses 1.
pub const DEFAULT_RESTARTS: usize = 1;
/// The largest weight of the step from the clean input (the reference's
/// 0.1, torchattacks 3.5.1's too).
pub const DEFAULT_ALPHA_MAX: f64 = 0.1;
/// Overshoot past the linearised boundary (the reference's 1.05).
pub const DEFAULT_ETA: f64 = 1.05;
/// Backward step towards the clean input after a success (the reference's 0.9).
pub const DEFAULT_BETA: f64 = 0.9;

/// The random-start radius without `eps`, as a share of the range width:
/// the reference's defaults on `[0, 1]` inputs (L∞ 0.3, L2 1.0, L1 5.0).
pub fn default_start_radius(norm: Norm) -> f64 {
    match norm {
        Norm::Linf => 0.3,
        Norm::L2 => 1.0,
        Norm::L1 => 5.0,
    }
}

/// A `fab` plan entry: `norm` (default `linf`), `eps` (optional: decides
/// success and the random-start radius; a list gives a curve), `steps`
/// (default 100), `restarts` (default 1), `target_classes` (FAB-T: the
/// hyperplanes of that many most likely other classes, one after another;
/// untargeted when unset), `alpha_max` (0.1), `eta` (1.05), `beta` (0.9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FabConfig {
    /// The norm minimised.
    #[schemars(extend("default" = Norm::Linf))]
    pub norm: Norm,
    /// Budget deciding success, in input units (unset: any adversarial
    /// counts).
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "none: any adversarial counts"}}))]
    pub eps: Option<f64>,
    /// Iterations per run.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_STEPS))]
    pub steps: usize,
    /// Runs per input (per target class for FAB-T); runs after the first
    /// start at a random point.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_RESTARTS))]
    pub restarts: usize,
    /// FAB-T: the number of most likely other classes whose hyperplanes
    /// are searched, one after another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "untargeted"}}))]
    pub target_classes: Option<usize>,
    /// The largest weight α of the step from the clean input.
    #[schemars(range(min = 0.0, max = 1.0))]
    #[schemars(extend("default" = DEFAULT_ALPHA_MAX))]
    pub alpha_max: f64,
    /// Overshoot η past the linearised boundary.
    #[schemars(range(min = 1.0))]
    #[schemars(extend("default" = DEFAULT_ETA))]
    pub eta: f64,
    /// Backward step β towards the clean input after a success.
    #[schemars(range(min = 0.0, max = 1.0))]
    #[schemars(extend("default" = DEFAULT_BETA))]
    pub beta: f64,
}

impl FabConfig {
    /// Untargeted FAB in `norm`, every setting at the reference's default.
    pub fn new(norm: Norm, eps: Option<f64>) -> Self {
        FabConfig {
            norm,
            eps,
            steps: DEFAULT_STEPS,
            restarts: DEFAULT_RESTARTS,
            target_classes: None,
            alpha_max: DEFAULT_ALPHA_MAX,
            eta: DEFAULT_ETA,
            beta: DEFAULT_BETA,
        }
    }

    /// AutoAttack's FAB-T: 9 target classes, 1 restart, 100 steps.
    pub fn autoattack_targeted(norm: Norm, eps: f64) -> Self {
        FabConfig {
            target_classes: Some(super::ensemble::AUTOATTACK_TARGET_CLASSES),
            ..FabConfig::new(norm, Some(eps))
        }
    }

    /// Reads the settings; one config per ε (one without a budget when
    /// `eps` is unwritten).
    pub fn from_entry(e: &mut Entry, budget: &Budget) -> Vec<Self> {
        let steps = e.positive_int("steps").unwrap_or(DEFAULT_STEPS);
        let restarts = e.positive_int("restarts").unwrap_or(DEFAULT_RESTARTS);
        let target_classes = e.positive_int("target_classes");
        let alpha_max = e
            .float_in("alpha_max", 0.0, 1.0)
            .unwrap_or(DEFAULT_ALPHA_MAX);
        let eta = e.float_in("eta", 1.0, 10.0).unwrap_or(DEFAULT_ETA);
        let beta = e.float_in("beta", 0.0, 1.0).unwrap_or(DEFAULT_BETA);
        let norm = budget.norm();
        budget
            .eps_or_none()
            .into_iter()
            .map(|eps| FabConfig {
                norm,
                eps,
                steps,
                restarts,
                target_classes,
                alpha_max,
                eta,
                beta,
            })
            .collect()
    }

    /// The runnable attack.
    pub fn build(&self) -> Fab {
        Fab {
            norm: self.norm,
            eps: self.eps,
            steps: self.steps,
            restarts: self.restarts.max(1),
            target_classes: self.target_classes,
            alpha_max: self.alpha_max,
            eta: self.eta,
            beta: self.beta,
        }
    }
}

impl AttackMethod for FabConfig {
    fn norm(&self) -> Norm {
        self.norm
    }
    fn eps(&self) -> Option<f64> {
        self.eps
    }
    fn attack(&self) -> Result<Box<dyn Attack>> {
        Ok(Box::new(self.build()))
    }
    /// AutoAttack's names: FAB, and FAB-T when targeted.
    fn label(&self) -> String {
        match self.target_classes {
            None => "FAB".into(),
            Some(_) => "FAB-T".into(),
        }
    }
    fn is_minimum_norm(&self) -> bool {
        true
    }
}

/// A FAB configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Fab {
    /// The norm minimised.
    pub norm: Norm,
    /// Budget deciding success (`None`: any adversarial found).
    pub eps: Option<f64>,
    /// Iterations per run.
    pub steps: usize,
    /// Runs per input (per target class for FAB-T).
    pub restarts: usize,
    /// FAB-T's number of target classes, or untargeted.
    pub target_classes: Option<usize>,
    /// Largest weight of the step from the clean input.
    pub alpha_max: f64,
    /// Overshoot.
    pub eta: f64,
    /// Backward step after a success.
    pub beta: f64,
}

/// `‖v‖` in `norm`, in f64.
fn norm_of(v: impl Iterator<Item = f64>, norm: Norm) -> f64 {
    match norm {
        Norm::Linf => v.fold(0.0, |m, a| m.max(a.abs())),
        Norm::L2 => v.map(|a| a * a).sum::<f64>().sqrt(),
        Norm::L1 => v.map(f64::abs).sum(),
    }
}

/// The dual norm of `w` (L1 for L∞, L2 for L2, L∞ for L1): the
/// linearised distance to a hyperplane is `|f| / ‖w‖_dual`.
fn dual_norm(w: &[f32], norm: Norm) -> f64 {
    match norm {
        Norm::Linf => w.iter().map(|a| (*a as f64).abs()).sum(),
        Norm::L2 => w.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt(),
        Norm::L1 => w.iter().fold(0.0, |m, a| m.max((*a as f64).abs())),
    }
}

/// The smallest `d` in `norm` with `w·(t + d) = b` and `lo ≤ t + d ≤ hi`
/// (FAB's projection onto a linearised decision boundary inside the valid
/// range), solved exactly: each coordinate moves only in the direction that
/// brings `w·(t + d)` towards `b`, and the amount follows from sorted
/// breakpoints (L∞: one common step `λ` capped by each coordinate's room;
/// L2: `λ·|w_i|` capped by the room; L1: the coordinates of largest `|w_i|`
/// first, each up to its room). When no point of the range reaches
/// the hyperplane, every coordinate moves as far as its room allows (the
/// corner of the range closest to the hyperplane in `w`'s direction).
///
/// `t`, `w`: one input, flattened; returns `d`, same length.
pub fn boundary_projection(
    t: &[f32],
    w: &[f32],
    b: f64,
    norm: Norm,
    range: (f32, f32),
) -> Vec<f32> {
    let (lo, hi) = (range.0 as f64, range.1 as f64);
    let c = b - t
        .iter()
        .zip(w)
        .map(|(a, b)| *a as f64 * *b as f64)
        .sum::<f64>();
    let mut d = vec![0f32; t.len()];
    if c == 0.0 || !c.is_finite() {
        return d;
    }
    // Each coordinate's useful direction, weight |w_i| and room to move.
    let s = c.signum();
    let need = c.abs();
    let mut moves: Vec<(usize, f64, f64, f64)> = Vec::with_capacity(t.len());
    for (i, (&ti, &wi)) in t.iter().zip(w).enumerate() {
        let wi = s * wi as f64;
        if wi == 0.0 {
            continue;
        }
        let dir = wi.signum();
        let room = if dir > 0.0 {
            hi - ti as f64
        } else {
            ti as f64 - lo
        }
        .max(0.0);
        if room > 0.0 {
            moves.push((i, dir, wi.abs(), room));
        }
    }
    if norm == Norm::L1 {
        // The cheapest L1 route moves the coordinates with the largest
        // |w_i| first, each as far as its room, the last one partly.
        moves.sort_by(|p, q| q.2.total_cmp(&p.2).then(p.0.cmp(&q.0)));
        let mut left = need;
        for &(i, dir, a, room) in &moves {
            if left <= 0.0 {
                break;
            }
            let step = (left / a).min(room);
            d[i] = (dir * step) as f32;
            left -= a * step;
        }
        return d;
    }
    // g(λ) = Σ a_i·min(λ·k_i, r_i) is piecewise linear and increasing; its
    // breakpoints are λ_i = r_i / k_i (k_i = 1 in L∞, a_i in L2).
    let slope = |a: f64| match norm {
        Norm::L2 => a,
        _ => 1.0,
    };
    moves.sort_by(|p, q| (p.3 / slope(p.2)).total_cmp(&(q.3 / slope(q.2))));
    let mut saturated = 0.0; // Σ a_i r_i over coordinates at their room
    let mut rate: f64 = moves.iter().map(|m| m.2 * slope(m.2)).sum();
    let mut lambda = None;
    for m in &moves {
        let at = m.3 / slope(m.2);
        if saturated + rate * at >= need {
            lambda = Some((need - saturated) / rate);
            break;
        }
        saturated += m.2 * m.3;
        rate -= m.2 * slope(m.2);
    }
    for &(i, dir, a, room) in &moves {
        let step = match lambda {
            Some(l) => (l * slope(a)).min(room),
            None => room,
        };
        d[i] = (dir * step) as f32;
    }
    d
}

/// A hyperplane `w·z = b`: `(w, b)`.
type Plane = (Vec<f32>, f64);

/// One input's state in a run.
struct Run<'a> {
    x0: &'a [f32],
    label: u32,
    target: Option<u32>,
}

impl Fab {
    /// The hyperplane to project on per row: `(w, b)` with the boundary
    /// `w·z = b` of the closest class (FAB-T: the target's), linearised at
    /// the iterates `x1`; and the gradient evaluations spent.
    fn hyperplanes(
        &self,
        model: &dyn Classifier,
        x1: &[f32],
        shape: [usize; 4],
        runs: &[Run],
    ) -> Result<(Vec<Plane>, usize)> {
        let per = shape[1] * shape[2] * shape[3];
        let n = shape[0];
        let t = to_tensor(x1, shape)?;
        let k = model.num_classes();
        // Each row's best hyperplane so far: (distance, w, f).
        let mut best: Vec<(f64, Vec<f32>, f64)> = vec![(f64::INFINITY, Vec::new(), 0.0); n];
        let mut logits: Vec<Vec<f32>> = Vec::new();
        let classes: Vec<Option<u32>> = match runs[0].target {
            Some(_) => vec![None],
            None => (0..k as u32).map(Some).collect(),
        };
        let mut evaluations = 0;
        for class in classes {
            // f_j − f_y for each row (j: the class of this pass, or the row's target).
            let other = |i: usize| class.or(runs[i].target).unwrap_or(0) as usize;
            let loss = |i: usize, z: &[f32]| {
                let (j, y) = (other(i), runs[i].label as usize);
                let mut g = vec![0f32; z.len()];
                if j != y {
                    g[j] += 1.0;
                    g[y] -= 1.0;
                }
                (z[j] - z[y], g)
            };
            let g = model.input_grad(&t, Objective::Custom(&loss))?;
            evaluations += 1;
            if logits.is_empty() {
                logits = g.logits.to_vec2()?;
            }
            let grad: Vec<f32> = g.grad.flatten_all()?.to_vec1()?;
            for (i, slot) in best.iter_mut().enumerate() {
                let (j, y) = (other(i), runs[i].label as usize);
                if j == y {
                    continue;
                }
                let w = &grad[i * per..(i + 1) * per];
                let f = logits[i][j] as f64 - logits[i][y] as f64;
                let dist = f.abs() / (1e-12 + dual_norm(w, self.norm));
                if dist < slot.0 {
                    *slot = (dist, w.to_vec(), f);
                }
            }
        }
        let planes = best
            .into_iter()
            .enumerate()
            .map(|(i, (_, w, f))| {
                let w = if w.is_empty() { vec![0f32; per] } else { w };
                let x = &x1[i * per..(i + 1) * per];
                let wx: f64 = w.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum();
                (w, wx - f)
            })
            .collect();
        Ok((planes, evaluations))
    }

    /// One run of `steps` iterations from `start` on the rows `runs`
    /// (clean inputs correctly classified); lowers `best_norm`, updating
    /// `best_point`, wherever an iterate is adversarial and smaller.
    fn single_run(
        &self,
        model: &dyn Classifier,
        runs: &[Run],
        start: Vec<f32>,
        inner: [usize; 3],
        best_norm: &mut [f64],
        best_point: &mut [Vec<f32>],
    ) -> Result<usize> {
        let n = runs.len();
        let per = inner[0] * inner[1] * inner[2];
        let shape = [n, inner[0], inner[1], inner[2]];
        let range = model.input_range();
        let mut x1 = start;
        let mut evaluations = 0;
        for _ in 0..self.steps {
            let (planes, used) = self.hyperplanes(model, &x1, shape, runs)?;
            evaluations += used;
            for (i, (w, b)) in planes.iter().enumerate() {
                let span = i * per..(i + 1) * per;
                let (xi, x0) = (&x1[span.clone()], runs[i].x0);
                let d1 = boundary_projection(xi, w, *b, self.norm, range);
                let d2 = boundary_projection(x0, w, *b, self.norm, range);
                let a1 = norm_of(d1.iter().map(|v| *v as f64), self.norm).max(1e-8);
                let a2 = norm_of(d2.iter().map(|v| *v as f64), self.norm).max(1e-8);
                let alpha = (a1 / (a1 + a2)).max(0.0).min(self.alpha_max);
                let next: Vec<f32> = (0..per)
                    .map(|p| {
                        let from_x1 = xi[p] as f64 + self.eta * d1[p] as f64;
                        let from_x0 = x0[p] as f64 + self.eta * d2[p] as f64;
                        ((from_x1 * (1.0 - alpha) + from_x0 * alpha) as f32).clamp(range.0, range.1)
                    })
                    .collect();
                x1[span].copy_from_slice(&next);
            }
            let logits = logits_at(model, &x1, shape)?;
            for (i, row) in logits.iter().enumerate() {
                if argmax(row) == runs[i].label {
                    continue;
                }
                let span = i * per..(i + 1) * per;
                let x0 = runs[i].x0;
                let size = norm_of(
                    x1[span.clone()]
                        .iter()
                        .zip(x0)
                        .map(|(a, b)| *a as f64 - *b as f64),
                    self.norm,
                );
                if size < best_norm[i] {
                    best_norm[i] = size;
                    best_point[i].copy_from_slice(&x1[span.clone()]);
                }
                for (a, &c) in x1[span].iter_mut().zip(x0) {
                    *a = ((c as f64 + (*a as f64 - c as f64) * self.beta) as f32)
                        .clamp(range.0, range.1);
                }
            }
        }
        Ok(evaluations)
    }

    /// A random start around `x0`: a direction of norm `radius / 2`
    /// (L∞: uniform in the cube, scaled to its largest coordinate; L2, L1:
    /// Gaussian, scaled to its norm), clipped to the range.
    fn random_start(&self, x0: &[f32], radius: f64, rng: &mut Rng, range: (f32, f32)) -> Vec<f32> {
        let t: Vec<f64> = match self.norm {
            Norm::Linf => (0..x0.len())
                .map(|_| 2.0 * rng.uniform_f64() - 1.0)
                .collect(),
            Norm::L2 | Norm::L1 => (0..x0.len()).map(|_| rng.normal() as f64).collect(),
        };
        let size = norm_of(t.iter().copied(), self.norm).max(1e-12);
        x0.iter()
            .zip(&t)
            .map(|(&c, &v)| ((c as f64 + radius * v / size * 0.5) as f32).clamp(range.0, range.1))
            .collect()
    }
}

impl Attack for Fab {
    fn run(&self, model: &dyn Classifier, batch: &AttackBatch) -> Result<AttackOutcome> {
        let k = model.num_classes();
        if k < 2 {
            return Err(Error::Invalid(format!(
                "FAB needs at least 2 classes, the model has {k}"
            )));
        }
        let per = batch.item_len();
        let range = model.input_range();
        let inner = [batch.shape[1], batch.shape[2], batch.shape[3]];
        let mut best = BestTracker::new(batch, None);
        // Only inputs classified correctly have a boundary to find.
        let rows = best.unbroken();
        let mut best_norm = vec![f64::INFINITY; rows.len()];
        let mut best_point: Vec<Vec<f32>> = rows
            .iter()
            .map(|&i| batch.x[i * per..(i + 1) * per].to_vec())
            .collect();
        let mut rngs: Vec<Rng> = rows.iter().map(|&i| batch.sample_rng(i)).collect();
        let radius = self
            .eps
            .unwrap_or(default_start_radius(self.norm) * (range.1 - range.0) as f64);
        let ranks: Vec<Option<usize>> = match self.target_classes {
            None => vec![None],
            // The rank-th most likely class on the clean input, rank ≥ 2.
            Some(n) => (2..(n + 2).min(k + 1)).map(Some).collect(),
        };
        let mut evaluations = 0;
        for rank in ranks {
            for restart in 0..self.restarts {
                // With a budget, only inputs not yet broken within it are
                // retried; without one, every run may find a smaller point.
                let active: Vec<usize> = (0..rows.len())
                    .filter(|&r| self.eps.is_none_or(|e| best_norm[r] > e))
                    .collect();
                if active.is_empty() {
                    break;
                }
                let runs: Vec<Run> = active
                    .iter()
                    .map(|&r| {
                        let i = rows[r];
                        Run {
                            x0: &batch.x[i * per..(i + 1) * per],
                            label: batch.labels[i],
                            target: rank.map(|rank| {
                                super::classes_by_logit(&batch.clean_logits[i])[rank - 1] as u32
                            }),
                        }
                    })
                    .collect();
                let start: Vec<f32> = if restart == 0 {
                    gather(
                        batch.x,
                        &active.iter().map(|&r| rows[r]).collect::<Vec<_>>(),
                        per,
                    )
                } else {
                    active
                        .iter()
                        .zip(&runs)
                        .flat_map(|(&r, run)| {
                            self.random_start(run.x0, radius, &mut rngs[r], range)
                        })
                        .collect()
                };
                let mut norms: Vec<f64> = active.iter().map(|&r| best_norm[r]).collect();
                let mut points: Vec<Vec<f32>> =
                    active.iter().map(|&r| best_point[r].clone()).collect();
                evaluations +=
                    self.single_run(model, &runs, start, inner, &mut norms, &mut points)?;
                for ((&r, size), point) in active.iter().zip(norms).zip(points) {
                    if size < best_norm[r] {
                        best_norm[r] = size;
                        best_point[r] = point;
                    }
                }
            }
        }
        let keep: Vec<bool> = best_norm
            .iter()
            .map(|&d| d.is_finite() && self.eps.is_none_or(|e| d <= e))
            .collect();
        best.offer_kept(model, batch, &rows, &best_point.concat(), &keep, None)?;
        Ok(best.into_outcome(None, evaluations))
    }
}
