//! An attack entry as data: [`AttackSpec`] (a name, the kind's typed config
//! and the ε curve it belongs to), what every config offers the audit
//! ([`AttackMethod`]), and what a plan reads before a kind's own keys
//! ([`Budget`]: the name, `norm` and `eps`, which each kind takes as it
//! needs). The kinds themselves are listed once, in `attack/mod.rs`.

use serde::{Deserialize, Serialize};
use toml::Value;

use super::{Attack, AttackConfig, Norm, Target, TargetRule};
use crate::entry::Entry;
use crate::error::{Error, Result};

/// One attack entry, defaults resolved. Serialized flat, as reports have
/// always written it: `{"name": …, "kind": …, <config fields>, "curve": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttackSpec {
    /// Unique name, used in the report and the tensor sidecar (`name@ε` for
    /// an entry expanded from an ε list).
    pub name: String,
    /// The kind and its settings.
    #[serde(flatten)]
    pub config: AttackConfig,
    /// For an entry expanded from an ε list: the entry's name (the curve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
}

impl AttackSpec {
    /// An entry outside any ε curve.
    pub fn new(name: impl Into<String>, config: AttackConfig) -> Self {
        AttackSpec {
            name: name.into(),
            config,
            curve: None,
        }
    }

    /// The kind, as plans and reports write it.
    pub fn kind(&self) -> &'static str {
        self.config.kind()
    }

    /// The budget's norm (L∞ for the spatial attack, which has none).
    pub fn norm(&self) -> Norm {
        self.config.method().norm()
    }

    /// The budget (`None` for a minimum-norm attack without one, and for the
    /// spatial attack).
    pub fn eps(&self) -> Option<f64> {
        self.config.method().eps()
    }

    /// The targeted mode, `None` when untargeted.
    pub fn target(&self) -> Option<Target> {
        self.config.method().target()
    }

    /// `least_likely`, `random`, the class, or `None` when untargeted.
    pub fn target_label(&self) -> Option<String> {
        self.target().map(|t| match t {
            Target::Class(c) => c.to_string(),
            Target::Rule(TargetRule::LeastLikely) => "least_likely".into(),
            Target::Rule(TargetRule::Random) => "random".into(),
        })
    }

    /// Whether the attack uses only the model's outputs (no gradients).
    pub fn is_black_box(&self) -> bool {
        self.config.method().is_black_box()
    }

    /// Whether the attack looks for each input's smallest adversarial
    /// perturbation (its distance to the decision boundary) rather than
    /// any adversarial within a fixed budget.
    pub fn is_minimum_norm(&self) -> bool {
        self.config.method().is_minimum_norm()
    }

    /// The attack's field-standard name (`PGD`, `APGD-T`, `Square`, ...;
    /// an ensemble's members joined by ` + `).
    pub fn label(&self) -> String {
        self.config.method().label()
    }

    /// What the attack is bounded by when it has no Lp budget (the spatial
    /// attack's angles and shifts), for people.
    pub fn budget_note(&self) -> Option<String> {
        self.config.method().budget_note()
    }

    /// Whether the entry is an `autoattack` one (AutoAttack's attacks at
    /// its budgets, run as its protocol runs them).
    pub fn is_autoattack(&self) -> bool {
        matches!(self.config, AttackConfig::AutoAttack(_))
    }

    /// The attacks the entry runs, by field-standard name: an ensemble's
    /// members (their own members in turn), else the attack itself.
    pub fn component_labels(&self) -> Vec<String> {
        if self.members().is_empty() {
            return vec![self.label()];
        }
        self.members()
            .iter()
            .flat_map(AttackSpec::component_labels)
            .collect()
    }

    /// The draws each gradient averages over (`eot_samples`), for the
    /// attacks that have the option.
    pub fn eot_samples(&self) -> Option<usize> {
        self.config.method().eot_samples()
    }

    /// An ensemble's members, in order (none for other kinds).
    pub fn members(&self) -> &[AttackSpec] {
        self.config.method().members()
    }

    /// The runnable attack. An ensemble without members is an error, never
    /// an attack that returns the clean inputs.
    pub fn build(&self) -> Result<Box<dyn Attack>> {
        self.config.method().attack().map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("attack \"{}\": {m}", self.name)),
            other => other,
        })
    }
}

