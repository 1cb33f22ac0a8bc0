//! Attributions against independent references and invariants: saliency
//! against PyTorch's gradients, Integrated Gradients (maps and convergence
//! deltas), SmoothGrad with Captum's noise replayed, occlusion and Grad-CAM
//! (also inside residual blocks) against Captum 0.9
//! (`tests/fixtures/attributions.captum.safetensors`, written by
//! `examples/compare_captum.py --fixture`); deletion curves that prefer the
//! attribution ranking to a random one; and `run` with `[[attribution]]`
//! entries end to end: sidecar names, report records, schema, batch-size
//! independence and bad plans.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use xai_audit::attribution::gradcam::{GradCam, Upsample};
use xai_audit::attribution::integrated_gradients::IntegratedGradients;
use xai_audit::attribution::metrics::{
    auc, perturbation_curves, pixel_scores, ranking, Curve, CurveSettings,
};
use xai_audit::attribution::occlusion::Occlusion;
use xai_audit::attribution::saliency::Saliency;
use xai_audit::attribution::smoothgrad::{NoiseTunnelType, SmoothGrad};
use xai_audit::attribution::{Attribution, ExplainBatch, Explanation};
use xai_audit::model::{load_model, Network};
use xai_audit::report::io::read_report;
use xai_audit::report::tensors::read_tensors;
use xai_audit::rng::Rng;

use super::{fixture, root, xai};

fn captum() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("attributions.captum.safetensors"), &Device::Cpu)
        .unwrap()
}

fn shipped_cnn() -> Network {
    load_model(&root().join("assets/mnist_cnn.safetensors"), None)
        .unwrap()
        .network
}

fn labels(t: &Tensor) -> Vec<u32> {
    t.to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| v as u32)
        .collect()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Largest per-input `max |ours − theirs| / max |theirs|`. An all-zero
/// reference map (Grad-CAM after ReLU) must be matched by an all-zero map;
/// at least half the maps must be non-zero, or the check would be empty.
pub(super) fn max_rel_diff(ours: &[f32], theirs: &[f32], n: usize) -> f64 {
    assert_eq!(ours.len(), theirs.len());
    let per = ours.len() / n;
    let mut empty = 0;
    let mut worst = 0f64;
    for i in 0..n {
        let span = i * per..(i + 1) * per;
        let num = ours[span.clone()]
            .iter()
            .zip(&theirs[span.clone()])
            .map(|(a, b)| (*a as f64 - *b as f64).abs())
            .fold(0.0, f64::max);
        let den = theirs[span]
            .iter()
            .map(|b| b.abs() as f64)
            .fold(0.0, f64::max);
        if den == 0.0 {
            empty += 1;
            assert!(
                num < 1e-12,
                "map {i}: reference all zeros, ours up to {num}"
            );
        } else {
            worst = worst.max(num / den);
        }
    }
    assert!(
        2 * empty <= n,
        "{empty} of {n} reference maps are all zeros"
    );
    worst
}

fn explain(net: &Network, method: &dyn Attribution, x: &Tensor, classes: &[u32]) -> Explanation {
    method
        .explain(
            net,
            &ExplainBatch {
                x,
                classes,
                first_index: 0,
                seed: 0,
                stream: 0,
            },
        )
        .unwrap()
}

#[test]
fn saliency_equals_pytorch_gradients_on_the_shipped_cnn() {
    // `grad_logit` is PyTorch's d/dx of each digit's label logit (64 digits).
    let r: HashMap<String, Tensor> =
        candle_core::safetensors::load(fixture("mnist_cnn.ref.safetensors"), &Device::Cpu).unwrap();
    let net = shipped_cnn();
    let y = labels(&r["labels"]);
    let m = explain(&net, &Saliency { abs: false }, &r["x"], &y);
    let diff = max_rel_diff(&flat(&m.maps), &flat(&r["grad_logit"]), y.len());
    assert!(diff < 1e-5, "saliency vs torch: {diff:e}");
    let c = captum();
    let y = labels(&c["cnn/labels"]);
    let m = explain(&net, &Saliency { abs: true }, &c["cnn/x"], &y);
    let diff = max_rel_diff(&flat(&m.maps), &flat(&c["cnn/saliency_abs"]), y.len());
    assert!(diff < 1e-5, "abs saliency vs captum: {diff:e}");
}

