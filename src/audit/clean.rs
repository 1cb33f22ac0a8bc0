//! Clean predictions: logits → predicted class and softmax probabilities for
//! every input, in batches, and the accuracy figures derived from them.

use candle_core::Tensor;

pub use crate::attack::results::Predictions;
use crate::data::batch::batch_tensor;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Classifier;
use crate::stats::{argmax, softmax};

/// Predicted classes and probabilities for a logits batch `[N, K]`.
pub fn predictions_from_logits(logits: &Tensor) -> Result<Predictions> {
    let rows: Vec<Vec<f32>> = logits.to_vec2()?;
    Ok(Predictions {
        predicted: rows.iter().map(|r| argmax(r)).collect(),
        probabilities: rows.iter().map(|r| softmax(r)).collect(),
    })
}

/// Runs the model over `data` in batches of `batch_size`.
pub fn predict(model: &dyn Classifier, data: &Dataset, batch_size: usize) -> Result<Predictions> {
    if batch_size == 0 {
        return Err(Error::Invalid("batch size must be at least 1".into()));
    }
    let mut out = Predictions {
        predicted: Vec::with_capacity(data.len()),
        probabilities: Vec::with_capacity(data.len()),
    };
    for start in (0..data.len()).step_by(batch_size) {
        let len = batch_size.min(data.len() - start);
        let x = batch_tensor(data, start, len, model.input_range())?;
        let p = predictions_from_logits(&model.logits(&x)?)?;
        out.predicted.extend(p.predicted);
        out.probabilities.extend(p.probabilities);
    }
    Ok(out)
}

/// Share of `predicted` equal to `labels` (0 for no inputs).
pub fn accuracy(predicted: &[u32], labels: &[u32]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let correct = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
    correct as f64 / labels.len() as f64
}

/// `(correct, total)` per class.
pub fn per_class_counts(
    predicted: &[u32],
    labels: &[u32],
    num_classes: usize,
) -> Vec<(usize, usize)> {
    let mut counts = vec![(0, 0); num_classes];
    for (&p, &y) in predicted.iter().zip(labels) {
        let c = &mut counts[y as usize];
        c.1 += 1;
        if p == y {
            c.0 += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_per_class_counts() {
        assert_eq!(accuracy(&[0, 1, 2, 2], &[0, 1, 1, 2]), 0.75);
        assert_eq!(
            per_class_counts(&[0, 1, 2, 2], &[0, 1, 1, 2], 3),
            vec![(1, 1), (1, 2), (1, 1)]
        );
    }
}
