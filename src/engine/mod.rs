//! The fast engine: a network compiled from the spec's layers into a flat
//! list of channel-last ops with hand-written input-gradient passes —
//! im2col + packed GEMM convolutions, argmax-routed pooling, no weight
//! gradients, buffers reused across calls. It implements the same
//! [`Classifier`] as the candle [`Network`] it is compiled from, which stays
//! the reference: tests hold every op's output and gradient to it.
//!
//! Batches are cut into fixed chunks of [`CHUNK`] samples (the last one
//! zero-padded) that run in parallel with rayon. Every matrix product thus
//! has the same shape whatever the batch size, so each sample's logits and
//! gradient are bit-for-bit the same in a batch of 1 or of 1,000.
//!
//! Layers the engine does not compile (average pools, GELU, residual blocks,
//! grouped convolutions) make [`FastNet::compile`] return the reason;
//! [`select`] then falls back to the reference under [`Engine::Auto`].
//!
//! This file runs the compiled steps; `compile` builds them from the
//! layers, and `conv`, `gemm`, `pool` and `pointwise` hold the ops' kernels.

mod compile;
mod conv;
mod gemm;
pub use gemm::peak_gflops;
mod pointwise;
mod pool;
mod winograd;

use std::sync::Mutex;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Remedy, Result};
use crate::model::binary::with_classes;
use crate::model::classifier::{InputGradient, LayerGradient, Objective, Outputs};
use crate::model::{Classifier, Network};
use conv::Conv;
use gemm::{matmul, MatRef};
use pointwise::{Activation, ChannelMap};
use pool::MaxPool;

/// Samples per chunk: the unit of parallel work and of padding (10: a batch
/// of 100, the plans' default, splits evenly over 2 or 5 threads, unpadded).
pub const CHUNK: usize = 10;

/// Which implementation runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// The fast engine when it supports every layer, else the reference.
    #[default]
    Auto,
    /// The fast engine; an error when a layer is not supported.
    Fast,
    /// candle autograd, the reference.
    Reference,
}

/// The classifier for `network` under `engine`, and which one it is.
pub fn select(network: &Network, engine: Engine) -> Result<(Box<dyn Classifier>, &'static str)> {
    match engine {
        Engine::Reference => Ok((Box::new(network.clone()), "reference")),
        Engine::Fast => match FastNet::compile(network) {
            Ok(f) => Ok((Box::new(f), "fast")),
            Err(why) => Err(Error::Invalid(format!(
                "the fast engine cannot run this model: {why}"
            ))
            .remedied(Remedy::ReferenceEngine)),
        },
        Engine::Auto => match FastNet::compile(network) {
            Ok(f) => Ok((Box::new(f), "fast")),
            Err(_) => Ok((Box::new(network.clone()), "reference")),
        },
    }
}

/// One compiled op.
#[derive(Debug, Clone)]
enum Op {
    /// PyTorch's NCHW input → channel-last `(hw, c)`.
    ChannelLast(usize, usize),
    /// Channel-last → PyTorch's flatten order `(hw, c)`.
    Flatten(usize, usize),
    Map(ChannelMap),
    Conv(Conv),
    Linear {
        /// `[out, in]`, for the backward product.
        weight: Vec<f32>,
        /// `[in, out]`, for the forward product (unpacked by the GEMM kernel).
        weight_t: Vec<f32>,
        bias: Option<Vec<f32>>,
        fin: usize,
        fout: usize,
    },
    MaxPool(MaxPool),
    /// `(hw, c)`.
    GlobalAvg(usize, usize),
    Act(Activation),
}

#[derive(Debug, Clone)]
struct Step {
    op: Op,
    /// Per-sample output length.
    out_len: usize,
}

/// Per-thread buffers, kept between calls.
struct Workspace {
    /// `acts[0]` is the chunk's input, `acts[i + 1]` step `i`'s output.
    acts: Vec<Vec<f32>>,
    /// Max-pool sources per step.
    args: Vec<Vec<u32>>,
    cols: Vec<f32>,
    grads: [Vec<f32>; 2],
}

/// A network compiled for fast forward and input-gradient passes.
#[derive(Debug)]
pub struct FastNet {
    reference: Network,
    steps: Vec<Step>,
    in_len: usize,
    /// Width of the last layer's output (1 for a binary classifier).
    outputs: usize,
    workspaces: Mutex<Vec<Workspace>>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Workspace")
    }
}

