//! The detail view of the selected input: every attack's outcome, the
//! attribution metrics, the selected attribution method's sanity checks on
//! this input (the cascade layer by layer, the random-logit test), and the stress and equivariance results per
//! transformation with the prediction before and after (the per-input
//! records store only what changes; the transformation names and the
//! data-wide medians come from the summary entry of the same name).

use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

use super::{bold, class_name, dim, pct};
use crate::attribution::report::MapRecord;
use crate::attribution::sanity::Similarity;
use crate::tui::app::App;
use crate::tui::list::{attack_margin, clean_margin, correct, true_class_confidence};
use crate::tui::view::list::mark;

/// The view's lines (it scrolls).
pub fn lines(app: &App) -> Vec<Line<'static>> {
    let Some(s) = app.selected() else {
        return vec![Line::from(dim("no input selected"))];
    };
    let report = &app.data.report;
    let summary = &report.summary;
    let clean_confidence = s.top5.first().map_or(0.0, |c| c.probability);
    let ok = correct(s);
    let mut out = vec![Line::from(vec![
        bold(format!("input {}", s.index)),
        Span::raw(format!(
            " · label {} · clean prediction {} ({}){}",
            class_name(app, s.label),
            class_name(app, s.prediction),
            pct(clean_confidence),
            clean_margin(s).map_or(String::new(), |m| format!(" · margin {m:.3}"))
        )),
        if ok {
            Span::styled("  correct", Style::new().fg(Color::Green))
        } else {
            Span::styled("  misclassified", Style::new().fg(Color::Red))
        },
    ])];

    out.push(Line::raw(""));
    out.push(Line::from(bold("attacks")));
    if s.attacks.is_empty() {
        out.push(Line::from(dim(
            "  no attacks in this report: add [[attack]] entries to the plan",
        )));
    } else {
        out.push(Line::from(dim(format!(
            "    {:<22} {:>10} {:>7} {:>10} {:>8}  {:>8} {:>8}",
            "attack", "prediction", "conf", "true class", "margin", "‖δ‖∞", "‖δ‖₂"
        ))));
    }
    for (k, a) in s.attacks.iter().enumerate() {
        let (symbol, color) = mark(ok, a.success);
        out.push(Line::from(vec![
            Span::styled(format!("  {symbol} "), Style::new().fg(color)),
            Span::raw(format!(
                "{:<22} {:>10} {:>7} {:>10} {:>8}  {:>8.4} {:>8.4}{}",
                a.name,
                class_name(app, a.prediction),
                a.top5.first().map_or("-".into(), |c| pct(c.probability)),
                true_class_confidence(s, k).map_or("-".into(), pct),
                attack_margin(s, k).map_or("-".into(), |m| format!("{m:.3}")),
                a.perturbation_linf,
                a.perturbation_l2,
                a.target.map_or(String::new(), |t| format!(
                    "  target {}",
                    class_name(app, t)
                ))
            )),
        ]));
    }

    out.push(Line::raw(""));
    out.push(Line::from(bold("attributions")));
    if s.attributions.is_empty() {
        out.push(Line::from(dim(
            "  no attributions in this report: add [[attribution]] to the plan",
        )));
    }
    for e in &s.attributions {
        out.push(Line::from(format!("  {} on the clean input", e.name)));
        out.push(Line::from(dim(format!(
            "      {}",
            map_metrics(app, &e.clean)
        ))));
        for m in &e.attacks {
            out.push(Line::from(format!(
                "  {} on {}: top-k kept {}, Spearman {}",
                e.name,
                m.attack,
                pct(m.top_k_overlap),
                m.spearman.map_or("-".into(), |r| format!("{r:.3}")),
            )));
            out.push(Line::from(dim(format!(
                "      {}",
                map_metrics(app, &m.map)
            ))));
        }
    }

    out.extend(sanity_lines(app));

    out.push(Line::raw(""));
    out.push(Line::from(bold("stress")));
    match &s.stress {
        None => out.push(Line::from(dim(
            "  no stress tests in this report: add [[stress]] entries to the plan",
        ))),
        Some(st) => {
            for a in &st.alpha_scaling {
                let target = summary
                    .stress
                    .as_ref()
                    .and_then(|x| x.alpha_scaling.iter().find(|e| e.name == a.name))
                    .map_or(String::new(), |e| format!(" {}", e.target_confidence));
                out.push(Line::from(format!(
                    "  {:<16} smallest α reaching{target} confidence: {}",
                    a.name,
                    a.alpha
                        .map_or("not reached on the grid".into(), |v| format!("{v:.3}"))
                )));
            }
            for c in &st.corruptions {
                out.push(Line::from(format!(
                    "  {:<16} {} of {} corrupted versions misclassified",
                    c.name, c.misclassified, c.total
                )));
            }
            if st.alpha_scaling.is_empty() && st.corruptions.is_empty() {
                out.push(Line::from(dim(
                    "  the stress tests of this report have no per-input results",
                )));
            }
        }
    }

    out.push(Line::raw(""));
    out.push(Line::from(bold("equivariance")));
    let Some(eq) = &s.equivariance else {
        out.push(Line::from(dim(
            "  no equivariance checks in this report: add [[equivariance]] entries to the plan",
        )));
        return out;
    };
    let eq_summary = summary.equivariance.as_ref();
    for c in &eq.consistency {
        let entry = eq_summary.and_then(|x| x.consistency.iter().find(|e| e.name == c.name));
        let expect_invariant = entry.is_none_or(|e| e.expect_invariant);
        out.push(Line::from(vec![
            Span::raw(format!("  {} ", c.name)),
            dim(if expect_invariant {
                "(the prediction should not change)"
            } else {
                "(the prediction should change)"
            }),
        ]));
        for (k, (&after, &confidence)) in c.predictions.iter().zip(&c.confidences).enumerate() {
            let transform = entry
                .and_then(|e| e.transforms.get(k))
                .map_or(format!("#{k}"), |t| t.transform.clone());
            let changed = after != s.prediction;
            let as_expected = changed != expect_invariant;
            out.push(Line::from(vec![
                Span::raw(format!(
                    "    {transform:<18} {} → {:<6} {:>7}  ",
                    class_name(app, s.prediction),
                    class_name(app, after),
                    pct(confidence as f64)
                )),
                if as_expected {
                    Span::styled("✓", Style::new().fg(Color::Green))
                } else {
                    Span::styled("✗ unexpected", Style::new().fg(Color::Red))
                },
            ]));
        }
    }
    for l in &eq.lie_derivative {
        let entry = eq_summary.and_then(|x| x.lie_derivative.iter().find(|e| e.name == l.name));
        out.push(Line::from(format!(
            "  {} (mean |d softmax/dt| over classes)",
            l.name
        )));
        for (k, v) in l.values.iter().enumerate() {
            let t = entry.and_then(|e| e.transforms.get(k));
            let name = t
                .and_then(|t| serde_json::to_value(t.transform).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("#{k}"));
            out.push(Line::from(format!(
                "    {name:<18} {v:.3e} {}{}",
                t.map_or(String::new(), |t| t.unit.replace('_', " ")),
                t.map_or(String::new(), |t| format!(
                    "   (median over inputs {:.3e}, max {:.3e})",
                    t.median, t.max
                ))
            )));
        }
    }
    for w in &eq.worst_case {
        out.push(Line::from(format!(
            "  {} worst transformation {}: {} → {} ({}), true class {}",
            w.name,
            w.transform,
            class_name(app, s.prediction),
            class_name(app, w.prediction),
            pct(w.confidence as f64),
            pct(w.true_class_probability as f64)
        )));
    }
    out
}

