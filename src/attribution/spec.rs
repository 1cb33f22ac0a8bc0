//! One `[[attribution]]` plan entry: which method with which settings
//! ([`MethodConfig`]), explaining which class, on the clean inputs and on
//! which attacks' adversarials, with which quality metrics. The keys every
//! method shares, their defaults and their reading from an [`Entry`] live
//! here; the method's own keys live in its file. What spans entries (the
//! attacks `on` names, unique names) and what depends on the model is
//! checked by the plan (`plan::attributions`).

use serde::{Deserialize, Serialize};
use toml::Value;

use super::sanity::{SanityConfig, SanityTest, DEFAULT_SANITY_INPUTS, DEFAULT_SANITY_THRESHOLD};
use super::{Attribution, Fill, MethodConfig};
use crate::entry::{unknown, Entry};

/// The class explained by default: each input's prediction.
pub const DEFAULT_TARGET: AttributionTarget = AttributionTarget::Rule(TargetRule::Predicted);

/// Metrics computed when an entry does not list any.
pub const DEFAULT_METRICS: &[Metric] = &[Metric::Deletion, Metric::Insertion, Metric::Sparseness];

/// Which maps get the metrics by default: all of them.
pub const DEFAULT_METRICS_ON: MetricsOn = MetricsOn::All;

/// Share of pixels compared between clean and adversarial maps by default.
pub const DEFAULT_TOP_K_FRACTION: f64 = 0.05;

/// Deletion/insertion: steps from no pixel to all.
pub const DEFAULT_CURVE_STEPS: usize = 20;

/// Deletion/insertion: a removed pixel's value (0 in input units).
pub const DEFAULT_CURVE_BASELINE: Fill = Fill::Value(0.0);

/// Max-sensitivity: perturbation samples (Captum's `sensitivity_max`).
pub const DEFAULT_SENSITIVITY_SAMPLES: usize = 10;

/// Max-sensitivity's radius as a share of the range width (Captum's 0.02
/// on `[0, 1]` inputs).
pub const DEFAULT_SENSITIVITY_RADIUS: f64 = 0.02;

/// ROAD: shares of the pixels removed (the paper's 10% to 90% in steps of 10%).
pub const DEFAULT_ROAD_FRACTIONS: [f64; 9] = super::road::DEFAULT_FRACTIONS;

/// ROAD's imputation noise as a share of the range width (the paper's 0.01
/// on `[0, 1]`).
pub const DEFAULT_ROAD_NOISE: f64 = 0.01;

/// Infidelity: perturbations per input (Captum's `n_perturb_samples`).
pub const DEFAULT_INFIDELITY_SAMPLES: usize = 10;

/// Infidelity's noise standard deviation as a share of the range width:
/// 0.1 on `[0, 1]`, the scale of the MNIST preset's attack budgets (ε 0.1),
/// so infidelity asks about the neighbourhood the attacks probe; Captum's
/// docstring example (0.003) is below one 8-bit grey level.
pub const DEFAULT_INFIDELITY_STDEV: f64 = 0.1;

/// Infidelity: Captum's `normalize` default.
pub const DEFAULT_INFIDELITY_NORMALIZE: bool = false;

/// Faithfulness correlation: random subsets per input (Quantus' `nr_runs`).
pub const DEFAULT_CORRELATION_RUNS: usize = 100;

/// Faithfulness correlation's subset as a share of the pixels (78 of 784 on
/// 28×28): Quantus' 224 pixels are 0.45% of a 224×224 image, which on
/// MNIST would be 3 pixels, too few to move the score above noise; 10% is
/// a tenth of the digit's usual stroke area doubled.
pub const DEFAULT_CORRELATION_SUBSET_FRACTION: f64 = 0.1;

/// Faithfulness correlation's default subset for `pixels` pixels: 10%,
/// rounded, at least 1.
pub fn default_correlation_subset(pixels: usize) -> usize {
    ((DEFAULT_CORRELATION_SUBSET_FRACTION * pixels as f64).round() as usize).clamp(1, pixels.max(1))
}

/// A class-choosing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
// The attack family has a `TargetRule` too: schemas name definitions by type.
#[schemars(rename = "AttributionTargetRule")]
pub enum TargetRule {
    /// The class the model predicts for the input being explained (for an
    /// adversarial input, its adversarial prediction).
    Predicted,
    /// The true label.
    Label,
}

