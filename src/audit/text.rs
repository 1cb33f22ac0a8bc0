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
use crate::attack::{AttackSpec, Norm};
use crate::data::{class_label, DataNotes, Dataset};
use crate::report::threat::{self, format_eps, short_number};
use crate::report::types::{AttackSummary, DistanceSummary, Report};

/// Everything `run` prints once the report is written: the summary table,
/// the paths of the report, its tensors, the shards' balance (after a
/// merge) and (when `images_dir` is given) the PNGs, then the gates.
pub fn run_summary(output: &JobOutput, images_dir: Option<&Path>) -> String {
    let mut out = summary_table(&output.report);
    out.push_str(&format!(
        "\nreport  {}\ntensors {}\n",
        output.report_path.display(),
        output.tensors_path.display()
    ));
    if let Some(shards) = &output.report.timings.shards {
        out.push_str(&format!("balance {}\n", shards.load_balance));
    }
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

/// The report's headline figures: model, data and plan; clean accuracy;
/// the robust accuracy per threat model against the standard ones; one
/// line per attack with a key to the columns; minimum-norm attacks as
/// distances; sanity findings, ε curves, the stress, equivariance and
/// attribution lines, and the warnings.
pub fn summary_table(report: &Report) -> String {
    let s = &report.summary;
    let correct = report
        .samples
        .iter()
        .filter(|x| x.prediction == x.label)
        .count();
    let mut out = format!(
        "model {} ({} parameters)\ndata  {} ({} inputs)\n{}\nclean accuracy {:.2}% ({correct} of {})\n",
        report.model.path,
        report.model.parameter_count,
        report.data.source,
        s.count,
        plan_line(report),
        100.0 * s.clean_accuracy,
        s.count
    );
    out.push_str(&threat_model_lines(report));
    out.push_str(&attack_lines(report, correct));
    out.push_str(&distance_lines(report, correct));
    for f in &s.sanity {
        out.push_str(&format!("\nsanity: {}: {}", f.check, f.message));
    }
    if !s.sanity.is_empty() {
        out.push('\n');
    }
    let range = report.model.input_range();
    for c in &s.eps_curves {
        out.push_str(&format!(
            "\nrobust accuracy vs ε ({}, {}):",
            c.name,
            c.norm.symbol()
        ));
        for p in &c.points {
            out.push_str(&format!(
                " {}→{:.2}%",
                format_eps(p.eps, range),
                100.0 * p.robust_accuracy
            ));
        }
        out.push('\n');
    }
    out.push_str(&crate::stress::report::summary_lines(
        s.stress.as_ref(),
        s.equivariance.as_ref(),
        &report.timings.stress,
        &report.timings.equivariance,
        &report.model.class_names,
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

/// The plan's line, under the model and the data: what the plan holds and
/// its seed. (Where the plan came from, a preset or a file, belongs on
/// this line too.)
fn plan_line(report: &Report) -> String {
    let p = &report.plan;
    let origin = match &report.plan_origin {
        Some(o) => match &o.preset {
            Some(name) => format!("preset {name} (built in, {}): {}\n      ", o.file, o.reason),
            None => format!("{}: ", o.file),
        },
        None => String::new(),
    };
    format!(
        "plan  {origin}{} attack, {} stress, {} equivariance and {} attribution entries, seed {}\n",
        p.attacks.len(),
        p.stress.len(),
        p.equivariance.len(),
        p.attributions.len(),
        p.seed
    )
}

/// The plan entry of the attack `name` (the report embeds the plan).
fn plan_entry<'a>(report: &'a Report, name: &str) -> Option<&'a AttackSpec> {
    report.plan.attacks.iter().find(|p| p.name == name)
}

/// The headline: per threat model (norm, ε), the robust accuracy against
/// every attack at that budget, which attacks produced it, and how it
/// stands against the standard threat models and AutoAttack's protocol.
fn threat_model_lines(report: &Report) -> String {
    let models = &report.summary.threat_models;
    if models.is_empty() {
        return String::new();
    }
    let range = report.model.input_range();
    let shape = report.data.input_shape;
    let mut out = String::from(
        "\nrobust accuracy per threat model (an input counts as robust only if no attack at that norm and ε broke it)\n",
    );
    for m in models {
        out.push_str(&format!(
            "  {} ε {}: {:.2}% ({} of {}), worst case over {}\n",
            m.norm.symbol(),
            format_eps(m.eps, range),
            100.0 * m.robust_accuracy,
            m.robust,
            report.summary.count,
            m.attacks.join(", ")
        ));
        out.push_str(&format!(
            "    {}\n",
            threat::standard_note(m.norm, m.eps, shape, range)
        ));
        let specs: Vec<&AttackSpec> = m
            .attacks
            .iter()
            .filter_map(|name| plan_entry(report, name))
            .collect();
        out.push_str(&format!("    {}\n", threat::protocol_note(&specs)));
    }
    for s in threat::unattacked_standards(models, shape, range) {
        out.push_str(&format!(
            "  not attacked: the standard threat model {}\n",
            s.describe()
        ));
    }
    out
}

/// The attacks with a budget (or none, like the spatial attack) and the
/// key to their columns; minimum-norm attacks have their own table.
fn attack_lines(report: &Report, correct: usize) -> String {
    let s = &report.summary;
    let range = report.model.input_range();
    let rows: Vec<&AttackSummary> = s.attacks.iter().filter(|a| a.distance.is_none()).collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n{:<22} {:<10} {:<4} {:<16} {:>10} {:>12} {:>11}\n",
        "attack", "kind", "norm", "ε", "robust acc", "success rate", "median ‖δ‖"
    );
    let mut unbounded = Vec::new();
    for a in rows {
        let median = match a.norm {
            Norm::Linf => a.median_perturbation_linf,
            Norm::L2 => a.median_perturbation_l2,
            Norm::L1 => a.median_perturbation_l1,
        };
        let eps = match a.eps {
            Some(e) => format_eps(e, range),
            None => {
                let note = plan_entry(report, &a.name).and_then(AttackSpec::budget_note);
                if note.is_some() {
                    unbounded.push(a.name.as_str());
                }
                note.unwrap_or_else(|| "-".into())
            }
        };
        out.push_str(&format!(
            "{:<22} {:<10} {:<4} {:<16} {:>9.2}% {:>11.2}% {:>11}\n",
            a.name,
            a.kind,
            a.norm.symbol(),
            eps,
            100.0 * a.robust_accuracy,
            100.0 * a.attack_success_rate,
            median.map_or("-".to_string(), |m| format!("{m:.4}"))
        ));
    }
    out.push_str(&format!(
        "key: robust acc    share of all {n} inputs still classified correctly after the attack (misclassified clean inputs count as not robust)\n     \
         success rate  share of the {correct} correctly classified inputs the attack broke (untargeted: misclassified; targeted: classified as the target)\n     \
         median ‖δ‖    median size of the perturbation over the inputs the attack broke, in the row's norm\n     \
         ε             the budget, in the model's input units (its range is [{lo}, {hi}])\n",
        n = s.count,
        lo = range.0,
        hi = range.1
    ));
    if !unbounded.is_empty() {
        out.push_str(&format!(
            "                   {}: no ε; rotations and shifts up to the angle and distance shown, ‖δ‖ the pixel change they make\n",
            unbounded.join(", ")
        ));
    }
    out
}

/// Minimum-norm attacks (FMN, and any attack of that family): each
/// correctly classified input's distance to the decision boundary, as
/// quantiles, and the share broken within the entry's ε when it has one
/// (the TUI's summary shows the same text).
pub fn distance_lines(report: &Report, correct: usize) -> String {
    let range = report.model.input_range();
    let rows: Vec<(&AttackSummary, &DistanceSummary)> = report
        .summary
        .attacks
        .iter()
        .filter_map(|a| a.distance.as_ref().map(|d| (a, d)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\nminimum-norm attacks: distance to the decision boundary of each of the {correct} correctly classified inputs\n{:<22} {:<10} {:<4} {:>14} {:>10} {:>10} {:>10}  within ε\n",
        "attack", "kind", "norm", "broken", "25th pct", "median", "75th pct"
    );
    for (a, d) in rows {
        let beyond = match a.eps {
            Some(e) => format!("> {}", short_number(e)),
            None => "not found".to_string(),
        };
        let q = |v: Option<f64>| v.map_or(beyond.clone(), |x| format!("{x:.4}"));
        let within = match (a.eps, d.broken_within_eps) {
            (Some(e), Some(share)) => {
                format!("{:.2}% (ε {})", 100.0 * share, format_eps(e, range))
            }
            _ => "- (no ε)".to_string(),
        };
        out.push_str(&format!(
            "{:<22} {:<10} {:<4} {:>14} {:>10} {:>10} {:>10}  {}\n",
            a.name,
            a.kind,
            a.norm.symbol(),
            format!("{} of {}", d.broken, d.inputs),
            q(d.percentile_25),
            q(d.median),
            q(d.percentile_75),
            within
        ));
    }
    out.push_str(
        "key: broken       inputs the attack found an adversarial for (within ε when the entry has one)\n     \
         25th pct, median, 75th pct\n                  \
         quantiles of the distance (the smallest perturbation found that changes the prediction, in the row's norm)\n                  \
         over the correctly classified inputs; one not broken counts as infinitely far: \"not found\", or \"> ε\" (none within ε)\n     \
         within ε     share of the correctly classified inputs broken within the entry's ε (without ε: a distance, not a robust accuracy)\n",
    );
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
/// and each class's (named `dog (2)`, see [`class_label`]), for the
/// classes the data holds.
pub fn eval_summary(
    model: &Path,
    data: &Dataset,
    notes: &DataNotes,
    predicted: &[u32],
    class_names: &[String],
) -> String {
    let accuracy = clean::accuracy(predicted, &data.labels);
    let mut out = format!(
        "model {}\ndata  {} ({} inputs: {})\nclean accuracy {:.2}%\n\n  {:<16} correct / total   accuracy\n",
        model.display(),
        data.source,
        data.len(),
        notes.subset,
        100.0 * accuracy,
        "class"
    );
    let counts = clean::per_class_counts(predicted, &data.labels, class_names.len());
    for (c, (correct, total)) in counts.into_iter().enumerate() {
        if total > 0 {
            out.push_str(&format!(
                "  {:<16} {correct:>7} / {total:<7} {:>7.2}%\n",
                class_label(class_names, c),
                100.0 * correct as f64 / total as f64
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::apgd::{ApgdConfig, ApgdLoss};
    use crate::attack::fmn::FmnConfig;
    use crate::attack::spatial::SpatialConfig;
    use crate::attack::AttackConfig;
    use crate::plan::Plan;
    use crate::report::types::*;
    use crate::stress::noise::NoiseFamily;
    use crate::stress::types::{NoiseFamilySummary, NoiseSummary, StressSummary};

    const EPS: f64 = 8.0 / 255.0;

    fn attack(name: &str, kind: &str, norm: Norm, eps: Option<f64>) -> AttackSummary {
        AttackSummary {
            name: name.into(),
            kind: kind.into(),
            norm,
            eps,
            curve: None,
            target: None,
            robust_accuracy: 0.6,
            attack_success_rate: 0.25,
            successes: 1,
            mean_perturbation_linf: Some(EPS),
            median_perturbation_linf: Some(EPS),
            mean_perturbation_l2: Some(0.75),
            median_perturbation_l2: Some(0.75),
            mean_perturbation_l1: Some(3.0),
            median_perturbation_l1: Some(3.0),
            gradient_evaluations: 10,
            distance: None,
        }
    }

    /// A 3×32×32 model of 4 named classes audited on 5 inputs, 4 classified
    /// correctly: APGD-CE and APGD-T at L∞ 8/255, FMN in L2 without a
    /// budget and in L∞ with one, and a spatial attack.
    fn report() -> Report {
        let apgd_t = ApgdConfig {
            loss: ApgdLoss::Dlr,
            target_classes: Some(3),
            ..ApgdConfig::new(Norm::Linf, EPS)
        };
        let plan = Plan {
            seed: 7,
            batch_size: 5,
            attacks: vec![
                AttackSpec::new("ce", AttackConfig::Apgd(ApgdConfig::new(Norm::Linf, EPS))),
                AttackSpec::new("t", AttackConfig::Apgd(apgd_t)),
                AttackSpec::new("fmn-l2", AttackConfig::Fmn(FmnConfig::new(Norm::L2, None))),
                AttackSpec::new(
                    "fmn-linf",
                    AttackConfig::Fmn(FmnConfig::new(Norm::Linf, Some(0.05))),
                ),
                AttackSpec::new("rigid", AttackConfig::Spatial(SpatialConfig::default())),
            ],
            stress: Vec::new(),
            equivariance: Vec::new(),
            attributions: Vec::new(),
            gates: Default::default(),
        };
        let mut fmn_l2 = attack("fmn-l2", "fmn", Norm::L2, None);
        // Distances 0.5, 1, 2 and one not found: quartiles by hand.
        fmn_l2.distance = Some(DistanceSummary {
            inputs: 4,
            broken: 3,
            percentile_25: Some(0.875),
            median: Some(1.5),
            percentile_75: None,
            broken_within_eps: None,
        });
        let mut fmn_linf = attack("fmn-linf", "fmn", Norm::Linf, Some(0.05));
        fmn_linf.distance = Some(DistanceSummary {
            inputs: 4,
            broken: 1,
            percentile_25: None,
            median: None,
            percentile_75: None,
            broken_within_eps: Some(0.25),
        });
        let sample = |label, prediction| SampleRecord {
            index: 0,
            label,
            prediction,
            top5: Vec::new(),
            attacks: Vec::new(),
            stress: None,
            equivariance: None,
            attributions: Vec::new(),
            margin: None,
        };
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "xai-audit".into(),
                version: "0".into(),
                engine: None,
            },
            model: ModelInfo {
                path: "m.safetensors".into(),
                sha256: String::new(),
                spec_source: "test".into(),
                spec: serde_json::json!({"input": {"shape": [3, 32, 32], "range": [0.0, 1.0]}}),
                parameter_count: 12,
                class_names: ["bird", "cat", "dog", "frog"].map(String::from).to_vec(),
            },
            data: DataInfo {
                source: "image folder imgs".into(),
                count: 5,
                sha256: String::new(),
                input_shape: [3, 32, 32],
                subset: None,
            },
            plan,
            plan_origin: None,
            timings: Timings {
                started_at: String::new(),
                total_seconds: 0.0,
                clean_seconds: 0.0,
                attacks: Vec::new(),
                stress: Vec::new(),
                equivariance: Vec::new(),
                attributions: Vec::new(),
                shards: None,
            },
            summary: Summary {
                count: 5,
                clean_accuracy: 0.8,
                attacks: vec![
                    attack("ce", "apgd", Norm::Linf, Some(EPS)),
                    attack("t", "apgd", Norm::Linf, Some(EPS)),
                    fmn_l2,
                    fmn_linf,
                    attack("rigid", "spatial", Norm::Linf, None),
                ],
                eps_curves: Vec::new(),
                threat_models: vec![
                    ThreatModelSummary {
                        norm: Norm::Linf,
                        eps: EPS,
                        attacks: vec!["ce".into(), "t".into()],
                        robust: 2,
                        robust_accuracy: 0.4,
                    },
                    ThreatModelSummary {
                        norm: Norm::Linf,
                        eps: 0.05,
                        attacks: vec!["fmn-linf".into()],
                        robust: 3,
                        robust_accuracy: 0.6,
                    },
                ],
                sanity: Vec::new(),
                stress: Some(StressSummary {
                    noise: vec![NoiseSummary {
                        name: "noise".into(),
                        data_mmc: 0.9,
                        data_confidence_histogram: Vec::new(),
                        families: vec![NoiseFamilySummary {
                            family: NoiseFamily::Uniform,
                            count: 10,
                            mmc: 0.99,
                            share_above_0_95: 1.0,
                            share_above_0_99: 0.5,
                            confidence_histogram: Vec::new(),
                            auroc: 0.5,
                            fpr_at_95_tpr: 1.0,
                            class_histogram: vec![0, 0, 10, 0],
                            top_class: 2,
                            top_class_share: 1.0,
                            collapsed: true,
                            examples: Vec::new(),
                        }],
                    }],
                    ..Default::default()
                }),
                equivariance: None,
                attributions: Vec::new(),
            },
            samples: vec![
                sample(0, 0),
                sample(1, 1),
                sample(2, 2),
                sample(3, 3),
                sample(3, 1),
            ],
            warnings: Vec::new(),
            tensors: None,
        }
    }

    fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
    }

    #[test]
    fn the_key_states_each_columns_denominator() {
        let text = summary_table(&report());
        assert!(text.contains("clean accuracy 80.00% (4 of 5)"), "{text}");
        assert!(
            text.contains("key: robust acc    share of all 5 inputs still classified correctly after the attack"),
            "{text}"
        );
        assert!(
            text.contains(
                "     success rate  share of the 4 correctly classified inputs the attack broke"
            ),
            "{text}"
        );
        assert!(text.contains("     median ‖δ‖    median size of the perturbation over the inputs the attack broke"), "{text}");
        assert!(
            text.contains("in the model's input units (its range is [0, 1])"),
            "{text}"
        );
        // The plan's line sits under the data's.
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("data "), "{text}");
        assert!(
            lines[2].starts_with("plan  5 attack, 0 stress") && lines[2].ends_with("seed 7"),
            "{text}"
        );
        // ε as 255ths; the spatial attack's bounds in its ε column.
        let ce = line_with(&text, "ce  ");
        assert!(
            ce.contains("0.0314 (8/255)") && ce.contains("60.00%") && ce.contains("25.00%"),
            "{ce}"
        );
        let rigid = line_with(&text, "rigid ");
        assert!(rigid.contains("±30° ±3 px"), "{rigid}");
        assert!(
            text.contains("                   rigid: no ε; rotations and shifts"),
            "{text}"
        );
    }

    #[test]
    fn minimum_norm_attacks_are_distances_not_robust_accuracies() {
        let text = summary_table(&report());
        let table_rows: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("attack "))
            .take_while(|l| !l.starts_with("key:"))
            .collect();
        assert!(
            table_rows.iter().all(|l| !l.starts_with("fmn")),
            "{table_rows:?}"
        );
        let header = line_with(&text, "minimum-norm attacks:");
        assert!(
            header.contains("each of the 4 correctly classified inputs"),
            "{header}"
        );
        let l2: Vec<&str> = line_with(&text, "fmn-l2 ").split_whitespace().collect();
        assert_eq!(
            l2,
            [
                "fmn-l2", "fmn", "L2", "3", "of", "4", "0.8750", "1.5000", "not", "found", "-",
                "(no", "ε)"
            ]
        );
        let linf = line_with(&text, "fmn-linf ");
        assert!(linf.contains("1 of 4"), "{linf}");
        assert_eq!(linf.matches("> 0.05").count(), 3, "{linf}");
        assert!(linf.contains("25.00% (ε 0.05)"), "{linf}");
        assert!(!linf.contains("60.00%"), "no robust accuracy: {linf}");
    }

    #[test]
    fn the_headline_places_each_threat_model_against_the_standard_ones() {
        let text = summary_table(&report());
        let head = line_with(&text, "L∞ ε 0.0314 (8/255):");
        assert!(
            head.contains("40.00% (2 of 5), worst case over ce, t"),
            "{head}"
        );
        assert!(text.contains("    the standard threat model: RobustBench's L∞ 8/255 for 32×32 RGB (CIFAR)\n    attacks APGD-CE, APGD-T only: not the AutoAttack standard protocol (it lacks FAB-T, Square)\n"), "{text}");
        let other = line_with(&text, "L∞ ε 0.05:");
        assert!(
            other.contains("60.00% (3 of 5), worst case over fmn-linf"),
            "{other}"
        );
        assert!(
            text.contains("not a standard threat model: ε differs from RobustBench's L∞ 8/255"),
            "{text}"
        );
        assert!(text.contains("attacks FMN only"), "{text}");
        assert!(
            text.contains("not attacked: the standard threat model RobustBench's L2 0.5 for 32×32 RGB (CIFAR)"),
            "{text}"
        );
        // The headline comes before the attack table.
        assert!(text.find("L∞ ε 0.0314").unwrap() < text.find("\nattack ").unwrap());
    }

    #[test]
    fn classes_read_by_name_with_their_index() {
        let text = summary_table(&report());
        let row = line_with(&text, "uniform ");
        assert!(row.ends_with("dog (2) (100.0%) collapsed"), "{row}");
        // Unnamed classes: the number alone.
        let mut r = report();
        r.model.class_names = (0..4).map(|c| c.to_string()).collect();
        let text = summary_table(&r);
        assert!(
            line_with(&text, "uniform ").ends_with(" 2 (100.0%) collapsed"),
            "{text}"
        );
    }

    #[test]
    fn eval_names_each_class() {
        let data = Dataset {
            pixels: vec![0.0; 4],
            shape: [4, 1, 1, 1],
            labels: vec![0, 2, 2, 3],
            class_names: ["bird", "cat", "dog", "frog"].map(String::from).to_vec(),
            source: "image folder imgs".into(),
            sha256: String::new(),
        };
        let names = data.class_names.clone();
        let text = eval_summary(
            Path::new("m.safetensors"),
            &data,
            &DataNotes::default(),
            &[0, 2, 1, 3],
            &names,
        );
        let dog: Vec<&str> = line_with(&text, "dog").split_whitespace().collect();
        assert_eq!(dog, ["dog", "(2)", "1", "/", "2", "50.00%"]);
        assert!(line_with(&text, "bird").contains("bird (0)"), "{text}");
        assert!(!text.contains("cat"), "no inputs of class 1: {text}");
    }
}
