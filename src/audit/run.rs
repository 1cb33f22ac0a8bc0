//! The attack step of an audit: the plan's attacks on each batch of the
//! clean pass ([`run_attacks`]), saved batch by batch to a checkpoint, or one
//! shard's batches of them ([`run_shard`]). Batches only bound memory: every
//! random choice is keyed by the input's position in the data, so results
//! do not depend on the batch size.

use std::time::Instant;

use super::checkpoint::{stop_requested, AttackPart, BatchPart, Checkpoint};
use super::clean::{check_fits, clean_batch, clean_pass};
pub use crate::attack::results::{AttackResults, AuditResults};
use crate::attack::results::{CleanPass, Predictions};
use crate::attack::{
    perturbation_l1, perturbation_norms, Attack, AttackBatch, AttackConfig, AttackSpec,
};
use crate::data::batch::batch_ranges;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Classifier;
use crate::plan::Plan;
use crate::progress::Sink;
use crate::stats::argmax;

/// Runs `plan` on `data` against `model`: the clean pass, then the attacks.
pub fn run_audit(
    model: &dyn Classifier,
    data: &Dataset,
    plan: &Plan,
    sink: &mut dyn Sink,
) -> Result<AuditResults> {
    let started = Instant::now();
    check_fits(model, data)?;
    let clean = clean_pass(model, data, plan.batch_size, sink)?;
    let attacks = run_attacks(model, data, plan, &clean, sink, None)?;
    Ok(AuditResults {
        clean,
        attacks,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// The plan's attacks on every batch of `clean` (its inputs and logits),
/// saving each finished batch to `checkpoint` and taking the batches it
/// holds (restored from an interrupted run, or adopted from shards) as done.
/// Stops with [`Error::Interrupted`] between batches once a stop was
/// requested.
pub fn run_attacks(
    model: &dyn Classifier,
    data: &Dataset,
    plan: &Plan,
    clean: &CleanPass,
    sink: &mut dyn Sink,
    mut checkpoint: Option<&mut Checkpoint>,
) -> Result<Vec<AttackResults>> {
    let names: Vec<String> = plan.attacks.iter().map(|a| a.name.clone()).collect();
    sink.on_start(clean.len(), &names);
    let attacks = build_attacks(plan)?;
    let [_, c, h, w] = clean.shape;
    let values = clean.inputs.len();
    let mut results: Vec<AttackResults> = plan
        .attacks
        .iter()
        .map(|spec| AttackResults::empty(spec, values))
        .collect();
    for (first, len) in clean.batches() {
        if stop_requested() {
            return Err(Error::Interrupted {
                partial: checkpoint.as_ref().map(|c| c.path().to_path_buf()),
            });
        }
        let x = clean.inputs_of(first, len);
        let parts: Vec<AttackPart> = match checkpoint.as_ref().and_then(|c| c.finished(first, len))
        {
            // Finished before an interruption, or by a shard: take it as saved.
            Some(part) => part.attacks.clone(),
            None => {
                let started = Instant::now();
                let indices: Vec<usize> = (first..first + len).collect();
                let batch = AttackBatch {
                    x,
                    shape: [len, c, h, w],
                    labels: &data.labels[first..first + len],
                    clean_logits: clean.logits_of(first, len),
                    indices: &indices,
                    seed: plan.seed,
                    stream: 0,
                };
                let parts = attack_batch(model, &attacks, &plan.attacks, &batch, sink)?;
                if let Some(cp) = checkpoint.as_deref_mut() {
                    cp.append(&BatchPart {
                        first,
                        len,
                        seconds: started.elapsed().as_secs_f64(),
                        host: cp.host.clone(),
                        attacks: parts.clone(),
                    })?;
                }
                parts
            }
        };
        for (part, out) in parts.into_iter().zip(results.iter_mut()) {
            add_part(out, part, x, clean.item_len(), model.num_classes());
            sink.on_check_done(&out.spec.name, len);
        }
    }
    sink.on_finish();
    Ok(results)
}

/// The plan's attacks, built.
fn build_attacks(plan: &Plan) -> Result<Vec<Box<dyn Attack>>> {
    plan.attacks.iter().map(|a| a.build()).collect()
}

/// Appends one batch's results of an attack to its results so far; `x` are
/// the batch's clean inputs (`per` values each), against which the norms
/// are measured.
fn add_part(out: &mut AttackResults, part: AttackPart, x: &[f32], per: usize, classes: usize) {
    for (adv, clean) in part.adversarial.chunks(per).zip(x.chunks(per)) {
        let (linf, l2) = perturbation_norms(adv, clean);
        out.linf.push(linf);
        out.l2.push(l2);
        out.l1.push(perturbation_l1(adv, clean));
    }
    let rows: Vec<Vec<f32>> = part.logits.chunks(classes).map(<[f32]>::to_vec).collect();
    out.predictions.extend(Predictions::from_logits(&rows));
    out.logits.extend(rows);
    out.success.extend(part.success);
    if let (Some(all), Some(t)) = (out.targets.as_mut(), part.targets) {
        all.extend(t);
    }
    out.adversarial.extend(part.adversarial);
    out.gradient_evaluations = part.gradient_evaluations as usize;
    out.seconds += part.seconds;
}

/// Runs every attack on one batch (`batch.stream` is set per attack).
fn attack_batch(
    model: &dyn Classifier,
    attacks: &[Box<dyn Attack>],
    specs: &[AttackSpec],
    batch: &AttackBatch,
    sink: &mut dyn Sink,
) -> Result<Vec<AttackPart>> {
    let (first, len) = (batch.indices.first().copied().unwrap_or(0), batch.len());
    let mut parts = Vec::with_capacity(attacks.len());
    for (k, (attack, spec)) in attacks.iter().zip(specs).enumerate() {
        sink.on_check_start(&spec.name, first, len);
        let t = Instant::now();
        let mut outcome = attack.run(
            model,
            &AttackBatch {
                stream: k as u64,
                ..*batch
            },
        )?;
        crate::attack::judge_on_verdict_draw(model, batch, &mut outcome)?;
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
/// holds are skipped. Only these batches go through the clean pass (one
/// [`clean_batch`] each, the batches of a whole run). Returns the inputs
/// this shard covers.
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
    let mine: Vec<(usize, usize)> = batch_ranges(data.len(), plan.batch_size)
        .enumerate()
        .filter(|(b, _)| b % n == k - 1)
        .map(|(_, batch)| batch)
        .collect();
    let total: usize = mine.iter().map(|&(_, len)| len).sum();
    sink.on_start(total, &names);
    let attacks = build_attacks(plan)?;
    for (first, len) in mine {
        if stop_requested() {
            return Err(Error::Interrupted {
                partial: Some(checkpoint.path().to_path_buf()),
            });
        }
        if checkpoint.finished(first, len).is_some() {
            continue;
        }
        let started = Instant::now();
        let clean = clean_batch(model, data, first, len)?;
        let indices: Vec<usize> = (first..first + len).collect();
        let batch = AttackBatch {
            x: &clean.inputs,
            shape: [len, c, h, w],
            labels: &data.labels[first..first + len],
            clean_logits: &clean.logits,
            indices: &indices,
            seed: plan.seed,
            stream: 0,
        };
        let parts = attack_batch(model, &attacks, &plan.attacks, &batch, sink)?;
        checkpoint.append(&BatchPart {
            first,
            len,
            seconds: started.elapsed().as_secs_f64(),
            host: checkpoint.host.clone(),
            attacks: parts,
        })?;
    }
    sink.on_finish();
    Ok(total)
}
