//! Attack invariants and hand-computed cases, through the library API:
//! FGSM on a linear model moves each pixel by ε·sign(w) (0 where w is 0),
//! every point stays in the ε-ball and the valid range, ε = 0 reproduces the
//! clean inputs exactly, results do not depend on the batch size (random
//! starts included), and targeted attacks reach targets that are reachable.
//! In L1 as well: FGM-L1 on a linear model steps by ε·w/‖w‖₁, attacks
//! without an L1 version refuse `norm = "l1"`, and reports carry L1 norms.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use xai_audit::attack::apgd::ApgdConfig;
use xai_audit::attack::ensemble::EnsembleConfig;
use xai_audit::attack::fgsm::FgsmConfig;
use xai_audit::attack::fmn::FmnConfig;
use xai_audit::attack::pgd::PgdConfig;
use xai_audit::attack::{AttackConfig, AttackSpec, Norm, Target, TargetRule};
use xai_audit::audit::run::run_audit;
use xai_audit::data::batch::{load_for_model, DataRequest};
use xai_audit::data::Dataset;
use xai_audit::model::{load_model, ArchSpec, Network};
use xai_audit::plan::Plan;
use xai_audit::progress::NoSink;

use super::{root, validate_against_schema, xai};

fn linear_model(weights: Vec<f32>, classes: usize, side: usize) -> Network {
    let spec = format!(
        r#"{{"version": 1, "input": {{"shape": [1, {side}, {side}]}}, "layers": [
            {{"op": "flatten"}},
            {{"op": "linear", "param": "fc", "in_features": {}, "out_features": {classes}, "bias": false}}]}}"#,
        side * side
    );
    let spec = ArchSpec::from_json(&spec, "test").unwrap();
    let w = Tensor::from_vec(weights, (classes, side * side), &Device::Cpu).unwrap();
    Network::from_tensors(spec, &HashMap::from([("fc.weight".to_string(), w)]))
        .unwrap()
        .0
}

fn dataset(pixels: Vec<f32>, labels: Vec<u32>, side: usize, classes: usize) -> Dataset {
    Dataset {
        shape: [labels.len(), 1, side, side],
        pixels,
        labels,
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        source: "test".into(),
        sha256: String::new(),
    }
}

/// The tests' PGD: 10 steps of ε/4 from a random start, 2 restarts.
pub(crate) fn pgd(norm: Norm, eps: f64) -> PgdConfig {
    PgdConfig {
        step_size: eps / 4.0,
        steps: 10,
        random_start: true,
        restarts: 2,
        ..PgdConfig::new(norm, eps)
    }
}

/// An FGSM, (the tests') PGD or a short APGD entry.
pub(crate) fn attack(name: &str, kind: &str, norm: Norm, eps: f64) -> AttackSpec {
    let config = match kind {
        "pgd" => AttackConfig::Pgd(pgd(norm, eps)),
        "fgsm" => AttackConfig::Fgsm(FgsmConfig::new(norm, eps)),
        "apgd" => AttackConfig::Apgd(ApgdConfig {
            steps: 10,
            ..ApgdConfig::new(norm, eps)
        }),
        other => panic!("the tests build fgsm, pgd and apgd entries, not {other}"),
    };
    AttackSpec::new(name, config)
}

/// The tests' APGD-L1 on AutoAttack's 3ε, 2ε, ε schedule.
fn apgd_l1_largereps(name: &str, eps: f64) -> AttackSpec {
    AttackSpec::new(
        name,
        AttackConfig::Apgd(ApgdConfig {
            steps: 10,
            use_largereps: true,
            ..ApgdConfig::new(Norm::L1, eps)
        }),
    )
}

/// Each input's perturbation in the attack's own norm.
fn own_norms(a: &xai_audit::attack::results::AttackResults) -> &[f64] {
    match a.spec.norm() {
        Norm::Linf => &a.linf,
        Norm::L2 => &a.l2,
        Norm::L1 => &a.l1,
    }
}

pub(crate) fn plan(attacks: Vec<AttackSpec>, batch_size: usize) -> Plan {
    Plan {
        seed: 7,
        batch_size,
        attacks,
        stress: Vec::new(),
        equivariance: Vec::new(),
        attributions: Vec::new(),
        gates: Default::default(),
    }
}

