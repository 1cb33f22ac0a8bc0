//! Worst case over a grid of rigid transformations per input: every
//! (angle, dx, dy) of the plan's grid, applied in one bilinear resampling
//! with zero fill ([`transform::rigid`](crate::transform::rigid), the
//! transformation of Engstrom et al.'s spatial attack, which the attacks
//! module shares). An input counts as robust when every grid point is
//! classified correctly; its worst point is the misclassified one with the
//! lowest true-class probability, else the point with the lowest true-class
//! probability.

use serde::{Deserialize, Serialize};

use super::types::{Example, SampleWorstCase, WorstCaseSummary};
use super::{Context, Outcome, Progress};
use crate::entry::Entry;
use crate::error::Result;
use crate::stats::{argmax, mean, softmax_f64};
use crate::transform::rigid;

/// Default angles, degrees.
pub const DEFAULT_ANGLES_DEG: &[f64] = &[-30.0, -15.0, 0.0, 15.0, 30.0];
/// Default translations, pixels (for both dx and dy).
pub const DEFAULT_SHIFTS_PX: &[f64] = &[-2.0, 0.0, 2.0];
/// Default broken inputs kept in the sidecar.
pub const DEFAULT_EXAMPLES: usize = 8;

/// `kind = "worst_case"`: the grid is every (angle, dx, dy) combination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorstCaseConfig {
    /// Angles in degrees, in [-360, 360] (default −30, −15, 0, 15, 30).
    #[schemars(extend("default" = DEFAULT_ANGLES_DEG))]
    pub angles_deg: Vec<f64>,
    /// Translations in pixels, used for both dx and dy (default −2, 0, 2).
    #[schemars(extend("default" = DEFAULT_SHIFTS_PX))]
    pub shifts_px: Vec<f64>,
    /// Broken inputs to keep in the sidecar (the first, in data order), 0 to
    /// 10,000 (default 8).
    #[schemars(extend("default" = DEFAULT_EXAMPLES))]
    pub examples: usize,
}

impl WorstCaseConfig {
    /// Reads the entry's keys, defaults filled in; problems are recorded in `e`.
    pub fn from_entry(e: &mut Entry) -> Self {
        WorstCaseConfig {
            angles_deg: e
                .floats_in("angles_deg", -360.0, 360.0)
                .unwrap_or_else(|| DEFAULT_ANGLES_DEG.to_vec()),
            shifts_px: e
                .floats_in("shifts_px", -4096.0, 4096.0)
                .unwrap_or_else(|| DEFAULT_SHIFTS_PX.to_vec()),
            examples: e.int_in("examples", 0, 10_000).unwrap_or(DEFAULT_EXAMPLES),
        }
    }
}

/// One grid point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridPoint {
    /// Rotation, degrees, counter-clockwise positive.
    pub angle_deg: f64,
    /// Translation right, pixels.
    pub dx: f64,
    /// Translation down, pixels.
    pub dy: f64,
}

impl GridPoint {
    /// `angle=+15,dx=-2,dy=+0`.
    pub fn label(&self) -> String {
        format!(
            "angle={:+},dx={:+},dy={:+}",
            self.angle_deg, self.dx, self.dy
        )
    }

    /// Applies it to one `[C, H, W]` image.
    pub fn apply(&self, x: &[f32], shape: [usize; 3]) -> Vec<f32> {
        rigid(x, shape, self.angle_deg, self.dx, self.dy)
    }
}

/// One input at one grid point.
#[derive(Debug, Clone, Copy)]
struct Point {
    correct: bool,
    true_probability: f64,
    grid: usize,
    prediction: u32,
    confidence: f64,
}

/// Every (angle, dx, dy) of the spec, angles outermost.
pub fn grid(spec: &WorstCaseConfig) -> Vec<GridPoint> {
    let mut g = Vec::new();
    for &angle_deg in &spec.angles_deg {
        for &dx in &spec.shifts_px {
            for &dy in &spec.shifts_px {
                g.push(GridPoint { angle_deg, dx, dy });
            }
        }
    }
    g
}

/// Runs a `kind = "worst_case"` entry.
pub fn run(
    ctx: &Context,
    name: &str,
    spec: &WorstCaseConfig,
    progress: Progress,
) -> Result<Outcome<WorstCaseSummary, SampleWorstCase>> {
    let points = grid(spec);
    let n = ctx.len();
    let shape = ctx.shape();
    let per = ctx.item_len();
    let labels = &ctx.data.labels;
    let mut worst: Vec<Option<Point>> = vec![None; n];
    for first in (0..n).step_by(ctx.batch_size) {
        let len = ctx.batch_size.min(n - first);
        let x = &ctx.data.pixels[first * per..(first + len) * per];
        for (g, point) in points.iter().enumerate() {
            let moved: Vec<f32> = x
                .chunks(per)
                .flat_map(|img| point.apply(img, shape))
                .collect();
            for (k, z) in ctx.logits_data(&moved)?.iter().enumerate() {
                let i = first + k;
                let p = softmax_f64(z);
                let pred = argmax(z);
                let candidate = Point {
                    correct: pred == labels[i],
                    true_probability: p[labels[i] as usize],
                    grid: g,
                    prediction: pred,
                    confidence: p[pred as usize],
                };
                // Misclassified first, then the lowest true-class probability.
                let better = match &worst[i] {
                    None => true,
                    Some(w) => {
                        (candidate.correct, candidate.true_probability)
                            < (w.correct, w.true_probability)
                    }
                };
                if better {
                    worst[i] = Some(candidate);
                }
            }
        }
        progress((first + len) as f64 / n as f64);
    }
    let worst: Vec<Point> = worst
        .into_iter()
        .map(|w| w.expect("a non-empty grid"))
        .collect();
    let mut examples = Vec::new();
    let mut pixels = Vec::new();
    for (i, w) in worst.iter().enumerate() {
        if examples.len() >= spec.examples {
            break;
        }
        if ctx.clean_prediction(i) == labels[i] && !w.correct {
            examples.push(Example {
                index: i,
                transform: Some(points[w.grid].label()),
                prediction: w.prediction,
                confidence: w.confidence as f32,
            });
            pixels.extend(points[w.grid].apply(ctx.data.item(i), shape));
        }
    }
    let clean_correct = (0..n)
        .filter(|&i| ctx.clean_prediction(i) == labels[i])
        .count();
    let robust = worst.iter().filter(|w| w.correct).count();
    let tensors = if pixels.is_empty() {
        Vec::new()
    } else {
        vec![(
            crate::sidecar::equivariance(name),
            ctx.images_tensor(&pixels)?,
        )]
    };
    Ok(Outcome {
        summary: WorstCaseSummary {
            name: name.to_string(),
            grid_size: points.len(),
            clean_accuracy: clean_correct as f64 / n as f64,
            worst_case_accuracy: robust as f64 / n as f64,
            mean_worst_true_class_probability: mean(worst.iter().map(|w| w.true_probability))
                .unwrap_or(0.0),
            examples,
        },
        samples: worst
            .iter()
            .map(|w| SampleWorstCase {
                name: name.to_string(),
                transform: points[w.grid].label(),
                prediction: w.prediction,
                confidence: w.confidence as f32,
                true_class_probability: w.true_probability as f32,
            })
            .collect(),
        tensors,
        warnings: Vec::new(),
        seconds: 0.0,
    })
}
