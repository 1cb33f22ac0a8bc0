//! One-output (sigmoid) binary classifiers, issue 13: a model with a single
//! output z is audited as the binary classifier with logits [0, z], label 1
//! the positive class. Each test builds its model and data, and the figures
//! of the real binary, on both engines, are recomputed here in f64 from the
//! weights: clean accuracy (sigmoid(z) > 0.5 ↔ class 1) with labels that make
//! it 47%, FGSM's closed form on a linear model and the robust accuracy it
//! gives, ECE, saliency and Integrated Gradients maps of the log-odds with
//! completeness. A final sigmoid is dropped and said; every attribution
//! method runs, and its class-0 map is minus its class-1 map (the guided
//! ones: their closed forms) on tanh and ReLU networks; exact and
//! finite-difference Lie derivatives still agree. The old code audited such
//! a model as one class: labels 1 were refused, and all-0 labels gave 100%
//! accuracy, ECE 0 and all-zero maps.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use xai_audit::attribution::ExplainBatch;
use xai_audit::data::Dataset;
use xai_audit::engine::FastNet;
use xai_audit::model::{save_model, ArchSpec, Classifier, Network};
use xai_audit::report::io::read_report;
use xai_audit::report::tensors::read_tensors;
use xai_audit::report::types::Report;
use xai_audit::rng::Rng;
use xai_audit::stress::consistency::ShiftMode;
use xai_audit::stress::lie_derivative;
use xai_audit::stress::lie_derivative::{LieDerivativeConfig, LieMethod, LieTransform};
use xai_audit::stress::Context;

use super::xai;

const SIDE: usize = 6;
const PIXELS: usize = SIDE * SIDE;
const N: usize = 100;
/// Inputs whose label is the predicted class: the true accuracy is 47%.
const CORRECT: usize = 47;
const EPS: f32 = 0.05;

/// `N` seeded random images as IDX bytes, and as the loader reads them (p / 255).
fn images(seed: u64) -> (Vec<u8>, Vec<Vec<f32>>) {
    let mut rng = Rng::new(seed);
    let bytes: Vec<u8> = (0..N * PIXELS).map(|_| rng.below(256) as u8).collect();
    let x = bytes
        .chunks(PIXELS)
        .map(|img| img.iter().map(|&p| f32::from(p) / 255.0).collect())
        .collect();
    (bytes, x)
}

/// The first `CORRECT` inputs get their predicted class as label, the rest
/// the other class.
fn labels_for(z: &[f64]) -> Vec<u8> {
    z.iter()
        .enumerate()
        .map(|(i, &z)| u8::from((z > 0.0) == (i < CORRECT)))
        .collect()
}

fn write_data(dir: &Path, bytes: &[u8], labels: &[u8]) -> String {
    let images = dir.join("d-images-idx3-ubyte");
    xai_audit::data::write_idx_images(&images, N, SIDE, SIDE, bytes, false).unwrap();
    xai_audit::data::write_idx_labels(&dir.join("d-labels-idx1-ubyte"), labels, false).unwrap();
    images.display().to_string()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn random(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.uniform_range(-scale, scale)).collect()
}

fn save(path: &Path, spec: &str, tensors: Vec<(&str, Vec<f32>, Vec<usize>)>) {
    let spec = ArchSpec::from_json(spec, "test").unwrap();
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(n, v, s)| (n.to_string(), Tensor::from_vec(v, s, &Device::Cpu).unwrap()))
        .collect();
    save_model(path, &spec, &tensors).unwrap();
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(u, v)| *u as f64 * *v as f64).sum()
}

