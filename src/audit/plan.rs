//! Audit plans: TOML files in `attacks/` saying which attacks to run with
//! which budgets. Parsing is strict — an unknown kind or key, a wrong type,
//! a negative or NaN ε, zero steps, a duplicate name — and every error names
//! the file, the entry and the key, before any work starts.

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::attack::{fgsm::Fgsm, pgd::Pgd, Attack, Norm, Target, TargetRule};
use crate::error::{Error, Result};

/// The plan `run` uses when none is given (also in `attacks/default.toml`).
pub const DEFAULT_PLAN: &str = include_str!("../../attacks/default.toml");

/// A validated plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    /// Seed of every random choice.
    pub seed: u64,
    /// Inputs per batch.
    pub batch_size: usize,
    /// The attacks, in order.
    pub attacks: Vec<AttackSpec>,
    /// The attribution methods (`[[attribution]]`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributions: Vec<crate::attribution::plan::AttributionSpec>,
}

/// One attack entry, defaults resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttackSpec {
    /// Unique name, used in the report and the tensor sidecar.
    pub name: String,
    /// `fgsm` or `pgd`.
    pub kind: String,
    /// Budget norm.
    pub norm: Norm,
    /// Budget, in input units.
    pub eps: f64,
    /// PGD step length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f64>,
    /// PGD steps per restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// PGD random start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_start: Option<bool>,
    /// PGD restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<usize>,
    /// Targeted mode: `least_likely`, `random` or a class index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

impl AttackSpec {
    /// The runnable attack.
    pub fn build(&self) -> Box<dyn Attack> {
        match self.kind.as_str() {
            "fgsm" => Box::new(Fgsm {
                norm: self.norm,
                eps: self.eps as f32,
                target: self.target,
            }),
            _ => Box::new(Pgd {
                norm: self.norm,
                eps: self.eps as f32,
                step_size: self.step_size.unwrap_or(0.0) as f32,
                steps: self.steps.unwrap_or(1),
                random_start: self.random_start.unwrap_or(false),
                restarts: self.restarts.unwrap_or(1),
                target: self.target,
            }),
        }
    }

    /// `least_likely`, `random`, the class, or `None` when untargeted.
    pub fn target_label(&self) -> Option<String> {
        self.target.map(|t| match t {
            Target::Class(c) => c.to_string(),
            Target::Rule(TargetRule::LeastLikely) => "least_likely".into(),
            Target::Rule(TargetRule::Random) => "random".into(),
        })
    }
}

/// The kinds this build knows.
pub const KINDS: &[&str] = &["fgsm", "pgd"];

struct Entry<'a> {
    origin: &'a str,
    label: String,
    table: Table,
}

impl Entry<'_> {
    fn err(&self, key: &str, message: impl std::fmt::Display) -> Error {
        plan_err(self.origin, format!("{}: `{key}` {message}", self.label))
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.table.remove(key)
    }

    fn float(&mut self, key: &str) -> Result<Option<f64>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Float(f)) => Ok(Some(f)),
            Some(Value::Integer(i)) => Ok(Some(i as f64)),
            Some(other) => {
                Err(self.err(key, format!("must be a number, found {}", other.type_str())))
            }
        }
    }

    fn nonneg_float(&mut self, key: &str) -> Result<Option<f64>> {
        let v = self.float(key)?;
        if let Some(f) = v {
            if !f.is_finite() || f < 0.0 {
                return Err(self.err(key, format!("must be a finite number ≥ 0, found {f}")));
            }
        }
        Ok(v)
    }

    fn positive_int(&mut self, key: &str) -> Result<Option<usize>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(i)) if i >= 1 => Ok(Some(i as usize)),
            Some(Value::Integer(i)) => Err(self.err(key, format!("must be at least 1, found {i}"))),
            Some(other) => Err(self.err(
                key,
                format!("must be an integer, found {}", other.type_str()),
            )),
        }
    }

    fn boolean(&mut self, key: &str) -> Result<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(b)),
            Some(other) => Err(self.err(
                key,
                format!("must be true or false, found {}", other.type_str()),
            )),
        }
    }

    fn string(&mut self, key: &str) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => {
                Err(self.err(key, format!("must be a string, found {}", other.type_str())))
            }
        }
    }

    fn finish(self) -> Result<()> {
        if let Some(key) = self.table.keys().next() {
            return Err(self.err(key, "is not a known key for this kind"));
        }
        Ok(())
    }
}

