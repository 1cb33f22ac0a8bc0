//! Grad-CAM (Selvaraju et al. 2017) on a named layer of the spec, as Captum's
//! `LayerGradCam` followed by `LayerAttribution.interpolate`: the layer's
//! channels `A_k` weighted by the spatial mean of `∂z_c/∂A_k`, summed over
//! channels, optionally passed through ReLU (the paper's choice; Captum's
//! `relu_attributions`), then upsampled to the input size with PyTorch's
//! `F.interpolate` rules (bilinear with `align_corners = False`, or nearest).
//! The one-channel map is repeated over the input's channels so every
//! method's map has the input's shape.
//!
//! Plan keys ([`GradCamConfig`]): `layer`, `relu`, `upsample`.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{check_batch, Attribution, ExplainBatch, Explanation, MethodSettings, SettingError};
use crate::entry::{did_you_mean, nearest, Entry};
use crate::error::{Error, Result};
use crate::model::spec::LayerSpec;
use crate::model::{ArchSpec, Classifier};

/// ReLU on the map by default: yes (the paper's choice).
pub const DEFAULT_RELU: bool = true;

/// Resizing rule by default: bilinear (smoother than Captum's nearest).
pub const DEFAULT_UPSAMPLE: Upsample = Upsample::Bilinear;

/// How the layer-resolution map is resized to the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Upsample {
    /// `F.interpolate(mode="bilinear", align_corners=False)`.
    Bilinear,
    /// `F.interpolate(mode="nearest")` (Captum's default).
    Nearest,
}

impl Upsample {
    /// Names as written in plans (and serialized).
    pub const CHOICES: &'static [(&'static str, Upsample)] = &[
        ("bilinear", Upsample::Bilinear),
        ("nearest", Upsample::Nearest),
    ];
}

/// The `grad_cam` method's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct GradCamConfig {
    /// The layer's position in the spec, as `inspect` lists it (e.g. `3`,
    /// `6.body.3`). Unset in a plan: the last conv2d layer, filled in when
    /// the plan is resolved against the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "the last conv2d layer"}}))]
    pub layer: Option<String>,
    /// ReLU on the map (Captum's `relu_attributions`; default `true`).
    pub relu: bool,
    /// `bilinear` (default) or `nearest`.
    pub upsample: Upsample,
}

impl Default for GradCamConfig {
    fn default() -> Self {
        GradCamConfig {
            layer: None,
            relu: DEFAULT_RELU,
            upsample: DEFAULT_UPSAMPLE,
        }
    }
}

impl MethodSettings for GradCamConfig {
    type Method = GradCam;

    fn from_entry(e: &mut Entry) -> Self {
        GradCamConfig {
            layer: e.string("layer"),
            relu: e.boolean("relu").unwrap_or(DEFAULT_RELU),
            upsample: e
                .choice("upsample", Upsample::CHOICES)
                .unwrap_or(DEFAULT_UPSAMPLE),
        }
    }

    /// The layer must exist and output a feature map; unset, it is the
    /// model's last conv2d layer.
    fn resolve(&mut self, model: &ArchSpec) -> std::result::Result<(), SettingError> {
        let fail = |message: String| SettingError {
            key: "layer",
            message,
        };
        let layer = match &self.layer {
            Some(l) => l.clone(),
            None => last_conv(model).ok_or_else(|| {
                fail("is not given and the model has no conv2d layer to default to".into())
            })?,
        };
        let infos = model
            .layer_infos()
            .map_err(|m| fail(format!("cannot be checked: {m}")))?;
        let maps: Vec<(&str, &str)> = infos
            .iter()
            .filter(|l| l.output_shape.len() == 3)
            .map(|l| (l.path.as_str(), l.description.as_str()))
            .collect();
        match infos.iter().find(|l| l.path == layer) {
            None => Err(fail(format!(
                "\"{layer}\" is not a layer position of the model{} (layers with feature maps{})",
                did_you_mean(&layer, &maps.iter().map(|m| m.0).collect::<Vec<_>>()),
                layer_listing(&layer, &maps)
            ))),
            Some(l) if l.output_shape.len() != 3 => Err(fail(format!(
                "\"{layer}\" ({}) outputs {:?}, not a [C, H, W] feature map (layers with feature maps{})",
                l.description,
                l.output_shape,
                layer_listing(&layer, &maps)
            ))),
            Some(_) => {
                self.layer = Some(layer);
                Ok(())
            }
        }
    }

    /// An unresolved layer is empty, which the model refuses when the
    /// method runs.
    fn build(&self, _input_hw: (usize, usize)) -> GradCam {
        GradCam {
            layer: self.layer.clone().unwrap_or_default(),
            relu: self.relu,
            upsample: self.upsample,
        }
    }
}

