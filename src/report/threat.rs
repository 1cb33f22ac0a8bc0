//! Threat models: the robust accuracy per (norm, ε) a plan attacks at,
//! over every attack at that budget together, and how that figure stands
//! against the threat models people compare with — RobustBench's L∞ 8/255
//! and L2 0.5 and AutoAttack's L1 12 ("Mind the box") for 32×32 RGB inputs,
//! L∞ 4/255 for ImageNet-sized ones, AutoAttack's MNIST L∞ 0.3 — and against AutoAttack's standard protocol.
//! Also how an ε is shown (`0.0314 (8/255)`). `run`'s summary and any
//! other reader of a report take these sentences from here.

use super::types::{SampleRecord, ThreatModelSummary};
use crate::attack::ensemble::AUTOATTACK_STANDARD;
use crate::attack::{AttackSpec, Norm};

/// A threat model people publish robust accuracies at.
#[derive(Debug, Clone, Copy)]
pub struct StandardThreatModel {
    /// Who defines it: `RobustBench` or `AutoAttack`.
    pub source: &'static str,
    /// The inputs it is for, for people: `32×32 RGB`.
    pub inputs: &'static str,
    /// Which input shapes `[C, H, W]` it is for.
    pub fits: fn([usize; 3]) -> bool,
    /// Budget norm.
    pub norm: Norm,
    /// Budget, on inputs in `[0, 1]`.
    pub eps: f64,
    /// The budget as it is written: `8/255`.
    pub eps_text: &'static str,
}

fn rgb_32(shape: [usize; 3]) -> bool {
    shape == [3, 32, 32]
}

/// RobustBench's ImageNet inputs are 224×224; anything RGB from 128×128 up
/// is compared at its budget.
fn rgb_imagenet_sized(shape: [usize; 3]) -> bool {
    shape[0] == 3 && shape[1] >= 128 && shape[2] >= 128
}

fn grey_28(shape: [usize; 3]) -> bool {
    shape == [1, 28, 28]
}

/// The standard threat models, by input shape.
pub const STANDARD_THREAT_MODELS: &[StandardThreatModel] = &[
    StandardThreatModel {
        source: "RobustBench",
        inputs: "32×32 RGB (CIFAR)",
        fits: rgb_32,
        norm: Norm::Linf,
        eps: 8.0 / 255.0,
        eps_text: "8/255",
    },
    StandardThreatModel {
        source: "RobustBench",
        inputs: "32×32 RGB (CIFAR)",
        fits: rgb_32,
        norm: Norm::L2,
        eps: 0.5,
        eps_text: "0.5",
    },
    // L1 ε = 12 on CIFAR-10: "Mind the box" (Croce & Hein, ICML 2021), the
    // budget AutoAttack's L1 version is reported at (RobustBench has no L1
    // leaderboard, and there is no standard L1 budget for MNIST).
    StandardThreatModel {
        source: "AutoAttack",
        inputs: "32×32 RGB (CIFAR)",
        fits: rgb_32,
        norm: Norm::L1,
        eps: 12.0,
        eps_text: "12",
    },
    StandardThreatModel {
        source: "RobustBench",
        inputs: "ImageNet-sized RGB (128×128 and up)",
        fits: rgb_imagenet_sized,
        norm: Norm::Linf,
        eps: 4.0 / 255.0,
        eps_text: "4/255",
    },
    StandardThreatModel {
        source: "AutoAttack",
        inputs: "1×28×28 greyscale (MNIST)",
        fits: grey_28,
        norm: Norm::Linf,
        eps: 0.3,
        eps_text: "0.3",
    },
];

impl StandardThreatModel {
    /// `RobustBench's L∞ 8/255`.
    pub fn budget(&self) -> String {
        format!("{}'s {} {}", self.source, self.norm.symbol(), self.eps_text)
    }

    /// `RobustBench's L∞ 8/255 for 32×32 RGB (CIFAR)`.
    pub fn describe(&self) -> String {
        format!("{} for {}", self.budget(), self.inputs)
    }

    /// Whether `eps` (in a model's units, its range `range`) is this
    /// budget: equal to a relative 1e-4, so `0.03137` is 8/255 but
    /// `0.0314` is not.
    pub fn same_eps(&self, eps: f64, range: (f64, f64)) -> bool {
        let width = range.1 - range.0;
        width > 0.0 && (eps / width - self.eps).abs() <= 1e-4 * self.eps
    }
}

