//! The new user's model (`tests/fixtures/new_user`, made by
//! `examples/new_user_fixture.py`): a 3×32×32, 4-class PyTorch classifier
//! with BatchNorm, a skip connection written in `forward` and functional
//! ReLU/pooling, exported by the bridge's torch.fx tracing. Its weights keep
//! the module's own names, its PNG folder reads back as the bytes PyTorch
//! saw, and our logits match the ones the trained PyTorch model computed.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use xai_audit::data::{load, LoadOptions};
use xai_audit::model::load::SpecSource;
use xai_audit::model::{load_model, Classifier};

use super::fixture;

fn reference() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("new_user/reference.safetensors"), &Device::Cpu).unwrap()
}

#[test]
fn the_traced_model_loads_with_its_own_weight_names_and_class_names() {
    let loaded = load_model(&fixture("new_user/model.safetensors"), None).unwrap();
    assert_eq!(loaded.spec_source, SpecSource::Metadata);
    assert!(loaded.unused.is_empty(), "unused: {:?}", loaded.unused);
    let spec = loaded.network.spec();
    assert_eq!(spec.version, 2);
    assert_eq!(spec.input.shape, [3, 32, 32]);
    assert_eq!(spec.input.range, [0.0, 1.0]);
    assert!(spec.input.mean.is_some() && spec.input.std.is_some());
    assert_eq!(spec.class_names(), ["bird", "cat", "dog", "frog"]);
    // The state_dict names of `stem`, `block` and `fc`, not renamed.
    let names: Vec<&str> = loaded.tensors.iter().map(|t| t.name.as_str()).collect();
    for name in [
        "stem.0.weight",
        "block.3.weight",
        "block.4.running_var",
        "fc.bias",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    // The skip connection of `x + self.block(x)` is an `add` of the pooled
    // stem and the block's last batch norm.
    let add = spec
        .nodes
        .iter()
        .find(|n| n.op.op_name() == "add")
        .expect("an add node");
    assert_eq!(add.inputs, ["max_pool2d", "block.4"]);
}

#[test]
fn logits_match_pytorch_on_the_image_folder() {
    let loaded = load_model(&fixture("new_user/model.safetensors"), None).unwrap();
    let net = &loaded.network;
    let r = reference();
    let x = &r["x"];
    assert_eq!(x.dims(), [60, 3, 32, 32]);

    // The folder, read as `eval --data` reads it, is the reference's x and labels.
    let data = load(
        &fixture("new_user/images"),
        &LoadOptions {
            channels: 3,
            size: Some((32, 32)),
            class_names: Some(net.spec().class_names()),
            num_classes: Some(4),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(data.shape, [60, 3, 32, 32]);
    let want_x: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    assert!(data.pixels == want_x, "the PNGs decode to other pixels");
    let want_labels: Vec<u32> = r["labels"]
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as u32)
        .collect();
    assert_eq!(data.labels, want_labels);

    let ours: Vec<Vec<f32>> = net.logits(x).unwrap().to_vec2().unwrap();
    let theirs: Vec<Vec<f32>> = r["logits"].to_vec2().unwrap();
    assert_eq!(ours.len(), theirs.len());
    let mut correct = 0;
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        for (k, (u, v)) in a.iter().zip(b).enumerate() {
            assert!(
                (u - v).abs() <= 1e-4 * v.abs().max(1.0),
                "input {i}, class {k}: our logit {u}, PyTorch's {v}"
            );
        }
        let argmax = |z: &[f32]| (0..z.len()).max_by(|&p, &q| z[p].total_cmp(&z[q])).unwrap();
        assert_eq!(argmax(a), argmax(b), "input {i}: another prediction");
        correct += usize::from(argmax(a) == want_labels[i] as usize);
    }
    // The fixture's README reports PyTorch's accuracy on these 60 images.
    assert!(correct >= 54, "{correct} of 60 correct");
}