/// ECE over 15 equal-width bins `((b−1)/15, b/15]` of the top-label
/// probability max(σ(z), 1 − σ(z)), from Guo et al.'s definition.
fn ece(z: &[f64], labels: &[u8]) -> f64 {
    let bins = 15;
    let mut count = vec![0usize; bins];
    let mut hits = vec![0usize; bins];
    let mut confidence = vec![0f64; bins];
    for (&z, &y) in z.iter().zip(labels) {
        let p = sigmoid(z);
        let c = p.max(1.0 - p);
        let b = ((c * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        count[b] += 1;
        hits[b] += usize::from(u8::from(z > 0.0) == y);
        confidence[b] += c;
    }
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let n = count[b] as f64;
            n / z.len() as f64 * (hits[b] as f64 / n - confidence[b] / n).abs()
        })
        .sum()
}

fn run(dir: &Path, model: &Path, data: &str, plan: &str, engine: &str) -> (Report, PathBuf) {
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    let out = dir.join(format!("{engine}.json"));
    let r = xai(
        dir,
        &[
            "run",
            &model.display().to_string(),
            "--data",
            data,
            "--plan",
            "plan.toml",
            "--engine",
            engine,
            "--out",
            &out.display().to_string(),
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("logits [0, z]"), "{}", r.stdout);
    (
        read_report(&out).unwrap(),
        dir.join(format!("{engine}.safetensors")),
    )
}

fn tensor(tensors: &std::collections::HashMap<String, Tensor>, name: &str) -> Vec<Vec<f32>> {
    tensors[name].flatten_from(1).unwrap().to_vec2().unwrap()
}

fn attack_robust(report: &Report, name: &str) -> f64 {
    report
        .summary
        .attacks
        .iter()
        .find(|a| a.name == name)
        .unwrap()
        .robust_accuracy
}

fn calibration_ece(report: &Report) -> f64 {
    report.summary.stress.as_ref().unwrap().calibration[0].ece
}

fn convergence_delta(report: &Report, i: usize, name: &str) -> f64 {
    report.samples[i]
        .attributions
        .iter()
        .find(|a| a.name == name)
        .unwrap()
        .clean
        .convergence_delta
        .unwrap()
}

/// Checks what any one-output model's report must show against `z`, its
/// f64 logits: accuracy, predictions, probabilities, robust ≤ clean, ECE.
fn check_clean_and_calibration(report: &Report, z: &[f64], labels: &[u8]) {
    assert_eq!(report.summary.clean_accuracy, CORRECT as f64 / N as f64);
    for (i, s) in report.samples.iter().enumerate() {
        assert_eq!(s.label, u32::from(labels[i]));
        assert_eq!(s.prediction, u32::from(z[i] > 0.0), "input {i}");
        assert_eq!(s.top5.len(), 2);
        let p1 = s.top5.iter().find(|c| c.class == 1).unwrap().probability;
        assert!((p1 - sigmoid(z[i])).abs() < 1e-5, "{p1} vs σ({})", z[i]);
    }
    for a in &report.summary.attacks {
        assert!(a.robust_accuracy <= report.summary.clean_accuracy, "{a:?}");
    }
    let (ours, want) = (calibration_ece(report), ece(z, labels));
    assert!((ours - want).abs() < 1e-6, "ECE {ours} vs {want}");
    assert!(want > 0.05, "{want}");
}

const LINEAR_PLAN: &str = r#"
seed = 0
batch_size = 32

[[attack]]
name = "fgsm"
kind = "fgsm"
norm = "linf"
eps = 0.05

[[attack]]
name = "pgd"
kind = "pgd"
norm = "linf"
eps = 0.05
steps = 10
random_start = false

[[stress]]
name = "calibration"
kind = "calibration"

[[attribution]]
name = "sal1"
method = "saliency"
abs = false
target = 1
metrics = []

[[attribution]]
name = "sal0"
method = "saliency"
abs = false
target = 0
metrics = []

[[attribution]]
name = "ig"
method = "integrated_gradients"
steps = 8
target = "label"
metrics = []
"#;

#[test]
fn a_one_output_linear_model_is_audited_as_a_binary_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(1);
    // |w| ≥ 0.1, so every sign is clear; the bias centres z on the data.
    let w: Vec<f32> = (0..PIXELS)
        .map(|_| {
            let m = 0.1 + 0.9 * rng.uniform_f32();
            if rng.below(2) == 0 {
                m
            } else {
                -m
            }
        })
        .collect();
    let b = -0.5 * w.iter().sum::<f32>();
    let model = dir.path().join("linear.safetensors");
    let spec = r#"{"version": 1, "name": "linear-binary", "input": {"shape": [1, 6, 6]},
        "layers": [{"op": "flatten"}, {"op": "linear", "param": "fc", "in_features": 36, "out_features": 1}]}"#;
    save(
        &model,
        spec,
        vec![
            ("fc.weight", w.clone(), vec![1, PIXELS]),
            ("fc.bias", vec![b], vec![1]),
        ],
    );
    let (bytes, x) = images(2);
    let z: Vec<f64> = x.iter().map(|xi| dot(xi, &w) + b as f64).collect();
    assert!(z.iter().all(|v| v.abs() > 1e-3), "a z too close to 0");
    let labels = labels_for(&z);
    let data = write_data(dir.path(), &bytes, &labels);

    let mut reports = Vec::new();
    for engine in ["reference", "fast"] {
        let (report, sidecar) = run(dir.path(), &model, &data, LINEAR_PLAN, engine);
        assert_eq!(report.model.class_names, ["0", "1"]);
        assert!(report.warnings[0].contains("logits [0, z]"));
        check_clean_and_calibration(&report, &z, &labels);
        let t = read_tensors(&sidecar).unwrap();
        assert_eq!(tensor(&t, "x/clean"), x);

        // FGSM's closed form: the cross-entropy gradient is (σ(z) − y)·w, so
        // each pixel moves by ε against the true class's log-odds —
        // −ε·sign(w) for label 1, +ε·sign(w) for label 0 — then is clipped.
        let adv = tensor(&t, "x/adv/fgsm");
        let mut robust = 0;
        for i in 0..N {
            let toward = if labels[i] == 1 { -1.0 } else { 1.0 };
            for j in 0..PIXELS {
                let want = (x[i][j] + toward * EPS * w[j].signum()).clamp(0.0, 1.0);
                assert!(
                    (adv[i][j] - want).abs() <= 1e-6,
                    "{engine}: input {i} pixel {j}: {} vs {want}",
                    adv[i][j]
                );
            }
            let z_adv = dot(&adv[i], &w) + b as f64;
            let predicted = u32::from(z_adv > 0.0);
            assert_eq!(report.samples[i].attacks[0].prediction, predicted);
            robust += usize::from(predicted == u32::from(labels[i]));
        }
        let robust = robust as f64 / N as f64;
        assert_eq!(attack_robust(&report, "fgsm"), robust);
        // On a linear model FGSM's corner is the optimum PGD also reaches.
        assert_eq!(attack_robust(&report, "pgd"), robust);
        assert!(robust < report.summary.clean_accuracy, "{robust}");

        // Saliency of the log-odds: +w for class 1, −w for class 0 (the
        // class-0 logit is the constant 0 and would give all-zero maps).
        let (s1, s0) = (tensor(&t, "attr/sal1/clean"), tensor(&t, "attr/sal0/clean"));
        for i in 0..N {
            for j in 0..PIXELS {
                assert!((s1[i][j] - w[j]).abs() < 1e-6);
                assert_eq!(s0[i][j], -s1[i][j]);
            }
        }
        // Integrated Gradients from the zero baseline, exact on a linear
        // model: ±x·w, summing to the log-odds' change ±(z(x) − z(0)).
        let ig = tensor(&t, "attr/ig/clean");
        for i in 0..N {
            let sign = if labels[i] == 1 { 1.0 } else { -1.0f64 };
            for j in 0..PIXELS {
                let want = sign as f32 * x[i][j] * w[j];
                assert!((ig[i][j] - want).abs() < 1e-5, "{} vs {want}", ig[i][j]);
            }
            let sum: f64 = ig[i].iter().map(|&v| v as f64).sum();
            assert!((sum - sign * (z[i] - b as f64)).abs() < 1e-4);
            assert!(convergence_delta(&report, i, "ig").abs() < 1e-4);
        }
        reports.push(report);
    }
    // Both engines go through the same wrapper: the same figures.
    let (a, f) = (&reports[0], &reports[1]);
    for name in ["fgsm", "pgd"] {
        assert_eq!(attack_robust(a, name), attack_robust(f, name));
    }
    assert!((calibration_ece(a) - calibration_ece(f)).abs() < 1e-9);
}

