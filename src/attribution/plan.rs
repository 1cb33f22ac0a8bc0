//! `[[attribution]]` entries of an audit plan: which method, explaining which
//! class, with which parameters and metrics, on the clean inputs and on which
//! attacks' adversarials. Parsing is as strict as the attacks': an unknown
//! method or key, a wrong type, a bad value or an unknown attack in `on` is an
//! error naming the file, the entry and the key. What depends on the model
//! (the Grad-CAM layer, the occlusion window, a fixed class) is checked by
//! [`check_against`] before any work starts.

use serde::{Deserialize, Serialize};
use toml::Value;

use super::gradcam::{GradCam, Upsample};
use super::input_x_gradient::InputXGradient;
use super::integrated_gradients::{Baseline, IntegratedGradients, Integration};
use super::occlusion::Occlusion;
use super::saliency::Saliency;
use super::smoothgrad::{NoiseTunnelType, SmoothGrad};
use super::Attribution;
use crate::error::{Error, Result};
use crate::model::spec::LayerSpec;
use crate::model::ArchSpec;
use crate::plan::legacy_entry::Entry;
use crate::plan::AttackSpec;

/// The methods this build knows, as written in plans.
pub const METHODS: &[&str] = &[
    "saliency",
    "input_x_gradient",
    "integrated_gradients",
    "smoothgrad",
    "occlusion",
    "grad_cam",
];

/// The metrics an entry can ask for.
pub const METRICS: &[&str] = &["deletion", "insertion", "sensitivity", "sparseness"];

/// Metrics computed when an entry does not list any.
pub const DEFAULT_METRICS: &[&str] = &["deletion", "insertion", "sparseness"];

/// A class-choosing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetRule {
    /// The class the model predicts for the input being explained (for an
    /// adversarial input, its adversarial prediction).
    Predicted,
    /// The true label.
    Label,
}

/// Which class's logit a map explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum AttributionTarget {
    /// A fixed class for every input.
    Class(u32),
    /// A rule.
    Rule(TargetRule),
}

/// One `[[attribution]]` entry, defaults resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttributionSpec {
    /// Unique name: names the tensors (`attr/<name>/clean`, `attr/<name>/<attack>`)
    /// and the report entries.
    pub name: String,
    /// One of [`METHODS`].
    pub method: String,
    /// The class explained.
    pub target: AttributionTarget,
    /// Attacks whose adversarial inputs are explained too, in plan order.
    pub on: Vec<String>,
    /// Metrics computed for the maps `metrics_on` selects.
    pub metrics: Vec<String>,
    /// `all` maps, or only the `clean` ones (the attacks' maps still get the
    /// top-k overlap and Spearman correlation).
    pub metrics_on: String,
    /// Share of pixels compared between clean and adversarial maps (top-k overlap).
    pub top_k_fraction: f64,
    /// Saliency / SmoothGrad: absolute gradients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abs: Option<bool>,
    /// Integrated Gradients: quadrature points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Integrated Gradients: `gausslegendre` or `riemann_{left,right,middle,trapezoid}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    /// Integrated Gradients: `zero`, `black` (the range's low end), `blur` or `uniform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Integrated Gradients with `baseline = "blur"`: Gaussian σ in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blur_sigma: Option<f64>,
    /// SmoothGrad: noisy samples per input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// SmoothGrad: noise standard deviation in input units (default 15% of
    /// the model's range width: 0.15 on `[0, 1]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdev: Option<f64>,
    /// SmoothGrad: `smoothgrad` or `smoothgrad_sq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nt_type: Option<String>,
    /// SmoothGrad: store the noise in the sidecar (`noise/<name>/clean`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_noise: Option<bool>,
    /// Occlusion: window `[height, width]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<[usize; 2]>,
    /// Occlusion: stride `[vertical, horizontal]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<[usize; 2]>,
    /// Occlusion: the value occluded pixels take (a number in input units,
    /// or `"black"`, the low end of the model's range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_value: Option<super::Fill>,
    /// Grad-CAM: the layer's position in the spec (default: the last conv2d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Grad-CAM: ReLU on the map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relu: Option<bool>,
    /// Grad-CAM: `bilinear` or `nearest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsample: Option<String>,
    /// Deletion/insertion: steps from no pixel to all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve_steps: Option<usize>,
    /// Deletion/insertion: the value of a removed pixel (a number in input
    /// units, or `"black"`, the low end of the model's range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve_baseline: Option<super::Fill>,
    /// Max-sensitivity: perturbation samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity_samples: Option<usize>,
    /// Max-sensitivity: L∞ radius of the uniform perturbations, in input
    /// units (default 2% of the model's range width: Captum's 0.02 on `[0, 1]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity_radius: Option<f64>,
}

