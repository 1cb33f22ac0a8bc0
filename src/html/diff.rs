//! `xai-audit diff OLD NEW --html`: two reports of the same data on one
//! self-contained page, built from the single-report page's pieces (the
//! same [`Builder`], cells, policy and style sheet): both reports' provenance
//! side by side, the regression verdict as a badge, every headline figure
//! with its change, old-against-new charts, and the inputs whose verdict
//! flipped, with thumbnails of what each run's attack made of the newly
//! broken ones, read from each report's tensor sidecar.
//!
//! The numbers come from [`crate::audit::diff`] (the text and JSON diff read
//! the same [`ReportDiff`]), so the page and the exit code never disagree. A
//! missing sidecar costs the thumbnails only: the page keeps every number and
//! says what the images need.
//!
//! Cells carry `data-key`s as on the single page: `diff/<metric>/old|new|delta`
//! for the headlines, `flips/<attack>/…` and `flip/<attack>/<input>/…` for the
//! flipped inputs.

use std::fmt::Write as _;
use std::path::Path;

use super::chart::{Chart, Series};
use super::images::{thumbnail, Thumbnail, THUMBNAIL};
use super::{cell, document, escape, num, pct, Builder, Page};
use crate::audit::diff::{Better, Flips, MetricChange, ReportDiff};
use crate::error::Result;
use crate::report::images::{amplified_perturbation, to_image};
use crate::report::opened::{input_range, Sidecar};
use crate::report::types::{Report, SampleRecord};

/// Inputs shown per flip gallery unless told otherwise.
pub const GALLERY: usize = 6;

/// One side of the comparison: the report the diff was computed from, and
/// its sidecar for the thumbnails, or why it could not be opened.
#[derive(Debug)]
pub struct DiffSide {
    /// The report's path, as the page shows it.
    pub path: String,
    /// The report.
    pub report: Report,
    /// The report's sidecar, checked against it, or the reason it could
    /// not be opened.
    pub images: std::result::Result<Sidecar, String>,
}

impl DiffSide {
    /// `report` (read from `path`) with its sidecar, when it opens and
    /// matches the report; otherwise the reason, shown on the page.
    pub fn open(path: &Path, report: Report) -> Self {
        DiffSide {
            path: path.display().to_string(),
            // The report is already read: only the sidecar is opened.
            images: Sidecar::for_report(path, &report).map_err(|e| e.to_string()),
            report,
        }
    }

    /// `report` without images, saying `why`.
    pub fn without_images(path: &str, report: Report, why: &str) -> Self {
        DiffSide {
            path: path.to_string(),
            report,
            images: Err(why.to_string()),
        }
    }
}

/// The comparison page: `d` (computed from `old` and `new`), with up to
/// `gallery` newly broken inputs drawn per attack (0: none).
///
/// # Errors
/// A chart fails to draw; a sidecar that opened cannot be read.
pub fn render_diff(
    d: &ReportDiff,
    old: &mut DiffSide,
    new: &mut DiffSide,
    gallery: usize,
) -> Result<Page> {
    let mut b = Builder::default();
    header(&mut b.out, d, old, new);
    headline_table(&mut b.out, d);
    b.out
        .push_str("<section id=\"charts\">\n<h2>Old against new</h2>\n");
    accuracy_chart(&mut b, d, &old.report, &new.report)?;
    eps_curves(&mut b, &old.report, &new.report)?;
    b.out.push_str("</section>\n");
    flipped(&mut b, d, old, new, gallery)?;
    let (a, z) = (
        super::header::model_name(&old.report),
        super::header::model_name(&new.report),
    );
    let title = if a == z {
        format!("xai-audit diff: {a}")
    } else {
        format!("xai-audit diff: {a} → {z}")
    };
    Ok(Page {
        html: document(&title, DIFF_STYLE, &b.out),
        charts: b.charts,
    })
}