/// Which class's logit a map explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum AttributionTarget {
    /// A fixed class for every input.
    Class(u32),
    /// A rule.
    Rule(TargetRule),
}

/// A quality metric an entry can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Deletion curve: the class probability as the top pixels are removed.
    Deletion,
    /// Insertion curve: the class probability as the top pixels are restored.
    Insertion,
    /// Max-sensitivity: the map's largest change under small input noise.
    Sensitivity,
    /// Gini index of the map.
    Sparseness,
    /// ROAD (Rong et al. 2022): the class probability as the most (MoRF) or
    /// least (LeRF) relevant pixels are removed and filled by noisy linear
    /// imputation.
    Road,
    /// Infidelity (Yeh et al. 2019; Captum's `infidelity`): the mean squared
    /// error of the map's prediction of the score's change under noise.
    Infidelity,
    /// Faithfulness correlation (Bhatt et al. 2020; Quantus'): Pearson
    /// correlation of subset sums with the score's drop when the subset is
    /// removed.
    FaithfulnessCorrelation,
}

impl Metric {
    /// Names as written in plans (and serialized), in the order computed.
    pub const CHOICES: &'static [(&'static str, Metric)] = &[
        ("deletion", Metric::Deletion),
        ("insertion", Metric::Insertion),
        ("sensitivity", Metric::Sensitivity),
        ("sparseness", Metric::Sparseness),
        ("road", Metric::Road),
        ("infidelity", Metric::Infidelity),
        ("faithfulness_correlation", Metric::FaithfulnessCorrelation),
    ];
}

/// Which maps get the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricsOn {
    /// The clean maps and every attack's.
    All,
    /// The clean maps only (the attacks' maps still get the top-k overlap
    /// and Spearman correlation).
    Clean,
}

impl MetricsOn {
    /// Names as written in plans (and serialized).
    pub const CHOICES: &'static [(&'static str, MetricsOn)] =
        &[("all", MetricsOn::All), ("clean", MetricsOn::Clean)];
}

