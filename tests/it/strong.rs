//! Strong attacks: APGD at least as strong as PGD, ensembles at least as
//! strong as each member, minimum-norm distances below the ε at which PGD
//! first breaks an input, and the sanity flags firing on a model whose
//! gradients are masked (a saturated softmax) — where the black-box Square
//! attack breaks what PGD cannot.

use candle_core::Tensor;
use xai_audit::audit::run::run_audit;
use xai_audit::audit::sanity::sanity_checks;
use xai_audit::model::load::WeightsFile;
use xai_audit::model::{load_model, save_model, Classifier, InputGradient, Network, Objective};
use xai_audit::plan::Plan;
use xai_audit::progress::NoSink;
use xai_audit::report::io::read_report;

use super::{root, xai};

fn digits(n: usize) -> xai_audit::data::Dataset {
    super::attacks::shipped_digits(n)
}

fn robust(results: &xai_audit::audit::run::AuditResults, name: &str, labels: &[u32]) -> usize {
    let a = results
        .attacks
        .iter()
        .find(|a| a.spec.name == name)
        .unwrap();
    a.predictions
        .predicted
        .iter()
        .zip(labels)
        .filter(|(p, y)| p == y)
        .count()
}

#[test]
fn apgd_and_the_ensemble_are_at_least_as_strong_as_their_baselines() {
    let model = load_model(&root().join("assets/mnist_cnn.safetensors"), None)
        .unwrap()
        .network;
    let data = digits(60);
    let plan = Plan::from_toml(
        r#"
        [[attack]]
        name = "pgd"
        kind = "pgd"
        eps = 0.1
        step_size = 0.01
        steps = 40
        random_start = false
        [[attack]]
        name = "apgd-ce"
        kind = "apgd"
        eps = 0.1
        steps = 40
        [[attack]]
        name = "apgd-t"
        kind = "apgd"
        eps = 0.1
        steps = 20
        loss = "dlr"
        target_classes = 3
        [[attack]]
        name = "square"
        kind = "square"
        eps = 0.1
        queries = 200
        [[attack]]
        name = "ensemble"
        kind = "ensemble"
        members = ["apgd-ce", "apgd-t", "square"]
        "#,
        "test",
    )
    .unwrap();
    let results = run_audit(&model, &data, &plan, &mut NoSink).unwrap();
    let y = &data.labels;
    let (pgd, apgd, ens) = (
        robust(&results, "pgd", y),
        robust(&results, "apgd-ce", y),
        robust(&results, "ensemble", y),
    );
    assert!(apgd <= pgd, "APGD-CE leaves {apgd} robust, PGD-40 {pgd}");
    for member in ["apgd-ce", "apgd-t", "square"] {
        assert!(
            ens <= robust(&results, member, y),
            "ensemble {ens} vs {member}"
        );
    }
    // Every APGD point stays in the ball and the valid range.
    for a in &results.attacks {
        assert!(
            a.linf.iter().all(|&d| d <= 0.1f32 as f64),
            "{}",
            a.spec.name
        );
        assert!(
            a.adversarial.iter().all(|v| (0.0..=1.0).contains(v)),
            "{}",
            a.spec.name
        );
    }
}