impl FastNet {
    /// Floating-point operations per sample: `(forward, input gradient)`,
    /// counting a multiply-add as two (matrix products only; the element-wise
    /// ops add well under 1%).
    pub fn flops_per_sample(&self) -> (f64, f64) {
        let mut forward = 0.0;
        let mut backward = 0.0;
        for step in &self.steps {
            let macs = match &step.op {
                Op::Conv(c) => {
                    (c.output.0 * c.output.1 * c.kernel.0 * c.kernel.1 * c.cin * c.cout) as f64
                }
                Op::Linear { fin, fout, .. } => (fin * fout) as f64,
                _ => 0.0,
            };
            // The input gradient of a product costs what the product does.
            forward += 2.0 * macs;
            backward += 2.0 * macs;
        }
        (forward, backward)
    }

    /// The network this was compiled from.
    pub fn reference(&self) -> &Network {
        &self.reference
    }

    fn workspace(&self) -> Workspace {
        if let Some(ws) = self.workspaces.lock().ok().and_then(|mut v| v.pop()) {
            return ws;
        }
        let mut acts = vec![vec![0f32; CHUNK * self.in_len]];
        let mut widest = self.in_len;
        for s in &self.steps {
            acts.push(vec![0f32; CHUNK * s.out_len]);
            widest = widest.max(s.out_len);
        }
        Workspace {
            acts,
            args: vec![Vec::new(); self.steps.len()],
            cols: Vec::new(),
            grads: [vec![0f32; CHUNK * widest], vec![0f32; CHUNK * widest]],
        }
    }

    fn forward_chunk(&self, ws: &mut Workspace) {
        let n = CHUNK;
        let Workspace {
            acts, args, cols, ..
        } = ws;
        for (i, step) in self.steps.iter().enumerate() {
            let (before, after) = acts.split_at_mut(i + 1);
            let x = &before[i];
            let y = &mut after[0];
            match &step.op {
                Op::ChannelLast(hw, c) => pointwise::to_channel_last(n, *hw, *c, x, y),
                Op::Flatten(hw, c) => pointwise::to_channel_first(n, *hw, *c, x, y),
                Op::Map(m) => m.forward(x, y),
                Op::Conv(conv) => conv.forward(n, x, y, cols),
                Op::Linear {
                    weight_t,
                    bias,
                    fin,
                    fout,
                    ..
                } => {
                    if let Some(b) = bias {
                        for row in y.chunks_exact_mut(*fout) {
                            row.copy_from_slice(b);
                        }
                    }
                    matmul(
                        y,
                        MatRef::row_major(x, n, *fin),
                        MatRef::row_major(weight_t, *fin, *fout),
                        bias.is_some(),
                    );
                }
                Op::MaxPool(mp) => mp.forward(n, x, y, &mut args[i]),
                Op::GlobalAvg(hw, c) => pool::global_avg_forward(n, *hw, *c, x, y),
                Op::Act(a) => a.forward(x, y),
            }
        }
    }

    /// Backpropagates `ws.grads[0]` (the logits' gradient) to the input;
    /// returns which of the two gradient buffers holds the result.
    fn backward_chunk(&self, ws: &mut Workspace) -> usize {
        let n = CHUNK;
        let Workspace {
            acts,
            args,
            cols,
            grads,
        } = ws;
        let mut cur = 0;
        for (i, step) in self.steps.iter().enumerate().rev() {
            let (g0, g1) = grads.split_at_mut(1);
            let (dy, dx) = if cur == 0 {
                (&g0[0], &mut g1[0])
            } else {
                (&g1[0], &mut g0[0])
            };
            let (x, y) = (&acts[i], &acts[i + 1]);
            let in_len = x.len();
            let dy = &dy[..n * step.out_len];
            let dx = &mut dx[..in_len];
            match &step.op {
                Op::ChannelLast(hw, c) => pointwise::to_channel_first(n, *hw, *c, dy, dx),
                Op::Flatten(hw, c) => pointwise::to_channel_last(n, *hw, *c, dy, dx),
                Op::Map(m) => m.backward(dy, dx),
                Op::Conv(conv) => conv.backward(n, dy, dx, cols),
                Op::Linear {
                    weight, fin, fout, ..
                } => matmul(
                    dx,
                    MatRef::row_major(dy, n, *fout),
                    MatRef::row_major(weight, *fout, *fin),
                    false,
                ),
                Op::MaxPool(mp) => mp.backward(n, &args[i], dy, dx),
                Op::GlobalAvg(hw, c) => pool::global_avg_backward(n, *hw, *c, dy, dx),
                Op::Act(a) => a.backward(x, y, dy, dx),
            }
            cur = 1 - cur;
        }
        cur
    }

