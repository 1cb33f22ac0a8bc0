//! The bad-input battery: every malformed model, spec, data set, plan, output
//! location and report the pipelines issue lists, each driven through the
//! real binary. Every case must exit with code 2, name the culprit (file,
//! tensor, layer, field or key) on stderr, never panic, and leave nothing in
//! the output folder — no report, no sidecar, no temporary file.

use std::path::Path;

use super::cli::{npy_bytes, raw_safetensors, MLP_SPEC};
use super::honest_data::{colour_folder, colour_model, write_model};
use super::{root, xai};

/// One bad input: a name, how to make it in a fresh folder, the arguments,
/// and what stderr must contain.
struct Case {
    name: &'static str,
    setup: fn(&Path),
    args: &'static [&'static str],
    needles: &'static [&'static str],
}

const MLP: &str = "mlp.safetensors";

fn copy_asset(dir: &Path, asset: &str, to: &str) {
    std::fs::copy(root().join(asset), dir.join(to)).unwrap();
}

fn shipped_mlp(dir: &Path) {
    copy_asset(dir, "assets/mnist_mlp.safetensors", MLP);
}

fn quick_plan(dir: &Path) {
    copy_asset(dir, "attacks/quick.toml", "quick.toml");
}

fn plan(dir: &Path, text: &str) {
    shipped_mlp(dir);
    std::fs::write(dir.join("p.toml"), text).unwrap();
}

/// A 2→2 linear model whose spec sits in the file's metadata.
fn tiny_model(dir: &Path, name: &str, weights: [f32; 4]) {
    let header = r#"{"__metadata__": {"xai_audit.arch": "{\"version\": 1, \"input\": {\"shape\": [1, 1, 2]}, \"layers\": [{\"op\": \"flatten\"}, {\"op\": \"linear\", \"param\": \"fc\", \"in_features\": 2, \"out_features\": 2, \"bias\": false}]}"}, "fc.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}"#;
    let data: Vec<u8> = weights.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw_safetensors(&dir.join(name), header, &data);
}

/// An ONNX fixture as `m.onnx` with its first initializer's data moved to
/// `location` (declared `length` bytes when given); the data file is
/// written beside it when `write`.
fn external_onnx(dir: &Path, location: &str, length: Option<usize>, write: bool) {
    use prost::Message;
    use xai_audit::model::onnx::proto::{ModelProto, StringStringEntryProto};
    let bytes = std::fs::read(root().join("tests/fixtures/onnx/residual.opset17.onnx")).unwrap();
    let mut model = ModelProto::decode(bytes.as_slice()).unwrap();
    let t = &mut model.graph.as_mut().unwrap().initializer[0];
    let data = t.raw_data.take().unwrap_or_else(|| {
        t.float_data
            .drain(..)
            .flat_map(|v| v.to_le_bytes())
            .collect()
    });
    let entry = |k: &str, v: String| StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v),
    };
    t.data_location = Some(1);
    t.external_data = vec![
        entry("location", location.into()),
        entry("offset", "0".into()),
        entry("length", length.unwrap_or(data.len()).to_string()),
    ];
    if write {
        std::fs::write(dir.join(location), &data).unwrap();
    }
    std::fs::write(dir.join("m.onnx"), model.encode_to_vec()).unwrap();
}

/// The MLP fixture with its spec rewritten by `edit`, passed as `--arch s.json`.
fn mlp_with_spec(dir: &Path, spec: &str) {
    copy_asset(dir, "tests/fixtures/mlp.safetensors", "m.safetensors");
    std::fs::write(dir.join("s.json"), spec).unwrap();
}

fn idx_pair(dir: &Path, stem: &str, n: usize, labels: &[u8]) {
    xai_audit::data::write_idx_images(
        &dir.join(format!("{stem}-images-idx3-ubyte")),
        n,
        28,
        28,
        &vec![0u8; n * 784],
        false,
    )
    .unwrap();
    xai_audit::data::write_idx_labels(
        &dir.join(format!("{stem}-labels-idx1-ubyte")),
        labels,
        false,
    )
    .unwrap();
}

fn png(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::new(w, h).save(path).unwrap();
}

