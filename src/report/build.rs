//! From an audit's results to a [`Report`]: the summary statistics (robust
//! accuracy, success rate, perturbation norms over successes), the per-input
//! records with top-5 probabilities, and the sanity warnings these numbers
//! can already reveal.

use candle_core::{Device, Tensor};

use super::types::*;
use crate::attack::results::AuditResults;
use crate::data::{DataNotes, Dataset};
use crate::error::Result;
use crate::model::LoadedModel;
use crate::plan::Plan;
use crate::stats::{mean, median, quantile};

/// What a report is built from.
pub struct ReportInputs<'a> {
    /// The model path as the user gave it.
    pub model_path: &'a str,
    /// The loaded model.
    pub model: &'a LoadedModel,
    /// The audited data.
    pub data: &'a Dataset,
    /// How it was drawn, and what loading it noticed.
    pub data_notes: &'a DataNotes,
    /// The plan as run.
    pub plan: &'a Plan,
    /// The results.
    pub results: &'a AuditResults,
    /// UTC start time, RFC 3339.
    pub started_at: String,
    /// The tensor sidecar's file name, if one is written.
    pub tensors_file: Option<String>,
}

/// The `k` most probable classes, most probable first (lower index on ties).
pub fn top_k(probabilities: &[f32], k: usize) -> Vec<ClassProbability> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| {
        probabilities[b]
            .total_cmp(&probabilities[a])
            .then(a.cmp(&b))
    });
    order
        .into_iter()
        .take(k)
        .map(|c| ClassProbability {
            class: c as u32,
            probability: probabilities[c] as f64,
        })
        .collect()
}

/// The logit margin of class `label`, `z_y − max_{j≠y} z_j`, in f64;
/// `None` with fewer than two classes, a label out of range or a
/// non-finite result (JSON has no infinities).
pub fn logit_margin(logits: &[f32], label: u32) -> Option<f64> {
    let y = label as usize;
    let true_logit = *logits.get(y)? as f64;
    let runner_up = logits
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != y)
        .map(|(_, &z)| z as f64)
        .reduce(f64::max)?;
    Some(true_logit - runner_up).filter(|m| m.is_finite())
}

/// Places the stress and equivariance sections: summaries, per-input
/// records, timings, warnings.
pub fn add_stress(report: &mut Report, sections: crate::stress::report::StressSections) {
    report.summary.stress = sections.stress;
    report.summary.equivariance = sections.equivariance;
    for (record, (stress, equivariance)) in report.samples.iter_mut().zip(sections.samples) {
        record.stress = stress;
        record.equivariance = equivariance;
    }
    report.timings.stress = sections.stress_timings;
    report.timings.equivariance = sections.equivariance_timings;
    report.warnings.extend(sections.warnings);
    report.timings.total_seconds += sections.seconds;
}

/// Places the attribution section: summaries, per-input records, timings.
pub fn add_attributions(
    report: &mut Report,
    section: crate::attribution::report::AttributionSection,
) {
    report.summary.attributions = section.summaries;
    for (record, entries) in report.samples.iter_mut().zip(section.samples) {
        record.attributions = entries;
    }
    report.timings.attributions = section.timings;
    report.timings.total_seconds += section.seconds;
}

