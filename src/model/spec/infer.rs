//! Shape inference: every node checked against its inputs, with its output
//! shape and parameter count, and PyTorch's pooling and convolution formulas.

use std::collections::HashMap;

use super::types::INPUT_NAME;
use super::{element_count, fmt_shape, ArchSpec, LayerInfo, LayerSpec, Size2};

impl ArchSpec {
    /// Every node in order, with output shapes and parameter counts.
    /// Errors name the node whose inputs do not fit.
    pub fn layer_infos(&self) -> std::result::Result<Vec<LayerInfo>, String> {
        let mut shapes: HashMap<&str, Vec<usize>> = HashMap::new();
        shapes.insert(INPUT_NAME, self.input.shape.to_vec());
        let mut infos = Vec::with_capacity(self.nodes.len());
        let mut previous = INPUT_NAME;
        for node in &self.nodes {
            let layer = &node.op;
            let path = &node.name;
            let here = || format!("layer {path} ({})", layer.description_short());
            let inputs: Vec<&[usize]> = node
                .inputs
                .iter()
                .map(|i| {
                    shapes
                        .get(i.as_str())
                        .map(Vec::as_slice)
                        .ok_or_else(|| format!("{}: input `{i}` names no earlier node", here()))
                })
                .collect::<std::result::Result<_, _>>()?;
            let out = match layer.arity() {
                (1, 1) if inputs.len() == 1 => infer_op(layer, &here, inputs[0])?,
                (lo, hi) if (lo..=hi).contains(&inputs.len()) && lo > 1 => {
                    infer_join(layer, &here, &inputs)?
                }
                _ => return Err(format!("{}: given {} inputs", here(), inputs.len())),
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
            let mut description = layer.describe();
            if node.inputs.len() != 1 || node.inputs[0] != previous {
                description.push_str(&format!(" ← {}", node.inputs.join(", ")));
            }
            infos.push(LayerInfo {
                path: path.clone(),
                description,
                output_shape: out.clone(),
                parameters,
            });
            shapes.insert(path, out);
            previous = path;
        }
        Ok(infos)
    }
}

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

/// The output shape of the one-input op `layer` on `shape`; `here` names the
/// node in errors.
fn infer_op(
    layer: &LayerSpec,
    here: &dyn Fn() -> String,
    shape: &[usize],
) -> std::result::Result<Vec<usize>, String> {
    let need_4d = |shape: &[usize]| -> std::result::Result<(usize, usize, usize), String> {
        match shape {
            [c, h, w] => Ok((*c, *h, *w)),
            _ => Err(format!(
                "{}: expects a [N, C, H, W] input but gets [N, {}]",
                here(),
                dims(shape)
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
                        fmt_shape(shape)
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
            let (c, h, w) = need_4d(shape)?;
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
                    dims(shape)
                ));
            }
            check_eps(*eps, &here)?;
            shape.to_vec()
        }
        LayerSpec::BatchNorm2d {
            num_features, eps, ..
        } => {
            let (c, _, _) = need_4d(shape)?;
            if c != *num_features {
                return Err(format!(
                    "{}: expects {num_features} channels but gets {c}",
                    here()
                ));
            }
            check_eps(*eps, &here)?;
            shape.to_vec()
        }
        LayerSpec::MaxPool2d {
            kernel_size,
            stride,
            padding,
            dilation,
            ceil_mode,
        } => {
            let (c, h, w) = need_4d(shape)?;
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
            let (c, h, w) = need_4d(shape)?;
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
            let (c, _, _) = need_4d(shape)?;
            if output_size.h == 0 || output_size.w == 0 {
                return Err(format!("{}: output_size must be positive", here()));
            }
            vec![c, output_size.h, output_size.w]
        }
        LayerSpec::GlobalAvgPool2d => {
            let (c, _, _) = need_4d(shape)?;
            vec![c]
        }
        LayerSpec::Flatten { start_dim } => {
            if *start_dim != 1 {
                return Err(format!(
                    "{}: only start_dim = 1 is supported, found {start_dim}",
                    here()
                ));
            }
            match element_count(shape) {
                Some(n) => vec![n],
                None => {
                    return Err(format!(
                        "{}: {} has more elements than fit in memory",
                        here(),
                        fmt_shape(shape)
                    ))
                }
            }
        }
        LayerSpec::LeakyRelu { negative_slope } => {
            if !negative_slope.is_finite() {
                return Err(format!("{}: negative_slope must be finite", here()));
            }
            shape.to_vec()
        }
        LayerSpec::Dropout { p, active } => {
            if !(0.0..=1.0).contains(p) || (*active && *p >= 1.0) {
                let range = if *active { "[0, 1)" } else { "[0, 1]" };
                return Err(format!("{}: p must lie in {range}, found {p}", here()));
            }
            shape.to_vec()
        }
        LayerSpec::RandomResizePad {
            min_size,
            max_size,
            size,
            value,
        } => {
            let (c, h, w) = need_4d(shape)?;
            let canvas = size.unwrap_or(Size2 { h, w });
            let max = max_size.unwrap_or(canvas.h);
            if !value.is_finite() {
                return Err(format!("{}: value must be finite", here()));
            }
            if *min_size == 0 || *min_size > max {
                return Err(format!(
                    "{}: needs 1 ≤ min_size ≤ max_size, found {min_size} and {max}",
                    here()
                ));
            }
            if max > canvas.h || resized_width(max, h, w) > canvas.w {
                return Err(format!(
                    "{}: an input resized to height {max} does not fit the {} canvas",
                    here(),
                    canvas
                ));
            }
            if canvas.h > 1 << 16 || canvas.w > 1 << 16 {
                return Err(format!("{}: size {canvas} is too large", here()));
            }
            vec![c, canvas.h, canvas.w]
        }
        LayerSpec::Relu
        | LayerSpec::Gelu { .. }
        | LayerSpec::Silu
        | LayerSpec::Tanh
        | LayerSpec::Sigmoid => shape.to_vec(),
        LayerSpec::Clip { min, max } => {
            if !(min.is_finite() && max.is_finite() && min <= max) {
                return Err(format!(
                    "{}: needs finite min ≤ max, found {min}, {max}",
                    here()
                ));
            }
            shape.to_vec()
        }
        LayerSpec::HardSigmoid { alpha, beta } => {
            if !(alpha.is_finite() && beta.is_finite()) {
                return Err(format!("{}: alpha and beta must be finite", here()));
            }
            shape.to_vec()
        }
        LayerSpec::Affine { scale, shift } => {
            if !(scale.is_finite() && shift.is_finite()) {
                return Err(format!("{}: scale and shift must be finite", here()));
            }
            shape.to_vec()
        }
        LayerSpec::ChannelAffine { num_features, .. } => {
            if shape.first() != Some(num_features) || !(shape.len() == 1 || shape.len() == 3) {
                return Err(format!(
                    "{}: expects {num_features} channels but gets [N, {}]",
                    here(),
                    dims(shape)
                ));
            }
            shape.to_vec()
        }
        LayerSpec::Softmax => {
            if shape.len() != 1 {
                return Err(format!(
                    "{}: softmax runs over the classes of [N, K], not over {}",
                    here(),
                    fmt_shape(shape)
                ));
            }
            shape.to_vec()
        }
        LayerSpec::Pad2d { padding, value } => {
            let (c, h, w) = need_4d(shape)?;
            if !value.is_finite() {
                return Err(format!("{}: value must be finite", here()));
            }
            let oh = h
                .checked_add(padding[0])
                .and_then(|v| v.checked_add(padding[1]));
            let ow = w
                .checked_add(padding[2])
                .and_then(|v| v.checked_add(padding[3]));
            match (oh, ow) {
                (Some(oh), Some(ow)) if oh <= 1 << 24 && ow <= 1 << 24 => vec![c, oh, ow],
                _ => return Err(format!("{}: padding is too large", here())),
            }
        }
        LayerSpec::HardSwish => shape.to_vec(),
        LayerSpec::Add | LayerSpec::Mul | LayerSpec::Concat | LayerSpec::Residual { .. } => {
            return Err(format!("{}: not a one-input op", here()))
        }
    };
    Ok(out)
}

