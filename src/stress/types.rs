//! The report's stress and equivariance sections: `summary.stress`,
//! `summary.equivariance`, `samples[i].stress`, `samples[i].equivariance` and
//! the per-check timings. Part of the public report format (see
//! `reports/schema.json`); every list is in plan order, and per-input lists
//! are aligned with the transform lists of their summary entry so that each
//! input stores only predictions and confidences.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::alpha_scaling::AlphaInputs;
use super::calibration::ReliabilityBin;
use super::consistency::ShiftMode;
use super::corruptions::Corruption;
use super::lie_derivative::{LieMethod, LieTransform};
use super::noise::NoiseFamily;

/// Bins of the noise entries' max-softmax histograms.
pub const CONFIDENCE_BINS: usize = 10;

/// Counts of `confidences` (in [0, 1]) in [`CONFIDENCE_BINS`] equal-width
/// bins, the last one closed so that a confidence of 1 is counted.
pub fn confidence_histogram(confidences: impl IntoIterator<Item = f64>) -> Vec<usize> {
    let mut counts = vec![0usize; CONFIDENCE_BINS];
    for p in confidences {
        let bin = ((p * CONFIDENCE_BINS as f64).floor().max(0.0) as usize).min(CONFIDENCE_BINS - 1);
        counts[bin] += 1;
    }
    counts
}

/// Aggregate results of the `[[stress]]` entries, by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StressSummary {
    /// `kind = "alpha_scaling"` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpha_scaling: Vec<AlphaScalingSummary>,
    /// `kind = "noise"` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noise: Vec<NoiseSummary>,
    /// `kind = "calibration"` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibration: Vec<CalibrationSummary>,
    /// `kind = "corruptions"` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corruptions: Vec<CorruptionsSummary>,
}

/// α-scaling: confidence on `α·x` (Hein et al., CVPR 2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlphaScalingSummary {
    /// Entry name.
    pub name: String,
    /// The confidence whose smallest α is reported.
    pub target_confidence: f64,
    /// One entry per input set.
    pub sets: Vec<AlphaSetSummary>,
}

/// α-scaling on one input set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlphaSetSummary {
    /// Uniform noise or the data.
    pub inputs: AlphaInputs,
    /// Inputs scaled.
    pub count: usize,
    /// Share of inputs reaching the target confidence at some α of the grid.
    pub reached_share: f64,
    /// Median over inputs of the smallest α ≥ 1 reaching the target (inputs
    /// that never reach it count as +∞; null when half or more never do).
    pub median_alpha: Option<f64>,
    /// Quantiles of that α over inputs (null where the quantile is +∞).
    pub alpha_quantiles: Vec<Quantile>,
    /// Mean max-softmax against α.
    pub curve: Vec<AlphaPoint>,
}

/// A quantile of the smallest α.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantile {
    /// The level, in (0, 1).
    pub level: f64,
    /// The α at that level (null: not reached by that share of inputs).
    pub alpha: Option<f64>,
}

/// Confidence at one α.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlphaPoint {
    /// The scale factor.
    pub alpha: f64,
    /// Mean max-softmax of `α·x`.
    pub mmc_scaled: f64,
    /// Share of `α·x` at or above the target confidence.
    pub share_above_target_scaled: f64,
    /// Mean max-softmax of `α·x` clipped to the valid range.
    pub mmc_clipped: f64,
    /// Share of clipped inputs at or above 0.95 confidence.
    pub share_above_0_95_clipped: f64,
}

/// Noise families as out-of-distribution inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoiseSummary {
    /// Entry name.
    pub name: String,
    /// Mean max-softmax on the data (the in-distribution side).
    pub data_mmc: f64,
    /// Max-softmax histogram of the data: counts in
    /// [`CONFIDENCE_BINS`] equal-width bins over [0, 1], the last closed
    /// (empty in reports before schema version 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_confidence_histogram: Vec<usize>,
    /// One entry per family.
    pub families: Vec<NoiseFamilySummary>,
}

