//! Compiling a [`Network`] into the fast engine's value graph: each node of
//! the spec becomes a channel-last op reading its inputs' values and writing
//! a new one, with weights re-laid out for the kernels. Joins (`add`, `mul`,
//! `concat`) read several values; a broadcasting add or mul reads its
//! full-shape operand as the step's input and the per-channel gate as the
//! other, whichever order the spec gives them in. Two rewrites save
//! passes over memory: an eval-mode batch norm whose only input is a
//! convolution or linear node read by nothing else is folded into its
//! weights, and a ReLU likewise is applied in place by the op before it (its
//! gradient masked by the op's output). Neither happens across the output of
//! a node asked to be kept (`keep`, the layer Grad-CAM taps), so that output
//! exists.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Tensor};

use super::conv::Conv;
use super::grouped::Grouped;
use super::join::{Binary, Combine, Concat, Pad};
use super::linear::Linear;
use super::pointwise::{Activation, ChannelMap};
use super::pool::{AvgPool, MaxPool};
use super::{Graph, Kernels, Op, Step};
use crate::model::layers::{Layer, Node};
use crate::model::ops::{AvgPool2dOp, Pool2d};
use crate::model::spec::{pooled_len, GeluApproximate};
use crate::model::{Classifier, Network};

/// One sample's activation shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// `[h, w, c]`, channel-last.
    Spatial(usize, usize, usize),
    /// `[f]`.
    Flat(usize),
}

impl Shape {
    pub(super) fn len(self) -> usize {
        match self {
            Shape::Spatial(h, w, c) => h * w * c,
            Shape::Flat(f) => f,
        }
    }

    fn channels(self) -> usize {
        match self {
            Shape::Spatial(_, _, c) => c,
            Shape::Flat(f) => f,
        }
    }
}

fn floats(t: &Tensor) -> std::result::Result<Vec<f32>, String> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| e.to_string())
}

/// Samples per chunk for an input of `h × w` pixels: 10 for MNIST- and
/// CIFAR-sized inputs (a batch of 100 splits evenly over 2 or 5 threads),
/// fewer for large images so a chunk's buffers stay a few tens of MB and
/// small batches still fill every thread. A function of the model only, so
/// results never depend on the batch.
pub(super) fn chunk_for(h: usize, w: usize) -> usize {
    let pixels = (h * w).max(1);
    if pixels <= 1024 {
        10
    } else {
        (10 * 1024 / pixels).max(1)
    }
}

type R<T> = std::result::Result<T, String>;

/// The value (and its shape as the layer gives it) a layer path names.
pub(super) type Taps = HashMap<String, (usize, Shape)>;

struct Builder<'a> {
    steps: Vec<Step>,
    shapes: Vec<Shape>,
    taps: Taps,
    keep: Option<&'a str>,
}