#[test]
fn fgsm_on_a_linear_model_moves_each_pixel_by_eps_times_sign_of_w() {
    // Class 0 has zero weights, class 1 has w: for label 0 the cross-entropy
    // gradient is p₁·w, so FGSM adds ε·sign(w) (0 where w = 0), then clips.
    let w: Vec<f32> = vec![0.5, -2.0, 0.0, 1.0, -0.1, 3.0, 0.0, -1.0, 2.0];
    let mut weights = vec![0f32; 9];
    weights.extend(&w);
    let model = linear_model(weights, 2, 3);
    let x: Vec<f32> = vec![0.5, 0.5, 0.5, 0.95, 0.02, 0.1, 0.0, 1.0, 0.6];
    let data = dataset(x.clone(), vec![0], 3, 2);
    let eps = 0.1f32;
    let results = run_audit(
        &model,
        &data,
        &plan(vec![attack("f", "fgsm", Norm::Linf, eps as f64)], 1),
        &mut NoSink,
    )
    .unwrap();
    let adv = &results.attacks[0].adversarial;
    for i in 0..9 {
        let s = if w[i] > 0.0 {
            1.0
        } else if w[i] < 0.0 {
            -1.0
        } else {
            0.0
        };
        let expected = (x[i] + eps * s).clamp(0.0, 1.0);
        assert!(
            (adv[i] - expected).abs() <= 1e-7,
            "pixel {i}: {} vs hand-computed {expected}",
            adv[i]
        );
    }
    // Label 1 flips every direction.
    let data = dataset(x.clone(), vec![1], 3, 2);
    let results = run_audit(
        &model,
        &data,
        &plan(vec![attack("f", "fgsm", Norm::Linf, eps as f64)], 1),
        &mut NoSink,
    )
    .unwrap();
    for i in 0..9 {
        let s = if w[i] > 0.0 {
            -1.0
        } else if w[i] < 0.0 {
            1.0
        } else {
            0.0
        };
        let expected = (x[i] + eps * s).clamp(0.0, 1.0);
        assert!(
            (results.attacks[0].adversarial[i] - expected).abs() <= 1e-7,
            "pixel {i}"
        );
    }
}

#[test]
fn l2_fgsm_on_a_linear_model_steps_along_w_over_its_norm() {
    let w: Vec<f32> = vec![3.0, 0.0, -4.0, 0.0];
    let mut weights = vec![0f32; 4];
    weights.extend(&w);
    let model = linear_model(weights, 2, 2);
    let x = vec![0.5f32; 4];
    let data = dataset(x, vec![0], 2, 2);
    let results = run_audit(
        &model,
        &data,
        &plan(vec![attack("f", "fgsm", Norm::L2, 0.25)], 1),
        &mut NoSink,
    )
    .unwrap();
    let adv = &results.attacks[0].adversarial;
    let expected = [0.5 + 0.25 * 0.6, 0.5, 0.5 - 0.25 * 0.8, 0.5];
    for i in 0..4 {
        assert!(
            (adv[i] - expected[i]).abs() <= 1e-6,
            "{adv:?} vs {expected:?}"
        );
    }
}

#[test]
fn l1_fgm_on_a_linear_model_steps_by_eps_times_w_over_its_l1_norm() {
    // Label 0, class 0 with zero weights: the gradient is p₁·w, so FGM-L1
    // (Foolbox's L1FastGradientAttack) adds ε·w/‖w‖₁, then clips.
    let w: Vec<f32> = vec![3.0, 0.0, -4.0, 1.0];
    let mut weights = vec![0f32; 4];
    weights.extend(&w);
    let model = linear_model(weights, 2, 2);
    let x = vec![0.5f32; 4];
    for (eps, expected) in [
        (0.8, [0.8, 0.5, 0.1, 0.6]),
        // 2·w/8 = (0.75, 0, −1, 0.25): clipped at both ends of [0, 1].
        (2.0, [1.0, 0.5, 0.0, 0.75]),
    ] {
        let data = dataset(x.clone(), vec![0], 2, 2);
        let results = run_audit(
            &model,
            &data,
            &plan(vec![attack("f", "fgsm", Norm::L1, eps)], 1),
            &mut NoSink,
        )
        .unwrap();
        let a = &results.attacks[0];
        for i in 0..4 {
            assert!(
                (a.adversarial[i] - expected[i]).abs() <= 1e-6,
                "ε {eps}: {:?} vs {expected:?}",
                a.adversarial
            );
        }
        let l1: f64 = expected.iter().map(|v| (*v as f64 - 0.5).abs()).sum();
        assert!((a.l1[0] - l1).abs() < 1e-6 && a.l1[0] <= eps, "{}", a.l1[0]);
    }
}