/// One `[[attribution]]` entry, defaults resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttributionSpec {
    /// Unique name: names the tensors (`attr/<name>/clean`, `attr/<name>/<attack>`)
    /// and the report entries.
    pub name: String,
    /// The method (`method`) and its settings.
    #[serde(flatten)]
    pub method: MethodConfig,
    /// The class explained (default: `predicted`).
    #[schemars(extend("default" = DEFAULT_TARGET))]
    pub target: AttributionTarget,
    /// Attacks whose adversarial inputs are explained too, in plan order.
    #[schemars(extend("default" = Vec::<String>::new()))]
    pub on: Vec<String>,
    /// Metrics computed for the maps `metrics_on` selects (default:
    /// deletion, insertion, sparseness).
    #[schemars(extend("default" = DEFAULT_METRICS))]
    pub metrics: Vec<Metric>,
    /// `all` maps (default), or only the `clean` ones.
    #[schemars(extend("default" = DEFAULT_METRICS_ON))]
    pub metrics_on: MetricsOn,
    /// Share of pixels compared between clean and adversarial maps (top-k
    /// overlap), in (0, 1] (default 0.05).
    #[schemars(extend("default" = DEFAULT_TOP_K_FRACTION))]
    pub top_k_fraction: f64,
    /// Deletion/insertion: steps from no pixel to all (default 20; only
    /// with those metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_CURVE_STEPS))]
    pub curve_steps: Option<usize>,
    /// Deletion/insertion and faithfulness correlation: the value of a
    /// removed pixel (a number in input units, or `"black"`, the low end of
    /// the model's range; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = DEFAULT_CURVE_BASELINE))]
    pub curve_baseline: Option<Fill>,
    /// Max-sensitivity: perturbation samples (default 10; only with that
    /// metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_SENSITIVITY_SAMPLES))]
    pub sensitivity_samples: Option<usize>,
    /// Max-sensitivity: L∞ radius of the uniform perturbations, in input
    /// units (default 2% of the model's range width: Captum's 0.02 on
    /// `[0, 1]`, filled in when the plan is resolved against the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "2% of the range's width (0.02 on [0, 1])"}}))]
    pub sensitivity_radius: Option<f64>,
    /// ROAD: shares of the pixels removed, each in (0, 1) (default 0.1,
    /// 0.2, …, 0.9; only with that metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = DEFAULT_ROAD_FRACTIONS))]
    pub road_fractions: Option<Vec<f64>>,
    /// ROAD: standard deviation of the Gaussian noise added to each imputed
    /// value, in input units (default 1% of the model's range width: the
    /// paper's 0.01 on `[0, 1]`, filled in when the plan is resolved
    /// against the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "1% of the range's width (0.01 on [0, 1])"}}))]
    pub road_noise: Option<f64>,
    /// Infidelity: Gaussian perturbations per input (default 10, Captum's
    /// `n_perturb_samples`; only with that metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_INFIDELITY_SAMPLES))]
    pub infidelity_samples: Option<usize>,
    /// Infidelity: standard deviation σ of the perturbations `I ~ N(0, σ²)`
    /// (the input moves to `x − I`, not clipped), in input units (default
    /// 10% of the model's range width, filled in when the plan is resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "10% of the range's width (0.1 on [0, 1])"}}))]
    pub infidelity_stdev: Option<f64>,
    /// Infidelity: rescale the map by Captum's least-squares β first, so the
    /// value ignores the map's scale (default false, as Captum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = DEFAULT_INFIDELITY_NORMALIZE))]
    pub infidelity_normalize: Option<bool>,
    /// Faithfulness correlation: random pixel subsets per input, at least 2
    /// (default 100, Quantus' `nr_runs`; only with that metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2))]
    #[schemars(extend("default" = DEFAULT_CORRELATION_RUNS))]
    pub correlation_runs: Option<usize>,
    /// Faithfulness correlation: pixels per subset (default 10% of the
    /// pixels, 78 on 28×28, filled in when the plan is resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "10% of the pixels (78 on 28×28)"}}))]
    pub correlation_subset: Option<usize>,
    /// Sanity checks of the maps ([`super::sanity`]): any of `cascading`,
    /// `independent`, `random_logit`; none by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("default" = Vec::<SanityTest>::new()))]
    pub sanity: Vec<SanityTest>,
    /// Sanity checks: how many of the first inputs are checked (default 16;
    /// only with `sanity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_SANITY_INPUTS))]
    pub sanity_inputs: Option<usize>,
    /// Sanity checks: the mean Spearman rank correlation of |map| with
    /// every layer re-initialized above which a method survives
    /// randomization and gets a warning, in (0, 1] (default 0.5; only with
    /// `sanity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = DEFAULT_SANITY_THRESHOLD))]
    pub sanity_threshold: Option<f64>,
}

