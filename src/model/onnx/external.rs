//! Weights an ONNX file keeps outside itself (`data_location = EXTERNAL`,
//! the `external_data` entries `location`, `offset`, `length`): recent
//! `torch.onnx.export` writes them to `model.onnx.data` beside the model.
//! They are read into the tensors' `raw_data` before the import, so the
//! rest of the importer sees one self-contained model.
//!
//! A location must be a relative path inside the model's directory (as the
//! ONNX spec requires): an absolute path or one that climbs out with `..`
//! is refused rather than read.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use super::proto::{ModelProto, TensorProto};

/// The external files a model's tensors were read from, in the order first
/// used, with their bytes (they are part of the model: its hash covers them).
pub type ExternalFiles = Vec<(PathBuf, Vec<u8>)>;

/// Whether `t` keeps its data outside the model file.
pub(crate) fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(1) || !t.external_data.is_empty()
}

/// Reads every initializer's (and `Constant` node's) external data from
/// files under `dir` into its `raw_data`. Errors name the tensor and file.
pub(crate) fn inline(model: &mut ModelProto, dir: &Path) -> Result<ExternalFiles, String> {
    let mut files: HashMap<String, usize> = HashMap::new();
    let mut read: ExternalFiles = Vec::new();
    let Some(graph) = model.graph.as_mut() else {
        return Ok(read);
    };
    let constants = graph
        .node
        .iter_mut()
        .flat_map(|n| n.attribute.iter_mut())
        .filter_map(|a| a.t.as_mut());
    for t in graph.initializer.iter_mut().chain(constants) {
        if !is_external(t) {
            continue;
        }
        let name = t.name().to_string();
        let entry = |key: &str| {
            t.external_data
                .iter()
                .find(|e| e.key() == key)
                .map(|e| e.value().to_string())
        };
        let location = entry("location").ok_or_else(|| {
            format!(
                "tensor '{name}' keeps its data in an external file but names none (no `location`)"
            )
        })?;
        let number = |key: &str| -> Result<Option<usize>, String> {
            entry(key)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| {
                        format!("tensor '{name}': its external `{key}` is `{v}`, not a byte count")
                    })
                })
                .transpose()
        };
        let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
        let k = match files.get(&location) {
            Some(&k) => k,
            None => {
                let path = resolve(dir, &location).ok_or_else(|| {
                    format!(
                        "tensor '{name}' keeps its data in `{location}`, which is not a path inside the model's directory"
                    )
                })?;
                let bytes = std::fs::read(&path).map_err(|e| {
                    format!(
                        "tensor '{name}' keeps its data in {}, which cannot be read ({e}): keep that file beside the model",
                        path.display()
                    )
                })?;
                read.push((path, bytes));
                files.insert(location.clone(), read.len() - 1);
                read.len() - 1
            }
        };
        let (path, bytes) = &read[k];
        let end = match length {
            Some(l) => offset.checked_add(l),
            None => Some(bytes.len()),
        };
        let data = end
            .filter(|&e| offset <= e && e <= bytes.len())
            .map(|e| &bytes[offset..e])
            .ok_or_else(|| {
                format!(
                    "tensor '{name}' keeps its data at bytes {offset}..{} of {}, which holds {} bytes",
                    end.map_or("?".to_string(), |e| e.to_string()),
                    path.display(),
                    bytes.len()
                )
            })?;
        t.raw_data = Some(data.to_vec());
        t.external_data.clear();
        t.data_location = None;
    }
    Ok(read)
}

/// `location` under `dir`, when it is a relative path that stays inside.
fn resolve(dir: &Path, location: &str) -> Option<PathBuf> {
    let rel = Path::new(location);
    let inside = !location.is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    inside.then(|| dir.join(rel))
}
