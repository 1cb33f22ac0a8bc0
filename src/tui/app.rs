//! The UI's state and how messages change it. Drawing reads this state and
//! never changes it (see [`super::view`]); the only disk access after opening
//! is here: the selected input's images are decoded from the sidecar when the
//! selection, attack or method changes, and kept until the next change.

use std::path::PathBuf;

use crossterm::event::Event;
use ratatui::layout::Rect;

use super::event::{message, Message, View};
use super::image::{ColorMode, Pixels};
use super::list::{visible_rows, Filter, ListQuery, SortKey};
use super::view;
use crate::report::opened::ReportData;
use crate::report::types::SampleRecord;

/// An image pane's picture, or why there is none.
pub type Slot = Result<Pixels, String>;

/// The pictures of the selected input under the selected attack and method.
#[derive(Debug, Clone)]
pub struct SelectedImages {
    /// The clean input.
    pub clean: Slot,
    /// The adversarial input.
    pub adversarial: Slot,
    /// The perturbation, amplified to the full range around mid-grey.
    pub perturbation: Slot,
    /// The attribution map of the clean input, over the input.
    pub attribution_clean: Slot,
    /// The attribution map of the adversarial input, over that input.
    pub attribution_adversarial: Slot,
}

/// Options that do not come from the report.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where `e` writes PNGs.
    pub export_dir: PathBuf,
    /// How colours are written.
    pub color: ColorMode,
}

impl Options {
    /// `<report stem>-export/` beside the report, colours from `COLORTERM`.
    pub fn for_report(report: &std::path::Path) -> Options {
        let stem = report
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "report".into());
        Options {
            export_dir: report.with_file_name(format!("{stem}-export")),
            color: ColorMode::from_env(),
        }
    }
}

/// The whole UI state.
pub struct App {
    /// The report and its sidecar.
    pub data: ReportData,
    /// Positions in `report.samples` of the listed inputs, in display order.
    pub rows: Vec<usize>,
    /// The selected row (a position in `rows`).
    pub cursor: usize,
    /// The first row shown.
    pub list_offset: usize,
    /// The selected attack (a position in `summary.attacks`).
    pub attack: usize,
    /// The selected attribution entry (a position in `summary.attributions`).
    pub method: usize,
    /// The list filter.
    pub filter: Filter,
    /// The list order.
    pub sort: SortKey,
    /// Whether the order is reversed.
    pub reversed: bool,
    /// The screen shown.
    pub view: View,
    /// Whether the key help is shown.
    pub help: bool,
    /// The jump prompt's text, while it is open.
    pub prompt: Option<String>,
    /// A one-line message for the status bar (results of `e`, `/`, …).
    pub status: Option<String>,
    /// Lines scrolled in the summary and detail views.
    pub scroll: u16,
    /// The terminal's size, for layout-dependent moves and clicks.
    pub screen: Rect,
    /// The selected input's pictures.
    pub images: Option<SelectedImages>,
    /// Set by `q`.
    pub quit: bool,
    /// Options.
    pub options: Options,
}

impl App {
    /// The state for a freshly opened report on a `screen`-sized terminal.
    pub fn new(data: ReportData, options: Options, screen: Rect) -> App {
        let mut app = App {
            data,
            rows: Vec::new(),
            cursor: 0,
            list_offset: 0,
            attack: 0,
            method: 0,
            filter: Filter::All,
            sort: SortKey::Index,
            reversed: false,
            view: View::Browse,
            help: false,
            prompt: None,
            status: None,
            scroll: 0,
            screen,
            images: None,
            quit: false,
            options,
        };
        app.refresh_rows();
        app
    }

    /// The selected input's record, if the list is not empty.
    pub fn selected(&self) -> Option<&SampleRecord> {
        let position = *self.rows.get(self.cursor)?;
        self.data.report.samples.get(position)
    }

    /// The selected input's position in the report's samples.
    pub fn selected_position(&self) -> Option<usize> {
        self.rows.get(self.cursor).copied()
    }

    /// The selected attack's name, if the report has attacks.
    pub fn attack_name(&self) -> Option<&str> {
        self.data
            .report
            .summary
            .attacks
            .get(self.attack)
            .map(|a| a.name.as_str())
    }

