//! Synthetic out-of-distribution inputs: uniform noise, Gaussian noise with
//! the data's pixel mean and standard deviation, data inputs with their pixel
//! positions shuffled, blurred uniform noise stretched to the full range
//! (low-frequency noise after Meinke & Hein, ICLR 2020), and constant images.
//! Per family: mean max-softmax (MMC), the share above 0.95 and 0.99, AUROC
//! and FPR at 95% TPR of max-softmax separating the data (positive) from the
//! family, and the histogram of predicted classes — noise collapsing onto one
//! class is a warning.

use serde::{Deserialize, Serialize};

use super::filters::gaussian_blur;
use super::ood::{auroc, fpr_at_tpr, max_softmax, max_softmax_log_odds};
use super::spec::MAX_COUNT;
use super::types::{confidence_histogram, Example, NoiseFamilySummary, NoiseSummary};
use super::{Context, Outcome, Progress};
use crate::data::Dataset;
use crate::entry::Entry;
use crate::error::Result;
use crate::rng::Rng;
use crate::stats::{argmax, mean};

/// A family of synthetic out-of-distribution inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoiseFamily {
    /// Every pixel uniform in `[0, 1]`.
    Uniform,
    /// Every pixel normal with the data's pixel mean and standard deviation, clipped.
    Gaussian,
    /// A data input with its pixel positions shuffled.
    Permuted,
    /// Uniform noise blurred (σ uniform in [1, 2.5] px) and stretched to `[0, 1]`.
    Blurred,
    /// One uniform value per channel everywhere.
    Constant,
}

impl NoiseFamily {
    /// The name used in plans and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            NoiseFamily::Uniform => "uniform",
            NoiseFamily::Gaussian => "gaussian",
            NoiseFamily::Permuted => "permuted",
            NoiseFamily::Blurred => "blurred",
            NoiseFamily::Constant => "constant",
        }
    }

    /// Every family.
    pub const ALL: [NoiseFamily; 5] = [
        NoiseFamily::Uniform,
        NoiseFamily::Gaussian,
        NoiseFamily::Permuted,
        NoiseFamily::Blurred,
        NoiseFamily::Constant,
    ];
}

/// Default confidently classified inputs kept per family.
pub const DEFAULT_EXAMPLES: usize = 8;

/// `kind = "noise"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NoiseConfig {
    /// The families, each reported separately (default: all of them).
    #[schemars(extend("default" = NoiseFamily::ALL))]
    pub families: Vec<NoiseFamily>,
    /// Inputs per family (absent: as many as data inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "as many as the data's inputs"}}))]
    pub count: Option<usize>,
    /// Confidently classified noise inputs to keep in the sidecar, per
    /// family, 0 to 10,000 (default 8).
    #[schemars(extend("default" = DEFAULT_EXAMPLES))]
    pub examples: usize,
    /// Keep every generated input in the sidecar (large; for cross-checks;
    /// default false).
    #[schemars(extend("default" = false))]
    pub save_inputs: bool,
}

impl NoiseConfig {
    /// Reads the entry's keys, defaults filled in; problems are recorded in `e`.
    pub fn from_entry(e: &mut Entry) -> Self {
        let known: Vec<(&str, NoiseFamily)> =
            NoiseFamily::ALL.iter().map(|f| (f.as_str(), *f)).collect();
        NoiseConfig {
            families: e
                .names("families", &known)
                .unwrap_or_else(|| NoiseFamily::ALL.to_vec()),
            count: e.int_in("count", 1, MAX_COUNT),
            examples: e.int_in("examples", 0, 10_000).unwrap_or(DEFAULT_EXAMPLES),
            save_inputs: e.boolean("save_inputs").unwrap_or(false),
        }
    }
}

/// A family whose top class takes at least this share has collapsed.
pub const COLLAPSE_SHARE: f64 = 0.5;

/// Mean and standard deviation of every pixel of the data.
pub fn pixel_moments(data: &Dataset) -> (f32, f32) {
    let n = data.pixels.len().max(1) as f64;
    let mean = data.pixels.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = data
        .pixels
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean as f32, var.sqrt() as f32)
}

