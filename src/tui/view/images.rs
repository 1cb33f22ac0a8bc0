//! The image pane: the clean input, the adversarial input of the selected
//! attack and its amplified perturbation on the first row; the selected
//! method's attribution map on the clean and on the adversarial input, and
//! the attack's numbers for this input, on the second. Images grow with the
//! pane; a missing picture is replaced by the reason and how to get it.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};

use super::{bold, class_name, dim, pct};
use crate::tui::app::{App, Slot};
use crate::tui::image::CellImage;
use crate::tui::list::{attack_margin, broken, clean_margin, correct, true_class_confidence};

/// Below this many inner rows only the first row of pictures is drawn.
const TWO_ROWS_MIN_HEIGHT: u16 = 8;

/// Draws the pane into `area`.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let title = match app.selected() {
        Some(s) => format!(
            " input {} · label {} · predicted {} ",
            s.index,
            class_name(app, s.label),
            class_name(app, s.prediction)
        ),
        None => " no input selected ".to_string(),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    block.render(area, buf);
    let Some(images) = &app.images else {
        return;
    };
    let attack = app.attack_name().unwrap_or("attack");
    let method = app.method_name().unwrap_or("attribution");
    let rows: Vec<Rect> = if inner.height >= TWO_ROWS_MIN_HEIGHT {
        Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)])
            .split(inner)
            .to_vec()
    } else {
        vec![inner]
    };
    let columns = |row: Rect| -> [Rect; 3] {
        Layout::horizontal([Constraint::Fill(1); 3])
            .spacing(1)
            .areas(row)
    };
    let top = columns(rows[0]);
    picture(app, "clean", &images.clean, top[0], buf);
    picture(app, attack, &images.adversarial, top[1], buf);
    picture(app, "amplified δ", &images.perturbation, top[2], buf);
    if let Some(&second) = rows.get(1) {
        let bottom = columns(second);
        picture(
            app,
            &format!("{method} · clean"),
            &images.attribution_clean,
            bottom[0],
            buf,
        );
        picture(
            app,
            &format!("{method} · attacked"),
            &images.attribution_adversarial,
            bottom[1],
            buf,
        );
        Paragraph::new(numbers(app))
            .wrap(Wrap { trim: true })
            .render(bottom[2], buf);
    }
}

/// A caption over a picture, or over the reason there is none.
fn picture(app: &App, caption: &str, slot: &Slot, area: Rect, buf: &mut Buffer) {
    if area.height == 0 {
        return;
    }
    let [caption_area, body] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    Paragraph::new(Line::from(dim(caption.to_string()))).render(caption_area, buf);
    match slot {
        Ok(pixels) => CellImage {
            pixels,
            mode: app.options.color,
        }
        .render(body, buf),
        Err(why) => Paragraph::new(Span::styled(why.clone(), Style::new().fg(Color::Yellow)))
            .wrap(Wrap { trim: true })
            .render(body, buf),
    }
}

/// The selected attack's outcome and the attribution shift for this input.
fn numbers(app: &App) -> Vec<Line<'static>> {
    let Some(s) = app.selected() else {
        return Vec::new();
    };
    let Some(a) = s.attacks.get(app.attack) else {
        return vec![Line::from(dim("no attacks in this report"))];
    };
    let verdict = if !correct(s) {
        Span::styled("misclassified before", Style::new().fg(Color::DarkGray))
    } else if broken(s, app.attack) {
        Span::styled("✗ broken", Style::new().fg(Color::Red))
    } else {
        Span::styled("✓ robust", Style::new().fg(Color::Green))
    };
    let confidence = a.top5.first().map_or(String::new(), |c| pct(c.probability));
    let mut lines = vec![
        Line::from(vec![bold(a.name.clone())]),
        Line::from(verdict),
        Line::from(format!(
            "pred {} {confidence}",
            class_name(app, a.prediction)
        )),
        Line::from(format!(
            "true class {}",
            true_class_confidence(s, app.attack).map_or("-".to_string(), pct)
        )),
        Line::from(format!(
            "margin {} → {}",
            clean_margin(s).map_or("-".to_string(), |m| format!("{m:.2}")),
            attack_margin(s, app.attack).map_or("-".to_string(), |m| format!("{m:.2}"))
        )),
        Line::from(format!("‖δ‖∞ {:.4}", a.perturbation_linf)),
        Line::from(format!("‖δ‖₂ {:.4}", a.perturbation_l2)),
    ];
    if let Some(method) = app.method_name() {
        let shift = s
            .attributions
            .iter()
            .find(|e| e.name == method)
            .and_then(|e| e.attacks.iter().find(|m| m.attack == a.name));
        if let Some(m) = shift {
            lines.push(Line::from(format!("top-k kept {}", pct(m.top_k_overlap))));
            lines.push(Line::from(format!(
                "Spearman {}",
                m.spearman.map_or("-".to_string(), |r| format!("{r:.2}"))
            )));
        }
    }
    lines
}
