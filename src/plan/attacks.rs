//! The `[[attack]]` section of a plan: each entry's name, kind, `norm` and
//! `eps` read here, its own settings by its kind's config
//! (`crate::attack::<kind>::…Config::from_entry`); ε lists expanded into one
//! entry per ε (`name@ε`, a robustness curve); ensemble members resolved
//! against earlier entries; names unique; and, once the model is known, the
//! class-count rules. Every mistake of every entry is reported, and a
//! message about a name that an ε list renamed says so.

use toml::{Table, Value};

use super::ModelFacts;
use crate::attack::apgd::{ApgdLoss, DLR_MIN_CLASSES, TARGETED_DLR_MIN_CLASSES};
use crate::attack::{AttackConfig, AttackSpec, Budget, Target, KINDS, NORMS, READERS};
use crate::entry::{entries, Entry, Errors};

/// Reads the `attack` array of the plan's top-level table.
pub(super) fn parse(top: &mut Table, errors: &mut Errors) -> Vec<AttackSpec> {
    let mut attacks: Vec<AttackSpec> = Vec::new();
    // The names as written (an ε list's name once).
    let mut written: Vec<String> = Vec::new();
    for mut e in entries(top, "attack", errors) {
        let name = e.name(&['@']);
        let kind = e.kind("kind", KINDS);
        let norm = e.choice("norm", NORMS);
        let eps = read_eps(&mut e);
        let earlier = |member: &str| -> Result<AttackSpec, String> {
            match attacks.iter().find(|a| a.name == member) {
                Some(a) => Ok(a.clone()),
                None => Err(curve_hint(member, &attacks)
                    .map(|hint| format!("{hint}: name one of them"))
                    .unwrap_or_else(|| {
                        format!("\"{member}\" is not an earlier attack in this plan")
                    })),
            }
        };
        let budget = Budget {
            name: name.as_deref().unwrap_or_default(),
            norm,
            eps,
            earlier: &earlier,
        };
        let configs = match READERS.iter().find(|(k, _)| Some(*k) == kind.as_deref()) {
            Some((_, read)) => read(&mut e, &budget),
            None => Vec::new(),
        };
        let names = budget.names();
        let label = e.label().to_string();
        let ok = e.finish(errors);
        let Some(name) = name else { continue };
        if written.contains(&name) {
            errors.push(format!(
                "{label}: `name` \"{name}\" is used twice; names must be unique"
            ));
            continue;
        }
        written.push(name.clone());
        // An entry with mistakes is still known by name, so that later
        // entries naming it are not reported as naming nothing; the plan
        // fails on its mistakes anyway.
        let curve = (names.len() > 1).then(|| name.clone());
        debug_assert!(!ok || names.len() == configs.len(), "one config per name");
        for (name, config) in names.into_iter().zip(configs) {
            attacks.push(AttackSpec {
                name,
                config,
                curve: curve.clone(),
            });
        }
    }
    attacks
}

/// `eps`: a number, or a list of numbers for a robustness curve; each finite
/// and ≥ 0, none twice. A refused value reads as an empty list (its error
/// recorded), so the kind does not also call it missing.
fn read_eps(e: &mut Entry) -> Option<Vec<f64>> {
    let value = e.take("eps")?;
    let refuse = |e: &mut Entry, message: String| {
        e.fail("eps", message);
        Some(Vec::new())
    };
    let list = match value {
        Value::Array(items) if items.is_empty() => {
            return refuse(e, "is an empty list".into());
        }
        Value::Array(items) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Float(f) => list.push(f),
                    Value::Integer(i) => list.push(i as f64),
                    other => {
                        return refuse(e, format!("list holds {}, not a number", other.type_str()))
                    }
                }
            }
            list
        }
        Value::Float(f) => vec![f],
        Value::Integer(i) => vec![i as f64],
        other => {
            return refuse(
                e,
                format!(
                    "must be a number or a list of numbers, found {}",
                    other.type_str()
                ),
            )
        }
    };
    if let Some(bad) = list.iter().find(|f| !f.is_finite() || **f < 0.0) {
        return refuse(e, format!("must be finite and ≥ 0, found {bad}"));
    }
    let twice = (1..list.len()).find(|&i| list[..i].contains(&list[i]));
    if let Some(i) = twice {
        return refuse(e, format!("lists {} twice", list[i]));
    }
    Some(list)
}

