//! The fast engine on spec v2 graphs: DenseNet-style concatenation,
//! MobileNetV3-style depthwise + ReLU6 + hard-swish + squeeze-and-excitation
//! with a residual add, a head with asymmetric padding, scalar and channel
//! affine maps and a softmax, and joins of two branches in every operand
//! order. Each is held to the reference on random weights (logits, every
//! objective's input gradient, Grad-CAM's layer gradients, both kernel
//! sets), runs under `--engine auto` without falling back, and gives the
//! same bits in batches of 1, 7 and 23. The reference's own new ops are
//! checked against central differences, since the reference is ours too.

use candle_core::{Device, Tensor};
use xai_audit::engine::{select, Engine, FastNet};
use xai_audit::model::{Classifier, Network, Objective};
use xai_audit::rng::Rng;

use super::engine::{assert_matches_reference, layer_gradients_match, random_inputs, rows};
use super::gradients::random_network;

/// Two dense blocks (batch norm, ReLU, 3×3 conv, then the block's input and
/// the new features concatenated along channels), a 1×1 transition conv
/// and an average pool. 16+ channels so that Winograd runs some convs.
const DENSE: &str = r#"{
  "version": 2,
  "input": {"shape": [3, 12, 12], "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]},
  "nodes": [
    {"name": "conv0", "op": "conv2d", "param": "conv0", "in_channels": 3, "out_channels": 16, "kernel_size": 3, "padding": 1},
    {"name": "d1.bn", "op": "batch_norm2d", "param": "d1.bn", "num_features": 16},
    {"name": "d1.relu", "op": "relu"},
    {"name": "d1.conv", "op": "conv2d", "param": "d1.conv", "in_channels": 16, "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": false},
    {"name": "d1.cat", "op": "concat", "inputs": ["conv0", "d1.conv"]},
    {"name": "d2.bn", "op": "batch_norm2d", "param": "d2.bn", "num_features": 24},
    {"name": "d2.relu", "op": "relu"},
    {"name": "d2.conv", "op": "conv2d", "param": "d2.conv", "in_channels": 24, "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": false},
    {"name": "d2.cat", "op": "concat", "inputs": ["d1.cat", "d2.conv"]},
    {"name": "t.conv", "op": "conv2d", "param": "t.conv", "in_channels": 32, "out_channels": 16, "kernel_size": 1},
    {"name": "t.pool", "op": "avg_pool2d", "kernel_size": 2},
    {"name": "pool", "op": "global_avg_pool2d"},
    {"name": "fc", "op": "linear", "param": "fc", "in_features": 16, "out_features": 5}
  ]}"#;

/// A MobileNetV3 block: hard-swish stem, depthwise conv + batch norm +
/// ReLU6, a squeeze-and-excitation gate (pool, 1×1 conv, ReLU, 1×1 conv,
/// hard sigmoid) multiplying the feature map, a pointwise projection and a
/// residual add.
const MOBILE: &str = r#"{
  "version": 2,
  "input": {"shape": [3, 10, 10], "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]},
  "nodes": [
    {"name": "stem", "op": "conv2d", "param": "stem", "in_channels": 3, "out_channels": 16, "kernel_size": 3, "padding": 1, "bias": false},
    {"name": "stem.bn", "op": "batch_norm2d", "param": "stem.bn", "num_features": 16},
    {"name": "stem.act", "op": "hard_swish"},
    {"name": "dw", "op": "conv2d", "param": "dw", "in_channels": 16, "out_channels": 16, "kernel_size": 3, "padding": 1, "groups": 16, "bias": false},
    {"name": "dw.bn", "op": "batch_norm2d", "param": "dw.bn", "num_features": 16},
    {"name": "dw.act", "op": "clip", "min": 0.0, "max": 6.0},
    {"name": "se.pool", "op": "adaptive_avg_pool2d", "output_size": 1},
    {"name": "se.fc1", "op": "conv2d", "param": "se.fc1", "in_channels": 16, "out_channels": 4, "kernel_size": 1},
    {"name": "se.relu", "op": "relu"},
    {"name": "se.fc2", "op": "conv2d", "param": "se.fc2", "in_channels": 4, "out_channels": 16, "kernel_size": 1},
    {"name": "se.gate", "op": "hard_sigmoid"},
    {"name": "se.mul", "op": "mul", "inputs": ["dw.act", "se.gate"]},
    {"name": "pw", "op": "conv2d", "param": "pw", "in_channels": 16, "out_channels": 16, "kernel_size": 1, "bias": false},
    {"name": "pw.bn", "op": "batch_norm2d", "param": "pw.bn", "num_features": 16},
    {"name": "add", "op": "add", "inputs": ["pw.bn", "stem.act"]},
    {"name": "pool", "op": "global_avg_pool2d"},
    {"name": "fc", "op": "linear", "param": "fc", "in_features": 16, "out_features": 6}
  ]}"#;

