//! The input list's contents: which inputs are shown (the filter) and in
//! which order (the sort key and direction). Each key is a function of one
//! record so that the views and the tests compute the same quantity.

use crate::attack::Norm;
use crate::report::types::{ClassProbability, Report, SampleRecord};
use crate::stats::mean;

/// Which inputs the list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Every input.
    All,
    /// Inputs classified correctly and broken by the selected attack.
    BrokenBySelected,
    /// Inputs classified correctly and broken by at least one attack.
    BrokenByAny,
    /// Inputs misclassified before any attack.
    Misclassified,
}

impl Filter {
    /// The next filter of the `f` key's cycle.
    pub fn next(self) -> Filter {
        match self {
            Filter::All => Filter::BrokenBySelected,
            Filter::BrokenBySelected => Filter::BrokenByAny,
            Filter::BrokenByAny => Filter::Misclassified,
            Filter::Misclassified => Filter::All,
        }
    }

    /// A short label for the status line.
    pub fn label(self) -> &'static str {
        match self {
            Filter::All => "all",
            Filter::BrokenBySelected => "broken by this attack",
            Filter::BrokenByAny => "broken by any attack",
            Filter::Misclassified => "misclassified",
        }
    }
}

/// The list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Data order.
    Index,
    /// Clean confidence (probability of the predicted class), lowest first.
    Confidence,
    /// Probability of the true class after the selected attack, lowest
    /// first: the inputs the attack hurt most.
    TrueClassAfterAttack,
    /// Size of the selected attack's perturbation in its own norm (L∞ or
    /// L2), smallest first: the cheapest breaks. Only inputs the attack
    /// broke have one; the others follow in data order.
    PerturbationNorm,
    /// Clean logit margin minus the margin after the selected attack,
    /// largest first.
    MarginDrop,
    /// How far the selected attack moved the selected method's map
    /// (`1 − top-k overlap`), largest first.
    AttributionShift,
    /// Mean Lie derivative over the report's transformations, largest first.
    LieDerivative,
}

impl SortKey {
    /// Every key, in the order of the `s` key's cycle.
    pub const ALL: [SortKey; 7] = [
        SortKey::Index,
        SortKey::Confidence,
        SortKey::TrueClassAfterAttack,
        SortKey::PerturbationNorm,
        SortKey::MarginDrop,
        SortKey::AttributionShift,
        SortKey::LieDerivative,
    ];

    /// The next key of the `s` key's cycle, whether or not the report has
    /// data for it (see [`SortKey::unavailable`]).
    pub fn next(self) -> SortKey {
        let position = SortKey::ALL.iter().position(|&k| k == self).unwrap_or(0);
        SortKey::ALL[(position + 1) % SortKey::ALL.len()]
    }

