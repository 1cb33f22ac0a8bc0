//! The library's error type: every failure names what it is about (a file, a
//! tensor, a layer, a key) so that a user can fix the input without reading code.
//!
//! The library knows no command line. When the fix is a change of options
//! (resume, give the data, strip a prefix...), the error carries it typed, as a
//! [`Remedy`], and an option whose value is wrong is named as an [`Opt`]. A
//! [`Wording`] turns both into words: [`Display`](std::fmt::Display) uses the
//! library's own ([`LibraryWording`]: field names such as
//! `JobOptions::batch_size`); the binary passes its flags to
//! [`Error::message`] (`src/cli.rs`), so its users read `--batch-size`.

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

    /// An ONNX model could not be imported: not ONNX, or a graph, node or
    /// attribute the importer cannot express as a spec.
    #[error("ONNX model {origin}: {message}")]
    Onnx {
        /// The model file.
        origin: String,
        /// What is wrong, naming the node, its op type and the opset.
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

    /// An option of the call is outside its domain.
    #[error("{}", self.message(&LibraryWording))]
    BadOption {
        /// The option.
        option: Opt,
        /// What is wrong with its value, worded to follow the option's name
        /// (`"must be at least 1"`).
        message: String,
    },

    /// An error that a change of options gets past.
    #[error("{}", self.message(&LibraryWording))]
    Remedied {
        /// The error.
        error: Box<Error>,
        /// The change.
        remedy: Remedy,
    },

    /// The scheduler's variables do not say which shard this process is, or
    /// contradict each other.
    #[error("cannot tell which shard this is: {0}")]
    Scheduler(String),

    /// The shard files given to a merge do not make one whole job: shards
    /// missing, given twice, of another job or unfinished, each named by its
    /// index and file.
    #[error("{}", shard_problems(problems))]
    Shards {
        /// One sentence per problem.
        problems: Vec<String>,
    },

    /// The run was asked to stop (Ctrl-C) and saved its progress.
    #[error("{}", self.message(&LibraryWording))]
    Interrupted {
        /// The checkpoint holding the finished batches.
        partial: Option<PathBuf>,
    },

    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// An option of a library call whose value can be wrong, named in messages
/// through a [`Wording`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    /// `JobOptions::batch_size`.
    BatchSize,
    /// `JobOptions::out`, the report path.
    Out,
    /// `JobOptions::shard`.
    Shard,
    /// The shard count given for a scheduler that does not say it (a
    /// Kubernetes Indexed Job's completions).
    Shards,
    /// `diff_reports`'s `threshold_pp`.
    Threshold,
}

/// A change of options that gets past an error, worded through a
/// [`Wording`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// Run the same job again with `resume` set: it continues from the
    /// checkpoint.
    Resume,
    /// Start afresh: remove the checkpoint, or leave `resume` unset.
    StartAfresh,
    /// Name the data (an IDX file or an image folder) instead of the
    /// shipped sample.
    PassData,
    /// Give the architecture spec: explicitly, in the safetensors metadata,
    /// or as this sidecar file beside the model.
    PassArch {
        /// `<stem>.arch.json` beside the model.
        sidecar: PathBuf,
    },
    /// Strip this prefix from the stored tensor names (or set the spec's
    /// `strip_prefix`).
    StripPrefix(String),
    /// Run the model on the reference engine.
    ReferenceEngine,
    /// Resize the images to the model's input size.
    Resize,
    /// Load the file a conversion writes (a model converted to ONNX) in
    /// place of the one given.
    LoadConverted(PathBuf),
    /// Give this file (arrays) as the data, with a model.
    GiveAsData(PathBuf),
    /// Give the shard count (a Kubernetes Indexed Job's `completions`).
    GiveShardCount,
    /// Name the shard by hand (`K` of `N`), or run as a task of a Slurm job
    /// array or a pod of a Kubernetes Indexed Job.
    NameShard,
    /// Run these shards (1-based indices) of `of`, then merge again.
    RunShards {
        /// The shards to run.
        missing: Vec<usize>,
        /// The shard count.
        of: usize,
    },
}

