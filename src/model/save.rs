//! Writing a model: named f32 tensors plus the spec in the safetensors
//! metadata, so the file describes itself, written atomically; and
//! [`convert`], which writes any model we read (an ONNX graph, a
//! safetensors file with a sidecar or version-1 spec) that way.

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

/// What [`convert`] wrote.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The spec embedded in the output (version 2).
    pub spec: ArchSpec,
    /// Tensors written.
    pub tensors: usize,
    /// Their elements.
    pub parameters: usize,
}

/// Reads the model at `input` (ONNX or safetensors, with `opts`) and writes
/// its weights with its version-2 spec embedded to `output`, atomically, so
/// the report, the TUI and shards see one format.
///
/// # Errors
/// Whatever loading the model gives (naming the file, node or tensor), or
/// an I/O error naming `output`.
pub fn convert(input: &Path, opts: &super::load::ModelOptions, output: &Path) -> Result<Converted> {
    let (spec, tensors) = super::load::model_parts(input, opts)?;
    let mut named: Vec<(String, Tensor)> = tensors.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    save_model(output, &spec, &named)?;
    Ok(Converted {
        tensors: named.len(),
        parameters: named.iter().map(|(_, t)| t.elem_count()).sum(),
        spec,
    })
}
