//! The `xai-audit` binary: parse arguments, call the library, map the outcome
//! to an exit code (0 success, 1 a gate failed, 2 an error).

mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<xai_audit::Error>() {
            // The library's messages name its options; say them as flags.
            Some(stop @ xai_audit::Error::Interrupted { .. }) => {
                eprintln!("{}", stop.message(&cli::Flags));
                ExitCode::from(130)
            }
            Some(error) => {
                eprintln!("error: {}", error.message(&cli::Flags));
                ExitCode::from(2)
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Convert {
            model,
            output,
            model_args,
        } => {
            let done = xai_audit::model::convert(&model, &model_args.options(), &output)?;
            print_stdout(&format!(
                "wrote {}: {} tensors, {} parameters, spec version {} ({} nodes)\n",
                output.display(),
                done.tensors,
                done.parameters,
                done.spec.version,
                done.spec.nodes.len()
            ))?;
        }
        Command::Inspect {
            model,
            model_args,
            spec,
        } => {
            let opts = model_args.options();
            let text = if spec {
                xai_audit::inspect::spec_json(&model, &opts)?
            } else {
                xai_audit::inspect::inspect_with(&model, &opts)?
            };
            print_stdout(&text)?;
        }
        Command::Eval {
            model,
            model_args,
            data,
            resize,
            limit,
            batch_size,
            engine,
        } => {
            let text = eval(
                &model,
                &model_args.options(),
                xai_audit::data::batch::DataRequest {
                    path: data.data.as_deref(),
                    resize,
                    limit,
                    arrays: data.arrays.options(),
                    ..Default::default()
                },
                batch_size,
                engine.into(),
            )?;
            print_stdout(&text)?;
        }
        Command::Run(cli::RunArgs {
            job,
            shard,
            shards,
            resume,
        }) => {
            let shard = match (shard, shards) {
                (None, _) => None,
                (Some(cli::ShardArg::Index(k, n)), None) => Some(((k, n), None)),
                (Some(cli::ShardArg::Index(k, n)), Some(_)) => anyhow::bail!(
                    "--shards goes with --shard auto; --shard {k}/{n} gives the count itself"
                ),
                (Some(cli::ShardArg::Auto), shards) => {
                    let vars = std::env::vars()
                        .filter(|(name, _)| {
                            xai_audit::audit::scheduler::VARIABLES.contains(&name.as_str())
                        })
                        .collect();
                    let a = xai_audit::audit::scheduler::shard_from_scheduler(&vars, shards)?;
                    Some(((a.index, a.count), Some(a.source)))
                }
            };
            return run_audit_command(job, shard, resume, Vec::new());
        }
        Command::Merge { job, shards } => return run_audit_command(job, None, false, shards),
        Command::Tui { report, export_dir } => open_tui(&report, export_dir)?,
        Command::Html {
            report,
            out,
            gates,
            plots,
            page: page_args,
        } => {
            let r = xai_audit::report::io::read_report(&report)?;
            let gates = gates
                .iter()
                .map(|g| xai_audit::audit::gates::Gate::parse(g, "--gate"))
                .collect::<Result<Vec<_>, _>>()?;
            let verdicts = xai_audit::html::verdicts(&r, &gates)?;
            let page = xai_audit::html::render(&r, &report, &verdicts, &page_args.options())?;
            let out = out.unwrap_or_else(|| report.with_extension("html"));
            xai_audit::html::write(&page, &out, plots.as_deref())?;
            print_stdout(&format!(
                "page    {} ({} KiB)\n",
                out.display(),
                page.html.len().div_ceil(1024)
            ))?;
        }
        Command::Diff {
            old,
            new,
            json,
            threshold,
            html,
            gallery,
            plots,
        } => {
            use xai_audit::audit::diff;
            use xai_audit::report::io::read_report;
            let (a, b) = (read_report(&old)?, read_report(&new)?);
            let d = diff::diff_reports(
                &a,
                &old.display().to_string(),
                &b,
                &new.display().to_string(),
                threshold,
            )?;
            let mut page_note = String::new();
            if let Some(out) = html {
                use xai_audit::html::diff::{render_diff, DiffSide};
                let out = out.unwrap_or_else(|| new.with_extension("diff.html"));
                let (mut a, mut b) = (DiffSide::open(&old, a), DiffSide::open(&new, b));
                let page = render_diff(&d, &mut a, &mut b, gallery)?;
                xai_audit::html::write(&page, &out, plots.as_deref())?;
                page_note = format!(
                    "page    {} ({} KiB)\n",
                    out.display(),
                    page.html.len().div_ceil(1024)
                );
            }
            if json {
                // Standard output stays one JSON document.
                let mut text = serde_json::to_string_pretty(&d)?;
                text.push('\n');
                print_stdout(&text)?;
                eprint!("{page_note}");
            } else {
                print_stdout(&format!("{}{page_note}", diff::render(&d)))?;
            }
            if d.regression {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Schema { plan: false } => print_stdout(&xai_audit::report::io::schema_json())?,
        Command::Schema { plan: true } => {
            print_stdout(&xai_audit::plan::schema::plan_schema_json())?
        }
        Command::Kinds { name } => {
            print_stdout(&xai_audit::plan::kinds::listing(name.as_deref())?)?
        }
        Command::Bench {
            model,
            model_args,
            data: cli::DataArgs { data, arrays },
            limit,
            batch_size,
            steps,
            eps,
            step_size,
            attributions,
            engine,
        } => {
            let model_opts = model_args.options();
            if attributions {
                let text = xai_audit::bench::attributions::attribution_costs(
                    &model,
                    &model_opts,
                    data.as_deref(),
                    &arrays.options(),
                    limit,
                    batch_size,
                    engine.into(),
                )?;
                print_stdout(&text)?;
                return Ok(ExitCode::SUCCESS);
            }
            let text = xai_audit::bench::pgd_throughput(
                &model,
                &model_opts,
                data.as_deref(),
                &arrays.options(),
                &xai_audit::bench::PgdBench {
                    limit,
                    batch_size,
                    steps,
                    eps,
                    step_size,
                    engine: engine.into(),
                },
            )?;
            print_stdout(&text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn eval(
    model: &std::path::Path,
    model_opts: &xai_audit::model::ModelOptions,
    data: xai_audit::data::batch::DataRequest,
    batch_size: usize,
    engine: xai_audit::engine::Engine,
) -> anyhow::Result<String> {
    use xai_audit::audit::clean;
    let loaded = xai_audit::model::load_model_with(model, model_opts)?;
    warn_unused(&loaded);
    let selected = xai_audit::engine::select(&loaded.network, engine)?;
    if let Some(why) = &selected.fallback {
        eprintln!("warning: {why}");
    }
    let net = selected.classifier.as_ref();
    // The model's class names and input range complete the caller's request.
    let request = xai_audit::data::batch::DataRequest {
        class_names: Some(&loaded.network.spec().classes),
        range: Some(net.input_range()),
        ..data
    };
    let (dataset, notes) = xai_audit::data::batch::load_for_model_with_notes(
        &request,
        net.input_shape(),
        net.num_classes(),
    )?;
    for w in &notes.warnings {
        eprintln!("warning: {w}");
    }
    let predictions = clean::predict(net, &dataset, batch_size)?;
    Ok(xai_audit::audit::text::eval_summary(
        model,
        &dataset,
        &notes,
        &predictions.predicted,
        &loaded.network.spec().class_names(),
    ))
}

/// The terminal UI on a report.
fn open_tui(
    report: &std::path::Path,
    export_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let mut options = xai_audit::tui::Options::for_report(report);
    if let Some(dir) = export_dir {
        options.export_dir = dir;
    }
    xai_audit::tui::open(report, options)?;
    Ok(())
}

fn warn_unused(loaded: &xai_audit::model::LoadedModel) {
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let input = &loaded.network.spec().input;
    if !loaded.warnings.is_empty() && input.mean.is_none() && input.std.is_none() {
        eprintln!(
            "  hint: give them with --mean MEAN --std STD (comma-separated, one value per channel)"
        );
    }
    if !loaded.unused.is_empty() {
        eprintln!(
            "warning: {} tensors in the model file are not used by any layer: {}",
            loaded.unused.len(),
            loaded.unused.join(", ")
        );
    }
}

/// Prints to stdout; a closed pipe (`| head`) is not an error.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The machine's name for the shard files: `HOSTNAME` (set in a
/// Kubernetes pod; a shell keeps it unexported), else Slurm's
/// `SLURMD_NODENAME`.
fn host_name() -> Option<String> {
    ["HOSTNAME", "SLURMD_NODENAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .map(|h| h.trim().to_string())
        .find(|h| !h.is_empty())
}

/// `run` (one shard of the job — with the scheduler variables it was read
/// from, for `auto` — or resuming it) and `merge` (the job from its
/// shards): the job, its summary, gates, JUnit and the TUI.
fn run_audit_command(
    args: cli::JobArgs,
    shard: Option<((usize, usize), Option<String>)>,
    resume: bool,
    merge: Vec<std::path::PathBuf>,
) -> anyhow::Result<ExitCode> {
    use xai_audit::audit::job;
    let cli::JobArgs {
        model,
        model_args,
        data: cli::DataArgs { data, arrays },
        plan,
        preset,
        out,
        limit,
        seed,
        batch_size,
        gates,
        junit,
        engine,
        resize,
        save_images,
        tui,
        html,
        page,
    } = args;
    // Ctrl-C: finish the batch in hand, save it, say how to resume;
    // a second Ctrl-C stops at once.
    let _ = ctrlc::set_handler(|| {
        if xai_audit::audit::checkpoint::stop_requested() {
            std::process::exit(130);
        }
        eprintln!("\nstopping after the current batch (Ctrl-C again to stop now)...");
        xai_audit::audit::checkpoint::request_stop();
    });
    // Say so before a long run, not after it.
    let tui = tui && {
        let terminal = std::io::stdout().is_terminal();
        if !terminal {
            eprintln!(
                "warning: --tui: standard output is not a terminal, so the UI will not \
                 open; browse the report later with `xai-audit tui REPORT`"
            );
        }
        terminal
    };
    let gates = gates
        .iter()
        .map(|g| xai_audit::audit::gates::Gate::parse(g, "--gate"))
        .collect::<Result<Vec<_>, _>>()?;
    let model_opts = model_args.options();
    let opts = job::JobOptions {
        model,
        model_options: model_opts,
        data,
        arrays: arrays.options(),
        plan,
        preset: preset.preset(),
        out,
        limit,
        seed,
        batch_size,
        resize,
        save_images,
        engine: engine.into(),
        gates,
        resume,
        shard: shard.as_ref().map(|(k_of_n, _)| *k_of_n),
        merge,
        host: host_name(),
    };
    let mut sink = xai_audit::progress::ProgressSink::new();
    let output = match job::run_job(&opts, &mut sink)? {
        job::JobResult::Report(output) => output,
        job::JobResult::Shard(s) => {
            let ((k, n), source) = shard.unwrap_or(((1, 1), None));
            let source = source.map(|s| format!(" ({s})")).unwrap_or_default();
            let dir = match s.path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.display().to_string(),
                _ => ".".into(),
            };
            print_stdout(&format!(
                "shard {k}/{n}{source}: {} inputs attacked\nshard   {}\n(once all {n} are done, combine them with `xai-audit merge MODEL {dir} --out REPORT` and the same options)\n",
                s.inputs,
                s.path.display()
            ))?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let mut text = xai_audit::audit::text::run_summary(&output, opts.save_images.as_deref());
    if html {
        let path = output.report_path.with_extension("html");
        let page = xai_audit::html::render(
            &output.report,
            &output.report_path,
            &output.verdicts,
            &page.options(),
        )?;
        xai_audit::html::write(&page, &path, None)?;
        text.push_str(&format!("page    {}\n", path.display()));
    }
    if tui {
        open_tui(&output.report_path, None)?;
    }
    print_stdout(&text)?;
    if let Some(path) = &junit {
        let suite = output.report.model.path.clone();
        let xml = xai_audit::audit::gates::junit_xml(&suite, &output.verdicts);
        xai_audit::util::write_atomic(path, xml.as_bytes())?;
    }
    if output.verdicts.iter().any(|v| !v.passed) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