/// Builds the report.
pub fn build_report(inp: &ReportInputs) -> Report {
    let labels = &inp.data.labels;
    let n = labels.len();
    let clean_correct: Vec<bool> = inp
        .results
        .clean
        .predictions
        .predicted
        .iter()
        .zip(labels)
        .map(|(p, y)| p == y)
        .collect();
    let n_correct = clean_correct.iter().filter(|&&c| c).count();
    let clean_accuracy = n_correct as f64 / n as f64;
    // How the outputs are read comes first: every figure depends on it.
    let mut warnings = inp.model.network.spec().output_notes();
    warnings.extend(inp.model.warnings.iter().cloned());
    if !inp.model.unused.is_empty() {
        warnings.push(format!(
            "{} tensors in the model file are not used by any layer: {}",
            inp.model.unused.len(),
            inp.model.unused.join(", ")
        ));
    }
    warnings.extend(inp.data_notes.warnings.iter().cloned());

    let mut summaries = Vec::new();
    for a in &inp.results.attacks {
        let robust = a
            .predictions
            .predicted
            .iter()
            .zip(labels)
            .filter(|(p, y)| p == y)
            .count();
        let broken: Vec<usize> = (0..n)
            .filter(|&i| clean_correct[i] && a.success[i])
            .collect();
        let linf: Vec<f64> = broken.iter().map(|&i| a.linf[i]).collect();
        let l2: Vec<f64> = broken.iter().map(|&i| a.l2[i]).collect();
        let l1: Vec<f64> = broken.iter().map(|&i| a.l1[i]).collect();
        let robust_accuracy = robust as f64 / n as f64;
        let distance = a.spec.is_minimum_norm().then(|| {
            let norms = match a.spec.norm() {
                crate::attack::Norm::Linf => &a.linf,
                crate::attack::Norm::L2 => &a.l2,
                crate::attack::Norm::L1 => &a.l1,
            };
            distance_summary(&clean_correct, &a.success, norms, a.spec.eps())
        });
        summaries.push(AttackSummary {
            name: a.spec.name.clone(),
            kind: a.spec.kind().to_string(),
            norm: a.spec.norm(),
            eps: a.spec.eps(),
            curve: a.spec.curve.clone(),
            target: a.spec.target_label(),
            robust_accuracy,
            attack_success_rate: if n_correct == 0 {
                0.0
            } else {
                broken.len() as f64 / n_correct as f64
            },
            successes: a.success.iter().filter(|&&s| s).count(),
            mean_perturbation_linf: mean(linf.iter().copied()),
            median_perturbation_linf: median(&linf),
            mean_perturbation_l2: mean(l2.iter().copied()),
            median_perturbation_l2: median(&l2),
            mean_perturbation_l1: mean(l1.iter().copied()),
            median_perturbation_l1: median(&l1),
            gradient_evaluations: a.gradient_evaluations,
            distance,
        });
    }

    let samples: Vec<SampleRecord> = (0..n)
        .map(|i| SampleRecord {
            index: i,
            label: labels[i],
            prediction: inp.results.clean.predictions.predicted[i],
            top5: top_k(&inp.results.clean.predictions.probabilities[i], 5),
            attacks: inp
                .results
                .attacks
                .iter()
                .map(|a| SampleAttack {
                    name: a.spec.name.clone(),
                    prediction: a.predictions.predicted[i],
                    top5: top_k(&a.predictions.probabilities[i], 5),
                    target: a.targets.as_ref().map(|t| t[i]),
                    success: a.success[i],
                    perturbation_linf: a.linf[i],
                    perturbation_l2: a.l2[i],
                    perturbation_l1: Some(a.l1[i]),
                    true_class_probability: a.predictions.probabilities[i]
                        .get(labels[i] as usize)
                        .map(|&p| p as f64),
                    margin: a.logits.get(i).and_then(|z| logit_margin(z, labels[i])),
                })
                .collect(),
            stress: None,
            equivariance: None,
            attributions: Vec::new(),
            margin: inp
                .results
                .clean
                .logits
                .get(i)
                .and_then(|z| logit_margin(z, labels[i])),
        })
        .collect();

    let budgets: Vec<_> = summaries
        .iter()
        .map(|a| (a.name.clone(), a.norm, a.eps))
        .collect();
    let threat_models = super::threat::threat_models(&budgets, &samples);
    let spec = inp.model.network.spec();
    Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "xai-audit".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            engine: None,
        },
        model: ModelInfo {
            path: inp.model_path.to_string(),
            sha256: inp.model.sha256.clone(),
            spec_source: inp.model.spec_source.to_string(),
            spec: serde_json::to_value(spec).expect("spec serializes"),
            parameter_count: spec.parameter_count(),
            class_names: spec.class_names(),
        },
        data: DataInfo {
            source: inp.data.source.clone(),
            count: n,
            sha256: inp.data.sha256.clone(),
            input_shape: spec.input.shape,
            subset: Some(inp.data_notes.subset.clone()),
        },
        plan: inp.plan.clone(),
        plan_origin: None,
        timings: Timings {
            started_at: inp.started_at.clone(),
            total_seconds: inp.results.total_seconds,
            clean_seconds: inp.results.clean.seconds,
            attacks: inp
                .results
                .attacks
                .iter()
                .map(|a| AttackTiming {
                    name: a.spec.name.clone(),
                    seconds: a.seconds,
                })
                .collect(),
            stress: Vec::new(),
            equivariance: Vec::new(),
            attributions: Vec::new(),
            shards: None,
        },
        summary: Summary {
            count: n,
            clean_accuracy,
            eps_curves: eps_curves(&summaries),
            threat_models,
            attacks: summaries,
            sanity: Vec::new(),
            stress: None,
            equivariance: None,
            attributions: Vec::new(),
        },
        samples,
        warnings,
        tensors: inp.tensors_file.clone(),
    }
}

/// A minimum-norm attack's distances over the inputs classified correctly
/// (`clean_correct`): an input it broke (`success`) is at its perturbation
/// norm (`norms`, in the attack's norm), one it did not at +∞ (none found,
/// or none within `eps`, beyond which the attack keeps no point).
pub fn distance_summary(
    clean_correct: &[bool],
    success: &[bool],
    norms: &[f64],
    eps: Option<f64>,
) -> DistanceSummary {
    let distances: Vec<Option<f64>> = (0..clean_correct.len())
        .filter(|&i| clean_correct[i])
        .map(|i| success[i].then_some(norms[i]))
        .collect();
    let inputs = distances.len();
    let broken = distances.iter().filter(|d| d.is_some()).count();
    DistanceSummary {
        inputs,
        broken,
        percentile_25: quantile(&distances, 0.25),
        median: quantile(&distances, 0.5),
        percentile_75: quantile(&distances, 0.75),
        broken_within_eps: eps.map(|_| {
            if inputs == 0 {
                0.0
            } else {
                broken as f64 / inputs as f64
            }
        }),
    }
}

