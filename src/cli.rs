//! Command-line types (clap) and nothing else: no I/O happens here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Audit a trained neural network: robustness, attributions, extrapolation, equivariance.
#[derive(Debug, Parser)]
#[command(name = "xai-audit", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare two reports of the same data: clean and robust accuracy, stress
    /// and equivariance headlines, and the inputs whose verdict flipped. Exit
    /// code 1 when a figure got worse by more than --threshold.
    Diff {
        /// The earlier report (.json).
        old: PathBuf,
        /// The later report (.json).
        new: PathBuf,
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
        /// Percentage points a figure may worsen before it is a regression.
        #[arg(long, default_value_t = 1.0)]
        threshold: f64,
    },
    /// Show a model file's tensors and its resolved layers.
    Inspect {
        /// The model (.safetensors).
        model: PathBuf,
        /// Architecture spec JSON (default: the file's metadata, then <stem>.arch.json).
        #[arg(long)]
        arch: Option<PathBuf>,
    },
    /// Clean accuracy of a model on a dataset (the shipped MNIST sample by default).
    Eval {
        /// The model (.safetensors).
        model: PathBuf,
        /// Architecture spec JSON (default: the file's metadata, then <stem>.arch.json).
        #[arg(long)]
        arch: Option<PathBuf>,
        /// Data: an IDX images file, a folder with an IDX pair, or an image folder
        /// (one subfolder per class). Default: the shipped 1,000 MNIST digits.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Resize images whose size differs from the model's input.
        #[arg(long)]
        resize: bool,
        /// Use only the first N inputs.
        #[arg(long)]
        limit: Option<usize>,
        /// Inputs per forward pass.
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Which implementation runs the model: the fast engine when it supports
        /// every layer (auto), the fast engine or an error (fast), or candle
        /// autograd (reference).
        #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
        engine: EngineArg,
    },
    /// Audit a model: clean accuracy and robustness to each attack of a plan,
    /// written to a versioned JSON report and a tensor sidecar.
    Run {
        /// The model (.safetensors).
        model: PathBuf,
        /// Architecture spec JSON (default: the file's metadata, then <stem>.arch.json).
        #[arg(long)]
        arch: Option<PathBuf>,
        /// Data: an IDX images file, a folder with an IDX pair, or an image folder.
        /// Default: the shipped 1,000 MNIST digits (for 1×28×28 models).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Audit plan (TOML). Default: attacks/default.toml (built in).
        #[arg(long)]
        plan: Option<PathBuf>,
        /// Report path (.json); the tensors go beside it as .safetensors.
        /// Default: reports/<model stem>.json.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Audit only the first N inputs.
        #[arg(long)]
        limit: Option<usize>,
        /// Seed for every random choice (overrides the plan's).
        #[arg(long)]
        seed: Option<u64>,
        /// Inputs per batch (overrides the plan's; results do not depend on it).
        #[arg(long)]
        batch_size: Option<usize>,
        /// A CI gate, e.g. "robust_accuracy.pgd-linf-0.1 >= 0.8" (repeatable; with
        /// the plan's [gates]). Exit code 1 when one fails.
        #[arg(long = "gate", value_name = "EXPR")]
        gates: Vec<String>,
        /// Continue an interrupted run from <out>.partial (same model, data, plan,
        /// seed, batch size and engine); without it an old checkpoint is replaced.
        #[arg(long)]
        resume: bool,
        /// Write the gates' verdicts as JUnit XML here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Which implementation runs the model: the fast engine when it supports
        /// every layer (auto), the fast engine or an error (fast), or candle
        /// autograd (reference).
        #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
        engine: EngineArg,
        /// Resize images whose size differs from the model's input.
        #[arg(long)]
        resize: bool,
        /// Write each input's clean, adversarial and amplified-perturbation PNGs here.
        #[arg(long)]
        save_images: Option<PathBuf>,
        /// Open the report in the terminal UI when the run finishes.
        #[arg(long)]
        tui: bool,
    },
    /// Browse a report in the terminal: inputs, attacks, attributions,
    /// stress and equivariance results (reads the report and its tensor
    /// sidecar; no model needed).
    Tui {
        /// The report (.json); its .safetensors sidecar must be beside it.
        report: PathBuf,
        /// Where `e` writes PNGs (default: <report stem>-export/ beside the report).
        #[arg(long)]
        export_dir: Option<PathBuf>,
    },
    /// Print the JSON Schema of the report (as in reports/schema.json).
    Schema,
    /// Measure PGD-40 L∞ throughput (images/second) on a model, or with
    /// --attributions the cost per input of each attribution method.
    Bench {
        /// The model (.safetensors).
        model: PathBuf,
        /// Architecture spec JSON.
        #[arg(long)]
        arch: Option<PathBuf>,
        /// Data (default: the shipped sample).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Inputs to attack.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Inputs per batch.
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// PGD steps.
        #[arg(long, default_value_t = 40)]
        steps: usize,
        /// Which implementation runs the model: the fast engine when it supports
        /// every layer (auto), the fast engine or an error (fast), or candle
        /// autograd (reference).
        #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
        engine: EngineArg,
        /// Time each attribution method and metric per input instead.
        #[arg(long)]
        attributions: bool,
    },
}

/// `--engine`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    /// The fast engine when it supports every layer, else the reference.
    Auto,
    /// The fast engine, or an error naming the layer it cannot run.
    Fast,
    /// candle autograd (slower; the reference the fast engine is tested against).
    Reference,
}

impl From<EngineArg> for xai_audit::engine::Engine {
    fn from(e: EngineArg) -> Self {
        match e {
            EngineArg::Auto => xai_audit::engine::Engine::Auto,
            EngineArg::Fast => xai_audit::engine::Engine::Fast,
            EngineArg::Reference => xai_audit::engine::Engine::Reference,
        }
    }
}
