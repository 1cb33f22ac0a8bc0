//! Attributions: per input, which pixels a prediction rests on. One file per
//! method (saliency, input × gradient, Integrated Gradients, SmoothGrad,
//! occlusion, Grad-CAM, Guided Backpropagation, Guided Grad-CAM, DeepLIFT,
//! DeepLIFT SHAP, GradientSHAP, KernelSHAP, LIME, LRP), all batched over a [`Classifier`]'s logits and
//! following Captum's definitions so users can cross-check; [`surrogate`]
//! holds what KernelSHAP and LIME share (segments, perturbed scores, the
//! linear fits); [`sanity`] the model-randomization sanity checks; `metrics` holds
//! the quality measures (completeness, deletion/insertion, max-sensitivity,
//! sparseness) and the clean-versus-adversarial comparisons, [`road`] and
//! [`faithfulness`] the faithfulness metrics ROAD, infidelity and
//! faithfulness correlation; [`spec`] holds
//! a plan entry's settings, `run`, `report` and `images` plug them into an
//! audit; [`crate::bench::attributions`] times them.
//!
//! Each method's file also holds its settings (`SaliencyConfig`, …: the
//! plan keys, their defaults, reading them from an [`Entry`] and building
//! the method), and [`MethodConfig`] lists the methods once. Adding a method
//! is its own file plus one line in the `methods!` list below.
//!
//! Every method explains the score of one class per input (Captum's
//! `target`): its logit, or for a one-output model its log-odds
//! ([`Classifier::class_score`]); it returns a map shaped like the input, and draws any random
//! numbers from per-input generators keyed by the seed, the plan entry and the
//! input's position, so maps never depend on the batch size.

pub mod deeplift;
pub mod deeplift_shap;
pub mod faithfulness;
pub mod gradcam;
pub mod gradient_shap;
pub mod guided_backprop;
pub mod guided_gradcam;
pub mod images;
pub mod input_x_gradient;
pub mod integrated_gradients;
pub mod kernel_shap;
pub mod lime;
pub mod lrp;
pub mod metrics;
pub mod occlusion;
pub mod quadrature;
pub mod report;
pub mod road;
pub mod run;
pub mod saliency;
pub mod sanity;
pub mod smoothgrad;
pub mod spec;
pub mod surrogate;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use toml::Value;

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::{ArchSpec, Classifier, InputGradient, Objective};
use crate::rng::Rng;

pub use spec::{AttributionSpec, AttributionTarget, Metric, MetricsOn, TargetRule};

/// What every method's settings provide; [`MethodConfig`] dispatches to it.
pub trait MethodSettings: Sized {
    /// The runnable method.
    type Method: Attribution + 'static;

    /// Reads the method's keys from a plan entry, unset ones at their
    /// defaults; a bad value is recorded in the entry (and its default
    /// returned).
    fn from_entry(e: &mut Entry) -> Self;

    /// Completes and checks the settings that depend on the model (its
    /// range, input size, layers), before any work starts.
    fn resolve(&mut self, _model: &ArchSpec) -> std::result::Result<(), SettingError> {
        Ok(())
    }

    /// The runnable method for inputs of `input_hw` (height, width).
    fn build(&self, input_hw: (usize, usize)) -> Self::Method;
}

/// A setting that does not fit the model: its plan key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The plan key.
    pub key: &'static str,
    /// What is wrong, to follow the key in a message.
    pub message: String,
}

