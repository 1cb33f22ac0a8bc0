//! The extrapolation section (`summary.stress`): the reliability diagram
//! with ECE, the noise families' max-softmax histograms with AUROC, the
//! α-scaling curves and the corruption × severity heat map, each beside the
//! table of its numbers.

use std::fmt::Write as _;

use super::chart::{Chart, Series};
use super::{cell, escape, num, pct, Builder};
use crate::error::Result;
use crate::report::types::Report;
use crate::stress::alpha_scaling::AlphaInputs;
use crate::stress::types::{
    AlphaScalingSummary, CalibrationSummary, CorruptionsSummary, NoiseSummary, CONFIDENCE_BINS,
};

pub(super) fn extrapolation(b: &mut Builder, r: &Report) -> Result<()> {
    b.out
        .push_str("<section id=\"extrapolation\">\n<h2>Far from the training data</h2>\n");
    let Some(s) = &r.summary.stress else {
        b.out.push_str("<p class=\"missing\">No extrapolation check in this report: add <code>[[stress]]</code> entries to the plan (calibration, noise, α-scaling, corruptions; the default plan <code>attacks/mnist.toml</code> has them).</p>\n</section>\n");
        return Ok(());
    };
    for (i, c) in s.calibration.iter().enumerate() {
        calibration(b, i, c)?;
    }
    for (i, n) in s.noise.iter().enumerate() {
        noise(b, r, i, n)?;
    }
    for (i, a) in s.alpha_scaling.iter().enumerate() {
        alpha_scaling(b, i, a)?;
    }
    for (i, c) in s.corruptions.iter().enumerate() {
        corruptions(b, i, c)?;
    }
    for (kind, empty) in [
        ("calibration", s.calibration.is_empty()),
        ("noise", s.noise.is_empty()),
        ("alpha_scaling", s.alpha_scaling.is_empty()),
        ("corruptions", s.corruptions.is_empty()),
    ] {
        if empty {
            let _ = writeln!(
                b.out,
                "<p class=\"missing\">No <code>kind = \"{kind}\"</code> stress entry in this report's plan.</p>"
            );
        }
    }
    b.out.push_str("</section>\n");
    Ok(())
}

fn calibration(b: &mut Builder, i: usize, c: &CalibrationSummary) -> Result<()> {
    let k = |f: &str| format!("stress/calibration/{}/{f}", c.name);
    let mut table = format!(
        "<table>\n<tr><th>ECE</th>{}</tr>\n<tr><th>MCE</th>{}</tr>\n<tr><th>accuracy</th>{}</tr>\n<tr><th>mean confidence</th>{}</tr>\n</table>\n\
         <table>\n<thead><tr><th>max-softmax bin</th><th>inputs</th><th>accuracy</th><th>mean confidence</th></tr></thead>\n<tbody>\n",
        cell(&k("ece"), &num(c.ece)),
        cell(&k("mce"), &num(c.mce)),
        cell(&k("accuracy"), &pct(c.accuracy)),
        cell(&k("mean_confidence"), &num(c.mean_confidence)),
    );
    for (j, bin) in c.reliability.iter().enumerate() {
        let _ = writeln!(
            table,
            "<tr><td>{}–{}</td>{}<td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            num(bin.lower),
            num(bin.upper),
            cell(&k(&format!("bin/{j}/count")), &bin.count.to_string()),
            bin.accuracy.map(pct).unwrap_or_else(|| "–".into()),
            bin.mean_confidence.map(num).unwrap_or_else(|| "–".into()),
        );
    }
    table.push_str("</tbody>\n</table>\n");
    let mut edges: Vec<f64> = c.reliability.iter().map(|b| b.lower).collect();
    edges.extend(c.reliability.last().map(|b| b.upper));
    let chart = Chart::Binned {
        title: format!("Reliability diagram ({}), ECE {}", c.name, num(c.ece)),
        x_label: "max-softmax confidence".into(),
        y_label: "accuracy in the bin".into(),
        edges,
        series: vec![(
            "accuracy".into(),
            c.reliability.iter().map(|b| b.accuracy).collect(),
        )],
        y_range: 0.0..1.02,
        diagonal: true,
    };
    b.figure(
        &format!("reliability-{i}"),
        chart,
        "Accuracy against confidence in equal-width bins (Guo et al. 2017): a calibrated model's bars meet the diagonal. ECE is the input-weighted mean gap, MCE the largest.",
        &table,
    )
}

