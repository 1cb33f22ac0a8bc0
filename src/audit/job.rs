//! The `run` command as a library call, read top to bottom as the pipeline:
//! load and validate everything before any work (plan, model and engine,
//! resolved plan and gates, data, output location), then the clean pass
//! (once: every later step takes its inputs and logits from it), the attacks
//! (checkpointed, or one shard of them), the sanity checks, the stress and
//! equivariance checks, the attributions, and last the tensor sidecar and the
//! report (both atomically, the report last), optional PNGs and the gates'
//! verdicts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::checkpoint::{partial_path, shard_job, shard_path, stop_requested, Checkpoint};
use super::gates::{Gate, Verdict};
use super::run::{run_attacks, run_shard};
use crate::attack::results::{AuditResults, CleanPass};
use crate::attribution::run::{AttributionResults, Audited, InputSet};
use crate::data::batch::{load_for_model_with_notes, DataRequest};
use crate::data::{DataNotes, Dataset};
use crate::error::{Error, Opt, Result};
use crate::model::{load_model_with, Classifier, LoadedModel, ModelOptions};
use crate::plan::{ModelFacts, Plan, Preset, PresetChoice, ResolvedPlan};
use crate::progress::Sink;
use crate::report::build::{build_report, sidecar_tensors, ReportInputs};
use crate::report::io::write_report;
use crate::report::tensors::{sidecar_path, write_tensors};
use crate::report::types::{PlanOrigin, Report, SanityFlag, ShardTimings};
use crate::stress::{Context, StressResults};

/// What `run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// The model file.
    pub model: PathBuf,
    /// How to read it: its spec, tensor names, and what overrides the spec
    /// (input range, class names, normalization).
    pub model_options: ModelOptions,
    /// The data (default: the shipped sample).
    pub data: Option<PathBuf>,
    /// Labels, layout and `.npz` keys for array data.
    pub arrays: crate::data::arrays::ArrayOptions,
    /// The plan file; without one, a built-in preset.
    pub plan: Option<PathBuf>,
    /// The preset to run without a plan file; `None` chooses one from the
    /// model's input ([`Preset::auto`]).
    pub preset: Option<Preset>,
    /// The report path (default: `reports/<model stem>.json`).
    pub out: Option<PathBuf>,
    /// Audit only N inputs (an IDX file's first N, an image folder's
    /// class-stratified N).
    pub limit: Option<usize>,
    /// Override the plan's seed.
    pub seed: Option<u64>,
    /// Override the plan's batch size.
    pub batch_size: Option<usize>,
    /// Resize images to the model's input size.
    pub resize: bool,
    /// Write PNGs of every input here.
    pub save_images: Option<PathBuf>,
    /// Which implementation runs the model.
    pub engine: crate::engine::Engine,
    /// Gates besides the plan's `[gates]` (parsed by the caller with
    /// [`Gate::parse`](super::gates::Gate::parse), which records where each
    /// was written), checked with them.
    pub gates: Vec<Gate>,
    /// Continue from `<out>.partial` when it belongs to this job.
    pub resume: bool,
    /// Run only shard `K` of `N` (1-based): its batches' attacks go to
    /// `<out>.shard-K-of-N`; no report.
    pub shard: Option<(usize, usize)>,
    /// Shards to merge (files, directories holding them, or glob patterns;
    /// see [`super::shards::shard_files`]): their batches are taken as done,
    /// once every shard of the job is there.
    pub merge: Vec<PathBuf>,
    /// The machine's name, recorded with each batch of a shard (the merged
    /// report says which shard ran where).
    pub host: Option<String>,
}

/// What a shard run produced.
pub struct ShardOutput {
    /// The shard file.
    pub path: PathBuf,
    /// Inputs it covers.
    pub inputs: usize,
}

/// What `run` (or `merge`) produced.
pub enum JobResult {
    /// A report.
    Report(Box<JobOutput>),
    /// One shard's batches.
    Shard(ShardOutput),
}

/// What `run` produced.
pub struct JobOutput {
    /// The report as written.
    pub report: Report,
    /// Where it was written.
    pub report_path: PathBuf,
    /// Where the tensors went.
    pub tensors_path: PathBuf,
    /// PNG files written.
    pub images_written: usize,
    /// Each gate's verdict (plan gates first, then [`JobOptions::gates`]).
    pub verdicts: Vec<Verdict>,
}

/// `reports/<model stem>.json`.
pub fn default_report_path(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    Path::new("reports").join(format!("{stem}.json"))
}

