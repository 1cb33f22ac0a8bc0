//! FAB and FAB-T (Croce & Hein 2020) against closed forms and invariants:
//! on a linear model the smallest adversarial perturbation is the distance
//! to the closest class hyperplane (`|f| / ‖w‖₂` in L2, `|f| / ‖w‖₁` in L∞,
//! `|f| / ‖w‖∞` in L1),
//! which FAB's linearisation reaches exactly up to its overshoot; the exact
//! boundary projection against a brute-force search; every point in the
//! range and, with a budget, in the ball; ε = 0 breaks nothing; batch size,
//! and the input range the same function is saved with, change nothing.
//! AutoAttack's FAB-T (9 target classes) on a 2-class model attacks the one
//! other class there is.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use xai_audit::attack::ensemble::AUTOATTACK_TARGET_CLASSES;
use xai_audit::attack::fab::{self, boundary_projection, FabConfig};
use xai_audit::attack::{AttackConfig, AttackSpec, Norm};
use xai_audit::audit::run::run_audit;
use xai_audit::data::Dataset;
use xai_audit::model::{ArchSpec, Network};
use xai_audit::progress::NoSink;
use xai_audit::rng::Rng;

use super::attacks::{plan, shipped_cnn_and_digits};

const SIDE: usize = 4;
const D: usize = SIDE * SIDE;
/// Classes of the linear problems (the 2-class case says so).
const K: usize = 3;

/// `z = W x + c` on `[1, 4, 4]` inputs in `range`, one class per bias.
fn linear(w: &[f32], c: &[f32], range: (f32, f32)) -> Network {
    let k = c.len();
    let spec = format!(
        r#"{{"version": 1, "input": {{"shape": [1, {SIDE}, {SIDE}], "range": [{}, {}]}},
            "layers": [{{"op": "flatten"}},
            {{"op": "linear", "param": "fc", "in_features": {D}, "out_features": {k}, "bias": true}}]}}"#,
        range.0, range.1
    );
    let spec = ArchSpec::from_json(&spec, "test").unwrap();
    let tensors = HashMap::from([
        (
            "fc.weight".to_string(),
            Tensor::from_slice(w, (k, D), &Device::Cpu).unwrap(),
        ),
        (
            "fc.bias".to_string(),
            Tensor::from_slice(c, k, &Device::Cpu).unwrap(),
        ),
    ]);
    Network::from_tensors(spec, &tensors).unwrap().0
}

fn logits(w: &[f32], c: &[f32], x: &[f32]) -> Vec<f64> {
    (0..c.len())
        .map(|j| {
            c[j] as f64
                + (0..D)
                    .map(|p| w[j * D + p] as f64 * x[p] as f64)
                    .sum::<f64>()
        })
        .collect()
}

/// The distance to the closest other class's hyperplane, in `norm`, and
/// whether the minimiser stays inside `[0, 1]` (the closed form ignores
/// the range).
fn closed_form(w: &[f32], c: &[f32], x: &[f32], y: usize, norm: Norm) -> (f64, bool) {
    let z = logits(w, c, x);
    let mut best = (f64::INFINITY, false);
    for j in (0..c.len()).filter(|&j| j != y) {
        let u: Vec<f64> = (0..D)
            .map(|p| w[y * D + p] as f64 - w[j * D + p] as f64)
            .collect();
        let f = z[y] - z[j];
        let (dist, delta): (f64, Vec<f64>) = match norm {
            Norm::L2 => {
                let sq: f64 = u.iter().map(|v| v * v).sum();
                (f / sq.sqrt(), u.iter().map(|v| -f / sq * v).collect())
            }
            Norm::Linf => {
                let l1: f64 = u.iter().map(|v| v.abs()).sum();
                (f / l1, u.iter().map(|v| -f / l1 * v.signum()).collect())
            }
            Norm::L1 => {
                // All of it on the coordinate of largest |u_k|.
                let k = (0..D)
                    .max_by(|&a, &b| u[a].abs().total_cmp(&u[b].abs()))
                    .unwrap();
                let mut delta = vec![0.0; D];
                delta[k] = -f / u[k];
                (f / u[k].abs(), delta)
            }
        };
        if dist < best.0 {
            let inside = x
                .iter()
                .zip(&delta)
                .all(|(a, d)| (0.0..=1.0).contains(&(*a as f64 + d)));
            best = (dist, inside);
        }
    }
    best
}

