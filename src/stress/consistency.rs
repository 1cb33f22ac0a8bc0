//! Prediction consistency under transformations: integer shifts (circular,
//! like `torch.roll`, or zero-filled; every distance in ±x and ±y),
//! rotations and flips. Per transformation the share of inputs whose
//! prediction equals the clean one, with accuracy and mean confidence; per
//! input the prediction and its confidence under each transformation.
//!
//! The plan says whether the model should be invariant: a digit shifted by
//! two pixels is the same digit, a mirrored 3 is not. Inputs that go against
//! the expectation are the examples kept in the sidecar, and transformations
//! expected to leave predictions alone that change too many are warnings.

use serde::{Deserialize, Serialize};

use super::ood::max_softmax;
use super::types::{ConsistencySummary, Example, SampleConsistency, TransformSummary};
use super::{Context, Outcome, Progress};
use crate::entry::Entry;
use crate::error::Result;
use crate::stats::{argmax, mean};
use crate::transform::{flip_h, flip_v, rotate, shift_circular, shift_zero};

/// How integer shifts treat the edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShiftMode {
    /// What leaves one edge comes back at the other (`torch.roll`).
    Circular,
    /// What enters is 0.
    Zero,
}

impl ShiftMode {
    /// Every mode, by the name plans and reports use.
    pub const NAMES: &'static [(&'static str, ShiftMode)] =
        &[("circular", ShiftMode::Circular), ("zero", ShiftMode::Zero)];
}

/// A mirror axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlipAxis {
    /// Left–right.
    Horizontal,
    /// Top–bottom.
    Vertical,
}

impl FlipAxis {
    /// Every axis, by the name plans and reports use.
    pub const NAMES: &'static [(&'static str, FlipAxis)] = &[
        ("horizontal", FlipAxis::Horizontal),
        ("vertical", FlipAxis::Vertical),
    ];
}

/// Default lowest consistency of an entry expected to be invariant.
pub const DEFAULT_MIN_CONSISTENCY: f64 = 0.9;
/// Default changed predictions kept in the sidecar.
pub const DEFAULT_EXAMPLES: usize = 8;
/// Default shift edges: circular, like `torch.roll`.
pub const DEFAULT_SHIFT_MODE: ShiftMode = ShiftMode::Circular;
/// Default shift distances, pixels.
pub const DEFAULT_SHIFT_PIXELS: &[usize] = &[1, 2, 3];
/// Default rotation angles, degrees.
pub const DEFAULT_ROTATION_ANGLES_DEG: &[f64] = &[-30.0, -15.0, -5.0, 5.0, 15.0, 30.0];
/// Default flips: both axes.
pub const DEFAULT_FLIP_AXES: &[FlipAxis] = &[FlipAxis::Horizontal, FlipAxis::Vertical];

/// What the plan expects of a consistency check, and how many failures to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Expectation {
    /// Whether predictions should stay the same (digits under shifts) or
    /// change (digits under flips); the default depends on the kind.
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "true; false for flip"}}))]
    pub expect_invariant: bool,
    /// With `expect_invariant`, a transformation whose consistency falls
    /// below this is a warning; in [0, 1] (default 0.9).
    #[schemars(extend("default" = DEFAULT_MIN_CONSISTENCY))]
    pub min_consistency: f64,
    /// Changed predictions to keep in the sidecar (the first, in data
    /// order), 0 to 10,000 (default 8).
    #[schemars(extend("default" = DEFAULT_EXAMPLES))]
    pub examples: usize,
}

impl Expectation {
    /// Reads the entry's keys; `expect_invariant` defaults to
    /// `invariant_by_default`.
    pub fn from_entry(e: &mut Entry, invariant_by_default: bool) -> Self {
        Expectation {
            expect_invariant: e
                .boolean("expect_invariant")
                .unwrap_or(invariant_by_default),
            min_consistency: e
                .float_in("min_consistency", 0.0, 1.0)
                .unwrap_or(DEFAULT_MIN_CONSISTENCY),
            examples: e.int_in("examples", 0, 10_000).unwrap_or(DEFAULT_EXAMPLES),
        }
    }
}

/// `kind = "shift"`: every distance, in ±x and in ±y (expected invariant by
/// default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShiftConfig {
    /// Edge handling (default circular).
    #[schemars(extend("default" = DEFAULT_SHIFT_MODE))]
    pub mode: ShiftMode,
    /// Distances in pixels, 1 to 4096 (default 1, 2, 3).
    #[schemars(extend("default" = DEFAULT_SHIFT_PIXELS))]
    pub pixels: Vec<usize>,
    /// Expectation and examples.
    #[serde(flatten)]
    pub expectation: Expectation,
}

impl ShiftConfig {
    /// Reads the entry's keys, defaults filled in; problems are recorded in `e`.
    pub fn from_entry(e: &mut Entry) -> Self {
        ShiftConfig {
            mode: e
                .choice("mode", ShiftMode::NAMES)
                .unwrap_or(DEFAULT_SHIFT_MODE),
            pixels: e
                .ints_in("pixels", 1, 4096)
                .unwrap_or_else(|| DEFAULT_SHIFT_PIXELS.to_vec()),
            expectation: Expectation::from_entry(e, true),
        }
    }
}

