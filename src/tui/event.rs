//! Terminal events to messages. The mapping depends only on the event and on
//! whether the jump prompt or the help overlay is open, so the keys are
//! documented in one table ([`KEYS`], shown by `?`) and tested without a
//! terminal.

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEventKind,
};

/// The screens of the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The input list with images and predictions.
    Browse,
    /// Accuracy per attack, ε curves, stress and equivariance headlines,
    /// sanity flags.
    Summary,
    /// Every result of the selected input.
    Detail,
}

/// What an event asks the app to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Move the selection by this many rows (scroll in the summary).
    Move(isize),
    /// Move by a page.
    Page(isize),
    /// First row.
    Home,
    /// Last row.
    End,
    /// Next (`1`) or previous (`-1`) attack.
    CycleAttack(isize),
    /// Next (`1`) or previous (`-1`) attribution method.
    CycleMethod(isize),
    /// Next filter.
    CycleFilter,
    /// Next sort key.
    CycleSort,
    /// Reverse the sort order.
    ReverseSort,
    /// Open the jump-to-index prompt.
    OpenJump,
    /// A character typed into the prompt.
    PromptChar(char),
    /// Delete the prompt's last character.
    PromptBackspace,
    /// Jump to the typed index.
    PromptSubmit,
    /// Write the selected input's images as PNG.
    Export,
    /// Show or hide the key help.
    ToggleHelp,
    /// Switch screens.
    Show(View),
    /// Close the prompt or overlay, leave a secondary screen, else quit.
    Back,
    /// Quit.
    Quit,
    /// A left click at (column, row).
    Click(u16, u16),
    /// The terminal now has this many columns and rows.
    Resize(u16, u16),
}

/// The keys, as the help overlay lists them.
pub const KEYS: &[(&str, &str)] = &[
    ("↑ ↓  k j", "move in the list (scroll the summary)"),
    ("PgUp PgDn", "move by a page (scroll the detail view)"),
    ("Home End  g G", "first / last input"),
    ("Tab  Shift-Tab", "next / previous attack"),
    ("a  A", "next / previous attribution method"),
    ("/", "jump to an input index (type it, Enter)"),
    (
        "f",
        "filter: all, broken by this attack, by any, misclassified",
    ),
    ("s  r", "next sort (the sorts are listed below); reverse it"),
    ("e", "export the selected input's images as PNG"),
    ("1 2 3", "browse / summary / detail of the selected input"),
    ("Enter", "detail of the selected input"),
    ("click", "select a row of the list"),
    ("?", "this help"),
    ("Esc", "close, go back to browsing, quit"),
    ("q", "quit"),
];

/// The message for `event`; `prompt` is whether the jump prompt is open.
pub fn message(event: &Event, prompt: bool) -> Option<Message> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => {
            if prompt {
                prompt_key(key)
            } else {
                key_message(key)
            }
        }
        Event::Mouse(mouse) => match mouse.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                Some(Message::Click(mouse.column, mouse.row))
            }
            MouseEventKind::ScrollDown => Some(Message::Move(1)),
            MouseEventKind::ScrollUp => Some(Message::Move(-1)),
            _ => None,
        },
        Event::Resize(w, h) => Some(Message::Resize(*w, *h)),
        _ => None,
    }
}

fn prompt_key(key: &KeyEvent) -> Option<Message> {
    match key.code {
        KeyCode::Enter => Some(Message::PromptSubmit),
        KeyCode::Esc => Some(Message::Back),
        KeyCode::Backspace => Some(Message::PromptBackspace),
        KeyCode::Char(c) if key.modifiers.contains(KeyModifiers::CONTROL) && c == 'c' => {
            Some(Message::Quit)
        }
        KeyCode::Char(c) => Some(Message::PromptChar(c)),
        _ => None,
    }
}

fn key_message(key: &KeyEvent) -> Option<Message> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char('c') if ctrl => Message::Quit,
        KeyCode::Up | KeyCode::Char('k') => Message::Move(-1),
        KeyCode::Down | KeyCode::Char('j') => Message::Move(1),
        KeyCode::PageUp => Message::Page(-1),
        KeyCode::PageDown => Message::Page(1),
        KeyCode::Home | KeyCode::Char('g') => Message::Home,
        KeyCode::End | KeyCode::Char('G') => Message::End,
        KeyCode::BackTab => Message::CycleAttack(-1),
        KeyCode::Tab if key.modifiers.contains(KeyModifiers::SHIFT) => Message::CycleAttack(-1),
        KeyCode::Tab => Message::CycleAttack(1),
        KeyCode::Char('a') => Message::CycleMethod(1),
        KeyCode::Char('A') => Message::CycleMethod(-1),
        KeyCode::Char('/') => Message::OpenJump,
        KeyCode::Char('f') => Message::CycleFilter,
        KeyCode::Char('s') => Message::CycleSort,
        KeyCode::Char('r') => Message::ReverseSort,
        KeyCode::Char('e') => Message::Export,
        KeyCode::Char('?') => Message::ToggleHelp,
        KeyCode::Char('1') => Message::Show(View::Browse),
        KeyCode::Char('2') => Message::Show(View::Summary),
        KeyCode::Char('3') | KeyCode::Enter => Message::Show(View::Detail),
        KeyCode::Esc => Message::Back,
        KeyCode::Char('q') => Message::Quit,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{MouseEvent, MouseEventKind};

    fn key(code: KeyCode, modifiers: KeyModifiers) -> Event {
        Event::Key(KeyEvent::new(code, modifiers))
    }

    #[test]
    fn the_documented_keys_map_to_their_messages() {
        let plain = KeyModifiers::NONE;
        let cases = [
            (key(KeyCode::Char('j'), plain), Message::Move(1)),
            (key(KeyCode::Up, plain), Message::Move(-1)),
            (key(KeyCode::Tab, plain), Message::CycleAttack(1)),
            (
                key(KeyCode::BackTab, KeyModifiers::SHIFT),
                Message::CycleAttack(-1),
            ),
            (key(KeyCode::Char('a'), plain), Message::CycleMethod(1)),
            (key(KeyCode::Char('/'), plain), Message::OpenJump),
            (key(KeyCode::Char('?'), plain), Message::ToggleHelp),
            (key(KeyCode::Esc, plain), Message::Back),
            (key(KeyCode::Char('q'), plain), Message::Quit),
            (
                key(KeyCode::Char('c'), KeyModifiers::CONTROL),
                Message::Quit,
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(message(&event, false), Some(expected), "{event:?}");
        }
    }

    #[test]
    fn the_prompt_takes_characters_instead_of_commands() {
        let q = key(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(message(&q, true), Some(Message::PromptChar('q')));
        let enter = key(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(message(&enter, true), Some(Message::PromptSubmit));
    }

    #[test]
    fn clicks_and_releases() {
        let click = Event::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 3,
            row: 7,
            modifiers: KeyModifiers::NONE,
        });
        assert_eq!(message(&click, false), Some(Message::Click(3, 7)));
        let mut release = KeyEvent::new(KeyCode::Char('j'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(message(&Event::Key(release), false), None);
    }
}
