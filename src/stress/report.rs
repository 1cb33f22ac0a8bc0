//! From [`StressResults`] to the report's parts: the summary sections,
//! per-input records, warnings and timings ([`sections`], which
//! `report::build` places), the sidecar tensors ([`sidecar_tensors`]) and
//! the lines `run` prints ([`summary_lines`]).

use candle_core::Tensor;

use super::types::*;
use super::{EquivarianceOutcome, StressOutcome, StressResults};

/// The stress and equivariance parts of a report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StressSections {
    /// `summary.stress` (`None` without `[[stress]]` entries).
    pub stress: Option<StressSummary>,
    /// `summary.equivariance` (`None` without `[[equivariance]]` entries).
    pub equivariance: Option<EquivarianceSummary>,
    /// Per input, its stress and equivariance records (`None`: nothing to record).
    pub samples: Vec<(Option<SampleStress>, Option<SampleEquivariance>)>,
    /// `timings.stress`, in plan order.
    pub stress_timings: Vec<CheckTiming>,
    /// `timings.equivariance`, in plan order.
    pub equivariance_timings: Vec<CheckTiming>,
    /// Report warnings, in plan order.
    pub warnings: Vec<String>,
    /// Seconds the checks took.
    pub seconds: f64,
}

/// The report's stress and equivariance parts for `n` inputs.
pub fn sections(results: &StressResults, n: usize) -> StressSections {
    let mut out = StressSections::default();
    if results.stress.is_empty() && results.equivariance.is_empty() {
        return out;
    }
    let mut stress = StressSummary::default();
    let mut sample_stress = vec![SampleStress::default(); n];
    for outcome in &results.stress {
        let (name, seconds, warnings) = match outcome {
            StressOutcome::AlphaScaling(o) => {
                stress.alpha_scaling.push(o.summary.clone());
                for (s, a) in sample_stress.iter_mut().zip(&o.samples) {
                    s.alpha_scaling.push(a.clone());
                }
                (&o.summary.name, o.seconds, &o.warnings)
            }
            StressOutcome::Noise(o) => {
                stress.noise.push(o.summary.clone());
                (&o.summary.name, o.seconds, &o.warnings)
            }
            StressOutcome::Calibration(o) => {
                stress.calibration.push(o.summary.clone());
                (&o.summary.name, o.seconds, &o.warnings)
            }
            StressOutcome::Corruptions(o) => {
                stress.corruptions.push(o.summary.clone());
                for (s, c) in sample_stress.iter_mut().zip(&o.samples) {
                    s.corruptions.push(c.clone());
                }
                (&o.summary.name, o.seconds, &o.warnings)
            }
        };
        out.stress_timings.push(CheckTiming {
            name: name.clone(),
            seconds,
        });
        out.warnings.extend(warnings.iter().cloned());
    }
    let mut equivariance = EquivarianceSummary::default();
    let mut sample_equivariance = vec![SampleEquivariance::default(); n];
    for outcome in &results.equivariance {
        let (name, seconds, warnings) = match outcome {
            EquivarianceOutcome::Consistency(o) => {
                equivariance.consistency.push(o.summary.clone());
                for (s, c) in sample_equivariance.iter_mut().zip(&o.samples) {
                    s.consistency.push(c.clone());
                }
                (&o.summary.name, o.seconds, &o.warnings)
            }
            EquivarianceOutcome::LieDerivative(o) => {
                equivariance.lie_derivative.push(o.summary.clone());
                for (s, c) in sample_equivariance.iter_mut().zip(&o.samples) {
                    s.lie_derivative.push(c.clone());
                }
                (&o.summary.name, o.seconds, &o.warnings)
            }
            EquivarianceOutcome::WorstCase(o) => {
                equivariance.worst_case.push(o.summary.clone());
                for (s, c) in sample_equivariance.iter_mut().zip(&o.samples) {
                    s.worst_case.push(c.clone());
                }
                (&o.summary.name, o.seconds, &o.warnings)
            }
        };
        out.equivariance_timings.push(CheckTiming {
            name: name.clone(),
            seconds,
        });
        out.warnings.extend(warnings.iter().cloned());
    }
    if !results.stress.is_empty() {
        out.stress = Some(stress);
    }
    if !results.equivariance.is_empty() {
        out.equivariance = Some(equivariance);
    }
    out.samples = sample_stress
        .into_iter()
        .zip(sample_equivariance)
        .map(|(s, e)| {
            (
                (s != SampleStress::default()).then_some(s),
                (e != SampleEquivariance::default()).then_some(e),
            )
        })
        .collect();
    out.seconds = results.total_seconds;
    out
}