/// One noise family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoiseFamilySummary {
    /// The family.
    pub family: NoiseFamily,
    /// Inputs generated.
    pub count: usize,
    /// Mean max-softmax.
    pub mmc: f64,
    /// Share with max-softmax ≥ 0.95.
    pub share_above_0_95: f64,
    /// Share with max-softmax ≥ 0.99.
    pub share_above_0_99: f64,
    /// Max-softmax histogram: counts in [`CONFIDENCE_BINS`] equal-width
    /// bins over [0, 1], the last closed (empty before schema version 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confidence_histogram: Vec<usize>,
    /// AUROC of max-softmax separating the data (positive) from this family.
    pub auroc: f64,
    /// Share of this family at or above the max-softmax that 95% of the data reach.
    pub fpr_at_95_tpr: f64,
    /// Predicted class counts, index = class.
    pub class_histogram: Vec<usize>,
    /// The most predicted class.
    pub top_class: u32,
    /// Its share.
    pub top_class_share: f64,
    /// Whether the predictions collapse onto one class (top share ≥ 0.5).
    pub collapsed: bool,
    /// Confidently (≥ 0.95) classified inputs kept in the sidecar as
    /// `stress/<name>/<family>`, in generation order.
    pub examples: Vec<Example>,
}

/// One generated or transformed input kept in the sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// Position in the data (or in the generated family).
    pub index: usize,
    /// The transformation, for transformed inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    /// Predicted class.
    pub prediction: u32,
    /// Its softmax probability.
    pub confidence: f32,
}

/// Calibration on the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalibrationSummary {
    /// Entry name.
    pub name: String,
    /// Expected calibration error over equal-width max-softmax bins.
    pub ece: f64,
    /// Largest gap between accuracy and confidence over non-empty bins.
    pub mce: f64,
    /// Clean accuracy.
    pub accuracy: f64,
    /// Mean max-softmax.
    pub mean_confidence: f64,
    /// The reliability table, lowest bin first.
    pub reliability: Vec<ReliabilityBin>,
}

/// Accuracy under corruptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorruptionsSummary {
    /// Entry name.
    pub name: String,
    /// Accuracy on the clean data.
    pub clean_accuracy: f64,
    /// The severities, in column order.
    pub severities: Vec<usize>,
    /// Mean accuracy over every corruption and severity.
    pub mean_accuracy: f64,
    /// One entry per corruption; input 0 at each severity is in the sidecar
    /// as `stress/<name>/<corruption>`.
    pub corruptions: Vec<CorruptionSummary>,
}

/// One corruption's accuracy by severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorruptionSummary {
    /// The corruption.
    pub corruption: Corruption,
    /// What its parameter is (`sigma`, `quality`, …).
    pub parameter: String,
    /// The parameter per severity (pixel lengths for a 28-pixel image).
    pub parameters: Vec<f64>,
    /// Accuracy per severity.
    pub accuracy: Vec<f64>,
    /// Mean over severities.
    pub mean_accuracy: f64,
}

/// Aggregate results of the `[[equivariance]]` entries, by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EquivarianceSummary {
    /// `shift`, `rotation` and `flip` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<ConsistencySummary>,
    /// `lie_derivative` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lie_derivative: Vec<LieDerivativeSummary>,
    /// `worst_case` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worst_case: Vec<WorstCaseSummary>,
}

/// Prediction consistency under a set of transformations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsistencySummary {
    /// Entry name.
    pub name: String,
    /// `shift`, `rotation` or `flip`.
    pub kind: String,
    /// Edge handling, for shifts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ShiftMode>,
    /// Whether predictions are expected to stay the same.
    pub expect_invariant: bool,
    /// Mean consistency over the transformations.
    pub mean_consistency: f64,
    /// The lowest consistency of one transformation.
    pub lowest_consistency: f64,
    /// One entry per transformation; per-input records follow this order.
    pub transforms: Vec<TransformSummary>,
    /// Inputs whose outcome goes against the expectation (a changed
    /// prediction when invariance is expected, an unchanged one otherwise),
    /// the first in data order, each under its first such transformation;
    /// the images are `equivariance/<name>` in the sidecar.
    pub examples: Vec<Example>,
}

/// One transformation's results over the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformSummary {
    /// The transformation, e.g. `dx=+2`, `angle=-15`, `flip=horizontal`.
    pub transform: String,
    /// Share of inputs whose prediction equals the clean prediction.
    pub consistency: f64,
    /// Accuracy on the transformed inputs.
    pub accuracy: f64,
    /// Mean max-softmax on the transformed inputs.
    pub mean_confidence: f64,
}