impl AttributionSpec {
    /// Whether the entry computes `metric` (on the clean maps at least).
    pub fn wants(&self, metric: &str) -> bool {
        self.metrics.iter().any(|m| m == metric)
    }

    /// Whether the entry computes `metric` on the maps of `variant`
    /// (`clean` or an attack).
    pub fn wants_on(&self, metric: &str, variant: &str) -> bool {
        self.wants(metric) && (variant == "clean" || self.metrics_on == "all")
    }

    /// The runnable method for inputs of `input_hw` (height, width), unset
    /// settings at the parser's defaults. An unknown method is an error.
    pub fn build(&self, input_hw: (usize, usize)) -> Result<Box<dyn Attribution>> {
        Ok(match self.method.as_str() {
            "saliency" => Box::new(Saliency {
                abs: self.abs.unwrap_or(false),
            }),
            "input_x_gradient" => Box::new(InputXGradient),
            "integrated_gradients" => Box::new(IntegratedGradients {
                steps: self.steps.unwrap_or(50),
                integration: self
                    .integration
                    .as_deref()
                    .and_then(Integration::from_name)
                    .unwrap_or(Integration::GaussLegendre),
                baseline: match self.baseline.as_deref() {
                    Some("blur") => Baseline::Blur {
                        sigma: self.blur_sigma.unwrap_or(5.0) as f32,
                    },
                    Some("uniform") => Baseline::Uniform,
                    Some("black") => Baseline::Black,
                    _ => Baseline::Zero,
                },
            }),
            "smoothgrad" => Box::new(SmoothGrad {
                samples: self.samples.unwrap_or(10),
                stdev: self.stdev.unwrap_or(DEFAULT_SMOOTHGRAD_STDEV) as f32,
                kind: self
                    .nt_type
                    .as_deref()
                    .and_then(NoiseTunnelType::from_name)
                    .unwrap_or(NoiseTunnelType::SmoothGrad),
                abs: self.abs.unwrap_or(false),
                keep_noise: self.keep_noise.unwrap_or(false),
            }),
            "occlusion" => {
                let window = self.window.unwrap_or(DEFAULT_OCCLUSION_WINDOW);
                let [wh, ww] = window;
                let [sh, sw] = self.stride.unwrap_or(default_occlusion_stride(window));
                Box::new(Occlusion {
                    window: (wh, ww),
                    stride: (sh, sw),
                    baseline: self.baseline_value.unwrap_or(super::Fill::Value(0.0)),
                    input_hw,
                })
            }
            "grad_cam" => Box::new(GradCam {
                layer: self.layer.clone().unwrap_or_default(),
                relu: self.relu.unwrap_or(true),
                upsample: self
                    .upsample
                    .as_deref()
                    .and_then(Upsample::from_name)
                    .unwrap_or(Upsample::Bilinear),
            }),
            other => {
                return Err(Error::Invalid(format!(
                    "attribution \"{}\": unknown method \"{other}\" (known: {})",
                    self.name,
                    METHODS.join(", ")
                )))
            }
        })
    }

    /// `predicted`, `label` or the class index.
    pub fn target_label(&self) -> String {
        match self.target {
            AttributionTarget::Class(c) => c.to_string(),
            AttributionTarget::Rule(TargetRule::Predicted) => "predicted".into(),
            AttributionTarget::Rule(TargetRule::Label) => "label".into(),
        }
    }
}

