//! The network's layers as plain structs over candle tensors, built from an
//! [`ArchSpec`] and a map of weights. Every forward pass
//! is differentiable with respect to its input through candle autograd; where
//! candle's own op has the wrong gradient for an audit, the layer uses ours
//! (see [`super::ops`]), and ReLU-like layers multiply by a detached mask so
//! that their derivative at exactly 0 is PyTorch's 0, not candle's 1.

use std::collections::HashMap;

use candle_core::{DType, Tensor};

use super::ops::{self, Pool2d};
use super::spec::{fmt_shape, ArchSpec, GeluApproximate, LayerSpec, Size2, INPUT_NAME};
use crate::error::{Error, Result};

type CResult<T> = candle_core::Result<T>;

/// One layer, ready to run.
#[derive(Debug, Clone)]
pub enum Layer {
    /// `x Wᵀ + b`.
    Linear {
        /// `[out, in]`.
        weight: Tensor,
        /// `[out]`.
        bias: Option<Tensor>,
    },
    /// 2-D convolution.
    Conv2d {
        /// `[out, in/groups, kh, kw]`.
        weight: Tensor,
        /// `[out]`.
        bias: Option<Tensor>,
        /// Zero padding `(h, w)`.
        padding: (usize, usize),
        /// Stride (equal along both axes).
        stride: usize,
        /// Dilation (equal along both axes).
        dilation: usize,
        /// Channel groups.
        groups: usize,
    },
    /// Eval-mode batch norm folded to `x · scale + shift`, broadcast over channels.
    BatchNorm {
        /// `1/sqrt(var + eps) · weight`, shaped to broadcast.
        scale: Tensor,
        /// `bias − mean · scale`, shaped to broadcast.
        shift: Tensor,
    },
    /// Max pooling (PyTorch gradient routing).
    MaxPool(Pool2d),
    /// Average pooling.
    AvgPool {
        /// The window.
        pool: Pool2d,
        /// Count padding in the divisor.
        count_include_pad: bool,
    },
    /// PyTorch's adaptive average pooling to `(h, w)`.
    AdaptiveAvgPool(usize, usize),
    /// Mean over height and width → `[N, C]`.
    GlobalAvgPool,
    /// `max(x, 0)`.
    Relu,
    /// `max(x, 0)` with a modified backward pass (Guided Backpropagation's
    /// or deconvolution's); only [`super::Network::with_relu_backward`]
    /// builds it, for those attribution methods, on the reference path.
    ModifiedRelu(ReluBackward),
    /// `x` for `x > 0`, else `slope · x`.
    LeakyRelu(f64),
    /// GELU, exact or tanh form.
    Gelu(GeluApproximate),
    /// `x · sigmoid(x)`.
    Silu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `[N, ...] → [N, prod(...)]`.
    Flatten,
    /// Dropout at audit time.
    Identity,
    /// Monte-Carlo dropout with this `p` (random: see [`super::draw`]).
    Dropout(f64),
    /// Random resizing to a height in `min..=max` and padding into a
    /// `canvas` filled with `value`; `max` and `canvas` default to the
    /// input's height and size (random: see [`super::draw`]).
    RandomResizePad {
        /// Smallest resized height.
        min: usize,
        /// Largest resized height (the canvas's when `None`).
        max: Option<usize>,
        /// Output height and width (the input's when `None`).
        canvas: Option<(usize, usize)>,
        /// Fill, in the units of the layer's input.
        value: f64,
    },
    /// `a + b`, one of them possibly `[N, C, 1, 1]`.
    Add,
    /// `a · b`, one of them possibly `[N, C, 1, 1]`.
    Mul,
    /// Concatenation along dim 1.
    Concat,
    /// `min(max(x, lo), hi)` (PyTorch's `hardtanh` gradient: 0 at the bounds).
    Clip(f64, f64),
    /// `max(0, min(1, alpha·x + beta))`.
    HardSigmoid(f64, f64),
    /// `x · relu6(x + 3) / 6`.
    HardSwish,
    /// Softmax over dim 1.
    Softmax,
    /// `x · scale + shift`.
    Scalar(f64, f64),
    /// Constant padding `[top, bottom, left, right]` with `value`.
    Pad([usize; 4], f64),
}

