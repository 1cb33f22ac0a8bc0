//! Which format a model file is in, read from its contents: a safetensors
//! file or an ONNX model loads (an ONNX file whose name does not end in
//! `.onnx` too); anything else is an error that says what the file is —
//! a PyTorch checkpoint, a TorchScript archive, a Keras or TensorFlow model,
//! a NumPy array, an archive, a Git LFS pointer — and how to convert it.
//!
//! Only the first bytes, a zip archive's entry names and the start of a
//! pickle are read: nothing is unpickled or run.

use std::io::Read;
use std::path::{Path, PathBuf};

use prost::Message;

use super::weights::WeightsFile;
use crate::error::{Error, Remedy, Result};

/// A model file, read and recognized.
pub enum ModelFile {
    /// A safetensors file, validated.
    Safetensors(WeightsFile),
    /// An ONNX model's bytes (not yet imported).
    Onnx(Vec<u8>),
}

impl ModelFile {
    /// Reads `path` and recognizes its format (see [`ModelFile::from_bytes`]).
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be read; [`Error::Format`] naming what
    /// the file is when it is not a model xai-audit reads (a directory, a
    /// PyTorch checkpoint, ...), with the conversion as its remedy.
    pub fn read(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Err(directory_error(path));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        ModelFile::from_bytes(bytes, path)
    }

    /// Recognizes the contents of a model file already in memory; `path`
    /// names it in errors. A file whose header parses as safetensors is
    /// safetensors; a file named `.onnx` is ONNX unless its first bytes say
    /// it is something else; any other file that decodes as an ONNX model
    /// with a graph is ONNX.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self> {
        if safetensors::SafeTensors::read_metadata(&bytes).is_ok() {
            return WeightsFile::from_bytes(bytes, path).map(ModelFile::Safetensors);
        }
        if let Some(found) = Foreign::sniff(&bytes, path) {
            return Err(found.error(path));
        }
        if super::is_onnx(path) || decodes_as_onnx(&bytes) {
            return Ok(ModelFile::Onnx(bytes));
        }
        // Not recognized: the safetensors reader says what is wrong.
        WeightsFile::from_bytes(bytes, path).map(ModelFile::Safetensors)
    }
}

/// Whether `bytes` decode as an ONNX `ModelProto` with an IR version and a
/// graph of at least one node (random bytes rarely do).
fn decodes_as_onnx(bytes: &[u8]) -> bool {
    crate::model::onnx::proto::ModelProto::decode(bytes).is_ok_and(|m| {
        m.ir_version.is_some_and(|v| (1..=100).contains(&v))
            && m.graph.is_some_and(|g| !g.node.is_empty())
    })
}

/// The error for bytes that are not a valid safetensors file, whose reader
/// said `why`: what the file is when its first bytes say so, else `why`
/// when the first 8 bytes could be a safetensors header length (a damaged
/// file), else the first bytes.
pub(super) fn not_safetensors(bytes: &[u8], path: &Path, why: String) -> Error {
    if let Some(found) = Foreign::sniff(bytes, path) {
        return found.error(path);
    }
    if decodes_as_onnx(bytes) {
        return Error::format(
            path,
            "is an ONNX model, not a safetensors file: load it as an ONNX model",
        );
    }
    // safetensors refuses headers over 100 MB; a larger "length" means
    // the first bytes are something else.
    let plausible = bytes.len() < 8
        || u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) <= 100_000_000;
    if plausible {
        return Error::format(path, format!("not a valid safetensors file: {why}"));
    }
    Error::format(
        path,
        format!(
            "not a safetensors or ONNX file, nor another model format xai-audit \
             recognizes (first bytes: {}); models load from .safetensors files \
             (with an architecture spec) and .onnx files",
            first_bytes(bytes)
        ),
    )
}

/// The first 16 bytes as hex, and as text where they are printable.
fn first_bytes(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(16)];
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = head
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{} \"{text}\"", hex.join(" "))
}

/// What a pickled PyTorch checkpoint holds at its top level, read from the
/// pickle's first opcodes (protocol 2, as `torch.save` writes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorchHolds {
    /// An `OrderedDict` of tensors: a `state_dict`.
    StateDict,
    /// A dict holding a state_dict under this key (a training checkpoint,
    /// e.g. PyTorch Lightning's `state_dict`).
    CheckpointWith(String),
    /// A dict of other entries.
    Dict,
    /// A pickled object of this class (`module.Class`): a whole model
    /// saved with `torch.save(model)`.
    Object(String),
    /// Something else.
    Unknown,
}

