//! Drives an audit: the data in batches, each batch through the clean pass
//! and then every attack of the plan, collecting per-input results. Batches
//! only bound memory: every random choice is keyed by the input's position
//! in the data, so results do not depend on the batch size.

use std::time::Instant;

use super::checkpoint::{stop_requested, AttackPart, BatchPart, Checkpoint};
use super::clean::predictions_from_logits;
use crate::attack::results::Predictions;
pub use crate::attack::results::{AttackResults, AuditResults};
use crate::attack::{perturbation_norms, AttackBatch, AttackConfig, AttackSpec};
use crate::data::batch::batch_tensor;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Classifier;
use crate::plan::Plan;
use crate::progress::Sink;
use crate::stats::argmax;

/// Runs `plan` on `data` against `model`.
pub fn run_audit(
    model: &dyn Classifier,
    data: &Dataset,
    plan: &Plan,
    sink: &mut dyn Sink,
) -> Result<AuditResults> {
    run_audit_checkpointed(model, data, plan, sink, None)
}

/// [`run_audit`], saving each finished batch to `checkpoint` and taking the
/// batches it restored from an interrupted run as done. Stops with
/// [`Error::Interrupted`] between batches once a stop was requested.
pub fn run_audit_checkpointed(
    model: &dyn Classifier,
    data: &Dataset,
    plan: &Plan,
    sink: &mut dyn Sink,
    mut checkpoint: Option<&mut Checkpoint>,
) -> Result<AuditResults> {
    let started = Instant::now();
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
    let names: Vec<String> = plan.attacks.iter().map(|a| a.name.clone()).collect();
    sink.on_start(data.len(), &names);
    let attacks: Vec<_> = plan
        .attacks
        .iter()
        .map(|a| a.build())
        .collect::<Result<_>>()?;
    let per = data.item_len();
    let mut clean_inputs = Vec::with_capacity(data.len() * per);
    let mut clean = Predictions {
        predicted: Vec::new(),
        probabilities: Vec::new(),
    };
    let mut clean_seconds = 0.0;
    let mut all_clean_logits = Vec::with_capacity(data.len());
    let mut results: Vec<AttackResults> = plan
        .attacks
        .iter()
        .map(|spec| AttackResults {
            spec: spec.clone(),
            adversarial: Vec::with_capacity(data.len() * per),
            predictions: Predictions {
                predicted: Vec::new(),
                probabilities: Vec::new(),
            },
            success: Vec::new(),
            targets: spec.target().map(|_| Vec::new()),
            linf: Vec::new(),
            l2: Vec::new(),
            gradient_evaluations: 0,
            seconds: 0.0,
        })
        .collect();

    for first in (0..data.len()).step_by(plan.batch_size) {
        if stop_requested() {
            return Err(Error::Interrupted {
                partial: checkpoint.as_ref().map(|c| c.path().to_path_buf()),
            });
        }
        let len = plan.batch_size.min(data.len() - first);
        sink.on_check_start("clean", first, len);
        let t = Instant::now();
        let x_tensor = batch_tensor(data, first, len, model.input_range())?;
        let x: Vec<f32> = x_tensor.flatten_all()?.to_vec1()?;
        let logits_tensor = model.logits(&x_tensor)?;
        let clean_logits: Vec<Vec<f32>> = logits_tensor.to_vec2()?;
        let p = predictions_from_logits(&logits_tensor)?;
        clean.predicted.extend(p.predicted);
        clean.probabilities.extend(p.probabilities);
        clean_seconds += t.elapsed().as_secs_f64();
        sink.on_check_done("clean", len);

        let labels = &data.labels[first..first + len];
        let indices: Vec<usize> = (first..first + len).collect();
        let parts: Vec<AttackPart> = match checkpoint.as_ref().and_then(|c| c.finished(first, len))
        {
            // Finished before an interruption, or by a shard: take it as saved.
            Some(part) => part.attacks.clone(),
            None => {
                let batch = AttackBatch {
                    x: &x,
                    shape: [len, c, h, w],
                    labels,
                    clean_logits: &clean_logits,
                    indices: &indices,
                    seed: plan.seed,
                    stream: 0,
                };
                let parts = attack_batch(model, &attacks, &plan.attacks, &batch, sink)?;
                if let Some(cp) = checkpoint.as_deref_mut() {
                    cp.append(&BatchPart {
                        first,
                        len,
                        attacks: parts.clone(),
                    })?;
                }
                parts
            }
        };
        for (part, out) in parts.into_iter().zip(results.iter_mut()) {
            for i in 0..len {
                let span = i * per..(i + 1) * per;
                let (linf, l2) = perturbation_norms(&part.adversarial[span.clone()], &x[span]);
                out.linf.push(linf);
                out.l2.push(l2);
            }
            let logits = candle_core::Tensor::from_vec(
                part.logits,
                (len, model.num_classes()),
                &candle_core::Device::Cpu,
            )?;
            let p = predictions_from_logits(&logits)?;
            out.predictions.predicted.extend(p.predicted);
            out.predictions.probabilities.extend(p.probabilities);
            out.success.extend(part.success);
            if let (Some(all), Some(t)) = (out.targets.as_mut(), part.targets) {
                all.extend(t);
            }
            out.adversarial.extend(part.adversarial);
            out.gradient_evaluations = part.gradient_evaluations as usize;
            out.seconds += part.seconds;
            sink.on_check_done(&out.spec.name, len);
        }
        clean_inputs.extend(x);
        all_clean_logits.extend(clean_logits);
    }
    sink.on_finish();
    Ok(AuditResults {
        clean_inputs,
        clean_logits: all_clean_logits,
        clean,
        clean_seconds,
        attacks: results,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Runs every attack on one batch (`batch.stream` is set per attack).
fn attack_batch(
    model: &dyn Classifier,
    attacks: &[Box<dyn crate::attack::Attack>],
    specs: &[AttackSpec],
    batch: &AttackBatch,
    sink: &mut dyn Sink,
) -> Result<Vec<AttackPart>> {
    let (first, len) = (batch.indices.first().copied().unwrap_or(0), batch.len());
    let mut parts = Vec::with_capacity(attacks.len());
    for (k, (attack, spec)) in attacks.iter().zip(specs).enumerate() {
        sink.on_check_start(&spec.name, first, len);
        let t = Instant::now();
        let outcome = attack.run(
            model,
            &AttackBatch {
                stream: k as u64,
                ..*batch
            },
        )?;
        let mut part = AttackPart {
            gradient_evaluations: outcome.gradient_evaluations as u64,
            seconds: t.elapsed().as_secs_f64(),
            success: outcome.success,
            targets: outcome.targets,
            adversarial: outcome.adversarial,
            logits: outcome.logits.into_iter().flatten().collect(),
        };
        if let AttackConfig::Ensemble(ensemble) = &spec.config {
            // An ensemble's members are earlier entries, already run on this
            // batch with their own random streams: an input any of them broke
            // is broken for the ensemble too, so it never reports more
            // robustness than its strongest member.
            for m in &ensemble.members {
                if let Some(j) = specs[..k].iter().position(|s| s.name == m.name) {
                    adopt_breaks(&mut part, &parts[j], batch);
                }
            }
        }
        parts.push(part);
        sink.on_check_done(&spec.name, len);
    }
    Ok(parts)
}

/// Takes over `member`'s points where they misclassify an input that
/// `ensemble` left correctly classified.
fn adopt_breaks(ensemble: &mut AttackPart, member: &AttackPart, batch: &AttackBatch) {
    let n = batch.len();
    let per = batch.item_len();
    let k = member.logits.len() / n.max(1);
    for i in 0..n {
        let row = &member.logits[i * k..(i + 1) * k];
        if ensemble.success[i] || argmax(row) == batch.labels[i] {
            continue;
        }
        ensemble.success[i] = true;
        ensemble.adversarial[i * per..(i + 1) * per]
            .copy_from_slice(&member.adversarial[i * per..(i + 1) * per]);
        ensemble.logits[i * k..(i + 1) * k].copy_from_slice(row);
    }
}

/// Shard `k` of `n` (1-based): the attacks on every `n`-th batch starting
/// with batch `k − 1`, each appended to `checkpoint`; batches it already
/// holds are skipped. Returns the inputs this shard covers.
pub fn run_shard(
    model: &dyn Classifier,
    data: &Dataset,
    plan: &Plan,
    sink: &mut dyn Sink,
    checkpoint: &mut Checkpoint,
    (k, n): (usize, usize),
) -> Result<usize> {
    let [_, c, h, w] = data.shape;
    let names: Vec<String> = plan.attacks.iter().map(|a| a.name.clone()).collect();
    let mine: Vec<usize> = (0..data.len())
        .step_by(plan.batch_size)
        .enumerate()
        .filter(|(b, _)| b % n == k - 1)
        .map(|(_, first)| first)
        .collect();
    let total: usize = mine
        .iter()
        .map(|&f| plan.batch_size.min(data.len() - f))
        .sum();
    sink.on_start(total, &names);
    let attacks: Vec<_> = plan
        .attacks
        .iter()
        .map(|a| a.build())
        .collect::<Result<_>>()?;
    for first in mine {
        if stop_requested() {
            return Err(Error::Interrupted {
                partial: Some(checkpoint.path().to_path_buf()),
            });
        }
        let len = plan.batch_size.min(data.len() - first);
        if checkpoint.finished(first, len).is_some() {
            continue;
        }
        let x_tensor = batch_tensor(data, first, len, model.input_range())?;
        let x: Vec<f32> = x_tensor.flatten_all()?.to_vec1()?;
        let clean_logits: Vec<Vec<f32>> = model.logits(&x_tensor)?.to_vec2()?;
        let indices: Vec<usize> = (first..first + len).collect();
        let batch = AttackBatch {
            x: &x,
            shape: [len, c, h, w],
            labels: &data.labels[first..first + len],
            clean_logits: &clean_logits,
            indices: &indices,
            seed: plan.seed,
            stream: 0,
        };
        let parts = attack_batch(model, &attacks, &plan.attacks, &batch, sink)?;
        checkpoint.append(&BatchPart {
            first,
            len,
            attacks: parts,
        })?;
    }
    sink.on_finish();
    Ok(total)
}