fn noise(b: &mut Builder, r: &Report, i: usize, n: &NoiseSummary) -> Result<()> {
    let k = |family: &str, f: &str| format!("stress/noise/{}/{family}/{f}", n.name);
    let mut table = format!(
        "<table>\n<thead><tr><th>inputs</th><th>MMC</th><th>≥ 0.95</th><th>≥ 0.99</th><th>AUROC</th><th>FPR at 95% TPR</th><th>most predicted class</th></tr></thead>\n<tbody>\n<tr><td>data</td>{}<td></td><td></td><td></td><td></td><td></td></tr>\n",
        cell(&format!("stress/noise/{}/data_mmc", n.name), &num(n.data_mmc)),
    );
    for f in &n.families {
        let fam = f.family.as_str();
        let _ = writeln!(
            table,
            "<tr><td>{fam}</td>{}{}{}{}{}<td>{} ({}){}</td></tr>",
            cell(&k(fam, "mmc"), &num(f.mmc)),
            cell(&k(fam, "share_above_0_95"), &pct(f.share_above_0_95)),
            cell(&k(fam, "share_above_0_99"), &pct(f.share_above_0_99)),
            cell(&k(fam, "auroc"), &num(f.auroc)),
            cell(&k(fam, "fpr_at_95_tpr"), &pct(f.fpr_at_95_tpr)),
            escape(&crate::data::class_label(
                &r.model.class_names,
                f.top_class as usize
            )),
            pct(f.top_class_share),
            if f.collapsed { ", collapsed" } else { "" },
        );
    }
    table.push_str("</tbody>\n</table>\n");
    let with_histograms = !n.data_confidence_histogram.is_empty()
        && n.families
            .iter()
            .all(|f| !f.confidence_histogram.is_empty());
    let chart = if with_histograms {
        let share = |h: &[usize]| -> Vec<Option<f64>> {
            let total = h.iter().sum::<usize>().max(1) as f64;
            h.iter().map(|&c| Some(c as f64 / total)).collect()
        };
        let mut series = vec![("data".to_string(), share(&n.data_confidence_histogram))];
        series.extend(n.families.iter().map(|f| {
            (
                f.family.as_str().to_string(),
                share(&f.confidence_histogram),
            )
        }));
        let edges = (0..=CONFIDENCE_BINS)
            .map(|j| j as f64 / CONFIDENCE_BINS as f64)
            .collect();
        let mut counts = String::from("<table>\n<thead><tr><th>inputs</th>");
        for j in 0..CONFIDENCE_BINS {
            let _ = write!(
                counts,
                "<th>{}–{}</th>",
                num(j as f64 / 10.0),
                num((j + 1) as f64 / 10.0)
            );
        }
        counts.push_str("</tr></thead>\n<tbody>\n");
        let mut row = |name: &str, key: String, h: &[usize]| {
            let _ = write!(counts, "<tr><td>{}</td>", escape(name));
            for (j, c) in h.iter().enumerate() {
                counts.push_str(&cell(&format!("{key}/{j}"), &c.to_string()));
            }
            counts.push_str("</tr>\n");
        };
        row(
            "data",
            format!("stress/noise/{}/data/histogram", n.name),
            &n.data_confidence_histogram,
        );
        for f in &n.families {
            let fam = f.family.as_str();
            row(fam, k(fam, "histogram"), &f.confidence_histogram);
        }
        counts.push_str("</tbody>\n</table>\n");
        table.push_str(&counts);
        Chart::Binned {
            title: format!("Max-softmax on the data and on noise ({})", n.name),
            x_label: "max-softmax confidence".into(),
            y_label: "share of inputs".into(),
            edges,
            series,
            y_range: 0.0..1.02,
            diagonal: false,
        }
    } else {
        table.push_str("<p class=\"missing\">This report predates the confidence histograms (schema version 10): rerun the audit to draw them.</p>\n");
        Chart::Bars {
            title: format!("Mean max-softmax on the data and on noise ({})", n.name),
            y_label: "mean max-softmax".into(),
            categories: std::iter::once("data".to_string())
                .chain(n.families.iter().map(|f| f.family.as_str().to_string()))
                .collect(),
            groups: vec![(
                "MMC".into(),
                std::iter::once(n.data_mmc)
                    .chain(n.families.iter().map(|f| f.mmc))
                    .collect(),
            )],
            y_range: 0.0..1.0,
        }
    };
    b.figure(
        &format!("noise-{i}"),
        chart,
        "How confident the model is on inputs that are not digits at all (Hein et al. 2019): a model that knows what it does not know puts noise at low confidence. AUROC is how well max-softmax separates the data from each family (1 = perfectly, 0.5 = not at all).",
        &table,
    )
}

