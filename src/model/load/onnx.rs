//! Loading an ONNX file: its graph imported by [`crate::model::onnx`] into a
//! version-2 spec and f32 weights, the command line's overrides (input range,
//! class names) applied, the network built and checked like any other.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::{ModelOptions, TensorInfo};
use crate::error::{Error, Result};
use crate::model::spec::ArchSpec;

/// Whether `path` names an ONNX file (by its extension, `.onnx`).
pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// An imported ONNX model before its network is built.
pub(crate) struct OnnxParts {
    /// The spec, overrides applied.
    pub spec: ArchSpec,
    /// Weights by the spec's names.
    pub tensors: HashMap<String, Tensor>,
    /// The weights as `inspect` lists them.
    pub infos: Vec<TensorInfo>,
    /// The model's opset (default domain).
    pub opset: i64,
    /// `producer_name producer_version`.
    pub producer: String,
    /// What the import recognized or dropped, one sentence each.
    pub notes: Vec<String>,
    /// The SHA-256 of the model: its file, then any files holding its
    /// weights outside it (`model.onnx.data`), hex.
    pub sha256: String,
}

/// Imports the ONNX model in `bytes` (read from `path`).
pub(crate) fn onnx_parts(bytes: &[u8], path: &Path, opts: &ModelOptions) -> Result<OnnxParts> {
    let origin = path.display().to_string();
    if opts.arch.is_some() {
        return Err(Error::Invalid(format!(
            "{origin}: an ONNX model's graph is its architecture; an explicit spec file does not apply to it"
        )));
    }
    if opts.strip_prefix.is_some() {
        return Err(Error::Invalid(format!(
            "{origin}: an ONNX model's weights are named by its graph; a prefix to strip does not apply to it"
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let imported = crate::model::onnx::import(bytes, &origin, Some(dir))?;
    let spec_origin = format!("{origin} (its imported graph)");
    let spec = ArchSpec::from_json(&imported.spec.to_string(), &spec_origin)?;
    let spec = opts.apply(spec, &spec_origin)?;
    let mut tensors = HashMap::with_capacity(imported.weights.len());
    let mut infos = Vec::with_capacity(imported.weights.len());
    for (name, shape, data) in imported.weights {
        infos.push(TensorInfo {
            name: name.clone(),
            shape: shape.clone(),
            dtype: "F32".into(),
        });
        tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
    }
    let mut parts: Vec<&[u8]> = vec![bytes];
    parts.extend(imported.external.iter().map(|(_, b)| b.as_slice()));
    let mut notes = imported.notes;
    for (file, bytes) in &imported.external {
        notes.push(format!(
            "weights read from {} ({} bytes), kept beside the model",
            file.display(),
            bytes.len()
        ));
    }
    Ok(OnnxParts {
        spec,
        tensors,
        infos,
        opset: imported.opset,
        producer: imported.producer,
        notes,
        sha256: crate::util::sha256_hex_of(&parts),
    })
}