impl AttributionSpec {
    /// Reads an entry's keys but `on` (left empty: it names the plan's
    /// attacks, which the plan reads); `None` when the method or the name
    /// is missing or wrong. Every problem is recorded in the entry.
    pub fn from_entry(e: &mut Entry) -> Option<Self> {
        let method = MethodConfig::from_entry(e);
        let name = e.name(&[]);
        let target = read_target(e);
        let metrics = read_metrics(e);
        let metrics_on = e
            .choice("metrics_on", MetricsOn::CHOICES)
            .unwrap_or(DEFAULT_METRICS_ON);
        let mut top_k_fraction = e
            .positive_float("top_k_fraction")
            .unwrap_or(DEFAULT_TOP_K_FRACTION);
        if top_k_fraction > 1.0 {
            e.fail(
                "top_k_fraction",
                format!("must be in (0, 1], found {top_k_fraction}"),
            );
            top_k_fraction = DEFAULT_TOP_K_FRACTION;
        }

        // Metric settings apply only with their metric.
        let curve_steps = e.positive_int("curve_steps");
        let curve_baseline = Fill::from_entry(e, "curve_baseline");
        let curves = metrics.contains(&Metric::Deletion) || metrics.contains(&Metric::Insertion);
        let correlation = metrics.contains(&Metric::FaithfulnessCorrelation);
        if !curves && curve_steps.is_some() {
            e.fail(
                "curve_steps",
                "applies only with the deletion or insertion metric",
            );
        }
        if !curves && !correlation && curve_baseline.is_some() {
            e.fail(
                "curve_baseline",
                "applies only with the deletion, insertion or faithfulness_correlation metric",
            );
        }
        let road = metrics.contains(&Metric::Road);
        let road_fractions = read_fractions(e);
        let road_noise = e.nonneg_float("road_noise");
        let infidelity = metrics.contains(&Metric::Infidelity);
        let infidelity_samples = e.positive_int("infidelity_samples");
        let infidelity_stdev = e.positive_float("infidelity_stdev");
        let infidelity_normalize = e.boolean("infidelity_normalize");
        let correlation_runs = e.positive_int("correlation_runs");
        if let Some(r @ 0..=1) = correlation_runs {
            e.fail(
                "correlation_runs",
                format!("must be at least 2 (a correlation needs two points), found {r}"),
            );
        }
        let correlation_subset = e.positive_int("correlation_subset");
        for (key, set, metric) in [
            ("road_fractions", road_fractions.is_some() && !road, "road"),
            ("road_noise", road_noise.is_some() && !road, "road"),
            (
                "infidelity_samples",
                infidelity_samples.is_some() && !infidelity,
                "infidelity",
            ),
            (
                "infidelity_stdev",
                infidelity_stdev.is_some() && !infidelity,
                "infidelity",
            ),
            (
                "infidelity_normalize",
                infidelity_normalize.is_some() && !infidelity,
                "infidelity",
            ),
            (
                "correlation_runs",
                correlation_runs.is_some() && !correlation,
                "faithfulness_correlation",
            ),
            (
                "correlation_subset",
                correlation_subset.is_some() && !correlation,
                "faithfulness_correlation",
            ),
        ] {
            if set {
                e.fail(key, format!("applies only with the {metric} metric"));
            }
        }
        let sensitivity_samples = e.positive_int("sensitivity_samples");
        let sensitivity_radius = e.nonneg_float("sensitivity_radius");
        let sensitivity = metrics.contains(&Metric::Sensitivity);
        if !sensitivity {
            for (key, set) in [
                ("sensitivity_samples", sensitivity_samples.is_some()),
                ("sensitivity_radius", sensitivity_radius.is_some()),
            ] {
                if set {
                    e.fail(key, "applies only with the sensitivity metric");
                }
            }
        }
        let sanity = SanityConfig::from_entry(e);
        Some(AttributionSpec {
            name: name?,
            method: method?,
            target,
            on: Vec::new(),
            metrics,
            metrics_on,
            top_k_fraction,
            curve_steps: curves.then(|| curve_steps.unwrap_or(DEFAULT_CURVE_STEPS)),
            curve_baseline: (curves || correlation)
                .then(|| curve_baseline.unwrap_or(DEFAULT_CURVE_BASELINE)),
            sensitivity_samples: sensitivity
                .then(|| sensitivity_samples.unwrap_or(DEFAULT_SENSITIVITY_SAMPLES)),
            // Unset: 2% of the range width, filled in by the plan's resolve.
            sensitivity_radius: sensitivity_radius.filter(|_| sensitivity),
            road_fractions: road
                .then(|| road_fractions.unwrap_or_else(|| DEFAULT_ROAD_FRACTIONS.to_vec())),
            // Unset noise, stdev and subset follow the model: the plan's resolve.
            road_noise: road_noise.filter(|_| road),
            infidelity_samples: infidelity
                .then(|| infidelity_samples.unwrap_or(DEFAULT_INFIDELITY_SAMPLES)),
            infidelity_stdev: infidelity_stdev.filter(|_| infidelity),
            infidelity_normalize: infidelity
                .then(|| infidelity_normalize.unwrap_or(DEFAULT_INFIDELITY_NORMALIZE)),
            correlation_runs: correlation
                .then(|| correlation_runs.unwrap_or(DEFAULT_CORRELATION_RUNS).max(2)),
            correlation_subset: correlation_subset.filter(|_| correlation),
            sanity_inputs: sanity.as_ref().map(|c| c.inputs),
            sanity_threshold: sanity.as_ref().map(|c| c.threshold),
            sanity: sanity.map(|c| c.tests).unwrap_or_default(),
        })
    }

