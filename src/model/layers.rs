//! The network's layers as plain structs over candle tensors, built from an
//! [`ArchSpec`](super::spec::ArchSpec) and a map of weights. Every forward pass
//! is differentiable with respect to its input through candle autograd; where
//! candle's own op has the wrong gradient for an audit, the layer uses ours
//! (see [`super::ops`]), and ReLU-like layers multiply by a detached mask so
//! that their derivative at exactly 0 is PyTorch's 0, not candle's 1.

use std::collections::HashMap;

use candle_core::{DType, Tensor};

use super::ops::{self, Pool2d};
use super::spec::{fmt_shape, GeluApproximate, LayerSpec, Size2};
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
    /// `activation(body(x) + shortcut(x))`.
    Residual {
        /// Main branch.
        body: Vec<Layer>,
        /// Projection, or identity when `None`.
        shortcut: Option<Vec<Layer>>,
        /// Applied after the sum.
        activation: Option<Box<Layer>>,
    },
}

/// Runs `layers` in order.
pub fn forward_all(layers: &[Layer], x: &Tensor) -> CResult<Tensor> {
    let mut x = x.clone();
    for layer in layers {
        x = layer.forward(&x)?;
    }
    Ok(x)
}

fn pair(s: Size2) -> (usize, usize) {
    (s.h, s.w)
}

impl Layer {
    /// Applies the layer to a batch.
    pub fn forward(&self, x: &Tensor) -> CResult<Tensor> {
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
            Layer::Residual {
                body,
                shortcut,
                activation,
            } => {
                let main = forward_all(body, x)?;
                let skip = match shortcut {
                    Some(s) => forward_all(s, x)?,
                    None => x.clone(),
                };
                let sum = (main + skip)?;
                match activation {
                    Some(a) => a.forward(&sum),
                    None => Ok(sum),
                }
            }
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

/// Builds the layers of `specs` (positions prefixed by `prefix` in errors).
pub fn build_layers(
    specs: &[LayerSpec],
    prefix: &str,
    src: &mut WeightSource,
) -> Result<Vec<Layer>> {
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| build_layer(spec, &format!("{prefix}{i}"), src))
        .collect()
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
        LayerSpec::Dropout { .. } => Layer::Identity,
        LayerSpec::Residual {
            body,
            shortcut,
            activation,
        } => Layer::Residual {
            body: build_layers(body, &format!("{path}.body."), src)?,
            shortcut: match shortcut {
                Some(s) => Some(build_layers(s, &format!("{path}.shortcut."), src)?),
                None => None,
            },
            activation: match activation {
                Some(a) => Some(Box::new(build_layer(
                    a,
                    &format!("{path}.activation"),
                    src,
                )?)),
                None => None,
            },
        },
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

/// Runs `layers` like [`forward_all`], but replaces the output of the layer at
/// position `target` (a path such as `3` or `5.body.1`, as in
/// [`LayerInfo`](super::spec::LayerInfo)) by a fresh [`candle_core::Var`]
/// holding the same values, and returns it in `captured`. Everything before
/// that layer is detached, so a `backward()` from the logits gives the
/// gradient with respect to the activation (what Grad-CAM needs) at the cost
/// of the layers after it only.
pub fn forward_capture(
    layers: &[Layer],
    x: &Tensor,
    prefix: &str,
    target: &str,
    captured: &mut Option<candle_core::Var>,
) -> CResult<Tensor> {
    let mut x = x.clone();
    for (i, layer) in layers.iter().enumerate() {
        let path = format!("{prefix}{i}");
        if path == target {
            let out = layer.forward(&x.detach())?.detach();
            let var = candle_core::Var::from_tensor(&out)?;
            x = var.as_tensor().clone();
            *captured = Some(var);
            continue;
        }
        let inside = target.starts_with(&format!("{path}."));
        x = match layer {
            Layer::Residual {
                body,
                shortcut,
                activation,
            } if inside => {
                let main = forward_capture(body, &x, &format!("{path}.body."), target, captured)?;
                let skip = match shortcut {
                    Some(s) => {
                        forward_capture(s, &x, &format!("{path}.shortcut."), target, captured)?
                    }
                    None => x.clone(),
                };
                let sum = (main + skip)?;
                match activation {
                    Some(a) => forward_capture(
                        std::slice::from_ref(a.as_ref()),
                        &sum,
                        &format!("{path}.activation."),
                        target,
                        captured,
                    )?,
                    None => sum,
                }
            }
            _ => layer.forward(&x)?,
        };
    }
    Ok(x)
}
