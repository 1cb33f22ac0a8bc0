//! Common corruptions of `[0, 1]` images at five severities, after MNIST-C
//! (Mu & Gilmer 2019) and ImageNet-C/CIFAR-10-C (Hendrycks & Dietterich
//! 2019): noise (Gaussian, shot, impulse), blur (Gaussian, motion), photometric
//! (brightness, contrast, fog-like low-frequency noise), geometric (shear,
//! scale, rotate, translate), stripe, pixelate and JPEG.
//!
//! Each corruption has a parameter per severity (severity 0 is the identity
//! and severities in between interpolate the table, so the family is
//! continuous at the clean image); lengths in pixels are for a 28-pixel image
//! and scale with `min(H, W) / 28`. A corruption's random draws depend only
//! on the seed, the corruption and the input's position, never on the
//! severity, so severities of one input share their noise and differ only in
//! its strength. Outputs are clipped to `[0, 1]`.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageFormat};
use serde::{Deserialize, Serialize};

use super::filters::{area_resize, gaussian_blur, nearest_resize, upsample_grid};
use super::types::{CorruptionSummary, CorruptionsSummary, SampleCorruptions};
use super::{Context, Outcome, Progress};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::stats::{argmax, mean};
use crate::transform::{rotate, translate, warp, Border, InverseAffine};

/// A corruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Corruption {
    /// Additive Gaussian noise.
    GaussianNoise,
    /// Poisson (photon) noise.
    ShotNoise,
    /// Salt-and-pepper noise.
    ImpulseNoise,
    /// Gaussian blur.
    GaussianBlur,
    /// Blur along a random direction.
    MotionBlur,
    /// Every pixel brighter.
    Brightness,
    /// Pixels pulled towards the image mean.
    Contrast,
    /// Horizontal shear with a random sign.
    Shear,
    /// Shrinking about the centre.
    Scale,
    /// Rotation with a random sign.
    Rotate,
    /// Translation in a random direction.
    Translate,
    /// A vertical band with inverted pixels.
    Stripe,
    /// Low-frequency additive noise, contrast reduced.
    Fog,
    /// Area downsampling then nearest upsampling.
    Pixelate,
    /// JPEG compression (8-bit, the `image` crate's encoder).
    Jpeg,
}

/// Parameter per severity 0..=5 (0 = identity).
type Table = [f64; 6];

const GAUSSIAN_SIGMA: Table = [0.0, 0.08, 0.12, 0.18, 0.26, 0.38];
/// `1/λ` of the Poisson rate `λ·x` (λ = ∞, 60, 25, 12, 5, 3).
const SHOT_INV_LAMBDA: Table = [
    0.0,
    1.0 / 60.0,
    1.0 / 25.0,
    1.0 / 12.0,
    1.0 / 5.0,
    1.0 / 3.0,
];
const IMPULSE_AMOUNT: Table = [0.0, 0.03, 0.06, 0.09, 0.17, 0.27];
const BLUR_SIGMA_PX: Table = [0.0, 0.5, 0.75, 1.0, 1.5, 2.0];
const MOTION_LENGTH_PX: Table = [0.0, 2.0, 3.0, 4.0, 6.0, 8.0];
const BRIGHTNESS_SHIFT: Table = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5];
const CONTRAST_FACTOR: Table = [1.0, 0.75, 0.5, 0.4, 0.3, 0.15];
const SHEAR_FACTOR: Table = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5];
const SCALE_FACTOR: Table = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5];
const ROTATE_DEG: Table = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0];
const TRANSLATE_PX: Table = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
const STRIPE_WIDTH_PX: Table = [0.0, 2.0, 3.0, 4.0, 6.0, 8.0];
const FOG_AMPLITUDE: Table = [0.0, 0.2, 0.35, 0.5, 0.7, 0.9];
const PIXELATE_FACTOR: Table = [1.0, 0.9, 0.75, 0.6, 0.5, 0.4];
const JPEG_QUALITY: Table = [100.0, 80.0, 60.0, 40.0, 25.0, 10.0];

