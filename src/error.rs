//! The library's error type: every failure names what it is about (a file, a
//! tensor, a layer, a key) so that a user can fix the input without reading code.

use std::path::PathBuf;

/// Errors returned by the xai-audit library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (in the message, so not also a `source`).
        error: std::io::Error,
    },

    /// A file was read but its contents are not what they should be.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// The architecture spec is invalid or does not match the weights.
    #[error("architecture spec ({origin}): {message}")]
    Spec {
        /// Where the spec came from (a file, or the model's metadata).
        origin: String,
        /// What is wrong with it.
        message: String,
    },

    /// An audit plan is invalid.
    #[error("plan {origin}: {message}")]
    Plan {
        /// The plan file.
        origin: String,
        /// What is wrong, naming the entry and key.
        message: String,
    },

    /// A layer's weight tensor is missing or has the wrong shape.
    #[error("layer {layer}: tensor '{tensor}' {problem}")]
    Weight {
        /// The layer, as `index (op param)`.
        layer: String,
        /// The tensor's full name.
        tensor: String,
        /// What is wrong, with the expected and found shapes.
        problem: String,
    },

    /// The data does not fit the model or the request.
    #[error("data {source_name}: {message}")]
    Data {
        /// The data file or folder.
        source_name: String,
        /// What is wrong.
        message: String,
    },

    /// A caller passed an argument outside its domain.
    #[error("invalid argument: {0}")]
    Invalid(String),

    /// The run was asked to stop (Ctrl-C) and saved its progress.
    #[error("interrupted{}", match partial {
        Some(p) => format!(": progress saved in {}; run the same command again with --resume to continue", p.display()),
        None => String::new(),
    })]
    Interrupted {
        /// The checkpoint holding the finished batches.
        partial: Option<PathBuf>,
    },

    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }

    /// An [`Error::Data`] about `source_name`.
    pub fn data(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Data {
            source_name: source_name.into(),
            message: message.into(),
        }
    }
}