/// Asymmetric padding with a non-zero value, a scalar affine map, channel
/// affine maps on a feature map (after a ReLU: not folded) and on a flat
/// vector (after tanh: not folded; after a linear: folded), and a softmax
/// output.
const HEAD: &str = r#"{
  "version": 2,
  "input": {"shape": [2, 8, 8]},
  "nodes": [
    {"name": "c1", "op": "conv2d", "param": "c1", "in_channels": 2, "out_channels": 6, "kernel_size": 3},
    {"name": "r1", "op": "relu"},
    {"name": "ca", "op": "channel_affine", "param": "ca", "num_features": 6},
    {"name": "pad", "op": "pad2d", "padding": [1, 2, 0, 3], "value": 0.3},
    {"name": "c2", "op": "conv2d", "param": "c2", "in_channels": 6, "out_channels": 6, "kernel_size": 3, "stride": 2},
    {"name": "aff", "op": "affine", "scale": 0.5, "shift": -0.2},
    {"name": "r2", "op": "relu"},
    {"name": "flat", "op": "flatten"},
    {"name": "fc1", "op": "linear", "param": "fc1", "in_features": 96, "out_features": 10},
    {"name": "ca.folded", "op": "channel_affine", "param": "cf", "num_features": 10, "bias": false},
    {"name": "t", "op": "tanh"},
    {"name": "ca.flat", "op": "channel_affine", "param": "cb", "num_features": 10},
    {"name": "fc2", "op": "linear", "param": "fc2", "in_features": 10, "out_features": 4},
    {"name": "softmax", "op": "softmax"}
  ]}"#;

/// Joins in every arrangement: add and mul of two equal-shape branches (a
/// ReLU fused into the add), a broadcast gate as the FIRST operand of a mul
/// and of an add, a value multiplied by itself, a three-way channel
/// concatenation, a flat concatenation that reads one vector twice (a ReLU
/// fused into it), and a scalar affine map of the logits. (No tanh: a
/// saturated one's derivative `1 − t²` from an output rounded its own way
/// by each engine differs by 1e-5 relative, which would hide the joins.)
const JOINS: &str = r#"{
  "version": 2,
  "input": {"shape": [3, 9, 9], "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]},
  "nodes": [
    {"name": "c1", "op": "conv2d", "param": "c1", "in_channels": 3, "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"name": "a", "op": "conv2d", "param": "a", "in_channels": 8, "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"name": "b", "op": "conv2d", "param": "b", "in_channels": 8, "out_channels": 8, "kernel_size": 1, "inputs": ["c1"]},
    {"name": "b.act", "op": "sigmoid"},
    {"name": "m", "op": "mul", "inputs": ["a", "b.act"]},
    {"name": "s", "op": "add", "inputs": ["m", "c1"]},
    {"name": "s.relu", "op": "relu"},
    {"name": "g.pool", "op": "adaptive_avg_pool2d", "output_size": 1},
    {"name": "g.act", "op": "sigmoid"},
    {"name": "gm", "op": "mul", "inputs": ["g.act", "s.relu"]},
    {"name": "ga", "op": "add", "inputs": ["g.act", "gm"]},
    {"name": "sq", "op": "mul", "inputs": ["ga", "ga"]},
    {"name": "cat3", "op": "concat", "inputs": ["sq", "ga", "c1"]},
    {"name": "p", "op": "global_avg_pool2d"},
    {"name": "f1", "op": "linear", "param": "f1", "in_features": 24, "out_features": 6},
    {"name": "f2", "op": "linear", "param": "f2", "in_features": 24, "out_features": 5, "inputs": ["p"]},
    {"name": "fcat", "op": "concat", "inputs": ["f1", "f2", "f1"]},
    {"name": "r", "op": "relu"},
    {"name": "fc", "op": "linear", "param": "fc", "in_features": 17, "out_features": 4},
    {"name": "out", "op": "affine", "scale": 0.25}
  ]}"#;

