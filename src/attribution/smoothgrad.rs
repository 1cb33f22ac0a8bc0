//! SmoothGrad (Smilkov et al. 2017) with Captum `NoiseTunnel` semantics over
//! saliency: the mean of the gradient maps at `samples` noisy copies
//! `x + N(0, stdev²)` of each input (`smoothgrad`), or the mean of their
//! squares (`smoothgrad_sq`). `stdev` is absolute, in input units, as Captum's
//! `stdevs`; noisy copies are not clipped to the valid range (Captum does not
//! clip either). The noise is drawn per input from its own seeded generator,
//! sample by sample, and can be kept so another implementation can be fed
//! exactly the same noise.
//!
//! Plan keys ([`SmoothGradConfig`]): `samples`, `stdev`, `nt_type`, `abs`,
//! `keep_noise`.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::{
    check_batch, logit_gradient, tensor4, Attribution, ExplainBatch, Explanation, MethodSettings,
    Purpose, SettingError, MAX_GRAD_ROWS,
};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::{ArchSpec, Classifier};

/// Noisy samples per input (Captum's `nt_samples`).
pub const DEFAULT_SAMPLES: usize = 10;

/// The noise level as a share of the model's range width (Smilkov et al.
/// 2017: σ / (x_max − x_min) = 15%, so 0.15 on `[0, 1]`).
pub const DEFAULT_STDEV_FRACTION: f64 = 0.15;

/// How the sample maps are combined by default.
pub const DEFAULT_NT_TYPE: NoiseTunnelType = NoiseTunnelType::SmoothGrad;

/// Absolute gradients per sample by default: no.
pub const DEFAULT_ABS: bool = false;

/// Keep the noise in the sidecar by default: no.
pub const DEFAULT_KEEP_NOISE: bool = false;

/// Captum's `nt_type`s this build implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoiseTunnelType {
    /// Mean of the sample maps (`smoothgrad`).
    #[serde(rename = "smoothgrad")]
    SmoothGrad,
    /// Mean of the squared sample maps (`smoothgrad_sq`).
    #[serde(rename = "smoothgrad_sq")]
    SmoothGradSq,
}

impl NoiseTunnelType {
    /// Captum's names, as written in plans (and serialized).
    pub const CHOICES: &'static [(&'static str, NoiseTunnelType)] = &[
        ("smoothgrad", NoiseTunnelType::SmoothGrad),
        ("smoothgrad_sq", NoiseTunnelType::SmoothGradSq),
    ];
}

/// The `smoothgrad` method's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct SmoothGradConfig {
    /// Noisy samples per input (Captum's `nt_samples`; default 10).
    #[schemars(range(min = 1))]
    pub samples: usize,
    /// Noise standard deviation in input units (Captum's `stdevs`). Unset
    /// in a plan: 15% of the model's range width (0.15 on `[0, 1]`),
    /// filled in when the plan is resolved against the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "15% of the range's width (0.15 on [0, 1])"}}))]
    pub stdev: Option<f64>,
    /// `smoothgrad` (default) or `smoothgrad_sq`.
    pub nt_type: NoiseTunnelType,
    /// Absolute gradients per sample (Captum's `Saliency` default; default
    /// `false`).
    pub abs: bool,
    /// Store the noise in the sidecar (`noise/<name>/clean`), so another
    /// implementation can replay it (default `false`).
    pub keep_noise: bool,
}

impl Default for SmoothGradConfig {
    fn default() -> Self {
        SmoothGradConfig {
            samples: DEFAULT_SAMPLES,
            stdev: None,
            nt_type: DEFAULT_NT_TYPE,
            abs: DEFAULT_ABS,
            keep_noise: DEFAULT_KEEP_NOISE,
        }
    }
}

impl MethodSettings for SmoothGradConfig {
    type Method = SmoothGrad;

    fn from_entry(e: &mut Entry) -> Self {
        SmoothGradConfig {
            samples: e.positive_int("samples").unwrap_or(DEFAULT_SAMPLES),
            stdev: e.nonneg_float("stdev"),
            nt_type: e
                .choice("nt_type", NoiseTunnelType::CHOICES)
                .unwrap_or(DEFAULT_NT_TYPE),
            abs: e.boolean("abs").unwrap_or(DEFAULT_ABS),
            keep_noise: e.boolean("keep_noise").unwrap_or(DEFAULT_KEEP_NOISE),
        }
    }

    /// An unset `stdev` follows the model's range.
    fn resolve(&mut self, model: &ArchSpec) -> std::result::Result<(), SettingError> {
        let [lo, hi] = model.input.range;
        self.stdev
            .get_or_insert(DEFAULT_STDEV_FRACTION * (hi - lo) as f64);
        Ok(())
    }

    /// An unresolved `stdev` is [`DEFAULT_STDEV_FRACTION`] in input units
    /// (its value on `[0, 1]` models).
    fn build(&self, _input_hw: (usize, usize)) -> SmoothGrad {
        SmoothGrad {
            samples: self.samples,
            stdev: self.stdev.unwrap_or(DEFAULT_STDEV_FRACTION) as f32,
            kind: self.nt_type,
            abs: self.abs,
            keep_noise: self.keep_noise,
        }
    }
}

/// SmoothGrad over saliency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmoothGrad {
    /// Noisy copies per input (Captum's `nt_samples`).
    pub samples: usize,
    /// Noise standard deviation in input units (Captum's `stdevs`).
    pub stdev: f32,
    /// How the sample maps are combined.
    pub kind: NoiseTunnelType,
    /// Absolute gradients per sample (Captum's `Saliency` default).
    pub abs: bool,
    /// Return the noise used (`[N, samples, C, H, W]`).
    pub keep_noise: bool,
}

