//! The `[[attack]]` section of a plan: each entry read into an
//! [`AttackSpec`], ε lists expanded into one entry per ε (`name@ε`, a
//! robustness curve), ensembles resolved against earlier entries, and the
//! class-count rules applied once the model is known.

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use super::legacy_entry::{self, Entry};
use super::ModelFacts;
use crate::attack::apgd::{Apgd, ApgdLoss};
use crate::attack::ensemble::Ensemble;
use crate::attack::fmn::Fmn;
use crate::attack::spatial::{Spatial, SpatialMode};
use crate::attack::square::Square;
use crate::attack::{fgsm::Fgsm, pgd::Pgd, Attack, Norm, Target, TargetRule};
use crate::entry::Errors;
use crate::error::{Error, Result};

/// One attack entry, defaults resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttackSpec {
    /// Unique name, used in the report and the tensor sidecar.
    pub name: String,
    /// One of [`KINDS`].
    pub kind: String,
    /// Budget norm.
    pub norm: Norm,
    /// Budget, in input units (`None` only for a minimum-norm attack without one).
    pub eps: Option<f64>,
    /// PGD step length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f64>,
    /// Iterations (PGD, APGD, FMN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// PGD random start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_start: Option<bool>,
    /// Runs on inputs still robust (PGD, APGD, Square).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<usize>,
    /// Targeted mode: `least_likely`, `random` or a class index (FGSM, PGD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// APGD loss: `ce` or `dlr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
    /// APGD-T: attack the this many most likely other classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_classes: Option<usize>,
    /// Square: queries per input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<usize>,
    /// Square: initial share of pixels per square.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_init: Option<f64>,
    /// FMN: bisection rounds of PGD below the distance found (default 8 in L∞, 0 in L2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refine: Option<usize>,
    /// Spatial: `grid` or `random` (worst of `samples`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Spatial: largest rotation either way, degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_angle_deg: Option<f64>,
    /// Spatial: largest shift either way, pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_shift_px: Option<f64>,
    /// Spatial grid: angles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub angle_steps: Option<usize>,
    /// Spatial grid: shifts per axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_steps: Option<usize>,
    /// Spatial random: transformations tried per input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// Ensembles: the member attacks, run in order on inputs still robust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<AttackSpec>>,
    /// For an entry expanded from an ε list: the entry's name (the curve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
}

impl AttackSpec {
    /// An entry with every optional setting unset (the attack's defaults).
    pub fn new(name: String, kind: &str, norm: Norm, eps: Option<f64>) -> Self {
        AttackSpec {
            name,
            kind: kind.to_string(),
            norm,
            eps,
            step_size: None,
            steps: None,
            random_start: None,
            restarts: None,
            target: None,
            loss: None,
            target_classes: None,
            queries: None,
            p_init: None,
            refine: None,
            mode: None,
            max_angle_deg: None,
            max_shift_px: None,
            angle_steps: None,
            shift_steps: None,
            samples: None,
            members: None,
            curve: None,
        }
    }

