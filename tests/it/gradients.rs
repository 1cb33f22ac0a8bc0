//! Input gradients against central finite differences, on a tiny network that
//! uses every op the spec supports, with random weights from our seeded
//! generator. Directional derivatives along random directions are compared,
//! so a single ReLU kink near the point cannot make the test flaky, and the
//! largest coordinates are checked one by one.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use xai_audit::model::{ArchSpec, Classifier, Network, Objective};
use xai_audit::rng::Rng;

const ALL_OPS: &str = r#"{
  "version": 1,
  "input": {"shape": [3, 10, 10], "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]},
  "layers": [
    {"op": "conv2d", "param": "c1", "in_channels": 3, "out_channels": 6, "kernel_size": 3, "padding": 1},
    {"op": "batch_norm2d", "param": "bn1", "num_features": 6},
    {"op": "relu"},
    {"op": "max_pool2d", "kernel_size": 3, "stride": 2, "padding": 1},
    {"op": "residual", "body": [
        {"op": "conv2d", "param": "r1.a", "in_channels": 6, "out_channels": 6, "kernel_size": 3, "padding": 1, "groups": 2, "bias": false},
        {"op": "batch_norm2d", "param": "r1.bn", "num_features": 6},
        {"op": "gelu"},
        {"op": "conv2d", "param": "r1.b", "in_channels": 6, "out_channels": 6, "kernel_size": 3, "padding": 2, "dilation": 2}
      ], "activation": {"op": "leaky_relu", "negative_slope": 0.1}},
    {"op": "residual", "body": [
        {"op": "conv2d", "param": "r2.a", "in_channels": 6, "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1},
        {"op": "silu"}
      ], "shortcut": [
        {"op": "conv2d", "param": "r2.s", "in_channels": 6, "out_channels": 8, "kernel_size": 1, "stride": 2}
      ]},
    {"op": "avg_pool2d", "kernel_size": 2, "stride": 1, "padding": 1, "count_include_pad": false},
    {"op": "gelu", "approximate": "tanh"},
    {"op": "adaptive_avg_pool2d", "output_size": 2},
    {"op": "flatten"},
    {"op": "dropout", "p": 0.3},
    {"op": "linear", "param": "fc1", "in_features": 32, "out_features": 12},
    {"op": "batch_norm1d", "param": "bn2", "num_features": 12},
    {"op": "tanh"},
    {"op": "linear", "param": "fc2", "in_features": 12, "out_features": 8},
    {"op": "sigmoid"},
    {"op": "linear", "param": "fc3", "in_features": 8, "out_features": 4}
  ]}"#;

/// Random weights: uniform ±1/√fan_in, running variances in [0.5, 1.5].
pub(crate) fn random_network(spec_json: &str, seed: u64) -> Network {
    let spec = ArchSpec::from_json(spec_json, "test").unwrap();
    let mut rng = Rng::new(seed);
    let mut tensors = HashMap::new();
    for p in spec.params() {
        let n: usize = p.shape.iter().product();
        let values: Vec<f32> = if p.name.ends_with("running_var") {
            (0..n).map(|_| rng.uniform_range(0.5, 1.5)).collect()
        } else if p.name.ends_with("running_mean") {
            (0..n).map(|_| rng.uniform_range(-0.3, 0.3)).collect()
        } else {
            let fan_in: usize = if p.shape.len() > 1 {
                p.shape[1..].iter().product()
            } else {
                4
            };
            let b = 3.0 / (fan_in as f32).sqrt();
            (0..n).map(|_| rng.uniform_range(-b, b)).collect()
        };
        tensors.insert(
            p.name.clone(),
            Tensor::from_vec(values, p.shape.as_slice(), &Device::Cpu).unwrap(),
        );
    }
    Network::from_tensors(spec, &tensors).unwrap().0
}

fn objective_values(net: &Network, x: &[f32], shape: &[usize], objective: Objective) -> Vec<f64> {
    let t = Tensor::from_slice(x, shape, &Device::Cpu).unwrap();
    let g = net.input_grad(&t, objective).unwrap();
    g.value
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect()
}

fn check_against_finite_differences(net: &Network, objective_name: &str, classes: &[u32]) {
    let shape = [classes.len(), 3, 10, 10];
    let n_per: usize = 300;
    let mut rng = Rng::new(11);
    let x: Vec<f32> = (0..classes.len() * n_per)
        .map(|_| rng.uniform_f32())
        .collect();
    let objective = |c: &'static str| match c {
        "ce" => Objective::CrossEntropy(classes),
        "logit" => Objective::Logit(classes),
        _ => Objective::Margin(classes),
    };
    let name: &'static str = match objective_name {
        "ce" => "ce",
        "logit" => "logit",
        _ => "margin",
    };
    let xt = Tensor::from_slice(&x, &shape[..], &Device::Cpu).unwrap();
    let grad: Vec<f32> = net
        .input_grad(&xt, objective(name))
        .unwrap()
        .grad
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // f32 forward passes: h balances rounding (~ulp/h) against curvature
    // (~h²); a ReLU or max-pool switch within h of the point spoils one step
    // size, so a check passes when either of two step sizes agrees.
    let steps = [2e-3f32, 1e-3];
    for trial in 0..4 {
        // A random unit direction per sample.
        let mut dir: Vec<f32> = (0..x.len()).map(|_| rng.normal()).collect();
        for s in dir.chunks_mut(n_per) {
            let norm = s.iter().map(|v| v * v).sum::<f32>().sqrt();
            s.iter_mut().for_each(|v| *v /= norm);
        }
        let fds: Vec<Vec<f64>> = steps
            .iter()
            .map(|&h| {
                let plus: Vec<f32> = x.iter().zip(&dir).map(|(a, d)| a + h * d).collect();
                let minus: Vec<f32> = x.iter().zip(&dir).map(|(a, d)| a - h * d).collect();
                let fp = objective_values(net, &plus, &shape, objective(name));
                let fm = objective_values(net, &minus, &shape, objective(name));
                fp.iter()
                    .zip(&fm)
                    .map(|(p, m)| (p - m) / (2.0 * h as f64))
                    .collect()
            })
            .collect();
        for s in 0..classes.len() {
            let analytic: f64 = grad[s * n_per..(s + 1) * n_per]
                .iter()
                .zip(&dir[s * n_per..(s + 1) * n_per])
                .map(|(g, d)| (*g as f64) * (*d as f64))
                .sum();
            let gnorm = grad[s * n_per..(s + 1) * n_per]
                .iter()
                .map(|g| (*g as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            let tolerance = 0.01 * analytic.abs() + 5e-4 * gnorm + 5e-5;
            assert!(
                fds.iter().any(|fd| (fd[s] - analytic).abs() <= tolerance),
                "{objective_name}, sample {s}, trial {trial}: finite differences {:?} vs gradient·direction {analytic} (|grad| {gnorm})",
                fds.iter().map(|fd| fd[s]).collect::<Vec<_>>()
            );
        }
    }
    // The three largest coordinates of sample 0, one at a time.
    let mut order: Vec<usize> = (0..n_per).collect();
    order.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()));
    for &i in &order[..3] {
        let fds: Vec<f64> = steps
            .iter()
            .map(|&h| {
                let mut plus = x.clone();
                let mut minus = x.clone();
                plus[i] += h;
                minus[i] -= h;
                let fp = objective_values(net, &plus, &shape, objective(name))[0];
                let fm = objective_values(net, &minus, &shape, objective(name))[0];
                (fp - fm) / (2.0 * h as f64)
            })
            .collect();
        assert!(
            fds.iter()
                .any(|fd| (fd - grad[i] as f64).abs() <= 0.02 * (grad[i] as f64).abs() + 1e-4),
            "{objective_name}, coordinate {i}: finite differences {fds:?} vs gradient {}",
            grad[i]
        );
    }
}