impl SmoothGrad {
    /// The maps for the batch with the given `noise` (`[N, samples, C, H, W]`
    /// row-major, already scaled by the standard deviation): what
    /// [`Attribution::explain`] computes after drawing it, public so that
    /// noise drawn elsewhere (Captum's, in the tests) can be replayed.
    pub fn smooth(
        &self,
        model: &dyn Classifier,
        batch: &ExplainBatch,
        noise: &[f32],
    ) -> Result<Tensor> {
        let shape = check_batch(model, batch)?;
        let [n, c, h, w] = shape;
        let per = c * h * w;
        let s = self.samples.max(1);
        if noise.len() != n * s * per {
            return Err(Error::Invalid(format!(
                "smoothgrad: {} noise values for {n} inputs × {s} samples × {per}",
                noise.len()
            )));
        }
        let x: Vec<f32> = batch.x.flatten_all()?.to_vec1()?;
        // Rows are (input, sample) pairs in that order, as Captum's
        // `repeat_interleave`; calls take whole inputs.
        let inputs_per_call = (MAX_GRAD_ROWS / s).max(1);
        let mut sum = vec![0f32; n * per];
        for first in (0..n).step_by(inputs_per_call) {
            let count = inputs_per_call.min(n - first);
            let mut rows = Vec::with_capacity(count * s * per);
            let mut classes = Vec::with_capacity(count * s);
            for i in first..first + count {
                for k in 0..s {
                    let eps = &noise[(i * s + k) * per..(i * s + k + 1) * per];
                    rows.extend(
                        x[i * per..(i + 1) * per]
                            .iter()
                            .zip(eps)
                            .map(|(a, e)| a + e),
                    );
                    classes.push(batch.classes[i]);
                }
            }
            let grad: Vec<f32> =
                logit_gradient(model, &tensor4(rows, [count * s, c, h, w])?, &classes)?
                    .grad
                    .flatten_all()?
                    .to_vec1()?;
            for (r, g) in grad.chunks(per).enumerate() {
                let i = first + r / s;
                let acc = &mut sum[i * per..(i + 1) * per];
                for (a, &v) in acc.iter_mut().zip(g) {
                    let v = if self.abs { v.abs() } else { v };
                    *a += match self.kind {
                        NoiseTunnelType::SmoothGrad => v,
                        NoiseTunnelType::SmoothGradSq => v * v,
                    };
                }
            }
        }
        let maps: Vec<f32> = sum.iter().map(|v| v / s as f32).collect();
        tensor4(maps, shape)
    }
}

impl Attribution for SmoothGrad {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        let [n, c, h, w] = check_batch(model, batch)?;
        let per = c * h * w;
        let s = self.samples.max(1);
        // Noise per input, sample-major: noise[(i·S + s)·per + j].
        let mut noise = Vec::with_capacity(n * s * per);
        for i in 0..n {
            let mut rng = batch.rng(i, Purpose::Noise);
            for _ in 0..s * per {
                noise.push(self.stdev * rng.normal());
            }
        }
        Ok(Explanation {
            maps: self.smooth(model, batch, &noise)?,
            convergence_delta: None,
            noise: self.keep_noise.then_some(noise),
        })
    }

    fn model_calls(&self) -> usize {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::attribution::test_models::linear;

    fn run(sg: SmoothGrad, first_index: usize, x: &Tensor, classes: &[u32]) -> Explanation {
        let net = linear(
            2,
            2,
            &[1.0, -2.0, 0.5, 0.0, 0.3, 0.3, 0.3, 0.3],
            &[0.0, 0.0],
        );
        sg.explain(
            &net,
            &ExplainBatch {
                x,
                classes,
                first_index,
                seed: 9,
                stream: 0,
            },
        )
        .unwrap()
    }

    #[test]
    fn on_a_linear_model_smoothgrad_is_the_gradient_and_sq_its_square() {
        let x = Tensor::from_slice(&[0.1f32, 0.2, 0.3, 0.4], (1, 1, 2, 2), &Device::Cpu).unwrap();
        let mut sg = SmoothGrad {
            samples: 4,
            stdev: 0.5,
            kind: NoiseTunnelType::SmoothGrad,
            abs: false,
            keep_noise: true,
        };
        let out = run(sg, 0, &x, &[0]);
        let m: Vec<f32> = out.maps.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(m, [1.0, -2.0, 0.5, 0.0]);
        let noise = out.noise.unwrap();
        assert_eq!(noise.len(), 16);
        assert!(noise.iter().any(|&e| e.abs() > 0.05), "noise was drawn");
        sg.kind = NoiseTunnelType::SmoothGradSq;
        let m: Vec<f32> = run(sg, 0, &x, &[0])
            .maps
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(m, [1.0, 4.0, 0.25, 0.0]);
    }

    #[test]
    fn noise_depends_on_the_input_position_not_the_batch() {
        let sg = SmoothGrad {
            samples: 3,
            stdev: 0.2,
            kind: NoiseTunnelType::SmoothGrad,
            abs: false,
            keep_noise: true,
        };
        let xs = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
        let both = Tensor::from_slice(&xs, (2, 1, 2, 2), &Device::Cpu).unwrap();
        let second = Tensor::from_slice(&xs[4..], (1, 1, 2, 2), &Device::Cpu).unwrap();
        let a = run(sg, 10, &both, &[0, 1]).noise.unwrap();
        let b = run(sg, 11, &second, &[1]).noise.unwrap();
        assert_eq!(a[12..], b[..]);
        assert_ne!(a[..12], b[..]);
    }
}
