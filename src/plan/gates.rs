//! CI gates as written: conditions on a report's headline figures, from the
//! plan's `[gates]` table (`"robust_accuracy.pgd-linf-0.1" = ">= 0.80"`) and
//! from the command line (`stress.ece <= 0.05`). This file owns parsing
//! conditions and checking gates against the plan before any work;
//! `audit::gates` evaluates them on a report.
//!
//! Metrics:
//! - `clean_accuracy`;
//! - `<field>.<attack>` for any numeric field of an attack's summary, e.g.
//!   `robust_accuracy.pgd-linf-0.1`, `attack_success_rate.fgsm-linf-0.3`,
//!   `median_perturbation_l2.fmn-l2`;
//! - `stress.ece`, `stress.mce` (the first calibration entry),
//!   `stress.corruption_accuracy` (mean over corruptions and severities),
//!   `stress.noise_mmc.<family>` (mean max confidence on a noise family);
//! - `equivariance.consistency.<entry>` (mean consistency of a
//!   consistency entry), `equivariance.lowest_consistency.<entry>`,
//!   `equivariance.worst_case_accuracy`;
//! - `summary.<path>`: any number in the report's summary, objects by key
//!   and arrays by index or by an element's `name`.

use std::collections::BTreeMap;

use super::Plan;
use crate::error::{Error, Result};

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `<`
    Lt,
    /// `==`
    Eq,
}

impl Cmp {
    /// `>=`, `>`, `<=`, `<` or `==`.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Ge => ">=",
            Cmp::Gt => ">",
            Cmp::Le => "<=",
            Cmp::Lt => "<",
            Cmp::Eq => "==",
        }
    }

    /// Whether `value cmp threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Cmp::Ge => value >= threshold,
            Cmp::Gt => value > threshold,
            Cmp::Le => value <= threshold,
            Cmp::Lt => value < threshold,
            Cmp::Eq => value == threshold,
        }
    }
}

/// One gate: `metric cmp threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// The metric's name (see the module docs).
    pub metric: String,
    /// How it must compare.
    pub cmp: Cmp,
    /// With what.
    pub threshold: f64,
    /// Where the gate came from, for messages.
    pub origin: String,
}

impl std::fmt::Display for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.metric,
            self.cmp.symbol(),
            self.threshold
        )
    }
}

/// Splits `">= 0.8"` into the comparison and the number.
fn parse_condition(cond: &str) -> std::result::Result<(Cmp, f64), String> {
    let cond = cond.trim();
    let (cmp, rest) = [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        ("==", Cmp::Eq),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
    ]
    .iter()
    .find_map(|(s, c)| cond.strip_prefix(s).map(|r| (*c, r)))
    .ok_or_else(|| format!("condition `{cond}` must start with >=, >, <=, < or =="))?;
    let threshold: f64 = rest
        .trim()
        .parse()
        .map_err(|_| format!("condition `{cond}`: `{}` is not a number", rest.trim()))?;
    if !threshold.is_finite() {
        return Err(format!("condition `{cond}`: the threshold must be finite"));
    }
    Ok((cmp, threshold))
}

impl Gate {
    /// A gate from a metric and a condition such as `">= 0.8"`.
    pub fn new(metric: &str, condition: &str, origin: &str) -> Result<Gate> {
        let bad = |message: String| Error::Invalid(format!("{origin}: gate `{metric}`: {message}"));
        if metric.trim().is_empty() {
            return Err(bad("the metric name is empty".into()));
        }
        let (cmp, threshold) = parse_condition(condition).map_err(bad)?;
        Ok(Gate {
            metric: metric.trim().to_string(),
            cmp,
            threshold,
            origin: origin.to_string(),
        })
    }

    /// A gate from one expression, `metric >= 0.8`; `origin` says where it
    /// was written, for messages (the binary passes its flag).
    pub fn parse(expr: &str, origin: &str) -> Result<Gate> {
        let at = expr.find(['<', '>', '=']).ok_or_else(|| {
            Error::Invalid(format!(
                "{origin} `{expr}`: expected METRIC OP NUMBER, e.g. \"robust_accuracy.pgd-linf-0.1 >= 0.8\""
            ))
        })?;
        Gate::new(&expr[..at], &expr[at..], origin)
    }
}

/// Reads the plan's `[gates]` table (metric → condition), checking every
/// condition's syntax; mistakes go to `errors`.
pub fn parse_table(
    value: Option<toml::Value>,
    errors: &mut crate::entry::Errors,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(value) = value else {
        return out;
    };
    let toml::Value::Table(table) = value else {
        errors.push("`gates` must be a table of \"metric\" = \">= number\" entries");
        return out;
    };
    for (metric, cond) in table {
        let toml::Value::String(cond) = cond else {
            errors.push(format!(
                "gates: `{metric}` must be a string such as \">= 0.8\", found {cond}"
            ));
            continue;
        };
        match parse_condition(&cond) {
            Ok(_) => {
                out.insert(metric, cond);
            }
            Err(m) => errors.push(format!("gates: `{metric}`: {m}")),
        }
    }
    out
}

/// The plan's `[gates]` as gates.
pub fn plan_gates(plan: &Plan, origin: &str) -> Result<Vec<Gate>> {
    plan.gates
        .iter()
        .map(|(metric, cond)| Gate::new(metric, cond, &format!("{origin} [gates]")))
        .collect()
}