#[test]
fn integrated_gradients_and_deltas_equal_captum() {
    let c = captum();
    let net = shipped_cnn();
    let y = labels(&c["cnn/labels"]);
    let out = explain(&net, &IntegratedGradients::default(), &c["cnn/x"], &y);
    let diff = max_rel_diff(&flat(&out.maps), &flat(&c["cnn/ig"]), y.len());
    assert!(diff < 1e-4, "IG vs captum: {diff:e}");
    let theirs: Vec<f32> = c["cnn/ig_delta"].to_vec1().unwrap();
    let ours = out.convergence_delta.unwrap();
    let mut nonzero = 0;
    for (a, b) in ours.iter().zip(&theirs) {
        // Both are differences of sums of ~784 f32 terms: agree to ~1e-5 absolute.
        assert!((a - *b as f64).abs() < 5e-5, "delta {a} vs captum {b}");
        nonzero += usize::from(b.abs() > 1e-4);
    }
    assert!(
        nonzero > 0,
        "the deltas compared are not all trivially zero"
    );
}

#[test]
fn smoothgrad_with_captums_noise_equals_captum() {
    let c = captum();
    let net = shipped_cnn();
    let y = labels(&c["cnn/labels"]);
    let noise = flat(&c["cnn/smoothgrad_noise"]);
    for (name, kind, abs) in [
        ("cnn/smoothgrad", NoiseTunnelType::SmoothGrad, false),
        ("cnn/smoothgrad_sq", NoiseTunnelType::SmoothGradSq, true),
    ] {
        let sg = SmoothGrad {
            samples: 5,
            stdev: 0.2,
            kind,
            abs,
            keep_noise: false,
        };
        let x = &c["cnn/x"];
        let maps = sg
            .smooth(
                &net,
                &ExplainBatch {
                    x,
                    classes: &y,
                    first_index: 0,
                    seed: 0,
                    stream: 0,
                },
                &noise,
            )
            .unwrap();
        let diff = max_rel_diff(&flat(&maps), &flat(&c[name]), y.len());
        assert!(diff < 1e-5, "{name} vs captum: {diff:e}");
    }
}

#[test]
fn occlusion_equals_captum() {
    let c = captum();
    let net = shipped_cnn();
    let y = labels(&c["cnn/labels"]);
    let occ = Occlusion {
        window: (4, 4),
        stride: (2, 2),
        baseline: xai_audit::attribution::Fill::Value(0.0),
        input_hw: (28, 28),
    };
    let m = explain(&net, &occ, &c["cnn/x"], &y);
    let diff = max_rel_diff(&flat(&m.maps), &flat(&c["cnn/occlusion"]), y.len());
    assert!(diff < 1e-4, "occlusion vs captum: {diff:e}");
}

#[test]
fn grad_cam_equals_captum_on_conv_relu_and_residual_layers() {
    let c = captum();
    let net = shipped_cnn();
    let y = labels(&c["cnn/labels"]);
    for layer in ["3", "4"] {
        let cam = GradCam {
            layer: layer.into(),
            relu: true,
            upsample: Upsample::Bilinear,
        };
        let m = explain(&net, &cam, &c["cnn/x"], &y);
        let diff = max_rel_diff(
            &flat(&m.maps),
            &flat(&c[&format!("cnn/grad_cam_{layer}")]),
            12,
        );
        assert!(diff < 1e-5, "grad-cam layer {layer} vs captum: {diff:e}");
    }
    // Inside residual blocks, without ReLU, nearest upsampling, 3 channels.
    let tiny = load_model(&fixture("tiny_all_ops.safetensors"), None)
        .unwrap()
        .network;
    let y = labels(&c["tiny/labels"]);
    for layer in ["4.body.3", "4.activation.0", "6.shortcut.1"] {
        let cam = GradCam {
            layer: layer.into(),
            relu: false,
            upsample: Upsample::Nearest,
        };
        let m = flat(&explain(&tiny, &cam, &c["tiny/x"], &y).maps);
        // The same map in every channel.
        let per = 3 * 144;
        let first: Vec<f32> = (0..4)
            .flat_map(|i| m[i * per..i * per + 144].to_vec())
            .collect();
        for i in 0..4 {
            for ch in 1..3 {
                assert_eq!(
                    m[i * per + ch * 144..i * per + (ch + 1) * 144],
                    m[i * per..i * per + 144]
                );
            }
        }
        let diff = max_rel_diff(&first, &flat(&c[&format!("tiny/grad_cam_{layer}")]), 4);
        assert!(diff < 1e-5, "grad-cam layer {layer} vs captum: {diff:e}");
    }
}

