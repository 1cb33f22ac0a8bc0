//! A safetensors file read and validated (every malformation is an error
//! naming the file; a file of another format is named by `sniff`), f16/bf16 weights converted to f32 and non-finite
//! weights refused, and how the spec's tensor names find the stored ones:
//! through the aliases `safetensors.torch.save_model` writes for tied
//! weights, and past a prefix such as DataParallel's `module.` when asked
//! to strip it (a missing tensor found under a prefix gets that hint).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Remedy, Result};
use crate::model::spec::fmt_shape;

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

/// Prefixes PyTorch wrappers put before every `state_dict` name; a missing
/// tensor found under one of them gets a hint (other prefixes are found too,
/// these are only named in it).
const KNOWN_PREFIXES: [(&str, &str); 3] = [
    ("module.", "nn.DataParallel or DistributedDataParallel"),
    ("_orig_mod.", "torch.compile"),
    ("model.", "a wrapper module"),
];

/// A safetensors file, parsed and validated, tensors not yet converted.
pub struct WeightsFile {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
    /// The header's `__metadata__`.
    pub metadata: HashMap<String, String>,
    /// Names the file holds as aliases of stored tensors:
    /// `safetensors.torch.save_model` stores a tensor shared by several names
    /// (tied weights) once, and maps each other name to the stored one in
    /// `__metadata__`.
    /// Only entries whose key is no stored tensor and whose value is one
    /// count; other metadata (the spec) is not an alias.
    pub aliases: BTreeMap<String, String>,
}

impl WeightsFile {
    /// Reads and validates `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        WeightsFile::from_bytes(bytes, path)
    }

    /// Validates the contents of a safetensors file already in memory; `path`
    /// names it in errors and is where [`find_spec`](super::find_spec) looks for a sidecar.
    /// A file that is not safetensors at all is an error saying what it is
    /// (a PyTorch checkpoint, a Keras model, ...) and how to convert it.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self> {
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| super::sniff::not_safetensors(&bytes, path, describe(&e)))?;
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
        let tensors: Vec<TensorInfo> = infos.into_iter().map(|(_, t)| t).collect();
        let stored: HashSet<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        let aliases = metadata
            .iter()
            .filter(|(alias, target)| {
                !stored.contains(alias.as_str()) && stored.contains(target.as_str())
            })
            .map(|(alias, target)| (alias.clone(), target.clone()))
            .collect();
        Ok(WeightsFile {
            path: path.to_path_buf(),
            bytes,
            tensors,
            metadata,
            aliases,
        })
    }

    /// The stored tensor that the spec's tensor `name` reads: `name` itself
    /// or its alias target, looked up with `strip_prefix` put back first
    /// (`module.` + `name`), then as it is. `None` when the file has neither;
    /// an error when both exist, since stripping the prefix would make two
    /// tensors one.
    pub fn stored_name(&self, name: &str, strip_prefix: Option<&str>) -> Result<Option<&str>> {
        let direct = self.lookup(name);
        let Some(prefix) = strip_prefix.filter(|p| !p.is_empty()) else {
            return Ok(direct);
        };
        let prefixed_name = format!("{prefix}{name}");
        match (self.lookup(&prefixed_name), direct) {
            (Some(_), Some(_)) => Err(Error::format(
                &self.path,
                format!(
                    "holds both `{prefixed_name}` and `{name}`: with the prefix `{prefix}` \
                     stripped they would both be `{name}`"
                ),
            )),
            (prefixed, direct) => Ok(prefixed.or(direct)),
        }
    }

    /// The stored tensor named `name`, directly or through an alias.
    fn lookup(&self, name: &str) -> Option<&str> {
        if let Some(t) = self.tensors.iter().find(|t| t.name == name) {
            return Some(t.name.as_str());
        }
        self.aliases.get(name).map(String::as_str)
    }

    /// Why the spec's tensor `name` may be missing: the stored name (or
    /// alias) that ends in `.name`, said in a clause to append to the
    /// error, and the remedy (the prefix to strip). `None` when there is no
    /// such name.
    pub fn missing_hint(&self, name: &str) -> Option<(String, Remedy)> {
        let suffix = format!(".{name}");
        let stored = self
            .tensors
            .iter()
            .map(|t| t.name.as_str())
            .chain(self.aliases.keys().map(String::as_str))
            .find(|stored| stored.ends_with(&suffix))?;
        let prefix = &stored[..stored.len() - name.len()];
        let origin = KNOWN_PREFIXES
            .iter()
            .find(|(p, _)| p == &prefix)
            .map_or(String::new(), |(_, who)| format!(", as {who} adds it"));
        Some((
            format!("; the file has it as `{stored}`, under the prefix `{prefix}`{origin}"),
            Remedy::StripPrefix(prefix.to_string()),
        ))
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
    /// values are refused. Names the file lacks are left out.
    pub fn f32_tensors(&self, names: &[&str]) -> Result<HashMap<String, Tensor>> {
        self.f32_tensors_stripped(names, None)
    }

    /// [`WeightsFile::f32_tensors`], each name read as
    /// [`WeightsFile::stored_name`] finds it; the map is keyed by the spec's
    /// names.
    pub fn f32_tensors_stripped(
        &self,
        names: &[&str],
        strip_prefix: Option<&str>,
    ) -> Result<HashMap<String, Tensor>> {
        let st = SafeTensors::deserialize(&self.bytes).map_err(|e| {
            Error::format(
                &self.path,
                format!("not a valid safetensors file: {}", describe(&e)),
            )
        })?;
        let mut out = HashMap::new();
        for &name in names {
            let Some(stored) = self.stored_name(name, strip_prefix)? else {
                continue;
            };
            let Ok(view) = st.tensor(stored) else {
                continue;
            };
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
                        format!("tensor '{stored}' has dtype {other:?}; weights must be F32, F16, BF16 or F64"),
                    ))
                }
            };
            let bad = values.iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                return Err(Error::format(
                    &self.path,
                    format!("tensor '{stored}' has {bad} non-finite values (NaN or ±inf): refusing to audit a broken model"),
                ));
            }
            let t = Tensor::from_vec(values, view.shape(), &Device::Cpu)?;
            out.insert(name.to_string(), t);
        }
        Ok(out)
    }

    /// A listing of the tensors, one per line, then the aliases.
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
        for (alias, target) in &self.aliases {
            s.push_str(&format!("  {alias:<40} alias of {target}\n"));
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
