//! The fast engine against the candle reference it is compiled from: logits
//! and input gradients for every objective on networks that use every op the
//! engine compiles (random weights, awkward shapes), on the shipped models
//! over all 1,000 shipped digits, PGD predictions, bit-exact batch-size
//! independence, Grad-CAM's layer gradients at every layer (folded and fused
//! ones included), and that every spec op compiles.

use candle_core::{Device, Tensor};
use xai_audit::attack::pgd::PgdConfig;
use xai_audit::attack::{AttackConfig, AttackSpec, Norm};
use xai_audit::audit::run::run_audit;
use xai_audit::data::batch::{batch_tensor, load_for_model, DataRequest};
use xai_audit::engine::{select, Engine, FastNet, Kernels};
use xai_audit::model::{load_model, Classifier, Network, Objective};
use xai_audit::progress::NoSink;
use xai_audit::rng::Rng;

use super::attacks::{plan, shipped_cnn_and_digits};
use super::gradients::random_network;
use super::{root, xai};

/// Every spatial op: multi-channel normalized input, asymmetric kernel and
/// padding with stride and dilation, batch norm, leaky ReLU, a padded
/// ceil-mode max pool, a pointwise conv, SiLU, flatten of many channels,
/// dropout, batch norm 1d, tanh, sigmoid.
const SPATIAL: &str = r#"{
  "version": 1,
  "input": {"shape": [3, 11, 9], "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]},
  "layers": [
    {"op": "conv2d", "param": "c1", "in_channels": 3, "out_channels": 6, "kernel_size": [3, 2], "stride": 2, "padding": [2, 1], "dilation": 2},
    {"op": "batch_norm2d", "param": "bn1", "num_features": 6},
    {"op": "leaky_relu", "negative_slope": 0.1},
    {"op": "max_pool2d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": true},
    {"op": "conv2d", "param": "c2", "in_channels": 6, "out_channels": 8, "kernel_size": 1},
    {"op": "silu"},
    {"op": "conv2d", "param": "c3", "in_channels": 8, "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"op": "relu"},
    {"op": "flatten"},
    {"op": "dropout", "p": 0.2},
    {"op": "linear", "param": "fc1", "in_features": 96, "out_features": 12},
    {"op": "batch_norm1d", "param": "bn2", "num_features": 12},
    {"op": "tanh"},
    {"op": "linear", "param": "fc2", "in_features": 12, "out_features": 8},
    {"op": "sigmoid"},
    {"op": "linear", "param": "fc3", "in_features": 8, "out_features": 5}
  ]}"#;

/// Global average pooling, a dilated max pool, no normalization, no bias.
const POOLED: &str = r#"{
  "version": 1,
  "input": {"shape": [1, 12, 12]},
  "layers": [
    {"op": "conv2d", "param": "c1", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "bias": false},
    {"op": "relu"},
    {"op": "max_pool2d", "kernel_size": 2, "stride": 1, "dilation": 2},
    {"op": "conv2d", "param": "c2", "in_channels": 4, "out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1},
    {"op": "global_avg_pool2d"},
    {"op": "linear", "param": "fc", "in_features": 6, "out_features": 3}
  ]}"#;

/// Residual blocks (projection shortcut with a strided 1×1 conv and batch
/// norm, ReLU after the sum; identity shortcut with GELU after it; one with
/// nothing after it), grouped and depthwise (×2 multiplier) convolutions
/// with batch norm, every average-pool rule (padding, ceil mode, with and
/// without padding in the divisor), an adaptive pool to a size that does
/// not divide its input, tanh-GELU.
const RESIDUAL: &str = r#"{
  "version": 1,
  "input": {"shape": [3, 13, 11], "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]},
  "layers": [
    {"op": "conv2d", "param": "stem", "in_channels": 3, "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"op": "batch_norm2d", "param": "bn0", "num_features": 8},
    {"op": "relu"},
    {"op": "residual",
     "body": [
       {"op": "conv2d", "param": "b1c1", "in_channels": 8, "out_channels": 12, "kernel_size": 3, "stride": 2, "padding": 1, "bias": false},
       {"op": "batch_norm2d", "param": "b1bn1", "num_features": 12},
       {"op": "relu"},
       {"op": "conv2d", "param": "b1c2", "in_channels": 12, "out_channels": 12, "kernel_size": 3, "padding": 1, "groups": 3},
       {"op": "batch_norm2d", "param": "b1bn2", "num_features": 12}
     ],
     "shortcut": [
       {"op": "conv2d", "param": "b1s", "in_channels": 8, "out_channels": 12, "kernel_size": 1, "stride": 2, "bias": false},
       {"op": "batch_norm2d", "param": "b1sbn", "num_features": 12}
     ],
     "activation": {"op": "relu"}},
    {"op": "residual",
     "body": [
       {"op": "conv2d", "param": "b2dw", "in_channels": 12, "out_channels": 12, "kernel_size": 3, "padding": 1, "groups": 12},
       {"op": "batch_norm2d", "param": "b2bn", "num_features": 12},
       {"op": "relu"},
       {"op": "conv2d", "param": "b2pw", "in_channels": 12, "out_channels": 12, "kernel_size": 1}
     ],
     "activation": {"op": "gelu"}},
    {"op": "residual",
     "body": [
       {"op": "conv2d", "param": "b3", "in_channels": 12, "out_channels": 12, "kernel_size": 3, "padding": 1}
     ]},
    {"op": "avg_pool2d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": true},
    {"op": "conv2d", "param": "dw2", "in_channels": 12, "out_channels": 24, "kernel_size": 2, "groups": 12},
    {"op": "avg_pool2d", "kernel_size": 2, "stride": 1, "padding": 1, "count_include_pad": false},
    {"op": "adaptive_avg_pool2d", "output_size": [2, 3]},
    {"op": "flatten"},
    {"op": "linear", "param": "fc1", "in_features": 144, "out_features": 16},
    {"op": "gelu", "approximate": "tanh"},
    {"op": "dropout", "p": 0.5},
    {"op": "linear", "param": "fc2", "in_features": 16, "out_features": 6}
  ]}"#;

/// Convolutions the engine runs by Winograd F(2×2, 3×3) (3×3, stride 1,
/// padding 1, ≥ 16 channels) on odd sizes, with batch norm folded in, in a
/// residual body and beside a 1×1 shortcut.
const WINOGRAD: &str = r#"{
  "version": 1,
  "input": {"shape": [3, 9, 7], "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]},
  "layers": [
    {"op": "conv2d", "param": "stem", "in_channels": 3, "out_channels": 16, "kernel_size": 3, "padding": 1},
    {"op": "relu"},
    {"op": "conv2d", "param": "c1", "in_channels": 16, "out_channels": 16, "kernel_size": 3, "padding": 1, "bias": false},
    {"op": "batch_norm2d", "param": "bn1", "num_features": 16},
    {"op": "relu"},
    {"op": "residual",
     "body": [
       {"op": "conv2d", "param": "b1", "in_channels": 16, "out_channels": 24, "kernel_size": 3, "padding": 1},
       {"op": "relu"},
       {"op": "conv2d", "param": "b2", "in_channels": 24, "out_channels": 20, "kernel_size": 3, "padding": 1},
       {"op": "batch_norm2d", "param": "bn2", "num_features": 20}
     ],
     "shortcut": [
       {"op": "conv2d", "param": "s", "in_channels": 16, "out_channels": 20, "kernel_size": 1}
     ],
     "activation": {"op": "relu"}},
    {"op": "global_avg_pool2d"},
    {"op": "linear", "param": "fc", "in_features": 20, "out_features": 7}
  ]}"#;

pub(crate) fn random_inputs(net: &Network, n: usize, seed: u64) -> Tensor {
    let [c, h, w] = net.input_shape();
    let mut rng = Rng::new(seed);
    let v: Vec<f32> = (0..n * c * h * w).map(|_| rng.uniform_f32()).collect();
    Tensor::from_vec(v, (n, c, h, w), &Device::Cpu).unwrap()
}

pub(crate) fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    let n = t.dim(0).unwrap();
    t.reshape((n, ())).unwrap().to_vec2().unwrap()
}

/// Largest per-sample relative L2 difference.
pub(crate) fn worst_relative(a: &Tensor, b: &Tensor) -> f64 {
    relative_errors(a, b).into_iter().fold(0.0, f64::max)
}

/// Per-sample relative L2 differences.
fn relative_errors(a: &Tensor, b: &Tensor) -> Vec<f64> {
    rows(a)
        .iter()
        .zip(rows(b))
        .map(|(x, y)| {
            let diff: f64 = x
                .iter()
                .zip(&y)
                .map(|(p, q)| (*p as f64 - *q as f64).powi(2))
                .sum();
            let norm: f64 = y.iter().map(|q| (*q as f64).powi(2)).sum();
            if norm == 0.0 {
                diff.sqrt()
            } else {
                (diff / norm).sqrt()
            }
        })
        .collect()
}

/// Logits and every objective's values and gradients agree within `tol`,
/// except where f32 itself cannot: a confident input's cross-entropy seed
/// p_y − 1 is a difference of two numbers near 1, so its relative precision
/// is about ε_f32 / (1 − p_y), and both engines round it their own way (on
/// an AVX-512 EPYC one shipped digit with 1 − p_y ≈ 1e-3 differed by 2.7e-4).
/// Such a sample gets that bound instead of `tol`.
pub(crate) fn assert_matches_reference(net: &Network, x: &Tensor, labels: &[u32], tol: f64) {
    for kernels in [Kernels::Winograd, Kernels::Exact] {
        let fast = FastNet::compile_with(net, kernels).expect("the engine compiles this network");
        assert_kernels_match(net, &fast, x, labels, tol);
    }
}

fn assert_kernels_match(net: &Network, fast: &FastNet, x: &Tensor, labels: &[u32], tol: f64) {
    let k = net.num_classes();
    let (zr, zf) = (net.logits(x).unwrap(), fast.logits(x).unwrap());
    let err = worst_relative(&zf, &zr);
    assert!(err <= tol, "logits differ by {err:.2e} relative");
    let loss = |i: usize, z: &[f32]| -> (f32, Vec<f32>) {
        // Σ w_j z_j² / 2 with per-sample weights: its gradient depends on the
        // logits and the sample, and its terms cannot cancel.
        let w = |j: usize| 0.1 + (i + j) as f32 * 0.01;
        let g: Vec<f32> = z.iter().enumerate().map(|(j, v)| w(j) * v).collect();
        (
            z.iter().enumerate().map(|(j, v)| w(j) * v * v / 2.0).sum(),
            g,
        )
    };
    let objectives = [
        ("cross-entropy", Objective::CrossEntropy(labels)),
        ("logit", Objective::Logit(labels)),
        ("margin", Objective::Margin(labels)),
        ("custom", Objective::Custom(&loss)),
    ];
    for (name, objective) in objectives {
        let r = net.input_grad(x, objective).unwrap();
        let f = fast.input_grad(x, objective).unwrap();
        assert_eq!(f.grad.dims(), x.dims());
        let values = (
            f.value.to_vec1::<f32>().unwrap(),
            r.value.to_vec1::<f32>().unwrap(),
        );
        for (a, b) in values.0.iter().zip(&values.1) {
            assert!(
                ((a - b) as f64).abs() <= tol * (1.0 + b.abs() as f64),
                "{name}: value {a} vs {b}"
            );
        }
        let errors = relative_errors(&f.grad, &r.grad);
        for (i, (err, z)) in errors.iter().zip(rows(&zr)).enumerate() {
            let bound = if name == "cross-entropy" {
                let top = z.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) as f64;
                let sum: f64 = z.iter().map(|v| (*v as f64 - top).exp()).sum();
                let p_label = (z[labels[i] as usize] as f64 - top).exp() / sum;
                tol.max(8.0 * f32::EPSILON as f64 / (1.0 - p_label).max(1e-30))
            } else {
                tol
            };
            assert!(
                *err <= bound,
                "{name}: input gradients of sample {i} differ by {err:.2e} relative (bound {bound:.2e})"
            );
        }
        assert!(
            rows(&r.grad).iter().all(|g| g.iter().any(|v| *v != 0.0)),
            "{name}: a zero gradient tests nothing"
        );
        assert_eq!(f.logits.dims(), &[x.dim(0).unwrap(), k]);
    }
}

