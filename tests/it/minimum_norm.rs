//! The minimum-norm attacks CW-L2 and DeepFool, through the library API:
//! on affine models each finds the closed-form distance to the nearest
//! decision hyperplane (L2: `(z_y − z_j)/‖w_y − w_j‖₂`, L∞: over the L1
//! norm, the least over `j ≠ y`), with 4 classes and with 2; every point
//! lies in the valid range; results do not depend on the batch size and are
//! deterministic; more binary search steps never report a larger CW
//! distance (the smallest success is kept) and DeepFool keeps its first
//! adversarial point; the same model saved for `[0, 255]` or `[−1, 1]`
//! inputs gives the same distances scaled by the range width; and on the
//! shipped CNN the medians agree within 2% with Foolbox 3's on the first 32
//! digits (`tests/fixtures/minnorm/`).

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use serde_json::Value;
use xai_audit::attack::cw::CwConfig;
use xai_audit::attack::deepfool::DeepFoolConfig;
use xai_audit::attack::results::AuditResults;
use xai_audit::attack::{AttackConfig, AttackSpec, Norm};
use xai_audit::audit::run::run_audit;
use xai_audit::data::Dataset;
use xai_audit::model::{ArchSpec, Network};
use xai_audit::progress::NoSink;

use super::attacks::{plan, shipped_cnn_and_digits};
use super::fixture;

/// Pixels per input of the affine models.
const D: usize = 8;

/// `z = W x + b` on inputs `[1, 1, D]` in `range`.
fn affine(weights: &[f32], bias: &[f32], range: (f32, f32)) -> Network {
    let classes = bias.len();
    let spec = format!(
        r#"{{"version": 1, "input": {{"shape": [1, 1, {D}], "range": [{}, {}]}}, "layers": [
            {{"op": "flatten"}},
            {{"op": "linear", "param": "fc", "in_features": {D}, "out_features": {classes}, "bias": true}}]}}"#,
        range.0, range.1
    );
    let spec = ArchSpec::from_json(&spec, "test").unwrap();
    let w = Tensor::from_slice(weights, (classes, D), &Device::Cpu).unwrap();
    let b = Tensor::from_slice(bias, classes, &Device::Cpu).unwrap();
    let tensors = HashMap::from([("fc.weight".to_string(), w), ("fc.bias".to_string(), b)]);
    Network::from_tensors(spec, &tensors).unwrap().0
}

/// A small deterministic generator of numbers in `[-1, 1]`.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// An affine problem on `[0, 1]`: weights, biases making every logit equal
/// at the centre 0.5 (so every boundary passes near the inputs), and inputs
/// within 0.1 of the centre, labelled with their predicted class (so every
/// one is attacked). Steps to the nearest boundary stay far from the box.
struct Problem {
    classes: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    x: Vec<f32>,
    labels: Vec<u32>,
}

impl Problem {
    fn new(classes: usize, inputs: usize, seed: u64) -> Self {
        let mut rng = Lcg(seed);
        let weights: Vec<f32> = (0..classes * D).map(|_| rng.next()).collect();
        let bias: Vec<f32> = (0..classes)
            .map(|c| -0.5 * weights[c * D..(c + 1) * D].iter().sum::<f32>())
            .collect();
        let mut p = Problem {
            classes,
            weights,
            bias,
            x: Vec::new(),
            labels: Vec::new(),
        };
        // Inputs within 0.25 of the centre whose nearest boundary lies
        // 0.05 to 0.15 away: far enough that no near-tie of the logits
        // depends on rounding, near enough that no step reaches the box.
        while p.labels.len() < inputs {
            let x: Vec<f32> = (0..D).map(|_| 0.5 + 0.25 * rng.next()).collect();
            let z = p.logits_at(&x);
            let label = (0..classes).max_by(|&a, &b| z[a].total_cmp(&z[b])).unwrap() as u32;
            p.x.extend(&x);
            p.labels.push(label);
            let i = p.labels.len() - 1;
            if !(0.05..=0.15).contains(&p.distance(i, Norm::L2)) {
                p.x.truncate(i * D);
                p.labels.pop();
            }
        }
        p
    }

    fn inputs(&self) -> usize {
        self.labels.len()
    }

    fn logits(&self, i: usize) -> Vec<f64> {
        self.logits_at(&self.x[i * D..(i + 1) * D])
    }

    fn logits_at(&self, x: &[f32]) -> Vec<f64> {
        (0..self.classes)
            .map(|c| {
                let w = &self.weights[c * D..(c + 1) * D];
                self.bias[c] as f64
                    + w.iter()
                        .zip(x)
                        .map(|(a, b)| *a as f64 * *b as f64)
                        .sum::<f64>()
            })
            .collect()
    }

