//! The prediction pane: the clean top-5 probabilities and those after the
//! selected attack, side by side, as bars. The true class is green; a wrong
//! top prediction is red.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};

use super::{class_name, dim};
use crate::report::types::ClassProbability;
use crate::tui::app::App;

/// Draws the pane into `area`.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let block = Block::bordered().title(" top-5 probabilities (green: true class) ");
    let inner = block.inner(area);
    block.render(area, buf);
    let Some(s) = app.selected() else {
        return;
    };
    let [left, right] = Layout::horizontal([Constraint::Fill(1); 2])
        .spacing(2)
        .areas(inner);
    Paragraph::new(bars(app, "clean", &s.top5, s.label, left.width)).render(left, buf);
    match s.attacks.get(app.attack) {
        Some(a) => Paragraph::new(bars(
            app,
            &format!("after {}", a.name),
            &a.top5,
            s.label,
            right.width,
        ))
        .render(right, buf),
        None => Paragraph::new(Line::from(dim(
            "no attacks in this report: add [[attack]] entries to the plan",
        )))
        .wrap(Wrap { trim: true })
        .render(right, buf),
    }
}

/// A header and one bar per class, fitted to `width` columns.
fn bars(
    app: &App,
    header: &str,
    top: &[ClassProbability],
    label: u32,
    width: u16,
) -> Vec<Line<'static>> {
    let names: Vec<String> = top.iter().map(|c| class_name(app, c.class)).collect();
    let name_width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(1)
        .min(12);
    // name, space, bar, space, "100.0%"
    let bar_width = (width as usize).saturating_sub(name_width + 8).max(1);
    let mut lines = vec![Line::from(dim(header.to_string()))];
    for (rank, (c, name)) in top.iter().zip(names).enumerate() {
        let color = if c.class == label {
            Color::Green
        } else if rank == 0 {
            Color::Red
        } else {
            Color::Blue
        };
        let mut name_style = Style::new().fg(color);
        if rank == 0 {
            name_style = name_style.add_modifier(Modifier::BOLD);
        }
        let shown: String = name.chars().take(name_width).collect();
        lines.push(Line::from(vec![
            Span::styled(format!("{shown:<name_width$} "), name_style),
            Span::styled(bar(c.probability, bar_width), Style::new().fg(color)),
            Span::raw(format!(" {:>5.1}%", 100.0 * c.probability)),
        ]));
    }
    lines
}

/// `p` of `width` columns in eighth blocks, padded with spaces.
pub fn bar(p: f64, width: usize) -> String {
    const EIGHTHS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let eighths = (p.clamp(0.0, 1.0) * (width * 8) as f64).round() as usize;
    let full = eighths / 8;
    let mut s = "█".repeat(full);
    if full < width {
        s.push_str(EIGHTHS[eighths % 8]);
    }
    let used = s.chars().count();
    s.push_str(&" ".repeat(width.saturating_sub(used)));
    s
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_use_eighth_blocks_and_keep_their_width() {
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.0, 4), "    ");
        // 0.5 of 3 columns = 12 eighths = one full block and a half block.
        assert_eq!(bar(0.5, 3), "█▌ ");
        assert_eq!(bar(2.0, 2).chars().count(), 2);
    }
}
