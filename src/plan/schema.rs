//! The JSON Schema of a plan file as written (`xai-audit schema --plan`,
//! checked in as `attacks/plan.schema.json`), for editors that validate TOML
//! against a schema (Taplo / Even Better TOML: `#:schema ./plan.schema.json`).
//!
//! It is derived from the same config types the parser fills and the report
//! embeds, so it cannot list a key the parser refuses or miss one it reads;
//! what differs between the file and the resolved form is adjusted here:
//! every setting but `name`, the kind and the few keys a kind requires
//! ([`REQUIRED_KEYS`]) may be left out, `eps` may be a list (a robustness
//! curve), an ensemble names earlier attacks, an `autoattack` entry is
//! written without members, and the sections are the singular
//! `[[attack]]`/`[[attribution]]`.
//!
//! Each setting states its default: a constant one as the standard
//! `default`, one that follows other settings or the model (PGD's step
//! 2.5·ε/steps, SmoothGrad's noise 15% of the range) as text in Taplo's
//! `x-taplo.docs.defaultValue`, which its hover shows. The config types
//! carry both (`#[schemars(extend(...))]` beside each field), and
//! [`super::kinds`] lists them.

use serde_json::{json, Map, Value};

use super::AttackSpec;
use crate::attribution::AttributionSpec;
use crate::stress::spec::{EquivarianceSpec, StressSpec};

/// The keys the schema keeps required: the entry's name and its kind.
const REQUIRED: &[&str] = &["name", "kind", "method"];

/// The keys an entry of a kind must write besides its name and kind (the
/// parser says "is missing" without them; every other key has a default),
/// as `(family definition, kind, keys)`.
pub const REQUIRED_KEYS: &[(&str, &str, &[&str])] = &[
    ("AttackSpec", "fgsm", &["eps"]),
    ("AttackSpec", "pgd", &["eps"]),
    ("AttackSpec", "apgd", &["eps"]),
    ("AttackSpec", "square", &["eps"]),
    ("AttackSpec", "ensemble", &["members"]),
    ("AttackSpec", "autoattack", &["eps"]),
];

/// The definition of each family of entries, with its section in a plan
/// file and the key that names the kind: `(definition, section, tag)`.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    ("AttackSpec", "attack", "kind"),
    ("AttributionSpec", "attribution", "method"),
    ("StressSpec", "stress", "kind"),
    ("EquivarianceSpec", "equivariance", "kind"),
];

/// The schema, pretty-printed with a trailing newline.
pub fn plan_schema_json() -> String {
    let mut text = serde_json::to_string_pretty(&plan_schema()).expect("schema serializes");
    text.push('\n');
    text
}

/// The schema as a JSON value (draft 2020-12).
pub fn plan_schema() -> Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let attack = generator.subschema_for::<AttackSpec>();
    let attribution = generator.subschema_for::<AttributionSpec>();
    let stress = generator.subschema_for::<StressSpec>();
    let equivariance = generator.subschema_for::<EquivarianceSpec>();
    let mut defs = Value::Object(
        generator
            .take_definitions(true)
            .into_iter()
            .collect::<Map<String, Value>>(),
    );
    as_written(&mut defs);
    autoattack_as_written(&mut defs);
    require_keys(&mut defs);
    let entries = |item: schemars::Schema, section: &str| {
        json!({
            "description": format!("The `[[{section}]]` entries, run in order."),
            "type": "array",
            "items": item,
        })
    };
    // A name, a kind and the kind's own keys: anything else is a typo.
    for (def, _, _) in FAMILIES {
        if let Some(Value::Object(d)) = defs.get_mut(def) {
            d.insert("unevaluatedProperties".into(), Value::Bool(false));
        }
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "xai-audit plan",
        "description": "An audit plan: which attacks, stress and equivariance checks and attributions run on a model, with which settings. Every setting but an entry's name, its kind and the keys its kind requires has a default (`xai-audit kinds` lists them).",
        "type": "object",
        "properties": {
            "seed": {
                "description": "Seed of every random choice (default 0).",
                "type": "integer",
                "minimum": 0
            },
            "batch_size": {
                "description": "Inputs per batch (default 100): bounds memory only, results do not depend on it.",
                "type": "integer",
                "minimum": 1
            },
            "attack": entries(attack, "attack"),
            "attribution": entries(attribution, "attribution"),
            "stress": entries(stress, "stress"),
            "equivariance": entries(equivariance, "equivariance"),
            "gates": {
                "description": "CI gates: metric → condition, e.g. \"robust_accuracy.pgd-linf-0.1\" = \">= 0.8\".",
                "type": "object",
                "additionalProperties": {
                    "type": "string",
                    "pattern": "^\\s*(>=|<=|==|>|<)\\s*[-+0-9.eE]+\\s*$"
                }
            }
        },
        "additionalProperties": false,
        "$defs": defs,
    })
}