/// Runs the whole job: a report, or one shard of its batches.
pub fn run_job(opts: &JobOptions, sink: &mut dyn Sink) -> Result<JobResult> {
    let started_at = crate::util::utc_now_rfc3339();
    // A plan file is read first: its mistakes are reported before the model loads.
    let file_plan = read_plan_file(opts)?;
    let mut model = load_model(opts)?;
    let (plan, origin, preset_warning) = plan_for_model(opts, file_plan, &model)?;
    model.seed_draws(plan.seed, opts.engine)?;
    let mut resolved = resolve(opts, plan, origin, &model)?;
    resolved.warnings.extend(preset_warning);
    let loaded = load_data(opts, model)?;
    let (plan, net, data) = (&resolved.plan, loaded.net(), &loaded.data);
    let job = Job {
        report_path: prepare_output(opts)?,
        identity: job_identity(&loaded, plan)?,
        started_at,
        opts,
    };
    if let Some(shard) = opts.shard {
        return run_shard_job(&job, net, data, plan, shard, sink);
    }
    let (mut checkpoint, shard_timings) = open_checkpoint(&job, net, data, plan)?;
    let clean = clean_pass(net, data, plan, sink)?;
    let results = attacks(net, data, plan, clean, &mut checkpoint, sink)?;
    let mut findings = Findings {
        sanity: super::sanity::sanity_checks(net, data, &results)?,
        stress: stress(&loaded, plan, &results.clean, sink)?,
        attributions: attributions(&loaded, opts.engine, plan, &results, sink)?,
        results,
    };
    findings
        .sanity
        .extend(super::sanity::attribution_flags(&findings.attributions));
    let tensors_path = write_sidecar(&job.report_path, data, &findings)?;
    let mut report = report(&job, &loaded, &resolved, &findings, &tensors_path);
    report.timings.shards = shard_timings;
    write_report(&job.report_path, &report)?;
    checkpoint.finish()?;
    let images_written = save_images(opts, net, data, &findings)?;
    let verdicts = super::gates::evaluate(&report, &resolved.gates)?;
    Ok(JobResult::Report(Box::new(JobOutput {
        report,
        report_path: job.report_path,
        tensors_path,
        images_written,
        verdicts,
    })))
}

/// The model as loaded, and the engine that runs it.
struct Model {
    loaded: LoadedModel,
    classifier: Box<dyn Classifier>,
    engine: &'static str,
    /// Why the reference path runs it, when `auto` fell back.
    fallback: Option<String>,
}

impl Model {
    /// Keys a randomized model's draws by the plan's seed (a deterministic
    /// model is left as it is).
    fn seed_draws(&mut self, seed: u64, engine: crate::engine::Engine) -> Result<()> {
        if self.loaded.network.is_randomized() {
            self.loaded.network.set_draw_seed(seed);
            self.classifier = crate::engine::select(&self.loaded.network, engine)?.classifier;
        }
        Ok(())
    }
}

/// The model and the data loaded for it.
struct Loaded {
    model: Model,
    data: Dataset,
    data_notes: DataNotes,
}

impl Loaded {
    /// The model as the engine runs it.
    fn net(&self) -> &dyn Classifier {
        self.model.classifier.as_ref()
    }
}

/// The plan completed against the model, and every gate to check.
struct Resolved {
    plan: Plan,
    origin: PlanOrigin,
    warnings: Vec<String>,
    gates: Vec<Gate>,
}

/// This run: its options, when it started, where the report goes, and what
/// makes two runs the same job (resuming anything else is refused).
struct Job<'a> {
    opts: &'a JobOptions,
    started_at: String,
    report_path: PathBuf,
    identity: serde_json::Value,
}

/// What the steps after the clean pass found, for the report.
struct Findings {
    results: AuditResults,
    sanity: Vec<SanityFlag>,
    stress: StressResults,
    attributions: AttributionResults,
}

/// The plan file, when one is given, and its path as given.
fn read_plan_file(opts: &JobOptions) -> Result<Option<(Plan, String)>> {
    opts.plan
        .as_ref()
        .map(|p| Ok((Plan::from_file(p)?, p.display().to_string())))
        .transpose()
}

