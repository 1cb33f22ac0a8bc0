//! Reading a model: the safetensors file (every malformation is an error naming
//! the file), the architecture spec (`--arch`, then the file's metadata, then a
//! `<stem>.arch.json` sidecar), f16/bf16 weights converted to f32, non-finite
//! weights refused, and tensors no layer uses reported as warnings.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use safetensors::{Dtype, SafeTensors};

use super::classifier::Network;
use super::skeleton::skeleton_spec;
use super::spec::{fmt_shape, ArchSpec, METADATA_KEY};
use crate::error::{Error, Result};

/// One tensor as stored in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// `state_dict` name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Stored element type, e.g. `F32`.
    pub dtype: String,
}

/// Where the spec was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecSource {
    /// `--arch FILE`.
    ArchFile(PathBuf),
    /// The safetensors metadata.
    Metadata,
    /// `<stem>.arch.json` beside the model.
    Sidecar(PathBuf),
}

impl std::fmt::Display for SpecSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecSource::ArchFile(p) => write!(f, "--arch {}", p.display()),
            SpecSource::Metadata => write!(f, "safetensors metadata `{METADATA_KEY}`"),
            SpecSource::Sidecar(p) => write!(f, "sidecar {}", p.display()),
        }
    }
}

/// A safetensors file, parsed and validated, tensors not yet converted.
pub struct WeightsFile {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
    /// The header's `__metadata__`.
    pub metadata: HashMap<String, String>,
}

impl WeightsFile {
    /// Reads and validates `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        WeightsFile::from_bytes(bytes, path)
    }

    /// Validates the contents of a safetensors file already in memory; `path`
    /// names it in errors and is where [`find_spec`] looks for a sidecar.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self> {
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| {
            Error::format(
                path,
                format!("not a valid safetensors file: {}", describe(&e)),
            )
        })?;
        let mut infos: Vec<(usize, TensorInfo)> = meta
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                (
                    info.data_offsets.0,
                    TensorInfo {
                        name,
                        shape: info.shape.clone(),
                        dtype: format!("{:?}", info.dtype),
                    },
                )
            })
            .collect();
        infos.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
        let metadata = meta.metadata().clone().unwrap_or_default();
        Ok(WeightsFile {
            path: path.to_path_buf(),
            bytes,
            tensors: infos.into_iter().map(|(_, t)| t).collect(),
            metadata,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw bytes (for hashing).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Converts the named tensors to f32 candle tensors. Integer tensors (such
    /// as `num_batches_tracked`) are skipped unless requested; non-finite
    /// values are refused.
    pub fn f32_tensors(&self, names: &[&str]) -> Result<HashMap<String, Tensor>> {
        let st = SafeTensors::deserialize(&self.bytes).map_err(|e| {
            Error::format(
                &self.path,
                format!("not a valid safetensors file: {}", describe(&e)),
            )
        })?;
        let mut out = HashMap::new();
        for &name in names {
            let Ok(view) = st.tensor(name) else { continue };
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F16 => view
                    .data()
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => view
                    .data()
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                Dtype::F64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                other => {
                    return Err(Error::format(
                        &self.path,
                        format!("tensor '{name}' has dtype {other:?}; weights must be F32, F16, BF16 or F64"),
                    ))
                }
            };
            let bad = values.iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                return Err(Error::format(
                    &self.path,
                    format!("tensor '{name}' has {bad} non-finite values (NaN or ±inf): refusing to audit a broken model"),
                ));
            }
            let t = Tensor::from_vec(values, view.shape(), &Device::Cpu)?;
            out.insert(name.to_string(), t);
        }
        Ok(out)
    }

    /// A listing of the tensors, one per line.
    pub fn tensor_listing(&self) -> String {
        let mut s = String::new();
        for t in &self.tensors {
            s.push_str(&format!(
                "  {:<40} {:<18} {}\n",
                t.name,
                fmt_shape(&t.shape),
                t.dtype
            ));
        }
        s
    }
}

fn describe(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall => "the file is shorter than the 8-byte header length".into(),
        E::HeaderTooLarge => "the header length is implausibly large".into(),
        E::InvalidHeaderLength => {
            "the header length runs past the end of the file (truncated?)".into()
        }
        E::InvalidHeaderDeserialization(m) => {
            format!("the header is not valid safetensors JSON ({m})")
        }
        E::MetadataIncompleteBuffer => {
            "the tensor data is shorter than the header says (truncated?)".into()
        }
        E::InvalidOffset(name) => format!(
            "tensor '{name}' has data offsets that overlap, leave gaps or run past the data"
        ),
        E::TensorInvalidInfo => "a tensor's shape does not match its byte length".into(),
        other => other.to_string(),
    }
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
    Err(Error::Spec {
        origin: file.path().display().to_string(),
        message: format!(
            "no architecture spec found: pass --arch FILE, embed it in the safetensors metadata under `{METADATA_KEY}`, or write {}.\n\nTensors in the file:\n{}\nA skeleton guessed from the names and shapes (check the order, activations and pooling, then save it as {}):\n{}",
            sidecar.display(),
            file.tensor_listing(),
            sidecar.display(),
            skeleton_spec(&file.tensors).to_json_pretty()
        ),
    })
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
    build_model(WeightsFile::read(path)?, arch)
}

/// [`load_model`] on the contents of a model file already in memory; `path`
/// names it in errors and is where the sidecar spec is looked for.
pub fn load_model_from_bytes(
    bytes: Vec<u8>,
    path: &Path,
    arch: Option<&Path>,
) -> Result<LoadedModel> {
    build_model(WeightsFile::from_bytes(bytes, path)?, arch)
}

/// Finds the spec of a validated file and builds its network.
fn build_model(file: WeightsFile, arch: Option<&Path>) -> Result<LoadedModel> {
    let (spec, spec_source) = find_spec(&file, arch)?;
    let params = spec.params();
    let wanted: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    let tensors = file.f32_tensors(&wanted)?;
    let (network, used) = Network::from_tensors(spec, &tensors)?;
    let unused = file
        .tensors
        .iter()
        .map(|t| t.name.clone())
        .filter(|n| !used.contains(n) && !n.ends_with(".num_batches_tracked"))
        .collect();
    Ok(LoadedModel {
        network,
        spec_source,
        tensors: file.tensors.clone(),
        unused,
        sha256: crate::util::sha256_hex(file.bytes()),
    })
}
