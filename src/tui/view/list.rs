//! The input list pane: per input its index, label and clean prediction
//! (class names when the report has them), the value the list is sorted by
//! (clean confidence for the index sort), then one mark per attack in plan
//! order — `✗` broken, `✓` robust, `·` already misclassified before the
//! attack. The selected row is highlighted and the selected attack's mark
//! underlined.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use super::dim;
use crate::attack::Norm;
use crate::report::types::SampleRecord;
use crate::tui::app::App;
use crate::tui::list::{
    attribution_shift, confidence, correct, lie_derivative, margin_drop, perturbation_norm,
    true_class_confidence, SortKey,
};

/// Class names longer than this are cut (with `…`) in the list.
const MAX_NAME_WIDTH: usize = 10;

/// Width of the sort value's column.
const VALUE_WIDTH: usize = 5;

/// The width of the label and prediction columns: the longest class name,
/// at least as wide as the `pred` header, at most `MAX_NAME_WIDTH` (10).
pub fn name_width(app: &App) -> usize {
    app.data
        .report
        .model
        .class_names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, MAX_NAME_WIDTH)
}

/// Columns before the marks: cursor, index, label, prediction, sort value.
pub fn fixed_width(app: &App) -> u16 {
    (1 + 6 + 2 * name_width(app) + 1 + 1 + VALUE_WIDTH + 1) as u16
}

/// A class name cut to `width` characters.
fn fit(name: String, width: usize) -> String {
    if name.chars().count() <= width {
        name
    } else {
        let mut cut: String = name.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The value column's header for the current sort.
fn value_header(app: &App) -> &'static str {
    match app.sort {
        SortKey::Index | SortKey::Confidence => "conf",
        SortKey::TrueClassAfterAttack => "p(y)",
        SortKey::PerturbationNorm => match app.data.report.summary.attacks.get(app.attack) {
            Some(a) if a.norm == Norm::L2 => "‖δ‖₂",
            Some(a) if a.norm == Norm::L1 => "‖δ‖₁",
            _ => "‖δ‖∞",
        },
        SortKey::MarginDrop => "drop",
        SortKey::AttributionShift => "shift",
        SortKey::LieDerivative => "Lie",
    }
}

/// The value the list is sorted by for input `s`, as the column shows it.
fn value_cell(app: &App, s: &SampleRecord) -> String {
    let attack = app.attack;
    let value = match app.sort {
        SortKey::Index | SortKey::Confidence => return percent(confidence(s)),
        SortKey::TrueClassAfterAttack => return percent(true_class_confidence(s, attack)),
        SortKey::PerturbationNorm => app
            .data
            .report
            .summary
            .attacks
            .get(attack)
            .and_then(|a| perturbation_norm(s, attack, a.norm)),
        SortKey::MarginDrop => margin_drop(s, attack),
        SortKey::AttributionShift => app
            .method_name()
            .zip(app.attack_name())
            .and_then(|(m, a)| attribution_shift(s, m, a)),
        SortKey::LieDerivative => lie_derivative(s),
    };
    value.map_or("-".to_string(), short)
}

/// A probability in at most five columns: `97%`, `3.2%`.
fn percent(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 0.095 => format!("{:.1}%", 100.0 * p),
        Some(p) => format!("{:.0}%", 100.0 * p),
        None => "-".to_string(),
    }
}

/// A number in at most five columns: as many decimals as fit, else
/// scientific notation (`3e-4`).
pub fn short(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        return format!("{v:.0e}");
    }
    (0..=3)
        .rev()
        .map(|decimals| format!("{v:.decimals$}"))
        .find(|s| s.chars().count() <= VALUE_WIDTH)
        .unwrap_or_else(|| format!("{v:.0e}"))
}

/// The mark of one input under one attack.
pub fn mark(correct_clean: bool, success: bool) -> (&'static str, Color) {
    match (correct_clean, success) {
        (false, _) => ("·", Color::DarkGray),
        (true, true) => ("✗", Color::Red),
        (true, false) => ("✓", Color::Green),
    }
}

/// Draws the list into `area`.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let total = app.data.report.samples.len();
    let title = if app.rows.is_empty() {
        " inputs ".to_string()
    } else {
        format!(" inputs {}/{} ", app.cursor + 1, app.rows.len())
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    block.render(area, buf);
    let w = name_width(app);
    let mut lines = vec![Line::from(vec![dim(format!(
        " {:>5} {:>w$} {:>w$} {:>VALUE_WIDTH$} attacks",
        "idx",
        "lbl",
        "pred",
        value_header(app)
    ))])];
    if app.rows.is_empty() {
        lines.push(Line::from(dim(if total == 0 {
            " this report has no inputs"
        } else {
            " no input matches the filter (f: next filter)"
        })));
    }
    let height = inner.height.saturating_sub(1) as usize;
    for (row, &position) in app
        .rows
        .iter()
        .enumerate()
        .skip(app.list_offset)
        .take(height)
    {
        let Some(s) = app.data.report.samples.get(position) else {
            continue;
        };
        let selected = row == app.cursor;
        let ok = correct(s);
        let prediction_style = if ok {
            Style::new()
        } else {
            Style::new().fg(Color::Red)
        };
        let label = fit(super::class_name(app, s.label), w);
        let prediction = fit(super::class_name(app, s.prediction), w);
        let mut spans = vec![
            Span::raw(if selected { "▶" } else { " " }),
            Span::raw(format!("{:>5} {label:>w$} ", s.index)),
            Span::styled(format!("{prediction:>w$}"), prediction_style),
            Span::raw(format!(" {:>VALUE_WIDTH$} ", value_cell(app, s))),
        ];
        for (k, attack) in s.attacks.iter().enumerate() {
            let (symbol, color) = mark(ok, attack.success);
            let mut style = Style::new().fg(color);
            if k == app.attack {
                style = style.add_modifier(Modifier::UNDERLINED | Modifier::BOLD);
            }
            spans.push(Span::styled(symbol, style));
        }
        let mut line = Line::from(spans);
        if selected {
            line = line.style(Style::new().bg(Color::Indexed(238)));
        }
        lines.push(line);
    }
    Paragraph::new(lines).render(inner, buf);
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn short_numbers_fit_five_columns() {
        assert_eq!(short(0.1), "0.100");
        assert_eq!(short(12.345), "12.35");
        assert_eq!(short(-3.21), "-3.21");
        assert_eq!(short(1234.6), "1235");
        assert_eq!(short(0.0), "0.000");
        assert_eq!(short(0.00031), "3e-4");
        for v in [123456.0, -98765.4, 1e-9, 7.0] {
            assert!(short(v).chars().count() <= 5, "{v}: {}", short(v));
        }
    }
}