/// Groups the entries expanded from ε lists into curves.
fn eps_curves(summaries: &[AttackSummary]) -> Vec<EpsCurve> {
    let mut curves: Vec<EpsCurve> = Vec::new();
    for a in summaries {
        let Some(name) = &a.curve else { continue };
        let point = EpsPoint {
            eps: a.eps.unwrap_or(0.0),
            robust_accuracy: a.robust_accuracy,
        };
        match curves.iter_mut().find(|c| &c.name == name) {
            Some(c) => c.points.push(point),
            None => curves.push(EpsCurve {
                name: name.clone(),
                norm: a.norm,
                points: vec![point],
            }),
        }
    }
    curves
}

/// The sidecar's tensors: `x/clean` and `x/adv/<attack>`, each `[N, C, H, W]`.
pub fn sidecar_tensors(results: &AuditResults, shape: [usize; 4]) -> Result<Vec<(String, Tensor)>> {
    let dims = (shape[0], shape[1], shape[2], shape[3]);
    let mut out = vec![(
        crate::sidecar::CLEAN_INPUTS.to_string(),
        Tensor::from_slice(&results.clean.inputs, dims, &Device::Cpu)?,
    )];
    for a in &results.attacks {
        out.push((
            crate::sidecar::adversarial_inputs(&a.spec.name),
            Tensor::from_slice(&a.adversarial, dims, &Device::Cpu)?,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_count_unbroken_inputs_as_infinitely_far() {
        // Six inputs: one misclassified (left out), four broken at 0.4,
        // 0.1, 0.3, 0.2, one not broken.
        let correct = [true, true, false, true, true, true];
        let success = [true, true, true, true, true, false];
        let norms = [0.4, 0.1, 9.0, 0.3, 0.2, 0.0];
        let d = distance_summary(&correct, &success, &norms, None);
        assert_eq!((d.inputs, d.broken), (5, 4));
        // Sorted: 0.1 0.2 0.3 0.4 ∞; numpy's linear rule puts the 25th
        // percentile at position 1 (0.2), the median at 2 (0.3) and the
        // 75th at 3 (0.4).
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
        assert!(close(d.percentile_25, 0.2), "{d:?}");
        assert!(close(d.median, 0.3), "{d:?}");
        assert!(close(d.percentile_75, 0.4), "{d:?}");
        assert_eq!(d.broken_within_eps, None);
        // With an ε, two of five broken within it: the median falls among
        // the unbroken (beyond ε), the 25th percentile between 0.1 and 0.2.
        let success = [false, true, true, false, true, false];
        let d = distance_summary(&correct, &success, &norms, Some(0.25));
        assert_eq!((d.inputs, d.broken), (5, 2));
        assert!(close(d.percentile_25, 0.2), "{d:?}");
        assert_eq!((d.median, d.percentile_75), (None, None));
        assert_eq!(d.broken_within_eps, Some(0.4));
        // Sorted 0.1 0.2 ∞ ∞ ∞ over four inputs instead: 25th at
        // position 0.75, three quarters of the way from 0.1 to 0.2.
        let d = distance_summary(
            &[true; 4],
            &[true, true, false, false],
            &[0.1, 0.2, 0.0, 0.0],
            Some(1.0),
        );
        assert!(close(d.percentile_25, 0.175), "{d:?}");
        assert_eq!(d.median, None);
        assert_eq!(d.broken_within_eps, Some(0.5));
    }

    #[test]
    fn top_k_orders_by_probability_then_index() {
        let t = top_k(&[0.1, 0.4, 0.1, 0.4], 3);
        let classes: Vec<u32> = t.iter().map(|c| c.class).collect();
        assert_eq!(classes, [1, 3, 0]);
    }

    #[test]
    fn the_logit_margin_is_the_true_logit_minus_the_best_other() {
        // Correct: 3.0 − 1.5; misclassified: 1.5 − 3.0.
        assert_eq!(logit_margin(&[1.5, 3.0, -2.0], 1), Some(1.5));
        assert_eq!(logit_margin(&[1.5, 3.0, -2.0], 0), Some(-1.5));
        // A tie with the runner-up is a zero margin.
        assert_eq!(logit_margin(&[2.0, 2.0], 0), Some(0.0));
        assert_eq!(logit_margin(&[2.0], 0), None);
        assert_eq!(logit_margin(&[2.0, 1.0], 2), None);
        assert_eq!(logit_margin(&[f32::INFINITY, 1.0], 0), None);
    }
}