const MLP_PLAN: &str = r#"
seed = 3
batch_size = 25

[[attack]]
name = "pgd"
kind = "pgd"
norm = "linf"
eps = 0.05
steps = 10

[[stress]]
name = "calibration"
kind = "calibration"

[[attribution]]
name = "ig"
method = "integrated_gradients"
steps = 32
target = "label"
metrics = ["deletion"]
"#;

/// `1×6×6 → linear 36→8 → tanh → linear 8→1 → sigmoid`, classes cat, dog.
const MLP_SPEC: &str = r#"{"version": 1, "name": "mlp-sigmoid", "input": {"shape": [1, 6, 6]},
    "classes": ["cat", "dog"],
    "layers": [{"op": "flatten"},
        {"op": "linear", "param": "h", "in_features": 36, "out_features": 8},
        {"op": "tanh"},
        {"op": "linear", "param": "o", "in_features": 8, "out_features": 1},
        {"op": "sigmoid"}]}"#;

struct Mlp {
    hw: Vec<f32>,
    hb: Vec<f32>,
    ow: Vec<f32>,
    ob: f32,
}

impl Mlp {
    fn random(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        Mlp {
            hw: random(&mut rng, 8 * PIXELS, 0.5),
            hb: random(&mut rng, 8, 0.5),
            ow: random(&mut rng, 8, 1.5),
            ob: 0.0,
        }
    }