pub(crate) fn shipped_cnn_and_digits(n: usize) -> (Network, Dataset) {
    let model = load_model(&root().join("assets/mnist_cnn.safetensors"), None)
        .unwrap()
        .network;
    (model, shipped_digits(n))
}

/// The first `n` shipped digits.
pub(crate) fn shipped_digits(n: usize) -> Dataset {
    load_for_model(
        &DataRequest {
            limit: Some(n),
            ..Default::default()
        },
        [1, 28, 28],
        10,
    )
    .unwrap()
}

#[test]
fn every_point_stays_in_the_ball_and_the_valid_range() {
    let (model, data) = shipped_cnn_and_digits(24);
    let attacks = vec![
        attack("pgd-linf", "pgd", Norm::Linf, 0.1),
        attack("pgd-l2", "pgd", Norm::L2, 1.0),
        attack("fgsm-linf", "fgsm", Norm::Linf, 0.3),
        attack("fgsm-l2", "fgsm", Norm::L2, 2.0),
        attack("fgm-l1", "fgsm", Norm::L1, 30.0),
        attack("pgd-l1", "pgd", Norm::L1, 8.0),
        attack("apgd-l1", "apgd", Norm::L1, 8.0),
        apgd_l1_largereps("apgd-l1-largereps", 8.0),
    ];
    let results = run_audit(&model, &data, &plan(attacks, 8), &mut NoSink).unwrap();
    for a in &results.attacks {
        let eps = a.spec.eps().unwrap() as f32 as f64;
        let norms = own_norms(a);
        for (i, n) in norms.iter().enumerate() {
            assert!(
                *n <= eps,
                "{}: input {i} has ‖δ‖ = {n} > ε = {eps}",
                a.spec.name
            );
        }
        assert!(
            a.adversarial.iter().all(|v| (0.0..=1.0).contains(v)),
            "{} leaves [0, 1]",
            a.spec.name
        );
        // PGD is at least as strong as its starting point: some inputs broke.
        assert!(
            a.success.iter().any(|&s| s),
            "{} broke nothing",
            a.spec.name
        );
    }
}

#[test]
fn eps_zero_reproduces_the_clean_inputs_and_accuracy() {
    let (model, data) = shipped_cnn_and_digits(40);
    let attacks = vec![
        attack("fgsm0", "fgsm", Norm::Linf, 0.0),
        attack("pgd0", "pgd", Norm::Linf, 0.0),
        attack("pgd0-l2", "pgd", Norm::L2, 0.0),
        attack("fgm0-l1", "fgsm", Norm::L1, 0.0),
        attack("pgd0-l1", "pgd", Norm::L1, 0.0),
        attack("apgd0-l1", "apgd", Norm::L1, 0.0),
        apgd_l1_largereps("apgd0-l1-largereps", 0.0),
    ];
    let results = run_audit(&model, &data, &plan(attacks, 16), &mut NoSink).unwrap();
    for a in &results.attacks {
        assert_eq!(a.adversarial, results.clean.inputs, "{}", a.spec.name);
        assert_eq!(
            a.predictions.predicted, results.clean.predictions.predicted,
            "{}",
            a.spec.name
        );
    }
}

#[test]
fn results_do_not_depend_on_the_batch_size() {
    let (model, data) = shipped_cnn_and_digits(12);
    let targeted = AttackSpec::new(
        "pgd-random-target",
        AttackConfig::Pgd(PgdConfig {
            target: Some(Target::Rule(TargetRule::Random)),
            ..pgd(Norm::Linf, 0.2)
        }),
    );
    let attacks = vec![
        attack("pgd", "pgd", Norm::Linf, 0.1),
        attack("pgd-l2", "pgd", Norm::L2, 1.0),
        targeted,
        attack("pgd-l1", "pgd", Norm::L1, 6.0),
        attack("apgd-l1", "apgd", Norm::L1, 6.0),
        apgd_l1_largereps("apgd-l1-largereps", 6.0),
    ];
    let one = run_audit(&model, &data, &plan(attacks.clone(), 1), &mut NoSink).unwrap();
    let many = run_audit(&model, &data, &plan(attacks, 100), &mut NoSink).unwrap();
    assert_eq!(
        one.clean.predictions.predicted,
        many.clean.predictions.predicted
    );
    for (a, b) in one.attacks.iter().zip(&many.attacks) {
        assert_eq!(
            a.predictions.predicted, b.predictions.predicted,
            "{}",
            a.spec.name
        );
        assert_eq!(a.success, b.success, "{}", a.spec.name);
        assert_eq!(a.targets, b.targets, "{}", a.spec.name);
        for (u, v) in a.linf.iter().zip(&b.linf).chain(a.l1.iter().zip(&b.l1)) {
            assert!((u - v).abs() < 1e-5, "{}: {u} vs {v}", a.spec.name);
        }
    }
}

