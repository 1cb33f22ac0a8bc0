//! The audit report: serde types (`types`), writing and loading JSON with a
//! version check (`io`), the safetensors sidecar of inputs too big for JSON
//! (`tensors`), a report opened with its sidecar checked against it and
//! indexed for reading one input at a time (`opened`), building a report from an audit's results (`build`), and
//! the threat models its robust accuracies are read against (`threat`).

pub mod build;
pub mod images;
pub mod io;
pub mod opened;
pub mod tensors;
pub mod threat;
pub mod types;

pub use types::{Report, SCHEMA_VERSION};
