//! The attribution part of the report: the types of the per-input records
//! and summaries (part of the public report format, see
//! `reports/schema.json`), building them from an [`AttributionResults`]
//! ([`section`], which `report::build` places), the
//! sidecar tensors (`attr/<name>/clean`, `attr/<name>/<attack>`, the
//! deletion/insertion curves and any kept noise) and the lines of the
//! summary table.

use candle_core::{Device, Tensor};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::metrics::auc;
use super::road::{curve_area, RoadCurves};
use super::run::{top_k_pixels, AttributionResults, VariantResults};
use super::sanity::{SanityResults, Similarity};
use crate::error::Result;
use crate::stats::{mean, median};

/// One map's metrics (absent: not asked for in the plan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapRecord {
    /// The class whose logit the map explains.
    pub target: u32,
    /// Integrated Gradients: `Σ attributions − (z(x) − z(baseline))`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convergence_delta: Option<f64>,
    /// Area under the deletion curve (lower: more faithful).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_auc: Option<f64>,
    /// Area under the insertion curve (higher: more faithful).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insertion_auc: Option<f64>,
    /// Largest relative change of the map under small uniform input noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sensitivity: Option<f64>,
    /// Gini index of the absolute attributions (higher: sparser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparseness: Option<f64>,
    /// ROAD, most relevant pixels removed first: the explained class's
    /// probability over the removal fractions, area divided by their span
    /// (lower: more faithful).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub road_morf_auc: Option<f64>,
    /// ROAD, least relevant pixels removed first (higher: more faithful).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub road_lerf_auc: Option<f64>,
    /// ROAD: `road_lerf_auc − road_morf_auc` (higher: more faithful).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub road_gap: Option<f64>,
    /// Infidelity: mean squared error of `Iᵀ·map` as a prediction of
    /// `f(x) − f(x − I)` under Gaussian noise `I`, in squared score units
    /// (lower: more faithful).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infidelity: Option<f64>,
    /// Faithfulness correlation: Pearson correlation of random subsets'
    /// attribution sums with the score's drop when they are removed, in
    /// [−1, 1] (higher: more faithful); absent also when undefined (a
    /// constant map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faithfulness_correlation: Option<f64>,
}

/// One input's map under one attack, and how far it moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttackMapRecord {
    /// Attack name.
    pub attack: String,
    /// The adversarial input's map metrics.
    pub map: MapRecord,
    /// Share of the clean map's top-k pixels (by |score|) still in the
    /// adversarial map's top-k.
    pub top_k_overlap: f64,
    /// Spearman's rank correlation of the clean and adversarial |scores|
    /// (null when a map is constant).
    pub spearman: Option<f64>,
}

/// One input's attributions for one plan entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleAttribution {
    /// The plan entry's name.
    pub name: String,
    /// The clean input's map.
    pub clean: MapRecord,
    /// One per attack of the entry's `on`, in plan order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attacks: Vec<AttackMapRecord>,
}

/// Means over the inputs of one set of maps (absent: not computed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSummary {
    /// Mean |convergence delta| (Integrated Gradients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_abs_convergence_delta: Option<f64>,
    /// Largest |convergence delta|.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_abs_convergence_delta: Option<f64>,
    /// Mean deletion AUC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_deletion_auc: Option<f64>,
    /// Mean insertion AUC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_insertion_auc: Option<f64>,
    /// Mean deletion curve (probability after 0, 1/steps, ..., all pixels removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_deletion_curve: Option<Vec<f64>>,
    /// Mean insertion curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_insertion_curve: Option<Vec<f64>>,
    /// Mean max-sensitivity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_max_sensitivity: Option<f64>,
    /// Mean sparseness (Gini).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_sparseness: Option<f64>,
    /// Mean ROAD MoRF area (mean height of the curve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_road_morf_auc: Option<f64>,
    /// Mean ROAD LeRF area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_road_lerf_auc: Option<f64>,
    /// Mean ROAD gap, LeRF − MoRF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_road_gap: Option<f64>,
    /// Mean ROAD MoRF curve: the class probability at each of the entry's
    /// `road_fractions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_road_morf_curve: Option<Vec<f64>>,
    /// Mean ROAD LeRF curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_road_lerf_curve: Option<Vec<f64>>,
    /// Share of inputs whose prediction is still the explained class, per
    /// ROAD fraction, MoRF order (the paper's accuracy curve for predicted
    /// targets; the probability above every other class's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub road_morf_kept: Option<Vec<f64>>,
    /// Mean infidelity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_infidelity: Option<f64>,
    /// Median infidelity (squared errors have heavy tails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_infidelity: Option<f64>,
    /// Mean faithfulness correlation (undefined ones skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_faithfulness_correlation: Option<f64>,
}

