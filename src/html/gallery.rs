//! The galleries section: for each attack, the inputs it broke with the
//! largest drop in the true class's probability (clean, adversarial,
//! amplified δ, the attribution maps on both, the predictions before and
//! after), then the noise inputs the model was most confident on.
//!
//! The pixels come from the report's tensor sidecar, read one row at a time
//! through [`crate::report::opened::Sidecar`] and drawn by the functions
//! `--save-images` and the terminal UI's export use; this file only chooses
//! the inputs and lays out the cards. A missing or mismatched sidecar costs
//! this section, never the page: it says what is wrong and how to fix it.
//!
//! The confidence drop of an input under an attack is the clean true-class
//! probability minus the true-class probability at the adversarial. The
//! clean one is the label's entry in the clean top-5 (always there for an
//! input classified correctly); the adversarial one is the attack's
//! `true_class_probability` (schema 5 on), else the label's entry in its
//! top-5. An input where either is not stored ranks after those where both
//! are.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::path::Path;

use image::DynamicImage;

use super::images::{thumb, thumbnail, Thumbnail};
use super::{escape, num, pct, PageOptions};
use crate::attribution::images::heatmap;
use crate::error::{Error, Result};
use crate::report::images::{amplified_perturbation, to_image};
use crate::report::opened::{input_range, sidecar_file, Sidecar};
use crate::report::types::{ClassProbability, Report, SampleRecord};
use crate::stress::types::NoiseFamilySummary;

/// An input an attack broke, as the gallery ranks it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Broken {
    /// Position in `samples` (and row in the sidecar).
    position: usize,
    /// Clean minus adversarial true-class probability, where both are stored.
    drop: Option<f64>,
}

fn probability_of(top5: &[ClassProbability], class: u32) -> Option<f64> {
    top5.iter()
        .find(|c| c.class == class)
        .map(|c| c.probability)
}

/// The confidence drop of `s` under attack number `attack` (see the file's
/// doc for what is read).
fn confidence_drop(s: &SampleRecord, attack: usize) -> Option<f64> {
    let a = s.attacks.get(attack)?;
    let clean = probability_of(&s.top5, s.label)?;
    let adversarial = a
        .true_class_probability
        .or_else(|| probability_of(&a.top5, s.label))?;
    Some(clean - adversarial).filter(|d| d.is_finite())
}

/// The (up to) `n` correctly classified inputs attack number `attack` broke,
/// and how many it broke in all; largest confidence drop first; equal drops, and inputs whose drop is not stored (last), in
/// input index order, so the page is the same on every run.
fn ranked(samples: &[SampleRecord], attack: usize, n: usize) -> (Vec<Broken>, usize) {
    let mut broken: Vec<Broken> = samples
        .iter()
        .enumerate()
        // An input misclassified to begin with was not broken by the attack
        // (a minimum-norm attack reports it as a success at distance 0).
        .filter(|(_, s)| s.prediction == s.label)
        .filter(|(_, s)| s.attacks.get(attack).is_some_and(|a| a.success))
        .map(|(position, s)| Broken {
            position,
            drop: confidence_drop(s, attack),
        })
        .collect();
    broken.sort_by(|x, y| {
        let by_drop = match (x.drop, y.drop) {
            (Some(a), Some(b)) => b.total_cmp(&a),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_drop.then(samples[x.position].index.cmp(&samples[y.position].index))
    });
    let total = broken.len();
    broken.truncate(n);
    (broken, total)
}

/// The noise family's kept examples the model was most confident on, as
/// rows of its sidecar tensor: (row, example), most confident first, ties
/// by index.
fn most_confident(family: &NoiseFamilySummary, n: usize) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..family.examples.len()).collect();
    rows.sort_by(|&a, &b| {
        let (a, b) = (&family.examples[a], &family.examples[b]);
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.index.cmp(&b.index))
    });
    rows.truncate(n);
    rows
}

/// A class as the page shows it: its name, else its index.
fn class_name(report: &Report, class: u32) -> String {
    report
        .model
        .class_names
        .get(class as usize)
        .cloned()
        .unwrap_or_else(|| class.to_string())
}

/// A span holding report figure `key`.
fn figure(key: &str, text: &str) -> String {
    format!("<span data-key=\"{}\">{}</span>", escape(key), escape(text))
}