    /// The runnable attack: one arm per kind, unset settings at the same
    /// defaults the plan parser fills in ([`defaults`]). An unknown kind is
    /// an error, never an attack that does nothing.
    pub fn build(&self) -> Result<Box<dyn Attack>> {
        let eps = self.eps.unwrap_or(0.0) as f32;
        Ok(match self.kind.as_str() {
            "fgsm" => Box::new(Fgsm {
                norm: self.norm,
                eps,
                target: self.target,
            }),
            "pgd" => {
                let steps = self.steps.unwrap_or(defaults::PGD_STEPS);
                Box::new(Pgd {
                    norm: self.norm,
                    eps,
                    step_size: self
                        .step_size
                        .unwrap_or_else(|| defaults::pgd_step_size(eps as f64, steps))
                        as f32,
                    steps,
                    random_start: self.random_start.unwrap_or(true),
                    restarts: self.restarts.unwrap_or(1),
                    target: self.target,
                })
            }
            "apgd" => Box::new(Apgd {
                norm: self.norm,
                eps,
                steps: self.steps.unwrap_or(defaults::APGD_STEPS),
                restarts: self.restarts.unwrap_or(1),
                loss: match self.loss.as_deref() {
                    None | Some("ce") => ApgdLoss::Ce,
                    Some("dlr") => ApgdLoss::Dlr,
                    Some(other) => {
                        return Err(Error::Invalid(format!(
                            "attack \"{}\": APGD loss \"{other}\" is not ce or dlr",
                            self.name
                        )))
                    }
                },
                target_classes: self.target_classes,
                rho: 0.75,
            }),
            "square" => Box::new(Square {
                norm: self.norm,
                eps,
                queries: self.queries.unwrap_or(defaults::SQUARE_QUERIES),
                p_init: self.p_init.unwrap_or(defaults::SQUARE_P_INIT) as f32,
                restarts: self.restarts.unwrap_or(1),
            }),
            "spatial" => Box::new(Spatial {
                max_angle_deg: self
                    .max_angle_deg
                    .unwrap_or(defaults::SPATIAL_MAX_ANGLE_DEG),
                max_shift_px: self.max_shift_px.unwrap_or(defaults::SPATIAL_MAX_SHIFT_PX),
                angle_steps: self.angle_steps.unwrap_or(defaults::SPATIAL_ANGLE_STEPS),
                shift_steps: self.shift_steps.unwrap_or(defaults::SPATIAL_SHIFT_STEPS),
                mode: match self.mode.as_deref() {
                    None | Some("grid") => SpatialMode::Grid,
                    Some("random") => {
                        SpatialMode::Random(self.samples.unwrap_or(defaults::SPATIAL_SAMPLES))
                    }
                    Some(other) => {
                        return Err(Error::Invalid(format!(
                            "attack \"{}\": spatial mode \"{other}\" is not grid or random",
                            self.name
                        )))
                    }
                },
            }),
            "fmn" => Box::new(Fmn {
                norm: self.norm,
                steps: self.steps.unwrap_or(defaults::FMN_STEPS),
                eps: self.eps.map(|e| e as f32),
                alpha_init: 1.0,
                gamma_init: 0.05,
                refine: self.refine.unwrap_or(defaults::fmn_refine(self.norm)),
            }),
            "ensemble" | "autoattack" => {
                let members = self.members.as_deref().unwrap_or_default();
                if members.is_empty() {
                    // An empty ensemble would return the clean inputs: 100%
                    // "robust" without a single attack.
                    return Err(Error::Invalid(format!(
                        "attack \"{}\": a {} needs its members",
                        self.name, self.kind
                    )));
                }
                Box::new(Ensemble {
                    members: members.iter().map(|m| m.build()).collect::<Result<_>>()?,
                })
            }
            other => {
                return Err(Error::Invalid(format!(
                    "attack \"{}\": unknown kind \"{other}\" (known: {})",
                    self.name,
                    KINDS.join(", ")
                )))
            }
        })
    }

    /// `least_likely`, `random`, the class, or `None` when untargeted.
    pub fn target_label(&self) -> Option<String> {
        self.target.map(|t| match t {
            Target::Class(c) => c.to_string(),
            Target::Rule(TargetRule::LeastLikely) => "least_likely".into(),
            Target::Rule(TargetRule::Random) => "random".into(),
        })
    }

    /// Whether the attack uses only the model's outputs (no gradients).
    pub fn is_black_box(&self) -> bool {
        self.kind == "square"
    }
}

/// The attacks' defaults, used by the plan parser and by
/// [`AttackSpec::build`] alike.
pub mod defaults {
    use crate::attack::Norm;

    /// PGD iterations (Foolbox's 40).
    pub const PGD_STEPS: usize = 40;
    /// PGD step length: Madry et al.'s 2.5·ε/steps.
    pub fn pgd_step_size(eps: f64, steps: usize) -> f64 {
        2.5 * eps / steps as f64
    }
    /// APGD iterations (AutoAttack's 100).
    pub const APGD_STEPS: usize = 100;
    /// Square queries per input (AutoAttack's 5,000).
    pub const SQUARE_QUERIES: usize = 5000;
    /// Square's initial share of pixels per square.
    pub const SQUARE_P_INIT: f64 = 0.8;
    /// Spatial: largest rotation either way (Engstrom et al.).
    pub const SPATIAL_MAX_ANGLE_DEG: f64 = 30.0;
    /// Spatial: largest shift either way.
    pub const SPATIAL_MAX_SHIFT_PX: f64 = 3.0;
    /// Spatial grid: angles.
    pub const SPATIAL_ANGLE_STEPS: usize = 31;
    /// Spatial grid: shifts per axis.
    pub const SPATIAL_SHIFT_STEPS: usize = 5;
    /// Spatial random: transformations per input.
    pub const SPATIAL_SAMPLES: usize = 10;
    /// FMN iterations.
    pub const FMN_STEPS: usize = 100;
    /// FMN's PGD bisection rounds: FMN alone is weaker than PGD in L∞
    /// (see `attack/fmn.rs`), so it is refined there by default.
    pub fn fmn_refine(norm: Norm) -> usize {
        match norm {
            Norm::Linf => 8,
            Norm::L2 => 0,
        }
    }
}