/// Refuses, before any work, gates whose metric cannot exist in this plan's
/// report: an unknown attack, stress or equivariance entry, or name.
pub fn check_against_plan(gates: &[Gate], plan: &Plan) -> Result<()> {
    for g in gates {
        if let Err(why) = metric_fits_plan(&g.metric, plan) {
            return Err(Error::Invalid(format!(
                "{}: gate `{}`: {why}",
                g.origin, g.metric
            )));
        }
    }
    Ok(())
}

/// Records, in `errors`, each of the plan's own `[gates]` whose metric
/// cannot exist in its report (so a plan's every mistake is reported at
/// once; gates from elsewhere go through [`check_against_plan`]).
pub(super) fn check_table(plan: &Plan, errors: &mut crate::entry::Errors) {
    for metric in plan.gates.keys() {
        if let Err(why) = metric_fits_plan(metric, plan) {
            errors.push(format!("gates: `{metric}`: {why}"));
        }
    }
}

const ATTACK_FIELDS: [&str; 7] = [
    "robust_accuracy",
    "attack_success_rate",
    "successes",
    "mean_perturbation_linf",
    "median_perturbation_linf",
    "mean_perturbation_l2",
    "median_perturbation_l2",
];

/// `(field, attack)` of a `<field>.<attack>` metric.
pub fn attack_metric(metric: &str) -> Option<(&'static str, &str)> {
    ATTACK_FIELDS.iter().find_map(|f| {
        metric
            .strip_prefix(f)
            .and_then(|r| r.strip_prefix('.'))
            .map(|n| (*f, n))
    })
}

fn metric_fits_plan(metric: &str, plan: &Plan) -> std::result::Result<(), String> {
    if metric == "clean_accuracy" || metric.starts_with("summary.") {
        return Ok(());
    }
    if let Some((_, name)) = attack_metric(metric) {
        return if plan.attacks.iter().any(|a| a.name == name) {
            Ok(())
        } else {
            Err(match super::attacks::curve_hint(name, &plan.attacks) {
                Some(hint) => format!("no attack `{name}` in the plan: {hint}"),
                None => {
                    let known: Vec<&str> = plan.attacks.iter().map(|a| a.name.as_str()).collect();
                    format!(
                        "no attack `{name}` in the plan (attacks: {})",
                        known.join(", ")
                    )
                }
            })
        };
    }
    use crate::stress::{EquivarianceCheck as E, StressCheck as S};
    let stress_kind = |want: fn(&S) -> bool| plan.stress.iter().any(|s| want(&s.check));
    let consistency_named = |name: &str| {
        plan.equivariance
            .iter()
            .any(|e| e.name == name && matches!(e.check, E::Shift(_) | E::Rotation(_) | E::Flip(_)))
    };
    let need = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("the plan has no {what}"))
        }
    };
    match metric {
        "stress.ece" | "stress.mce" => {
            return need(
                stress_kind(|c| matches!(c, S::Calibration(_))),
                "calibration stress entry",
            )
        }
        "stress.corruption_accuracy" => {
            return need(
                stress_kind(|c| matches!(c, S::Corruptions(_))),
                "corruptions stress entry",
            )
        }
        "equivariance.worst_case_accuracy" => {
            let any = plan
                .equivariance
                .iter()
                .any(|e| matches!(e.check, E::WorstCase(_)));
            return need(any, "worst_case equivariance entry");
        }
        _ => {}
    }
    if metric.starts_with("stress.noise_mmc.") {
        return need(
            stress_kind(|c| matches!(c, S::Noise(_))),
            "noise stress entry",
        );
    }
    for prefix in [
        "equivariance.consistency.",
        "equivariance.lowest_consistency.",
    ] {
        if let Some(name) = metric.strip_prefix(prefix) {
            return need(
                consistency_named(name),
                &format!("shift, rotation or flip equivariance entry `{name}`"),
            );
        }
    }
    Err(format!(
        "unknown metric (known: clean_accuracy, {}.<attack>, stress.ece, stress.mce, stress.corruption_accuracy, stress.noise_mmc.<family>, equivariance.consistency.<entry>, equivariance.lowest_consistency.<entry>, equivariance.worst_case_accuracy, summary.<path>)",
        ATTACK_FIELDS.join(".<attack>, ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_compare() {
        let g = Gate::parse("robust_accuracy.pgd-linf-0.1 >= 0.5", "test").unwrap();
        assert_eq!(
            (g.metric.as_str(), g.cmp, g.threshold),
            ("robust_accuracy.pgd-linf-0.1", Cmp::Ge, 0.5)
        );
        assert!(Cmp::Ge.holds(0.5, 0.5) && !Cmp::Gt.holds(0.5, 0.5) && Cmp::Lt.holds(0.4, 0.5));
        for bad in ["robust_accuracy", "x => 1", "x >= abc", "x >= inf", " >= 1"] {
            assert!(Gate::parse(bad, "test").is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_gate_naming_an_eps_list_lists_its_entries() {
        let plan = Plan::from_toml(
            "[[attack]]\nname = \"pgd\"\nkind = \"pgd\"\neps = [0.1, 0.3]\n",
            "p",
        )
        .unwrap();
        let ok = Gate::parse("robust_accuracy.pgd@0.3 >= 0.5", "test").unwrap();
        assert!(check_against_plan(&[ok], &plan).is_ok());
        let g = Gate::parse("robust_accuracy.pgd >= 0.5", "test").unwrap();
        let e = check_against_plan(&[g], &plan).unwrap_err().to_string();
        assert!(
            e.contains("no attack `pgd` in the plan: \"pgd\" is an ε list: its entries are pgd@0.1, pgd@0.3"),
            "{e}"
        );
    }
}
