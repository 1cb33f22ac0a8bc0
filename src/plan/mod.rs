//! Audit plans: TOML files in `attacks/` saying which attacks to run with
//! which budgets, and which stress, equivariance and attribution checks.
//!
//! Two stages, as ripgrep turns low-level arguments into high-level ones:
//! - [`Plan::from_toml`] reads what the user wrote. Parsing is strict (an
//!   unknown kind or key, a wrong type, a negative or NaN ε, zero steps, a
//!   duplicate name) and reports every mistake at once, each naming the
//!   file, the entry and the key, before any work starts.
//! - [`Plan::resolve`] completes it once the model is known ([`ModelFacts`]):
//!   class counts, layer names, and the defaults that follow the input range
//!   or size. The report embeds the resolved plan.
//!
//! One file per section: [`attacks`], [`attributions`], [`stress`]
//! (stress and equivariance) and [`gates`]. The method families own their
//! config types; this module only reads them from entries and checks what
//! spans entries (names, references between entries, the model).

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::entry::Errors;
use crate::error::{Error, Result};
use crate::model::ArchSpec;

pub mod attacks;
pub mod attributions;
pub mod gates;
pub mod kinds;
pub mod preset;
pub mod schema;
pub mod stress;

pub use crate::attack::{AttackSpec, KINDS};

pub use preset::{Preset, PresetChoice};

/// A validated plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    /// Seed of every random choice.
    pub seed: u64,
    /// Inputs per batch.
    pub batch_size: usize,
    /// The attacks, in order.
    pub attacks: Vec<AttackSpec>,
    /// The `[[stress]]` entries, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stress: Vec<crate::stress::StressSpec>,
    /// The `[[equivariance]]` entries, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equivariance: Vec<crate::stress::EquivarianceSpec>,
    /// The attribution methods (`[[attribution]]`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributions: Vec<crate::attribution::AttributionSpec>,
    /// CI gates (`[gates]`): metric → condition such as `">= 0.8"`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub gates: std::collections::BTreeMap<String, String>,
}

/// What resolving a plan needs to know about the model.
#[derive(Debug, Clone, Copy)]
pub struct ModelFacts<'a> {
    /// The architecture: input shape and range, layers, class names.
    pub spec: &'a ArchSpec,
    /// Classes the classifier scores (2 for a one-output model).
    pub num_classes: usize,
}

/// A plan completed against a model: what runs, and what the report says
/// about the changes made.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPlan {
    /// Every setting filled in; the report embeds it.
    pub plan: Plan,
    /// Report warnings: settings replaced or capped for this model.
    pub warnings: Vec<String>,
}

impl Plan {
    /// Reads and validates a plan file.
    pub fn from_file(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Plan::from_toml(&text, &path.display().to_string())
    }

    /// The `mnist` preset for inputs in `[0, 1]` (the shipped models').
    pub fn default_plan() -> Plan {
        Preset::Mnist
            .plan_for([0.0, 1.0])
            .expect("the mnist preset is valid")
    }

    /// Parses and validates plan text; `origin` names it in errors. Every
    /// mistake found is reported, in one [`Error::Plan`].
    pub fn from_toml(text: &str, origin: &str) -> Result<Plan> {
        let mut top: Table = text.parse().map_err(|e: toml::de::Error| Error::Plan {
            origin: origin.to_string(),
            message: format!("not valid TOML: {}", e.message()),
        })?;
        let mut errors = Errors::new(origin);
        let seed = match top.remove("seed") {
            None => 0,
            Some(Value::Integer(i)) if i >= 0 => i as u64,
            Some(other) => {
                errors.push(format!(
                    "`seed` must be a non-negative integer, found {other}"
                ));
                0
            }
        };
        let batch_size = match top.remove("batch_size") {
            None => 100,
            Some(Value::Integer(i)) if i >= 1 => i as usize,
            Some(other) => {
                errors.push(format!(
                    "`batch_size` must be a positive integer, found {other}"
                ));
                1
            }
        };
        let attacks = attacks::parse(&mut top, &mut errors);
        let (stress, equivariance) = stress::parse(&mut top, &mut errors);
        let attributions = attributions::parse(&mut top, &attacks, &mut errors);
        let gates = gates::parse_table(top.remove("gates"), &mut errors);
        for key in top.keys() {
            errors.push(format!(
                "unknown top-level key `{key}` (known: {}){}",
                TOP_LEVEL_KEYS.join(", "),
                crate::entry::did_you_mean(key, TOP_LEVEL_KEYS)
            ));
        }
        if errors.is_empty()
            && attacks.is_empty()
            && attributions.is_empty()
            && stress.is_empty()
            && equivariance.is_empty()
        {
            errors.push(
                "no entries at all ([[attack]], [[attribution]], [[stress]], [[equivariance]])",
            );
        }
        let plan = Plan {
            seed,
            batch_size,
            attacks,
            stress,
            equivariance,
            attributions,
            gates,
        };
        gates::check_table(&plan, &mut errors);
        errors.into_result(plan)
    }

