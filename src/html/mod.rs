//! One self-contained HTML page from a report, for reviewers and model
//! cards: no script, no network, no CDN (a content-security policy forbids
//! them), charts inlined as SVG ([`chart`]) with their numbers in a table
//! beside each, every string from the report escaped, and galleries of the
//! inputs attacks broke drawn from the tensor sidecar as PNG data URIs
//! ([`images`]).
//!
//! Each table cell that shows a report figure carries `data-key` naming the
//! figure (`attack/<name>/robust_accuracy`, …), so tests (and scrapers) can
//! check the page against the report. Sections a report lacks say so and
//! how to get them.

pub mod chart;
pub mod diff;
mod equivariance;
mod explanations;
mod extrapolation;
mod gallery;
mod header;
pub mod images;
mod robustness;

use std::fmt::Write as _;
use std::path::Path;

use crate::audit::gates::Gate;
use crate::audit::gates::Verdict;
use crate::error::{Error, Result};
use crate::report::types::Report;
use crate::util::write_atomic;

use chart::Chart;

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

/// Inputs per gallery by default: the 1,000-input default report's page
/// (ten attacks, two attribution entries, five noise families) weighs
/// about 0.7 MB with it, well under the 5 MB a page may weigh.
pub const DEFAULT_GALLERY: usize = 6;

/// What the page shows beyond the report's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageOptions {
    /// Inputs per gallery (per attack, per noise family); 0: no galleries.
    pub gallery: usize,
    /// The longer side of each gallery image, in pixels.
    pub thumbnail: u32,
}

impl Default for PageOptions {
    fn default() -> Self {
        PageOptions {
            gallery: DEFAULT_GALLERY,
            thumbnail: images::THUMBNAIL,
        }
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

/// The page for `report`, read from `path`, with `verdicts` (its CI gates
/// checked) as badges and, per `options`, galleries drawn from the tensor
/// sidecar beside `path` (a missing one leaves a note, not an error).
///
/// # Errors
/// A chart fails to draw (the embedded font cannot be read).
pub fn render(
    report: &Report,
    path: &Path,
    verdicts: &[Verdict],
    options: &PageOptions,
) -> Result<Page> {
    let mut b = Builder::default();
    header::header(&mut b.out, report, verdicts);
    robustness::robustness(&mut b, report)?;
    explanations::attributions(&mut b, report)?;
    extrapolation::extrapolation(&mut b, report)?;
    equivariance::equivariance(&mut b, report)?;
    gallery::galleries(&mut b.out, report, path, options);
    let title = format!("xai-audit: {}", header::model_name(report));
    Ok(Page {
        html: document(&title, "", &b.out),
        charts: b.charts,
    })
}

/// The whole document around `body`: the policy, the viewport, `title`,
/// and the style sheet with `extra_style` after it.
fn document(title: &str, extra_style: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}{extra_style}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape(title)
    )
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

/// The page's style sheet: one column on a phone, charts beside their
/// tables from 1100 px.
const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
main{max-width:1320px;margin:0 auto;padding:16px}
h1{font-size:1.6em;margin:.2em 0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:1.6em}
table{border-collapse:collapse;margin:8px 0;font-size:.88em;background:#fff;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.facts th{background:#f0f0f0;font-weight:600}
table.facts td{overflow-wrap:anywhere}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;margin:2px 4px 2px 0;font-size:.85em;color:#fff}
.badge.ok{background:#2e7d32}.badge.bad{background:#c62828}.badge.warn{background:#ef6c00}
.warnings li{color:#8a1c1c}.missing{color:#555;font-style:italic}
figure{margin:16px 0;display:grid;grid-template-columns:minmax(0,1fr);gap:8px}
figure .chart svg{width:100%;height:auto;max-width:640px}
figure .numbers{min-width:0}
figcaption{font-size:.9em;color:#444}
@media (min-width:1100px){figure{grid-template-columns:minmax(0,640px) minmax(0,1fr)}figcaption{grid-column:1 / span 2}}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,340px),1fr));gap:12px;margin:8px 0 16px}
.gallery.noise{grid-template-columns:repeat(auto-fill,minmax(120px,1fr))}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;min-width:0}
.card-title{margin:0 0 6px;font-weight:600}
.thumbs{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:6px}
.thumb{display:flex;flex-direction:column;align-items:center;font-size:.75em;color:#444;text-align:center;max-width:100%}
.thumb img{image-rendering:pixelated;max-width:100%;height:auto;border:1px solid #ccc;background:#000}
table.preds{font-size:.8em;margin:6px 0 0;width:100%}table.preds th{font-weight:600;background:#f7f7f7}
p.count{font-size:.9em;color:#444;margin:4px 0}
";