/// A file that is not a model xai-audit reads, as recognized by its first
/// bytes or its zip entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Foreign {
    /// `torch.save`'s zip format (`.pt`, `.pth`, `.ckpt`, `.bin`): `entry`
    /// is its `data.pkl`.
    TorchZip {
        /// The pickle's entry, e.g. `ckpt/data.pkl`.
        entry: String,
        /// What the pickle holds.
        holds: TorchHolds,
    },
    /// `torch.save`'s format before PyTorch 1.6: pickles after the torch
    /// magic number.
    TorchLegacy(TorchHolds),
    /// `torch.jit.save`: a zip with `constants.pkl` and `code/`.
    TorchScript {
        /// The entry that gives it away.
        entry: String,
    },
    /// A Python pickle without the torch magic number.
    Pickle,
    /// An HDF5 file written by Keras (`model.save("m.h5")`).
    KerasH5,
    /// Another HDF5 file.
    Hdf5,
    /// A Keras 3 `.keras` file: a zip with `config.json` and
    /// `model.weights.h5`.
    KerasV3,
    /// A TensorFlow SavedModel (a directory holding `saved_model.pb`).
    SavedModel {
        /// The SavedModel directory.
        dir: PathBuf,
    },
    /// A TensorFlow Lite flatbuffer (`TFL3`).
    TfLite,
    /// A NumPy `.npy` array.
    NumpyArray,
    /// A NumPy `.npz` archive (a zip of `.npy` arrays).
    NumpyArchive,
    /// Another zip archive.
    Zip {
        /// Its first entries.
        entries: Vec<String>,
        /// How many entries it has.
        count: usize,
    },
    /// A zip archive whose directory cannot be read.
    BrokenZip(String),
    /// A gzip-compressed file.
    Gzip,
    /// A tar archive.
    Tar,
    /// A Git LFS pointer file instead of the file's contents.
    LfsPointer,
    /// An HTML page.
    Html,
    /// The weights an ONNX model keeps beside itself (`model.onnx.data`,
    /// as `torch.onnx.export` writes them).
    OnnxWeights {
        /// The model file they belong to.
        model: PathBuf,
    },
    /// A directory that is not a SavedModel.
    Directory {
        /// The model files inside it.
        models: Vec<String>,
    },
}

/// The ONNX model beside `path` whose weights `path` holds: `X.onnx` for
/// `X.onnx.data`, when it exists.
fn onnx_model_of_weights(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let model = name.strip_suffix(".data")?;
    let model = path.with_file_name(model);
    (super::is_onnx(&model) && model.is_file()).then_some(model)
}

/// The ONNX route's Python lines for a PyTorch `model` built as `build`.
fn torch_onnx_lines(build: Vec<String>, onnx: &Path) -> Vec<String> {
    let mut lines = build;
    lines.push(format!(
        "torch.onnx.export(model.eval(), torch.rand(1, C, H, W), {})   # C, H, W: the input shape",
        py_str(onnx)
    ));
    lines
}

