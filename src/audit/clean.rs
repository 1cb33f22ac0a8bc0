//! The clean pass: the data mapped to the model's range and run through the
//! model once, batch by batch, giving every input's logits and prediction
//! ([`CleanPass`]); the attacks, sanity checks, stress checks and
//! attributions all take their inputs from it. Also the accuracy figures
//! derived from predictions.

use candle_core::Tensor;

pub use crate::attack::results::{CleanPass, Predictions};
use crate::data::batch::{batch_ranges, batch_tensor};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Classifier;
use crate::progress::Sink;

/// The name the clean pass reports its progress under.
pub const CLEAN_CHECK: &str = "clean";

/// Predicted classes and probabilities for a logits batch `[N, K]`.
pub fn predictions_from_logits(logits: &Tensor) -> Result<Predictions> {
    Ok(Predictions::from_logits(&logits.to_vec2()?))
}

/// Refuses data the model cannot audit: items of another shape, or none.
pub fn check_fits(model: &dyn Classifier, data: &Dataset) -> Result<()> {
    let [_, c, h, w] = data.shape;
    if [c, h, w] != model.input_shape() {
        return Err(Error::Invalid(format!(
            "data items are {c}×{h}×{w} but the model takes {:?}",
            model.input_shape()
        )));
    }
    if data.is_empty() {
        return Err(Error::data(&data.source, "no inputs to audit"));
    }
    Ok(())
}

/// One batch of the clean pass: items `first..first + len` in the model's
/// range, row-major, and their logits.
pub struct CleanBatch {
    /// The inputs, row-major `[len, C, H, W]`.
    pub inputs: Vec<f32>,
    /// One logits row per input.
    pub logits: Vec<Vec<f32>>,
}

/// Maps items `first..first + len` to the model's range and runs the model
/// on them as one batch.
pub fn clean_batch(
    model: &dyn Classifier,
    data: &Dataset,
    first: usize,
    len: usize,
) -> Result<CleanBatch> {
    let x = batch_tensor(data, first, len, model.input_range())?;
    // A randomized model is judged by its verdict draw, as attacks' points are.
    let logits = model
        .logits_draw(&x, crate::model::draw::VERDICT_DRAW)?
        .to_vec2()?;
    Ok(CleanBatch {
        inputs: x.flatten_all()?.to_vec1()?,
        logits,
    })
}

/// The clean pass over `data` in batches of `batch_size`, reported to `sink`
/// as one phase with the one check [`CLEAN_CHECK`].
pub fn clean_pass(
    model: &dyn Classifier,
    data: &Dataset,
    batch_size: usize,
    sink: &mut dyn Sink,
) -> Result<CleanPass> {
    if batch_size == 0 {
        return Err(Error::Invalid("batch size must be at least 1".into()));
    }
    let started = std::time::Instant::now();
    let n = data.len();
    let mut pass = CleanPass {
        shape: data.shape,
        batch_size,
        inputs: Vec::with_capacity(n * data.item_len()),
        logits: Vec::with_capacity(n),
        predictions: Predictions::empty(),
        seconds: 0.0,
    };
    sink.on_start(n, &[CLEAN_CHECK.to_string()]);
    for (first, len) in batch_ranges(n, batch_size) {
        sink.on_check_start(CLEAN_CHECK, first, len);
        let batch = clean_batch(model, data, first, len)?;
        pass.predictions
            .extend(Predictions::from_logits(&batch.logits));
        pass.inputs.extend(batch.inputs);
        pass.logits.extend(batch.logits);
        sink.on_check_done(CLEAN_CHECK, len);
    }
    sink.on_finish();
    pass.seconds = started.elapsed().as_secs_f64();
    Ok(pass)
}

/// The clean pass's predictions alone (for `eval`: no inputs kept).
pub fn predict(model: &dyn Classifier, data: &Dataset, batch_size: usize) -> Result<Predictions> {
    if batch_size == 0 {
        return Err(Error::Invalid("batch size must be at least 1".into()));
    }
    let mut out = Predictions::empty();
    for (first, len) in batch_ranges(data.len(), batch_size) {
        let batch = clean_batch(model, data, first, len)?;
        out.extend(Predictions::from_logits(&batch.logits));
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