/// The plan to run (the file's, else the preset asked for, else the one
/// [`Preset::auto`] picks for the model's input, scaled to its range) and
/// where it came from, with the seed and batch size overridden as asked;
/// and a warning when a preset asked for by name does not fit the input.
fn plan_for_model(
    opts: &JobOptions,
    file_plan: Option<(Plan, String)>,
    model: &Model,
) -> Result<(Plan, PlanOrigin, Option<String>)> {
    let spec = model.loaded.network.spec();
    let mut warning = None;
    let (mut plan, origin) = match file_plan {
        Some((plan, file)) => (
            plan,
            PlanOrigin {
                preset: None,
                reason: "the plan file given".into(),
                file,
            },
        ),
        None => {
            let choice = match opts.preset {
                Some(preset) => {
                    warning = preset.fit_warning(spec);
                    PresetChoice {
                        preset,
                        reason: "asked for by name".into(),
                    }
                }
                None => Preset::auto(spec),
            };
            let plan = choice.preset.plan_for(spec.input.range)?;
            let [lo, hi] = spec.input.range;
            let reason = if (lo, hi) == (0.0, 1.0) {
                choice.reason
            } else {
                format!(
                    "{}; budgets written for [0, 1] scaled by {} to the range [{lo}, {hi}]",
                    choice.reason,
                    hi - lo
                )
            };
            let origin = PlanOrigin {
                preset: Some(choice.preset.name().to_string()),
                file: choice.preset.file().to_string(),
                reason,
            };
            (plan, origin)
        }
    };
    if let Some(seed) = opts.seed {
        plan.seed = seed;
    }
    if let Some(b) = opts.batch_size {
        if b == 0 {
            return Err(Error::bad_option(Opt::BatchSize, "must be at least 1"));
        }
        plan.batch_size = b;
    }
    Ok((plan, origin, warning))
}

/// Loads the model file and picks the engine that runs it.
fn load_model(opts: &JobOptions) -> Result<Model> {
    let loaded = load_model_with(&opts.model, &opts.model_options)?;
    let selected = crate::engine::select(&loaded.network, opts.engine)?;
    if let Some(why) = &selected.fallback {
        eprintln!("warning: {why}");
    }
    Ok(Model {
        loaded,
        classifier: selected.classifier,
        engine: selected.name,
        fallback: selected.fallback,
    })
}

/// Collects the gates (the plan's, then the options') and checks them
/// against the plan; completes the plan against the model.
fn resolve(opts: &JobOptions, plan: Plan, origin: PlanOrigin, model: &Model) -> Result<Resolved> {
    let mut gates = crate::plan::gates::plan_gates(&plan, &origin.file)?;
    gates.extend(opts.gates.iter().cloned());
    crate::plan::gates::check_against_plan(&gates, &plan)?;
    let facts = ModelFacts {
        spec: model.loaded.network.spec(),
        num_classes: model.classifier.num_classes(),
    };
    let ResolvedPlan { plan, warnings } = plan.resolve(&facts, &origin.file)?;
    Ok(Resolved {
        plan,
        origin,
        warnings,
        gates,
    })
}

/// Loads the data for the model (the shipped sample by default).
fn load_data(opts: &JobOptions, model: Model) -> Result<Loaded> {
    let net = model.classifier.as_ref();
    let request = DataRequest {
        path: opts.data.as_deref(),
        resize: opts.resize,
        limit: opts.limit,
        class_names: Some(&model.loaded.network.spec().classes),
        arrays: opts.arrays.clone(),
        range: Some(net.input_range()),
    };
    let (data, data_notes) =
        load_for_model_with_notes(&request, net.input_shape(), net.num_classes())?;
    Ok(Loaded {
        model,
        data,
        data_notes,
    })
}

/// The report path, checked before hours of work rather than after: it
/// must end in `.json`, and its folder must exist (it is created) and take
/// new files.
fn prepare_output(opts: &JobOptions) -> Result<PathBuf> {
    let report_path = opts
        .out
        .clone()
        .unwrap_or_else(|| default_report_path(&opts.model));
    if report_path.extension().and_then(|e| e.to_str()) != Some("json") {
        return Err(Error::bad_option(
            Opt::Out,
            format!("{} must end in .json", report_path.display()),
        ));
    }
    let out_dir = match report_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    tempfile::NamedTempFile::new_in(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    Ok(report_path)
}

/// What makes two runs the same job: the tool, model and data hashes, the
/// resolved plan and the engine. Checkpoints and shards carry it.
fn job_identity(loaded: &Loaded, plan: &Plan) -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        "tool": env!("CARGO_PKG_VERSION"),
        "model_sha256": loaded.model.loaded.sha256,
        "data_sha256": loaded.data.sha256,
        "data_count": loaded.data.len(),
        "plan": serde_json::to_value(plan).map_err(|e| Error::Invalid(e.to_string()))?,
        "engine": loaded.model.engine,
    }))
}

