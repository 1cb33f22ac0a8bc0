//! The robustness section: clean and robust accuracy per attack, robust
//! accuracy against ε per ε-list entry, every attack together per threat
//! model.

use std::fmt::Write as _;

use super::chart::{Chart, Series};
use super::{cell, escape, num, opt_cell, pct, Builder};
use crate::error::Result;
use crate::report::types::{AttackSummary, Report};

fn budget(a: &AttackSummary) -> String {
    match a.eps {
        Some(e) => format!("{} {}", a.norm, num(e)),
        None => format!("{} minimum norm", a.norm),
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
    let budgeted: Vec<&AttackSummary> = s.attacks.iter().filter(|a| a.curve.is_none()).collect();
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
            cell(&k("robust_accuracy"), &pct(a.robust_accuracy)),
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
    b.out.push_str("</section>\n");
    Ok(())
}