/// The robust accuracy per threat model: for each (norm, ε) of the attacks
/// with an ε (`attacks`: name, norm, ε, in plan order), the inputs
/// classified correctly that no attack at that budget broke (the attack's
/// prediction is still the label), over all `samples`. Budgets equal to a
/// relative 1e-9 are one threat model. Entries without an ε (the spatial
/// attack, a minimum-norm attack without one) belong to none.
pub fn threat_models(
    attacks: &[(String, Norm, Option<f64>)],
    samples: &[SampleRecord],
) -> Vec<ThreatModelSummary> {
    let mut models: Vec<ThreatModelSummary> = Vec::new();
    for (name, norm, eps) in attacks {
        let Some(eps) = *eps else { continue };
        let same = |m: &ThreatModelSummary| {
            m.norm == *norm && (m.eps - eps).abs() <= 1e-9 * m.eps.abs().max(eps.abs())
        };
        match models.iter_mut().find(|m| same(m)) {
            Some(m) => m.attacks.push(name.clone()),
            None => models.push(ThreatModelSummary {
                norm: *norm,
                eps,
                attacks: vec![name.clone()],
                robust: 0,
                robust_accuracy: 0.0,
            }),
        }
    }
    for m in &mut models {
        m.robust = samples.iter().filter(|s| robust_under(m, s)).count();
        m.robust_accuracy = if samples.is_empty() {
            0.0
        } else {
            m.robust as f64 / samples.len() as f64
        };
    }
    models
}

/// Whether input `s` is robust under threat model `m`: classified correctly,
/// and every attack of the model left its label predicted (an attack
/// missing from the input's record breaks it: nothing shows it robust).
pub fn robust_under(m: &ThreatModelSummary, s: &SampleRecord) -> bool {
    s.prediction == s.label
        && m.attacks.iter().all(|name| {
            s.attacks
                .iter()
                .find(|a| &a.name == name)
                .is_some_and(|a| a.prediction == s.label)
        })
}

/// A number short enough to read: as written when it is (`0.1`, `1.5`),
/// else three significant digits (`0.0314`).
pub fn short_number(x: f64) -> String {
    let written = x.to_string();
    if written.len() <= 6 || x == 0.0 || !x.is_finite() {
        return written;
    }
    let decimals = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

/// An ε in the model's units, readable: `0.0314 (8/255)` when it is a
/// whole number of 255ths of the range (`8 (8/255 of the range)` on a
/// range other than `[0, 1]`; a short decimal such as `0.1` on `[0, 1]`
/// needs no fraction).
pub fn format_eps(eps: f64, range: (f64, f64)) -> String {
    let number = short_number(eps);
    let width = range.1 - range.0;
    if width <= 0.0 {
        return number;
    }
    let k = eps / width * 255.0;
    let whole = (k - k.round()).abs() <= 1e-6 && (1.0..255.0).contains(&k.round());
    let unit = range == (0.0, 1.0);
    if !whole || (unit && eps.to_string().len() <= 6) {
        return number;
    }
    let k = k.round() as u32;
    if unit {
        format!("{number} ({k}/255)")
    } else {
        format!("{number} ({k}/255 of the range)")
    }
}

/// How the threat model `(norm, eps)` on inputs of `shape` in `range`
/// stands against the standard ones: which it is, or why it is none.
pub fn standard_note(norm: Norm, eps: f64, shape: [usize; 3], range: (f64, f64)) -> String {
    let for_shape: Vec<&StandardThreatModel> = STANDARD_THREAT_MODELS
        .iter()
        .filter(|s| (s.fits)(shape))
        .collect();
    if let Some(s) = for_shape
        .iter()
        .find(|s| s.norm == norm && s.same_eps(eps, range))
    {
        return format!("the standard threat model: {}", s.describe());
    }
    if let Some(s) = for_shape.iter().find(|s| s.norm == norm) {
        let mut note = format!(
            "not a standard threat model: ε differs from {}",
            s.describe()
        );
        if range != (0.0, 1.0) {
            note.push_str(&format!(
                " (that ε is {} in this model's [{}, {}] units)",
                short_number(s.eps * (range.1 - range.0)),
                range.0,
                range.1
            ));
        }
        return note;
    }
    if !for_shape.is_empty() {
        let list: Vec<String> = for_shape.iter().map(|s| s.budget()).collect();
        return format!(
            "not a standard threat model: {} models are compared at {}",
            for_shape[0].inputs,
            list.join(" and ")
        );
    }
    let list: Vec<String> = STANDARD_THREAT_MODELS
        .iter()
        .map(|s| s.describe())
        .collect();
    format!(
        "no standard threat model for {}×{}×{} inputs (the standard ones: {})",
        shape[0],
        shape[1],
        shape[2],
        list.join("; ")
    )
}

/// The standard threat models for `shape` that none of `models` is.
pub fn unattacked_standards(
    models: &[ThreatModelSummary],
    shape: [usize; 3],
    range: (f64, f64),
) -> Vec<&'static StandardThreatModel> {
    STANDARD_THREAT_MODELS
        .iter()
        .filter(|s| (s.fits)(shape))
        .filter(|s| {
            !models
                .iter()
                .any(|m| m.norm == s.norm && s.same_eps(m.eps, range))
        })
        .collect()
}

