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
}