    /// The pre-sigmoid output z, in f64.
    fn z(&self, x: &[f32]) -> f64 {
        let hidden: Vec<f64> = (0..8)
            .map(|k| (dot(&self.hw[k * PIXELS..(k + 1) * PIXELS], x) + self.hb[k] as f64).tanh())
            .collect();
        hidden
            .iter()
            .zip(&self.ow)
            .map(|(h, &o)| h * o as f64)
            .sum::<f64>()
            + self.ob as f64
    }
}

#[test]
fn a_final_sigmoid_is_dropped_and_the_audit_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut mlp = Mlp::random(4);
    let (bytes, x) = images(5);
    // Centre z on the data so both classes are predicted.
    let mut z: Vec<f64> = x.iter().map(|xi| mlp.z(xi)).collect();
    let mut sorted = z.clone();
    sorted.sort_by(f64::total_cmp);
    mlp.ob = -(0.5 * (sorted[N / 2 - 1] + sorted[N / 2])) as f32;
    z = x.iter().map(|xi| mlp.z(xi)).collect();
    assert!(z.iter().all(|v| v.abs() > 1e-3), "a z too close to 0");
    let labels = labels_for(&z);
    let data = write_data(dir.path(), &bytes, &labels);
    let model = dir.path().join("mlp.safetensors");
    save(
        &model,
        MLP_SPEC,
        vec![
            ("h.weight", mlp.hw.clone(), vec![8, PIXELS]),
            ("h.bias", mlp.hb.clone(), vec![8]),
            ("o.weight", mlp.ow.clone(), vec![1, 8]),
            ("o.bias", vec![mlp.ob], vec![1]),
        ],
    );

    let r = xai(dir.path(), &["inspect", &model.display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for needle in [
        "classes (2): cat, dog",
        "logits [0, z]",
        "label 1 (dog) is the positive class",
        "layer 4, sigmoid",
        "drops it",
    ] {
        assert!(r.stdout.contains(needle), "{needle:?} not in\n{}", r.stdout);
    }

    let z0 = mlp.z(&[0.0; PIXELS]);
    for engine in ["reference", "fast"] {
        let (report, sidecar) = run(dir.path(), &model, &data, MLP_PLAN, engine);
        assert_eq!(report.model.class_names, ["cat", "dog"]);
        let warnings = report.warnings.join("\n");
        assert!(
            warnings.contains("label 1 (dog)") && warnings.contains("drops it"),
            "{warnings}"
        );
        // σ(z), not σ(σ(z)): the probabilities come from the pre-sigmoid z.
        check_clean_and_calibration(&report, &z, &labels);
        // Completeness of the log-odds: Σ IG = ±(z(x) − z(0)), and the
        // reported convergence delta is measured against that same F.
        let ig = tensor(&read_tensors(&sidecar).unwrap(), "attr/ig/clean");
        for i in 0..N {
            let sign = if labels[i] == 1 { 1.0 } else { -1.0f64 };
            let change = sign * (z[i] - z0);
            let sum: f64 = ig[i].iter().map(|&v| v as f64).sum();
            let delta = convergence_delta(&report, i, "ig");
            assert!(
                (delta - (sum - change)).abs() < 1e-4,
                "{delta} vs {sum} − {change}"
            );
            assert!(delta.abs() < 1e-3 * (1.0 + change.abs()), "{delta}");
            assert!(ig[i].iter().any(|&v| v != 0.0));
        }
    }
}

/// `1×6×6 → conv 1→3 k3 p1 → act → flatten → linear 108→1`, random
/// weights.
fn conv_model(seed: u64, act: &str) -> Network {
    let spec = format!(
        r#"{{"version": 1, "input": {{"shape": [1, 6, 6]}}, "layers": [
        {{"op": "conv2d", "param": "c", "in_channels": 1, "out_channels": 3, "kernel_size": 3, "padding": 1}},
        {{"op": "{act}"}}, {{"op": "flatten"}},
        {{"op": "linear", "param": "fc", "in_features": 108, "out_features": 1}}]}}"#
    );
    let mut rng = Rng::new(seed);
    let tensors = [
        ("c.weight", random(&mut rng, 27, 1.0), vec![3, 1, 3, 3]),
        ("c.bias", random(&mut rng, 3, 0.3), vec![3]),
        ("fc.weight", random(&mut rng, 108, 0.5), vec![1, 108]),
        ("fc.bias", random(&mut rng, 1, 0.3), vec![1]),
    ]
    .into_iter()
    .map(|(n, v, s)| (n.to_string(), Tensor::from_vec(v, s, &Device::Cpu).unwrap()))
    .collect();
    Network::from_tensors(ArchSpec::from_json(&spec, "test").unwrap(), &tensors)
        .unwrap()
        .0
}