/// Name of the last conv2d node (for a v1 residual block, its body's last
/// conv: translation lists the shortcut first).
fn last_conv(model: &ArchSpec) -> Option<String> {
    model
        .nodes
        .iter()
        .rev()
        .find(|n| matches!(n.op, LayerSpec::Conv2d { .. }))
        .map(|n| n.name.clone())
}

/// Grad-CAM on one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCam {
    /// The layer's position in the spec (as `inspect` lists it, e.g. `3`).
    pub layer: String,
    /// Keep only positive evidence.
    pub relu: bool,
    /// Resizing rule.
    pub upsample: Upsample,
}

/// PyTorch's source coordinate and weights for output index `dst` when
/// resizing `len_in` → `len_out` bilinearly with `align_corners = False`.
fn bilinear_source(dst: usize, len_in: usize, len_out: usize) -> (usize, usize, f32, f32) {
    let scale = len_in as f32 / len_out as f32;
    let src = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
    let i0 = (src as usize).min(len_in - 1);
    let i1 = if i0 < len_in - 1 { i0 + 1 } else { i0 };
    let l1 = src - i0 as f32;
    (i0, i1, 1.0 - l1, l1)
}

/// Resizes one `h`×`w` plane to `oh`×`ow` with PyTorch's rules.
pub fn resize(plane: &[f32], h: usize, w: usize, oh: usize, ow: usize, mode: Upsample) -> Vec<f32> {
    let mut out = vec![0f32; oh * ow];
    match mode {
        Upsample::Nearest => {
            let (sy, sx) = (h as f32 / oh as f32, w as f32 / ow as f32);
            for y in 0..oh {
                let iy = ((y as f32 * sy).floor() as usize).min(h - 1);
                for x in 0..ow {
                    let ix = ((x as f32 * sx).floor() as usize).min(w - 1);
                    out[y * ow + x] = plane[iy * w + ix];
                }
            }
        }
        Upsample::Bilinear => {
            for y in 0..oh {
                let (y0, y1, wy0, wy1) = bilinear_source(y, h, oh);
                for x in 0..ow {
                    let (x0, x1, wx0, wx1) = bilinear_source(x, w, ow);
                    out[y * ow + x] = wy0 * (wx0 * plane[y0 * w + x0] + wx1 * plane[y0 * w + x1])
                        + wy1 * (wx0 * plane[y1 * w + x0] + wx1 * plane[y1 * w + x1]);
                }
            }
        }
    }
    out
}

impl Attribution for GradCam {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        let shape = check_batch(model, batch)?;
        let [n, c, h, w] = shape;
        let lg = model.layer_gradient(batch.x, &self.layer, batch.classes)?;
        let (_, _, lh, lw) = lg.activation.dims4().map_err(|_| {
            Error::Invalid(format!(
                "grad_cam: layer {} outputs {:?}, not a [N, C, H, W] feature map",
                self.layer,
                lg.activation.dims()
            ))
        })?;
        // α_k = spatial mean of the gradient; cam = Σ_k α_k A_k.
        let alpha = lg.grad.mean_keepdim((2, 3))?;
        let mut cam = lg.activation.broadcast_mul(&alpha)?.sum_keepdim(1)?;
        if self.relu {
            cam = cam.relu()?;
        }
        let cam: Vec<f32> = cam.flatten_all()?.to_vec1()?;
        let mut maps = Vec::with_capacity(n * c * h * w);
        for i in 0..n {
            let up = resize(
                &cam[i * lh * lw..(i + 1) * lh * lw],
                lh,
                lw,
                h,
                w,
                self.upsample,
            );
            for _ in 0..c {
                maps.extend_from_slice(&up);
            }
        }
        Ok(Explanation::maps(Tensor::from_vec(
            maps,
            (n, c, h, w),
            &Device::Cpu,
        )?))
    }

    fn model_calls(&self) -> usize {
        1
    }
}

/// At most this many layers are listed in an error; `inspect` lists them all.
const LISTED_LAYERS: usize = 10;

