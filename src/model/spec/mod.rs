//! The architecture spec: the versioned JSON that says how a safetensors file's
//! tensors make a network (see `docs/arch-spec.md`). This file owns parsing with
//! error messages that name the layer and key, and shape inference, which checks
//! every layer against its input before any tensor is touched.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// The spec format version this build reads and writes.
pub const SPEC_VERSION: u32 = 1;

/// The most classes a network may output: reports name and rank every class,
/// so a count beyond this is a malformed spec, not a model.
pub const MAX_CLASSES: usize = 1 << 24;

/// The safetensors `__metadata__` key that carries the spec as a JSON string.
pub const METADATA_KEY: &str = "xai_audit.arch";

/// A network: its input, its classes and its layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchSpec {
    /// Spec format version.
    pub version: u32,
    /// A label for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What one input looks like.
    pub input: InputSpec,
    /// Class names, as many as the network has outputs, or 2 (negative,
    /// positive) for a one-output network (empty: "0", "1", ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// The layers, applied in order.
    pub layers: Vec<LayerSpec>,
    /// A prefix to strip from the file's tensor names before matching them
    /// to the layers' (`module.` for a DataParallel `state_dict`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// `nn.Dropout`: the identity at audit time.
    Dropout {
        #[serde(default = "dropout_p")]
        p: f64,
    },
    /// `activation(body(x) + shortcut(x))`, with an identity shortcut when absent.
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
    /// The op name as written in JSON.
    pub fn op_name(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::BatchNorm1d { .. } => "batch_norm1d",
            LayerSpec::BatchNorm2d { .. } => "batch_norm2d",
            LayerSpec::MaxPool2d { .. } => "max_pool2d",
            LayerSpec::AvgPool2d { .. } => "avg_pool2d",
            LayerSpec::AdaptiveAvgPool2d { .. } => "adaptive_avg_pool2d",
            LayerSpec::GlobalAvgPool2d => "global_avg_pool2d",
            LayerSpec::Relu => "relu",
            LayerSpec::LeakyRelu { .. } => "leaky_relu",
            LayerSpec::Gelu { .. } => "gelu",
            LayerSpec::Silu => "silu",
            LayerSpec::Tanh => "tanh",
            LayerSpec::Sigmoid => "sigmoid",
            LayerSpec::Flatten { .. } => "flatten",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Residual { .. } => "residual",
        }
    }

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
        )
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
            | LayerSpec::BatchNorm2d { param, .. } => Some(param),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            LayerSpec::Linear {
                param,
                in_features,
                out_features,
                bias,
            } => format!(
                "linear {param} {in_features}→{out_features}{}",
                if *bias { "" } else { " no-bias" }
            ),
            LayerSpec::Conv2d {
                param,
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation,
                groups,
                bias,
            } => {
                let mut s = format!(
                    "conv2d {param} {in_channels}→{out_channels} k{kernel_size} s{stride} p{padding}"
                );
                if *dilation != Size2::square(1) {
                    s.push_str(&format!(" d{dilation}"));
                }
                if *groups != 1 {
                    s.push_str(&format!(" g{groups}"));
                }
                if !*bias {
                    s.push_str(" no-bias");
                }
                s
            }
            LayerSpec::BatchNorm1d {
                param,
                num_features,
                eps,
                ..
            }
            | LayerSpec::BatchNorm2d {
                param,
                num_features,
                eps,
                ..
            } => format!("{} {param} {num_features} eps={eps}", self.op_name()),
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
                ..
            } => format!(
                "max_pool2d k{kernel_size} s{} p{padding}",
                stride.unwrap_or(*kernel_size)
            ),
            LayerSpec::AvgPool2d {
                kernel_size,
                stride,
                padding,
                ..
            } => format!(
                "avg_pool2d k{kernel_size} s{} p{padding}",
                stride.unwrap_or(*kernel_size)
            ),
            LayerSpec::AdaptiveAvgPool2d { output_size } => {
                format!("adaptive_avg_pool2d {output_size}")
            }
            LayerSpec::LeakyRelu { negative_slope } => format!("leaky_relu {negative_slope}"),
            LayerSpec::Gelu { approximate } => match approximate {
                GeluApproximate::None => "gelu".into(),
                GeluApproximate::Tanh => "gelu tanh".into(),
            },
            LayerSpec::Dropout { p } => format!("dropout p={p} (identity)"),
            LayerSpec::Residual { shortcut, .. } => format!(
                "residual ({} shortcut)",
                if shortcut.is_some() {
                    "projection"
                } else {
                    "identity"
                }
            ),
            other => other.op_name().to_string(),
        }
    }
}