    /// The closed-form distance of input `i` to its nearest decision
    /// hyperplane: `(z_y − z_j)` over the dual norm (L2, or L1 for L∞) of
    /// `w_y − w_j`, least over `j ≠ y`.
    fn distance(&self, i: usize, norm: Norm) -> f64 {
        let z = self.logits(i);
        let y = self.labels[i] as usize;
        (0..self.classes)
            .filter(|&j| j != y)
            .map(|j| {
                let diff =
                    (0..D).map(|k| self.weights[y * D + k] as f64 - self.weights[j * D + k] as f64);
                let dual: f64 = match norm {
                    Norm::L2 => diff.map(|v| v * v).sum::<f64>().sqrt(),
                    _ => diff.map(f64::abs).sum(),
                };
                (z[y] - z[j]) / dual
            })
            .fold(f64::INFINITY, f64::min)
    }

    fn model(&self) -> Network {
        affine(&self.weights, &self.bias, (0.0, 1.0))
    }

    /// The same function for inputs in `[lo, hi]`: for `x′ = lo + w·x`,
    /// `W′ = W/w` and `b′ = b − (lo/w)·Σ W` (a dataset's pixels stay in
    /// `[0, 1]`; the audit maps them to the model's range).
    fn in_range(&self, lo: f32, hi: f32) -> Network {
        let w = hi - lo;
        let weights: Vec<f32> = self.weights.iter().map(|v| v / w).collect();
        let bias: Vec<f32> = (0..self.classes)
            .map(|c| self.bias[c] - lo / w * self.weights[c * D..(c + 1) * D].iter().sum::<f32>())
            .collect();
        affine(&weights, &bias, (lo, hi))
    }

    fn data(&self) -> Dataset {
        Dataset {
            shape: [self.inputs(), 1, 1, D],
            pixels: self.x.clone(),
            labels: self.labels.clone(),
            class_names: (0..self.classes).map(|c| c.to_string()).collect(),
            source: "test".into(),
            sha256: String::new(),
        }
    }
}

fn cw(name: &str) -> AttackSpec {
    AttackSpec::new(name, AttackConfig::Cw(CwConfig::new(None)))
}

fn deepfool(name: &str, norm: Norm) -> AttackSpec {
    AttackSpec::new(
        name,
        AttackConfig::DeepFool(DeepFoolConfig::new(norm, None)),
    )
}

fn audit(model: &Network, data: &Dataset, attacks: Vec<AttackSpec>, batch: usize) -> AuditResults {
    run_audit(model, data, &plan(attacks, batch), &mut NoSink).unwrap()
}

/// The distance per input of attack `k` in its norm (∞ where not broken).
/// Attack `k`'s smallest perturbation per input, in its norm (infinite
/// where none was found).
pub(crate) fn distances(results: &AuditResults, k: usize) -> Vec<f64> {
    let a = &results.attacks[k];
    let norms = match a.spec.norm() {
        Norm::Linf => &a.linf,
        Norm::L2 => &a.l2,
        Norm::L1 => &a.l1,
    };
    norms
        .iter()
        .zip(&a.success)
        .map(|(n, s)| if *s { *n } else { f64::INFINITY })
        .collect()
}

/// The median of a non-empty list.
pub(crate) fn median(values: &[f64]) -> f64 {
    xai_audit::stats::median(values).expect("a non-empty list")
}

/// DeepFool on an affine model reaches the nearest boundary in one step,
/// placed (1 + overshoot)·(d + 10⁻⁴) away: the ratio to the closed form is
/// in [1, 1.02 + 10⁻⁴/d] (plus float slack). CW stops at the first point
/// past the boundary its Adam steps reach, under the smallest `c` of the
/// bisection that succeeds: within 1% of the closed form here (its steps
/// in tanh space are 0.01, about 0.0025 in input units near the centre).
#[test]
fn cw_and_deepfool_find_the_closed_form_distance_on_affine_models() {
    for classes in [4, 2] {
        let p = Problem::new(classes, 6, 11 + classes as u64);
        let attacks = vec![
            cw("cw"),
            deepfool("df-l2", Norm::L2),
            deepfool("df-linf", Norm::Linf),
        ];
        let results = audit(&p.model(), &p.data(), attacks, 100);
        for (k, norm, low, high) in [
            (0, Norm::L2, 1.0, 1.01),
            (1, Norm::L2, 1.0, 1.0201),
            (2, Norm::Linf, 1.0, 1.0201),
        ] {
            for (i, found) in distances(&results, k).into_iter().enumerate() {
                let exact = p.distance(i, norm);
                let ratio = found / exact;
                let slack = 1e-4 / exact + 1e-4;
                assert!(
                    ratio >= low - 1e-4 && ratio <= high + slack,
                    "{classes} classes, {} input {i}: found {found} vs closed form {exact} (ratio {ratio})",
                    results.attacks[k].spec.name,
                );
            }
        }
    }
}

