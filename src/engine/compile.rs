//! Compiling a [`Network`] into the fast engine's steps: each layer of the
//! spec becomes a channel-last op (weights re-laid out for the GEMM kernel),
//! or the reason the engine cannot run it.

use std::sync::Mutex;

use candle_core::{DType, Tensor};

use super::conv::Conv;
use super::pointwise::{Activation, ChannelMap};
use super::pool::MaxPool;
use super::{FastNet, Op, Step};
use crate::model::layers::Layer;
use crate::model::spec::pooled_len;
use crate::model::{Classifier, Network};

/// One sample's activation shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `[h, w, c]`, channel-last.
    Spatial(usize, usize, usize),
    /// `[f]`.
    Flat(usize),
}

impl Shape {
    fn len(self) -> usize {
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

impl FastNet {
    /// Compiles `network`, or says which layer the engine does not support.
    pub fn compile(network: &Network) -> std::result::Result<Self, String> {
        let [c, h, w] = network.input_shape();
        let mut shape = Shape::Spatial(h, w, c);
        let mut steps = Vec::new();
        if c > 1 {
            steps.push(Step {
                op: Op::ChannelLast(h * w, c),
                out_len: shape.len(),
            });
        }
        if let Some((mean, std)) = network.normalization() {
            steps.push(Step {
                op: Op::Map(ChannelMap::Normalize {
                    mean: floats(mean)?,
                    std: floats(std)?,
                }),
                out_len: shape.len(),
            });
        }
        for (i, layer) in network.layers().iter().enumerate() {
            let unsupported = |what: &str| format!("layer {i} ({what}) is not supported");
            let (op, next) = match (layer, shape) {
                (Layer::Identity, _) => continue,
                (Layer::Linear { weight, bias }, Shape::Flat(fin)) => {
                    let (fout, wi) = weight.dims2().map_err(|e| e.to_string())?;
                    if wi != fin {
                        return Err(format!("layer {i}: linear expects {wi} inputs, gets {fin}"));
                    }
                    let bias = bias.as_ref().map(floats).transpose()?;
                    let weight = floats(weight)?;
                    let mut weight_t = vec![0f32; weight.len()];
                    for o in 0..fout {
                        for j in 0..fin {
                            weight_t[j * fout + o] = weight[o * fin + j];
                        }
                    }
                    let op = Op::Linear {
                        weight,
                        weight_t,
                        bias,
                        fin,
                        fout,
                    };
                    (op, Shape::Flat(fout))
                }
                (
                    Layer::Conv2d {
                        weight,
                        bias,
                        padding,
                        stride,
                        dilation,
                        groups: 1,
                    },
                    Shape::Spatial(h, w, c),
                ) => {
                    let (co, ci, kh, kw) = weight.dims4().map_err(|e| e.to_string())?;
                    if ci != c {
                        return Err(format!("layer {i}: conv expects {ci} channels, gets {c}"));
                    }
                    let bias = bias.as_ref().map(floats).transpose()?;
                    let conv = Conv::new(
                        &floats(weight)?,
                        bias,
                        (co, ci, kh, kw),
                        *stride,
                        *padding,
                        *dilation,
                        (h, w),
                    );
                    let (oh, ow) = conv.output;
                    (Op::Conv(conv), Shape::Spatial(oh, ow, co))
                }
                (Layer::BatchNorm { scale, shift }, s) => {
                    let (scale, shift) = (floats(scale)?, floats(shift)?);
                    if scale.len() != s.channels() || shift.len() != s.channels() {
                        return Err(format!(
                            "layer {i}: batch norm width differs from its input"
                        ));
                    }
                    (Op::Map(ChannelMap::Affine { scale, shift }), s)
                }
                (Layer::MaxPool(p), Shape::Spatial(h, w, c)) => {
                    let oh = pooled_len(
                        h,
                        p.kernel.0,
                        p.stride.0,
                        p.padding.0,
                        p.dilation.0,
                        p.ceil_mode,
                    );
                    let ow = pooled_len(
                        w,
                        p.kernel.1,
                        p.stride.1,
                        p.padding.1,
                        p.dilation.1,
                        p.ceil_mode,
                    );
                    let (Some(oh), Some(ow)) = (oh, ow) else {
                        return Err(format!("layer {i}: pooling window larger than its input"));
                    };
                    let mp = MaxPool {
                        pool: *p,
                        c,
                        input: (h, w),
                        output: (oh, ow),
                    };
                    (Op::MaxPool(mp), Shape::Spatial(oh, ow, c))
                }
                (Layer::GlobalAvgPool, Shape::Spatial(h, w, c)) => {
                    (Op::GlobalAvg(h * w, c), Shape::Flat(c))
                }
                (Layer::Relu, s) => (Op::Act(Activation::Relu), s),
                (Layer::LeakyRelu(slope), s) => (Op::Act(Activation::LeakyRelu(*slope as f32)), s),
                (Layer::Tanh, s) => (Op::Act(Activation::Tanh), s),
                (Layer::Sigmoid, s) => (Op::Act(Activation::Sigmoid), s),
                (Layer::Silu, s) => (Op::Act(Activation::Silu), s),
                (Layer::Flatten, Shape::Spatial(h, w, c)) => {
                    let flat = Shape::Flat(h * w * c);
                    if h * w == 1 || c == 1 {
                        // Channel-last and PyTorch's order coincide.
                        shape = flat;
                        continue;
                    }
                    (Op::Flatten(h * w, c), flat)
                }
                (Layer::Flatten, Shape::Flat(_)) => continue,
                (Layer::Conv2d { .. }, _) => return Err(unsupported("grouped or flat conv2d")),
                (Layer::AvgPool { .. }, _) => return Err(unsupported("avg_pool2d")),
                (Layer::AdaptiveAvgPool(..), _) => return Err(unsupported("adaptive_avg_pool2d")),
                (Layer::Gelu(_), _) => return Err(unsupported("gelu")),
                (Layer::Residual { .. }, _) => return Err(unsupported("residual")),
                (other, s) => return Err(format!("layer {i} ({other:?}) on input {s:?}")),
            };
            shape = next;
            steps.push(Step {
                op,
                out_len: shape.len(),
            });
        }
        let outputs = network.outputs();
        if shape != Shape::Flat(outputs) {
            return Err(format!(
                "the last layer gives {shape:?}, not {outputs} outputs"
            ));
        }
        Ok(FastNet {
            reference: network.clone(),
            steps,
            in_len: c * h * w,
            outputs,
            workspaces: Mutex::new(Vec::new()),
        })
    }
}