/// What the audit asks of every attack config.
pub trait AttackMethod {
    /// The budget's norm.
    fn norm(&self) -> Norm;
    /// The budget, when the attack has one.
    fn eps(&self) -> Option<f64>;
    /// The runnable attack, boxed.
    fn attack(&self) -> Result<Box<dyn Attack>>;
    /// The field-standard name of the attack as configured (`FGSM`, `PGD`,
    /// `APGD-CE`, `APGD-T`, `Square`, `FMN`, ...): what summaries and
    /// the threat-model headline say produced a figure.
    fn label(&self) -> String;
    /// Whether the attack minimises the perturbation (FMN; CW, DeepFool
    /// and FAB are of this family): its result per input is a distance to
    /// the decision boundary, reported as distance statistics, not as a
    /// robust accuracy.
    fn is_minimum_norm(&self) -> bool {
        false
    }
    /// What bounds an attack that has no Lp budget, for people.
    fn budget_note(&self) -> Option<String> {
        None
    }
    /// The targeted mode (`None`: untargeted).
    fn target(&self) -> Option<Target> {
        None
    }
    /// Whether the attack needs only the model's outputs.
    fn is_black_box(&self) -> bool {
        false
    }
    /// The draws of a randomized model each gradient averages over
    /// (`eot_samples`, Expectation over Transformation), for the attacks
    /// that have the option.
    fn eot_samples(&self) -> Option<usize> {
        None
    }
    /// The member attacks of an ensemble.
    fn members(&self) -> &[AttackSpec] {
        &[]
    }
    /// The member attacks of an ensemble, to resolve them against a model.
    fn members_mut(&mut self) -> &mut [AttackSpec] {
        &mut []
    }
}

/// Reads one kind's settings from a plan entry (errors recorded in it): one
/// config per ε of the entry's [`Budget`].
pub type Reader = fn(&mut Entry, &Budget) -> Vec<AttackConfig>;

/// Finds an earlier attack of the plan by name, or says why there is none.
pub type Lookup<'a> = dyn Fn(&str) -> std::result::Result<AttackSpec, String> + 'a;

/// What a plan reads of an attack entry before the kind's own keys: the
/// name, `norm` and `eps`. Each kind takes them as it needs (an ε list
/// gives one config per ε; the spatial attack refuses both).
pub struct Budget<'a> {
    /// The entry's name.
    pub name: &'a str,
    /// `norm`, when written (and valid).
    pub norm: Option<Norm>,
    /// `eps` when written: one number, or a list for a robustness curve
    /// (an empty list when the value was refused, its error recorded).
    pub eps: Option<Vec<f64>>,
    /// Resolves an ensemble's members against the plan's earlier attacks.
    pub earlier: &'a Lookup<'a>,
}

impl Budget<'_> {
    /// `norm`, L∞ when unwritten.
    pub fn norm(&self) -> Norm {
        self.norm.unwrap_or(Norm::Linf)
    }

    /// Each ε; `eps` is missing (an error) when unwritten.
    pub fn eps_list(&self, e: &mut Entry) -> Vec<f64> {
        match &self.eps {
            Some(list) => list.clone(),
            None => {
                e.fail("eps", "is missing");
                Vec::new()
            }
        }
    }

    /// Each ε, or one `None` when unwritten (an attack that can run
    /// without a budget).
    pub fn eps_or_none(&self) -> Vec<Option<f64>> {
        match &self.eps {
            Some(list) => list.iter().copied().map(Some).collect(),
            None => vec![None],
        }
    }

    /// Refuses `norm` and `eps`, which do not apply to this kind (`why`).
    pub fn refuse(&self, e: &mut Entry, why: &str) {
        if self.norm.is_some() {
            e.fail("norm", format!("does not apply: {why}"));
        }
        if self.eps.is_some() {
            e.fail("eps", format!("does not apply: {why}"));
        }
    }

    /// The names of the entries this one gives: `name@ε` per ε of a list
    /// (a curve), else the name.
    pub fn names(&self) -> Vec<String> {
        match &self.eps {
            Some(list) if list.len() > 1 => list
                .iter()
                .map(|&eps| curve_point(self.name, eps))
                .collect(),
            _ => vec![self.name.to_string()],
        }
    }
}

/// The name of the entry for `eps` of the ε list `name`.
pub fn curve_point(name: &str, eps: f64) -> String {
    format!("{name}@{eps}")
}

/// `eot_samples`: the draws each gradient averages over (Expectation over
/// Transformation); 1, no averaging, when unwritten.
pub fn read_eot_samples(e: &mut Entry) -> usize {
    e.positive_int("eot_samples")
        .unwrap_or(super::DEFAULT_EOT_SAMPLES)
}

/// Whether `n` is the default `eot_samples` (reports leave it out then).
pub fn is_default_eot(n: &usize) -> bool {
    *n == super::DEFAULT_EOT_SAMPLES
}

/// serde's default `eot_samples`.
pub fn default_eot() -> usize {
    super::DEFAULT_EOT_SAMPLES
}