#[test]
fn minimum_norm_distances_are_below_the_eps_at_which_pgd_first_breaks() {
    let model = load_model(&root().join("assets/mnist_mlp.safetensors"), None)
        .unwrap()
        .network;
    let data = digits(40);
    let grid: Vec<f64> = (1..=15).map(|i| 0.02 * i as f64).collect();
    let mut text = String::new();
    for eps in &grid {
        text.push_str(&format!(
            "[[attack]]\nname = \"pgd-{eps}\"\nkind = \"pgd\"\neps = {eps}\nstep_size = {}\nsteps = 40\nrandom_start = false\n",
            eps / 10.0
        ));
    }
    text.push_str(
        "[[attack]]\nname = \"fmn\"\nkind = \"fmn\"\nnorm = \"linf\"\nsteps = 100\nrefine = 10\n",
    );
    let plan = Plan::from_toml(&text, "test").unwrap();
    let results = run_audit(&model, &data, &plan, &mut NoSink).unwrap();
    let fmn = results.attacks.last().unwrap();
    let mut compared = 0;
    for i in 0..data.len() {
        if results.clean.predictions.predicted[i] != data.labels[i] {
            continue;
        }
        let first_break = grid
            .iter()
            .zip(&results.attacks)
            .find(|(_, a)| a.success[i])
            .map(|(e, _)| *e);
        if let Some(eps) = first_break {
            compared += 1;
            assert!(
                fmn.success[i],
                "input {i}: PGD broke it at ε = {eps}, FMN found nothing"
            );
            assert!(
                fmn.linf[i] <= eps as f32 as f64,
                "input {i}: FMN distance {} > ε = {eps} where PGD first breaks",
                fmn.linf[i]
            );
        }
    }
    assert!(compared >= 30, "only {compared} inputs compared");
}

