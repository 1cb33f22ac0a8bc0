//! Inputs that made a fuzz target (`tests/fuzz`) or a probe written beside
//! one panic, each now a clean error naming the layer or file. The fuzz
//! builds check integer overflow; release builds would wrap silently, so each
//! test asserts the error itself, not only the absence of a panic.

use std::path::Path;

use xai_audit::model::load::{find_spec, WeightsFile};
use xai_audit::model::spec::ArchSpec;

fn spec_error(json: &str) -> String {
    match ArchSpec::from_json(json, "fuzz.arch.json") {
        Ok(spec) => panic!("accepted: {spec:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_has(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "lacks {n:?}: {text}");
    }
}

#[test]
fn conv_dilation_that_overflows_the_window_is_an_error() {
    let e = spec_error(
        r#"{"version":1,"input":{"shape":[1,8,8]},"layers":[{"op":"conv2d","param":"c","in_channels":1,"out_channels":1,"kernel_size":3,"dilation":18446744073709551615},{"op":"flatten"}]}"#,
    );
    assert_has(&e, &["fuzz.arch.json", "layer 0 (conv2d c)", "too large"]);
}

#[test]
fn conv_padding_that_overflows_the_input_is_an_error() {
    let e = spec_error(
        r#"{"version":1,"input":{"shape":[1,8,8]},"layers":[{"op":"conv2d","param":"c","in_channels":1,"out_channels":1,"kernel_size":3,"padding":9223372036854775808},{"op":"flatten"}]}"#,
    );
    assert_has(&e, &["layer 0 (conv2d c)", "too large"]);
}

#[test]
fn max_pool_padding_beyond_half_the_kernel_is_an_error_not_an_overflow() {
    let e = spec_error(
        r#"{"version":1,"input":{"shape":[1,8,8]},"layers":[{"op":"max_pool2d","kernel_size":2,"padding":9223372036854775808},{"op":"flatten"}]}"#,
    );
    assert_has(
        &e,
        &["layer 0 (max_pool2d)", "at most half the kernel size"],
    );
}

#[test]
fn max_pool_dilation_that_overflows_the_window_is_an_error() {
    let e = spec_error(
        r#"{"version":1,"input":{"shape":[1,8,8]},"layers":[{"op":"max_pool2d","kernel_size":3,"dilation":9223372036854775808},{"op":"flatten"}]}"#,
    );
    assert_has(&e, &["layer 0 (max_pool2d)", "too large"]);
}

#[test]
fn flatten_of_a_shape_too_large_for_memory_is_an_error() {
    let e = spec_error(
        r#"{"version":1,"input":{"shape":[1,8,8]},"layers":[{"op":"adaptive_avg_pool2d","output_size":[4294967296,4294967296]},{"op":"flatten"}]}"#,
    );
    assert_has(
        &e,
        &["layer 1 (flatten)", "more elements than fit in memory"],
    );
}

#[test]
fn a_weight_too_large_for_memory_is_an_error() {
    let e = spec_error(
        r#"{"version":1,"input":{"shape":[1,8,8]},"layers":[{"op":"flatten"},{"op":"linear","param":"fc","in_features":64,"out_features":1152921504606846976}]}"#,
    );
    assert_has(&e, &["layer 1 (linear fc)", "'fc.weight'", "more elements"]);
}

#[test]
fn skeleton_of_an_empty_tensor_with_a_huge_dimension_does_not_overflow() {
    // A header-only file: `fc.weight` of shape [0, 2^64 - 1] holds no bytes,
    // and with no spec the error carries a skeleton guessed from the shapes.
    let header =
        br#"{"fc.weight":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    let path = Path::new("/nonexistent/fuzz.safetensors");
    let file = WeightsFile::from_bytes(bytes, path).expect("a valid header");
    let e = match find_spec(&file, None) {
        Ok(_) => panic!("found a spec"),
        Err(e) => e.to_string(),
    };
    assert_has(
        &e,
        &[
            "fuzz.safetensors",
            "no architecture spec found",
            "\"linear\"",
        ],
    );
}

#[test]
fn more_classes_than_can_be_named_is_an_error() {
    // Found by the `spec` target: 4294967296 × 2494967296 classes fit `usize`,
    // but `class_names` could not allocate them (capacity overflow).
    let e = spec_error(
        r#"{"version":1,"input":{"shape":[1,8,8]},"layers":[{"op":"adaptive_avg_pool2d","output_size":[4294967296,2494967296]},{"op":"flatten"}]}"#,
    );
    assert_has(&e, &["fuzz.arch.json", "classes, more than the 16777216"]);
}