/// `path` as a Python string literal.
fn py_str(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// `path` as one shell word.
fn sh_word(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl Foreign {
    /// What `bytes` (the contents of `path`) are, when their first bytes or
    /// zip entries say so.
    pub fn sniff(bytes: &[u8], path: &Path) -> Option<Foreign> {
        // Raw weights can start with any bytes: the name says what they are.
        if let Some(model) = onnx_model_of_weights(path) {
            return Some(Foreign::OnnxWeights { model });
        }
        let starts = |magic: &[u8]| bytes.starts_with(magic);
        if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
            return Some(zip_kind(bytes));
        }
        if starts(TORCH_LEGACY_MAGIC) {
            let object = nth_pickle(bytes, 3).unwrap_or(&[]);
            return Some(Foreign::TorchLegacy(torch_holds(object)));
        }
        // PROTO 2..=5 and an opcode (never 0, which the third byte of a
        // safetensors header length under 64 KB is).
        if bytes.len() >= 3 && bytes[0] == 0x80 && (2..=5).contains(&bytes[1]) && bytes[2] != 0 {
            return Some(Foreign::Pickle);
        }
        if starts(b"\x89HDF\r\n\x1a\n") {
            let keras = [&b"keras_version"[..], b"model_config"]
                .iter()
                .any(|k| bytes.windows(k.len()).any(|w| w == *k));
            return Some(if keras {
                Foreign::KerasH5
            } else {
                Foreign::Hdf5
            });
        }
        if bytes.get(4..8) == Some(b"TFL3") {
            return Some(Foreign::TfLite);
        }
        if starts(b"\x93NUMPY") {
            return Some(Foreign::NumpyArray);
        }
        if starts(b"\x1f\x8b") {
            return Some(Foreign::Gzip);
        }
        if bytes.get(257..262) == Some(b"ustar") {
            return Some(Foreign::Tar);
        }
        if starts(b"version https://git-lfs.github.com/spec/") {
            return Some(Foreign::LfsPointer);
        }
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).to_ascii_lowercase();
        let text = text.trim_start();
        if text.starts_with("<!doctype html") || text.starts_with("<html") {
            return Some(Foreign::Html);
        }
        if path.file_name().is_some_and(|n| n == "saved_model.pb") {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            return Some(Foreign::SavedModel { dir });
        }
        None
    }

    /// What the file is, in a few words.
    pub fn what(&self) -> String {
        match self {
            Foreign::TorchZip { entry, holds } => format!(
                "a PyTorch checkpoint (torch.save's zip format, with `{entry}`){}",
                holds.clause()
            ),
            Foreign::TorchLegacy(holds) => format!(
                "a PyTorch checkpoint (torch.save's format before PyTorch 1.6){}",
                holds.clause()
            ),
            Foreign::TorchScript { entry } => {
                format!("a TorchScript archive (torch.jit.save, with `{entry}`)")
            }
            Foreign::Pickle => "a Python pickle (pickle, joblib)".into(),
            Foreign::KerasH5 => "a Keras model in HDF5 (.h5)".into(),
            Foreign::Hdf5 => "an HDF5 file (Keras saves .h5 models in it)".into(),
            Foreign::KerasV3 => {
                "a Keras 3 model (.keras: a zip with config.json and model.weights.h5)".into()
            }
            Foreign::SavedModel { dir } => {
                format!("a TensorFlow SavedModel (directory {})", dir.display())
            }
            Foreign::TfLite => "a TensorFlow Lite model (.tflite)".into(),
            Foreign::NumpyArray => "a NumPy array (.npy)".into(),
            Foreign::NumpyArchive => "a NumPy archive of arrays (.npz)".into(),
            Foreign::Zip { entries, count } => {
                let more = if *count > entries.len() { ", …" } else { "" };
                format!(
                    "a zip archive ({count} entries: {}{more})",
                    entries.join(", ")
                )
            }
            Foreign::BrokenZip(e) => format!("a zip archive that cannot be read ({e})"),
            Foreign::Gzip => "a gzip-compressed file".into(),
            Foreign::Tar => "a tar archive".into(),
            Foreign::LfsPointer => "a Git LFS pointer, not the file's contents".into(),
            Foreign::Html => "an HTML page (a download that saved a web page?)".into(),
            Foreign::Directory { .. } => "a directory".into(),
            Foreign::OnnxWeights { model } => {
                format!("the weights file of the ONNX model {}", model.display())
            }
        }
    }

    /// The conversion: an explanation, the commands (one per line, to
    /// indent), and the file they write, which can be loaded instead.
    fn conversion(&self, path: &Path) -> (String, Vec<String>, Option<PathBuf>) {
        let onnx = path.with_extension("onnx");
        let torch_export = "xai-audit does not unpickle Python objects. Export the model \
                            to ONNX in Python (or save it with its spec by \
                            examples/export_pytorch.py):";
        let load = |expr: String| -> Vec<String> {
            vec![
                "model = YourModel()   # the model's class, built as in training".to_string(),
                format!("model.load_state_dict({expr})"),
            ]
        };
        let p = py_str(path);
        match self {
            Foreign::TorchZip { holds, .. } | Foreign::TorchLegacy(holds) => {
                let build = match holds {
                    TorchHolds::StateDict | TorchHolds::Unknown => {
                        load(format!("torch.load({p})"))
                    }
                    TorchHolds::CheckpointWith(key) => {
                        load(format!("torch.load({p})[{key:?}]"))
                    }
                    TorchHolds::Dict => {
                        let mut lines = load(format!("torch.load({p})[KEY]"));
                        lines[1].push_str("   # KEY: the entry holding the weights");
                        lines
                    }
                    TorchHolds::Object(_) => vec![format!(
                        "model = torch.load({p}, weights_only=False)   # its class must be importable"
                    )],
                };
                (
                    torch_export.into(),
                    torch_onnx_lines(build, &onnx),
                    Some(onnx),
                )
            }
            Foreign::TorchScript { .. } => (
                "Export it to ONNX in Python:".into(),
                torch_onnx_lines(vec![format!("model = torch.jit.load({p})")], &onnx),
                Some(onnx),
            ),
            Foreign::Pickle => (
                "xai-audit does not unpickle Python objects. If it holds a PyTorch model \
                 or state_dict, load it in Python and export the model to ONNX:"
                    .into(),
                torch_onnx_lines(
                    vec![format!(
                        "model = ...   # built from pickle.load(open({p}, \"rb\"))"
                    )],
                    &onnx,
                ),
                Some(onnx),
            ),
            Foreign::KerasH5 | Foreign::Hdf5 => (
                "Convert a Keras model to ONNX with tf2onnx:".into(),
                vec![format!(
                    "python -m tf2onnx.convert --keras {} --output {}",
                    sh_word(path),
                    sh_word(&onnx)
                )],
                Some(onnx),
            ),
            Foreign::KerasV3 => {
                let saved = path.with_extension("savedmodel");
                (
                    "Export it as a SavedModel with Keras 3, then convert that with tf2onnx:"
                        .into(),
                    vec![
                        format!(
                            "python -c 'import keras; keras.models.load_model({}).export({})'",
                            py_str(path),
                            py_str(&saved)
                        ),
                        format!(
                            "python -m tf2onnx.convert --saved-model {} --output {}",
                            sh_word(&saved),
                            sh_word(&onnx)
                        ),
                    ],
                    Some(onnx),
                )
            }
            Foreign::SavedModel { dir } => {
                let onnx = dir.with_extension("onnx");
                (
                    "Convert it to ONNX with tf2onnx:".into(),
                    vec![format!(
                        "python -m tf2onnx.convert --saved-model {} --output {}",
                        sh_word(dir),
                        sh_word(&onnx)
                    )],
                    Some(onnx),
                )
            }
            Foreign::TfLite => (
                "Convert it to ONNX with tf2onnx:".into(),
                vec![format!(
                    "python -m tf2onnx.convert --tflite {} --output {}",
                    sh_word(path),
                    sh_word(&onnx)
                )],
                Some(onnx),
            ),
            Foreign::NumpyArray | Foreign::NumpyArchive => {
                ("Arrays are data, not a model.".into(), Vec::new(), None)
            }
            Foreign::Zip { .. } => (
                "Unpack it and give the model file inside.".into(),
                Vec::new(),
                None,
            ),
            Foreign::BrokenZip(_) => (
                "Is it truncated? Download or copy it again.".into(),
                Vec::new(),
                None,
            ),
            Foreign::Gzip => (
                "Decompress it first (gunzip, or tar -xzf for a .tar.gz) and give the \
                 model file."
                    .into(),
                Vec::new(),
                None,
            ),
            Foreign::Tar => (
                "Unpack it (tar -xf) and give the model file inside.".into(),
                Vec::new(),
                None,
            ),
            Foreign::LfsPointer => (
                "Fetch the contents in its repository:".into(),
                vec!["git lfs pull".into()],
                None,
            ),
            Foreign::Html => (
                "Download the file itself (a hub's \"raw\" or \"resolve\" link).".into(),
                Vec::new(),
                None,
            ),
            Foreign::Directory { models } if models.is_empty() => (
                "A model is a .safetensors or .onnx file.".into(),
                Vec::new(),
                None,
            ),
            Foreign::Directory { models } => (
                format!("Give one of the model files in it: {}.", models.join(", ")),
                Vec::new(),
                None,
            ),
            Foreign::OnnxWeights { model } => (
                format!(
                    "Give the model file, {}: its weights are read from this file, which stays beside it.",
                    model.display()
                ),
                Vec::new(),
                None,
            ),
        }
    }

    /// The error for `path`: what it is, why it does not load, the
    /// conversion commands, and as the remedy the file they write (or, for
    /// arrays, giving it as data).
    pub fn error(&self, path: &Path) -> Error {
        let (explanation, commands, converted) = self.conversion(path);
        let mut message = format!(
            "is {}, not a safetensors or ONNX model. {explanation}",
            self.what()
        );
        for line in &commands {
            message.push_str("\n    ");
            message.push_str(line);
        }
        let error = Error::format(path, message);
        match (self, converted) {
            (Foreign::NumpyArray | Foreign::NumpyArchive, _) => {
                error.remedied(Remedy::GiveAsData(path.to_path_buf()))
            }
            (_, Some(converted)) => error.remedied(Remedy::LoadConverted(converted)),
            (_, None) => error,
        }
    }
}