    /// The selected attribution entry's name, if the report has any.
    pub fn method_name(&self) -> Option<&str> {
        self.data
            .report
            .summary
            .attributions
            .get(self.method)
            .map(|a| a.name.as_str())
    }

    /// Handles one terminal event.
    pub fn handle_event(&mut self, event: &Event) {
        if let Some(m) = message(event, self.prompt.is_some()) {
            self.update(m);
        }
    }

    /// Applies one message.
    pub fn update(&mut self, m: Message) {
        if self.help && !matches!(m, Message::Quit | Message::Resize(..)) {
            // Any key closes the help; only `?` and Esc are consumed by it.
            self.help = false;
            if matches!(m, Message::ToggleHelp | Message::Back) {
                return;
            }
        }
        match m {
            Message::Move(by) => match self.view {
                View::Summary => self.scroll_by(by),
                _ => self.move_cursor(by),
            },
            Message::Page(by) => {
                let page = self.page_rows() as isize;
                match self.view {
                    View::Browse => self.move_cursor(by * page),
                    _ => self.scroll_by(by * page),
                }
            }
            Message::Home => self.set_cursor(0),
            Message::End => self.set_cursor(self.rows.len().saturating_sub(1)),
            Message::CycleAttack(by) => {
                let n = self.data.report.summary.attacks.len();
                if n > 0 {
                    self.attack = cycle(self.attack, by, n);
                    if self.filter == Filter::BrokenBySelected || self.sort.uses_attack() {
                        self.refresh_rows();
                    } else {
                        self.images = None;
                    }
                }
            }
            Message::CycleMethod(by) => {
                let n = self.data.report.summary.attributions.len();
                if n > 0 {
                    self.method = cycle(self.method, by, n);
                    if self.sort == SortKey::AttributionShift {
                        self.refresh_rows();
                    } else {
                        self.images = None;
                    }
                }
            }
            Message::CycleFilter => {
                self.filter = self.filter.next();
                self.refresh_rows();
            }
            Message::CycleSort => self.cycle_sort(),
            Message::ReverseSort => {
                self.reversed = !self.reversed;
                self.refresh_rows();
            }
            Message::OpenJump => self.prompt = Some(String::new()),
            Message::PromptChar(c) => {
                if let (Some(p), true) = (&mut self.prompt, c.is_ascii_digit()) {
                    p.push(c);
                }
            }
            Message::PromptBackspace => {
                if let Some(p) = &mut self.prompt {
                    p.pop();
                }
            }
            Message::PromptSubmit => {
                if let Some(text) = self.prompt.take() {
                    self.jump(&text);
                }
            }
            Message::Export => self.export(),
            Message::ToggleHelp => self.help = true,
            Message::Show(view) => {
                self.view = view;
                self.scroll = 0;
            }
            Message::Back => {
                if self.prompt.take().is_none() {
                    if self.view == View::Browse {
                        self.quit = true;
                    } else {
                        self.view = View::Browse;
                        self.scroll = 0;
                    }
                }
            }
            Message::Quit => self.quit = true,
            Message::Click(column, row) => self.click(column, row),
            Message::Resize(w, h) => {
                self.screen = Rect::new(0, 0, w, h);
                self.keep_cursor_visible();
            }
        }
        self.load_images();
    }

    /// Recomputes the list, keeping the selected input selected when it is
    /// still listed.
    pub fn refresh_rows(&mut self) {
        let previous = self.rows.get(self.cursor).copied();
        let method = self.method_name().map(str::to_owned);
        let has_attacks = !self.data.report.summary.attacks.is_empty();
        let query = ListQuery {
            filter: self.filter,
            sort: self.sort,
            reversed: self.reversed,
            attack: has_attacks.then_some(self.attack),
            method: method.as_deref(),
        };
        self.rows = visible_rows(&self.data.report, &query);
        self.cursor = previous
            .and_then(|p| self.rows.iter().position(|&r| r == p))
            .unwrap_or(0);
        self.list_offset = 0;
        self.keep_cursor_visible();
        self.images = None;
        self.load_images();
    }