/// Occlusion's window, pixels.
pub const DEFAULT_OCCLUSION_WINDOW: [usize; 2] = [4, 4];

/// Occlusion's stride: half the window (at least 1).
pub fn default_occlusion_stride(window: [usize; 2]) -> [usize; 2] {
    [(window[0] / 2).max(1), (window[1] / 2).max(1)]
}

/// SmoothGrad's noise level as a share of the range width (Smilkov et al.
/// 2017: σ / (x_max − x_min) = 15%).
pub const DEFAULT_SMOOTHGRAD_STDEV: f64 = 0.15;

/// Max-sensitivity's radius as a share of the range width (Captum's 0.02
/// on `[0, 1]` inputs).
pub const DEFAULT_SENSITIVITY_RADIUS: f64 = 0.02;

/// Keys every entry accepts.
const COMMON_KEYS: &[&str] = &[
    "name",
    "method",
    "target",
    "on",
    "metrics",
    "metrics_on",
    "top_k_fraction",
    "curve_steps",
    "curve_baseline",
    "sensitivity_samples",
    "sensitivity_radius",
];

/// The keys of each method.
fn method_keys(method: &str) -> &'static [&'static str] {
    match method {
        "saliency" => &["abs"],
        "integrated_gradients" => &["steps", "integration", "baseline", "blur_sigma"],
        "smoothgrad" => &["samples", "stdev", "nt_type", "abs", "keep_noise"],
        "occlusion" => &["window", "stride", "baseline_value"],
        "grad_cam" => &["layer", "relu", "upsample"],
        _ => &[],
    }
}

/// Parses the `attribution` array of a plan (`None` when absent); `attacks`
/// are the plan's attacks, which `on` may name.
pub fn parse_attributions(
    value: Option<Value>,
    origin: &str,
    attacks: &[AttackSpec],
) -> Result<Vec<AttributionSpec>> {
    let items = match value {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(Error::Plan {
                origin: origin.to_string(),
                message: "`attribution` must be an array of tables ([[attribution]])".into(),
            })
        }
    };
    let mut out: Vec<AttributionSpec> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let Value::Table(table) = item else {
            return Err(Error::Plan {
                origin: origin.to_string(),
                message: format!("attribution[{i}] must be a table"),
            });
        };
        let label = match table.get("name").and_then(|v| v.as_str()) {
            Some(n) => format!("attribution[{i}] \"{n}\""),
            None => format!("attribution[{i}]"),
        };
        let mut e = Entry::new(origin, label, table);
        let spec = parse_entry(&mut e, attacks)?;
        if let Some(key) = e.table.keys().next() {
            let known: Vec<&str> = COMMON_KEYS
                .iter()
                .chain(method_keys(&spec.method))
                .copied()
                .collect();
            return Err(e.err(
                key,
                format!(
                    "is not a known key for method {} (known: {}){}",
                    spec.method,
                    known.join(", "),
                    crate::plan::legacy_entry::did_you_mean(key, &known)
                ),
            ));
        }
        if out.iter().any(|a| a.name == spec.name) {
            return Err(e.err(
                "name",
                format!("\"{}\" is used twice; names must be unique", spec.name),
            ));
        }
        out.push(spec);
    }
    Ok(out)
}

