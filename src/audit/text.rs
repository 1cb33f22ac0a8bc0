//! The text the commands print when they succeed, in one place: `run`'s
//! (and `merge`'s) summary table, where its outputs went and the gates'
//! verdicts; `eval`'s accuracy table. The binary prints these strings and
//! adds nothing but what names its own commands. The stress and
//! attribution sections' lines come from their modules (the TUI shows them
//! too).

use std::path::Path;

use super::clean;
use super::gates::Verdict;
use super::job::JobOutput;
use crate::data::{DataNotes, Dataset};
use crate::report::types::Report;

/// Everything `run` prints once the report is written: the summary table,
/// the paths of the report, its tensors and (when `images_dir` is given)
/// the PNGs, then the gates.
pub fn run_summary(output: &JobOutput, images_dir: Option<&Path>) -> String {
    let mut out = summary_table(&output.report);
    out.push_str(&format!(
        "\nreport  {}\ntensors {}\n",
        output.report_path.display(),
        output.tensors_path.display()
    ));
    if let Some(dir) = images_dir {
        out.push_str(&format!(
            "images  {} ({} PNG files)\n",
            dir.display(),
            output.images_written
        ));
    }
    if !output.verdicts.is_empty() {
        out.push('\n');
        out.push_str(&gates_table(&output.verdicts));
    }
    out
}

/// The report's headline figures: model, data, clean accuracy, one line
/// per attack, sanity findings, ε curves, the stress, equivariance and
/// attribution lines, and the warnings.
pub fn summary_table(report: &Report) -> String {
    let s = &report.summary;
    let mut out = format!(
        "model {} ({} parameters)\ndata  {} ({} inputs)\n\nclean accuracy {:.2}%\n\n",
        report.model.path,
        report.model.parameter_count,
        report.data.source,
        s.count,
        100.0 * s.clean_accuracy
    );
    out.push_str(&format!(
        "{:<22} {:<8} {:<5} {:>8} {:>11} {:>13} {:>13}\n",
        "attack", "kind", "norm", "eps", "robust acc", "success rate", "median norm"
    ));
    for a in &s.attacks {
        let median = match a.norm {
            crate::attack::Norm::Linf => a.median_perturbation_linf,
            crate::attack::Norm::L2 => a.median_perturbation_l2,
        };
        out.push_str(&format!(
            "{:<22} {:<8} {:<5} {:>8} {:>10.2}% {:>12.2}% {:>13}\n",
            a.name,
            a.kind,
            a.norm.to_string(),
            a.eps.map_or("min".to_string(), |e| e.to_string()),
            100.0 * a.robust_accuracy,
            100.0 * a.attack_success_rate,
            median.map_or("-".to_string(), |m| format!("{m:.4}"))
        ));
    }
    for f in &s.sanity {
        out.push_str(&format!("\nsanity: {}: {}", f.check, f.message));
    }
    if !s.sanity.is_empty() {
        out.push('\n');
    }
    for c in &s.eps_curves {
        out.push_str(&format!("\nrobust accuracy vs ε ({}, {}):", c.name, c.norm));
        for p in &c.points {
            out.push_str(&format!(" {}→{:.2}%", p.eps, 100.0 * p.robust_accuracy));
        }
        out.push('\n');
    }
    out.push_str(&crate::stress::report::summary_lines(
        s.stress.as_ref(),
        s.equivariance.as_ref(),
        &report.timings.stress,
        &report.timings.equivariance,
    ));
    out.push_str(&crate::attribution::report::summary_lines(&s.attributions));
    for w in &report.warnings {
        out.push_str(&format!("\nwarning: {w}"));
    }
    if !report.warnings.is_empty() {
        out.push('\n');
    }
    out
}

/// One line per gate, then how many failed.
pub fn gates_table(verdicts: &[Verdict]) -> String {
    let mut out = String::from("gates\n");
    for v in verdicts {
        let value = v.value.map_or("missing".to_string(), |x| format!("{x:.4}"));
        out.push_str(&format!(
            "  {:<4} {:<44} {:>10}  (needs {} {})\n",
            if v.passed { "pass" } else { "FAIL" },
            v.gate.metric,
            value,
            v.gate.cmp.symbol(),
            v.gate.threshold
        ));
    }
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    out.push_str(&format!("{} of {} gates failed\n", failed, verdicts.len()));
    out
}

/// `eval`'s table: the model, the data, the clean accuracy of `predicted`
/// and each class's, for the classes the data holds.
pub fn eval_summary(
    model: &Path,
    data: &Dataset,
    notes: &DataNotes,
    predicted: &[u32],
    class_names: &[String],
) -> String {
    let accuracy = clean::accuracy(predicted, &data.labels);
    let mut out = format!(
        "model {}\ndata  {} ({} inputs: {})\nclean accuracy {:.2}%\n\n  class        correct / total   accuracy\n",
        model.display(),
        data.source,
        data.len(),
        notes.subset,
        100.0 * accuracy
    );
    let counts = clean::per_class_counts(predicted, &data.labels, class_names.len());
    for (c, (correct, total)) in counts.into_iter().enumerate() {
        if total > 0 {
            out.push_str(&format!(
                "  {:<12} {correct:>7} / {total:<7} {:>7.2}%\n",
                class_names[c],
                100.0 * correct as f64 / total as f64
            ));
        }
    }
    out
}
