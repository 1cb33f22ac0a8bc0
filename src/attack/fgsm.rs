//! The fast gradient (sign) method (Goodfellow et al. 2015): one step of
//! length ε from the clean input, along the gradient's sign (L∞) or the
//! normalised gradient (L2), then clipped to the valid range — torchattacks'
//! `FGSM` for L∞. It is PGD with one step of size ε, no random start and
//! one restart, so it shares PGD's step, projection and bookkeeping.

use super::pgd::Pgd;
use super::{Attack, AttackBatch, AttackOutcome, Norm, Target};
use crate::error::Result;
use crate::model::Classifier;

/// An FGSM configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Fgsm {
    /// Budget norm.
    pub norm: Norm,
    /// Budget (and step length).
    pub eps: f32,
    /// Targeted mode.
    pub target: Option<Target>,
}

impl Attack for Fgsm {
    fn run(&self, model: &dyn Classifier, batch: &AttackBatch) -> Result<AttackOutcome> {
        Pgd {
            norm: self.norm,
            eps: self.eps,
            step_size: self.eps,
            steps: 1,
            random_start: false,
            restarts: 1,
            target: self.target,
        }
        .run(model, batch)
    }
}
