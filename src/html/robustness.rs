//! The robustness section: clean and robust accuracy per attack, robust
//! accuracy against ε per ε-list entry, every attack together per threat
//! model.

use std::fmt::Write as _;

use super::chart::{Chart, Series};
use super::{cell, escape, num, opt_cell, pct, Builder};
use crate::attack::Norm;
use crate::error::Result;
use crate::report::threat::robust_under;
use crate::report::types::{AttackSummary, Report};

fn budget(a: &AttackSummary) -> String {
    match a.eps {
        Some(e) => format!("{} {}", a.norm, num(e)),
        None if a.kind == "spatial" => "rotations and translations".into(),
        None => format!("{} minimum norm, no ε", a.norm),
    }
}

pub(super) fn robustness(b: &mut Builder, r: &Report) -> Result<()> {
    let s = &r.summary;
    b.out
        .push_str("<section id=\"robustness\">\n<h2>Robustness</h2>\n");
    if s.attacks.is_empty() {
        b.out.push_str("<p class=\"missing\">No attack in this report: add <code>[[attack]]</code> entries to the plan (the default plan, <code>attacks/mnist.toml</code>, has FGSM, PGD and AutoAttack).</p>\n</section>\n");
        return Ok(());
    }
    // A minimum-norm attack without ε breaks every input it can: its
    // "robust accuracy" is no budget's, so the chart leaves it out (its
    // distances have their own chart below).
    let budgeted: Vec<&AttackSummary> = s
        .attacks
        .iter()
        .filter(|a| a.curve.is_none() && !(a.eps.is_none() && a.distance.is_some()))
        .collect();
    let mut table = String::from(
        "<table>\n<thead><tr><th>attack</th><th>kind</th><th>budget</th><th>robust accuracy</th><th>success rate</th><th>median L∞</th><th>median L2</th></tr></thead>\n<tbody>\n",
    );
    for a in &s.attacks {
        let k = |f: &str| format!("attack/{}/{f}", a.name);
        let _ = writeln!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{}</td>{}{}{}{}</tr>",
            escape(&a.name),
            escape(&a.kind),
            escape(&budget(a)),
            if a.eps.is_none() && a.distance.is_some() {
                // Unbounded: it breaks whatever it can, so no share of
                // inputs is "robust"; its distances are below.
                "<td class=\"n\">– (no ε)</td>".to_string()
            } else {
                cell(&k("robust_accuracy"), &pct(a.robust_accuracy))
            },
            cell(&k("attack_success_rate"), &pct(a.attack_success_rate)),
            opt_cell(
                &k("median_perturbation_linf"),
                a.median_perturbation_linf,
                num
            ),
            opt_cell(&k("median_perturbation_l2"), a.median_perturbation_l2, num),
        );
    }
    table.push_str("</tbody>\n</table>\n");
    let shown: Vec<&AttackSummary> = if budgeted.is_empty() {
        s.attacks.iter().collect()
    } else {
        budgeted
    };
    let chart = Chart::Bars {
        title: "Clean and robust accuracy per attack".into(),
        y_label: "accuracy (%)".into(),
        categories: shown.iter().map(|a| a.name.clone()).collect(),
        groups: vec![
            ("clean".into(), vec![s.clean_accuracy * 100.0; shown.len()]),
            (
                "robust".into(),
                shown.iter().map(|a| a.robust_accuracy * 100.0).collect(),
            ),
        ],
        y_range: 0.0..105.0,
    };
    b.figure("robust-accuracy", chart,
        "Clean accuracy and the robust accuracy each attack leaves (share of all inputs still classified correctly at the best adversarial found).",
        &table,
    )?;
    if !s.eps_curves.is_empty() {
        let mut table = String::from(
            "<table>\n<thead><tr><th>curve</th><th>norm</th><th>ε</th><th>robust accuracy</th></tr></thead>\n<tbody>\n",
        );
        for c in &s.eps_curves {
            for p in &c.points {
                let _ = writeln!(
                    table,
                    "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td>{}</tr>",
                    escape(&c.name),
                    c.norm,
                    num(p.eps),
                    cell(
                        &format!("curve/{}/{}/robust_accuracy", c.name, p.eps),
                        &pct(p.robust_accuracy)
                    ),
                );
            }
        }
        table.push_str("</tbody>\n</table>\n");
        // One chart per norm: ε units differ between them.
        let mut norms: Vec<String> = s.eps_curves.iter().map(|c| c.norm.to_string()).collect();
        norms.dedup();
        for (i, norm) in norms.iter().enumerate() {
            let series = s
                .eps_curves
                .iter()
                .filter(|c| &c.norm.to_string() == norm)
                .map(|c| Series {
                    name: c.name.clone(),
                    points: c
                        .points
                        .iter()
                        .map(|p| (p.eps, p.robust_accuracy * 100.0))
                        .collect(),
                })
                .collect();
            let chart = Chart::Lines {
                title: format!("Robust accuracy against ε ({norm})"),
                x_label: format!("ε ({norm}, input units)"),
                y_label: "robust accuracy (%)".into(),
                series,
                y_range: 0.0..105.0,
                log_x: false,
            };
            let t = if i + 1 == norms.len() {
                table.as_str()
            } else {
                ""
            };
            b.figure(
                &format!("eps-curve-{i}"),
                chart,
                &format!("Robust accuracy as the {norm} budget grows, per ε-list entry."),
                t,
            )?;
        }
    }
    if !s.threat_models.is_empty() {
        b.out.push_str("<h3>Every attack together, per budget</h3>\n<table>\n<thead><tr><th>norm</th><th>ε</th><th>attacks</th><th>robust accuracy</th></tr></thead>\n<tbody>\n");
        for t in &s.threat_models {
            let _ = writeln!(
                b.out,
                "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td>{}</tr>",
                t.norm,
                num(t.eps),
                escape(&t.attacks.join(", ")),
                cell(
                    &format!("threat/{}/{}/robust_accuracy", t.norm, t.eps),
                    &pct(t.robust_accuracy)
                ),
            );
        }
        b.out.push_str("</tbody>\n</table>\n");
    }
    per_class(b, r)?;
    minimum_norm(b, r)?;
    b.out.push_str("</section>\n");
    Ok(())
}

