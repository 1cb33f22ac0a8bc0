//! `xai-audit inspect`: what a model file holds and how its spec resolves —
//! the tensors, then each layer with its output shape and parameter count,
//! and how the audit reads the outputs when they are not plain logits.

use std::fmt::Write;
use std::path::Path;

use crate::error::Result;
use crate::model::load::{find_spec, load_model_file, network_from_file, ModelFile, ModelOptions};
use crate::model::spec::fmt_shape;

/// The text `inspect` prints for `path`. Errors (no spec, shape mismatches)
/// are returned for the caller to report.
pub fn inspect(path: &Path, arch: Option<&Path>) -> Result<String> {
    let opts = ModelOptions {
        arch: arch.map(Path::to_path_buf),
        ..Default::default()
    };
    inspect_with(path, &opts)
}

/// The spec `path` resolves to (a version-1 spec translated, an ONNX
/// graph imported, overrides applied) as version-2 JSON.
pub fn spec_json(path: &Path, opts: &ModelOptions) -> Result<String> {
    let loaded = crate::model::load_model_with(path, opts)?;
    let mut text = loaded.network.spec().to_json_pretty();
    text.push('\n');
    Ok(text)
}

/// [`inspect`] with every model option (`--strip-prefix`, overrides); an
/// ONNX file is imported and listed by its initializers.
pub fn inspect_with(path: &Path, opts: &ModelOptions) -> Result<String> {
    let mut out = String::new();
    let (network, source, unused, notes) = match ModelFile::read(path)? {
        file @ ModelFile::Onnx(_) => {
            let loaded = load_model_file(file, path, opts)?;
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let _ = writeln!(
                out,
                "{} ({} initializers, {} bytes)",
                path.display(),
                loaded.tensors.len(),
                bytes
            );
            for t in &loaded.tensors {
                let _ = writeln!(
                    out,
                    "  {:<40} {:<18} {}",
                    t.name,
                    fmt_shape(&t.shape),
                    t.dtype
                );
            }
            (
                loaded.network,
                loaded.spec_source.to_string(),
                loaded.unused,
                loaded.notes,
            )
        }
        ModelFile::Safetensors(file) => {
            let _ = writeln!(
                out,
                "{} ({} tensors, {} bytes)",
                path.display(),
                file.tensors.len(),
                file.bytes().len()
            );
            out.push_str(&file.tensor_listing());
            let (spec, source) = find_spec(&file, opts.arch.as_deref())?;
            let spec = opts.apply(spec, &source.to_string())?;
            let (network, unused) = network_from_file(&file, spec, opts.strip_prefix.as_deref())?;
            (network, source.to_string(), unused, Vec::new())
        }
    };
    let spec = network.spec();
    let [c, h, w] = spec.input.shape;
    let _ = writeln!(out, "\nspec: {source}");
    if let Some(name) = &spec.name {
        let _ = writeln!(out, "name: {name}");
    }
    if let Some(prefix) = &spec.strip_prefix {
        let _ = writeln!(out, "tensor names read with the prefix `{prefix}` stripped");
    }
    let _ = writeln!(
        out,
        "input: [N, {c}, {h}, {w}] in [{}, {}]",
        spec.input.range[0], spec.input.range[1]
    );
    if let (Some(m), Some(s)) = (&spec.input.mean, &spec.input.std) {
        let _ = writeln!(out, "normalization inside the model: mean {m:?}, std {s:?}");
    } else if let Some(m) = &spec.input.mean {
        let _ = writeln!(out, "normalization inside the model: mean {m:?}");
    } else if let Some(s) = &spec.input.std {
        let _ = writeln!(out, "normalization inside the model: std {s:?}");
    }
    let _ = writeln!(
        out,
        "classes ({}): {}",
        spec.num_classes(),
        spec.class_names().join(", ")
    );
    for note in notes.iter().chain(&spec.output_notes()) {
        let _ = writeln!(out, "note: {note}");
    }
    let infos = spec.layer_infos().map_err(|message| crate::Error::Spec {
        origin: source.clone(),
        message,
    })?;
    let name_w = infos
        .iter()
        .map(|i| i.path.chars().count())
        .max()
        .unwrap_or(0)
        .max(10);
    let op_w = infos
        .iter()
        .map(|i| i.description.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(20, 64);
    let _ = writeln!(
        out,
        "\n  {:<name_w$} {:<op_w$} {:<16} {:>10}",
        "layer", "op", "output", "params"
    );
    for info in &infos {
        let _ = writeln!(
            out,
            "  {:<name_w$} {:<op_w$} {:<16} {:>10}",
            info.path,
            info.description,
            format!(
                "[N, {}]",
                &fmt_shape(&info.output_shape)[1..].trim_end_matches(']')
            ),
            info.parameters
        );
    }
    let _ = writeln!(out, "\ntotal parameters: {}", spec.parameter_count());
    if !unused.is_empty() {
        let _ = writeln!(
            out,
            "warning: {} tensors no layer uses: {}",
            unused.len(),
            unused.join(", ")
        );
    }
    Ok(out)
}
