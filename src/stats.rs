//! The small numeric helpers every layer shares, one of each: the predicted
//! class of a row of logits ([`argmax`]), softmax in f32 ([`softmax`], the
//! report's probabilities) and in f64 ([`softmax_f64`], the stress checks),
//! and the summaries of a list of values ([`mean`], [`median`], [`quantile`]).
//!
//! They sit at the bottom of the crate and import nothing from it, so attacks,
//! stress checks, attributions, the report and the TUI all call the same code.
//! Each keeps the exact order of operations the report's numbers were first
//! computed with: changing one changes reports in the last bit.

/// Index of the largest value, the first on ties (like `torch.argmax`); NaN
/// never wins.
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best as u32
}

/// Softmax of one row of logits, computed stably in f32.
pub fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = row.iter().map(|&z| (z - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// Softmax of one row of f32 logits, computed stably in f64.
pub fn softmax_f64(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &z| m.max(z as f64));
    let e: Vec<f64> = logits.iter().map(|&z| (z as f64 - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Mean of the values in order, `None` when there are none.
///
/// The sum starts from −0.0, as `Iterator::sum` does for floats, so the
/// result has the same bits as `values.iter().sum::<f64>() / n`.
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (-0.0f64, 0usize);
    for v in values {
        sum += v;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// Median of `values` (mean of the middle two for an even count), `None` when
/// empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

/// Quantile at `level` of values where `None` is +∞ (linear interpolation
/// between order statistics, numpy's default); `None` when it is +∞ or there
/// are no values. The α-scaling check reports its "not reached" inputs so.
pub fn quantile(values: &[Option<f64>], level: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = values.iter().map(|a| a.unwrap_or(f64::INFINITY)).collect();
    v.sort_by(f64::total_cmp);
    let pos = level * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let q = if lo == hi {
        v[lo]
    } else {
        v[lo] + (pos - lo as f64) * (v[hi] - v[lo])
    };
    // Interpolating towards +∞ gives +∞ (or NaN at a zero weight): not reached.
    q.is_finite().then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_ties_and_ignores_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.0, 2.0]), 0); // NaN in front: nothing compares greater
        assert_eq!(argmax(&[0.0, f32::NAN, 2.0]), 2);
    }

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let p = softmax(&[1000.0, 1000.0, 0.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && p[2] == 0.0);
        assert!((softmax(&[0.1, 0.2, 0.3]).iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let p = softmax_f64(&[1000.0, 1000.0, 0.0]);
        assert!(p[0] == 0.5 && p[1] == 0.5 && p[2] == 0.0);
        assert!((softmax_f64(&[0.1, 0.2, 0.3]).iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn mean_has_the_bits_of_iterator_sum_over_the_count() {
        assert_eq!(mean([]), None);
        assert_eq!(mean([1.0, 2.0, 4.0]), Some(7.0 / 3.0));
        let v = [0.1, 0.2, 0.3, 1e16, -1e16];
        let want = v.iter().sum::<f64>() / v.len() as f64;
        assert_eq!(mean(v).map(f64::to_bits), Some(want.to_bits()));
        // −0.0 stays −0.0, as with `Iterator::sum`.
        assert!(mean([-0.0, -0.0]).unwrap().is_sign_negative());
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn quantiles_treat_unreached_as_infinite() {
        let v = [Some(1.0), Some(3.0), None, Some(2.0)];
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 0.5), Some(2.5));
        assert_eq!(quantile(&v, 0.75), None);
        assert_eq!(quantile(&[None, None, Some(1.0)], 0.5), None);
        assert_eq!(quantile(&[], 0.5), None);
    }
}
