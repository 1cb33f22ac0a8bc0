//! DeepLIFT's backward pass (Shrikumar, Greenside & Kundaje 2017, the
//! rescale rule), as Captum's `DeepLift` runs it: a forward pass of the
//! reference (baseline) records every layer's input and output; the forward
//! pass of the input then makes each elementwise nonlinearity Captum knows
//! (ReLU, leaky ReLU, sigmoid, tanh) pass back its secant slope
//! `Δout / Δin` instead of its derivative (where `|Δin| < 1e-10`, the
//! derivative). Linear layers (convolution, linear, batch norm, pooling by
//! averages, additions) keep their gradients, which are their secants
//! already.
//!
//! Max pooling keeps its plain (argmax-routed) gradient. Captum lists a
//! DeepLIFT rule for it, but with PyTorch's full backward hooks its maps
//! equal the plain max-pool gradient (measured on the shipped CNN: within
//! 2e-7 of a plain-gradient max pool, 0.32 away from its rule): we follow
//! what Captum computes. GELU, SiLU, hard-swish and the rest keep their
//! plain gradients too, as in Captum. So summation-to-delta (attributions
//! summing to `z(x) − z(x₀)`) holds exactly for networks of the four
//! rescaled nonlinearities and linear layers, not through max pooling or
//! the other activations; the convergence delta reports by how much.

use candle_core::{Tensor, Var};

use super::layers::{forward_graph_hooked, Layer};
use super::Network;
use crate::error::{Error, Result};

/// Captum's `eps`: below this change of a unit's input, its gradient is kept.
pub const DEEPLIFT_EPS: f64 = 1e-10;

/// DeepLIFT's multipliers and the two forward passes.
#[derive(Debug, Clone)]
pub struct DeepLiftGradient {
    /// `∂_DL z_c / ∂x`, `[N, C, H, W]`: multiplied by `x − x₀` it is the map.
    pub multipliers: Tensor,
    /// Raw outputs at the inputs, `[N, outputs]`.
    pub outputs: Tensor,
    /// Raw outputs at the baselines, `[N, outputs]`.
    pub baseline_outputs: Tensor,
}

impl Network {
    /// DeepLIFT's multipliers of each row's class score (`classes[i]`'s
    /// output; for a one-output network, `z` for class 1 and `−z` for class
    /// 0, its log-odds) at inputs `x` against `baselines` (both `[N, C, H,
    /// W]` in input units).
    ///
    /// # Errors
    /// Shapes or classes that do not fit; a randomized network.
    pub fn deeplift_gradient(
        &self,
        x: &Tensor,
        baselines: &Tensor,
        classes: &[u32],
    ) -> Result<DeepLiftGradient> {
        self.check_input(x)?;
        self.check_input(baselines)?;
        if x.dims() != baselines.dims() {
            return Err(Error::Invalid(format!(
                "DeepLIFT: inputs {:?} and baselines {:?} differ in shape",
                x.dims(),
                baselines.dims()
            )));
        }
        if self.is_randomized() {
            return Err(Error::Invalid(
                "DeepLIFT compares one forward pass with another, which a randomized model's draws make meaningless"
                    .into(),
            ));
        }
        let n = x.dim(0)?;
        let k = self.outputs();
        if classes.len() != n || classes.iter().any(|&c| c as usize >= k.max(2)) {
            return Err(Error::Invalid(format!(
                "DeepLIFT: {} classes for a batch of {n} (each below {})",
                classes.len(),
                k.max(2)
            )));
        }
        let nodes = self.nodes();
        let normalized = |t: &Tensor| -> Result<Tensor> {
            Ok(match self.normalization() {
                Some((mean, std)) => t.broadcast_sub(mean)?.broadcast_div(std)?,
                None => t.clone(),
            })
        };
        // The reference pass: every node's first input and output.
        let mut reference: Vec<Option<(Tensor, Tensor)>> = vec![None; nodes.len()];
        let baseline_outputs = forward_graph_hooked(
            nodes,
            &normalized(&baselines.detach())?,
            self.output_value(),
            None,
            &mut None,
            None,
            &mut |i, inputs, out| {
                if let Some(first) = inputs.first() {
                    reference[i] = Some(((*first).clone(), out.clone()));
                }
                Ok(out)
            },
        )?;
        let var = Var::from_tensor(x)?;
        let outputs = forward_graph_hooked(
            nodes,
            &normalized(var.as_tensor())?,
            self.output_value(),
            None,
            &mut None,
            None,
            &mut |i, inputs, out| {
                let Some((x0, y0)) = &reference[i] else {
                    return Ok(out);
                };
                let x = inputs[0];
                match &nodes[i].layer {
                    Layer::Relu | Layer::LeakyRelu(_) | Layer::Sigmoid | Layer::Tanh => {
                        rescale(&nodes[i].layer, x, x0, &out, y0)
                    }
                    _ => Ok(out),
                }
            },
        )?;
        let weights = class_score_weights(classes, k, x.device())?;
        let grads = (&outputs * weights)?.sum_all()?.backward()?;
        let multipliers = match grads.get(var.as_tensor()) {
            Some(g) => g.clone(),
            None => x.zeros_like()?,
        };
        Ok(DeepLiftGradient {
            multipliers,
            outputs: outputs.detach(),
            baseline_outputs: baseline_outputs.detach(),
        })
    }
}