/// How a ReLU passes gradients back (Springenberg et al. 2015, "Striving
/// for simplicity"; Captum's `GuidedBackprop` and `Deconvolution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReluBackward {
    /// Guided Backpropagation: the gradient where both the ReLU's input and
    /// the incoming gradient are positive, `relu(g) · 1[x > 0]`.
    Guided,
    /// Deconvolution: the positive part of the incoming gradient, whatever
    /// the input, `relu(g)`.
    Deconvolution,
}

/// One node of the built graph: a layer and the values it reads (0 is the
/// normalized input, node `i` writes value `i + 1`).
#[derive(Debug, Clone)]
pub struct Node {
    /// The spec's node name (the layer path).
    pub name: String,
    /// The op.
    pub layer: Layer,
    /// Values read, in order.
    pub inputs: Vec<usize>,
}

/// Runs `nodes` on the normalized input `x` and returns value `output`.
/// With `capture = Some(i)`, node `i`'s output is replaced by a fresh
/// [`candle_core::Var`] holding the same values (returned in `captured`),
/// and everything before it is detached: a `backward()` from the result
/// then gives the gradient with respect to that activation (Grad-CAM) at
/// the cost of the nodes after it only.
///
/// `keys` holds each row's draw key for the random layers
/// ([`super::draw::row_keys`]); a network with random layers needs them.
pub fn forward_graph(
    nodes: &[Node],
    x: &Tensor,
    output: usize,
    capture: Option<usize>,
    captured: &mut Option<candle_core::Var>,
    keys: Option<&[u64]>,
) -> CResult<Tensor> {
    forward_graph_hooked(
        nodes,
        x,
        output,
        capture,
        captured,
        keys,
        &mut |_, _, out| Ok(out),
    )
}

/// What [`forward_graph_hooked`] calls after each node: the node's
/// position, its inputs and its output, returning the output to use.
pub type NodeHook<'a> = dyn FnMut(usize, &[&Tensor], Tensor) -> CResult<Tensor> + 'a;

/// [`forward_graph`] with `hook` seeing (and possibly replacing) every
/// node's output: DeepLIFT records a baseline's activations and swaps in
/// its rescale rule through it.
pub fn forward_graph_hooked(
    nodes: &[Node],
    x: &Tensor,
    output: usize,
    capture: Option<usize>,
    captured: &mut Option<candle_core::Var>,
    keys: Option<&[u64]>,
    hook: &mut NodeHook,
) -> CResult<Tensor> {
    if output == 0 {
        return Ok(x.clone());
    }
    // Free each value after its last reader.
    let mut last_use = vec![0usize; nodes.len() + 1];
    for (i, node) in nodes.iter().enumerate() {
        for &v in &node.inputs {
            last_use[v] = i;
        }
    }
    let mut values: Vec<Option<Tensor>> = vec![None; nodes.len() + 1];
    values[0] = Some(match capture {
        Some(_) => x.detach(),
        None => x.clone(),
    });
    for (i, node) in nodes.iter().enumerate().take(output) {
        let inputs = node
            .inputs
            .iter()
            .map(|&v| {
                values[v].as_ref().ok_or_else(|| {
                    candle_core::Error::Msg(format!("node {} reads a freed value", node.name))
                })
            })
            .collect::<CResult<Vec<&Tensor>>>()?;
        let mut out = match (&node.layer, inputs.as_slice()) {
            (Layer::Dropout(_) | Layer::RandomResizePad { .. }, [x]) => {
                let keys = keys.ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "node {} is random and has no draw keys",
                        node.name
                    ))
                })?;
                node.layer.apply_random(x, keys, i)?
            }
            _ => node.layer.apply(&inputs)?,
        };
        out = hook(i, &inputs, out)?;
        if capture == Some(i) {
            let var = candle_core::Var::from_tensor(&out.detach())?;
            out = var.as_tensor().clone();
            *captured = Some(var);
        }
        for &v in &node.inputs {
            if last_use[v] == i && v != output {
                values[v] = None;
            }
        }
        values[i + 1] = Some(out);
    }
    values[output]
        .take()
        .ok_or_else(|| candle_core::Error::Msg("the output was not computed".into()))
}

