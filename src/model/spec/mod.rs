//! The architecture spec: the versioned JSON that says how a safetensors file's
//! tensors make a network (see `docs/arch-spec.md`). This module owns parsing with
//! error messages that name the layer and key, and shape inference, which checks
//! every layer against its input before any tensor is touched. Its files:
//!
//! - `types.rs`: the serde types ([`ArchSpec`], [`InputSpec`], [`LayerSpec`],
//!   [`Size2`], ...) and their small accessors (classes, parameters);
//! - `parse.rs`: reading and validating the JSON ([`ArchSpec::from_json`], the
//!   hand parsing of layers and residual blocks, the version check);
//! - `infer.rs`: shape inference ([`ArchSpec::layer_infos`]) and PyTorch's
//!   pooling and convolution output sizes ([`pooled_len`]);
//! - `describe.rs`: human-readable text for `inspect` and errors (op names,
//!   layer descriptions, [`ArchSpec::output_notes`], [`fmt_shape`]).
//!
//! This file holds the format's constants and re-exports the public items, so
//! every path `crate::model::spec::X` names them.

mod describe;
mod infer;
mod parse;
mod types;

pub use describe::fmt_shape;
pub use infer::{pooled_len, window_overflows};
pub use parse::SUPPORTED_OPS;
pub use types::{
    ArchSpec, GeluApproximate, InputSpec, LayerInfo, LayerSpec, NodeSpec, ParamInfo, Size2,
    INPUT_NAME,
};

/// The spec format version this build reads and writes.
pub const SPEC_VERSION: u32 = 2;

/// The most classes a network may output: reports name and rank every class,
/// so a count beyond this is a malformed spec, not a model.
pub const MAX_CLASSES: usize = 1 << 24;

/// The safetensors `__metadata__` key that carries the spec as a JSON string.
pub const METADATA_KEY: &str = "xai_audit.arch";

