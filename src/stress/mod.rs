//! Extrapolation stress tests and equivariance checks: how a model behaves
//! on inputs unlike its training data, and whether it respects the
//! symmetries it should.
//!
//! - Extrapolation (`[[stress]]`): [`alpha_scaling`] (confidence on `α·x`,
//!   Hein et al. CVPR 2019), [`noise`] (synthetic noise families, with
//!   max-softmax as an out-of-distribution detector, [`ood`]),
//!   [`calibration`] (ECE and reliability table) and [`corruptions`]
//!   (MNIST-C-style corruptions at five severities).
//! - Equivariance (`[[equivariance]]`): [`consistency`] (predictions under
//!   shifts, rotations and flips), [`lie_derivative`] (Gruver et al., ICLR
//!   2023) and [`worst_case`] (the worst point of a rotation × translation grid).
//! - Shared: [`filters`], [`spec`] (the family's lists of checks: the plan
//!   entries' types, each check's config in its own file), [`types`] (the
//!   report sections) and [`report`] (filling the report, the sidecar and
//!   the summary table). The resampling itself (shifts, flips, bilinear rotation
//!   and translation, their generators) is [`crate::transform`], shared with
//!   the spatial attack.
//!
//! Every check works on images in `[0, 1]` (the data's units) and maps them
//! to the model's range just before the forward pass. Generated inputs come
//! from [`Rng::for_item`] keyed by the seed, the check and the input's
//! position, so results never depend on the batch size.

pub mod alpha_scaling;
pub mod calibration;
pub mod consistency;
pub mod corruptions;
pub mod filters;
pub mod lie_derivative;
pub mod noise;
pub mod ood;
pub mod report;
pub mod spec;
pub mod types;
pub mod worst_case;

use std::borrow::Cow;
use std::time::Instant;

use candle_core::{Device, Tensor};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Classifier;
use crate::progress::Sink;
use crate::rng::Rng;
use crate::stats::argmax;
pub use spec::{
    EquivarianceCheck, EquivarianceSpec, StressCheck, StressSpec, EQUIVARIANCE_KINDS, STRESS_KINDS,
};
use types::*;

/// What the checks share: the model, the data, the seed, the batch size and
/// the clean logits of the data.
pub struct Context<'a> {
    /// The audited model.
    pub model: &'a dyn Classifier,
    /// The data, pixels in `[0, 1]`.
    pub data: &'a Dataset,
    /// The plan's seed.
    pub seed: u64,
    /// Inputs per forward pass.
    pub batch_size: usize,
    /// Logits of every data input: the audit's clean pass, or computed here.
    pub clean_logits: Cow<'a, [Vec<f32>]>,
    /// The model's class names, index = class, for what the checks say
    /// about a class (the data's names until [`Context::with_class_names`]).
    pub class_names: Cow<'a, [String]>,
}

impl<'a> Context<'a> {
    /// Checks the data against the model and computes the clean logits (in
    /// batches of `batch_size`).
    pub fn new(
        model: &'a dyn Classifier,
        data: &'a Dataset,
        seed: u64,
        batch_size: usize,
    ) -> Result<Self> {
        let mut ctx = Self::checked(model, data, seed, batch_size, Cow::Owned(Vec::new()))?;
        ctx.clean_logits = Cow::Owned(ctx.logits_data(&data.pixels)?);
        Ok(ctx)
    }

    /// Checks the data against the model and takes the clean logits already
    /// computed (one row per data input, e.g. by the audit's clean pass), so
    /// the data is not run through the model again.
    pub fn with_clean_logits(
        model: &'a dyn Classifier,
        data: &'a Dataset,
        seed: u64,
        batch_size: usize,
        clean_logits: &'a [Vec<f32>],
    ) -> Result<Self> {
        if clean_logits.len() != data.len() {
            return Err(Error::Invalid(format!(
                "{} clean logits rows for {} data inputs",
                clean_logits.len(),
                data.len()
            )));
        }
        Self::checked(model, data, seed, batch_size, Cow::Borrowed(clean_logits))
    }

    fn checked(
        model: &'a dyn Classifier,
        data: &'a Dataset,
        seed: u64,
        batch_size: usize,
        clean_logits: Cow<'a, [Vec<f32>]>,
    ) -> Result<Self> {
        let [_, c, h, w] = data.shape;
        if [c, h, w] != model.input_shape() {
            return Err(Error::Invalid(format!(
                "data items are {c}×{h}×{w} but the model takes {:?}",
                model.input_shape()
            )));
        }
        if batch_size == 0 {
            return Err(Error::Invalid("batch size must be at least 1".into()));
        }
        Ok(Context {
            model,
            data,
            seed,
            batch_size,
            clean_logits,
            class_names: Cow::Borrowed(&data.class_names),
        })
    }