impl TorchHolds {
    /// `" holding …"`, or nothing when unknown.
    fn clause(&self) -> String {
        match self {
            TorchHolds::StateDict => " holding a state_dict (weights by name)".into(),
            TorchHolds::CheckpointWith(key) => {
                format!(" holding a training checkpoint, its weights under `{key}`")
            }
            TorchHolds::Dict => " holding a dict".into(),
            TorchHolds::Object(class) => format!(" holding a whole pickled model ({class})"),
            TorchHolds::Unknown => String::new(),
        }
    }
}

/// The first pickle of a `torch.save` file in the format before 1.6:
/// protocol 2, then the long integer 0x1950a86a20f9469cfc6c.
const TORCH_LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

/// The `n`th (0-based) of the pickles written one after another in `bytes`,
/// found by their protocol-2 headers after a STOP (`.`).
fn nth_pickle(bytes: &[u8], n: usize) -> Option<&[u8]> {
    if n == 0 {
        return Some(bytes);
    }
    let mut seen = 0;
    for i in 0..bytes.len().saturating_sub(2) {
        if &bytes[i..i + 3] == b".\x80\x02" {
            seen += 1;
            if seen == n {
                return Some(&bytes[i + 1..]);
            }
        }
    }
    None
}

/// What a `torch.save` pickle holds at its top level, from its first opcode.
fn torch_holds(pickle: &[u8]) -> TorchHolds {
    let Some(rest) = pickle.strip_prefix(b"\x80\x02") else {
        return TorchHolds::Unknown;
    };
    match rest.first() {
        // GLOBAL "module\nname\n": the class of the top-level object.
        Some(b'c') => {
            let mut parts = rest[1..].splitn(3, |&b| b == b'\n');
            let (Some(module), Some(name)) = (parts.next(), parts.next()) else {
                return TorchHolds::Unknown;
            };
            let (module, name) = (
                String::from_utf8_lossy(module),
                String::from_utf8_lossy(name),
            );
            if module == "collections" && name == "OrderedDict" {
                TorchHolds::StateDict
            } else {
                TorchHolds::Object(format!("{module}.{name}"))
            }
        }
        // EMPTY_DICT: a dict; a key naming a state_dict is written as
        // BINUNICODE (`X`, a little-endian u32 length, the text).
        Some(b'}') => ["model_state_dict", "state_dict"]
            .iter()
            .find(|key| {
                let mut op = vec![b'X'];
                op.extend_from_slice(&(key.len() as u32).to_le_bytes());
                op.extend_from_slice(key.as_bytes());
                rest.windows(op.len()).any(|w| w == op.as_slice())
            })
            .map_or(TorchHolds::Dict, |key| {
                TorchHolds::CheckpointWith((*key).to_string())
            }),
        _ => TorchHolds::Unknown,
    }
}

