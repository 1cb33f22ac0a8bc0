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
pub(crate) use infer::resized_width;
pub use infer::{pooled_len, window_overflows};
pub use parse::{Overrides, SUPPORTED_OPS};
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

    /// Every full spec in `docs/arch-spec.md` parses and resolves.
    #[test]
    fn documented_examples_parse() {
        let doc = include_str!("../../../docs/arch-spec.md");
        let blocks: Vec<&str> = doc
            .split("```json")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .filter(|b| b.contains("\"version\""))
            .collect();
        assert!(blocks.len() >= 6, "{}", blocks.len());
        for block in blocks {
            let spec = ArchSpec::from_json(block, "doc").unwrap_or_else(|e| panic!("{e}\n{block}"));
            assert!(spec.layer_infos().is_ok());
        }
        let dense = doc
            .split("```json")
            .find(|b| b.contains("denseblock1"))
            .unwrap();
        let dense = ArchSpec::from_json(dense.split("```").next().unwrap(), "doc").unwrap();
        let infos = dense.layer_infos().unwrap();
        let cat = infos.iter().find(|l| l.path == "d2.cat").unwrap();
        assert_eq!(cat.output_shape, vec![32, 32, 32]);
        assert!(
            cat.description.contains("← d1.cat, d2.conv"),
            "{}",
            cat.description
        );
    }

    const V2_HEAD: &str = r#"{"version": 2, "input": {"shape": [2, 4, 4]}, "nodes": ["#;

    fn v2(nodes: &str) -> std::result::Result<ArchSpec, String> {
        ArchSpec::from_json(&format!("{V2_HEAD}{nodes}]}}"), "g.json").map_err(|e| e.to_string())
    }

    #[test]
    fn v2_wiring_defaults_and_joins() {
        let spec = v2(r#"
            {"name": "a", "op": "conv2d", "param": "a", "in_channels": 2, "out_channels": 3, "kernel_size": 1},
            {"name": "b", "op": "conv2d", "inputs": ["input"], "param": "b", "in_channels": 2, "out_channels": 5, "kernel_size": 1},
            {"name": "gate", "op": "adaptive_avg_pool2d", "output_size": 1, "inputs": "a"},
            {"name": "scaled", "op": "mul", "inputs": ["gate", "a"]},
            {"name": "cat", "op": "concat", "inputs": ["scaled", "b"]},
            {"name": "gap", "op": "global_avg_pool2d"},
            {"name": "fc", "op": "linear", "param": "fc", "in_features": 8, "out_features": 4}"#)
        .unwrap();
        assert_eq!(spec.nodes[0].inputs, ["input"]);
        assert_eq!(spec.nodes[5].inputs, ["cat"]);
        let infos = spec.layer_infos().unwrap();
        assert_eq!(infos[3].output_shape, vec![3, 4, 4]);
        assert_eq!(infos[4].output_shape, vec![8, 4, 4]);
        assert_eq!(spec.num_classes(), 4);
        // Written back as v2 with explicit inputs, it reads the same.
        let again = ArchSpec::from_json(&spec.to_json_pretty(), "again").unwrap();
        assert_eq!(spec, again);
        assert!(spec.to_json_pretty().contains("\"version\": 2"));
    }

    #[test]
    fn v2_wiring_errors_name_the_node() {
        let fc = r#"{"name": "gap", "op": "global_avg_pool2d"}, {"name": "fc", "op": "linear", "param": "fc", "in_features": 2, "out_features": 3}"#;
        for (nodes, needles) in [
            (
                format!(r#"{{"name": "r", "op": "relu", "inputs": ["nope"]}}, {fc}"#),
                vec!["`r`", "`nope` names no node"],
            ),
            (
                format!(r#"{{"name": "r", "op": "relu", "inputs": ["gap"]}}, {fc}"#),
                vec!["`r`", "comes later"],
            ),
            (
                format!(r#"{{"name": "gap", "op": "relu"}}, {fc}"#),
                vec!["`gap`", "used twice"],
            ),
            (
                format!(r#"{{"name": "input", "op": "relu"}}, {fc}"#),
                vec!["nodes[0]", "not `input`"],
            ),
            (
                format!(r#"{{"name": "s", "op": "add", "inputs": ["input"]}}, {fc}"#),
                vec!["`s` (add)", "takes 2 inputs, given 1"],
            ),
            (
                format!(
                    r#"{{"name": "dead", "op": "relu"}}, {{"name": "x", "op": "relu", "inputs": ["input"]}}, {fc}"#
                ),
                vec!["`dead`", "never used"],
            ),
            (
                format!(
                    r#"{{"name": "p", "op": "max_pool2d", "kernel_size": 2}}, {{"name": "s", "op": "add", "inputs": ["p", "input"]}}, {fc}"#
                ),
                vec!["layer s (add)", "must match to be summed"],
            ),
            (
                format!(r#"{{"name": "b", "op": "residual", "body": []}}, {fc}"#),
                vec!["`b`", "version 1 layer"],
            ),
            (
                format!(r#"{{"name": "r", "op": "relu", "bogus": 1}}, {fc}"#),
                vec!["`r`", "bogus"],
            ),
        ] {
            let e = v2(&nodes).unwrap_err();
            for n in needles.iter().chain(&["g.json"]) {
                assert!(e.contains(n), "{n:?} not in {e}");
            }
        }
        let layers = r#"{"version": 2, "input": {"shape": [1, 2, 2]}, "layers": []}"#;
        let e = ArchSpec::from_json(layers, "x").unwrap_err().to_string();
        assert!(e.contains("`nodes`, not `layers`"), "{e}");
    }

    #[test]
    fn v1_translates_to_nodes_named_by_layer_path() {
        let text = r#"{"version": 1, "input": {"shape": [2, 4, 4]}, "layers": [
            {"op": "residual", "body": [
                {"op": "conv2d", "param": "b.0", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1}
            ], "shortcut": [
                {"op": "conv2d", "param": "s.0", "in_channels": 2, "out_channels": 3, "kernel_size": 1}
            ], "activation": {"op": "relu"}},
            {"op": "residual", "body": [{"op": "relu"}]},
            {"op": "global_avg_pool2d"},
            {"op": "linear", "param": "fc", "in_features": 3, "out_features": 2}
        ]}"#;
        let spec = ArchSpec::from_json(text, "x").unwrap();
        let names: Vec<(&str, Vec<&str>)> = spec
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.as_str(),
                    n.inputs.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("0.shortcut.0", vec!["input"]),
                ("0.body.0", vec!["input"]),
                ("0.sum", vec!["0.body.0", "0.shortcut.0"]),
                ("0", vec!["0.sum"]),
                ("1.body.0", vec!["0"]),
                ("1", vec!["1.body.0", "0"]),
                ("2", vec!["1"]),
                ("3", vec!["2"]),
            ]
        );
        assert_eq!(spec.version, SPEC_VERSION);
        assert_eq!(spec.node_index("0.activation.0"), Some(3));
        // Block 1 has no activation: the old path names its sum, harmlessly.
        assert_eq!(spec.node_index("1.activation.0"), Some(5));
    }
}