/// Opens the checkpoint at `path` for this job, whose first line is
/// `header` (continuing it on `resume`); the batches it appends record this
/// machine's name.
fn checkpoint_at(
    job: &Job,
    path: &Path,
    header: &serde_json::Value,
    net: &dyn Classifier,
    data: &Dataset,
    plan: &Plan,
) -> Result<Checkpoint> {
    let (per, classes, attacks) = (data.item_len(), net.num_classes(), plan.attacks.len());
    let mut checkpoint = Checkpoint::open(path, header, job.opts.resume, per, classes, attacks)?;
    checkpoint.host = job.opts.host.clone();
    Ok(checkpoint)
}

/// Shard `K` of `N`: the attacks on its batches into `<out>.shard-K-of-N`
/// (each batch through the clean pass first); no report.
fn run_shard_job(
    job: &Job,
    net: &dyn Classifier,
    data: &Dataset,
    plan: &Plan,
    (k, n): (usize, usize),
    sink: &mut dyn Sink,
) -> Result<JobResult> {
    if k == 0 || n == 0 || k > n {
        return Err(Error::bad_option(
            Opt::Shard,
            format!("{k}/{n}: expected K/N with 1 ≤ K ≤ N"),
        ));
    }
    let path = shard_path(&job.report_path, k, n);
    let header = shard_job(&job.identity, k, n);
    let mut checkpoint = checkpoint_at(job, &path, &header, net, data, plan)?;
    let inputs = run_shard(net, data, plan, sink, &mut checkpoint, (k, n))?;
    checkpoint.keep();
    Ok(JobResult::Shard(ShardOutput { path, inputs }))
}

/// `<out>.partial`, holding the batches an interrupted run finished (on
/// resume) and those of the shards to merge, which must be every shard of
/// this job, each finished (see [`super::shards::gather`]); with the
/// shards' timings.
fn open_checkpoint(
    job: &Job,
    net: &dyn Classifier,
    data: &Dataset,
    plan: &Plan,
) -> Result<(Checkpoint, Option<ShardTimings>)> {
    let gathered = if job.opts.merge.is_empty() {
        None
    } else {
        let layout = super::shards::Layout {
            per: data.item_len(),
            classes: net.num_classes(),
            attacks: plan.attacks.len(),
            inputs: data.len(),
            batch_size: plan.batch_size,
        };
        Some(super::shards::gather(
            &job.opts.merge,
            &job.identity,
            &layout,
        )?)
    };
    let path = partial_path(&job.report_path);
    let mut checkpoint = checkpoint_at(job, &path, &job.identity, net, data, plan)?;
    Ok(match gathered {
        Some(g) => {
            checkpoint.adopt(g.parts);
            (checkpoint, Some(g.timings))
        }
        None => (checkpoint, None),
    })
}

/// The clean pass, once, in the plan's batches: the inputs in the model's
/// range, their logits and predictions, which every later step reuses.
fn clean_pass(
    net: &dyn Classifier,
    data: &Dataset,
    plan: &Plan,
    sink: &mut dyn Sink,
) -> Result<CleanPass> {
    super::clean::check_fits(net, data)?;
    super::clean::clean_pass(net, data, plan.batch_size, sink)
}

/// The plan's attacks on every batch of the clean pass, saved batch by batch
/// to `checkpoint` (whose batches count as done); with the clean pass, the
/// audit's results. Stops with [`Error::Interrupted`] once asked to.
fn attacks(
    net: &dyn Classifier,
    data: &Dataset,
    plan: &Plan,
    clean: CleanPass,
    checkpoint: &mut Checkpoint,
    sink: &mut dyn Sink,
) -> Result<AuditResults> {
    let started = Instant::now();
    let attacks = run_attacks(net, data, plan, &clean, sink, Some(&mut *checkpoint))?;
    if stop_requested() {
        return Err(Error::Interrupted {
            partial: Some(checkpoint.path().to_path_buf()),
        });
    }
    Ok(AuditResults {
        total_seconds: clean.seconds + started.elapsed().as_secs_f64(),
        clean,
        attacks,
    })
}

