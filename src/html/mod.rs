//! One self-contained HTML page from a report, for reviewers and model
//! cards: no script, no network, no CDN (a content-security policy forbids
//! them), charts inlined as SVG ([`chart`]) with their numbers in a table
//! beside each, every string from the report escaped.
//!
//! Each table cell that shows a report figure carries `data-key` naming the
//! figure (`attack/<name>/robust_accuracy`, …), so tests (and scrapers) can
//! check the page against the report. Sections a report lacks say so and
//! how to get them.

pub mod chart;

use std::fmt::Write as _;
use std::path::Path;

use crate::attribution::report::AttributionSummary;
use crate::audit::gates::Gate;
use crate::audit::gates::Verdict;
use crate::error::{Error, Result};
use crate::report::types::{AttackSummary, Report};
use crate::util::write_atomic;

use chart::{Chart, Series};

/// The page's content-security policy: nothing loads from anywhere, no
/// script runs; styles and images come from the page itself.
pub const CSP: &str =
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/// `s` with HTML's special characters escaped (text and attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A share as the page shows it: percent with two decimals.
pub fn pct(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

/// A plain number as the page shows it: four significant digits.
pub fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (4 - 1 - v.abs().log10().floor() as i32).max(0) as usize;
    if v.abs() < 1e-3 || v.abs() >= 1e6 {
        format!("{v:.3e}")
    } else {
        format!("{v:.digits$}")
    }
}

/// A cell holding report figure `key`.
fn cell(key: &str, text: &str) -> String {
    format!(
        "<td class=\"n\" data-key=\"{}\">{}</td>",
        escape(key),
        escape(text)
    )
}

fn opt_cell(key: &str, v: Option<f64>, f: fn(f64) -> String) -> String {
    match v {
        Some(v) => cell(key, &f(v)),
        None => "<td class=\"n\">–</td>".to_string(),
    }
}

/// A rendered page and the charts on it.
#[derive(Debug, Clone)]
pub struct Page {
    /// The HTML document.
    pub html: String,
    /// Each chart by its figure id, in page order (for `--plots`).
    pub charts: Vec<(String, Chart)>,
}

/// The page for `report`, with `verdicts` (its CI gates checked) as badges.
///
/// # Errors
/// A chart fails to draw (the embedded font cannot be read).
pub fn render(report: &Report, verdicts: &[Verdict]) -> Result<Page> {
    let mut b = Builder::default();
    header(&mut b.out, report, verdicts);
    robustness(&mut b, report)?;
    attributions(&mut b, report)?;
    missing(&mut b.out, report);
    let title = format!("xai-audit: {}", model_name(report));
    let body = b.out;
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape(&title)
    );
    Ok(Page {
        html,
        charts: b.charts,
    })
}

/// The report's CI gates (its plan's `[gates]`, then `extra`) checked
/// against it, for the badges.
///
/// # Errors
/// A gate names a metric the plan cannot have.
pub fn verdicts(report: &Report, extra: &[Gate]) -> Result<Vec<Verdict>> {
    let origin = report
        .plan_origin
        .as_ref()
        .map(|o| o.file.clone())
        .unwrap_or_else(|| "the report's plan".into());
    let mut gates = crate::plan::gates::plan_gates(&report.plan, &origin)?;
    gates.extend(extra.iter().cloned());
    crate::audit::gates::evaluate(report, &gates)
}

/// Writes `page` to `out` atomically and, with `plots`, each chart there as
/// `<id>.svg` and `<id>.png` (twice [`chart::SIZE`]), for papers and slides.
///
/// # Errors
/// A file cannot be written; a chart fails to draw.
pub fn write(page: &Page, out: &Path, plots: Option<&Path>) -> Result<()> {
    if let Some(dir) = plots {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (id, chart) in &page.charts {
            write_atomic(&dir.join(format!("{id}.svg")), chart.svg()?.as_bytes())?;
            write_atomic(&dir.join(format!("{id}.png")), &chart.png(2)?)?;
        }
    }
    write_atomic(out, page.html.as_bytes())
}

/// The page's body as it is built, and its charts.
#[derive(Default)]
struct Builder {
    out: String,
    charts: Vec<(String, Chart)>,
}

