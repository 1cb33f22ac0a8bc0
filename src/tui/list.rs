//! The input list's contents: which inputs are shown (the filter) and in
//! which order (the sort key and direction). Each key is a function of one
//! record so that the views and the tests compute the same quantity.

use crate::report::types::{Report, SampleRecord};
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
    /// How far the selected attack moved the selected method's map
    /// (`1 − top-k overlap`), largest first.
    AttributionShift,
    /// Mean Lie derivative over the report's transformations, largest first.
    LieDerivative,
}

impl SortKey {
    /// The next key of the `s` key's cycle.
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Index => SortKey::Confidence,
            SortKey::Confidence => SortKey::AttributionShift,
            SortKey::AttributionShift => SortKey::LieDerivative,
            SortKey::LieDerivative => SortKey::Index,
        }
    }

    /// A short label for the status line.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Index => "index",
            SortKey::Confidence => "confidence",
            SortKey::AttributionShift => "attribution shift",
            SortKey::LieDerivative => "Lie derivative",
        }
    }

    /// Whether the key's natural order (the one worth looking at first) is
    /// descending.
    fn descending_by_default(self) -> bool {
        matches!(self, SortKey::AttributionShift | SortKey::LieDerivative)
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
    let attack_name = query
        .attack
        .and_then(|a| report.summary.attacks.get(a))
        .map(|a| a.name.as_str());
    let key = |s: &SampleRecord| -> Option<f64> {
        match query.sort {
            SortKey::Index => Some(s.index as f64),
            SortKey::Confidence => confidence(s),
            SortKey::AttributionShift => {
                attribution_shift(s, query.method?, attack_name?).filter(|v| v.is_finite())
            }
            SortKey::LieDerivative => lie_derivative(s).filter(|v| v.is_finite()),
        }
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
        for _ in 0..4 {
            k = k.next();
        }
        assert_eq!(k, SortKey::Index);
    }
}
