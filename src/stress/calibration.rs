//! Calibration on the real data: expected calibration error over equal-width
//! confidence bins (Guo et al., ICML 2017: 15 bins, `ECE = Σ_b (|B_b|/n)·
//! |acc(B_b) − conf(B_b)|`), the maximum calibration error, and the
//! reliability table behind them. Confidence is the max-softmax probability,
//! accuracy whether the arg-max is the label.

use serde::{Deserialize, Serialize};

use super::types::CalibrationSummary;
use super::{Context, Outcome};
use crate::entry::Entry;
use crate::stats::mean;

/// Default number of bins: Guo et al.'s 15.
pub const DEFAULT_BINS: usize = 15;

/// `kind = "calibration"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CalibrationConfig {
    /// Equal-width confidence bins, 1 to 10,000 (default 15, as in Guo et al.).
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = DEFAULT_BINS))]
    pub bins: usize,
}

impl CalibrationConfig {
    /// Reads the entry's keys, defaults filled in; problems are recorded in `e`.
    pub fn from_entry(e: &mut Entry) -> Self {
        CalibrationConfig {
            bins: e.int_in("bins", 1, 10_000).unwrap_or(DEFAULT_BINS),
        }
    }
}

/// One confidence bin of a reliability table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReliabilityBin {
    /// Lower edge (exclusive, except 0 for the first bin).
    pub lower: f64,
    /// Upper edge (inclusive).
    pub upper: f64,
    /// Inputs whose confidence falls in the bin.
    pub count: usize,
    /// Share of them classified correctly (null when empty).
    pub accuracy: Option<f64>,
    /// Their mean confidence (null when empty).
    pub mean_confidence: Option<f64>,
}

/// Calibration figures of a set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Expected calibration error.
    pub ece: f64,
    /// Maximum calibration error: the largest gap over non-empty bins.
    pub mce: f64,
    /// Share classified correctly.
    pub accuracy: f64,
    /// Mean confidence.
    pub mean_confidence: f64,
    /// The bins, lowest first.
    pub bins: Vec<ReliabilityBin>,
}

/// The bin of `confidence` among `bins` equal-width bins `((b−1)/M, b/M]`;
/// a confidence of exactly 0 goes to the first.
pub fn bin_of(confidence: f64, bins: usize) -> usize {
    let b = (confidence * bins as f64).ceil() as usize;
    b.clamp(1, bins) - 1
}

/// Calibration of predictions with these confidences and correctness flags.
pub fn calibration(confidence: &[f64], correct: &[bool], bins: usize) -> Calibration {
    assert_eq!(confidence.len(), correct.len());
    assert!(bins >= 1);
    let n = confidence.len();
    let mut count = vec![0usize; bins];
    let mut hits = vec![0usize; bins];
    let mut conf_sum = vec![0f64; bins];
    for (&c, &ok) in confidence.iter().zip(correct) {
        let b = bin_of(c, bins);
        count[b] += 1;
        hits[b] += usize::from(ok);
        conf_sum[b] += c;
    }
    let mut ece = 0.0;
    let mut mce: f64 = 0.0;
    let mut table = Vec::with_capacity(bins);
    for b in 0..bins {
        let (accuracy, mean_confidence) = if count[b] == 0 {
            (None, None)
        } else {
            let acc = hits[b] as f64 / count[b] as f64;
            let conf = conf_sum[b] / count[b] as f64;
            let gap = (acc - conf).abs();
            ece += count[b] as f64 / n as f64 * gap;
            mce = mce.max(gap);
            (Some(acc), Some(conf))
        };
        table.push(ReliabilityBin {
            lower: b as f64 / bins as f64,
            upper: (b + 1) as f64 / bins as f64,
            count: count[b],
            accuracy,
            mean_confidence,
        });
    }
    let share = |count: usize| if n == 0 { 0.0 } else { count as f64 / n as f64 };
    Calibration {
        ece,
        mce,
        accuracy: share(correct.iter().filter(|&&c| c).count()),
        mean_confidence: mean(confidence.iter().copied()).unwrap_or(0.0),
        bins: table,
    }
}

/// The `calibration` check on the data: no forward pass beyond the clean one.
pub fn run(ctx: &Context, name: &str, bins: usize) -> Outcome<CalibrationSummary, ()> {
    let confidence: Vec<f64> = ctx
        .clean_logits
        .iter()
        .map(|z| super::ood::max_softmax(z))
        .collect();
    let correct: Vec<bool> = (0..ctx.len())
        .map(|i| ctx.clean_prediction(i) == ctx.data.labels[i])
        .collect();
    let c = calibration(&confidence, &correct, bins);
    Outcome {
        summary: CalibrationSummary {
            name: name.to_string(),
            ece: c.ece,
            mce: c.mce,
            accuracy: c.accuracy,
            mean_confidence: c.mean_confidence,
            reliability: c.bins,
        },
        samples: Vec::new(),
        tensors: Vec::new(),
        warnings: Vec::new(),
        seconds: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_right_closed() {
        assert_eq!(bin_of(0.0, 15), 0);
        assert_eq!(bin_of(1.0 / 15.0, 15), 0);
        assert_eq!(bin_of(1.0 / 15.0 + 1e-9, 15), 1);
        assert_eq!(bin_of(1.0, 15), 14);
    }

    #[test]
    fn a_perfectly_calibrated_predictor_has_zero_ece() {
        // In each bin, k of 20 predictions at confidence k/20 are right.
        let mut conf = Vec::new();
        let mut correct = Vec::new();
        for k in 1..=20 {
            for i in 0..20 {
                conf.push(k as f64 / 20.0);
                correct.push(i < k);
            }
        }
        let c = calibration(&conf, &correct, 15);
        assert!(c.ece < 1e-12 && c.mce < 1e-12, "{c:?}");
        assert_eq!(c.bins.iter().map(|b| b.count).sum::<usize>(), 400);
    }

    #[test]
    fn ece_by_hand() {
        // Bin (0.8, 0.866]: conf 0.85, 0.85, both right: gap 0.15.
        // Bin (0.933, 1]: conf 1.0, 1.0, one right: gap 0.5.
        let c = calibration(&[0.85, 0.85, 1.0, 1.0], &[true, true, true, false], 15);
        assert!(
            (c.ece - (0.5 * 0.15 + 0.5 * 0.5)).abs() < 1e-12,
            "{}",
            c.ece
        );
        assert!((c.mce - 0.5).abs() < 1e-12);
        assert_eq!(c.accuracy, 0.75);
    }
}
