//! Compiling a [`Network`] into the fast engine's value graph: each layer of
//! the spec becomes a channel-last op reading one value and writing a new
//! one (residual blocks add their branches' values), with weights re-laid
//! out for the kernels. Two rewrites save passes over memory: an eval-mode
//! batch norm after a convolution or linear layer is folded into its weights,
//! and a ReLU after any op is applied in place by that op (its gradient masked
//! by the op's output). Neither happens across the output of a layer asked to
//! be kept (`keep`, the layer Grad-CAM taps), so that output exists.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Tensor};

use super::conv::Conv;
use super::grouped::Grouped;
use super::linear::Linear;
use super::pointwise::{Activation, ChannelMap};
use super::pool::{AvgPool, MaxPool};
use super::{Graph, Kernels, Op, Step};
use crate::model::layers::Layer;
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
    kernels: Kernels,
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

    /// Compiles `layers` (paths `{prefix}{i}`) on the value `cur`; returns
    /// the value and shape they end in.
    fn layers(&mut self, layers: &[Layer], prefix: &str, cur: (usize, Shape)) -> R<(usize, Shape)> {
        let (mut value, mut shape) = cur;
        let mut i = 0;
        while i < layers.len() {
            let mut path = format!("{prefix}{i}");
            let layer = &layers[i];
            let unsupported = |what: &str| format!("layer {path} ({what}) on input {shape:?}");
            let (op, next) = match (layer, shape) {
                (Layer::Identity, s) => {
                    self.taps.insert(path, (value, s));
                    i += 1;
                    continue;
                }
                (Layer::Flatten, Shape::Spatial(h, w, c)) if h * w == 1 || c == 1 => {
                    // Channel-last and PyTorch's order coincide.
                    shape = Shape::Flat(h * w * c);
                    self.taps.insert(path, (value, shape));
                    i += 1;
                    continue;
                }
                (Layer::Flatten, Shape::Flat(f)) => {
                    self.taps.insert(path, (value, Shape::Flat(f)));
                    i += 1;
                    continue;
                }
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
                    let (oh, ow) = pooled(p, h, w).ok_or_else(|| {
                        format!("layer {path}: pooling window larger than its input")
                    })?;
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
                    let (oh, ow) = pooled(pool, h, w).ok_or_else(|| {
                        format!("layer {path}: pooling window larger than its input")
                    })?;
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
                (
                    Layer::Residual {
                        body,
                        shortcut,
                        activation,
                    },
                    s,
                ) => {
                    let (b, bshape) = self.layers(body, &format!("{path}.body."), (value, s))?;
                    let (sc, sshape) = match shortcut {
                        Some(layers) => {
                            self.layers(layers, &format!("{path}.shortcut."), (value, s))?
                        }
                        None => (value, s),
                    };
                    if bshape != sshape {
                        return Err(format!(
                            "layer {path}: the residual body gives {bshape:?}, the shortcut {sshape:?}"
                        ));
                    }
                    let sum = self.push(Op::Add(sc), b, bshape);
                    let end = match activation.as_deref() {
                        None => sum,
                        Some(Layer::Relu) => {
                            self.steps.last_mut().expect("just pushed").relu = true;
                            sum
                        }
                        Some(act) => {
                            let act_path = format!("{path}.activation.");
                            self.layers(std::slice::from_ref(act), &act_path, (sum, bshape))?
                                .0
                        }
                    };
                    self.taps
                        .insert(format!("{path}.activation.0"), (end, bshape));
                    self.taps.insert(path, (end, bshape));
                    value = end;
                    shape = bshape;
                    i += 1;
                    continue;
                }
                (Layer::Conv2d { .. }, _) => return Err(unsupported("conv2d on flat input")),
                (other, s) => return Err(format!("layer {path} ({other:?}) on input {s:?}")),
            };
            let mut op = op;
            // Fold a following batch norm into a convolution or linear layer.
            if let (Some(Layer::BatchNorm { scale, shift }), false) =
                (layers.get(i + 1), self.kept(&path))
            {
                if matches!(op, Op::Conv(_) | Op::Grouped(_) | Op::Linear(_)) {
                    let (scale, shift) = (floats(scale)?, floats(shift)?);
                    if scale.len() != next.channels() || shift.len() != next.channels() {
                        return Err(format!(
                            "layer {prefix}{}: batch norm width differs from its input",
                            i + 1
                        ));
                    }
                    match &mut op {
                        Op::Conv(c) => c.fold_affine(&scale, &shift),
                        Op::Grouped(g) => g.fold_affine(&scale, &shift),
                        Op::Linear(l) => l.fold_affine(&scale, &shift),
                        _ => unreachable!("checked above"),
                    }
                    i += 1;
                    path = format!("{prefix}{i}");
                }
            }
            if let (Op::Conv(c), Kernels::Winograd) = (&mut op, self.kernels) {
                if c.winograd_fits() {
                    c.use_winograd();
                }
            }
            value = self.push(op, value, next);
            shape = next;
            // Apply a following ReLU in place.
            if let (Some(Layer::Relu), false) = (layers.get(i + 1), self.kept(&path)) {
                self.steps.last_mut().expect("just pushed").relu = true;
                i += 1;
                path = format!("{prefix}{i}");
            }
            self.taps.insert(path, (value, shape));
            i += 1;
        }
        Ok((value, shape))
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
            kernels,
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
        let (output, shape) = b.layers(network.layers(), "", (value, shape))?;
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
