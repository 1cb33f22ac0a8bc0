//! The spec's serde types ([`ArchSpec`], [`InputSpec`], [`LayerSpec`], [`Size2`],
//! ...) and their small accessors: classes, outputs and the tensors each layer loads.

use serde::{Deserialize, Serialize};

use super::element_count;

/// A network: its input, its classes and its graph of nodes (spec v2; a v1
/// layer list is translated to nodes on read by [`ArchSpec::from_json`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchSpec {
    /// Spec format version ([`SPEC_VERSION`](super::SPEC_VERSION) once read).
    pub version: u32,
    /// A label for reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What one input looks like.
    pub input: InputSpec,
    /// Class names, as many as the network has outputs, or 2 (negative,
    /// positive) for a one-output network (empty: "0", "1", ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// The nodes in topological order; the last one is the output.
    pub nodes: Vec<NodeSpec>,
    /// A prefix to strip from the file's tensor names before matching them
    /// to the layers' (`module.` for a DataParallel `state_dict`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<String>,
}

/// One input, without the batch dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// `[C, H, W]`.
    pub shape: [usize; 3],
    /// Valid pixel range `[lo, hi]`: attacks clip to it.
    #[serde(default = "unit_range")]
    pub range: [f32; 2],
    /// Per-channel mean subtracted inside the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f32>>,
    /// Per-channel standard deviation divided by inside the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f32>>,
}

fn unit_range() -> [f32; 2] {
    [0.0, 1.0]
}

/// A height/width pair that JSON may give as one integer or as `[h, w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size2 {
    /// Along the height.
    pub h: usize,
    /// Along the width.
    pub w: usize,
}

impl Size2 {
    /// The same value along both axes.
    pub const fn square(v: usize) -> Self {
        Size2 { h: v, w: v }
    }
}

impl std::fmt::Display for Size2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.h == self.w {
            write!(f, "{}", self.h)
        } else {
            write!(f, "({}, {})", self.h, self.w)
        }
    }
}

impl Serialize for Size2 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.h == self.w {
            s.serialize_u64(self.h as u64)
        } else {
            [self.h, self.w].serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Size2 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(usize),
            Two([usize; 2]),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a non-negative integer or a pair [h, w]")
        })? {
            Raw::One(v) => Ok(Size2::square(v)),
            Raw::Two([h, w]) => Ok(Size2 { h, w }),
        }
    }
}

fn one() -> Size2 {
    Size2::square(1)
}
fn zero() -> Size2 {
    Size2::square(0)
}
fn yes() -> bool {
    true
}
fn bn_eps() -> f64 {
    1e-5
}
fn leaky_slope() -> f64 {
    0.01
}
fn dropout_p() -> f64 {
    0.5
}
fn start_dim_one() -> usize {
    1
}
fn is_true(v: &bool) -> bool {
    *v
}
fn is_false(v: &bool) -> bool {
    !*v
}

/// GELU's form: PyTorch's `approximate` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeluApproximate {
    /// The exact erf form (PyTorch's default).
    #[default]
    None,
    /// The tanh approximation.
    Tanh,
}