/// How one attack moved one entry's maps, over all inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttackAttributionSummary {
    /// Attack name.
    pub attack: String,
    /// The adversarial maps' metrics.
    pub metrics: MetricSummary,
    /// Mean top-k overlap with the clean maps.
    pub mean_top_k_overlap: f64,
    /// Median top-k overlap.
    pub median_top_k_overlap: f64,
    /// Mean Spearman correlation with the clean maps (constant maps skipped).
    pub mean_spearman: Option<f64>,
    /// Median Spearman correlation.
    pub median_spearman: Option<f64>,
}

/// One plan entry's aggregate results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributionSummary {
    /// The entry's name.
    pub name: String,
    /// The method.
    pub method: String,
    /// `predicted`, `label` or a class index.
    pub target: String,
    /// k of the top-k overlap, pixels.
    pub top_k: usize,
    /// Model calls per map (gradient evaluations, or forward passes for
    /// occlusion), metrics excluded.
    pub model_calls_per_map: usize,
    /// The clean maps.
    pub clean: MetricSummary,
    /// One per attack of `on`, in plan order.
    pub attacks: Vec<AttackAttributionSummary>,
    /// The sanity checks (model-parameter randomization, random logit), when
    /// the entry asked for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sanity: Option<SanityResults>,
}

/// One entry's time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributionTiming {
    /// The entry's name.
    pub name: String,
    /// Seconds spent on all its maps and metrics.
    pub seconds: f64,
    /// Seconds per map (per input and input set), metrics included.
    pub seconds_per_map: f64,
}

fn record(v: &VariantResults, i: usize, fractions: &[f64]) -> MapRecord {
    let road = v.road.as_ref().map(|r| {
        (
            curve_area(fractions, &r[i].morf),
            curve_area(fractions, &r[i].lerf),
        )
    });
    MapRecord {
        target: v.classes[i],
        convergence_delta: v.convergence_delta.as_ref().map(|d| d[i]),
        deletion_auc: v.deletion.as_ref().map(|c| auc(&c[i])),
        insertion_auc: v.insertion.as_ref().map(|c| auc(&c[i])),
        max_sensitivity: v.max_sensitivity.as_ref().map(|s| s[i]),
        sparseness: v.sparseness.as_ref().map(|s| s[i]),
        road_morf_auc: road.map(|r| r.0),
        road_lerf_auc: road.map(|r| r.1),
        road_gap: road.map(|r| r.1 - r.0),
        infidelity: v.infidelity.as_ref().map(|s| s[i]),
        faithfulness_correlation: v.faithfulness_correlation.as_ref().and_then(|s| s[i]),
    }
}

fn mean_curve(curves: &[Vec<f32>]) -> Vec<f64> {
    let points = curves.first().map_or(0, Vec::len);
    (0..points)
        .map(|t| mean(curves.iter().map(|c| c[t] as f64)).unwrap_or(0.0))
        .collect()
}