#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    check_against_finite_differences(&random_network(ALL_OPS, 1), "ce", &[0, 1, 2, 3, 1, 2]);
}

#[test]
fn logit_gradient_matches_finite_differences() {
    check_against_finite_differences(&random_network(ALL_OPS, 2), "logit", &[3, 2, 1, 0]);
}

#[test]
fn margin_gradient_matches_finite_differences() {
    check_against_finite_differences(&random_network(ALL_OPS, 3), "margin", &[0, 3, 1, 2]);
}

#[test]
fn relu_gradient_at_zero_is_zero_like_pytorch() {
    // f(x) = w · relu(x) with x = 0 exactly: PyTorch's derivative is 0 (candle's relu says 1).
    let spec = r#"{"version": 1, "input": {"shape": [1, 1, 2]}, "layers": [
        {"op": "flatten"}, {"op": "relu"}, {"op": "linear", "param": "fc", "in_features": 2, "out_features": 2, "bias": false}]}"#;
    let spec = ArchSpec::from_json(spec, "t").unwrap();
    let w = Tensor::new(&[[1f32, 1.], [0., 0.]], &Device::Cpu).unwrap();
    let (net, _) =
        Network::from_tensors(spec, &HashMap::from([("fc.weight".to_string(), w)])).unwrap();
    let x = Tensor::new(&[[[[0f32, 0.5]]]], &Device::Cpu).unwrap();
    let g = net.input_grad(&x, Objective::Logit(&[0])).unwrap();
    let g: Vec<f32> = g.grad.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(g, vec![0.0, 1.0]);
}

#[test]
fn logits_do_not_depend_on_batch_size() {
    let net = random_network(ALL_OPS, 4);
    let mut rng = Rng::new(5);
    let n = 100;
    let x: Vec<f32> = (0..n * 300).map(|_| rng.uniform_f32()).collect();
    let all = net
        .logits(&Tensor::from_slice(&x, (n, 3, 10, 10), &Device::Cpu).unwrap())
        .unwrap();
    let all: Vec<Vec<f32>> = all.to_vec2().unwrap();
    for i in [0, 37, 99] {
        let one = net
            .logits(
                &Tensor::from_slice(&x[i * 300..(i + 1) * 300], (1, 3, 10, 10), &Device::Cpu)
                    .unwrap(),
            )
            .unwrap();
        let one: Vec<f32> = one.flatten_all().unwrap().to_vec1().unwrap();
        for (a, b) in one.iter().zip(&all[i]) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "sample {i}: {a} at batch 1 vs {b} at batch 100"
            );
        }
    }
}
