//! The spatial attack (Engstrom et al., ICML 2019): rotations and
//! translations instead of pixel noise. `grid` tries every combination of
//! the angle and shift grids (defaults ±30° in 31 steps, ±3 px in 5 steps:
//! 775 points) and stops at an input's first misclassification; `random`
//! tries `k` random transformations (default 10) and keeps the one with the
//! highest loss (worst-of-k). Resampling is bilinear
//! ([`crate::transform::rigid`], shared with the equivariance
//! checks); pixels rotated or shifted in from outside the image are black,
//! the low end of the model's declared range, as in the stress and
//! equivariance checks (filling with 0 in model units would be mid-grey on a
//! `[-1, 1]` model and change the verdict). There is no Lp budget:
//! perturbation norms are reported as they are, and the report's ε is empty.

use serde::{Deserialize, Serialize};

use super::{
    gather, logits_at, Attack, AttackBatch, AttackMethod, AttackOutcome, BestTracker, Budget, Norm,
};
use crate::entry::Entry;
use crate::error::Result;
use crate::model::Classifier;
use crate::transform::rigid;

/// Largest rotation either way, degrees (Engstrom et al.'s 30°).
pub const DEFAULT_MAX_ANGLE_DEG: f64 = 30.0;
/// Largest shift either way, pixels (Engstrom et al.'s 3 px).
pub const DEFAULT_MAX_SHIFT_PX: f64 = 3.0;
/// Grid: angles.
pub const DEFAULT_ANGLE_STEPS: usize = 31;
/// Grid: shifts per axis.
pub const DEFAULT_SHIFT_STEPS: usize = 5;
/// Random: transformations tried per input.
pub const DEFAULT_SAMPLES: usize = 10;

/// How a `spatial` entry searches, written `grid` or `random`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpatialSearch {
    /// Every grid point, in order, until the input breaks.
    Grid,
    /// The worst of `samples` random transformations.
    Random,
}

/// A `spatial` plan entry: `mode` (`grid`, the default, or `random`),
/// `max_angle_deg` (default 30), `max_shift_px` (default 3), `angle_steps`
/// (default 31) and `shift_steps` (default 5) for the grid, `samples`
/// (default 10) for random search. It has no `norm` or `eps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpatialConfig {
    /// Grid or worst-of-`samples`.
    #[schemars(extend("default" = SpatialSearch::Grid))]
    pub mode: SpatialSearch,
    /// Largest rotation either way, in degrees.
    #[schemars(extend("default" = DEFAULT_MAX_ANGLE_DEG))]
    pub max_angle_deg: f64,
    /// Largest shift either way, in pixels.
    #[schemars(extend("default" = DEFAULT_MAX_SHIFT_PX))]
    pub max_shift_px: f64,
    /// Angles in the grid.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_ANGLE_STEPS))]
    pub angle_steps: usize,
    /// Shifts per axis in the grid.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_SHIFT_STEPS))]
    pub shift_steps: usize,
    /// Random transformations tried per input.
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_SAMPLES))]
    pub samples: usize,
}

impl Default for SpatialConfig {
    fn default() -> Self {
        SpatialConfig {
            mode: SpatialSearch::Grid,
            max_angle_deg: DEFAULT_MAX_ANGLE_DEG,
            max_shift_px: DEFAULT_MAX_SHIFT_PX,
            angle_steps: DEFAULT_ANGLE_STEPS,
            shift_steps: DEFAULT_SHIFT_STEPS,
            samples: DEFAULT_SAMPLES,
        }
    }
}

impl SpatialConfig {
    /// Reads the settings; `norm` and `eps` are refused.
    pub fn from_entry(e: &mut Entry, budget: &Budget) -> Vec<Self> {
        budget.refuse(e, "a spatial attack is bounded by angles and shifts");
        let mode = e
            .choice(
                "mode",
                &[
                    ("grid", SpatialSearch::Grid),
                    ("random", SpatialSearch::Random),
                ],
            )
            .unwrap_or(SpatialSearch::Grid);
        vec![SpatialConfig {
            mode,
            max_angle_deg: e
                .nonneg_float("max_angle_deg")
                .unwrap_or(DEFAULT_MAX_ANGLE_DEG),
            max_shift_px: e
                .nonneg_float("max_shift_px")
                .unwrap_or(DEFAULT_MAX_SHIFT_PX),
            angle_steps: e.positive_int("angle_steps").unwrap_or(DEFAULT_ANGLE_STEPS),
            shift_steps: e.positive_int("shift_steps").unwrap_or(DEFAULT_SHIFT_STEPS),
            samples: e.positive_int("samples").unwrap_or(DEFAULT_SAMPLES),
        }]
    }

    /// The runnable attack.
    pub fn build(&self) -> Spatial {
        Spatial {
            max_angle_deg: self.max_angle_deg,
            max_shift_px: self.max_shift_px,
            angle_steps: self.angle_steps,
            shift_steps: self.shift_steps,
            mode: match self.mode {
                SpatialSearch::Grid => SpatialMode::Grid,
                SpatialSearch::Random => SpatialMode::Random(self.samples),
            },
        }
    }
}

