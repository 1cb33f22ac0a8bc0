//! The terminal UI (`xai-audit tui REPORT`, `run --tui`): browse a report and
//! its tensor sidecar without the model. It never recomputes anything; a
//! report from a long run on a big machine opens instantly on a laptop.
//!
//! - [`crate::report::opened`] (below this module, shared with the HTML
//!   page): opening the report and indexing its sidecar, with every
//!   cross-check the views rely on;
//! - [`list`]: which inputs the list shows and in which order;
//! - [`image`]: pixels to half-block terminal cells;
//! - [`app`]: the state and how messages change it;
//! - [`event`]: keys and mouse to messages, and the key table;
//! - [`view`]: drawing, one module per pane;
//! - [`export`]: PNG export of the selected input;
//! - this module: the error type and the terminal's lifecycle (raw mode,
//!   alternate screen and mouse capture, undone on exit, on error and on
//!   panic).
//!
//! The event loop ([`run_app`]) is generic over the ratatui backend, so the
//! tests drive it with a `TestBackend` and a list of events.

pub mod app;
pub mod event;
pub mod export;
pub mod image;
pub mod list;
pub mod view;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::layout::Rect;
use ratatui::Terminal;

pub use crate::report::opened::ReportData;
pub use app::{App, Options};

/// Errors of the terminal UI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The report or its tensor sidecar could not be read, is inconsistent,
    /// or belongs to another run.
    #[error(transparent)]
    Report(#[from] crate::Error),

    /// A PNG could not be written.
    #[error("{}: {message}", path.display())]
    Export {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// The terminal could not be set up or drawn to.
    #[error("terminal: {0}")]
    Terminal(String),
}

/// Whether the terminal is in raw mode / the alternate screen, so that the
/// panic hook restores it only when needed (and only once).
static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Opens the report at `path` in the terminal and returns when the user
/// quits. The report is read and checked before the terminal is touched, so
/// a bad report gives a normal error message.
pub fn open(path: &Path, options: Options) -> Result<(), Error> {
    let data = ReportData::open(path)?;
    if !std::io::stdout().is_terminal() {
        return Err(Error::Terminal(
            "standard output is not a terminal: the UI needs one (the report itself is fine)"
                .into(),
        ));
    }
    install_panic_hook();
    let mut terminal = enter()?;
    let result = (|| {
        let size = terminal
            .size()
            .map_err(|e| Error::Terminal(e.to_string()))?;
        let mut app = App::new(data, options, Rect::new(0, 0, size.width, size.height));
        let events = std::iter::from_fn(|| crossterm::event::read().ok());
        run_app(&mut terminal, &mut app, events)
    })();
    leave();
    result
}

/// Draws `app`, then applies `events` one by one, redrawing after each,
/// until the app quits or the events run out.
pub fn run_app<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    events: impl IntoIterator<Item = Event>,
) -> Result<(), Error>
where
    B::Error: std::fmt::Display,
{
    let draw = |terminal: &mut Terminal<B>, app: &App| {
        terminal
            .draw(|frame| frame.render_widget(app, frame.area()))
            .map(|_| ())
            .map_err(|e| Error::Terminal(e.to_string()))
    };
    draw(terminal, app)?;
    for event in events {
        app.handle_event(&event);
        if app.quit {
            break;
        }
        draw(terminal, app)?;
    }
    Ok(())
}

fn enter() -> Result<Terminal<CrosstermBackend<std::io::Stdout>>, Error> {
    let fail = |e: std::io::Error| Error::Terminal(e.to_string());
    enable_raw_mode().map_err(fail)?;
    TERMINAL_ACTIVE.store(true, Ordering::SeqCst);
    crossterm::execute!(std::io::stdout(), EnterAlternateScreen, EnableMouseCapture).map_err(
        |e| {
            leave();
            fail(e)
        },
    )?;
    Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(|e| {
        leave();
        fail(e)
    })
}

/// Undoes [`enter`]; does nothing when the terminal is not set up.
fn leave() {
    if TERMINAL_ACTIVE.swap(false, Ordering::SeqCst) {
        // Best effort: there is nothing better to do if restoring fails.
        let _ = crossterm::execute!(
            std::io::stdout(),
            DisableMouseCapture,
            LeaveAlternateScreen,
            crossterm::cursor::Show
        );
        let _ = disable_raw_mode();
    }
}

/// Restores the terminal before the previous hook prints a panic message, so
/// the message is readable and the shell usable.
fn install_panic_hook() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        leave();
        previous(info);
    }));
}