/// Removing pixels in the order an attribution ranks them drops the
/// explained class's probability faster than removing them in a random
/// order (and the reverse order is the slowest): averaged over 100 digits.
#[test]
fn deletion_auc_of_attribution_rankings_beats_random_rankings() {
    let net = shipped_cnn();
    let data = xai_audit::data::batch::load_for_model(
        &xai_audit::data::batch::DataRequest {
            limit: Some(100),
            ..Default::default()
        },
        [1, 28, 28],
        10,
    )
    .unwrap();
    let n = data.len();
    let x = Tensor::from_slice(&data.pixels, (n, 1, 28, 28), &Device::Cpu).unwrap();
    let classes: Vec<u32> = {
        use xai_audit::model::Classifier;
        let z: Vec<Vec<f32>> = net.logits(&x).unwrap().to_vec2().unwrap();
        z.iter().map(|r| xai_audit::stats::argmax(r)).collect()
    };
    let ig = IntegratedGradients {
        steps: 16,
        ..Default::default()
    };
    let maps = flat(&explain(&net, &ig, &x, &classes).maps);
    let settings = CurveSettings {
        steps: 20,
        baseline: 0.0,
    };
    let by_attribution: Vec<Vec<usize>> = maps
        .chunks(784)
        .map(|m| ranking(&pixel_scores(m, 1)))
        .collect();
    let reversed: Vec<Vec<usize>> = by_attribution
        .iter()
        .map(|o| o.iter().rev().copied().collect())
        .collect();
    let random: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            let mut o: Vec<usize> = (0..784).collect();
            Rng::for_item(5, 0, i as u64).shuffle(&mut o);
            o
        })
        .collect();
    let mean_auc = |orders: &[Vec<usize>]| -> f64 {
        let curves = perturbation_curves(
            &net,
            &data.pixels,
            [n, 1, 28, 28],
            &classes,
            orders,
            Curve::Deletion,
            settings,
        )
        .unwrap();
        curves.iter().map(|c| auc(c)).sum::<f64>() / n as f64
    };
    let (attr, rand, rev) = (
        mean_auc(&by_attribution),
        mean_auc(&random),
        mean_auc(&reversed),
    );
    println!("mean deletion AUC over {n} digits: IG ranking {attr:.4}, random {rand:.4}, reversed {rev:.4}");
    assert!(
        attr < 0.5 * rand && rand < rev,
        "deletion AUC: attribution {attr:.4}, random {rand:.4}, reversed {rev:.4}"
    );
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const PLAN: &str = r#"
seed = 3
batch_size = 100

[[attack]]
name = "pgd"
kind = "pgd"
eps = 0.1
steps = 3
step_size = 0.04

[[attribution]]
name = "sal"
method = "saliency"
on = "all"
metrics = ["deletion", "insertion", "sensitivity", "sparseness"]
curve_steps = 4
sensitivity_samples = 2

[[attribution]]
name = "ig"
method = "integrated_gradients"
steps = 6
baseline = "uniform"
on = ["pgd"]
metrics = ["sparseness"]

[[attribution]]
name = "sg"
method = "smoothgrad"
samples = 3
target = "label"
metrics = []
"#;

