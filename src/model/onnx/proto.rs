//! The ONNX protobuf messages (`ModelProto`, `GraphProto`, `NodeProto`,
//! `TensorProto`...), generated at build time by prost from the vendored
//! `onnx.proto` (see `build.rs`). Decode with [`prost::Message::decode`].
#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
