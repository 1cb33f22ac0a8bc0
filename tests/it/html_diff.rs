//! `xai-audit diff OLD NEW --html`: two reports are made from the shipped
//! 50-input example by editing a copy (inputs that an attack now breaks or
//! no longer breaks, one input now misclassified), the page is parsed
//! (scraper), and every figure it shows is checked against the two JSON
//! files, read here independently of the library's types; the flip lists
//! are the edited inputs; the thumbnails are PNGs; the page loads and runs
//! nothing. Without the sidecars the numbers stay and the page says why.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use scraper::{ElementRef, Html, Selector};
use serde_json::Value;

use super::{root, xai};

const EXAMPLE: &str = "reports/examples/mnist_cnn-quick";
/// The attack whose verdicts the edit flips.
const ATTACK: usize = 1;
/// Inputs the edit breaks under [`ATTACK`], heals, and misclassifies.
const BROKEN: [usize; 2] = [0, 2];
const HEALED: usize = 1;
const WRONG: usize = 6;

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn load(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The text of the one element showing figure `key`.
fn figure(doc: &Html, key: &str) -> String {
    let found: Vec<String> = doc
        .select(&sel(&format!("[data-key=\"{key}\"]")))
        .map(|e| e.text().collect::<String>())
        .collect();
    assert_eq!(found.len(), 1, "figure {key}: {} elements", found.len());
    found[0].trim().to_string()
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// Copies the example report (and, with `sidecars`, its tensors) to
/// `old.json` and an edited `new.json` in `dir`.
fn reports(dir: &Path, sidecars: bool) -> (PathBuf, PathBuf) {
    let mut old = load(&root().join(format!("{EXAMPLE}.json")));
    let mut new = old.clone();
    {
        let samples = new["samples"].as_array_mut().unwrap();
        let wrong_class = |s: &Value| (s["label"].as_u64().unwrap() + 1) % 10;
        for i in BROKEN {
            let s = &mut samples[i];
            assert_eq!(s["attacks"][ATTACK]["prediction"], s["label"], "{i}");
            let c = wrong_class(s);
            let a = &mut s["attacks"][ATTACK];
            a["prediction"] = c.into();
            a["success"] = true.into();
            a["top5"] = serde_json::json!([{"class": c, "probability": 0.625}]);
        }
        let s = &mut samples[HEALED];
        assert_ne!(s["attacks"][ATTACK]["prediction"], s["label"]);
        s["attacks"][ATTACK]["prediction"] = s["label"].clone();
        s["attacks"][ATTACK]["success"] = false.into();
        // Misclassified now, and so under every attack.
        let s = &mut samples[WRONG];
        assert_eq!(s["prediction"], s["label"]);
        let c = wrong_class(s);
        s["prediction"] = c.into();
        s["top5"] = serde_json::json!([{"class": c, "probability": 0.5}]);
        for a in s["attacks"].as_array_mut().unwrap() {
            a["prediction"] = c.into();
        }
    }
    // The summary agrees with the edited records.
    let n = new["samples"].as_array().unwrap().len() as f64;
    let correct = count(&new, |s| s["prediction"] == s["label"]);
    new["summary"]["clean_accuracy"] = (correct as f64 / n).into();
    for k in 0..new["summary"]["attacks"].as_array().unwrap().len() {
        let robust = count(&new, |s| s["attacks"][k]["prediction"] == s["label"]);
        new["summary"]["attacks"][k]["robust_accuracy"] = (robust as f64 / n).into();
    }
    new["timings"]["started_at"] = "2026-12-01T00:00:00Z".into();
    let (po, pn) = (dir.join("old.json"), dir.join("new.json"));
    for (json, path, name) in [
        (&mut old, &po, "old.safetensors"),
        (&mut new, &pn, "new.safetensors"),
    ] {
        json["tensors"] = name.into();
        std::fs::write(path, serde_json::to_string(json).unwrap()).unwrap();
        if sidecars {
            std::fs::copy(
                root().join(format!("{EXAMPLE}.safetensors")),
                dir.join(name),
            )
            .unwrap();
        }
    }
    (po, pn)
}

fn count(json: &Value, f: impl Fn(&Value) -> bool) -> usize {
    json["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| f(s))
        .count()
}

/// Input indices whose prediction (`attack` k, or clean) is wrong.
fn broken(json: &Value, attack: Option<usize>) -> Vec<u64> {
    json["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            let p = match attack {
                Some(k) => &s["attacks"][k]["prediction"],
                None => &s["prediction"],
            };
            *p != s["label"]
        })
        .map(|s| s["index"].as_u64().unwrap())
        .collect()
}

fn joined(v: &[u64]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

/// A prediction as a card shows it: class name and its top-5 probability.
fn prediction(json: &Value, class: &Value, top5: &Value) -> String {
    let name = json["model"]["class_names"][class.as_u64().unwrap() as usize]
        .as_str()
        .unwrap()
        .to_string();
    match top5
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["class"] == *class)
    {
        Some(p) => format!("{name} ({})", pct(p["probability"].as_f64().unwrap())),
        None => name,
    }
}

fn delta(old: f64, new: f64) -> String {
    let pp = 100.0 * (new - old);
    if pp.abs() < 0.005 {
        "0.00 pp".into()
    } else {
        format!("{pp:+.2} pp")
    }
}

fn decode_png(src: &str) -> image::DynamicImage {
    let b64 = src
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URI");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap()
}

fn parse(path: &Path) -> Html {
    Html::parse_document(&std::fs::read_to_string(path).unwrap())
}

#[test]
fn the_diff_page_shows_both_reports_figures_and_the_flipped_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let (po, pn) = reports(dir.path(), true);
    let (old, new) = (load(&po), load(&pn));
    let run = xai(
        dir.path(),
        &["diff", "old.json", "new.json", "--html", "page.html"],
    );
    // A regression: the exit code is the text diff's.
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.contains("page    page.html"), "{}", run.stdout);
    let doc = parse(&dir.path().join("page.html"));
    super::html::self_contained(&doc);

    // Both reports' provenance.
    for (which, json) in [("old", &old), ("new", &new)] {
        let sha = json["model"]["sha256"].as_str().unwrap();
        assert_eq!(figure(&doc, &format!("{which}/model/sha256")), sha[..12]);
        assert_eq!(
            figure(&doc, &format!("{which}/model/path")),
            json["model"]["path"].as_str().unwrap()
        );
        assert_eq!(
            figure(&doc, &format!("{which}/data/count")),
            json["data"]["count"].to_string()
        );
        assert_eq!(
            figure(&doc, &format!("{which}/plan/seed")),
            json["plan"]["seed"].to_string()
        );
        assert_eq!(
            figure(&doc, &format!("{which}/timings/started_at")),
            json["timings"]["started_at"].as_str().unwrap()
        );
        assert!(figure(&doc, &format!("{which}/tool")).starts_with(&format!(
            "xai-audit {}",
            json["tool"]["version"].as_str().unwrap()
        )));
    }
    assert_eq!(figure(&doc, "diff/model_changed"), "same model");

    // Clean and robust accuracy: values, change, regression at 1 pp.
    let mut accuracies = vec![(
        "clean_accuracy".to_string(),
        "clean".to_string(),
        old["summary"]["clean_accuracy"].as_f64().unwrap(),
        new["summary"]["clean_accuracy"].as_f64().unwrap(),
    )];
    for (k, a) in old["summary"]["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let name = a["name"].as_str().unwrap();
        accuracies.push((
            format!("robust_accuracy.{name}"),
            name.to_string(),
            a["robust_accuracy"].as_f64().unwrap(),
            new["summary"]["attacks"][k]["robust_accuracy"]
                .as_f64()
                .unwrap(),
        ));
    }
    let mut regressed = Vec::new();
    for (metric, category, o, n) in &accuracies {
        let k = |f: &str| format!("diff/{metric}/{f}");
        assert_eq!(figure(&doc, &k("old")), pct(*o), "{metric}");
        assert_eq!(figure(&doc, &k("new")), pct(*n), "{metric}");
        assert_eq!(figure(&doc, &k("delta")), delta(*o, *n), "{metric}");
        let regression = 100.0 * (o - n) > 1.0;
        assert_eq!(
            figure(&doc, &k("regression")),
            if regression { "regression" } else { "no" },
            "{metric}"
        );
        if regression {
            regressed.push(metric.clone());
        }
        assert_eq!(figure(&doc, &format!("bars/{category}/old")), pct(*o));
        assert_eq!(figure(&doc, &format!("bars/{category}/new")), pct(*n));
    }
    assert!(regressed.contains(&"clean_accuracy".to_string()));
    let badge = figure(&doc, "diff/regression");
    assert!(badge.starts_with("regression beyond 1 pp: "), "{badge}");
    for m in &regressed {
        assert!(badge.contains(m.as_str()), "{m}: {badge}");
    }
    // The other headlines (stress, equivariance) did not change.
    let rows = doc.select(&sel("#headlines tbody tr")).count();
    assert!(rows > accuracies.len(), "stress headlines missing");
    for row in doc.select(&sel("#headlines tbody tr")) {
        let metric: String = row.select(&sel("td")).next().unwrap().text().collect();
        if accuracies.iter().any(|a| a.0 == metric) {
            continue;
        }
        assert_eq!(figure(&doc, &format!("diff/{metric}/delta")), "0.00 pp");
        assert_eq!(figure(&doc, &format!("diff/{metric}/regression")), "no");
        assert!(!badge.contains(&metric), "{metric}: {badge}");
    }

    // Flips: the edited inputs, and only those.
    let names: Vec<(Option<usize>, String)> = std::iter::once((None, "clean".to_string()))
        .chain(
            old["summary"]["attacks"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(k, a)| (Some(k), a["name"].as_str().unwrap().to_string())),
        )
        .collect();
    for (k, name) in &names {
        let (bo, bn) = (broken(&old, *k), broken(&new, *k));
        let newly: Vec<u64> = bn.iter().filter(|i| !bo.contains(i)).copied().collect();
        let healed: Vec<u64> = bo.iter().filter(|i| !bn.contains(i)).copied().collect();
        let mut expected = if *k == Some(ATTACK) {
            BROKEN.iter().map(|&i| i as u64).collect()
        } else {
            Vec::new()
        };
        if !broken(&old, *k).contains(&(WRONG as u64)) {
            expected.push(WRONG as u64);
            expected.sort();
        }
        assert_eq!(newly, expected, "{name}");
        let expected_healed = if *k == Some(ATTACK) {
            vec![HEALED as u64]
        } else {
            Vec::new()
        };
        assert_eq!(healed, expected_healed, "{name}");
        let f = |x: &str| format!("flips/{name}/{x}");
        assert_eq!(
            figure(&doc, &f("newly_broken/count")),
            newly.len().to_string()
        );
        assert_eq!(
            figure(&doc, &f("newly_robust/count")),
            healed.len().to_string()
        );
        assert_eq!(figure(&doc, &f("newly_broken")), joined(&newly), "{name}");
        assert_eq!(figure(&doc, &f("newly_robust")), joined(&healed), "{name}");

        // One card per newly broken input (fewer than the default 6).
        let cards: Vec<ElementRef> = doc
            .select(&sel(&format!("article[data-key^=\"flip/{name}/\"]")))
            .collect();
        let keys: Vec<String> = cards
            .iter()
            .map(|c| c.value().attr("data-key").unwrap().to_string())
            .collect();
        let want: Vec<String> = newly.iter().map(|i| format!("flip/{name}/{i}")).collect();
        assert_eq!(keys, want, "{name}");
        for (card, &i) in cards.iter().zip(&newly) {
            let imgs: Vec<_> = card.select(&sel("img")).collect();
            assert_eq!(imgs.len(), if k.is_some() { 5 } else { 1 }, "{name} {i}");
            for img in imgs {
                let png = decode_png(img.value().attr("src").unwrap());
                // 28 px digits, enlarged 3 times.
                assert_eq!((png.width(), png.height()), (84, 84));
            }
            let c = |x: &str| format!("flip/{name}/{i}/{x}");
            for (which, json) in [("old", &old), ("new", &new)] {
                let s = &json["samples"][i as usize];
                assert_eq!(s["index"], i);
                assert_eq!(
                    figure(&doc, &c(&format!("{which}/clean"))),
                    prediction(json, &s["prediction"], &s["top5"])
                );
                if let Some(k) = k {
                    let a = &s["attacks"][*k];
                    assert_eq!(
                        figure(&doc, &c(&format!("{which}/adversarial"))),
                        prediction(json, &a["prediction"], &a["top5"])
                    );
                }
            }
            let label = new["samples"][i as usize]["label"].as_u64().unwrap() as usize;
            assert_eq!(
                figure(&doc, &c("label")),
                new["model"]["class_names"][label].as_str().unwrap()
            );
        }
    }
    // The edited inputs are drawn from the sidecar: the clean thumbnail is
    // the sidecar's row, the new adversarial differs from the old one only
    // where the sidecar does (here: nowhere, both runs share one).
    let card = doc
        .select(&sel(&format!(
            "article[data-key=\"flip/{}/0\"]",
            names[ATTACK + 1].1
        )))
        .next()
        .unwrap();
    let imgs: Vec<String> = card
        .select(&sel("img"))
        .map(|i| i.value().attr("src").unwrap().to_string())
        .collect();
    assert_eq!(
        imgs[1], imgs[3],
        "old and new adversarial from identical sidecars"
    );
    assert_ne!(imgs[0], imgs[1], "the adversarial is not the clean input");
    assert!(doc.select(&sel("#no-sidecar")).next().is_none());

    // One chart per figure; no ε curve in either report, and the page says so.
    assert_eq!(
        doc.select(&sel("figure")).count(),
        doc.select(&sel("figure svg")).count()
    );
    assert!(doc
        .select(&sel("figure#diff-accuracy svg"))
        .next()
        .is_some());
    let text: String = doc.root_element().text().collect();
    assert!(text.contains("Neither report has an ε curve"), "{text}");
}

