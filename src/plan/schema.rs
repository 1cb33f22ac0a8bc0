//! The JSON Schema of a plan file as written (`xai-audit schema --plan`,
//! checked in as `attacks/plan.schema.json`), for editors that validate TOML
//! against a schema (Taplo / Even Better TOML: `#:schema ./plan.schema.json`).
//!
//! It is derived from the same config types the parser fills and the report
//! embeds, so it cannot list a key the parser refuses or miss one it reads;
//! what differs between the file and the resolved form is adjusted here:
//! every setting but `name` and the kind may be left out (it has a default),
//! `eps` may be a list (a robustness curve), an ensemble names earlier
//! attacks, and the sections are the singular `[[attack]]`/`[[attribution]]`.

use serde_json::{json, Map, Value};

use super::AttackSpec;
use crate::attribution::AttributionSpec;
use crate::stress::spec::{EquivarianceSpec, StressSpec};

/// The keys the schema keeps required: the entry's name and its kind.
const REQUIRED: &[&str] = &["name", "kind", "method"];

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
    let entries = |item: schemars::Schema, section: &str| {
        json!({
            "description": format!("The `[[{section}]]` entries, run in order."),
            "type": "array",
            "items": item,
        })
    };
    // A name, a kind and the kind's own keys: anything else is a typo.
    for def in [
        "AttackSpec",
        "AttributionSpec",
        "StressSpec",
        "EquivarianceSpec",
    ] {
        if let Some(Value::Object(d)) = defs.get_mut(def) {
            d.insert("unevaluatedProperties".into(), Value::Bool(false));
        }
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "xai-audit plan",
        "description": "An audit plan: which attacks, stress and equivariance checks and attributions run on a model, with which settings. Every setting but an entry's name and kind has a default; the README's Plans section gives them.",
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
                    let description = eps.get("description").cloned();
                    *eps = json!({
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
                    if let Some(d) = description {
                        eps["description"] = d;
                    }
                }
                // `[h, w]`, or one integer for a square.
                for key in ["window", "stride"] {
                    if let Some(size) = props.get_mut(key) {
                        let description = size.get("description").cloned();
                        *size = json!({
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
                        if let Some(d) = description {
                            size["description"] = d;
                        }
                    }
                }
                // `"all"` or a list of the plan's attacks.
                if let Some(on) = props.get_mut("on") {
                    if on.get("type") == Some(&json!("array")) {
                        let description = on.get("description").cloned();
                        *on = json!({
                            "anyOf": [
                                {"const": "all"},
                                {"type": "array", "items": {"type": "string"}}
                            ]
                        });
                        if let Some(d) = description {
                            on["description"] = d;
                        }
                    }
                }
                if let Some(members) = props.get_mut("members") {
                    *members = json!({
                        "description": "Ensemble: earlier attacks of this plan, by name, sharing one norm and ε.",
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1
                    });
                    props.insert(
                        "version".into(),
                        json!({
                            "description": "AutoAttack: the version (only \"standard\").",
                            "const": "standard"
                        }),
                    );
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
