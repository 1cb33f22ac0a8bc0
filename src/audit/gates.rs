//! CI gates evaluated: finding a gate's metric in a report, the verdicts and
//! the JUnit XML that CI dashboards read (their terminal table is in
//! `audit::text`). Gates are parsed and checked against the plan in
//! `plan::gates`.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::plan::gates::attack_metric;
pub use crate::plan::gates::{Cmp, Gate};
use crate::report::types::Report;

/// Follows `path` (dot-separated) through `v`: object keys, array indices,
/// or the array element whose `name` matches. Names may contain dots, so
/// the longest matching key or name wins.
fn walk<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    let candidates: Vec<(&str, &str)> = {
        let mut c: Vec<(&str, &str)> = path
            .match_indices('.')
            .map(|(i, _)| (&path[..i], &path[i + 1..]))
            .collect();
        c.push((path, ""));
        c.reverse();
        c
    };
    for (head, rest) in candidates {
        let next = match v {
            Value::Object(map) => map.get(head),
            Value::Array(items) => match head.parse::<usize>() {
                Ok(i) => items.get(i),
                Err(_) => items.iter().find(|it| {
                    ["name", "family", "corruption", "transform"]
                        .iter()
                        .any(|k| it.get(k).and_then(Value::as_str) == Some(head))
                }),
            },
            _ => None,
        };
        if let Some(found) = next.and_then(|n| walk(n, rest)) {
            return Some(found);
        }
    }
    None
}

/// The value of `metric` in `summary` (the report's summary as JSON).
pub fn resolve(summary: &Value, metric: &str) -> Option<f64> {
    let first = |key: &str, field: &str| walk(summary, &format!("{key}.0.{field}"));
    let found = if let Some(path) = metric.strip_prefix("summary.") {
        walk(summary, path)
    } else if metric == "clean_accuracy" {
        summary.get("clean_accuracy")
    } else if let Some((field, name)) = attack_metric(metric) {
        summary
            .get("attacks")?
            .as_array()?
            .iter()
            .find(|a| a.get("name").and_then(Value::as_str) == Some(name))?
            .get(field)
    } else {
        match metric {
            "stress.ece" => first("stress.calibration", "ece"),
            "stress.mce" => first("stress.calibration", "mce"),
            "stress.corruption_accuracy" => first("stress.corruptions", "mean_accuracy"),
            "equivariance.worst_case_accuracy" => {
                first("equivariance.worst_case", "worst_case_accuracy")
            }
            _ => {
                if let Some(family) = metric.strip_prefix("stress.noise_mmc.") {
                    walk(summary, &format!("stress.noise.0.families.{family}.mmc"))
                } else if let Some(name) = metric.strip_prefix("equivariance.consistency.") {
                    walk(
                        summary,
                        &format!("equivariance.consistency.{name}.mean_consistency"),
                    )
                } else if let Some(name) = metric.strip_prefix("equivariance.lowest_consistency.") {
                    walk(
                        summary,
                        &format!("equivariance.consistency.{name}.lowest_consistency"),
                    )
                } else {
                    None
                }
            }
        }
    };
    found.and_then(Value::as_f64)
}

/// A gate's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The gate.
    pub gate: Gate,
    /// The metric's value (`None`: not in the report).
    pub value: Option<f64>,
    /// Whether it holds (a missing value fails).
    pub passed: bool,
}

/// Checks every gate against `report`.
pub fn evaluate(report: &Report, gates: &[Gate]) -> Result<Vec<Verdict>> {
    let summary = serde_json::to_value(&report.summary)
        .map_err(|e| Error::Invalid(format!("summary does not serialize: {e}")))?;
    Ok(gates
        .iter()
        .map(|g| {
            let value = resolve(&summary, &g.metric);
            Verdict {
                gate: g.clone(),
                value,
                passed: value.is_some_and(|v| g.cmp.holds(v, g.threshold)),
            }
        })
        .collect())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The verdicts as a JUnit XML test suite named `suite` (one test case per
/// gate; a failed gate is a `<failure>` with its value and condition).
pub fn junit_xml(suite: &str, verdicts: &[Verdict]) -> String {
    let failures = verdicts.iter().filter(|v| !v.passed).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"xai-audit\" tests=\"{}\" failures=\"{failures}\">\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">\n",
        verdicts.len(),
        xml_escape(suite),
        verdicts.len()
    );
    for v in verdicts {
        let name = xml_escape(&v.gate.to_string());
        if v.passed {
            out.push_str(&format!(
                "    <testcase classname=\"gates\" name=\"{name}\"/>\n"
            ));
        } else {
            let value = v
                .value
                .map_or("missing from the report".to_string(), |x| x.to_string());
            out.push_str(&format!(
                "    <testcase classname=\"gates\" name=\"{name}\">\n      <failure message=\"{}\"/>\n    </testcase>\n",
                xml_escape(&format!("{} is {value}, needs {} {}", v.gate.metric, v.gate.cmp.symbol(), v.gate.threshold))
            ));
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary() -> Value {
        json!({
            "clean_accuracy": 0.98,
            "attacks": [
                {"name": "pgd-linf-0.1", "robust_accuracy": 0.5, "attack_success_rate": 0.49},
                {"name": "fgsm", "robust_accuracy": 0.8}
            ],
            "stress": {
                "calibration": [{"name": "calibration", "ece": 0.0087, "mce": 0.83}],
                "noise": [{"name": "noise", "families": [{"family": "uniform", "mmc": 0.99}]}]
            },
            "equivariance": {"consistency": [{"name": "shift-zero", "mean_consistency": 0.984, "lowest_consistency": 0.96}]}
        })
    }

    #[test]
    fn metrics_resolve_by_alias_and_by_path_with_dotted_names() {
        let s = summary();
        assert_eq!(resolve(&s, "clean_accuracy"), Some(0.98));
        assert_eq!(resolve(&s, "robust_accuracy.pgd-linf-0.1"), Some(0.5));
        assert_eq!(resolve(&s, "attack_success_rate.pgd-linf-0.1"), Some(0.49));
        assert_eq!(resolve(&s, "stress.ece"), Some(0.0087));
        assert_eq!(resolve(&s, "stress.noise_mmc.uniform"), Some(0.99));
        assert_eq!(
            resolve(&s, "equivariance.consistency.shift-zero"),
            Some(0.984)
        );
        assert_eq!(
            resolve(&s, "equivariance.lowest_consistency.shift-zero"),
            Some(0.96)
        );
        assert_eq!(
            resolve(&s, "summary.attacks.pgd-linf-0.1.robust_accuracy"),
            Some(0.5)
        );
        assert_eq!(resolve(&s, "summary.attacks.1.robust_accuracy"), Some(0.8));
        assert_eq!(resolve(&s, "robust_accuracy.nope"), None);
        assert_eq!(resolve(&s, "summary.attacks"), None, "not a number");
    }

    #[test]
    fn junit_marks_failures_and_escapes() {
        let verdicts = vec![
            Verdict {
                gate: Gate::parse("a <= 1", "test").unwrap(),
                value: Some(0.5),
                passed: true,
            },
            Verdict {
                gate: Gate::parse("b>=2", "test").unwrap(),
                value: None,
                passed: false,
            },
        ];
        let xml = junit_xml("m<1>", &verdicts);
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("name=\"m&lt;1&gt;\""), "{xml}");
        assert!(
            xml.contains("<testcase classname=\"gates\" name=\"a &lt;= 1\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains("<failure message=\"b is missing from the report, needs &gt;= 2\"/>"),
            "{xml}"
        );
    }
}