impl Corruption {
    /// Every corruption, in report order.
    pub const ALL: [Corruption; 15] = [
        Corruption::GaussianNoise,
        Corruption::ShotNoise,
        Corruption::ImpulseNoise,
        Corruption::GaussianBlur,
        Corruption::MotionBlur,
        Corruption::Brightness,
        Corruption::Contrast,
        Corruption::Shear,
        Corruption::Scale,
        Corruption::Rotate,
        Corruption::Translate,
        Corruption::Stripe,
        Corruption::Fog,
        Corruption::Pixelate,
        Corruption::Jpeg,
    ];

    /// The name used in plans and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Corruption::GaussianNoise => "gaussian_noise",
            Corruption::ShotNoise => "shot_noise",
            Corruption::ImpulseNoise => "impulse_noise",
            Corruption::GaussianBlur => "gaussian_blur",
            Corruption::MotionBlur => "motion_blur",
            Corruption::Brightness => "brightness",
            Corruption::Contrast => "contrast",
            Corruption::Shear => "shear",
            Corruption::Scale => "scale",
            Corruption::Rotate => "rotate",
            Corruption::Translate => "translate",
            Corruption::Stripe => "stripe",
            Corruption::Fog => "fog",
            Corruption::Pixelate => "pixelate",
            Corruption::Jpeg => "jpeg",
        }
    }

    /// The parameter's name and its table.
    fn table(self) -> (&'static str, &'static Table) {
        match self {
            Corruption::GaussianNoise => ("sigma", &GAUSSIAN_SIGMA),
            Corruption::ShotNoise => ("inverse_lambda", &SHOT_INV_LAMBDA),
            Corruption::ImpulseNoise => ("amount", &IMPULSE_AMOUNT),
            Corruption::GaussianBlur => ("sigma_px", &BLUR_SIGMA_PX),
            Corruption::MotionBlur => ("length_px", &MOTION_LENGTH_PX),
            Corruption::Brightness => ("shift", &BRIGHTNESS_SHIFT),
            Corruption::Contrast => ("factor", &CONTRAST_FACTOR),
            Corruption::Shear => ("factor", &SHEAR_FACTOR),
            Corruption::Scale => ("factor", &SCALE_FACTOR),
            Corruption::Rotate => ("angle_deg", &ROTATE_DEG),
            Corruption::Translate => ("distance_px", &TRANSLATE_PX),
            Corruption::Stripe => ("width_px", &STRIPE_WIDTH_PX),
            Corruption::Fog => ("amplitude", &FOG_AMPLITUDE),
            Corruption::Pixelate => ("factor", &PIXELATE_FACTOR),
            Corruption::Jpeg => ("quality", &JPEG_QUALITY),
        }
    }

    /// The parameter's name (`sigma`, `quality`, …), for reports.
    pub fn parameter_name(self) -> &'static str {
        self.table().0
    }

    /// The parameter at `severity` in `[0, 5]`, interpolated linearly
    /// between whole severities (pixel lengths for a 28-pixel image).
    pub fn parameter(self, severity: f64) -> f64 {
        let t = self.table().1;
        let s = severity.clamp(0.0, 5.0);
        let lo = s.floor() as usize;
        let hi = (lo + 1).min(5);
        t[lo] + (s - lo as f64) * (t[hi] - t[lo])
    }

    /// Corrupts one `[C, H, W]` image in `[0, 1]` at `severity` in `[0, 5]`
    /// (0 returns it unchanged). `rng` must be the input's own generator,
    /// fresh for every severity, so that severities share their draws.
    pub fn apply(
        self,
        x: &[f32],
        shape: [usize; 3],
        severity: f64,
        rng: &mut Rng,
    ) -> Result<Vec<f32>> {
        let [c, h, w] = shape;
        if x.len() != c * h * w {
            return Err(Error::Invalid(format!(
                "image of {} values does not have shape {shape:?}",
                x.len()
            )));
        }
        if !(0.0..=5.0).contains(&severity) {
            return Err(Error::Invalid(format!(
                "severity {severity} outside [0, 5]"
            )));
        }
        if severity == 0.0 {
            return Ok(x.to_vec());
        }
        let p = self.parameter(severity);
        let px = h.min(w) as f64 / 28.0;
        let plane = h * w;
        let per_plane =
            |f: &dyn Fn(&[f32]) -> Vec<f32>| -> Vec<f32> { x.chunks(plane).flat_map(f).collect() };
        let out = match self {
            Corruption::GaussianNoise => x.iter().map(|&v| v + p as f32 * rng.normal()).collect(),
            Corruption::ShotNoise => {
                let lambda = 1.0 / p;
                x.iter()
                    .map(|&v| {
                        let k = poisson_quantile(lambda * v.max(0.0) as f64, rng.uniform_f64());
                        (k / lambda) as f32
                    })
                    .collect()
            }
            Corruption::ImpulseNoise => x
                .iter()
                .map(|&v| {
                    let (u, salt) = (rng.uniform_f64(), rng.uniform_f64() < 0.5);
                    match (u < p, salt) {
                        (false, _) => v,
                        (true, true) => 1.0,
                        (true, false) => 0.0,
                    }
                })
                .collect(),
            Corruption::GaussianBlur => per_plane(&|pl| gaussian_blur(pl, h, w, p * px)),
            Corruption::MotionBlur => {
                let angle = rng.uniform_range(-45.0, 45.0) as f64;
                motion_blur(x, shape, p * px, angle.to_radians())
            }
            Corruption::Brightness => x.iter().map(|&v| v + p as f32).collect(),
            Corruption::Contrast => per_plane(&|pl| {
                let mean = pl.iter().map(|&v| v as f64).sum::<f64>() / pl.len() as f64;
                pl.iter()
                    .map(|&v| ((v as f64 - mean) * p + mean) as f32)
                    .collect()
            }),
            Corruption::Shear => {
                let sign = random_sign(rng);
                warp(
                    x,
                    shape,
                    &InverseAffine::shear_x(h, w, sign * p),
                    Border::Zero,
                )
            }
            Corruption::Scale => warp(x, shape, &InverseAffine::scale(h, w, p), Border::Zero),
            Corruption::Rotate => rotate(x, shape, random_sign(rng) * p),
            Corruption::Translate => {
                let phi = rng.uniform_f64() * std::f64::consts::TAU;
                let d = p * px;
                translate(x, shape, d * phi.cos(), d * phi.sin())
            }
            Corruption::Stripe => {
                let centre = rng.uniform_f64() * w as f64;
                let half = p * px / 2.0;
                let mut out = x.to_vec();
                for (k, v) in out.iter_mut().enumerate() {
                    let j = k % w;
                    if (j as f64 + 0.5 - centre).abs() < half {
                        *v = 1.0 - *v;
                    }
                }
                out
            }
            Corruption::Fog => {
                let field = low_frequency_field(h, w, rng);
                let a = p as f32;
                per_plane(&|pl| {
                    let max = pl.iter().fold(0f32, |m, &v| m.max(v));
                    let max = if max > 0.0 { max } else { 1.0 };
                    pl.iter()
                        .zip(&field)
                        .map(|(&v, &f)| (v + a * f) * max / (max + a))
                        .collect()
                })
            }
            Corruption::Pixelate => {
                let nh = ((h as f64 * p).round() as usize).clamp(1, h);
                let nw = ((w as f64 * p).round() as usize).clamp(1, w);
                per_plane(&|pl| nearest_resize(&area_resize(pl, h, w, nh, nw), nh, nw, h, w))
            }
            Corruption::Jpeg => jpeg(x, shape, p.round().clamp(1.0, 100.0) as u8)?,
        };
        Ok(out.into_iter().map(|v| v.clamp(0.0, 1.0)).collect())
    }
}

