//! `xai-audit html`: the page is parsed (scraper) and every figure it shows
//! is checked against the report's JSON, read here independently of the
//! library's types; the page loads nothing and runs nothing; report strings
//! are escaped; sections a report lacks say so.

use std::path::Path;

use scraper::{Html, Selector};
use serde_json::Value;

use super::{root, xai};

fn page(dir: &Path, report: &Path) -> Html {
    let out = dir.join("page.html");
    let run = xai(
        dir,
        &[
            "html",
            report.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    Html::parse_document(&std::fs::read_to_string(out).unwrap())
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

/// The text of the cell showing figure `key`.
fn figure(doc: &Html, key: &str) -> String {
    let s = sel(&format!("[data-key=\"{}\"]", key.replace('"', "\\\"")));
    let found: Vec<String> = doc
        .select(&s)
        .map(|e| e.text().collect::<String>())
        .collect();
    assert_eq!(found.len(), 1, "figure {key}: {} cells", found.len());
    found[0].clone()
}

fn pct(v: &Value) -> String {
    format!("{:.2}%", v.as_f64().unwrap() * 100.0)
}

/// The page loads nothing from elsewhere and runs no script (shared with
/// the diff page's tests).
pub(super) fn self_contained(doc: &Html) {
    assert_eq!(
        doc.select(&sel("script")).count(),
        0,
        "a script on the page"
    );
    let csp = doc
        .select(&sel("meta[http-equiv=\"Content-Security-Policy\"]"))
        .next()
        .expect("a content-security policy")
        .value()
        .attr("content")
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    for (tag, attr) in [
        ("img", "src"),
        ("link", "href"),
        ("iframe", "src"),
        ("object", "data"),
    ] {
        for e in doc.select(&sel(tag)) {
            let v = e.value().attr(attr).unwrap_or_default();
            assert!(
                v.is_empty() || v.starts_with("data:"),
                "<{tag} {attr}={v}> loads from elsewhere"
            );
        }
    }
}

#[test]
fn every_figure_on_the_page_is_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let report = root().join("reports/examples/mnist_cnn-quick.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let doc = page(dir.path(), &report);
    self_contained(&doc);
    let s = &json["summary"];
    assert_eq!(
        figure(&doc, "summary/clean_accuracy"),
        pct(&s["clean_accuracy"])
    );
    assert_eq!(
        figure(&doc, "data/count"),
        json["data"]["count"].to_string()
    );
    assert_eq!(figure(&doc, "plan/seed"), json["plan"]["seed"].to_string());
    assert_eq!(
        figure(&doc, "model/sha256"),
        json["model"]["sha256"].as_str().unwrap()
    );
    let attacks = s["attacks"].as_array().unwrap();
    assert!(!attacks.is_empty());
    for a in attacks {
        let name = a["name"].as_str().unwrap();
        assert_eq!(
            figure(&doc, &format!("attack/{name}/robust_accuracy")),
            pct(&a["robust_accuracy"]),
            "{name}"
        );
        assert_eq!(
            figure(&doc, &format!("attack/{name}/attack_success_rate")),
            pct(&a["attack_success_rate"]),
            "{name}"
        );
    }
    for e in s["attributions"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        if let Some(v) = e["clean"]["mean_deletion_auc"].as_f64() {
            let shown: f64 = figure(&doc, &format!("attribution/{name}/deletion_auc"))
                .parse()
                .unwrap();
            assert!(
                (shown - v).abs() <= 5e-4 * v.abs().max(1e-3),
                "{name}: {shown} vs {v}"
            );
        }
    }
    // One chart per figure, drawn as inline SVG.
    assert!(doc.select(&sel("figure svg")).count() >= 1);
    assert_eq!(
        doc.select(&sel("figure")).count(),
        doc.select(&sel("figure svg")).count()
    );
    // The quick report has stress and equivariance sections: drawn.
    for (key, id) in [
        ("stress", "#extrapolation figure"),
        ("equivariance", "#equivariance figure"),
    ] {
        assert!(!s[key].is_null(), "{key}");
        assert!(doc.select(&sel(id)).count() >= 1, "{id}");
    }
}

#[test]
fn a_report_without_attacks_or_attributions_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut json: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("reports/examples/mnist_cnn-quick.json")).unwrap(),
    )
    .unwrap();
    json["summary"]["attacks"] = Value::Array(vec![]);
    json["summary"]["eps_curves"] = Value::Array(vec![]);
    json["summary"]["threat_models"] = Value::Array(vec![]);
    json["summary"]["attributions"] = Value::Array(vec![]);
    json["summary"]["stress"] = Value::Null;
    json["summary"]["equivariance"] = Value::Null;
    let path = dir.path().join("bare.json");
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let doc = page(dir.path(), &path);
    let text: String = doc.root_element().text().collect();
    assert!(text.contains("No attack in this report"), "{text}");
    assert!(text.contains("No attribution in this report"), "{text}");
    assert!(
        text.contains("No extrapolation check in this report")
            && text.contains("[[stress]]")
            && text.contains("No equivariance check in this report")
            && text.contains("[[equivariance]]"),
        "{text}"
    );
    assert_eq!(doc.select(&sel("figure")).count(), 0);
}

