//! ONNX import: turns a `model.onnx` into a spec v2 graph (JSON) and its
//! weights, so that every command can read what PyTorch, tf2onnx or JAX
//! export. [`import`] is the whole interface; the caller supplies what ONNX
//! does not carry (input range, class names) and loads the result like a
//! safetensors model with an embedded spec.
//!
//! # Parsing: prost, with the vendored `onnx.proto` compiled by protox
//!
//! The protobuf messages come from ONNX's own `onnx.proto` (release 1.23.0,
//! Apache-2.0, vendored beside this file), compiled at build time by
//! `prost-build` from a descriptor set that `protox` parses in pure Rust: no
//! system `protoc`, nothing but the Rust toolchain. Measured on this 2-core
//! machine (`taskset -c 0,1`, `cargo build --release` of a scratch crate that
//! decodes a `ModelProto`, empty target dir, machine otherwise idle):
//!
//! | route | build | crates in the tree | notes |
//! |---|---|---|---|
//! | prost 0.14 + prost-build 0.14 + protox in build.rs | 19.8 s (protox 0.9) | 66 (60 with protox 0.10) | chosen (protox 0.10 in Cargo.toml) |
//! | `onnx-protobuf` 0.2.3 (rust-protobuf 3) | fails with protobuf 3.7; 17.4 s with `protobuf = "=3.4.0"` | 14 | one maintainer, MPL-2.0, its generated code asserts protobuf 3.4.0 |
//! | `tract-onnx` 0.23 | not built | 124 | the tract inference engine (linalg kernels) for its protobuf module |
//! | burn `onnx-ir` 0.22 | not built | 146 | burn's tensor crates; refuses opsets below 16 |
//!
//! In this crate, most of prost-build's and protox's dependencies (syn, quote,
//! itertools...) are built anyway. prost and protox are widely used and
//! maintained; the schema is ONNX's own file, so a new ONNX release is a file
//! copy. A hand-written protobuf decoder would be ours to fuzz and keep.
//!
//! Checked outside CI (the ignored test `import_exported_models` dumps the
//! spec and weights; a PyTorch evaluation of the spec against onnxruntime on
//! 8 random inputs): torchvision's resnet18, mobilenet_v2, mobilenet_v3_small,
//! densenet121 and efficientnet_b0 at 3×64×64, each from both exporters
//! (TorchScript opset 17, dynamo opset 18 and 20), and a model with Sub/Div
//! normalization, asymmetric ZeroPad2d, GELU, SE, dilation, ceil-mode pools
//! and hard-swish (opset 13 and 20): all import, max |Δ| / max |logit| ≤ 1.4e-6.
//!
//! # What is mapped
//!
//! Each ONNX op becomes spec v2 nodes (`src/model/onnx/import.rs`), constant
//! shape arithmetic is folded (`fold.rs`), and multi-node idioms become one
//! node (`patterns.rs`: the erf and tanh forms of GELU, `x·sigmoid(x)` as
//! SiLU, `x·hard_sigmoid(x)` as hard-swish,
//! `MatMul` + `Add` as a linear with bias). Input normalization written as
//! `Sub`/`Div` (or `Mul` by the reciprocal) by per-channel or scalar constants
//! on the raw input becomes `input.mean`/`input.std`. [`SUPPORTED_OPS`] lists
//! the ops; anything else is an [`Error::Onnx`] naming the
//! node, its op type and the model's opset.

mod external;
mod fold;
mod import;
mod patterns;
pub mod proto;
mod tensor;
#[cfg(test)]
mod tests;

use prost::Message;

use crate::error::{Error, Result};

/// The ONNX ops the importer maps (some only in the forms its docs give).
pub const SUPPORTED_OPS: &str = "Add, AveragePool, BatchNormalization, Cast, Clip, Concat, \
Constant, ConstantOfShape, Conv, Div, Dropout, Erf (in GELU), Flatten, Gather (of constants), \
Gelu, Gemm, GlobalAveragePool, HardSigmoid, HardSwish, Identity, LeakyRelu, MatMul, MaxPool, \
Mul, Pad, Pow (in tanh GELU), ReduceMean, Relu, Reshape, Shape, Sigmoid, Slice (of constants), Softmax, Squeeze, \
Sub, Tanh, Transpose (of constants), Unsqueeze (of constants)";

/// An imported ONNX model.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The spec v2 JSON (`version` 2, `name`, `input` with `shape`, `range`
    /// `[0, 1]` by default and `mean`/`std` when recognized, `nodes`). It has
    /// no `classes`: the caller adds them, and overrides `input.range`.
    pub spec: serde_json::Value,
    /// The weights, as (tensor name `<param>.<leaf>`, shape, values), the
    /// names matching the spec's `param` fields.
    pub weights: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// The model's `ai.onnx` opset version.
    pub opset: i64,
    /// The producer, e.g. `pytorch 2.5.0`.
    pub producer: String,
    /// What the importer recognized or dropped, for `inspect` and the log.
    pub notes: Vec<String>,
    /// The files holding weights the model keeps outside itself, with
    /// their bytes (none for a self-contained model).
    pub external: external::ExternalFiles,
}

/// Imports the ONNX model in `bytes`; `origin` (the file) names it in errors
/// and gives the spec its name. `dir`, the model's directory, is where
/// weights kept outside the file (`model.onnx.data`) are read from; without
/// it such weights are an error.
///
/// # Errors
/// [`Error::Onnx`] when the bytes are not an ONNX model, or the graph uses an
/// op, attribute or shape the spec cannot express (an unsupported op, a
/// dynamic spatial size, several inputs or outputs), or external weights
/// cannot be read.
pub fn import(bytes: &[u8], origin: &str, dir: Option<&std::path::Path>) -> Result<Imported> {
    let fail = |message: String| Error::Onnx {
        origin: origin.to_string(),
        message,
    };
    let mut model =
        proto::ModelProto::decode(bytes).map_err(|e| fail(format!("not an ONNX model ({e})")))?;
    let external = match dir {
        Some(dir) => external::inline(&mut model, dir).map_err(fail)?,
        None => Vec::new(),
    };
    let mut imported = import::convert(&model, origin)?;
    imported.external = external;
    Ok(imported)
}