fn plan_err(origin: &str, message: impl Into<String>) -> Error {
    Error::Plan {
        origin: origin.to_string(),
        message: message.into(),
    }
}

impl Plan {
    /// Reads and validates a plan file.
    pub fn from_file(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Plan::from_toml(&text, &path.display().to_string())
    }

    /// The built-in default plan.
    pub fn default_plan() -> Plan {
        Plan::from_toml(DEFAULT_PLAN, "attacks/default.toml").expect("the default plan is valid")
    }

    /// Parses and validates plan text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Plan> {
        let mut top: Table = text.parse().map_err(|e: toml::de::Error| {
            plan_err(origin, format!("not valid TOML: {}", e.message()))
        })?;
        let seed = match top.remove("seed") {
            None => 0,
            Some(Value::Integer(i)) if i >= 0 => i as u64,
            Some(other) => {
                return Err(plan_err(
                    origin,
                    format!("`seed` must be a non-negative integer, found {other}"),
                ))
            }
        };
        let batch_size = match top.remove("batch_size") {
            None => 100,
            Some(Value::Integer(i)) if i >= 1 => i as usize,
            Some(other) => {
                return Err(plan_err(
                    origin,
                    format!("`batch_size` must be a positive integer, found {other}"),
                ))
            }
        };
        let entries = match top.remove("attack") {
            None => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(plan_err(
                    origin,
                    "`attack` must be an array of tables ([[attack]])",
                ))
            }
        };
        let attribution_entries = top.remove("attribution");
        if let Some(key) = top.keys().next() {
            return Err(plan_err(
                origin,
                format!(
                    "unknown top-level key `{key}` (known: seed, batch_size, attack, attribution)"
                ),
            ));
        }
        let no_attributions = attribution_entries
            .as_ref()
            .is_none_or(|v| v.as_array().is_some_and(|a| a.is_empty()));
        if entries.is_empty() && no_attributions {
            return Err(plan_err(
                origin,
                "no entries at all (add [[attack]] or [[attribution]] tables)",
            ));
        }
        let mut attacks: Vec<AttackSpec> = Vec::new();
        for (i, item) in entries.into_iter().enumerate() {
            let Value::Table(table) = item else {
                return Err(plan_err(origin, format!("attack[{i}] must be a table")));
            };
            let name_hint = table
                .get("name")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let label = match &name_hint {
                Some(n) => format!("attack[{i}] \"{n}\""),
                None => format!("attack[{i}]"),
            };
            let mut e = Entry {
                origin,
                label,
                table,
            };
            let spec = parse_attack(&mut e)?;
            e.finish()?;
            if attacks.iter().any(|a| a.name == spec.name) {
                return Err(plan_err(
                    origin,
                    format!(
                        "attack[{i}]: `name` \"{}\" is used twice; names must be unique",
                        spec.name
                    ),
                ));
            }
            attacks.push(spec);
        }
        let attributions =
            crate::attribution::plan::parse_attributions(attribution_entries, origin, &attacks)?;
        Ok(Plan {
            seed,
            batch_size,
            attacks,
            attributions,
        })
    }

    /// Checks what depends on the model: fixed target classes must exist.
    pub fn check_against(&self, num_classes: usize, origin: &str) -> Result<()> {
        for (i, a) in self.attacks.iter().enumerate() {
            if let Some(Target::Class(c)) = a.target {
                if c as usize >= num_classes {
                    return Err(plan_err(
                        origin,
                        format!("attack[{i}] \"{}\": `target` class {c} is outside the model's {num_classes} classes", a.name),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn parse_attack(e: &mut Entry) -> Result<AttackSpec> {
    let kind = e
        .string("kind")?
        .ok_or_else(|| e.err("kind", format!("is missing (one of {})", KINDS.join(", "))))?;
    if !KINDS.contains(&kind.as_str()) {
        return Err(e.err(
            "kind",
            format!(
                "\"{kind}\" is not a known kind (known: {})",
                KINDS.join(", ")
            ),
        ));
    }
    let name = e
        .string("name")?
        .ok_or_else(|| e.err("name", "is missing"))?;
    if name.is_empty() || name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err(e.err(
            "name",
            "must be non-empty, without slashes or control characters",
        ));
    }
    let norm = match e.string("norm")?.as_deref() {
        None | Some("linf") => Norm::Linf,
        Some("l2") => Norm::L2,
        Some(other) => return Err(e.err("norm", format!("\"{other}\" is not linf or l2"))),
    };
    let eps = e
        .nonneg_float("eps")?
        .ok_or_else(|| e.err("eps", "is missing"))?;
    let target = match e.take("target") {
        None => None,
        Some(Value::String(s)) if s == "least_likely" => {
            Some(Target::Rule(TargetRule::LeastLikely))
        }
        Some(Value::String(s)) if s == "random" => Some(Target::Rule(TargetRule::Random)),
        Some(Value::Integer(c)) if c >= 0 => Some(Target::Class(c as u32)),
        Some(other) => {
            return Err(e.err(
                "target",
                format!("must be \"least_likely\", \"random\" or a class index, found {other}"),
            ))
        }
    };
    let mut spec = AttackSpec {
        name,
        kind: kind.clone(),
        norm,
        eps,
        step_size: None,
        steps: None,
        random_start: None,
        restarts: None,
        target,
    };
    if kind == "pgd" {
        let steps = e.positive_int("steps")?.unwrap_or(40);
        // Madry et al.'s rule: 2.5·ε/steps lets a run cross the whole ball.
        let step_size = e
            .nonneg_float("step_size")?
            .unwrap_or(2.5 * eps / steps as f64);
        spec.steps = Some(steps);
        spec.step_size = Some(step_size);
        spec.random_start = Some(e.boolean("random_start")?.unwrap_or(true));
        spec.restarts = Some(e.positive_int("restarts")?.unwrap_or(1));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Plan::from_toml(text, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn shipped_plans_parse() {
        let plan = Plan::default_plan();
        assert!(plan.attacks.iter().any(|a| a.kind == "fgsm"));
        assert!(plan
            .attacks
            .iter()
            .any(|a| a.kind == "pgd" && a.norm == Norm::Linf));
        assert!(plan
            .attacks
            .iter()
            .any(|a| a.kind == "pgd" && a.norm == Norm::L2));
        for file in ["quick.toml", "torchattacks-parity.toml"] {
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
        let a = &p.attacks[0];
        assert_eq!(a.steps, Some(40));
        assert!((a.step_size.unwrap() - 2.5 * 0.3 / 40.0).abs() < 1e-12);
        assert_eq!(
            (a.random_start, a.restarts, a.norm),
            (Some(true), Some(1), Norm::Linf)
        );
    }

    #[test]
    fn errors_name_file_entry_and_key() {
        let e = err("[[attack]]\nname = \"a\"\nkind = \"pgd\"\neps = 0.3\nstepsize = 0.1\n");
        assert!(
            e.contains("p.toml") && e.contains("attack[0] \"a\"") && e.contains("`stepsize`"),
            "{e}"
        );
        let e = err("[[attack]]\nname = \"a\"\nkind = \"cw\"\neps = 0.3\n");
        assert!(e.contains("`kind`") && e.contains("\"cw\""), "{e}");
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
        let e = err("[[attack]]\nname = \"a\"\nkind = \"fgsm\"\neps = 0.1\nnorm = \"l1\"\n");
        assert!(e.contains("`norm`") && e.contains("l1"), "{e}");
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
        let e = p.check_against(10, "p.toml").unwrap_err().to_string();
        assert!(e.contains("`target` class 12"), "{e}");
        assert!(p.check_against(13, "p.toml").is_ok());
    }
}