#[test]
fn points_stay_in_range_and_results_do_not_depend_on_the_batch_size() {
    let p = Problem::new(4, 10, 5);
    let attacks = || {
        vec![
            cw("cw"),
            deepfool("df-l2", Norm::L2),
            deepfool("df-linf", Norm::Linf),
        ]
    };
    let one = audit(&p.model(), &p.data(), attacks(), 1);
    let many = audit(&p.model(), &p.data(), attacks(), 100);
    let again = audit(&p.model(), &p.data(), attacks(), 100);
    for k in 0..3 {
        let name = &one.attacks[k].spec.name;
        assert_eq!(
            one.attacks[k].adversarial, many.attacks[k].adversarial,
            "{name}: batch 1 vs 100"
        );
        assert_eq!(one.attacks[k].success, many.attacks[k].success, "{name}");
        assert_eq!(
            many.attacks[k].adversarial, again.attacks[k].adversarial,
            "{name}: not deterministic"
        );
        assert!(many.attacks[k].success.iter().all(|&s| s), "{name}");
    }
    // On the CNN, whose DeepFool steps do hit the range's bounds.
    let (net, data) = shipped_cnn_and_digits(12);
    let attacks = || vec![deepfool("df-l2", Norm::L2), deepfool("df-linf", Norm::Linf)];
    let one = run_audit(&net, &data, &plan(attacks(), 1), &mut NoSink).unwrap();
    let many = run_audit(&net, &data, &plan(attacks(), 100), &mut NoSink).unwrap();
    for (a, b) in one.attacks.iter().zip(&many.attacks) {
        assert_eq!(a.success, b.success, "{}", a.spec.name);
        for (u, v) in a.l2.iter().zip(&b.l2) {
            assert!(
                (u - v).abs() <= 1e-5 * (1.0 + u),
                "{}: {u} vs {v}",
                a.spec.name
            );
        }
        assert!(
            b.adversarial.iter().all(|v| (0.0..=1.0).contains(v)),
            "{} leaves [0, 1]",
            b.spec.name
        );
        assert!(
            b.success.iter().filter(|&&s| s).count() >= 10,
            "{}",
            b.spec.name
        );
    }
}

/// The best point is kept: each binary search step only adds candidates, so
/// more of them never report a larger distance; DeepFool stops at its first
/// adversarial point, so more steps change nothing once it is found.
#[test]
fn the_smallest_adversarial_found_is_kept() {
    let p = Problem::new(4, 6, 23);
    let mut attacks = Vec::new();
    for b in [1, 2, 4, 8] {
        attacks.push(AttackSpec::new(
            format!("cw-{b}"),
            AttackConfig::Cw(CwConfig {
                binary_search_steps: b,
                initial_const: 10.0,
                steps: 300,
                ..CwConfig::new(None)
            }),
        ));
    }
    for steps in [5, 50] {
        attacks.push(AttackSpec::new(
            format!("df-{steps}"),
            AttackConfig::DeepFool(DeepFoolConfig {
                steps,
                ..DeepFoolConfig::new(Norm::L2, None)
            }),
        ));
    }
    let results = audit(&p.model(), &p.data(), attacks, 100);
    for k in 1..4 {
        let (fewer, more) = (distances(&results, k - 1), distances(&results, k));
        for i in 0..p.inputs() {
            assert!(fewer[i].is_finite(), "c = 10 breaks input {i}");
            assert!(
                more[i] <= fewer[i],
                "{} reports {} for input {i}, {} reported {}",
                results.attacks[k].spec.name,
                more[i],
                results.attacks[k - 1].spec.name,
                fewer[i]
            );
        }
    }
    // The bisection made progress: the last is closer than the first.
    assert!(median(&distances(&results, 3)) < median(&distances(&results, 0)));
    assert_eq!(
        results.attacks[4].adversarial,
        results.attacks[5].adversarial
    );
}

/// The same function saved for `[0, 255]` or `[−1, 1]` inputs gives the
/// same verdict: every input broken again, at distances scaled by the range
/// width.
#[test]
fn distances_scale_with_the_input_range() {
    let p = Problem::new(4, 6, 31);
    let attacks = || {
        vec![
            cw("cw"),
            deepfool("df-l2", Norm::L2),
            deepfool("df-linf", Norm::Linf),
        ]
    };
    let unit = audit(&p.model(), &p.data(), attacks(), 100);
    for (lo, hi) in [(0.0f32, 255.0f32), (-1.0, 1.0)] {
        let other = audit(&p.in_range(lo, hi), &p.data(), attacks(), 100);
        let w = (hi - lo) as f64;
        for k in 0..3 {
            let (a, b) = (distances(&unit, k), distances(&other, k));
            for i in 0..p.inputs() {
                assert!(
                    (b[i] / w - a[i]).abs() <= 2e-3 * a[i],
                    "{} on [{lo}, {hi}], input {i}: {} / {w} vs {} on [0, 1]",
                    unit.attacks[k].spec.name,
                    b[i],
                    a[i]
                );
            }
        }
    }
}