/// One layer. Constructor arguments and defaults are PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[allow(missing_docs)] // fields are PyTorch's constructor arguments, documented in docs/arch-spec.md
pub enum LayerSpec {
    /// `nn.Linear`.
    Linear {
        param: String,
        in_features: usize,
        out_features: usize,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        bias: bool,
    },
    /// `nn.Conv2d`.
    Conv2d {
        param: String,
        in_channels: usize,
        out_channels: usize,
        kernel_size: Size2,
        #[serde(default = "one")]
        stride: Size2,
        #[serde(default = "zero")]
        padding: Size2,
        #[serde(default = "one")]
        dilation: Size2,
        #[serde(default = "groups_one")]
        groups: usize,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        bias: bool,
    },
    /// `nn.BatchNorm1d` in eval mode, on `[N, F]`.
    BatchNorm1d {
        param: String,
        num_features: usize,
        #[serde(default = "bn_eps")]
        eps: f64,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        affine: bool,
    },
    /// `nn.BatchNorm2d` in eval mode.
    BatchNorm2d {
        param: String,
        num_features: usize,
        #[serde(default = "bn_eps")]
        eps: f64,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        affine: bool,
    },
    /// `nn.MaxPool2d`.
    MaxPool2d {
        kernel_size: Size2,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<Size2>,
        #[serde(default = "zero")]
        padding: Size2,
        #[serde(default = "one")]
        dilation: Size2,
        #[serde(default, skip_serializing_if = "is_false")]
        ceil_mode: bool,
    },
    /// `nn.AvgPool2d`.
    AvgPool2d {
        kernel_size: Size2,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<Size2>,
        #[serde(default = "zero")]
        padding: Size2,
        #[serde(default, skip_serializing_if = "is_false")]
        ceil_mode: bool,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        count_include_pad: bool,
    },
    /// `nn.AdaptiveAvgPool2d`.
    AdaptiveAvgPool2d { output_size: Size2 },
    /// Mean over height and width, giving `[N, C]`.
    GlobalAvgPool2d,
    /// `nn.ReLU`.
    Relu,
    /// `nn.LeakyReLU`.
    LeakyRelu {
        #[serde(default = "leaky_slope")]
        negative_slope: f64,
    },
    /// `nn.GELU`.
    Gelu {
        #[serde(default)]
        approximate: GeluApproximate,
    },
    /// `nn.SiLU`.
    Silu,
    /// `nn.Tanh`.
    Tanh,
    /// `nn.Sigmoid`.
    Sigmoid,
    /// `nn.Flatten` (from dimension 1).
    Flatten {
        #[serde(default = "start_dim_one")]
        start_dim: usize,
    },
    /// `nn.Dropout`: the identity at audit time, unless `active`
    /// (Monte-Carlo dropout, Gal & Ghahramani 2016): then each call zeroes
    /// each value with probability `p` and scales the rest by `1/(1−p)`,
    /// drawn per input (see [`crate::model::draw`]).
    Dropout {
        #[serde(default = "dropout_p")]
        p: f64,
        #[serde(default, skip_serializing_if = "is_false")]
        active: bool,
    },
    /// `a + b` (two inputs; one may be `[C, 1, 1]`, broadcast over the other).
    Add,
    /// `a · b` (two inputs; one may be `[C, 1, 1]`, broadcast over the other:
    /// squeeze-and-excitation).
    Mul,
    /// Concatenation of two or more inputs along channels (dim 1).
    Concat,
    /// `min(max(x, min), max)`; ReLU6 is `clip` 0…6.
    Clip { min: f64, max: f64 },
    /// `max(0, min(1, alpha·x + beta))` (PyTorch's `nn.Hardsigmoid`: 1/6, 1/2).
    HardSigmoid {
        #[serde(default = "sixth")]
        alpha: f64,
        #[serde(default = "half")]
        beta: f64,
    },
    /// `x · relu6(x + 3) / 6` (`nn.Hardswish`).
    HardSwish,
    /// Softmax over the classes of `[N, K]`: the network then outputs
    /// probabilities, which the audit's sanity checks flag.
    Softmax,
    /// `x · scale + shift`, scalars (a constant `Mul`/`Add`/`Sub`/`Div`).
    Affine {
        #[serde(default = "one_f")]
        scale: f64,
        #[serde(default)]
        shift: f64,
    },
    /// `x · weight[c] + bias[c]` per channel, from `<param>.weight` and
    /// `<param>.bias` (`[C]` each).
    ChannelAffine {
        param: String,
        num_features: usize,
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        bias: bool,
    },
    /// Constant padding of height and width: `[top, bottom, left, right]`.
    Pad2d {
        padding: [usize; 4],
        #[serde(default)]
        value: f64,
    },
    /// Random resizing and padding (Xie et al. 2018, "Mitigating adversarial
    /// effects through randomization"): each call resizes each input by
    /// nearest neighbour to a side drawn uniformly from
    /// `min_size..=max_size` (the height; the width keeps the aspect
    /// ratio) and places it at a random offset in a `size` canvas filled
    /// with `value` (in the units of the layer's input). `size` and
    /// `max_size` default to the input's height and width.
    RandomResizePad {
        min_size: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_size: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<Size2>,
        #[serde(default)]
        value: f64,
    },
    /// v1 only: `activation(body(x) + shortcut(x))`, with an identity
    /// shortcut when absent (translated to nodes on read).
    Residual {
        body: Vec<LayerSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shortcut: Option<Vec<LayerSpec>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activation: Option<Box<LayerSpec>>,
    },
}