/// The sidecar tensors of every check, in plan order.
pub fn sidecar_tensors(results: &StressResults) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for outcome in &results.stress {
        out.extend(match outcome {
            StressOutcome::AlphaScaling(o) => o.tensors.clone(),
            StressOutcome::Noise(o) => o.tensors.clone(),
            StressOutcome::Calibration(o) => o.tensors.clone(),
            StressOutcome::Corruptions(o) => o.tensors.clone(),
        });
    }
    for outcome in &results.equivariance {
        out.extend(match outcome {
            EquivarianceOutcome::Consistency(o) => o.tensors.clone(),
            EquivarianceOutcome::LieDerivative(o) => o.tensors.clone(),
            EquivarianceOutcome::WorstCase(o) => o.tensors.clone(),
        });
    }
    out
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn alpha(a: Option<f64>) -> String {
    a.map_or("not reached".to_string(), |a| format!("{a:.3}"))
}

/// The stress and equivariance lines of `run`'s summary table (empty when
/// the plan has no such entries), with the model's class names (index =
/// class; empty for numbers only): a class reads `dog (2)`
/// ([`crate::data::class_label`]).
pub fn summary_lines(
    stress: Option<&StressSummary>,
    equivariance: Option<&EquivarianceSummary>,
    stress_timings: &[CheckTiming],
    equivariance_timings: &[CheckTiming],
    class_names: &[String],
) -> String {
    let mut out = String::new();
    let timing = |list: &[CheckTiming], name: &str| {
        list.iter()
            .find(|t| t.name == name)
            .map_or(String::new(), |t| format!("  [{:.1} s]", t.seconds))
    };
    if let Some(s) = stress {
        out.push_str("\nextrapolation\n");
        for a in &s.alpha_scaling {
            out.push_str(&format!(
                "  {}: smallest α reaching {} confidence{}\n",
                a.name,
                a.target_confidence,
                timing(stress_timings, &a.name)
            ));
            for set in &a.sets {
                let at = |alpha: f64| set.curve.iter().find(|p| p.alpha == alpha);
                let mmc = |alpha: f64| {
                    at(alpha).map_or("-".into(), |p| {
                        format!("{:.3}/{:.3}", p.mmc_scaled, p.mmc_clipped)
                    })
                };
                out.push_str(&format!(
                    "    {:<8} median α {:<12} reached {:>6}   MMC scaled/clipped at α=1 {}, α=10 {}\n",
                    format!("{:?}", set.inputs).to_lowercase(),
                    alpha(set.median_alpha),
                    pct(set.reached_share),
                    mmc(1.0),
                    mmc(10.0)
                ));
            }
        }
        for noise in &s.noise {
            out.push_str(&format!(
                "  {}: data MMC {:.3}{}\n    {:<9} {:>6} {:>7} {:>7} {:>7} {:>7}  top class\n",
                noise.name,
                noise.data_mmc,
                timing(stress_timings, &noise.name),
                "family",
                "MMC",
                ">0.95",
                ">0.99",
                "AUROC",
                "FPR@95"
            ));
            for f in &noise.families {
                out.push_str(&format!(
                    "    {:<9} {:>6.3} {:>7} {:>7} {:>7.3} {:>7}  {} ({}){}\n",
                    format!("{:?}", f.family).to_lowercase(),
                    f.mmc,
                    pct(f.share_above_0_95),
                    pct(f.share_above_0_99),
                    f.auroc,
                    pct(f.fpr_at_95_tpr),
                    crate::data::class_label(class_names, f.top_class as usize),
                    pct(f.top_class_share),
                    if f.collapsed { " collapsed" } else { "" }
                ));
            }
        }
        for c in &s.calibration {
            out.push_str(&format!(
                "  {}: ECE {:.4}, MCE {:.4} ({} bins), accuracy {}, mean confidence {:.4}{}\n",
                c.name,
                c.ece,
                c.mce,
                c.reliability.len(),
                pct(c.accuracy),
                c.mean_confidence,
                timing(stress_timings, &c.name)
            ));
        }
        for c in &s.corruptions {
            out.push_str(&format!(
                "  {}: mean accuracy {} (clean {}){}\n    {:<15}",
                c.name,
                pct(c.mean_accuracy),
                pct(c.clean_accuracy),
                timing(stress_timings, &c.name),
                "corruption"
            ));
            for s in &c.severities {
                out.push_str(&format!(" {:>6}", format!("s{s}")));
            }
            out.push_str(&format!(" {:>7}\n", "mean"));
            for k in &c.corruptions {
                out.push_str(&format!(
                    "    {:<15}",
                    serde_json::to_value(k.corruption)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                ));
                for a in &k.accuracy {
                    out.push_str(&format!(" {:>6}", pct(*a)));
                }
                out.push_str(&format!(" {:>7}\n", pct(k.mean_accuracy)));
            }
        }
    }
    if let Some(e) = equivariance {
        out.push_str("\nequivariance\n");
        for c in &e.consistency {
            let lowest = c
                .transforms
                .iter()
                .min_by(|a, b| a.consistency.total_cmp(&b.consistency));
            out.push_str(&format!(
                "  {:<22} {:<8} {} consistency {} (lowest {}{}){}\n",
                c.name,
                c.kind,
                if c.expect_invariant {
                    "invariant expected,"
                } else {
                    "change expected,   "
                },
                pct(c.mean_consistency),
                pct(c.lowest_consistency),
                lowest.map_or(String::new(), |t| format!(" under {}", t.transform)),
                timing(equivariance_timings, &c.name)
            ));
        }
        for l in &e.lie_derivative {
            out.push_str(&format!(
                "  {:<22} Lie derivative ({}):",
                l.name,
                serde_json::to_value(l.method)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ));
            for t in &l.transforms {
                out.push_str(&format!(
                    " {} {:.4} {}",
                    serde_json::to_value(t.transform)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    t.mean,
                    t.unit.replace('_', " ")
                ));
            }
            out.push_str(&format!("{}\n", timing(equivariance_timings, &l.name)));
        }
        for w in &e.worst_case {
            out.push_str(&format!(
                "  {:<22} worst case over {} rotations × translations: accuracy {} (clean {}){}\n",
                w.name,
                w.grid_size,
                pct(w.worst_case_accuracy),
                pct(w.clean_accuracy),
                timing(equivariance_timings, &w.name)
            ));
        }
        if !e.consistency.is_empty() {
            out.push_str(EQUIVARIANCE_KEY);
        }
        if e.consistency.iter().any(|c| !c.expect_invariant) {
            out.push_str(CHANGE_EXPECTED_KEY);
        }
    }
    out
}

/// The key to the equivariance rows' consistency.
const EQUIVARIANCE_KEY: &str = "key: consistency      share of inputs whose prediction stays the clean one, averaged over the entry's transforms (lowest: its worst transform)\n";

/// What a "change expected" row means, under the equivariance rows that
/// have one: the plan says the transform should change the prediction, so
/// there a high consistency is the finding, not a pass.
const CHANGE_EXPECTED_KEY: &str = "     change expected  the plan declares the model should NOT be invariant to this transform (a vertical flip turns a 6 into a 9): a high consistency there means the model ignores a change it should notice\n";