/// Each optional section removed on its own: the page says what is
/// missing and how to get it, and still shows every other section.
#[test]
fn a_report_missing_each_optional_section_says_so_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let full: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("reports/examples/mnist_cnn-quick.json")).unwrap(),
    )
    .unwrap();
    // (what is removed, the section's id, what the page must say)
    type Cut = fn(&mut Value);
    let cases: [(&str, Cut, &str, &[&str]); 8] = [
        (
            "attacks",
            |j| {
                j["summary"]["attacks"] = Value::Array(vec![]);
                j["summary"]["eps_curves"] = Value::Array(vec![]);
                j["summary"]["threat_models"] = Value::Array(vec![]);
            },
            "#robustness",
            &["No attack in this report", "[[attack]]"],
        ),
        (
            "attributions",
            |j| j["summary"]["attributions"] = Value::Array(vec![]),
            "#attributions",
            &["No attribution in this report", "[[attribution]]"],
        ),
        (
            "stress",
            |j| j["summary"]["stress"] = Value::Null,
            "#extrapolation",
            &["No extrapolation check in this report", "[[stress]]"],
        ),
        (
            "calibration",
            |j| j["summary"]["stress"]["calibration"] = Value::Array(vec![]),
            "#extrapolation",
            &["kind = \"calibration\""],
        ),
        (
            "noise",
            |j| j["summary"]["stress"]["noise"] = Value::Array(vec![]),
            "#extrapolation",
            &["kind = \"noise\""],
        ),
        (
            "corruptions",
            |j| j["summary"]["stress"]["corruptions"] = Value::Array(vec![]),
            "#extrapolation",
            &["kind = \"corruptions\""],
        ),
        (
            "equivariance",
            |j| j["summary"]["equivariance"] = Value::Null,
            "#equivariance",
            &["No equivariance check in this report", "[[equivariance]]"],
        ),
        (
            "sanity",
            |j| {
                for e in j["summary"]["attributions"].as_array_mut().unwrap() {
                    e["sanity"] = Value::Null;
                }
            },
            "#attributions",
            &["No model-randomization sanity check", "sanity = "],
        ),
    ];
    let sections = [
        "#robustness",
        "#attributions",
        "#extrapolation",
        "#equivariance",
        "#galleries",
    ];
    for (what, cut, id, says) in cases {
        let mut json = full.clone();
        cut(&mut json);
        let path = dir.path().join(format!("no-{what}.json"));
        std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
        let doc = page(dir.path(), &path);
        self_contained(&doc);
        let text: String = doc.select(&sel(id)).flat_map(|e| e.text()).collect();
        for s in says {
            assert!(
                text.contains(s),
                "without {what}, {id} should say {s:?}: {text}"
            );
        }
        // Every section is still on the page, the rest with their figures.
        for s in sections {
            assert_eq!(doc.select(&sel(s)).count(), 1, "without {what}: {s}");
        }
        if what != "attacks" {
            assert!(
                doc.select(&sel("#robustness figure")).count() >= 1,
                "without {what}"
            );
        }
        if !matches!(what, "stress" | "calibration" | "noise" | "corruptions") {
            assert!(
                doc.select(&sel("#extrapolation figure")).count() >= 3,
                "without {what}"
            );
        }
        if what != "equivariance" {
            assert!(
                doc.select(&sel("#equivariance figure")).count() >= 1,
                "without {what}"
            );
        }
    }
}

