//! The fast engine: a network compiled from the spec's layers into a graph
//! of channel-last ops with hand-written input-gradient passes — im2col +
//! packed GEMM convolutions (direct kernels for grouped and depthwise ones),
//! argmax-routed max pooling, average and adaptive pools, the joins of a
//! graph's branches (sums, products with a broadcast per-channel gate,
//! channel concatenation), padding, hard activations and softmax, batch
//! norm folded into the convolution before it and ReLU applied in place, no
//! weight gradients, buffers reused across calls. It implements
//! the same [`Classifier`] as the candle [`Network`] it is compiled from,
//! which stays the reference: tests hold every op's output and gradient,
//! and Grad-CAM's layer gradients, to it.
//!
//! Batches are cut into fixed chunks (10 samples for inputs up to 32×32,
//! fewer for larger images; the last one zero-padded) that run in parallel
//! with rayon. Every matrix product thus has the same shape whatever the
//! batch size, so each sample's logits and gradient are bit-for-bit the
//! same in a batch of 1 or of 1,000.
//!
//! A layer the engine cannot compile makes [`select`] fall back to the
//! reference under [`Engine::Auto`], naming the layer in [`Selected::fallback`]
//! so callers can say so.
//!
//! This file runs the compiled graph; `compile` builds it from the spec's
//! nodes, and `conv`, `grouped`, `linear`, `gemm`, `pool`, `join` and
//! `pointwise` hold the ops' kernels. A value read by several steps gets
//! its gradient as the sum of theirs: the first writes it, the rest add.

mod compile;
mod conv;
mod gemm;
pub use gemm::peak_gflops;
mod grouped;
mod join;
mod linear;
mod pointwise;
mod pool;
mod random;
mod winograd;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Remedy, Result};
use crate::model::binary::with_classes;
use crate::model::classifier::{InputGradient, LayerGradient, Objective};
use crate::model::{Classifier, Network};
use compile::{Shape, Taps};
use conv::Conv;
use grouped::Grouped;
use join::{Binary, Concat, Pad};
use linear::Linear;
use pointwise::{Activation, ChannelMap};
use pool::{AvgPool, MaxPool};
use random::{Dropout, ResizePad};

/// Which implementation runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// The fast engine when it supports every layer, else the reference.
    #[default]
    Auto,
    /// The fast engine; an error when a layer is not supported.
    Fast,
    /// The fast engine with [`Kernels::Exact`]; an error when a layer is
    /// not supported.
    FastIm2col,
    /// candle autograd, the reference.
    Reference,
}

/// Which convolution kernels the fast engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// im2col + GEMM everywhere: the rounding closest to the reference.
    Exact,
    /// Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions with at least 16
    /// channels (fewer multiplies; rounding of the same size, different).
    #[default]
    Winograd,
}

/// The classifier [`select`] chose.
pub struct Selected {
    /// The model as it will run.
    pub classifier: Box<dyn Classifier>,
    /// `"fast"`, `"fast-im2col"` or `"reference"`.
    pub name: &'static str,
    /// Why `auto` fell back to the reference (the layer the engine cannot
    /// compile); `None` when the engine asked for runs.
    pub fallback: Option<String>,
}