impl ArchSpec {
    /// Parses a spec from JSON text; `origin` names where it came from in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let err = |message: String| Error::Spec {
            origin: origin.to_string(),
            message,
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        let Value::Object(mut top) = value else {
            return Err(err("expected a JSON object at the top level".into()));
        };
        match top.get("version") {
            None => return Err(err("missing key `version`".into())),
            Some(v) => match v.as_u64() {
                Some(n) if n as u32 == SPEC_VERSION => {}
                Some(n) if n > SPEC_VERSION as u64 => {
                    return Err(err(format!(
                        "`version` is {n}, newer than this xai-audit {} reads (version {SPEC_VERSION}): upgrade xai-audit",
                        env!("CARGO_PKG_VERSION")
                    )))
                }
                _ => {
                    return Err(err(format!(
                        "`version` must be {SPEC_VERSION}, found {v}"
                    )))
                }
            },
        }
        let layers = match top.remove("layers") {
            Some(Value::Array(items)) => items,
            Some(_) => return Err(err("`layers` must be a list".into())),
            None => return Err(err("missing key `layers`".into())),
        };
        let layers = parse_layers(layers, "layers").map_err(err)?;
        top.insert("layers".into(), Value::Array(Vec::new()));
        let mut spec: ArchSpec =
            serde_json::from_value(Value::Object(top)).map_err(|e| err(e.to_string()))?;
        spec.layers = layers;
        spec.validate().map_err(err)?;
        Ok(spec)
    }

    /// The spec as pretty JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("spec serializes")
    }

    /// Checks the input section and every layer's arguments, then infers shapes.
    fn validate(&self) -> std::result::Result<(), String> {
        let [c, h, w] = self.input.shape;
        if c == 0 || h == 0 || w == 0 {
            return Err(format!(
                "`input.shape` must be positive, found {:?}",
                self.input.shape
            ));
        }
        let [lo, hi] = self.input.range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(format!(
                "`input.range` must be finite with lo < hi, found [{lo}, {hi}]"
            ));
        }
        for (key, values) in [("mean", &self.input.mean), ("std", &self.input.std)] {
            if let Some(v) = values {
                if v.len() != c {
                    return Err(format!(
                        "`input.{key}` has {} values but the input has {c} channels",
                        v.len()
                    ));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(format!("`input.{key}` must be finite"));
                }
            }
        }
        if let Some(std) = &self.input.std {
            if std.iter().any(|&s| s <= 0.0) {
                return Err("`input.std` must be positive".into());
            }
        }
        if self.layers.is_empty() {
            return Err("`layers` is empty".into());
        }
        let infos = self.layer_infos()?;
        let out = &infos.last().expect("non-empty").output_shape;
        if out.len() != 1 {
            return Err(format!(
                "the network must end in a vector of class scores [N, K], but its output is {}; add a flatten or global pool",
                fmt_shape(out)
            ));
        }
        if out[0] > MAX_CLASSES {
            return Err(format!(
                "the network outputs {} classes, more than the {MAX_CLASSES} this build supports",
                out[0]
            ));
        }
        if !self.classes.is_empty() && self.classes.len() != self.num_classes() {
            let binary = if out[0] == 1 {
                " (one output z is a binary classifier: name its 2 classes, the negative first, or none)"
            } else {
                ""
            };
            return Err(format!(
                "`classes` names {} classes but the network outputs {}{binary}",
                self.classes.len(),
                out[0]
            ));
        }
        Ok(())
    }

    /// Every layer, depth first, with output shapes and parameter counts.
    /// Errors name the layer whose input does not fit.
    pub fn layer_infos(&self) -> std::result::Result<Vec<LayerInfo>, String> {
        let mut infos = Vec::new();
        infer(&self.layers, "", self.input.shape.to_vec(), &mut infos)?;
        Ok(infos)
    }

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
        self.outputs() == 1 && matches!(self.layers.last(), Some(LayerSpec::Sigmoid))
    }

    /// How the audit reads the network's outputs, when that is not plain
    /// logits, one sentence each: for `inspect` and the report's warnings.
    pub fn output_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.outputs() != 1 {
            return notes;
        }
        let names = self.class_names();
        notes.push(format!(
            "the network has one output z: it is audited as a binary classifier on sigmoid(z) with logits [0, z]; label 1 ({}) is the positive class, label 0 ({}) the negative",
            names[1], names[0]
        ));
        if self.drops_final_sigmoid() {
            notes.push(format!(
                "the last layer (layer {}, sigmoid) outputs the probability sigmoid(z), not the logit z: the audit drops it and uses its input as z",
                self.layers.len() - 1
            ));
        }
        notes
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
        let mut out = Vec::new();
        collect_params(&self.layers, &mut out);
        out
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

