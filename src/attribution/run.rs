//! Runs a plan's `[[attribution]]` entries after the attacks: for each entry,
//! the maps of the clean inputs and of each listed attack's adversarials
//! (batch by batch), the entry's metrics for every map, and for every attack
//! how far its maps moved from the clean ones (top-k overlap, Spearman).
//!
//! The explained class follows the entry's `target`: with `predicted`, each
//! input's own prediction (the adversarial prediction for an adversarial
//! input), so a map shows what the decision actually rests on. Random numbers
//! (SmoothGrad noise, random baselines, sensitivity perturbations) are keyed
//! by the seed, the entry and the input's position — the same for an input's
//! clean and adversarial versions, so the comparison isolates the attack.

use std::time::Instant;

use super::faithfulness::{
    faithfulness_correlation, gaussian_perturbations, infidelity_with, CorrelationSettings,
};
use super::metrics::{
    gini, perturbation_curves, pixel_scores, ranking, relative_change, spearman, top_k_overlap,
    Curve, CurveSettings,
};
use super::road::{road_curves, RoadCurves, RoadSettings};
use super::sanity::{run_sanity, Checked, MapSettings, ModelSource, SanityResults};
use super::spec::{
    default_correlation_subset, AttributionSpec, AttributionTarget, Metric, TargetRule,
    DEFAULT_CORRELATION_RUNS, DEFAULT_CURVE_BASELINE, DEFAULT_CURVE_STEPS,
    DEFAULT_INFIDELITY_NORMALIZE, DEFAULT_INFIDELITY_SAMPLES, DEFAULT_INFIDELITY_STDEV,
    DEFAULT_ROAD_FRACTIONS, DEFAULT_ROAD_NOISE, DEFAULT_SENSITIVITY_RADIUS,
    DEFAULT_SENSITIVITY_SAMPLES,
};
use super::{entry_stream, tensor4, Attribution, ExplainBatch, Purpose};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Classifier;
use crate::progress::Sink;

/// One set of inputs to explain: the clean inputs or one attack's
/// adversarials, `[N, C, H, W]` row-major in the model's range, with the
/// model's prediction for each.
#[derive(Debug, Clone, Copy)]
pub struct InputSet<'a> {
    /// `clean` or the attack's name.
    pub name: &'a str,
    /// The inputs, row-major.
    pub inputs: &'a [f32],
    /// The model's predicted class per input.
    pub predicted: &'a [u32],
}

/// What the attributions need from the audit so far: the clean inputs and
/// every attack's adversarials.
#[derive(Debug, Clone, Copy)]
pub struct Audited<'a> {
    /// The clean inputs (named `clean`).
    pub clean: InputSet<'a>,
    /// Each attack's adversarial inputs, named by the attack.
    pub attacked: &'a [InputSet<'a>],
}

impl<'a> Audited<'a> {
    /// The input set called `name` (`clean` or an attack's name).
    pub fn get(&self, name: &str) -> Option<&InputSet<'a>> {
        if name == "clean" {
            return Some(&self.clean);
        }
        self.attacked.iter().find(|a| a.name == name)
    }
}

/// How an attack moved the maps, per input.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    /// Pixels compared (k).
    pub top_k: usize,
    /// Share of the clean map's top-k pixels still in the adversarial map's top-k.
    pub top_k_overlap: Vec<f64>,
    /// Spearman's rank correlation of the two maps (`None`: a constant map).
    pub spearman: Vec<Option<f64>>,
}

/// One entry's maps and metrics on one set of inputs.
#[derive(Debug, Clone)]
pub struct VariantResults {
    /// `clean` or the attack's name.
    pub variant: String,
    /// The explained class per input.
    pub classes: Vec<u32>,
    /// Maps `[N, C, H, W]`, row-major.
    pub maps: Vec<f32>,
    /// Integrated Gradients' convergence delta per input.
    pub convergence_delta: Option<Vec<f64>>,
    /// Deletion curves per input (`steps + 1` probabilities).
    pub deletion: Option<Vec<Vec<f32>>>,
    /// Insertion curves per input.
    pub insertion: Option<Vec<Vec<f32>>>,
    /// Max-sensitivity per input.
    pub max_sensitivity: Option<Vec<f64>>,
    /// Gini index per input.
    pub sparseness: Option<Vec<f64>>,
    /// ROAD curves per input (one probability per removal fraction).
    pub road: Option<Vec<RoadCurves>>,
    /// Infidelity per input.
    pub infidelity: Option<Vec<f64>>,
    /// Faithfulness correlation per input (`None`: a constant series).
    pub faithfulness_correlation: Option<Vec<Option<f64>>>,
    /// Against the clean maps (attacks only).
    pub shift: Option<Shift>,
    /// SmoothGrad's noise `[N, samples, C, H, W]`, when kept.
    pub noise: Option<Vec<f32>>,
    /// Seconds spent, metrics included.
    pub seconds: f64,
}