const GRAPHS: [(&str, &str, u64); 4] = [
    ("dense", DENSE, 31),
    ("mobile", MOBILE, 32),
    ("head", HEAD, 33),
    ("joins", JOINS, 34),
];

#[test]
fn v2_graphs_match_the_reference() {
    for (name, spec, seed) in GRAPHS {
        let net = random_network(spec, seed);
        let selected = select(&net, Engine::Auto).unwrap();
        assert_eq!(selected.fallback, None, "{name}");
        assert_eq!(selected.name, "fast", "{name}");
        // 11 samples: one full chunk and a padded one.
        let x = random_inputs(&net, 11, seed + 10);
        let labels: Vec<u32> = (0..11).map(|i| i % net.num_classes() as u32).collect();
        assert_matches_reference(&net, &x, &labels, 1e-5);
    }
}

#[test]
fn v2_graphs_layer_gradients_match_the_reference_at_every_node() {
    for (_, spec, seed) in GRAPHS {
        layer_gradients_match(spec, seed, 10);
    }
}

#[test]
fn v2_graphs_are_bit_identical_whatever_the_batch() {
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    for (name, spec, seed) in GRAPHS {
        let net = random_network(spec, seed);
        let fast = FastNet::compile(&net).unwrap();
        let x = random_inputs(&net, 23, seed + 20);
        let labels: Vec<u32> = (0..23).map(|i| i % net.num_classes() as u32).collect();
        let run = |first: usize, n: usize| {
            let g = fast
                .input_grad(
                    &x.narrow(0, first, n).unwrap(),
                    Objective::CrossEntropy(&labels[first..first + n]),
                )
                .unwrap();
            (rows(&g.logits), rows(&g.grad))
        };
        let (z23, g23) = run(0, 23);
        let (z7, g7) = run(0, 7);
        let (z7b, g7b) = run(14, 7);
        for i in [0usize, 6, 9, 14, 20, 22] {
            let (z1, g1) = run(i, 1);
            assert_eq!(bits(&z1[0]), bits(&z23[i]), "{name}: logits of input {i}");
            assert_eq!(bits(&g1[0]), bits(&g23[i]), "{name}: gradient of input {i}");
            let (z, g) = match i {
                0..7 => (&z7[i], &g7[i]),
                14..21 => (&z7b[i - 14], &g7b[i - 14]),
                _ => continue,
            };
            assert_eq!(bits(z), bits(&z23[i]), "{name}: logits of input {i}");
            assert_eq!(bits(g), bits(&g23[i]), "{name}: gradient of input {i}");
        }
    }
}

/// Clip, hard sigmoid and hard swish on the raw input, concatenated (their
/// kinks: clip at −1 and 1.5, hard sigmoid where 0.3x + 0.4 is 0 or 1,
/// i.e. −4/3 and 2, hard swish at ±3).
const HARD: &str = r#"{
  "version": 2,
  "input": {"shape": [1, 1, 8], "range": [-6.0, 6.0]},
  "nodes": [
    {"name": "flat", "op": "flatten"},
    {"name": "clip", "op": "clip", "min": -1.0, "max": 1.5, "inputs": ["flat"]},
    {"name": "hsig", "op": "hard_sigmoid", "alpha": 0.3, "beta": 0.4, "inputs": ["flat"]},
    {"name": "hsw", "op": "hard_swish", "inputs": ["flat"]},
    {"name": "cat", "op": "concat", "inputs": ["clip", "hsig", "hsw"]},
    {"name": "fc", "op": "linear", "param": "fc", "in_features": 24, "out_features": 3}
  ]}"#;

/// Asymmetric non-zero padding, a conv, a broadcast mul by the map's own
/// channel means, and a softmax output.
const SMOOTH: &str = r#"{
  "version": 2,
  "input": {"shape": [2, 3, 3], "range": [-2.0, 2.0]},
  "nodes": [
    {"name": "pad", "op": "pad2d", "padding": [1, 0, 2, 1], "value": 0.7},
    {"name": "c", "op": "conv2d", "param": "c", "in_channels": 2, "out_channels": 3, "kernel_size": 2},
    {"name": "gate", "op": "adaptive_avg_pool2d", "output_size": 1},
    {"name": "m", "op": "mul", "inputs": ["c", "gate"]},
    {"name": "flat", "op": "flatten"},
    {"name": "fc", "op": "linear", "param": "fc", "in_features": 45, "out_features": 4},
    {"name": "softmax", "op": "softmax"}
  ]}"#;