/// Generates input `index` of `family` (`[C, H, W]` in `[0, 1]`) from its own
/// generator `rng`.
pub fn generate(
    family: NoiseFamily,
    index: usize,
    data: &Dataset,
    moments: (f32, f32),
    rng: &mut Rng,
) -> Vec<f32> {
    let [_, c, h, w] = data.shape;
    let per = c * h * w;
    match family {
        NoiseFamily::Uniform => (0..per).map(|_| rng.uniform_f32()).collect(),
        NoiseFamily::Gaussian => (0..per)
            .map(|_| (moments.0 + moments.1 * rng.normal()).clamp(0.0, 1.0))
            .collect(),
        NoiseFamily::Permuted => {
            let src = data.item(index % data.len());
            let mut positions: Vec<usize> = (0..h * w).collect();
            rng.shuffle(&mut positions);
            let mut out = vec![0f32; per];
            for ch in 0..c {
                for (k, &p) in positions.iter().enumerate() {
                    out[ch * h * w + k] = src[ch * h * w + p];
                }
            }
            out
        }
        NoiseFamily::Blurred => {
            let noise: Vec<f32> = (0..per).map(|_| rng.uniform_f32()).collect();
            let sigma = rng.uniform_range(1.0, 2.5) as f64;
            let blurred: Vec<f32> = noise
                .chunks(h * w)
                .flat_map(|plane| gaussian_blur(plane, h, w, sigma))
                .collect();
            let lo = blurred.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = blurred.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let span = if hi > lo { hi - lo } else { 1.0 };
            blurred
                .iter()
                .map(|v| ((v - lo) / span).clamp(0.0, 1.0))
                .collect()
        }
        NoiseFamily::Constant => {
            let values: Vec<f32> = (0..c).map(|_| rng.uniform_f32()).collect();
            values
                .iter()
                .flat_map(|&v| std::iter::repeat_n(v, h * w))
                .collect()
        }
    }
}

/// The name of the random stream of a family.
fn stream(name: &str, family: NoiseFamily) -> String {
    format!("stress/{name}/{}", family.as_str())
}

/// Generates inputs `first..first + len` of a family, in `[0, 1]`.
pub fn generate_range(
    ctx: &Context,
    name: &str,
    family: NoiseFamily,
    first: usize,
    len: usize,
    moments: (f32, f32),
) -> Vec<f32> {
    let mut x = Vec::with_capacity(len * ctx.item_len());
    for i in first..first + len {
        let mut rng = ctx.rng(&stream(name, family), i);
        x.extend(generate(family, i, ctx.data, moments, &mut rng));
    }
    x
}

