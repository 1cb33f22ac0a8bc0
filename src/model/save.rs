//! Writing a model: named f32 tensors plus the spec in the safetensors
//! metadata, so the file describes itself. Written atomically.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;

use super::spec::{ArchSpec, METADATA_KEY};
use crate::error::{Error, Result};

/// Saves `tensors` to `path` with `spec` under the metadata key `xai_audit.arch`.
pub fn save_model(path: &Path, spec: &ArchSpec, tensors: &[(String, Tensor)]) -> Result<()> {
    let spec_json = serde_json::to_string(spec).expect("spec serializes");
    let metadata = HashMap::from([(METADATA_KEY.to_string(), spec_json)]);
    let contiguous: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.contiguous()?)))
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(
        contiguous.iter().map(|(n, t)| (n.as_str(), t)),
        Some(metadata),
    )
    .map_err(|e| Error::format(path, format!("cannot serialize tensors: {e}")))?;
    crate::util::write_atomic(path, &bytes)
}