    /// The sanity checks' settings, when the entry asks for any.
    pub fn sanity_config(&self) -> Option<SanityConfig> {
        (!self.sanity.is_empty()).then(|| SanityConfig {
            tests: self.sanity.clone(),
            inputs: self.sanity_inputs.unwrap_or(DEFAULT_SANITY_INPUTS),
            threshold: self.sanity_threshold.unwrap_or(DEFAULT_SANITY_THRESHOLD),
        })
    }

    /// Whether the entry computes `metric` (on the clean maps at least).
    pub fn wants(&self, metric: Metric) -> bool {
        self.metrics.contains(&metric)
    }

    /// Whether the entry computes `metric` on the maps of `variant`
    /// (`clean` or an attack).
    pub fn wants_on(&self, metric: Metric, variant: &str) -> bool {
        self.wants(metric) && (variant == "clean" || self.metrics_on == MetricsOn::All)
    }

    /// The runnable method for inputs of `input_hw` (height, width).
    pub fn build(&self, input_hw: (usize, usize)) -> Box<dyn Attribution> {
        self.method.build(input_hw)
    }

    /// `predicted`, `label` or the class index.
    pub fn target_label(&self) -> String {
        match self.target {
            AttributionTarget::Class(c) => c.to_string(),
            AttributionTarget::Rule(TargetRule::Predicted) => "predicted".into(),
            AttributionTarget::Rule(TargetRule::Label) => "label".into(),
        }
    }
}

/// `target`: `"predicted"`, `"label"` or a class index.
fn read_target(e: &mut Entry) -> AttributionTarget {
    match e.take("target") {
        None => DEFAULT_TARGET,
        Some(Value::String(s)) if s == "predicted" => {
            AttributionTarget::Rule(TargetRule::Predicted)
        }
        Some(Value::String(s)) if s == "label" => AttributionTarget::Rule(TargetRule::Label),
        Some(Value::Integer(c)) if (0..=u32::MAX as i64).contains(&c) => {
            AttributionTarget::Class(c as u32)
        }
        Some(other) => {
            e.fail(
                "target",
                format!("must be \"predicted\", \"label\" or a class index, found {other}"),
            );
            DEFAULT_TARGET
        }
    }
}

/// `road_fractions`: a non-empty list of numbers in (0, 1), none twice,
/// kept in increasing order.
fn read_fractions(e: &mut Entry) -> Option<Vec<f64>> {
    let mut list = e.floats_in("road_fractions", 0.0, 1.0)?;
    if let Some(bad) = list.iter().find(|&&f| f <= 0.0 || f >= 1.0) {
        e.fail(
            "road_fractions",
            format!("each share must lie strictly between 0 and 1, found {bad}"),
        );
        return None;
    }
    list.sort_by(f64::total_cmp);
    Some(list)
}

/// `metrics`: known names, possibly none; kept in the order computed,
/// without duplicates.
fn read_metrics(e: &mut Entry) -> Vec<Metric> {
    let Some(list) = e.strings("metrics") else {
        return DEFAULT_METRICS.to_vec();
    };
    let names: Vec<&str> = Metric::CHOICES.iter().map(|(n, _)| *n).collect();
    for m in &list {
        if !names.contains(&m.as_str()) {
            e.fail("metrics", unknown(m, "metric", &names));
        }
    }
    Metric::CHOICES
        .iter()
        .filter(|(n, _)| list.iter().any(|l| l == n))
        .map(|(_, m)| *m)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::attribution::gradcam::Upsample;
    use crate::attribution::integrated_gradients::BaselineKind;
    use crate::attribution::smoothgrad::NoiseTunnelType;

    fn same_names<T: Serialize>(choices: &[(&str, T)]) {
        for (name, value) in choices {
            assert_eq!(serde_json::to_value(value).unwrap(), *name);
        }
    }

    /// Plans and reports spell every setting the same way.
    #[test]
    fn plan_names_are_the_serialized_forms() {
        same_names(Metric::CHOICES);
        same_names(MetricsOn::CHOICES);
        same_names(BaselineKind::CHOICES);
        same_names(NoiseTunnelType::CHOICES);
        same_names(Upsample::CHOICES);
        same_names(crate::attribution::surrogate::SegmentKind::CHOICES);
    }
}
