//! Stress and equivariance checks against independent references: a model
//! invariant by construction (1×1 convolutions and global average pooling)
//! has consistency 1 and Lie derivative 0 under circular shifts while a
//! linear model does not; α-scaling of a linear model follows the closed
//! form; a model with constant logits makes max-softmax a coin flip (AUROC
//! 0.5); corruptions grow monotonically with severity from the identity;
//! exact and finite-difference Lie derivatives agree on the shipped CNN;
//! results do not depend on the batch size; and `run` writes, prints and
//! validates the new report sections, with bad plan entries failing cleanly.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use xai_audit::data::batch::{load_for_model, DataRequest};
use xai_audit::data::Dataset;
use xai_audit::model::{load_model, ArchSpec, Network};
use xai_audit::plan::Plan;
use xai_audit::progress::NoSink;
use xai_audit::report::io::read_report;
use xai_audit::rng::Rng;
use xai_audit::stress::alpha_scaling::{AlphaInputs, AlphaScalingConfig};
use xai_audit::stress::consistency::{Expectation, ShiftConfig, ShiftMode};
use xai_audit::stress::corruptions::Corruption;
use xai_audit::stress::lie_derivative::{LieDerivativeConfig, LieMethod, LieTransform};
use xai_audit::stress::noise::{NoiseConfig, NoiseFamily};
use xai_audit::stress::{
    alpha_scaling, consistency, lie_derivative, noise, run_stress, Context, EquivarianceOutcome,
    StressOutcome,
};

use super::{root, xai};

fn network(spec: &str, tensors: Vec<(&str, Vec<f32>, Vec<usize>)>) -> Network {
    let spec = ArchSpec::from_json(spec, "test").unwrap();
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(n, v, s)| (n.to_string(), Tensor::from_vec(v, s, &Device::Cpu).unwrap()))
        .collect();
    Network::from_tensors(spec, &map).unwrap().0
}

fn random(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| scale * (2.0 * rng.uniform_f32() - 1.0))
        .collect()
}

/// `conv1x1 (3→6) → [relu] → conv1x1 (6→5) → global average pool → linear
/// (5→8) → relu → linear (8→4)`: every layer before the pooling acts on each
/// pixel alone, so the pooled features — and the prediction — ignore where
/// the pixels are. Without the first relu, the pooled features are linear in
/// the image's mean, which circular bilinear translation keeps exactly.
fn pooled_model(relu_before_pool: bool, seed: u64) -> Network {
    let relu = if relu_before_pool {
        r#"{"op": "relu"},"#
    } else {
        ""
    };
    let spec = format!(
        r#"{{"version": 1, "input": {{"shape": [3, 9, 11], "mean": [0.2, 0.5, 0.4], "std": [0.3, 0.2, 0.25]}},
        "classes": ["a", "b", "c", "d"], "layers": [
        {{"op": "conv2d", "param": "c1", "in_channels": 3, "out_channels": 6, "kernel_size": 1}}, {relu}
        {{"op": "conv2d", "param": "c2", "in_channels": 6, "out_channels": 5, "kernel_size": 1}},
        {{"op": "global_avg_pool2d"}},
        {{"op": "linear", "param": "f1", "in_features": 5, "out_features": 8}},
        {{"op": "relu"}},
        {{"op": "linear", "param": "f2", "in_features": 8, "out_features": 4}}]}}"#
    );
    let mut rng = Rng::new(seed);
    network(
        &spec,
        vec![
            ("c1.weight", random(&mut rng, 18, 1.0), vec![6, 3, 1, 1]),
            ("c1.bias", random(&mut rng, 6, 0.5), vec![6]),
            ("c2.weight", random(&mut rng, 30, 1.0), vec![5, 6, 1, 1]),
            ("c2.bias", random(&mut rng, 5, 0.5), vec![5]),
            ("f1.weight", random(&mut rng, 40, 2.0), vec![8, 5]),
            ("f1.bias", random(&mut rng, 8, 0.5), vec![8]),
            ("f2.weight", random(&mut rng, 32, 2.0), vec![4, 8]),
            ("f2.bias", random(&mut rng, 4, 0.5), vec![4]),
        ],
    )
}