/// Reads a zip archive's entries to tell what it is.
fn zip_kind(bytes: &[u8]) -> Foreign {
    let mut archive = match zip::ZipArchive::new(std::io::Cursor::new(bytes)) {
        Ok(a) => a,
        Err(e) => return Foreign::BrokenZip(e.to_string()),
    };
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok())
        .map(|n| n.to_string())
        .collect();
    let find = |pred: &dyn Fn(&str) -> bool| names.iter().find(|n| pred(n)).cloned();
    // `torch.jit.save` writes `<name>/constants.pkl` and `<name>/code/…`
    // beside a `data.pkl`, so it is checked first.
    let top = |n: &str, leaf: &str| n == leaf || n.split_once('/').is_some_and(|(_, l)| l == leaf);
    if let Some(entry) = find(&|n| top(n, "constants.pkl"))
        .or_else(|| find(&|n| n.split('/').nth(1) == Some("code") && n.ends_with(".py")))
    {
        return Foreign::TorchScript { entry };
    }
    if let Some(entry) = find(&|n| top(n, "data.pkl")) {
        let mut pickle = Vec::new();
        // torch.save stores entries uncompressed; 64 KB reaches the keys.
        let read = archive
            .by_name(&entry)
            .map(|f| f.take(64 * 1024).read_to_end(&mut pickle));
        let holds = match read {
            Ok(Ok(_)) => torch_holds(&pickle),
            _ => TorchHolds::Unknown,
        };
        return Foreign::TorchZip { entry, holds };
    }
    if names.iter().any(|n| n == "config.json") && names.iter().any(|n| n == "model.weights.h5") {
        return Foreign::KerasV3;
    }
    if !names.is_empty() && names.iter().all(|n| n.ends_with(".npy")) {
        return Foreign::NumpyArchive;
    }
    Foreign::Zip {
        entries: names.iter().take(5).cloned().collect(),
        count: names.len(),
    }
}

