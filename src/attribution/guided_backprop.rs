//! Guided Backpropagation (Springenberg et al. 2015, "Striving for
//! simplicity: the all convolutional net"), as Captum's `GuidedBackprop`:
//! the gradient of the explained class score with every ReLU's backward pass
//! replaced by `relu(g) · 1[x > 0]` — only positive gradients flow back, and
//! only through units that were active.
//!
//! Like Captum, which hooks `nn.ReLU` modules, it changes the model's ReLU
//! layers only: other activations (GELU, SiLU, leaky ReLU) keep their
//! gradients, so on a model without ReLUs the map is the plain gradient.
//! It runs on the reference path (candle autograd with a custom ReLU op),
//! whatever engine the audit uses: the fast engine has no hook for it.

use serde::{Deserialize, Serialize};

use super::{check_batch, logit_gradient, Attribution, ExplainBatch, Explanation, MethodSettings};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::layers::ReluBackward;
use crate::model::{Classifier, Network};

/// The `guided_backprop` method's settings: none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GuidedBackpropConfig {}

impl MethodSettings for GuidedBackpropConfig {
    type Method = GuidedBackprop;

    fn from_entry(_e: &mut Entry) -> Self {
        GuidedBackpropConfig {}
    }

    fn build(&self, _input_hw: (usize, usize)) -> GuidedBackprop {
        GuidedBackprop
    }
}

/// The guided gradient of the explained class score.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GuidedBackprop;

/// The network behind `model` with its ReLUs' backward pass set to `rule`.
pub(crate) fn modified_network(model: &dyn Classifier, rule: ReluBackward) -> Result<Network> {
    let net = model.network().ok_or_else(|| {
        Error::Invalid(
            "guided backpropagation needs the model's layers, and this classifier does not expose them"
                .into(),
        )
    })?;
    Ok(net.with_relu_backward(rule))
}

impl Attribution for GuidedBackprop {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        check_batch(model, batch)?;
        let guided = modified_network(model, ReluBackward::Guided)?;
        let grad = logit_gradient(&guided, batch.x, batch.classes)?.grad;
        Ok(Explanation::maps(grad))
    }

    fn model_calls(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ArchSpec;
    use candle_core::{Device, Tensor};
    use std::collections::HashMap;

    /// 1×1×2 input → linear 2→2 (W1) → ReLU → linear 2→2 (W2), no biases.
    fn two_layer(w1: [f32; 4], w2: [f32; 4]) -> Network {
        let spec = ArchSpec::from_json(
            r#"{"version": 1, "input": {"shape": [1, 1, 2]}, "layers": [
                {"op": "flatten"},
                {"op": "linear", "param": "a", "in_features": 2, "out_features": 2, "bias": false},
                {"op": "relu"},
                {"op": "linear", "param": "b", "in_features": 2, "out_features": 2, "bias": false}]}"#,
            "t",
        )
        .unwrap();
        let t = |v: [f32; 4]| Tensor::from_vec(v.to_vec(), (2, 2), &Device::Cpu).unwrap();
        let tensors = HashMap::from([
            ("a.weight".to_string(), t(w1)),
            ("b.weight".to_string(), t(w2)),
        ]);
        Network::from_tensors(spec, &tensors).unwrap().0
    }

    #[test]
    fn guided_gradient_drops_negative_gradients_at_active_units_by_hand() {
        // h = relu(W1 x); z_0 = W2[0] · h. At x = (1, 1): W1 x = (3, -1), so
        // unit 0 is active and unit 1 is not. The gradient reaching h is
        // W2[0] = (-2, 5): unit 0's −2 is negative (dropped by the guide),
        // unit 1's 5 is blocked by its inactive input either way.
        let net = two_layer([1.0, 2.0, -3.0, 2.0], [-2.0, 5.0, 4.0, 1.0]);
        let x = Tensor::from_vec(vec![1f32, 1.0], (1, 1, 1, 2), &Device::Cpu).unwrap();
        let batch = |classes: &'static [u32]| (classes, x.clone());
        let map = |classes: &'static [u32]| -> Vec<f32> {
            let (classes, x) = batch(classes);
            let b = ExplainBatch {
                x: &x,
                classes,
                first_index: 0,
                seed: 0,
                stream: 0,
            };
            GuidedBackprop
                .explain(&net, &b)
                .unwrap()
                .maps
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(map(&[0]), [0.0, 0.0]);
        // Class 1: W2[1] = (4, 1); unit 0 passes 4, so the map is 4 · W1[0].
        assert_eq!(map(&[1]), [4.0, 8.0]);
        // The plain gradient of class 0 is −2 · W1[0]: the guide changed it.
        let plain = net
            .input_grad(&x, crate::model::Objective::ClassScore(&[0]))
            .unwrap()
            .grad
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(plain, [-2.0, -4.0]);
    }
}