/// Replaces the schema `slot` by `new`, keeping the annotations of the
/// old one: its description and default (a value, or Taplo's
/// `x-taplo.docs.defaultValue` text).
fn replace_keeping_annotations(slot: &mut Value, mut new: Value) {
    for key in ["description", "default", "x-taplo"] {
        if let Some(v) = slot.get(key) {
            new[key] = v.clone();
        }
    }
    *slot = new;
}

/// Turns the resolved form's definitions into the written form's.
fn as_written(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(required)) = map.get_mut("required") {
                required.retain(|k| k.as_str().is_some_and(|k| REQUIRED.contains(&k)));
                if required.is_empty() {
                    map.remove("required");
                }
            }
            // TOML has no null: an optional setting is left out instead.
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Object(props)) = map.get_mut("properties") {
                // Set by the parser for entries it expanded, never written.
                props.remove("curve");
                if let Some(eps) = props.get_mut("eps") {
                    let written = json!({
                        "anyOf": [
                            {"type": "number", "minimum": 0},
                            {
                                "description": "A robustness curve: one entry per ε, named `name@ε`.",
                                "type": "array",
                                "items": {"type": "number", "minimum": 0},
                                "minItems": 1
                            }
                        ]
                    });
                    replace_keeping_annotations(eps, written);
                }
                // `[h, w]`, or one integer for a square.
                for key in ["window", "stride"] {
                    if let Some(size) = props.get_mut(key) {
                        let written = json!({
                            "anyOf": [
                                {"type": "integer", "minimum": 1},
                                {
                                    "type": "array",
                                    "items": {"type": "integer", "minimum": 1},
                                    "minItems": 2,
                                    "maxItems": 2
                                }
                            ]
                        });
                        replace_keeping_annotations(size, written);
                    }
                }
                // `"all"` or a list of the plan's attacks.
                if let Some(on) = props.get_mut("on") {
                    if on.get("type") == Some(&json!("array")) {
                        let written = json!({
                            "anyOf": [
                                {"const": "all"},
                                {"type": "array", "items": {"type": "string"}}
                            ]
                        });
                        replace_keeping_annotations(on, written);
                    }
                }
                if let Some(members) = props.get_mut("members") {
                    *members = json!({
                        "description": "Earlier attacks of this plan, by name, sharing one norm and ε.",
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1
                    });
                }
            }
            for child in map.values_mut() {
                as_written(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(as_written),
        _ => {}
    }
}

/// The `oneOf` variant of `family` (a definition in `defs`) for `kind`.
fn variant_mut<'a>(defs: &'a mut Value, family: &str, kind: &str) -> Option<&'a mut Value> {
    defs.get_mut(family)?
        .get_mut("oneOf")?
        .as_array_mut()?
        .iter_mut()
        .find(|v| {
            v["properties"]
                .as_object()
                .is_some_and(|p| p.values().any(|t| t["const"] == kind))
        })
}

/// An `autoattack` entry shares the ensemble's resolved config (its members
/// are filled in by the parser) but is written with `norm`, `eps` and
/// `version`, never `members`: it gets its own written definition (and the
/// ensemble's, written with `members`, no `version`, which only records an
/// `autoattack` entry's).
fn autoattack_as_written(defs: &mut Value) {
    let Some(ensemble) = defs.get("EnsembleConfig").cloned() else {
        return;
    };
    if let Some(p) = defs["EnsembleConfig"]["properties"].as_object_mut() {
        p.remove("version");
    }
    let mut eps = ensemble["properties"]["eps"].clone();
    if let Some(eps) = eps.as_object_mut() {
        eps.remove("x-taplo");
        eps.insert("description".into(), json!("Budget, in input units."));
    }
    defs["AutoAttackConfig"] = json!({
        "description": "An `autoattack` plan entry: one of AutoAttack's versions as an ensemble at one budget: `standard` (APGD-CE, APGD-T and FAB-T with 9 target classes, Square with 5,000 queries), `plus` (APGD-CE, APGD-DLR and FAB with 5 restarts, Square, APGD-T, FAB-T) or `rand` (APGD-CE and APGD-DLR, each gradient averaged over 20 draws of a randomized model).",
        "type": "object",
        "properties": {
            "norm": {
                "$ref": "#/$defs/Norm",
                "description": "Budget norm.",
                "default": crate::attack::Norm::Linf
            },
            "eps": eps,
            "version": {
                "description": "The AutoAttack version: the reference's attacks and settings.",
                "enum": crate::attack::ensemble::AUTOATTACK_VERSIONS
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>(),
                "default": "standard"
            }
        }
    });
    if let Some(v) = variant_mut(defs, "AttackSpec", "autoattack") {
        v["$ref"] = json!("#/$defs/AutoAttackConfig");
    }
}

/// Adds [`REQUIRED_KEYS`] to each kind's `required`.
fn require_keys(defs: &mut Value) {
    for (family, kind, keys) in REQUIRED_KEYS {
        if let Some(Value::Array(required)) =
            variant_mut(defs, family, kind).and_then(|v| v.get_mut("required"))
        {
            required.extend(keys.iter().map(|k| json!(k)));
        }
    }
}