/// Writes [`MethodConfig`], [`METHODS`] and their dispatch from one line per
/// method: `Variant(Config) = "name"` (the name is the plan's `method`).
macro_rules! methods {
    ($($(#[$doc:meta])* $variant:ident($config:ty) = $name:literal,)*) => {
        /// One method and its settings, tagged by `method` as in plans.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(tag = "method")]
        pub enum MethodConfig {
            $($(#[$doc])* #[serde(rename = $name)] $variant($config),)*
        }

        /// The methods this build knows, as written in plans.
        pub const METHODS: &[&str] = &[$($name),*];

        impl MethodConfig {
            /// The method's name, as written in plans.
            pub fn name(&self) -> &'static str {
                match self {
                    $(MethodConfig::$variant(_) => $name,)*
                }
            }

            /// Reads `method` and that method's keys; `None` (with the
            /// error recorded) when `method` is missing or unknown.
            pub fn from_entry(e: &mut Entry) -> Option<Self> {
                let method = e.kind("method", METHODS)?;
                $(if method == $name {
                    return Some(MethodConfig::$variant(<$config>::from_entry(e)));
                })*
                None
            }

            /// See [`MethodSettings::resolve`].
            pub fn resolve(&mut self, model: &ArchSpec) -> std::result::Result<(), SettingError> {
                match self {
                    $(MethodConfig::$variant(c) => c.resolve(model),)*
                }
            }

            /// The runnable method for inputs of `input_hw` (height, width).
            pub fn build(&self, input_hw: (usize, usize)) -> Box<dyn Attribution> {
                match self {
                    $(MethodConfig::$variant(c) => Box::new(c.build(input_hw)),)*
                }
            }
        }
    };
}

methods! {
    /// Saliency (Simonyan et al. 2014): the gradient of the explained logit.
    Saliency(saliency::SaliencyConfig) = "saliency",
    /// Input × gradient (Shrikumar et al. 2016).
    InputXGradient(input_x_gradient::InputXGradientConfig) = "input_x_gradient",
    /// Integrated Gradients (Sundararajan et al. 2017): gradients integrated
    /// along the path from a baseline, times the input's difference from it.
    IntegratedGradients(integrated_gradients::IntegratedGradientsConfig) = "integrated_gradients",
    /// SmoothGrad (Smilkov et al. 2017): saliency averaged over noisy copies
    /// of the input.
    SmoothGrad(smoothgrad::SmoothGradConfig) = "smoothgrad",
    /// Occlusion (Zeiler & Fergus 2014): the logit's drop as a sliding
    /// window blanks the input.
    Occlusion(occlusion::OcclusionConfig) = "occlusion",
    /// Grad-CAM (Selvaraju et al. 2017): a layer's activations weighted by
    /// their pooled gradients, upsampled to the input.
    GradCam(gradcam::GradCamConfig) = "grad_cam",
    /// Guided Backpropagation (Springenberg et al. 2015): the gradient with
    /// only positive gradients passed back through active ReLUs.
    GuidedBackprop(guided_backprop::GuidedBackpropConfig) = "guided_backprop",
    /// Guided Grad-CAM (Selvaraju et al. 2017): Guided Backpropagation times
    /// the upsampled Grad-CAM map.
    GuidedGradCam(guided_gradcam::GuidedGradCamConfig) = "guided_grad_cam",
    /// DeepLIFT (Shrikumar et al. 2017, rescale rule): multipliers
    /// backpropagated with each nonlinearity's secant slope to a baseline,
    /// times the input's difference from it.
    DeepLift(deeplift::DeepLiftConfig) = "deeplift",
    /// DeepLIFT SHAP (Lundberg & Lee 2017; Captum's `DeepLiftShap`):
    /// DeepLIFT against each baseline of a distribution, averaged.
    DeepLiftShap(deeplift_shap::DeepLiftShapConfig) = "deeplift_shap",
    /// GradientSHAP (Lundberg & Lee 2017; Captum's `GradientShap`): the
    /// gradient at random points between baselines and the noisy input,
    /// times the input's difference from the baseline, averaged.
    GradientShap(gradient_shap::GradientShapConfig) = "gradient_shap",
    /// KernelSHAP (Lundberg & Lee 2017; Captum's `KernelShap`): Shapley
    /// values of the input's segments by a weighted linear fit.
    KernelShap(kernel_shap::KernelShapConfig) = "kernel_shap",
    /// LIME (Ribeiro et al. 2016; Captum's `Lime`): a sparse linear model of
    /// the score over the input's segments, fitted near the input.
    Lime(lime::LimeConfig) = "lime",
    /// Layer-wise Relevance Propagation (Bach et al. 2015), Zennit's rules
    /// and composites: the class score redistributed layer by layer.
    Lrp(lrp::LrpConfig) = "lrp",
}

/// Rows (inputs × steps or samples) per gradient call when a method expands
/// a batch: bounds memory (autograd keeps every activation of every row), at
/// twice the default batch so a batch of 100 takes two IG steps per call.
/// Results do not depend on it.
pub const MAX_GRAD_ROWS: usize = 200;

/// Rows per forward-only call (deletion/insertion and ROAD curves,
/// infidelity, faithfulness correlation, occlusion), which
/// keep no graph.
pub const MAX_FORWARD_ROWS: usize = 500;

/// A pixel value a plan sets for removed or occluded pixels (occlusion's
/// `baseline_value`, deletion/insertion's `curve_baseline`): a number in input
/// units, as Captum takes it, or `"black"`, the low end of the model's
/// declared range, which is the same colour whatever the range (0 is black
/// on `[0, 1]` and `[0, 255]` models but mid-grey on `[-1, 1]` ones).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Fill {
    /// This value, in input units.
    Value(f64),
    /// A colour that follows the model's range.
    Named(NamedFill),
}

/// Colours a [`Fill`] can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NamedFill {
    /// The low end of the model's range.
    Black,
}

impl Fill {
    /// Reads `key` of a plan entry: a number in input units, `"zero"` (0)
    /// or `"black"`; `None` when unset or wrong (recorded in the entry).
    pub fn from_entry(e: &mut Entry, key: &str) -> Option<Fill> {
        match e.take(key)? {
            Value::String(s) => match s.as_str() {
                "black" => Some(Fill::Named(NamedFill::Black)),
                "zero" => Some(Fill::Value(0.0)),
                other => {
                    e.fail(
                        key,
                        format!("\"{other}\" is not a number, \"zero\" or \"black\""),
                    );
                    None
                }
            },
            Value::Float(f) if !f.is_finite() => {
                e.fail(key, format!("must be finite, found {f}"));
                None
            }
            Value::Float(f) => Some(Fill::Value(f)),
            Value::Integer(i) => Some(Fill::Value(i as f64)),
            other => {
                e.fail(key, format!("must be a number, found {}", other.type_str()));
                None
            }
        }
    }

    /// The value in the units of a model whose valid range is `range`.
    pub fn resolve(self, range: (f32, f32)) -> f32 {
        match self {
            Fill::Value(v) => v as f32,
            Fill::Named(NamedFill::Black) => range.0,
        }
    }
}

/// What a per-input generator is used for, so the streams never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// SmoothGrad's noise.
    Noise = 0,
    /// Integrated Gradients' random baseline.
    Baseline = 1,
    /// Max-sensitivity's input perturbations.
    Sensitivity = 2,
    /// The sanity checks' random other class.
    RandomLogit = 3,
    /// LIME's and KernelSHAP's on/off samples of the segments.
    Perturbation = 4,
    /// Infidelity's Gaussian perturbations.
    Infidelity = 5,
    /// ROAD's imputation noise.
    Road = 6,
    /// Faithfulness correlation's random pixel subsets.
    Correlation = 7,
}