/// A linear classifier on the flattened image: not shift invariant.
fn flat_linear_model(seed: u64) -> Network {
    let spec = r#"{"version": 1, "input": {"shape": [3, 9, 11]}, "classes": ["a", "b", "c", "d"],
        "layers": [{"op": "flatten"}, {"op": "linear", "param": "fc", "in_features": 297, "out_features": 4}]}"#;
    let mut rng = Rng::new(seed);
    network(
        spec,
        vec![
            ("fc.weight", random(&mut rng, 4 * 297, 1.0), vec![4, 297]),
            ("fc.bias", random(&mut rng, 4, 0.1), vec![4]),
        ],
    )
}

/// Noise images whose channels have random brightness, so that their means
/// (all a pooled model sees) differ from image to image.
fn dataset(shape: [usize; 4], classes: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let n = shape[0];
    let plane = shape[2] * shape[3];
    let mut pixels = Vec::with_capacity(shape.iter().product());
    for _ in 0..n * shape[1] {
        let brightness = rng.uniform_f32();
        pixels.extend((0..plane).map(|_| brightness * rng.uniform_f32()));
    }
    Dataset {
        pixels,
        shape,
        labels: (0..n).map(|_| rng.below(classes as u64) as u32).collect(),
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        source: "test".into(),
        sha256: String::new(),
    }
}

fn shifts(mode: ShiftMode, pixels: Vec<usize>) -> ShiftConfig {
    ShiftConfig {
        mode,
        pixels,
        expectation: Expectation {
            expect_invariant: true,
            min_consistency: 0.9,
            examples: 4,
        },
    }
}

fn lie_spec(method: LieMethod, border: ShiftMode) -> LieDerivativeConfig {
    LieDerivativeConfig {
        transforms: vec![
            LieTransform::TranslateX,
            LieTransform::TranslateY,
            LieTransform::Rotate,
        ],
        method,
        step_px: 0.1,
        step_deg: 0.5,
        border,
    }
}

#[test]
fn a_pooled_pointwise_model_is_exactly_shift_invariant_and_a_linear_one_is_not() {
    let data = dataset([40, 3, 9, 11], 4, 1);
    for model in [pooled_model(true, 2), pooled_model(false, 3)] {
        let ctx = Context::new(&model, &data, 0, 16).unwrap();
        // Not a constant model (that would be invariant for nothing).
        let mut classes: Vec<u32> = (0..40).map(|i| ctx.clean_prediction(i)).collect();
        classes.sort();
        classes.dedup();
        assert!(classes.len() >= 2, "{classes:?}");
        let check = shifts(ShiftMode::Circular, vec![1, 2, 3, 5]);
        let out = consistency::run(&ctx, "c", &check, &mut |_| {}).unwrap();
        assert_eq!(out.summary.transforms.len(), 16);
        for t in &out.summary.transforms {
            assert_eq!(t.consistency, 1.0, "{}", t.transform);
        }
        assert!(out.summary.examples.is_empty() && out.warnings.is_empty());
        // The confidences themselves agree up to summation order.
        for (i, s) in out.samples.iter().enumerate() {
            let clean = xai_audit::stats::softmax_f64(&ctx.clean_logits[i]);
            for &c in &s.confidences {
                let max = clean.iter().copied().fold(0.0, f64::max);
                assert!((c as f64 - max).abs() < 1e-5, "{c} vs {max}");
            }
        }
    }
    // Negative control: the same check on a flattened linear model.
    let model = flat_linear_model(4);
    let ctx = Context::new(&model, &data, 0, 16).unwrap();
    let out = consistency::run(
        &ctx,
        "c",
        &shifts(ShiftMode::Circular, vec![1, 2, 3]),
        &mut |_| {},
    )
    .unwrap();
    assert!(
        out.summary.mean_consistency < 0.9,
        "{}",
        out.summary.mean_consistency
    );
    assert!(!out.summary.examples.is_empty() && !out.warnings.is_empty());
    assert_eq!(
        ctx.images_tensor(&[0.0; 297]).unwrap().dims(),
        [1, 3, 9, 11]
    );
}