/// A random linear problem: weights, biases, and inputs each classified
/// as their label (the model's prediction), away from the range's edges.
fn problem(seed: u64, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<u32>) {
    problem_with(seed, n, K)
}

/// [`problem`] with `k` classes.
fn problem_with(seed: u64, n: usize, k: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let w: Vec<f32> = (0..k * D).map(|_| 2.0 * rng.normal()).collect();
    let c: Vec<f32> = (0..k).map(|_| 0.3 * rng.normal()).collect();
    let x: Vec<f32> = (0..n * D).map(|_| rng.uniform_range(0.3, 0.7)).collect();
    let labels = (0..n)
        .map(|i| {
            let z = logits(&w, &c, &x[i * D..(i + 1) * D]);
            (0..k).max_by(|&a, &b| z[a].total_cmp(&z[b])).unwrap() as u32
        })
        .collect();
    (w, c, x, labels)
}

fn dataset(pixels: Vec<f32>, labels: Vec<u32>) -> Dataset {
    dataset_with(pixels, labels, K)
}

fn dataset_with(pixels: Vec<f32>, labels: Vec<u32>, k: usize) -> Dataset {
    Dataset {
        shape: [labels.len(), 1, SIDE, SIDE],
        pixels,
        labels,
        class_names: (0..k).map(|c| c.to_string()).collect(),
        source: "test".into(),
        sha256: String::new(),
    }
}

fn fab(name: &str, config: FabConfig) -> AttackSpec {
    AttackSpec::new(name, AttackConfig::Fab(config))
}

#[test]
fn fab_finds_the_distance_to_the_closest_hyperplane_of_a_linear_model() {
    let (w, c, x, labels) = problem(3, 24);
    let model = linear(&w, &c, (0.0, 1.0));
    let data = dataset(x.clone(), labels.clone());
    let targeted = |norm| FabConfig {
        target_classes: Some(2),
        ..FabConfig::new(norm, None)
    };
    let attacks = vec![
        fab("fab-l2", FabConfig::new(Norm::L2, None)),
        fab("fab-linf", FabConfig::new(Norm::Linf, None)),
        fab("fab-l1", FabConfig::new(Norm::L1, None)),
        fab("fab-t-l2", targeted(Norm::L2)),
        fab("fab-t-linf", targeted(Norm::Linf)),
        fab("fab-t-l1", targeted(Norm::L1)),
    ];
    let results = run_audit(&model, &data, &plan(attacks, 8), &mut NoSink).unwrap();
    for a in &results.attacks {
        let norm = a.spec.norm();
        let found = match norm {
            Norm::L2 => &a.l2,
            Norm::Linf => &a.linf,
            Norm::L1 => &a.l1,
        };
        let mut checked = 0;
        for i in 0..labels.len() {
            let (dist, inside) =
                closed_form(&w, &c, &x[i * D..(i + 1) * D], labels[i] as usize, norm);
            assert!(a.success[i], "{}: input {i} not broken", a.spec.name);
            // No adversarial is closer than the boundary itself.
            assert!(
                found[i] >= dist * (1.0 - 1e-4),
                "{}: input {i}: {} below the boundary distance {dist}",
                a.spec.name,
                found[i]
            );
            if inside {
                assert!(
                    found[i] <= dist * 1.01,
                    "{}: input {i}: {} vs closed form {dist}",
                    a.spec.name,
                    found[i]
                );
                checked += 1;
            }
        }
        assert!(
            checked >= if norm == Norm::L1 { 6 } else { 12 },
            "{}: only {checked} inputs inside",
            a.spec.name
        );
    }
}

