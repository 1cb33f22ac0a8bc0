//! Guessing a spec from tensor names and shapes, for a model that came without
//! one: a starting point the user edits, never used to load silently.

use std::collections::BTreeMap;

use super::load::TensorInfo;
use super::spec::{ArchSpec, InputSpec, LayerSpec, Size2};

/// Splits a name into text and number runs so that `layer.10` sorts after `layer.2`.
fn natural_key(s: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut num: Option<u64> = None;
    for ch in s.chars() {
        if let Some(d) = ch.to_digit(10) {
            num = Some(num.unwrap_or(0).saturating_mul(10).saturating_add(d as u64));
        } else {
            if let Some(n) = num.take() {
                out.push((std::mem::take(&mut text), n));
            }
            text.push(ch);
        }
    }
    out.push((text, num.unwrap_or(0)));
    out
}

/// A spec guessed from `tensors`: conv2d for 4-D weights, linear for 2-D,
/// batch norm where running statistics exist, ReLU after each conv or linear
/// but the last, a flatten before the first linear that follows a conv.
pub fn skeleton_spec(tensors: &[TensorInfo]) -> ArchSpec {
    let mut groups: BTreeMap<String, Vec<&TensorInfo>> = BTreeMap::new();
    for t in tensors {
        if let Some((prefix, _)) = t.name.rsplit_once('.') {
            groups.entry(prefix.to_string()).or_default().push(t);
        }
    }
    let mut prefixes: Vec<&String> = groups.keys().collect();
    prefixes.sort_by_key(|p| natural_key(p));

    let mut layers = Vec::new();
    let mut seen_conv = false;
    let mut flattened = false;
    let mut input = [1usize, 28, 28];
    let find = |prefix: &str, leaf: &str| {
        groups[prefix]
            .iter()
            .find(|t| t.name == format!("{prefix}.{leaf}"))
            .copied()
    };
    for prefix in prefixes {
        let weight = find(prefix, "weight");
        let bias = find(prefix, "bias").is_some();
        if let Some(mean) = find(prefix, "running_mean") {
            let n = mean.shape.first().copied().unwrap_or(0);
            if seen_conv && !flattened {
                layers.push(LayerSpec::BatchNorm2d {
                    param: prefix.clone(),
                    num_features: n,
                    eps: 1e-5,
                    affine: weight.is_some(),
                });
            } else {
                layers.push(LayerSpec::BatchNorm1d {
                    param: prefix.clone(),
                    num_features: n,
                    eps: 1e-5,
                    affine: weight.is_some(),
                });
            }
            continue;
        }
        let Some(w) = weight else { continue };
        match w.shape.as_slice() {
            [out, inp, kh, kw] => {
                if !seen_conv && layers.is_empty() {
                    input[0] = *inp;
                }
                seen_conv = true;
                layers.push(LayerSpec::Conv2d {
                    param: prefix.clone(),
                    in_channels: *inp,
                    out_channels: *out,
                    kernel_size: Size2 { h: *kh, w: *kw },
                    stride: Size2::square(1),
                    padding: Size2 {
                        h: kh / 2,
                        w: kw / 2,
                    },
                    dilation: Size2::square(1),
                    groups: 1,
                    bias,
                });
                layers.push(LayerSpec::Relu);
            }
            [out, inp] => {
                if !flattened {
                    layers.push(LayerSpec::Flatten { start_dim: 1 });
                    flattened = true;
                    if !seen_conv {
                        // An MLP: guess a square single-channel image.
                        let side = (*inp as f64).sqrt().round() as usize;
                        input = if side.checked_mul(side) == Some(*inp) {
                            [1, side, side]
                        } else {
                            [1, 1, *inp]
                        };
                    }
                }
                layers.push(LayerSpec::Linear {
                    param: prefix.clone(),
                    in_features: *inp,
                    out_features: *out,
                    bias,
                });
                layers.push(LayerSpec::Relu);
            }
            _ => {}
        }
    }
    if matches!(layers.last(), Some(LayerSpec::Relu)) {
        layers.pop();
    }
    ArchSpec::from_layers(
        InputSpec {
            shape: input,
            range: [0.0, 1.0],
            mean: None,
            std: None,
        },
        layers,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, shape: &[usize]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            shape: shape.to_vec(),
            dtype: "F32".into(),
        }
    }

    #[test]
    fn guesses_an_mlp_in_natural_order() {
        let spec = skeleton_spec(&[
            t("net.10.weight", &[10, 32]),
            t("net.10.bias", &[10]),
            t("net.2.weight", &[32, 784]),
            t("net.2.bias", &[32]),
        ]);
        assert_eq!(spec.input.shape, [1, 28, 28]);
        let ops: Vec<&str> = spec.nodes.iter().map(|n| n.op.op_name()).collect();
        assert_eq!(ops, ["flatten", "linear", "relu", "linear"]);
        assert_eq!(spec.nodes[1].op.param_prefix(), Some("net.2"));
    }

    #[test]
    fn guesses_conv_and_batch_norm() {
        let spec = skeleton_spec(&[
            t("conv.weight", &[8, 3, 3, 3]),
            t("conv.bias", &[8]),
            t("convbn.running_mean", &[8]),
            t("convbn.running_var", &[8]),
        ]);
        assert_eq!(spec.input.shape[0], 3);
        assert!(matches!(
            spec.nodes[2].op,
            LayerSpec::BatchNorm2d {
                num_features: 8,
                affine: false,
                ..
            }
        ));
    }
}