#[test]
fn lie_derivative_of_circular_translation_vanishes_for_the_invariant_model() {
    let data = dataset([24, 3, 9, 11], 4, 5);
    let model = pooled_model(false, 3);
    let ctx = Context::new(&model, &data, 0, 10).unwrap();
    for method in [LieMethod::Exact, LieMethod::FiniteDifference] {
        let circular = lie_derivative::run(
            &ctx,
            "l",
            &lie_spec(method, ShiftMode::Circular),
            &mut |_| {},
        )
        .unwrap();
        let zero = lie_derivative::run(&ctx, "l", &lie_spec(method, ShiftMode::Zero), &mut |_| {})
            .unwrap();
        for k in 0..2 {
            let c = &circular.summary.transforms[k];
            let z = &zero.summary.transforms[k];
            // Zero up to f32 rounding of the gradient–generator products.
            assert!(c.max < 1e-5, "{method:?} {:?}: {}", c.transform, c.max);
            // Zero fill loses the border pixels of these noise images: not
            // invariant, by orders of magnitude more than the rounding above.
            assert!(
                z.mean > 1e-4 && z.mean > 100.0 * c.max,
                "{method:?} {:?}: {} vs circular {}",
                z.transform,
                z.mean,
                c.max
            );
        }
        // Rotation with zero fill changes the mean too.
        assert!(circular.summary.transforms[2].mean > 1e-4);
    }
}

#[test]
fn exact_and_finite_difference_lie_derivatives_agree_on_a_smooth_model() {
    // tanh and average pooling: smooth, so a small central difference in t
    // converges to the Jacobian–vector product (a ReLU/max-pool network has
    // kinks that small steps still cross).
    let spec = r#"{"version": 1, "input": {"shape": [2, 8, 8], "range": [-1, 1]}, "classes": ["a", "b", "c"], "layers": [
        {"op": "conv2d", "param": "c", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"op": "tanh"}, {"op": "avg_pool2d", "kernel_size": 2}, {"op": "flatten"},
        {"op": "linear", "param": "fc", "in_features": 64, "out_features": 3}]}"#;
    let mut rng = Rng::new(21);
    let model = network(
        spec,
        vec![
            ("c.weight", random(&mut rng, 72, 1.0), vec![4, 2, 3, 3]),
            ("c.bias", random(&mut rng, 4, 0.3), vec![4]),
            ("fc.weight", random(&mut rng, 192, 1.0), vec![3, 64]),
            ("fc.bias", random(&mut rng, 3, 0.3), vec![3]),
        ],
    );
    let data = dataset([16, 2, 8, 8], 3, 22);
    let ctx = Context::new(&model, &data, 0, 16).unwrap();
    for border in [ShiftMode::Zero, ShiftMode::Circular] {
        let mut fd = lie_spec(LieMethod::FiniteDifference, border);
        fd.step_px = 1e-3;
        fd.step_deg = 0.01;
        let exact =
            lie_derivative::run(&ctx, "l", &lie_spec(LieMethod::Exact, border), &mut |_| {})
                .unwrap();
        let approx = lie_derivative::run(&ctx, "l", &fd, &mut |_| {}).unwrap();
        for (e, a) in exact.samples.iter().zip(&approx.samples) {
            for (&x, &y) in e.values.iter().zip(&a.values) {
                let (x, y) = (x as f64, y as f64);
                assert!(x > 1e-3, "{x}");
                // Bilinear resampling has a kink at t = 0, so the central
                // difference is off by O(h) (observed: < 1%).
                assert!(
                    (x - y).abs() <= 2e-2 * x + 2e-4,
                    "{border:?}: exact {x} vs finite difference {y}"
                );
            }
        }
    }
}