#[test]
fn targeted_attacks_reach_reachable_targets() {
    // Each class owns one pixel: setting it to 1 and the others to 0 makes that
    // class win, so every target is reachable with ε = 1.
    let side = 2;
    let classes = 4;
    let mut weights = vec![0f32; classes * 4];
    for c in 0..classes {
        weights[c * 4 + c] = 5.0;
    }
    let model = linear_model(weights, classes, side);
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..8u32 {
        let c = i % classes as u32;
        let mut img = vec![0.2f32; 4];
        img[c as usize] = 0.9;
        pixels.extend(img);
        labels.push(c);
    }
    let data = dataset(pixels, labels.clone(), side, classes);
    let mut attacks = Vec::new();
    for (name, target) in [
        ("random", Target::Rule(TargetRule::Random)),
        ("least", Target::Rule(TargetRule::LeastLikely)),
        ("class3", Target::Class(3)),
    ] {
        let config = PgdConfig {
            step_size: 0.1,
            steps: 30,
            target: Some(target),
            ..pgd(Norm::Linf, 1.0)
        };
        attacks.push(AttackSpec::new(name, AttackConfig::Pgd(config)));
    }
    let results = run_audit(&model, &data, &plan(attacks, 3), &mut NoSink).unwrap();
    for a in &results.attacks {
        let targets = a.targets.as_ref().unwrap();
        for i in 0..labels.len() {
            if targets[i] == labels[i] {
                // Only a fixed target can equal the label; that is no success.
                assert_eq!(a.spec.name, "class3");
                assert!(!a.success[i]);
                continue;
            }
            assert!(
                a.success[i],
                "{}: input {i} did not reach target {}",
                a.spec.name, targets[i]
            );
            assert_eq!(a.predictions.predicted[i], targets[i], "{}", a.spec.name);
        }
    }
    let random = &results.attacks[0];
    assert!(random
        .targets
        .as_ref()
        .unwrap()
        .iter()
        .zip(&labels)
        .all(|(t, y)| t != y));
}

/// Issue 14: an attack built through the library API with its settings unset
/// used to take `steps` 1, `step_size` 0 and no random start (a PGD that did
/// nothing), and a misspelled kind became an empty ensemble returning the
/// clean inputs (100% "robust"). Each config's constructor now takes the
/// parser's defaults, a kind is a variant (a misspelled one does not
/// compile, and does not deserialize), and an empty ensemble is an error.
#[test]
fn attacks_built_from_the_library_api_take_the_plans_defaults() {
    let (net, data) = shipped_cnn_and_digits(10);
    let model = xai_audit::engine::FastNet::compile(&net).unwrap();
    for (kind, norm, eps) in [
        ("pgd", Norm::Linf, 0.1),
        ("pgd", Norm::L2, 1.0),
        ("apgd", Norm::Linf, 0.15),
        ("fmn", Norm::L2, 2.0),
    ] {
        let name = format!("{kind}-{norm}");
        let config = match kind {
            "pgd" => AttackConfig::Pgd(PgdConfig::new(norm, eps)),
            "apgd" => AttackConfig::Apgd(ApgdConfig::new(norm, eps)),
            "fmn" => AttackConfig::Fmn(FmnConfig::new(norm, Some(eps))),
            other => unreachable!("{other}"),
        };
        let bare = AttackSpec::new(name.clone(), config);
        let toml = format!(
            "seed = 7\nbatch_size = 10\n[[attack]]\nname = \"{name}\"\nkind = \"{kind}\"\nnorm = \"{norm}\"\neps = {eps}\n"
        );
        let parsed = Plan::from_toml(&toml, "p.toml").unwrap();
        assert_eq!(bare, parsed.attacks[0], "{kind} {norm}");
        let a = run_audit(&model, &data, &plan(vec![bare], 10), &mut NoSink).unwrap();
        let b = run_audit(&model, &data, &parsed, &mut NoSink).unwrap();
        assert_eq!(a.attacks[0].success, b.attacks[0].success, "{kind} {norm}");
        assert_eq!(
            a.attacks[0].adversarial, b.attacks[0].adversarial,
            "{kind} {norm}"
        );
        assert!(
            a.attacks[0].success.iter().any(|&s| s),
            "{kind} {norm}: the default attack breaks some digit"
        );
    }
    let typo = serde_json::from_str::<AttackSpec>(
        r#"{"name": "p", "kind": "pgdd", "norm": "linf", "eps": 0.1}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(typo.contains("pgdd") && typo.contains("fgsm"), "{typo}");
    let empty = AttackSpec::new(
        "e",
        AttackConfig::Ensemble(EnsembleConfig {
            norm: Norm::Linf,
            eps: Some(0.1),
            members: Vec::new(),
            version: None,
        }),
    );
    let err = run_audit(&model, &data, &plan(vec![empty], 20), &mut NoSink)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("attack \"e\"") && err.contains("needs its members"),
        "{err}"
    );
}