/// One entry's results.
#[derive(Debug, Clone)]
pub struct EntryResults {
    /// The plan entry.
    pub spec: AttributionSpec,
    /// Clean first, then the attacks of `on` in plan order.
    pub variants: Vec<VariantResults>,
    /// Model calls (gradient evaluations, or forward passes for occlusion)
    /// per map, metrics excluded.
    pub model_calls_per_map: usize,
    /// The sanity checks, when the entry asks for them.
    pub sanity: Option<SanityResults>,
}

/// Everything the attribution entries computed.
#[derive(Debug, Clone, Default)]
pub struct AttributionResults {
    /// `[N, C, H, W]` of the inputs.
    pub shape: [usize; 4],
    /// Per entry, in plan order.
    pub entries: Vec<EntryResults>,
}

/// The explained classes for one set of inputs.
fn classes_for(target: AttributionTarget, predicted: &[u32], labels: &[u32]) -> Vec<u32> {
    match target {
        AttributionTarget::Rule(TargetRule::Predicted) => predicted.to_vec(),
        AttributionTarget::Rule(TargetRule::Label) => labels.to_vec(),
        AttributionTarget::Class(c) => vec![c; labels.len()],
    }
}

/// Runs the `[[attribution]]` entries `specs` (in plan order) on the
/// audit's inputs, in batches of `batch_size` (results do not depend on
/// it); every random number is keyed by `seed`. `source` is the network
/// behind `model`, which the sanity checks re-initialize.
///
/// # Errors
/// A model or method failure; an entry with sanity checks and no `source`.
#[allow(clippy::too_many_arguments)]
pub fn run_attributions(
    model: &dyn Classifier,
    source: Option<&ModelSource>,
    data: &Dataset,
    specs: &[AttributionSpec],
    seed: u64,
    batch_size: usize,
    audit: &Audited,
    sink: &mut dyn Sink,
) -> Result<AttributionResults> {
    let shape = data.shape;
    let mut out = AttributionResults {
        shape,
        entries: Vec::new(),
    };
    if specs.is_empty() {
        return Ok(out);
    }
    let n = data.len();
    let mut checks = Vec::new();
    for spec in specs {
        checks.push(format!("attribution {}", spec.name));
        for a in &spec.on {
            checks.push(format!("attribution {} on {a}", spec.name));
        }
        if !spec.sanity.is_empty() {
            checks.push(format!("attribution {} sanity checks", spec.name));
        }
    }
    sink.on_start(n, &checks);
    let mut check = checks.iter();
    for (e, spec) in specs.iter().enumerate() {
        let method = spec.build((shape[2], shape[3]));
        let ctx = Context {
            model,
            method: method.as_ref(),
            spec,
            shape,
            seed,
            stream: entry_stream(e),
            batch_size,
        };
        let mut variants = Vec::new();
        let classes = classes_for(spec.target, audit.clean.predicted, &data.labels);
        let name = check.next().expect("one check per variant");
        variants.push(ctx.run_variant("clean", audit.clean.inputs, classes, None, sink, name)?);
        for attack in &spec.on {
            let results = audit
                .attacked
                .iter()
                .find(|a| a.name == attack)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "attribution {}: attack {attack} was not run",
                        spec.name
                    ))
                })?;
            let classes = classes_for(spec.target, results.predicted, &data.labels);
            let name = check.next().expect("one check per variant");
            let clean = &variants[0].maps;
            let v = ctx.run_variant(attack, results.inputs, classes, Some(clean), sink, name)?;
            variants.push(v);
        }
        let sanity = match spec.sanity_config() {
            None => None,
            Some(config) => {
                let source = source.ok_or_else(|| {
                    Error::Invalid(format!(
                        "attribution {}: the sanity checks need the network behind the classifier",
                        spec.name
                    ))
                })?;
                let name = check.next().expect("one check per sanity test");
                let count = config.inputs.min(n);
                let per = shape[1] * shape[2] * shape[3];
                sink.on_check_start(name, 0, count);
                let settings = MapSettings {
                    method: method.as_ref(),
                    seed,
                    stream: ctx.stream,
                    batch_size,
                    top_k: top_k_pixels(spec.top_k_fraction, shape),
                };
                let checked = Checked {
                    inputs: &audit.clean.inputs[..count * per],
                    shape: [count, shape[1], shape[2], shape[3]],
                    classes: &variants[0].classes[..count],
                    maps: &variants[0].maps[..count * per],
                };
                let results = run_sanity(source, model, &settings, &config, checked)?;
                sink.on_check_done(name, count);
                Some(results)
            }
        };
        out.entries.push(EntryResults {
            spec: spec.clone(),
            variants,
            model_calls_per_map: method.model_calls(),
            sanity,
        });
    }
    sink.on_finish();
    Ok(out)
}