/// Classes drawn on the per-class chart; more are listed worst first.
const MAX_CLASSES: usize = 20;

/// Clean accuracy and robust accuracy under each threat model per true
/// class, counted from the per-input records.
fn per_class(b: &mut Builder, r: &Report) -> Result<()> {
    let names = &r.model.class_names;
    let k = names.len().max(
        r.samples
            .iter()
            .map(|s| s.label as usize + 1)
            .max()
            .unwrap_or(0),
    );
    if k == 0 || r.samples.is_empty() {
        return Ok(());
    }
    let models = &r.summary.threat_models;
    let mut inputs = vec![0usize; k];
    let mut correct = vec![0usize; k];
    let mut robust = vec![vec![0usize; k]; models.len()];
    for s in &r.samples {
        let y = s.label as usize;
        inputs[y] += 1;
        correct[y] += usize::from(s.prediction == s.label);
        for (m, counts) in models.iter().zip(&mut robust) {
            counts[y] += usize::from(robust_under(m, s));
        }
    }
    let share = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let mut classes: Vec<usize> = (0..k).filter(|&c| inputs[c] > 0).collect();
    let all = classes.len();
    if all > MAX_CLASSES {
        // Worst first under the first threat model (clean accuracy without one).
        let score = |c: usize| match robust.first() {
            Some(rb) => share(rb[c], inputs[c]),
            None => share(correct[c], inputs[c]),
        };
        classes.sort_by(|&a, &b| score(a).total_cmp(&score(b)).then(a.cmp(&b)));
        classes.truncate(MAX_CLASSES);
    }
    let label = |c: usize| crate::data::class_label(names, c);
    let mut table =
        String::from("<table>\n<thead><tr><th>class</th><th>inputs</th><th>clean accuracy</th>");
    for m in models {
        let _ = write!(table, "<th>robust, {} {}</th>", m.norm, num(m.eps));
    }
    table.push_str("</tr></thead>\n<tbody>\n");
    for &c in &classes {
        let _ = write!(
            table,
            "<tr><td>{}</td>{}{}",
            escape(&label(c)),
            cell(&format!("class/{c}/inputs"), &inputs[c].to_string()),
            cell(
                &format!("class/{c}/clean_accuracy"),
                &pct(share(correct[c], inputs[c]))
            ),
        );
        for (m, counts) in models.iter().zip(&robust) {
            table.push_str(&cell(
                &format!("class/{c}/robust/{}/{}", m.norm, m.eps),
                &pct(share(counts[c], inputs[c])),
            ));
        }
        table.push_str("</tr>\n");
    }
    table.push_str("</tbody>\n</table>\n");
    let mut groups = vec![(
        "clean".to_string(),
        classes
            .iter()
            .map(|&c| 100.0 * share(correct[c], inputs[c]))
            .collect(),
    )];
    for (m, counts) in models.iter().zip(&robust) {
        groups.push((
            format!("{} {}", m.norm, num(m.eps)),
            classes
                .iter()
                .map(|&c| 100.0 * share(counts[c], inputs[c]))
                .collect(),
        ));
    }
    let chart = Chart::Bars {
        title: "Clean and robust accuracy per true class".into(),
        y_label: "accuracy (%)".into(),
        categories: classes.iter().map(|&c| label(c)).collect(),
        groups,
        y_range: 0.0..100.0,
    };
    let caption = if all > MAX_CLASSES {
        format!("The {MAX_CLASSES} classes (of {all} with inputs) with the lowest robust accuracy under the first threat model; robust means no attack at that budget broke the input.")
    } else {
        "Accuracy per true class, clean and under each threat model (robust: no attack at that budget broke the input).".to_string()
    };
    b.figure("per-class", chart, &caption, &table)
}

