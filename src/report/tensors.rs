//! The tensor sidecar: `<report stem>.safetensors` beside the report, holding
//! what is too big for JSON — `x/clean` and `x/adv/<attack name>` as
//! `[N, C, H, W]` f32 — so the terminal UI shows images without recomputing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

/// `reports/run.json` → `reports/run.safetensors`.
pub fn sidecar_path(report: &Path) -> PathBuf {
    report.with_extension("safetensors")
}

/// Writes named tensors atomically.
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), None)
        .map_err(|e| Error::format(path, format!("cannot serialize tensors: {e}")))?;
    crate::util::write_atomic(path, &bytes)
}

/// Reads a sidecar.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| Error::format(path, format!("not a valid tensor sidecar: {e}")))
}