/// Whether `metric` is a share (an accuracy, a consistency, a calibration
/// error, a mean confidence): shown in percent, changes in percentage points.
/// Every headline [`crate::audit::diff`] finds today is one; a metric that is
/// not gets plain numbers.
fn is_share(metric: &str) -> bool {
    const SHARES: [&str; 7] = [
        "clean_accuracy",
        "robust_accuracy.",
        "stress.ece",
        "stress.corruption_accuracy",
        "stress.noise_mmc.",
        "equivariance.consistency.",
        "equivariance.worst_case_accuracy",
    ];
    SHARES.iter().any(|p| {
        if p.ends_with('.') {
            metric.starts_with(p)
        } else {
            metric == *p
        }
    })
}

/// A headline value as the page shows it.
fn value_text(metric: &str, v: f64) -> String {
    if is_share(metric) {
        pct(v)
    } else {
        num(v)
    }
}

/// `new − old`: in percentage points for a share, else plain; always signed,
/// and `0` (unsigned) when it rounds away.
fn delta_text(metric: &str, old: f64, new: f64) -> String {
    if is_share(metric) {
        let pp = 100.0 * (new - old);
        if pp.abs() < 0.005 {
            "0.00 pp".into()
        } else {
            format!("{pp:+.2} pp")
        }
    } else {
        let delta = new - old;
        if delta == 0.0 {
            "0".into()
        } else if delta > 0.0 {
            format!("+{}", num(delta))
        } else {
            num(delta)
        }
    }
}

/// Which way a change went, given the better direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Better,
    Worse,
    Same,
}

fn change(better: Better, old: f64, new: f64) -> Change {
    let gain = match better {
        Better::Higher => new - old,
        Better::Lower => old - new,
    };
    if gain == 0.0 {
        Change::Same
    } else if gain > 0.0 {
        Change::Better
    } else {
        Change::Worse
    }
}

/// The badges a reviewer reads first: regression or not at the threshold
/// (naming the regressed figures), the model changed or not, the data.
fn badges(d: &ReportDiff) -> String {
    let regressed: Vec<&str> = d
        .metrics
        .iter()
        .filter(|m| m.regression)
        .map(|m| m.metric.as_str())
        .collect();
    let mut out = if regressed.is_empty() {
        format!(
            "<span class=\"badge ok\" data-key=\"diff/regression\">no regression beyond {} pp</span>",
            d.threshold_pp
        )
    } else {
        format!(
            "<span class=\"badge bad\" data-key=\"diff/regression\">regression beyond {} pp: {}</span>",
            d.threshold_pp,
            escape(&regressed.join(", "))
        )
    };
    out.push_str(if d.model_changed {
        "<span class=\"badge warn\" data-key=\"diff/model_changed\">model changed</span>"
    } else {
        "<span class=\"badge ok\" data-key=\"diff/model_changed\">same model</span>"
    });
    let _ = write!(
        out,
        "<span class=\"badge ok\" data-key=\"diff/count\">same data, {} inputs</span>",
        d.count
    );
    out
}