#[test]
fn every_compiled_op_matches_the_reference() {
    for (spec, seed) in [(SPATIAL, 3), (POOLED, 4), (RESIDUAL, 5), (WINOGRAD, 6)] {
        let net = random_network(spec, seed);
        // 11 samples: one full chunk and a padded one.
        let x = random_inputs(&net, 11, seed + 10);
        let labels: Vec<u32> = (0..11).map(|i| i % net.num_classes() as u32).collect();
        assert_matches_reference(&net, &x, &labels, 1e-5);
    }
}

#[test]
fn winograd_runs_exactly_the_convolutions_it_fits() {
    let net = random_network(WINOGRAD, 6);
    // c1, b1 and b2; not the 3-channel stem nor the 1×1 shortcut.
    let fast = FastNet::compile(&net).unwrap();
    assert_eq!(fast.winograd_convolutions(), (3, 5));
    let exact = FastNet::compile_with(&net, Kernels::Exact).unwrap();
    assert_eq!(exact.winograd_convolutions(), (0, 5));
}

#[test]
fn shipped_models_match_the_reference_on_every_digit() {
    for model in ["mnist_cnn", "mnist_mlp", "mnist_resnet"] {
        let net = load_model(&root().join(format!("assets/{model}.safetensors")), None)
            .unwrap()
            .network;
        let data = load_for_model(&DataRequest::default(), [1, 28, 28], 10).unwrap();
        let x = batch_tensor(&data, 0, data.len(), net.input_range()).unwrap();
        assert_matches_reference(&net, &x, &data.labels, 1e-5);
    }
}

