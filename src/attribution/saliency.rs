//! Saliency (Simonyan et al. 2014): the gradient of the explained logit with
//! respect to the input. Captum's `Saliency` takes the absolute value by
//! default; the audit keeps the signed gradient by default (it shows which
//! way each pixel pushes) and offers `abs = true` for Captum's map.

use serde::{Deserialize, Serialize};

use super::{check_batch, logit_gradient, Attribution, ExplainBatch, Explanation, MethodSettings};
use crate::entry::Entry;
use crate::error::Result;
use crate::model::Classifier;

/// Absolute gradients by default: no (the signed map; Captum's is `true`).
pub const DEFAULT_ABS: bool = false;

/// The `saliency` method's settings (key `abs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct SaliencyConfig {
    /// Take the absolute value of the gradient (Captum's default; here
    /// `false`: the signed map).
    pub abs: bool,
}

impl Default for SaliencyConfig {
    fn default() -> Self {
        SaliencyConfig { abs: DEFAULT_ABS }
    }
}

impl MethodSettings for SaliencyConfig {
    type Method = Saliency;

    fn from_entry(e: &mut Entry) -> Self {
        SaliencyConfig {
            abs: e.boolean("abs").unwrap_or(DEFAULT_ABS),
        }
    }

    fn build(&self, _input_hw: (usize, usize)) -> Saliency {
        Saliency { abs: self.abs }
    }
}

/// `∂ z_c / ∂ x`, or its absolute value.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Saliency {
    /// Take the absolute value (Captum's default).
    pub abs: bool,
}

impl Attribution for Saliency {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        check_batch(model, batch)?;
        let grad = logit_gradient(model, batch.x, batch.classes)?.grad;
        Ok(Explanation::maps(if self.abs { grad.abs()? } else { grad }))
    }

    fn model_calls(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::test_models::linear;
    use candle_core::{Device, Tensor};

    #[test]
    fn saliency_of_a_linear_model_is_the_weight_row() {
        // Two classes on 1×1×3 inputs: the map for class c is W[c].
        let net = linear(1, 3, &[1.0, -2.0, 0.5, 3.0, 0.0, -1.0], &[0.1, 0.2]);
        let x = Tensor::from_slice(
            &[0.2f32, 0.4, 0.9, 0.5, 0.5, 0.5],
            (2, 1, 1, 3),
            &Device::Cpu,
        )
        .unwrap();
        let batch = ExplainBatch {
            x: &x,
            classes: &[1, 0],
            first_index: 0,
            seed: 0,
            stream: 0,
        };
        let raw: Vec<f32> = Saliency { abs: false }
            .explain(&net, &batch)
            .unwrap()
            .maps
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(raw, [3.0, 0.0, -1.0, 1.0, -2.0, 0.5]);
        let abs: Vec<f32> = Saliency { abs: true }
            .explain(&net, &batch)
            .unwrap()
            .maps
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(abs, [3.0, 0.0, 1.0, 1.0, 2.0, 0.5]);
    }
}
