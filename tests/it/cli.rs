//! The binary end to end: `inspect` and `eval` on the shipped models, and
//! every bad input of the foundation issue giving exit code 2 and a message
//! that names the file, tensor, layer or key — never a panic.

use std::path::Path;

use super::{fixture, root, xai};

/// A safetensors file from a raw header and data section.
pub(crate) fn raw_safetensors(path: &Path, header: &str, data: &[u8]) {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

pub(crate) const MLP_SPEC: &str = r#"{"version": 1, "name": "mlp-test", "input": {"shape": [1, 28, 28]}, "layers": [
  {"op": "flatten"},
  {"op": "linear", "param": "fc1", "in_features": 784, "out_features": 32},
  {"op": "relu"},
  {"op": "linear", "param": "fc2", "in_features": 32, "out_features": 10}]}"#;

/// NPY v1 bytes of `descr` with `shape` and raw little-endian `data`.
pub(crate) fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn inspect_lists_tensors_layers_and_parameters_of_the_shipped_cnn() {
    let r = xai(&root(), &["inspect", "assets/mnist_cnn.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for needle in [
        "features.0.weight",
        "[16, 1, 3, 3]",
        "F32",
        "conv2d features.0 1→16 k3 s1 p1",
        "[N, 16, 14, 14]",
        "[N, 1568]",
        "total parameters: 206922",
        "mean [0.1307], std [0.3081]",
    ] {
        assert!(
            r.stdout.contains(needle),
            "missing {needle:?} in\n{}",
            r.stdout
        );
    }
}

#[test]
fn inspect_lists_the_layers_of_the_shipped_resnet() {
    let r = xai(&root(), &["inspect", "assets/mnist_resnet.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for needle in [
        "name: mnist-resnet",
        "mean [0.1307], std [0.3081]",
        "conv2d stem.0 1→16 k3 s1 p1 no-bias",
        "batch_norm2d stem.1 16",
        "conv2d block.body.0 16→32 k3 s2 p1 no-bias ← 2",
        "conv2d block.shortcut.0 16→32 k1 s2 p0 no-bias",
        "3.sum",
        "add ← 3.body.4, 3.shortcut.1",
        "avg_pool2d k2 s2 p0",
        "[N, 32, 7, 7]",
        "linear head.0 1568→64",
        "gelu",
        "dropout p=0.2",
        "linear head.3 64→10",
        // 115,770 trained parameters plus 224 batch-norm running statistics.
        "total parameters: 115994",
    ] {
        assert!(
            r.stdout.contains(needle),
            "missing {needle:?} in\n{}",
            r.stdout
        );
    }
}

#[test]
fn inspect_the_shipped_mlp_and_a_residual_model() {
    let r = xai(&root(), &["inspect", "assets/mnist_mlp.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("linear net.1 784→256"), "{}", r.stdout);
    let r = xai(
        &root(),
        &[
            "inspect",
            fixture("tiny_all_ops.safetensors").to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("4.sum        add ← 4.body.3, 3"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("I64"), "{}", r.stdout);
}

#[test]
fn eval_reports_clean_accuracy_of_the_shipped_cnn_on_the_shipped_sample() {
    let dir = tmp();
    let model = root().join("assets/mnist_cnn.safetensors");
    let r = xai(dir.path(), &["eval", model.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("(1000 inputs: all 1000 in file order)"),
        "{}",
        r.stdout
    );
    let acc: f64 = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("clean accuracy "))
        .and_then(|v| v.trim_end_matches('%').parse().ok())
        .expect("an accuracy line");
    assert!(acc >= 98.0, "clean accuracy {acc}%");
}

#[test]
fn eval_with_limit_and_an_explicit_idx_file() {
    let sample = root().join("assets/mnist-sample/sample-images-idx3-ubyte.gz");
    let r = xai(
        &root(),
        &[
            "eval",
            "assets/mnist_mlp.safetensors",
            "--data",
            sample.to_str().unwrap(),
            "--limit",
            "50",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("(50 inputs: first 50 of 1000 in file order)"),
        "{}",
        r.stdout
    );
}

/// The clean-accuracy line of `eval`'s output.
fn accuracy_line(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.starts_with("clean accuracy "))
        .expect("an accuracy line")
        .to_string()
}

#[test]
fn eval_on_a_uint8_npy_matches_eval_on_the_same_digits_as_idx() {
    let dir = tmp();
    let d = dir.path();
    let opts = xai_audit::data::LoadOptions {
        limit: Some(20),
        ..Default::default()
    };
    let digits = xai_audit::data::shipped_sample(&opts).unwrap();
    let bytes: Vec<u8> = digits
        .pixels
        .iter()
        .map(|&p| (p * 255.0).round() as u8)
        .collect();
    let labels: Vec<u8> = digits.labels.iter().map(|&l| l as u8).collect();
    xai_audit::data::write_idx_images(&d.join("d-images-idx3-ubyte"), 20, 28, 28, &bytes, false)
        .unwrap();
    xai_audit::data::write_idx_labels(&d.join("d-labels-idx1-ubyte"), &labels, false).unwrap();
    // N×H×W×C with C = 1: the layout is inferred from the model's 1×28×28.
    std::fs::write(d.join("x.npy"), npy_bytes("|u1", &[20, 28, 28, 1], &bytes)).unwrap();
    let wide: Vec<u8> = labels
        .iter()
        .flat_map(|&l| i64::from(l).to_le_bytes())
        .collect();
    std::fs::write(d.join("y.npy"), npy_bytes("<i8", &[20], &wide)).unwrap();
    let model = root().join("assets/mnist_cnn.safetensors");
    let model = model.to_str().unwrap();
    let from_npy = xai(d, &["eval", model, "--data", "x.npy", "--labels", "y.npy"]);
    assert_eq!(from_npy.code, 0, "{}", from_npy.stderr);
    assert!(
        from_npy.stdout.contains("(20 inputs"),
        "{}",
        from_npy.stdout
    );
    let from_idx = xai(d, &["eval", model, "--data", "d-images-idx3-ubyte"]);
    assert_eq!(from_idx.code, 0, "{}", from_idx.stderr);
    assert_eq!(
        accuracy_line(&from_npy.stdout),
        accuracy_line(&from_idx.stdout)
    );
}

#[test]
fn missing_model_file_names_it() {
    xai(&root(), &["inspect", "no/such/model.safetensors"])
        .expect_error(&["no/such/model.safetensors"]);
}

#[test]
fn truncated_safetensors_names_the_file() {
    let dir = tmp();
    let bytes = std::fs::read(fixture("mlp.safetensors")).unwrap();
    let path = dir.path().join("cut.safetensors");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    xai(dir.path(), &["inspect", "cut.safetensors"])
        .expect_error(&["cut.safetensors", "truncated"]);
    std::fs::write(&path, &bytes[..5]).unwrap();
    xai(dir.path(), &["inspect", "cut.safetensors"])
        .expect_error(&["cut.safetensors", "8-byte header"]);
}

#[test]
fn header_length_beyond_file_size() {
    let dir = tmp();
    let mut bytes = 1_000_000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(dir.path().join("m.safetensors"), bytes).unwrap();
    xai(dir.path(), &["inspect", "m.safetensors"])
        .expect_error(&["m.safetensors", "header length"]);
}

#[test]
fn header_that_is_not_json() {
    let dir = tmp();
    raw_safetensors(&dir.path().join("m.safetensors"), "this is not json", &[]);
    xai(dir.path(), &["inspect", "m.safetensors"])
        .expect_error(&["m.safetensors", "not valid safetensors JSON"]);
}

#[test]
fn overlapping_or_out_of_bounds_offsets() {
    let dir = tmp();
    let header = r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#;
    raw_safetensors(&dir.path().join("m.safetensors"), header, &[0u8; 12]);
    xai(dir.path(), &["inspect", "m.safetensors"]).expect_error(&["m.safetensors", "offsets"]);
    let header = r#"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#;
    raw_safetensors(&dir.path().join("m.safetensors"), header, &[0u8; 8]);
    xai(dir.path(), &["inspect", "m.safetensors"])
        .expect_error(&["m.safetensors", "shorter than the header says"]);
}

#[test]
fn no_spec_lists_the_tensors_and_prints_a_skeleton() {
    let dir = tmp();
    std::fs::copy(
        fixture("mlp_nometa.safetensors"),
        dir.path().join("bare.safetensors"),
    )
    .unwrap();
    let r = xai(dir.path(), &["inspect", "bare.safetensors"]);
    r.expect_error(&[
        "no architecture spec found",
        "bare.arch.json",
        "fc1.weight",
        "[32, 784]",
        "\"op\": \"linear\"",
        // A plain state_dict's user is pointed to the bridge that writes the spec.
        "examples/export_pytorch.py writes the exact spec",
        "spec_from_module(model",
    ]);
    assert!(
        r.stderr.contains("help: ") && r.stderr.contains("export_pytorch.py writes the spec"),
        "{}",
        r.stderr
    );
    // The skeleton, saved as the sidecar, loads as it stands.
    let stderr = &r.stderr;
    let start = stderr.find("{\n").unwrap();
    let end = stderr.rfind('}').unwrap();
    std::fs::write(dir.path().join("bare.arch.json"), &stderr[start..=end]).unwrap();
    let r = xai(dir.path(), &["inspect", "bare.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("sidecar"), "{}", r.stdout);
}

#[test]
fn malformed_newer_and_unknown_op_specs_name_the_problem() {
    let dir = tmp();
    let model = fixture("mlp.safetensors");
    let model = model.to_str().unwrap();
    let cases: [(&str, String, &[&str]); 5] = [
        (
            "bad.json",
            "{ not json".to_string(),
            &["bad.json", "not valid JSON"],
        ),
        (
            "newer.json",
            MLP_SPEC.replace("\"version\": 1", "\"version\": 2"),
            &["newer.json", "newer"],
        ),
        (
            "op.json",
            MLP_SPEC.replace("\"relu\"", "\"mish\""),
            &["op.json", "layers[2]", "unknown op `mish`"],
        ),
        (
            "key.json",
            MLP_SPEC.replace(
                "\"out_features\": 32",
                "\"out_features\": 32, \"activation\": 1",
            ),
            &["key.json", "layers[1]", "activation"],
        ),
        (
            "range.json",
            MLP_SPEC.replace(
                "\"shape\": [1, 28, 28]",
                "\"shape\": [1, 28, 28], \"range\": [1, 0]",
            ),
            &["range.json", "input.range"],
        ),
    ];
    for (name, text, needles) in cases {
        std::fs::write(dir.path().join(name), text).unwrap();
        xai(dir.path(), &["inspect", model, "--arch", name]).expect_error(needles);
    }
    xai(dir.path(), &["inspect", model, "--arch", "absent.json"]).expect_error(&["absent.json"]);
}

#[test]
fn shape_mismatch_names_layer_tensor_and_both_shapes() {
    let dir = tmp();
    let spec = MLP_SPEC
        .replace("\"out_features\": 32}", "\"out_features\": 40}")
        .replace("\"in_features\": 32", "\"in_features\": 40");
    std::fs::write(dir.path().join("s.json"), spec).unwrap();
    let model = fixture("mlp.safetensors");
    xai(
        dir.path(),
        &["inspect", model.to_str().unwrap(), "--arch", "s.json"],
    )
    .expect_error(&[
        "layer 1 (linear fc1)",
        "fc1.weight",
        "[32, 784]",
        "[40, 784]",
    ]);
}

#[test]
fn missing_tensor_names_it_and_unused_tensors_warn() {
    let dir = tmp();
    std::fs::write(
        dir.path().join("s.json"),
        MLP_SPEC.replace("\"fc2\"", "\"head\""),
    )
    .unwrap();
    let model = fixture("mlp.safetensors");
    xai(
        dir.path(),
        &["inspect", model.to_str().unwrap(), "--arch", "s.json"],
    )
    .expect_error(&["layer 3 (linear head)", "head.weight", "missing"]);
    // A spec that uses fewer tensors than the file holds: a warning, not an error.
    let short = r#"{"version": 1, "input": {"shape": [1, 28, 28]}, "layers": [
      {"op": "flatten"}, {"op": "linear", "param": "fc1", "in_features": 784, "out_features": 32}]}"#;
    std::fs::write(dir.path().join("short.json"), short).unwrap();
    let r = xai(
        dir.path(),
        &["inspect", model.to_str().unwrap(), "--arch", "short.json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("warning: 2 tensors no layer uses: fc2.bias, fc2.weight")
            || r.stdout.contains("fc2.weight, fc2.bias"),
        "{}",
        r.stdout
    );
}

#[test]
fn non_finite_weights_are_refused() {
    let dir = tmp();
    let header = r#"{"__metadata__": {"xai_audit.arch": "{\"version\": 1, \"input\": {\"shape\": [1, 1, 2]}, \"layers\": [{\"op\": \"flatten\"}, {\"op\": \"linear\", \"param\": \"fc\", \"in_features\": 2, \"out_features\": 2, \"bias\": false}]}"}, "fc.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}"#;
    let mut data = Vec::new();
    for v in [1.0f32, f32::NAN, 0.5, 2.0] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    raw_safetensors(&dir.path().join("nan.safetensors"), header, &data);
    xai(dir.path(), &["inspect", "nan.safetensors"]).expect_error(&[
        "nan.safetensors",
        "fc.weight",
        "non-finite",
    ]);
}

#[test]
fn bad_data_inputs_name_the_file() {
    use xai_audit::data::{write_idx_images, write_idx_labels};
    let dir = tmp();
    let d = dir.path();
    let model = root().join("assets/mnist_mlp.safetensors");
    let model = model.to_str().unwrap();
    // Missing path.
    xai(d, &["eval", model, "--data", "nowhere"]).expect_error(&["nowhere"]);
    // IDX with a bad magic and with short data.
    write_idx_images(
        &d.join("a-images-idx3-ubyte"),
        2,
        28,
        28,
        &[0u8; 2 * 784],
        false,
    )
    .unwrap();
    write_idx_labels(&d.join("a-labels-idx1-ubyte"), &[1, 2], false).unwrap();
    let mut bytes = std::fs::read(d.join("a-images-idx3-ubyte")).unwrap();
    bytes[3] = 0x01;
    std::fs::write(d.join("bad-images-idx3-ubyte"), &bytes).unwrap();
    std::fs::copy(
        d.join("a-labels-idx1-ubyte"),
        d.join("bad-labels-idx1-ubyte"),
    )
    .unwrap();
    xai(d, &["eval", model, "--data", "bad-images-idx3-ubyte"])
        .expect_error(&["bad-images-idx3-ubyte", "magic"]);
    let bytes = std::fs::read(d.join("a-images-idx3-ubyte")).unwrap();
    std::fs::write(d.join("short-images-idx3-ubyte"), &bytes[..500]).unwrap();
    std::fs::copy(
        d.join("a-labels-idx1-ubyte"),
        d.join("short-labels-idx1-ubyte"),
    )
    .unwrap();
    xai(d, &["eval", model, "--data", "short-images-idx3-ubyte"])
        .expect_error(&["short-images-idx3-ubyte"]);
    // Labels outside the model's classes.
    write_idx_images(
        &d.join("l-images-idx3-ubyte"),
        2,
        28,
        28,
        &[0u8; 2 * 784],
        false,
    )
    .unwrap();
    write_idx_labels(&d.join("l-labels-idx1-ubyte"), &[1, 12], false).unwrap();
    xai(d, &["eval", model, "--data", "l-images-idx3-ubyte"])
        .expect_error(&["l-images-idx3-ubyte", "12"]);
    // Image folders: empty, corrupt PNG, wrong size without --resize.
    std::fs::create_dir_all(d.join("empty")).unwrap();
    xai(d, &["eval", model, "--data", "empty"]).expect_error(&["empty"]);
    std::fs::create_dir_all(d.join("corrupt/3")).unwrap();
    std::fs::write(d.join("corrupt/3/x.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    xai(d, &["eval", model, "--data", "corrupt"]).expect_error(&["x.png"]);
    std::fs::create_dir_all(d.join("sized/0")).unwrap();
    image::GrayImage::new(10, 12)
        .save(d.join("sized/0/small.png"))
        .unwrap();
    xai(d, &["eval", model, "--data", "sized"]).expect_error(&["small.png", "--resize"]);
    let r = xai(d, &["eval", model, "--data", "sized", "--resize"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn shipped_sample_needs_an_mnist_shaped_model() {
    let r = xai(
        &root(),
        &["eval", fixture("tiny_head.safetensors").to_str().unwrap()],
    );
    r.expect_error(&["--data", "1×9×7"]);
}

#[test]
fn unknown_flags_exit_2() {
    let r = xai(&root(), &["inspect", "--frobnicate"]);
    assert_eq!(r.code, 2);
}

#[test]
fn a_plans_every_mistake_is_reported_at_once_before_any_work() {
    let dir = tmp();
    let plan = fixture("plan-many-mistakes.toml");
    let model = root().join("assets/mnist_cnn.safetensors");
    let out = dir.path().join("r.json");
    let r = xai(
        dir.path(),
        &[
            "run",
            model.to_str().unwrap(),
            "--plan",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!out.exists(), "no report for a plan with mistakes");
    for needle in [
        "plan-many-mistakes.toml: 8 errors",
        // a misspelled key, with the nearest known one
        "attack[0] \"pgd\": `stpes` is not a known key for this kind",
        "did you mean `steps`?",
        // an entry with a mistake is still known by name; naming an ε
        // list says what it expanded to
        "attack[1] \"ens\": `members` \"pgd\" is an ε list: its entries are pgd@0.1, pgd@0.3",
        "attack[2] \"cw\": `kind` \"carlini\" is not a known kind",
        "stress[0] \"n\": `families` \"pink\" is not a known value",
        "attribution[0] \"ig\": `steps` must be at least 1, found 0",
        "attribution[0] \"ig\": `on` names \"pgd\", but \"pgd\" is an ε list",
        "unknown top-level key `seeds`",
        "did you mean `seed`?",
        "gates: `robust_accuracy.pgd`: no attack `pgd` in the plan",
    ] {
        assert!(
            r.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            r.stderr
        );
    }
}

/// `bench` on a colour image folder with the PGD budget given: ε 0 leaves
/// all 9 inputs right (the colour model reads each image's brightest
/// channel), ε 0.5 crosses every channel gap. It prints the digest of what
/// it attacked, defined as `benches/bench_inputs.py` computes it, the FLOP
/// count and the peak RSS.
#[test]
fn bench_takes_an_image_folder_and_the_pgd_budget() {
    use super::honest_data::{colour_folder, colour_model};
    use sha2::{Digest, Sha256};

    let dir = tmp();
    let d = dir.path();
    let classes = ["cat", "dog", "frog"];
    colour_model(&d.join("m.safetensors"), &classes, "");
    colour_folder(&d.join("imgs"), &classes);
    let bench = |eps: &str| {
        let r = xai(
            d,
            &[
                "bench",
                "m.safetensors",
                "--data",
                "imgs",
                "--steps",
                "5",
                "--eps",
                eps,
                "--step-size",
                "0.1",
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    let out = bench("0");
    assert!(out.contains("robust accuracy 100.00%"), "{out}");
    assert!(out.contains("PGD-5 L∞ (ε 0, step 0.1"), "{out}");
    assert!(out.contains("image folder imgs, 9×3×2×2"), "{out}");
    // 3×3 multiply-adds per forward; 5 × (forward + input gradient) + 1.
    assert!(
        out.contains("0.0000 MFLOP per forward, 0.0002 MFLOP per image"),
        "{out}"
    );
    assert!(out.contains("peak RSS "), "{out}");
    // Pixels as little-endian f32 (class folders in order, each image's
    // planes R, G, B of 4 pixels), then labels as little-endian u32.
    let mut hasher = Sha256::new();
    for px in [[220u8, 10, 10], [10, 220, 10], [10, 10, 220]] {
        for _ in 0..3 {
            for v in px {
                for _ in 0..4 {
                    hasher.update((f32::from(v) / 255.0).to_le_bytes());
                }
            }
        }
    }
    for label in [0u32, 0, 0, 1, 1, 1, 2, 2, 2] {
        hasher.update(label.to_le_bytes());
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(out.contains(&format!("inputs sha256 {digest}")), "{out}");

    let out = bench("0.5");
    assert!(out.contains("robust accuracy 0.00%"), "{out}");

    let r = xai(
        d,
        &["bench", "m.safetensors", "--data", "imgs", "--eps=-0.1"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("eps must be a finite number ≥ 0, got -0.1"),
        "{}",
        r.stderr
    );
}

/// `convert` writes a v1 model as a self-describing v2 file computing the
/// same function; `inspect --spec` prints that v2 spec.
#[test]
fn convert_writes_a_v2_file_with_the_same_logits() {
    let dir = tmp();
    let out = dir.path().join("resnet_v2.safetensors");
    let r = xai(
        &root(),
        &[
            "convert",
            "assets/mnist_resnet.safetensors",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("spec version 2 (18 nodes)"),
        "{}",
        r.stdout
    );
    let a = xai_audit::model::load_model(&root().join("assets/mnist_resnet.safetensors"), None)
        .unwrap();
    let b = xai_audit::model::load_model(&out, None).unwrap();
    assert_eq!(b.spec_source, xai_audit::model::load::SpecSource::Metadata);
    assert!(b.unused.is_empty(), "{:?}", b.unused);
    assert_eq!(a.network.spec().nodes, b.network.spec().nodes);
    let data = xai_audit::data::shipped_sample(&Default::default()).unwrap();
    let x = xai_audit::data::batch::batch_tensor(&data, 0, 16, (0.0, 1.0)).unwrap();
    use xai_audit::model::Classifier;
    let (la, lb) = (a.network.logits(&x).unwrap(), b.network.logits(&x).unwrap());
    let diff: f32 = (la - lb)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(diff, 0.0);
    let r = xai(&root(), &["inspect", out.to_str().unwrap(), "--spec"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let spec = xai_audit::model::ArchSpec::from_json(&r.stdout, "stdout").unwrap();
    assert_eq!(&spec, b.network.spec());
}

/// `--classes FILE` and `--input-range` replace the spec's.
#[test]
fn class_names_and_input_range_from_the_command_line() {
    let dir = tmp();
    let names = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let file = dir.path().join("digits.txt");
    std::fs::write(&file, format!("{}\n\n", names.join("\n  "))).unwrap();
    let r = xai(
        &root(),
        &[
            "inspect",
            "assets/mnist_cnn.safetensors",
            "--classes",
            file.to_str().unwrap(),
            "--input-range",
            "-1,1",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("in [-1, 1]"), "{}", r.stdout);
    assert!(r.stdout.contains(&names.join(", ")), "{}", r.stdout);
}

/// The contents decide the format, not the name: an ONNX model saved as
/// `model.bin` loads as ONNX, and a safetensors file named `.onnx` as
/// safetensors, each exactly as under its proper name.
#[test]
fn a_models_format_is_read_from_its_contents() {
    let dir = tmp();
    let onnx = root().join("tests/fixtures/onnx/depthwise.opset17.onnx");
    std::fs::copy(&onnx, dir.path().join("model.bin")).unwrap();
    std::fs::copy(&onnx, dir.path().join("model.onnx")).unwrap();
    let st = root().join("assets/mnist_mlp.safetensors");
    std::fs::copy(&st, dir.path().join("mlp.onnx")).unwrap();
    std::fs::copy(&st, dir.path().join("mlp.safetensors")).unwrap();
    for (renamed, proper, needle) in [
        ("model.bin", "model.onnx", "the ONNX graph"),
        ("mlp.onnx", "mlp.safetensors", "safetensors metadata"),
    ] {
        let a = xai(dir.path(), &["inspect", renamed]);
        let b = xai(dir.path(), &["inspect", proper]);
        assert_eq!(a.code, 0, "{renamed}: {}", a.stderr);
        assert!(a.stdout.contains(needle), "{renamed}: {}", a.stdout);
        assert_eq!(
            a.stdout.replace(renamed, proper),
            b.stdout,
            "{renamed} and {proper} differ"
        );
    }
}

/// The subcommands, as `xai-audit --help` lists them.
fn subcommands() -> Vec<String> {
    let help = xai(&root(), &["--help"]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    help.stdout
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect()
}

#[test]
fn every_help_has_examples_of_its_own_subcommand() {
    let subcommands = subcommands();
    for expected in [
        "run", "merge", "eval", "inspect", "convert", "tui", "diff", "schema", "bench", "kinds",
    ] {
        assert!(subcommands.iter().any(|s| s == expected), "{subcommands:?}");
    }
    let top = xai(&root(), &["--help"]).stdout;
    assert!(
        top.contains("\nExamples:\n") && top.contains("\n  xai-audit run "),
        "{top}"
    );
    for sub in &subcommands {
        for flag in ["--help", "-h"] {
            let help = xai(&root(), &[sub, flag]);
            assert_eq!(help.code, 0, "{sub} {flag}: {}", help.stderr);
            let examples = help
                .stdout
                .split("\nExamples:\n")
                .nth(1)
                .unwrap_or_else(|| {
                    panic!("{sub} {flag} has no Examples section:\n{}", help.stdout)
                });
            let lines: Vec<&str> = examples.lines().filter(|l| !l.trim().is_empty()).collect();
            assert!(lines.len() >= 2, "{sub}: {examples}");
            let mine = format!("  xai-audit {sub}");
            for pair in lines.chunks(2) {
                assert!(pair[0].starts_with("  # "), "{sub}: {:?}", pair[0]);
                assert!(
                    pair.get(1).is_some_and(|c| c.starts_with(&mine)),
                    "{sub}: {pair:?}"
                );
            }
        }
    }
}

/// An option's paragraph in a subcommand's `--help`.
fn option_help(sub: &str, option: &str) -> String {
    let help = xai(&root(), &[sub, "--help"]).stdout;
    let start = help
        .find(&format!("      {option} "))
        .unwrap_or_else(|| panic!("{sub} --help lacks {option}:\n{help}"));
    help[start..].split("\n\n").next().unwrap().to_string()
}

/// Options that mean the same thing are worded the same everywhere, and
/// `merge` offers only the options it uses.
#[test]
fn shared_options_read_the_same_in_every_subcommand() {
    for option in ["--data", "--limit", "--labels", "--engine"] {
        let texts: Vec<(String, String)> = ["eval", "run", "merge", "bench"]
            .iter()
            .map(|sub| (sub.to_string(), option_help(sub, option)))
            .collect();
        for (sub, text) in &texts {
            // bench's --limit shows its default; the words are the same.
            let words = |t: &str| t.split("[default").next().unwrap().trim().to_string();
            assert_eq!(
                words(text),
                words(&texts[0].1),
                "{option}: {sub} differs from eval"
            );
        }
    }
    assert!(option_help("run", "--data").contains("one subfolder per class"));
    // An option's own line (its name may appear in the prose and examples).
    let lists = |help: &str, option: &str| help.contains(&format!("\n      {option}"));
    let merge = xai(&root(), &["merge", "--help"]).stdout;
    let run = xai(&root(), &["run", "--help"]).stdout;
    for option in ["--shard", "--resume"] {
        assert!(!lists(&merge, option), "merge --help lists {option}");
        assert!(lists(&run, option), "run --help lacks {option}");
    }
    assert!(lists(&merge, "--data") && lists(&merge, "--out"), "{merge}");
}

/// `(section, kind) → keys` of a `kinds` listing.
fn listed_kinds(text: &str) -> std::collections::BTreeMap<(String, String), Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    let (mut section, mut current) = (String::new(), None::<(String, String)>);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("[[") {
            section = rest.split("]]").next().unwrap().to_string();
            current = Some((section.clone(), "*".to_string()));
            out.insert(current.clone().unwrap(), Vec::new());
        } else if line.starts_with("  ") && !line.starts_with("   ") && line.contains(" = \"") {
            let kind = line.split('"').nth(1).unwrap().to_string();
            current = Some((section.clone(), kind));
            out.insert(current.clone().unwrap(), Vec::new());
        } else if line.starts_with("    ") && !line.starts_with("     ") {
            let key = line.split_whitespace().next().unwrap().to_string();
            if key != "(no" {
                out.get_mut(current.as_ref().unwrap()).unwrap().push(key);
            }
        }
    }
    out
}

/// `xai-audit kinds` lists every kind of the plan schema with every key of
/// its config (and each section's shared keys), and nothing else; a kind
/// its schema requires a key of says `required`.
#[test]
fn kinds_lists_every_kind_and_key_of_the_plan_schema() {
    let run = xai(&root(), &["kinds"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed = listed_kinds(&run.stdout);
    let schema: serde_json::Value =
        serde_json::from_str(&xai(&root(), &["schema", "--plan"]).stdout).unwrap();
    let defs = &schema["$defs"];
    let def = |r: &serde_json::Value| &defs[r.as_str().unwrap().trim_start_matches("#/$defs/")];
    let keys = |object: &serde_json::Value, skip: &str| -> Vec<String> {
        let mut k: Vec<String> = object["properties"]
            .as_object()
            .map(|p| p.keys().filter(|k| *k != skip).cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    let mut expected = std::collections::BTreeMap::new();
    for (section, entries) in schema["properties"].as_object().unwrap() {
        let Some(items) = entries.get("items") else {
            continue;
        };
        let family = def(&items["$ref"]);
        expected.insert((section.clone(), "*".to_string()), keys(family, ""));
        for variant in family["oneOf"].as_array().unwrap() {
            let (tag, kind) = variant["properties"]
                .as_object()
                .unwrap()
                .iter()
                .next()
                .unwrap();
            let kind = kind["const"].as_str().unwrap().to_string();
            expected.insert(
                (section.clone(), kind.clone()),
                keys(def(&variant["$ref"]), tag),
            );
            for required in variant["required"].as_array().unwrap() {
                let required = required.as_str().unwrap();
                if required != tag {
                    let block = run
                        .stdout
                        .split(&format!(" = \"{kind}\": "))
                        .nth(1)
                        .unwrap();
                    let row = block
                        .lines()
                        .find(|l| l.trim_start().starts_with(&format!("{required} ")))
                        .unwrap();
                    assert!(row.contains(" required "), "{kind}: {row}");
                }
            }
        }
    }
    let mut listed_sorted = listed.clone();
    for keys in listed_sorted.values_mut() {
        keys.sort();
    }
    assert_eq!(
        expected.len(),
        4 + xai_audit::attack::KINDS.len() + xai_audit::attribution::METHODS.len() + 4 + 5,
        "{:?}",
        expected.keys()
    );
    assert_eq!(listed_sorted, expected);

    let one = xai(&root(), &["kinds", "grad_cam"]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    let one = listed_kinds(&one.stdout);
    assert_eq!(
        one.keys().cloned().collect::<Vec<_>>(),
        [
            ("attribution".to_string(), "*".to_string()),
            ("attribution".to_string(), "grad_cam".to_string())
        ]
    );
    xai(&root(), &["kinds", "gradcam"]).expect_error(&["`gradcam`", "did you mean `grad_cam`?"]);
}
