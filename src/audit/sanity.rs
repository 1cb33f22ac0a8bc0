//! Sanity checks that tell a user when robustness numbers may be an artefact,
//! after AutoAttack's own checks: zero or NaN input gradients, outputs that
//! are already probabilities, ε = 0 not reproducing clean accuracy,
//! predictions that depend on the batch size or differ between draws
//! (a randomized model attacked without expectation over transformation),
//! a black-box attack beating the white-box ones (a sign of gradient
//! masking), perturbations outside the budget or the valid range, and
//! attribution maps that survive the randomization of every weight.

use crate::attack::results::AuditResults;
use crate::attack::Norm;
use crate::attribution::run::AttributionResults;
use crate::data::Dataset;
use crate::error::Result;
use crate::model::{Classifier, Objective};
use crate::report::types::SanityFlag;
use crate::stats::argmax;

/// The plan's attacks (by name) with a gradient member that averaged no
/// gradients over draws of a randomized model (`eot_samples` unset or 1).
fn single_draw_attacks(results: &AuditResults) -> Vec<String> {
    fn single_draw(spec: &crate::attack::AttackSpec) -> bool {
        match spec.members() {
            [] => !spec.is_black_box() && spec.eot_samples().unwrap_or(1) <= 1,
            members => members.iter().any(single_draw),
        }
    }
    results
        .attacks
        .iter()
        .filter(|a| single_draw(&a.spec))
        .map(|a| a.spec.name.clone())
        .collect()
}

/// A warning per attribution entry whose maps survived the full cascade of
/// model-parameter randomization (Adebayo et al. 2018): they look the same
/// when every layer's weights are random, so they explain the input, not
/// the model.
pub fn attribution_flags(results: &AttributionResults) -> Vec<SanityFlag> {
    results
        .entries
        .iter()
        .filter_map(|e| {
            let s = e.sanity.as_ref()?;
            let last = s.cascading.last()?;
            (s.survives_randomization == Some(true)).then(|| {
                flag(
                    "attribution_survives_randomization",
                    format!(
                        "attribution {} ({}): with every layer's weights re-initialized its maps still rank pixels like the trained model's (mean Spearman of |map| {:.2} > {}, of the signed map {}, over {} inputs; the input's edges alone give {}): their shape reflects the input more than the model, so do not read it as what the model learned",
                        e.spec.name,
                        e.spec.method.name(),
                        last.similarity.spearman_abs.unwrap_or(f64::NAN),
                        s.threshold,
                        last.similarity
                            .spearman
                            .map_or("-".to_string(), |v| format!("{v:.2}")),
                        s.inputs,
                        s.edge_reference
                            .spearman_abs
                            .map_or("-".to_string(), |v| format!("{v:.2}")),
                    ),
                )
            })
        })
        .collect()
}

fn flag(check: &str, message: String) -> SanityFlag {
    SanityFlag {
        check: check.to_string(),
        message,
    }
}

