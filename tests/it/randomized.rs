//! Randomized models and Expectation over Transformation: the shipped CNN
//! with a random resize-and-pad input layer (Xie et al. 2018) or with
//! Monte-Carlo dropout before its last layer. Their draws are reproducible
//! and batch-independent, another seed or draw number draws afresh, the
//! fast engine refuses them by name, EoT (`eot_samples`) breaks more inputs
//! than single-draw gradients at the same budget and steps, EoT changes
//! nothing on a deterministic model, and the randomized-model sanity flag
//! fires exactly when a gradient attack ran without EoT.

use std::path::Path;

use candle_core::Tensor;
use xai_audit::attack::{AttackConfig, AttackSpec, Norm};
use xai_audit::audit::run::run_audit;
use xai_audit::audit::sanity::sanity_checks;
use xai_audit::data::Dataset;
use xai_audit::engine::{select, Engine};
use xai_audit::model::{load_model_with, Classifier, ModelOptions, Network, Objective};
use xai_audit::plan::Plan;
use xai_audit::progress::NoSink;

use super::attacks::plan;
use super::{root, xai};

/// The shipped CNN's spec with `node` inserted: before its first layer
/// (`first = true`, reading the input) or before its last one.
fn spec_with(node: serde_json::Value, first: bool) -> String {
    let cnn = root().join("assets/mnist_cnn.safetensors");
    let loaded = load_model_with(&cnn, &ModelOptions::default()).unwrap();
    let mut spec: serde_json::Value =
        serde_json::from_str(&loaded.network.spec().to_json_pretty()).unwrap();
    let nodes = spec["nodes"].as_array_mut().unwrap();
    let at = if first { 0 } else { nodes.len() - 1 };
    let name = node["name"].as_str().unwrap().to_string();
    let mut node = node;
    node["inputs"] = match at {
        0 => serde_json::json!(["input"]),
        _ => nodes[at]["inputs"].clone(),
    };
    nodes[at]["inputs"] = serde_json::json!([name]);
    nodes.insert(at, node);
    spec.to_string()
}

/// Random resizing to 20…28 pixels, padded back to 28×28 with the
/// normalized background.
fn resize_pad_spec() -> String {
    spec_with(
        serde_json::json!({"name": "rrp", "op": "random_resize_pad", "min_size": 20, "value": -0.4242}),
        true,
    )
}

/// Monte-Carlo dropout (p = 0.5) before the last linear layer.
fn mc_dropout_spec() -> String {
    spec_with(
        serde_json::json!({"name": "drop", "op": "dropout", "p": 0.5, "active": true}),
        false,
    )
}

fn load(dir: &Path, spec: &str) -> Network {
    let arch = dir.join("arch.json");
    std::fs::write(&arch, spec).unwrap();
    let options = ModelOptions {
        arch: Some(arch),
        ..Default::default()
    };
    load_model_with(&root().join("assets/mnist_cnn.safetensors"), &options)
        .unwrap()
        .network
}

fn digits(n: usize) -> Dataset {
    super::attacks::shipped_digits(n)
}

fn rows(
    model: &dyn Classifier,
    data: &Dataset,
    first: usize,
    len: usize,
    draw: u64,
) -> Vec<Vec<f32>> {
    let per = data.item_len();
    let x = Tensor::from_slice(
        &data.pixels[first * per..(first + len) * per],
        (len, 1, 28, 28),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    model.logits_draw(&x, draw).unwrap().to_vec2().unwrap()
}

fn pgd(name: &str, eps: f64, steps: usize, eot_samples: usize) -> AttackSpec {
    // No random start: attacks at different plan positions draw different
    // starts, and the comparisons here are of the gradients alone.
    let text = format!(
        "[[attack]]\nname = \"{name}\"\nkind = \"pgd\"\neps = {eps}\nsteps = {steps}\neot_samples = {eot_samples}\nrandom_start = false\n"
    );
    Plan::from_toml(&text, "test").unwrap().attacks.remove(0)
}

fn robust(results: &xai_audit::attack::results::AuditResults, i: usize, data: &Dataset) -> usize {
    let a = &results.attacks[i];
    (0..data.len())
        .filter(|&j| a.predictions.predicted[j] == data.labels[j])
        .count()
}

#[test]
fn draws_are_reproducible_batch_independent_and_keyed_by_seed_and_draw() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits(8);
    for spec in [resize_pad_spec(), mc_dropout_spec()] {
        let mut model = load(dir.path(), &spec);
        assert!(model.is_randomized());
        let batch = rows(&model, &data, 0, 8, 0);
        assert_eq!(
            batch,
            rows(&model, &data, 0, 8, 0),
            "the same call, the same draw"
        );
        for (i, row) in batch.iter().enumerate() {
            // The same draw alone: equal up to the reference path's rounding
            // (its matrix products differ with the batch's shape), while a
            // new draw moves logits by whole units.
            let alone = rows(&model, &data, i, 1, 0);
            for (a, b) in alone[0].iter().zip(row) {
                assert!(
                    (a - b).abs() < 1e-4,
                    "row {i} alone and in a batch of 8: {a} vs {b}"
                );
            }
        }
        // Draw 0 is what a plain call sees.
        let plain: Vec<Vec<f32>> = model
            .logits(
                &Tensor::from_slice(&data.pixels, (8, 1, 28, 28), &candle_core::Device::Cpu)
                    .unwrap(),
            )
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(plain, batch);
        let redrawn = rows(&model, &data, 0, 8, 1);
        let changed = (0..8).filter(|&i| redrawn[i] != batch[i]).count();
        assert!(
            changed >= 6,
            "draw 1 differs from draw 0 on {changed} of 8 rows"
        );
        model.set_draw_seed(99);
        let reseeded = rows(&model, &data, 0, 8, 0);
        let changed = (0..8).filter(|&i| reseeded[i] != batch[i]).count();
        assert!(changed >= 6, "another seed changed {changed} of 8 rows");
    }
    // The deterministic CNN ignores the draw number.
    let (cnn, _) = super::attacks::shipped_cnn_and_digits(1);
    assert!(!cnn.is_randomized());
    assert_eq!(rows(&cnn, &data, 0, 8, 0), rows(&cnn, &data, 0, 8, 3));
}