fn opt_figure(key: &str, v: Option<f64>) -> String {
    match v {
        Some(v) => figure(key, &pct(v)),
        None => "–".to_string(),
    }
}

fn note(out: &mut String, html: &str) {
    let _ = writeln!(out, "<p class=\"missing\">{html}</p>");
}

/// The galleries section, after the others; nothing with `options.gallery`
/// 0.
pub(super) fn galleries(out: &mut String, report: &Report, path: &Path, options: &PageOptions) {
    if options.gallery == 0 {
        return;
    }
    let n = options.gallery;
    out.push_str("<section id=\"galleries\">\n<h2>Galleries</h2>\n");
    let _ = writeln!(
        out,
        "<p>For each attack, up to {n} inputs it broke, those whose true class lost the most \
         probability first (clean minus adversarial; equal drops by input index). δ is the \
         perturbation amplified to the full grey range (mid-grey: no change); attribution maps \
         are red where a pixel supports the explained class, blue where it opposes it. Then the \
         noise inputs the model was most confident on. How many inputs each gallery shows, and \
         the thumbnails' size, are options of the page (the <code>html</code> command's help lists them).</p>"
    );
    let file = sidecar_file(path, report);
    if !file.exists() {
        note(
            out,
            &format!(
                "The tensor sidecar was not found: the report names <code>{}</code>, which holds \
                 the images. Keep the <code>.safetensors</code> file beside the report (copy both), \
                 or rerun the audit to write it again.",
                escape(&file.display().to_string())
            ),
        );
        out.push_str("</section>\n");
        return;
    }
    let mut sidecar = match Sidecar::for_report(path, report) {
        Ok(s) => s,
        Err(e) => {
            note(
                out,
                &format!("The images cannot be shown: {}", escape(&e.to_string())),
            );
            out.push_str("</section>\n");
            return;
        }
    };
    let mut g = Gallery {
        report,
        sidecar: &mut sidecar,
        shape: report.data.input_shape,
        range: input_range(&report.model.spec),
        side: options.thumbnail,
    };
    if report.summary.attacks.is_empty() {
        note(out, "No attack in this report, so no input was broken.");
    }
    for (k, attack) in report.summary.attacks.iter().enumerate() {
        let _ = writeln!(
            out,
            "<h3 id=\"gallery-{}\">{}</h3>",
            escape(&attack.name),
            escape(&attack.name)
        );
        let (broken, total) = ranked(&report.samples, k, n);
        if broken.is_empty() {
            note(out, "This attack broke none of the inputs.");
            continue;
        }
        match g.attack_cards(k, &broken) {
            Ok(cards) => {
                let _ = writeln!(
                    out,
                    "<p class=\"count\">{} of the <span data-key=\"attack/{}/broken\">{}</span> correctly classified inputs it broke.</p>\n<div class=\"gallery\">\n{cards}</div>",
                    broken.len(),
                    escape(&attack.name),
                    total
                );
            }
            Err(e) => note(
                out,
                &format!("Its images cannot be drawn: {}", escape(&e.to_string())),
            ),
        }
    }
    g.noise(out, n);
    out.push_str("</section>\n");
}

/// What drawing a card needs.
struct Gallery<'a> {
    report: &'a Report,
    sidecar: &'a mut Sidecar,
    shape: [usize; 3],
    range: (f32, f32),
    side: u32,
}

