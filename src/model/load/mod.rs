//! Reading a model: the architecture spec (an explicit file, then the
//! safetensors file's metadata, then a `<stem>.arch.json` sidecar), the
//! network built from the spec and the file's tensors, and the tensors no
//! layer uses reported as warnings. `sniff` tells the file's format from
//! its contents (safetensors, ONNX, or another format named in the error,
//! with its conversion); `weights` reads and validates the safetensors file
//! and finds the spec's tensor names in it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use super::classifier::Network;
use super::skeleton::skeleton_spec;
use super::spec::{ArchSpec, METADATA_KEY};
use crate::error::{Error, Remedy, Result};

mod onnx;
mod sniff;
mod weights;

pub use onnx::is_onnx;
pub(crate) use onnx::onnx_parts;
pub use sniff::{Foreign, ModelFile, TorchHolds};
pub use weights::{TensorInfo, WeightsFile};

/// Where the spec was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecSource {
    /// A spec file given explicitly ([`ModelOptions::arch`]).
    ArchFile(PathBuf),
    /// The safetensors metadata.
    Metadata,
    /// `<stem>.arch.json` beside the model.
    Sidecar(PathBuf),
    /// An ONNX file's graph.
    Onnx {
        /// The model's opset (default domain).
        opset: i64,
        /// The program that wrote it.
        producer: String,
    },
}

impl std::fmt::Display for SpecSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecSource::ArchFile(p) => write!(f, "file {}", p.display()),
            SpecSource::Metadata => write!(f, "safetensors metadata `{METADATA_KEY}`"),
            SpecSource::Sidecar(p) => write!(f, "sidecar {}", p.display()),
            SpecSource::Onnx { opset, producer } => {
                write!(f, "the ONNX graph (opset {opset}, written by {producer})")
            }
        }
    }
}

/// How to read a model file beyond its path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelOptions {
    /// An explicit architecture spec file.
    pub arch: Option<PathBuf>,
    /// A prefix to strip from the stored tensor names, overriding the
    /// spec's `strip_prefix`.
    pub strip_prefix: Option<String>,
    /// The valid input range `[lo, hi]`, overriding the spec's (an ONNX
    /// file does not carry one: `[0, 1]` otherwise).
    pub input_range: Option<[f32; 2]>,
    /// A file of class names, one per line (see [`read_class_names`]),
    /// overriding the spec's.
    pub classes: Option<PathBuf>,
    /// The per-channel mean the model subtracts from its input (one value,
    /// or one per channel, in input units), overriding the spec's: for an
    /// ONNX graph exported without the training pipeline's normalization.
    pub mean: Option<Vec<f32>>,
    /// The per-channel standard deviation it divides by, likewise.
    pub std: Option<Vec<f32>>,
}

impl ModelOptions {
    /// Applies the overrides to `spec` and checks it again; `origin` names
    /// the spec in errors, and the class-name file is named when its count
    /// does not fit.
    pub fn apply(&self, spec: ArchSpec, origin: &str) -> Result<ArchSpec> {
        let classes = self.classes.as_deref().map(read_class_names).transpose()?;
        let origin = match &self.classes {
            Some(file) => format!("{origin} with the class names of {}", file.display()),
            None => origin.to_string(),
        };
        let overrides = crate::model::spec::Overrides {
            range: self.input_range,
            classes,
            mean: self.mean.clone(),
            std: self.std.clone(),
        };
        spec.with_overrides(overrides, &origin)
    }
}

/// Class names from a text file, one per line (blank lines and surrounding
/// spaces ignored), in output order. Errors name the file.
pub fn read_class_names(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        error: e,
    })?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no class names (expected one per line)",
            path.display()
        )));
    }
    let mut seen = HashSet::new();
    if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(Error::Invalid(format!(
            "{}: the class name `{dup}` appears twice",
            path.display()
        )));
    }
    Ok(names)
}