/// Foolbox 3.3.4's per-input distances on the first 32 shipped digits
/// (tests/fixtures/minnorm/README.md says how they were made): our medians
/// within 2% of Foolbox's.
#[test]
fn medians_match_foolbox_on_the_shipped_cnn() {
    let text = std::fs::read_to_string(fixture("minnorm/foolbox_mnist_cnn.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let count = reference["meta"]["inputs"].as_u64().unwrap() as usize;
    let (net, data) = shipped_cnn_and_digits(count);
    let model = xai_audit::engine::FastNet::compile(&net).unwrap();
    let mut names = Vec::new();
    let mut specs = Vec::new();
    for (name, entry) in reference["attacks"].as_object().unwrap() {
        let spec: AttackSpec = serde_json::from_value(entry["spec"].clone()).unwrap();
        names.push(name.clone());
        specs.push(spec);
    }
    assert!(names.iter().any(|n| n.starts_with("cw")) && names.iter().any(|n| n.starts_with("df")));
    let results = run_audit(&model, &data, &plan(specs, 32), &mut NoSink).unwrap();
    for (k, name) in names.iter().enumerate() {
        let entry = &reference["attacks"][name];
        let correct: Vec<bool> = entry["correct"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect();
        let theirs: Vec<f64> = entry["foolbox_norms"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&correct)
            .filter(|(_, c)| **c)
            .map(|(v, _)| v.as_f64().unwrap_or(f64::INFINITY))
            .collect();
        let ours: Vec<f64> = distances(&results, k)
            .into_iter()
            .zip(&correct)
            .filter(|(_, c)| **c)
            .map(|(v, _)| v)
            .collect();
        let (m_ours, m_theirs) = (median(&ours), median(&theirs));
        assert!(
            m_theirs.is_finite() && (m_ours / m_theirs - 1.0).abs() <= 0.02,
            "{name}: median {m_ours} vs Foolbox's {m_theirs}"
        );
    }
}

/// Plan entries read every key, and refuse what does not apply naming it:
/// CW in another norm than L2, a targeted DeepFool, a misspelled key.
#[test]
fn plan_entries_read_their_keys_and_refuse_what_does_not_apply() {
    let plan = xai_audit::plan::Plan::from_toml(
        r#"
[[attack]]
name = "cw"
kind = "cw"
steps = 20
binary_search_steps = 3
initial_const = 0.01
confidence = 0.5
learning_rate = 0.05
abort_early = false
target = "least_likely"
eps = 2.0

[[attack]]
name = "df"
kind = "deepfool"
norm = "linf"
steps = 7
overshoot = 0.05
candidates = 3
"#,
        "p.toml",
    )
    .unwrap();
    let cw = CwConfig {
        eps: Some(2.0),
        steps: 20,
        binary_search_steps: 3,
        initial_const: 0.01,
        confidence: 0.5,
        learning_rate: 0.05,
        abort_early: false,
        target: Some(xai_audit::attack::Target::Rule(
            xai_audit::attack::TargetRule::LeastLikely,
        )),
        ..CwConfig::new(None)
    };
    assert_eq!(plan.attacks[0].config, AttackConfig::Cw(cw));
    let df = DeepFoolConfig {
        steps: 7,
        overshoot: 0.05,
        candidates: 3,
        ..DeepFoolConfig::new(Norm::Linf, None)
    };
    assert_eq!(plan.attacks[1].config, AttackConfig::DeepFool(df));
    assert!(plan.attacks.iter().all(AttackSpec::is_minimum_norm));
    for (entry, key) in [
        ("kind = \"cw\"\nnorm = \"linf\"", "norm"),
        ("kind = \"deepfool\"\ntarget = 3", "target"),
        ("kind = \"deepfool\"\ncandidates = 1", "candidates"),
        ("kind = \"cw\"\nlearning_rate = 0", "learning_rate"),
        ("kind = \"cw\"\nbinary_steps = 3", "binary_steps"),
    ] {
        let text = format!("[[attack]]\nname = \"a\"\n{entry}\n");
        let err = xai_audit::plan::Plan::from_toml(&text, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{entry}: {err}");
    }
}