/// `Σ_j w_j z_j`'s input gradient from the reference, beside central
/// differences of its logits in f64 along every input coordinate: `D(h)`,
/// or with `richardson` the extrapolation `(4 D(h/2) − D(h)) / 3`.
/// Returns the relative L2 difference.
fn reference_against_differences(net: &Network, x: &[f32], h: f32, richardson: bool) -> f64 {
    let [c, hh, ww] = net.input_shape();
    let len = c * hh * ww;
    let k = net.num_classes();
    let w: Vec<f32> = (0..k).map(|j| j as f32 - 1.0).collect();
    let loss = |_: usize, _: &[f32]| (0.0, w.clone());
    let xt = Tensor::from_slice(x, (1, c, hh, ww), &Device::Cpu).unwrap();
    let grad: Vec<f32> = net
        .input_grad(&xt, Objective::Custom(&loss))
        .unwrap()
        .grad
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let objective_at = |step: f32| -> Vec<f64> {
        // Row 2i is x + step·e_i, row 2i + 1 is x − step·e_i.
        let mut batch = Vec::with_capacity(2 * len * len);
        for i in 0..len {
            for sign in [1.0f32, -1.0] {
                let mut p = x.to_vec();
                p[i] += sign * step;
                batch.extend(p);
            }
        }
        let t = Tensor::from_vec(batch, (2 * len, c, hh, ww), &Device::Cpu).unwrap();
        rows(&net.logits(&t).unwrap())
            .iter()
            .map(|z| z.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum())
            .collect()
    };
    let central = |step: f32| -> Vec<f64> {
        let f = objective_at(step);
        (0..len)
            .map(|i| (f[2 * i] - f[2 * i + 1]) / (2.0 * step as f64))
            .collect()
    };
    let fd: Vec<f64> = if richardson {
        let (d1, d2) = (central(h), central(h / 2.0));
        d1.iter()
            .zip(&d2)
            .map(|(a, b)| (4.0 * b - a) / 3.0)
            .collect()
    } else {
        central(h)
    };
    let diff: f64 = fd
        .iter()
        .zip(&grad)
        .map(|(a, b)| (a - *b as f64).powi(2))
        .sum();
    let norm: f64 = grad.iter().map(|g| (*g as f64).powi(2)).sum();
    assert!(norm > 0.0, "a zero gradient tests nothing");
    (diff / norm).sqrt()
}

#[test]
fn reference_hard_activations_match_central_differences() {
    let net = random_network(HARD, 41);
    // Every piece of every op, each point ≥ 0.13 from a kink: with a step
    // of 1/16 the functions are linear or quadratic between x ± h, where
    // central differences are exact but for f32 rounding of the logits.
    let x = [-4.5f32, -2.2, -1.2, -0.4, 0.7, 1.8, 2.6, 3.7];
    let err = reference_against_differences(&net, &x, 0.0625, false);
    assert!(err < 1e-5, "relative difference {err:.2e}");
    // At the kinks themselves the engine and the reference agree (PyTorch's
    // one-sided conventions: 0 at clip's bounds, (2x + 3)/6 at ±3).
    let kinks = [-3.0f32, 3.0, -1.0, 1.5, 2.0, 0.0, -4.0 / 3.0, 6.0];
    let both = Tensor::from_vec(
        x.iter().chain(&kinks).copied().collect::<Vec<_>>(),
        (2, 1, 1, 8),
        &Device::Cpu,
    )
    .unwrap();
    assert_matches_reference(&net, &both, &[0, 1], 1e-6);
}

#[test]
fn reference_pad_broadcast_mul_and_softmax_match_central_differences() {
    let net = random_network(SMOOTH, 42);
    let mut rng = Rng::new(43);
    let x: Vec<f32> = (0..18).map(|_| rng.uniform_range(-1.5, 1.5)).collect();
    // Smooth everywhere: Richardson-extrapolated differences, error O(h⁴).
    // The f32 rounding of the logits over h dominates (5e-6 measured at
    // h = 0.2, 2e-5 at 0.05), hence the large step.
    let err = reference_against_differences(&net, &x, 0.2, true);
    assert!(err < 3e-5, "relative difference {err:.2e}");
    let xt = Tensor::from_vec(x, (1, 2, 3, 3), &Device::Cpu).unwrap();
    assert_matches_reference(&net, &xt, &[2], 1e-5);
}