#[test]
fn the_fast_engine_draws_what_the_reference_draws() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits(12);
    let x = Tensor::from_slice(&data.pixels, (12, 1, 28, 28), &candle_core::Device::Cpu).unwrap();
    for spec in [resize_pad_spec(), mc_dropout_spec()] {
        let mut model = load(dir.path(), &spec);
        model.set_draw_seed(5);
        let fast = select(&model, Engine::Auto).unwrap();
        assert_eq!(fast.name, "fast");
        assert!(fast.fallback.is_none() && fast.classifier.is_randomized());
        let fast = fast.classifier;
        for draw in [0, 1, 7] {
            let a: Vec<Vec<f32>> = model.logits_draw(&x, draw).unwrap().to_vec2().unwrap();
            let b: Vec<Vec<f32>> = fast.logits_draw(&x, draw).unwrap().to_vec2().unwrap();
            for (ra, rb) in a.iter().zip(&b) {
                for (u, v) in ra.iter().zip(rb) {
                    assert!((u - v).abs() < 1e-3, "draw {draw}: logits {u} vs {v}");
                }
            }
            let objective = Objective::CrossEntropy(&data.labels);
            let ga: Vec<f32> = model
                .input_grad_draw(&x, objective, draw)
                .unwrap()
                .grad
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let gb: Vec<f32> = fast
                .input_grad_draw(&x, objective, draw)
                .unwrap()
                .grad
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let scale = ga.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = ga
                .iter()
                .zip(&gb)
                .fold(0f32, |m, (u, v)| m.max((u - v).abs()));
            assert!(
                worst <= 1e-3 * scale,
                "draw {draw}: gradient off by {worst} of {scale}"
            );
        }
    }
}