/// AutoAttack's FAB-T asks for 9 target classes; a 2-class model has one
/// other class (the reference's `check_n_classes` warns, then its FAB-T
/// fails indexing the 3rd-largest logit). Ours attacks the one there is:
/// one targeted gradient per step, `steps` in all rather than 9 × `steps`,
/// and the closed-form distance to the only hyperplane.
#[test]
fn fab_t_on_a_two_class_model_attacks_its_one_other_class() {
    // The first problem with inputs on both sides of the boundary.
    let (w, c, x, labels) = (0..)
        .map(|seed| problem_with(seed, 16, 2))
        .find(|p| p.3.contains(&0) && p.3.contains(&1))
        .unwrap();
    let model = linear(&w, &c, (0.0, 1.0));
    let data = dataset_with(x.clone(), labels.clone(), 2);
    let attacks: Vec<AttackSpec> = [Norm::L2, Norm::Linf, Norm::L1]
        .into_iter()
        .map(|norm| {
            fab(
                &format!("fab-t-{norm}"),
                FabConfig {
                    target_classes: Some(AUTOATTACK_TARGET_CLASSES),
                    ..FabConfig::new(norm, None)
                },
            )
        })
        .collect();
    let results = run_audit(&model, &data, &plan(attacks, 16), &mut NoSink).unwrap();
    for a in &results.attacks {
        // Without ε every target runs on every input: one target, one
        // gradient per step.
        assert_eq!(
            a.gradient_evaluations,
            fab::DEFAULT_STEPS,
            "{}",
            a.spec.name
        );
        let norm = a.spec.norm();
        let found = match norm {
            Norm::L2 => &a.l2,
            Norm::Linf => &a.linf,
            Norm::L1 => &a.l1,
        };
        let mut checked = 0;
        for i in 0..labels.len() {
            let (dist, inside) =
                closed_form(&w, &c, &x[i * D..(i + 1) * D], labels[i] as usize, norm);
            assert!(a.success[i], "{}: input {i} not broken", a.spec.name);
            assert!(
                found[i] >= dist * (1.0 - 1e-4),
                "{}: input {i}: {} below the boundary distance {dist}",
                a.spec.name,
                found[i]
            );
            if inside {
                assert!(
                    found[i] <= dist * 1.01,
                    "{}: input {i}: {} vs closed form {dist}",
                    a.spec.name,
                    found[i]
                );
                checked += 1;
            }
        }
        assert!(
            checked >= 4,
            "{}: only {checked} inputs inside",
            a.spec.name
        );
    }
}

#[test]
fn the_boundary_projection_is_the_smallest_step_onto_the_hyperplane_in_the_box() {
    // Brute force on 3 coordinates: the hyperplane w·(t + d) = b meets the
    // box in a polygon; scan a fine grid of it for the smallest ‖d‖.
    let mut rng = Rng::new(11);
    for case in 0..40 {
        let t: Vec<f32> = (0..3).map(|_| rng.uniform_f32()).collect();
        let w: Vec<f32> = (0..3).map(|_| rng.normal()).collect();
        let target: Vec<f32> = (0..3).map(|_| rng.uniform_f32()).collect();
        let b: f64 = w
            .iter()
            .zip(&target)
            .map(|(a, v)| *a as f64 * *v as f64)
            .sum();
        for norm in [Norm::L2, Norm::Linf, Norm::L1] {
            let d = boundary_projection(&t, &w, b, norm, (0.0, 1.0));
            let p: Vec<f64> = t
                .iter()
                .zip(&d)
                .map(|(a, v)| *a as f64 + *v as f64)
                .collect();
            let on: f64 = w.iter().zip(&p).map(|(a, v)| *a as f64 * v).sum();
            assert!(
                (on - b).abs() < 1e-5,
                "case {case} {norm}: w·p = {on}, b = {b}"
            );
            assert!(p.iter().all(|v| (-1e-7..=1.0 + 1e-7).contains(v)));
            let size = |d: &[f64]| match norm {
                Norm::L2 => d.iter().map(|v| v * v).sum::<f64>().sqrt(),
                Norm::Linf => d.iter().fold(0.0f64, |m, v| m.max(v.abs())),
                Norm::L1 => d.iter().map(|v| v.abs()).sum(),
            };
            let ours = size(&d.iter().map(|v| *v as f64).collect::<Vec<_>>());
            // Grid over two coordinates, the third solved from the plane.
            let steps = 400;
            let mut brute = f64::INFINITY;
            let (a, bb, cc) = (0, 1, 2);
            for u in 0..=steps {
                for v in 0..=steps {
                    let pa = u as f64 / steps as f64;
                    let pb = v as f64 / steps as f64;
                    if w[cc] == 0.0 {
                        continue;
                    }
                    let pc = (b - w[a] as f64 * pa - w[bb] as f64 * pb) / w[cc] as f64;
                    if !(0.0..=1.0).contains(&pc) {
                        continue;
                    }
                    let dd = [pa - t[a] as f64, pb - t[bb] as f64, pc - t[cc] as f64];
                    brute = brute.min(size(&dd));
                }
            }
            assert!(
                ours <= brute + 1e-6,
                "case {case} {norm}: ours {ours} > brute force {brute}"
            );
            assert!(
                ours >= brute - 0.01,
                "case {case} {norm}: ours {ours} far below brute force {brute}"
            );
        }
    }
}

