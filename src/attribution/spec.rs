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
}

impl Metric {
    /// Names as written in plans (and serialized), in the order computed.
    pub const CHOICES: &'static [(&'static str, Metric)] = &[
        ("deletion", Metric::Deletion),
        ("insertion", Metric::Insertion),
        ("sensitivity", Metric::Sensitivity),
        ("sparseness", Metric::Sparseness),
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
    /// Deletion/insertion: the value of a removed pixel (a number in input
    /// units, or `"black"`, the low end of the model's range; default 0).
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
        if !curves {
            for (key, set) in [
                ("curve_steps", curve_steps.is_some()),
                ("curve_baseline", curve_baseline.is_some()),
            ] {
                if set {
                    e.fail(key, "applies only with the deletion or insertion metric");
                }
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
            curve_baseline: curves.then(|| curve_baseline.unwrap_or(DEFAULT_CURVE_BASELINE)),
            sensitivity_samples: sensitivity
                .then(|| sensitivity_samples.unwrap_or(DEFAULT_SENSITIVITY_SAMPLES)),
            // Unset: 2% of the range width, filled in by the plan's resolve.
            sensitivity_radius: sensitivity_radius.filter(|_| sensitivity),
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
