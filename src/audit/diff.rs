//! `xai-audit diff OLD NEW`: what changed between two reports of the same
//! data — clean accuracy, each attack's robust accuracy, the stress and
//! equivariance headlines, and the inputs whose verdict flipped — and
//! whether any of it is a regression beyond a threshold. The headlines are
//! found with the gates' metric names, so a diff line and a gate mean the
//! same number.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Opt, Result};
use crate::report::types::Report;

/// Whether a larger value is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Accuracies, consistencies.
    Higher,
    /// Calibration error, confidence on noise.
    Lower,
}

/// One headline figure in both reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricChange {
    /// Gate-style metric name, e.g. `robust_accuracy.pgd-linf-0.1`.
    pub metric: String,
    /// In the old report (`None`: absent there).
    pub old: Option<f64>,
    /// In the new report.
    pub new: Option<f64>,
    /// Which direction is better.
    pub better: Better,
    /// Worse by more than the threshold.
    pub regression: bool,
}

/// Per-input verdict flips under one attack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flips {
    /// Attack name (`clean` for the clean predictions).
    pub name: String,
    /// Inputs robust (or correct) before and broken (or wrong) now.
    pub newly_broken: Vec<usize>,
    /// Inputs broken before and robust now.
    pub newly_robust: Vec<usize>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportDiff {
    /// The old report's path.
    pub old: String,
    /// The new report's path.
    pub new: String,
    /// Whether the model file changed (by SHA-256).
    pub model_changed: bool,
    /// Inputs compared.
    pub count: usize,
    /// Headline figures.
    pub metrics: Vec<MetricChange>,
    /// Per-input flips, clean first then each attack in both reports.
    pub flips: Vec<Flips>,
    /// The regression threshold, in percentage points.
    pub threshold_pp: f64,
    /// Whether any figure got worse by more than the threshold.
    pub regression: bool,
}