impl Builder<'_> {
    fn push(&mut self, op: Op, input: usize, shape: Shape) -> usize {
        let out = self.shapes.len();
        self.shapes.push(shape);
        self.steps.push(Step {
            op,
            input,
            out,
            relu: false,
        });
        out
    }

    fn kept(&self, path: &str) -> bool {
        self.keep == Some(path)
    }

    /// Compiles `nodes` up to value `output` (node `i` writes value `i + 1`;
    /// value 0 is `input`); returns the engine value and shape of `output`.
    fn nodes(&mut self, nodes: &[Node], output: usize, input: (usize, Shape)) -> R<(usize, Shape)> {
        // Engine value and shape of each node value.
        let mut at: Vec<(usize, Shape)> = vec![input];
        // Whether a node value is its own step's output (not an alias).
        let mut own: Vec<bool> = vec![false];
        let mut readers = vec![0usize; nodes.len() + 1];
        for node in nodes.iter().take(output) {
            for &v in &node.inputs {
                readers[v] += 1;
            }
        }
        readers[output] += 1;
        for (index, node) in nodes.iter().enumerate().take(output) {
            let path = node.name.as_str();
            let ins: Vec<(usize, Shape)> = node.inputs.iter().map(|&v| at[v]).collect();
            // The one input node this node may fuse into: read by it alone,
            // its own step, not kept.
            let fusable = match node.inputs.as_slice() {
                [v] if *v > 0 && own[*v] && readers[*v] == 1 && !self.kept(&nodes[*v - 1].name) => {
                    Some(*v)
                }
                _ => None,
            };
            let producer = |b: &Self, v: usize| b.steps.iter().rposition(|s| s.out == at[v].0);
            match (&node.layer, fusable) {
                (Layer::BatchNorm { scale, shift }, Some(v)) => {
                    let k = producer(self, v).ok_or("a folded value has no step")?;
                    if matches!(
                        self.steps[k].op,
                        Op::Conv(_) | Op::Grouped(_) | Op::Linear(_)
                    ) && !self.steps[k].relu
                    {
                        let (scale, shift) = (floats(scale)?, floats(shift)?);
                        let width = at[v].1.channels();
                        if scale.len() != width || shift.len() != width {
                            return Err(format!(
                                "layer {path}: batch norm width differs from its input"
                            ));
                        }
                        match &mut self.steps[k].op {
                            Op::Conv(c) => c.fold_affine(&scale, &shift),
                            Op::Grouped(g) => g.fold_affine(&scale, &shift),
                            Op::Linear(l) => l.fold_affine(&scale, &shift),
                            _ => unreachable!("checked above"),
                        }
                        self.taps.remove(&nodes[v - 1].name);
                        self.taps.insert(path.to_string(), at[v]);
                        at.push(at[v]);
                        own.push(true);
                        continue;
                    }
                }
                (Layer::Relu, Some(v)) => {
                    let k = producer(self, v).ok_or("a fused value has no step")?;
                    self.steps[k].relu = true;
                    self.taps.remove(&nodes[v - 1].name);
                    self.taps.insert(path.to_string(), at[v]);
                    at.push(at[v]);
                    own.push(true);
                    continue;
                }
                _ => {}
            }
            let (value, shape) = ins[0];
            let unsupported = || format!("layer {path} ({:?}) on inputs {ins:?}", node.layer);
            // The step's input: the first input, but the full-shape operand
            // of a broadcasting add or mul.
            let mut input = value;
            let (op, next) = match (&node.layer, shape) {
                (Layer::Identity, s) => {
                    self.taps.insert(path.to_string(), (value, s));
                    at.push((value, s));
                    own.push(false);
                    continue;
                }
                (Layer::Flatten, Shape::Spatial(h, w, c)) if h * w == 1 || c == 1 => {
                    // Channel-last and PyTorch's order coincide.
                    let s = Shape::Flat(h * w * c);
                    self.taps.insert(path.to_string(), (value, s));
                    at.push((value, s));
                    own.push(false);
                    continue;
                }
                (Layer::Flatten, Shape::Flat(f)) => {
                    self.taps.insert(path.to_string(), (value, Shape::Flat(f)));
                    at.push((value, Shape::Flat(f)));
                    own.push(false);
                    continue;
                }
                (Layer::Add | Layer::Mul, s) if ins.len() == 2 => {
                    let combine = match node.layer {
                        Layer::Add => Combine::Add,
                        _ => Combine::Mul,
                    };
                    let (other, os) = ins[1];
                    let gate = |g: Shape, full: Shape| match (g, full) {
                        (Shape::Spatial(1, 1, gc), Shape::Spatial(h, w, c)) if gc == c => {
                            Some((h * w, c))
                        }
                        _ => None,
                    };
                    let (full, other, shape, gate) = if os == s {
                        (value, other, s, None)
                    } else if let Some(g) = gate(os, s) {
                        (value, other, s, Some(g))
                    } else if let Some(g) = gate(s, os) {
                        (other, value, os, Some(g))
                    } else {
                        return Err(unsupported());
                    };
                    input = full;
                    let binary = Binary {
                        combine,
                        other,
                        gate,
                    };
                    (Op::Binary(binary), shape)
                }
                (Layer::Concat, s) if ins.len() >= 2 => {
                    let (hw, same) = match s {
                        Shape::Spatial(h, w, _) => (
                            h * w,
                            ins.iter().all(
                                |&(_, t)| matches!(t, Shape::Spatial(a, b, _) if (a, b) == (h, w)),
                            ),
                        ),
                        Shape::Flat(_) => {
                            (1, ins.iter().all(|&(_, t)| matches!(t, Shape::Flat(_))))
                        }
                    };
                    if !same {
                        return Err(unsupported());
                    }
                    let concat = Concat {
                        hw,
                        parts: ins.iter().map(|&(v, t)| (v, t.channels())).collect(),
                    };
                    let next = match s {
                        Shape::Spatial(h, w, _) => Shape::Spatial(h, w, concat.channels()),
                        Shape::Flat(_) => Shape::Flat(concat.channels()),
                    };
                    (Op::Concat(concat), next)
                }
                (Layer::Add | Layer::Mul | Layer::Concat, _) => return Err(unsupported()),
                (Layer::Dropout(p), s) => {
                    let dropout = super::random::Dropout {
                        p: *p,
                        node: index,
                        shape: s,
                    };
                    (Op::Dropout(dropout), s)
                }
                (
                    Layer::RandomResizePad {
                        min,
                        max,
                        canvas,
                        value,
                    },
                    Shape::Spatial(h, w, c),
                ) => {
                    let canvas = canvas.unwrap_or((h, w));
                    let resize = super::random::ResizePad {
                        input: (h, w, c),
                        sizes: (*min, max.unwrap_or(canvas.0)),
                        canvas,
                        value: *value as f32,
                        node: index,
                    };
                    (Op::ResizePad(resize), Shape::Spatial(canvas.0, canvas.1, c))
                }
                (layer, s) => self.single(path, layer, s)?,
            };
            let out = self.push(op, input, next);
            self.taps.insert(path.to_string(), (out, next));
            at.push((out, next));
            own.push(true);
        }
        Ok(at[output])
    }

    /// The op for a one-input layer on `shape`, and its output shape.
    fn single(&mut self, path: &str, layer: &Layer, shape: Shape) -> R<(Op, Shape)> {
        Ok(match (layer, shape) {
            (Layer::Flatten, Shape::Spatial(h, w, c)) => {
                (Op::Flatten(h * w, c), Shape::Flat(h * w * c))
            }
            (Layer::Linear { weight, bias }, Shape::Flat(fin)) => {
                let (fout, wi) = weight.dims2().map_err(|e| e.to_string())?;
                if wi != fin {
                    return Err(format!(
                        "layer {path}: linear expects {wi} inputs, gets {fin}"
                    ));
                }
                let bias = bias.as_ref().map(floats).transpose()?;
                (
                    Op::Linear(Linear::new(floats(weight)?, bias, fin, fout)),
                    Shape::Flat(fout),
                )
            }
            (
                Layer::Conv2d {
                    weight,
                    bias,
                    padding,
                    stride,
                    dilation,
                    groups,
                },
                Shape::Spatial(h, w, c),
            ) => {
                let (co, cig, kh, kw) = weight.dims4().map_err(|e| e.to_string())?;
                if cig * groups != c {
                    return Err(format!(
                        "layer {path}: conv expects {} channels, gets {c}",
                        cig * groups
                    ));
                }
                let bias = bias.as_ref().map(floats).transpose()?;
                let w32 = floats(weight)?;
                if *groups == 1 {
                    let conv = Conv::new(
                        &w32,
                        bias,
                        (co, cig, kh, kw),
                        *stride,
                        *padding,
                        *dilation,
                        (h, w),
                    );
                    let (oh, ow) = conv.output;
                    (Op::Conv(conv), Shape::Spatial(oh, ow, co))
                } else {
                    let conv = Grouped::new(
                        &w32,
                        bias,
                        (co, cig, kh, kw),
                        *groups,
                        *stride,
                        *padding,
                        *dilation,
                        (h, w),
                    );
                    let (oh, ow) = conv.output;
                    (Op::Grouped(conv), Shape::Spatial(oh, ow, co))
                }
            }
            (Layer::BatchNorm { scale, shift }, s) => {
                let (scale, shift) = (floats(scale)?, floats(shift)?);
                if scale.len() != s.channels() || shift.len() != s.channels() {
                    return Err(format!(
                        "layer {path}: batch norm width differs from its input"
                    ));
                }
                (Op::Map(ChannelMap::Affine { scale, shift }), s)
            }
            (Layer::MaxPool(p), Shape::Spatial(h, w, c)) => {
                let (oh, ow) = pooled(p, h, w)
                    .ok_or_else(|| format!("layer {path}: pooling window larger than its input"))?;
                let mp = MaxPool {
                    pool: *p,
                    c,
                    input: (h, w),
                    output: (oh, ow),
                };
                (Op::MaxPool(mp), Shape::Spatial(oh, ow, c))
            }
            (
                Layer::AvgPool {
                    pool,
                    count_include_pad,
                },
                Shape::Spatial(h, w, c),
            ) => {
                let (oh, ow) = pooled(pool, h, w)
                    .ok_or_else(|| format!("layer {path}: pooling window larger than its input"))?;
                let op = AvgPool2dOp {
                    pool: *pool,
                    count_include_pad: *count_include_pad,
                };
                let ap = AvgPool::new(op, c, (h, w), (oh, ow));
                (Op::AvgPool(ap), Shape::Spatial(oh, ow, c))
            }
            (Layer::AdaptiveAvgPool(oh, ow), Shape::Spatial(h, w, c)) => {
                let ap = AvgPool::adaptive(c, (h, w), (*oh, *ow));
                (Op::AvgPool(ap), Shape::Spatial(*oh, *ow, c))
            }
            (Layer::GlobalAvgPool, Shape::Spatial(h, w, c)) => {
                (Op::GlobalAvg(h * w, c), Shape::Flat(c))
            }
            (Layer::Relu, s) => (Op::Act(Activation::Relu), s),
            (Layer::LeakyRelu(slope), s) => (Op::Act(Activation::LeakyRelu(*slope as f32)), s),
            (Layer::Tanh, s) => (Op::Act(Activation::Tanh), s),
            (Layer::Sigmoid, s) => (Op::Act(Activation::Sigmoid), s),
            (Layer::Silu, s) => (Op::Act(Activation::Silu), s),
            (Layer::Gelu(GeluApproximate::None), s) => (Op::Act(Activation::GeluErf), s),
            (Layer::Gelu(GeluApproximate::Tanh), s) => (Op::Act(Activation::GeluTanh), s),
            (Layer::Clip(lo, hi), s) => (Op::Act(Activation::Clip(*lo as f32, *hi as f32)), s),
            (Layer::HardSigmoid(alpha, beta), s) => (
                Op::Act(Activation::HardSigmoid(*alpha as f32, *beta as f32)),
                s,
            ),
            (Layer::HardSwish, s) => (Op::Act(Activation::HardSwish), s),
            (Layer::Softmax, Shape::Flat(k)) => (Op::Softmax(k), Shape::Flat(k)),
            (Layer::Scalar(scale, shift), s) => {
                // The per-channel map with every channel alike (the
                // reference's `x · scale + shift` in f32, too).
                let c = s.channels();
                let map = ChannelMap::Affine {
                    scale: vec![*scale as f32; c],
                    shift: vec![*shift as f32; c],
                };
                (Op::Map(map), s)
            }
            (Layer::Pad(pad, value), Shape::Spatial(h, w, c)) => {
                let pad = Pad {
                    pad: *pad,
                    value: *value as f32,
                    input: (h, w, c),
                };
                let (oh, ow) = pad.output();
                (Op::Pad(pad), Shape::Spatial(oh, ow, c))
            }
            (other, s) => return Err(format!("layer {path} ({other:?}) on input {s:?}")),
        })
    }
}