    /// Why the report has nothing for `key` under the selected attack and
    /// method, or `None` when it has.
    pub fn sort_unavailable(&self, key: SortKey) -> Option<String> {
        let has_attacks = !self.data.report.summary.attacks.is_empty();
        key.unavailable(
            &self.data.report,
            has_attacks.then_some(self.attack),
            self.method_name(),
        )
    }

    /// The next sort key the report has data for; the keys passed over are
    /// named in the status line with the reason, so `s` never silently
    /// does nothing.
    fn cycle_sort(&mut self) {
        // Keys skipped for the same reason are named together.
        let mut skipped: Vec<(Vec<&str>, String)> = Vec::new();
        let mut key = self.sort.next();
        // `Index` is always available, so this ends within one cycle.
        while let Some(why) = self.sort_unavailable(key) {
            match skipped.iter_mut().find(|(_, w)| *w == why) {
                Some((keys, _)) => keys.push(key.label()),
                None => skipped.push((vec![key.label()], why)),
            }
            key = key.next();
        }
        self.sort = key;
        self.reversed = false;
        self.status = (!skipped.is_empty()).then(|| {
            let groups: Vec<String> = skipped
                .iter()
                .map(|(keys, why)| format!("{} ({why})", keys.join(", ")))
                .collect();
            format!("skipped {}", groups.join("; "))
        });
        self.refresh_rows();
    }

    fn move_cursor(&mut self, by: isize) {
        let last = self.rows.len().saturating_sub(1) as isize;
        self.set_cursor((self.cursor as isize + by).clamp(0, last.max(0)) as usize);
    }

    fn set_cursor(&mut self, cursor: usize) {
        if cursor != self.cursor {
            self.cursor = cursor;
            self.images = None;
            if self.view == View::Detail {
                self.scroll = 0;
            }
        }
        self.keep_cursor_visible();
    }

    fn page_rows(&self) -> usize {
        view::list_rows_area(self.screen, self).height.max(1) as usize
    }

    fn keep_cursor_visible(&mut self) {
        let height = view::list_rows_area(self.screen, self).height.max(1) as usize;
        if self.cursor < self.list_offset {
            self.list_offset = self.cursor;
        } else if self.cursor >= self.list_offset + height {
            self.list_offset = self.cursor + 1 - height;
        }
    }

    fn scroll_by(&mut self, by: isize) {
        let lines = match self.view {
            View::Summary => view::summary::lines(self).len(),
            _ => view::detail::lines(self).len(),
        };
        let max = lines.saturating_sub(1) as isize;
        self.scroll = (self.scroll as isize + by)
            .clamp(0, max)
            .min(u16::MAX as isize) as u16;
    }

    fn click(&mut self, column: u16, row: u16) {
        if self.view != View::Browse {
            return;
        }
        let area = view::list_rows_area(self.screen, self);
        let inside = column >= area.x
            && column < area.x + area.width
            && row >= area.y
            && row < area.y + area.height;
        if inside {
            let target = self.list_offset + (row - area.y) as usize;
            if target < self.rows.len() {
                self.set_cursor(target);
            }
        }
    }

    fn jump(&mut self, text: &str) {
        let Ok(index) = text.parse::<usize>() else {
            self.status = Some(format!("not an input index: {text:?}"));
            return;
        };
        let samples = &self.data.report.samples;
        let Some(position) = samples.iter().position(|s| s.index == index) else {
            self.status = Some(format!(
                "no input {index} in this report ({} inputs)",
                samples.len()
            ));
            return;
        };
        if !self.rows.contains(&position) {
            // The filter hides it: show everything rather than refuse.
            self.filter = Filter::All;
            self.refresh_rows();
            self.status = Some(format!("input {index}: filter reset to show it"));
        } else {
            self.status = None;
        }
        if let Some(cursor) = self.rows.iter().position(|&r| r == position) {
            self.set_cursor(cursor);
        }
    }

    fn export(&mut self) {
        let Some(&position) = self.rows.get(self.cursor) else {
            self.status = Some("nothing to export: the list is empty".into());
            return;
        };
        let dir = self.options.export_dir.clone();
        self.status = Some(
            match super::export::export_input(&mut self.data, position, &dir) {
                Ok(files) => format!("wrote {} PNG files to {}", files.len(), dir.display()),
                Err(e) => format!("export failed: {e}"),
            },
        );
    }