fn collect_params(layers: &[LayerSpec], out: &mut Vec<ParamInfo>) {
    for layer in layers {
        out.extend(layer.own_params());
        if let LayerSpec::Residual {
            body,
            shortcut,
            activation,
        } = layer
        {
            collect_params(body, out);
            if let Some(s) = shortcut {
                collect_params(s, out);
            }
            if let Some(a) = activation {
                collect_params(std::slice::from_ref(a), out);
            }
        }
    }
}

/// The number of elements of `shape`, or `None` when it overflows `usize`.
fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Formats a shape as `[a, b, c]`.
pub fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

fn parse_layers(items: Vec<Value>, path: &str) -> std::result::Result<Vec<LayerSpec>, String> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| parse_layer(v, &format!("{path}[{i}]")))
        .collect()
}

/// Parses one layer, recursing into residual blocks so that errors carry the
/// full path (`layers[3].body[1]`).
fn parse_layer(value: Value, path: &str) -> std::result::Result<LayerSpec, String> {
    let Value::Object(mut obj) = value else {
        return Err(format!("{path}: expected an object with an `op`"));
    };
    let op = match obj.get("op") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("{path}: `op` must be a string, found {other}")),
        None => return Err(format!("{path}: missing key `op`")),
    };
    if op != "residual" {
        return serde_json::from_value::<LayerSpec>(Value::Object(obj)).map_err(|e| {
            let msg = e.to_string();
            if msg.starts_with("unknown variant") {
                format!(
                    "{path}: unknown op `{op}` (supported: {})",
                    SUPPORTED_OPS.join(", ")
                )
            } else {
                format!("{path} ({op}): {msg}")
            }
        });
    }
    for key in obj.keys() {
        if !["op", "body", "shortcut", "activation"].contains(&key.as_str()) {
            return Err(format!(
                "{path} (residual): unknown field `{key}`, expected one of `body`, `shortcut`, `activation`"
            ));
        }
    }
    let body = match obj.remove("body") {
        Some(Value::Array(items)) => parse_layers(items, &format!("{path}.body"))?,
        Some(_) => {
            return Err(format!(
                "{path} (residual): `body` must be a list of layers"
            ))
        }
        None => return Err(format!("{path} (residual): missing key `body`")),
    };
    if body.is_empty() {
        return Err(format!("{path} (residual): `body` is empty"));
    }
    let shortcut = match obj.remove("shortcut") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(parse_layers(items, &format!("{path}.shortcut"))?),
        Some(_) => {
            return Err(format!(
                "{path} (residual): `shortcut` must be a list of layers"
            ))
        }
    };
    let activation = match obj.remove("activation") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let layer = parse_layer(v, &format!("{path}.activation"))?;
            if !layer.is_activation() {
                return Err(format!(
                    "{path}.activation: `{}` is not an activation",
                    layer.op_name()
                ));
            }
            Some(Box::new(layer))
        }
    };
    Ok(LayerSpec::Residual {
        body,
        shortcut,
        activation,
    })
}

