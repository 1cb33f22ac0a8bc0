//! Writing and reading report files. Writes are atomic (a temporary file
//! renamed into place), so an interrupted run never leaves half a report;
//! reads check `schema_version` before anything else and explain a mismatch
//! instead of failing on a missing field.

use std::path::Path;

use super::types::{Report, OLDEST_READABLE_VERSION, SCHEMA_VERSION};
use crate::error::{Error, Result};

/// Writes `report` to `path` as pretty JSON, atomically.
pub fn write_report(path: &Path, report: &Report) -> Result<()> {
    let mut text = serde_json::to_string_pretty(report).expect("reports serialize");
    text.push('\n');
    crate::util::write_atomic(path, text.as_bytes())
}

/// Reads a report, checking its version first.
pub fn read_report(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_report(&text, path)
}

/// Parses report text, checking its version first; `path` names it in errors.
pub fn parse_report(text: &str, path: &Path) -> Result<Report> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::format(path, format!("not valid JSON: {e}")))?;
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        None => return Err(Error::format(path, "not an xai-audit report: no `schema_version`")),
        Some(v) if v > SCHEMA_VERSION as u64 => {
            return Err(Error::format(
                path,
                format!(
                    "report schema version {v} is newer than this xai-audit {} reads ({SCHEMA_VERSION}): upgrade xai-audit",
                    env!("CARGO_PKG_VERSION")
                ),
            ))
        }
        Some(v) if v < OLDEST_READABLE_VERSION as u64 => {
            return Err(Error::format(
                path,
                format!("report schema version {v} is older than this xai-audit reads ({OLDEST_READABLE_VERSION} to {SCHEMA_VERSION}): rerun the audit"),
            ))
        }
        Some(_) => {}
    }
    serde_json::from_value(value).map_err(|e| Error::format(path, format!("invalid report: {e}")))
}

/// The JSON Schema of [`Report`], as written to `reports/schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Report);
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serializes");
    text.push('\n');
    text
}
