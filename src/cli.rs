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
    },
}
