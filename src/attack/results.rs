//! What an audit computes before its later steps read it: the clean pass
//! (every input in the model's range, its logits and predictions, made once
//! in the batches every step uses) and, per attack, the best adversarial per
//! input with its norms and timings. The audit fills these; the sanity and
//! stress checks, the attributions and the report read them.

use candle_core::{Device, Tensor};

use super::AttackSpec;
use crate::error::Result;
use crate::stats::{argmax, softmax};

/// The model's predictions on a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// Arg-max class per input (the first on ties, like `torch.argmax`).
    pub predicted: Vec<u32>,
    /// Softmax probabilities per input, `[N][K]`.
    pub probabilities: Vec<Vec<f32>>,
}

impl Predictions {
    /// The predicted class and softmax probabilities of each logits row.
    pub fn from_logits(rows: &[Vec<f32>]) -> Self {
        Predictions {
            predicted: rows.iter().map(|r| argmax(r)).collect(),
            probabilities: rows.iter().map(|r| softmax(r)).collect(),
        }
    }

    /// No predictions yet.
    pub fn empty() -> Self {
        Predictions {
            predicted: Vec::new(),
            probabilities: Vec::new(),
        }
    }

    /// Appends `other`'s predictions.
    pub fn extend(&mut self, other: Predictions) {
        self.predicted.extend(other.predicted);
        self.probabilities.extend(other.probabilities);
    }
}

/// The clean pass: the data mapped to the model's range and run through the
/// model once, in batches of `batch_size`. Every later step takes its
/// batches (the same inputs, the same logits) from here instead of making
/// them again.
#[derive(Debug, Clone)]
pub struct CleanPass {
    /// `[N, C, H, W]` of the inputs.
    pub shape: [usize; 4],
    /// Inputs per batch.
    pub batch_size: usize,
    /// The inputs in the model's range, row-major.
    pub inputs: Vec<f32>,
    /// Logits, one row per input.
    pub logits: Vec<Vec<f32>>,
    /// Predictions from the logits.
    pub predictions: Predictions,
    /// Seconds spent.
    pub seconds: f64,
}

impl CleanPass {
    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per input.
    pub fn item_len(&self) -> usize {
        self.shape[1..].iter().product()
    }

    /// `(first, len)` of every batch, in order.
    pub fn batches(&self) -> impl Iterator<Item = (usize, usize)> {
        crate::data::batch::batch_ranges(self.len(), self.batch_size)
    }

    /// Inputs `first..first + len`, row-major.
    pub fn inputs_of(&self, first: usize, len: usize) -> &[f32] {
        let per = self.item_len();
        &self.inputs[first * per..(first + len) * per]
    }

    /// Logits of inputs `first..first + len`.
    pub fn logits_of(&self, first: usize, len: usize) -> &[Vec<f32>] {
        &self.logits[first..first + len]
    }

    /// Inputs `first..first + len` as a `[len, C, H, W]` tensor.
    pub fn tensor(&self, first: usize, len: usize) -> Result<Tensor> {
        let [_, c, h, w] = self.shape;
        Ok(Tensor::from_slice(
            self.inputs_of(first, len),
            (len, c, h, w),
            &Device::Cpu,
        )?)
    }
}

/// One attack's results over the whole dataset.
#[derive(Debug, Clone)]
pub struct AttackResults {
    /// The plan entry.
    pub spec: AttackSpec,
    /// Best adversarial per input, row-major `[N, C, H, W]`, in the model's range.
    pub adversarial: Vec<f32>,
    /// Logits at the adversarials, one row per input.
    pub logits: Vec<Vec<f32>>,
    /// Predictions at the adversarials.
    pub predictions: Predictions,
    /// Whether the attack reached its goal per input.
    pub success: Vec<bool>,
    /// Target per input, for targeted attacks.
    pub targets: Option<Vec<u32>>,
    /// L∞ norm of each perturbation.
    pub linf: Vec<f64>,
    /// L2 norm of each perturbation.
    pub l2: Vec<f64>,
    /// L1 norm of each perturbation.
    pub l1: Vec<f64>,
    /// Gradient evaluations per input.
    pub gradient_evaluations: usize,
    /// Seconds spent.
    pub seconds: f64,
}

impl AttackResults {
    /// No results yet for `spec`, with room for `values` adversarial values.
    pub fn empty(spec: &AttackSpec, values: usize) -> Self {
        AttackResults {
            spec: spec.clone(),
            adversarial: Vec::with_capacity(values),
            logits: Vec::new(),
            predictions: Predictions::empty(),
            success: Vec::new(),
            targets: spec.target().map(|_| Vec::new()),
            linf: Vec::new(),
            l2: Vec::new(),
            l1: Vec::new(),
            gradient_evaluations: 0,
            seconds: 0.0,
        }
    }
}

/// Everything an audit computed.
#[derive(Debug, Clone)]
pub struct AuditResults {
    /// The clean pass: inputs, logits, predictions.
    pub clean: CleanPass,
    /// Per attack, in plan order.
    pub attacks: Vec<AttackResults>,
    /// Seconds for the whole audit.
    pub total_seconds: f64,
}
