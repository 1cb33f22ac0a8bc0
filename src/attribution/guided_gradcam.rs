//! Guided Grad-CAM (Selvaraju et al. 2017), as Captum's `GuidedGradCam`:
//! the Guided Backpropagation map ([`super::guided_backprop`]) times the
//! layer's Grad-CAM map (with ReLU, Captum's `relu_attributions=True`)
//! upsampled to the input — by nearest neighbour by default, Captum's
//! `interpolate_mode` — and broadcast over the channels.
//!
//! Plan keys ([`GuidedGradCamConfig`]): `layer` (as `grad_cam`'s: the last
//! conv2d layer by default), `upsample`.

use serde::{Deserialize, Serialize};

use super::gradcam::{GradCam, GradCamConfig, Upsample};
use super::guided_backprop::GuidedBackprop;
use super::{check_batch, Attribution, ExplainBatch, Explanation, MethodSettings, SettingError};
use crate::entry::Entry;
use crate::error::Result;
use crate::model::{ArchSpec, Classifier};

/// Resizing rule by default: nearest (Captum's `interpolate_mode`).
pub const DEFAULT_UPSAMPLE: Upsample = Upsample::Nearest;

/// The `guided_grad_cam` method's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct GuidedGradCamConfig {
    /// The Grad-CAM layer's position in the spec, as `inspect` lists it.
    /// Unset in a plan: the last conv2d layer, filled in when the plan is
    /// resolved against the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "the last conv2d layer"}}))]
    pub layer: Option<String>,
    /// `nearest` (default, Captum's) or `bilinear`.
    pub upsample: Upsample,
}

impl Default for GuidedGradCamConfig {
    fn default() -> Self {
        GuidedGradCamConfig {
            layer: None,
            upsample: DEFAULT_UPSAMPLE,
        }
    }
}

impl GuidedGradCamConfig {
    fn grad_cam(&self) -> GradCamConfig {
        GradCamConfig {
            layer: self.layer.clone(),
            relu: true,
            upsample: self.upsample,
        }
    }
}

impl MethodSettings for GuidedGradCamConfig {
    type Method = GuidedGradCam;

    fn from_entry(e: &mut Entry) -> Self {
        GuidedGradCamConfig {
            layer: e.string("layer"),
            upsample: e
                .choice("upsample", Upsample::CHOICES)
                .unwrap_or(DEFAULT_UPSAMPLE),
        }
    }

    /// As `grad_cam`'s: the layer must exist and output a feature map.
    fn resolve(&mut self, model: &ArchSpec) -> std::result::Result<(), SettingError> {
        let mut cam = self.grad_cam();
        cam.resolve(model)?;
        self.layer = cam.layer;
        Ok(())
    }

    fn build(&self, input_hw: (usize, usize)) -> GuidedGradCam {
        GuidedGradCam {
            grad_cam: self.grad_cam().build(input_hw),
        }
    }
}

/// Guided Backpropagation times Grad-CAM.
#[derive(Debug, Clone, PartialEq)]
pub struct GuidedGradCam {
    /// The Grad-CAM half (ReLU on).
    pub grad_cam: GradCam,
}

impl Attribution for GuidedGradCam {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        check_batch(model, batch)?;
        let cam = self.grad_cam.explain(model, batch)?.maps;
        let guided = GuidedBackprop.explain(model, batch)?.maps;
        Ok(Explanation::maps((guided * cam)?))
    }

    fn model_calls(&self) -> usize {
        2
    }
}