impl Gallery<'_> {
    fn input(&self, values: &[f32]) -> Result<Thumbnail> {
        let [c, h, w] = self.shape;
        thumbnail(&to_image(values, c, h, w, self.range), self.side)
    }

    fn map(&self, map: &[f32], input: &[f32]) -> Result<Thumbnail> {
        let img = heatmap(map, input, self.shape, self.range, 1);
        thumbnail(&DynamicImage::ImageRgb8(img), self.side)
    }

    /// A row of the sidecar, checked to hold one whole input.
    fn row(&mut self, name: &str, position: usize) -> Result<Vec<f32>> {
        let row = self.sidecar.row(name, position)?;
        let per: usize = self.shape.iter().product();
        if row.len() != per {
            return Err(Error::format(
                self.sidecar.path(),
                format!(
                    "tensor {name} holds {} values per input, not {per}",
                    row.len()
                ),
            ));
        }
        Ok(row)
    }

    /// The cards of attack number `k`'s `broken` inputs.
    fn attack_cards(&mut self, k: usize, broken: &[Broken]) -> Result<String> {
        let report = self.report;
        let attack = &report.summary.attacks[k].name;
        // The attribution entries with maps on this attack (and on clean).
        let entries: Vec<&str> = report
            .summary
            .attributions
            .iter()
            .filter(|e| e.attacks.iter().any(|a| &a.attack == attack))
            .map(|e| e.name.as_str())
            .collect();
        let mut cards = String::new();
        for b in broken {
            let s = &report.samples[b.position];
            let a = &s.attacks[k];
            let i = s.index;
            let clean = self.row(crate::sidecar::CLEAN_INPUTS, b.position)?;
            let adv = self.row(&crate::sidecar::adversarial_inputs(attack), b.position)?;
            let [c, h, w] = self.shape;
            let delta = thumbnail(
                &to_image(&amplified_perturbation(&adv, &clean), c, h, w, (0.0, 1.0)),
                self.side,
            )?;
            let key = |f: &str| format!("sample/{i}/{f}");
            let akey = |f: &str| format!("sample/{i}/attack/{attack}/{f}");
            let label = class_name(report, s.label);
            let _ = writeln!(
                cards,
                "<article class=\"card\" data-attack=\"{}\" data-index=\"{i}\">\n<p class=\"card-title\">input {} · label {}</p>",
                escape(attack),
                figure(&key("index"), &i.to_string()),
                figure(&key("label"), &label),
            );
            let mut thumbs = String::from("<div class=\"thumbs\">");
            thumbs.push_str(&thumb(
                &self.input(&clean)?,
                &format!("input {i}, clean, labelled {label}"),
                "clean",
            ));
            thumbs.push_str(&thumb(
                &self.input(&adv)?,
                &format!("input {i} under {attack}"),
                "adversarial",
            ));
            thumbs.push_str(&thumb(
                &delta,
                &format!("input {i}: {attack}'s perturbation, amplified"),
                &format!(
                    "δ, L∞ {}<br>L2 {}",
                    figure(&akey("perturbation_linf"), &num(a.perturbation_linf)),
                    figure(&akey("perturbation_l2"), &num(a.perturbation_l2)),
                ),
            ));
            for entry in &entries {
                let on_clean = self.row(
                    &crate::sidecar::attribution_maps(entry, "clean"),
                    b.position,
                )?;
                let on_adv =
                    self.row(&crate::sidecar::attribution_maps(entry, attack), b.position)?;
                thumbs.push_str(&thumb(
                    &self.map(&on_clean, &clean)?,
                    &format!("input {i}: {entry} map on the clean input"),
                    &format!("{}, clean", escape(entry)),
                ));
                thumbs.push_str(&thumb(
                    &self.map(&on_adv, &adv)?,
                    &format!("input {i}: {entry} map on the adversarial input"),
                    &format!("{}, adversarial", escape(entry)),
                ));
                // The δ column stays empty: maps line up under their inputs.
                thumbs.push_str("<div></div>");
            }
            thumbs.push_str("</div>\n");
            cards.push_str(&thumbs);
            let clean_prediction = class_name(report, s.prediction);
            let adv_prediction = class_name(report, a.prediction);
            let adv_true = a
                .true_class_probability
                .or_else(|| probability_of(&a.top5, s.label));
            let _ = writeln!(
                cards,
                "<table class=\"preds\"><thead><tr><th></th><th>clean</th><th>adversarial</th></tr></thead><tbody>\n\
                 <tr><th>predicted</th><td>{}</td><td>{}</td></tr>\n\
                 <tr><th>its probability</th><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n\
                 <tr><th>label's probability</th><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n\
                 </tbody></table>\n</article>",
                figure(&key("prediction"), &clean_prediction),
                figure(&akey("prediction"), &adv_prediction),
                opt_figure(&key("probability"), probability_of(&s.top5, s.prediction)),
                opt_figure(&akey("probability"), probability_of(&a.top5, a.prediction)),
                opt_figure(&key("true_class_probability"), probability_of(&s.top5, s.label)),
                opt_figure(&akey("true_class_probability"), adv_true),
            );
        }
        Ok(cards)
    }

    /// The noise galleries, one per noise entry and family.
    fn noise(&mut self, out: &mut String, n: usize) {
        let report = self.report;
        let entries = report
            .summary
            .stress
            .as_ref()
            .map(|s| s.noise.as_slice())
            .unwrap_or_default();
        out.push_str("<h3 id=\"gallery-noise\">Noise the model is confident on</h3>\n");
        if entries.is_empty() {
            note(out, "No noise stress test in this report: add a <code>[[stress]]</code> entry with <code>kind = \"noise\"</code> (<code>attacks/mnist.toml</code> has one).");
            return;
        }
        for entry in entries {
            for family in &entry.families {
                let name = family.family.as_str();
                let _ = writeln!(out, "<h4>{} · {name}</h4>", escape(&entry.name));
                let rows = most_confident(family, n);
                if rows.is_empty() {
                    note(
                        out,
                        &format!(
                            "The model was confident (max-softmax ≥ 0.95) on none of the {} inputs.",
                            family.count
                        ),
                    );
                    continue;
                }
                match self.noise_cards(&entry.name, family, &rows) {
                    Ok(cards) => {
                        let _ = writeln!(
                            out,
                            "<p class=\"count\">The {} most confident of the {} kept (max-softmax ≥ 0.95).</p>\n<div class=\"gallery noise\">\n{cards}</div>",
                            rows.len(),
                            family.examples.len()
                        );
                    }
                    Err(e) => note(
                        out,
                        &format!("Its images cannot be drawn: {}", escape(&e.to_string())),
                    ),
                }
            }
        }
    }

    fn noise_cards(
        &mut self,
        entry: &str,
        family: &NoiseFamilySummary,
        rows: &[usize],
    ) -> Result<String> {
        let name = family.family.as_str();
        let tensor = crate::sidecar::stress(entry, name);
        let [c, h, w] = self.shape;
        let expected = [family.examples.len(), c, h, w];
        match self.sidecar.info(&tensor) {
            Some(info) if info.shape == expected => {}
            Some(info) => {
                return Err(Error::format(
                    self.sidecar.path(),
                    format!(
                        "tensor {tensor} has shape {:?}, not {expected:?}: this sidecar belongs to another run; rerun the audit",
                        info.shape
                    ),
                ))
            }
            None => {
                return Err(Error::format(
                    self.sidecar.path(),
                    format!("no tensor {tensor}: this sidecar belongs to another run; rerun the audit"),
                ))
            }
        }
        let mut cards = String::new();
        for &row in rows {
            let e = &family.examples[row];
            let pixels = self.row(&tensor, row)?;
            let prediction = class_name(self.report, e.prediction);
            let key = |f: &str| format!("stress/{entry}/{name}/{}/{f}", e.index);
            let _ = writeln!(
                cards,
                "<article class=\"card\" data-noise=\"{}\" data-index=\"{}\">{}</article>",
                escape(&format!("{entry}/{name}")),
                e.index,
                thumb(
                    &self.input(&pixels)?,
                    &format!("{name} noise input {}, predicted {prediction}", e.index),
                    &format!(
                        "noise input {}<br>predicted {}<br>confidence {}",
                        e.index,
                        figure(&key("prediction"), &prediction),
                        figure(&key("confidence"), &pct(e.confidence as f64)),
                    ),
                ),
            );
        }
        Ok(cards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::types::SampleAttack;

    /// An input with clean true-class probability `clean` and, under one
    /// attack, `adversarial` (success as given).
    fn sample(index: usize, clean: f64, adversarial: f64, success: bool) -> SampleRecord {
        let p = |class, probability| ClassProbability { class, probability };
        SampleRecord {
            index,
            label: 1,
            prediction: 1,
            top5: vec![p(1, clean), p(2, 1.0 - clean)],
            attacks: vec![SampleAttack {
                name: "pgd".into(),
                prediction: 2,
                top5: vec![p(2, 1.0 - adversarial), p(1, adversarial)],
                target: None,
                success,
                perturbation_linf: 0.1,
                perturbation_l2: 1.0,
                perturbation_l1: None,
                true_class_probability: None,
                margin: None,
            }],
            stress: None,
            equivariance: None,
            attributions: Vec::new(),
            margin: None,
        }
    }

    fn indices(samples: &[SampleRecord], n: usize) -> Vec<usize> {
        ranked(samples, 0, n)
            .0
            .iter()
            .map(|b| samples[b.position].index)
            .collect()
    }

    #[test]
    fn the_largest_drop_comes_first_and_ties_go_by_input_index() {
        let samples = vec![
            sample(7, 0.9, 0.4, true),   // drop 0.5
            sample(3, 0.99, 0.01, true), // drop 0.98
            sample(5, 0.8, 0.3, true),   // drop 0.5, a smaller index than 7
            sample(1, 0.6, 0.5, true),   // drop 0.1
        ];
        assert_eq!(indices(&samples, 10), [3, 5, 7, 1]);
        let drops: Vec<f64> = ranked(&samples, 0, 10)
            .0
            .iter()
            .map(|b| b.drop.unwrap())
            .collect();
        assert!((drops[0] - 0.98).abs() < 1e-12, "{drops:?}");
    }

    #[test]
    fn at_most_n_inputs_are_shown() {
        let samples: Vec<SampleRecord> = (0..20)
            .map(|i| sample(i, 0.9, 0.01 * i as f64, true))
            .collect();
        assert_eq!(indices(&samples, 3), [0, 1, 2]);
        assert!(ranked(&samples, 0, 0).0.is_empty());
        assert_eq!(ranked(&samples, 0, 3).1, 20, "the count is of all it broke");
    }

    #[test]
    fn an_input_no_attack_broke_is_never_shown() {
        let samples = vec![
            sample(0, 0.99, 0.0, false),
            sample(1, 0.9, 0.5, true),
            sample(2, 0.99, 0.001, false),
        ];
        assert_eq!(indices(&samples, 10), [1]);
        let none = vec![sample(0, 0.99, 0.0, false)];
        assert!(ranked(&none, 0, 10).0.is_empty());
    }

    #[test]
    fn an_input_misclassified_to_begin_with_was_not_broken() {
        let mut wrong = sample(0, 0.9, 0.05, true);
        wrong.prediction = 2;
        let samples = vec![wrong, sample(1, 0.9, 0.5, true)];
        assert_eq!(indices(&samples, 10), [1]);
        assert_eq!(ranked(&samples, 0, 10).1, 1);
    }

    #[test]
    fn the_stored_true_class_probability_wins_and_an_unknown_drop_ranks_last() {
        let mut stored = sample(4, 0.9, 0.8, true);
        stored.attacks[0].true_class_probability = Some(0.0);
        let mut unknown = sample(0, 0.9, 0.0, true);
        // The label is in neither top-5: its drop is not stored.
        unknown.attacks[0].top5.retain(|c| c.class != 1);
        let plain = sample(2, 0.9, 0.5, true);
        let samples = vec![unknown, plain, stored];
        assert_eq!(indices(&samples, 10), [4, 2, 0]);
        assert_eq!(ranked(&samples, 0, 10).0[2].drop, None);
    }

    #[test]
    fn the_most_confident_noise_inputs_come_first() {
        use crate::stress::noise::NoiseFamily;
        use crate::stress::types::Example;
        let example = |index, confidence| Example {
            index,
            transform: None,
            prediction: 3,
            confidence,
        };
        let family = NoiseFamilySummary {
            family: NoiseFamily::Uniform,
            count: 100,
            mmc: 0.5,
            share_above_0_95: 0.04,
            share_above_0_99: 0.01,
            confidence_histogram: Vec::new(),
            auroc: 0.9,
            fpr_at_95_tpr: 0.1,
            class_histogram: vec![0; 10],
            top_class: 3,
            top_class_share: 0.2,
            collapsed: false,
            examples: vec![
                example(10, 0.96),
                example(20, 0.99),
                example(30, 0.96),
                example(40, 0.97),
            ],
        };
        // Rows of the sidecar tensor, in the order of the examples list.
        assert_eq!(most_confident(&family, 10), [1, 3, 0, 2]);
        assert_eq!(most_confident(&family, 2), [1, 3]);
    }
}
