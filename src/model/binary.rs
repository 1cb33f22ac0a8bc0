//! One-output networks as binary classifiers. A network with a single output
//! `z` scores the positive class, `p(1) = sigmoid(z)`; [`BinaryLogits`]
//! presents it as the two logits `[0, z]`. Their softmax is exactly
//! `[1 − sigmoid(z), sigmoid(z)]`, so predictions, cross-entropy, margins and
//! top-label calibration are the binary ones, and every check written for K
//! classes runs unchanged with K = 2.
//!
//! Objectives on the two logits reach `z` by the chain rule,
//! `∂L/∂z = ∂L/∂l₁` (`l₀ = 0` is a constant), in one pass of the wrapped
//! classifier. Attributions explain a class's log-odds `z_c − z_{1−c}` (`z`
//! for class 1, `−z` for class 0), not its logit: the class-0 logit is the
//! constant 0 and would explain nothing.
//!
//! [`Network`](super::Network) and the fast engine both go through this
//! wrapper (see `with_classes`), so the two engines agree by construction.

use std::sync::Mutex;

use candle_core::{Device, Tensor};

use super::classifier::{Classifier, InputGradient, LayerGradient, Objective};
use super::head::seed;
use crate::error::{Error, Result};

/// A one-output classifier seen as the binary classifier with logits
/// `[0, z]`: label 1 is the positive class.
#[derive(Debug, Clone)]
pub struct BinaryLogits<C>(C);

impl<C: Classifier> BinaryLogits<C> {
    /// Wraps `model`, which must have exactly one output.
    pub fn new(model: C) -> Result<Self> {
        match model.num_classes() {
            1 => Ok(BinaryLogits(model)),
            k => Err(Error::Invalid(format!(
                "a binary classifier wraps a model with one output, not {k}"
            ))),
        }
    }

    /// The wrapped one-output classifier.
    pub fn inner(&self) -> &C {
        &self.0
    }
}

/// Runs `f` on the classifier callers see for `raw`, a network's raw
/// outputs: `raw` itself, or [`BinaryLogits`] around it when it has a single
/// output.
pub(crate) fn with_classes<C: Classifier, R>(raw: C, f: impl FnOnce(&dyn Classifier) -> R) -> R {
    if raw.num_classes() == 1 {
        f(&BinaryLogits(raw))
    } else {
        f(&raw)
    }
}

/// `[N, 1]` outputs `z` → `[N, 2]` logits `[0, z]`.
fn two_logits(z: &Tensor) -> Result<Tensor> {
    Ok(Tensor::cat(&[&z.zeros_like()?, z], 1)?)
}

fn check_classes(n: usize, classes: &[u32]) -> Result<()> {
    if classes.len() != n {
        return Err(Error::Invalid(format!(
            "{} objective classes for a batch of {n}",
            classes.len()
        )));
    }
    if let Some(&bad) = classes.iter().find(|&&c| c > 1) {
        return Err(Error::Invalid(format!(
            "objective class {bad} outside the model's 2 classes (a one-output binary classifier)"
        )));
    }
    Ok(())
}

impl<C: Classifier> Classifier for BinaryLogits<C> {
    fn input_shape(&self) -> [usize; 3] {
        self.0.input_shape()
    }

    fn num_classes(&self) -> usize {
        2
    }

    fn input_range(&self) -> (f32, f32) {
        self.0.input_range()
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.logits_draw(x, 0)
    }

    fn input_grad(&self, x: &Tensor, objective: Objective) -> Result<InputGradient> {
        self.input_grad_draw(x, objective, 0)
    }

    fn is_randomized(&self) -> bool {
        self.0.is_randomized()
    }

    fn logits_draw(&self, x: &Tensor, draw: u64) -> Result<Tensor> {
        two_logits(&self.0.logits_draw(x, draw)?)
    }