#[test]
fn without_sidecars_the_page_keeps_the_numbers_and_says_what_the_images_need() {
    let dir = tempfile::tempdir().unwrap();
    let (po, pn) = reports(dir.path(), false);
    // A class name that must be escaped, on a card.
    let mut new = load(&pn);
    let evil = "<script>alert(1)</script>&\"'";
    let label = new["samples"][BROKEN[0]]["label"].as_u64().unwrap() as usize;
    new["model"]["class_names"][label] = evil.into();
    std::fs::write(&pn, serde_json::to_string(&new).unwrap()).unwrap();
    let old = load(&po);
    // --json keeps standard output one JSON document; the page goes beside
    // NEW by default.
    let run = xai(
        dir.path(),
        &["diff", "old.json", "new.json", "--json", "--html"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["regression"], true);
    assert!(run.stderr.contains("new.diff.html"), "{}", run.stderr);
    let doc = parse(&dir.path().join("new.diff.html"));
    super::html::self_contained(&doc);
    assert_eq!(doc.select(&sel("img")).count(), 0);
    let note: String = doc
        .select(&sel("#no-sidecar"))
        .flat_map(|e| e.text())
        .collect();
    assert!(note.contains("sidecar"), "{note}");
    assert!(
        note.contains("old.json") && note.contains("new.json"),
        "{note}"
    );
    // Every figure of the JSON diff is on the page.
    for m in json["metrics"].as_array().unwrap() {
        let name = m["metric"].as_str().unwrap();
        let (o, n) = (m["old"].as_f64().unwrap(), m["new"].as_f64().unwrap());
        assert_eq!(figure(&doc, &format!("diff/{name}/old")), pct(o));
        assert_eq!(figure(&doc, &format!("diff/{name}/new")), pct(n));
        assert_eq!(figure(&doc, &format!("diff/{name}/delta")), delta(o, n));
    }
    for f in json["flips"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let list = |x: &str| -> Vec<u64> {
            f[x].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect()
        };
        assert_eq!(
            figure(&doc, &format!("flips/{name}/newly_broken")),
            joined(&list("newly_broken"))
        );
        assert_eq!(
            figure(&doc, &format!("flips/{name}/newly_robust/count")),
            list("newly_robust").len().to_string()
        );
    }
    // The cards keep their predictions, with report strings as text.
    let attack = old["summary"]["attacks"][ATTACK]["name"].as_str().unwrap();
    assert_eq!(
        figure(&doc, &format!("flip/{attack}/{}/label", BROKEN[0])),
        evil
    );
    let s = &new["samples"][BROKEN[0]];
    assert_eq!(
        figure(
            &doc,
            &format!("flip/{attack}/{}/new/adversarial", BROKEN[0])
        ),
        prediction(
            &new,
            &s["attacks"][ATTACK]["prediction"],
            &s["attacks"][ATTACK]["top5"]
        )
    );
}

#[test]
fn gallery_zero_draws_no_card_and_plots_writes_the_charts() {
    let dir = tempfile::tempdir().unwrap();
    reports(dir.path(), true);
    let run = xai(
        dir.path(),
        &[
            "diff",
            "old.json",
            "new.json",
            "--html",
            "p.html",
            "--gallery",
            "0",
            "--plots",
            "plots",
            "--threshold",
            "100",
        ],
    );
    // A threshold of 100 pp forgives everything.
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc = parse(&dir.path().join("p.html"));
    assert_eq!(doc.select(&sel("article")).count(), 0);
    assert_eq!(doc.select(&sel("img")).count(), 0);
    assert_eq!(
        figure(&doc, "diff/regression"),
        "no regression beyond 100 pp"
    );
    // The lists stay.
    assert_eq!(figure(&doc, "flips/clean/newly_broken"), WRONG.to_string());
    let ids: Vec<String> = doc
        .select(&sel("figure"))
        .map(|f| f.value().attr("id").unwrap().to_string())
        .collect();
    assert_eq!(ids, ["diff-accuracy"]);
    for id in &ids {
        let svg = std::fs::read_to_string(dir.path().join(format!("plots/{id}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"));
        let png = std::fs::read(dir.path().join(format!("plots/{id}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
    }
}

#[test]
fn the_text_diff_is_the_same_with_or_without_the_page() {
    let dir = tempfile::tempdir().unwrap();
    reports(dir.path(), true);
    let plain = xai(dir.path(), &["diff", "old.json", "new.json"]);
    let with = xai(dir.path(), &["diff", "old.json", "new.json", "--html"]);
    assert_eq!((plain.code, with.code), (1, 1));
    let page_line = with.stdout.lines().last().unwrap();
    assert!(
        page_line.starts_with("page    new.diff.html ("),
        "{page_line}"
    );
    assert_eq!(
        with.stdout
            .trim_end()
            .strip_suffix(page_line)
            .unwrap()
            .trim_end(),
        plain.stdout.trim_end()
    );
    // --gallery and --plots belong to the page.
    xai(
        dir.path(),
        &["diff", "old.json", "new.json", "--gallery", "3"],
    )
    .expect_error(&["--html"]);
}

#[test]
fn one_missing_sidecar_costs_only_its_own_thumbnails() {
    let dir = tempfile::tempdir().unwrap();
    reports(dir.path(), true);
    std::fs::remove_file(dir.path().join("old.safetensors")).unwrap();
    let run = xai(
        dir.path(),
        &["diff", "old.json", "new.json", "--html", "p.html"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let doc = parse(&dir.path().join("p.html"));
    let note: String = doc
        .select(&sel("#no-sidecar"))
        .flat_map(|e| e.text())
        .collect();
    assert!(
        note.contains("old.json") && !note.contains("new.json"),
        "{note}"
    );
    let json = load(&dir.path().join("old.json"));
    let attack = json["summary"]["attacks"][ATTACK]["name"].as_str().unwrap();
    let card = doc
        .select(&sel(&format!(
            "article[data-key=\"flip/{attack}/{}\"]",
            BROKEN[0]
        )))
        .next()
        .unwrap();
    // The clean input (from the new sidecar) and the new run's two images;
    // the old run's two say why they are missing.
    assert_eq!(card.select(&sel("img")).count(), 3);
    assert_eq!(card.select(&sel(".none")).count(), 2);
}

#[test]
fn eps_curves_of_both_reports_share_one_chart_per_norm() {
    let dir = tempfile::tempdir().unwrap();
    let (po, pn) = reports(dir.path(), false);
    let curve = |values: [f64; 3]| {
        serde_json::json!([{
            "name": "pgd-sweep",
            "norm": "linf",
            "points": [
                {"eps": 0.05, "robust_accuracy": values[0]},
                {"eps": 0.1, "robust_accuracy": values[1]},
                {"eps": 0.2, "robust_accuracy": values[2]},
            ],
        }])
    };
    for (path, values) in [(&po, [0.9, 0.6, 0.1]), (&pn, [0.88, 0.64, 0.1])] {
        let mut json = load(path);
        json["summary"]["eps_curves"] = curve(values);
        std::fs::write(path, serde_json::to_string(&json).unwrap()).unwrap();
    }
    let run = xai(
        dir.path(),
        &[
            "diff",
            "old.json",
            "new.json",
            "--html",
            "p.html",
            "--gallery",
            "0",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let doc = parse(&dir.path().join("p.html"));
    let (old, new) = (load(&po), load(&pn));
    for k in 0..3 {
        let p = |j: &Value, f: &str| j["summary"]["eps_curves"][0]["points"][k][f].clone();
        let eps = p(&old, "eps").as_f64().unwrap();
        let (o, n) = (
            p(&old, "robust_accuracy").as_f64().unwrap(),
            p(&new, "robust_accuracy").as_f64().unwrap(),
        );
        let key = |f: &str| format!("curve/pgd-sweep/{eps}/{f}");
        assert_eq!(figure(&doc, &key("old")), pct(o));
        assert_eq!(figure(&doc, &key("new")), pct(n));
        assert_eq!(figure(&doc, &key("delta")), delta(o, n));
    }
    let chart = doc
        .select(&sel("figure#diff-eps-curve-0 svg"))
        .next()
        .expect("the ε chart");
    let text: String = chart.text().collect();
    assert!(
        text.contains("old pgd-sweep") && text.contains("new pgd-sweep"),
        "{text}"
    );
    assert!(!doc
        .root_element()
        .text()
        .collect::<String>()
        .contains("Neither report"));
}