/// How a method's class-0 map on a one-output model (score −z) follows
/// from its class-1 map (score z).
#[derive(Debug, Clone, Copy, PartialEq)]
enum ClassRelation {
    /// The map is linear in the explained score: class 0's is minus class
    /// 1's.
    Negation,
    /// Guided backpropagation through the one ReLU layer: the gradient at
    /// the ReLU is `±w`, of which only the positive part passes, so
    /// `guided(1) − guided(0)` is the plain gradient of z (on a tanh model,
    /// with no ReLU to guide, plain negation).
    GuidedSplitsTheGradient,
    /// Guided backpropagation times the ReLU'd Grad-CAM, whose raw map
    /// (pooled gradients, linear in the score) negates:
    /// `ggc(c) = guided(c) ⊙ relu(±cam₁)`.
    GuidedTimesSignedCam,
}

/// The maps of `method` (a plan entry's keys) on `n` inputs for `class`.
fn binary_maps(
    model: &dyn Classifier,
    spec: &ArchSpec,
    toml_entry: &str,
    x: &Tensor,
    class: u32,
) -> xai_audit::attribution::Explanation {
    use xai_audit::attribution::MethodConfig;
    let table: toml::Table = toml::from_str(toml_entry).unwrap();
    let mut e = xai_audit::entry::Entry::new("attribution t".into(), table);
    let mut config = MethodConfig::from_entry(&mut e).unwrap();
    assert!(!e.failed(), "{toml_entry}");
    config.resolve(spec).unwrap();
    let method = config.build((SIDE, SIDE));
    let classes = vec![class; x.dim(0).unwrap()];
    let batch = ExplainBatch {
        x,
        classes: &classes,
        first_index: 3,
        seed: 11,
        stream: 0,
    };
    method
        .explain(model, &batch)
        .unwrap_or_else(|e| panic!("{toml_entry}: {e}"))
}