fn pair(s: Size2) -> (usize, usize) {
    (s.h, s.w)
}

impl Layer {
    /// Whether the layer draws random numbers on every call.
    pub fn is_random(&self) -> bool {
        matches!(self, Layer::Dropout(_) | Layer::RandomResizePad { .. })
    }

    /// Applies a random layer to `x`, row `r` drawing from `keys[r]` and the
    /// layer's position `node`.
    pub fn apply_random(&self, x: &Tensor, keys: &[u64], node: usize) -> CResult<Tensor> {
        match self {
            Layer::Dropout(p) => super::draw::dropout(x, *p, keys, node),
            Layer::RandomResizePad {
                min,
                max,
                canvas,
                value,
            } => {
                let (_, _, h, w) = x.dims4()?;
                let canvas = canvas.unwrap_or((h, w));
                super::draw::resize_pad(
                    x,
                    (*min, max.unwrap_or(canvas.0)),
                    canvas,
                    *value,
                    keys,
                    node,
                )
            }
            other => other.apply(&[x]),
        }
    }

    /// Applies the layer to its inputs (one, except for `add`, `mul` and
    /// `concat`).
    pub fn apply(&self, inputs: &[&Tensor]) -> CResult<Tensor> {
        match (self, inputs) {
            (Layer::Add, [a, b]) => a.broadcast_add(b),
            (Layer::Mul, [a, b]) => a.broadcast_mul(b),
            (Layer::Concat, parts) if parts.len() >= 2 => Tensor::cat(parts, 1),
            (Layer::Add | Layer::Mul | Layer::Concat, _) => Err(candle_core::Error::Msg(format!(
                "{self:?} given {} inputs",
                inputs.len()
            ))),
            (_, [x]) => self.forward(x),
            _ => Err(candle_core::Error::Msg(format!(
                "{self:?} given {} inputs",
                inputs.len()
            ))),
        }
    }