    /// Runs `x` (`n` samples, NCHW) chunk by chunk in parallel: logits, and
    /// with an objective its values and the input gradient.
    fn run(
        &self,
        x: &[f32],
        n: usize,
        objective: Option<&Objective>,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let k = self.outputs;
        let per = self.in_len;
        let chunks: Vec<_> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|ci| -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
                let first = ci * CHUNK;
                let len = CHUNK.min(n - first);
                let mut ws = self.workspace();
                ws.acts[0][..len * per].copy_from_slice(&x[first * per..(first + len) * per]);
                ws.acts[0][len * per..].fill(0.0);
                self.forward_chunk(&mut ws);
                let out = ws.acts.last().map_or(&[][..], |v| v.as_slice());
                let logits = out[..len * k].to_vec();
                let mut values = Vec::new();
                let mut grad = Vec::new();
                if let Some(objective) = objective {
                    values = vec![0f32; len];
                    let out = &ws.acts[self.steps.len()];
                    crate::model::head::seed(
                        objective,
                        first,
                        len,
                        k,
                        out,
                        &mut values,
                        &mut ws.grads[0][..CHUNK * k],
                    )
                    .map_err(Error::Invalid)?;
                    let at = self.backward_chunk(&mut ws);
                    grad = ws.grads[at][..len * per].to_vec();
                }
                if let Ok(mut pool) = self.workspaces.lock() {
                    pool.push(ws);
                }
                Ok((logits, values, grad))
            })
            .collect::<Result<_>>()?;
        let mut logits = Vec::with_capacity(n * k);
        let mut values = Vec::with_capacity(n);
        let mut grad = Vec::with_capacity(if objective.is_some() { n * per } else { 0 });
        for (l, v, g) in chunks {
            logits.extend(l);
            values.extend(v);
            grad.extend(g);
        }
        Ok((logits, values, grad))
    }

    fn input_vec(&self, x: &Tensor) -> Result<(usize, Vec<f32>)> {
        self.reference.check_input(x)?;
        let n = x.dim(0)?;
        Ok((n, x.flatten_all()?.to_vec1::<f32>()?))
    }
}

impl Classifier for FastNet {
    fn input_shape(&self) -> [usize; 3] {
        self.reference.input_shape()
    }

    fn num_classes(&self) -> usize {
        with_classes(FastOutputs(self), |c| c.num_classes())
    }

    fn input_range(&self) -> (f32, f32) {
        self.reference.input_range()
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        with_classes(FastOutputs(self), |c| c.logits(x))
    }

    fn input_grad(&self, x: &Tensor, objective: Objective) -> Result<InputGradient> {
        with_classes(FastOutputs(self), |c| c.input_grad(x, objective))
    }

    fn class_score(&self, logits: &[f32], class: u32) -> f32 {
        with_classes(FastOutputs(self), |c| c.class_score(logits, class))
    }

    fn layer_gradient(&self, x: &Tensor, path: &str, classes: &[u32]) -> Result<LayerGradient> {
        with_classes(FastOutputs(self), |c| c.layer_gradient(x, path, classes))
    }
}

/// The compiled network's raw outputs as a classifier (one "class" for a
/// binary classifier), which [`FastNet`] wraps exactly as [`Network`] wraps
/// its own.
struct FastOutputs<'a>(&'a FastNet);

impl Classifier for FastOutputs<'_> {
    fn input_shape(&self) -> [usize; 3] {
        self.0.reference.input_shape()
    }

    fn num_classes(&self) -> usize {
        self.0.outputs
    }

    fn input_range(&self) -> (f32, f32) {
        self.0.reference.input_range()
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let (n, xv) = self.0.input_vec(x)?;
        let (logits, _, _) = self.0.run(&xv, n, None)?;
        Ok(Tensor::from_vec(logits, (n, self.0.outputs), &Device::Cpu)?)
    }

    fn input_grad(&self, x: &Tensor, objective: Objective) -> Result<InputGradient> {
        let (n, xv) = self.0.input_vec(x)?;
        self.0.reference.check_objective(n, &objective)?;
        let (logits, values, grad) = self.0.run(&xv, n, Some(&objective))?;
        Ok(InputGradient {
            logits: Tensor::from_vec(logits, (n, self.0.outputs), &Device::Cpu)?,
            value: Tensor::from_vec(values, n, &Device::Cpu)?,
            grad: Tensor::from_vec(grad, x.dims(), &Device::Cpu)?,
        })
    }

    fn layer_gradient(&self, x: &Tensor, path: &str, classes: &[u32]) -> Result<LayerGradient> {
        // Layer gradients are the reference's: Grad-CAM needs one per batch.
        Outputs(&self.0.reference).layer_gradient(x, path, classes)
    }
}