/// The kinds this build knows.
pub const KINDS: &[&str] = &[
    "fgsm",
    "pgd",
    "apgd",
    "spatial",
    "square",
    "fmn",
    "ensemble",
    "autoattack",
];

/// Reads the `attack` array of the plan's top-level table.
pub(super) fn parse(top: &mut Table, errors: &mut Errors) -> Vec<AttackSpec> {
    let origin = errors.origin().to_string();
    let entries = match top.remove("attack") {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push("`attack` must be an array of tables ([[attack]])");
            return Vec::new();
        }
    };
    let mut attacks: Vec<AttackSpec> = Vec::new();
    for (i, item) in entries.into_iter().enumerate() {
        let Value::Table(table) = item else {
            errors.push(format!("attack[{i}] must be a table"));
            continue;
        };
        let label = match table.get("name").and_then(|v| v.as_str()) {
            Some(n) => format!("attack[{i}] \"{n}\""),
            None => format!("attack[{i}]"),
        };
        let mut e = Entry::new(&origin, label, table);
        let specs = match parse_attack(&mut e, &attacks).and_then(|s| e.finish().map(|_| s)) {
            Ok(specs) => specs,
            Err(Error::Plan { message, .. }) => {
                errors.push(message);
                continue;
            }
            Err(other) => {
                errors.push(other.to_string());
                continue;
            }
        };
        for spec in specs {
            if attacks.iter().any(|a| a.name == spec.name) {
                errors.push(format!(
                    "attack[{i}]: `name` \"{}\" is used twice; names must be unique",
                    spec.name
                ));
                continue;
            }
            attacks.push(spec);
        }
    }
    attacks
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
/// - APGD-T asking for more target classes than the model has other
///   classes attacks all of them, with a warning.
pub(super) fn resolve(
    attacks: &mut [AttackSpec],
    model: &ModelFacts,
    errors: &mut Errors,
    warnings: &mut Vec<String>,
) {
    let k = model.num_classes;
    for (i, a) in attacks.iter_mut().enumerate() {
        if let Some(Target::Class(c)) = a.target {
            if c as usize >= k {
                errors.push(format!(
                    "attack[{i}] \"{}\": `target` class {c} is outside the model's {k} classes",
                    a.name
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
    if a.kind == "apgd" && a.loss.as_deref() == Some("dlr") {
        let (need, what) = match a.target_classes {
            None => (crate::attack::apgd::DLR_MIN_CLASSES, "DLR loss divides by z_π1 − z_π3, the gap to the third-largest logit"),
            Some(_) => (crate::attack::apgd::TARGETED_DLR_MIN_CLASSES, "targeted DLR loss divides by z_π1 − (z_π3 + z_π4)/2, which uses the fourth-largest logit"),
        };
        if k < need {
            // Cross-entropy orders points as the margin does on so few
            // classes, and is defined: the report's plan shows what ran.
            a.loss = Some("ce".into());
            let targeted = if a.target_classes.is_some() {
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
    if let Some(t) = a.target_classes {
        if t > k.saturating_sub(1) {
            warn(format!(
                "{}: `target_classes` = {t}, but the model has only {} other classes: APGD-T attacks those {}",
                a.name,
                k - 1,
                k - 1
            ));
        }
    }
    for m in a.members.iter_mut().flatten() {
        check_class_count(m, k, warnings);
    }
}

/// Parses one entry; an ε list expands into one entry per ε (`name@ε`).
fn parse_attack(e: &mut Entry, earlier: &[AttackSpec]) -> Result<Vec<AttackSpec>> {
    let kind = e
        .string("kind")?
        .ok_or_else(|| e.err("kind", format!("is missing (one of {})", KINDS.join(", "))))?;
    if !KINDS.contains(&kind.as_str()) {
        return Err(e.err(
            "kind",
            format!(
                "\"{kind}\" is not a known kind (known: {}){}",
                KINDS.join(", "),
                legacy_entry::did_you_mean(&kind, KINDS)
            ),
        ));
    }
    let name = e
        .string("name")?
        .ok_or_else(|| e.err("name", "is missing"))?;
    if name.is_empty() || name.contains(['/', '\\', '@']) || name.chars().any(char::is_control) {
        return Err(e.err(
            "name",
            "must be non-empty, without slashes, '@' or control characters",
        ));
    }
    let norm = match e.string("norm")?.as_deref() {
        None | Some("linf") => Norm::Linf,
        Some("l2") => Norm::L2,
        Some(other) => return Err(e.err("norm", format!("\"{other}\" is not linf or l2"))),
    };
    // ε: a number, or a list of numbers for a robustness curve.
    let eps_list: Option<Vec<f64>> = match e.take("eps") {
        None => None,
        Some(Value::Array(items)) => {
            let mut v = Vec::new();
            for item in items {
                let f = match item {
                    Value::Float(f) => f,
                    Value::Integer(i) => i as f64,
                    other => {
                        return Err(e.err(
                            "eps",
                            format!("list holds {}, not a number", other.type_str()),
                        ))
                    }
                };
                v.push(f);
            }
            if v.is_empty() {
                return Err(e.err("eps", "is an empty list"));
            }
            Some(v)
        }
        Some(Value::Float(f)) => Some(vec![f]),
        Some(Value::Integer(i)) => Some(vec![i as f64]),
        Some(other) => {
            return Err(e.err(
                "eps",
                format!(
                    "must be a number or a list of numbers, found {}",
                    other.type_str()
                ),
            ))
        }
    };
    if let Some(list) = &eps_list {
        if let Some(bad) = list.iter().find(|f| !f.is_finite() || **f < 0.0) {
            return Err(e.err("eps", format!("must be finite and ≥ 0, found {bad}")));
        }
    }
    if kind == "spatial" && eps_list.is_some() {
        return Err(e.err(
            "eps",
            "does not apply: a spatial attack is bounded by angles and shifts",
        ));
    }
    let eps_list = match (eps_list, kind.as_str()) {
        (Some(l), _) => l.into_iter().map(Some).collect::<Vec<_>>(),
        (None, "fmn") => vec![None],
        (None, "spatial") => vec![None],
        (None, "ensemble") => vec![None],
        (None, _) => return Err(e.err("eps", "is missing")),
    };
    let curve = eps_list.len() > 1;
    let mut template = AttackSpec::new(name.clone(), &kind, norm, None);
    match kind.as_str() {
        "fgsm" => {
            template.target = parse_target(e)?;
        }
        "pgd" => {
            template.target = parse_target(e)?;
            let steps = e.positive_int("steps")?.unwrap_or(defaults::PGD_STEPS);
            template.steps = Some(steps);
            // Madry et al.'s rule 2.5·ε/steps is applied per ε below when unset.
            template.step_size = e.nonneg_float("step_size")?;
            template.random_start = Some(e.boolean("random_start")?.unwrap_or(true));
            template.restarts = Some(e.positive_int("restarts")?.unwrap_or(1));
        }
        "apgd" => {
            template.steps = Some(e.positive_int("steps")?.unwrap_or(defaults::APGD_STEPS));
            template.restarts = Some(e.positive_int("restarts")?.unwrap_or(1));
            let loss = e.string("loss")?.unwrap_or_else(|| "ce".into());
            if loss != "ce" && loss != "dlr" {
                return Err(e.err("loss", format!("\"{loss}\" is not ce or dlr")));
            }
            template.loss = Some(loss);
            template.target_classes = e.positive_int("target_classes")?;
        }
        "square" => {
            template.queries = Some(
                e.positive_int("queries")?
                    .unwrap_or(defaults::SQUARE_QUERIES),
            );
            let p = e.nonneg_float("p_init")?.unwrap_or(defaults::SQUARE_P_INIT);
            if !(p > 0.0 && p <= 1.0) {
                return Err(e.err("p_init", format!("must lie in (0, 1], found {p}")));
            }
            template.p_init = Some(p);
            template.restarts = Some(e.positive_int("restarts")?.unwrap_or(1));
        }
        "fmn" => {
            template.steps = Some(e.positive_int("steps")?.unwrap_or(defaults::FMN_STEPS));
            template.refine = match e.take("refine") {
                None => None,
                Some(Value::Integer(i)) if i >= 0 => Some(i as usize),
                Some(other) => {
                    return Err(e.err("refine", format!("must be an integer ≥ 0, found {other}")))
                }
            };
        }
        "spatial" => {
            let mode = e.string("mode")?.unwrap_or_else(|| "grid".into());
            if mode != "grid" && mode != "random" {
                return Err(e.err("mode", format!("\"{mode}\" is not grid or random")));
            }
            template.mode = Some(mode);
            template.max_angle_deg = Some(
                e.nonneg_float("max_angle_deg")?
                    .unwrap_or(defaults::SPATIAL_MAX_ANGLE_DEG),
            );
            template.max_shift_px = Some(
                e.nonneg_float("max_shift_px")?
                    .unwrap_or(defaults::SPATIAL_MAX_SHIFT_PX),
            );
            template.angle_steps = Some(
                e.positive_int("angle_steps")?
                    .unwrap_or(defaults::SPATIAL_ANGLE_STEPS),
            );
            template.shift_steps = Some(
                e.positive_int("shift_steps")?
                    .unwrap_or(defaults::SPATIAL_SHIFT_STEPS),
            );
            template.samples = Some(
                e.positive_int("samples")?
                    .unwrap_or(defaults::SPATIAL_SAMPLES),
            );
        }
        "autoattack" => {
            let version = e.string("version")?.unwrap_or_else(|| "standard".into());
            if version != "standard" {
                return Err(e.err(
                    "version",
                    format!("\"{version}\" is not supported (only \"standard\")"),
                ));
            }
        }
        "ensemble" => {
            let names = match e.take("members") {
                Some(Value::Array(items)) if !items.is_empty() => items,
                Some(_) => {
                    return Err(e.err(
                        "members",
                        "must be a non-empty list of earlier attack names",
                    ))
                }
                None => return Err(e.err("members", "is missing")),
            };
            let mut members = Vec::new();
            for item in names {
                let Value::String(m) = item else {
                    return Err(e.err("members", "must list attack names as strings"));
                };
                let Some(spec) = earlier.iter().find(|a| a.name == m) else {
                    return Err(e.err(
                        "members",
                        format!("\"{m}\" is not an earlier attack in this plan"),
                    ));
                };
                members.push(spec.clone());
            }
            let first = &members[0];
            if members
                .iter()
                .any(|m| m.norm != first.norm || m.eps != first.eps)
            {
                return Err(e.err("members", "must share one norm and one ε"));
            }
            template.norm = first.norm;
            return Ok(vec![AttackSpec {
                eps: first.eps,
                members: Some(members),
                ..template
            }]);
        }
        _ => unreachable!("kinds are checked above"),
    }
    let mut out = Vec::new();
    for eps in eps_list {
        let mut spec = template.clone();
        spec.eps = eps;
        if curve {
            spec.name = format!("{name}@{}", eps.unwrap_or(0.0));
            spec.curve = Some(name.clone());
        }
        if kind == "pgd" && spec.step_size.is_none() {
            spec.step_size = Some(defaults::pgd_step_size(
                eps.unwrap_or(0.0),
                spec.steps.unwrap_or(defaults::PGD_STEPS),
            ));
        }
        if kind == "autoattack" {
            spec.members = Some(autoattack_members(&spec.name, norm, eps));
        }
        out.push(spec);
    }
    Ok(out)
}

/// AutoAttack "standard": APGD-CE, APGD-T (DLR, 9 targets), Square (5,000 queries).
fn autoattack_members(name: &str, norm: Norm, eps: Option<f64>) -> Vec<AttackSpec> {
    let mut ce = AttackSpec::new(format!("{name}/apgd-ce"), "apgd", norm, eps);
    ce.steps = Some(100);
    ce.restarts = Some(1);
    ce.loss = Some("ce".into());
    let mut t = AttackSpec::new(format!("{name}/apgd-t"), "apgd", norm, eps);
    t.steps = Some(100);
    t.restarts = Some(1);
    t.loss = Some("dlr".into());
    t.target_classes = Some(9);
    let mut sq = AttackSpec::new(format!("{name}/square"), "square", norm, eps);
    sq.queries = Some(5000);
    sq.p_init = Some(0.8);
    sq.restarts = Some(1);
    vec![ce, t, sq]
}

fn parse_target(e: &mut Entry) -> Result<Option<Target>> {
    Ok(match e.take("target") {
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
    })
}