#[test]
fn results_are_bit_identical_whatever_the_batch() {
    let (cnn, data) = shipped_cnn_and_digits(21);
    let resnet = load_model(&root().join("assets/mnist_resnet.safetensors"), None)
        .unwrap()
        .network;
    // The CNN (a Winograd layer) and the residual CNN (every new op kind).
    for net in [cnn, resnet] {
        bit_identical_whatever_the_batch(&net, &data);
    }
}

fn bit_identical_whatever_the_batch(net: &Network, data: &xai_audit::data::Dataset) {
    let fast = FastNet::compile(net).unwrap();
    let x = batch_tensor(data, 0, 21, net.input_range()).unwrap();
    let whole = fast
        .input_grad(&x, Objective::CrossEntropy(&data.labels))
        .unwrap();
    let (zw, gw) = (rows(&whole.logits), rows(&whole.grad));
    for i in [0usize, 7, 8, 20] {
        let xi = x.narrow(0, i, 1).unwrap();
        let one = fast
            .input_grad(&xi, Objective::CrossEntropy(&data.labels[i..=i]))
            .unwrap();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&rows(&one.logits)[0]),
            bits(&zw[i]),
            "logits of input {i}"
        );
        assert_eq!(
            bits(&rows(&one.grad)[0]),
            bits(&gw[i]),
            "gradient of input {i}"
        );
    }
}

