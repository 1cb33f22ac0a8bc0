//! The page's header: what was audited (model, data, plan, seed, tool,
//! timings) and the verdicts a reviewer reads first (sanity flags, CI gates,
//! warnings) as badges.

use std::fmt::Write as _;

use super::{escape, num, pct};
use crate::audit::gates::Verdict;
use crate::report::types::Report;

/// The tool that wrote the report: name, version and engine.
pub(super) fn tool(r: &Report) -> String {
    format!(
        "{} {}{}",
        r.tool.name,
        r.tool.version,
        r.tool
            .engine
            .as_deref()
            .map(|e| format!(", {e} engine"))
            .unwrap_or_default()
    )
}

/// The model's name: the spec's `name`, else the file name.
pub(super) fn model_name(report: &Report) -> String {
    report
        .model
        .spec
        .get("name")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            std::path::Path::new(&report.model.path)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| report.model.path.clone())
        })
}

pub(super) fn header(out: &mut String, r: &Report, verdicts: &[Verdict]) {
    let _ = writeln!(
        out,
        "<header>\n<h1>Audit of {}</h1>",
        escape(&model_name(r))
    );
    let mut badges = String::new();
    if r.summary.sanity.is_empty() {
        badges.push_str(
            "<span class=\"badge ok\" data-key=\"sanity/count\">no sanity check fired</span>",
        );
    } else {
        for f in &r.summary.sanity {
            let _ = write!(
                badges,
                "<span class=\"badge bad\" data-key=\"sanity/{}\" title=\"{}\">{}</span>",
                escape(&f.check),
                escape(&f.message),
                escape(&f.check)
            );
        }
    }
    for v in verdicts {
        let _ = write!(
            badges,
            "<span class=\"badge {}\" data-key=\"gate/{}\">{} {}: {}</span>",
            if v.passed { "ok" } else { "bad" },
            escape(&v.gate.to_string()),
            escape(&v.gate.to_string()),
            if v.passed { "holds" } else { "fails" },
            v.value
                .map(num)
                .unwrap_or_else(|| "not in the report".into())
        );
    }
    if !r.warnings.is_empty() {
        let _ = write!(
            badges,
            "<span class=\"badge warn\" data-key=\"warnings/count\">{} warning{}</span>",
            r.warnings.len(),
            if r.warnings.len() == 1 { "" } else { "s" }
        );
    }
    let _ = writeln!(out, "<p class=\"badges\">{badges}</p>");
    let origin = match &r.plan_origin {
        Some(o) => match &o.preset {
            Some(p) => format!("preset {p} ({})", o.file),
            None => o.file.clone(),
        },
        None => "not recorded".into(),
    };
    let mut rows = vec![
        ("model", r.model.path.clone(), "model/path"),
        ("model SHA-256", r.model.sha256.clone(), "model/sha256"),
        (
            "parameters",
            r.model.parameter_count.to_string(),
            "model/parameter_count",
        ),
        (
            "classes",
            r.model.class_names.len().to_string(),
            "model/classes",
        ),
        ("data", r.data.source.clone(), "data/source"),
        ("inputs", r.data.count.to_string(), "data/count"),
        (
            "input shape",
            format!("{:?}", r.data.input_shape),
            "data/input_shape",
        ),
        ("plan", origin, "plan/origin"),
        ("seed", r.plan.seed.to_string(), "plan/seed"),
        ("tool", tool(r), "tool"),
        (
            "started",
            r.timings.started_at.clone(),
            "timings/started_at",
        ),
        (
            "time",
            format!("{:.1} s", r.timings.total_seconds),
            "timings/total_seconds",
        ),
        (
            "clean accuracy",
            pct(r.summary.clean_accuracy),
            "summary/clean_accuracy",
        ),
    ];
    if let Some(shards) = &r.timings.shards {
        rows.push((
            "shards",
            format!("{}: {}", shards.count, shards.load_balance),
            "timings/shards",
        ));
    }
    out.push_str("<table class=\"facts\">\n");
    for (k, v, key) in rows {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td data-key=\"{}\">{}</td></tr>",
            escape(k),
            escape(key),
            escape(&v)
        );
    }
    out.push_str("</table>\n");
    if !r.warnings.is_empty() || !r.summary.sanity.is_empty() {
        out.push_str("<ul class=\"warnings\">\n");
        for f in &r.summary.sanity {
            let _ = writeln!(
                out,
                "<li><strong>{}</strong>: {}</li>",
                escape(&f.check),
                escape(&f.message)
            );
        }
        for w in &r.warnings {
            let _ = writeln!(out, "<li>{}</li>", escape(w));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</header>\n");
}
