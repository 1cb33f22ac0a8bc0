//! Out-of-distribution detection metrics for a confidence score, with the
//! in-distribution inputs as positives (Hein et al., CVPR 2019; ODIN): the
//! area under the ROC curve and the false-positive rate at 95% true-positive
//! rate. Both depend on the scores' order only, so any strictly increasing
//! function of the max-softmax gives the same numbers; the checks use
//! [`max_softmax_log_odds`], which does not saturate at 1.0 the way f32
//! probabilities do.

use std::cmp::Ordering;

/// Max-softmax probability of one row of logits, computed in f64:
/// `1 / Σ_j exp(z_j − z_max)`.
pub fn max_softmax(logits: &[f32]) -> f64 {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &z| m.max(z as f64));
    let sum: f64 = logits.iter().map(|&z| (z as f64 - max).exp()).sum();
    1.0 / sum
}

/// `log(p_max / (1 − p_max))` of a row of logits, computed without forming
/// `1 − p_max`: `−log Σ_{j ≠ argmax} exp(z_j − z_max)`. Strictly increasing in
/// the max-softmax, finite even where f32 softmax rounds to exactly 1.
pub fn max_softmax_log_odds(logits: &[f32]) -> f64 {
    let best = crate::stats::argmax(logits) as usize;
    let max = logits[best] as f64;
    let rest: f64 = logits
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != best)
        .map(|(_, &z)| (z as f64 - max).exp())
        .sum();
    -rest.ln()
}

/// Area under the ROC curve of `score` as a detector of `inside` (positives)
/// against `outside`: the probability that a random inside score beats a
/// random outside one, ties counting one half (the Mann–Whitney U statistic
/// over `|inside|·|outside|`). `None` when either side is empty.
pub fn auroc(inside: &[f64], outside: &[f64]) -> Option<f64> {
    if inside.is_empty() || outside.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = inside
        .iter()
        .map(|&s| (s, true))
        .chain(outside.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    // Sum of the (1-based, tie-averaged) ranks of the inside scores.
    let mut rank_sum = 0.0;
    let mut k = 0;
    while k < all.len() {
        let mut end = k + 1;
        while end < all.len() && all[end].0 == all[k].0 {
            end += 1;
        }
        let mean_rank = (k + 1 + end) as f64 / 2.0;
        rank_sum += mean_rank * all[k..end].iter().filter(|e| e.1).count() as f64;
        k = end;
    }
    let (n, m) = (inside.len() as f64, outside.len() as f64);
    Some((rank_sum - n * (n + 1.0) / 2.0) / (n * m))
}

/// False-positive rate at `tpr` true-positive rate: the threshold is the
/// score that at least `tpr` of the inside scores reach (the 5th percentile
/// for 95%), and the rate is the share of outside scores at or above it.
/// `None` when either side is empty.
pub fn fpr_at_tpr(inside: &[f64], outside: &[f64], tpr: f64) -> Option<f64> {
    if inside.is_empty() || outside.is_empty() {
        return None;
    }
    let mut sorted = inside.to_vec();
    sorted.sort_by(f64::total_cmp);
    let k = (((1.0 - tpr) * sorted.len() as f64).floor() as usize).min(sorted.len() - 1);
    let threshold = sorted[k];
    let above = outside.iter().filter(|&&s| s >= threshold).count();
    Some(above as f64 / outside.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_is_one_half_on_identical_sets_and_one_when_separated() {
        let a = [0.3, 0.9, 0.9, 0.1, 0.5];
        assert_eq!(auroc(&a, &a), Some(0.5));
        assert_eq!(auroc(&[2.0, 3.0], &[0.0, 1.0]), Some(1.0));
        assert_eq!(auroc(&[0.0, 1.0], &[2.0, 3.0]), Some(0.0));
        assert_eq!(auroc(&[], &[1.0]), None);
    }

    #[test]
    fn auroc_counts_pairs_by_hand() {
        // Pairs (in, out): 0.8 beats 0.5 and 0.1, ties 0.8; 0.4 beats 0.1
        // only: (2 + 0.5 + 1) / 6.
        let v = auroc(&[0.8, 0.4], &[0.5, 0.1, 0.8]).unwrap();
        assert!((v - 3.5 / 6.0).abs() < 1e-12, "{v}");
    }

    #[test]
    fn fpr_at_95_uses_the_fifth_percentile_of_inside_scores() {
        // 20 inside scores 1..=20: the threshold is the 2nd smallest (k =
        // floor(0.05·20) = 1), i.e. 2; 19 of 20 inside scores reach it.
        let inside: Vec<f64> = (1..=20).map(f64::from).collect();
        let outside = [0.0, 1.0, 2.0, 2.5, 30.0];
        assert_eq!(fpr_at_tpr(&inside, &outside, 0.95), Some(3.0 / 5.0));
        assert_eq!(fpr_at_tpr(&inside, &inside, 0.95), Some(19.0 / 20.0));
    }

    #[test]
    fn log_odds_is_monotone_in_max_softmax_and_does_not_saturate() {
        let rows = [
            [0.0f32, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [40.0, 0.0, 1.0],
            [80.0, 0.0, 1.0],
        ];
        let p: Vec<f64> = rows.iter().map(|r| max_softmax(r)).collect();
        let s: Vec<f64> = rows.iter().map(|r| max_softmax_log_odds(r)).collect();
        assert!((p[0] - 1.0 / 3.0).abs() < 1e-12);
        assert!((s[1] - (1f64.exp() / 2.0).ln()).abs() < 1e-12);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
        // f32 softmax would give 1.0 for both of the last two rows.
        assert!(s[3] - s[2] > 39.0);
    }
}