/// The example report, and a copy claiming a newer schema version.
fn newer_report(dir: &Path) {
    copy_asset(dir, "reports/examples/mnist_cnn-quick.json", "old.json");
    copy_asset(
        dir,
        "reports/examples/mnist_cnn-quick.safetensors",
        "old.safetensors",
    );
    let text = std::fs::read_to_string(dir.join("old.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["schema_version"] = 99.into();
    std::fs::write(dir.join("newer.json"), v.to_string()).unwrap();
}

/// A zip archive at `dir/name` holding `entries` (stored, as torch.save
/// writes them).
fn zip_file(dir: &Path, name: &str, entries: &[(&str, &[u8])]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(dir.join(name)).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (entry, bytes) in entries {
        zip.start_file(*entry, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// The first bytes of an HDF5 file (its signature and a superblock start),
/// then `body`.
fn hdf5(dir: &Path, name: &str, body: &[u8]) {
    let mut bytes = b"\x89HDF\r\n\x1a\n\x00\x00\x00\x00\x00\x08\x08\x00".to_vec();
    bytes.extend_from_slice(&[0u8; 48]);
    bytes.extend_from_slice(body);
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn cases() -> Vec<Case> {
    vec![
        // Files of other formats given as the model: each says what it is
        // and how to convert it. The PyTorch ones are real torch.save and
        // torch.jit.save output (tests/fixtures/filetypes/make.py).
        Case {
            name: "PyTorch zip checkpoint holding a state_dict",
            setup: |d| copy_asset(d, "tests/fixtures/filetypes/state_dict.pt", "ckpt.pt"),
            args: &["run", "ckpt.pt"],
            needles: &[
                "ckpt.pt: is a PyTorch checkpoint",
                "state_dict/data.pkl",
                "holding a state_dict",
                "model.load_state_dict(torch.load(\"ckpt.pt\"))",
                "torch.onnx.export(model.eval(), torch.rand(1, C, H, W), \"ckpt.onnx\")",
                "examples/export_pytorch.py",
                "help: then audit the converted file: xai-audit run ckpt.onnx",
            ],
        },
        Case {
            name: "PyTorch zip checkpoint holding a whole pickled model",
            setup: |d| copy_asset(d, "tests/fixtures/filetypes/whole_model.pth", "net.pth"),
            args: &["eval", "net.pth"],
            needles: &[
                "net.pth: is a PyTorch checkpoint",
                "whole pickled model (torch.nn.modules.container.Sequential)",
                "model = torch.load(\"net.pth\", weights_only=False)",
                "xai-audit run net.onnx",
            ],
        },
        Case {
            name: "training checkpoint (weights under state_dict)",
            setup: |d| copy_asset(d, "tests/fixtures/filetypes/lightning.ckpt", "last.ckpt"),
            args: &["inspect", "last.ckpt"],
            needles: &[
                "last.ckpt: is a PyTorch checkpoint",
                "training checkpoint, its weights under `state_dict`",
                "torch.load(\"last.ckpt\")[\"state_dict\"]",
            ],
        },
        Case {
            name: "PyTorch checkpoint in the format before 1.6",
            setup: |d| copy_asset(d, "tests/fixtures/filetypes/legacy.pt", "old.pt"),
            args: &["run", "old.pt"],
            needles: &[
                "old.pt: is a PyTorch checkpoint (torch.save's format before PyTorch 1.6)",
                "holding a state_dict",
                "torch.onnx.export",
            ],
        },
        Case {
            name: "TorchScript archive",
            setup: |d| copy_asset(d, "tests/fixtures/filetypes/torchscript.pt", "traced.pt"),
            args: &["convert", "traced.pt", "-o", "out/m.safetensors"],
            needles: &[
                "traced.pt: is a TorchScript archive",
                "model = torch.jit.load(\"traced.pt\")",
                "\"traced.onnx\"",
            ],
        },
        Case {
            name: "a Python pickle (protocol 4)",
            setup: |d| {
                std::fs::write(
                    d.join("model.pkl"),
                    b"\x80\x04\x95\x0a\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.",
                )
                .unwrap()
            },
            args: &["run", "model.pkl"],
            needles: &["model.pkl: is a Python pickle", "torch.onnx.export"],
        },
        Case {
            name: "Keras HDF5 model",
            setup: |d| hdf5(d, "model.h5", b"keras_version\x002.15.0\x00model_config"),
            args: &["run", "model.h5"],
            needles: &[
                "model.h5: is a Keras model in HDF5",
                "python -m tf2onnx.convert --keras model.h5 --output model.onnx",
                "xai-audit run model.onnx",
            ],
        },
        Case {
            name: "HDF5 file without Keras' attributes",
            setup: |d| hdf5(d, "weights.hdf5", b""),
            args: &["inspect", "weights.hdf5"],
            needles: &["weights.hdf5: is an HDF5 file", "tf2onnx.convert --keras"],
        },
        Case {
            name: "Keras 3 .keras file",
            setup: |d| {
                zip_file(
                    d,
                    "clf.keras",
                    &[
                        ("metadata.json", b"{\"keras_version\": \"3.3.3\"}"),
                        ("config.json", b"{}"),
                        ("model.weights.h5", b"\x89HDF\r\n\x1a\n"),
                    ],
                )
            },
            args: &["run", "clf.keras"],
            needles: &[
                "clf.keras: is a Keras 3 model",
                "keras.models.load_model(\"clf.keras\").export(\"clf.savedmodel\")",
                "python -m tf2onnx.convert --saved-model clf.savedmodel --output clf.onnx",
            ],
        },
        Case {
            name: "TensorFlow SavedModel directory",
            setup: |d| {
                std::fs::create_dir_all(d.join("export/variables")).unwrap();
                std::fs::write(d.join("export/saved_model.pb"), b"\x08\x01\x12\x00").unwrap();
            },
            args: &["run", "export"],
            needles: &[
                "export: is a TensorFlow SavedModel",
                "python -m tf2onnx.convert --saved-model export --output export.onnx",
            ],
        },
        Case {
            name: "TensorFlow Lite model",
            setup: |d| std::fs::write(d.join("m.tflite"), b"\x1c\x00\x00\x00TFL3\x00\x00").unwrap(),
            args: &["eval", "m.tflite"],
            needles: &[
                "m.tflite: is a TensorFlow Lite model",
                "--tflite m.tflite --output m.onnx",
            ],
        },
        Case {
            name: "a NumPy array given as the model",
            setup: |d| std::fs::write(d.join("x.npy"), npy_bytes("|u1", &[2, 2], &[0; 4])).unwrap(),
            args: &["run", "x.npy"],
            needles: &[
                "x.npy: is a NumPy array (.npy)",
                "help: give it as the data: xai-audit run MODEL --data x.npy --labels LABELS.npy",
            ],
        },
        Case {
            name: "a NumPy archive given as the model",
            setup: |d| {
                let x = npy_bytes("|u1", &[2, 2], &[0; 4]);
                let y = npy_bytes("|u1", &[2], &[0; 2]);
                zip_file(d, "data.npz", &[("x.npy", &x), ("y.npy", &y)]);
            },
            args: &["inspect", "data.npz"],
            needles: &["data.npz: is a NumPy archive", "--data data.npz"],
        },
        Case {
            name: "some other zip archive",
            setup: |d| {
                zip_file(
                    d,
                    "bundle.zip",
                    &[("readme.txt", b"hi"), ("w.bin", b"\x00")],
                )
            },
            args: &["run", "bundle.zip"],
            needles: &["bundle.zip: is a zip archive (2 entries: readme.txt, w.bin)"],
        },
        Case {
            name: "a truncated zip archive",
            setup: |d| std::fs::write(d.join("cut.pt"), b"PK\x03\x04\x14\x00\x00\x00").unwrap(),
            args: &["run", "cut.pt"],
            needles: &["cut.pt: is a zip archive that cannot be read"],
        },
        Case {
            name: "a gzip-compressed model",
            setup: |d| {
                std::fs::write(d.join("m.safetensors.gz"), b"\x1f\x8b\x08\x00\x00\x00").unwrap()
            },
            args: &["run", "m.safetensors.gz"],
            needles: &["m.safetensors.gz: is a gzip-compressed file", "gunzip"],
        },
        Case {
            name: "a Git LFS pointer instead of the weights",
            setup: |d| {
                std::fs::write(
                    d.join(MLP),
                    "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 1078320\n",
                )
                .unwrap()
            },
            args: &["run", MLP],
            needles: &[MLP, "Git LFS pointer", "git lfs pull"],
        },
        Case {
            name: "an HTML page saved as the model",
            setup: |d| std::fs::write(d.join(MLP), "<!DOCTYPE html>\n<html><body>").unwrap(),
            args: &["run", MLP],
            needles: &[MLP, "an HTML page"],
        },
        Case {
            name: "unrecognized bytes",
            setup: |d| {
                std::fs::write(d.join("m.safetensors"), b"GIF89a\x01\x00\x01\x00\x80\x00").unwrap()
            },
            args: &["run", "m.safetensors"],
            needles: &[
                "m.safetensors: not a safetensors or ONNX file",
                "first bytes: 47 49 46 38 39 61",
                "\"GIF89a",
            ],
        },
        Case {
            name: "a folder without a model file",
            setup: |d| std::fs::create_dir_all(d.join("weights")).unwrap(),
            args: &["run", "weights"],
            needles: &["weights: is a directory", ".safetensors or .onnx file"],
        },
        Case {
            name: "a folder holding the model file",
            setup: |d| {
                std::fs::create_dir_all(d.join("hub")).unwrap();
                copy_asset(d, "assets/mnist_mlp.safetensors", "hub/model.safetensors");
            },
            args: &["run", "hub"],
            needles: &["hub: is a directory", "hub/model.safetensors"],
        },
        // Model files.
        Case {
            name: "model file missing",
            setup: |_| {},
            args: &["run", "absent.safetensors"],
            needles: &["absent.safetensors"],
        },
        Case {
            name: "truncated safetensors",
            setup: |d| {
                let bytes = std::fs::read(root().join("assets/mnist_mlp.safetensors")).unwrap();
                std::fs::write(d.join(MLP), &bytes[..bytes.len() / 2]).unwrap();
            },
            args: &["run", MLP],
            needles: &[MLP, "truncated"],
        },
        Case {
            name: "file shorter than the 8-byte header length",
            setup: |d| std::fs::write(d.join(MLP), b"\x10\x00").unwrap(),
            args: &["run", MLP],
            needles: &[MLP, "8-byte header"],
        },
        Case {
            name: "header length beyond the file size",
            setup: |d| {
                let mut bytes = 1_000_000u64.to_le_bytes().to_vec();
                bytes.extend_from_slice(b"{}");
                std::fs::write(d.join(MLP), bytes).unwrap();
            },
            args: &["run", MLP],
            needles: &[MLP, "header length"],
        },
        Case {
            name: "header that is not JSON",
            setup: |d| raw_safetensors(&d.join(MLP), "this is not json", &[]),
            args: &["run", MLP],
            needles: &[MLP, "not valid safetensors JSON"],
        },
        Case {
            name: "overlapping tensor offsets",
            setup: |d| {
                let h = r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#;
                raw_safetensors(&d.join(MLP), h, &[0u8; 12]);
            },
            args: &["run", MLP],
            needles: &[MLP, "offsets"],
        },
        Case {
            name: "tensor offsets past the data",
            setup: |d| {
                let h = r#"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#;
                raw_safetensors(&d.join(MLP), h, &[0u8; 8]);
            },
            args: &["run", MLP],
            needles: &[MLP, "shorter than the header says"],
        },
        Case {
            name: "NaN weights (refused)",
            setup: |d| tiny_model(d, "nan.safetensors", [1.0, f32::NAN, 0.5, 2.0]),
            args: &["run", "nan.safetensors"],
            needles: &["nan.safetensors", "fc.weight", "non-finite"],
        },
        Case {
            name: "infinite weights (refused)",
            setup: |d| tiny_model(d, "inf.safetensors", [1.0, 0.0, f32::INFINITY, 2.0]),
            args: &["run", "inf.safetensors"],
            needles: &["inf.safetensors", "fc.weight", "non-finite"],
        },
        // Specs.
        Case {
            name: "spec missing (no metadata, no .arch.json)",
            setup: |d| {
                copy_asset(
                    d,
                    "tests/fixtures/mlp_nometa.safetensors",
                    "bare.safetensors",
                )
            },
            args: &["run", "bare.safetensors"],
            needles: &["bare.safetensors", "spec"],
        },
        Case {
            name: "spec file missing",
            setup: shipped_mlp,
            args: &["run", MLP, "--arch", "absent.json"],
            needles: &["absent.json"],
        },
        Case {
            name: "one-output spec naming 3 classes",
            setup: |d| {
                let header = r#"{"__metadata__": {"xai_audit.arch": "{\"version\": 1, \"input\": {\"shape\": [1, 1, 2]}, \"classes\": [\"a\", \"b\", \"c\"], \"layers\": [{\"op\": \"flatten\"}, {\"op\": \"linear\", \"param\": \"fc\", \"in_features\": 2, \"out_features\": 1, \"bias\": false}]}"}, "fc.weight": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]}}"#;
                let data: Vec<u8> = [0.5f32, -0.5]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                raw_safetensors(&d.join("one.safetensors"), header, &data);
            },
            args: &["run", "one.safetensors"],
            needles: &["one.safetensors", "`classes` names 3", "name its 2 classes"],
        },
        Case {
            name: "spec not JSON",
            setup: |d| mlp_with_spec(d, "{ not json"),
            args: &["run", "m.safetensors", "--arch", "s.json"],
            needles: &["s.json", "not valid JSON"],
        },
        Case {
            name: "class-name file with the wrong count",
            setup: |d| {
                shipped_mlp(d);
                std::fs::write(d.join("classes.txt"), "cat\ndog\nbird\n").unwrap();
            },
            args: &["run", MLP, "--classes", "classes.txt"],
            needles: &["classes.txt", "names 3 classes", "outputs 10"],
        },
        Case {
            name: "class-name file naming a class twice",
            setup: |d| {
                shipped_mlp(d);
                std::fs::write(d.join("classes.txt"), "a\nb\na\n").unwrap();
            },
            args: &["eval", MLP, "--classes", "classes.txt"],
            needles: &["classes.txt", "`a` appears twice"],
        },
        Case {
            name: "missing class-name file",
            setup: shipped_mlp,
            args: &["run", MLP, "--classes", "nowhere.txt"],
            needles: &["nowhere.txt"],
        },
        Case {
            name: "input range upside down",
            setup: shipped_mlp,
            args: &["run", MLP, "--input-range", "1,0"],
            needles: &["--input-range", "LO < HI"],
        },
        Case {
            name: "v2 spec whose node reads a node that does not exist",
            setup: |d| {
                mlp_with_spec(
                    d,
                    r#"{"version": 2, "input": {"shape": [1, 28, 28]}, "nodes": [
                    {"name": "flat", "op": "flatten"},
                    {"name": "fc1", "op": "linear", "param": "fc1", "in_features": 784, "out_features": 32},
                    {"name": "act", "op": "relu", "inputs": ["fc9"]},
                    {"name": "fc2", "op": "linear", "param": "fc2", "in_features": 32, "out_features": 10}]}"#,
                )
            },
            args: &["run", "m.safetensors", "--arch", "s.json"],
            needles: &["s.json", "`act`", "`fc9` names no node"],
        },
        Case {
            name: "random_resize_pad with min_size above max_size",
            setup: |d| {
                mlp_with_spec(
                    d,
                    &MLP_SPEC.replace(
                        r#"{"op": "flatten"}"#,
                        r#"{"op": "random_resize_pad", "min_size": 30, "max_size": 20}, {"op": "flatten"}"#,
                    ),
                )
            },
            args: &["run", "m.safetensors", "--arch", "s.json"],
            needles: &[
                "s.json",
                "layer 0 (random_resize_pad)",
                "min_size ≤ max_size",
                "30",
                "20",
            ],
        },
        Case {
            name: "random_resize_pad larger than its canvas",
            setup: |d| {
                mlp_with_spec(
                    d,
                    &MLP_SPEC.replace(
                        r#"{"op": "flatten"}"#,
                        r#"{"op": "random_resize_pad", "min_size": 20, "max_size": 30}, {"op": "flatten"}"#,
                    ),
                )
            },
            args: &["run", "m.safetensors", "--arch", "s.json"],
            needles: &[
                "s.json",
                "layer 0 (random_resize_pad)",
                "height 30",
                "does not fit",
            ],
        },
        Case {
            name: "active dropout that drops everything",
            setup: |d| {
                mlp_with_spec(
                    d,
                    &MLP_SPEC.replace(
                        r#"{"op": "relu"}"#,
                        r#"{"op": "relu"}, {"op": "dropout", "p": 1.0, "active": true}"#,
                    ),
                )
            },
            args: &["run", "m.safetensors", "--arch", "s.json"],
            needles: &[
                "s.json",
                "layer 3 (dropout)",
                "p must lie in [0, 1)",
                "found 1",
            ],
        },
        Case {
            name: "spec from a newer version",
            setup: |d| mlp_with_spec(d, &MLP_SPEC.replace("\"version\": 1", "\"version\": 3")),
            args: &["run", "m.safetensors", "--arch", "s.json"],
            needles: &["s.json", "newer"],
        },
        Case {
            name: "spec with an unknown op",
            setup: |d| mlp_with_spec(d, &MLP_SPEC.replace("\"relu\"", "\"mish\"")),
            args: &["run", "m.safetensors", "--arch", "s.json"],
            needles: &["s.json", "layers[2]", "unknown op `mish`"],
        },
        Case {
            name: "spec with an unknown key",
            setup: |d| {
                let spec =
                    MLP_SPEC.replace("\"out_features\": 32", "\"out_features\": 32, \"act\": 1");
                mlp_with_spec(d, &spec)
            },
            args: &["run", "m.safetensors", "--arch", "s.json"],
            needles: &["s.json", "layers[1]", "act"],
        },
        Case {
            name: "spec shape differs from the weights",
            setup: |d| {
                let spec = MLP_SPEC
                    .replace("\"out_features\": 32}", "\"out_features\": 40}")
                    .replace("\"in_features\": 32", "\"in_features\": 40");
                mlp_with_spec(d, &spec)
            },
            args: &["run", "m.safetensors", "--arch", "s.json"],
            needles: &[
                "layer 1 (linear fc1)",
                "fc1.weight",
                "[32, 784]",
                "[40, 784]",
            ],
        },
        Case {
            name: "spec names a tensor the file lacks",
            setup: |d| mlp_with_spec(d, &MLP_SPEC.replace("\"fc2\"", "\"head\"")),
            args: &["run", "m.safetensors", "--arch", "s.json"],
            needles: &["head.weight", "missing"],
        },
        // Data.
        Case {
            name: "data path missing",
            setup: shipped_mlp,
            args: &["run", MLP, "--data", "nowhere"],
            needles: &["nowhere"],
        },
        Case {
            name: "empty image folder",
            setup: |d| {
                shipped_mlp(d);
                std::fs::create_dir_all(d.join("empty")).unwrap();
            },
            args: &["run", MLP, "--data", "empty"],
            needles: &["empty"],
        },
        Case {
            name: "corrupt PNG",
            setup: |d| {
                shipped_mlp(d);
                std::fs::create_dir_all(d.join("imgs/3")).unwrap();
                std::fs::write(d.join("imgs/3/x.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
            },
            args: &["run", MLP, "--data", "imgs"],
            needles: &["x.png"],
        },
        Case {
            name: "non-image file in a class folder",
            setup: |d| {
                shipped_mlp(d);
                png(&d.join("imgs/0/a.png"), 28, 28);
                std::fs::write(d.join("imgs/0/notes.png"), "just some text").unwrap();
            },
            args: &["run", MLP, "--data", "imgs"],
            needles: &["notes.png"],
        },
        Case {
            name: "images of mixed sizes without --resize",
            setup: |d| {
                shipped_mlp(d);
                png(&d.join("imgs/0/a.png"), 28, 28);
                png(&d.join("imgs/1/b.png"), 10, 12);
            },
            args: &["run", MLP, "--data", "imgs"],
            needles: &["b.png", "--resize"],
        },
        Case {
            name: "wrong input channel count (spec input vs first conv)",
            setup: |d| {
                let spec = r#"{\"version\": 1, \"input\": {\"shape\": [3, 8, 8]}, \"layers\": [{\"op\": \"conv2d\", \"param\": \"c\", \"in_channels\": 1, \"out_channels\": 2, \"kernel_size\": 3}, {\"op\": \"flatten\"}, {\"op\": \"linear\", \"param\": \"fc\", \"in_features\": 72, \"out_features\": 2}]}"#;
                let header = format!(
                    r#"{{"__metadata__": {{"xai_audit.arch": "{spec}"}}, "c.weight": {{"dtype": "F32", "shape": [2, 1, 3, 3], "data_offsets": [0, 72]}}, "c.bias": {{"dtype": "F32", "shape": [2], "data_offsets": [72, 80]}}, "fc.weight": {{"dtype": "F32", "shape": [2, 72], "data_offsets": [80, 656]}}, "fc.bias": {{"dtype": "F32", "shape": [2], "data_offsets": [656, 664]}}}}"#
                );
                raw_safetensors(&d.join("rgb.safetensors"), &header, &[0u8; 664]);
            },
            args: &["run", "rgb.safetensors"],
            needles: &["rgb.safetensors", "layer 0", "1 input channels", "3"],
        },
        Case {
            name: "IDX with a bad magic number",
            setup: |d| {
                shipped_mlp(d);
                idx_pair(d, "bad", 2, &[1, 2]);
                let path = d.join("bad-images-idx3-ubyte");
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[3] = 0x01;
                std::fs::write(&path, bytes).unwrap();
            },
            args: &["run", MLP, "--data", "bad-images-idx3-ubyte"],
            needles: &["bad-images-idx3-ubyte", "magic"],
        },
        Case {
            name: "IDX shorter than its header says",
            setup: |d| {
                shipped_mlp(d);
                idx_pair(d, "short", 2, &[1, 2]);
                let path = d.join("short-images-idx3-ubyte");
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..500]).unwrap();
            },
            args: &["run", MLP, "--data", "short-images-idx3-ubyte"],
            needles: &["short-images-idx3-ubyte"],
        },
        Case {
            name: "IDX labels file missing",
            setup: |d| {
                shipped_mlp(d);
                idx_pair(d, "lone", 2, &[1, 2]);
                std::fs::remove_file(d.join("lone-labels-idx1-ubyte")).unwrap();
            },
            args: &["run", MLP, "--data", "lone-images-idx3-ubyte"],
            needles: &["lone-labels-idx1-ubyte"],
        },
        Case {
            name: "labels outside the model's classes",
            setup: |d| {
                shipped_mlp(d);
                idx_pair(d, "l", 2, &[1, 12]);
            },
            args: &["run", MLP, "--data", "l-images-idx3-ubyte"],
            needles: &["l-images-idx3-ubyte", "12"],
        },
        Case {
            name: "image folder class the model's spec does not name",
            setup: |d| {
                colour_model(&d.join("m.safetensors"), &["cat", "dog", "frog"], "");
                colour_folder(&d.join("imgs"), &["cat", "dog", "horse"]);
            },
            args: &["run", "m.safetensors", "--data", "imgs"],
            needles: &["imgs", "`horse`", "cat, dog, frog"],
        },
        Case {
            name: "more class folders than an unnamed model's outputs",
            setup: |d| {
                colour_model(&d.join("m.safetensors"), &["cat", "dog", "frog"], "");
                let file =
                    xai_audit::model::load::WeightsFile::read(&d.join("m.safetensors")).unwrap();
                let spec = file.metadata["xai_audit.arch"]
                    .replace(r#""classes": ["cat", "dog", "frog"], "#, "");
                std::fs::write(d.join("u.json"), spec).unwrap();
                colour_folder(&d.join("imgs"), &["a", "b", "c", "d"]);
            },
            args: &["run", "m.safetensors", "--arch", "u.json", "--data", "imgs"],
            needles: &["imgs", "4 class folders", "3 classes", "`d`"],
        },
        // Weights whose names need help.
        Case {
            name: "DataParallel-prefixed weights without --strip-prefix",
            setup: |d| {
                colour_model(&d.join("m.safetensors"), &["cat", "dog", "frog"], "module.");
                colour_folder(&d.join("imgs"), &["cat", "dog", "frog"]);
            },
            args: &["run", "m.safetensors", "--data", "imgs"],
            needles: &[
                "m.safetensors",
                "`module.fc.weight`",
                "--strip-prefix module.",
            ],
        },
        Case {
            name: "tensor names that clash once the prefix is stripped",
            setup: |d| {
                colour_model(&d.join("c.safetensors"), &["cat", "dog", "frog"], "");
                let file =
                    xai_audit::model::load::WeightsFile::read(&d.join("c.safetensors")).unwrap();
                let spec = file.metadata["xai_audit.arch"].clone();
                let eye = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
                write_model(
                    &d.join("m.safetensors"),
                    &[
                        ("fc.weight", eye.clone(), vec![3, 3]),
                        ("module.fc.weight", eye, vec![3, 3]),
                    ],
                    &[("xai_audit.arch", &spec)],
                );
                colour_folder(&d.join("imgs"), &["cat"]);
            },
            args: &[
                "run",
                "m.safetensors",
                "--data",
                "imgs",
                "--strip-prefix",
                "module.",
            ],
            needles: &["m.safetensors", "`module.fc.weight` and `fc.weight`"],
        },
        Case {
            name: "metadata alias to a tensor the file lacks",
            setup: |d| {
                colour_model(&d.join("c.safetensors"), &["cat", "dog", "frog"], "");
                let file =
                    xai_audit::model::load::WeightsFile::read(&d.join("c.safetensors")).unwrap();
                let spec = file.metadata["xai_audit.arch"].clone();
                write_model(
                    &d.join("m.safetensors"),
                    &[("other.weight", vec![0.0; 9], vec![3, 3])],
                    &[("xai_audit.arch", &spec), ("fc.weight", "fc2.weight")],
                );
            },
            args: &["run", "m.safetensors", "--data", "imgs"],
            needles: &["m.safetensors", "fc.weight", "missing"],
        },
        // Plans.
        Case {
            name: "plan file missing",
            setup: shipped_mlp,
            args: &["run", MLP, "--plan", "absent.toml"],
            needles: &["absent.toml"],
        },
        Case {
            name: "plan not TOML",
            setup: |d| plan(d, "[[attack]\nname ="),
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml"],
        },
        Case {
            name: "plan with an unknown attack kind",
            setup: |d| {
                plan(
                    d,
                    "[[attack]]\nname = \"a\"\nkind = \"carlini\"\neps = 0.1\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`kind`", "carlini"],
        },
        Case {
            name: "plan with an unknown key",
            setup: |d| {
                plan(
                    d,
                    "[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = 0.1\nstep = 0.1\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`step`"],
        },
        Case {
            name: "plan with an unknown attribution sanity test",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\nsanity = [\"cascade\"]\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`sanity`", "cascade", "cascading"],
        },
        Case {
            name: "plan with a sanity threshold above 1",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\nsanity = [\"cascading\"]\nsanity_threshold = 1.5\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`sanity_threshold`", "(0, 1]"],
        },
        Case {
            name: "plan with sanity settings but no sanity tests",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\nsanity_inputs = 4\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`sanity_inputs`", "applies only with `sanity`"],
        },
        Case {
            name: "plan with a DeepLIFT baseline that is not a number or a colour",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"d\"\nmethod = \"deeplift\"\nbaseline = \"grey\"\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`baseline`", "grey"],
        },
        Case {
            name: "plan with an LRP rule for a layer that has no weights",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"l\"\nmethod = \"lrp\"\nrules = { \"2\" = \"flat\" }\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`rules`", "\"2\"", "conv2d or linear"],
        },
        Case {
            name: "plan with LRP's alpha and beta not one apart",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"l\"\nmethod = \"lrp\"\nalpha = 3.0\nbeta = 1.0\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`alpha` minus `beta` must be 1"],
        },
        Case {
            name: "plan with an unknown LRP composite",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"l\"\nmethod = \"lrp\"\ncomposite = \"epsilon_gama_box\"\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`composite`", "epsilon_gamma_box"],
        },
        Case {
            name: "plan with a negative ε",
            setup: |d| plan(d, "[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = -1.0\n"),
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`eps`"],
        },
        Case {
            name: "plan with a norm on a spatial attack",
            setup: |d| {
                plan(
                    d,
                    "[[attack]]\nname = \"s\"\nkind = \"spatial\"\nnorm = \"l2\"\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "attack[0] \"s\"", "`norm`", "does not apply"],
        },
        Case {
            name: "plan with an ε listed twice",
            setup: |d| {
                plan(
                    d,
                    "[[attack]]\nname = \"f\"\nkind = \"fgsm\"\neps = [0.1, 0.1]\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "attack[0] \"f\"", "`eps`", "twice"],
        },
        Case {
            name: "plan with an ensemble whose ε differs from its members'",
            setup: |d| {
                plan(
                    d,
                    "[[attack]]\nname = \"f\"\nkind = \"fgsm\"\neps = 0.1\n\
                     [[attack]]\nname = \"e\"\nkind = \"ensemble\"\nmembers = [\"f\"]\neps = 0.2\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "attack[1] \"e\"", "`eps`", "members' is 0.1"],
        },
        Case {
            name: "plan with an ensemble naming an ε list",
            setup: |d| {
                plan(
                    d,
                    "[[attack]]\nname = \"f\"\nkind = \"fgsm\"\neps = [0.1, 0.2]\n\
                     [[attack]]\nname = \"e\"\nkind = \"ensemble\"\nmembers = [\"f\"]\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &[
                "p.toml",
                "attack[1] \"e\"",
                "`members`",
                "\"f\" is an ε list",
                "f@0.1",
            ],
        },
        Case {
            name: "plan with a target class beyond u32",
            setup: |d| {
                plan(
                    d,
                    "[[attack]]\nname = \"f\"\nkind = \"fgsm\"\neps = 0.1\ntarget = 4294967296\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "attack[0] \"f\"", "`target`"],
        },
        Case {
            name: "plan with gradient_shap baselines no set can name",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"gradient_shap\"\nbaselines = \"grey\"\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &[
                "p.toml",
                "attribution[0] \"s\"",
                "`baselines`",
                "grey",
                "uniform",
            ],
        },
        Case {
            name: "plan with gradient_shap baseline_samples without uniform baselines",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"gradient_shap\"\nbaseline_samples = 4\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &[
                "p.toml",
                "attribution[0] \"s\"",
                "`baseline_samples`",
                "does not apply",
            ],
        },
        Case {
            name: "plan with a negative gradient_shap stdev",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"gradient_shap\"\nstdev = -0.1\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "attribution[0] \"s\"", "`stdev`"],
        },
        Case {
            name: "plan with a ROAD fraction of 1",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\nmetrics = [\"road\"]\nroad_fractions = [0.5, 1.0]\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &[
                "p.toml",
                "attribution[0] \"s\"",
                "`road_fractions`",
                "between 0 and 1",
            ],
        },
        Case {
            name: "plan with a single faithfulness-correlation run",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\nmetrics = [\"faithfulness_correlation\"]\ncorrelation_runs = 1\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &[
                "p.toml",
                "attribution[0] \"s\"",
                "`correlation_runs`",
                "at least 2",
            ],
        },
        Case {
            name: "plan with a faithfulness-correlation subset larger than the image",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\nmetrics = [\"faithfulness_correlation\"]\ncorrelation_subset = 1000\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["attribution[0] \"s\"", "`correlation_subset`", "784 pixels"],
        },
        Case {
            name: "plan with infidelity settings but no infidelity metric",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\ninfidelity_stdev = 0.2\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &[
                "p.toml",
                "`infidelity_stdev`",
                "applies only with the infidelity metric",
            ],
        },
        Case {
            name: "plan with zero gradient_shap samples",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"gradient_shap\"\nsamples = 0\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "attribution[0] \"s\"", "`samples`"],
        },
        Case {
            name: "plan with a LIME kernel width of 0",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"lime\"\nkernel_width = 0.0\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "attribution[0] \"s\"", "`kernel_width`"],
        },
        Case {
            name: "plan with a negative LIME alpha",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"lime\"\nalpha = -0.01\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "attribution[0] \"s\"", "`alpha`"],
        },
        Case {
            name: "plan with LIME segments of an unknown kind",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"lime\"\nsegments = \"quickshift\"\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &[
                "p.toml",
                "attribution[0] \"s\"",
                "`segments`",
                "quickshift",
                "grid",
            ],
        },
        Case {
            name: "plan with a LIME patch as large as the image",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"lime\"\npatch_size = 28\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &[
                "p.toml",
                "attribution[0] \"s\"",
                "`patch_size`",
                "1 segment",
                "at least 2",
            ],
        },
        Case {
            name: "plan with SLIC's n_segments on grid segments",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"lime\"\nn_segments = 30\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &[
                "p.toml",
                "attribution[0] \"s\"",
                "`n_segments`",
                "segments = \"slic\"",
            ],
        },
        Case {
            name: "plan with a patch size on SLIC segments",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"kernel_shap\"\nsegments = \"slic\"\npatch_size = 4\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &[
                "p.toml",
                "attribution[0] \"s\"",
                "`patch_size`",
                "segments = \"grid\"",
            ],
        },
        Case {
            name: "plan with a SLIC compactness of 0",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"lime\"\nsegments = \"slic\"\ncompactness = 0.0\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "attribution[0] \"s\"", "`compactness`"],
        },
        Case {
            name: "plan with one KernelSHAP sample",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"kernel_shap\"\nsamples = 1\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "attribution[0] \"s\"", "`samples`", "at least 2"],
        },
        Case {
            name: "plan with a KernelSHAP baseline no colour can name",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"kernel_shap\"\nbaseline = \"white\"\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "attribution[0] \"s\"", "`baseline`", "white"],
        },
        Case {
            name: "plan with a KernelSHAP patch size of 0",
            setup: |d| {
                plan(
                    d,
                    "[[attribution]]\nname = \"s\"\nmethod = \"kernel_shap\"\npatch_size = 0\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "attribution[0] \"s\"", "`patch_size`"],
        },
        Case {
            name: "plan with a NaN ε",
            setup: |d| plan(d, "[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = nan\n"),
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`eps`"],
        },
        Case {
            name: "plan with zero steps",
            setup: |d| {
                plan(
                    d,
                    "[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = 0.1\nsteps = 0\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`steps`"],
        },
        Case {
            name: "plan with duplicate names",
            setup: |d| {
                plan(
                    d,
                    "[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.1\n[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.2\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "twice"],
        },
        Case {
            name: "plan with a target class the model lacks",
            setup: |d| {
                plan(
                    d,
                    "[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = 0.1\ntarget = 10\n",
                )
            },
            args: &["run", MLP, "--plan", "p.toml"],
            needles: &["p.toml", "`target` class 10"],
        },
        // Options and output.
        Case {
            name: "output folder is a file (unwritable)",
            setup: |d| {
                shipped_mlp(d);
                quick_plan(d);
                std::fs::write(d.join("out"), "a file, not a folder").unwrap();
            },
            args: &[
                "run",
                MLP,
                "--plan",
                "quick.toml",
                "--limit",
                "2",
                "--out",
                "out/r.json",
            ],
            needles: &["out"],
        },
        Case {
            name: "output path without .json",
            setup: |d| {
                shipped_mlp(d);
                quick_plan(d);
            },
            args: &["run", MLP, "--plan", "quick.toml", "--out", "out/r.txt"],
            needles: &["r.txt", ".json"],
        },
        Case {
            name: "batch size zero",
            setup: shipped_mlp,
            args: &["run", MLP, "--batch-size", "0"],
            needles: &["--batch-size"],
        },
        Case {
            name: "report from a newer schema opened by diff",
            setup: newer_report,
            args: &["diff", "old.json", "newer.json"],
            needles: &["newer.json", "newer"],
        },
        Case {
            name: "report from a newer schema opened by tui",
            setup: newer_report,
            args: &["tui", "newer.json"],
            needles: &["newer.json", "newer"],
        },
        Case {
            name: "diff of reports on different data",
            setup: |d| {
                copy_asset(d, "reports/examples/mnist_cnn-quick.json", "old.json");
                let text = std::fs::read_to_string(d.join("old.json")).unwrap();
                let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
                v["data"]["sha256"] = "0".repeat(64).into();
                std::fs::write(d.join("other.json"), v.to_string()).unwrap();
            },
            args: &["diff", "old.json", "other.json"],
            needles: &["old.json", "other.json", "different data"],
        },
        // Arrays as data.
        Case {
            name: "float32 npy value outside the model's range",
            setup: |d| {
                shipped_mlp(d);
                let mut values = vec![0.5f32; 784];
                values[5] = 2.0;
                let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                std::fs::write(d.join("x.npy"), npy_bytes("<f4", &[1, 1, 28, 28], &data)).unwrap();
                std::fs::write(d.join("y.npy"), npy_bytes("|u1", &[1], &[3])).unwrap();
            },
            args: &["run", MLP, "--data", "x.npy", "--labels", "y.npy"],
            needles: &["x.npy", "value 2 at flat index 5"],
        },
        Case {
            name: "npy whose shape fits neither layout",
            setup: |d| {
                shipped_mlp(d);
                let data = vec![0u8; 2 * 3 * 784];
                std::fs::write(d.join("x.npy"), npy_bytes("|u1", &[2, 3, 28, 28], &data)).unwrap();
                std::fs::write(d.join("y.npy"), npy_bytes("|u1", &[2], &[3, 4])).unwrap();
            },
            args: &["run", MLP, "--data", "x.npy", "--labels", "y.npy"],
            needles: &["x.npy", "[2, 3, 28, 28]", "[1, 28, 28]"],
        },
        Case {
            name: "truncated CIFAR batch file",
            setup: |d| {
                shipped_mlp(d);
                std::fs::write(d.join("data_batch_1.bin"), vec![0u8; 3073 + 100]).unwrap();
            },
            args: &["run", MLP, "--data", "data_batch_1.bin"],
            needles: &["data_batch_1.bin", "whole number"],
        },
        Case {
            name: "labels file beside IDX data",
            setup: |d| copy_asset(d, "assets/mnist_cnn.safetensors", "m.safetensors"),
            args: &[
                "eval",
                "m.safetensors",
                "--data",
                "m.safetensors",
                "--labels",
                "y.npy",
            ],
            needles: &["m.safetensors", "apply only to .npy and .npz"],
        },
        Case {
            name: "ONNX op the importer does not map",
            setup: |d| copy_asset(d, "tests/fixtures/onnx/bad_unsupported_op.onnx", "m.onnx"),
            args: &["run", "m.onnx"],
            needles: &[
                "m.onnx",
                "up.Resize",
                "Resize",
                "opset 13",
                "supported ops: Add",
            ],
        },
        Case {
            name: "ONNX graph with a dynamic spatial size",
            setup: |d| copy_asset(d, "tests/fixtures/onnx/bad_dynamic_spatial.onnx", "m.onnx"),
            args: &["run", "m.onnx"],
            needles: &["m.onnx", "'input'", "dynamic", "H dimension"],
        },
        Case {
            name: "ONNX graph with two outputs",
            setup: |d| copy_asset(d, "tests/fixtures/onnx/bad_two_outputs.onnx", "m.onnx"),
            args: &["run", "m.onnx"],
            needles: &["m.onnx", "2 outputs", "logits, features"],
        },
        Case {
            name: "truncated ONNX file",
            setup: |d| copy_asset(d, "tests/fixtures/onnx/bad_truncated.onnx", "m.onnx"),
            args: &["run", "m.onnx"],
            needles: &["m.onnx", "not an ONNX model"],
        },
        Case {
            name: "convert of an ONNX op the importer does not map",
            setup: |d| copy_asset(d, "tests/fixtures/onnx/bad_unsupported_op.onnx", "m.onnx"),
            args: &["convert", "m.onnx", "-o", "out/m.safetensors"],
            needles: &["m.onnx", "Resize"],
        },
        Case {
            name: "ONNX weights file missing beside the model",
            setup: |d| external_onnx(d, "m.onnx.data", None, false),
            args: &["run", "m.onnx"],
            needles: &[
                "m.onnx",
                "tensor '",
                "m.onnx.data",
                "cannot be read",
                "beside the model",
            ],
        },
        Case {
            name: "ONNX weights outside the model's directory",
            setup: |d| external_onnx(d, "../w.bin", None, false),
            args: &["run", "m.onnx"],
            needles: &["m.onnx", "tensor '", "`../w.bin`", "not a path inside"],
        },
        Case {
            name: "ONNX weights file shorter than the tensor",
            setup: |d| external_onnx(d, "m.onnx.data", Some(1 << 20), true),
            args: &["run", "m.onnx"],
            needles: &["m.onnx", "tensor '", "m.onnx.data", "which holds"],
        },
        Case {
            name: "an ONNX model's weights file given as the model",
            setup: |d| external_onnx(d, "m.onnx.data", None, true),
            args: &["run", "m.onnx.data"],
            needles: &[
                "m.onnx.data",
                "the weights file of the ONNX model",
                "m.onnx",
            ],
        },
        Case {
            name: "--mean with the wrong number of channels",
            setup: |d| copy_asset(d, "tests/fixtures/onnx/residual.opset17.onnx", "m.onnx"),
            args: &["run", "m.onnx", "--mean", "0.5,0.5"],
            needles: &["m.onnx", "`input.mean` has 2 values"],
        },
        Case {
            name: "--std not positive",
            setup: |d| copy_asset(d, "tests/fixtures/onnx/residual.opset17.onnx", "m.onnx"),
            args: &["run", "m.onnx", "--std", "0"],
            needles: &["m.onnx", "`input.std` must be positive"],
        },
        Case {
            name: "spec file given for an ONNX model",
            setup: |d| {
                copy_asset(d, "tests/fixtures/onnx/residual.opset17.onnx", "m.onnx");
                std::fs::write(d.join("s.json"), MLP_SPEC).unwrap();
            },
            args: &["eval", "m.onnx", "--arch", "s.json"],
            needles: &["m.onnx", "graph is its architecture"],
        },
        Case {
            name: "merge of a directory holding no shard file",
            setup: |d| {
                shipped_mlp(d);
                std::fs::create_dir(d.join("shards")).unwrap();
            },
            args: &["merge", MLP, "shards", "--out", "out/r.json"],
            needles: &["shards", "no shard file"],
        },
        Case {
            name: "merge of a glob matching no shard file",
            setup: shipped_mlp,
            args: &["merge", MLP, "nothing/*.shard-*", "--out", "out/r.json"],
            needles: &["nothing/*.shard-*", "no shard file matches"],
        },
        Case {
            name: "an HTML page of a file that is not a report",
            setup: |d| std::fs::write(d.join("r.json"), "{}").unwrap(),
            args: &["html", "r.json", "-o", "out/page.html"],
            needles: &["r.json", "not an xai-audit report"],
        },
    ]
}

/// Files left under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn every_bad_input_exits_2_names_the_culprit_and_leaves_no_report() {
    let cases = cases();
    assert!(cases.len() >= 30, "the battery has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let dir = tempfile::tempdir().unwrap();
        (case.setup)(dir.path());
        let mut args: Vec<&str> = case.args.to_vec();
        if args[0] == "run" && !args.contains(&"--out") {
            args.extend(["--out", "out/report.json"]);
        }
        let run = xai(dir.path(), &args);
        let mut problems = Vec::new();
        if run.code != 2 {
            problems.push(format!("exit code {}", run.code));
        }
        if run.stderr.contains("panicked") {
            problems.push("panicked".to_string());
        }
        for n in case.needles {
            if !run.stderr.contains(n) {
                problems.push(format!("stderr lacks {n:?}"));
            }
        }
        let out = dir.path().join("out");
        let left = if out.is_dir() {
            files_under(&out)
        } else {
            Vec::new()
        };
        if !left.is_empty() {
            problems.push(format!("left behind {left:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  stderr: {}",
                case.name,
                problems.join(", "),
                run.stderr.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