    /// Applies a one-input layer to a batch.
    pub fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        let mask = |t: Tensor| t.to_dtype(x.dtype());
        match self {
            Layer::Linear { weight, bias } => {
                let y = x.matmul(&weight.t()?)?;
                match bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
            Layer::Conv2d {
                weight,
                bias,
                padding,
                stride,
                dilation,
                groups,
            } => {
                // candle takes one padding for both axes: pad by hand when they differ.
                let (x, pad) = if padding.0 == padding.1 {
                    (x.clone(), padding.0)
                } else {
                    (
                        x.pad_with_zeros(2, padding.0, padding.0)?
                            .pad_with_zeros(3, padding.1, padding.1)?,
                        0,
                    )
                };
                let y = x.conv2d(weight, pad, *stride, *dilation, *groups)?;
                match bias {
                    Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
                    None => Ok(y),
                }
            }
            Layer::BatchNorm { scale, shift } if x.rank() == 2 && scale.rank() == 4 => {
                // A channel_affine built for [N, C, H, W] applied to [N, C].
                x.broadcast_mul(&scale.flatten_all()?)?
                    .broadcast_add(&shift.flatten_all()?)
            }
            Layer::BatchNorm { scale, shift } => x.broadcast_mul(scale)?.broadcast_add(shift),
            Layer::MaxPool(pool) => ops::max_pool2d(x, *pool),
            Layer::AvgPool {
                pool,
                count_include_pad,
            } => ops::avg_pool2d(x, *pool, *count_include_pad),
            Layer::AdaptiveAvgPool(oh, ow) => adaptive_avg_pool2d(x, *oh, *ow),
            Layer::GlobalAvgPool => x.mean((2, 3)),
            Layer::Relu => {
                let mask = x.gt(0f64)?.to_dtype(x.dtype())?;
                x.mul(&mask)
            }
            Layer::ModifiedRelu(rule) => {
                x.contiguous()?.apply_op1(super::ops::ModifiedReluOp(*rule))
            }
            Layer::LeakyRelu(slope) => {
                // factor = 1 where x > 0, slope elsewhere (PyTorch: slope at 0 too).
                let mask = x.gt(0f64)?.to_dtype(x.dtype())?;
                let factor = ((mask * (1.0 - slope))? + *slope)?;
                x.mul(&factor)
            }
            Layer::Gelu(GeluApproximate::None) => x.gelu_erf(),
            Layer::Gelu(GeluApproximate::Tanh) => x.gelu(),
            Layer::Silu => x.silu(),
            Layer::Tanh => x.tanh(),
            Layer::Sigmoid => candle_nn::ops::sigmoid(x),
            Layer::Flatten => x.flatten_from(1),
            Layer::Identity => Ok(x.clone()),
            Layer::Dropout(_) | Layer::RandomResizePad { .. } => Err(candle_core::Error::Msg(
                format!("{self:?} is random: it needs each row's draw key"),
            )),
            Layer::Clip(lo, hi) => {
                // y = x inside (lo, hi), the bound outside; gradient 1 inside only.
                let inside = mask(x.gt(*lo)?.mul(&x.lt(*hi)?)?)?;
                let below = mask(x.le(*lo)?)?;
                let above = mask(x.ge(*hi)?)?;
                x.mul(&inside)? + ((below * *lo)? + (above * *hi)?)?
            }
            Layer::HardSigmoid(alpha, beta) => {
                let z = x.affine(*alpha, *beta)?;
                let inside = mask(z.gt(0f64)?.mul(&z.lt(1f64)?)?)?;
                let above = mask(z.ge(1f64)?)?;
                z.mul(&inside)? + above
            }
            Layer::HardSwish => {
                // PyTorch's backward: 0 below −3, (2x + 3)/6 on [−3, 3], 1 above.
                let inside = mask(x.ge(-3f64)?.mul(&x.le(3f64)?)?)?;
                let above = mask(x.gt(3f64)?)?;
                let h = (x.affine(1.0 / 6.0, 0.5)?.mul(&inside)? + above)?;
                x.mul(&h)
            }
            Layer::Softmax => candle_nn::ops::softmax(x, 1),
            Layer::Scalar(scale, shift) => x.affine(*scale, *shift),
            Layer::Pad([t, b, l, r], value) => {
                let shifted = if *value == 0.0 {
                    x.clone()
                } else {
                    x.affine(1.0, -value)?
                };
                let padded = shifted
                    .pad_with_zeros(2, *t, *b)?
                    .pad_with_zeros(3, *l, *r)?;
                if *value == 0.0 {
                    Ok(padded)
                } else {
                    padded.affine(1.0, *value)
                }
            }
            Layer::Add | Layer::Mul | Layer::Concat => Err(candle_core::Error::Msg(format!(
                "{self:?} takes several inputs"
            ))),
        }
    }
}

/// PyTorch's adaptive average pooling: output cell `i` averages input rows
/// `floor(i·H/oh) .. ceil((i+1)·H/oh)`, likewise for columns.
fn adaptive_avg_pool2d(x: &Tensor, oh: usize, ow: usize) -> CResult<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h % oh == 0 && w % ow == 0 {
        let pool = Pool2d {
            kernel: (h / oh, w / ow),
            stride: (h / oh, w / ow),
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        };
        return ops::avg_pool2d(x, pool, true);
    }
    let mut rows = Vec::with_capacity(oh);
    for i in 0..oh {
        let (y0, y1) = (i * h / oh, ((i + 1) * h).div_ceil(oh));
        let mut cells = Vec::with_capacity(ow);
        for j in 0..ow {
            let (x0, x1) = (j * w / ow, ((j + 1) * w).div_ceil(ow));
            cells.push(
                x.narrow(2, y0, y1 - y0)?
                    .narrow(3, x0, x1 - x0)?
                    .mean_keepdim((2, 3))?,
            );
        }
        rows.push(Tensor::cat(&cells, 3)?);
    }
    Tensor::cat(&rows, 2)
}

/// Looks up a layer's tensors by name and checks their shapes.
pub struct WeightSource<'a> {
    tensors: &'a HashMap<String, Tensor>,
    used: Vec<String>,
}

impl<'a> WeightSource<'a> {
    /// Wraps a name → tensor map (f32 tensors).
    pub fn new(tensors: &'a HashMap<String, Tensor>) -> Self {
        WeightSource {
            tensors,
            used: Vec::new(),
        }
    }

    /// Names of the tensors taken so far.
    pub fn used(&self) -> &[String] {
        &self.used
    }