/// `target`: `"least_likely"`, `"random"` or a class index.
pub fn read_target(e: &mut Entry) -> Option<Target> {
    let v = e.take("target")?;
    match &v {
        Value::String(s) if s == "least_likely" => Some(Target::Rule(TargetRule::LeastLikely)),
        Value::String(s) if s == "random" => Some(Target::Rule(TargetRule::Random)),
        Value::Integer(c) if (0..=u32::MAX as i64).contains(c) => Some(Target::Class(*c as u32)),
        _ => {
            e.fail(
                "target",
                format!("must be \"least_likely\", \"random\" or a class index, found {v}"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{KINDS, READERS};

    /// Attack entries as reports before the typed configs wrote them (one of
    /// each shape, from the thorough and default plans, plus an ensemble
    /// and a targeted PGD).
    const OLD: &[&str] = &[
        r#"{"name":"autoattack-linf-0.3","kind":"autoattack","norm":"linf","eps":0.3,"members":[{"name":"autoattack-linf-0.3/apgd-ce","kind":"apgd","norm":"linf","eps":0.3,"steps":100,"restarts":1,"loss":"ce"},{"name":"autoattack-linf-0.3/apgd-t","kind":"apgd","norm":"linf","eps":0.3,"steps":100,"restarts":1,"loss":"dlr","target_classes":9},{"name":"autoattack-linf-0.3/square","kind":"square","norm":"linf","eps":0.3,"restarts":1,"queries":5000,"p_init":0.8}]}"#,
        r#"{"name":"apgd-ce-linf@0.05","kind":"apgd","norm":"linf","eps":0.05,"steps":100,"restarts":1,"loss":"ce","curve":"apgd-ce-linf"}"#,
        r#"{"name":"fmn-l2","kind":"fmn","norm":"l2","eps":null,"steps":1000}"#,
        r#"{"name":"fmn-linf","kind":"fmn","norm":"linf","eps":null,"steps":1000,"refine":10}"#,
        r#"{"name":"fgsm-linf-0.1","kind":"fgsm","norm":"linf","eps":0.1}"#,
        r#"{"name":"pgd-linf-0.1","kind":"pgd","norm":"linf","eps":0.1,"step_size":0.01,"steps":40,"random_start":true,"restarts":1}"#,
        r#"{"name":"t","kind":"pgd","norm":"linf","eps":0.1,"step_size":0.01,"steps":40,"random_start":true,"restarts":1,"target":"least_likely"}"#,
        r#"{"name":"apgd-t-linf-0.1","kind":"apgd","norm":"linf","eps":0.1,"steps":50,"restarts":1,"loss":"dlr","target_classes":3}"#,
        r#"{"name":"square-linf-0.1","kind":"square","norm":"linf","eps":0.1,"restarts":1,"queries":300,"p_init":0.8}"#,
        r#"{"name":"e","kind":"ensemble","norm":"l2","eps":1.0,"members":[{"name":"f","kind":"fgsm","norm":"l2","eps":1.0,"target":3}]}"#,
    ];

    #[test]
    fn old_entries_read_back_and_write_back_the_same() {
        for old in OLD {
            let spec: AttackSpec = serde_json::from_str(old).unwrap();
            assert_eq!(serde_json::to_string(&spec).unwrap(), *old);
            spec.build().unwrap();
        }
        // The spatial attack no longer writes the `norm` and `eps` it never
        // had; old reports' still read.
        let old = r#"{"name":"s","kind":"spatial","norm":"linf","eps":null,"mode":"random","max_angle_deg":30.0,"max_shift_px":3.0,"angle_steps":31,"shift_steps":5,"samples":10}"#;
        let spec: AttackSpec = serde_json::from_str(old).unwrap();
        assert_eq!((spec.norm(), spec.eps()), (Norm::Linf, None));
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            old.replace(r#""norm":"linf","eps":null,"#, "")
        );
    }

    #[test]
    fn kinds_readers_and_serde_tags_agree() {
        let earlier = |_: &str| Err("none".to_string());
        for (kind, read) in READERS {
            let mut e = Entry::new("x".into(), toml::Table::new());
            let budget = Budget {
                name: "x",
                norm: None,
                eps: (*kind != "spatial").then(|| vec![0.1]),
                earlier: &earlier,
            };
            let configs = read(&mut e, &budget);
            if *kind == "ensemble" {
                // Its members are required.
                assert!(configs.is_empty() && e.failed());
                continue;
            }
            assert_eq!(configs.len(), 1, "{kind}");
            assert_eq!(configs[0].kind(), *kind);
            assert_eq!(serde_json::to_value(&configs[0]).unwrap()["kind"], *kind);
            let mut errors = crate::entry::Errors::new("p");
            assert!(e.finish(&mut errors), "{kind}");
        }
        let listed: Vec<&str> = READERS.iter().map(|(k, _)| *k).collect();
        assert_eq!(listed, KINDS);
    }
}