/// When `name` names no attack but is an ε list's name: `"pgd" is an ε
/// list: its entries are pgd@0.1, pgd@0.3`, for messages that name it
/// (ensemble members, gates, attribution `on`).
pub fn curve_hint(name: &str, attacks: &[AttackSpec]) -> Option<String> {
    if attacks.iter().any(|a| a.name == name) {
        return None;
    }
    let points: Vec<&str> = attacks
        .iter()
        .filter(|a| a.curve.as_deref() == Some(name))
        .map(|a| a.name.as_str())
        .collect();
    (!points.is_empty()).then(|| {
        format!(
            "\"{name}\" is an ε list: its entries are {}",
            points.join(", ")
        )
    })
}

/// How messages name the entry each attack came from: `attack[j] "name"`,
/// `j` counting the plan's entries (an ε list's entries share one), and for
/// an ε list what it expanded to.
fn written_labels(attacks: &[AttackSpec]) -> Vec<String> {
    let mut labels = Vec::with_capacity(attacks.len());
    let mut j = 0;
    for (i, a) in attacks.iter().enumerate() {
        let same_curve = i > 0 && a.curve.is_some() && attacks[i - 1].curve == a.curve;
        if i > 0 && !same_curve {
            j += 1;
        }
        labels.push(match &a.curve {
            Some(curve) => format!(
                "attack[{j}] \"{curve}\" ({})",
                curve_hint(curve, attacks).unwrap_or_default()
            ),
            None => format!("attack[{j}] \"{}\"", a.name),
        });
    }
    labels
}

/// The class-count rules, once the model is known:
/// - a fixed `target` class must exist;
/// - the DLR loss needs at least 3 classes (its denominator uses the
///   third-largest logit) and targeted DLR at least 4 (the fourth):
///   below that an APGD entry, AutoAttack's APGD-T included, runs with
///   the (targeted) cross-entropy loss instead, with a warning naming the
///   entry and the class count, and the resolved plan records `ce` (the
///   reference implementation fails indexing the missing logit; running
///   DLR anyway reported a 2-class MLP 95% robust where CE found 60%);
/// - APGD-T or FAB-T asking for more target classes than the model has
///   other classes attacks all of them, with a warning (AutoAttack's
///   `check_n_classes` warns alike; its FAB-T then fails indexing).
pub(super) fn resolve(
    attacks: &mut [AttackSpec],
    model: &ModelFacts,
    errors: &mut Errors,
    warnings: &mut Vec<String>,
) {
    let k = model.num_classes;
    let labels = written_labels(attacks);
    let mut reported: Vec<&str> = Vec::new();
    for (a, label) in attacks.iter_mut().zip(&labels) {
        if let Some(Target::Class(c)) = a.target() {
            // Once per entry as written, not per ε of a list.
            if c as usize >= k && !reported.contains(&label.as_str()) {
                reported.push(label);
                errors.push(format!(
                    "{label}: `target` class {c} is outside the model's {k} classes"
                ));
            }
        }
        check_class_count(a, k, warnings);
    }
}