fn random_sign(rng: &mut Rng) -> f64 {
    if rng.uniform_f64() < 0.5 {
        -1.0
    } else {
        1.0
    }
}

/// The smallest `k` with `P(Poisson(mean) ≤ k) ≥ u` (inverse-CDF sampling,
/// so one uniform draw per pixel whatever the rate). The probabilities are
/// stepped in log space: `e^{−mean}` alone underflows past a mean of ~745.
fn poisson_quantile(mean: f64, u: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    let mut k = 0.0;
    let mut log_p = -mean;
    let mut cdf = log_p.exp();
    // The cap only guards against u rounding to 1.
    while u > cdf && k < mean + 50.0 * mean.sqrt() + 50.0 {
        k += 1.0;
        log_p += (mean / k).ln();
        cdf += log_p.exp();
    }
    k
}

/// The mean of `length`-pixel translations along direction `angle` (radians):
/// a symmetric line kernel, sampled every pixel or closer.
fn motion_blur(x: &[f32], shape: [usize; 3], length: f64, angle: f64) -> Vec<f32> {
    let taps = (length.ceil() as usize + 1).max(2);
    let mut acc = vec![0f64; x.len()];
    for t in 0..taps {
        let d = (t as f64 / (taps - 1) as f64 - 0.5) * length;
        let moved = translate(x, shape, d * angle.cos(), -d * angle.sin());
        for (a, v) in acc.iter_mut().zip(moved) {
            *a += v as f64;
        }
    }
    acc.into_iter().map(|a| (a / taps as f64) as f32).collect()
}

