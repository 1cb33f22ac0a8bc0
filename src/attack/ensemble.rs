//! Ensembles: attacks run in order, each only on the inputs every earlier
//! attack failed on, and an input counts as robust only if all failed —
//! AutoAttack's protocol. `autoattack` in a plan expands to APGD-CE, APGD-T
//! (DLR, 9 target classes) and Square (5,000 queries) with the reference's
//! budgets (FAB-T, the third member of the reference's standard version, is
//! not implemented here; it rarely breaks what the other three leave).

use super::{gather, Attack, AttackBatch, AttackOutcome, BestTracker};
use crate::error::Result;
use crate::model::Classifier;

/// Attacks run in order on the inputs still robust.
pub struct Ensemble {
    /// The members, in order.
    pub members: Vec<Box<dyn Attack>>,
}

impl Attack for Ensemble {
    fn run(&self, model: &dyn Classifier, batch: &AttackBatch) -> Result<AttackOutcome> {
        let per = batch.item_len();
        let mut best = BestTracker::new(batch, None);
        let mut evaluations = 0;
        for (m, member) in self.members.iter().enumerate() {
            let rows = best.unbroken();
            if rows.is_empty() {
                break;
            }
            let x = gather(batch.x, &rows, per);
            let labels: Vec<u32> = rows.iter().map(|&i| batch.labels[i]).collect();
            let clean_logits: Vec<Vec<f32>> = rows
                .iter()
                .map(|&i| batch.clean_logits[i].clone())
                .collect();
            let indices: Vec<usize> = rows.iter().map(|&i| batch.indices[i]).collect();
            let sub = AttackBatch {
                x: &x,
                shape: [rows.len(), batch.shape[1], batch.shape[2], batch.shape[3]],
                labels: &labels,
                clean_logits: &clean_logits,
                indices: &indices,
                seed: batch.seed,
                // Each member draws from its own streams.
                stream: batch.stream.wrapping_mul(1_000).wrapping_add(m as u64 + 1),
            };
            let out = member.run(model, &sub)?;
            evaluations += out.gradient_evaluations;
            best.offer_rows(&rows, &out.adversarial, &out.logits, batch.labels, None);
        }
        Ok(best.into_outcome(None, evaluations))
    }
}