/// The class-count rules of [`resolve`] for one attack entry
/// and, recursively, the members of an ensemble or AutoAttack.
fn check_class_count(a: &mut AttackSpec, k: usize, warnings: &mut Vec<String>) {
    let mut warn = |w: String| {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    };
    if let AttackConfig::Apgd(apgd) = &mut a.config {
        if apgd.loss == ApgdLoss::Dlr {
            let (need, what) = match apgd.target_classes {
                None => (DLR_MIN_CLASSES, "DLR loss divides by z_π1 − z_π3, the gap to the third-largest logit"),
                Some(_) => (TARGETED_DLR_MIN_CLASSES, "targeted DLR loss divides by z_π1 − (z_π3 + z_π4)/2, which uses the fourth-largest logit"),
            };
            if k < need {
                // Cross-entropy orders points as the margin does on so few
                // classes, and is defined: the report's plan shows what ran.
                apgd.loss = ApgdLoss::Ce;
                let targeted = if apgd.target_classes.is_some() {
                    "targeted "
                } else {
                    ""
                };
                warn(format!(
                    "{}: the {what}, so it needs at least {need} classes; the model has {k}, so {} runs with the {targeted}cross-entropy loss instead",
                    a.name, a.name
                ));
            }
        }
        if let Some(t) = apgd.target_classes {
            if t > k.saturating_sub(1) {
                warn(format!(
                    "{}: `target_classes` = {t}, but the model has only {} other classes: APGD-T attacks those {}",
                    a.name,
                    k - 1,
                    k - 1
                ));
            }
        }
    }
    if let AttackConfig::Fab(fab) = &a.config {
        if let Some(t) = fab.target_classes.filter(|&t| t > k.saturating_sub(1)) {
            warn(format!(
                "{}: `target_classes` = {t}, but the model has only {} other classes: FAB-T attacks those {}",
                a.name,
                k.saturating_sub(1),
                k.saturating_sub(1)
            ));
        }
    }
    for m in a.config.method_mut().members_mut() {
        check_class_count(m, k, warnings);
    }
}

#[cfg(test)]
mod tests {
    use crate::attack::apgd::ApgdLoss;
    use crate::attack::{AttackConfig, Norm};
    use crate::plan::Plan;

