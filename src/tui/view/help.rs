//! The help overlay (`?`): the key table of [`crate::tui::event::KEYS`] in a
//! centred box over whatever screen is shown.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget};

use super::{bold, dim};
use crate::tui::event::KEYS;

/// Draws the overlay centred in `screen`.
pub fn render(screen: Rect, buf: &mut Buffer) {
    let key_width = KEYS
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let text_width = KEYS
        .iter()
        .map(|(_, t)| t.chars().count())
        .max()
        .unwrap_or(0);
    let width = (key_width + text_width + 6) as u16;
    let height = KEYS.len() as u16 + 4;
    let [row] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(screen);
    let [area] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(row);
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
    lines.push(Line::from(dim(" any key closes this help")));
    Clear.render(area, buf);
    Paragraph::new(lines)
        .block(Block::bordered().title(" keys "))
        .render(area, buf);
}
