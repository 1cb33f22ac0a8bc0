//! The input list pane: per input its index, label, clean prediction and
//! confidence, then one mark per attack in plan order — `✗` broken, `✓`
//! robust, `·` already misclassified before the attack. The selected row is
//! highlighted and the selected attack's mark underlined.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use super::dim;
use crate::tui::app::App;
use crate::tui::list::{confidence, correct};

/// Columns before the marks: cursor, index, label, prediction, confidence.
pub const FIXED_WIDTH: u16 = 22;

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
    let mut lines = vec![Line::from(vec![dim(format!(
        " {:>5} {:>4} {:>4} {:>4} attacks",
        "idx", "lbl", "pred", "conf"
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
        let conf = confidence(s).map_or("-".to_string(), |p| format!("{:.0}%", 100.0 * p));
        let mut spans = vec![
            Span::raw(if selected { "▶" } else { " " }),
            Span::raw(format!("{:>5} {:>4} ", s.index, s.label)),
            Span::styled(format!("{:>4}", s.prediction), prediction_style),
            Span::raw(format!(" {conf:>4} ")),
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