    /// A short label for the status line.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Index => "index",
            SortKey::Confidence => "confidence",
            SortKey::TrueClassAfterAttack => "true class after attack",
            SortKey::PerturbationNorm => "perturbation norm",
            SortKey::MarginDrop => "margin drop",
            SortKey::AttributionShift => "attribution shift",
            SortKey::LieDerivative => "Lie derivative",
        }
    }

    /// What the key orders by, in its natural order, for the help overlay.
    pub fn description(self) -> &'static str {
        match self {
            SortKey::Index => "data order",
            SortKey::Confidence => "clean confidence, lowest first",
            SortKey::TrueClassAfterAttack => {
                "probability of the true class after the attack, lowest first"
            }
            SortKey::PerturbationNorm => "the attack's ‖δ‖ (its own norm), smallest break first",
            SortKey::MarginDrop => "logit margin z_y − max z_j lost to the attack, largest first",
            SortKey::AttributionShift => "1 − top-k overlap of the method's map, largest first",
            SortKey::LieDerivative => "mean Lie derivative, largest first",
        }
    }

    /// Whether the order depends on the selected attack.
    pub fn uses_attack(self) -> bool {
        matches!(
            self,
            SortKey::TrueClassAfterAttack
                | SortKey::PerturbationNorm
                | SortKey::MarginDrop
                | SortKey::AttributionShift
        )
    }

    /// Whether the key's natural order (the one worth looking at first) is
    /// descending.
    pub fn descending_by_default(self) -> bool {
        matches!(
            self,
            SortKey::MarginDrop | SortKey::AttributionShift | SortKey::LieDerivative
        )
    }

    /// Why `report` gives this key nothing to sort by under the selected
    /// attack and method (positions and name as in [`ListQuery`]), or
    /// `None` when it does. A key is also unavailable when only some inputs
    /// have its value and the missing ones would be among the first shown
    /// (a true class outside an old report's top-5 is a class the attack
    /// pushed far down).
    pub fn unavailable(
        self,
        report: &Report,
        attack: Option<usize>,
        method: Option<&str>,
    ) -> Option<String> {
        let selected = attack.and_then(|a| Some((a, &report.summary.attacks.get(a)?.name)));
        match (self, selected) {
            (SortKey::Index | SortKey::Confidence, _) => None,
            (SortKey::LieDerivative, _) => {
                let any = report.samples.iter().any(|s| lie_derivative(s).is_some());
                (!any).then(|| {
                    "no Lie derivatives in this report: add [[equivariance]] with \
                     kind = \"lie_derivative\" to the plan"
                        .to_string()
                })
            }
            (SortKey::AttributionShift, _) if method.is_none() => {
                Some("no attributions in this report: add [[attribution]] to the plan".into())
            }
            (_, None) => Some(NO_ATTACKS.to_string()),
            (SortKey::TrueClassAfterAttack, Some((a, name))) => {
                let missing = count_missing(report, |s| true_class_confidence(s, a));
                (missing > 0).then(|| {
                    format!(
                        "the true class of {missing} inputs is not among the top-5 stored after \
                         {name}{}",
                        rerun_hint(report, "true-class probabilities")
                    )
                })
            }
            (SortKey::PerturbationNorm, Some((a, name))) => {
                let any = report.samples.iter().any(|s| broken(s, a));
                (!any).then(|| format!("{name} broke no input: there is no break to size"))
            }
            (SortKey::MarginDrop, Some((a, name))) => {
                let missing = count_missing(report, |s| margin_drop(s, a));
                (missing > 0).then(|| {
                    format!(
                        "{missing} inputs have no logit margin on the clean input or after \
                         {name}{}",
                        rerun_hint(report, "logit margins")
                    )
                })
            }
            (SortKey::AttributionShift, Some((_, name))) => {
                let method = method.unwrap_or_default();
                let ran = report
                    .summary
                    .attributions
                    .iter()
                    .find(|e| e.name == method)
                    .is_some_and(|e| e.attacks.iter().any(|a| &a.attack == name));
                (!ran).then(|| {
                    format!("{method} did not run on {name}: add it to the entry's `on` list")
                })
            }
        }
    }
}

/// The reason every attack-dependent key gives on a report without attacks.
const NO_ATTACKS: &str = "no attacks in this report: add [[attack]] entries to the plan";

/// How many inputs `value` has nothing for.
fn count_missing(report: &Report, value: impl Fn(&SampleRecord) -> Option<f64>) -> usize {
    report
        .samples
        .iter()
        .filter(|s| value(s).is_none_or(|v| !v.is_finite()))
        .count()
}

/// The end of a missing-value reason: reports before format 5 store only
/// the top-5 probabilities, newer ones the value itself.
fn rerun_hint(report: &Report, what: &str) -> String {
    if report.schema_version < 5 {
        format!(
            ", and this report (format version {}) predates per-input {what}: rerun the audit",
            report.schema_version
        )
    } else {
        " (their logits were not finite)".to_string()
    }
}

