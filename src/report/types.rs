//! The report's types. This is a public format: CI jobs, notebooks and the
//! terminal UI read it, `reports/schema.json` is generated from these types
//! (a test fails when they drift), and every change bumps
//! [`SCHEMA_VERSION`]. Field names follow RobustBench's where it has one
//! (`clean_accuracy`, `robust_accuracy`, `attack_success_rate`, `eps`, `norm`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::attack::Norm;
use crate::plan::Plan;

/// The report format version this build writes and reads.
///
/// 2 added `data.subset` and lets the plan's `curve_baseline` and
/// `baseline_value` be `"black"`; version 1 reports, which have neither,
/// read as they are.
///
/// 3 writes the plan from the typed per-method configs: a spatial attack
/// entry no longer carries the `norm` and `eps` it never used, an
/// attribution entry writes its method's settings right after `method`,
/// and `model.spec_source` reads `file PATH` for a spec given as a file.
/// Version 1 and 2 reports read as they are (the extra keys are ignored).
///
/// 4 adds `tool.engine` (`fast` or `reference`: which engine ran the model);
/// older reports read without it.
///
/// 5 adds `plan_origin` (the plan file, or the built-in preset and why it
/// was chosen), `summary.threat_models` (robust accuracy per norm and ε,
/// over every attack at that budget), for minimum-norm attacks
/// `summary.attacks[].distance` (distance quantiles), and the logit margins
/// of each input (`samples[].margin`, and `margin` and
/// `true_class_probability` per attack), which the terminal UI sorts by;
/// older reports read without them.
///
/// 6 adds the L1 threat model: `norm` may be `"l1"`, and every attack's
/// perturbations are measured in L1 as well (`perturbation_l1` per input,
/// `mean_perturbation_l1` and `median_perturbation_l1` per attack); older
/// reports read without them.
///
/// 7 adds the attribution sanity checks (`attributions.summaries[].sanity`:
/// cascading and independent model-parameter randomization, the
/// random-logit test, the edge-detector reference) and the sanity flag
/// `attribution_survives_randomization`; older reports read without them.
///
/// 8 adds the faithfulness metrics ROAD, infidelity and faithfulness
/// correlation (per map `road_morf_auc`, `road_lerf_auc`, `road_gap`,
/// `infidelity`, `faithfulness_correlation`; their means, ROAD's mean
/// curves and kept shares in the summaries); older reports read without
/// them.
///
/// 9 adds each checked input's own sanity results
/// (`attributions.summaries[].sanity.per_input`, `per_input[i]` for
/// `samples[i]`), which the terminal UI shows for the selected input; older
/// reports read without them.
///
/// 10 adds the max-softmax histograms of the noise entries
/// (`stress.noise[].data_confidence_histogram`,
/// `families[].confidence_histogram`), which the HTML page draws; older
/// reports read without them.
///
/// 11 adds, to a report merged from shards, each shard's time, inputs and
/// machine and a load-balance note (`timings.shards`); older reports, and
/// reports of unsharded runs, read without it.
pub const SCHEMA_VERSION: u32 = 11;

/// The oldest report format version this build still reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// A complete audit report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Format version; readers refuse newer versions with an explanation.
    pub schema_version: u32,
    /// What wrote the report.
    pub tool: Tool,
    /// The audited model.
    pub model: ModelInfo,
    /// The inputs.
    pub data: DataInfo,
    /// The plan as run, defaults resolved, with the seed.
    pub plan: Plan,
    /// Where the plan came from (absent in reports before schema 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_origin: Option<PlanOrigin>,
    /// Wall-clock timings (the only fields that differ between identical runs).
    pub timings: Timings,
    /// Aggregate results.
    pub summary: Summary,
    /// One record per input, in data order.
    pub samples: Vec<SampleRecord>,
    /// Problems noticed while auditing, one sentence each.
    pub warnings: Vec<String>,
    /// File name of the tensor sidecar, relative to the report.
    pub tensors: Option<String>,
}

/// The tool that wrote the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    /// Always `xai-audit`.
    pub name: String,
    /// Crate version.
    pub version: String,
    /// The engine that ran the model: `fast`, `fast-im2col` or `reference` (absent in
    /// reports before schema 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// The audited model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// Path as given on the command line.
    pub path: String,
    /// SHA-256 of the safetensors file.
    pub sha256: String,
    /// Where the architecture spec came from.
    pub spec_source: String,
    /// The architecture spec (see `docs/arch-spec.md`).
    pub spec: serde_json::Value,
    /// Parameters, running statistics included.
    pub parameter_count: usize,
    /// Class names, index = class.
    pub class_names: Vec<String>,
}

impl ModelInfo {
    /// The valid input range `(lo, hi)` the spec declares (`input.range`;
    /// `[0, 1]` when it declares none), the units of every ε.
    pub fn input_range(&self) -> (f64, f64) {
        let range = self.spec.pointer("/input/range").and_then(|r| {
            let lo = r.get(0)?.as_f64()?;
            let hi = r.get(1)?.as_f64()?;
            Some((lo, hi))
        });
        range.unwrap_or((0.0, 1.0))
    }
}