/// Lie derivatives of the softmax (Gruver et al., ICLR 2023).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LieDerivativeSummary {
    /// Entry name.
    pub name: String,
    /// Exact (Jacobian–vector product) or central finite difference.
    pub method: LieMethod,
    /// Edge handling of translations.
    pub border: ShiftMode,
    /// One entry per transformation; per-input values follow this order.
    pub transforms: Vec<LieTransformSummary>,
}

/// One transformation's Lie derivative over the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LieTransformSummary {
    /// The transformation.
    pub transform: LieTransform,
    /// `per_px` for translations, `per_rad` for rotations.
    pub unit: String,
    /// The finite-difference step in `unit`'s quantity (null for exact).
    pub step: Option<f64>,
    /// Mean over inputs of the per-input mean over classes of |d softmax/dt|.
    pub mean: f64,
    /// Median over inputs.
    pub median: f64,
    /// Largest over inputs.
    pub max: f64,
}

/// Worst case over a grid of rotations and translations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorstCaseSummary {
    /// Entry name.
    pub name: String,
    /// Grid points per input (the identity included when the grid has it).
    pub grid_size: usize,
    /// Clean accuracy.
    pub clean_accuracy: f64,
    /// Share of inputs classified correctly at every grid point.
    pub worst_case_accuracy: f64,
    /// Mean over inputs of the lowest true-class probability on the grid.
    pub mean_worst_true_class_probability: f64,
    /// Inputs correct when clean but broken on the grid, the first in data
    /// order, at their worst transformation (`equivariance/<name>`).
    pub examples: Vec<Example>,
}

/// One input's stress results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleStress {
    /// α-scaling of this input, per entry that scales the data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpha_scaling: Vec<SampleAlpha>,
    /// Corruptions of this input, per entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corruptions: Vec<SampleCorruptions>,
}

/// One input's smallest α.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleAlpha {
    /// Entry name.
    pub name: String,
    /// Smallest α ≥ 1 reaching the target confidence (null: not on the grid).
    pub alpha: Option<f64>,
}

/// How many corrupted versions of one input are misclassified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleCorruptions {
    /// Entry name.
    pub name: String,
    /// Corrupted versions misclassified.
    pub misclassified: usize,
    /// Corrupted versions in all (corruptions × severities).
    pub total: usize,
}

/// One input's equivariance results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleEquivariance {
    /// Per consistency entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<SampleConsistency>,
    /// Per Lie-derivative entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lie_derivative: Vec<SampleLieDerivative>,
    /// Per worst-case entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worst_case: Vec<SampleWorstCase>,
}

/// One input under each transformation of a consistency entry (the clean
/// prediction and confidence are the record's own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleConsistency {
    /// Entry name.
    pub name: String,
    /// Predicted class per transformation, in the summary's order.
    pub predictions: Vec<u32>,
    /// Softmax probability of that class per transformation.
    pub confidences: Vec<f32>,
}

/// One input's Lie derivatives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleLieDerivative {
    /// Entry name.
    pub name: String,
    /// Mean over classes of |d softmax/dt| per transformation, in the summary's order.
    pub values: Vec<f32>,
}

/// One input's worst grid point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleWorstCase {
    /// Entry name.
    pub name: String,
    /// The worst transformation: the misclassifying one with the lowest
    /// true-class probability, else the lowest true-class probability.
    pub transform: String,
    /// Predicted class there.
    pub prediction: u32,
    /// Its softmax probability.
    pub confidence: f32,
    /// Softmax probability of the true class there.
    pub true_class_probability: f32,
}

/// Seconds one check took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckTiming {
    /// Entry name.
    pub name: String,
    /// Seconds spent.
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_bins_are_half_open_but_the_last() {
        let h = confidence_histogram([0.0, 0.0999, 0.1, 0.55, 0.95, 0.999, 1.0]);
        assert_eq!(h, [2, 1, 0, 0, 0, 1, 0, 0, 0, 3]);
        assert_eq!(h.iter().sum::<usize>(), 7);
    }
}