#[test]
fn run_writes_maps_metrics_and_a_valid_report_independent_of_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(dir.path(), "p.toml", PLAN);
    let model = root().join("assets/mnist_cnn.safetensors");
    let model = model.to_str().unwrap();
    let a = xai(
        dir.path(),
        &[
            "run",
            model,
            "--plan",
            &plan,
            "--limit",
            "24",
            "--out",
            "a/r.json",
            "--save-images",
            "img",
        ],
    );
    assert_eq!(a.code, 0, "{}", a.stderr);
    let b = xai(
        dir.path(),
        &[
            "run",
            model,
            "--plan",
            &plan,
            "--limit",
            "24",
            "--out",
            "b/r.json",
            "--batch-size",
            "7",
        ],
    );
    assert_eq!(b.code, 0, "{}", b.stderr);
    for line in [
        "sal              clean",
        "sal              pgd",
        "ig               pgd",
    ] {
        assert!(a.stdout.contains(line), "no `{line}` in\n{}", a.stdout);
    }

    let ra = read_report(&dir.path().join("a/r.json")).unwrap();
    let rb = read_report(&dir.path().join("b/r.json")).unwrap();
    // Random numbers are keyed per input, so only float round-off (matrix
    // products of another height) may differ between batch sizes.
    let close = |u: Option<f64>, v: Option<f64>, tol: f64, what: &str| match (u, v) {
        (Some(u), Some(v)) => assert!((u - v).abs() <= tol, "{what}: {u} vs {v}"),
        (u, v) => assert_eq!(u, v, "{what}"),
    };
    for (sa, sb) in ra.samples.iter().zip(&rb.samples) {
        for (a, b) in sa.attributions.iter().zip(&sb.attributions) {
            let mut pairs = vec![(&a.clean, &b.clean)];
            for (x, y) in a.attacks.iter().zip(&b.attacks) {
                pairs.push((&x.map, &y.map));
                let what = format!("input {} {} {}", sa.index, a.name, x.attack);
                assert!((x.top_k_overlap - y.top_k_overlap).abs() <= 0.05, "{what}");
                close(x.spearman, y.spearman, 1e-3, &what);
            }
            for (x, y) in pairs {
                let what = format!("input {} {}", sa.index, a.name);
                assert_eq!(x.target, y.target, "{what}");
                close(x.convergence_delta, y.convergence_delta, 1e-4, &what);
                close(x.deletion_auc, y.deletion_auc, 1e-6, &what);
                close(x.insertion_auc, y.insertion_auc, 1e-6, &what);
                close(x.max_sensitivity, y.max_sensitivity, 1e-4, &what);
                close(x.sparseness, y.sparseness, 1e-4, &what);
            }
        }
    }
    super::validate_against_schema(&dir.path().join("a/r.json"));

    let ta = read_tensors(&dir.path().join("a/r.safetensors")).unwrap();
    let tb = read_tensors(&dir.path().join("b/r.safetensors")).unwrap();
    let mut names: Vec<&String> = ta.keys().filter(|k| !k.starts_with("x/")).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "attr/ig/clean",
            "attr/ig/pgd",
            "attr/sal/clean",
            "attr/sal/pgd",
            "attr/sg/clean",
            "attr_curve/sal/clean/deletion",
            "attr_curve/sal/clean/insertion",
            "attr_curve/sal/pgd/deletion",
            "attr_curve/sal/pgd/insertion",
        ]
    );
    for name in names {
        let n = ta[name].dim(0).unwrap();
        let diff = max_rel_diff(&flat(&ta[name]), &flat(&tb[name]), n);
        assert!(diff < 1e-4, "{name} depends on the batch size: {diff:e}");
    }
    assert_eq!(ta["attr/sal/clean"].dims(), [24, 1, 28, 28]);
    assert_eq!(ta["attr_curve/sal/pgd/deletion"].dims(), [24, 5]);

    // Records against the tensors and the summary against the records.
    let s = &ra.summary.attributions;
    assert_eq!(s.len(), 3);
    let sal_curves: Vec<Vec<f32>> = ta["attr_curve/sal/clean/deletion"].to_vec2().unwrap();
    let mut overlap_sum = 0.0;
    for (i, sample) in ra.samples.iter().enumerate() {
        let sal = &sample.attributions[0];
        assert_eq!(sal.name, "sal");
        assert_eq!(sal.clean.target, sample.prediction);
        assert_eq!(sal.attacks[0].map.target, sample.attacks[0].prediction);
        assert!((sal.clean.deletion_auc.unwrap() - auc(&sal_curves[i])).abs() < 1e-12);
        assert!(sal.clean.max_sensitivity.unwrap() >= 0.0);
        let ovl = sal.attacks[0].top_k_overlap;
        assert!((0.0..=1.0).contains(&ovl));
        overlap_sum += ovl;
        let ig = &sample.attributions[1];
        assert!(ig.clean.convergence_delta.is_some() && ig.clean.deletion_auc.is_none());
        assert_eq!(sample.attributions[2].clean.target, sample.label);
        assert!(sample.attributions[2].attacks.is_empty());
    }
    assert_eq!(s[0].top_k, 40);
    assert!((s[0].attacks[0].mean_top_k_overlap - overlap_sum / 24.0).abs() < 1e-12);
    assert_eq!(s[1].model_calls_per_map, 6);
    assert_eq!(ra.timings.attributions.len(), 3);

    // Heatmaps: one per input per map set.
    let pngs = std::fs::read_dir(dir.path().join("img"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("_attr_")
        })
        .count();
    assert_eq!(pngs, 24 * 5);
    assert!(dir.path().join("img/00003_attr_ig_pgd.png").exists());
}

