//! Input × gradient (Shrikumar et al. 2016; Captum's `InputXGradient`): each
//! pixel's value times the explained logit's gradient there — a first-order
//! estimate of the pixel's contribution relative to a zero input.

use serde::{Deserialize, Serialize};

use super::{check_batch, logit_gradient, Attribution, ExplainBatch, Explanation, MethodSettings};
use crate::entry::Entry;
use crate::error::Result;
use crate::model::Classifier;

/// The `input_x_gradient` method's settings: none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InputXGradientConfig {}

impl MethodSettings for InputXGradientConfig {
    type Method = InputXGradient;

    fn from_entry(_e: &mut Entry) -> Self {
        InputXGradientConfig {}
    }

    fn build(&self, _input_hw: (usize, usize)) -> InputXGradient {
        InputXGradient
    }
}

/// `x ⊙ ∂ z_c / ∂ x`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InputXGradient;

impl Attribution for InputXGradient {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        check_batch(model, batch)?;
        let grad = logit_gradient(model, batch.x, batch.classes)?.grad;
        Ok(Explanation::maps((batch.x * grad)?))
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
    fn input_x_gradient_of_a_linear_model_is_x_times_w() {
        let net = linear(1, 2, &[2.0, -1.0, 0.0, 4.0], &[0.0, 0.0]);
        let x = Tensor::from_slice(&[0.5f32, 0.25], (1, 1, 1, 2), &Device::Cpu).unwrap();
        let batch = ExplainBatch {
            x: &x,
            classes: &[0],
            first_index: 0,
            seed: 0,
            stream: 0,
        };
        let m: Vec<f32> = InputXGradient
            .explain(&net, &batch)
            .unwrap()
            .maps
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(m, [1.0, -0.25]);
    }
}