fn pooled(p: &Pool2d, h: usize, w: usize) -> Option<(usize, usize)> {
    let oh = pooled_len(
        h,
        p.kernel.0,
        p.stride.0,
        p.padding.0,
        p.dilation.0,
        p.ceil_mode,
    )?;
    let ow = pooled_len(
        w,
        p.kernel.1,
        p.stride.1,
        p.padding.1,
        p.dilation.1,
        p.ceil_mode,
    )?;
    Some((oh, ow))
}

impl Graph {
    /// Compiles `network`, keeping the output of the layer at `keep`
    /// materialised; or says which layer the engine cannot run.
    pub(super) fn compile(network: &Network, keep: Option<&str>, kernels: Kernels) -> R<Graph> {
        let [c, h, w] = network.input_shape();
        let mut b = Builder {
            steps: Vec::new(),
            shapes: vec![Shape::Spatial(h, w, c)],
            taps: HashMap::new(),
            keep,
        };
        let mut value = 0;
        let shape = Shape::Spatial(h, w, c);
        if c > 1 {
            value = b.push(Op::ChannelLast(h * w, c), value, shape);
        }
        if let Some((mean, std)) = network.normalization() {
            let map = ChannelMap::Normalize {
                mean: floats(mean)?,
                std: floats(std)?,
            };
            value = b.push(Op::Map(map), value, shape);
        }
        let (output, shape) = b.nodes(network.nodes(), network.output_value(), (value, shape))?;
        if kernels == Kernels::Winograd {
            for step in &mut b.steps {
                if let Op::Conv(c) = &mut step.op {
                    if c.winograd_fits() {
                        c.use_winograd();
                    }
                }
            }
        }
        let outputs = network.outputs();
        if shape != Shape::Flat(outputs) {
            return Err(format!(
                "the last layer gives {shape:?}, not {outputs} outputs"
            ));
        }
        Ok(Graph {
            lens: b.shapes.iter().map(|s| s.len()).collect(),
            steps: b.steps,
            taps: b.taps,
            output,
            chunk: chunk_for(h, w),
            kernels,
            in_len: c * h * w,
            workspaces: Mutex::new(Vec::new()),
        })
    }
}