fn flat_maps(e: &xai_audit::attribution::Explanation) -> Vec<f32> {
    e.maps.flatten_all().unwrap().to_vec1().unwrap()
}

/// Every method the build knows (`METHODS`: a new one fails here until it
/// has a case) runs on a one-output model, on the reference path and the
/// fast engine, on a tanh and a ReLU network, and its class-0 map (the
/// score −z) is what its class-1 map (z) says it must be: minus it for the
/// maps linear in the score (gradients, DeepLIFT's multipliers with fixed
/// secants, the noise and baselines keyed by the input, the least-squares
/// and Lasso fits, which are odd in the scores), the closed forms above
/// for the guided ones.
#[test]
fn every_attribution_method_maps_class_0_as_its_class_1_map_says() {
    use ClassRelation::*;
    let cases: &[(&str, &str, ClassRelation)] = &[
        ("saliency", "", Negation),
        ("input_x_gradient", "", Negation),
        ("integrated_gradients", "", Negation),
        ("smoothgrad", "samples = 4\nstdev = 0.2", Negation),
        ("occlusion", "window = 2\nstride = 2", Negation),
        (
            "grad_cam",
            "layer = \"1\"\nrelu = false\nupsample = \"nearest\"",
            Negation,
        ),
        ("guided_backprop", "", GuidedSplitsTheGradient),
        ("guided_grad_cam", "layer = \"1\"", GuidedTimesSignedCam),
        ("deeplift", "baseline = 0.2", Negation),
        ("deeplift_shap", "baseline_samples = 3", Negation),
        (
            "gradient_shap",
            "samples = 4\nstdev = 0.1\nbaselines = \"uniform\"\nbaseline_samples = 3",
            Negation,
        ),
        ("kernel_shap", "samples = 60\npatch_size = 2", Negation),
        (
            "lime",
            "samples = 60\npatch_size = 2\nalpha = 0.001",
            Negation,
        ),
        // Relevance is linear in what is put on the output (±z).
        ("lrp", "composite = \"epsilon_gamma_box\"", Negation),
    ];
    let mut names: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let mut known = xai_audit::attribution::METHODS.to_vec();
    names.sort_unstable();
    known.sort_unstable();
    assert_eq!(names, known, "a case per method");

    let n = 5;
    let (_, x) = images(7);
    let x = Tensor::from_vec(x[..n].concat(), (n, 1, SIDE, SIDE), &Device::Cpu).unwrap();
    for act in ["tanh", "relu"] {
        let net = conv_model(6, act);
        let fast = FastNet::compile(&net).unwrap();
        for (engine, model) in [("reference", &net as &dyn Classifier), ("fast", &fast)] {
            let maps = |keys: &str, class: u32| binary_maps(model, net.spec(), keys, &x, class);
            for &(name, keys, relation) in cases {
                let what = format!("{name} on the {act} model ({engine})");
                let keys = format!("method = \"{name}\"\n{keys}");
                let (one, zero) = (maps(&keys, 1), maps(&keys, 0));
                let (m1, m0) = (flat_maps(&one), flat_maps(&zero));
                let scale = m1.iter().chain(&m0).fold(0f32, |a, v| a.max(v.abs()));
                assert!(scale > 1e-3, "{what}: the maps are ~0");
                // What class 0's map must be, from class 1's (and, for the
                // guided ones, the other maps of class 1).
                let want: Vec<f32> = match (relation, act) {
                    (Negation, _) | (GuidedSplitsTheGradient, "tanh") => {
                        m1.iter().map(|v| -v).collect()
                    }
                    (GuidedSplitsTheGradient, _) => {
                        let plain = flat_maps(&maps("method = \"saliency\"", 1));
                        m1.iter().zip(&plain).map(|(g, p)| g - p).collect()
                    }
                    (GuidedTimesSignedCam, _) => {
                        let cam_keys = "method = \"grad_cam\"\nlayer = \"1\"\nrelu = false\nupsample = \"nearest\"";
                        let cam = flat_maps(&maps(cam_keys, 1));
                        let guided1 = flat_maps(&maps("method = \"guided_backprop\"", 1));
                        let guided0 = flat_maps(&maps("method = \"guided_backprop\"", 0));
                        // Class 1's own map checks the form itself.
                        for (j, ((m, g), c)) in m1.iter().zip(&guided1).zip(&cam).enumerate() {
                            let form = g * c.max(0.0);
                            assert!(
                                (m - form).abs() <= 1e-5 * scale,
                                "{what}: class 1 at {j}: {m} vs {form}"
                            );
                        }
                        guided0
                            .iter()
                            .zip(&cam)
                            .map(|(g, c)| g * (-c).max(0.0))
                            .collect()
                    }
                };
                for (j, (a, b)) in m0.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * scale,
                        "{what}: class 0 at {j}: {a} vs {b}"
                    );
                }
                // And the guided maps are not simply negated on ReLU models.
                if relation != Negation && act == "relu" {
                    let off = m0
                        .iter()
                        .zip(&m1)
                        .map(|(a, b)| (a + b).abs())
                        .fold(0f32, f32::max);
                    assert!(off > 1e-3 * scale, "{what}: class 0 is minus class 1");
                }
                // Convergence deltas (Σ map − score gap) are odd in the
                // score too.
                match (&one.convergence_delta, &zero.convergence_delta) {
                    (Some(d1), Some(d0)) => {
                        for (a, b) in d0.iter().zip(d1) {
                            assert!((a + b).abs() < 1e-4, "{what}: deltas {a} and {b}");
                        }
                    }
                    (None, None) => {}
                    _ => panic!("{what}: a convergence delta for one class only"),
                }
            }
        }
    }
}