/// The error for a directory given as a model.
fn directory_error(path: &Path) -> Error {
    if path.join("saved_model.pb").is_file() {
        return Foreign::SavedModel {
            dir: path.to_path_buf(),
        }
        .error(path);
    }
    let mut models: Vec<String> = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.extension().is_some_and(|e| {
                            e.eq_ignore_ascii_case("safetensors") || e.eq_ignore_ascii_case("onnx")
                        })
                })
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    models.sort();
    Foreign::Directory { models }.error(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_torch_magic_and_the_top_object_are_read() {
        let mut legacy = TORCH_LEGACY_MAGIC.to_vec();
        legacy.extend_from_slice(b".\x80\x02M\xe9\x03.\x80\x02}q\x00.");
        legacy.extend_from_slice(b"\x80\x02ccollections\nOrderedDict\nq\x00)R.");
        let found = Foreign::sniff(&legacy, Path::new("m.pt"));
        assert_eq!(found, Some(Foreign::TorchLegacy(TorchHolds::StateDict)));
        assert_eq!(
            torch_holds(b"\x80\x02c__main__\nNet\nq\x00)\x81"),
            TorchHolds::Object("__main__.Net".into())
        );
        assert_eq!(
            torch_holds(b"\x80\x02}q\x00(X\n\x00\x00\x00state_dictq\x01"),
            TorchHolds::CheckpointWith("state_dict".into())
        );
        assert_eq!(
            torch_holds(b"\x80\x02}q\x00(X\x05\x00\x00\x00epochq\x01"),
            TorchHolds::Dict
        );
        assert_eq!(torch_holds(b"\x80\x04\x95"), TorchHolds::Unknown);
    }

    #[test]
    fn safetensors_like_damage_keeps_the_safetensors_message() {
        // A plausible header length: the file is a damaged safetensors file.
        let mut bytes = 1_000u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{\"a\":");
        let e = not_safetensors(&bytes, Path::new("m.safetensors"), "cut".into());
        assert!(
            e.to_string().contains("not a valid safetensors file: cut"),
            "{e}"
        );
        // An implausible one: the first bytes are shown.
        let e = not_safetensors(
            b"\x00\x01\x02\x03\x04\x05\x06\x07xyz",
            Path::new("m"),
            "x".into(),
        )
        .to_string();
        assert!(
            e.contains("first bytes: 00 01 02 03 04 05 06 07 78 79 7a"),
            "{e}"
        );
        assert!(e.contains("\"........xyz\""), "{e}");
    }

    #[test]
    fn an_onnx_models_weights_file_names_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("net.onnx.data");
        std::fs::write(&data, b"\x4d\xda\xbc\xba raw floats").unwrap();
        // Without its model beside it, it is just unrecognized bytes.
        assert!(Foreign::sniff(b"\x4d\xda", &data).is_none());
        std::fs::write(dir.path().join("net.onnx"), b"").unwrap();
        let e = ModelFile::read(&data).err().unwrap().to_string();
        assert!(
            e.contains("the weights file of the ONNX model") && e.contains("net.onnx:"),
            "{e}"
        );
    }

    #[test]
    fn commands_quote_paths_for_python_and_the_shell() {
        assert_eq!(py_str(Path::new("a \"b\".pt")), r#""a \"b\".pt""#);
        assert_eq!(sh_word(Path::new("runs/m-1.h5")), "runs/m-1.h5");
        assert_eq!(sh_word(Path::new("my model.h5")), "'my model.h5'");
        assert_eq!(sh_word(Path::new("it's.h5")), r"'it'\''s.h5'");
    }
}
