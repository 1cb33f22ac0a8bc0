//! Human-readable text about a spec, for `inspect`, the layer table and error
//! messages: op names, layer descriptions, output notes and shapes.

use super::{ArchSpec, GeluApproximate, LayerSpec, Size2};

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
            LayerSpec::Add => "add",
            LayerSpec::Mul => "mul",
            LayerSpec::Concat => "concat",
            LayerSpec::Clip { .. } => "clip",
            LayerSpec::HardSigmoid { .. } => "hard_sigmoid",
            LayerSpec::HardSwish => "hard_swish",
            LayerSpec::Softmax => "softmax",
            LayerSpec::Affine { .. } => "affine",
            LayerSpec::ChannelAffine { .. } => "channel_affine",
            LayerSpec::Pad2d { .. } => "pad2d",
            LayerSpec::RandomResizePad { .. } => "random_resize_pad",
            LayerSpec::Residual { .. } => "residual",
        }
    }

    pub(super) fn describe(&self) -> String {
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
            LayerSpec::Dropout { p, active: false } => format!("dropout p={p} (identity)"),
            LayerSpec::Dropout { p, active: true } => format!("dropout p={p} (active: random)"),
            LayerSpec::RandomResizePad {
                min_size,
                max_size,
                size,
                value,
            } => {
                let max = max_size.map_or("H".into(), |m| m.to_string());
                let canvas = size.map_or("H×W".into(), |s| s.to_string());
                format!("random_resize_pad {min_size}…{max} in {canvas}, fill {value} (random)")
            }
            LayerSpec::Clip { min, max } => format!("clip {min}…{max}"),
            LayerSpec::HardSigmoid { alpha, beta } => format!("hard_sigmoid {alpha:.4}·x + {beta}"),
            LayerSpec::Affine { scale, shift } => format!("affine x·{scale} + {shift}"),
            LayerSpec::ChannelAffine {
                param,
                num_features,
                ..
            } => format!("channel_affine {param} {num_features}"),
            LayerSpec::Pad2d { padding, value } => format!(
                "pad2d t{} b{} l{} r{} value {value}",
                padding[0], padding[1], padding[2], padding[3]
            ),
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

    pub(super) fn description_short(&self) -> String {
        match self.param_prefix() {
            Some(p) => format!("{} {p}", self.op_name()),
            None => self.op_name().to_string(),
        }
    }
}

impl ArchSpec {
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
                self.nodes.last().map_or("", |n| n.name.as_str())
            ));
        }
        notes
    }
}

/// Formats a shape as `[a, b, c]`.
pub fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}
