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

use super::ood::max_softmax;
use super::plan::{EquivarianceCheck, Expectation, FlipAxis, ShiftMode};
use super::types::{ConsistencySummary, Example, SampleConsistency, TransformSummary};
use super::{Context, Outcome, Progress};
use crate::error::{Error, Result};
use crate::stats::{argmax, mean};
use crate::transform::{flip_h, flip_v, rotate, shift_circular, shift_zero};

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

/// The transformations, kind name, shift mode and expectation of a
/// `shift`, `rotation` or `flip` entry.
pub fn transforms(
    check: &EquivarianceCheck,
) -> Result<(
    Vec<Transform>,
    &'static str,
    Option<ShiftMode>,
    &Expectation,
)> {
    Ok(match check {
        EquivarianceCheck::Shift(s) => {
            let mut t = Vec::new();
            for &p in &s.pixels {
                let p = p as i64;
                for (dx, dy) in [(p, 0), (-p, 0), (0, p), (0, -p)] {
                    t.push(Transform::Shift {
                        dx,
                        dy,
                        mode: s.mode,
                    });
                }
            }
            (t, "shift", Some(s.mode), &s.expectation)
        }
        EquivarianceCheck::Rotation(r) => (
            r.angles_deg
                .iter()
                .map(|&angle_deg| Transform::Rotate { angle_deg })
                .collect(),
            "rotation",
            None,
            &r.expectation,
        ),
        EquivarianceCheck::Flip(f) => (
            f.axes.iter().map(|&a| Transform::Flip(a)).collect(),
            "flip",
            None,
            &f.expectation,
        ),
        other => {
            return Err(Error::Invalid(format!(
                "not a consistency check: {other:?}"
            )))
        }
    })
}

/// Runs a `shift`, `rotation` or `flip` entry.
pub fn run(
    ctx: &Context,
    name: &str,
    check: &EquivarianceCheck,
    progress: Progress,
) -> Result<Outcome<ConsistencySummary, SampleConsistency>> {
    let (transforms, kind, mode, expectation) = transforms(check)?;
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
            kind: kind.to_string(),
            mode,
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