/// Pixels compared by a top-k overlap: `fraction` of the image, at least one.
pub(crate) fn top_k_pixels(fraction: f64, shape: [usize; 4]) -> usize {
    let hw = shape[2] * shape[3];
    ((fraction * hw as f64).ceil() as usize).clamp(1, hw)
}

struct Context<'a> {
    model: &'a dyn Classifier,
    method: &'a dyn Attribution,
    spec: &'a AttributionSpec,
    shape: [usize; 4],
    seed: u64,
    stream: u64,
    batch_size: usize,
}

impl Context<'_> {
    fn run_variant(
        &self,
        variant: &str,
        inputs: &[f32],
        classes: Vec<u32>,
        clean_maps: Option<&Vec<f32>>,
        sink: &mut dyn Sink,
        check: &str,
    ) -> Result<VariantResults> {
        let started = Instant::now();
        let [n, c, h, w] = self.shape;
        let per = c * h * w;
        let spec = self.spec;
        let mut r = VariantResults {
            variant: variant.to_string(),
            classes,
            maps: Vec::with_capacity(n * per),
            convergence_delta: None,
            deletion: spec.wants_on(Metric::Deletion, variant).then(Vec::new),
            insertion: spec.wants_on(Metric::Insertion, variant).then(Vec::new),
            max_sensitivity: spec.wants_on(Metric::Sensitivity, variant).then(Vec::new),
            sparseness: spec.wants_on(Metric::Sparseness, variant).then(Vec::new),
            road: spec.wants_on(Metric::Road, variant).then(Vec::new),
            infidelity: spec.wants_on(Metric::Infidelity, variant).then(Vec::new),
            faithfulness_correlation: spec
                .wants_on(Metric::FaithfulnessCorrelation, variant)
                .then(Vec::new),
            shift: None,
            noise: None,
            seconds: 0.0,
        };
        let curve_settings = CurveSettings {
            steps: spec.curve_steps.unwrap_or(DEFAULT_CURVE_STEPS),
            baseline: spec
                .curve_baseline
                .unwrap_or(DEFAULT_CURVE_BASELINE)
                .resolve(self.model.input_range()),
        };
        for first in (0..n).step_by(self.batch_size.max(1)) {
            let len = self.batch_size.max(1).min(n - first);
            sink.on_check_start(check, first, len);
            let bshape = [len, c, h, w];
            let xv = &inputs[first * per..(first + len) * per];
            let x = tensor4(xv.to_vec(), bshape)?;
            let classes = &r.classes[first..first + len];
            let batch = ExplainBatch {
                x: &x,
                classes,
                first_index: first,
                seed: self.seed,
                stream: self.stream,
            };
            let explanation = self.method.explain(self.model, &batch)?;
            let maps: Vec<f32> = explanation.maps.flatten_all()?.to_vec1()?;
            if let Some(d) = explanation.convergence_delta {
                r.convergence_delta.get_or_insert_with(Vec::new).extend(d);
            }
            if let Some(noise) = explanation.noise {
                r.noise.get_or_insert_with(Vec::new).extend(noise);
            }
            let orders: Vec<Vec<usize>> = maps
                .chunks(per)
                .map(|m| ranking(&pixel_scores(m, c)))
                .collect();
            for (curve, store) in [
                (Curve::Deletion, &mut r.deletion),
                (Curve::Insertion, &mut r.insertion),
            ] {
                if let Some(all) = store {
                    all.extend(perturbation_curves(
                        self.model,
                        xv,
                        bshape,
                        classes,
                        &orders,
                        curve,
                        curve_settings,
                    )?);
                }
            }
            if let Some(all) = &mut r.sparseness {
                all.extend(maps.chunks(per).map(gini));
            }
            if let Some(all) = &mut r.road {
                let mut rngs: Vec<_> = (0..len).map(|i| batch.rng(i, Purpose::Road)).collect();
                let settings = self.road_settings();
                all.extend(road_curves(
                    self.model, xv, bshape, classes, &orders, &settings, &mut rngs,
                )?);
            }
            if let Some(all) = &mut r.infidelity {
                all.extend(self.infidelity(&batch, xv, &maps)?);
            }
            if let Some(all) = &mut r.faithfulness_correlation {
                let mut rngs: Vec<_> = (0..len)
                    .map(|i| batch.rng(i, Purpose::Correlation))
                    .collect();
                let settings = CorrelationSettings {
                    runs: spec.correlation_runs.unwrap_or(DEFAULT_CORRELATION_RUNS),
                    subset: spec
                        .correlation_subset
                        .unwrap_or_else(|| default_correlation_subset(h * w)),
                    baseline: curve_settings.baseline,
                };
                all.extend(faithfulness_correlation(
                    self.model, xv, bshape, classes, &maps, settings, &mut rngs,
                )?);
            }
            if let Some(all) = &mut r.max_sensitivity {
                all.extend(self.max_sensitivity(&batch, xv, &maps)?);
            }
            r.maps.extend(maps);
            sink.on_check_done(check, len);
        }
        if let Some(clean) = clean_maps {
            let top_k = top_k_pixels(spec.top_k_fraction, self.shape);
            let mut shift = Shift {
                top_k,
                top_k_overlap: Vec::with_capacity(n),
                spearman: Vec::with_capacity(n),
            };
            for i in 0..n {
                let a = pixel_scores(&clean[i * per..(i + 1) * per], c);
                let b = pixel_scores(&r.maps[i * per..(i + 1) * per], c);
                shift.top_k_overlap.push(top_k_overlap(&a, &b, top_k));
                shift.spearman.push(spearman(&a, &b));
            }
            r.shift = Some(shift);
        }
        r.seconds = started.elapsed().as_secs_f64();
        Ok(r)
    }

    /// ROAD's fractions and noise (unset noise: 1% of the range width).
    fn road_settings(&self) -> RoadSettings {
        let (lo, hi) = self.model.input_range();
        RoadSettings {
            fractions: self
                .spec
                .road_fractions
                .clone()
                .unwrap_or_else(|| DEFAULT_ROAD_FRACTIONS.to_vec()),
            noise_std: self
                .spec
                .road_noise
                .unwrap_or(DEFAULT_ROAD_NOISE * (hi - lo) as f64) as f32,
        }
    }

    /// Captum `infidelity` with Gaussian perturbations drawn per input
    /// (unset σ: 10% of the range width).
    fn infidelity(&self, batch: &ExplainBatch, x: &[f32], maps: &[f32]) -> Result<Vec<f64>> {
        let spec = self.spec;
        let (lo, hi) = self.model.input_range();
        let samples = spec
            .infidelity_samples
            .unwrap_or(DEFAULT_INFIDELITY_SAMPLES);
        let stdev = spec
            .infidelity_stdev
            .unwrap_or(DEFAULT_INFIDELITY_STDEV * (hi - lo) as f64) as f32;
        let [_, c, h, w] = self.shape;
        let mut rngs: Vec<_> = (0..batch.len())
            .map(|i| batch.rng(i, Purpose::Infidelity))
            .collect();
        let noise = gaussian_perturbations(&mut rngs, samples, c * h * w, stdev);
        infidelity_with(
            self.model,
            x,
            [batch.len(), c, h, w],
            batch.classes,
            maps,
            &noise,
            spec.infidelity_normalize
                .unwrap_or(DEFAULT_INFIDELITY_NORMALIZE),
        )
    }

    /// Captum `sensitivity_max`: the largest relative change of the map over
    /// `samples` uniform perturbations in an L∞ ball (not clipped to the
    /// valid range, as Captum's default perturbation), same explained class.
    fn max_sensitivity(&self, batch: &ExplainBatch, x: &[f32], maps: &[f32]) -> Result<Vec<f64>> {
        let samples = self
            .spec
            .sensitivity_samples
            .unwrap_or(DEFAULT_SENSITIVITY_SAMPLES);
        let radius = self
            .spec
            .sensitivity_radius
            .unwrap_or(DEFAULT_SENSITIVITY_RADIUS) as f32;
        let len = batch.len();
        let per = x.len() / len.max(1);
        let [_, c, h, w] = self.shape;
        let mut rngs: Vec<_> = (0..len)
            .map(|i| batch.rng(i, Purpose::Sensitivity))
            .collect();
        let mut worst = vec![0f64; len];
        for _ in 0..samples {
            let mut moved = Vec::with_capacity(x.len());
            for (i, rng) in rngs.iter_mut().enumerate() {
                moved.extend(
                    x[i * per..(i + 1) * per]
                        .iter()
                        .map(|v| v + rng.uniform_range(-radius, radius)),
                );
            }
            let xt = tensor4(moved, [len, c, h, w])?;
            let perturbed = ExplainBatch {
                x: &xt,
                classes: batch.classes,
                first_index: batch.first_index,
                seed: batch.seed,
                stream: batch.stream,
            };
            let m: Vec<f32> = self
                .method
                .explain(self.model, &perturbed)?
                .maps
                .flatten_all()?
                .to_vec1()?;
            for (i, w) in worst.iter_mut().enumerate() {
                let change =
                    relative_change(&maps[i * per..(i + 1) * per], &m[i * per..(i + 1) * per]);
                *w = w.max(change);
            }
        }
        Ok(worst)
    }
}