#[test]
fn alpha_scaling_of_a_linear_model_follows_the_closed_form() {
    // Two classes, no bias: p_max(α) = σ(α·|Δ|) with Δ = (w₀ − w₁)·x, so the
    // smallest α ≥ 1 with p_max ≥ 0.999 is max(1, ln 999 / |Δ|).
    let side = 3;
    let mut rng = Rng::new(11);
    let w = random(&mut rng, 2 * side * side, 0.4);
    let spec = format!(
        r#"{{"version": 1, "input": {{"shape": [1, {side}, {side}]}}, "classes": ["a", "b"], "layers": [
        {{"op": "flatten"}}, {{"op": "linear", "param": "fc", "in_features": 9, "out_features": 2, "bias": false}}]}}"#
    );
    let model = network(&spec, vec![("fc.weight", w.clone(), vec![2, 9])]);
    let data = dataset([30, 1, side, side], 2, 12);
    let ctx = Context::new(&model, &data, 0, 7).unwrap();
    let spec = AlphaScalingConfig {
        inputs: vec![AlphaInputs::Data],
        count: None,
        alphas: vec![1.0, 2.0, 5.0, 10.0, 100.0, 1000.0],
        target_confidence: 0.999,
        bisection_steps: 40,
        save_inputs: false,
    };
    let out = alpha_scaling::run(&ctx, "a", &spec, &mut |_| {}).unwrap();
    let delta = |x: &[f32]| -> f64 {
        (0..9)
            .map(|k| (w[k] as f64 - w[9 + k] as f64) * x[k] as f64)
            .sum::<f64>()
    };
    let sigmoid = |u: f64| 1.0 / (1.0 + (-u).exp());
    let mut some_above_one = false;
    for (i, s) in out.samples.iter().enumerate() {
        let d = delta(data.item(i)).abs();
        let expected = (999f64.ln() / d).max(1.0);
        some_above_one |= expected > 1.5;
        match s.alpha {
            Some(a) => assert!(
                (a - expected).abs() <= 1e-4 * expected,
                "input {i}: α {a} vs closed form {expected}"
            ),
            None => assert!(expected > 1000.0, "input {i}: {expected}"),
        }
    }
    assert!(some_above_one, "the test needs inputs that need α > 1");
    let set = &out.summary.sets[0];
    for point in &set.curve {
        let a = point.alpha;
        let scaled = (0..30)
            .map(|i| sigmoid(a * delta(data.item(i)).abs()))
            .sum::<f64>()
            / 30.0;
        let clipped = (0..30)
            .map(|i| {
                let x: Vec<f32> = data
                    .item(i)
                    .iter()
                    .map(|&v| (a as f32 * v).min(1.0))
                    .collect();
                sigmoid(delta(&x).abs())
            })
            .sum::<f64>()
            / 30.0;
        assert!((point.mmc_scaled - scaled).abs() < 1e-5, "α {a}");
        assert!((point.mmc_clipped - clipped).abs() < 1e-5, "α {a}");
    }
}

