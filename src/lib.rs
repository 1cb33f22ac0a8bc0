//! xai-audit: audit a trained neural network before anyone trusts it.
//!
//! The library is organised along the flow of an audit:
//! - [`model`]: the architecture spec, safetensors loading, layers with
//!   PyTorch-exact gradients, and the [`model::Classifier`] boundary;
//! - [`data`]: MNIST IDX files and image folders;
//! - [`engine`]: the fast forward/input-gradient engine compiled from a
//!   [`model::Network`], tested against it;
//! - [`attack`]: FGSM and PGD, one file each;
//! - [`attribution`]: per-input attribution maps, one file per method, their
//!   quality metrics and how attacks move them;
//! - [`plan`]: audit plans as written (TOML) and resolved against a model,
//!   and CI gates;
//! - [`audit`]: running a plan over a dataset batch by batch;
//! - [`report`]: the versioned JSON report, its tensor sidecar and PNG export;
//! - [`stress`]: extrapolation stress tests and equivariance checks;
//! - [`inspect`]: the `inspect` command's report on a model file;
//! - [`tui`]: the terminal UI that browses a report and its sidecar;
//! - [`html`]: the self-contained HTML page of a report, with its charts;
//! - [`error`]: the library's error type;
//! - [`rng`]: the seeded generator all randomness goes through;
//! - [`entry`]: the one reader of plan entries, collecting every error;
//! - [`progress`]: progress events an audit reports as it goes;
//! - [`sidecar`]: the names of the tensors in a report's sidecar;
//! - [`stats`]: the shared numeric helpers (argmax, softmax, mean, median,
//!   quantile), one of each;
//! - [`transform`]: spatial resampling of images (shifts, flips, bilinear
//!   rotation and translation), shared by the stress checks and the spatial
//!   attack;
//! - [`util`]: hashing and atomic writes.
//!
//! The `xai-audit` binary is a thin layer over these modules.
//!
//! # Layers
//!
//! Data flows one way, and so do imports: a module uses only modules of a
//! lower layer (a test, `tests/it/layering.rs`, reads this list and every
//! `crate::` path in `src/`, and fails on an import against it). Bottom up:
//!
//! 1. `rng`, `stats`, `transform`, `sidecar`, `entry`, `progress`
//! 2. `data`
//! 3. `model`
//! 4. `engine`
//! 5. `attack`, `attribution`, `stress`
//! 6. `plan`
//! 7. `report`
//! 8. `audit`
//! 9. `inspect`, `bench`, `tui`, `html`
//!
//! Anywhere: `error`, `util`
//!
//! The method families of layer 5 do not import each other. Imports that
//! still go against this order are listed, with their reason, in the test.
#![warn(missing_docs)]

pub mod attack;
pub mod attribution;
pub mod audit;
pub mod bench;
pub mod data;
pub mod engine;
pub mod entry;
pub mod error;
pub mod html;
pub mod inspect;
pub mod model;
pub mod plan;
pub mod progress;
pub mod report;
pub mod rng;
pub mod sidecar;
pub mod stats;
pub mod stress;
pub mod transform;
pub mod tui;
pub mod util;

pub use error::{Error, Result};