/// The classifier for `network` under `engine`.
///
/// # Errors
/// [`Engine::Fast`] on a model the fast engine cannot compile: the message
/// names the layer.
pub fn select(network: &Network, engine: Engine) -> Result<Selected> {
    let fast = |f: FastNet| Selected {
        name: match f.graph.kernels {
            Kernels::Winograd => "fast",
            Kernels::Exact => "fast-im2col",
        },
        classifier: Box::new(f),
        fallback: None,
    };
    match engine {
        Engine::Reference => Ok(Selected {
            classifier: Box::new(network.clone()),
            name: "reference",
            fallback: None,
        }),
        Engine::Fast | Engine::FastIm2col => match FastNet::compile_with(
            network,
            if engine == Engine::Fast {
                Kernels::Winograd
            } else {
                Kernels::Exact
            },
        ) {
            Ok(f) => Ok(fast(f)),
            Err(why) => Err(Error::Invalid(format!(
                "the fast engine cannot run this model: {why}"
            ))
            .remedied(Remedy::ReferenceEngine)),
        },
        Engine::Auto => match FastNet::compile(network) {
            Ok(f) => Ok(fast(f)),
            Err(why) => Ok(Selected {
                classifier: Box::new(network.clone()),
                name: "reference",
                fallback: Some(format!(
                    "the fast engine cannot run this model ({why}); running on the much slower reference path"
                )),
            }),
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
    Grouped(Grouped),
    Linear(Linear),
    MaxPool(MaxPool),
    AvgPool(AvgPool),
    /// `(hw, c)`.
    GlobalAvg(usize, usize),
    Act(Activation),
    /// `out = input ∘ other` (add or mul; `other` possibly a per-channel
    /// gate): a residual sum, a squeeze-and-excitation product.
    Binary(Binary),
    /// Concatenation along channels of `input` (the first part) and others.
    Concat(Concat),
    /// Constant padding of height and width.
    Pad(Pad),
    /// Softmax over each sample's `k` values.
    Softmax(usize),
    /// Monte-Carlo dropout (random per row).
    Dropout(Dropout),
    /// Random resizing and padding (random per row).
    ResizePad(ResizePad),
}

/// One op of the graph: reads value `input` (values are numbered in the
/// order they are computed, 0 the chunk's input) and writes value `out`.
#[derive(Debug, Clone)]
struct Step {
    op: Op,
    input: usize,
    out: usize,
    /// A ReLU applied in place to the output.
    relu: bool,
}

/// Per-thread buffers, kept between calls.
#[derive(Default)]
struct Workspace {
    /// One buffer per value.
    acts: Vec<Vec<f32>>,
    /// Max-pool sources, or random placements, per step.
    args: Vec<Vec<u32>>,
    /// Dropout masks per step.
    masks: Vec<Vec<f32>>,
    cols: Vec<f32>,
    /// One gradient buffer per value, allocated by the first backward pass.
    grads: Vec<Vec<f32>>,
    /// Which gradients the current backward pass has written.
    written: Vec<bool>,
    /// Scratch for ops that cannot accumulate in place.
    tmp: Vec<f32>,
}

/// A compiled value graph and its buffers.
#[derive(Debug)]
struct Graph {
    steps: Vec<Step>,
    /// Per value, its per-sample length.
    lens: Vec<usize>,
    /// Layer paths whose outputs are values.
    taps: Taps,
    /// The logits' value.
    output: usize,
    /// Samples per chunk.
    chunk: usize,
    /// The kernels it was compiled with.
    kernels: Kernels,
    in_len: usize,
    workspaces: Mutex<Vec<Workspace>>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Workspace")
    }
}

/// Splits `v` into `&v[read]` and `&mut v[write]` (`write < read`).
fn read_write(v: &mut [Vec<f32>], read: usize, write: usize) -> (&[f32], &mut Vec<f32>) {
    let (lo, hi) = v.split_at_mut(read);
    (&hi[0], &mut lo[write])
}

impl Graph {
    fn workspace(&self) -> Workspace {
        if let Some(ws) = self.workspaces.lock().ok().and_then(|mut v| v.pop()) {
            return ws;
        }
        Workspace {
            acts: self
                .lens
                .iter()
                .map(|l| vec![0f32; self.chunk * l])
                .collect(),
            args: vec![Vec::new(); self.steps.len()],
            masks: vec![Vec::new(); self.steps.len()],
            ..Default::default()
        }
    }

    /// The forward pass of one chunk; `keys` holds its rows' draw keys
    /// (empty for a deterministic graph).
    fn forward_chunk(&self, ws: &mut Workspace, keys: &[u64]) {
        let n = self.chunk;
        let Workspace {
            acts,
            args,
            cols,
            masks,
            ..
        } = ws;
        for (i, step) in self.steps.iter().enumerate() {
            let (before, after) = acts.split_at_mut(step.out);
            let x = &before[step.input];
            let y = &mut after[0];
            match &step.op {
                Op::ChannelLast(hw, c) => pointwise::to_channel_last(n, *hw, *c, x, y),
                Op::Flatten(hw, c) => pointwise::to_channel_first(n, *hw, *c, x, y),
                Op::Map(m) => m.forward(x, y),
                Op::Conv(conv) => conv.forward(n, x, y, cols),
                Op::Grouped(conv) => conv.forward(n, x, y),
                Op::Linear(l) => l.forward(n, x, y),
                Op::MaxPool(mp) => mp.forward(n, x, y, &mut args[i]),
                Op::AvgPool(ap) => ap.forward(n, x, y),
                Op::GlobalAvg(hw, c) => pool::global_avg_forward(n, *hw, *c, x, y),
                Op::Act(a) => a.forward(x, y),
                Op::Binary(b) => b.forward(n, x, &before[b.other], y),
                Op::Concat(c) => c.forward(n, before, y),
                Op::Pad(p) => p.forward(n, x, y),
                Op::Softmax(k) => pointwise::softmax_forward(*k, x, y),
                Op::Dropout(d) => {
                    d.masks(keys, n, &mut masks[i]);
                    Dropout::apply(&masks[i], x, y);
                }
                Op::ResizePad(r) => {
                    r.maps(keys, n, &mut args[i]);
                    r.forward(n, &args[i], x, y);
                }
            }
            if step.relu {
                pointwise::relu_in_place(y);
            }
        }
    }

    /// Allocates the per-value gradient buffers on a workspace's first
    /// backward pass (forward-only workspaces never need them).
    fn ensure_grads(&self, ws: &mut Workspace) {
        if ws.grads.len() != self.lens.len() {
            ws.grads = self
                .lens
                .iter()
                .map(|l| vec![0f32; self.chunk * l])
                .collect();
        }
    }

    /// Backpropagates `ws.grads[self.output]` (allocated by
    /// [`Graph::ensure_grads`]) (the logits' gradient) through
    /// steps `from..` in reverse: with `from = 0` to the input
    /// (`ws.grads[0]`), else to the values those steps read.
    fn backward_chunk(&self, ws: &mut Workspace, from: usize) {
        let n = self.chunk;
        let Workspace {
            acts,
            args,
            cols,
            grads,
            written,
            tmp,
            masks,
        } = ws;
        written.clear();
        written.resize(self.lens.len(), false);
        written[self.output] = true;
        for (i, step) in self.steps.iter().enumerate().skip(from).rev() {
            if !written[step.out] {
                continue; // Nothing downstream depends on it.
            }
            if step.relu {
                pointwise::relu_mask(&acts[step.out], &mut grads[step.out]);
            }
            // Joins write several inputs' gradients, each marked written
            // as soon as it is, so that one value read twice (`x · x`,
            // `concat(x, x)`) gets both terms.
            match &step.op {
                Op::Binary(b) => {
                    let accumulate = written[step.input];
                    let (dy, dx) = read_write(grads, step.out, step.input);
                    b.backward_input(n, &acts[b.other], dy, dx, accumulate);
                    written[step.input] = true;
                    let accumulate = written[b.other];
                    let (dy, d_other) = read_write(grads, step.out, b.other);
                    b.backward_other(n, &acts[step.input], dy, d_other, accumulate, tmp);
                    written[b.other] = true;
                    continue;
                }
                Op::Concat(c) => {
                    for (part, &(v, _)) in c.parts.iter().enumerate() {
                        let accumulate = written[v];
                        let (dy, dx) = read_write(grads, step.out, v);
                        c.backward_part(n, part, dy, dx, accumulate);
                        written[v] = true;
                    }
                    continue;
                }
                _ => {}
            }
            let accumulate = written[step.input];
            let (dy, dx) = read_write(grads, step.out, step.input);
            let x = &acts[step.input];
            match &step.op {
                Op::Conv(conv) => conv.backward(n, dy, dx, cols, accumulate),
                Op::Grouped(conv) => conv.backward(n, dy, dx, accumulate),
                Op::Linear(l) => l.backward(n, dy, dx, accumulate),
                op => {
                    // Ops that overwrite: into scratch first when the
                    // input's gradient already holds another branch's.
                    let len = n * self.lens[step.input];
                    let target: &mut [f32] = if accumulate {
                        tmp.resize(len, 0.0);
                        tmp
                    } else {
                        &mut dx[..len]
                    };
                    match op {
                        Op::ChannelLast(hw, c) => {
                            pointwise::to_channel_first(n, *hw, *c, dy, target)
                        }
                        Op::Flatten(hw, c) => pointwise::to_channel_last(n, *hw, *c, dy, target),
                        Op::Map(m) => m.backward(dy, target),
                        Op::MaxPool(mp) => mp.backward(n, &args[i], dy, target),
                        Op::AvgPool(ap) => ap.backward(n, dy, target),
                        Op::GlobalAvg(hw, c) => pool::global_avg_backward(n, *hw, *c, dy, target),
                        Op::Act(a) => a.backward(x, &acts[step.out], dy, target),
                        Op::Pad(p) => p.backward(n, dy, target),
                        Op::Softmax(k) => {
                            pointwise::softmax_backward(*k, &acts[step.out], dy, target)
                        }
                        Op::Dropout(_) => Dropout::apply(&masks[i], dy, target),
                        Op::ResizePad(r) => r.backward(n, &args[i], dy, target),
                        Op::Conv(_)
                        | Op::Grouped(_)
                        | Op::Linear(_)
                        | Op::Binary(_)
                        | Op::Concat(_) => {
                            unreachable!("handled above")
                        }
                    }
                    if accumulate {
                        pointwise::write(tmp, dx, true);
                    }
                }
            }
            written[step.input] = true;
        }
    }

    /// The step that computes `value`'s final contents (0 for the input).
    fn producer(&self, value: usize) -> usize {
        self.steps
            .iter()
            .position(|s| s.out == value)
            .map_or(0, |i| i + 1)
    }

    /// Runs `x` (`n` samples, NCHW) chunk by chunk in parallel. With an
    /// objective: its values and the input gradient. With a tap
    /// `(value, classes)`: that value and its gradient of the summed class
    /// logits, per sample in the graph's layout (in place of the input
    /// gradient).
    ///
    /// `keys` holds each row's draw key when the graph has random layers.
    fn run(
        &self,
        x: &[f32],
        n: usize,
        objective: Option<&Objective>,
        tap: Option<usize>,
        keys: Option<&[u64]>,
    ) -> Result<Chunks> {
        let k = self.lens[self.output];
        let per = self.in_len;
        let chunk = self.chunk;
        let chunks: Vec<_> = (0..n.div_ceil(chunk))
            .into_par_iter()
            .map(|ci| -> Result<Chunks> {
                let first = ci * chunk;
                let len = chunk.min(n - first);
                let mut ws = self.workspace();
                ws.acts[0][..len * per].copy_from_slice(&x[first * per..(first + len) * per]);
                ws.acts[0][len * per..].fill(0.0);
                let keys = keys.map_or(&[][..], |k| &k[first..first + len]);
                self.forward_chunk(&mut ws, keys);
                let out = &ws.acts[self.output];
                let logits = out[..len * k].to_vec();
                let (mut values, mut grad, mut act) = (Vec::new(), Vec::new(), Vec::new());
                if let Some(objective) = objective {
                    values = vec![0f32; len];
                    self.ensure_grads(&mut ws);
                    crate::model::head::seed(
                        objective,
                        first,
                        len,
                        k,
                        &ws.acts[self.output],
                        &mut values,
                        &mut ws.grads[self.output][..chunk * k],
                    )
                    .map_err(Error::Invalid)?;
                    let (target, from) = match tap {
                        Some(v) => (v, self.producer(v)),
                        None => (0, 0),
                    };
                    self.backward_chunk(&mut ws, from);
                    let l = self.lens[target];
                    grad = if ws.written[target] {
                        ws.grads[target][..len * l].to_vec()
                    } else {
                        vec![0f32; len * l]
                    };
                    if tap.is_some() {
                        act = ws.acts[target][..len * l].to_vec();
                    }
                }
                if let Ok(mut pool) = self.workspaces.lock() {
                    pool.push(ws);
                }
                Ok(Chunks {
                    logits,
                    values,
                    grad,
                    activation: act,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut all = Chunks::default();
        for c in chunks {
            all.logits.extend(c.logits);
            all.values.extend(c.values);
            all.grad.extend(c.grad);
            all.activation.extend(c.activation);
        }
        Ok(all)
    }
}

/// What [`Graph::run`] returns, concatenated over chunks.
#[derive(Default)]
struct Chunks {
    logits: Vec<f32>,
    values: Vec<f32>,
    grad: Vec<f32>,
    activation: Vec<f32>,
}

/// A network compiled for fast forward, input-gradient and layer-gradient
/// passes.
#[derive(Debug)]
pub struct FastNet {
    reference: Network,
    graph: Graph,
    /// Graphs compiled to keep a layer the main graph folds or fuses away
    /// (Grad-CAM's target), by layer path.
    tapped: Mutex<HashMap<String, Arc<Graph>>>,
}

impl FastNet {
    /// Compiles `network` with the default kernels, or says which layer
    /// the engine does not support.
    pub fn compile(network: &Network) -> std::result::Result<Self, String> {
        Self::compile_with(network, Kernels::default())
    }

    /// [`FastNet::compile`] with the given convolution kernels.
    pub fn compile_with(network: &Network, kernels: Kernels) -> std::result::Result<Self, String> {
        Ok(FastNet {
            reference: network.clone(),
            graph: Graph::compile(network, None, kernels)?,
            tapped: Mutex::new(HashMap::new()),
        })
    }

    /// Convolutions run by Winograd, of all convolutions.
    pub fn winograd_convolutions(&self) -> (usize, usize) {
        let convs = self.graph.steps.iter().filter_map(|s| match &s.op {
            Op::Conv(c) => Some(c.is_winograd()),
            Op::Grouped(_) => Some(false),
            _ => None,
        });
        convs.fold((0, 0), |(w, n), is| (w + is as usize, n + 1))
    }

    /// Samples per parallel chunk (fixed by the input shape).
    pub fn chunk(&self) -> usize {
        self.graph.chunk
    }

    /// The network this was compiled from.
    pub fn reference(&self) -> &Network {
        &self.reference
    }

    /// Each row's draw key for draw `draw` (`None` without random layers),
    /// as the reference computes them.
    fn keys(&self, x: &Tensor, draw: u64) -> Result<Option<Vec<u64>>> {
        if !self.reference.is_randomized() {
            return Ok(None);
        }
        let seed = self.reference.draw_seed();
        Ok(Some(crate::model::draw::row_keys(x, seed, draw)?))
    }

    fn input_vec(&self, x: &Tensor) -> Result<(usize, Vec<f32>)> {
        self.reference.check_input(x)?;
        let n = x.dim(0)?;
        Ok((n, x.flatten_all()?.to_vec1::<f32>()?))
    }

    /// The graph that has the output of layer `path` as a value, and that
    /// value; compiled on first use when the main graph folds it away.
    fn tapped(&self, path: &str) -> Result<(Arc<Graph>, usize, Shape)> {
        let mut cache = self
            .tapped
            .lock()
            .map_err(|_| Error::Invalid("the engine's graph cache was poisoned".into()))?;
        if let Some(g) = cache.get(path) {
            let (v, s) = g.taps[path];
            return Ok((g.clone(), v, s));
        }
        self.reference.check_layer_path(path)?;
        let graph = Graph::compile(&self.reference, Some(path), self.graph.kernels)
            .map_err(Error::Invalid)?;
        let Some(&(v, s)) = graph.taps.get(path) else {
            return Err(Error::Invalid(format!(
                "the engine keeps no value for layer `{path}`"
            )));
        };
        let graph = Arc::new(graph);
        cache.insert(path.to_string(), graph.clone());
        Ok((graph, v, s))
    }
}

impl Classifier for FastNet {
    fn input_shape(&self) -> [usize; 3] {
        self.reference.input_shape()
    }

    fn network(&self) -> Option<&Network> {
        Some(&self.reference)
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

    fn is_randomized(&self) -> bool {
        self.reference.is_randomized()
    }

    fn logits_draw(&self, x: &Tensor, draw: u64) -> Result<Tensor> {
        with_classes(FastOutputs(self), |c| c.logits_draw(x, draw))
    }

    fn input_grad_draw(
        &self,
        x: &Tensor,
        objective: Objective,
        draw: u64,
    ) -> Result<InputGradient> {
        with_classes(FastOutputs(self), |c| c.input_grad_draw(x, objective, draw))
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
        self.0.graph.lens[self.0.graph.output]
    }

    fn input_range(&self) -> (f32, f32) {
        self.0.reference.input_range()
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.logits_draw(x, 0)
    }

    fn input_grad(&self, x: &Tensor, objective: Objective) -> Result<InputGradient> {
        self.input_grad_draw(x, objective, 0)
    }

    fn is_randomized(&self) -> bool {
        self.0.reference.is_randomized()
    }

    fn logits_draw(&self, x: &Tensor, draw: u64) -> Result<Tensor> {
        let (n, xv) = self.0.input_vec(x)?;
        let keys = self.0.keys(x, draw)?;
        let out = self.0.graph.run(&xv, n, None, None, keys.as_deref())?;
        let k = self.num_classes();
        Ok(Tensor::from_vec(out.logits, (n, k), &Device::Cpu)?)
    }

    fn input_grad_draw(
        &self,
        x: &Tensor,
        objective: Objective,
        draw: u64,
    ) -> Result<InputGradient> {
        let (n, xv) = self.0.input_vec(x)?;
        self.0.reference.check_objective(n, &objective)?;
        let keys = self.0.keys(x, draw)?;
        let out = self
            .0
            .graph
            .run(&xv, n, Some(&objective), None, keys.as_deref())?;
        let k = self.num_classes();
        Ok(InputGradient {
            logits: Tensor::from_vec(out.logits, (n, k), &Device::Cpu)?,
            value: Tensor::from_vec(out.values, n, &Device::Cpu)?,
            grad: Tensor::from_vec(out.grad, x.dims(), &Device::Cpu)?,
        })
    }

    fn layer_gradient(&self, x: &Tensor, path: &str, classes: &[u32]) -> Result<LayerGradient> {
        let (n, xv) = self.0.input_vec(x)?;
        let k = self.num_classes();
        if classes.len() != n || classes.iter().any(|&c| c as usize >= k) {
            return Err(Error::Invalid(format!(
                "layer gradient: {} classes for a batch of {n} (each below {k})",
                classes.len()
            )));
        }
        let main = self.0.graph.taps.get(path).copied();
        let held;
        let (graph, (value, shape)) = match main {
            Some(tap) => (&self.0.graph, tap),
            None => {
                let (g, v, s) = self.0.tapped(path)?;
                held = g;
                (held.as_ref(), (v, s))
            }
        };
        let keys = self.0.keys(x, 0)?;
        let out = graph.run(
            &xv,
            n,
            Some(&Objective::Logit(classes)),
            Some(value),
            keys.as_deref(),
        )?;
        let to_tensor = |v: Vec<f32>| -> Result<Tensor> {
            Ok(match shape {
                Shape::Spatial(h, w, c) => {
                    let mut nchw = vec![0f32; v.len()];
                    pointwise::to_channel_first(n, h * w, c, &v, &mut nchw);
                    Tensor::from_vec(nchw, (n, c, h, w), &Device::Cpu)?
                }
                Shape::Flat(f) => Tensor::from_vec(v, (n, f), &Device::Cpu)?,
            })
        };
        Ok(LayerGradient {
            logits: Tensor::from_vec(out.logits, (n, k), &Device::Cpu)?,
            activation: to_tensor(out.activation)?,
            grad: to_tensor(out.grad)?,
        })
    }
}