/// A model ready to audit, with what was learnt while loading it.
pub struct LoadedModel {
    /// The network.
    pub network: Network,
    /// The spec's source.
    pub spec_source: SpecSource,
    /// Every tensor in the file.
    pub tensors: Vec<TensorInfo>,
    /// Tensors no layer uses (a warning, not an error).
    pub unused: Vec<String>,
    /// The file's SHA-256, hex.
    pub sha256: String,
    /// What the audit should say about the model before any figure (an
    /// ONNX graph that does not normalize its input).
    pub warnings: Vec<String>,
    /// What reading the file recognized or dropped (an ONNX graph's input
    /// normalization, its dropout), one sentence each.
    pub notes: Vec<String>,
}

/// Finds the spec for `file`: `arch` if given, then metadata, then the sidecar.
pub fn find_spec(file: &WeightsFile, arch: Option<&Path>) -> Result<(ArchSpec, SpecSource)> {
    if let Some(arch) = arch {
        let text = std::fs::read_to_string(arch).map_err(|e| Error::io(arch, e))?;
        let spec = ArchSpec::from_json(&text, &arch.display().to_string())?;
        return Ok((spec, SpecSource::ArchFile(arch.to_path_buf())));
    }
    if let Some(text) = file.metadata.get(METADATA_KEY) {
        let origin = format!("metadata `{METADATA_KEY}` of {}", file.path().display());
        return Ok((ArchSpec::from_json(text, &origin)?, SpecSource::Metadata));
    }
    let sidecar = sidecar_path(file.path());
    if sidecar.exists() {
        let text = std::fs::read_to_string(&sidecar).map_err(|e| Error::io(&sidecar, e))?;
        let spec = ArchSpec::from_json(&text, &sidecar.display().to_string())?;
        return Ok((spec, SpecSource::Sidecar(sidecar)));
    }
    let error = Error::Spec {
        origin: file.path().display().to_string(),
        message: format!(
            "no architecture spec found.\n\nTensors in the file:\n{}\nFrom the PyTorch module, examples/export_pytorch.py writes the exact spec with the weights (it traces `forward`, skip connections included): export(model, \"{}\", spec_from_module(model, input_shape=(C, H, W))).\n\nA skeleton guessed from the names and shapes (check the order, activations and pooling, then save it as {}):\n{}",
            file.tensor_listing(),
            file.path().display(),
            sidecar.display(),
            skeleton_spec(&file.tensors).to_json_pretty()
        ),
    };
    Err(error.remedied(Remedy::PassArch { sidecar }))
}

/// `model.safetensors` → `model.arch.json`.
pub fn sidecar_path(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    model.with_file_name(format!("{stem}.arch.json"))
}

/// Loads a model file with its spec (see the module docs for the lookup order).
pub fn load_model(path: &Path, arch: Option<&Path>) -> Result<LoadedModel> {
    let opts = ModelOptions {
        arch: arch.map(Path::to_path_buf),
        ..Default::default()
    };
    load_model_with(path, &opts)
}

/// [`load_model`] with every option.
pub fn load_model_with(path: &Path, opts: &ModelOptions) -> Result<LoadedModel> {
    load_model_file(ModelFile::read(path)?, path, opts)
}

/// Builds the model of a file already read and recognized; `path` names it
/// in errors.
pub fn load_model_file(file: ModelFile, path: &Path, opts: &ModelOptions) -> Result<LoadedModel> {
    match file {
        ModelFile::Onnx(bytes) => build_onnx_model(&bytes, path, opts),
        ModelFile::Safetensors(weights) => build_model(weights, opts),
    }
}

/// What to say about an imported ONNX graph before any figure: one that
/// does not normalize its input may have been trained on normalized inputs,
/// which nothing in the file says.
fn onnx_warnings(spec: &ArchSpec) -> Vec<String> {
    if spec.input.mean.is_some() || spec.input.std.is_some() {
        return Vec::new();
    }
    vec!["the ONNX graph does not normalize its input (no mean subtracted or std divided by at its input): \
          if the model was trained on normalized inputs (a transforms.Normalize outside the model), \
          give that mean and std, or every figure is computed on inputs the model never saw"
        .to_string()]
}