#[test]
fn bad_attribution_plans_fail_cleanly_naming_file_entry_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("assets/mnist_cnn.safetensors");
    let model = model.to_str().unwrap();
    let cases = [
        (
            "[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.1\n[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\non = [\"pgd\"]\n",
            vec!["bad.toml", "attribution[0] \"s\"", "`on`", "\"pgd\""],
        ),
        (
            "[[attribution]]\nname = \"g\"\nmethod = \"grad_cam\"\nlayer = \"5.body.0\"\n",
            vec!["bad.toml", "attribution[0] \"g\"", "`layer`", "5.body.0"],
        ),
        (
            "[[attribution]]\nname = \"i\"\nmethod = \"integrated_gradients\"\nstep = 10\n",
            vec!["bad.toml", "attribution[0] \"i\"", "`step`", "not a known key"],
        ),
        (
            "[[attribution]]\nname = \"o\"\nmethod = \"occlusion\"\nwindow = 4\nstride = 5\n",
            vec!["bad.toml", "attribution[0] \"o\"", "`stride`"],
        ),
    ];
    for (text, needles) in cases {
        let plan = write(dir.path(), "bad.toml", text);
        let r = xai(
            dir.path(),
            &[
                "run", model, "--plan", &plan, "--limit", "2", "--out", "r.json",
            ],
        );
        r.expect_error(&needles);
        assert!(
            !dir.path().join("r.json").exists(),
            "no report after a bad plan"
        );
    }
}

/// Captum 0.9's `GuidedBackprop`, `GuidedGradCam` (nearest upsampling,
/// the spec's last conv2d layer) and `DeepLift` (zero baselines, with its
/// convergence delta) on the shipped CNN and residual model, 32
/// digits for their labels (`examples/compare_captum.py --guided-fixture`),
/// on the reference path and through the fast engine (which hands guided
/// backpropagation to its reference network).
#[test]
fn guided_backprop_guided_grad_cam_and_deeplift_equal_captum_on_the_shipped_models() {
    use xai_audit::attribution::deeplift::DeepLift;
    use xai_audit::attribution::guided_backprop::GuidedBackprop;
    use xai_audit::attribution::guided_gradcam::GuidedGradCamConfig;
    use xai_audit::attribution::MethodSettings;
    let c: HashMap<String, Tensor> =
        candle_core::safetensors::load(fixture("captum/guided.safetensors"), &Device::Cpu).unwrap();
    let y = labels(&c["labels"]);
    let x = &c["x"];
    for name in ["cnn", "resnet"] {
        let net = load_model(
            &root().join(format!("assets/mnist_{name}.safetensors")),
            None,
        )
        .unwrap()
        .network;
        let mut config = GuidedGradCamConfig::default();
        config.resolve(net.spec()).unwrap();
        let ggc = config.build((28, 28));
        let fast = xai_audit::engine::FastNet::compile(&net).unwrap();
        let deeplift = DeepLift {
            baseline: xai_audit::attribution::Fill::Value(0.0),
        };
        for (method, key) in [
            (&GuidedBackprop as &dyn Attribution, "guided_backprop"),
            (&ggc as &dyn Attribution, "guided_grad_cam"),
            (&deeplift as &dyn Attribution, "deeplift"),
        ] {
            let theirs = flat(&c[&format!("{name}/{key}")]);
            let reference = flat(&explain(&net, method, x, &y).maps);
            let batch = ExplainBatch {
                x,
                classes: &y,
                first_index: 0,
                seed: 0,
                stream: 0,
            };
            let engine = flat(&method.explain(&fast, &batch).unwrap().maps);
            for (path, ours) in [("reference", &reference), ("fast engine", &engine)] {
                let diff = max_rel_diff(ours, &theirs, 32);
                assert!(diff <= 1e-4, "{name} {key} ({path}): {diff:.2e}");
            }
        }
        // DeepLIFT's convergence delta equals Captum's (not 0 on either:
        // max pooling and GELU keep their plain gradients in Captum and here).
        let ours = explain(&net, &deeplift, x, &y).convergence_delta.unwrap();
        let theirs = flat(&c[&format!("{name}/deeplift_delta")]);
        for (o, t) in ours.iter().zip(&theirs) {
            let tolerance = 1e-4 * (1.0 + t.abs() as f64);
            assert!(
                (o - *t as f64).abs() < tolerance,
                "{name}: delta {o} vs Captum's {t}"
            );
        }
        // The guide changes the map: it is not the plain gradient.
        let plain = flat(&explain(&net, &Saliency { abs: false }, x, &y).maps);
        assert!(max_rel_diff(&plain, &flat(&c[&format!("{name}/guided_backprop")]), 32) > 0.1);
    }
}