#[test]
fn constant_logits_make_max_softmax_a_coin_flip_and_collapse_onto_class_zero() {
    // All weights zero: every input, real or noise, gets the same logits.
    let spec = r#"{"version": 1, "input": {"shape": [1, 6, 6]}, "classes": ["a", "b", "c"],
        "layers": [{"op": "flatten"}, {"op": "linear", "param": "fc", "in_features": 36, "out_features": 3}]}"#;
    let model = network(
        spec,
        vec![
            ("fc.weight", vec![0.0; 108], vec![3, 36]),
            ("fc.bias", vec![0.0; 3], vec![3]),
        ],
    );
    let data = dataset([25, 1, 6, 6], 3, 3);
    let ctx = Context::new(&model, &data, 0, 8).unwrap();
    let spec = NoiseConfig {
        families: NoiseFamily::ALL.to_vec(),
        count: Some(40),
        examples: 3,
        save_inputs: false,
    };
    let out = noise::run(&ctx, "n", &spec, &mut |_| {}).unwrap();
    for f in &out.summary.families {
        assert_eq!(f.auroc, 0.5, "{:?}", f.family);
        assert_eq!(f.fpr_at_95_tpr, 1.0);
        assert!((f.mmc - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            (f.top_class, f.class_histogram[0], f.collapsed),
            (0, 40, true)
        );
        assert!(f.examples.is_empty(), "nothing reaches 0.95");
    }
    assert_eq!(out.warnings.len(), 5);
    // The data numbers its classes, so the warnings do; with the model's
    // names they name the class and keep its index.
    assert!(
        out.warnings[0].contains("classified as class 0:"),
        "{}",
        out.warnings[0]
    );
    let ctx = ctx.with_class_names(vec!["a".into(), "b".into(), "c".into()]);
    let out = noise::run(&ctx, "n", &spec, &mut |_| {}).unwrap();
    assert!(
        out.warnings
            .iter()
            .all(|w| w.contains("classified as class a (0):")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn corruptions_start_at_the_identity_and_grow_with_severity() {
    let data = xai_audit::data::shipped_sample(&xai_audit::data::LoadOptions {
        channels: 1,
        size: Some((28, 28)),
        resize: false,
        limit: Some(20),
        ..Default::default()
    })
    .unwrap();
    let shape = [1, 28, 28];
    for c in Corruption::ALL {
        let distance = |severity: f64| -> f64 {
            (0..data.len())
                .map(|i| {
                    let x = data.item(i);
                    let mut rng = Rng::for_item(0, 99, i as u64);
                    let y = c.apply(x, shape, severity, &mut rng).unwrap();
                    assert!(y.iter().all(|v| (0.0..=1.0).contains(v)));
                    let sq: f64 = x
                        .iter()
                        .zip(&y)
                        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                        .sum();
                    (sq / x.len() as f64).sqrt()
                })
                .sum::<f64>()
                / data.len() as f64
        };
        let d: Vec<f64> = [0.0, 0.05, 1.0, 2.0, 3.0, 4.0, 5.0]
            .iter()
            .map(|&s| distance(s))
            .collect();
        assert_eq!(d[0], 0.0, "{c:?}");
        assert!(
            d[1] < 0.2 * d[6],
            "{c:?}: barely corrupted {:.4} vs severity 5 {:.4}",
            d[1],
            d[6]
        );
        assert!(
            d.windows(2).skip(1).all(|w| w[0] < w[1]),
            "{c:?}: not increasing with severity: {d:?}"
        );
    }
}

fn shipped_cnn_plan(batch_size: usize) -> Plan {
    let text = format!(
        "seed = 3\nbatch_size = {batch_size}\n\
         [[stress]]\nname = \"a\"\nkind = \"alpha_scaling\"\nalphas = [1, 2, 10]\n\
         [[stress]]\nname = \"n\"\nkind = \"noise\"\ncount = 9\n\
         [[stress]]\nname = \"c\"\nkind = \"corruptions\"\ncorruptions = [\"shot_noise\", \"motion_blur\", \"fog\"]\nseverities = [2, 5]\n\
         [[equivariance]]\nname = \"r\"\nkind = \"rotation\"\nangles_deg = [-20, 20]\n\
         [[equivariance]]\nname = \"l\"\nkind = \"lie_derivative\"\ntransforms = [\"rotate\"]\n\
         [[equivariance]]\nname = \"w\"\nkind = \"worst_case\"\nangles_deg = [0, 25]\nshifts_px = [0, 1.5]\n"
    );
    Plan::from_toml(&text, "test").unwrap()
}

/// Equal JSON, numbers within a relative 1e-6 (BLAS blocking depends on the
/// batch size, so logits may differ in their last bits).
fn assert_close(a: &serde_json::Value, b: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-6 * x.abs().max(y.abs()) + 1e-9,
                "{path}: {x} vs {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}");
            for (k, (u, v)) in x.iter().zip(y).enumerate() {
                assert_close(u, v, &format!("{path}[{k}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{path}"
            );
            for (k, u) in x {
                assert_close(u, &y[k], &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

#[test]
fn results_do_not_depend_on_the_batch_size() {
    let model = load_model(&root().join("assets/mnist_cnn.safetensors"), None).unwrap();
    let data = load_for_model(
        &DataRequest {
            limit: Some(13),
            ..Default::default()
        },
        [1, 28, 28],
        10,
    )
    .unwrap();
    let runs: Vec<serde_json::Value> = [4, 13]
        .iter()
        .map(|&b| {
            let plan = shipped_cnn_plan(b);
            let ctx = Context::new(&model.network, &data, plan.seed, plan.batch_size).unwrap();
            let r = run_stress(&ctx, &plan.stress, &plan.equivariance, &mut NoSink).unwrap();
            let mut v = Vec::new();
            for o in &r.stress {
                v.push(match o {
                    StressOutcome::AlphaScaling(o) => serde_json::json!([o.summary, o.samples]),
                    StressOutcome::Noise(o) => serde_json::json!([o.summary]),
                    StressOutcome::Calibration(o) => serde_json::json!([o.summary]),
                    StressOutcome::Corruptions(o) => serde_json::json!([o.summary, o.samples]),
                });
            }
            for o in &r.equivariance {
                v.push(match o {
                    EquivarianceOutcome::Consistency(o) => {
                        serde_json::json!([o.summary, o.samples])
                    }
                    EquivarianceOutcome::LieDerivative(o) => {
                        serde_json::json!([o.summary, o.samples])
                    }
                    EquivarianceOutcome::WorstCase(o) => serde_json::json!([o.summary, o.samples]),
                });
            }
            serde_json::Value::Array(v)
        })
        .collect();
    assert_eq!(runs[0].as_array().unwrap().len(), 6);
    assert_close(&runs[0], &runs[1], "results");
}

fn model_path() -> String {
    root()
        .join("assets/mnist_cnn.safetensors")
        .display()
        .to_string()
}

#[test]
fn run_writes_prints_and_validates_the_stress_sections() {
    let dir = tempfile::tempdir().unwrap();
    let plan = root().join("attacks/quick.toml");
    let r = xai(
        dir.path(),
        &[
            "run",
            &model_path(),
            "--plan",
            &plan.display().to_string(),
            "--limit",
            "30",
            "--out",
            "q.json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for needle in ["extrapolation", "equivariance", "AUROC", "ECE"] {
        assert!(r.stdout.contains(needle), "{needle} not in\n{}", r.stdout);
    }
    let report = read_report(&dir.path().join("q.json")).unwrap();
    let eq = report.summary.equivariance.as_ref().unwrap();
    let st = report.summary.stress.as_ref().unwrap();
    assert!(!st.noise.is_empty() && !st.calibration.is_empty() && !st.corruptions.is_empty());
    assert_eq!(
        report.timings.stress.len() + report.timings.equivariance.len(),
        report.plan.stress.len() + report.plan.equivariance.len()
    );
    // Each consistency summary is the share of per-input predictions that
    // equal the clean prediction.
    for (k, c) in eq.consistency.iter().enumerate() {
        for (j, t) in c.transforms.iter().enumerate() {
            let same = report
                .samples
                .iter()
                .filter(|s| {
                    let rec = &s.equivariance.as_ref().unwrap().consistency[k];
                    assert_eq!(rec.name, c.name);
                    assert_eq!(rec.predictions.len(), c.transforms.len());
                    rec.predictions[j] == s.prediction
                })
                .count();
            assert_eq!(
                same as f64 / 30.0,
                t.consistency,
                "{} {}",
                c.name,
                t.transform
            );
        }
    }
    // The sidecar holds the examples the summary lists.
    let tensors =
        candle_core::safetensors::load(dir.path().join("q.safetensors"), &Device::Cpu).unwrap();
    for c in &eq.consistency {
        if !c.examples.is_empty() {
            let t = &tensors[&format!("equivariance/{}", c.name)];
            assert_eq!(t.dims(), [c.examples.len(), 1, 28, 28]);
        }
    }
    for c in &st.corruptions {
        for k in &c.corruptions {
            let name = serde_json::to_value(k.corruption).unwrap();
            let t = &tensors[&format!("stress/{}/{}", c.name, name.as_str().unwrap())];
            assert_eq!(t.dims(), [c.severities.len(), 1, 28, 28]);
        }
    }
}

#[test]
fn bad_stress_and_equivariance_entries_fail_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "family.toml",
            "[[stress]]\nname = \"n\"\nkind = \"noise\"\nfamilies = [\"pink\"]\n",
            &["stress[0] \"n\"", "`families`", "pink"][..],
        ),
        (
            "key.toml",
            "[[stress]]\nname = \"c\"\nkind = \"calibration\"\nbinz = 10\n",
            &["stress[0] \"c\"", "`binz`"][..],
        ),
        (
            "sev.toml",
            "[[stress]]\nname = \"c\"\nkind = \"corruptions\"\nseverities = [6]\n",
            &["`severities`", "1..=5"][..],
        ),
        (
            "mode.toml",
            "[[equivariance]]\nname = \"s\"\nkind = \"shift\"\nmode = \"mirror\"\n",
            &["equivariance[0] \"s\"", "`mode`", "mirror"][..],
        ),
        (
            "kind.toml",
            "[[equivariance]]\nname = \"s\"\nkind = \"scale\"\n",
            &["`kind`", "\"scale\""][..],
        ),
        ("empty.toml", "seed = 1\n", &["no entries"][..]),
    ];
    for (file, text, needles) in cases {
        std::fs::write(dir.path().join(file), text).unwrap();
        let mut all = vec![file];
        all.extend_from_slice(needles);
        xai(
            dir.path(),
            &["run", &model_path(), "--plan", file, "--out", "r.json"],
        )
        .expect_error(&all);
        assert!(!dir.path().join("r.json").exists(), "{file} left a report");
    }
}