/// What the list shows and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery<'a> {
    /// The filter.
    pub filter: Filter,
    /// The sort key.
    pub sort: SortKey,
    /// Reverse the key's natural order.
    pub reversed: bool,
    /// The selected attack's position in the report (if it has attacks).
    pub attack: Option<usize>,
    /// The selected attribution entry's name (if the report has any).
    pub method: Option<&'a str>,
}

/// Whether the input was classified correctly before any attack.
pub fn correct(sample: &SampleRecord) -> bool {
    sample.prediction == sample.label
}

/// Whether attack number `attack` broke this (correctly classified) input.
pub fn broken(sample: &SampleRecord, attack: usize) -> bool {
    correct(sample) && sample.attacks.get(attack).is_some_and(|a| a.success)
}

/// The probability of the clean prediction.
pub fn confidence(sample: &SampleRecord) -> Option<f64> {
    sample.top5.first().map(|c| c.probability)
}

/// The probability of the true class after attack number `attack`: the
/// record's own value, or for reports before format 5 the top-5 entry of
/// the true class (absent when it is not among them).
pub fn true_class_confidence(sample: &SampleRecord, attack: usize) -> Option<f64> {
    let a = sample.attacks.get(attack)?;
    a.true_class_probability
        .or_else(|| probability_of(&a.top5, sample.label))
}

/// The perturbation of attack number `attack` in that attack's own norm
/// (`norm`), for inputs it broke; absent for the others, whose perturbation
/// is not a break.
pub fn perturbation_norm(sample: &SampleRecord, attack: usize, norm: Norm) -> Option<f64> {
    let a = sample.attacks.get(attack)?;
    let value = match norm {
        Norm::Linf => Some(a.perturbation_linf),
        Norm::L2 => Some(a.perturbation_l2),
        // Absent in reports before schema 6.
        Norm::L1 => a.perturbation_l1,
    };
    broken(sample, attack).then_some(value).flatten()
}

/// The clean logit margin `z_y − max_{j≠y} z_j` (see [`top5_margin`] for
/// reports before format 5).
pub fn clean_margin(sample: &SampleRecord) -> Option<f64> {
    sample
        .margin
        .or_else(|| top5_margin(&sample.top5, sample.label))
}

/// The logit margin after attack number `attack` (see [`top5_margin`] for
/// reports before format 5).
pub fn attack_margin(sample: &SampleRecord, attack: usize) -> Option<f64> {
    let a = sample.attacks.get(attack)?;
    a.margin.or_else(|| top5_margin(&a.top5, sample.label))
}

/// The clean logit margin minus the margin after attack number `attack`:
/// how much the attack moved the input towards (or across) the decision
/// boundary.
pub fn margin_drop(sample: &SampleRecord, attack: usize) -> Option<f64> {
    Some(clean_margin(sample)? - attack_margin(sample, attack)?)
}

/// The logit margin of `label` from top-5 probabilities:
/// `ln p_y − ln max_{j≠y} p_j`, which is `z_y − max_{j≠y} z_j` because the
/// softmax's normaliser cancels (to the f32 rounding of the stored
/// probabilities). Absent when `label` is not among them, or a probability
/// is zero.
pub fn top5_margin(top: &[ClassProbability], label: u32) -> Option<f64> {
    let p_true = probability_of(top, label)?;
    // The best other class is the first entry that is not the true class.
    let p_other = top.iter().find(|c| c.class != label)?.probability;
    Some(p_true.ln() - p_other.ln()).filter(|m| m.is_finite())
}

fn probability_of(top: &[ClassProbability], class: u32) -> Option<f64> {
    top.iter().find(|c| c.class == class).map(|c| c.probability)
}