/// Attacks without an L1 step refuse an L1 budget, naming the entry and the
/// key, in a plan and when built from a config (a report's, or code's):
/// never a silent run in another norm. AutoAttack's `plus` has no L1
/// version (its `standard` has).
#[test]
fn attacks_without_an_l1_version_refuse_norm_l1() {
    for (kind, extra) in [
        ("fmn", ""),
        ("autoattack", "version = \"plus\"\n"),
        ("pgd", ""),
        ("apgd", "use_largereps = true\n"),
    ] {
        let norm = if kind == "pgd" || kind == "apgd" {
            "linf"
        } else {
            "l1"
        };
        let extra = if kind == "pgd" {
            "quantile = 0.9\n"
        } else {
            extra
        };
        let toml = format!(
            "seed = 0\n[[attack]]\nname = \"no-{kind}\"\nkind = \"{kind}\"\nnorm = \"{norm}\"\neps = 5.0\n{extra}"
        );
        let err = Plan::from_toml(&toml, "p.toml").unwrap_err().to_string();
        let key = match kind {
            "pgd" => "quantile",
            "apgd" => "use_largereps",
            "autoattack" => "version",
            _ => "norm",
        };
        assert!(
            err.contains(&format!("no-{kind}")) && err.contains(key),
            "{kind}: {err}"
        );
        if norm == "l1" {
            assert!(err.contains("L1"), "{kind}: {err}");
        }
    }
    let json = r#"{"name": "fm", "kind": "fmn", "norm": "l1", "eps": null, "steps": 10}"#;
    let spec: AttackSpec = serde_json::from_str(json).unwrap();
    let err = spec.build().err().expect("refused").to_string();
    assert!(
        err.contains("attack \"fm\"") && err.contains("no L1 version"),
        "{err}"
    );
}

/// A report of L1 attacks: every attack's inputs carry their L1 norms, the
/// L1 attack stays within ε, the summary has L1 medians and an L1 threat
/// model, and the report validates against the schema.
#[test]
fn reports_carry_l1_norms() {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("l1.toml");
    std::fs::write(
        &plan_path,
        "seed = 0\nbatch_size = 16\n[[attack]]\nname = \"pgd-l1\"\nkind = \"pgd\"\nnorm = \"l1\"\neps = 8.0\nsteps = 5\n[[attack]]\nname = \"fgsm\"\nkind = \"fgsm\"\nnorm = \"linf\"\neps = 0.1\n",
    )
    .unwrap();
    let model = root().join("assets/mnist_cnn.safetensors");
    let out = dir.path().join("r.json");
    let run = xai(
        dir.path(),
        &[
            "run",
            model.to_str().unwrap(),
            "--plan",
            plan_path.to_str().unwrap(),
            "--limit",
            "16",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("L1 ε 8"), "{}", run.stdout);
    validate_against_schema(&out);
    let report: xai_audit::report::Report =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        report.schema_version,
        xai_audit::report::types::SCHEMA_VERSION
    );
    let mut broken = 0;
    for s in &report.samples {
        for a in &s.attacks {
            let l1 = a.perturbation_l1.expect("every attack carries its L1 norm");
            // ‖δ‖₂ ≤ ‖δ‖₁ ≤ d·‖δ‖∞.
            assert!(
                l1 + 1e-9 >= a.perturbation_l2,
                "{l1} < {}",
                a.perturbation_l2
            );
            assert!(l1 <= 784.0 * a.perturbation_linf + 1e-9);
            if a.name == "pgd-l1" {
                assert!(l1 <= 8.0, "{l1}");
                broken += a.success as usize;
            }
        }
    }
    assert!(broken > 0);
    let pgd = &report.summary.attacks[0];
    assert_eq!(pgd.norm, Norm::L1);
    assert!(pgd.median_perturbation_l1.is_some_and(|m| m <= 8.0));
    assert!(report
        .summary
        .threat_models
        .iter()
        .any(|m| m.norm == Norm::L1 && m.eps == 8.0));
}
