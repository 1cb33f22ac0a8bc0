//! The equivariance section (`summary.equivariance`): prediction
//! consistency and accuracy per transform of each shift, rotation and flip
//! entry, the Lie derivatives and the worst case over a grid of rotations
//! and translations.

use std::fmt::Write as _;

use super::chart::Chart;
use super::{cell, escape, num, pct, Builder};
use crate::error::Result;
use crate::report::types::Report;

pub(super) fn equivariance(b: &mut Builder, r: &Report) -> Result<()> {
    b.out
        .push_str("<section id=\"equivariance\">\n<h2>Symmetries</h2>\n");
    let Some(e) = &r.summary.equivariance else {
        b.out.push_str("<p class=\"missing\">No equivariance check in this report: add <code>[[equivariance]]</code> entries to the plan (shift, rotation, flip, lie_derivative, worst_case; the default plan <code>attacks/mnist.toml</code> has them).</p>\n</section>\n");
        return Ok(());
    };
    for (i, c) in e.consistency.iter().enumerate() {
        let k = |f: &str| format!("equivariance/{}/{f}", c.name);
        let mut table = format!(
            "<table>\n<tr><th>expected</th><td>{}</td></tr>\n<tr><th>mean consistency</th>{}</tr>\n<tr><th>lowest consistency</th>{}</tr>\n</table>\n\
             <table>\n<thead><tr><th>transform</th><th>consistency</th><th>accuracy</th><th>mean confidence</th></tr></thead>\n<tbody>\n",
            if c.expect_invariant {
                "the same prediction"
            } else {
                "a changed prediction"
            },
            cell(&k("mean_consistency"), &pct(c.mean_consistency)),
            cell(&k("lowest_consistency"), &pct(c.lowest_consistency)),
        );
        for t in &c.transforms {
            let _ = writeln!(
                table,
                "<tr><td>{}</td>{}{}<td class=\"n\">{}</td></tr>",
                escape(&t.transform),
                cell(
                    &k(&format!("{}/consistency", t.transform)),
                    &pct(t.consistency)
                ),
                cell(&k(&format!("{}/accuracy", t.transform)), &pct(t.accuracy)),
                num(t.mean_confidence),
            );
        }
        table.push_str("</tbody>\n</table>\n");
        let chart = Chart::Bars {
            title: format!("{} ({})", c.name, c.kind),
            y_label: "share of inputs (%)".into(),
            categories: c.transforms.iter().map(|t| t.transform.clone()).collect(),
            groups: vec![
                (
                    "consistency".into(),
                    c.transforms.iter().map(|t| t.consistency * 100.0).collect(),
                ),
                (
                    "accuracy".into(),
                    c.transforms.iter().map(|t| t.accuracy * 100.0).collect(),
                ),
            ],
            y_range: 0.0..100.0,
        };
        let expectation = if c.expect_invariant {
            "The plan expects the same prediction under each transform: consistency should be high."
        } else {
            "The plan expects the prediction to change (a flipped 6 is not a 6): a high consistency means the model ignores a change it should notice."
        };
        b.figure(
            &format!("consistency-{i}"),
            chart,
            &format!("Consistency (share of inputs whose prediction stays the clean one) and accuracy under each transform. {expectation}"),
            &table,
        )?;
    }
    for (i, l) in e.lie_derivative.iter().enumerate() {
        let method = match l.method {
            crate::stress::lie_derivative::LieMethod::Exact => "exact, by Jacobian–vector product",
            crate::stress::lie_derivative::LieMethod::FiniteDifference => {
                "central finite difference"
            }
        };
        let mut table = String::from(
            "<table>\n<thead><tr><th>transform</th><th>unit</th><th>mean</th><th>median</th><th>max</th></tr></thead>\n<tbody>\n",
        );
        for t in &l.transforms {
            let k = |f: &str| format!("equivariance/{}/{}/{f}", l.name, t.transform.as_str());
            let _ = writeln!(
                table,
                "<tr><td>{}</td><td>{}</td>{}{}{}</tr>",
                t.transform.as_str(),
                escape(&t.unit),
                cell(&k("mean"), &num(t.mean)),
                cell(&k("median"), &num(t.median)),
                cell(&k("max"), &num(t.max)),
            );
        }
        table.push_str("</tbody>\n</table>\n");
        let top = l
            .transforms
            .iter()
            .map(|t| t.mean.max(t.median))
            .fold(0.0f64, f64::max);
        let chart = Chart::Bars {
            title: format!("Lie derivatives ({})", l.name),
            y_label: "mean over classes of |d softmax / dt|".into(),
            categories: l
                .transforms
                .iter()
                .map(|t| format!("{} ({})", t.transform.as_str(), t.unit.replace('_', " ")))
                .collect(),
            groups: vec![
                ("mean".into(), l.transforms.iter().map(|t| t.mean).collect()),
                (
                    "median".into(),
                    l.transforms.iter().map(|t| t.median).collect(),
                ),
            ],
            y_range: 0.0..if top > 0.0 { top * 1.15 } else { 1.0 },
        };
        b.figure(
            &format!("lie-derivative-{i}"),
            chart,
            &format!("How fast the predicted probabilities change under an infinitesimal translation or rotation ({method}; Gruver et al. 2023): 0 is an exactly invariant model. A mean far above the median means a few inputs carry the sensitivity (see the max)."),
            &table,
        )?;
    }
    for w in &e.worst_case {
        let k = |f: &str| format!("equivariance/{}/{f}", w.name);
        let _ = writeln!(
            b.out,
            "<h3>Worst case over {} rotations and translations: {}</h3>\n<table>\n<tr><th>clean accuracy</th>{}</tr>\n<tr><th>worst-case accuracy</th>{}</tr>\n<tr><th>mean lowest true-class probability</th>{}</tr>\n</table>",
            w.grid_size,
            escape(&w.name),
            cell(&k("clean_accuracy"), &pct(w.clean_accuracy)),
            cell(&k("worst_case_accuracy"), &pct(w.worst_case_accuracy)),
            cell(
                &k("mean_worst_true_class_probability"),
                &num(w.mean_worst_true_class_probability)
            ),
        );
    }
    b.out.push_str("</section>\n");
    Ok(())
}