/// `1 − top-k overlap` of `method`'s clean and adversarial maps under the
/// attack named `attack` (absent when the entry did not run on that attack).
pub fn attribution_shift(sample: &SampleRecord, method: &str, attack: &str) -> Option<f64> {
    let entry = sample.attributions.iter().find(|a| a.name == method)?;
    let on = entry.attacks.iter().find(|a| a.attack == attack)?;
    Some(1.0 - on.top_k_overlap)
}

/// The mean of this input's Lie derivatives over every entry and transformation.
pub fn lie_derivative(sample: &SampleRecord) -> Option<f64> {
    let entries = &sample.equivariance.as_ref()?.lie_derivative;
    mean(
        entries
            .iter()
            .flat_map(|e| e.values.iter().map(|&v| v as f64)),
    )
}

/// Positions in `report.samples` of the inputs to show, in display order.
/// Inputs without a value for the sort key come last, in data order.
pub fn visible_rows(report: &Report, query: &ListQuery) -> Vec<usize> {
    let samples = &report.samples;
    let keep = |s: &SampleRecord| match query.filter {
        Filter::All => true,
        Filter::BrokenBySelected => query.attack.is_some_and(|a| broken(s, a)),
        Filter::BrokenByAny => (0..s.attacks.len()).any(|a| broken(s, a)),
        Filter::Misclassified => !correct(s),
    };
    let attack_summary = query.attack.and_then(|a| report.summary.attacks.get(a));
    let attack_name = attack_summary.map(|a| a.name.as_str());
    let key = |s: &SampleRecord| -> Option<f64> {
        match query.sort {
            SortKey::Index => Some(s.index as f64),
            SortKey::Confidence => confidence(s),
            SortKey::TrueClassAfterAttack => true_class_confidence(s, query.attack?),
            SortKey::PerturbationNorm => perturbation_norm(s, query.attack?, attack_summary?.norm),
            SortKey::MarginDrop => margin_drop(s, query.attack?),
            SortKey::AttributionShift => {
                attribution_shift(s, query.method?, attack_name?).filter(|v| v.is_finite())
            }
            SortKey::LieDerivative => lie_derivative(s),
        }
        .filter(|v| v.is_finite())
    };
    let mut rows: Vec<(usize, Option<f64>)> = samples
        .iter()
        .enumerate()
        .filter(|(_, s)| keep(s))
        .map(|(i, s)| (i, key(s)))
        .collect();
    let descending = query.sort.descending_by_default() != query.reversed;
    rows.sort_by(|(ia, a), (ib, b)| {
        let by_key = match (a, b) {
            (Some(a), Some(b)) if descending => b.total_cmp(a),
            (Some(a), Some(b)) => a.total_cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_key.then(ia.cmp(ib))
    });
    rows.into_iter().map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cycles_visit_every_filter_and_key_once() {
        let mut f = Filter::All;
        let mut seen = vec![];
        for _ in 0..4 {
            seen.push(f);
            f = f.next();
        }
        assert_eq!(f, Filter::All);
        assert_eq!(seen.len(), 4);
        let mut k = SortKey::Index;
        let mut keys = vec![];
        for _ in 0..SortKey::ALL.len() {
            keys.push(k);
            k = k.next();
        }
        assert_eq!(k, SortKey::Index);
        assert_eq!(keys, SortKey::ALL);
    }

    #[test]
    fn the_top5_margin_is_the_logit_margin() {
        use crate::report::build::{logit_margin, top_k};
        let logits = [2.0f32, -1.0, 0.5, 3.25, -4.0, 1.0, 0.0];
        let probabilities = crate::stats::softmax(&logits);
        let top = top_k(&probabilities, 5);
        // Correct (3), misclassified with the label in the top-5 (0), and
        // a label outside it (4).
        for label in [3, 0] {
            let exact = logit_margin(&logits, label).unwrap();
            let from_top5 = top5_margin(&top, label).unwrap();
            assert!((exact - from_top5).abs() < 1e-5, "{exact} vs {from_top5}");
        }
        assert_eq!(top5_margin(&top, 4), None);
    }
}
