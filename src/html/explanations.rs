//! The explanations section: each attribution entry's metrics, its mean
//! deletion/insertion and ROAD curves, and the model-randomization sanity
//! checks.

use std::fmt::Write as _;

use super::chart::{Chart, Series};
use super::{cell, escape, num, opt_cell, Builder};
use crate::attribution::report::AttributionSummary;
use crate::error::Result;
use crate::report::types::Report;

pub(super) fn attributions(b: &mut Builder, report: &Report) -> Result<()> {
    let entries = &report.summary.attributions;
    b.out
        .push_str("<section id=\"attributions\">\n<h2>Explanations</h2>\n");
    if entries.is_empty() {
        b.out.push_str("<p class=\"missing\">No attribution in this report: add <code>[[attribution]]</code> entries to the plan (<code>attacks/explanations.toml</code> runs every method with its sanity checks).</p>\n</section>\n");
        return Ok(());
    }
    b.out.push_str("<table>\n<thead><tr><th>entry</th><th>method</th><th>target</th><th>deletion AUC</th><th>insertion AUC</th><th>max-sensitivity</th><th>Gini</th><th>ROAD MoRF / LeRF</th><th>infidelity (median)</th><th>faithfulness corr.</th><th>mean |δ|</th><th>model calls per map</th></tr></thead>\n<tbody>\n");
    for e in entries {
        let k = |f: &str| format!("attribution/{}/{f}", e.name);
        let c = &e.clean;
        let _ = writeln!(b.out,
            "<tr><td>{}</td><td>{}</td><td>{}</td>{}{}{}{}{}{}{}{}{}</tr>",
            escape(&e.name),
            escape(&e.method),
            escape(&e.target),
            opt_cell(&k("deletion_auc"), c.mean_deletion_auc, num),
            opt_cell(&k("insertion_auc"), c.mean_insertion_auc, num),
            opt_cell(&k("max_sensitivity"), c.mean_max_sensitivity, num),
            opt_cell(&k("sparseness"), c.mean_sparseness, num),
            match (c.mean_road_morf_auc, c.mean_road_lerf_auc) {
                (Some(m), Some(l)) => format!(
                    "<td class=\"n\"><span data-key=\"{}\">{}</span> / <span data-key=\"{}\">{}</span></td>",
                    escape(&k("road_morf_auc")),
                    num(m),
                    escape(&k("road_lerf_auc")),
                    num(l)
                ),
                _ => "<td class=\"n\">–</td>".to_string(),
            },
            opt_cell(&k("median_infidelity"), c.median_infidelity, num),
            opt_cell(
                &k("faithfulness_correlation"),
                c.mean_faithfulness_correlation,
                num
            ),
            opt_cell(
                &k("mean_abs_convergence_delta"),
                c.mean_abs_convergence_delta,
                num
            ),
            cell(
                &k("model_calls_per_map"),
                &e.model_calls_per_map.to_string()
            ),
        );
    }
    b.out.push_str("</tbody>\n</table>\n");
    curves(b, report)?;
    let checked: Vec<&AttributionSummary> = entries
        .iter()
        .filter(|e| e.sanity.as_ref().is_some_and(|s| !s.cascading.is_empty()))
        .collect();
    if checked.is_empty() {
        b.out.push_str("<p class=\"missing\">No model-randomization sanity check: set <code>sanity = [\"cascading\", \"random_logit\"]</code> on an attribution entry (Adebayo et al. 2018).</p>\n");
    } else {
        let mut table = String::from(
            "<table>\n<thead><tr><th>entry</th><th>layers randomized</th><th>Spearman |map|</th><th>SSIM</th><th>top-k overlap</th></tr></thead>\n<tbody>\n",
        );
        let mut series = Vec::new();
        let mut verdicts = String::new();
        for e in &checked {
            let Some(s) = &e.sanity else { continue };
            let mut points = Vec::new();
            for (i, step) in s.cascading.iter().enumerate() {
                let key = format!("sanity/{}/cascading/{i}", e.name);
                let _ = writeln!(
                    table,
                    "<tr><td>{}</td><td>{} (down to {})</td>{}{}{}</tr>",
                    escape(&e.name),
                    i + 1,
                    escape(&step.layer),
                    opt_cell(
                        &format!("{key}/spearman_abs"),
                        step.similarity.spearman_abs,
                        num
                    ),
                    opt_cell(&format!("{key}/ssim"), step.similarity.ssim, num),
                    cell(
                        &format!("{key}/top_k_overlap"),
                        &num(step.similarity.top_k_overlap)
                    ),
                );
                if let Some(v) = step.similarity.spearman_abs {
                    points.push(((i + 1) as f64, v));
                }
            }
            series.push(Series {
                name: e.name.clone(),
                points,
            });
            if s.survives_randomization == Some(true) {
                let _ = write!(
                    verdicts,
                    "<li data-key=\"sanity/{}/survives\"><strong>{}</strong> keeps a mean Spearman |map| above {} with every layer re-initialized: its maps may explain the input rather than the model.</li>",
                    escape(&e.name),
                    escape(&e.name),
                    num(s.threshold)
                );
            }
        }
        table.push_str("</tbody>\n</table>\n");
        let chart = Chart::Lines {
            title: "Cascading model-parameter randomization".into(),
            x_label: "layers re-initialized, output first".into(),
            y_label: "Spearman |map| vs trained".into(),
            series,
            y_range: -0.2..1.05,
            log_x: false,
        };
        b.figure("sanity-cascading", chart,
            "How far each method's maps stay the same as the model's layers are re-initialized from the output down (Adebayo et al. 2018): a faithful map decorrelates.",
            &table,
        )?;
        if !verdicts.is_empty() {
            let _ = writeln!(b.out, "<ul class=\"warnings\">{verdicts}</ul>");
        }
    }
    b.out.push_str("</section>\n");
    Ok(())
}