fn groups_one() -> usize {
    1
}
fn sixth() -> f64 {
    1.0 / 6.0
}
fn half() -> f64 {
    0.5
}
fn one_f() -> f64 {
    1.0
}

/// One node of the graph: a named op and the nodes it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Unique name; the layer path reports, plans and Grad-CAM use.
    pub name: String,
    /// Names of the nodes it reads (`input` is the network's input).
    pub inputs: Vec<String>,
    /// The op and its arguments.
    pub op: LayerSpec,
}

impl Serialize for NodeSpec {
    /// `{"name", "op", "inputs", ...the op's keys}`, as `nodes` is written.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap};
        let serde_json::Value::Object(fields) =
            serde_json::to_value(&self.op).map_err(S::Error::custom)?
        else {
            return Err(S::Error::custom("an op serializes to an object"));
        };
        let mut map = s.serialize_map(Some(fields.len() + 2))?;
        map.serialize_entry("name", &self.name)?;
        if let Some(op) = fields.get("op") {
            map.serialize_entry("op", op)?;
        }
        map.serialize_entry("inputs", &self.inputs)?;
        for (k, v) in fields.iter().filter(|(k, _)| *k != "op") {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The name of the network's input in a node's `inputs`.
pub const INPUT_NAME: &str = "input";

/// What a layer needs from the weights file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    /// Full tensor name, e.g. `features.0.weight`.
    pub name: String,
    /// Expected shape.
    pub shape: Vec<usize>,
}

/// A resolved layer: where it sits, what it outputs, how many parameters it has.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    /// Position, e.g. `3` or `5.body.1`.
    pub path: String,
    /// Short description, e.g. `conv2d features.0 1→16 k3 s1 p1`.
    pub description: String,
    /// Output shape without the batch dimension.
    pub output_shape: Vec<usize>,
    /// Parameters the layer loads (running statistics included).
    pub parameters: usize,
}

impl LayerSpec {
    /// Whether this is an elementwise activation (allowed as a residual's `activation`).
    pub fn is_activation(&self) -> bool {
        matches!(
            self,
            LayerSpec::Relu
                | LayerSpec::LeakyRelu { .. }
                | LayerSpec::Gelu { .. }
                | LayerSpec::Silu
                | LayerSpec::Tanh
                | LayerSpec::Sigmoid
                | LayerSpec::Clip { .. }
                | LayerSpec::HardSigmoid { .. }
                | LayerSpec::HardSwish
        )
    }