    fn err(text: &str) -> String {
        Plan::from_toml(text, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn every_entry_is_read_and_every_mistake_reported() {
        let e = err(r#"
[[attack]]
name = "a"
kind = "pgd"
eps = 0.1
stpes = 3
restarts = 0

[[attack]]
name = "b"
kind = "pgdd"
eps = 0.1

[[attack]]
name = "c"
kind = "spatial"
eps = 0.1

[[attack]]
name = "d"
kind = "apgd"
loss = "dlrr"
"#);
        for want in [
            "attack[0] \"a\": `stpes` is not a known key for this kind",
            "did you mean `steps`?",
            "attack[0] \"a\": `restarts` must be at least 1, found 0",
            "attack[1] \"b\": `kind` \"pgdd\" is not a known kind",
            "did you mean `pgd`?",
            "attack[2] \"c\": `eps` does not apply",
            "attack[3] \"d\": `loss` \"dlrr\" is not a known value (known: ce, dlr)",
            "attack[3] \"d\": `eps` is missing",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
    }

    #[test]
    fn eps_lists_expand_and_references_to_them_say_so() {
        let p = Plan::from_toml(
            "[[attack]]\nname = \"pgd\"\nkind = \"pgd\"\neps = [0.1, 0.3]\n",
            "p",
        )
        .unwrap();
        let names: Vec<&str> = p.attacks.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["pgd@0.1", "pgd@0.3"]);
        assert!(p.attacks.iter().all(|a| a.curve.as_deref() == Some("pgd")));
        let AttackConfig::Pgd(c) = &p.attacks[1].config else {
            panic!("{:?}", p.attacks[1])
        };
        assert!((c.step_size - 2.5 * 0.3 / 40.0).abs() < 1e-12);
        let e = err("[[attack]]\nname = \"pgd\"\nkind = \"pgd\"\neps = [0.1, 0.3]\n[[attack]]\nname = \"e\"\nkind = \"ensemble\"\nmembers = [\"pgd\"]\n");
        assert!(
            e.contains(
                "attack[1] \"e\": `members` \"pgd\" is an ε list: its entries are pgd@0.1, pgd@0.3"
            ),
            "{e}"
        );
        let e = err("[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = [0.1, 0.1]\n");
        assert!(e.contains("`eps` lists 0.1 twice"), "{e}");
        let e = err("[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = [0.1, 0.3]\n[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.2\n");
        assert!(
            e.contains("attack[1] \"a\": `name` \"a\" is used twice"),
            "{e}"
        );
    }

    #[test]
    fn model_errors_name_the_entry_as_written() {
        let spec = crate::model::ArchSpec::from_json(
            r#"{"version": 1, "input": {"shape": [1, 2, 2]}, "layers": [{"op": "flatten"},
                {"op": "linear", "param": "fc", "in_features": 4, "out_features": 3, "bias": false}]}"#,
            "t",
        )
        .unwrap();
        let facts = crate::plan::ModelFacts {
            spec: &spec,
            num_classes: 3,
        };
        let p = Plan::from_toml(
            "[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.1\n[[attack]]\nname = \"pgd\"\nkind = \"pgd\"\neps = [0.1, 0.3]\ntarget = 5\n",
            "p",
        )
        .unwrap();
        let e = p.resolve(&facts, "p.toml").unwrap_err().to_string();
        let want = "attack[1] \"pgd\" (\"pgd\" is an ε list: its entries are pgd@0.1, pgd@0.3): `target` class 5 is outside the model's 3 classes";
        assert_eq!(e.matches(want).count(), 1, "{e}");
    }

    #[test]
    fn ensembles_take_their_members_budget() {
        let p = Plan::from_toml(
            "[[attack]]\nname = \"p\"\nkind = \"pgd\"\nnorm = \"l2\"\neps = 1.0\n[[attack]]\nname = \"s\"\nkind = \"square\"\nnorm = \"l2\"\neps = 1.0\n[[attack]]\nname = \"e\"\nkind = \"ensemble\"\nmembers = [\"p\", \"s\"]\n",
            "p",
        )
        .unwrap();
        let e = &p.attacks[2];
        assert_eq!(
            (e.norm(), e.eps(), e.members().len()),
            (Norm::L2, Some(1.0), 2)
        );
        let bad = err("[[attack]]\nname = \"p\"\nkind = \"pgd\"\neps = 0.1\n[[attack]]\nname = \"q\"\nkind = \"pgd\"\neps = 0.2\n[[attack]]\nname = \"e\"\nkind = \"ensemble\"\nmembers = [\"p\", \"q\", \"r\"]\n");
        assert!(
            bad.contains("`members` \"r\" is not an earlier attack in this plan"),
            "{bad}"
        );
        let bad = err("[[attack]]\nname = \"p\"\nkind = \"pgd\"\neps = 0.1\n[[attack]]\nname = \"q\"\nkind = \"pgd\"\neps = 0.2\n[[attack]]\nname = \"e\"\nkind = \"ensemble\"\nmembers = [\"p\", \"q\"]\n");
        assert!(bad.contains("must share one norm and one ε"), "{bad}");
        let bad = err("[[attack]]\nname = \"p\"\nkind = \"pgd\"\neps = 0.1\n[[attack]]\nname = \"e\"\nkind = \"ensemble\"\neps = 0.2\nmembers = [\"p\"]\n");
        assert!(
            bad.contains("`eps` is 0.2, but the members' is 0.1"),
            "{bad}"
        );
        let p = Plan::from_toml(
            "[[attack]]\nname = \"aa\"\nkind = \"autoattack\"\neps = 0.3\n",
            "p",
        )
        .unwrap();
        let names: Vec<&str> = p.attacks[0]
            .members()
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["aa/apgd-ce", "aa/apgd-t", "aa/fab-t", "aa/square"]);
        let AttackConfig::Apgd(t) = &p.attacks[0].members()[1].config else {
            panic!()
        };
        assert_eq!(
            (t.loss, t.target_classes, t.steps),
            (ApgdLoss::Dlr, Some(9), 100)
        );
    }
}