/// The inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataInfo {
    /// Where they came from.
    pub source: String,
    /// How many were audited.
    pub count: usize,
    /// SHA-256 of the files read.
    pub sha256: String,
    /// `[C, H, W]` of one input.
    pub input_shape: [usize; 3],
    /// How the inputs were drawn from the source: `all M in file order` or
    /// `first N of M in file order` (IDX files, whose order is kept), `all M`
    /// or `class-stratified N of M` (image folders: every class in
    /// proportion). Absent in reports written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
}

/// Wall-clock timings in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timings {
    /// UTC start, RFC 3339.
    pub started_at: String,
    /// Whole run.
    pub total_seconds: f64,
    /// Clean predictions.
    pub clean_seconds: f64,
    /// Per attack, in plan order.
    pub attacks: Vec<AttackTiming>,
    /// Per `[[stress]]` entry, in plan order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stress: Vec<crate::stress::types::CheckTiming>,
    /// Per `[[equivariance]]` entry, in plan order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equivariance: Vec<crate::stress::types::CheckTiming>,
    /// Per attribution entry, in plan order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributions: Vec<crate::attribution::report::AttributionTiming>,
    /// For a report merged from shards: how long each shard took (absent
    /// for a single run, and before schema 11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardTimings>,
}

/// How the shards of a merged run shared the attacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShardTimings {
    /// The shard count, N.
    pub count: usize,
    /// One entry per shard, by index.
    pub shards: Vec<ShardTiming>,
    /// The slowest shard's index, among those that held a batch.
    pub slowest: usize,
    /// The fastest shard's index, among those that held a batch.
    pub fastest: usize,
    /// The slowest shard's seconds over the fastest's (1: evenly balanced;
    /// absent when the fastest took no measurable time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowest_over_fastest: Option<f64>,
    /// One line on the balance: which shard was slowest and fastest, and by
    /// how much.
    pub load_balance: String,
}

/// One shard's share of a merged run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShardTiming {
    /// `K`, 1-based.
    pub index: usize,
    /// Wall-clock seconds its batches took (the clean pass and attacks of
    /// each; loading the model and data not counted).
    pub seconds: f64,
    /// Inputs it attacked.
    pub inputs: usize,
    /// Batches it held.
    pub batches: usize,
    /// The machine or machines it ran on (`HOSTNAME`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One attack's time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttackTiming {
    /// Attack name.
    pub name: String,
    /// Seconds spent.
    pub seconds: f64,
}

/// Aggregate results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Inputs audited.
    pub count: usize,
    /// Share of inputs classified correctly.
    pub clean_accuracy: f64,
    /// One entry per attack, in plan order.
    pub attacks: Vec<AttackSummary>,
    /// Robust accuracy against ε for entries with an ε list.
    pub eps_curves: Vec<EpsCurve>,
    /// One entry per threat model (norm, ε) the plan attacks at, in plan
    /// order: the robust accuracy against every attack at that budget
    /// together (absent before schema 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threat_models: Vec<ThreatModelSummary>,
    /// Sanity checks that fired (empty when all passed).
    pub sanity: Vec<SanityFlag>,
    /// Extrapolation stress tests (`[[stress]]` entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress: Option<crate::stress::types::StressSummary>,
    /// Equivariance checks (`[[equivariance]]` entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equivariance: Option<crate::stress::types::EquivarianceSummary>,
    /// One entry per attribution entry of the plan, in plan order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributions: Vec<crate::attribution::report::AttributionSummary>,
}

/// One attack's aggregate results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttackSummary {
    /// Attack name (unique in the plan).
    pub name: String,
    /// `fgsm` or `pgd`.
    pub kind: String,
    /// Budget norm.
    pub norm: Norm,
    /// Budget (`null` for a minimum-norm attack without one).
    pub eps: Option<f64>,
    /// For entries expanded from an ε list: the curve they belong to.
    pub curve: Option<String>,
    /// Target rule or class for targeted attacks.
    pub target: Option<String>,
    /// Share of all inputs still classified correctly at the best adversarial
    /// found (misclassified clean inputs count as not robust).
    pub robust_accuracy: f64,
    /// Share of the correctly classified inputs the attack broke (untargeted:
    /// misclassified; targeted: classified as the target).
    pub attack_success_rate: f64,
    /// Inputs the attack succeeded on.
    pub successes: usize,
    /// Mean L∞ norm of the perturbation over successes (null when none).
    pub mean_perturbation_linf: Option<f64>,
    /// Median L∞ norm over successes.
    pub median_perturbation_linf: Option<f64>,
    /// Mean L2 norm over successes.
    pub mean_perturbation_l2: Option<f64>,
    /// Median L2 norm over successes.
    pub median_perturbation_l2: Option<f64>,
    /// Mean L1 norm over successes (absent before schema 6).
    #[serde(default)]
    pub mean_perturbation_l1: Option<f64>,
    /// Median L1 norm over successes (absent before schema 6).
    #[serde(default)]
    pub median_perturbation_l1: Option<f64>,
    /// Model calls per input: gradient evaluations, or queries for Square.
    pub gradient_evaluations: usize,
    /// For a minimum-norm attack (FMN): each correctly classified input's
    /// distance to the decision boundary, summarised. Absent for other
    /// attacks and before schema 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<DistanceSummary>,
}