    /// How many inputs the op reads: `(min, max)`.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            LayerSpec::Add | LayerSpec::Mul => (2, 2),
            LayerSpec::Concat => (2, usize::MAX),
            _ => (1, 1),
        }
    }

    /// The tensors this layer (not its children) loads, with expected shapes.
    pub fn own_params(&self) -> Vec<ParamInfo> {
        let p = |prefix: &str, leaf: &str, shape: Vec<usize>| ParamInfo {
            name: format!("{prefix}.{leaf}"),
            shape,
        };
        match self {
            LayerSpec::Linear {
                param,
                in_features,
                out_features,
                bias,
            } => {
                let mut v = vec![p(param, "weight", vec![*out_features, *in_features])];
                if *bias {
                    v.push(p(param, "bias", vec![*out_features]));
                }
                v
            }
            LayerSpec::Conv2d {
                param,
                in_channels,
                out_channels,
                kernel_size,
                groups,
                bias,
                ..
            } => {
                let in_per_group = in_channels / (*groups).max(1);
                let mut v = vec![p(
                    param,
                    "weight",
                    vec![*out_channels, in_per_group, kernel_size.h, kernel_size.w],
                )];
                if *bias {
                    v.push(p(param, "bias", vec![*out_channels]));
                }
                v
            }
            LayerSpec::ChannelAffine {
                param,
                num_features,
                bias,
            } => {
                let mut v = vec![p(param, "weight", vec![*num_features])];
                if *bias {
                    v.push(p(param, "bias", vec![*num_features]));
                }
                v
            }
            LayerSpec::BatchNorm1d {
                param,
                num_features,
                affine,
                ..
            }
            | LayerSpec::BatchNorm2d {
                param,
                num_features,
                affine,
                ..
            } => {
                let n = *num_features;
                let mut v = vec![
                    p(param, "running_mean", vec![n]),
                    p(param, "running_var", vec![n]),
                ];
                if *affine {
                    v.push(p(param, "weight", vec![n]));
                    v.push(p(param, "bias", vec![n]));
                }
                v
            }
            _ => Vec::new(),
        }
    }

    /// The `state_dict` prefix, for layers with weights.
    pub fn param_prefix(&self) -> Option<&str> {
        match self {
            LayerSpec::Linear { param, .. }
            | LayerSpec::Conv2d { param, .. }
            | LayerSpec::BatchNorm1d { param, .. }
            | LayerSpec::BatchNorm2d { param, .. }
            | LayerSpec::ChannelAffine { param, .. } => Some(param),
            _ => None,
        }
    }
}

impl ArchSpec {
    /// Width of the network's output vector (0 when the spec does not resolve).
    pub fn outputs(&self) -> usize {
        self.layer_infos()
            .ok()
            .and_then(|v| v.last().map(|l| l.output_shape[0]))
            .unwrap_or(0)
    }

    /// Number of classes: the output width, except that one output `z` is a
    /// binary classifier on `sigmoid(z)`, audited as the logits `[0, z]`
    /// (see [`BinaryLogits`](crate::model::BinaryLogits)).
    pub fn num_classes(&self) -> usize {
        match self.outputs() {
            1 => 2,
            k => k,
        }
    }

    /// Whether the network's last layer is a `sigmoid` over its one output:
    /// that layer outputs `p`, not the logit `z`, so the network is built
    /// without it.
    pub fn drops_final_sigmoid(&self) -> bool {
        self.outputs() == 1 && matches!(self.nodes.last().map(|n| &n.op), Some(LayerSpec::Sigmoid))
    }

    /// The index of the node named `path`; v1's `<block>.activation.0`
    /// names the block's activation node, now called `<block>`.
    pub fn node_index(&self, path: &str) -> Option<usize> {
        let find = |p: &str| self.nodes.iter().position(|n| n.name == p);
        find(path).or_else(|| path.strip_suffix(".activation.0").and_then(find))
    }

    /// Class names: the spec's, or "0", "1", ...
    pub fn class_names(&self) -> Vec<String> {
        if self.classes.is_empty() {
            (0..self.num_classes()).map(|i| i.to_string()).collect()
        } else {
            self.classes.clone()
        }
    }

    /// Every tensor the spec needs, in layer order.
    pub fn params(&self) -> Vec<ParamInfo> {
        self.nodes.iter().flat_map(|n| n.op.own_params()).collect()
    }

    /// Total number of parameters (running statistics included), saturating
    /// at `usize::MAX` for a spec too large to exist.
    pub fn parameter_count(&self) -> usize {
        self.params()
            .iter()
            .map(|p| element_count(&p.shape).unwrap_or(usize::MAX))
            .fold(0, usize::saturating_add)
    }
}