    /// Decodes the selected input's pictures if the selection changed.
    fn load_images(&mut self) {
        if self.images.is_some() {
            return;
        }
        let Some(&position) = self.rows.get(self.cursor) else {
            return;
        };
        self.images = Some(selected_images(
            &mut self.data,
            position,
            self.attack,
            self.method,
        ));
    }
}

/// `current + by` modulo `n` (`n > 0`).
fn cycle(current: usize, by: isize, n: usize) -> usize {
    (current as isize + by).rem_euclid(n as isize) as usize
}

/// The pictures of input `position` under attack `attack` and attribution
/// entry `method` (positions in the summary).
pub fn selected_images(
    data: &mut ReportData,
    position: usize,
    attack: usize,
    method: usize,
) -> SelectedImages {
    let shape = data.shape;
    let range = data.range;
    let summary = &data.report.summary;
    let attack_name = summary.attacks.get(attack).map(|a| a.name.clone());
    let entry = summary.attributions.get(method).map(|e| {
        let on: Vec<String> = e.attacks.iter().map(|a| a.attack.clone()).collect();
        (e.name.clone(), on)
    });
    let clean = data
        .sidecar
        .row(crate::sidecar::CLEAN_INPUTS, position)
        .map_err(|e| e.to_string());
    let adversarial = match (&attack_name, &clean) {
        (None, _) => Err("no attacks in this report: add [[attack]] entries to the plan".into()),
        (Some(_), Err(e)) => Err(e.clone()),
        (Some(a), Ok(_)) => data
            .sidecar
            .row(&crate::sidecar::adversarial_inputs(a), position)
            .map_err(|e| e.to_string()),
    };
    let perturbation = match (&clean, &adversarial) {
        (Ok(x), Ok(adv)) => Ok(Pixels::from_input(
            &crate::report::images::amplified_perturbation(adv, x),
            shape,
            (0.0, 1.0),
        )),
        (_, Err(e)) | (Err(e), _) => Err(e.clone()),
    };
    let heatmap = |map: &[f32], input: &[f32]| {
        Pixels::from_rgb_image(&crate::attribution::images::heatmap(
            map, input, shape, range, 1,
        ))
    };
    let (attribution_clean, attribution_adversarial) = match (&entry, &clean) {
        (None, _) => {
            let missing = "no attributions in this report: add [[attribution]] to the plan \
                           (see attacks/mnist.toml)"
                .to_string();
            (Err(missing.clone()), Err(missing))
        }
        (Some(_), Err(e)) => (Err(e.clone()), Err(e.clone())),
        (Some((name, on)), Ok(x)) => {
            let map_clean = data
                .sidecar
                .row(&crate::sidecar::attribution_maps(name, "clean"), position)
                .map(|m| heatmap(&m, x))
                .map_err(|e| e.to_string());
            let map_adv = match (&attack_name, &adversarial) {
                (None, _) => Err("no attacks in this report".to_string()),
                (Some(a), _) if !on.contains(a) => Err(format!(
                    "{name} did not run on {a}: add it to the entry's `on` list{}",
                    if on.is_empty() {
                        String::new()
                    } else {
                        format!(" (it ran on {})", on.join(", "))
                    }
                )),
                (Some(_), Err(e)) => Err(e.clone()),
                (Some(a), Ok(adv)) => data
                    .sidecar
                    .row(&crate::sidecar::attribution_maps(name, a), position)
                    .map(|m| heatmap(&m, adv))
                    .map_err(|e| e.to_string()),
            };
            (map_clean, map_adv)
        }
    };
    SelectedImages {
        clean: clean.map(|x| Pixels::from_input(&x, shape, range)),
        adversarial: adversarial.map(|a| Pixels::from_input(&a, shape, range)),
        perturbation,
        attribution_clean,
        attribution_adversarial,
    }
}

#[cfg(test)]
mod tests {
    use super::cycle;

    #[test]
    fn cycling_wraps_both_ways() {
        assert_eq!(cycle(0, -1, 3), 2);
        assert_eq!(cycle(2, 1, 3), 0);
        assert_eq!(cycle(1, 1, 3), 2);
    }
}