/// The SHA-256 prefix the page shows (the full hash is its tooltip).
fn sha_prefix(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn header(out: &mut String, d: &ReportDiff, old: &DiffSide, new: &DiffSide) {
    let (a, z) = (
        super::header::model_name(&old.report),
        super::header::model_name(&new.report),
    );
    let title = if a == z { a } else { format!("{a} → {z}") };
    let _ = writeln!(
        out,
        "<header>\n<h1>Audit diff: {}</h1>\n<p class=\"badges\">{}</p>",
        escape(&title),
        badges(d)
    );
    let (o, n) = (&old.report, &new.report);
    let rows: [(&str, &str, String, String); 9] = [
        ("report", "report", old.path.clone(), new.path.clone()),
        (
            "model",
            "model/path",
            o.model.path.clone(),
            n.model.path.clone(),
        ),
        (
            "model SHA-256",
            "model/sha256",
            o.model.sha256.clone(),
            n.model.sha256.clone(),
        ),
        (
            "data",
            "data/source",
            o.data.source.clone(),
            n.data.source.clone(),
        ),
        (
            "inputs",
            "data/count",
            o.data.count.to_string(),
            n.data.count.to_string(),
        ),
        (
            "plan seed",
            "plan/seed",
            o.plan.seed.to_string(),
            n.plan.seed.to_string(),
        ),
        (
            "tool",
            "tool",
            super::header::tool(o),
            super::header::tool(n),
        ),
        (
            "started",
            "timings/started_at",
            o.timings.started_at.clone(),
            n.timings.started_at.clone(),
        ),
        (
            "time",
            "timings/total_seconds",
            format!("{:.1} s", o.timings.total_seconds),
            format!("{:.1} s", n.timings.total_seconds),
        ),
    ];
    out.push_str(
        "<div class=\"scroll\"><table class=\"facts\">\n<thead><tr><th></th><th>old</th><th>new</th></tr></thead>\n<tbody>\n",
    );
    for (label, key, a, z) in rows {
        let side = |which: &str, v: &str| {
            if key == "model/sha256" {
                format!(
                    "<td><code data-key=\"{which}/{key}\" title=\"{}\">{}</code></td>",
                    escape(v),
                    escape(sha_prefix(v))
                )
            } else {
                format!(
                    "<td data-key=\"{which}/{}\">{}</td>",
                    escape(key),
                    escape(v)
                )
            }
        };
        // Rows that differ stand out, except those that always do.
        let differs = a != z
            && !matches!(
                key,
                "report" | "timings/started_at" | "timings/total_seconds"
            );
        let _ = writeln!(
            out,
            "<tr{}><th>{}</th>{}{}</tr>",
            if differs { " class=\"changed\"" } else { "" },
            escape(label),
            side("old", &a),
            side("new", &z)
        );
    }
    out.push_str("</tbody>\n</table></div>\n</header>\n");
}

/// One headline's row: old, new, change, better direction, regression.
fn metric_row(m: &MetricChange) -> String {
    let k = |f: &str| format!("diff/{}/{f}", m.metric);
    let value = |f: &str, v: Option<f64>| match v {
        Some(v) => cell(&k(f), &value_text(&m.metric, v)),
        None => "<td class=\"n\">–</td>".to_string(),
    };
    let delta = match (m.old, m.new) {
        (Some(o), Some(n)) => {
            let class = match change(m.better, o, n) {
                Change::Better => "n better",
                Change::Worse => "n worse",
                Change::Same => "n",
            };
            format!(
                "<td class=\"{class}\" data-key=\"{}\">{}</td>",
                escape(&k("delta")),
                escape(&delta_text(&m.metric, o, n))
            )
        }
        (None, Some(_)) => "<td>added</td>".into(),
        (Some(_), None) => "<td>removed</td>".into(),
        (None, None) => "<td>–</td>".into(),
    };
    let better = match m.better {
        Better::Higher => "higher",
        Better::Lower => "lower",
    };
    let regression = if m.regression {
        format!(
            "<td data-key=\"{}\"><span class=\"badge bad\">regression</span></td>",
            escape(&k("regression"))
        )
    } else {
        format!("<td data-key=\"{}\">no</td>", escape(&k("regression")))
    };
    format!(
        "<tr><td>{}</td>{}{}{delta}<td>{better}</td>{regression}</tr>",
        escape(&m.metric),
        value("old", m.old),
        value("new", m.new)
    )
}

fn headline_table(out: &mut String, d: &ReportDiff) {
    let _ = writeln!(
        out,
        "<section id=\"headlines\">\n<h2>Headline figures</h2>\n\
         <p>Change is new − old, in percentage points for shares. A figure that got worse by more than {} pp is a regression.</p>",
        d.threshold_pp
    );
    out.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>metric</th><th>old</th><th>new</th><th>change</th><th>better</th><th>regression</th></tr></thead>\n<tbody>\n");
    for m in &d.metrics {
        out.push_str(&metric_row(m));
        out.push('\n');
    }
    out.push_str("</tbody>\n</table></div>\n</section>\n");
}

/// Clean and robust accuracy, old beside new, for the attacks with a single
/// budget in both reports (an ε list's members are on the ε chart); the bars
/// of an attack only one report has would read as 0 %, so it is left out.
fn accuracy_chart(b: &mut Builder, d: &ReportDiff, old: &Report, new: &Report) -> Result<()> {
    let single = |r: &Report, name: &str| {
        r.summary
            .attacks
            .iter()
            .any(|a| a.name == name && a.curve.is_none())
    };
    let mut categories = Vec::new();
    for m in &d.metrics {
        let (Some(o), Some(n)) = (m.old, m.new) else {
            continue;
        };
        let category = if m.metric == "clean_accuracy" {
            "clean".to_string()
        } else if let Some(attack) = m.metric.strip_prefix("robust_accuracy.") {
            if !(single(old, attack) && single(new, attack)) {
                continue;
            }
            attack.to_string()
        } else {
            continue;
        };
        categories.push((category, o, n));
    }
    let mut table = String::from(
        "<table>\n<thead><tr><th>accuracy</th><th>old</th><th>new</th></tr></thead>\n<tbody>\n",
    );
    for (c, o, n) in &categories {
        let _ = writeln!(
            table,
            "<tr><td>{}</td>{}{}</tr>",
            escape(c),
            cell(&format!("bars/{c}/old"), &pct(*o)),
            cell(&format!("bars/{c}/new"), &pct(*n))
        );
    }
    table.push_str("</tbody>\n</table>\n");
    let chart = Chart::Bars {
        title: "Clean and robust accuracy, old and new".into(),
        y_label: "accuracy (%)".into(),
        categories: categories.iter().map(|c| c.0.clone()).collect(),
        groups: vec![
            (
                "old".into(),
                categories.iter().map(|c| c.1 * 100.0).collect(),
            ),
            (
                "new".into(),
                categories.iter().map(|c| c.2 * 100.0).collect(),
            ),
        ],
        y_range: 0.0..105.0,
    };
    b.figure(
        "diff-accuracy",
        chart,
        "Clean accuracy and each attack's robust accuracy in the old and the new report.",
        &table,
    )
}

/// Robust accuracy against ε, both reports' curves on one chart per norm
/// (ε units differ between norms): `old <curve>` and `new <curve>`.
fn eps_curves(b: &mut Builder, old: &Report, new: &Report) -> Result<()> {
    let (co, cn) = (&old.summary.eps_curves, &new.summary.eps_curves);
    if co.is_empty() && cn.is_empty() {
        b.out.push_str("<p class=\"missing\">Neither report has an ε curve: give an attack a list of budgets (<code>eps = [0.05, 0.1, 0.2]</code>) to compare robust accuracy as ε grows.</p>\n");
        return Ok(());
    }
    // Curve names in order of first appearance, old first.
    let mut names: Vec<(String, String)> = Vec::new();
    for c in co.iter().chain(cn) {
        let key = (c.name.clone(), c.norm.to_string());
        if !names.contains(&key) {
            names.push(key);
        }
    }
    let mut norms: Vec<String> = names.iter().map(|n| n.1.clone()).collect();
    let mut seen = std::collections::BTreeSet::new();
    norms.retain(|n| seen.insert(n.clone()));
    let find = |r: &Report, name: &str, norm: &str| {
        r.summary
            .eps_curves
            .iter()
            .find(|c| c.name == name && c.norm.to_string() == norm)
            .cloned()
    };
    for (i, norm) in norms.iter().enumerate() {
        let mut series = Vec::new();
        let mut table = String::from(
            "<table>\n<thead><tr><th>curve</th><th>ε</th><th>old</th><th>new</th><th>change</th></tr></thead>\n<tbody>\n",
        );
        for (name, _) in names.iter().filter(|n| &n.1 == norm) {
            let (o, n) = (find(old, name, norm), find(new, name, norm));
            for (which, curve) in [("old", &o), ("new", &n)] {
                if let Some(c) = curve {
                    series.push(Series {
                        name: format!("{which} {name}"),
                        points: c
                            .points
                            .iter()
                            .map(|p| (p.eps, p.robust_accuracy * 100.0))
                            .collect(),
                    });
                }
            }
            let mut eps: Vec<f64> = o
                .iter()
                .chain(&n)
                .flat_map(|c| c.points.iter().map(|p| p.eps))
                .collect();
            eps.sort_by(f64::total_cmp);
            eps.dedup();
            let at = |c: &Option<crate::report::types::EpsCurve>, e: f64| {
                c.as_ref()?
                    .points
                    .iter()
                    .find(|p| p.eps == e)
                    .map(|p| p.robust_accuracy)
            };
            for e in eps {
                let k = |f: &str| format!("curve/{name}/{e}/{f}");
                let (vo, vn) = (at(&o, e), at(&n, e));
                let shown = |f: &str, v: Option<f64>| match v {
                    Some(v) => cell(&k(f), &pct(v)),
                    None => "<td class=\"n\">–</td>".into(),
                };
                let delta = match (vo, vn) {
                    (Some(a), Some(z)) => cell(&k("delta"), &delta_text("robust_accuracy.", a, z)),
                    _ => "<td class=\"n\">–</td>".into(),
                };
                let _ = writeln!(
                    table,
                    "<tr><td>{}</td><td class=\"n\">{}</td>{}{}{delta}</tr>",
                    escape(name),
                    num(e),
                    shown("old", vo),
                    shown("new", vn)
                );
            }
        }
        table.push_str("</tbody>\n</table>\n");
        let chart = Chart::Lines {
            title: format!("Robust accuracy against ε ({norm}), old and new"),
            x_label: format!("ε ({norm}, input units)"),
            y_label: "robust accuracy (%)".into(),
            series,
            y_range: 0.0..105.0,
            log_x: false,
        };
        b.figure(
            &format!("diff-eps-curve-{i}"),
            chart,
            &format!("Robust accuracy as the {norm} budget grows, in the old and the new report."),
            &table,
        )?;
    }
    if co.is_empty() || cn.is_empty() {
        let _ = writeln!(
            b.out,
            "<p class=\"missing\">Only the {} report has ε curves.</p>",
            if co.is_empty() { "new" } else { "old" }
        );
    }
    Ok(())
}

fn class_name(r: &Report, class: u32) -> String {
    r.model
        .class_names
        .get(class as usize)
        .cloned()
        .unwrap_or_else(|| class.to_string())
}

/// A prediction as a card shows it: the class's name and its probability
/// when the top-5 list has it.
fn prediction_text(
    r: &Report,
    class: u32,
    top5: &[crate::report::types::ClassProbability],
) -> String {
    let name = class_name(r, class);
    match top5.iter().find(|p| p.class == class) {
        Some(p) => format!("{name} ({})", pct(p.probability)),
        None => name,
    }
}

fn indices_text(v: &[usize]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let shown: Vec<String> = v.iter().map(usize::to_string).collect();
    shown.join(", ")
}

/// A thumbnail with its caption, or a placeholder saying why there is none.
fn thumb(t: Option<&Thumbnail>, caption: &str, alt: &str) -> String {
    match t {
        Some(t) => super::images::thumb(t, alt, &escape(caption)),
        None => format!(
            "<div class=\"thumb\"><div class=\"none\">no sidecar</div><span>{}</span></div>",
            escape(caption)
        ),
    }
}

/// One side's thumbnails of an input, as PNG data URIs.
struct Thumbs {
    clean: Thumbnail,
    /// The attack's adversarial image and its amplified perturbation.
    attacked: Option<(Thumbnail, Thumbnail)>,
}

/// Input `position`'s clean image and, for `attack`, its adversarial image
/// and amplified perturbation, from one side's sidecar (`None` without it).
fn thumbs_of(side: &mut DiffSide, position: usize, attack: Option<&str>) -> Result<Option<Thumbs>> {
    let Ok(sidecar) = &mut side.images else {
        return Ok(None);
    };
    let [c, h, w] = side.report.data.input_shape;
    let range = input_range(&side.report.model.spec);
    let clean = sidecar.row(crate::sidecar::CLEAN_INPUTS, position)?;
    let attacked = match attack {
        Some(a) => {
            let adv = sidecar.row(&crate::sidecar::adversarial_inputs(a), position)?;
            let delta = amplified_perturbation(&adv, &clean);
            Some((
                thumbnail(&to_image(&adv, c, h, w, range), THUMBNAIL)?,
                thumbnail(&to_image(&delta, c, h, w, (0.0, 1.0)), THUMBNAIL)?,
            ))
        }
        None => None,
    };
    Ok(Some(Thumbs {
        clean: thumbnail(&to_image(&clean, c, h, w, range), THUMBNAIL)?,
        attacked,
    }))
}

/// One newly broken input: its thumbnails and each report's predictions.
fn card(f: &Flips, index: usize, old: &mut DiffSide, new: &mut DiffSide) -> Result<String> {
    let position = |r: &Report| r.samples.iter().position(|s| s.index == index);
    let (Some(po), Some(pn)) = (position(&old.report), position(&new.report)) else {
        return Ok(String::new());
    };
    let attack = (f.name != "clean").then_some(f.name.as_str());
    let (to, tn) = (thumbs_of(old, po, attack)?, thumbs_of(new, pn, attack)?);
    let (so, sn): (&SampleRecord, &SampleRecord) =
        (&old.report.samples[po], &new.report.samples[pn]);
    let k = |field: &str| format!("flip/{}/{index}/{field}", f.name);
    let mut out = format!(
        "<article class=\"card\" data-key=\"{}\">\n<h4>input {index}, label <span data-key=\"{}\">{}</span></h4>\n<div class=\"thumbs\">",
        escape(&format!("flip/{}/{index}", f.name)),
        escape(&k("label")),
        escape(&class_name(&new.report, sn.label))
    );
    // The clean input is the same data in both; the new run's, else the old's.
    let clean = tn.as_ref().or(to.as_ref()).map(|t| &t.clean);
    out.push_str(&thumb(clean, "clean", &format!("input {index}, clean")));
    if attack.is_some() {
        for (which, thumbs) in [("old", &to), ("new", &tn)] {
            let adv = thumbs.as_ref().and_then(|t| t.attacked.as_ref());
            out.push_str(&thumb(
                adv.map(|x| &x.0),
                &format!("{which} adversarial"),
                &format!("input {index}, the {which} run's adversarial"),
            ));
            out.push_str(&thumb(
                adv.map(|x| &x.1),
                &format!("{which} perturbation"),
                &format!("input {index}, the {which} run's perturbation, amplified"),
            ));
        }
    }
    out.push_str("</div>\n<table class=\"preds\">\n");
    let pred = |r: &Report, s: &SampleRecord, which: &str| -> String {
        let clean = format!(
            "<td data-key=\"{}\">{}</td>",
            escape(&k(&format!("{which}/clean"))),
            escape(&prediction_text(r, s.prediction, &s.top5))
        );
        let attacked = match attack.and_then(|a| {
            let at = r.summary.attacks.iter().position(|x| x.name == a)?;
            s.attacks.get(at)
        }) {
            Some(x) => format!(
                "<td data-key=\"{}\">{}</td>",
                escape(&k(&format!("{which}/adversarial"))),
                escape(&prediction_text(r, x.prediction, &x.top5))
            ),
            None => String::new(),
        };
        format!("<tr><th>{which}</th>{clean}{attacked}</tr>\n")
    };
    if attack.is_some() {
        out.push_str("<tr><th></th><th>clean</th><th>attacked</th></tr>\n");
    } else {
        out.push_str("<tr><th></th><th>prediction</th></tr>\n");
    }
    out.push_str(&pred(&old.report, so, "old"));
    out.push_str(&pred(&new.report, sn, "new"));
    out.push_str("</table>\n</article>\n");
    Ok(out)
}

fn flipped(
    b: &mut Builder,
    d: &ReportDiff,
    old: &mut DiffSide,
    new: &mut DiffSide,
    gallery: usize,
) -> Result<()> {
    b.out.push_str("<section id=\"flips\">\n<h2>Flipped inputs</h2>\n<p>Newly broken: robust (for the clean predictions: correct) in the old report, broken (misclassified) in the new one; newly robust the other way round.</p>\n");
    let mut missing = Vec::new();
    for (which, side) in [("old", &*old), ("new", &*new)] {
        if let Err(why) = &side.images {
            missing.push(format!(
                "<li>{which} ({}): {}</li>",
                escape(&side.path),
                escape(why)
            ));
        }
    }
    if gallery > 0 && !missing.is_empty() {
        let _ = writeln!(
            b.out,
            "<div class=\"missing\" id=\"no-sidecar\"><p>The thumbnails need each report's tensor sidecar (the <code>.safetensors</code> file beside it); the numbers do not.</p><ul>{}</ul></div>",
            missing.join("")
        );
    }
    b.out.push_str("<table>\n<thead><tr><th>attack</th><th>newly broken</th><th>newly robust</th></tr></thead>\n<tbody>\n");
    for f in &d.flips {
        let _ = writeln!(
            b.out,
            "<tr><td>{}</td>{}{}</tr>",
            escape(&f.name),
            cell(
                &format!("flips/{}/newly_broken/count", f.name),
                &f.newly_broken.len().to_string()
            ),
            cell(
                &format!("flips/{}/newly_robust/count", f.name),
                &f.newly_robust.len().to_string()
            ),
        );
    }
    b.out.push_str("</tbody>\n</table>\n");
    for f in &d.flips {
        if f.newly_broken.is_empty() && f.newly_robust.is_empty() {
            continue;
        }
        let (worse, better) = if f.name == "clean" {
            ("Now misclassified", "Now correct")
        } else {
            ("Newly broken", "Newly robust")
        };
        let _ = writeln!(
            b.out,
            "<h3>{}</h3>\n<p>{worse}: <span data-key=\"{}\">{}</span></p>\n<p>{better}: <span data-key=\"{}\">{}</span></p>",
            escape(&f.name),
            escape(&format!("flips/{}/newly_broken", f.name)),
            indices_text(&f.newly_broken),
            escape(&format!("flips/{}/newly_robust", f.name)),
            indices_text(&f.newly_robust),
        );
        if gallery == 0 || f.newly_broken.is_empty() {
            continue;
        }
        let mut shown = f.newly_broken.clone();
        shown.sort_unstable();
        shown.truncate(gallery);
        if shown.len() < f.newly_broken.len() {
            let _ = writeln!(
                b.out,
                "<p class=\"note\">The first {} of {}, lowest index first (the page's gallery size, an option of the <code>diff</code> command, sets how many).</p>",
                shown.len(),
                f.newly_broken.len()
            );
        }
        b.out.push_str("<div class=\"cards\">\n");
        for index in shown {
            let c = card(f, index, old, new)?;
            b.out.push_str(&c);
        }
        b.out.push_str("</div>\n");
    }
    b.out.push_str("</section>\n");
    Ok(())
}

/// The diff page's additions to the shared style sheet.
const DIFF_STYLE: &str = "
.scroll{overflow-x:auto}
table.facts td{overflow-wrap:anywhere}
tr.changed td{background:#fff4d6}
td.better{color:#1b5e20}td.worse{color:#b71c1c;font-weight:600}
.note{color:#555;font-size:.9em}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:8px 0 16px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 10px;max-width:100%;box-sizing:border-box}
.card h4{margin:0 0 6px;font-size:.95em}
.thumbs{display:flex;flex-wrap:wrap;gap:6px}
.thumb{display:flex;flex-direction:column;align-items:center;font-size:.75em;color:#444;max-width:96px;text-align:center}
.thumb img{border:1px solid #ccc;image-rendering:pixelated;max-width:96px;height:auto}
.thumb .none{width:84px;height:84px;border:1px dashed #bbb;display:flex;align-items:center;justify-content:center;color:#888}
table.preds{font-size:.85em;margin-top:6px}
";

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(metrics: Vec<MetricChange>) -> ReportDiff {
        let regression = metrics.iter().any(|m| m.regression);
        ReportDiff {
            old: "a.json".into(),
            new: "b.json".into(),
            model_changed: false,
            count: 10,
            metrics,
            flips: Vec::new(),
            threshold_pp: 1.0,
            regression,
        }
    }

    fn metric(name: &str, old: f64, new: f64, better: Better, regression: bool) -> MetricChange {
        MetricChange {
            metric: name.into(),
            old: Some(old),
            new: Some(new),
            better,
            regression,
        }
    }

    #[test]
    fn shares_change_in_signed_percentage_points_others_in_plain_numbers() {
        assert!(is_share("clean_accuracy"));
        assert!(is_share("robust_accuracy.pgd-linf-0.1"));
        assert!(is_share("stress.noise_mmc.uniform"));
        assert!(!is_share("clean_accuracy_extra"));
        assert!(!is_share("attack.pgd.median_perturbation_linf"));
        assert_eq!(delta_text("clean_accuracy", 0.9, 0.85), "-5.00 pp");
        assert_eq!(delta_text("clean_accuracy", 0.85, 0.9), "+5.00 pp");
        // Rounding noise is no change, and has no sign.
        assert_eq!(delta_text("clean_accuracy", 0.1 + 0.2, 0.3), "0.00 pp");
        assert_eq!(delta_text("median_l2", 1.5, 2.0), "+0.5000");
        assert_eq!(delta_text("median_l2", 2.0, 1.5), "-0.5000");
        assert_eq!(delta_text("median_l2", 2.0, 2.0), "0");
        assert_eq!(value_text("stress.ece", 0.0512), "5.12%");
        assert_eq!(value_text("median_l2", 1.5), "1.500");
    }

    #[test]
    fn a_change_is_better_or_worse_by_the_metrics_direction() {
        assert_eq!(change(Better::Higher, 0.5, 0.6), Change::Better);
        assert_eq!(change(Better::Higher, 0.6, 0.5), Change::Worse);
        // ECE going up is worse though the number grew.
        assert_eq!(change(Better::Lower, 0.05, 0.08), Change::Worse);
        assert_eq!(change(Better::Lower, 0.08, 0.05), Change::Better);
        assert_eq!(change(Better::Lower, 0.08, 0.08), Change::Same);
        let row = metric_row(&metric("stress.ece", 0.05, 0.08, Better::Lower, true));
        assert!(row.contains("class=\"n worse\""), "{row}");
        assert!(row.contains(">+3.00 pp<"), "{row}");
        assert!(row.contains("data-key=\"diff/stress.ece/delta\""), "{row}");
        assert!(row.contains(">regression<"), "{row}");
    }

    #[test]
    fn the_badge_names_every_regressed_metric_and_only_those() {
        let d = diff(vec![
            metric("clean_accuracy", 0.99, 0.99, Better::Higher, false),
            metric("robust_accuracy.pgd", 0.8, 0.7, Better::Higher, true),
            metric("stress.ece", 0.02, 0.05, Better::Lower, true),
            metric("robust_accuracy.fgsm", 0.8, 0.9, Better::Higher, false),
        ]);
        let b = badges(&d);
        assert!(
            b.contains("badge bad\" data-key=\"diff/regression\">regression beyond 1 pp: robust_accuracy.pgd, stress.ece<"),
            "{b}"
        );
        assert!(!b.contains("fgsm"), "{b}");
        assert!(b.contains("same model"), "{b}");
        let ok = badges(&diff(vec![metric(
            "clean_accuracy",
            0.99,
            0.985,
            Better::Higher,
            false,
        )]));
        assert!(
            ok.contains("badge ok\" data-key=\"diff/regression\">no regression beyond 1 pp<"),
            "{ok}"
        );
        let mut changed = diff(Vec::new());
        changed.model_changed = true;
        assert!(badges(&changed).contains("model changed"));
    }

    #[test]
    fn a_page_renders_without_sidecars_and_escapes_report_strings() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("reports/examples/mnist_cnn-quick.json");
        let report = crate::report::io::read_report(&path).unwrap();
        let mut changed = report.clone();
        changed.model.path = "<b>&model</b>".into();
        changed.summary.attacks[0].robust_accuracy -= 0.1;
        let d = crate::audit::diff::diff_reports(&report, "a", &changed, "b", 1.0).unwrap();
        let mut old = DiffSide::without_images("a", report, "no sidecar here");
        let mut new = DiffSide::without_images("b", changed, "<nope>");
        let page = render_diff(&d, &mut old, &mut new, 6).unwrap();
        assert!(page.html.contains("&lt;b&gt;&amp;model&lt;/b&gt;"));
        assert!(!page.html.contains("<b>&model"));
        assert!(page.html.contains("&lt;nope&gt;"));
        assert!(page.html.contains("id=\"no-sidecar\""));
        assert!(!page.html.contains("<script"));
        assert!(!page.html.contains("<img"));
        assert!(page
            .html
            .contains("regression beyond 1 pp: robust_accuracy.fgsm-linf-0.1"));
        assert_eq!(page.charts.len(), 1, "one bar chart, no ε curve");
    }
}