impl AttackMethod for SpatialConfig {
    /// L∞, as reports show it: perturbation norms are reported, not bounded.
    fn norm(&self) -> Norm {
        Norm::Linf
    }
    fn eps(&self) -> Option<f64> {
        None
    }
    fn attack(&self) -> Result<Box<dyn Attack>> {
        Ok(Box::new(self.build()))
    }
    fn label(&self) -> String {
        match self.mode {
            SpatialSearch::Grid => "spatial (grid)".into(),
            SpatialSearch::Random => "spatial (random)".into(),
        }
    }
    /// `±30° ±3 px`: the largest rotation and shift.
    fn budget_note(&self) -> Option<String> {
        Some(format!(
            "±{}° ±{} px",
            self.max_angle_deg, self.max_shift_px
        ))
    }
}

/// How the transformations are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpatialMode {
    /// Every grid point, in order, until the input breaks.
    Grid,
    /// The worst of `k` random transformations.
    Random(usize),
}

/// A spatial attack configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Spatial {
    /// Largest rotation either way, in degrees.
    pub max_angle_deg: f64,
    /// Largest shift either way, in pixels.
    pub max_shift_px: f64,
    /// Angles in the grid.
    pub angle_steps: usize,
    /// Shifts per axis in the grid.
    pub shift_steps: usize,
    /// Grid or worst-of-k.
    pub mode: SpatialMode,
}

fn linspace(max: f64, steps: usize) -> Vec<f64> {
    if steps <= 1 {
        return vec![0.0];
    }
    (0..steps)
        .map(|i| -max + 2.0 * max * i as f64 / (steps - 1) as f64)
        .collect()
}

impl Spatial {
    /// The grid's `(angle, dx, dy)` points, the identity first.
    pub fn grid(&self) -> Vec<(f64, f64, f64)> {
        let mut points = vec![(0.0, 0.0, 0.0)];
        for a in linspace(self.max_angle_deg, self.angle_steps) {
            for dx in linspace(self.max_shift_px, self.shift_steps) {
                for dy in linspace(self.max_shift_px, self.shift_steps) {
                    if (a, dx, dy) != (0.0, 0.0, 0.0) {
                        points.push((a, dx, dy));
                    }
                }
            }
        }
        points
    }
}

impl Attack for Spatial {
    fn run(&self, model: &dyn Classifier, batch: &AttackBatch) -> Result<AttackOutcome> {
        let [_, c, h, w] = batch.shape;
        let per = batch.item_len();
        let range = model.input_range();
        let mut best = BestTracker::new(batch, None);
        let mut calls = 0;
        let transform = |rows: &[usize], point: &dyn Fn(usize) -> (f64, f64, f64)| -> Vec<f32> {
            let x = gather(batch.x, rows, per);
            let mut out = Vec::with_capacity(x.len());
            for (r, &i) in rows.iter().enumerate() {
                let (a, dx, dy) = point(i);
                // Resample x − lo so the zero fill lands on the range's low end.
                let shifted: Vec<f32> = x[r * per..(r + 1) * per]
                    .iter()
                    .map(|v| v - range.0)
                    .collect();
                let t = rigid(&shifted, [c, h, w], a, dx, dy);
                out.extend(t.into_iter().map(|v| (v + range.0).clamp(range.0, range.1)));
            }
            out
        };
        match self.mode {
            SpatialMode::Grid => {
                for (a, dx, dy) in self.grid() {
                    let rows = best.unbroken();
                    if rows.is_empty() {
                        break;
                    }
                    let points = transform(&rows, &|_| (a, dx, dy));
                    let logits = logits_at(model, &points, [rows.len(), c, h, w])?;
                    calls += 1;
                    best.offer_rows(&rows, &points, &logits, batch.labels, None);
                }
            }
            SpatialMode::Random(k) => {
                let mut rngs: Vec<_> = (0..batch.len()).map(|i| batch.sample_rng(i)).collect();
                let rows: Vec<usize> = (0..batch.len()).collect();
                for _ in 0..k {
                    let draws: Vec<(f64, f64, f64)> = rngs
                        .iter_mut()
                        .map(|rng| {
                            let a = (2.0 * rng.uniform_f64() - 1.0) * self.max_angle_deg;
                            let dx = (2.0 * rng.uniform_f64() - 1.0) * self.max_shift_px;
                            let dy = (2.0 * rng.uniform_f64() - 1.0) * self.max_shift_px;
                            (a, dx, dy)
                        })
                        .collect();
                    let points = transform(&rows, &|i| draws[i]);
                    let logits = logits_at(model, &points, batch.shape)?;
                    calls += 1;
                    best.offer_rows(&rows, &points, &logits, batch.labels, None);
                }
            }
        }
        Ok(best.into_outcome(None, calls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_grid_has_775_points_identity_first() {
        let s = Spatial {
            max_angle_deg: 30.0,
            max_shift_px: 3.0,
            angle_steps: 31,
            shift_steps: 5,
            mode: SpatialMode::Grid,
        };
        let g = s.grid();
        assert_eq!(g.len(), 775);
        assert_eq!(g[0], (0.0, 0.0, 0.0));
        assert!(g.contains(&(-30.0, 3.0, -1.5)));
    }
}
