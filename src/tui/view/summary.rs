//! The summary view: clean and robust accuracy per attack with bars (ε
//! written as `run` writes it), minimum-norm attacks as `run`'s distance
//! table, the ε curves, the sanity flags, then the stress, equivariance and attribution
//! tables exactly as `run` prints them (one formatting of those numbers, not
//! two), and the report's warnings. Sections the plan did not ask for say how
//! to get them.

use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

use super::predictions::bar;
use super::{bold, dim, pct};
use crate::attack::Norm;
use crate::report::threat::format_eps;
use crate::tui::app::App;

const BAR_WIDTH: usize = 20;

/// The view's lines (it scrolls).
pub fn lines(app: &App) -> Vec<Line<'static>> {
    let report = &app.data.report;
    let s = &report.summary;
    let mut out = vec![
        Line::from(vec![
            bold("clean accuracy "),
            bold(pct(s.clean_accuracy)),
            Span::raw(format!(" on {} inputs", s.count)),
        ]),
        Line::from(dim(format!(
            "model {} ({} parameters) · data {}",
            report.model.path, report.model.parameter_count, report.data.source
        ))),
        Line::raw(""),
        Line::from(bold("attacks")),
    ];
    // Attacks with a budget get a bar of their robust accuracy; minimum-norm
    // attacks have no robust accuracy (every input breaks at some distance),
    // so they get `run`'s distance table instead, the same text.
    let range = report.model.input_range();
    let bounded: Vec<_> = s.attacks.iter().filter(|a| a.distance.is_none()).collect();
    let eps_text = |eps: Option<f64>| eps.map_or("-".to_string(), |e| format_eps(e, range));
    let eps_width = bounded
        .iter()
        .map(|a| eps_text(a.eps).chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    if s.attacks.is_empty() {
        out.push(Line::from(dim(
            "  no attacks in this report: add [[attack]] entries to the plan",
        )));
    } else if !bounded.is_empty() {
        out.push(Line::from(dim(format!(
            "  {:<22} {:<7} {:<5} {:>e$}  {:<w$} {:>7}  {:>8}  {:>9}",
            "attack",
            "kind",
            "norm",
            "ε",
            "robust accuracy",
            "",
            "success",
            "median δ",
            e = eps_width,
            w = BAR_WIDTH
        ))));
    }
    for a in bounded {
        let median = match a.norm {
            Norm::Linf => a.median_perturbation_linf,
            Norm::L2 => a.median_perturbation_l2,
            Norm::L1 => a.median_perturbation_l1,
        };
        out.push(Line::from(vec![
            Span::raw(format!(
                "  {:<22} {:<7} {:<5} {:>e$}  ",
                a.name,
                a.kind,
                a.norm.to_string(),
                eps_text(a.eps),
                e = eps_width
            )),
            Span::styled(
                bar(a.robust_accuracy, BAR_WIDTH),
                Style::new().fg(Color::Green),
            ),
            Span::raw(format!(
                " {:>7}  {:>8}  {:>9}",
                pct(a.robust_accuracy),
                pct(a.attack_success_rate),
                median.map_or("-".to_string(), |m| format!("{m:.4}"))
            )),
        ]));
    }
    let correct = report
        .samples
        .iter()
        .filter(|x| x.prediction == x.label)
        .count();
    push_text(
        &mut out,
        &crate::audit::text::distance_lines(report, correct),
    );
    if s.eps_curves.is_empty() && !s.attacks.is_empty() {
        out.push(Line::raw(""));
        out.push(Line::from(dim(
            "no ε curves in this report: give an [[attack]] a list, e.g. eps = [0.05, 0.1, 0.2]",
        )));
    }
    for c in &s.eps_curves {
        out.push(Line::raw(""));
        out.push(Line::from(bold(format!(
            "robust accuracy against ε: {} ({})",
            c.name, c.norm
        ))));
        for p in &c.points {
            out.push(Line::from(vec![
                Span::raw(format!("  ε {:<8} ", format_eps(p.eps, range))),
                Span::styled(
                    bar(p.robust_accuracy, BAR_WIDTH),
                    Style::new().fg(Color::Green),
                ),
                Span::raw(format!(" {:>7}", pct(p.robust_accuracy))),
            ]));
        }
    }
    out.push(Line::raw(""));
    out.push(Line::from(bold("sanity checks")));
    if s.sanity.is_empty() {
        out.push(Line::from(Span::styled(
            "  ✓ none fired",
            Style::new().fg(Color::Green),
        )));
    }
    for f in &s.sanity {
        out.push(Line::from(vec![
            Span::styled(format!("  ⚠ {}: ", f.check), Style::new().fg(Color::Red)),
            Span::raw(f.message.clone()),
        ]));
    }
    let stress = crate::stress::report::summary_lines(
        report.summary.stress.as_ref(),
        report.summary.equivariance.as_ref(),
        &report.timings.stress,
        &report.timings.equivariance,
        &report.model.class_names,
    );
    if s.stress.is_none() {
        out.push(Line::raw(""));
        out.push(Line::from(dim(
            "no stress tests in this report: add [[stress]] entries to the plan",
        )));
    }
    if s.equivariance.is_none() {
        out.push(Line::raw(""));
        out.push(Line::from(dim(
            "no equivariance checks in this report: add [[equivariance]] entries to the plan",
        )));
    }
    push_text(&mut out, &stress);
    if s.attributions.is_empty() {
        out.push(Line::raw(""));
        out.push(Line::from(dim(
            "no attributions in this report: add [[attribution]] to the plan",
        )));
    } else {
        push_text(
            &mut out,
            &crate::attribution::report::summary_lines(&report.summary.attributions),
        );
    }
    if !report.warnings.is_empty() {
        out.push(Line::raw(""));
        out.push(Line::from(bold("warnings")));
        for w in &report.warnings {
            out.push(Line::from(Span::styled(
                format!("  {w}"),
                Style::new().fg(Color::Yellow),
            )));
        }
    }
    out
}

/// Appends a block of text from `run`'s summary, its section titles in bold.
fn push_text(out: &mut Vec<Line<'static>>, text: &str) {
    for line in text.lines() {
        if !line.is_empty() && !line.starts_with(' ') {
            out.push(Line::from(bold(line.to_string())));
        } else {
            out.push(Line::raw(line.to_string()));
        }
    }
}
