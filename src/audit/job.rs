//! The `run` command as a library call: load the model, data and plan,
//! validate them all before any work, audit, then write the tensor sidecar
//! and the report (both atomically, the report last) and optional PNGs.

use std::path::{Path, PathBuf};

use super::checkpoint::{
    partial_path, read_shard, shard_path, stop_requested, BatchPart, Checkpoint,
};
use super::run::{run_audit_checkpointed, run_shard};
use crate::data::batch::{load_for_model_with_notes, DataRequest};
use crate::error::{Error, Opt, Result};
use crate::model::{load_model_with, ModelOptions};
use crate::plan::Plan;
use crate::progress::Sink;
use crate::report::build::{build_report, sidecar_tensors, ReportInputs};
use crate::report::io::write_report;
use crate::report::tensors::{sidecar_path, write_tensors};
use crate::report::types::Report;

/// What `run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// The model file.
    pub model: PathBuf,
    /// An explicit architecture spec.
    pub arch: Option<PathBuf>,
    /// A prefix to strip from the file's tensor names (overrides the spec's).
    pub strip_prefix: Option<String>,
    /// The data (default: the shipped sample).
    pub data: Option<PathBuf>,
    /// The plan file (default: `attacks/default.toml`, built in).
    pub plan: Option<PathBuf>,
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
    pub gates: Vec<super::gates::Gate>,
    /// Continue from `<out>.partial` when it belongs to this job.
    pub resume: bool,
    /// Run only shard `K` of `N` (1-based): its batches' attacks go to
    /// `<out>.shard-K-of-N`; no report.
    pub shard: Option<(usize, usize)>,
    /// Shard files to merge: their batches are taken as done.
    pub merge: Vec<PathBuf>,
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
    pub verdicts: Vec<super::gates::Verdict>,
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
    let (mut plan, plan_origin) = match &opts.plan {
        Some(p) => (Plan::from_file(p)?, p.display().to_string()),
        None => (
            Plan::default_plan(),
            "attacks/default.toml (built in)".to_string(),
        ),
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
    let model_opts = ModelOptions {
        arch: opts.arch.clone(),
        strip_prefix: opts.strip_prefix.clone(),
    };
    let model = load_model_with(&opts.model, &model_opts)?;
    let mut gates = crate::plan::gates::plan_gates(&plan, &plan_origin)?;
    gates.extend(opts.gates.iter().cloned());
    crate::plan::gates::check_against_plan(&gates, &plan)?;
    let (classifier, engine_name) = crate::engine::select(&model.network, opts.engine)?;
    let net = classifier.as_ref();
    let facts = crate::plan::ModelFacts {
        spec: model.network.spec(),
        num_classes: net.num_classes(),
    };
    let crate::plan::ResolvedPlan {
        plan,
        warnings: plan_warnings,
    } = plan.resolve(&facts, &plan_origin)?;
    let request = DataRequest {
        path: opts.data.as_deref(),
        resize: opts.resize,
        limit: opts.limit,
        class_names: Some(&model.network.spec().classes),
    };
    let (data, data_notes) =
        load_for_model_with_notes(&request, net.input_shape(), net.num_classes())?;

    // Check the output location before hours of work, not after.
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

    // What makes two runs the same job: resuming anything else is refused.
    let job = serde_json::json!({
        "tool": env!("CARGO_PKG_VERSION"),
        "model_sha256": model.sha256,
        "data_sha256": data.sha256,
        "data_count": data.len(),
        "plan": serde_json::to_value(&plan).map_err(|e| Error::Invalid(e.to_string()))?,
        "engine": engine_name,
    });
    let (per, classes, attacks) = (data.item_len(), net.num_classes(), plan.attacks.len());
    if let Some((k, n)) = opts.shard {
        if k == 0 || n == 0 || k > n {
            return Err(Error::bad_option(
                Opt::Shard,
                format!("{k}/{n}: expected K/N with 1 ≤ K ≤ N"),
            ));
        }
        let path = shard_path(&report_path, k, n);
        let mut checkpoint = Checkpoint::open(&path, &job, opts.resume, per, classes, attacks)?;
        let inputs = run_shard(net, &data, &plan, sink, &mut checkpoint, (k, n))?;
        checkpoint.keep();
        return Ok(JobResult::Shard(ShardOutput { path, inputs }));
    }
    let mut adopted = Vec::new();
    for shard in &opts.merge {
        for part in read_shard(shard, &job, per, classes, attacks)? {
            if adopted.iter().any(|p: &BatchPart| p.first == part.first) {
                return Err(Error::format(
                    shard,
                    format!(
                        "holds inputs {}.. which another shard also holds",
                        part.first
                    ),
                ));
            }
            adopted.push(part);
        }
    }
    if !opts.merge.is_empty() {
        let missing: Vec<String> = (0..data.len())
            .step_by(plan.batch_size)
            .filter(|&f| !adopted.iter().any(|p| p.first == f))
            .map(|f| format!("{f}..{}", (f + plan.batch_size).min(data.len())))
            .collect();
        if !missing.is_empty() {
            return Err(Error::Invalid(format!(
                "the shards do not cover inputs {} (is a shard missing?)",
                missing.join(", ")
            )));
        }
    }
    let mut checkpoint = Checkpoint::open(
        &partial_path(&report_path),
        &job,
        opts.resume,
        per,
        classes,
        attacks,
    )?;
    checkpoint.adopt(adopted);
    let results = run_audit_checkpointed(net, &data, &plan, sink, Some(&mut checkpoint))?;
    if stop_requested() {
        return Err(Error::Interrupted {
            partial: Some(checkpoint.path().to_path_buf()),
        });
    }
    let sanity = super::sanity::sanity_checks(net, &data, &plan, &results)?;
    let stress = crate::stress::run_stress(
        net,
        &data,
        &plan.stress,
        &plan.equivariance,
        plan.seed,
        plan.batch_size,
        sink,
    )?;
    let attacked: Vec<crate::attribution::run::InputSet> = results
        .attacks
        .iter()
        .map(|a| crate::attribution::run::InputSet {
            name: &a.spec.name,
            inputs: &a.adversarial,
            predicted: &a.predictions.predicted,
        })
        .collect();
    let audited = crate::attribution::run::Audited {
        clean: crate::attribution::run::InputSet {
            name: "clean",
            inputs: &results.clean_inputs,
            predicted: &results.clean.predicted,
        },
        attacked: &attacked,
    };
    let attributions = crate::attribution::run::run_attributions(
        net,
        &data,
        &plan.attributions,
        plan.seed,
        plan.batch_size,
        &audited,
        sink,
    )?;
    let tensors_path = sidecar_path(&report_path);
    let mut tensors = sidecar_tensors(&results, data.shape)?;
    tensors.extend(crate::stress::report::sidecar_tensors(&stress));
    tensors.extend(crate::attribution::report::sidecar_tensors(&attributions)?);
    write_tensors(&tensors_path, &tensors)?;
    let mut report = build_report(&ReportInputs {
        model_path: &opts.model.display().to_string(),
        model: &model,
        data: &data,
        data_notes: &data_notes,
        plan: &plan,
        results: &results,
        started_at,
        tensors_file: tensors_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned()),
    });
    report.summary.sanity = sanity;
    let n = report.samples.len();
    crate::report::build::add_stress(&mut report, crate::stress::report::sections(&stress, n));
    crate::report::build::add_attributions(
        &mut report,
        crate::attribution::report::section(&attributions, n),
    );
    report.warnings.extend(plan_warnings);
    write_report(&report_path, &report)?;
    checkpoint.finish()?;
    let images_written = match &opts.save_images {
        Some(dir) => {
            crate::report::images::save_images(dir, &results, data.shape, net.input_range())?
                + crate::attribution::images::save_heatmaps(
                    dir,
                    &attributions,
                    &audited,
                    net.input_range(),
                )?
        }
        None => 0,
    };
    let verdicts = super::gates::evaluate(&report, &gates)?;
    Ok(JobResult::Report(Box::new(JobOutput {
        report,
        report_path,
        tensors_path,
        images_written,
        verdicts,
    })))
}