/// Builds the network of an ONNX model from its bytes.
fn build_onnx_model(bytes: &[u8], path: &Path, opts: &ModelOptions) -> Result<LoadedModel> {
    let parts = onnx_parts(bytes, path, opts)?;
    let (network, used) = Network::from_tensors(parts.spec, &parts.tensors)?;
    let warnings = onnx_warnings(network.spec());
    let used: HashSet<&str> = used.iter().map(String::as_str).collect();
    let unused = parts
        .infos
        .iter()
        .filter(|t| !used.contains(t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    Ok(LoadedModel {
        network,
        spec_source: SpecSource::Onnx {
            opset: parts.opset,
            producer: parts.producer,
        },
        tensors: parts.infos,
        unused,
        sha256: parts.sha256,
        warnings,
        notes: parts.notes,
    })
}

/// [`load_model`] on the contents of a model file already in memory; `path`
/// names it in errors and is where the sidecar spec is looked for.
pub fn load_model_from_bytes(
    bytes: Vec<u8>,
    path: &Path,
    arch: Option<&Path>,
) -> Result<LoadedModel> {
    let opts = ModelOptions {
        arch: arch.map(Path::to_path_buf),
        ..Default::default()
    };
    load_model_file(ModelFile::from_bytes(bytes, path)?, path, &opts)
}

/// A model's spec (overrides applied) and the f32 tensors its nodes load,
/// by unprefixed name: what `convert` writes. The network is built once to
/// check every shape.
pub fn model_parts(
    path: &Path,
    opts: &ModelOptions,
) -> Result<(ArchSpec, HashMap<String, Tensor>)> {
    let file = match ModelFile::read(path)? {
        ModelFile::Onnx(bytes) => {
            let parts = onnx_parts(&bytes, path, opts)?;
            Network::from_tensors(parts.spec.clone(), &parts.tensors)?;
            return Ok((parts.spec, parts.tensors));
        }
        ModelFile::Safetensors(file) => file,
    };
    let (spec, source) = find_spec(&file, opts.arch.as_deref())?;
    let mut spec = opts.apply(spec, &source.to_string())?;
    if let Some(prefix) = &opts.strip_prefix {
        spec.strip_prefix = Some(prefix.clone());
    }
    let prefix = spec.strip_prefix.take().filter(|p| !p.is_empty());
    let params = spec.params();
    let wanted: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    let tensors = file.f32_tensors_stripped(&wanted, prefix.as_deref())?;
    // The same checks (and error messages) as loading the model.
    network_from_file(&file, spec.clone(), prefix.as_deref().or(Some("")))?;
    Ok((spec, tensors))
}

/// Finds the spec of a validated file and builds its network.
fn build_model(file: WeightsFile, opts: &ModelOptions) -> Result<LoadedModel> {
    let (spec, spec_source) = find_spec(&file, opts.arch.as_deref())?;
    let spec = opts.apply(spec, &spec_source.to_string())?;
    let (network, unused) = network_from_file(&file, spec, opts.strip_prefix.as_deref())?;
    Ok(LoadedModel {
        network,
        spec_source,
        tensors: file.tensors.clone(),
        unused,
        sha256: crate::util::sha256_hex(file.bytes()),
        warnings: Vec::new(),
        notes: Vec::new(),
    })
}

/// Builds `spec`'s network from `file`'s tensors, with `strip_prefix` (else
/// the spec's own) stripped from the stored names; the spec keeps the prefix
/// used, so reports record it. Returns the network and the stored tensors
/// no layer uses (aliases resolved, `num_batches_tracked` left out). A
/// missing tensor's error names the file, and the prefix to strip when the
/// tensor is there under one.
pub fn network_from_file(
    file: &WeightsFile,
    mut spec: ArchSpec,
    strip_prefix: Option<&str>,
) -> Result<(Network, Vec<String>)> {
    if let Some(prefix) = strip_prefix {
        spec.strip_prefix = Some(prefix.to_string());
    }
    let prefix = spec.strip_prefix.clone().filter(|p| !p.is_empty());
    let params = spec.params();
    let wanted: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    let tensors = file.f32_tensors_stripped(&wanted, prefix.as_deref())?;
    let (network, used) = Network::from_tensors(spec, &tensors).map_err(|e| match e {
        Error::Weight {
            layer,
            tensor,
            problem,
        } if !tensors.contains_key(&tensor) => {
            let hint = file.missing_hint(&tensor);
            let problem = format!(
                "{problem} in {}{}",
                file.path().display(),
                hint.as_ref().map_or("", |(clause, _)| clause.as_str())
            );
            let error = Error::Weight {
                layer,
                tensor,
                problem,
            };
            match hint {
                Some((_, remedy)) => error.remedied(remedy),
                None => error,
            }
        }
        other => other,
    })?;
    let mut used_stored = HashSet::new();
    for name in &used {
        if let Some(stored) = file.stored_name(name, prefix.as_deref())? {
            used_stored.insert(stored.to_string());
        }
    }
    let unused = file
        .tensors
        .iter()
        .map(|t| t.name.clone())
        .filter(|n| !used_stored.contains(n) && !n.ends_with(".num_batches_tracked"))
        .collect();
    Ok((network, unused))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use candle_core::{Device, Tensor};

    use super::*;

    /// A 2 → 2 → 2 MLP whose two linear layers share one weight matrix.
    const TIED_SPEC: &str = r#"{"version": 1, "input": {"shape": [1, 1, 2]}, "layers": [
        {"op": "flatten"},
        {"op": "linear", "param": "fc1", "in_features": 2, "out_features": 2, "bias": false},
        {"op": "relu"},
        {"op": "linear", "param": "fc2", "in_features": 2, "out_features": 2, "bias": false}]}"#;

    const WEIGHT: [f32; 4] = [1.0, -2.0, 0.5, 3.0];

    /// A safetensors file holding `names` (each the tied weight) with
    /// `metadata` besides the spec.
    fn file(dir: &Path, names: &[&str], metadata: &[(&str, &str)]) -> PathBuf {
        let tensor = Tensor::from_slice(&WEIGHT, (2, 2), &Device::Cpu).unwrap();
        let mut meta: HashMap<String, String> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        meta.insert(METADATA_KEY.into(), TIED_SPEC.into());
        let bytes =
            safetensors::serialize(names.iter().map(|n| (*n, &tensor)), Some(meta)).unwrap();
        let path = dir.join(format!(
            "m{}.safetensors",
            names.len() + 10 * metadata.len()
        ));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn logits(model: &LoadedModel) -> Vec<f32> {
        let x = Tensor::from_slice(&[0.3f32, -0.7], (1, 1, 1, 2), &Device::Cpu).unwrap();
        let y = model.network.forward(&x).unwrap();
        y.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// The bug this pins: `safetensors.torch.save_model` stores the second
    /// name of a tied tensor as a metadata alias, and the file was refused
    /// with "tensor fc2.weight is missing".
    #[test]
    fn tied_weights_saved_as_an_alias_load_like_the_full_file() {
        let dir = tempfile::tempdir().unwrap();
        let full = load_model(&file(dir.path(), &["fc1.weight", "fc2.weight"], &[]), None).unwrap();
        let aliased_path = file(
            dir.path(),
            &["fc1.weight"],
            &[("fc2.weight", "fc1.weight"), ("format", "pt")],
        );
        let aliased = load_model(&aliased_path, None).unwrap();
        assert_eq!(logits(&aliased), logits(&full));
        assert!(aliased.unused.is_empty(), "{:?}", aliased.unused);
        let weights = WeightsFile::read(&aliased_path).unwrap();
        assert_eq!(
            weights.aliases,
            BTreeMap::from([("fc2.weight".to_string(), "fc1.weight".to_string())])
        );
        assert!(weights.tensor_listing().contains("alias of fc1.weight"));
    }

    #[test]
    fn only_metadata_naming_a_missing_tensor_and_a_stored_one_is_an_alias() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            dir.path(),
            &["fc1.weight", "fc2.weight"],
            // A key that is a stored tensor, a value that is none, and ours.
            &[("fc1.weight", "fc2.weight"), ("fc3.weight", "nowhere")],
        );
        let weights = WeightsFile::read(&path).unwrap();
        assert!(weights.aliases.is_empty(), "{:?}", weights.aliases);
        let path = file(dir.path(), &["fc1.weight"], &[("fc2.weight", "fc9.weight")]);
        let e = load_model(&path, None).err().unwrap().to_string();
        assert!(e.contains("fc2.weight") && e.contains("missing"), "{e}");
    }

    #[test]
    fn a_prefixed_file_gets_a_hint_and_loads_with_the_prefix_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let plain =
            load_model(&file(dir.path(), &["fc1.weight", "fc2.weight"], &[]), None).unwrap();
        for (prefix, who) in [
            ("module.", "DataParallel"),
            ("_orig_mod.", "torch.compile"),
            ("model.", "wrapper"),
            ("net.backbone.", ""),
        ] {
            let names = [format!("{prefix}fc1.weight"), format!("{prefix}fc2.weight")];
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let path = file(dir.path(), &names, &[]);
            let e = load_model(&path, None).err().unwrap();
            assert!(
                matches!(&e, Error::Remedied { remedy: Remedy::StripPrefix(p), .. } if p == prefix),
                "{e:?}"
            );
            let e = e.to_string();
            for needle in [
                "fc1.weight",
                "missing",
                &path.display().to_string(),
                &format!("under the prefix `{prefix}`"),
                &format!("\"strip_prefix\": \"{prefix}\""),
                who,
            ] {
                assert!(e.contains(needle), "{needle:?} not in {e}");
            }
            let opts = ModelOptions {
                strip_prefix: Some(prefix.to_string()),
                ..Default::default()
            };
            let loaded = load_model_with(&path, &opts).unwrap();
            assert_eq!(logits(&loaded), logits(&plain));
            assert!(loaded.unused.is_empty(), "{:?}", loaded.unused);
            // The prefix used is recorded in the spec (and so in reports).
            assert_eq!(loaded.network.spec().strip_prefix.as_deref(), Some(prefix));
        }
    }

    #[test]
    fn the_specs_strip_prefix_applies_aliases_too_and_a_clash_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let spec = TIED_SPEC.replacen('{', r#"{"strip_prefix": "module.", "#, 1);
        std::fs::write(dir.path().join("s.json"), &spec).unwrap();
        let arch = dir.path().join("s.json");
        let path = file(
            dir.path(),
            &["module.fc1.weight"],
            &[("module.fc2.weight", "module.fc1.weight")],
        );
        let loaded = load_model(&path, Some(&arch)).unwrap();
        assert_eq!(logits(&loaded).len(), 2);
        // Unprefixed names are read as they are...
        let path = file(dir.path(), &["module.fc1.weight", "fc2.weight"], &[]);
        assert!(load_model(&path, Some(&arch)).is_ok());
        // ...unless the prefixed one is there too.
        let path = file(
            dir.path(),
            &["module.fc1.weight", "fc1.weight", "module.fc2.weight"],
            &[],
        );
        let e = load_model(&path, Some(&arch)).err().unwrap().to_string();
        assert!(e.contains("`module.fc1.weight` and `fc1.weight`"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
    }
}