#[test]
fn report_strings_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let mut json: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("reports/examples/mnist_cnn-quick.json")).unwrap(),
    )
    .unwrap();
    let evil = "<script>alert(1)</script>\"'&";
    json["model"]["spec"]["name"] = Value::String(evil.into());
    json["model"]["path"] = Value::String(evil.into());
    json["summary"]["attacks"][0]["name"] = Value::String(evil.into());
    json["warnings"] = Value::Array(vec![Value::String(evil.into())]);
    let path = dir.path().join("evil.json");
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let doc = page(dir.path(), &path);
    self_contained(&doc);
    assert_eq!(figure(&doc, "model/path"), evil);
    let h1: String = doc.select(&sel("h1")).flat_map(|e| e.text()).collect();
    assert!(h1.contains(evil), "{h1}");
}

#[test]
fn a_missing_report_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    xai(dir.path(), &["html", "nope.json"]).expect_error(&["nope.json"]);
    assert!(!dir.path().join("nope.html").exists());
}

#[test]
fn run_with_html_writes_the_page_beside_the_report_with_the_gates() {
    let dir = tempfile::tempdir().unwrap();
    let plan = root().join("attacks/quick.toml");
    let model = root().join("assets/mnist_mlp.safetensors");
    let run = xai(
        dir.path(),
        &[
            "run",
            model.to_str().unwrap(),
            "--plan",
            plan.to_str().unwrap(),
            "--limit",
            "8",
            "--out",
            "r.json",
            "--html",
            "--gate",
            "clean_accuracy >= 0.5",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    let doc = Html::parse_document(&std::fs::read_to_string(dir.path().join("r.html")).unwrap());
    self_contained(&doc);
    assert_eq!(
        figure(&doc, "summary/clean_accuracy"),
        pct(&json["summary"]["clean_accuracy"])
    );
    let gate = figure(&doc, "gate/clean_accuracy >= 0.5");
    assert!(gate.contains("holds"), "{gate}");
}

#[test]
fn plots_writes_every_chart_as_svg_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let report = root().join("reports/examples/mnist_cnn-quick.json");
    let out = dir.path().join("p.html");
    let run = xai(
        dir.path(),
        &[
            "html",
            report.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--plots",
            "plots",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc = Html::parse_document(&std::fs::read_to_string(&out).unwrap());
    let ids: Vec<String> = doc
        .select(&sel("figure"))
        .map(|f| f.value().attr("id").unwrap().to_string())
        .collect();
    assert!(!ids.is_empty());
    for id in &ids {
        let svg = std::fs::read_to_string(dir.path().join(format!("plots/{id}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{id}.svg");
        let png = std::fs::read(dir.path().join(format!("plots/{id}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{id}.png");
    }
    let files = std::fs::read_dir(dir.path().join("plots")).unwrap().count();
    assert_eq!(files, 2 * ids.len());
}

/// The number a cell shows (`12.34%` as 0.1234), for comparing with the
/// report at the precision the page prints.
fn shown(doc: &Html, key: &str) -> f64 {
    let text = figure(doc, key);
    match text.strip_suffix('%') {
        Some(p) => p.parse::<f64>().unwrap() / 100.0,
        None => text
            .parse()
            .unwrap_or_else(|_| panic!("{key}: {text:?} is not a number")),
    }
}

/// Cell `key` shows `v` to the page's precision (4 significant digits, or
/// a percentage with 2 decimals).
fn shows(doc: &Html, key: &str, v: &Value) {
    let v = v
        .as_f64()
        .unwrap_or_else(|| panic!("{key}: {v} in the report"));
    let got = shown(doc, key);
    assert!(
        (got - v).abs() <= 5e-5 + 5e-4 * v.abs(),
        "{key}: the page shows {got}, the report has {v}"
    );
}

#[test]
fn a_full_audit_page_shows_every_sections_figures() {
    let dir = tempfile::tempdir().unwrap();
    let run = xai(
        dir.path(),
        &[
            "run",
            root()
                .join("assets/mnist_cnn.safetensors")
                .to_str()
                .unwrap(),
            "--limit",
            "24",
            "--out",
            "r.json",
            "--html",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    let doc = Html::parse_document(&std::fs::read_to_string(dir.path().join("r.html")).unwrap());
    self_contained(&doc);
    let s = &json["summary"];
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let stress = &s["stress"];
    let mut figures = vec!["per-class".to_string()];

    for (i, c) in list(&stress["calibration"]).iter().enumerate() {
        let n = c["name"].as_str().unwrap();
        for f in ["ece", "mce", "accuracy", "mean_confidence"] {
            shows(&doc, &format!("stress/calibration/{n}/{f}"), &c[f]);
        }
        for (j, b) in list(&c["reliability"]).iter().enumerate() {
            shows(
                &doc,
                &format!("stress/calibration/{n}/bin/{j}/count"),
                &b["count"],
            );
        }
        figures.push(format!("reliability-{i}"));
    }
    for (i, e) in list(&stress["noise"]).iter().enumerate() {
        let n = e["name"].as_str().unwrap();
        shows(&doc, &format!("stress/noise/{n}/data_mmc"), &e["data_mmc"]);
        let data_hist = list(&e["data_confidence_histogram"]);
        assert_eq!(data_hist.len(), 10, "{n}: a 10-bin histogram of the data");
        let total: u64 = data_hist.iter().map(|c| c.as_u64().unwrap()).sum();
        assert_eq!(total, json["data"]["count"].as_u64().unwrap());
        for f in list(&e["families"]) {
            let fam = f["family"].as_str().unwrap();
            for key in [
                "mmc",
                "share_above_0_95",
                "share_above_0_99",
                "auroc",
                "fpr_at_95_tpr",
            ] {
                shows(&doc, &format!("stress/noise/{n}/{fam}/{key}"), &f[key]);
            }
            let hist = list(&f["confidence_histogram"]);
            let total: u64 = hist.iter().map(|c| c.as_u64().unwrap()).sum();
            assert_eq!(total, f["count"].as_u64().unwrap(), "{fam}");
            // Shares at or above 0.95 can only come from the top bin.
            assert!(
                hist[9].as_f64().unwrap() / total as f64
                    >= f["share_above_0_95"].as_f64().unwrap() - 1e-12,
                "{fam}"
            );
            for (j, c) in hist.iter().enumerate() {
                shows(&doc, &format!("stress/noise/{n}/{fam}/histogram/{j}"), c);
            }
        }
        figures.push(format!("noise-{i}"));
    }
    for (i, a) in list(&stress["alpha_scaling"]).iter().enumerate() {
        let n = a["name"].as_str().unwrap();
        for set in list(&a["sets"]) {
            let inputs = set["inputs"].as_str().unwrap();
            shows(
                &doc,
                &format!("stress/alpha_scaling/{n}/{inputs}/reached_share"),
                &set["reached_share"],
            );
            for p in list(&set["curve"]) {
                let alpha = p["alpha"].as_f64().unwrap();
                shows(
                    &doc,
                    &format!("stress/alpha_scaling/{n}/{inputs}/{alpha}/mmc_scaled"),
                    &p["mmc_scaled"],
                );
            }
        }
        figures.push(format!("alpha-scaling-{i}"));
    }
    for (i, c) in list(&stress["corruptions"]).iter().enumerate() {
        let n = c["name"].as_str().unwrap();
        shows(
            &doc,
            &format!("stress/corruptions/{n}/mean_accuracy"),
            &c["mean_accuracy"],
        );
        let severities = list(&c["severities"]);
        for row in list(&c["corruptions"]) {
            let name = row["corruption"].as_str().unwrap();
            for (sev, acc) in severities.iter().zip(list(&row["accuracy"])) {
                shows(&doc, &format!("stress/corruptions/{n}/{name}/{sev}"), &acc);
            }
        }
        figures.push(format!("corruptions-{i}"));
    }
    let eq = &s["equivariance"];
    for (i, c) in list(&eq["consistency"]).iter().enumerate() {
        let n = c["name"].as_str().unwrap();
        shows(
            &doc,
            &format!("equivariance/{n}/mean_consistency"),
            &c["mean_consistency"],
        );
        for t in list(&c["transforms"]) {
            let tr = t["transform"].as_str().unwrap();
            shows(
                &doc,
                &format!("equivariance/{n}/{tr}/consistency"),
                &t["consistency"],
            );
            shows(
                &doc,
                &format!("equivariance/{n}/{tr}/accuracy"),
                &t["accuracy"],
            );
        }
        figures.push(format!("consistency-{i}"));
    }
    for l in list(&eq["lie_derivative"]) {
        let n = l["name"].as_str().unwrap();
        for t in list(&l["transforms"]) {
            let tr = t["transform"].as_str().unwrap();
            for f in ["mean", "median", "max"] {
                shows(&doc, &format!("equivariance/{n}/{tr}/{f}"), &t[f]);
            }
        }
    }
    for w in list(&eq["worst_case"]) {
        let n = w["name"].as_str().unwrap();
        shows(
            &doc,
            &format!("equivariance/{n}/worst_case_accuracy"),
            &w["worst_case_accuracy"],
        );
    }
    // Per class, counted here from the per-input records: clean accuracy,
    // and robust under a threat model when every attack at its budget left
    // the label predicted.
    let samples = list(&json["samples"]);
    let models = list(&s["threat_models"]);
    assert!(!models.is_empty());
    let classes = json["model"]["class_names"].as_array().unwrap().len();
    let mut robust_total = vec![0u64; models.len()];
    for c in 0..classes {
        let mine: Vec<&Value> = samples
            .iter()
            .filter(|x| x["label"].as_u64() == Some(c as u64))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let n = mine.len() as f64;
        let correct = mine
            .iter()
            .filter(|x| x["label"] == x["prediction"])
            .count() as f64;
        assert_eq!(shown(&doc, &format!("class/{c}/inputs")), n);
        shows(
            &doc,
            &format!("class/{c}/clean_accuracy"),
            &Value::from(correct / n),
        );
        for (m, total) in models.iter().zip(&mut robust_total) {
            let attacks = list(&m["attacks"]);
            let robust = mine
                .iter()
                .filter(|x| {
                    x["label"] == x["prediction"]
                        && attacks.iter().all(|name| {
                            list(&x["attacks"])
                                .iter()
                                .any(|a| &a["name"] == name && a["prediction"] == x["label"])
                        })
                })
                .count();
            *total += robust as u64;
            let key = format!(
                "class/{c}/robust/{}/{}",
                m["norm"].as_str().unwrap(),
                m["eps"].as_f64().unwrap()
            );
            shows(&doc, &key, &Value::from(robust as f64 / n));
        }
    }
    for (m, total) in models.iter().zip(robust_total) {
        assert_eq!(
            m["robust"].as_u64().unwrap(),
            total,
            "the classes add up to {m}"
        );
    }
    // Minimum-norm distances.
    let mut minimum_norm = 0;
    for a in list(&s["attacks"]) {
        if a["distance"].is_null() {
            continue;
        }
        minimum_norm += 1;
        let n = a["name"].as_str().unwrap();
        if a["eps"].is_null() {
            // Without ε it breaks whatever it can: no robust accuracy shown.
            let key = format!("[data-key=\"attack/{n}/robust_accuracy\"]");
            assert_eq!(doc.select(&sel(&key)).count(), 0, "{n}");
        }
        if !a["distance"]["median"].is_null() {
            shows(
                &doc,
                &format!("attack/{n}/distance/median"),
                &a["distance"]["median"],
            );
        }
    }
    if minimum_norm > 0 {
        figures.push("minimum-norm-0".into());
    }
    let ids: Vec<String> = doc
        .select(&sel("figure"))
        .map(|f| f.value().attr("id").unwrap().to_string())
        .collect();
    for f in &figures {
        assert!(ids.contains(f), "figure {f} missing from {ids:?}");
    }
    assert!(ids.len() >= 8, "{ids:?}");
}

/// The page of `report` written with `extra` flags.
fn page_with(dir: &Path, report: &Path, extra: &[&str]) -> Html {
    let out = dir.join("page.html");
    let mut args = vec![
        "html",
        report.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = xai(dir, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    Html::parse_document(&std::fs::read_to_string(out).unwrap())
}

/// The probability of `class` in a top-5 list, where it is there.
fn probability_in(top5: &Value, class: &Value) -> Option<f64> {
    top5.as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == *class)
        .map(|c| c["probability"].as_f64().unwrap())
}

/// The indices of the inputs attack number `k` broke, largest drop of the
/// true class's probability first, equal drops by index, unknown drops
/// last, at most `n`.
fn expected_gallery(json: &Value, k: usize, n: usize) -> Vec<u64> {
    let mut broken: Vec<(Option<f64>, u64)> = Vec::new();
    for s in json["samples"].as_array().unwrap() {
        let a = &s["attacks"][k];
        // Only inputs classified correctly to begin with can be broken.
        if a["success"] != Value::Bool(true) || s["prediction"] != s["label"] {
            continue;
        }
        let clean = probability_in(&s["top5"], &s["label"]);
        let adversarial = a["true_class_probability"]
            .as_f64()
            .or_else(|| probability_in(&a["top5"], &s["label"]));
        let drop = clean.zip(adversarial).map(|(c, a)| c - a);
        broken.push((drop, s["index"].as_u64().unwrap()));
    }
    broken.sort_by(|x, y| {
        let by_drop = match (x.0, y.0) {
            (Some(a), Some(b)) => b.partial_cmp(&a).unwrap(),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_drop.then(x.1.cmp(&y.1))
    });
    broken.into_iter().take(n).map(|(_, i)| i).collect()
}

/// The text of the one element with `key` under `scope`.
fn figure_in(scope: scraper::ElementRef, key: &str) -> String {
    let found: Vec<String> = scope
        .select(&sel(&format!("[data-key=\"{key}\"]")))
        .map(|e| e.text().collect())
        .collect();
    assert_eq!(found.len(), 1, "{key}: {} elements", found.len());
    found[0].clone()
}

/// Every image under `scope` is a PNG data URI that decodes to the size its
/// tag gives, with alt text; returns their widths.
fn images_decode(scope: scraper::ElementRef) -> Vec<u32> {
    use base64::Engine as _;
    let mut widths = Vec::new();
    for img in scope.select(&sel("img")) {
        let v = img.value();
        let b64 = v
            .attr("src")
            .unwrap()
            .strip_prefix("data:image/png;base64,")
            .expect("a PNG data URI");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let decoded = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
            .expect("a PNG that decodes");
        let attr = |a: &str| v.attr(a).unwrap().parse::<u32>().unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (attr("width"), attr("height"))
        );
        assert!(!v.attr("alt").unwrap_or_default().is_empty());
        widths.push(decoded.width());
    }
    widths
}

#[test]
fn the_galleries_show_the_inputs_each_attack_broke_most_with_the_reports_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let report = root().join("reports/examples/mnist_cnn-quick.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let doc = page(dir.path(), &report);
    self_contained(&doc);
    let names: Vec<&str> = json["model"]["class_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let class = |v: &Value| names[v.as_u64().unwrap() as usize].to_string();
    let samples = json["samples"].as_array().unwrap();
    let attributions = json["summary"]["attributions"].as_array().unwrap();
    let mut cards_seen = 0;
    for (k, attack) in json["summary"]["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let name = attack["name"].as_str().unwrap();
        let cards: Vec<scraper::ElementRef> = doc
            .select(&sel(&format!("#galleries article[data-attack=\"{name}\"]")))
            .collect();
        let shown: Vec<u64> = cards
            .iter()
            .map(|c| c.value().attr("data-index").unwrap().parse().unwrap())
            .collect();
        assert_eq!(shown, expected_gallery(&json, k, 6), "{name}");
        if !cards.is_empty() {
            assert_eq!(
                figure(&doc, &format!("attack/{name}/broken")),
                expected_gallery(&json, k, usize::MAX).len().to_string(),
                "{name}: the count of correctly classified inputs it broke"
            );
        }
        // The attribution entries with maps on this attack: two maps each.
        let entries = attributions
            .iter()
            .filter(|e| {
                e["attacks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["attack"] == name)
            })
            .count();
        for (card, index) in cards.iter().zip(&shown) {
            let s = samples
                .iter()
                .find(|s| s["index"].as_u64() == Some(*index))
                .unwrap();
            let a = &s["attacks"][k];
            assert_eq!(a["success"], Value::Bool(true));
            let key = |f: &str| format!("sample/{index}/{f}");
            let akey = |f: &str| format!("sample/{index}/attack/{name}/{f}");
            assert_eq!(figure_in(*card, &key("label")), class(&s["label"]));
            assert_eq!(
                figure_in(*card, &key("prediction")),
                class(&s["prediction"])
            );
            assert_eq!(
                figure_in(*card, &akey("prediction")),
                class(&a["prediction"])
            );
            assert_eq!(
                figure_in(*card, &key("true_class_probability")),
                pct(&Value::from(
                    probability_in(&s["top5"], &s["label"]).unwrap()
                ))
            );
            let adversarial = a["true_class_probability"]
                .as_f64()
                .or_else(|| probability_in(&a["top5"], &s["label"]))
                .unwrap();
            assert_eq!(
                figure_in(*card, &akey("true_class_probability")),
                pct(&Value::from(adversarial))
            );
            let widths = images_decode(*card);
            // Clean, adversarial, δ, and each entry's map on both.
            assert_eq!(widths.len(), 3 + 2 * entries, "{name} input {index}");
            cards_seen += 1;
        }
        if expected_gallery(&json, k, usize::MAX).is_empty() {
            let text: String = doc
                .select(&sel("#galleries"))
                .flat_map(|e| e.text())
                .collect();
            assert!(text.contains("broke none"), "{name}");
        }
    }
    assert!(cards_seen > 0);
    // The noise inputs the model was most confident on, per entry and family.
    for entry in json["summary"]["stress"]["noise"].as_array().unwrap() {
        let entry_name = entry["name"].as_str().unwrap();
        for family in entry["families"].as_array().unwrap() {
            let family_name = family["family"].as_str().unwrap();
            let mut examples: Vec<&Value> = family["examples"].as_array().unwrap().iter().collect();
            examples.sort_by(|a, b| {
                let c = |e: &Value| e["confidence"].as_f64().unwrap();
                c(b).partial_cmp(&c(a))
                    .unwrap()
                    .then(a["index"].as_u64().cmp(&b["index"].as_u64()))
            });
            examples.truncate(6);
            let cards: Vec<scraper::ElementRef> = doc
                .select(&sel(&format!(
                    "#galleries article[data-noise=\"{entry_name}/{family_name}\"]"
                )))
                .collect();
            assert_eq!(cards.len(), examples.len(), "{entry_name}/{family_name}");
            for (card, e) in cards.iter().zip(&examples) {
                let index = e["index"].as_u64().unwrap();
                assert_eq!(
                    card.value().attr("data-index"),
                    Some(index.to_string().as_str())
                );
                let key = |f: &str| format!("stress/{entry_name}/{family_name}/{index}/{f}");
                assert_eq!(
                    figure_in(*card, &key("prediction")),
                    class(&e["prediction"])
                );
                assert_eq!(figure_in(*card, &key("confidence")), pct(&e["confidence"]));
                assert_eq!(images_decode(*card).len(), 1);
            }
        }
    }
}

#[test]
fn gallery_and_thumbnail_flags_size_the_galleries() {
    let dir = tempfile::tempdir().unwrap();
    let report = root().join("reports/examples/mnist_cnn-quick.json");
    let doc = page_with(dir.path(), &report, &["--gallery", "0"]);
    assert_eq!(doc.select(&sel("#galleries")).count(), 0);
    assert_eq!(doc.select(&sel("img")).count(), 0);
    // The rest of the page is there.
    assert!(doc.select(&sel("#robustness")).next().is_some());
    let doc = page_with(
        dir.path(),
        &report,
        &["--gallery", "1", "--thumbnail", "56"],
    );
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for (k, a) in json["summary"]["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let name = a["name"].as_str().unwrap();
        let cards = doc
            .select(&sel(&format!("#galleries article[data-attack=\"{name}\"]")))
            .count();
        assert_eq!(
            cards,
            1.min(expected_gallery(&json, k, usize::MAX).len()),
            "{name}"
        );
    }
    let galleries = doc.select(&sel("#galleries")).next().unwrap();
    // 28 px inputs grow by whole multiples up to 56 px.
    let widths = images_decode(galleries);
    assert!(!widths.is_empty());
    assert!(widths.iter().all(|&w| w == 56), "{widths:?}");
}

#[test]
fn a_report_copied_without_its_sidecar_renders_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("alone.json");
    std::fs::copy(
        root().join("reports/examples/mnist_cnn-quick.json"),
        &report,
    )
    .unwrap();
    let doc = page(dir.path(), &report);
    self_contained(&doc);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        figure(&doc, "summary/clean_accuracy"),
        pct(&json["summary"]["clean_accuracy"])
    );
    let text: String = doc
        .select(&sel("#galleries"))
        .flat_map(|e| e.text())
        .collect();
    assert!(text.contains("sidecar was not found"), "{text}");
    assert!(text.contains("mnist_cnn-quick.safetensors"), "{text}");
    assert!(text.contains("beside the report"), "{text}");
    assert_eq!(doc.select(&sel("img")).count(), 0);
}