fn parse_entry(e: &mut Entry, attacks: &[AttackSpec]) -> Result<AttributionSpec> {
    let method = e.string("method")?.ok_or_else(|| {
        e.err(
            "method",
            format!("is missing (one of {})", METHODS.join(", ")),
        )
    })?;
    if !METHODS.contains(&method.as_str()) {
        return Err(e.err(
            "method",
            format!(
                "\"{method}\" is not a known method (known: {}){}",
                METHODS.join(", "),
                crate::plan::legacy_entry::did_you_mean(&method, METHODS)
            ),
        ));
    }
    let name = e
        .string("name")?
        .ok_or_else(|| e.err("name", "is missing"))?;
    if name.is_empty() || name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err(e.err(
            "name",
            "must be non-empty, without slashes or control characters",
        ));
    }
    let target = match e.take("target") {
        None => AttributionTarget::Rule(TargetRule::Predicted),
        Some(Value::String(s)) if s == "predicted" => {
            AttributionTarget::Rule(TargetRule::Predicted)
        }
        Some(Value::String(s)) if s == "label" => AttributionTarget::Rule(TargetRule::Label),
        Some(Value::Integer(c)) if (0..=u32::MAX as i64).contains(&c) => {
            AttributionTarget::Class(c as u32)
        }
        Some(other) => {
            return Err(e.err(
                "target",
                format!("must be \"predicted\", \"label\" or a class index, found {other}"),
            ))
        }
    };
    let on = match e.take("on") {
        None => Vec::new(),
        Some(Value::String(s)) if s == "all" => attacks.iter().map(|a| a.name.clone()).collect(),
        Some(Value::Array(items)) => {
            let mut names = Vec::new();
            for item in items {
                let Value::String(s) = item else {
                    return Err(e.err(
                        "on",
                        format!("must list attack names, found {}", item.type_str()),
                    ));
                };
                if !attacks.iter().any(|a| a.name == s) {
                    let known: Vec<&str> = attacks.iter().map(|a| a.name.as_str()).collect();
                    return Err(e.err(
                        "on",
                        format!(
                            "names \"{s}\", which is not an attack of this plan (attacks: {})",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
                if !names.contains(&s) {
                    names.push(s);
                }
            }
            // Plan order, so tensors and records come in a stable order.
            attacks
                .iter()
                .filter(|a| names.contains(&a.name))
                .map(|a| a.name.clone())
                .collect()
        }
        Some(other) => {
            return Err(e.err(
                "on",
                format!("must be \"all\" or a list of attack names, found {other}"),
            ))
        }
    };
    if on.iter().any(|a| a == "clean") {
        return Err(e.err(
            "on",
            "names an attack called \"clean\", which would collide with the clean maps (attr/<name>/clean): rename the attack",
        ));
    }
    let metrics = match e.strings("metrics")? {
        None => DEFAULT_METRICS.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            for m in &list {
                if !METRICS.contains(&m.as_str()) {
                    return Err(e.err(
                        "metrics",
                        format!(
                            "\"{m}\" is not a known metric (known: {})",
                            METRICS.join(", ")
                        ),
                    ));
                }
            }
            // Canonical order, no duplicates.
            METRICS
                .iter()
                .filter(|m| list.iter().any(|l| l == *m))
                .map(|s| s.to_string())
                .collect()
        }
    };
    let metrics_on = e
        .choice("metrics_on", &["all", "clean"])?
        .unwrap_or_else(|| "all".into());
    let top_k_fraction = e.positive_float("top_k_fraction")?.unwrap_or(0.05);
    if top_k_fraction > 1.0 {
        return Err(e.err(
            "top_k_fraction",
            format!("must be in (0, 1], found {top_k_fraction}"),
        ));
    }
    let mut spec = AttributionSpec {
        name,
        method: method.clone(),
        target,
        on,
        metrics,
        metrics_on,
        top_k_fraction,
        abs: None,
        steps: None,
        integration: None,
        baseline: None,
        blur_sigma: None,
        samples: None,
        stdev: None,
        nt_type: None,
        keep_noise: None,
        window: None,
        stride: None,
        baseline_value: None,
        layer: None,
        relu: None,
        upsample: None,
        curve_steps: None,
        curve_baseline: None,
        sensitivity_samples: None,
        sensitivity_radius: None,
    };
    let wants_curves = spec.wants("deletion") || spec.wants("insertion");
    let curve_steps = e.positive_int("curve_steps")?;
    let curve_baseline = e.fill("curve_baseline")?;
    if wants_curves {
        spec.curve_steps = Some(curve_steps.unwrap_or(20));
        spec.curve_baseline = Some(curve_baseline.unwrap_or(super::Fill::Value(0.0)));
    } else if curve_steps.is_some() || curve_baseline.is_some() {
        let key = if curve_steps.is_some() {
            "curve_steps"
        } else {
            "curve_baseline"
        };
        return Err(e.err(key, "applies only with the deletion or insertion metric"));
    }
    let sensitivity_samples = e.positive_int("sensitivity_samples")?;
    let sensitivity_radius = e.nonneg_float("sensitivity_radius")?;
    if spec.wants("sensitivity") {
        // Captum's sensitivity_max: radius 0.02, 10 samples. An unset radius
        // is 2% of the model's range width, filled in by `check_against`.
        spec.sensitivity_samples = Some(sensitivity_samples.unwrap_or(10));
        spec.sensitivity_radius = sensitivity_radius;
    } else if sensitivity_samples.is_some() || sensitivity_radius.is_some() {
        let key = if sensitivity_samples.is_some() {
            "sensitivity_samples"
        } else {
            "sensitivity_radius"
        };
        return Err(e.err(key, "applies only with the sensitivity metric"));
    }
    // Keys of other methods are errors: leave them in the table.
    let keys = method_keys(&method);
    let mine = |k: &str| keys.contains(&k);
    match method.as_str() {
        "saliency" => spec.abs = Some(e.boolean("abs")?.unwrap_or(false)),
        "integrated_gradients" => {
            let integration = e
                .choice("integration", Integration::NAMES)?
                .unwrap_or_else(|| "gausslegendre".into());
            let min = Integration::from_name(&integration)
                .expect("validated")
                .min_steps();
            let steps = e.positive_int("steps")?.unwrap_or(50);
            if steps < min {
                return Err(e.err(
                    "steps",
                    format!(
                        "must be at least {min} with integration \"{integration}\", found {steps}"
                    ),
                ));
            }
            let baseline = e
                .choice("baseline", &["zero", "black", "blur", "uniform"])?
                .unwrap_or_else(|| "zero".into());
            if baseline == "blur" {
                spec.blur_sigma = Some(e.positive_float("blur_sigma")?.unwrap_or(5.0));
            }
            spec.steps = Some(steps);
            spec.integration = Some(integration);
            spec.baseline = Some(baseline);
        }
        "smoothgrad" => {
            spec.samples = Some(e.positive_int("samples")?.unwrap_or(10));
            // Unset: 15% of the range width (Smilkov et al.'s noise level,
            // relative to x_max − x_min), filled in by `check_against`.
            spec.stdev = e.nonneg_float("stdev")?;
            spec.nt_type = Some(
                e.choice("nt_type", NoiseTunnelType::NAMES)?
                    .unwrap_or_else(|| "smoothgrad".into()),
            );
            spec.abs = Some(e.boolean("abs")?.unwrap_or(false));
            spec.keep_noise = Some(e.boolean("keep_noise")?.unwrap_or(false));
        }
        "occlusion" => {
            let window = e.size2("window")?.unwrap_or(DEFAULT_OCCLUSION_WINDOW);
            spec.window = Some(window);
            spec.stride = Some(
                e.size2("stride")?
                    .unwrap_or(default_occlusion_stride(window)),
            );
            spec.baseline_value =
                Some(e.fill("baseline_value")?.unwrap_or(super::Fill::Value(0.0)));
        }
        "grad_cam" => {
            spec.layer = e.string("layer")?;
            spec.relu = Some(e.boolean("relu")?.unwrap_or(true));
            spec.upsample = Some(
                e.choice("upsample", Upsample::NAMES)?
                    .unwrap_or_else(|| "bilinear".into()),
            );
        }
        _ => {}
    }
    // A key that belongs to this method but only applies with another option
    // (blur_sigma without a blur baseline) is an error too.
    if let Some(k) = e.table.keys().find(|k| mine(k)).cloned() {
        return Err(e.err(&k, "does not apply with the other settings of this entry"));
    }
    Ok(spec)
}

fn plan_err(origin: &str, i: usize, spec: &AttributionSpec, key: &str, msg: String) -> Error {
    Error::Plan {
        origin: origin.to_string(),
        message: format!("attribution[{i}] \"{}\": `{key}` {msg}", spec.name),
    }
}

/// Checks and completes the entries against the model: fixed classes exist,
/// the occlusion window fits the input, and the Grad-CAM layer exists and
/// outputs a feature map (default: the last conv2d layer).
pub fn check_against(
    attributions: &mut [AttributionSpec],
    spec: &ArchSpec,
    origin: &str,
) -> Result<()> {
    let num_classes = spec.num_classes();
    let [_, h, w] = spec.input.shape;
    let infos = spec.layer_infos().map_err(Error::Invalid)?;
    let width = (spec.input.range[1] - spec.input.range[0]) as f64;
    for (i, a) in attributions.iter_mut().enumerate() {
        // Noise scales the user left unset follow the model's range.
        if a.method == "smoothgrad" && a.stdev.is_none() {
            a.stdev = Some(DEFAULT_SMOOTHGRAD_STDEV * width);
        }
        if a.wants("sensitivity") && a.sensitivity_radius.is_none() {
            a.sensitivity_radius = Some(DEFAULT_SENSITIVITY_RADIUS * width);
        }
        if let AttributionTarget::Class(c) = a.target {
            if c as usize >= num_classes {
                return Err(plan_err(
                    origin,
                    i,
                    a,
                    "target",
                    format!("class {c} is outside the model's {num_classes} classes"),
                ));
            }
        }
        if a.method == "occlusion" {
            let win = a.window.unwrap_or(DEFAULT_OCCLUSION_WINDOW);
            let stride = a.stride.unwrap_or(default_occlusion_stride(win));
            let occ = Occlusion {
                window: (win[0], win[1]),
                stride: (stride[0], stride[1]),
                baseline: super::Fill::Value(0.0),
                input_hw: (h, w),
            };
            if let Err(msg) = occ.validate() {
                let key = if msg.starts_with("window") {
                    "window"
                } else {
                    "stride"
                };
                return Err(plan_err(origin, i, a, key, msg));
            }
        }
        if a.method == "grad_cam" {
            let layer = match &a.layer {
                Some(l) => l.clone(),
                None => last_conv(&spec.layers, "").ok_or_else(|| {
                    plan_err(
                        origin,
                        i,
                        a,
                        "layer",
                        "is not given and the model has no conv2d layer to default to".into(),
                    )
                })?,
            };
            let known: Vec<String> = infos
                .iter()
                .filter(|l| l.output_shape.len() == 3)
                .map(|l| format!("{} ({})", l.path, l.description))
                .collect();
            match infos.iter().find(|l| l.path == layer) {
                None => {
                    return Err(plan_err(
                        origin,
                        i,
                        a,
                        "layer",
                        format!(
                            "\"{layer}\" is not a layer position of the model (layers with feature maps: {})",
                            known.join("; ")
                        ),
                    ))
                }
                Some(l) if l.output_shape.len() != 3 => {
                    return Err(plan_err(
                        origin,
                        i,
                        a,
                        "layer",
                        format!(
                            "\"{layer}\" ({}) outputs {:?}, not a [C, H, W] feature map (layers with feature maps: {})",
                            l.description,
                            l.output_shape,
                            known.join("; ")
                        ),
                    ))
                }
                Some(_) => a.layer = Some(layer),
            }
        }
    }
    Ok(())
}

/// Path of the last conv2d layer, depth first.
fn last_conv(layers: &[LayerSpec], prefix: &str) -> Option<String> {
    let mut found = None;
    for (i, layer) in layers.iter().enumerate() {
        let path = format!("{prefix}{i}");
        match layer {
            LayerSpec::Conv2d { .. } => found = Some(path),
            LayerSpec::Residual { body, shortcut, .. } => {
                // The main branch's last conv, else the projection's.
                let inner = last_conv(body, &format!("{path}.body.")).or_else(|| {
                    shortcut
                        .as_ref()
                        .and_then(|s| last_conv(s, &format!("{path}.shortcut.")))
                });
                if inner.is_some() {
                    found = inner;
                }
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<crate::plan::Plan> {
        crate::plan::Plan::from_toml(text, "p.toml")
    }

    fn err(text: &str) -> String {
        plan(text).unwrap_err().to_string()
    }

    const ATTACK: &str = "[[attack]]\nname = \"pgd\"\nkind = \"pgd\"\neps = 0.1\n";

    #[test]
    fn built_methods_take_the_parsers_defaults_and_refuse_unknown_ones() {
        // An 8×8 window strides by 4 whether the parser or `build` fills it in.
        let parsed =
            plan("[[attribution]]\nname = \"o\"\nmethod = \"occlusion\"\nwindow = 8\n").unwrap();
        assert_eq!(parsed.attributions[0].stride, Some([4, 4]));
        let mut bare = parsed.attributions[0].clone();
        bare.stride = None;
        assert!(bare.build((28, 28)).is_ok());
        assert_eq!(default_occlusion_stride([8, 8]), [4, 4]);
        assert_eq!(default_occlusion_stride([1, 3]), [1, 1]);
        bare.method = "gradcam".into();
        let e = bare
            .build((28, 28))
            .err()
            .expect("an unknown method is refused")
            .to_string();
        assert!(
            e.contains("unknown method \"gradcam\"") && e.contains("grad_cam"),
            "{e}"
        );
    }

    #[test]
    fn defaults_are_resolved() {
        let p = plan(&format!(
            "{ATTACK}[[attribution]]\nname = \"ig\"\nmethod = \"integrated_gradients\"\non = \"all\"\n"
        ))
        .unwrap();
        let a = &p.attributions[0];
        assert_eq!(a.steps, Some(50));
        assert_eq!(a.integration.as_deref(), Some("gausslegendre"));
        assert_eq!(a.baseline.as_deref(), Some("zero"));
        assert_eq!(a.on, ["pgd"]);
        assert_eq!(a.target, AttributionTarget::Rule(TargetRule::Predicted));
        assert_eq!(a.metrics, DEFAULT_METRICS);
        assert_eq!(a.curve_steps, Some(20));
        assert_eq!(a.sensitivity_samples, None);
        let p = plan(
            "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\nmetrics = [\"sensitivity\"]\ntarget = 3\n",
        )
        .unwrap();
        assert!(p.attacks.is_empty(), "attributions alone make a plan");
        let a = &p.attributions[0];
        assert_eq!(
            (a.sensitivity_samples, a.sensitivity_radius),
            (Some(10), None)
        );
        assert_eq!(a.target, AttributionTarget::Class(3));
        assert_eq!(a.curve_steps, None);
    }

    #[test]
    fn errors_name_the_file_entry_and_key() {
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"lime\"\n");
        assert!(
            e.contains("p.toml")
                && e.contains("attribution[0] \"x\"")
                && e.contains("`method`")
                && e.contains("lime"),
            "{e}"
        );
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\nsteps = 5\n");
        assert!(
            e.contains("`steps`") && e.contains("not a known key"),
            "{e}"
        );
        let e = err(&format!(
            "{ATTACK}[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\non = [\"fgsm\"]\n"
        ));
        assert!(
            e.contains("`on`") && e.contains("\"fgsm\"") && e.contains("pgd"),
            "{e}"
        );
        let e =
            err("[[attribution]]\nname = \"x\"\nmethod = \"integrated_gradients\"\nsteps = 0\n");
        assert!(e.contains("`steps`") && e.contains("at least 1"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"integrated_gradients\"\nintegration = \"riemann_left\"\nsteps = 1\n");
        assert!(e.contains("`steps`") && e.contains("at least 2"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"integrated_gradients\"\nintegration = \"simpson\"\n");
        assert!(e.contains("`integration`") && e.contains("simpson"), "{e}");
        let e = err(
            "[[attribution]]\nname = \"x\"\nmethod = \"integrated_gradients\"\nblur_sigma = 2.0\n",
        );
        assert!(
            e.contains("`blur_sigma`") && e.contains("does not apply"),
            "{e}"
        );
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"smoothgrad\"\nstdev = -1\n");
        assert!(e.contains("`stdev`") && e.contains("-1"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"smoothgrad\"\nstdev = nan\n");
        assert!(e.contains("`stdev`") && e.contains("finite"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"occlusion\"\nwindow = [2, 0]\n");
        assert!(e.contains("`window`"), "{e}");
        let e =
            err("[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\nmetrics = [\"fidelity\"]\n");
        assert!(e.contains("`metrics`") && e.contains("fidelity"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\ntarget = \"top\"\n");
        assert!(e.contains("`target`"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\n[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\n");
        assert!(e.contains("attribution[1]") && e.contains("twice"), "{e}");
        let e = err("[[attribution]]\nname = \"a/b\"\nmethod = \"saliency\"\n");
        assert!(e.contains("`name`") && e.contains("slashes"), "{e}");
        let e = err("[[attribution]]\nmethod = \"saliency\"\n");
        assert!(e.contains("`name`") && e.contains("missing"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\nmetrics_on = \"adv\"\n");
        assert!(e.contains("`metrics_on`") && e.contains("adv"), "{e}");
        let e = err(
            "[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\nmetrics = []\ncurve_steps = 3\n",
        );
        assert!(e.contains("`curve_steps`") && e.contains("deletion"), "{e}");
        let e = err("attribution = 3\n");
        assert!(e.contains("[[attribution]]"), "{e}");
        let e = err("seed = 1\n");
        assert!(e.contains("no entries"), "{e}");
    }

    #[test]
    fn model_dependent_settings_are_checked() {
        let spec = crate::model::load_model(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist_cnn.safetensors"),
            None,
        )
        .unwrap()
        .network
        .spec()
        .clone();
        let mut p = plan("[[attribution]]\nname = \"g\"\nmethod = \"grad_cam\"\n").unwrap();
        check_against(&mut p.attributions, &spec, "p.toml").unwrap();
        assert_eq!(p.attributions[0].layer.as_deref(), Some("3"));
        let mut p =
            plan("[[attribution]]\nname = \"g\"\nmethod = \"grad_cam\"\nlayer = \"12\"\n").unwrap();
        let e = check_against(&mut p.attributions, &spec, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.toml")
                && e.contains("attribution[0] \"g\"")
                && e.contains("`layer`")
                && e.contains("\"12\""),
            "{e}"
        );
        let mut p =
            plan("[[attribution]]\nname = \"g\"\nmethod = \"grad_cam\"\nlayer = \"7\"\n").unwrap();
        let e = check_against(&mut p.attributions, &spec, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a [C, H, W] feature map"), "{e}");
        let mut p =
            plan("[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\ntarget = 10\n").unwrap();
        let e = check_against(&mut p.attributions, &spec, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`target`") && e.contains("class 10"), "{e}");
        let mut p =
            plan("[[attribution]]\nname = \"o\"\nmethod = \"occlusion\"\nwindow = 30\n").unwrap();
        let e = check_against(&mut p.attributions, &spec, "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`window`") && e.contains("28×28"), "{e}");
    }

    #[test]
    fn grad_cam_defaults_to_the_last_conv_even_inside_residual_blocks() {
        let spec = crate::model::load_model(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/tiny_all_ops.safetensors"),
            None,
        )
        .unwrap()
        .network
        .spec()
        .clone();
        let mut p = plan("[[attribution]]\nname = \"g\"\nmethod = \"grad_cam\"\n").unwrap();
        check_against(&mut p.attributions, &spec, "p.toml").unwrap();
        assert_eq!(p.attributions[0].layer.as_deref(), Some("6.body.3"));
    }
}