    fn take(&mut self, layer: &str, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.tensors.get(name).ok_or_else(|| Error::Weight {
            layer: layer.to_string(),
            tensor: name.to_string(),
            problem: format!(
                "is missing from the weights (expected shape {})",
                fmt_shape(shape)
            ),
        })?;
        if t.dims() != shape {
            return Err(Error::Weight {
                layer: layer.to_string(),
                tensor: name.to_string(),
                problem: format!(
                    "has shape {} but the spec expects {}",
                    fmt_shape(t.dims()),
                    fmt_shape(shape)
                ),
            });
        }
        self.used.push(name.to_string());
        Ok(t.clone())
    }
}

/// Builds the first `count` nodes of `spec` (all but a dropped final
/// sigmoid), resolving input names to value indices.
pub fn build_nodes(spec: &ArchSpec, count: usize, src: &mut WeightSource) -> Result<Vec<Node>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    index.insert(INPUT_NAME, 0);
    let mut nodes = Vec::with_capacity(count);
    for (i, node) in spec.nodes.iter().take(count).enumerate() {
        let inputs = node
            .inputs
            .iter()
            .map(|name| {
                index.get(name.as_str()).copied().ok_or_else(|| {
                    Error::Invalid(format!(
                        "node `{}`: input `{name}` names no earlier node",
                        node.name
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        nodes.push(Node {
            name: node.name.clone(),
            layer: build_layer(&node.op, &node.name, src)?,
            inputs,
        });
        index.insert(&node.name, i + 1);
    }
    Ok(nodes)
}

fn build_layer(spec: &LayerSpec, path: &str, src: &mut WeightSource) -> Result<Layer> {
    let label = match spec.param_prefix() {
        Some(p) => format!("{path} ({} {p})", spec.op_name()),
        None => format!("{path} ({})", spec.op_name()),
    };
    let params = spec.own_params();
    let mut get = |leaf: &str| -> Result<Option<Tensor>> {
        match params
            .iter()
            .find(|p| p.name.ends_with(&format!(".{leaf}")))
        {
            Some(p) => src.take(&label, &p.name, &p.shape).map(Some),
            None => Ok(None),
        }
    };
    Ok(match spec {
        LayerSpec::Linear { .. } => Layer::Linear {
            weight: get("weight")?.expect("linear has a weight"),
            bias: get("bias")?,
        },
        LayerSpec::Conv2d {
            stride,
            padding,
            dilation,
            groups,
            ..
        } => Layer::Conv2d {
            weight: get("weight")?.expect("conv has a weight"),
            bias: get("bias")?,
            padding: pair(*padding),
            stride: stride.h,
            dilation: dilation.h,
            groups: *groups,
        },
        LayerSpec::BatchNorm1d {
            num_features, eps, ..
        }
        | LayerSpec::BatchNorm2d {
            num_features, eps, ..
        } => {
            let mean = get("running_mean")?.expect("bn has running_mean");
            let var = get("running_var")?.expect("bn has running_var");
            let weight = get("weight")?;
            let bias = get("bias")?;
            let (scale, shift) =
                fold_batch_norm(&mean, &var, weight.as_ref(), bias.as_ref(), *eps, &label)?;
            let shape: Vec<usize> = match spec {
                LayerSpec::BatchNorm1d { .. } => vec![1, *num_features],
                _ => vec![1, *num_features, 1, 1],
            };
            Layer::BatchNorm {
                scale: scale.reshape(shape.as_slice())?,
                shift: shift.reshape(shape.as_slice())?,
            }
        }
        LayerSpec::MaxPool2d {
            kernel_size,
            stride,
            padding,
            dilation,
            ceil_mode,
        } => Layer::MaxPool(Pool2d {
            kernel: pair(*kernel_size),
            stride: pair(stride.unwrap_or(*kernel_size)),
            padding: pair(*padding),
            dilation: pair(*dilation),
            ceil_mode: *ceil_mode,
        }),
        LayerSpec::AvgPool2d {
            kernel_size,
            stride,
            padding,
            ceil_mode,
            count_include_pad,
        } => Layer::AvgPool {
            pool: Pool2d {
                kernel: pair(*kernel_size),
                stride: pair(stride.unwrap_or(*kernel_size)),
                padding: pair(*padding),
                dilation: (1, 1),
                ceil_mode: *ceil_mode,
            },
            count_include_pad: *count_include_pad,
        },
        LayerSpec::AdaptiveAvgPool2d { output_size } => {
            Layer::AdaptiveAvgPool(output_size.h, output_size.w)
        }
        LayerSpec::GlobalAvgPool2d => Layer::GlobalAvgPool,
        LayerSpec::Relu => Layer::Relu,
        LayerSpec::LeakyRelu { negative_slope } => Layer::LeakyRelu(*negative_slope),
        LayerSpec::Gelu { approximate } => Layer::Gelu(*approximate),
        LayerSpec::Silu => Layer::Silu,
        LayerSpec::Tanh => Layer::Tanh,
        LayerSpec::Sigmoid => Layer::Sigmoid,
        LayerSpec::Flatten { .. } => Layer::Flatten,
        LayerSpec::Dropout { active: false, .. } => Layer::Identity,
        LayerSpec::Dropout { p, active: true } => Layer::Dropout(*p),
        LayerSpec::RandomResizePad {
            min_size,
            max_size,
            size,
            value,
        } => Layer::RandomResizePad {
            min: *min_size,
            max: *max_size,
            canvas: size.map(|s| (s.h, s.w)),
            value: *value,
        },
        LayerSpec::Add => Layer::Add,
        LayerSpec::Mul => Layer::Mul,
        LayerSpec::Concat => Layer::Concat,
        LayerSpec::Clip { min, max } => Layer::Clip(*min, *max),
        LayerSpec::HardSigmoid { alpha, beta } => Layer::HardSigmoid(*alpha, *beta),
        LayerSpec::HardSwish => Layer::HardSwish,
        LayerSpec::Softmax => Layer::Softmax,
        LayerSpec::Affine { scale, shift } => Layer::Scalar(*scale, *shift),
        LayerSpec::ChannelAffine { num_features, .. } => {
            let weight = get("weight")?.expect("channel_affine has a weight");
            let n = *num_features;
            let bias = match get("bias")? {
                Some(b) => b,
                None => Tensor::zeros(n, DType::F32, weight.device())?,
            };
            // Shaped for [N, C, H, W]; `forward` flattens it for [N, C].
            Layer::BatchNorm {
                scale: weight.reshape((1, n, 1, 1))?,
                shift: bias.reshape((1, n, 1, 1))?,
            }
        }
        LayerSpec::Pad2d { padding, value } => Layer::Pad(*padding, *value),
        LayerSpec::Residual { .. } => {
            return Err(Error::Invalid(format!(
                "{label}: residual blocks are translated to nodes when the spec is read"
            )))
        }
    })
}

/// Folds eval-mode batch norm into a scale and shift (computed in f64), applied
/// as `x · scale + shift` the way PyTorch's CPU inference kernel applies it.
fn fold_batch_norm(
    mean: &Tensor,
    var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    label: &str,
) -> Result<(Tensor, Tensor)> {
    let to64 = |t: &Tensor| -> Result<Vec<f64>> { Ok(t.to_dtype(DType::F64)?.to_vec1::<f64>()?) };
    let mean = to64(mean)?;
    let var = to64(var)?;
    if let Some(i) = var.iter().position(|&v| v + eps <= 0.0) {
        return Err(Error::Weight {
            layer: label.to_string(),
            tensor: "running_var".into(),
            problem: format!("has a negative value {} at index {i}", var[i]),
        });
    }
    let n = mean.len();
    let weight = match weight {
        Some(w) => to64(w)?,
        None => vec![1.0; n],
    };
    let bias = match bias {
        Some(b) => to64(b)?,
        None => vec![0.0; n],
    };
    let mut scale = Vec::with_capacity(n);
    let mut shift = Vec::with_capacity(n);
    for i in 0..n {
        let s = weight[i] / (var[i] + eps).sqrt();
        scale.push(s as f32);
        shift.push((bias[i] - mean[i] * s) as f32);
    }
    let dev = candle_core::Device::Cpu;
    Ok((
        Tensor::from_vec(scale, n, &dev)?,
        Tensor::from_vec(shift, n, &dev)?,
    ))
}