/// The number of elements of `shape`, or `None` when it overflows `usize`.
fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cnn_json() -> String {
        r#"{
          "version": 1, "name": "t",
          "input": {"shape": [1, 28, 28], "mean": [0.1307], "std": [0.3081]},
          "layers": [
            {"op": "conv2d", "param": "features.0", "in_channels": 1, "out_channels": 16, "kernel_size": 3, "padding": 1},
            {"op": "relu"},
            {"op": "max_pool2d", "kernel_size": 2},
            {"op": "conv2d", "param": "features.3", "in_channels": 16, "out_channels": 32, "kernel_size": 3, "padding": 1},
            {"op": "relu"},
            {"op": "max_pool2d", "kernel_size": 2},
            {"op": "flatten"},
            {"op": "linear", "param": "classifier.0", "in_features": 1568, "out_features": 128},
            {"op": "relu"},
            {"op": "linear", "param": "classifier.2", "in_features": 128, "out_features": 10}
          ]}"#
        .to_string()
    }

    #[test]
    fn parses_the_documented_cnn_and_infers_shapes() {
        let spec = ArchSpec::from_json(&cnn_json(), "test").unwrap();
        let infos = spec.layer_infos().unwrap();
        assert_eq!(infos[2].output_shape, vec![16, 14, 14]);
        assert_eq!(infos[6].output_shape, vec![1568]);
        assert_eq!(spec.num_classes(), 10);
        // 160 + 4640 + 200832 + 1290 parameters, by hand.
        assert_eq!(spec.parameter_count(), 160 + 4640 + 1568 * 128 + 128 + 1290);
        assert_eq!(spec.input.range, [0.0, 1.0]);
        assert_eq!(spec.params()[0].name, "features.0.weight");
        assert_eq!(spec.params()[0].shape, vec![16, 1, 3, 3]);
    }

    #[test]
    fn spec_roundtrips_through_json() {
        let spec = ArchSpec::from_json(&cnn_json(), "test").unwrap();
        let again = ArchSpec::from_json(&spec.to_json_pretty(), "again").unwrap();
        assert_eq!(spec, again);
    }

    #[test]
    fn unknown_key_names_layer_and_key() {
        let text = cnn_json().replace("\"padding\": 1}", "\"paddin\": 1}");
        let err = ArchSpec::from_json(&text, "m.arch.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("layers[0]"), "{err}");
        assert!(err.contains("paddin"), "{err}");
        assert!(err.contains("m.arch.json"), "{err}");
    }

    #[test]
    fn unknown_op_lists_supported_ops() {
        let text = cnn_json().replace("\"op\": \"relu\"", "\"op\": \"swish\"");
        let err = ArchSpec::from_json(&text, "x").unwrap_err().to_string();
        assert!(
            err.contains("layers[1]") && err.contains("unknown op `swish`"),
            "{err}"
        );
    }

    #[test]
    fn newer_version_is_refused_with_explanation() {
        let text = cnn_json().replace("\"version\": 1", "\"version\": 7");
        let err = ArchSpec::from_json(&text, "x").unwrap_err().to_string();
        assert!(err.contains("newer") && err.contains('7'), "{err}");
    }

    #[test]
    fn channel_mismatch_names_the_layer() {
        let text = cnn_json().replace("\"in_channels\": 16", "\"in_channels\": 8");
        let err = ArchSpec::from_json(&text, "x").unwrap_err().to_string();
        assert!(err.contains("layer 3 (conv2d features.3)"), "{err}");
        assert!(
            err.contains("expects 8 input channels but gets 16"),
            "{err}"
        );
    }

    #[test]
    fn missing_flatten_is_explained() {
        let text = cnn_json().replace("{\"op\": \"flatten\"},", "");
        let err = ArchSpec::from_json(&text, "x").unwrap_err().to_string();
        assert!(
            err.contains("classifier.0") && err.contains("flatten"),
            "{err}"
        );
    }

    #[test]
    fn class_count_must_match_output() {
        let text = cnn_json().replace(
            "\"name\": \"t\",",
            "\"name\": \"t\", \"classes\": [\"a\", \"b\"],",
        );
        let err = ArchSpec::from_json(&text, "x").unwrap_err().to_string();
        assert!(
            err.contains("2 classes") && err.contains("outputs 10"),
            "{err}"
        );
    }

    #[test]
    fn one_output_is_a_binary_classifier_with_zero_or_two_names() {
        let spec = |classes: &str, tail: &str| {
            format!(
                r#"{{"version": 1, "input": {{"shape": [1, 2, 2]}}, {classes} "layers": [
                {{"op": "flatten"}}, {{"op": "linear", "param": "fc", "in_features": 4, "out_features": 1}}{tail}]}}"#
            )
        };
        let unnamed = ArchSpec::from_json(&spec("", ""), "x").unwrap();
        assert_eq!((unnamed.outputs(), unnamed.num_classes()), (1, 2));
        assert_eq!(unnamed.class_names(), ["0", "1"]);
        assert!(!unnamed.drops_final_sigmoid());
        assert_eq!(unnamed.output_notes().len(), 1);
        assert!(unnamed.output_notes()[0].contains("logits [0, z]"));
        let named = ArchSpec::from_json(
            &spec(r#""classes": ["cat", "dog"],"#, r#", {"op": "sigmoid"}"#),
            "x",
        )
        .unwrap();
        assert_eq!(named.class_names(), ["cat", "dog"]);
        assert!(named.drops_final_sigmoid());
        let notes = named.output_notes().join("\n");
        assert!(
            notes.contains("label 1 (dog)") && notes.contains("layer 2, sigmoid"),
            "{notes}"
        );
        for bad in [r#""classes": ["dog"],"#, r#""classes": ["a", "b", "c"],"#] {
            let err = ArchSpec::from_json(&spec(bad, ""), "x")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("outputs 1") && err.contains("name its 2 classes"),
                "{err}"
            );
        }
        // A sigmoid anywhere but last over one output is an ordinary layer.
        let hidden = r#"{"version": 1, "input": {"shape": [1, 2, 2]}, "layers": [
            {"op": "flatten"}, {"op": "sigmoid"}, {"op": "linear", "param": "fc", "in_features": 4, "out_features": 3}, {"op": "sigmoid"}]}"#;
        let three = ArchSpec::from_json(hidden, "x").unwrap();
        assert!(!three.drops_final_sigmoid() && three.output_notes().is_empty());
    }

    #[test]
    fn residual_paths_and_shortcut_mismatch() {
        let text = r#"{"version": 1, "input": {"shape": [2, 4, 4]}, "layers": [
            {"op": "residual", "body": [
                {"op": "conv2d", "param": "b.0", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1}
            ], "activation": {"op": "relu"}},
            {"op": "global_avg_pool2d"}
        ]}"#;
        let err = ArchSpec::from_json(text, "x").unwrap_err().to_string();
        assert!(err.contains("must match to be summed"), "{err}");
        let bad = text.replace("\"padding\": 1}", "\"padding\": 1, \"bogus\": 2}");
        let err = ArchSpec::from_json(&bad, "x").unwrap_err().to_string();
        assert!(
            err.contains("layers[0].body[0]") && err.contains("bogus"),
            "{err}"
        );
    }
}
