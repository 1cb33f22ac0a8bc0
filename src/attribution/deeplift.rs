//! DeepLIFT (Shrikumar, Greenside & Kundaje 2017, the rescale rule), as
//! Captum's `DeepLift` with its default `multiply_by_inputs=True`: the map
//! is `(x − x₀) ⊙ m`, where `m` are the multipliers of the explained class
//! score that [`crate::model::deeplift`] backpropagates with every
//! nonlinearity's secant slope between the input and the baseline `x₀`.
//! The convergence delta is Captum's, `Σ map − (z(x) − z(x₀))` per input: 0
//! up to rounding on networks of ReLU, leaky ReLU, sigmoid, tanh and linear
//! layers; not through max pooling, GELU or SiLU, whose gradients Captum
//! (and so this) leaves unchanged ([`crate::model::deeplift`] says why).
//!
//! Runs on the reference path whatever engine the audit uses.
//!
//! Plan keys ([`DeepLiftConfig`]): `baseline` (a number in input units,
//! `"zero"` — Captum's default — or `"black"`, the range's low end).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::{check_batch, Attribution, ExplainBatch, Explanation, Fill, MethodSettings};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::Classifier;

/// The baseline by default: 0 in input units (Captum's).
pub const DEFAULT_BASELINE: Fill = Fill::Value(0.0);

/// The `deeplift` method's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct DeepLiftConfig {
    /// The reference input: every pixel this value (default 0, Captum's).
    pub baseline: Fill,
}

impl Default for DeepLiftConfig {
    fn default() -> Self {
        DeepLiftConfig {
            baseline: DEFAULT_BASELINE,
        }
    }
}

impl MethodSettings for DeepLiftConfig {
    type Method = DeepLift;

    fn from_entry(e: &mut Entry) -> Self {
        DeepLiftConfig {
            baseline: Fill::from_entry(e, "baseline").unwrap_or(DEFAULT_BASELINE),
        }
    }

    fn build(&self, _input_hw: (usize, usize)) -> DeepLift {
        DeepLift {
            baseline: self.baseline,
        }
    }
}

/// DeepLIFT against a constant baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeepLift {
    /// The baseline's pixel value.
    pub baseline: Fill,
}

impl Attribution for DeepLift {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        check_batch(model, batch)?;
        let net = model.network().ok_or_else(|| {
            Error::Invalid(
                "DeepLIFT needs the model's layers, and this classifier does not expose them"
                    .into(),
            )
        })?;
        let value = self.baseline.resolve(model.input_range());
        let x0 = Tensor::full(value, batch.x.dims(), batch.x.device())?;
        let dl = net.deeplift_gradient(batch.x, &x0, batch.classes)?;
        let maps = ((batch.x - &x0)? * &dl.multipliers)?;
        let sums: Vec<f32> = maps.flatten_from(1)?.sum(1)?.to_vec1()?;
        let z: Vec<Vec<f32>> = dl.outputs.to_vec2()?;
        let z0: Vec<Vec<f32>> = dl.baseline_outputs.to_vec2()?;
        let delta = batch
            .classes
            .iter()
            .enumerate()
            .map(|(i, &c)| sums[i] as f64 - (raw_score(&z[i], c) - raw_score(&z0[i], c)))
            .collect();
        Ok(Explanation {
            maps,
            convergence_delta: Some(delta),
            noise: None,
        })
    }

    fn model_calls(&self) -> usize {
        2
    }
}

/// The explained score of `class` from one row of raw network outputs: the
/// class's output, or for a one-output network `z` for class 1 and `−z` for
/// class 0 (its log-odds, as [`crate::model::Network::deeplift_gradient`]
/// differentiates).
pub(crate) fn raw_score(row: &[f32], class: u32) -> f64 {
    match row.len() {
        1 if class == 1 => row[0] as f64,
        1 => -(row[0] as f64),
        _ => row[class as usize] as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::test_models::mlp;
    use crate::model::Network;
    use candle_core::Device;

    fn explain(net: &Network, x: &[f32], baseline: f64, class: u32) -> Explanation {
        let x = Tensor::from_vec(x.to_vec(), (1, 1, 1, 2), &Device::Cpu).unwrap();
        DeepLift {
            baseline: Fill::Value(baseline),
        }
        .explain(
            net,
            &ExplainBatch {
                x: &x,
                classes: &[class],
                first_index: 0,
                seed: 0,
                stream: 0,
            },
        )
        .unwrap()
    }

    #[test]
    fn summation_to_delta_holds_for_relu_sigmoid_and_tanh() {
        for act in ["relu", "sigmoid", "tanh"] {
            let net = mlp(act);
            for (x, b, c) in [
                ([0.7f32, 0.2], 0.0, 0),
                ([0.1, 0.9], 0.3, 1),
                ([0.5, 0.5], 0.5, 0),
            ] {
                let e = explain(&net, &x, b, c);
                let d = e.convergence_delta.unwrap()[0];
                assert!(d.abs() < 1e-5, "{act} at {x:?} vs {b}: delta {d}");
            }
        }
    }

    #[test]
    fn relu_multipliers_are_secants_by_hand() {
        // Hidden pre-activations at x = (0.7, 0.2): a·x + bias =
        // (0.1 + 0.7 − 0.4, −0.2 + 0.35 + 0.3, 0.3 − 0.7 − 0.1) = (0.4, 0.45, −0.5);
        // at the zero baseline: the biases (0.1, −0.2, 0.3). Secant slopes of
        // ReLU: (0.4 − 0.1)/(0.3) = 1, (0.45 − 0)/(0.65), (0 − 0.3)/(−0.8).
        let net = mlp("relu");
        let s = [1.0f64, 0.45 / 0.65, 0.3 / 0.8];
        let w1 = [[1.0f64, -2.0], [0.5, 1.5], [-1.0, -0.5]];
        let w2 = [2.0f64, -1.0, 0.5];
        let x = [0.7f64, 0.2];
        let map = explain(&net, &[0.7, 0.2], 0.0, 0).maps;
        let got: Vec<f32> = map.flatten_all().unwrap().to_vec1().unwrap();
        for j in 0..2 {
            let m: f64 = (0..3).map(|h| w2[h] * s[h] * w1[h][j]).sum();
            assert!((got[j] as f64 - x[j] * m).abs() < 1e-5, "{j}: {got:?}");
        }
    }
}