#[test]
fn exact_and_finite_difference_lie_derivatives_agree_on_a_one_output_model() {
    // The exact method differentiates each of the logits [0, z] by the chain
    // rule; a class-0 "logit" with z's gradient would double it.
    let net = conv_model(8, "tanh");
    let (_, x) = images(9);
    let data = Dataset {
        pixels: x[..16].concat(),
        shape: [16, 1, SIDE, SIDE],
        labels: (0..16).map(|i| i % 2).collect(),
        class_names: vec!["0".into(), "1".into()],
        source: "test".into(),
        sha256: String::new(),
    };
    let ctx = Context::new(&net, &data, 0, 16).unwrap();
    let spec = |method, step_px, step_deg| LieDerivativeConfig {
        transforms: vec![
            LieTransform::TranslateX,
            LieTransform::TranslateY,
            LieTransform::Rotate,
        ],
        method,
        step_px,
        step_deg,
        border: ShiftMode::Zero,
    };
    let exact =
        lie_derivative::run(&ctx, "l", &spec(LieMethod::Exact, 0.1, 0.5), &mut |_| {}).unwrap();
    let approx = lie_derivative::run(
        &ctx,
        "l",
        &spec(LieMethod::FiniteDifference, 1e-3, 0.01),
        &mut |_| {},
    )
    .unwrap();
    for (e, a) in exact.samples.iter().zip(&approx.samples) {
        for (&u, &v) in e.values.iter().zip(&a.values) {
            let (u, v) = (u as f64, v as f64);
            assert!(u > 1e-4, "{u}");
            // Bilinear resampling's kink at t = 0 leaves an O(h) gap.
            assert!((u - v).abs() <= 2e-2 * u + 2e-4, "exact {u} vs {v}");
        }
    }
}