/// Which attacks produced a threat model's figure (`specs`: its entries),
/// by field-standard name, and whether that is AutoAttack's standard
/// protocol: only an `autoattack` entry that runs every attack of
/// [`AUTOATTACK_STANDARD`] is (at AutoAttack's own budgets); a figure from
/// APGD alone, or from attacks written as separate entries, is not.
pub fn protocol_note(specs: &[&AttackSpec]) -> String {
    let mut components: Vec<String> = Vec::new();
    for spec in specs {
        for c in spec.component_labels() {
            if !components.contains(&c) {
                components.push(c);
            }
        }
    }
    let lacking = |have: &[String]| -> Vec<&str> {
        AUTOATTACK_STANDARD
            .iter()
            .copied()
            .filter(|s| !have.iter().any(|h| h == s))
            .collect()
    };
    let listed = components.join(", ");
    let autoattacks: Vec<&&AttackSpec> = specs.iter().filter(|s| s.is_autoattack()).collect();
    if let Some(full) = autoattacks
        .iter()
        .find(|s| lacking(&s.component_labels()).is_empty())
    {
        let others: Vec<&str> = specs
            .iter()
            .filter(|s| s.name != full.name)
            .map(|s| s.name.as_str())
            .collect();
        let plus = if others.is_empty() {
            String::new()
        } else {
            format!(", with {} as well", others.join(", "))
        };
        return format!(
            "attacks {listed}: AutoAttack's standard protocol ({}){plus}",
            full.name
        );
    }
    if let Some(aa) = autoattacks.first() {
        return format!(
            "attacks {listed}: not the full AutoAttack standard protocol ({} lacks {})",
            aa.name,
            lacking(&aa.component_labels()).join(" and ")
        );
    }
    let missing = lacking(&components);
    if missing.is_empty() {
        format!(
            "attacks {listed}: not the AutoAttack standard protocol (its attacks as separate entries, at the plan's budgets; an `autoattack` entry runs them as the protocol does)"
        )
    } else {
        format!(
            "attacks {listed} only: not the AutoAttack standard protocol (it lacks {})",
            missing.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::apgd::{ApgdConfig, ApgdLoss};
    use crate::attack::ensemble::EnsembleConfig;
    use crate::attack::pgd::PgdConfig;
    use crate::attack::square::SquareConfig;
    use crate::attack::AttackConfig;
    use crate::report::types::SampleAttack;

    fn sample(label: u32, prediction: u32, attacked: &[(&str, u32)]) -> SampleRecord {
        SampleRecord {
            index: 0,
            label,
            prediction,
            top5: Vec::new(),
            attacks: attacked
                .iter()
                .map(|&(name, prediction)| SampleAttack {
                    name: name.into(),
                    prediction,
                    top5: Vec::new(),
                    target: None,
                    success: prediction != label,
                    perturbation_linf: 0.0,
                    perturbation_l2: 0.0,
                    perturbation_l1: None,
                    true_class_probability: None,
                    margin: None,
                })
                .collect(),
            stress: None,
            equivariance: None,
            attributions: Vec::new(),
            margin: None,
        }
    }

    #[test]
    fn a_sample_is_robust_only_if_no_attack_at_the_budget_broke_it() {
        let attacks = vec![
            ("a".to_string(), Norm::Linf, Some(0.1)),
            ("b".to_string(), Norm::Linf, Some(0.1)),
            ("c".to_string(), Norm::L2, Some(0.1)),
            ("spatial".to_string(), Norm::Linf, None),
            ("d".to_string(), Norm::Linf, Some(0.3)),
        ];
        // a and b each keep 3 of 5, but break different inputs: together 1.
        let all = |a, b, c, s, d| [("a", a), ("b", b), ("c", c), ("spatial", s), ("d", d)];
        let samples = vec![
            sample(0, 0, &all(0, 0, 0, 1, 1)),
            sample(0, 0, &all(1, 0, 0, 0, 1)),
            sample(0, 0, &all(0, 1, 0, 0, 1)),
            sample(0, 0, &all(1, 0, 0, 0, 1)),
            // Misclassified clean: not robust, whatever the attacks say.
            sample(0, 1, &all(0, 0, 0, 0, 0)),
        ];
        let m = threat_models(&attacks, &samples);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!((m[0].norm, m[0].eps), (Norm::Linf, 0.1));
        assert_eq!(m[0].attacks, ["a", "b"]);
        assert_eq!((m[0].robust, m[0].robust_accuracy), (1, 0.2));
        assert_eq!(
            (m[1].norm, m[1].attacks.clone()),
            (Norm::L2, vec!["c".to_string()])
        );
        assert_eq!((m[1].robust, m[1].robust_accuracy), (4, 0.8));
        assert_eq!(m[2].attacks, ["d"]);
        assert_eq!(m[2].robust, 0);
    }

    #[test]
    fn eps_reads_as_255ths_when_it_is_a_whole_number_of_them() {
        let unit = (0.0, 1.0);
        assert_eq!(format_eps(8.0 / 255.0, unit), "0.0314 (8/255)");
        assert_eq!(format_eps(4.0 / 255.0, unit), "0.0157 (4/255)");
        assert_eq!(format_eps(0.1, unit), "0.1");
        assert_eq!(format_eps(0.3, unit), "0.3");
        // Not a whole number of 255ths: the number only.
        assert_eq!(format_eps(0.0314, unit), "0.0314");
        assert_eq!(format_eps(1.5, unit), "1.5");
        // In other units the fraction is of the range.
        assert_eq!(format_eps(8.0, (0.0, 255.0)), "8 (8/255 of the range)");
        assert_eq!(
            format_eps(16.0 / 255.0, (-1.0, 1.0)),
            "0.0627 (8/255 of the range)"
        );
    }

    #[test]
    fn standard_threat_models_by_shape_norm_and_eps() {
        let unit = (0.0, 1.0);
        let cifar = [3, 32, 32];
        assert_eq!(
            standard_note(Norm::Linf, 8.0 / 255.0, cifar, unit),
            "the standard threat model: RobustBench's L∞ 8/255 for 32×32 RGB (CIFAR)"
        );
        // The same budget in [0, 255] units.
        assert!(standard_note(Norm::Linf, 8.0, cifar, (0.0, 255.0))
            .starts_with("the standard threat model"));
        assert_eq!(
            standard_note(Norm::L2, 0.5, cifar, unit),
            "the standard threat model: RobustBench's L2 0.5 for 32×32 RGB (CIFAR)"
        );
        assert_eq!(
            standard_note(Norm::Linf, 0.3, cifar, unit),
            "not a standard threat model: ε differs from RobustBench's L∞ 8/255 for 32×32 RGB (CIFAR)"
        );
        assert!(standard_note(Norm::Linf, 0.0314, cifar, unit).starts_with("not a standard"));
        assert_eq!(
            standard_note(Norm::Linf, 4.0, cifar, (0.0, 255.0)),
            "not a standard threat model: ε differs from RobustBench's L∞ 8/255 for 32×32 RGB (CIFAR) (that ε is 8 in this model's [0, 255] units)"
        );
        let mnist = [1, 28, 28];
        assert!(standard_note(Norm::Linf, 0.3, mnist, unit).contains("AutoAttack's L∞ 0.3"));
        assert_eq!(
            standard_note(Norm::L2, 1.5, mnist, unit),
            "not a standard threat model: 1×28×28 greyscale (MNIST) models are compared at AutoAttack's L∞ 0.3"
        );
        assert!(standard_note(Norm::Linf, 4.0 / 255.0, [3, 224, 224], unit)
            .contains("RobustBench's L∞ 4/255 for ImageNet-sized"));
        assert!(standard_note(Norm::Linf, 4.0 / 255.0, [3, 64, 64], unit)
            .starts_with("no standard threat model for 3×64×64 inputs"));
        // Which standards the plan left out.
        let at = |norm, eps| ThreatModelSummary {
            norm,
            eps,
            attacks: vec!["x".into()],
            robust: 0,
            robust_accuracy: 0.0,
        };
        let left = unattacked_standards(&[at(Norm::Linf, 8.0 / 255.0)], cifar, unit);
        assert_eq!(left.len(), 2);
        assert_eq!((left[0].norm, left[1].norm), (Norm::L2, Norm::L1));
        // L1: "Mind the box"'s CIFAR budget, in the model's units too.
        assert_eq!(
            standard_note(Norm::L1, 12.0, cifar, unit),
            "the standard threat model: AutoAttack's L1 12 for 32×32 RGB (CIFAR)"
        );
        assert!(standard_note(Norm::L1, 12.0 * 255.0, cifar, (0.0, 255.0))
            .starts_with("the standard threat model"));
        assert!(standard_note(Norm::L1, 10.0, cifar, unit)
            .starts_with("not a standard threat model: ε differs from AutoAttack's L1 12"));
        assert!(
            standard_note(Norm::L1, 10.0, mnist, unit).contains("compared at AutoAttack's L∞ 0.3")
        );
        assert!(unattacked_standards(&[], [3, 64, 64], unit).is_empty());
    }

    #[test]
    fn only_a_complete_autoattack_entry_is_the_standard_protocol() {
        let eps = 8.0 / 255.0;
        let aa = AttackSpec::new(
            "aa",
            AttackConfig::AutoAttack(EnsembleConfig::autoattack("aa", Norm::Linf, eps)),
        );
        assert_eq!(
            protocol_note(&[&aa]),
            "attacks APGD-CE, APGD-T, FAB-T, Square: AutoAttack's standard protocol (aa)"
        );
        // An `autoattack` entry without one of its members is not.
        let mut partial = aa.clone();
        if let AttackConfig::AutoAttack(c) = &mut partial.config {
            c.members.retain(|m| m.label() != "FAB-T");
        }
        assert_eq!(
            protocol_note(&[&partial]),
            "attacks APGD-CE, APGD-T, Square: not the full AutoAttack standard protocol (aa lacks FAB-T)"
        );
        let ce = AttackSpec::new("ce", AttackConfig::Apgd(ApgdConfig::new(Norm::Linf, eps)));
        let t = AttackSpec::new(
            "t",
            AttackConfig::Apgd(ApgdConfig {
                loss: ApgdLoss::Dlr,
                target_classes: Some(9),
                ..ApgdConfig::new(Norm::Linf, eps)
            }),
        );
        assert_eq!(
            protocol_note(&[&ce, &t]),
            "attacks APGD-CE, APGD-T only: not the AutoAttack standard protocol (it lacks FAB-T, Square)"
        );
        let pgd = AttackSpec::new("p", AttackConfig::Pgd(PgdConfig::new(Norm::Linf, eps)));
        let sq = AttackSpec::new(
            "s",
            AttackConfig::Square(SquareConfig::new(Norm::Linf, eps)),
        );
        assert!(protocol_note(&[&pgd, &sq]).contains("lacks APGD-CE, APGD-T, FAB-T"));
        // An ensemble of the same members is not the protocol either.
        let ens = AttackSpec::new(
            "e",
            AttackConfig::Ensemble(EnsembleConfig {
                norm: Norm::Linf,
                eps: Some(eps),
                members: vec![ce.clone(), t.clone()],
                version: None,
            }),
        );
        assert!(protocol_note(&[&ens]).contains("not the AutoAttack standard protocol"));
    }
}