#[test]
fn eot_breaks_more_inputs_than_single_draw_gradients_on_a_randomized_model() {
    // The random resize-and-pad defence: single-draw PGD follows one draw's
    // gradient per step; averaging 10 draws (Athalye et al. 2018) finds
    // perturbations that survive the randomness. Same ε, steps and seed.
    let dir = tempfile::tempdir().unwrap();
    // On the fast engine, which draws what the reference draws (above).
    let engine = select(&load(dir.path(), &resize_pad_spec()), Engine::Auto).unwrap();
    let model = engine.classifier.as_ref();
    let data = digits(40);
    let attacks = vec![pgd("single", 0.15, 10, 1), pgd("eot", 0.15, 10, 10)];
    let results = run_audit(model, &data, &plan(attacks, 20), &mut NoSink).unwrap();
    let (single, eot) = (robust(&results, 0, &data), robust(&results, 1, &data));
    assert!(
        eot < single,
        "robust inputs: {eot} with EoT, {single} with single-draw gradients"
    );
    // Every verdict is the verdict draw's: a point that only one attack
    // step's draw misclassified is not counted broken.
    for a in &results.attacks {
        let x = Tensor::from_slice(
            &a.adversarial,
            (data.len(), 1, 28, 28),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let verdict: Vec<Vec<f32>> = model
            .logits_draw(&x, xai_audit::model::draw::VERDICT_DRAW)
            .unwrap()
            .to_vec2()
            .unwrap();
        for (i, row) in verdict.iter().enumerate() {
            let wrong = xai_audit::stats::argmax(row) != data.labels[i];
            assert_eq!(a.success[i], wrong, "{} input {i}", a.spec.name);
        }
    }
    // Each EoT step costs its draws.
    assert_eq!(results.attacks[0].gradient_evaluations, 10);
    assert_eq!(results.attacks[1].gradient_evaluations, 100);
    // ε = 0 reproduces clean accuracy even on a randomized model: a point's
    // draw is keyed by its values, and δ = 0 is the clean point.
    let zero = run_audit(
        model,
        &data,
        &plan(vec![pgd("zero", 0.0, 2, 3)], 7),
        &mut NoSink,
    )
    .unwrap();
    assert_eq!(
        zero.attacks[0].predictions.predicted,
        results.clean.predictions.predicted
    );
}

#[test]
fn eot_changes_nothing_on_a_deterministic_model() {
    let (cnn, data) = super::attacks::shipped_cnn_and_digits(16);
    let attacks = vec![pgd("single", 0.1, 5, 1), pgd("eot", 0.1, 5, 8)];
    let results = run_audit(&cnn, &data, &plan(attacks, 16), &mut NoSink).unwrap();
    let (a, b) = (&results.attacks[0], &results.attacks[1]);
    assert_eq!(a.adversarial, b.adversarial);
    assert_eq!(
        a.gradient_evaluations, b.gradient_evaluations,
        "no draws to average"
    );
}

#[test]
fn the_randomized_model_flag_names_the_attacks_without_eot() {
    let dir = tempfile::tempdir().unwrap();
    let model = load(dir.path(), &mc_dropout_spec());
    let data = digits(8);
    let fired = |attacks: Vec<AttackSpec>, model: &dyn Classifier| {
        let results = run_audit(model, &data, &plan(attacks, 8), &mut NoSink).unwrap();
        sanity_checks(model, &data, &results)
            .unwrap()
            .into_iter()
            .find(|f| f.check == "randomized_model")
    };
    let flag = fired(vec![pgd("plain", 0.1, 2, 1), pgd("eot", 0.1, 2, 4)], &model)
        .expect("fires on a single-draw attack");
    assert!(flag.message.contains("plain") && !flag.message.contains("eot,"));
    assert!(flag.message.contains("eot_samples"), "{}", flag.message);
    assert!(fired(vec![pgd("eot", 0.1, 2, 4)], &model).is_none());
    // A minimum-norm gradient attack has no EoT: it is named.
    let fmn = AttackSpec::new(
        "fmn",
        AttackConfig::Fmn(xai_audit::attack::fmn::FmnConfig::new(Norm::L2, None)),
    );
    let flag = fired(vec![fmn], &model).expect("FMN is single-draw");
    assert!(flag.message.contains("fmn"));
    let (cnn, _) = super::attacks::shipped_cnn_and_digits(1);
    assert!(fired(vec![pgd("plain", 0.1, 2, 1)], &cnn).is_none());
}

#[test]
fn autoattack_rand_is_apgd_ce_and_dlr_averaging_20_draws() {
    let text = "[[attack]]\nname = \"aa\"\nkind = \"autoattack\"\nversion = \"rand\"\neps = 0.1\n";
    let plan = Plan::from_toml(text, "test").unwrap();
    let aa = &plan.attacks[0];
    assert_eq!(aa.component_labels(), ["APGD-CE", "APGD-DLR"]);
    for m in aa.members() {
        assert_eq!(m.eot_samples(), Some(20), "{}", m.name);
        match &m.config {
            AttackConfig::Apgd(c) => {
                assert_eq!((c.steps, c.restarts), (100, 1));
            }
            other => panic!("unexpected member {other:?}"),
        }
    }
}

#[test]
fn a_run_on_a_randomized_model_warns_and_points_to_eot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("arch.json"), resize_pad_spec()).unwrap();
    std::fs::write(
        dir.path().join("plan.toml"),
        "seed = 1\n[[attack]]\nname = \"pgd\"\nkind = \"pgd\"\neps = 0.1\nsteps = 2\n",
    )
    .unwrap();
    let model = root().join("assets/mnist_cnn.safetensors");
    let audit = |out: &str| {
        let run = xai(
            dir.path(),
            &[
                "run",
                model.to_str().unwrap(),
                "--arch",
                "arch.json",
                "--plan",
                "plan.toml",
                "--limit",
                "6",
                "--out",
                out,
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        let text = std::fs::read_to_string(dir.path().join(out)).unwrap();
        (
            run,
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        )
    };
    let (run, report) = audit("r.json");
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("randomized_model") && all.contains("eot_samples"),
        "{all}"
    );
    let flags = report["summary"]["sanity"].to_string();
    assert!(flags.contains("randomized_model"), "{flags}");
    // The same job again gives the same report numbers.
    let (_, second) = audit("r2.json");
    assert_eq!(report["summary"], second["summary"]);
    assert_eq!(report["samples"], second["samples"]);
}