fn summarize(v: &VariantResults, fractions: &[f64]) -> MetricSummary {
    let road = v.road.as_ref();
    let areas = |pick: fn(&RoadCurves) -> &Vec<f32>| {
        road.and_then(|r| mean(r.iter().map(|c| curve_area(fractions, pick(c)))))
    };
    let curves = |pick: fn(&RoadCurves) -> &Vec<f32>| {
        road.map(|r| mean_curve(&r.iter().map(|c| pick(c).clone()).collect::<Vec<_>>()))
    };
    let abs_delta = v
        .convergence_delta
        .as_ref()
        .map(|d| d.iter().map(|x| x.abs()).collect::<Vec<_>>());
    MetricSummary {
        mean_abs_convergence_delta: abs_delta.as_ref().and_then(|d| mean(d.iter().copied())),
        max_abs_convergence_delta: abs_delta
            .as_ref()
            .and_then(|d| d.iter().copied().reduce(f64::max)),
        mean_deletion_auc: v
            .deletion
            .as_ref()
            .and_then(|c| mean(c.iter().map(|x| auc(x)))),
        mean_insertion_auc: v
            .insertion
            .as_ref()
            .and_then(|c| mean(c.iter().map(|x| auc(x)))),
        mean_deletion_curve: v.deletion.as_ref().map(|c| mean_curve(c)),
        mean_insertion_curve: v.insertion.as_ref().map(|c| mean_curve(c)),
        mean_max_sensitivity: v
            .max_sensitivity
            .as_ref()
            .and_then(|s| mean(s.iter().copied())),
        mean_sparseness: v.sparseness.as_ref().and_then(|s| mean(s.iter().copied())),
        mean_road_morf_auc: areas(|c| &c.morf),
        mean_road_lerf_auc: areas(|c| &c.lerf),
        mean_road_gap: road.and_then(|r| {
            mean(
                r.iter()
                    .map(|c| curve_area(fractions, &c.lerf) - curve_area(fractions, &c.morf)),
            )
        }),
        mean_road_morf_curve: curves(|c| &c.morf),
        mean_road_lerf_curve: curves(|c| &c.lerf),
        road_morf_kept: road.map(|r| {
            let points = r.first().map_or(0, |c| c.kept.len());
            (0..points)
                .map(|t| mean(r.iter().map(|c| f64::from(u8::from(c.kept[t])))).unwrap_or(0.0))
                .collect()
        }),
        mean_infidelity: v.infidelity.as_ref().and_then(|s| mean(s.iter().copied())),
        median_infidelity: v.infidelity.as_ref().and_then(|s| median(s)),
        mean_faithfulness_correlation: v
            .faithfulness_correlation
            .as_ref()
            .and_then(|s| mean(s.iter().flatten().copied())),
    }
}

/// The attribution part of a report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributionSection {
    /// `summary.attributions`, in plan order.
    pub summaries: Vec<AttributionSummary>,
    /// Per input, its records in plan order.
    pub samples: Vec<Vec<SampleAttribution>>,
    /// `timings.attributions`, in plan order.
    pub timings: Vec<AttributionTiming>,
    /// Seconds the entries took.
    pub seconds: f64,
}

/// The report's attribution part for `n` inputs.
pub fn section(results: &AttributionResults, n: usize) -> AttributionSection {
    let mut out = AttributionSection {
        samples: vec![Vec::new(); n],
        ..Default::default()
    };
    for entry in &results.entries {
        let fractions = entry.spec.road_fractions.as_deref().unwrap_or_default();
        let clean = &entry.variants[0];
        let attacks = &entry.variants[1..];
        for (i, sample) in out.samples.iter_mut().enumerate() {
            sample.push(SampleAttribution {
                name: entry.spec.name.clone(),
                clean: record(clean, i, fractions),
                attacks: attacks
                    .iter()
                    .map(|v| {
                        let shift = v.shift.as_ref().expect("attack variants have a shift");
                        AttackMapRecord {
                            attack: v.variant.clone(),
                            map: record(v, i, fractions),
                            top_k_overlap: shift.top_k_overlap[i],
                            spearman: shift.spearman[i],
                        }
                    })
                    .collect(),
            });
        }
        let top_k = top_k_pixels(entry.spec.top_k_fraction, results.shape);
        out.summaries.push(AttributionSummary {
            name: entry.spec.name.clone(),
            method: entry.spec.method.name().to_string(),
            target: entry.spec.target_label(),
            top_k,
            model_calls_per_map: entry.model_calls_per_map,
            clean: summarize(clean, fractions),
            attacks: attacks
                .iter()
                .map(|v| {
                    let shift = v.shift.as_ref().expect("attack variants have a shift");
                    let rho: Vec<f64> = shift.spearman.iter().flatten().copied().collect();
                    AttackAttributionSummary {
                        attack: v.variant.clone(),
                        metrics: summarize(v, fractions),
                        mean_top_k_overlap: mean(shift.top_k_overlap.iter().copied())
                            .unwrap_or(0.0),
                        median_top_k_overlap: median(&shift.top_k_overlap).unwrap_or(0.0),
                        mean_spearman: mean(rho.iter().copied()),
                        median_spearman: median(&rho),
                    }
                })
                .collect(),
            sanity: entry.sanity.clone(),
        });
        let seconds: f64 = entry.variants.iter().map(|v| v.seconds).sum();
        let maps = (entry.variants.len() * results.shape[0]).max(1);
        out.seconds += seconds;
        out.timings.push(AttributionTiming {
            name: entry.spec.name.clone(),
            seconds,
            seconds_per_map: seconds / maps as f64,
        });
    }
    out
}