/// The output shape of `add`, `mul` or `concat` on `shapes`.
fn infer_join(
    layer: &LayerSpec,
    here: &dyn Fn() -> String,
    shapes: &[&[usize]],
) -> std::result::Result<Vec<usize>, String> {
    let all = || {
        shapes
            .iter()
            .map(|s| fmt_shape(s))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    match layer {
        LayerSpec::Add | LayerSpec::Mul => {
            let (a, b) = (shapes[0], shapes[1]);
            let gate = |g: &[usize], x: &[usize]| g.len() == 3 && x.len() == 3 && g == [x[0], 1, 1];
            if a == b || gate(b, a) {
                Ok(a.to_vec())
            } else if gate(a, b) {
                Ok(b.to_vec())
            } else {
                let verb = match layer {
                    LayerSpec::Add => "summed",
                    _ => "multiplied",
                };
                Err(format!(
                    "{}: inputs of shapes {} must match to be {verb} (or one be [C, 1, 1], broadcast over the other's [C, H, W])",
                    here(),
                    all()
                ))
            }
        }
        LayerSpec::Concat => {
            let first = shapes[0];
            let fits = |s: &[usize]| s.len() == first.len() && s[1..] == first[1..];
            if !(first.len() == 1 || first.len() == 3) || !shapes.iter().all(|s| fits(s)) {
                return Err(format!(
                    "{}: concatenates along channels inputs of equal height and width (or flat vectors), found {}",
                    here(),
                    all()
                ));
            }
            let mut out = first.to_vec();
            out[0] = shapes.iter().map(|s| s[0]).sum();
            Ok(out)
        }
        _ => Err(format!("{}: not a join", here())),
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

/// A per-item shape's dimensions, `a, b, c`, for messages that print `[N, …]`.
fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The width of an `h × w` input resized to height `r` by
/// `random_resize_pad`: the aspect ratio kept, rounded, at least 1.
pub(crate) fn resized_width(r: usize, h: usize, w: usize) -> usize {
    ((r * w + h / 2) / h).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
