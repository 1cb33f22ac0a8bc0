//! The fast gradient (sign) method (Goodfellow et al. 2015): one step of
//! length ε from the clean input, along the gradient's sign (L∞), the
//! gradient over its L2 norm (L2) or over its L1 norm (L1: Foolbox's
//! `L1FastGradientAttack`, ε·g/‖g‖₁, every coordinate moving in proportion
//! to its gradient), then clipped to the valid range — torchattacks' `FGSM`
//! for L∞. It is PGD with one step of size ε, no random start and one
//! restart, so it shares PGD's step, projection and bookkeeping (in L1 the
//! exact projection onto the ball ∩ box, which after a step of length ε is
//! the clipping Foolbox does).

use serde::{Deserialize, Serialize};

use super::pgd::Pgd;
use super::spec::{default_eot, is_default_eot, read_eot_samples, read_target};
use super::{Attack, AttackBatch, AttackMethod, AttackOutcome, Budget, Norm, Target};
use crate::entry::Entry;
use crate::error::Result;
use crate::model::Classifier;

/// An `fgsm` plan entry: `norm` (default `linf`), `eps` (required, in input
/// units; a list gives a curve), an optional `target` and `eot_samples`
/// (default 1: draws of a randomized model the gradient averages over).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FgsmConfig {
    /// Budget norm.
    #[schemars(extend("default" = Norm::Linf))]
    pub norm: Norm,
    /// Budget and step length, in input units.
    pub eps: f64,
    /// Targeted mode: `least_likely`, `random` or a class index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "untargeted"}}))]
    pub target: Option<Target>,
    /// Draws of a randomized model the gradient averages over (Expectation
    /// over Transformation); 1 is a plain gradient.
    #[serde(default = "default_eot", skip_serializing_if = "is_default_eot")]
    #[schemars(range(min = 1))]
    #[schemars(extend("default" = super::DEFAULT_EOT_SAMPLES))]
    pub eot_samples: usize,
}

impl FgsmConfig {
    /// Untargeted FGSM with budget `eps`.
    pub fn new(norm: Norm, eps: f64) -> Self {
        FgsmConfig {
            norm,
            eps,
            target: None,
            eot_samples: super::DEFAULT_EOT_SAMPLES,
        }
    }

    /// Reads `target`; one config per ε.
    pub fn from_entry(e: &mut Entry, budget: &Budget) -> Vec<Self> {
        let target = read_target(e);
        let eot_samples = read_eot_samples(e);
        let norm = budget.norm();
        budget
            .eps_list(e)
            .into_iter()
            .map(|eps| FgsmConfig {
                norm,
                eps,
                target,
                eot_samples,
            })
            .collect()
    }

    /// The runnable attack.
    pub fn build(&self) -> Fgsm {
        Fgsm {
            norm: self.norm,
            eps: self.eps as f32,
            target: self.target,
            eot: self.eot_samples,
        }
    }
}

impl AttackMethod for FgsmConfig {
    fn norm(&self) -> Norm {
        self.norm
    }
    fn eps(&self) -> Option<f64> {
        Some(self.eps)
    }
    fn attack(&self) -> Result<Box<dyn Attack>> {
        Ok(Box::new(self.build()))
    }
    fn eot_samples(&self) -> Option<usize> {
        Some(self.eot_samples)
    }
    /// `FGSM`; `FGM` in L1, where the step is no sign (Foolbox's name).
    fn label(&self) -> String {
        let name = match self.norm {
            Norm::Linf | Norm::L2 => "FGSM",
            Norm::L1 => "FGM",
        };
        super::targeted_label(name, self.target)
    }
    fn target(&self) -> Option<Target> {
        self.target
    }
}

/// An FGSM configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Fgsm {
    /// Budget norm.
    pub norm: Norm,
    /// Budget (and step length).
    pub eps: f32,
    /// Targeted mode.
    pub target: Option<Target>,
    /// Draws the gradient averages over (1: none).
    pub eot: usize,
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
            l1_step: super::pgd::L1Step::Dense,
            eot: self.eot,
        }
        .run(model, batch)
    }
}