/// The ops this build supports, as written in JSON.
pub const SUPPORTED_OPS: &[&str] = &[
    "linear",
    "conv2d",
    "batch_norm1d",
    "batch_norm2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "global_avg_pool2d",
    "relu",
    "leaky_relu",
    "gelu",
    "silu",
    "tanh",
    "sigmoid",
    "flatten",
    "dropout",
    "residual",
];

/// PyTorch's output size for a pooling or convolution window along one axis;
/// `None` when the window does not fit the padded input, or when the padded
/// input or the dilated window overflows `usize` (see [`window_overflows`]).
pub fn pooled_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Option<usize> {
    if window_overflows(input, kernel, padding, dilation) {
        return None;
    }
    let span = dilation * (kernel - 1) + 1;
    let padded = input + 2 * padding;
    if padded < span {
        return None;
    }
    let numer = padded - span;
    let mut out = if ceil_mode {
        numer.div_ceil(stride) + 1
    } else {
        numer / stride + 1
    };
    // PyTorch: the last window must start inside the input or left padding.
    if ceil_mode
        && (out - 1)
            .checked_mul(stride)
            .is_none_or(|start| start >= input + padding)
    {
        out -= 1;
    }
    Some(out)
}

/// Whether the padded input `input + 2·padding` or the dilated window
/// `dilation·(kernel − 1) + 1` overflows `usize` (a kernel of 0 counts as 1).
pub fn window_overflows(input: usize, kernel: usize, padding: usize, dilation: usize) -> bool {
    let span = dilation
        .checked_mul(kernel.saturating_sub(1))
        .and_then(|s| s.checked_add(1));
    let padded = padding.checked_mul(2).and_then(|p| p.checked_add(input));
    span.is_none() || padded.is_none()
}