/// A smooth random field in `[0, 1]`: two octaves of bilinearly upsampled
/// uniform grids (4×4 and 8×8, the finer at half weight), stretched to the range.
fn low_frequency_field(h: usize, w: usize, rng: &mut Rng) -> Vec<f32> {
    let mut field = vec![0f32; h * w];
    for (g, weight) in [(4usize, 1.0f32), (8, 0.5)] {
        let grid: Vec<f32> = (0..g * g).map(|_| rng.uniform_f32()).collect();
        for (f, v) in field.iter_mut().zip(upsample_grid(&grid, g, h, w)) {
            *f += weight * v;
        }
    }
    let lo = field.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = field.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    field.iter().map(|v| (v - lo) / span).collect()
}

/// Encodes and decodes with the `image` crate's JPEG codec at `quality`:
/// grey images as L8, three channels as RGB8, any other count channel by channel.
fn jpeg(x: &[f32], shape: [usize; 3], quality: u8) -> Result<Vec<f32>> {
    let [c, h, w] = shape;
    let to_byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let code = |bytes: &[u8], color: ExtendedColorType| -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        JpegEncoder::new_with_quality(&mut buf, quality)
            .encode(bytes, w as u32, h as u32, color)
            .map_err(|e| Error::Invalid(format!("JPEG encoding failed: {e}")))?;
        let img = image::load(Cursor::new(buf), ImageFormat::Jpeg)
            .map_err(|e| Error::Invalid(format!("JPEG decoding failed: {e}")))?;
        Ok(match color {
            ExtendedColorType::Rgb8 => img.to_rgb8().into_raw(),
            _ => img.to_luma8().into_raw(),
        })
    };
    let plane = h * w;
    let mut out = vec![0f32; x.len()];
    if c == 3 {
        let interleaved: Vec<u8> = (0..plane)
            .flat_map(|k| (0..3).map(move |ch| (ch, k)))
            .map(|(ch, k)| to_byte(x[ch * plane + k]))
            .collect();
        let decoded = code(&interleaved, ExtendedColorType::Rgb8)?;
        for k in 0..plane {
            for ch in 0..3 {
                out[ch * plane + k] = decoded[3 * k + ch] as f32 / 255.0;
            }
        }
    } else {
        for ch in 0..c {
            let bytes: Vec<u8> = x[ch * plane..(ch + 1) * plane]
                .iter()
                .map(|&v| to_byte(v))
                .collect();
            let decoded = code(&bytes, ExtendedColorType::L8)?;
            for k in 0..plane {
                out[ch * plane + k] = decoded[k] as f32 / 255.0;
            }
        }
    }
    Ok(out)
}

