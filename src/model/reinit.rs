//! Re-initializing a network's parameter layers, for the model-parameter
//! randomization tests of attribution maps (Adebayo et al. 2018, "Sanity
//! checks for saliency maps"): a copy of the network whose chosen layers
//! hold fresh random weights, the rest untouched.
//!
//! A layer is re-initialized as PyTorch's `reset_parameters` does it (what
//! Quantus' model-parameter randomization calls): convolution and linear
//! weights and biases uniform in `±1/√fan_in` (`kaiming_uniform_` with
//! `a = √5`, and the bias rule beside it), batch norm back to its initial
//! state (weight 1, bias 0, running mean 0, variance 1: the identity up to
//! its ε, which folding has dropped). Adebayo et al. drew truncated normals;
//! the scale differs, the point (weights that no longer carry what training
//! learned) does not.
//!
//! Each layer's new weights come from a generator keyed by the seed and the
//! layer's node position, so a layer gets the same weights in every step of
//! a cascade and in the independent test.

use candle_core::{Device, Tensor};

use super::layers::Layer;
use super::Network;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The generator stream of re-initialized weights.
const REINIT_STREAM: u64 = 0x7265_696e_6974;

/// One layer with parameters: its node position and its spec name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterLayer {
    /// Position among the network's nodes.
    pub node: usize,
    /// The spec's node name (the layer path, as `inspect` shows it).
    pub name: String,
}

impl Network {
    /// The layers with parameters (convolution, linear, batch norm), in
    /// graph order (input first).
    pub fn parameter_layers(&self) -> Vec<ParameterLayer> {
        self.nodes()
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                matches!(
                    n.layer,
                    Layer::Linear { .. } | Layer::Conv2d { .. } | Layer::BatchNorm { .. }
                )
            })
            .map(|(node, n)| ParameterLayer {
                node,
                name: n.name.clone(),
            })
            .collect()
    }

    /// A copy with the layers at node positions `nodes` re-initialized (see
    /// the module docs), drawn from `seed`.
    ///
    /// # Errors
    /// A position that is not a layer with parameters.
    pub fn reinitialized(&self, nodes: &[usize], seed: u64) -> Result<Network> {
        let mut out = self.clone();
        for &node in nodes {
            let n = out.nodes_mut().get_mut(node).ok_or_else(|| {
                Error::Invalid(format!("re-initializing: no node at position {node}"))
            })?;
            let mut rng = Rng::for_item(seed, REINIT_STREAM, node as u64);
            match &mut n.layer {
                Layer::Linear { weight, bias } => {
                    let fan_in = weight.dims()[1];
                    *weight = uniform_like(weight, fan_in, &mut rng)?;
                    if let Some(b) = bias {
                        *b = uniform_like(b, fan_in, &mut rng)?;
                    }
                }
                Layer::Conv2d { weight, bias, .. } => {
                    let d = weight.dims();
                    let fan_in = d[1] * d[2] * d[3];
                    *weight = uniform_like(weight, fan_in, &mut rng)?;
                    if let Some(b) = bias {
                        *b = uniform_like(b, fan_in, &mut rng)?;
                    }
                }
                Layer::BatchNorm { scale, shift } => {
                    *scale = scale.ones_like()?;
                    *shift = shift.zeros_like()?;
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "re-initializing: layer {} has no parameters",
                        n.name
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// A tensor shaped like `t`, uniform in `±1/√fan_in`.
fn uniform_like(t: &Tensor, fan_in: usize, rng: &mut Rng) -> Result<Tensor> {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    let values: Vec<f32> = (0..t.elem_count())
        .map(|_| rng.uniform_range(-bound, bound))
        .collect();
    Ok(Tensor::from_vec(values, t.dims(), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Classifier;

    fn cnn() -> Network {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        crate::model::load_model(&dir.join("mnist_cnn.safetensors"), None)
            .unwrap()
            .network
    }

    fn weights(net: &Network, node: usize) -> Vec<f32> {
        match &net.nodes()[node].layer {
            Layer::Conv2d { weight, .. } | Layer::Linear { weight, .. } => {
                weight.flatten_all().unwrap().to_vec1().unwrap()
            }
            Layer::BatchNorm { scale, .. } => scale.flatten_all().unwrap().to_vec1().unwrap(),
            _ => unreachable!("a parameter layer"),
        }
    }

    #[test]
    fn only_the_chosen_layers_change_within_the_pytorch_bound() {
        let net = cnn();
        let layers = net.parameter_layers();
        assert!(layers.len() >= 3, "{layers:?}");
        let top = layers.last().unwrap().node;
        let again = net.reinitialized(&[top], 7).unwrap();
        for l in &layers {
            let (before, after) = (weights(&net, l.node), weights(&again, l.node));
            if l.node == top {
                assert_ne!(before, after, "{} re-initialized", l.name);
                let fan_in = match &net.nodes()[top].layer {
                    Layer::Linear { weight, .. } => weight.dims()[1],
                    Layer::Conv2d { weight, .. } => weight.dims()[1..].iter().product(),
                    _ => 1,
                };
                let bound = 1.0 / (fan_in as f32).sqrt();
                assert!(after.iter().all(|v| v.abs() <= bound));
                // Uniform: the spread reaches towards the bound.
                let max = after.iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!(max > 0.9 * bound, "{max} vs bound {bound}");
            } else {
                assert_eq!(before, after, "{} untouched", l.name);
            }
        }
        // The same seed and layer give the same weights; the logits change.
        let twice = net.reinitialized(&[top], 7).unwrap();
        assert_eq!(weights(&again, top), weights(&twice, top));
        let x = Tensor::full(0.5f32, (1, 1, 28, 28), &Device::Cpu).unwrap();
        let (a, b): (Vec<f32>, Vec<f32>) = (
            net.logits(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap(),
            again
                .logits(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap(),
        );
        assert_ne!(a, b);
    }

    #[test]
    fn a_layer_without_parameters_is_refused_by_name() {
        let net = cnn();
        let plain = (0..net.nodes().len())
            .find(|&i| !net.parameter_layers().iter().any(|l| l.node == i))
            .unwrap();
        let err = net.reinitialized(&[plain], 0).unwrap_err().to_string();
        assert!(err.contains(&net.nodes()[plain].name), "{err}");
        assert!(net.reinitialized(&[999], 0).is_err());
    }
}