/// The mean deletion/insertion and ROAD curves of the clean maps, one chart
/// each, their points in a table beside it.
fn curves(b: &mut Builder, report: &Report) -> Result<()> {
    let entries = &report.summary.attributions;
    let road_fractions = |name: &str| -> Vec<f64> {
        report
            .plan
            .attributions
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.road_fractions.clone())
            .unwrap_or_default()
    };
    type Pick = fn(&AttributionSummary) -> Option<&Vec<f64>>;
    /// Figure id, title, x label, and each curve's label and field.
    type Kind<'a> = (&'a str, &'a str, &'a str, [(&'a str, Pick); 2]);
    let kinds: [Kind; 2] = [
        (
            "deletion-insertion",
            "Deletion and insertion (Petsiuk et al. 2018)",
            "share of pixels removed or inserted",
            [
                ("deletion", |e| e.clean.mean_deletion_curve.as_ref()),
                ("insertion", |e| e.clean.mean_insertion_curve.as_ref()),
            ],
        ),
        (
            "road",
            "ROAD, noisy linear imputation (Rong et al. 2022)",
            "share of pixels removed",
            [
                ("MoRF", |e| e.clean.mean_road_morf_curve.as_ref()),
                ("LeRF", |e| e.clean.mean_road_lerf_curve.as_ref()),
            ],
        ),
    ];
    for (id, title, x_label, picks) in kinds {
        let mut series = Vec::new();
        let mut table = String::from(
            "<table>\n<thead><tr><th>entry</th><th>curve</th><th>points (share removed: class probability)</th></tr></thead>\n<tbody>\n",
        );
        for e in entries {
            for (label, pick) in picks {
                let Some(ys) = pick(e) else { continue };
                let xs: Vec<f64> = if id == "road" {
                    road_fractions(&e.name)
                } else {
                    let n = ys.len().max(2) - 1;
                    (0..ys.len()).map(|t| t as f64 / n as f64).collect()
                };
                if xs.len() != ys.len() {
                    continue;
                }
                let points: Vec<(f64, f64)> = xs.iter().copied().zip(ys.iter().copied()).collect();
                let text: Vec<String> = points
                    .iter()
                    .map(|(x, y)| format!("{}: {}", num(*x), num(*y)))
                    .collect();
                let _ = writeln!(
                    table,
                    "<tr><td>{}</td><td>{label}</td><td>{}</td></tr>",
                    escape(&e.name),
                    text.join(", ")
                );
                series.push(Series {
                    name: format!("{} {label}", e.name),
                    points,
                });
            }
        }
        if series.is_empty() {
            continue;
        }
        table.push_str("</tbody>\n</table>\n");
        let chart = Chart::Lines {
            title: title.into(),
            x_label: x_label.into(),
            y_label: "class probability".into(),
            series,
            y_range: 0.0..1.02,
            log_x: false,
        };
        b.figure(
            id,
            chart,
            &format!("{title}: the explained class's mean softmax probability as pixels are removed in the map's order (a faithful map falls fast under deletion and MoRF, slowly under LeRF)."),
            &table,
        )?;
    }
    Ok(())
}