/// Default severities: all five.
pub const DEFAULT_SEVERITIES: &[usize] = &[1, 2, 3, 4, 5];

/// `kind = "corruptions"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CorruptionsConfig {
    /// The corruptions, in report order (default: all of them).
    #[schemars(extend("default" = Corruption::ALL))]
    pub corruptions: Vec<Corruption>,
    /// Severities, each in 1..=5 (default: all five).
    #[schemars(extend("default" = DEFAULT_SEVERITIES))]
    pub severities: Vec<usize>,
}

impl CorruptionsConfig {
    /// Reads the entry's keys, defaults filled in; problems are recorded in `e`.
    pub fn from_entry(e: &mut Entry) -> Self {
        let known: Vec<(&str, Corruption)> =
            Corruption::ALL.iter().map(|c| (c.as_str(), *c)).collect();
        CorruptionsConfig {
            corruptions: e
                .names("corruptions", &known)
                .unwrap_or_else(|| Corruption::ALL.to_vec()),
            severities: e
                .ints_in("severities", 1, 5)
                .unwrap_or_else(|| DEFAULT_SEVERITIES.to_vec()),
        }
    }
}

/// Runs a `kind = "corruptions"` entry: accuracy per corruption and severity.
pub fn run(
    ctx: &Context,
    name: &str,
    spec: &CorruptionsConfig,
    progress: Progress,
) -> Result<Outcome<CorruptionsSummary, SampleCorruptions>> {
    let n = ctx.len();
    let shape = ctx.shape();
    let labels = &ctx.data.labels;
    let mut misclassified = vec![0usize; n];
    let mut summaries = Vec::new();
    let mut tensors = Vec::new();
    let steps = (spec.corruptions.len() * spec.severities.len()) as f64;
    for (ci, &corruption) in spec.corruptions.iter().enumerate() {
        let stream = format!("stress/{name}/{}", corruption.as_str());
        let mut accuracy = Vec::with_capacity(spec.severities.len());
        let mut first_input = Vec::new();
        for (si, &severity) in spec.severities.iter().enumerate() {
            let mut correct = 0usize;
            for first in (0..n).step_by(ctx.batch_size) {
                let len = ctx.batch_size.min(n - first);
                let mut x = Vec::with_capacity(len * ctx.item_len());
                for i in first..first + len {
                    let mut rng = ctx.rng(&stream, i);
                    x.extend(corruption.apply(
                        ctx.data.item(i),
                        shape,
                        severity as f64,
                        &mut rng,
                    )?);
                }
                if first == 0 {
                    first_input.extend_from_slice(&x[..ctx.item_len()]);
                }
                for (k, z) in ctx.logits_data(&x)?.iter().enumerate() {
                    if argmax(z) == labels[first + k] {
                        correct += 1;
                    } else {
                        misclassified[first + k] += 1;
                    }
                }
            }
            accuracy.push(correct as f64 / n as f64);
            progress((ci * spec.severities.len() + si + 1) as f64 / steps);
        }
        tensors.push((
            crate::sidecar::stress(name, corruption.as_str()),
            ctx.images_tensor(&first_input)?,
        ));
        summaries.push(CorruptionSummary {
            corruption,
            parameter: corruption.parameter_name().to_string(),
            parameters: spec
                .severities
                .iter()
                .map(|&s| corruption.parameter(s as f64))
                .collect(),
            mean_accuracy: mean(accuracy.iter().copied()).unwrap_or(0.0),
            accuracy,
        });
    }
    let clean_correct = (0..n)
        .filter(|&i| ctx.clean_prediction(i) == labels[i])
        .count();
    let total = spec.corruptions.len() * spec.severities.len();
    Ok(Outcome {
        summary: CorruptionsSummary {
            name: name.to_string(),
            clean_accuracy: clean_correct as f64 / n as f64,
            severities: spec.severities.clone(),
            mean_accuracy: mean(summaries.iter().map(|c| c.mean_accuracy)).unwrap_or(0.0),
            corruptions: summaries,
        },
        samples: misclassified
            .into_iter()
            .map(|m| SampleCorruptions {
                name: name.to_string(),
                misclassified: m,
                total,
            })
            .collect(),
        tensors,
        warnings: Vec::new(),
        seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_quantiles_by_hand() {
        // Poisson(1): P(0) = e⁻¹ ≈ 0.3679, P(≤1) ≈ 0.7358, P(≤2) ≈ 0.9197.
        assert_eq!(poisson_quantile(1.0, 0.3), 0.0);
        assert_eq!(poisson_quantile(1.0, 0.5), 1.0);
        assert_eq!(poisson_quantile(1.0, 0.8), 2.0);
        assert_eq!(poisson_quantile(0.0, 0.99), 0.0);
        // Past e^−745: the median of Poisson(2000) is 2000 (within one).
        assert!((poisson_quantile(2000.0, 0.5) - 2000.0).abs() <= 1.0);
        // The mean of many draws is the rate.
        let mut rng = Rng::new(4);
        let n = 20_000;
        let mean = (0..n)
            .map(|_| poisson_quantile(7.5, rng.uniform_f64()))
            .sum::<f64>()
            / n as f64;
        assert!((mean - 7.5).abs() < 0.1, "{mean}");
    }

    #[test]
    fn parameters_interpolate_between_severities() {
        assert_eq!(Corruption::Rotate.parameter(0.0), 0.0);
        assert_eq!(Corruption::Rotate.parameter(2.0), 20.0);
        assert_eq!(Corruption::Rotate.parameter(2.5), 25.0);
        assert_eq!(Corruption::Jpeg.parameter(5.0), 10.0);
        assert_eq!(Corruption::ALL.len(), 15);
    }

    #[test]
    fn brightness_and_contrast_by_hand() {
        let x = [0.0, 0.5, 0.95, 0.25];
        let mut rng = Rng::new(0);
        let b = Corruption::Brightness
            .apply(&x, [1, 2, 2], 1.0, &mut rng)
            .unwrap();
        for (got, want) in b.iter().zip([0.1, 0.6, 1.0, 0.35]) {
            assert!((got - want).abs() < 1e-6, "{b:?}");
        }
        // Mean 0.425; factor 0.5 halves each distance to it.
        let c = Corruption::Contrast
            .apply(&x, [1, 2, 2], 2.0, &mut rng)
            .unwrap();
        for (got, want) in c.iter().zip([0.2125, 0.4625, 0.6875, 0.3375]) {
            assert!((got - want).abs() < 1e-6, "{c:?}");
        }
    }

    #[test]
    fn jpeg_keeps_rgb_channels_apart() {
        // A flat red image stays red through RGB JPEG.
        let shape = [3, 16, 16];
        let mut x = vec![0f32; 3 * 256];
        x[..256].fill(0.9);
        let y = Corruption::Jpeg
            .apply(&x, shape, 1.0, &mut Rng::new(0))
            .unwrap();
        let mean = |ch: usize| y[ch * 256..(ch + 1) * 256].iter().sum::<f32>() / 256.0;
        assert!(
            mean(0) > 0.8 && mean(1) < 0.1 && mean(2) < 0.1,
            "{} {} {}",
            mean(0),
            mean(1),
            mean(2)
        );
    }
}