/// The distance to the decision boundary that each minimum-norm attack
/// found, as a cumulative distribution over the correctly classified inputs.
fn minimum_norm(b: &mut Builder, r: &Report) -> Result<()> {
    let entries: Vec<&AttackSummary> = r
        .summary
        .attacks
        .iter()
        .filter(|a| a.distance.is_some())
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    let mut table = String::from(
        "<table>\n<thead><tr><th>attack</th><th>norm</th><th>broken</th><th>25th pct</th><th>median</th><th>75th pct</th><th>within ε</th></tr></thead>\n<tbody>\n",
    );
    let mut by_norm: Vec<(String, Vec<Series>)> = Vec::new();
    for a in &entries {
        let Some(d) = &a.distance else { continue };
        let k = |f: &str| format!("attack/{}/distance/{f}", a.name);
        let _ = writeln!(
            table,
            "<tr><td>{}</td><td>{}</td>{}{}{}{}{}</tr>",
            escape(&a.name),
            a.norm,
            cell(&k("broken"), &format!("{} of {}", d.broken, d.inputs)),
            opt_cell(&k("percentile_25"), d.percentile_25, num),
            opt_cell(&k("median"), d.median, num),
            opt_cell(&k("percentile_75"), d.percentile_75, num),
            opt_cell(&k("broken_within_eps"), d.broken_within_eps, pct),
        );
        let mut found: Vec<f64> = r
            .samples
            .iter()
            .filter(|s| s.prediction == s.label)
            .filter_map(|s| {
                let x = s.attacks.iter().find(|x| x.name == a.name)?;
                if !x.success {
                    return None;
                }
                match a.norm {
                    Norm::Linf => Some(x.perturbation_linf),
                    Norm::L2 => Some(x.perturbation_l2),
                    Norm::L1 => x.perturbation_l1,
                }
            })
            .collect();
        found.sort_by(f64::total_cmp);
        let total = d.inputs.max(1) as f64;
        // At most ~300 points: the curve looks the same, the page stays light.
        let step = found.len().div_ceil(300).max(1);
        let mut points = vec![(0.0, 0.0)];
        points.extend(
            found
                .iter()
                .enumerate()
                .filter(|(i, _)| (i + 1) % step == 0 || i + 1 == found.len())
                .map(|(i, &x)| (x, 100.0 * (i + 1) as f64 / total)),
        );
        let series = Series {
            name: a.name.clone(),
            points,
        };
        let norm = a.norm.to_string();
        match by_norm.iter_mut().find(|(n, _)| *n == norm) {
            Some((_, list)) => list.push(series),
            None => by_norm.push((norm, vec![series])),
        }
    }
    table.push_str("</tbody>\n</table>\n");
    let last = by_norm.len();
    for (i, (norm, series)) in by_norm.into_iter().enumerate() {
        let chart = Chart::Lines {
            title: format!("Distance to the decision boundary ({norm})"),
            x_label: format!("perturbation size ({norm}, input units)"),
            y_label: "inputs broken within it (%)".into(),
            series,
            y_range: 0.0..105.0,
            log_x: false,
        };
        b.figure(
            &format!("minimum-norm-{i}"),
            chart,
            "Share of the correctly classified inputs each minimum-norm attack broke within a given perturbation size (its empirical CDF): the further right, the more robust. The quartiles are over the correctly classified inputs, an input not broken counting as infinitely far.",
            if i + 1 == last { &table } else { "" },
        )?;
    }
    Ok(())
}