    /// The model's class names (index = class), which its warnings use; the
    /// data's names stand in until they are given (IDX data names its
    /// classes by number whatever the model calls them).
    pub fn with_class_names(mut self, names: Vec<String>) -> Self {
        self.class_names = Cow::Owned(names);
        self
    }

    /// Class `class` as people read it: `dog (2)`, or `2` when unnamed.
    pub fn class_label(&self, class: usize) -> String {
        crate::data::class_label(&self.class_names, class)
    }

    /// `[C, H, W]` of one input.
    pub fn shape(&self) -> [usize; 3] {
        self.model.input_shape()
    }

    /// Values per input.
    pub fn item_len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Number of data inputs.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no data inputs.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Clean predicted class of data input `i`.
    pub fn clean_prediction(&self, i: usize) -> u32 {
        argmax(&self.clean_logits[i])
    }

    /// `[0, 1]` values mapped to the model's range.
    pub fn to_model(&self, x: &[f32]) -> Vec<f32> {
        let (lo, hi) = self.model.input_range();
        if (lo, hi) == (0.0, 1.0) {
            x.to_vec()
        } else {
            x.iter().map(|&p| lo + p * (hi - lo)).collect()
        }
    }

    /// Logits of images given in the model's units, in batches.
    pub fn logits_model(&self, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        let per = self.item_len();
        let [c, h, w] = self.shape();
        let n = x.len() / per;
        let mut out = Vec::with_capacity(n);
        for chunk in x.chunks(self.batch_size * per) {
            let len = chunk.len() / per;
            let t = Tensor::from_slice(chunk, (len, c, h, w), &Device::Cpu)?;
            out.extend(self.model.logits(&t)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    /// Logits of images given in `[0, 1]`.
    pub fn logits_data(&self, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        let (lo, hi) = self.model.input_range();
        if (lo, hi) == (0.0, 1.0) {
            self.logits_model(x)
        } else {
            self.logits_model(&self.to_model(x))
        }
    }

    /// The generator of item `index` of the random stream named `what`.
    pub fn rng(&self, what: &str, index: usize) -> Rng {
        Rng::for_item(self.seed, stream_id(what), index as u64)
    }

    /// A `[M, C, H, W]` tensor of `[0, 1]` images, in the model's range (for the sidecar).
    pub fn images_tensor(&self, x: &[f32]) -> Result<Tensor> {
        let [c, h, w] = self.shape();
        let m = x.len() / self.item_len();
        Ok(Tensor::from_vec(
            self.to_model(x),
            (m, c, h, w),
            &Device::Cpu,
        )?)
    }
}

/// A random-stream id for a named check (FNV-1a), far from the small
/// integers the attacks use.
pub fn stream_id(what: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in what.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | (1 << 63)
}

/// Reports a check's progress as a share of its work done.
pub type Progress<'p> = &'p mut dyn FnMut(f64);

/// One check's results: the summary entry, the per-input records (empty when
/// the check has none), sidecar tensors, warnings and time.
#[derive(Debug, Clone)]
pub struct Outcome<S, P> {
    /// The report's summary entry.
    pub summary: S,
    /// One record per data input, or none.
    pub samples: Vec<P>,
    /// Sidecar tensors, named in full.
    pub tensors: Vec<(String, Tensor)>,
    /// Problems worth a report warning.
    pub warnings: Vec<String>,
    /// Seconds spent.
    pub seconds: f64,
}

/// A `[[stress]]` entry's results.
#[derive(Debug, Clone)]
pub enum StressOutcome {
    /// α-scaling.
    AlphaScaling(Outcome<AlphaScalingSummary, SampleAlpha>),
    /// Noise families.
    Noise(Outcome<NoiseSummary, ()>),
    /// Calibration.
    Calibration(Outcome<CalibrationSummary, ()>),
    /// Corruptions.
    Corruptions(Outcome<CorruptionsSummary, SampleCorruptions>),
}

/// An `[[equivariance]]` entry's results.
#[derive(Debug, Clone)]
pub enum EquivarianceOutcome {
    /// Shift, rotation or flip consistency.
    Consistency(Outcome<ConsistencySummary, SampleConsistency>),
    /// Lie derivatives.
    LieDerivative(Outcome<LieDerivativeSummary, SampleLieDerivative>),
    /// Worst case over a grid.
    WorstCase(Outcome<WorstCaseSummary, SampleWorstCase>),
}

/// Everything the plan's stress and equivariance entries computed.
#[derive(Debug, Clone, Default)]
pub struct StressResults {
    /// Per `[[stress]]` entry, in plan order.
    pub stress: Vec<StressOutcome>,
    /// Per `[[equivariance]]` entry, in plan order.
    pub equivariance: Vec<EquivarianceOutcome>,
    /// Seconds for all of them.
    pub total_seconds: f64,
}

/// Runs a plan's `[[stress]]` and `[[equivariance]]` entries (nothing, and
/// no work, when it has none) on `ctx`'s model and data, with its seed and
/// batch size.
pub fn run_stress(
    ctx: &Context,
    stress: &[StressSpec],
    equivariance: &[EquivarianceSpec],
    sink: &mut dyn Sink,
) -> Result<StressResults> {
    if stress.is_empty() && equivariance.is_empty() {
        return Ok(StressResults::default());
    }
    let started = Instant::now();
    let n = ctx.len();
    let names: Vec<String> = stress
        .iter()
        .map(|s| s.name.clone())
        .chain(equivariance.iter().map(|s| s.name.clone()))
        .collect();
    // The bar counts one unit per input per check.
    sink.on_start(n, &names);
    let mut results = StressResults::default();
    for spec in stress {
        let t = Instant::now();
        let mut bar = ProgressAdapter::new(sink, &spec.name, n);
        let mut progress = |f: f64| bar.advance(f);
        let mut outcome = match &spec.check {
            StressCheck::AlphaScaling(s) => {
                StressOutcome::AlphaScaling(alpha_scaling::run(ctx, &spec.name, s, &mut progress)?)
            }
            StressCheck::Noise(s) => {
                StressOutcome::Noise(noise::run(ctx, &spec.name, s, &mut progress)?)
            }
            StressCheck::Calibration(s) => {
                StressOutcome::Calibration(calibration::run(ctx, &spec.name, s.bins))
            }
            StressCheck::Corruptions(s) => {
                StressOutcome::Corruptions(corruptions::run(ctx, &spec.name, s, &mut progress)?)
            }
        };
        bar.advance(1.0);
        let seconds = t.elapsed().as_secs_f64();
        match &mut outcome {
            StressOutcome::AlphaScaling(o) => o.seconds = seconds,
            StressOutcome::Noise(o) => o.seconds = seconds,
            StressOutcome::Calibration(o) => o.seconds = seconds,
            StressOutcome::Corruptions(o) => o.seconds = seconds,
        }
        results.stress.push(outcome);
    }
    for spec in equivariance {
        let t = Instant::now();
        let mut bar = ProgressAdapter::new(sink, &spec.name, n);
        let mut progress = |f: f64| bar.advance(f);
        let mut outcome = match &spec.check {
            EquivarianceCheck::Shift(s) => EquivarianceOutcome::Consistency(consistency::run(
                ctx,
                &spec.name,
                s,
                &mut progress,
            )?),
            EquivarianceCheck::Rotation(s) => EquivarianceOutcome::Consistency(consistency::run(
                ctx,
                &spec.name,
                s,
                &mut progress,
            )?),
            EquivarianceCheck::Flip(s) => EquivarianceOutcome::Consistency(consistency::run(
                ctx,
                &spec.name,
                s,
                &mut progress,
            )?),
            EquivarianceCheck::LieDerivative(s) => EquivarianceOutcome::LieDerivative(
                lie_derivative::run(ctx, &spec.name, s, &mut progress)?,
            ),
            EquivarianceCheck::WorstCase(s) => {
                EquivarianceOutcome::WorstCase(worst_case::run(ctx, &spec.name, s, &mut progress)?)
            }
        };
        bar.advance(1.0);
        let seconds = t.elapsed().as_secs_f64();
        match &mut outcome {
            EquivarianceOutcome::Consistency(o) => o.seconds = seconds,
            EquivarianceOutcome::LieDerivative(o) => o.seconds = seconds,
            EquivarianceOutcome::WorstCase(o) => o.seconds = seconds,
        }
        results.equivariance.push(outcome);
    }
    sink.on_finish();
    results.total_seconds = started.elapsed().as_secs_f64();
    Ok(results)
}

/// Turns a check's share of work done into the sink's per-input units.
struct ProgressAdapter<'s> {
    sink: &'s mut dyn Sink,
    name: String,
    units: usize,
    reported: usize,
}

impl<'s> ProgressAdapter<'s> {
    fn new(sink: &'s mut dyn Sink, name: &str, units: usize) -> Self {
        sink.on_check_start(name, 0, units);
        ProgressAdapter {
            sink,
            name: name.to_string(),
            units,
            reported: 0,
        }
    }

    fn advance(&mut self, fraction: f64) {
        let target = ((fraction.clamp(0.0, 1.0) * self.units as f64) as usize).min(self.units);
        if target > self.reported {
            self.sink.on_check_done(&self.name, target - self.reported);
            self.reported = target;
        }
    }
}