/// One batch to explain.
pub struct ExplainBatch<'a> {
    /// Inputs `[N, C, H, W]` in the model's range.
    pub x: &'a Tensor,
    /// The class whose score is explained, per input.
    pub classes: &'a [u32],
    /// Index of the first input in the whole dataset.
    pub first_index: usize,
    /// The audit's seed.
    pub seed: u64,
    /// The plan entry's stream (see [`entry_stream`]).
    pub stream: u64,
}

impl ExplainBatch<'_> {
    /// Inputs in the batch.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The generator of input `i` for `purpose`: depends only on the seed, the
    /// entry, the purpose and the input's position in the dataset.
    pub fn rng(&self, i: usize, purpose: Purpose) -> Rng {
        Rng::for_item(
            self.seed,
            self.stream + purpose as u64,
            (self.first_index + i) as u64,
        )
    }
}

/// The stream of plan entry `index`: far from the attacks' (their plan
/// positions), a few apart per entry for the [`Purpose`]s.
pub fn entry_stream(index: usize) -> u64 {
    0x6174_7472_0000 + 8 * index as u64
}

/// A method's output for a batch.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// Attributions `[N, C, H, W]`, shaped like the input.
    pub maps: Tensor,
    /// Integrated Gradients' convergence delta per input.
    pub convergence_delta: Option<Vec<f64>>,
    /// SmoothGrad's noise `[N, samples, C, H, W]`, when asked to keep it.
    pub noise: Option<Vec<f32>>,
}

impl Explanation {
    /// Just maps.
    pub fn maps(maps: Tensor) -> Self {
        Explanation {
            maps,
            convergence_delta: None,
            noise: None,
        }
    }
}

/// An attribution method.
pub trait Attribution: Send + Sync {
    /// Attributions for `batch`, shaped like its inputs.
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation>;
    /// Model calls per input: gradient evaluations (or forward passes for
    /// occlusion), for cost accounting.
    fn model_calls(&self) -> usize;
}

/// Logits and the gradient of each input's score of `classes[i]`: its
/// logit, or a one-output model's log-odds ([`Classifier::class_score`]).
pub fn logit_gradient(
    model: &dyn Classifier,
    x: &Tensor,
    classes: &[u32],
) -> Result<InputGradient> {
    model.input_grad(x, Objective::ClassScore(classes))
}