fn infer(
    layers: &[LayerSpec],
    prefix: &str,
    mut shape: Vec<usize>,
    infos: &mut Vec<LayerInfo>,
) -> std::result::Result<Vec<usize>, String> {
    for (i, layer) in layers.iter().enumerate() {
        let path = format!("{prefix}{i}");
        let here = || format!("layer {path} ({})", layer.description_short());
        let need_4d = |shape: &[usize]| -> std::result::Result<(usize, usize, usize), String> {
            match shape {
                [c, h, w] => Ok((*c, *h, *w)),
                _ => Err(format!(
                    "{}: expects a [N, C, H, W] input but gets [N, {}]",
                    here(),
                    shape
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        };
        let out: Vec<usize> = match layer {
            LayerSpec::Linear {
                in_features,
                out_features,
                ..
            } => {
                if shape.len() != 1 || shape[0] != *in_features {
                    return Err(format!(
                        "{}: expects {in_features} input features but gets shape {} (missing flatten, or wrong in_features?)",
                        here(),
                        fmt_shape(&shape)
                    ));
                }
                if *out_features == 0 {
                    return Err(format!("{}: out_features must be positive", here()));
                }
                vec![*out_features]
            }
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation,
                groups,
                ..
            } => {
                let (c, h, w) = need_4d(&shape)?;
                if c != *in_channels {
                    return Err(format!(
                        "{}: expects {in_channels} input channels but gets {c}",
                        here()
                    ));
                }
                if *groups == 0 || in_channels % groups != 0 || out_channels % groups != 0 {
                    return Err(format!(
                        "{}: groups ({groups}) must divide in_channels and out_channels",
                        here()
                    ));
                }
                if kernel_size.h == 0 || kernel_size.w == 0 || stride.h == 0 || stride.w == 0 {
                    return Err(format!(
                        "{}: kernel_size and stride must be positive",
                        here()
                    ));
                }
                if dilation.h == 0 || dilation.w == 0 {
                    return Err(format!("{}: dilation must be positive", here()));
                }
                if stride.h != stride.w || dilation.h != dilation.w {
                    return Err(format!(
                        "{}: different strides or dilations along height and width are not supported",
                        here()
                    ));
                }
                if window_overflows(h, kernel_size.h, padding.h, dilation.h)
                    || window_overflows(w, kernel_size.w, padding.w, dilation.w)
                {
                    return Err(format!(
                        "{}: kernel_size ({kernel_size}), padding ({padding}) or dilation ({dilation}) is too large",
                        here()
                    ));
                }
                let oh = pooled_len(h, kernel_size.h, stride.h, padding.h, dilation.h, false);
                let ow = pooled_len(w, kernel_size.w, stride.w, padding.w, dilation.w, false);
                match (oh, ow) {
                    (Some(oh), Some(ow)) => vec![*out_channels, oh, ow],
                    _ => {
                        return Err(format!(
                            "{}: kernel larger than the padded input {h}×{w}",
                            here()
                        ))
                    }
                }
            }
            LayerSpec::BatchNorm1d {
                num_features, eps, ..
            } => {
                if shape.len() != 1 || shape[0] != *num_features {
                    return Err(format!(
                        "{}: expects [N, {num_features}] but gets [N, {}]",
                        here(),
                        shape
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                check_eps(*eps, &here)?;
                shape.clone()
            }
            LayerSpec::BatchNorm2d {
                num_features, eps, ..
            } => {
                let (c, _, _) = need_4d(&shape)?;
                if c != *num_features {
                    return Err(format!(
                        "{}: expects {num_features} channels but gets {c}",
                        here()
                    ));
                }
                check_eps(*eps, &here)?;
                shape.clone()
            }
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
                dilation,
                ceil_mode,
            } => {
                let (c, h, w) = need_4d(&shape)?;
                let stride = stride.unwrap_or(*kernel_size);
                check_window(*kernel_size, stride, *padding, &here)?;
                if dilation.h == 0 || dilation.w == 0 {
                    return Err(format!("{}: dilation must be positive", here()));
                }
                if window_overflows(h, kernel_size.h, padding.h, dilation.h)
                    || window_overflows(w, kernel_size.w, padding.w, dilation.w)
                {
                    return Err(format!(
                        "{}: kernel_size ({kernel_size}) or dilation ({dilation}) is too large",
                        here()
                    ));
                }
                let oh = pooled_len(
                    h,
                    kernel_size.h,
                    stride.h,
                    padding.h,
                    dilation.h,
                    *ceil_mode,
                );
                let ow = pooled_len(
                    w,
                    kernel_size.w,
                    stride.w,
                    padding.w,
                    dilation.w,
                    *ceil_mode,
                );
                match (oh, ow) {
                    (Some(oh), Some(ow)) => vec![c, oh, ow],
                    _ => return Err(format!("{}: window larger than the input {h}×{w}", here())),
                }
            }
            LayerSpec::AvgPool2d {
                kernel_size,
                stride,
                padding,
                ceil_mode,
                ..
            } => {
                let (c, h, w) = need_4d(&shape)?;
                let stride = stride.unwrap_or(*kernel_size);
                check_window(*kernel_size, stride, *padding, &here)?;
                let oh = pooled_len(h, kernel_size.h, stride.h, padding.h, 1, *ceil_mode);
                let ow = pooled_len(w, kernel_size.w, stride.w, padding.w, 1, *ceil_mode);
                match (oh, ow) {
                    (Some(oh), Some(ow)) => vec![c, oh, ow],
                    _ => return Err(format!("{}: window larger than the input {h}×{w}", here())),
                }
            }
            LayerSpec::AdaptiveAvgPool2d { output_size } => {
                let (c, _, _) = need_4d(&shape)?;
                if output_size.h == 0 || output_size.w == 0 {
                    return Err(format!("{}: output_size must be positive", here()));
                }
                vec![c, output_size.h, output_size.w]
            }
            LayerSpec::GlobalAvgPool2d => {
                let (c, _, _) = need_4d(&shape)?;
                vec![c]
            }
            LayerSpec::Flatten { start_dim } => {
                if *start_dim != 1 {
                    return Err(format!(
                        "{}: only start_dim = 1 is supported, found {start_dim}",
                        here()
                    ));
                }
                match element_count(&shape) {
                    Some(n) => vec![n],
                    None => {
                        return Err(format!(
                            "{}: {} has more elements than fit in memory",
                            here(),
                            fmt_shape(&shape)
                        ))
                    }
                }
            }
            LayerSpec::LeakyRelu { negative_slope } => {
                if !negative_slope.is_finite() {
                    return Err(format!("{}: negative_slope must be finite", here()));
                }
                shape.clone()
            }
            LayerSpec::Dropout { p } => {
                if !(0.0..=1.0).contains(p) {
                    return Err(format!("{}: p must lie in [0, 1], found {p}", here()));
                }
                shape.clone()
            }
            LayerSpec::Relu
            | LayerSpec::Gelu { .. }
            | LayerSpec::Silu
            | LayerSpec::Tanh
            | LayerSpec::Sigmoid => shape.clone(),
            LayerSpec::Residual {
                body,
                shortcut,
                activation,
            } => {
                let start = infos.len();
                infos.push(LayerInfo {
                    path: path.clone(),
                    description: layer.describe(),
                    output_shape: Vec::new(),
                    parameters: 0,
                });
                let body_out = infer(body, &format!("{path}.body."), shape.clone(), infos)?;
                let short_out = match shortcut {
                    Some(s) => infer(s, &format!("{path}.shortcut."), shape.clone(), infos)?,
                    None => shape.clone(),
                };
                if body_out != short_out {
                    return Err(format!(
                        "{}: body outputs {} but the shortcut outputs {}; they must match to be summed",
                        here(),
                        fmt_shape(&body_out),
                        fmt_shape(&short_out)
                    ));
                }
                if let Some(a) = activation {
                    infer(
                        std::slice::from_ref(a),
                        &format!("{path}.activation."),
                        body_out.clone(),
                        infos,
                    )?;
                }
                let total = infos[start + 1..]
                    .iter()
                    .map(|l| l.parameters)
                    .fold(0, usize::saturating_add);
                infos[start].output_shape = body_out.clone();
                infos[start].parameters = total;
                shape = body_out;
                continue;
            }
        };
        if out.contains(&0) {
            return Err(format!(
                "{}: output shape {} is empty",
                here(),
                fmt_shape(&out)
            ));
        }
        let mut parameters = 0usize;
        for p in layer.own_params() {
            match element_count(&p.shape).and_then(|n| parameters.checked_add(n)) {
                Some(total) => parameters = total,
                None => {
                    return Err(format!(
                        "{}: tensor '{}' of shape {} has more elements than fit in memory",
                        here(),
                        p.name,
                        fmt_shape(&p.shape)
                    ))
                }
            }
        }
        infos.push(LayerInfo {
            path,
            description: layer.describe(),
            output_shape: out.clone(),
            parameters,
        });
        shape = out;
    }
    Ok(shape)
}

impl LayerSpec {
    fn description_short(&self) -> String {
        match self.param_prefix() {
            Some(p) => format!("{} {p}", self.op_name()),
            None => self.op_name().to_string(),
        }
    }
}

fn check_eps(eps: f64, here: &dyn Fn() -> String) -> std::result::Result<(), String> {
    if !(eps.is_finite() && eps > 0.0) {
        return Err(format!("{}: eps must be positive, found {eps}", here()));
    }
    Ok(())
}

fn check_window(
    kernel: Size2,
    stride: Size2,
    padding: Size2,
    here: &dyn Fn() -> String,
) -> std::result::Result<(), String> {
    if kernel.h == 0 || kernel.w == 0 || stride.h == 0 || stride.w == 0 {
        return Err(format!(
            "{}: kernel_size and stride must be positive",
            here()
        ));
    }
    // PyTorch's own rule: padding at most half the kernel (`2p > k` without
    // the overflow of `2p`).
    if padding.h > kernel.h / 2 || padding.w > kernel.w / 2 {
        return Err(format!(
            "{}: padding ({padding}) must be at most half the kernel size ({kernel})",
            here()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cnn_json() -> String {
        r#"{
          "version": 1, "name": "t",
          "input": {"shape": [1, 28, 28], "mean": [0.1307], "std": [0.3081]},
          "layers": [
            {"op": "conv2d", "param": "features.0", "in_channels": 1, "out_channels": 16, "kernel_size": 3, "padding": 1},
            {"op": "relu"},
            {"op": "max_pool2d", "kernel_size": 2},
            {"op": "conv2d", "param": "features.3", "in_channels": 16, "out_channels": 32, "kernel_size": 3, "padding": 1},
            {"op": "relu"},
            {"op": "max_pool2d", "kernel_size": 2},
            {"op": "flatten"},
            {"op": "linear", "param": "classifier.0", "in_features": 1568, "out_features": 128},
            {"op": "relu"},
            {"op": "linear", "param": "classifier.2", "in_features": 128, "out_features": 10}
          ]}"#
        .to_string()
    }

    #[test]
    fn parses_the_documented_cnn_and_infers_shapes() {
        let spec = ArchSpec::from_json(&cnn_json(), "test").unwrap();
        let infos = spec.layer_infos().unwrap();
        assert_eq!(infos[2].output_shape, vec![16, 14, 14]);
        assert_eq!(infos[6].output_shape, vec![1568]);
        assert_eq!(spec.num_classes(), 10);
        // 160 + 4640 + 200832 + 1290 parameters, by hand.
        assert_eq!(spec.parameter_count(), 160 + 4640 + 1568 * 128 + 128 + 1290);
        assert_eq!(spec.input.range, [0.0, 1.0]);
        assert_eq!(spec.params()[0].name, "features.0.weight");
        assert_eq!(spec.params()[0].shape, vec![16, 1, 3, 3]);
    }

    #[test]
    fn spec_roundtrips_through_json() {
        let spec = ArchSpec::from_json(&cnn_json(), "test").unwrap();
        let again = ArchSpec::from_json(&spec.to_json_pretty(), "again").unwrap();
        assert_eq!(spec, again);
    }

    #[test]
    fn unknown_key_names_layer_and_key() {
        let text = cnn_json().replace("\"padding\": 1}", "\"paddin\": 1}");
        let err = ArchSpec::from_json(&text, "m.arch.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("layers[0]"), "{err}");
        assert!(err.contains("paddin"), "{err}");
        assert!(err.contains("m.arch.json"), "{err}");
    }

    #[test]
    fn unknown_op_lists_supported_ops() {
        let text = cnn_json().replace("\"op\": \"relu\"", "\"op\": \"swish\"");
        let err = ArchSpec::from_json(&text, "x").unwrap_err().to_string();
        assert!(
            err.contains("layers[1]") && err.contains("unknown op `swish`"),
            "{err}"
        );
    }

    #[test]
    fn newer_version_is_refused_with_explanation() {
        let text = cnn_json().replace("\"version\": 1", "\"version\": 7");
        let err = ArchSpec::from_json(&text, "x").unwrap_err().to_string();
        assert!(err.contains("newer") && err.contains('7'), "{err}");
    }

    #[test]
    fn channel_mismatch_names_the_layer() {
        let text = cnn_json().replace("\"in_channels\": 16", "\"in_channels\": 8");
        let err = ArchSpec::from_json(&text, "x").unwrap_err().to_string();
        assert!(err.contains("layer 3 (conv2d features.3)"), "{err}");
        assert!(
            err.contains("expects 8 input channels but gets 16"),
            "{err}"
        );
    }

    #[test]
    fn missing_flatten_is_explained() {
        let text = cnn_json().replace("{\"op\": \"flatten\"},", "");
        let err = ArchSpec::from_json(&text, "x").unwrap_err().to_string();
        assert!(
            err.contains("classifier.0") && err.contains("flatten"),
            "{err}"
        );
    }

    #[test]
    fn class_count_must_match_output() {
        let text = cnn_json().replace(
            "\"name\": \"t\",",
            "\"name\": \"t\", \"classes\": [\"a\", \"b\"],",
        );
        let err = ArchSpec::from_json(&text, "x").unwrap_err().to_string();
        assert!(
            err.contains("2 classes") && err.contains("outputs 10"),
            "{err}"
        );
    }

    #[test]
    fn one_output_is_a_binary_classifier_with_zero_or_two_names() {
        let spec = |classes: &str, tail: &str| {
            format!(
                r#"{{"version": 1, "input": {{"shape": [1, 2, 2]}}, {classes} "layers": [
                {{"op": "flatten"}}, {{"op": "linear", "param": "fc", "in_features": 4, "out_features": 1}}{tail}]}}"#
            )
        };
        let unnamed = ArchSpec::from_json(&spec("", ""), "x").unwrap();
        assert_eq!((unnamed.outputs(), unnamed.num_classes()), (1, 2));
        assert_eq!(unnamed.class_names(), ["0", "1"]);
        assert!(!unnamed.drops_final_sigmoid());
        assert_eq!(unnamed.output_notes().len(), 1);
        assert!(unnamed.output_notes()[0].contains("logits [0, z]"));
        let named = ArchSpec::from_json(
            &spec(r#""classes": ["cat", "dog"],"#, r#", {"op": "sigmoid"}"#),
            "x",
        )
        .unwrap();
        assert_eq!(named.class_names(), ["cat", "dog"]);
        assert!(named.drops_final_sigmoid());
        let notes = named.output_notes().join("\n");
        assert!(
            notes.contains("label 1 (dog)") && notes.contains("layer 2, sigmoid"),
            "{notes}"
        );
        for bad in [r#""classes": ["dog"],"#, r#""classes": ["a", "b", "c"],"#] {
            let err = ArchSpec::from_json(&spec(bad, ""), "x")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("outputs 1") && err.contains("name its 2 classes"),
                "{err}"
            );
        }
        // A sigmoid anywhere but last over one output is an ordinary layer.
        let hidden = r#"{"version": 1, "input": {"shape": [1, 2, 2]}, "layers": [
            {"op": "flatten"}, {"op": "sigmoid"}, {"op": "linear", "param": "fc", "in_features": 4, "out_features": 3}, {"op": "sigmoid"}]}"#;
        let three = ArchSpec::from_json(hidden, "x").unwrap();
        assert!(!three.drops_final_sigmoid() && three.output_notes().is_empty());
    }

    #[test]
    fn pooled_len_matches_pytorch_formulas() {
        // nn.MaxPool2d(3, 2, 1) on 12 → 6; ceil_mode on 5 with k2 s2 → 3; k3 s2 p1 on 7 → 4.
        assert_eq!(pooled_len(12, 3, 2, 1, 1, false), Some(6));
        assert_eq!(pooled_len(5, 2, 2, 0, 1, false), Some(2));
        assert_eq!(pooled_len(5, 2, 2, 0, 1, true), Some(3));
        assert_eq!(pooled_len(7, 3, 2, 1, 1, false), Some(4));
        // Dilated conv k3 d2 p2 keeps the size.
        assert_eq!(pooled_len(10, 3, 1, 2, 2, false), Some(10));
        // ceil_mode may not start a window in the right padding: k2 s2 p1 on 4 → 3.
        assert_eq!(pooled_len(4, 2, 2, 1, 1, true), Some(3));
        assert_eq!(pooled_len(2, 3, 1, 0, 1, false), None);
    }

    #[test]
    fn residual_paths_and_shortcut_mismatch() {
        let text = r#"{"version": 1, "input": {"shape": [2, 4, 4]}, "layers": [
            {"op": "residual", "body": [
                {"op": "conv2d", "param": "b.0", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1}
            ], "activation": {"op": "relu"}},
            {"op": "global_avg_pool2d"}
        ]}"#;
        let err = ArchSpec::from_json(text, "x").unwrap_err().to_string();
        assert!(err.contains("must match to be summed"), "{err}");
        let bad = text.replace("\"padding\": 1}", "\"padding\": 1, \"bogus\": 2}");
        let err = ArchSpec::from_json(&bad, "x").unwrap_err().to_string();
        assert!(
            err.contains("layers[0].body[0]") && err.contains("bogus"),
            "{err}"
        );
    }
}