    fn input_grad_draw(
        &self,
        x: &Tensor,
        objective: Objective,
        draw: u64,
    ) -> Result<InputGradient> {
        if let Some(classes) = objective.classes() {
            check_classes(x.dim(0)?, classes)?;
        }
        // On two logits, a class's log-odds is its margin over the other.
        let objective = match objective {
            Objective::ClassScore(c) => Objective::Margin(c),
            other => other,
        };
        let failure = Mutex::new(None::<String>);
        let loss = |i: usize, z: &[f32]| {
            let (mut value, mut grad) = ([0f32], [0f32; 2]);
            if let Err(e) = seed(&objective, i, 1, 2, &[0.0, z[0]], &mut value, &mut grad) {
                if let Ok(mut f) = failure.lock() {
                    f.get_or_insert(e);
                }
            }
            (value[0], vec![grad[1]])
        };
        let g = self.0.input_grad_draw(x, Objective::Custom(&loss), draw)?;
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(Error::Invalid(e));
        }
        Ok(InputGradient {
            logits: two_logits(&g.logits)?,
            value: g.value,
            grad: g.grad,
        })
    }

    fn class_score(&self, logits: &[f32], class: u32) -> f32 {
        let c = class as usize;
        logits[c] - logits[1 - c]
    }

    fn layer_gradient(&self, x: &Tensor, path: &str, classes: &[u32]) -> Result<LayerGradient> {
        let n = x.dim(0)?;
        check_classes(n, classes)?;
        let g = self.0.layer_gradient(x, path, &vec![0; n])?;
        // ∂(±z)/∂a: z's gradient, negated for class 0.
        let signs: Vec<f32> = classes
            .iter()
            .map(|&c| if c == 1 { 1.0 } else { -1.0 })
            .collect();
        let mut dims = vec![1; g.grad.rank()];
        dims[0] = n;
        let signs = Tensor::from_vec(signs, dims, &Device::Cpu)?;
        Ok(LayerGradient {
            logits: two_logits(&g.logits)?,
            activation: g.activation,
            grad: g.grad.broadcast_mul(&signs)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::engine::FastNet;
    use crate::model::classifier::Outputs;
    use crate::model::layers::Layer;
    use crate::model::{ArchSpec, Network};
    use crate::rng::Rng;

    /// `1×3×3 → linear 9→5 → tanh → linear 5→1`, then `tail`: smooth, so
    /// central differences converge; random weights from `seed`.
    fn mlp(tail: &str, seed: u64) -> Network {
        let spec = format!(
            r#"{{"version": 1, "input": {{"shape": [1, 3, 3], "mean": [0.5], "std": [0.25]}},
            "layers": [{{"op": "flatten"}},
              {{"op": "linear", "param": "a", "in_features": 9, "out_features": 5}},
              {{"op": "tanh"}},
              {{"op": "linear", "param": "b", "in_features": 5, "out_features": 1}}{tail}]}}"#
        );
        let spec = ArchSpec::from_json(&spec, "test").unwrap();
        let mut rng = Rng::new(seed);
        let mut tensors = HashMap::new();
        for p in spec.params() {
            let n: usize = p.shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
            let t = Tensor::from_vec(v, p.shape.as_slice(), &Device::Cpu).unwrap();
            tensors.insert(p.name, t);
        }
        Network::from_tensors(spec, &tensors).unwrap().0
    }

    fn inputs(n: usize, seed: u64) -> Tensor {
        let mut rng = Rng::new(seed);
        let v: Vec<f32> = (0..n * 9).map(|_| rng.uniform_f32()).collect();
        Tensor::from_vec(v, (n, 1, 3, 3), &Device::Cpu).unwrap()
    }

    fn rows(t: &Tensor) -> Vec<Vec<f32>> {
        t.flatten_from(1).unwrap().to_vec2().unwrap()
    }

    /// The objective of one row of two logits, in f64, from its definition.
    fn objective_value(objective: &str, l: &[f32], class: usize) -> f64 {
        let (l0, l1) = (l[0] as f64, l[1] as f64);
        let l = [l0, l1];
        match objective {
            "ce" => (l0.exp() + l1.exp()).ln() - l[class],
            "logit" => l[class],
            "score" | "margin" => l[class] - l[1 - class],
            _ => unreachable!(),
        }
    }

    #[test]
    fn one_output_gives_the_logits_zero_and_z_on_both_engines() {
        let net = mlp("", 1);
        let fast = FastNet::compile(&net).unwrap();
        let x = inputs(13, 2);
        let z: Vec<f32> = net
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(net.outputs(), 1);
        for model in [&net as &dyn Classifier, &fast] {
            assert_eq!(model.num_classes(), 2);
            let l = rows(&model.logits(&x).unwrap());
            for (row, &zi) in l.iter().zip(&z) {
                assert_eq!(row[0], 0.0);
                assert!((row[1] - zi).abs() < 1e-5, "{row:?} vs {zi}");
            }
        }
    }

    #[test]
    fn objective_gradients_match_central_differences_on_both_engines() {
        let net = mlp("", 3);
        let fast = FastNet::compile(&net).unwrap();
        let n = 6;
        let x = inputs(n, 4);
        let mut rng = Rng::new(5);
        let dir: Vec<f32> = (0..n * 9).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
        let d = Tensor::from_vec(dir.clone(), (n, 1, 3, 3), &Device::Cpu).unwrap();
        let h = 1e-3f64;
        let labels = [0u32, 1, 1, 0, 1, 0];
        let flipped: Vec<u32> = labels.iter().map(|&c| 1 - c).collect();
        for model in [&net as &dyn Classifier, &fast] {
            let lp = rows(&model.logits(&(&x + (&d * h).unwrap()).unwrap()).unwrap());
            let lm = rows(&model.logits(&(&x - (&d * h).unwrap()).unwrap()).unwrap());
            let l0 = rows(&model.logits(&x).unwrap());
            for (name, classes) in [
                ("ce", &labels[..]),
                ("logit", &labels[..]),
                ("logit", &flipped[..]),
                ("score", &labels[..]),
                ("score", &flipped[..]),
                ("margin", &labels[..]),
            ] {
                let objective = match name {
                    "ce" => Objective::CrossEntropy(classes),
                    "logit" => Objective::Logit(classes),
                    "score" => Objective::ClassScore(classes),
                    _ => Objective::Margin(classes),
                };
                let g = model.input_grad(&x, objective).unwrap();
                let values: Vec<f32> = g.value.to_vec1().unwrap();
                let grad = rows(&g.grad);
                for i in 0..n {
                    let c = classes[i] as usize;
                    let want = objective_value(name, &l0[i], c);
                    assert!((values[i] as f64 - want).abs() < 1e-5, "{name} value {i}");
                    let fd = (objective_value(name, &lp[i], c) - objective_value(name, &lm[i], c))
                        / (2.0 * h);
                    let ours: f64 = grad[i]
                        .iter()
                        .zip(&dir[i * 9..(i + 1) * 9])
                        .map(|(a, b)| *a as f64 * *b as f64)
                        .sum();
                    assert!(
                        (ours - fd).abs() <= 1e-3 * (1.0 + fd.abs()),
                        "{name} class {c} sample {i}: {ours} vs finite difference {fd}"
                    );
                }
            }
        }
    }

    #[test]
    fn class_scores_are_log_odds_and_logits_keep_the_constant_class_0() {
        let net = mlp("", 6);
        let x = inputs(4, 7);
        let z = net.input_grad(&x, Objective::Logit(&[1; 4])).unwrap();
        let score1 = net.input_grad(&x, Objective::ClassScore(&[1; 4])).unwrap();
        let score0 = net.input_grad(&x, Objective::ClassScore(&[0; 4])).unwrap();
        let logit0 = net.input_grad(&x, Objective::Logit(&[0; 4])).unwrap();
        let (gz, g1, g0) = (rows(&z.grad), rows(&score1.grad), rows(&score0.grad));
        assert!(gz[0].iter().any(|&v| v != 0.0));
        assert_eq!(g1, gz);
        for (a, b) in g0.iter().flatten().zip(g1.iter().flatten()) {
            assert_eq!(*a, -*b);
        }
        // The class-0 logit is the constant 0: its gradient is zero (what the
        // Lie derivative's chain rule needs), its log-odds' is not.
        assert!(rows(&logit0.grad).iter().flatten().all(|&v| v == 0.0));
        let l = rows(&z.logits);
        assert_eq!(net.class_score(&l[0], 1), l[0][1]);
        assert_eq!(net.class_score(&l[0], 0), -l[0][1]);
    }

    #[test]
    fn fast_engine_matches_the_reference_on_every_objective() {
        let net = mlp("", 8);
        let fast = FastNet::compile(&net).unwrap();
        let x = inputs(23, 9);
        let labels: Vec<u32> = (0..23).map(|i| (i % 3 == 0) as u32).collect();
        let loss = |_: usize, l: &[f32]| (l[1] * l[1], vec![0.5, 2.0 * l[1]]);
        let objectives = [
            Objective::CrossEntropy(&labels),
            Objective::Logit(&labels),
            Objective::ClassScore(&labels),
            Objective::Margin(&labels),
            Objective::Custom(&loss),
        ];
        for objective in objectives {
            let a = net.input_grad(&x, objective).unwrap();
            let b = fast.input_grad(&x, objective).unwrap();
            for (ra, rb) in rows(&a.grad).iter().zip(&rows(&b.grad)) {
                for (u, v) in ra.iter().zip(rb) {
                    assert!((u - v).abs() < 1e-5, "{objective:?}: {u} vs {v}");
                }
            }
            let (va, vb): (Vec<f32>, Vec<f32>) =
                (a.value.to_vec1().unwrap(), b.value.to_vec1().unwrap());
            for (u, v) in va.iter().zip(&vb) {
                assert!((u - v).abs() < 1e-5, "{objective:?}: {u} vs {v}");
            }
            assert_eq!(b.logits.dims(), [23, 2]);
        }
    }

    #[test]
    fn layer_gradients_are_the_log_odds_gradient_on_both_engines() {
        let net = mlp("", 10);
        let fast = FastNet::compile(&net).unwrap();
        let x = inputs(3, 11);
        // After the tanh (layer 2), z = w_b · a + c: ∂z/∂a = w_b for every input.
        let Layer::Linear { weight, .. } = &net.nodes()[3].layer else {
            panic!("layer 3 is the last linear")
        };
        let w: Vec<f32> = weight.flatten_all().unwrap().to_vec1().unwrap();
        for model in [&net as &dyn Classifier, &fast] {
            let g = model.layer_gradient(&x, "2", &[1, 0, 1]).unwrap();
            let grad = rows(&g.grad);
            assert_eq!(grad[0], w);
            assert_eq!(grad[2], w);
            assert_eq!(grad[1], w.iter().map(|v| -v).collect::<Vec<_>>());
            assert_eq!(g.logits.dims(), [3, 2]);
        }
    }

    #[test]
    fn a_final_sigmoid_is_dropped_so_the_logit_is_z_not_p() {
        let plain = mlp("", 12);
        let with_sigmoid = mlp(r#", {"op": "sigmoid"}"#, 12);
        assert!(with_sigmoid.spec().drops_final_sigmoid());
        assert!(!plain.spec().drops_final_sigmoid());
        let notes = with_sigmoid.spec().output_notes().join(" ");
        assert!(
            notes.contains("[0, z]") && notes.contains("drops it"),
            "{notes}"
        );
        let x = inputs(9, 13);
        let want = rows(&plain.logits(&x).unwrap());
        let fast = FastNet::compile(&with_sigmoid).unwrap();
        assert_eq!(rows(&with_sigmoid.logits(&x).unwrap()), want);
        let got = rows(&fast.logits(&x).unwrap());
        for (a, b) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // Not p: some z lies outside [0, 1] with these weights.
        assert!(
            want.iter().any(|r| !(0.0..=1.0).contains(&r[1])),
            "{want:?}"
        );
    }

    #[test]
    fn bad_classes_and_custom_widths_are_errors() {
        let net = mlp("", 14);
        let x = inputs(2, 15);
        let err = net
            .input_grad(&x, Objective::Logit(&[0, 2]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("class 2 outside the model's 2 classes"),
            "{err}"
        );
        let err = net.layer_gradient(&x, "2", &[1]).unwrap_err().to_string();
        assert!(
            err.contains("1 objective classes for a batch of 2"),
            "{err}"
        );
        let loss = |_: usize, _: &[f32]| (0.0, vec![1.0]);
        let err = net
            .input_grad(&x, Objective::Custom(&loss))
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 logit gradients for 2 classes"), "{err}");
        let ten = crate::attribution::test_models::linear(1, 2, &[0.0; 20], &[0.0; 10]);
        assert!(BinaryLogits::new(ten).is_err());
        let one = crate::attribution::test_models::linear(1, 2, &[1.0, -1.0], &[0.5]);
        assert_eq!(one.num_classes(), 2);
        assert_eq!(BinaryLogits::new(Outputs(&one)).unwrap().num_classes(), 2);
    }
}
