//! Opening a report with its tensor sidecar, for the terminal UI and the
//! HTML page's galleries: the JSON report, read through
//! [`crate::report::io::read_report`] so the schema-version check and its
//! message are the same as everywhere else, and an index of its tensor
//! sidecar. Opening reads only the sidecar's header; one input's images are
//! read from disk when that input is selected, so a report with thousands of
//! inputs opens in well under a second.
//!
//! Everything the views index by position is checked here once (record
//! counts, attack order, tensor names and shapes), so a report whose sidecar
//! belongs to another run is refused with a message instead of showing the
//! wrong images.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::io::read_report;
use super::tensors::sidecar_path;
use super::types::Report;
use crate::error::Error;

/// Headers larger than this are not a safetensors header we wrote.
const MAX_HEADER_BYTES: u64 = 100 << 20;

/// Where one tensor lies in the sidecar.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// `F32`, `F16`, …, as in the safetensors header.
    pub dtype: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Absolute byte offset of its data in the file.
    start: u64,
}

/// A safetensors file indexed by its header; tensor rows are read on demand.
#[derive(Debug)]
pub struct Sidecar {
    path: PathBuf,
    file: File,
    tensors: BTreeMap<String, TensorInfo>,
}

impl Sidecar {
    /// Opens `path` and reads its header, checking that every tensor's data
    /// lies inside the file.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let bad = |message: String| Error::format(path, message);
        let mut file = File::open(path).map_err(|e| {
            bad(if e.kind() == std::io::ErrorKind::NotFound {
                "tensor sidecar not found: the report names it, and the terminal UI and the HTML \
                 page's galleries need it for the images (keep the .safetensors file next to the report, or rerun the audit)"
                    .to_string()
            } else {
                format!("cannot read the tensor sidecar: {e}")
            })
        })?;
        let file_len = file
            .metadata()
            .map_err(|e| bad(format!("cannot read the tensor sidecar: {e}")))?
            .len();
        let mut len_bytes = [0u8; 8];
        file.read_exact(&mut len_bytes)
            .map_err(|_| bad("not a safetensors file: shorter than its 8-byte header".into()))?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES || header_len > file_len.saturating_sub(8) {
            return Err(bad(format!(
                "not a safetensors file: a header of {header_len} bytes in a file of {file_len}"
            )));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header)
            .map_err(|e| bad(format!("cannot read the safetensors header: {e}")))?;
        let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
            .map_err(|e| bad(format!("not a safetensors file: bad header: {e}")))?;
        let data_start = 8 + header_len;
        let data_len = file_len - data_start;
        let mut tensors = BTreeMap::new();
        for (name, entry) in entries {
            if name == "__metadata__" {
                continue;
            }
            let parsed: HeaderEntry = serde_json::from_value(entry)
                .map_err(|e| bad(format!("tensor {name}: bad header entry: {e}")))?;
            let [begin, end] = parsed.data_offsets;
            let elements = parsed
                .shape
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(d as u64));
            let expected_bytes = elements.and_then(|n| n.checked_mul(dtype_bytes(&parsed.dtype)));
            if begin > end || end > data_len || expected_bytes != Some(end - begin) {
                return Err(bad(format!(
                    "tensor {name}: its data ({begin}..{end} of {data_len} bytes) does not match \
                     its shape {:?} and dtype {}: the file is truncated or corrupt",
                    parsed.shape, parsed.dtype
                )));
            }
            tensors.insert(
                name,
                TensorInfo {
                    dtype: parsed.dtype,
                    shape: parsed.shape,
                    start: data_start + begin,
                },
            );
        }
        Ok(Sidecar {
            path: path.to_path_buf(),
            file,
            tensors,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A tensor's dtype and shape.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// Row `index` (along the first axis) of an F32 tensor.
    pub fn row(&mut self, name: &str, index: usize) -> Result<Vec<f32>, Error> {
        let bad = |message: String| Error::format(&self.path, message);
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| bad(format!("no tensor {name}")))?;
        if info.dtype != "F32" {
            return Err(bad(format!("tensor {name} is {}, not F32", info.dtype)));
        }
        let rows = info.shape.first().copied().unwrap_or(0);
        if index >= rows {
            return Err(bad(format!(
                "tensor {name} has {rows} rows, not {}",
                index + 1
            )));
        }
        let per_row: usize = info.shape[1..].iter().product();
        let offset = info.start + (index * per_row * 4) as u64;
        let mut bytes = vec![0u8; per_row * 4];
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|e| Error::format(&self.path, format!("cannot read tensor {name}: {e}")))?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

#[derive(serde::Deserialize)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

fn dtype_bytes(dtype: &str) -> u64 {
    match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "F32" | "I32" | "U32" => 4,
        "F64" | "I64" | "U64" => 8,
        // Unknown dtypes never match a size check: the header is refused.
        _ => 0,
    }
}

/// A report and its sidecar, checked against each other.
#[derive(Debug)]
pub struct ReportData {
    /// The report file.
    pub path: PathBuf,
    /// The report.
    pub report: Report,
    /// Its tensors.
    pub sidecar: Sidecar,
    /// `[C, H, W]` of one input.
    pub shape: [usize; 3],
    /// The model's valid pixel range (from the spec; `[0, 1]` by default).
    pub range: (f32, f32),
}