/// Runs every check on an audit's results (the clean pass and the
/// attacks); returns the ones that fired.
pub fn sanity_checks(
    model: &dyn Classifier,
    data: &Dataset,
    results: &AuditResults,
) -> Result<Vec<SanityFlag>> {
    let mut flags = Vec::new();
    let n = data.len();
    let range = model.input_range();

    // Input gradients at the clean inputs, in the clean pass's batches.
    let clean = &results.clean;
    let (mut zero, mut nan) = (0usize, 0usize);
    for (first, len) in clean.batches() {
        let g = model.input_grad(
            &clean.tensor(first, len)?,
            Objective::CrossEntropy(&data.labels[first..first + len]),
        )?;
        let grad: Vec<Vec<f32>> = g.grad.flatten_from(1)?.to_vec2()?;
        for row in grad {
            if row.iter().any(|v| v.is_nan()) {
                nan += 1;
            } else if row.iter().all(|&v| v == 0.0) {
                zero += 1;
            }
        }
    }
    if zero + nan > 0 {
        flags.push(flag(
            "zero_gradients",
            format!("{zero} of {n} inputs have an all-zero and {nan} a NaN input gradient: gradient attacks cannot move them, so their robustness may be masking (saturated or non-differentiable layers), not strength"),
        ));
    }

    // Outputs that already look like probabilities.
    let rows = &clean.logits;
    if !rows.is_empty()
        && rows.iter().all(|r| {
            r.iter().all(|&v| (0.0..=1.0).contains(&v))
                && (r.iter().sum::<f32>() - 1.0).abs() < 1e-3
        })
    {
        flags.push(flag(
            "softmax_outputs",
            "every output row lies in [0, 1] and sums to 1: the model seems to return probabilities, not logits, which flattens gradients and weakens attacks; remove the final softmax".into(),
        ));
    }

    // ε = 0 must reproduce clean accuracy.
    let clean_correct = clean
        .predictions
        .predicted
        .iter()
        .zip(&data.labels)
        .filter(|(p, y)| p == y)
        .count();
    for a in &results.attacks {
        if a.spec.eps() == Some(0.0) {
            let robust = a
                .predictions
                .predicted
                .iter()
                .zip(&data.labels)
                .filter(|(p, y)| p == y)
                .count();
            if robust != clean_correct {
                flags.push(flag(
                    "eps_zero_not_clean",
                    format!("{}: ε = 0 leaves {robust} inputs correct but {clean_correct} are correct clean: the model is not deterministic or not in eval mode", a.spec.name),
                ));
            }
        }
    }

    // Batch-size dependence and randomness, on the first few inputs (new
    // calls on purpose: the clean pass's logits are what is being tested).
    let m = n.min(16);
    let together: Vec<Vec<f32>> = model.logits(&clean.tensor(0, m)?)?.to_vec2()?;
    let again: Vec<Vec<f32>> = model.logits(&clean.tensor(0, m)?)?.to_vec2()?;
    // A model whose draws are keyed (src/model/draw.rs) repeats a draw at
    // the same point: ask for another one.
    let redrawn: Vec<Vec<f32>> = model.logits_draw(&clean.tensor(0, m)?, 1)?.to_vec2()?;
    if together != again || together != redrawn {
        let single = single_draw_attacks(results);
        if !single.is_empty() {
            flags.push(flag(
                "randomized_model",
                format!("two draws at the same input gave different outputs (a randomized defence, or dropout left on), and {} averaged no gradients over draws: single-draw gradients overstate its robustness; set eot_samples (e.g. 20, as autoattack's version = \"rand\" does) for expectation over transformation", single.join(", ")),
            ));
        }
    }
    let mut differ = 0;
    for (i, row) in together.iter().enumerate() {
        let single: Vec<Vec<f32>> = model.logits(&clean.tensor(i, 1)?)?.to_vec2()?;
        if argmax(&single[0]) != argmax(row) {
            differ += 1;
        }
    }
    if differ > 0 {
        flags.push(flag(
            "batch_size_dependence",
            format!("{differ} of the first {m} inputs are predicted differently alone than in a batch: batch statistics leak into predictions (batch norm in training mode?)"),
        ));
    }

    // A black-box attack breaking what gradient attacks at the same budget did not.
    for square in results.attacks.iter().filter(|a| a.spec.is_black_box()) {
        let white: Vec<_> = results
            .attacks
            .iter()
            .filter(|a| {
                !a.spec.is_black_box()
                    && a.spec.norm() == square.spec.norm()
                    && a.spec.eps() == square.spec.eps()
                    && a.spec.target().is_none()
            })
            .collect();
        if white.is_empty() {
            continue;
        }
        let only_black = (0..n)
            .filter(|&i| {
                square.success[i]
                    && data.labels[i] == clean.predictions.predicted[i]
                    && white.iter().all(|w| !w.success[i])
            })
            .count();
        if only_black > 0 {
            let names: Vec<&str> = white.iter().map(|w| w.spec.name.as_str()).collect();
            flags.push(flag(
                "black_box_beats_white_box",
                format!("{} broke {only_black} inputs that {} did not: gradients are unreliable here (gradient masking), trust the black-box number", square.spec.name, names.join(", ")),
            ));
        }
    }

    // Budgets and the valid range.
    for a in &results.attacks {
        let mut outside = 0;
        if let Some(eps) = a.spec.eps() {
            let norms = match a.spec.norm() {
                Norm::Linf => &a.linf,
                Norm::L2 => &a.l2,
                Norm::L1 => &a.l1,
            };
            let limit = eps as f32 as f64;
            outside += (0..n).filter(|&i| a.success[i] && norms[i] > limit).count();
        }
        let out_of_range = a
            .adversarial
            .iter()
            .filter(|v| !(range.0..=range.1).contains(*v))
            .count();
        if outside + out_of_range > 0 {
            flags.push(flag(
                "perturbation_outside_budget",
                format!("{}: {outside} perturbations exceed ε and {out_of_range} values leave the valid range [{}, {}]: the attack is wrong and its numbers are not comparable", a.spec.name, range.0, range.1),
            ));
        }
    }
    Ok(flags)
}