#[test]
fn fab_is_the_same_function_whatever_range_it_is_saved_with() {
    // The same classifier on inputs scaled to [0, 255]: W/255, same bias
    // (datasets hold [0, 1] values, which the audit maps to the range).
    let (w, c, x, labels) = problem(5, 10);
    let scaled_w: Vec<f32> = w.iter().map(|v| v / 255.0).collect();
    let unit = linear(&w, &c, (0.0, 1.0));
    let wide = linear(&scaled_w, &c, (0.0, 255.0));
    for norm in [Norm::L2, Norm::Linf, Norm::L1] {
        let attacks = |eps: Option<f64>| vec![fab("fab", FabConfig::new(norm, eps))];
        let a = run_audit(
            &unit,
            &dataset(x.clone(), labels.clone()),
            &plan(attacks(None), 10),
            &mut NoSink,
        )
        .unwrap();
        let b = run_audit(
            &wide,
            &dataset(x.clone(), labels.clone()),
            &plan(attacks(None), 10),
            &mut NoSink,
        )
        .unwrap();
        let (na, nb) = match norm {
            Norm::L2 => (&a.attacks[0].l2, &b.attacks[0].l2),
            Norm::Linf => (&a.attacks[0].linf, &b.attacks[0].linf),
            Norm::L1 => (&a.attacks[0].l1, &b.attacks[0].l1),
        };
        assert_eq!(a.attacks[0].success, b.attacks[0].success);
        for (u, v) in na.iter().zip(nb) {
            assert!(
                (v / 255.0 - u).abs() <= 1e-3 * u.max(1e-3),
                "{norm}: {u} on [0, 1] vs {v} on [0, 255]"
            );
        }
    }
}

#[test]
fn fab_t_on_digits_stays_in_the_ball_and_the_range_and_ignores_batch_size() {
    let (model, data) = shipped_cnn_and_digits(8);
    let fab_t = |norm, eps| {
        fab(
            &format!("fab-t-{norm}"),
            FabConfig {
                steps: 10,
                restarts: 2,
                target_classes: Some(2),
                ..FabConfig::new(norm, Some(eps))
            },
        )
    };
    let attacks = vec![
        fab_t(Norm::Linf, 0.15),
        fab_t(Norm::L2, 1.5),
        fab_t(Norm::L1, 10.0),
        fab(
            "fab-eps0",
            FabConfig {
                steps: 3,
                ..FabConfig::new(Norm::Linf, Some(0.0))
            },
        ),
    ];
    let one = run_audit(&model, &data, &plan(attacks.clone(), 1), &mut NoSink).unwrap();
    let many = run_audit(&model, &data, &plan(attacks, 8), &mut NoSink).unwrap();
    for (a, b) in one.attacks.iter().zip(&many.attacks) {
        assert_eq!(a.success, b.success, "{}", a.spec.name);
        let all = |r: &xai_audit::attack::results::AttackResults| -> Vec<f64> {
            r.linf.iter().chain(&r.l2).chain(&r.l1).copied().collect()
        };
        for (u, v) in all(a).iter().zip(&all(b)) {
            assert!((u - v).abs() < 1e-4, "{}: {u} vs {v}", a.spec.name);
        }
        let eps = a.spec.eps().unwrap();
        let norms = match a.spec.norm() {
            Norm::Linf => &a.linf,
            Norm::L2 => &a.l2,
            Norm::L1 => &a.l1,
        };
        for (i, n) in norms.iter().enumerate() {
            assert!(
                *n <= eps,
                "{}: input {i} has ‖δ‖ = {n} > ε = {eps}",
                a.spec.name
            );
        }
        assert!(a.adversarial.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // Some digits break within the budgets; ε = 0 breaks none.
    assert!(one.attacks[0].success.iter().any(|&s| s));
    assert!(one.attacks[1].success.iter().any(|&s| s));
    assert!(one.attacks[2].success.iter().any(|&s| s));
    assert_eq!(one.attacks[3].adversarial, one.clean.inputs);
    assert_eq!(
        one.attacks[3].predictions.predicted,
        one.clean.predictions.predicted
    );
}
