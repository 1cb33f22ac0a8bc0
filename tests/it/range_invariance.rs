//! Range invariance, the property that keeps issue 13's first kind of bug
//! fixed: the shipped CNN saved with the input range `[0, 1]`, `[-1, 1]` and
//! `[0, 255]` is the same function (its input normalization absorbs the
//! range: mean′ = lo + mean·w, std′ = std·w with w = hi − lo), so with every
//! absolute-unit plan key transformed accordingly (ε, step sizes, SmoothGrad
//! stdev and sensitivity radius scaled by w; baselines and fill values mapped
//! to black) every entry of `attacks/mnist.toml` (the preset `run` picks for the CNN) and `attacks/thorough.toml`
//! must give the same verdict: the same robust accuracies (at most one input
//! per entry may flip, where float rounding of the rescaled input moves a
//! logit by an ulp), perturbation norms scaled by w, the same stress and
//! equivariance headlines, the same attribution metrics (ROAD, infidelity
//! and faithfulness correlation included: `attacks/explanations.toml` asks
//! for them), and attribution maps equal up to the method's power of w. Before the fix FMN-L2 found no adversarial on `[0, 255]`,
//! spatial filled rotated-in pixels with mid-grey on `[-1, 1]`, and
//! α-scaling scaled about mid-grey there.

use std::path::{Path, PathBuf};

use serde_json::Value;
use toml::Value as Toml;

use super::{root, xai};

/// Inputs audited per run: one flipped input moves a share by 1/N.
const N: usize = 40;
/// Budget caps that keep the thorough plan within CI time.
const MAX_STEPS: i64 = 200;