fn map_metrics(app: &App, m: &MapRecord) -> String {
    let mut parts = vec![format!("explains class {}", class_name(app, m.target))];
    let mut add = |name: &str, v: Option<f64>| {
        if let Some(v) = v {
            parts.push(format!("{name} {v:.3}"));
        }
    };
    add("deletion AUC", m.deletion_auc);
    add("insertion AUC", m.insertion_auc);
    add("max-sensitivity", m.max_sensitivity);
    add("sparseness", m.sparseness);
    add("ROAD MoRF", m.road_morf_auc);
    add("ROAD LeRF", m.road_lerf_auc);
    add("infidelity", m.infidelity);
    add("faithfulness corr.", m.faithfulness_correlation);
    add("convergence δ", m.convergence_delta);
    parts.join(", ")
}

/// The selected attribution method's sanity checks on the selected input:
/// the similarity of its map to the trained model's at each step of the
/// cascade (and of independent randomization), for a random other class,
/// and to the input's edges.
fn sanity_lines(app: &App) -> Vec<Line<'static>> {
    let entries = &app.data.report.summary.attributions;
    let Some(entry) = entries.get(app.method) else {
        return Vec::new();
    };
    let mut out = vec![
        Line::raw(""),
        Line::from(vec![
            bold(format!("sanity checks · {}", entry.name)),
            dim(format!(
                "  ({}, method {}/{}; a/A: next method)",
                entry.method,
                app.method + 1,
                entries.len()
            )),
        ]),
    ];
    let Some(sanity) = &entry.sanity else {
        out.push(Line::from(dim(
            "  this entry ran none: add sanity = [\"cascading\", \"random_logit\"] to it",
        )));
        return out;
    };
    let position = app.selected_position().unwrap_or(0);
    let Some(mine) = sanity.per_input.get(position) else {
        out.push(Line::from(dim(if sanity.per_input.is_empty() {
            format!(
                "  this report keeps only the means over the first {} inputs (written before schema 8)",
                sanity.inputs
            )
        } else {
            format!(
                "  checked on the first {} inputs (sanity_inputs); this is input {} of the report",
                sanity.inputs,
                position + 1
            )
        })));
        return out;
    };
    out.push(Line::from(dim(format!(
        "    {:<28} {:>7} {:>7} {:>6} {:>7}",
        "this input's map vs", "|rank|", "rank", "ssim", "top-k"
    ))));
    out.push(similarity_line("input edges (Sobel)", &mine.edge_reference));
    if let Some(r) = &mine.random_logit {
        out.push(similarity_line("a random other class", r));
    }
    for (title, layers, values) in [
        ("cascading", &sanity.cascading, &mine.cascading),
        ("independent", &sanity.independent, &mine.independent),
    ] {
        if values.is_empty() {
            continue;
        }
        out.push(Line::from(format!(
            "  {title} randomization, output layer first: |rank| {}",
            sparkline(values.iter().map(|s| s.spearman_abs))
        )));
        for (layer, s) in layers.iter().zip(values) {
            out.push(similarity_line(&format!("  layer {}", layer.layer), s));
        }
    }
    match sanity.survives_randomization {
        Some(true) => out.push(Line::from(Span::styled(
            format!(
                "  ⚠ over the {} inputs the maps survive full randomization (mean |rank| above {})",
                sanity.inputs, sanity.threshold
            ),
            Style::new().fg(Color::Red),
        ))),
        Some(false) => out.push(Line::from(Span::styled(
            format!(
                "  ✓ over the {} inputs the maps decorrelate under randomization",
                sanity.inputs
            ),
            Style::new().fg(Color::Green),
        ))),
        None => {}
    }
    out
}

fn similarity_line(what: &str, s: &Similarity) -> Line<'static> {
    let r = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    Line::from(format!(
        "    {what:<28} {:>7} {:>7} {:>6} {:>7}",
        r(s.spearman_abs),
        r(s.spearman),
        r(s.ssim),
        pct(s.top_k_overlap)
    ))
}

/// Values in [−1, 1] as block heights (`·` where undefined).
fn sparkline(values: impl Iterator<Item = Option<f64>>) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .map(|v| match v {
            Some(v) => {
                let level = ((v.clamp(-1.0, 1.0) + 1.0) / 2.0 * 7.0).round() as usize;
                BLOCKS[level]
            }
            None => '·',
        })
        .collect()
}