/// `[N, C, H, W]` tensor from row-major values.
pub fn tensor4(values: Vec<f32>, shape: [usize; 4]) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        values,
        (shape[0], shape[1], shape[2], shape[3]),
        &Device::Cpu,
    )?)
}

/// Each of `classes` repeated `times` times in a row, in blocks: the class
/// list of `times` stacked copies of a batch (`[c0, c1, ..., c0, c1, ...]`).
pub fn tile_classes(classes: &[u32], times: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(classes.len() * times);
    for _ in 0..times {
        out.extend_from_slice(classes);
    }
    out
}

/// Checks a batch against the model before any work.
pub fn check_batch(model: &dyn Classifier, batch: &ExplainBatch) -> Result<[usize; 4]> {
    let dims = batch.x.dims();
    let [c, h, w] = model.input_shape();
    let n = match dims {
        [n, xc, xh, xw] if [*xc, *xh, *xw] == [c, h, w] => *n,
        _ => {
            return Err(Error::Invalid(format!(
                "attribution inputs must be [N, {c}, {h}, {w}], got {dims:?}"
            )))
        }
    };
    if batch.classes.len() != n {
        return Err(Error::Invalid(format!(
            "{} target classes for a batch of {n}",
            batch.classes.len()
        )));
    }
    let k = model.num_classes();
    if let Some(&bad) = batch.classes.iter().find(|&&t| t as usize >= k) {
        return Err(Error::Invalid(format!(
            "target class {bad} outside the model's {k} classes"
        )));
    }
    Ok([n, c, h, w])
}

/// The score [`logit_gradient`] differentiates, of `classes[i]` for each row
/// of `logits` (`[N, K]`): the logit, or a one-output model's log-odds.
pub fn class_scores(model: &dyn Classifier, logits: &Tensor, classes: &[u32]) -> Result<Vec<f32>> {
    let rows: Vec<Vec<f32>> = logits.to_vec2()?;
    Ok(rows
        .iter()
        .zip(classes)
        .map(|(r, &c)| model.class_score(r, c))
        .collect())
}

#[cfg(test)]
pub(crate) mod test_models {
    //! Tiny models with known attributions, for the methods' unit tests.
    use std::collections::HashMap;

    use candle_core::{Device, Tensor};

    use crate::model::{ArchSpec, Network};

    /// A linear model on 1×`h`×`w` inputs with `k` classes: logits = W x + b.
    pub fn linear(h: usize, w: usize, weights: &[f32], bias: &[f32]) -> Network {
        let k = bias.len();
        let spec = format!(
            r#"{{"version": 1, "input": {{"shape": [1, {h}, {w}]}},
                "layers": [{{"op": "flatten"}},
                           {{"op": "linear", "param": "fc", "in_features": {}, "out_features": {k}}}]}}"#,
            h * w
        );
        let spec = ArchSpec::from_json(&spec, "test").unwrap();
        let mut t = HashMap::new();
        t.insert(
            "fc.weight".to_string(),
            Tensor::from_slice(weights, (k, h * w), &Device::Cpu).unwrap(),
        );
        t.insert(
            "fc.bias".to_string(),
            Tensor::from_slice(bias, k, &Device::Cpu).unwrap(),
        );
        Network::from_tensors(spec, &t).unwrap().0
    }

    /// 1×1×2 input → linear 2→3 (with bias) → `act` → linear 3→2.
    pub fn mlp(act: &str) -> Network {
        let spec = ArchSpec::from_json(
            &format!(
                r#"{{"version": 1, "input": {{"shape": [1, 1, 2]}}, "layers": [
                {{"op": "flatten"}},
                {{"op": "linear", "param": "a", "in_features": 2, "out_features": 3}},
                {{"op": "{act}"}},
                {{"op": "linear", "param": "b", "in_features": 3, "out_features": 2}}]}}"#
            ),
            "t",
        )
        .unwrap();
        let t = |v: &[f32], s: &[usize]| Tensor::from_vec(v.to_vec(), s, &Device::Cpu).unwrap();
        let tensors = HashMap::from([
            (
                "a.weight".to_string(),
                t(&[1.0, -2.0, 0.5, 1.5, -1.0, -0.5], &[3, 2]),
            ),
            ("a.bias".to_string(), t(&[0.1, -0.2, 0.3], &[3])),
            (
                "b.weight".to_string(),
                t(&[2.0, -1.0, 0.5, -1.5, 1.0, 2.5], &[2, 3]),
            ),
            ("b.bias".to_string(), t(&[0.05, -0.05], &[2])),
        ]);
        Network::from_tensors(spec, &tensors).unwrap().0
    }
}