pub(crate) struct Range {
    pub(crate) tag: &'static str,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

pub(crate) const RANGES: [Range; 3] = [
    Range {
        tag: "unit",
        lo: 0.0,
        hi: 1.0,
    },
    Range {
        tag: "signed",
        lo: -1.0,
        hi: 1.0,
    },
    Range {
        tag: "byte",
        lo: 0.0,
        hi: 255.0,
    },
];

impl Range {
    fn width(&self) -> f64 {
        self.hi - self.lo
    }
}

/// The shipped CNN's spec, re-expressed for inputs in `r` (same function).
pub(crate) fn spec_for(r: &Range) -> Value {
    let net = xai_audit::model::load_model(&root().join("assets/mnist_cnn.safetensors"), None)
        .unwrap()
        .network;
    let mut spec = serde_json::to_value(net.spec()).unwrap();
    let input = spec["input"].as_object_mut().unwrap();
    let channels = input["shape"][0].as_u64().unwrap() as usize;
    let mean: Vec<f64> = match input.get("mean") {
        Some(m) => m
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect(),
        None => vec![0.0; channels],
    };
    let std: Vec<f64> = match input.get("std") {
        Some(s) => s
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect(),
        None => vec![1.0; channels],
    };
    input.insert("range".into(), serde_json::json!([r.lo, r.hi]));
    input.insert(
        "mean".into(),
        mean.iter().map(|m| r.lo + m * r.width()).collect(),
    );
    input.insert("std".into(), std.iter().map(|s| s * r.width()).collect());
    spec
}

fn number(v: &Toml) -> Option<f64> {
    match v {
        Toml::Float(f) => Some(*f),
        Toml::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// Multiplies a number or a list of numbers by `w`.
fn scale(v: &mut Toml, w: f64) {
    match v {
        Toml::Array(items) => items.iter_mut().for_each(|i| scale(i, w)),
        other => {
            let f = number(other).expect("a number");
            *other = Toml::Float(f * w);
        }
    }
}

/// The plan for a model in `r`: absolute-unit keys transformed, baselines
/// made black, budgets capped.
fn plan_for(text: &str, r: &Range) -> String {
    let mut plan: toml::Table = text.parse().unwrap();
    let w = r.width();
    if let Some(Toml::Array(attacks)) = plan.get_mut("attack") {
        for a in attacks.iter_mut().filter_map(Toml::as_table_mut) {
            for key in ["eps", "step_size"] {
                if let Some(v) = a.get_mut(key) {
                    scale(v, w);
                }
            }
            if let Some(Toml::Integer(s)) = a.get_mut("steps") {
                *s = (*s).min(MAX_STEPS);
            }
        }
    }
    if let Some(Toml::Array(entries)) = plan.get_mut("attribution") {
        for a in entries.iter_mut().filter_map(Toml::as_table_mut) {
            for key in [
                "stdev",
                "sensitivity_radius",
                "road_noise",
                "infidelity_stdev",
            ] {
                if let Some(v) = a.get_mut(key) {
                    scale(v, w);
                }
            }
            let method = a["method"].as_str().unwrap().to_string();
            if method == "integrated_gradients" {
                // Captum's zero baseline is black only on [0, 1]: name the colour.
                let base = a.get("baseline").and_then(Toml::as_str).unwrap_or("zero");
                assert_eq!(base, "zero", "transform other IG baselines here");
                a.insert("baseline".into(), Toml::String("black".into()));
            }
            if method == "occlusion" {
                a.insert("baseline_value".into(), Toml::String("black".into()));
            }
            let metrics = a.get("metrics").and_then(Toml::as_array).cloned();
            let curves = metrics.iter().flatten().any(|m| {
                matches!(
                    m.as_str(),
                    Some("deletion" | "insertion" | "faithfulness_correlation")
                )
            });
            if curves {
                a.insert("curve_baseline".into(), Toml::String("black".into()));
            }
        }
    }
    toml::to_string(&plan).unwrap()
}

/// Runs `plan` on the CNN re-expressed for `r`; returns the report and the
/// sidecar's tensors.
fn audit(dir: &Path, plan_file: &str, r: &Range) -> (Value, PathBuf) {
    let text = std::fs::read_to_string(root().join("attacks").join(plan_file)).unwrap();
    let stem = format!("{}-{}", plan_file.trim_end_matches(".toml"), r.tag);
    let plan = dir.join(format!("{stem}.toml"));
    std::fs::write(&plan, plan_for(&text, r)).unwrap();
    let arch = dir.join(format!("{stem}.arch.json"));
    std::fs::write(&arch, serde_json::to_string(&spec_for(r)).unwrap()).unwrap();
    let out = dir.join(format!("{stem}.json"));
    let model = root().join("assets/mnist_cnn.safetensors");
    let limit = N.to_string();
    let run = xai(
        dir,
        &[
            "run",
            model.to_str().unwrap(),
            "--arch",
            arch.to_str().unwrap(),
            "--plan",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--limit",
            &limit,
        ],
    );
    assert_eq!(run.code, 0, "{} on {}: {}", plan_file, r.tag, run.stderr);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    (report, out.with_extension("safetensors"))
}

/// Where two reports' figures disagree beyond what one flipped input
/// explains; `path` names the field.
fn compare(path: &str, a: &Value, b: &Value, problems: &mut Vec<String>) {
    let slack = 1.01 / N as f64;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                // Example lists pick the most confident inputs: a near tie
                // may pick another one without any figure changing.
                if k == "examples" {
                    continue;
                }
                match y.get(k) {
                    Some(w) => compare(&format!("{path}.{k}"), v, w, problems),
                    None => problems.push(format!("{path}.{k} missing")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                problems.push(format!("{path}: {} vs {} items", x.len(), y.len()));
            }
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                compare(&format!("{path}[{i}]"), v, w, problems);
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let ok = match (x.as_u64(), y.as_u64()) {
                // Counts: one input.
                (Some(p), Some(q)) => p.abs_diff(q) <= 1,
                _ => {
                    let (p, q) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                    (p - q).abs() <= slack + 1e-3 * p.abs().max(q.abs())
                }
            };
            if !ok {
                problems.push(format!("{path}: {x} vs {y}"));
            }
        }
        _ => {
            if a != b {
                problems.push(format!("{path}: {a} vs {b}"));
            }
        }
    }
}

/// The power of the range width an attribution map scales with: gradients
/// shrink by w, gradient × (input − baseline) and output differences do not.
fn map_power(method: &str) -> Option<i32> {
    match method {
        "saliency" | "smoothgrad" | "guided_backprop" | "guided_grad_cam" => Some(-1),
        "integrated_gradients"
        | "occlusion"
        | "grad_cam"
        | "deeplift"
        | "gradient_shap"
        | "kernel_shap"
        | "lime"
        | "lrp" => Some(0),
        // x·∇f is anchored at 0 in model units (Captum's definition): not
        // an invariant of the function, so not compared.
        _ => None,
    }
}

fn check_invariance(plan_file: &str) {
    let dir = tempfile::tempdir().unwrap();
    // KEEP_DIR=DIR keeps the plans, specs and reports for a look.
    let keep = std::env::var("KEEP_DIR").ok().map(PathBuf::from);
    let dir_path = keep.as_deref().unwrap_or(dir.path());
    let runs: Vec<(Value, PathBuf)> = RANGES
        .iter()
        .map(|r| audit(dir_path, plan_file, r))
        .collect();
    let (base, base_tensors) = &runs[0];
    let base_maps = xai_audit::report::tensors::read_tensors(base_tensors).unwrap();
    let mut problems = Vec::new();
    for (r, (report, tensors)) in RANGES.iter().zip(&runs).skip(1) {
        let tag = r.tag;
        let w = r.width();
        let s = &report["summary"];
        let s0 = &base["summary"];
        if s["clean_accuracy"] != s0["clean_accuracy"] {
            problems.push(format!(
                "{tag}: clean accuracy {} vs {}",
                s["clean_accuracy"], s0["clean_accuracy"]
            ));
        }
        // Attacks: per-input success, one flip at most; norms scale by w.
        let attacks = s0["attacks"].as_array().unwrap();
        for (j, a0) in attacks.iter().enumerate() {
            let name = a0["name"].as_str().unwrap();
            let a = &s["attacks"][j];
            let flips = (0..N)
                .filter(|&i| {
                    base["samples"][i]["attacks"][j]["success"]
                        != report["samples"][i]["attacks"][j]["success"]
                })
                .count();
            if flips > 1 {
                problems.push(format!(
                    "{tag}: {name}: {flips} inputs flip (robust accuracy {} vs {})",
                    a["robust_accuracy"], a0["robust_accuracy"]
                ));
            }
            for key in ["median_perturbation_linf", "median_perturbation_l2"] {
                if let (Some(p), Some(q)) = (a[key].as_f64(), a0[key].as_f64()) {
                    let rel = (p / w - q).abs() / q.abs().max(1e-12);
                    if rel > 0.05 {
                        problems.push(format!("{tag}: {name}: {key} {p} is not {w}·{q}"));
                    }
                }
            }
        }
        let checks = |rep: &Value| -> Vec<String> {
            rep["summary"]["sanity"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["check"].as_str().unwrap().to_string())
                .collect()
        };
        if checks(report) != checks(base) {
            problems.push(format!(
                "{tag}: sanity flags {:?} vs {:?}",
                checks(report),
                checks(base)
            ));
        }
        for section in ["stress", "equivariance", "attributions"] {
            compare(
                &format!("{tag}: summary.{section}"),
                &s[section],
                &s0[section],
                &mut problems,
            );
        }
        // Attribution maps, clean and attacked, up to the method's power of w.
        let maps = xai_audit::report::tensors::read_tensors(tensors).unwrap();
        let entries = base["plan"]["attributions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for e in &entries {
            let (name, method) = (e["name"].as_str().unwrap(), e["method"].as_str().unwrap());
            let Some(power) = map_power(method) else {
                continue;
            };
            // Clean maps only: iterative attacks take the rescaled inputs
            // along other float roundings, and a ReLU network's gradient
            // jumps between the nearby points they end at (their verdicts
            // and the clean-vs-attacked map statistics are compared above).
            let key = format!("attr/{name}/clean");
            {
                let m0: Vec<f32> = base_maps[&key].flatten_all().unwrap().to_vec1().unwrap();
                let m: Vec<f32> = maps[&key].flatten_all().unwrap().to_vec1().unwrap();
                let per = m0.len() / N;
                let factor = w.powi(power);
                let mut worst = 0f64;
                let mut bad = 0;
                for (x, y) in m0.chunks(per).zip(m.chunks(per)) {
                    let norm: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                    let diff: f64 = x
                        .iter()
                        .zip(y)
                        .map(|(p, q)| (*p as f64 * factor - *q as f64).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    let rel = diff / (norm * factor).max(1e-30);
                    worst = worst.max(rel);
                    if rel > 1e-2 {
                        bad += 1;
                    }
                }
                // An input whose explained class flipped has another map.
                if bad > 1 {
                    problems.push(format!("{tag}: {key}: {bad} maps differ from w^{power}· the [0, 1] map (worst relative L2 {worst:.3e})"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{plan_file}:\n{}", problems.join("\n"));
}

#[test]
fn default_plan_gives_the_same_verdict_in_every_input_range() {
    check_invariance("mnist.toml");
}

#[test]
fn thorough_plan_gives_the_same_verdict_in_every_input_range() {
    check_invariance("thorough.toml");
}

#[test]
fn explanations_plan_gives_the_same_maps_in_every_input_range() {
    check_invariance("explanations.toml");
}

#[test]
fn the_plan_transform_scales_absolute_keys_and_names_black() {
    // The test's own transform, checked on a tiny plan so that a change to
    // it cannot silently make the comparison vacuous.
    let text = "[[attack]]\nname = \"p\"\nkind = \"pgd\"\neps = [0.1, 0.2]\nstep_size = 0.01\nsteps = 1000\n\n[[attribution]]\nname = \"ig\"\nmethod = \"integrated_gradients\"\nmetrics = [\"deletion\"]\n\n[[attribution]]\nname = \"s\"\nmethod = \"smoothgrad\"\nstdev = 0.2\n";
    let out: toml::Table = plan_for(text, &RANGES[2]).parse().unwrap();
    let a = &out["attack"][0];
    assert_eq!(
        a["eps"].as_array().unwrap()[1].as_float(),
        Some(0.2 * 255.0)
    );
    assert_eq!(a["step_size"].as_float(), Some(0.01 * 255.0));
    assert_eq!(a["steps"].as_integer(), Some(MAX_STEPS));
    let ig = &out["attribution"][0];
    assert_eq!(ig["baseline"].as_str(), Some("black"));
    assert_eq!(ig["curve_baseline"].as_str(), Some("black"));
    assert_eq!(out["attribution"][1]["stdev"].as_float(), Some(0.2 * 255.0));
    let spec = spec_for(&RANGES[1]);
    let mean = spec["input"]["mean"][0].as_f64().unwrap();
    assert!((mean - (-1.0 + 2.0 * 0.1307)).abs() < 1e-6, "{mean}");
}