/// The shipped CNN with its last layer scaled by 10⁴: the same predictions,
/// but a softmax so saturated that cross-entropy gradients are exactly zero.
fn saturated_cnn(dir: &std::path::Path) -> std::path::PathBuf {
    let file = WeightsFile::read(&root().join("assets/mnist_cnn.safetensors")).unwrap();
    let loaded = load_model(&root().join("assets/mnist_cnn.safetensors"), None).unwrap();
    let names: Vec<&str> = file.tensors.iter().map(|t| t.name.as_str()).collect();
    let tensors = file.f32_tensors(&names).unwrap();
    let mut out: Vec<(String, Tensor)> = Vec::new();
    for (name, t) in tensors {
        let t = if name.starts_with("classifier.2") {
            (t * 1e4).unwrap()
        } else {
            t
        };
        out.push((name, t));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let path = dir.join("saturated.safetensors");
    save_model(&path, loaded.network.spec(), &out).unwrap();
    path
}

#[test]
fn masked_gradients_raise_flags_and_square_breaks_what_pgd_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let model = saturated_cnn(dir.path());
    std::fs::write(
        dir.path().join("plan.toml"),
        r#"
        [[attack]]
        name = "pgd"
        kind = "pgd"
        eps = 0.3
        step_size = 0.03
        steps = 20
        random_start = false
        [[attack]]
        name = "square"
        kind = "square"
        eps = 0.3
        queries = 300
        "#,
    )
    .unwrap();
    let r = xai(
        dir.path(),
        &[
            "run",
            model.to_str().unwrap(),
            "--plan",
            "plan.toml",
            "--limit",
            "40",
            "--out",
            "r.json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = read_report(&dir.path().join("r.json")).unwrap();
    let checks: Vec<&str> = report
        .summary
        .sanity
        .iter()
        .map(|f| f.check.as_str())
        .collect();
    assert!(checks.contains(&"zero_gradients"), "{checks:?}");
    assert!(checks.contains(&"black_box_beats_white_box"), "{checks:?}");
    assert!(r.stdout.contains("sanity: zero_gradients"), "{}", r.stdout);
    let pgd = &report.summary.attacks[0];
    let square = &report.summary.attacks[1];
    assert!(
        square.robust_accuracy + 0.2 < pgd.robust_accuracy,
        "square {} vs pgd {}",
        square.robust_accuracy,
        pgd.robust_accuracy
    );

    // The unmasked model raises neither flag.
    let r = xai(
        dir.path(),
        &[
            "run",
            root()
                .join("assets/mnist_cnn.safetensors")
                .to_str()
                .unwrap(),
            "--plan",
            "plan.toml",
            "--limit",
            "40",
            "--out",
            "clean.json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = read_report(&dir.path().join("clean.json")).unwrap();
    assert!(
        report.summary.sanity.is_empty(),
        "{:?}",
        report.summary.sanity
    );
}

/// A classifier that returns probabilities instead of logits.
struct SoftmaxOutputs(Network);

impl Classifier for SoftmaxOutputs {
    fn input_shape(&self) -> [usize; 3] {
        self.0.input_shape()
    }
    fn num_classes(&self) -> usize {
        self.0.num_classes()
    }
    fn input_range(&self) -> (f32, f32) {
        self.0.input_range()
    }
    fn logits(&self, x: &Tensor) -> xai_audit::Result<Tensor> {
        Ok(candle_nn::ops::softmax_last_dim(&self.0.logits(x)?)?)
    }
    fn input_grad(&self, x: &Tensor, objective: Objective) -> xai_audit::Result<InputGradient> {
        // Finite differences are not needed: the check reads outputs only.
        let mut g = self.0.input_grad(x, objective)?;
        g.logits = candle_nn::ops::softmax_last_dim(&g.logits)?;
        Ok(g)
    }
}

#[test]
fn probability_outputs_and_eps_zero_are_checked() {
    let net = load_model(&root().join("assets/mnist_cnn.safetensors"), None)
        .unwrap()
        .network;
    let model = SoftmaxOutputs(net);
    let data = digits(20);
    let plan = Plan::from_toml(
        "[[attack]]\nname = \"f0\"\nkind = \"fgsm\"\neps = 0.0\n",
        "t",
    )
    .unwrap();
    let results = run_audit(&model, &data, &plan, &mut NoSink).unwrap();
    let flags = sanity_checks(&model, &data, &results).unwrap();
    let checks: Vec<&str> = flags.iter().map(|f| f.check.as_str()).collect();
    assert!(checks.contains(&"softmax_outputs"), "{checks:?}");
    assert!(!checks.contains(&"eps_zero_not_clean"), "{checks:?}");
}

#[test]
fn spatial_attack_breaks_digits_with_rotations_and_shifts_only() {
    let model = load_model(&root().join("assets/mnist_cnn.safetensors"), None)
        .unwrap()
        .network;
    let data = digits(30);
    let plan = Plan::from_toml(
        r#"
        [[attack]]
        name = "identity"
        kind = "spatial"
        max_angle_deg = 0.0
        max_shift_px = 0.0
        [[attack]]
        name = "grid"
        kind = "spatial"
        angle_steps = 7
        shift_steps = 3
        [[attack]]
        name = "random"
        kind = "spatial"
        mode = "random"
        samples = 10
        "#,
        "test",
    )
    .unwrap();
    let results = run_audit(&model, &data, &plan, &mut NoSink).unwrap();
    let y = &data.labels;
    let clean = results
        .clean
        .predictions
        .predicted
        .iter()
        .zip(y)
        .filter(|(p, l)| p == l)
        .count();
    assert_eq!(
        robust(&results, "identity", y),
        clean,
        "no transformation must reproduce clean accuracy"
    );
    let grid = &results.attacks[1];
    assert!(
        robust(&results, "grid", y) < clean,
        "±30°, ±3 px broke nothing"
    );
    // Each broken input is an exact grid transformation of its clean input.
    let per = 784;
    let i = (0..data.len())
        .find(|&i| grid.success[i] && results.clean.predictions.predicted[i] == y[i])
        .unwrap();
    let x = &results.clean.inputs[i * per..(i + 1) * per];
    let adv = &grid.adversarial[i * per..(i + 1) * per];
    let spatial = xai_audit::attack::spatial::Spatial {
        max_angle_deg: 30.0,
        max_shift_px: 3.0,
        angle_steps: 7,
        shift_steps: 3,
        mode: xai_audit::attack::spatial::SpatialMode::Grid,
    };
    let matches = spatial.grid().iter().any(|&(a, dx, dy)| {
        let t = xai_audit::transform::rigid(x, [1, 28, 28], a, dx, dy);
        t.iter()
            .zip(adv)
            .all(|(u, v)| (u.clamp(0.0, 1.0) - v).abs() < 1e-6)
    });
    assert!(
        matches,
        "input {i}: the adversarial is not a grid transformation"
    );
}
