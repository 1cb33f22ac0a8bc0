//! Shape inference: every layer checked against its input, with its output
//! shape and parameter count, and PyTorch's pooling and convolution formulas.

use super::{element_count, fmt_shape, ArchSpec, LayerInfo, LayerSpec, Size2};

impl ArchSpec {
    /// Every layer, depth first, with output shapes and parameter counts.
    /// Errors name the layer whose input does not fit.
    pub fn layer_infos(&self) -> std::result::Result<Vec<LayerInfo>, String> {
        let mut infos = Vec::new();
        infer(&self.layers, "", self.input.shape.to_vec(), &mut infos)?;
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