impl Builder {
    /// A chart beside the table of its numbers.
    fn figure(&mut self, id: &str, chart: Chart, caption: &str, table: &str) -> Result<()> {
        let svg = chart.svg()?;
        let _ = writeln!(
            self.out,
            "<figure id=\"{}\">\n<figcaption>{}</figcaption>\n\
             <div class=\"chart\" role=\"img\" aria-label=\"{}\">{svg}</div>\n<div class=\"numbers\">{table}</div>\n</figure>",
            escape(id),
            escape(caption),
            escape(caption)
        );
        self.charts.push((id.to_string(), chart));
        Ok(())
    }
}

fn model_name(report: &Report) -> String {
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

fn header(out: &mut String, r: &Report, verdicts: &[Verdict]) {
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
    let rows = [
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
        (
            "tool",
            format!(
                "{} {}{}",
                r.tool.name,
                r.tool.version,
                r.tool
                    .engine
                    .as_deref()
                    .map(|e| format!(", {e} engine"))
                    .unwrap_or_default()
            ),
            "tool",
        ),
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

fn budget(a: &AttackSummary) -> String {
    match a.eps {
        Some(e) => format!("{} {}", a.norm, num(e)),
        None => format!("{} minimum norm", a.norm),
    }
}

fn robustness(b: &mut Builder, r: &Report) -> Result<()> {
    let s = &r.summary;
    b.out
        .push_str("<section id=\"robustness\">\n<h2>Robustness</h2>\n");
    if s.attacks.is_empty() {
        b.out.push_str("<p class=\"missing\">No attack in this report: add <code>[[attack]]</code> entries to the plan (the default plan, <code>attacks/mnist.toml</code>, has FGSM, PGD and AutoAttack).</p>\n</section>\n");
        return Ok(());
    }
    let budgeted: Vec<&AttackSummary> = s.attacks.iter().filter(|a| a.curve.is_none()).collect();
    let mut table = String::from(
        "<table>\n<thead><tr><th>attack</th><th>kind</th><th>budget</th><th>robust accuracy</th><th>success rate</th><th>median L∞</th><th>median L2</th></tr></thead>\n<tbody>\n",
    );
    for a in &s.attacks {
        let k = |f: &str| format!("attack/{}/{f}", a.name);
        let _ = writeln!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{}</td>{}{}{}{}</tr>",
            escape(&a.name),
            escape(&a.kind),
            escape(&budget(a)),
            cell(&k("robust_accuracy"), &pct(a.robust_accuracy)),
            cell(&k("attack_success_rate"), &pct(a.attack_success_rate)),
            opt_cell(
                &k("median_perturbation_linf"),
                a.median_perturbation_linf,
                num
            ),
            opt_cell(&k("median_perturbation_l2"), a.median_perturbation_l2, num),
        );
    }
    table.push_str("</tbody>\n</table>\n");
    let shown: Vec<&AttackSummary> = if budgeted.is_empty() {
        s.attacks.iter().collect()
    } else {
        budgeted
    };
    let chart = Chart::Bars {
        title: "Clean and robust accuracy per attack".into(),
        y_label: "accuracy (%)".into(),
        categories: shown.iter().map(|a| a.name.clone()).collect(),
        groups: vec![
            ("clean".into(), vec![s.clean_accuracy * 100.0; shown.len()]),
            (
                "robust".into(),
                shown.iter().map(|a| a.robust_accuracy * 100.0).collect(),
            ),
        ],
        y_range: 0.0..105.0,
    };
    b.figure("robust-accuracy", chart,
        "Clean accuracy and the robust accuracy each attack leaves (share of all inputs still classified correctly at the best adversarial found).",
        &table,
    )?;
    if !s.eps_curves.is_empty() {
        let mut table = String::from(
            "<table>\n<thead><tr><th>curve</th><th>norm</th><th>ε</th><th>robust accuracy</th></tr></thead>\n<tbody>\n",
        );
        for c in &s.eps_curves {
            for p in &c.points {
                let _ = writeln!(
                    table,
                    "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td>{}</tr>",
                    escape(&c.name),
                    c.norm,
                    num(p.eps),
                    cell(
                        &format!("curve/{}/{}/robust_accuracy", c.name, p.eps),
                        &pct(p.robust_accuracy)
                    ),
                );
            }
        }
        table.push_str("</tbody>\n</table>\n");
        // One chart per norm: ε units differ between them.
        let mut norms: Vec<String> = s.eps_curves.iter().map(|c| c.norm.to_string()).collect();
        norms.dedup();
        for (i, norm) in norms.iter().enumerate() {
            let series = s
                .eps_curves
                .iter()
                .filter(|c| &c.norm.to_string() == norm)
                .map(|c| Series {
                    name: c.name.clone(),
                    points: c
                        .points
                        .iter()
                        .map(|p| (p.eps, p.robust_accuracy * 100.0))
                        .collect(),
                })
                .collect();
            let chart = Chart::Lines {
                title: format!("Robust accuracy against ε ({norm})"),
                x_label: format!("ε ({norm}, input units)"),
                y_label: "robust accuracy (%)".into(),
                series,
                y_range: 0.0..105.0,
            };
            let t = if i + 1 == norms.len() {
                table.as_str()
            } else {
                ""
            };
            b.figure(
                &format!("eps-curve-{i}"),
                chart,
                &format!("Robust accuracy as the {norm} budget grows, per ε-list entry."),
                t,
            )?;
        }
    }
    if !s.threat_models.is_empty() {
        b.out.push_str("<h3>Every attack together, per budget</h3>\n<table>\n<thead><tr><th>norm</th><th>ε</th><th>attacks</th><th>robust accuracy</th></tr></thead>\n<tbody>\n");
        for t in &s.threat_models {
            let _ = writeln!(
                b.out,
                "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td>{}</tr>",
                t.norm,
                num(t.eps),
                escape(&t.attacks.join(", ")),
                cell(
                    &format!("threat/{}/{}/robust_accuracy", t.norm, t.eps),
                    &pct(t.robust_accuracy)
                ),
            );
        }
        b.out.push_str("</tbody>\n</table>\n");
    }
    b.out.push_str("</section>\n");
    Ok(())
}

fn attributions(b: &mut Builder, report: &Report) -> Result<()> {
    let entries = &report.summary.attributions;
    b.out
        .push_str("<section id=\"attributions\">\n<h2>Explanations</h2>\n");
    if entries.is_empty() {
        b.out.push_str("<p class=\"missing\">No attribution in this report: add <code>[[attribution]]</code> entries to the plan (<code>attacks/explanations.toml</code> runs every method with its sanity checks).</p>\n</section>\n");
        return Ok(());
    }
    b.out.push_str("<table>\n<thead><tr><th>entry</th><th>method</th><th>target</th><th>deletion AUC</th><th>insertion AUC</th><th>max-sensitivity</th><th>Gini</th><th>ROAD MoRF / LeRF</th><th>infidelity (median)</th><th>faithfulness corr.</th><th>mean |δ|</th><th>model calls per map</th></tr></thead>\n<tbody>\n");
    for e in entries {
        let k = |f: &str| format!("attribution/{}/{f}", e.name);
        let c = &e.clean;
        let _ = writeln!(b.out,
            "<tr><td>{}</td><td>{}</td><td>{}</td>{}{}{}{}{}{}{}{}{}</tr>",
            escape(&e.name),
            escape(&e.method),
            escape(&e.target),
            opt_cell(&k("deletion_auc"), c.mean_deletion_auc, num),
            opt_cell(&k("insertion_auc"), c.mean_insertion_auc, num),
            opt_cell(&k("max_sensitivity"), c.mean_max_sensitivity, num),
            opt_cell(&k("sparseness"), c.mean_sparseness, num),
            match (c.mean_road_morf_auc, c.mean_road_lerf_auc) {
                (Some(m), Some(l)) => format!(
                    "<td class=\"n\"><span data-key=\"{}\">{}</span> / <span data-key=\"{}\">{}</span></td>",
                    escape(&k("road_morf_auc")),
                    num(m),
                    escape(&k("road_lerf_auc")),
                    num(l)
                ),
                _ => "<td class=\"n\">–</td>".to_string(),
            },
            opt_cell(&k("median_infidelity"), c.median_infidelity, num),
            opt_cell(
                &k("faithfulness_correlation"),
                c.mean_faithfulness_correlation,
                num
            ),
            opt_cell(
                &k("mean_abs_convergence_delta"),
                c.mean_abs_convergence_delta,
                num
            ),
            cell(
                &k("model_calls_per_map"),
                &e.model_calls_per_map.to_string()
            ),
        );
    }
    b.out.push_str("</tbody>\n</table>\n");
    curves(b, report)?;
    let checked: Vec<&AttributionSummary> = entries
        .iter()
        .filter(|e| e.sanity.as_ref().is_some_and(|s| !s.cascading.is_empty()))
        .collect();
    if checked.is_empty() {
        b.out.push_str("<p class=\"missing\">No model-randomization sanity check: set <code>sanity = [\"cascading\", \"random_logit\"]</code> on an attribution entry (Adebayo et al. 2018).</p>\n");
    } else {
        let mut table = String::from(
            "<table>\n<thead><tr><th>entry</th><th>layers randomized</th><th>Spearman |map|</th><th>SSIM</th><th>top-k overlap</th></tr></thead>\n<tbody>\n",
        );
        let mut series = Vec::new();
        let mut verdicts = String::new();
        for e in &checked {
            let Some(s) = &e.sanity else { continue };
            let mut points = Vec::new();
            for (i, step) in s.cascading.iter().enumerate() {
                let key = format!("sanity/{}/cascading/{i}", e.name);
                let _ = writeln!(
                    table,
                    "<tr><td>{}</td><td>{} (down to {})</td>{}{}{}</tr>",
                    escape(&e.name),
                    i + 1,
                    escape(&step.layer),
                    opt_cell(
                        &format!("{key}/spearman_abs"),
                        step.similarity.spearman_abs,
                        num
                    ),
                    opt_cell(&format!("{key}/ssim"), step.similarity.ssim, num),
                    cell(
                        &format!("{key}/top_k_overlap"),
                        &num(step.similarity.top_k_overlap)
                    ),
                );
                if let Some(v) = step.similarity.spearman_abs {
                    points.push(((i + 1) as f64, v));
                }
            }
            series.push(Series {
                name: e.name.clone(),
                points,
            });
            if s.survives_randomization == Some(true) {
                let _ = write!(
                    verdicts,
                    "<li data-key=\"sanity/{}/survives\"><strong>{}</strong> keeps a mean Spearman |map| above {} with every layer re-initialized: its maps may explain the input rather than the model.</li>",
                    escape(&e.name),
                    escape(&e.name),
                    num(s.threshold)
                );
            }
        }
        table.push_str("</tbody>\n</table>\n");
        let chart = Chart::Lines {
            title: "Cascading model-parameter randomization".into(),
            x_label: "layers re-initialized, output first".into(),
            y_label: "Spearman |map| vs trained".into(),
            series,
            y_range: -0.2..1.05,
        };
        b.figure("sanity-cascading", chart,
            "How far each method's maps stay the same as the model's layers are re-initialized from the output down (Adebayo et al. 2018): a faithful map decorrelates.",
            &table,
        )?;
        if !verdicts.is_empty() {
            let _ = writeln!(b.out, "<ul class=\"warnings\">{verdicts}</ul>");
        }
    }
    b.out.push_str("</section>\n");
    Ok(())
}

/// The mean deletion/insertion and ROAD curves of the clean maps, one chart
/// each, their points in a table beside it.
fn curves(b: &mut Builder, report: &Report) -> Result<()> {
    let entries = &report.summary.attributions;
    let road_fractions = |name: &str| -> Vec<f64> {
        report
            .plan
            .attributions
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.road_fractions.clone())
            .unwrap_or_default()
    };
    type Pick = fn(&AttributionSummary) -> Option<&Vec<f64>>;
    /// Figure id, title, x label, and each curve's label and field.
    type Kind<'a> = (&'a str, &'a str, &'a str, [(&'a str, Pick); 2]);
    let kinds: [Kind; 2] = [
        (
            "deletion-insertion",
            "Deletion and insertion (Petsiuk et al. 2018)",
            "share of pixels removed or inserted",
            [
                ("deletion", |e| e.clean.mean_deletion_curve.as_ref()),
                ("insertion", |e| e.clean.mean_insertion_curve.as_ref()),
            ],
        ),
        (
            "road",
            "ROAD, noisy linear imputation (Rong et al. 2022)",
            "share of pixels removed",
            [
                ("MoRF", |e| e.clean.mean_road_morf_curve.as_ref()),
                ("LeRF", |e| e.clean.mean_road_lerf_curve.as_ref()),
            ],
        ),
    ];
    for (id, title, x_label, picks) in kinds {
        let mut series = Vec::new();
        let mut table = String::from(
            "<table>\n<thead><tr><th>entry</th><th>curve</th><th>points (share removed: class probability)</th></tr></thead>\n<tbody>\n",
        );
        for e in entries {
            for (label, pick) in picks {
                let Some(ys) = pick(e) else { continue };
                let xs: Vec<f64> = if id == "road" {
                    road_fractions(&e.name)
                } else {
                    let n = ys.len().max(2) - 1;
                    (0..ys.len()).map(|t| t as f64 / n as f64).collect()
                };
                if xs.len() != ys.len() {
                    continue;
                }
                let points: Vec<(f64, f64)> = xs.iter().copied().zip(ys.iter().copied()).collect();
                let text: Vec<String> = points
                    .iter()
                    .map(|(x, y)| format!("{}: {}", num(*x), num(*y)))
                    .collect();
                let _ = writeln!(
                    table,
                    "<tr><td>{}</td><td>{label}</td><td>{}</td></tr>",
                    escape(&e.name),
                    text.join(", ")
                );
                series.push(Series {
                    name: format!("{} {label}", e.name),
                    points,
                });
            }
        }
        if series.is_empty() {
            continue;
        }
        table.push_str("</tbody>\n</table>\n");
        let chart = Chart::Lines {
            title: title.into(),
            x_label: x_label.into(),
            y_label: "class probability".into(),
            series,
            y_range: 0.0..1.02,
        };
        b.figure(
            id,
            chart,
            &format!("{title}: the explained class's mean softmax probability as pixels are removed in the map's order (a faithful map falls fast under deletion and MoRF, slowly under LeRF)."),
            &table,
        )?;
    }
    Ok(())
}

/// What the page does not show yet for this report, and how to get it.
fn missing(out: &mut String, r: &Report) {
    let mut items = Vec::new();
    if r.summary.stress.is_none() {
        items.push("Extrapolation (noise, scaling, corruptions, calibration): add <code>[[stress]]</code> entries (<code>attacks/thorough.toml</code> has them).");
    } else {
        items.push("Extrapolation results are in the report's <code>summary.stress</code>; their charts are not on this page yet.");
    }
    if r.summary.equivariance.is_none() {
        items.push("Equivariance (shifts, rotations, Lie derivatives): add <code>[[equivariance]]</code> entries (<code>attacks/thorough.toml</code> has them).");
    } else {
        items.push("Equivariance results are in the report's <code>summary.equivariance</code>; their charts are not on this page yet.");
    }
    out.push_str("<section id=\"not-shown\">\n<h2>Not on this page</h2>\n<ul>\n");
    for i in items {
        let _ = writeln!(out, "<li class=\"missing\">{i}</li>");
    }
    out.push_str("</ul>\n</section>\n");
}

/// The page's style sheet: one column on a phone, charts beside their
/// tables from 1100 px.
const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:16px}
h1{font-size:1.6em;margin:.2em 0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:1.6em}
table{border-collapse:collapse;margin:8px 0;font-size:.9em;background:#fff}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
table.facts th{background:#f0f0f0;font-weight:600}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;margin:2px 4px 2px 0;font-size:.85em;color:#fff}
.badge.ok{background:#2e7d32}.badge.bad{background:#c62828}.badge.warn{background:#ef6c00}
.warnings li{color:#8a1c1c}.missing{color:#555;font-style:italic}
figure{margin:16px 0;display:grid;grid-template-columns:1fr;gap:8px}
figure .chart svg{width:100%;height:auto;max-width:640px}
figure .numbers{overflow-x:auto}
figcaption{font-size:.9em;color:#444}
@media (min-width:1100px){figure{grid-template-columns:660px 1fr}figcaption{grid-column:1 / span 2}}
";
