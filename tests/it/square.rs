//! Square-L1 (the reference's L1 branch, Croce, Singh & Hein 2021) through
//! the library API on the shipped CNN and digits: every point within the L1
//! ball and the model's range, on `[0, 1]` and on the same function saved
//! for `[0, 255]` and `[-1, 1]` (ε scaled by the width, the same verdicts);
//! ε = 0 is the clean accuracy without a query; batch size changes
//! nothing; and the best point is kept: without rescaling the schedule the
//! first queries of a longer run are a shorter run's, so what 100 queries
//! broke 300 break too.

use xai_audit::attack::square::SquareConfig;
use xai_audit::attack::{AttackConfig, AttackSpec, Norm};
use xai_audit::audit::run::{run_audit, AuditResults};
use xai_audit::model::{load_model, Network};
use xai_audit::progress::NoSink;

use super::attacks::{plan, shipped_cnn_and_digits};
use super::range_invariance::{spec_for, RANGES};
use super::root;

fn square_l1(name: &str, eps: f64, queries: usize) -> AttackSpec {
    AttackSpec::new(
        name,
        AttackConfig::Square(SquareConfig {
            queries,
            rescale_schedule: false,
            ..SquareConfig::new(Norm::L1, eps)
        }),
    )
}

/// Inputs still classified as their label.
fn robust(results: &AuditResults, attack: usize, labels: &[u32]) -> usize {
    results.attacks[attack]
        .predictions
        .predicted
        .iter()
        .zip(labels)
        .filter(|(p, y)| p == y)
        .count()
}

/// The shipped CNN re-expressed for inputs in `[lo, hi]` (the same function).
fn cnn_in_range(dir: &std::path::Path, index: usize) -> Network {
    let arch = dir.join(format!("cnn-{}.arch.json", RANGES[index].tag));
    std::fs::write(&arch, spec_for(&RANGES[index]).to_string()).unwrap();
    load_model(&root().join("assets/mnist_cnn.safetensors"), Some(&arch))
        .unwrap()
        .network
}

#[test]
fn square_l1_stays_in_the_ball_and_the_range_in_every_input_range() {
    let (_, data) = shipped_cnn_and_digits(24);
    let dir = tempfile::tempdir().unwrap();
    let mut verdicts: Vec<Vec<bool>> = Vec::new();
    for (index, r) in RANGES.iter().enumerate() {
        let model = cnn_in_range(dir.path(), index);
        let width = r.hi - r.lo;
        let eps = 10.0 * width;
        let attacks = vec![square_l1("square-l1", eps, 300)];
        let results = run_audit(&model, &data, &plan(attacks, 8), &mut NoSink).unwrap();
        let a = &results.attacks[0];
        for (i, n) in a.l1.iter().enumerate() {
            assert!(
                *n <= eps as f32 as f64,
                "{}: input {i} has ‖δ‖₁ = {n} > ε = {eps}",
                r.tag
            );
        }
        assert!(
            a.adversarial
                .iter()
                .all(|v| (r.lo as f32..=r.hi as f32).contains(v)),
            "{} leaves [{}, {}]",
            r.tag,
            r.lo,
            r.hi
        );
        // ε = 10 on [0, 1] breaks some digits and not all.
        let broken = a.success.iter().filter(|&&s| s).count();
        assert!(
            broken > 0 && broken < data.labels.len(),
            "{}: {broken}",
            r.tag
        );
        // Broken points spend their budget: L1 Square moves mass, it never
        // shrinks the perturbation far below ε (misclassified clean inputs
        // count as broken at 0).
        let correct = |i: usize| results.clean.predictions.predicted[i] == data.labels[i];
        for (i, n) in
            a.l1.iter()
                .enumerate()
                .filter(|(i, _)| a.success[*i] && correct(*i))
        {
            assert!(*n > 0.5 * eps, "{}: input {i} broken at ‖δ‖₁ = {n}", r.tag);
        }
        verdicts.push(a.success.clone());
    }
    // The same function attacked alike: at most one input flips, where the
    // rescaled input's rounding moves a logit by an ulp.
    for (r, v) in RANGES.iter().zip(&verdicts).skip(1) {
        let flips = v.iter().zip(&verdicts[0]).filter(|(a, b)| a != b).count();
        assert!(flips <= 1, "{}: {flips} verdicts differ from [0, 1]", r.tag);
    }
}

#[test]
fn square_l1_at_eps_zero_is_the_clean_accuracy_without_a_query() {
    let (model, data) = shipped_cnn_and_digits(40);
    let results = run_audit(
        &model,
        &data,
        &plan(vec![square_l1("square-l1-0", 0.0, 5000)], 16),
        &mut NoSink,
    )
    .unwrap();
    let a = &results.attacks[0];
    assert_eq!(a.adversarial, results.clean.inputs);
    assert_eq!(a.predictions.predicted, results.clean.predictions.predicted);
    assert_eq!(a.gradient_evaluations, 0);
}

#[test]
fn square_l1_does_not_depend_on_the_batch_size() {
    let (model, data) = shipped_cnn_and_digits(12);
    let attacks = vec![square_l1("square-l1", 8.0, 200)];
    let one = run_audit(&model, &data, &plan(attacks.clone(), 1), &mut NoSink).unwrap();
    let many = run_audit(&model, &data, &plan(attacks, 12), &mut NoSink).unwrap();
    let (a, b) = (&one.attacks[0], &many.attacks[0]);
    assert_eq!(a.predictions.predicted, b.predictions.predicted);
    assert_eq!(a.success, b.success);
    assert_eq!(a.adversarial, b.adversarial);
}

#[test]
fn square_l1_keeps_what_its_shorter_run_broke() {
    let (model, data) = shipped_cnn_and_digits(30);
    let attacks = vec![
        square_l1("square-l1-100", 8.0, 100),
        square_l1("square-l1-300", 8.0, 300),
    ];
    let results = run_audit(&model, &data, &plan(attacks, 10), &mut NoSink).unwrap();
    let (short, long) = (&results.attacks[0], &results.attacks[1]);
    for i in 0..data.labels.len() {
        assert!(
            !short.success[i] || long.success[i],
            "input {i}: broken in 100 queries, not in 300"
        );
        // What is reported as broken is misclassified, and vice versa.
        for a in [short, long] {
            let misclassified = a.predictions.predicted[i] != data.labels[i];
            assert_eq!(a.success[i], misclassified, "{} input {i}", a.spec.name);
        }
    }
    assert!(robust(&results, 1, &data.labels) <= robust(&results, 0, &data.labels));
    assert!(
        long.success.iter().filter(|&&s| s).count() > short.success.iter().filter(|&&s| s).count(),
        "200 more queries broke nothing more"
    );
}