fn alpha_scaling(b: &mut Builder, i: usize, a: &AlphaScalingSummary) -> Result<()> {
    let set_name = |s: AlphaInputs| {
        AlphaInputs::NAMES
            .iter()
            .find(|(_, v)| *v == s)
            .map(|(n, _)| *n)
            .unwrap_or("inputs")
    };
    let mut table = String::from(
        "<table>\n<thead><tr><th>inputs</th><th>count</th><th>reaching the target</th><th>median α</th><th>α quantiles</th></tr></thead>\n<tbody>\n",
    );
    let mut series = Vec::new();
    let mut points = String::from(
        "<table>\n<thead><tr><th>inputs</th><th>α</th><th>MMC scaled</th><th>MMC clipped</th></tr></thead>\n<tbody>\n",
    );
    for set in &a.sets {
        let name = set_name(set.inputs);
        let k = |f: &str| format!("stress/alpha_scaling/{}/{name}/{f}", a.name);
        let quantiles: Vec<String> = set
            .alpha_quantiles
            .iter()
            .map(|q| {
                format!(
                    "{}: {}",
                    pct(q.level),
                    q.alpha.map(num).unwrap_or_else(|| "not reached".into())
                )
            })
            .collect();
        let _ = writeln!(
            table,
            "<tr><td>{name}</td><td class=\"n\">{}</td>{}{}<td>{}</td></tr>",
            set.count,
            cell(&k("reached_share"), &pct(set.reached_share)),
            match set.median_alpha {
                Some(m) => cell(&k("median_alpha"), &num(m)),
                None => cell(&k("median_alpha"), "not reached"),
            },
            quantiles.join(", ")
        );
        for p in &set.curve {
            let _ = writeln!(
                points,
                "<tr><td>{name}</td><td class=\"n\">{}</td>{}{}</tr>",
                num(p.alpha),
                cell(&k(&format!("{}/mmc_scaled", p.alpha)), &num(p.mmc_scaled)),
                cell(&k(&format!("{}/mmc_clipped", p.alpha)), &num(p.mmc_clipped)),
            );
        }
        series.push(Series {
            name: format!("{name}, α·x"),
            points: set.curve.iter().map(|p| (p.alpha, p.mmc_scaled)).collect(),
        });
        series.push(Series {
            name: format!("{name}, clipped"),
            points: set.curve.iter().map(|p| (p.alpha, p.mmc_clipped)).collect(),
        });
    }
    table.push_str("</tbody>\n</table>\n");
    points.push_str("</tbody>\n</table>\n");
    table.push_str(&points);
    let chart = Chart::Lines {
        title: format!("α-scaling ({})", a.name),
        x_label: "α (log scale)".into(),
        y_label: "mean max-softmax".into(),
        series,
        y_range: 0.0..1.02,
        log_x: true,
    };
    b.figure(
        &format!("alpha-scaling-{i}"),
        chart,
        &format!(
            "Confidence on α·x as α grows (Hein et al. 2019): a ReLU network becomes arbitrarily confident far from the data. The table gives the smallest α reaching {} confidence.",
            num(a.target_confidence)
        ),
        &table,
    )
}

fn corruptions(b: &mut Builder, i: usize, c: &CorruptionsSummary) -> Result<()> {
    let k = |f: &str| format!("stress/corruptions/{}/{f}", c.name);
    let mut table = format!(
        "<table>\n<tr><th>clean accuracy</th>{}</tr>\n<tr><th>mean corrupted accuracy</th>{}</tr>\n</table>\n<table>\n<thead><tr><th>corruption</th>",
        cell(&k("clean_accuracy"), &pct(c.clean_accuracy)),
        cell(&k("mean_accuracy"), &pct(c.mean_accuracy)),
    );
    for s in &c.severities {
        let _ = write!(table, "<th>s{s}</th>");
    }
    table.push_str("<th>mean</th></tr></thead>\n<tbody>\n");
    for row in &c.corruptions {
        let name = row.corruption.as_str();
        let _ = write!(table, "<tr><td>{name}</td>");
        for (s, a) in c.severities.iter().zip(&row.accuracy) {
            table.push_str(&cell(&k(&format!("{name}/{s}")), &pct(*a)));
        }
        let _ = writeln!(
            table,
            "{}</tr>",
            cell(&k(&format!("{name}/mean")), &pct(row.mean_accuracy))
        );
    }
    table.push_str("</tbody>\n</table>\n");
    let chart = Chart::Heatmap {
        title: format!("Accuracy under corruption, % ({})", c.name),
        rows: c
            .corruptions
            .iter()
            .map(|r| r.corruption.as_str().to_string())
            .collect(),
        columns: c.severities.iter().map(|s| format!("s{s}")).collect(),
        values: c.corruptions.iter().map(|r| r.accuracy.clone()).collect(),
        range: 0.0..1.0,
        percent: true,
    };
    b.figure(
        &format!("corruptions-{i}"),
        chart,
        "Accuracy on the data under each corruption at each severity (after Hendrycks & Dietterich 2019): darker is more accurate.",
        &table,
    )
}