#[test]
fn pgd_predictions_match_the_reference_engine() {
    let (cnn, data) = shipped_cnn_and_digits(200);
    let resnet = load_model(&root().join("assets/mnist_resnet.safetensors"), None)
        .unwrap()
        .network;
    // ε where each model is neither mostly robust nor mostly broken; the
    // residual model's reference path is slow, so it gets 100 digits.
    pgd_predictions_match(&cnn, &data, 0.1);
    pgd_predictions_match(&resnet, &data.take(100), 0.05);
}

fn pgd_predictions_match(net: &Network, data: &xai_audit::data::Dataset, eps: f64) {
    let fast = FastNet::compile(net).unwrap();
    let pgd = PgdConfig {
        step_size: 0.01,
        steps: 40,
        random_start: false,
        restarts: 1,
        ..PgdConfig::new(Norm::Linf, eps)
    };
    let plan = plan(vec![AttackSpec::new("pgd-40", AttackConfig::Pgd(pgd))], 100);
    let reference = run_audit(net, data, &plan, &mut NoSink).unwrap();
    let ours = run_audit(&fast, data, &plan, &mut NoSink).unwrap();
    let (r, f) = (&reference.attacks[0], &ours.attacks[0]);
    assert_eq!(
        ours.clean.predictions.predicted,
        reference.clean.predictions.predicted
    );
    assert_eq!(f.predictions.predicted, r.predictions.predicted);
    assert_eq!(f.success, r.success);
    let broken = f.success.iter().filter(|&&s| s).count();
    let n = data.len();
    assert!(
        (n / 5..=n * 4 / 5).contains(&broken),
        "PGD broke {broken} of {n}: not a meaningful comparison"
    );
}