    /// Completes the plan against the model, before any work starts, and
    /// returns it with the report warnings it gives. Errors (a fixed target
    /// class the model lacks, an unknown Grad-CAM layer, an occlusion window
    /// larger than the input) are all reported at once.
    ///
    /// The rules per section are in `attacks::resolve` (class counts:
    /// DLR replaced below 3 classes, APGD-T capped) and
    /// `attributions::resolve` (range-relative noise scales, layers,
    /// windows). With fewer than 5 classes each input's `top5` simply lists
    /// them all (no warning: it fired on every run of such a model and asked
    /// nothing of the user).
    pub fn resolve(mut self, model: &ModelFacts, origin: &str) -> Result<ResolvedPlan> {
        let mut errors = Errors::new(origin);
        let mut warnings = Vec::new();
        attacks::resolve(&mut self.attacks, model, &mut errors, &mut warnings);
        attributions::resolve(&mut self.attributions, model, &mut errors, &mut warnings);
        errors.into_result(ResolvedPlan {
            plan: self,
            warnings,
        })
    }
}

/// The keys a plan's top level accepts.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "seed",
    "batch_size",
    "attack",
    "attribution",
    "stress",
    "equivariance",
    "gates",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{AttackConfig, Norm};

    fn err(text: &str) -> String {
        Plan::from_toml(text, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn shipped_plans_parse() {
        let plan = Plan::default_plan();
        assert!(plan.attacks.iter().any(|a| a.kind() == "fgsm"));
        assert!(plan
            .attacks
            .iter()
            .any(|a| a.kind() == "pgd" && a.norm() == Norm::Linf));
        assert!(plan
            .attacks
            .iter()
            .any(|a| a.kind() == "pgd" && a.norm() == Norm::L2));
        for file in ["quick.toml", "torchattacks-parity.toml", "thorough.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("attacks")
                .join(file);
            Plan::from_file(&path).unwrap();
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let p =
            Plan::from_toml("[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = 0.3\n", "p").unwrap();
        assert_eq!((p.seed, p.batch_size), (0, 100));
        let AttackConfig::Pgd(a) = &p.attacks[0].config else {
            panic!("{:?}", p.attacks[0]);
        };
        assert_eq!(a.eps, 0.3);
        assert_eq!(a.steps, 40);
        assert!((a.step_size - 2.5 * 0.3 / 40.0).abs() < 1e-12);
        assert_eq!((a.random_start, a.restarts, a.norm), (true, 1, Norm::Linf));
    }

    #[test]
    fn errors_name_file_entry_and_key() {
        let e = err("[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = 0.3\nstepsize = 0.1\n");
        assert!(
            e.contains("p.toml") && e.contains("attack[0] \"a\"") && e.contains("`stepsize`"),
            "{e}"
        );
        let e = err("[[attack]]\nname = \"a\"\nkind = \"carlini\"\neps = 0.3\n");
        assert!(e.contains("`kind`") && e.contains("\"carlini\""), "{e}");
        let e = err("[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = -0.1\n");
        assert!(e.contains("`eps`") && e.contains("-0.1"), "{e}");
        let e = err("[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = nan\n");
        assert!(e.contains("`eps`") && e.contains("NaN"), "{e}");
        let e = err("[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = 0.1\nsteps = 0\n");
        assert!(e.contains("`steps`") && e.contains("at least 1"), "{e}");
        let e = err("[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.1\nsteps = 3\n");
        assert!(
            e.contains("`steps`") && e.contains("not a known key"),
            "{e}"
        );
        let e = err("[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.1\n[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.2\n");
        assert!(e.contains("attack[1]") && e.contains("twice"), "{e}");
        let e = err("seeds = 1\n[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.1\n");
        assert!(e.contains("`seeds`"), "{e}");
        let e = err("[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.1\nnorm = \"l3\"\n");
        assert!(e.contains("`norm`") && e.contains("l3"), "{e}");
        let e = err("[[attack]\n");
        assert!(e.contains("not valid TOML"), "{e}");
    }

    #[test]
    fn fixed_targets_are_checked_against_the_model() {
        let p = Plan::from_toml(
            "[[attack]]\nname = \"t\"\nkind = \"pgd\"\neps = 0.1\ntarget = 12\n",
            "p.toml",
        )
        .unwrap();
        let spec = crate::model::load_model(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist_cnn.safetensors"),
            None,
        )
        .unwrap()
        .network
        .spec()
        .clone();
        let facts = |num_classes| ModelFacts {
            spec: &spec,
            num_classes,
        };
        let e = p
            .clone()
            .resolve(&facts(10), "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`target` class 12"), "{e}");
        assert!(p.clone().resolve(&facts(13), "p.toml").is_ok());
    }
}