/// The sidecar tensors: `attr/<name>/clean` and `attr/<name>/<attack>`
/// (`[N, C, H, W]`), `attr_curve/<name>/<clean|attack>/<deletion|insertion>`
/// (`[N, steps + 1]`), `attr_curve/<name>/<clean|attack>/<road_morf|road_lerf>`
/// (`[N, fractions]`) and, when kept, `noise/<name>` (`[N, samples, C, H, W]`).
pub fn sidecar_tensors(results: &AttributionResults) -> Result<Vec<(String, Tensor)>> {
    let [n, c, h, w] = results.shape;
    let mut out = Vec::new();
    for entry in &results.entries {
        let name = &entry.spec.name;
        for v in &entry.variants {
            out.push((
                crate::sidecar::attribution_maps(name, &v.variant),
                Tensor::from_slice(&v.maps, (n, c, h, w), &Device::Cpu)?,
            ));
            for (kind, curves) in [("deletion", &v.deletion), ("insertion", &v.insertion)] {
                if let Some(curves) = curves {
                    let points = curves.first().map_or(0, Vec::len);
                    let flat: Vec<f32> = curves.iter().flatten().copied().collect();
                    out.push((
                        crate::sidecar::attribution_curves(name, &v.variant, kind),
                        Tensor::from_vec(flat, (n, points), &Device::Cpu)?,
                    ));
                }
            }
            if let Some(road) = &v.road {
                let points = road.first().map_or(0, |c| c.morf.len());
                for (kind, pick) in [
                    (
                        "road_morf",
                        (|c: &RoadCurves| &c.morf) as fn(&RoadCurves) -> &Vec<f32>,
                    ),
                    ("road_lerf", |c: &RoadCurves| &c.lerf),
                ] {
                    let flat: Vec<f32> = road.iter().flat_map(|c| pick(c).clone()).collect();
                    out.push((
                        crate::sidecar::attribution_curves(name, &v.variant, kind),
                        Tensor::from_vec(flat, (n, points), &Device::Cpu)?,
                    ));
                }
            }
            if let (Some(noise), "clean") = (&v.noise, v.variant.as_str()) {
                let samples = noise.len() / (n * c * h * w).max(1);
                out.push((
                    crate::sidecar::smoothgrad_noise(name),
                    Tensor::from_slice(noise, (n, samples, c, h, w), &Device::Cpu)?,
                ));
            }
        }
    }
    Ok(out)
}

fn cell(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.4}"))
}