/// How a front end names the library's options and remedies in messages.
pub trait Wording {
    /// The option's name, as the subject of a sentence.
    fn option(&self, option: Opt) -> String;
    /// The remedy as an instruction ("pass ...").
    fn remedy(&self, remedy: &Remedy) -> String;
}

/// The library's own words: options by their field names.
#[derive(Debug, Clone, Copy, Default)]
pub struct LibraryWording;

impl Wording for LibraryWording {
    fn option(&self, option: Opt) -> String {
        match option {
            Opt::BatchSize => "`JobOptions::batch_size`",
            Opt::Out => "the report path `JobOptions::out`",
            Opt::Shard => "`JobOptions::shard`",
            Opt::Shards => "the shard count",
            Opt::Threshold => "the regression threshold",
        }
        .to_string()
    }

    fn remedy(&self, remedy: &Remedy) -> String {
        match remedy {
            Remedy::Resume => "run the same job again with `resume` set to continue".into(),
            Remedy::StartAfresh => "remove it or leave `resume` unset".into(),
            Remedy::PassData => "name the data (an IDX file or an image folder)".into(),
            Remedy::PassArch { sidecar } => format!(
                "give the spec (`ModelOptions::arch`), embed it in the safetensors metadata, \
                 or write {} (examples/export_pytorch.py writes the spec from the PyTorch module)",
                sidecar.display()
            ),
            Remedy::StripPrefix(prefix) => format!(
                "strip `{prefix}` (`ModelOptions::strip_prefix`) or put \"strip_prefix\": \
                 \"{prefix}\" in the spec"
            ),
            Remedy::ReferenceEngine => "use `Engine::Reference`".into(),
            Remedy::Resize => "set `resize` to resize it".into(),
            Remedy::LoadConverted(path) => {
                format!("then load {} in its place", path.display())
            }
            Remedy::GiveAsData(path) => format!(
                "give {} as the data (`DataRequest::path`), with a model",
                path.display()
            ),
            Remedy::GiveShardCount => {
                "give the shard count: the Indexed Job's `completions`".into()
            }
            Remedy::NameShard => "set `JobOptions::shard` to the shard's index and count, or run \
                 as a task of a Slurm job array or a pod of a Kubernetes Indexed Job"
                .into(),
            Remedy::RunShards { missing, of } => format!(
                "run shard{} {} of {of} (`JobOptions::shard`) with the job's options, then merge again",
                if missing.len() == 1 { "" } else { "s" },
                crate::util::list_and(missing)
            ),
        }
    }
}

/// A merge's problems with its shard files: one on the line, several
/// listed below it.
fn shard_problems(problems: &[String]) -> String {
    match problems {
        [one] => format!("cannot merge the shards: {one}"),
        many => format!("cannot merge the shards:\n  {}", many.join("\n  ")),
    }
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

    /// This error with `remedy`, the change of options that gets past it.
    pub fn remedied(self, remedy: Remedy) -> Self {
        Error::Remedied {
            error: Box::new(self),
            remedy,
        }
    }

    /// An [`Error::BadOption`].
    pub fn bad_option(option: Opt, message: impl Into<String>) -> Self {
        Error::BadOption {
            option,
            message: message.into(),
        }
    }

    /// The message with options and remedies in `wording`'s words (the
    /// `Display` form is this with [`LibraryWording`]).
    pub fn message(&self, wording: &dyn Wording) -> String {
        match self {
            Error::BadOption { option, message } => {
                format!("invalid argument: {} {message}", wording.option(*option))
            }
            Error::Remedied { error, remedy } => {
                format!(
                    "{}\nhelp: {}",
                    error.message(wording),
                    wording.remedy(remedy)
                )
            }
            Error::Interrupted { partial: None } => "interrupted".into(),
            Error::Interrupted { partial: Some(p) } => format!(
                "interrupted: progress saved in {}; {}",
                p.display(),
                wording.remedy(&Remedy::Resume)
            ),
            other => other.to_string(),
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