/// The headline metrics of a report, as gate names with their direction.
fn headlines(summary: &Value) -> Vec<(String, Better)> {
    let mut out = vec![("clean_accuracy".to_string(), Better::Higher)];
    let names = |key: &str| -> Vec<String> {
        summary
            .pointer(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.get("name")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    for a in names("/attacks") {
        out.push((format!("robust_accuracy.{a}"), Better::Higher));
    }
    if summary.pointer("/stress/calibration/0").is_some() {
        out.push(("stress.ece".into(), Better::Lower));
    }
    if summary.pointer("/stress/corruptions/0").is_some() {
        out.push(("stress.corruption_accuracy".into(), Better::Higher));
    }
    if let Some(families) = summary
        .pointer("/stress/noise/0/families")
        .and_then(Value::as_array)
    {
        for f in families.iter().filter_map(|f| f.get("family")?.as_str()) {
            out.push((format!("stress.noise_mmc.{f}"), Better::Lower));
        }
    }
    for e in names("/equivariance/consistency") {
        out.push((format!("equivariance.consistency.{e}"), Better::Higher));
    }
    if summary.pointer("/equivariance/worst_case/0").is_some() {
        out.push(("equivariance.worst_case_accuracy".into(), Better::Higher));
    }
    out
}

/// Compares `old` with `new` (paths for messages); a figure that got worse
/// by more than `threshold_pp` percentage points is a regression. Reports of
/// different data are refused.
pub fn diff_reports(
    old: &Report,
    old_path: &str,
    new: &Report,
    new_path: &str,
    threshold_pp: f64,
) -> Result<ReportDiff> {
    if !(threshold_pp.is_finite() && threshold_pp >= 0.0) {
        return Err(Error::bad_option(
            Opt::Threshold,
            format!("{threshold_pp} must be a non-negative number of percentage points"),
        ));
    }
    if old.data.sha256 != new.data.sha256
        || old.data.count != new.data.count
        || old.samples.len() != new.samples.len()
    {
        return Err(Error::Invalid(format!(
            "{old_path} and {new_path} audit different data ({} inputs, sha256 {}… vs {} inputs, sha256 {}…): diff compares reports of the same data",
            old.data.count,
            &old.data.sha256[..old.data.sha256.len().min(12)],
            new.data.count,
            &new.data.sha256[..new.data.sha256.len().min(12)]
        )));
    }
    let to_value = |r: &Report| {
        serde_json::to_value(&r.summary)
            .map_err(|e| Error::Invalid(format!("summary does not serialize: {e}")))
    };
    let (so, sn) = (to_value(old)?, to_value(new)?);
    let mut seen = BTreeSet::new();
    let mut metrics = Vec::new();
    for (metric, better) in headlines(&so).into_iter().chain(headlines(&sn)) {
        if !seen.insert(metric.clone()) {
            continue;
        }
        let (o, n) = (
            super::gates::resolve(&so, &metric),
            super::gates::resolve(&sn, &metric),
        );
        let regression = match (o, n) {
            (Some(o), Some(n)) => {
                let worse = match better {
                    Better::Higher => o - n,
                    Better::Lower => n - o,
                };
                100.0 * worse > threshold_pp
            }
            _ => false,
        };
        metrics.push(MetricChange {
            metric,
            old: o,
            new: n,
            better,
            regression,
        });
    }
    let mut flips = vec![Flips {
        name: "clean".into(),
        newly_broken: Vec::new(),
        newly_robust: Vec::new(),
    }];
    for (a, b) in old.samples.iter().zip(&new.samples) {
        let (ok_a, ok_b) = (a.prediction == a.label, b.prediction == b.label);
        if ok_a && !ok_b {
            flips[0].newly_broken.push(a.index);
        } else if !ok_a && ok_b {
            flips[0].newly_robust.push(a.index);
        }
    }
    for attack in &old.summary.attacks {
        let Some(k_new) = new
            .summary
            .attacks
            .iter()
            .position(|x| x.name == attack.name)
        else {
            continue;
        };
        let Some(k_old) = old
            .summary
            .attacks
            .iter()
            .position(|x| x.name == attack.name)
        else {
            continue;
        };
        let mut f = Flips {
            name: attack.name.clone(),
            newly_broken: Vec::new(),
            newly_robust: Vec::new(),
        };
        for (a, b) in old.samples.iter().zip(&new.samples) {
            let broken = |s: &crate::report::types::SampleRecord, k: usize| {
                s.attacks.get(k).is_some_and(|x| x.prediction != s.label)
            };
            match (broken(a, k_old), broken(b, k_new)) {
                (false, true) => f.newly_broken.push(a.index),
                (true, false) => f.newly_robust.push(a.index),
                _ => {}
            }
        }
        flips.push(f);
    }
    let regression = metrics.iter().any(|m| m.regression);
    Ok(ReportDiff {
        old: old_path.to_string(),
        new: new_path.to_string(),
        model_changed: old.model.sha256 != new.model.sha256,
        count: old.samples.len(),
        metrics,
        flips,
        threshold_pp,
        regression,
    })
}

fn fmt_value(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{:.2}%", 100.0 * x))
}

fn fmt_indices(v: &[usize]) -> String {
    let shown: Vec<String> = v.iter().take(20).map(|i| i.to_string()).collect();
    let more = if v.len() > 20 {
        format!(" … (+{})", v.len() - 20)
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}

/// The diff for the terminal.
pub fn render(d: &ReportDiff) -> String {
    let mut out = format!(
        "old {}\nnew {}\n{} inputs; model {}\n\n{:<44} {:>10} {:>10} {:>10}\n",
        d.old,
        d.new,
        d.count,
        if d.model_changed {
            "changed"
        } else {
            "unchanged"
        },
        "metric",
        "old",
        "new",
        "change"
    );
    for m in &d.metrics {
        let change = match (m.old, m.new) {
            (Some(o), Some(n)) => format!("{:+.2} pp", 100.0 * (n - o)),
            (None, Some(_)) => "added".into(),
            (Some(_), None) => "removed".into(),
            (None, None) => "-".into(),
        };
        out.push_str(&format!(
            "{:<44} {:>10} {:>10} {:>10}{}\n",
            m.metric,
            fmt_value(m.old),
            fmt_value(m.new),
            change,
            if m.regression { "  REGRESSION" } else { "" }
        ));
    }
    out.push('\n');
    for f in &d.flips {
        let (worse, better) = if f.name == "clean" {
            ("now misclassified", "now correct")
        } else {
            ("newly broken", "newly robust")
        };
        out.push_str(&format!(
            "{:<22} {worse} {:>4}",
            f.name,
            f.newly_broken.len()
        ));
        if !f.newly_broken.is_empty() {
            out.push_str(&format!(" [{}]", fmt_indices(&f.newly_broken)));
        }
        out.push_str(&format!(", {better} {}", f.newly_robust.len()));
        if !f.newly_robust.is_empty() {
            out.push_str(&format!(" [{}]", fmt_indices(&f.newly_robust)));
        }
        out.push('\n');
    }
    let regressions: Vec<&str> = d
        .metrics
        .iter()
        .filter(|m| m.regression)
        .map(|m| m.metric.as_str())
        .collect();
    if regressions.is_empty() {
        out.push_str(&format!("\nno regression beyond {} pp\n", d.threshold_pp));
    } else {
        out.push_str(&format!(
            "\nregression beyond {} pp: {}\n",
            d.threshold_pp,
            regressions.join(", ")
        ));
    }
    out
}