/// `kind = "rotation"` (expected invariant by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RotationConfig {
    /// Angles in degrees, counter-clockwise positive, in [-360, 360]
    /// (default ±5, ±15, ±30).
    #[schemars(extend("default" = DEFAULT_ROTATION_ANGLES_DEG))]
    pub angles_deg: Vec<f64>,
    /// Expectation and examples.
    #[serde(flatten)]
    pub expectation: Expectation,
}

impl RotationConfig {
    /// Reads the entry's keys, defaults filled in; problems are recorded in `e`.
    pub fn from_entry(e: &mut Entry) -> Self {
        RotationConfig {
            angles_deg: e
                .floats_in("angles_deg", -360.0, 360.0)
                .unwrap_or_else(|| DEFAULT_ROTATION_ANGLES_DEG.to_vec()),
            expectation: Expectation::from_entry(e, true),
        }
    }
}

/// `kind = "flip"` (expected to change predictions by default: a mirrored
/// digit is another digit, or none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlipConfig {
    /// The flips, each reported separately (default both).
    #[schemars(extend("default" = DEFAULT_FLIP_AXES))]
    pub axes: Vec<FlipAxis>,
    /// Expectation and examples.
    #[serde(flatten)]
    pub expectation: Expectation,
}

impl FlipConfig {
    /// Reads the entry's keys, defaults filled in; problems are recorded in `e`.
    pub fn from_entry(e: &mut Entry) -> Self {
        FlipConfig {
            axes: e
                .names("axes", FlipAxis::NAMES)
                .unwrap_or_else(|| DEFAULT_FLIP_AXES.to_vec()),
            expectation: Expectation::from_entry(e, false),
        }
    }
}

/// One transformation of a consistency check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// Whole-pixel shift.
    Shift {
        /// Right positive.
        dx: i64,
        /// Down positive.
        dy: i64,
        /// Edge handling.
        mode: ShiftMode,
    },
    /// Rotation about the centre, counter-clockwise positive, bilinear, zero fill.
    Rotate {
        /// Degrees.
        angle_deg: f64,
    },
    /// Mirror.
    Flip(FlipAxis),
}

impl Transform {
    /// How the report names it: `dx=+2`, `dy=-1`, `angle=-15`, `flip=horizontal`.
    pub fn label(&self) -> String {
        match *self {
            Transform::Shift { dx, dy: 0, .. } => format!("dx={dx:+}"),
            Transform::Shift { dx: 0, dy, .. } => format!("dy={dy:+}"),
            Transform::Shift { dx, dy, .. } => format!("dx={dx:+},dy={dy:+}"),
            Transform::Rotate { angle_deg } => format!("angle={angle_deg:+}"),
            Transform::Flip(FlipAxis::Horizontal) => "flip=horizontal".into(),
            Transform::Flip(FlipAxis::Vertical) => "flip=vertical".into(),
        }
    }

    /// Applies it to one `[C, H, W]` image.
    pub fn apply(&self, x: &[f32], shape: [usize; 3]) -> Vec<f32> {
        match *self {
            Transform::Shift {
                dx,
                dy,
                mode: ShiftMode::Circular,
            } => shift_circular(x, shape, dx, dy),
            Transform::Shift {
                dx,
                dy,
                mode: ShiftMode::Zero,
            } => shift_zero(x, shape, dx, dy),
            Transform::Rotate { angle_deg } => rotate(x, shape, angle_deg),
            Transform::Flip(FlipAxis::Horizontal) => flip_h(x, shape),
            Transform::Flip(FlipAxis::Vertical) => flip_v(x, shape),
        }
    }
}

/// A `shift`, `rotation` or `flip` entry, as [`run`] sees it.
pub trait ConsistencyCheck {
    /// The kind the report names.
    const KIND: &'static str;
    /// The transformations, in report order.
    fn transforms(&self) -> Vec<Transform>;
    /// The edge handling of shifts (`None` for other kinds).
    fn mode(&self) -> Option<ShiftMode> {
        None
    }
    /// What the plan expects.
    fn expectation(&self) -> &Expectation;
}

impl ConsistencyCheck for ShiftConfig {
    const KIND: &'static str = "shift";
    fn transforms(&self) -> Vec<Transform> {
        let mut t = Vec::new();
        for &p in &self.pixels {
            let p = p as i64;
            for (dx, dy) in [(p, 0), (-p, 0), (0, p), (0, -p)] {
                t.push(Transform::Shift {
                    dx,
                    dy,
                    mode: self.mode,
                });
            }
        }
        t
    }
    fn mode(&self) -> Option<ShiftMode> {
        Some(self.mode)
    }
    fn expectation(&self) -> &Expectation {
        &self.expectation
    }
}

impl ConsistencyCheck for RotationConfig {
    const KIND: &'static str = "rotation";
    fn transforms(&self) -> Vec<Transform> {
        self.angles_deg
            .iter()
            .map(|&angle_deg| Transform::Rotate { angle_deg })
            .collect()
    }
    fn expectation(&self) -> &Expectation {
        &self.expectation
    }
}