#[test]
fn every_spec_op_compiles_and_auto_picks_the_engine() {
    // The PyTorch-made fixture with every op of spec v1.
    let net = load_model(
        &root().join("tests/fixtures/tiny_all_ops.safetensors"),
        None,
    )
    .unwrap()
    .network;
    let selected = select(&net, Engine::Auto).unwrap();
    assert_eq!(selected.name, "fast");
    assert!(selected.fallback.is_none());
    let x = random_inputs(&net, 11, 9);
    let labels: Vec<u32> = (0..11).map(|i| i % net.num_classes() as u32).collect();
    assert_matches_reference(&net, &x, &labels, 1e-5);
    let reference = select(&net, Engine::Reference).unwrap();
    assert_eq!(reference.name, "reference");
}

/// Grad-CAM's capture: the activation and gradient at every layer path,
/// including convolutions whose batch norm the engine folds, batch norms
/// whose ReLU it fuses, and layers inside residual blocks.
#[test]
fn layer_gradients_match_the_reference_at_every_layer() {
    for (spec, seed, layers) in [(RESIDUAL, 5, 20), (WINOGRAD, 6, 10)] {
        layer_gradients_match(spec, seed, layers);
    }
}

pub(crate) fn layer_gradients_match(spec: &str, seed: u64, at_least: usize) {
    let net = random_network(spec, seed);
    let fast = FastNet::compile(&net).unwrap();
    let x = random_inputs(&net, 11, seed + 10);
    let k = net.num_classes();
    let classes: Vec<u32> = (0..11).map(|i| (i * 5 % k) as u32).collect();
    let infos = net.spec().layer_infos().unwrap();
    assert!(infos.len() > at_least, "{} layers", infos.len());
    for info in &infos {
        let r = net.layer_gradient(&x, &info.path, &classes).unwrap();
        let f = fast.layer_gradient(&x, &info.path, &classes).unwrap();
        assert_eq!(f.activation.dims(), r.activation.dims(), "{}", info.path);
        assert_eq!(f.grad.dims(), r.grad.dims(), "{}", info.path);
        let a = worst_relative(&f.activation, &r.activation);
        let g = worst_relative(&f.grad, &r.grad);
        assert!(
            a <= 1e-5,
            "layer {}: activations differ by {a:.2e}",
            info.path
        );
        assert!(
            g <= 1e-5,
            "layer {}: gradients differ by {g:.2e}",
            info.path
        );
    }
    let err = fast.layer_gradient(&x, "99", &classes).unwrap_err();
    assert!(
        err.to_string().contains("no layer at position `99`"),
        "{err}"
    );
}

#[test]
fn the_cli_engines_agree_on_clean_accuracy() {
    let mut lines = Vec::new();
    for engine in ["fast", "reference"] {
        let run = xai(
            &root(),
            &["eval", "assets/mnist_cnn.safetensors", "--engine", engine],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        lines.push(
            run.stdout
                .lines()
                .find(|l| l.starts_with("clean accuracy"))
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(lines[0], lines[1]);
    assert_eq!(lines[0], "clean accuracy 98.40%");
}
