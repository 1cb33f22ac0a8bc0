//! Drawing: `impl Widget for &App`, the screen layout and the title and
//! status bars; one submodule per pane. Drawing only reads the state, so a
//! test renders the same [`App`] into a `TestBackend` buffer that a terminal
//! would show. The layout functions are public because the app needs them
//! too: a page is as many rows as the list shows, and a click is mapped to a
//! row through the same rectangles that were drawn.

pub mod detail;
pub mod help;
pub mod images;
pub mod list;
pub mod predictions;
pub mod summary;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};

use super::app::App;
use super::event::View;

/// Rows of the prediction pane: five classes, a header, two borders.
const PREDICTION_ROWS: u16 = 8;

/// The browse screen's panes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowseAreas {
    /// The input list, borders included.
    pub list: Rect,
    /// The image pane.
    pub images: Rect,
    /// The prediction pane.
    pub predictions: Rect,
}

/// Title bar, body, status bar.
fn frame_areas(screen: Rect) -> [Rect; 3] {
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(screen)
}

/// The browse screen's panes on a `screen`-sized terminal.
pub fn browse_areas(screen: Rect, app: &App) -> BrowseAreas {
    let [_, body, _] = frame_areas(screen);
    // Room for the fixed columns and one mark per attack, within reason.
    let marks = app.data.report.summary.attacks.len().max("attacks".len()) as u16;
    let wanted = list::fixed_width(app) + marks + 2;
    let list_width = wanted.clamp(30, (body.width * 45 / 100).max(30));
    let [list, right] =
        Layout::horizontal([Constraint::Length(list_width), Constraint::Min(0)]).areas(body);
    let [images, predictions] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(PREDICTION_ROWS)]).areas(right);
    BrowseAreas {
        list,
        images,
        predictions,
    }
}

/// The list's row area (inside the borders, below the header): where a
/// click selects a row.
pub fn list_rows_area(screen: Rect, app: &App) -> Rect {
    let inner = Block::bordered().inner(browse_areas(screen, app).list);
    Rect {
        y: inner.y.saturating_add(1),
        height: inner.height.saturating_sub(1),
        ..inner
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let [title, body, status] = frame_areas(area);
        title_bar(self).render(title, buf);
        match self.view {
            View::Browse => {
                let panes = browse_areas(area, self);
                list::render(self, panes.list, buf);
                images::render(self, panes.images, buf);
                predictions::render(self, panes.predictions, buf);
            }
            View::Summary => {
                // Not wrapped: the tables keep their columns (long rows are cut).
                Paragraph::new(summary::lines(self))
                    .block(Block::bordered().title(" summary "))
                    .scroll((self.scroll, 0))
                    .render(body, buf)
            }
            View::Detail => {
                let title = match self.selected() {
                    Some(s) => format!(" input {} ", s.index),
                    None => " no input selected ".to_string(),
                };
                scrolled(&title, detail::lines(self), self.scroll).render(body, buf)
            }
        }
        status_bar(self).render(status, buf);
        if self.help {
            help::render(self, area, buf);
        }
    }
}

fn scrolled<'a>(title: &str, lines: Vec<Line<'a>>, scroll: u16) -> Paragraph<'a> {
    Paragraph::new(lines)
        .block(Block::bordered().title(title.to_string()))
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0))
}

/// A bold span.
pub(crate) fn bold(text: impl Into<String>) -> Span<'static> {
    Span::styled(text.into(), Style::new().add_modifier(Modifier::BOLD))
}

/// A dim span, for hints and missing data.
pub(crate) fn dim(text: impl Into<String>) -> Span<'static> {
    Span::styled(text.into(), Style::new().fg(Color::DarkGray))
}

/// `0.987` → `98.7%`.
pub(crate) fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// A class's name, or its index when the report has no name for it.
pub(crate) fn class_name(app: &App, class: u32) -> String {
    app.data
        .report
        .model
        .class_names
        .get(class as usize)
        .cloned()
        .unwrap_or_else(|| class.to_string())
}

fn title_bar(app: &App) -> Paragraph<'static> {
    let report = &app.data.report;
    let model = std::path::Path::new(&report.model.path)
        .file_stem()
        .map_or(report.model.path.clone(), |f| {
            f.to_string_lossy().into_owned()
        });
    let sep = || dim(" │ ");
    let mut spans = vec![
        bold(format!(" {model}")),
        sep(),
        Span::raw(format!(
            "{} inputs, clean {}",
            report.summary.count,
            pct(report.summary.clean_accuracy)
        )),
        sep(),
    ];
    let attacks = &report.summary.attacks;
    match app.attack_name() {
        Some(name) => {
            spans.push(Span::raw("attack "));
            spans.push(Span::styled(
                name.to_string(),
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ));
            spans.push(dim(format!(" {}/{}", app.attack + 1, attacks.len())));
        }
        None => spans.push(dim("no attacks")),
    }
    spans.push(sep());
    match app.method_name() {
        Some(name) => {
            spans.push(Span::raw("method "));
            spans.push(Span::styled(
                name.to_string(),
                Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            ));
            spans.push(dim(format!(
                " {}/{}",
                app.method + 1,
                report.summary.attributions.len()
            )));
        }
        None => spans.push(dim("no attributions")),
    }
    Paragraph::new(Line::from(spans)).style(Style::new().bg(Color::Indexed(236)))
}

fn status_bar(app: &App) -> Paragraph<'static> {
    let mut spans = Vec::new();
    if let Some(text) = &app.prompt {
        spans.push(bold(" jump to input: "));
        spans.push(Span::raw(format!("{text}▏")));
        spans.push(dim("  (Enter: go, Esc: cancel)"));
    } else {
        let descending = app.sort.descending_by_default() != app.reversed;
        let arrow = if descending { "↓" } else { "↑" };
        spans.push(Span::raw(format!(
            " {}/{} listed │ filter: {} │ sort: {} {arrow} │ ",
            app.rows.len(),
            app.data.report.samples.len(),
            app.filter.label(),
            app.sort.label(),
        )));
        // A sort left without data by a change of attack or method keeps
        // data order: say why rather than look broken.
        let no_data = app
            .sort_unavailable(app.sort)
            .map(|why| format!("no data to sort by: {why}"));
        match app.status.as_ref().or(no_data.as_ref()) {
            Some(message) => spans.push(Span::styled(
                message.clone(),
                Style::new().fg(Color::Yellow),
            )),
            None => spans.push(dim("? help  1 browse  2 summary  3 detail  q quit")),
        }
    }
    Paragraph::new(Line::from(spans)).style(Style::new().bg(Color::Indexed(236)))
}