impl ConsistencyCheck for FlipConfig {
    const KIND: &'static str = "flip";
    fn transforms(&self) -> Vec<Transform> {
        self.axes.iter().map(|&a| Transform::Flip(a)).collect()
    }
    fn expectation(&self) -> &Expectation {
        &self.expectation
    }
}

/// Runs a `shift`, `rotation` or `flip` entry.
pub fn run<C: ConsistencyCheck>(
    ctx: &Context,
    name: &str,
    check: &C,
    progress: Progress,
) -> Result<Outcome<ConsistencySummary, SampleConsistency>> {
    let transforms = check.transforms();
    let expectation = check.expectation();
    let n = ctx.len();
    let shape = ctx.shape();
    let per = ctx.item_len();
    let labels = &ctx.data.labels;
    let mut samples: Vec<SampleConsistency> = (0..n)
        .map(|_| SampleConsistency {
            name: name.to_string(),
            predictions: Vec::with_capacity(transforms.len()),
            confidences: Vec::with_capacity(transforms.len()),
        })
        .collect();
    for first in (0..n).step_by(ctx.batch_size) {
        let len = ctx.batch_size.min(n - first);
        let x = &ctx.data.pixels[first * per..(first + len) * per];
        for t in &transforms {
            let moved: Vec<f32> = x.chunks(per).flat_map(|img| t.apply(img, shape)).collect();
            for (k, z) in ctx.logits_data(&moved)?.iter().enumerate() {
                samples[first + k].predictions.push(argmax(z));
                samples[first + k].confidences.push(max_softmax(z) as f32);
            }
        }
        progress((first + len) as f64 / n as f64);
    }
    let mut summaries = Vec::with_capacity(transforms.len());
    for (j, t) in transforms.iter().enumerate() {
        let same = (0..n)
            .filter(|&i| samples[i].predictions[j] == ctx.clean_prediction(i))
            .count();
        let correct = (0..n)
            .filter(|&i| samples[i].predictions[j] == labels[i])
            .count();
        let confidence: Vec<f64> = samples.iter().map(|s| s.confidences[j] as f64).collect();
        summaries.push(TransformSummary {
            transform: t.label(),
            consistency: same as f64 / n as f64,
            accuracy: correct as f64 / n as f64,
            mean_confidence: mean(confidence.iter().copied()).unwrap_or(0.0),
        });
    }
    // Examples: the first inputs whose outcome goes against the expectation.
    let mut examples = Vec::new();
    let mut pixels = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        if examples.len() >= expectation.examples {
            break;
        }
        let clean = ctx.clean_prediction(i);
        let against = s
            .predictions
            .iter()
            .position(|&p| (p != clean) == expectation.expect_invariant);
        if let Some(j) = against {
            examples.push(Example {
                index: i,
                transform: Some(transforms[j].label()),
                prediction: s.predictions[j],
                confidence: s.confidences[j],
            });
            pixels.extend(transforms[j].apply(ctx.data.item(i), shape));
        }
    }
    let mut warnings = Vec::new();
    if expectation.expect_invariant {
        let below: Vec<&TransformSummary> = summaries
            .iter()
            .filter(|t| t.consistency < expectation.min_consistency)
            .collect();
        if let Some(worst) = below
            .iter()
            .min_by(|a, b| a.consistency.total_cmp(&b.consistency))
        {
            warnings.push(format!(
                "{name}: the model is expected to be invariant, but {} of {} transformations change more predictions than allowed (consistency below {:.1}%; lowest {:.1}% under {})",
                below.len(),
                summaries.len(),
                100.0 * expectation.min_consistency,
                100.0 * worst.consistency,
                worst.transform
            ));
        }
    }
    let consistencies: Vec<f64> = summaries.iter().map(|t| t.consistency).collect();
    let tensors = if pixels.is_empty() {
        Vec::new()
    } else {
        vec![(
            crate::sidecar::equivariance(name),
            ctx.images_tensor(&pixels)?,
        )]
    };
    Ok(Outcome {
        summary: ConsistencySummary {
            name: name.to_string(),
            kind: C::KIND.to_string(),
            mode: check.mode(),
            expect_invariant: expectation.expect_invariant,
            mean_consistency: mean(consistencies.iter().copied()).unwrap_or(0.0),
            lowest_consistency: consistencies.iter().copied().fold(1.0, f64::min),
            transforms: summaries,
            examples,
        },
        samples,
        tensors,
        warnings,
        seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_moving_axis() {
        let s = |dx, dy| Transform::Shift {
            dx,
            dy,
            mode: ShiftMode::Zero,
        };
        assert_eq!(s(2, 0).label(), "dx=+2");
        assert_eq!(s(0, -1).label(), "dy=-1");
        assert_eq!(s(1, 1).label(), "dx=+1,dy=+1");
        assert_eq!(Transform::Rotate { angle_deg: -15.0 }.label(), "angle=-15");
        assert_eq!(Transform::Flip(FlipAxis::Vertical).label(), "flip=vertical");
    }
}
