//! The ONNX path on arbitrary bytes: the protobuf decode, the opset and
//! input checks, constant folding, pattern fusion and the conversion to a
//! version-2 spec, then the network built against the imported weights.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xai_audit::model::load_model_from_bytes;
use xai_audit::model::onnx::import;

fuzz_target!(|data: &[u8]| {
    let origin = "fuzz-input.onnx";
    let Ok(imported) = import(data, origin, None) else {
        return;
    };
    // A graph that imports builds, or fails with an error: never a panic.
    let path = Path::new("/nonexistent/fuzz-input.onnx");
    if let Ok(model) = load_model_from_bytes(data.to_vec(), path, None) {
        assert_eq!(model.tensors.len(), imported.weights.len());
    }
});
