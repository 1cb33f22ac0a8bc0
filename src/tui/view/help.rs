//! The help overlay (`?`): the key table of [`crate::tui::event::KEYS`] and
//! the sort keys of `s`, in a centred box over whatever screen is shown. A
//! sort the report has no data for (under the selected attack and method)
//! is greyed, with the reason under it.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};

use super::{bold, dim};
use crate::tui::app::App;
use crate::tui::event::KEYS;
use crate::tui::list::SortKey;

/// Draws the overlay centred in `screen`.
pub fn render(app: &App, screen: Rect, buf: &mut Buffer) {
    let key_width = KEYS
        .iter()
        .map(|(k, _)| k.chars().count())
        .chain(SortKey::ALL.iter().map(|k| k.label().chars().count()))
        .max()
        .unwrap_or(0);
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                bold(format!(" {keys:<key_width$}  ")),
                Span::raw(what.to_string()),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::from(bold(
        " sorts (s cycles, skipping those without data)",
    )));
    for key in SortKey::ALL {
        let label = format!(" {:<key_width$}  ", key.label());
        match app.sort_unavailable(key) {
            None => {
                let mut name = Style::new();
                if key == app.sort {
                    name = name.add_modifier(Modifier::BOLD);
                }
                lines.push(Line::from(vec![
                    Span::styled(label, name),
                    Span::raw(key.description().to_string()),
                ]));
            }
            Some(why) => {
                lines.push(Line::from(vec![
                    dim(label),
                    dim(key.description().to_string()),
                ]));
                lines.push(Line::from(dim(format!("   ↳ unavailable: {why}"))));
            }
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(dim(" any key closes this help")));

    let longest = lines.iter().map(Line::width).max().unwrap_or(0) + 3;
    let width = (longest as u16 + 2).min(screen.width);
    let inner_width = width.saturating_sub(2).max(1) as usize;
    // Wrapped lines take more rows.
    let rows: usize = lines
        .iter()
        .map(|l| l.width().max(1).div_ceil(inner_width))
        .sum();
    let height = (rows as u16 + 2).min(screen.height);
    let [row] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(screen);
    let [area] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(row);
    Clear.render(area, buf);
    Paragraph::new(lines)
        .block(Block::bordered().title(" keys "))
        .wrap(Wrap { trim: false })
        .render(area, buf);
}