impl ReportData {
    /// Reads the report at `path` and indexes its sidecar.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let report = read_report(path)?;
        let sidecar = Sidecar::for_report(path, &report)?;
        let shape = report.data.input_shape;
        let range = input_range(&report.model.spec);
        Ok(ReportData {
            path: path.to_path_buf(),
            report,
            sidecar,
            shape,
            range,
        })
    }

    /// Values per input (`C·H·W`).
    pub fn input_len(&self) -> usize {
        self.shape.iter().product()
    }
}

impl Sidecar {
    /// Opens the sidecar of `report` (read from `path`) and checks the two
    /// against each other: record counts, attack order, and the name, dtype
    /// and shape of every tensor the views index by input position.
    pub fn for_report(path: &Path, report: &Report) -> Result<Self, Error> {
        let inconsistent = |message: String| {
            Error::format(
                path,
                format!("{message}: the report was edited or is damaged; rerun the audit"),
            )
        };
        let shape = report.data.input_shape;
        if shape.contains(&0) {
            return Err(inconsistent(format!("input shape {shape:?} is empty")));
        }
        let count = report.samples.len();
        if count != report.data.count {
            return Err(inconsistent(format!(
                "{count} input records but `data.count` is {}",
                report.data.count
            )));
        }
        let attack_names: Vec<&str> = report
            .summary
            .attacks
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        for s in &report.samples {
            let names: Vec<&str> = s.attacks.iter().map(|a| a.name.as_str()).collect();
            if names != attack_names {
                return Err(inconsistent(format!(
                    "input {} lists attacks {names:?}, the summary {attack_names:?}",
                    s.index
                )));
            }
        }
        let file = sidecar_file(path, report);
        let sidecar = Sidecar::open(&file)?;
        let expected = [count, shape[0], shape[1], shape[2]];
        let mut required = vec![crate::sidecar::CLEAN_INPUTS.to_string()];
        required.extend(
            attack_names
                .iter()
                .map(|a| crate::sidecar::adversarial_inputs(a)),
        );
        for entry in &report.summary.attributions {
            required.push(crate::sidecar::attribution_maps(&entry.name, "clean"));
            required.extend(
                entry
                    .attacks
                    .iter()
                    .map(|a| crate::sidecar::attribution_maps(&entry.name, &a.attack)),
            );
        }
        for name in &required {
            let message = match sidecar.info(name) {
                None => format!(
                    "no tensor {name}, which the report {} needs: this sidecar belongs to another \
                     run; rerun the audit",
                    path.display()
                ),
                Some(info) if info.dtype != "F32" => {
                    format!("tensor {name} is {}, expected F32", info.dtype)
                }
                Some(info) if info.shape != expected => format!(
                    "tensor {name} has shape {:?} but the report {} has {count} inputs of shape \
                     {shape:?} (expected {expected:?}): this sidecar belongs to another run; \
                     rerun the audit",
                    info.shape,
                    path.display()
                ),
                Some(_) => continue,
            };
            return Err(Error::format(file, message));
        }
        Ok(sidecar)
    }
}

/// Where the sidecar of `report` (read from `path`) lies: the file its
/// `tensors` names, beside the report, else `<report>.safetensors`.
pub fn sidecar_file(path: &Path, report: &Report) -> PathBuf {
    match (&report.tensors, path.parent()) {
        (Some(name), Some(dir)) => dir.join(name),
        (Some(name), None) => PathBuf::from(name),
        (None, _) => sidecar_path(path),
    }
}

/// The spec's `input.range`, or `[0, 1]` when absent or unusable.
pub fn input_range(spec: &serde_json::Value) -> (f32, f32) {
    let range = spec
        .get("input")
        .and_then(|i| i.get("range"))
        .and_then(|r| r.as_array())
        .and_then(|r| Some((r.first()?.as_f64()? as f32, r.get(1)?.as_f64()? as f32)));
    match range {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() && lo < hi => (lo, hi),
        _ => (0.0, 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_range_reads_the_spec_and_falls_back_to_unit() {
        let spec = serde_json::json!({"input": {"range": [-1.0, 1.0]}});
        assert_eq!(input_range(&spec), (-1.0, 1.0));
        assert_eq!(input_range(&serde_json::json!({})), (0.0, 1.0));
        let reversed = serde_json::json!({"input": {"range": [1.0, 0.0]}});
        assert_eq!(input_range(&reversed), (0.0, 1.0));
    }

    #[test]
    fn a_truncated_sidecar_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let header = r#"{"x/clean":{"dtype":"F32","shape":[2,1,2,2],"data_offsets":[0,32]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        std::fs::write(&path, &bytes).unwrap();
        let err = Sidecar::open(&path).unwrap_err().to_string();
        assert!(err.contains("t.safetensors"), "{err}");
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn rows_are_read_from_their_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let header =
            r#"{"__metadata__":{"a":"b"},"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let mut sidecar = Sidecar::open(&path).unwrap();
        assert_eq!(sidecar.row("x", 1).unwrap(), [4.0, 5.0, 6.0]);
        assert!(sidecar.row("x", 2).is_err());
        assert!(sidecar.row("y", 0).is_err());
    }
}
