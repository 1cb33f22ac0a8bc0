//! Event hooks an audit calls as it goes, with no-op defaults: the progress
//! bars implement them today; a report writer or a live TUI view can too.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Receives progress events from an audit.
pub trait Sink {
    /// A phase of the audit starts (the clean pass, the attacks, the stress
    /// checks, the attributions): `inputs` inputs, each gone through by
    /// every one of `checks` (one unit of work per input per check).
    fn on_start(&mut self, _inputs: usize, _checks: &[String]) {}
    /// A check starts on the batch holding inputs `first..first + len`.
    fn on_check_start(&mut self, _check: &str, _first: usize, _len: usize) {}
    /// A check finished on a batch of `len` inputs.
    fn on_check_done(&mut self, _check: &str, _len: usize) {}
    /// The phase finished.
    fn on_finish(&mut self) {}
}

/// Ignores every event.
pub struct NoSink;

impl Sink for NoSink {}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub struct ProgressSink {
    bar: ProgressBar,
}

impl ProgressSink {
    /// A bar that draws only on a terminal.
    pub fn new() -> Self {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (eta {eta})",
            )
            .expect("valid template"),
        );
        ProgressSink { bar }
    }
}

impl Default for ProgressSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for ProgressSink {
    fn on_start(&mut self, inputs: usize, checks: &[String]) {
        // Each phase after the first starts a fresh bar.
        if self.bar.is_finished() {
            *self = ProgressSink::new();
        }
        // One unit per input per check.
        self.bar.set_length((inputs * checks.len()) as u64);
    }

    fn on_check_start(&mut self, check: &str, first: usize, len: usize) {
        self.bar
            .set_message(format!("{check}, inputs {first}..{}", first + len));
    }

    fn on_check_done(&mut self, _check: &str, len: usize) {
        self.bar.inc(len as u64);
    }

    fn on_finish(&mut self) {
        self.bar.finish_and_clear();
    }
}