/// `[N, outputs]` weights whose product with the raw outputs, summed per
/// row, is each row's class score: one-hot at `classes[i]`, or for a
/// one-output network `+1` for class 1 and `−1` for class 0 (its log-odds).
pub(crate) fn class_score_weights(
    classes: &[u32],
    outputs: usize,
    device: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    let weights: Vec<f32> = match outputs {
        1 => classes
            .iter()
            .map(|&c| if c == 1 { 1.0 } else { -1.0 })
            .collect(),
        k => classes
            .iter()
            .flat_map(|&c| (0..k).map(move |j| if j == c as usize { 1.0 } else { 0.0 }))
            .collect(),
    };
    Tensor::from_vec(weights, (classes.len(), outputs), device)
}

/// `y` with the gradient `Δy / Δx` where `|Δx| ≥ eps` and the layer's
/// derivative elsewhere (Captum's `nonlinear` hook): `y + (x·s − x·s)`
/// with `y`, `s` and the subtracted term detached. The forward value is `y`
/// bit for bit (`a − a` is exactly 0), as in Captum, whose hooks leave the
/// forward pass alone: `x·s + (y − x·s)` rounds, and a max pool after the
/// activation then routes its gradient by rounding noise where its window
/// ties (an MNIST background's equal activations), which moved maps against
/// noise baselines by 3% of their largest value.
fn rescale(
    layer: &Layer,
    x: &Tensor,
    x0: &Tensor,
    y: &Tensor,
    y0: &Tensor,
) -> candle_core::Result<Tensor> {
    let xd = x.detach();
    let yd = y.detach();
    let derivative = match layer {
        Layer::Relu => xd.gt(0f64)?.to_dtype(xd.dtype())?,
        Layer::LeakyRelu(slope) => {
            let on = xd.gt(0f64)?.to_dtype(xd.dtype())?;
            ((&on * (1.0 - slope))? + *slope)?
        }
        Layer::Sigmoid => (&yd * (1.0 - &yd)?)?,
        Layer::Tanh => (1.0 - yd.sqr()?)?,
        _ => unreachable!("rescale is called for these layers only"),
    };
    let delta_in = (&xd - x0)?;
    let small = delta_in.abs()?.lt(DEEPLIFT_EPS)?;
    let secant = ((&yd - y0)? / &delta_in)?;
    let slope = small.where_cond(&derivative, &secant)?.detach();
    let linear = (x * &slope)?;
    let zero = (&linear - linear.detach())?;
    yd + zero
}