/// `": a (conv2d …); b (…)"`: the feature-map layers, in model order when
/// there are few, else the [`LISTED_LAYERS`] nearest to `layer` and how
/// many more there are (a ResNet has dozens).
fn layer_listing(layer: &str, maps: &[(&str, &str)]) -> String {
    if maps.is_empty() {
        return ": none".to_string();
    }
    let describe = |&(path, description): &(&str, &str)| format!("{path} ({description})");
    if maps.len() <= LISTED_LAYERS {
        let all: Vec<String> = maps.iter().map(describe).collect();
        return format!(": {}", all.join("; "));
    }
    let paths: Vec<&str> = maps.iter().map(|m| m.0).collect();
    let listed: Vec<String> = nearest(layer, &paths, LISTED_LAYERS)
        .into_iter()
        .map(|i| describe(&maps[i]))
        .collect();
    format!(
        ", nearest first: {}; … and {} more; `xai-audit inspect MODEL` lists them",
        listed.join("; "),
        maps.len() - LISTED_LAYERS
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::{ArchSpec, Network};

    #[test]
    fn resizing_matches_pytorch_interpolate() {
        // torch.nn.functional.interpolate(t, size=(4, 4), mode=...) of [[1, 2], [3, 4]].
        let p = [1.0f32, 2.0, 3.0, 4.0];
        let bilinear = resize(&p, 2, 2, 4, 4, Upsample::Bilinear);
        let expect = [
            1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0,
        ];
        for (a, b) in bilinear.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{bilinear:?}");
        }
        let nearest = resize(&p, 2, 2, 4, 4, Upsample::Nearest);
        assert_eq!(
            nearest,
            [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0]
        );
        // 7 → 28 (the shipped CNN's last feature map): constant stays constant.
        assert!(resize(&[0.5; 49], 7, 7, 28, 28, Upsample::Bilinear)
            .iter()
            .all(|&v| (v - 0.5).abs() < 1e-6));
    }

    /// conv 1×1 (1 → 2 channels) → global average pool → linear 2 → 2: the
    /// gradient of logit c w.r.t. A_k is V[c, k] / (h·w) everywhere, so by
    /// hand cam = Σ_k V[c, k] / (h·w) · (a_k x + b_k).
    #[test]
    fn grad_cam_matches_a_hand_computation() {
        let spec = r#"{"version": 1, "input": {"shape": [1, 2, 3]},
            "layers": [{"op": "conv2d", "param": "conv", "in_channels": 1, "out_channels": 2, "kernel_size": 1},
                       {"op": "global_avg_pool2d"},
                       {"op": "linear", "param": "fc", "in_features": 2, "out_features": 2}]}"#;
        let (a, b) = ([2.0f32, -1.0], [0.1f32, 0.3]);
        let v = [1.5f32, 0.5, -1.0, 2.0];
        let dev = Device::Cpu;
        let mut t = HashMap::new();
        t.insert(
            "conv.weight".into(),
            Tensor::from_slice(&a, (2, 1, 1, 1), &dev).unwrap(),
        );
        t.insert("conv.bias".into(), Tensor::from_slice(&b, 2, &dev).unwrap());
        t.insert(
            "fc.weight".into(),
            Tensor::from_slice(&v, (2, 2), &dev).unwrap(),
        );
        t.insert(
            "fc.bias".into(),
            Tensor::from_slice(&[0f32, 0.0], 2, &dev).unwrap(),
        );
        let net = Network::from_tensors(ArchSpec::from_json(spec, "t").unwrap(), &t)
            .unwrap()
            .0;
        let xs = [0.0f32, 0.2, 0.4, 0.6, 0.8, 1.0];
        let x = Tensor::from_slice(&xs, (1, 1, 2, 3), &dev).unwrap();
        for class in [0u32, 1] {
            for relu in [false, true] {
                let cam = GradCam {
                    layer: "0".into(),
                    relu,
                    upsample: Upsample::Bilinear,
                };
                let m: Vec<f32> = cam
                    .explain(
                        &net,
                        &ExplainBatch {
                            x: &x,
                            classes: &[class],
                            first_index: 0,
                            seed: 0,
                            stream: 0,
                        },
                    )
                    .unwrap()
                    .maps
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                for (p, &xp) in xs.iter().enumerate() {
                    let c = class as usize;
                    let mut e: f32 = (0..2)
                        .map(|k| v[c * 2 + k] / 6.0 * (a[k] * xp + b[k]))
                        .sum();
                    if relu {
                        e = e.max(0.0);
                    }
                    assert!(
                        (m[p] - e).abs() < 1e-6,
                        "class {class} relu {relu} pixel {p}: {} vs {e}",
                        m[p]
                    );
                }
            }
        }
        let err = GradCam {
            layer: "7".into(),
            relu: true,
            upsample: Upsample::Nearest,
        }
        .explain(
            &net,
            &ExplainBatch {
                x: &x,
                classes: &[0],
                first_index: 0,
                seed: 0,
                stream: 0,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`7`") && err.contains("0, 1, 2"), "{err}");
    }
}