/// A minimum-norm attack's distances: the smallest adversarial perturbation
/// it found per correctly classified input, in its norm and the model's
/// input units. An input it did not break (none found, or none within the
/// entry's ε, beyond which it keeps no point) counts as infinitely far, so
/// a quantile that falls among those is `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DistanceSummary {
    /// Inputs classified correctly: the population of the statistics.
    pub inputs: usize,
    /// Of those, the inputs the attack broke (within ε when it has one).
    pub broken: usize,
    /// 25th percentile of the distance (linear interpolation between order
    /// statistics, numpy's default).
    pub percentile_25: Option<f64>,
    /// Median distance.
    pub median: Option<f64>,
    /// 75th percentile of the distance.
    pub percentile_75: Option<f64>,
    /// `broken / inputs` when the entry has an ε: the share of the
    /// correctly classified inputs broken within it (`null` without one).
    pub broken_within_eps: Option<f64>,
}

/// The robust accuracy at one threat model: an input counts as robust only
/// if it is classified correctly and no attack at this norm and ε broke it
/// (the worst case per input, as AutoAttack counts it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreatModelSummary {
    /// Budget norm.
    pub norm: Norm,
    /// Budget, in the model's input units.
    pub eps: f64,
    /// The attacks at this budget, by name, in plan order.
    pub attacks: Vec<String>,
    /// Inputs classified correctly that none of them broke.
    pub robust: usize,
    /// `robust` over all inputs.
    pub robust_accuracy: f64,
}

/// Robust accuracy against ε for one plan entry with an ε list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EpsCurve {
    /// The entry's name (its points are the attacks `name@ε`).
    pub name: String,
    /// Budget norm.
    pub norm: Norm,
    /// `(ε, robust accuracy)`, in the plan's order.
    pub points: Vec<EpsPoint>,
}

/// One point of an ε curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EpsPoint {
    /// Budget.
    pub eps: f64,
    /// Robust accuracy at that budget.
    pub robust_accuracy: f64,
}

/// A sanity check that fired: the numbers may overstate robustness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SanityFlag {
    /// Which check (`zero_gradients`, `softmax_outputs`, `eps_zero_not_clean`,
    /// `batch_size_dependence`, `randomized_model`, `black_box_beats_white_box`,
    /// `perturbation_outside_budget`, `attribution_survives_randomization`).
    pub check: String,
    /// One line saying what was seen and what it may mean.
    pub message: String,
}

/// A class and its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassProbability {
    /// Class index.
    pub class: u32,
    /// Softmax probability.
    pub probability: f64,
}

/// One input's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleRecord {
    /// Position in the data.
    pub index: usize,
    /// True class.
    pub label: u32,
    /// Clean predicted class.
    pub prediction: u32,
    /// Clean top-5 classes, most probable first.
    pub top5: Vec<ClassProbability>,
    /// One entry per attack, in plan order.
    pub attacks: Vec<SampleAttack>,
    /// This input's stress results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress: Option<crate::stress::types::SampleStress>,
    /// This input's equivariance results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equivariance: Option<crate::stress::types::SampleEquivariance>,
    /// One entry per attribution entry of the plan, in plan order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributions: Vec<crate::attribution::report::SampleAttribution>,
    /// Logit margin of the true class on the clean input,
    /// `z_y − max_{j≠y} z_j` (negative when misclassified); absent before
    /// version 5 and for non-finite logits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
}

/// One input under one attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleAttack {
    /// Attack name.
    pub name: String,
    /// Predicted class at the best adversarial found.
    pub prediction: u32,
    /// Top-5 classes there.
    pub top5: Vec<ClassProbability>,
    /// Target class, for targeted attacks.
    pub target: Option<u32>,
    /// Whether the attack reached its goal.
    pub success: bool,
    /// L∞ norm of the perturbation.
    pub perturbation_linf: f64,
    /// L2 norm of the perturbation.
    pub perturbation_l2: f64,
    /// L1 norm of the perturbation; absent before version 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perturbation_l1: Option<f64>,
    /// Softmax probability of the true class at the best adversarial found
    /// (the top-5 may not hold it); absent before version 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_class_probability: Option<f64>,
    /// Logit margin of the true class there, `z_y − max_{j≠y} z_j`
    /// (negative when the input is misclassified); absent before version 5
    /// and for non-finite logits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
}

/// Where a report's plan came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanOrigin {
    /// A built-in preset by name (`mnist`, `cifar`, `imagenet`), absent for
    /// a plan file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// The plan file as given, or the file the preset is compiled from.
    pub file: String,
    /// Why this plan: given on the command line, asked for by name, or what
    /// the automatic choice saw in the model's input.
    pub reason: String,
}