/// Runs a `kind = "noise"` entry.
pub fn run(
    ctx: &Context,
    name: &str,
    spec: &NoiseConfig,
    progress: Progress,
) -> Result<Outcome<NoiseSummary, ()>> {
    let count = spec.count.unwrap_or(ctx.len());
    let k = ctx.model.num_classes();
    let per = ctx.item_len();
    let moments = pixel_moments(ctx.data);
    let inside: Vec<f64> = ctx
        .clean_logits
        .iter()
        .map(|z| max_softmax_log_odds(z))
        .collect();
    let data_mmc = mean(ctx.clean_logits.iter().map(|z| max_softmax(z))).unwrap_or(0.0);
    let mut families = Vec::new();
    let mut tensors = Vec::new();
    let mut warnings = Vec::new();
    for (f, &family) in spec.families.iter().enumerate() {
        let mut confidence = Vec::with_capacity(count);
        let mut score = Vec::with_capacity(count);
        let mut histogram = vec![0usize; k];
        let mut examples = Vec::new();
        let mut example_pixels = Vec::new();
        let mut all_pixels = Vec::new();
        for first in (0..count).step_by(ctx.batch_size) {
            let len = ctx.batch_size.min(count - first);
            let x = generate_range(ctx, name, family, first, len, moments);
            let logits = ctx.logits_data(&x)?;
            for (i, z) in logits.iter().enumerate() {
                let p = max_softmax(z);
                let class = argmax(z);
                confidence.push(p);
                score.push(max_softmax_log_odds(z));
                histogram[class as usize] += 1;
                if p >= 0.95 && examples.len() < spec.examples {
                    examples.push(Example {
                        index: first + i,
                        transform: None,
                        prediction: class,
                        confidence: p as f32,
                    });
                    example_pixels.extend_from_slice(&x[i * per..(i + 1) * per]);
                }
            }
            if spec.save_inputs {
                all_pixels.extend(x);
            }
            progress((f as f64 + (first + len) as f64 / count as f64) / spec.families.len() as f64);
        }
        let (top_class, top_count) =
            histogram.iter().enumerate().fold(
                (0, 0),
                |best, (c, &n)| if n > best.1 { (c, n) } else { best },
            );
        let top_class_share = top_count as f64 / count as f64;
        let collapsed = top_class_share >= COLLAPSE_SHARE;
        if collapsed {
            warnings.push(format!(
                "{name}: {:.1}% of {} noise inputs are classified as class {}: predictions far from the data collapse onto one class",
                100.0 * top_class_share,
                family.as_str(),
                ctx.class_label(top_class)
            ));
        }
        let share = |t: f64| confidence.iter().filter(|&&p| p >= t).count() as f64 / count as f64;
        families.push(NoiseFamilySummary {
            family,
            count,
            mmc: mean(confidence.iter().copied()).unwrap_or(0.0),
            share_above_0_95: share(0.95),
            share_above_0_99: share(0.99),
            confidence_histogram: confidence_histogram(confidence.iter().copied()),
            auroc: auroc(&inside, &score).unwrap_or(0.5),
            fpr_at_95_tpr: fpr_at_tpr(&inside, &score, 0.95).unwrap_or(1.0),
            class_histogram: histogram,
            top_class: top_class as u32,
            top_class_share,
            collapsed,
            examples,
        });
        let base = crate::sidecar::stress(name, family.as_str());
        if !example_pixels.is_empty() {
            tensors.push((base.clone(), ctx.images_tensor(&example_pixels)?));
        }
        if spec.save_inputs {
            tensors.push((
                crate::sidecar::stress(name, &format!("{}/inputs", family.as_str())),
                ctx.images_tensor(&all_pixels)?,
            ));
            let conf: Vec<f32> = confidence.iter().map(|&p| p as f32).collect();
            tensors.push((
                crate::sidecar::stress(name, &format!("{}/confidence", family.as_str())),
                candle_core::Tensor::from_vec(conf, count, &candle_core::Device::Cpu)?,
            ));
        }
    }
    Ok(Outcome {
        summary: NoiseSummary {
            name: name.to_string(),
            data_mmc,
            data_confidence_histogram: confidence_histogram(
                ctx.clean_logits.iter().map(|z| max_softmax(z)),
            ),
            families,
        },
        samples: Vec::new(),
        tensors,
        warnings,
        seconds: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Dataset {
        Dataset {
            pixels: (0..2 * 3 * 4 * 5).map(|v| v as f32 / 119.0).collect(),
            shape: [2, 3, 4, 5],
            labels: vec![0, 1],
            class_names: vec!["0".into(), "1".into()],
            source: "test".into(),
            sha256: String::new(),
        }
    }

    #[test]
    fn families_stay_in_range_with_the_promised_structure() {
        let d = data();
        let m = pixel_moments(&d);
        for family in NoiseFamily::ALL {
            let x = generate(family, 1, &d, m, &mut Rng::new(5));
            assert_eq!(x.len(), 60, "{family:?}");
            assert!(x.iter().all(|v| (0.0..=1.0).contains(v)), "{family:?}");
        }
        // Permuted: the same permutation of positions in every channel
        // (the test data's values are all distinct).
        let x = generate(NoiseFamily::Permuted, 1, &d, m, &mut Rng::new(5));
        let src = d.item(1);
        let mut moved = false;
        for k in 0..20 {
            let p = (0..20).find(|&p| src[p] == x[k]).expect("a source value");
            moved |= p != k;
            assert_eq!((x[20 + k], x[40 + k]), (src[20 + p], src[40 + p]));
        }
        assert!(moved);
        // Constant: one value per channel; blurred: stretched to [0, 1].
        let x = generate(NoiseFamily::Constant, 0, &d, m, &mut Rng::new(5));
        assert!(x.chunks(20).all(|c| c.iter().all(|&v| v == c[0])));
        let x = generate(NoiseFamily::Blurred, 0, &d, m, &mut Rng::new(5));
        let (lo, hi) = x
            .iter()
            .fold((1f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
        assert_eq!((lo, hi), (0.0, 1.0));
    }

    #[test]
    fn moments_by_hand() {
        let mut d = data();
        d.pixels = vec![0.0, 1.0, 0.0, 1.0];
        d.shape = [1, 1, 2, 2];
        assert_eq!(pixel_moments(&d), (0.5, 0.5));
    }
}
