//! The model-file path on arbitrary bytes: the safetensors header and offsets,
//! then (when the file parses) the spec from its metadata, the f32 conversion
//! with its dtype and NaN checks, and the network built against the spec.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xai_audit::model::load::{find_spec, WeightsFile};
use xai_audit::model::load_model_from_bytes;

fuzz_target!(|data: &[u8]| {
    // A name whose sidecar (`fuzz-input.arch.json`) does not exist, so the
    // spec comes from the metadata or not at all.
    let path = Path::new("/nonexistent/fuzz-input.safetensors");
    let Ok(file) = WeightsFile::from_bytes(data.to_vec(), path) else {
        return;
    };
    let _ = file.tensor_listing();
    // Without a spec, the error carries a skeleton guessed from the tensors.
    let _ = find_spec(&file, None);
    if let Ok(model) = load_model_from_bytes(data.to_vec(), path, None) {
        assert_eq!(model.tensors.len(), file.tensors.len());
    }
});