/// The stress and equivariance entries, on the clean pass's logits.
fn stress(
    loaded: &Loaded,
    plan: &Plan,
    clean: &CleanPass,
    sink: &mut dyn Sink,
) -> Result<StressResults> {
    let (net, data) = (loaded.net(), &loaded.data);
    // Warnings name classes as the model does, whatever the data calls them.
    let ctx = Context::with_clean_logits(net, data, plan.seed, plan.batch_size, &clean.logits)?
        .with_class_names(loaded.model.loaded.network.spec().class_names());
    crate::stress::run_stress(&ctx, &plan.stress, &plan.equivariance, sink)
}

/// The input sets the attributions explain: the clean pass's inputs and each
/// attack's adversarials, with the model's predictions for them.
fn explained(results: &AuditResults) -> (InputSet<'_>, Vec<InputSet<'_>>) {
    let clean = InputSet {
        name: "clean",
        inputs: &results.clean.inputs,
        predicted: &results.clean.predictions.predicted,
    };
    let attacked = results
        .attacks
        .iter()
        .map(|a| InputSet {
            name: &a.spec.name,
            inputs: &a.adversarial,
            predicted: &a.predictions.predicted,
        })
        .collect();
    (clean, attacked)
}

/// The attribution entries, on the clean inputs and the adversarials; their
/// sanity checks run re-initialized copies of the network on the audit's
/// engine.
fn attributions(
    loaded: &Loaded,
    engine: crate::engine::Engine,
    plan: &Plan,
    results: &AuditResults,
    sink: &mut dyn Sink,
) -> Result<AttributionResults> {
    let (clean, attacked) = explained(results);
    let audited = Audited {
        clean,
        attacked: &attacked,
    };
    let build = |network: &crate::model::Network| -> Result<Box<dyn Classifier>> {
        Ok(crate::engine::select(network, engine)?.classifier)
    };
    let source = crate::attribution::sanity::ModelSource {
        network: &loaded.model.loaded.network,
        build: &build,
    };
    crate::attribution::run::run_attributions(
        loaded.net(),
        Some(&source),
        &loaded.data,
        &plan.attributions,
        plan.seed,
        plan.batch_size,
        &audited,
        sink,
    )
}

/// Writes the tensor sidecar beside the report: the inputs and
/// adversarials, then the stress and attribution tensors.
fn write_sidecar(report_path: &Path, data: &Dataset, findings: &Findings) -> Result<PathBuf> {
    let tensors_path = sidecar_path(report_path);
    let mut tensors = sidecar_tensors(&findings.results, data.shape)?;
    tensors.extend(crate::stress::report::sidecar_tensors(&findings.stress));
    tensors.extend(crate::attribution::report::sidecar_tensors(
        &findings.attributions,
    )?);
    write_tensors(&tensors_path, &tensors)?;
    Ok(tensors_path)
}

/// The report: the audit's results, then the sanity flags, the stress and
/// attribution sections and the plan's warnings.
fn report(
    job: &Job,
    loaded: &Loaded,
    resolved: &Resolved,
    findings: &Findings,
    tensors_path: &Path,
) -> Report {
    let mut report = build_report(&ReportInputs {
        model_path: &job.opts.model.display().to_string(),
        model: &loaded.model.loaded,
        data: &loaded.data,
        data_notes: &loaded.data_notes,
        plan: &resolved.plan,
        results: &findings.results,
        started_at: job.started_at.clone(),
        tensors_file: tensors_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned()),
    });
    report.summary.sanity = findings.sanity.clone();
    let n = report.samples.len();
    let stress = crate::stress::report::sections(&findings.stress, n);
    crate::report::build::add_stress(&mut report, stress);
    let attributions = crate::attribution::report::section(&findings.attributions, n);
    crate::report::build::add_attributions(&mut report, attributions);
    report.warnings.extend(resolved.warnings.iter().cloned());
    report
        .warnings
        .extend(loaded.model.fallback.iter().cloned());
    report.tool.engine = Some(loaded.model.engine.to_string());
    report.plan_origin = Some(resolved.origin.clone());
    report
}

/// PNGs of every input, adversarial and attribution map, when asked for.
fn save_images(
    opts: &JobOptions,
    net: &dyn Classifier,
    data: &Dataset,
    findings: &Findings,
) -> Result<usize> {
    let Some(dir) = &opts.save_images else {
        return Ok(0);
    };
    let (clean, attacked) = explained(&findings.results);
    let audited = Audited {
        clean,
        attacked: &attacked,
    };
    Ok(
        crate::report::images::save_images(dir, &findings.results, data.shape, net.input_range())?
            + crate::attribution::images::save_heatmaps(
                dir,
                &findings.attributions,
                &audited,
                net.input_range(),
            )?,
    )
}