/// Captum 0.9's `DeepLiftShap` against four uniform-noise baselines shared
/// by the inputs (stored in the fixture and replayed through
/// `attribute_with`) on the shipped CNN and residual model, 32 digits for
/// their labels, on the reference path and through the fast engine; our
/// per-input convergence delta is the mean of Captum's four (input,
/// baseline) deltas.
#[test]
fn deeplift_shap_equals_captum_on_the_shipped_models() {
    use xai_audit::attribution::deeplift_shap::DeepLiftShap;
    use xai_audit::attribution::gradient_shap::{BaselineImages, BaselineSet};
    let c: HashMap<String, Tensor> =
        candle_core::safetensors::load(fixture("captum/guided.safetensors"), &Device::Cpu).unwrap();
    let y = labels(&c["labels"]);
    let x = &c["x"];
    let baselines = BaselineImages {
        images: flat(&c["deeplift_shap_baselines"]),
        per_input: false,
    };
    assert_eq!(baselines.len(28 * 28), 4);
    let method = DeepLiftShap {
        baselines: BaselineSet::Uniform { count: 4 },
    };
    let batch = ExplainBatch {
        x,
        classes: &y,
        first_index: 0,
        seed: 0,
        stream: 0,
    };
    for name in ["cnn", "resnet"] {
        let net = load_model(
            &root().join(format!("assets/mnist_{name}.safetensors")),
            None,
        )
        .unwrap()
        .network;
        let fast = xai_audit::engine::FastNet::compile(&net).unwrap();
        let theirs = flat(&c[&format!("{name}/deeplift_shap")]);
        let captum_delta = flat(&c[&format!("{name}/deeplift_shap_delta")]);
        let reference = method.attribute_with(&net, &batch, &baselines).unwrap();
        let engine = method.attribute_with(&fast, &batch, &baselines).unwrap();
        for (path, ours) in [("reference", &reference), ("fast engine", &engine)] {
            let diff = max_rel_diff(&flat(&ours.maps), &theirs, 32);
            eprintln!("{name} deeplift_shap ({path}): max relative error {diff:.2e}");
            assert!(diff <= 1e-4, "{name} deeplift_shap ({path}): {diff:.2e}");
            let deltas = ours.convergence_delta.as_ref().unwrap();
            for (i, o) in deltas.iter().enumerate() {
                let pairs = &captum_delta[4 * i..4 * i + 4];
                let t = pairs.iter().map(|d| *d as f64).sum::<f64>() / 4.0;
                let tolerance = 1e-4 * (1.0 + t.abs());
                assert!(
                    (o - t).abs() < tolerance,
                    "{name} input {i}: delta {o} vs the mean of Captum's {pairs:?}"
                );
            }
        }
        // Four baselines average to something other than any one of them.
        let first = BaselineImages {
            images: baselines.images[..28 * 28].to_vec(),
            per_input: false,
        };
        let one = method.attribute_with(&net, &batch, &first).unwrap();
        assert!(max_rel_diff(&flat(&one.maps), &theirs, 32) > 0.05);
    }
}
