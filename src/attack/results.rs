//! What running a plan's attacks over a dataset gives: predictions, per
//! attack the best adversarial per input with its norms, and the timings.
//! The audit fills these; the report and the attribution checks read them.

use super::AttackSpec;

/// The model's predictions on a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// Arg-max class per input (the first on ties, like `torch.argmax`).
    pub predicted: Vec<u32>,
    /// Softmax probabilities per input, `[N][K]`.
    pub probabilities: Vec<Vec<f32>>,
}

/// One attack's results over the whole dataset.
#[derive(Debug, Clone)]
pub struct AttackResults {
    /// The plan entry.
    pub spec: AttackSpec,
    /// Best adversarial per input, row-major `[N, C, H, W]`, in the model's range.
    pub adversarial: Vec<f32>,
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
    /// Gradient evaluations per input.
    pub gradient_evaluations: usize,
    /// Seconds spent.
    pub seconds: f64,
}

/// Everything an audit computed.
#[derive(Debug, Clone)]
pub struct AuditResults {
    /// Clean inputs in the model's range, row-major.
    pub clean_inputs: Vec<f32>,
    /// Clean logits, one row per input.
    pub clean_logits: Vec<Vec<f32>>,
    /// Clean predictions.
    pub clean: Predictions,
    /// Seconds spent on clean predictions.
    pub clean_seconds: f64,
    /// Per attack, in plan order.
    pub attacks: Vec<AttackResults>,
    /// Seconds for the whole audit.
    pub total_seconds: f64,
}