/// The attribution lines of the summary table (empty without attributions).
pub fn summary_lines(entries: &[AttributionSummary]) -> String {
    if entries.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n{:<16} {:<18} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9}\n",
        "attribution",
        "inputs",
        "deletion",
        "insertion",
        "max-sens",
        "gini",
        "|delta|",
        "top-k ovl",
        "spearman"
    );
    for e in entries {
        let row = |out: &mut String,
                   label: &str,
                   m: &MetricSummary,
                   ovl: Option<f64>,
                   rho: Option<f64>| {
            out.push_str(&format!(
                "{:<16} {:<18} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9}\n",
                e.name,
                label,
                cell(m.mean_deletion_auc),
                cell(m.mean_insertion_auc),
                cell(m.mean_max_sensitivity),
                cell(m.mean_sparseness),
                m.mean_abs_convergence_delta
                    .map_or("-".to_string(), |d| format!("{d:.2e}")),
                cell(ovl),
                cell(rho),
            ));
        };
        row(&mut out, "clean", &e.clean, None, None);
        for a in &e.attacks {
            row(
                &mut out,
                &a.attack,
                &a.metrics,
                Some(a.mean_top_k_overlap),
                a.mean_spearman,
            );
        }
    }
    let mut ks: Vec<usize> = entries.iter().map(|e| e.top_k).collect();
    ks.dedup();
    let k = if ks.len() == 1 {
        ks[0].to_string()
    } else {
        entries
            .iter()
            .map(|e| format!("{} {}", e.name, e.top_k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!(
        "(means over inputs; deletion/insertion: AUC of the explained class's probability; top-k ovl: share of the clean map's top-k pixels kept, k = {k})\n"
    ));
    out.push_str(&faithfulness_lines(entries));
    out.push_str(&sanity_lines(entries));
    out
}

/// The ROAD, infidelity and faithfulness-correlation lines (empty when no
/// entry computed any).
fn faithfulness_lines(entries: &[AttributionSummary]) -> String {
    let has = |m: &MetricSummary| {
        m.mean_road_gap.is_some()
            || m.mean_infidelity.is_some()
            || m.mean_faithfulness_correlation.is_some()
    };
    if !entries.iter().any(|e| has(&e.clean)) {
        return String::new();
    }
    let mut out = format!(
        "\n{:<16} {:<18} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9}\n",
        "faithfulness",
        "inputs",
        "ROAD MoRF",
        "ROAD LeRF",
        "ROAD gap",
        "infidelity",
        "median inf",
        "corr"
    );
    for e in entries {
        let mut row = |label: &str, m: &MetricSummary| {
            if !has(m) {
                return;
            }
            out.push_str(&format!(
                "{:<16} {:<18} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9}\n",
                e.name,
                label,
                cell(m.mean_road_morf_auc),
                cell(m.mean_road_lerf_auc),
                cell(m.mean_road_gap),
                m.mean_infidelity
                    .map_or("-".to_string(), |d| format!("{d:.3e}")),
                m.median_infidelity
                    .map_or("-".to_string(), |d| format!("{d:.3e}")),
                cell(m.mean_faithfulness_correlation),
            ));
        };
        row("clean", &e.clean);
        for a in &e.attacks {
            row(&a.attack, &a.metrics);
        }
    }
    out.push_str("(means over inputs; ROAD: mean class probability over the removal fractions, noisy linear imputation, Rong et al. 2022; infidelity: squared score units, Yeh et al. 2019; corr: faithfulness correlation, Bhatt et al. 2020)\n");
    out
}

/// The sanity-check lines (empty when no entry ran them): per entry, the
/// similarity to the trained model's maps after the full cascade, with the
/// edge detector's and the random logit's beside it.
fn sanity_lines(entries: &[AttributionSummary]) -> String {
    let with: Vec<(&AttributionSummary, &SanityResults)> = entries
        .iter()
        .filter_map(|e| e.sanity.as_ref().map(|s| (e, s)))
        .collect();
    if with.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n{:<16} {:<18} {:>9} {:>9} {:>9} {:>9}  verdict\n",
        "sanity", "maps vs trained", "|rank|", "rank", "ssim", "top-k ovl"
    );
    for (e, s) in with {
        let row = |out: &mut String, label: &str, m: &Similarity, verdict: &str| {
            out.push_str(&format!(
                "{:<16} {:<18} {:>9} {:>9} {:>9} {:>9}  {verdict}\n",
                e.name,
                label,
                cell(m.spearman_abs),
                cell(m.spearman),
                cell(m.ssim),
                cell(Some(m.top_k_overlap)),
            ));
        };
        row(&mut out, "edge detector", &s.edge_reference, "");
        if let Some(last) = s.cascading.last() {
            let verdict = match s.survives_randomization {
                Some(true) => format!("survives randomization (|rank| > {})", s.threshold),
                _ => "depends on the weights".to_string(),
            };
            let label = format!("all {} randomized", s.cascading.len());
            row(&mut out, &label, &last.similarity, &verdict);
        }
        if let Some(m) = &s.random_logit {
            row(&mut out, "random other class", m, "");
        }
    }
    out.push_str("(sanity: means over the first inputs of each entry's maps against the trained model's for the explained class; Adebayo et al. 2018, Sixt et al. 2020)\n");
    out
}
