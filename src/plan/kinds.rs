//! `xai-audit kinds`: every kind a plan entry can have — each attack, attribution
//! method, stress check and equivariance check — with its keys, the values
//! they take, their defaults and a line on each.
//!
//! The listing is generated from the plan's JSON Schema
//! ([`plan_schema`]), itself derived from the config types: kinds and
//! descriptions come from the family enums and their doc comments, keys
//! from the config structs, defaults from the `default` (or Taplo's
//! `x-taplo.docs.defaultValue` text) each field carries, required keys from
//! [`REQUIRED_KEYS`]. The tests check the listing against the parser: the
//! keys each kind accepts, the keys it requires and the defaults it fills in.

use std::fmt::Write;

use serde_json::Value;

use super::schema::{plan_schema, FAMILIES};
use crate::entry::did_you_mean;
use crate::error::{Error, Result};

#[cfg(doc)]
use super::schema::REQUIRED_KEYS;

/// One section of a plan file (`[[attack]]`, ...) and its kinds.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The section, as in `[[attack]]`.
    pub section: String,
    /// The key naming an entry's kind (`kind`, or `method` for attributions).
    pub tag: String,
    /// Keys every entry of the section takes besides its kind's (`name`,
    /// and for attributions the class explained, the attacks and metrics).
    pub common: Vec<Key>,
    /// The kinds, in the order the family lists them.
    pub kinds: Vec<Kind>,
}

/// One kind of entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Kind {
    /// The kind, as plans write it (`pgd`).
    pub name: String,
    /// One line on what it does.
    pub description: String,
    /// Its own keys, alphabetically as in the schema.
    pub keys: Vec<Key>,
}

/// One key of an entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key, as plans write it.
    pub name: String,
    /// The values it takes (`integer ≥ 1`, `"linf" | "l2"`).
    pub values: String,
    /// Its default.
    pub default: KeyDefault,
    /// One line on what it sets.
    pub description: String,
}

/// What an entry that leaves a key out gets.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyDefault {
    /// Nothing: the key must be written.
    Required,
    /// This value, as TOML writes it.
    Value(String),
    /// A value that follows other settings or the model, in words.
    Text(String),
    /// The schema says nothing (a test keeps this from happening).
    Unstated,
}

impl std::fmt::Display for KeyDefault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyDefault::Required => f.write_str("required"),
            KeyDefault::Value(v) => f.write_str(v),
            KeyDefault::Text(t) => f.write_str(t),
            KeyDefault::Unstated => f.write_str("?"),
        }
    }
}

/// Every section with its kinds and keys, read from the plan schema.
pub fn sections() -> Vec<Section> {
    let schema = plan_schema();
    let defs = &schema["$defs"];
    FAMILIES
        .iter()
        .map(|(def, section, tag)| {
            let family = &defs[*def];
            let common = keys(family, &[], defs, &["name"]);
            let mut name_key = keys(family, &["name"], defs, &[]);
            name_key.extend(common);
            let kinds = family["oneOf"]
                .as_array()
                .map(|variants| {
                    variants
                        .iter()
                        .map(|v| kind(v, tag, defs))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            Section {
                section: section.to_string(),
                tag: tag.to_string(),
                common: name_key,
                kinds,
            }
        })
        .collect()
}

/// A `oneOf` variant of a family: its kind (the tag's `const`), its
/// description and the keys of the config it refers to.
fn kind(variant: &Value, tag: &str, defs: &Value) -> Kind {
    let name = variant["properties"][tag]["const"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let config = variant
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| resolve(r, defs))
        .unwrap_or(&Value::Null);
    let required: Vec<&str> = variant["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut keys = keys(config, &[], defs, &[tag]);
    for key in &mut keys {
        if required.contains(&key.name.as_str()) {
            key.default = KeyDefault::Required;
        }
    }
    Kind {
        name,
        description: one_line(variant["description"].as_str().unwrap_or_default()),
        keys,
    }
}

/// The keys of an object schema: only `only` when not empty, never `skip`.
fn keys(object: &Value, only: &[&str], defs: &Value, skip: &[&str]) -> Vec<Key> {
    let Some(props) = object["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .filter(|(k, _)| {
            (only.is_empty() || only.contains(&k.as_str())) && !skip.contains(&k.as_str())
        })
        .map(|(k, p)| Key {
            name: k.clone(),
            values: values(p, defs),
            default: default(p, defs, k == "name"),
            description: one_line(p["description"].as_str().unwrap_or_default()),
        })
        .collect()
}

/// A key's default: Taplo's text when there is one (it is the precise
/// statement where the value follows other settings), else the value.
fn default(property: &Value, defs: &Value, is_name: bool) -> KeyDefault {
    if is_name {
        return KeyDefault::Required;
    }
    if let Some(text) = property["x-taplo"]["docs"]["defaultValue"].as_str() {
        return KeyDefault::Text(text.to_string());
    }
    match property.get("default") {
        Some(v) => KeyDefault::Value(toml_value(v, property, defs)),
        None => KeyDefault::Unstated,
    }
}

/// `#/$defs/Name` in `defs`.
fn resolve<'a>(reference: &str, defs: &'a Value) -> Option<&'a Value> {
    defs.get(reference.strip_prefix("#/$defs/")?)
}

/// A description on one line: its lines joined.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The string constants an enum schema allows (`oneOf`/`enum` of strings),
/// when it is one.
fn constants(schema: &Value, defs: &Value) -> Option<Vec<String>> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return constants(resolve(r, defs)?, defs);
    }
    if let Some(all) = schema.get("enum").and_then(Value::as_array) {
        return all.iter().map(|v| v.as_str().map(String::from)).collect();
    }
    let alternatives = schema.get("oneOf")?.as_array()?;
    alternatives
        .iter()
        .map(|a| a.get("const").and_then(Value::as_str).map(String::from))
        .collect()
}

/// The values a schema allows, in a few words.
fn values(schema: &Value, defs: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return resolve(r, defs).map_or_else(String::new, |d| values(d, defs));
    }
    if let Some(c) = schema.get("const") {
        return toml_value(c, schema, defs);
    }
    if let Some(names) = constants(schema, defs) {
        return names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(" | ");
    }
    for alternatives in ["oneOf", "anyOf"] {
        if let Some(alts) = schema.get(alternatives).and_then(Value::as_array) {
            let parts: Vec<String> = alts
                .iter()
                .filter(|a| a.get("type") != Some(&Value::from("null")))
                .map(|a| values(a, defs))
                .collect();
            return parts.join(" | ");
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => Vec::new(),
    };
    let bounds = |word: &str| -> String {
        match (schema.get("minimum"), schema.get("maximum")) {
            (Some(lo), Some(hi)) => format!("{word} in [{lo}, {hi}]"),
            (Some(lo), None) => format!("{word} ≥ {lo}"),
            (None, Some(hi)) => format!("{word} ≤ {hi}"),
            (None, None) => word.to_string(),
        }
    };
    types
        .iter()
        .map(|t| match *t {
            "integer" => bounds("integer"),
            "number" => bounds("number"),
            "boolean" => "true | false".to_string(),
            "string" => "string".to_string(),
            "array" => {
                let items = values(&schema["items"], defs);
                let size = match (schema.get("minItems"), schema.get("maxItems")) {
                    (Some(lo), Some(hi)) if lo == hi => format!("{lo} of "),
                    _ => String::new(),
                };
                if items.contains(" | ") {
                    format!("list of {size}({items})")
                } else {
                    format!("list of {size}{items}")
                }
            }
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// A JSON value as TOML writes it (`"linf"`, `[1, 2, 3]`, `0.05`); a list
/// holding every value `schema`'s items allow is `all`.
fn toml_value(v: &Value, schema: &Value, defs: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Array(items) => {
            let every = schema
                .get("items")
                .and_then(|i| constants(i, defs))
                .is_some_and(|all| {
                    all.len() > 2
                        && all.len() == items.len()
                        && all.iter().all(|a| items.iter().any(|i| i == a))
                });
            if every {
                return format!("all {}", items.len());
            }
            let parts: Vec<String> = items
                .iter()
                .map(|i| toml_value(i, &Value::Null, defs))
                .collect();
            format!("[{}]", parts.join(", "))
        }
        // TOML reads an integer where a number goes: `30`, not `30.0`.
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                format!("{}", f as i64)
            }
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// The text `xai-audit kinds` prints: every section, or only the section or
/// kind named `only`.
///
/// # Errors
/// [`Error::Invalid`] when `only` names no section or kind (with the
/// nearest name).
pub fn listing(only: Option<&str>) -> Result<String> {
    let sections = sections();
    let mut out = String::new();
    if only.is_none() {
        out.push_str(
            "A plan (TOML) holds [[attack]], [[attribution]], [[stress]] and \
             [[equivariance]] entries, each with a unique `name` and a kind; a key \
             left out takes its default. Generated from the plan's JSON Schema \
             (attacks/plan.schema.json).\n\n",
        );
    }
    let mut shown = 0;
    for s in &sections {
        let whole = only.is_none_or(|o| o == s.section);
        let kinds: Vec<&Kind> = s
            .kinds
            .iter()
            .filter(|k| whole || Some(k.name.as_str()) == only)
            .collect();
        if kinds.is_empty() {
            continue;
        }
        shown += kinds.len();
        write_section(&mut out, s, &kinds);
    }
    if shown == 0 {
        let mut names: Vec<&str> = Vec::new();
        for s in &sections {
            names.push(&s.section);
            names.extend(s.kinds.iter().map(|k| k.name.as_str()));
        }
        let wanted = only.unwrap_or_default();
        return Err(Error::Invalid(format!(
            "`{wanted}` is no section or kind of a plan (sections: attack, attribution, \
             stress, equivariance; kinds: {}){}",
            names
                .iter()
                .filter(|n| !["attack", "attribution", "stress", "equivariance"].contains(n))
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            did_you_mean(wanted, &names)
        )));
    }
    Ok(out)
}

/// One section's header, its common keys and the kinds given.
fn write_section(out: &mut String, s: &Section, kinds: &[&Kind]) {
    let _ = writeln!(
        out,
        "[[{}]] — {} = {}",
        s.section,
        s.tag,
        s.kinds
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "  every entry:");
    write_keys(out, &s.common);
    for k in kinds {
        let _ = writeln!(out, "\n  {} = \"{}\": {}", s.tag, k.name, k.description);
        if k.keys.is_empty() {
            let _ = writeln!(out, "    (no keys of its own)");
        }
        write_keys(out, &k.keys);
    }
    out.push('\n');
}

/// Keys as rows: the key, its default, the values it takes, then a line
/// on it.
fn write_keys(out: &mut String, keys: &[Key]) {
    let width = |f: &dyn Fn(&Key) -> usize| keys.iter().map(f).max().unwrap_or(0);
    let name_w = width(&|k| k.name.chars().count());
    let default_w = width(&|k| k.default.to_string().chars().count()).min(24);
    for k in keys {
        let default = format!("default {}", k.default);
        let default = match k.default {
            KeyDefault::Required => "required".to_string(),
            _ => default,
        };
        let _ = writeln!(
            out,
            "    {:<name_w$}  {:<dw$}  {}",
            k.name,
            default,
            k.values,
            dw = default_w + 8
        );
        if !k.description.is_empty() {
            let _ = writeln!(out, "    {:<name_w$}  {}", "", k.description);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::plan::schema::REQUIRED_KEYS;
    use crate::plan::{ModelFacts, Plan};

    /// A value for each key a kind requires.
    fn required_value(key: &str) -> &'static str {
        match key {
            "eps" => "0.1",
            "members" => "[\"p\"]",
            other => panic!("no sample value for the required key `{other}`"),
        }
    }

    /// A plan with one entry of `kind` in `section`: its required keys and
    /// `extra` lines; an ensemble gets an earlier attack `p` to name.
    fn plan_text(section: &Section, kind: &Kind, leave_out: Option<&str>, extra: &str) -> String {
        let mut text = String::new();
        if kind.name == "ensemble" {
            text.push_str("[[attack]]\nname = \"p\"\nkind = \"pgd\"\neps = 0.1\n");
        }
        let _ = write!(
            text,
            "[[{}]]\nname = \"x\"\n{} = \"{}\"\n",
            section.section, section.tag, kind.name
        );
        for key in kind
            .keys
            .iter()
            .filter(|k| k.default == KeyDefault::Required)
        {
            if Some(key.name.as_str()) != leave_out {
                let _ = writeln!(text, "{} = {}", key.name, required_value(&key.name));
            }
        }
        text.push_str(extra);
        text
    }

    fn all_kinds() -> Vec<(Section, Kind)> {
        let mut out = Vec::new();
        for s in sections() {
            for k in s.kinds.clone() {
                out.push((s.clone(), k));
            }
        }
        out
    }

    #[test]
    fn every_family_kind_of_the_parser_is_listed_with_a_description() {
        let listed = |section: &str| -> Vec<String> {
            let s = sections();
            let s = s.iter().find(|s| s.section == section).unwrap();
            s.kinds.iter().map(|k| k.name.clone()).collect()
        };
        assert_eq!(listed("attack"), crate::attack::KINDS);
        assert_eq!(listed("attribution"), crate::attribution::METHODS);
        assert_eq!(listed("stress"), crate::stress::spec::STRESS_KINDS);
        assert_eq!(
            listed("equivariance"),
            crate::stress::spec::EQUIVARIANCE_KINDS
        );
        for (s, k) in all_kinds() {
            assert!(!k.description.is_empty(), "{} {}", s.section, k.name);
        }
    }

    /// Every key of every kind says what it defaults to (or that it is
    /// required) and what it does.
    #[test]
    fn every_key_states_its_default_and_what_it_sets() {
        for (s, k) in all_kinds() {
            for key in k.keys.iter().chain(&s.common) {
                assert_ne!(
                    key.default,
                    KeyDefault::Unstated,
                    "{} {}: `{}`",
                    s.section,
                    k.name,
                    key.name
                );
                assert!(
                    !key.description.is_empty(),
                    "{} {}: `{}`",
                    s.section,
                    k.name,
                    key.name
                );
                assert!(
                    !key.values.is_empty(),
                    "{} {}: `{}`",
                    s.section,
                    k.name,
                    key.name
                );
            }
        }
    }

    /// The keys listed for a kind are exactly those its reader accepts: a
    /// stray key's error lists the keys it knows, and a known key not
    /// listed is one it refuses (the spatial attack's `norm` and `eps`).
    #[test]
    fn the_keys_listed_are_the_keys_the_parser_reads() {
        for (s, k) in all_kinds() {
            let text = plan_text(&s, &k, None, "zzz_not_a_key = 1\n");
            let e = Plan::from_toml(&text, "p").unwrap_err().to_string();
            let known = e
                .split("`zzz_not_a_key` is not a known key for this kind (known: ")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
                .unwrap_or_else(|| panic!("{}: {e}", k.name));
            let parser: BTreeSet<&str> = known.split(", ").collect();
            let listed: BTreeSet<&str> = [s.tag.as_str()]
                .into_iter()
                .chain(s.common.iter().map(|key| key.name.as_str()))
                .chain(k.keys.iter().map(|key| key.name.as_str()))
                .collect();
            let mut refused = BTreeSet::new();
            for key in parser.difference(&listed) {
                let sample = if *key == "norm" { "\"linf\"" } else { "0.1" };
                let text = plan_text(&s, &k, None, &format!("{key} = {sample}\n"));
                let e = Plan::from_toml(&text, "p").unwrap_err().to_string();
                assert!(e.contains(&format!("`{key}` does not apply")), "{e}");
                refused.insert(*key);
            }
            let accepted: BTreeSet<&str> = parser.difference(&refused).copied().collect();
            assert_eq!(accepted, listed, "{} {}", s.section, k.name);
        }
    }

    /// An entry with only its name, kind and required keys parses, and one
    /// without a required key is refused naming it.
    #[test]
    fn the_required_keys_are_those_the_parser_requires() {
        let mut required = 0;
        for (s, k) in all_kinds() {
            let text = plan_text(&s, &k, None, "");
            if let Err(e) = Plan::from_toml(&text, "p") {
                panic!("{} {} with its required keys: {e}", s.section, k.name);
            }
            for key in k
                .keys
                .iter()
                .filter(|key| key.default == KeyDefault::Required)
            {
                required += 1;
                let text = plan_text(&s, &k, Some(&key.name), "");
                let e = Plan::from_toml(&text, "p").unwrap_err().to_string();
                assert!(e.contains(&format!("`{}` is missing", key.name)), "{e}");
            }
        }
        let table: usize = REQUIRED_KEYS.iter().map(|(_, _, keys)| keys.len()).sum();
        assert_eq!(required, table);
    }

    /// Each default value listed is what the parser (and resolving the
    /// plan against a model) fills in when the key is left out.
    #[test]
    fn the_defaults_listed_are_those_the_parser_fills_in() {
        let spec = crate::model::load_model(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist_cnn.safetensors"),
            None,
        )
        .unwrap()
        .network
        .spec()
        .clone();
        let facts = ModelFacts {
            spec: &spec,
            num_classes: 10,
        };
        let schema = plan_schema();
        let mut checked = 0;
        for (s, k) in all_kinds() {
            let text = plan_text(&s, &k, None, "");
            let plan = Plan::from_toml(&text, "p")
                .unwrap()
                .resolve(&facts, "p")
                .unwrap()
                .plan;
            let entry = match s.section.as_str() {
                "attack" => serde_json::to_value(plan.attacks.last().unwrap()),
                "attribution" => serde_json::to_value(&plan.attributions[0]),
                "stress" => serde_json::to_value(&plan.stress[0]),
                _ => serde_json::to_value(&plan.equivariance[0]),
            }
            .unwrap();
            // The schema's own default value, not the listing's words.
            let config = sections_defaults(&schema, &s, &k);
            for (key, default) in config {
                let Some(got) = entry.get(&key) else {
                    continue;
                };
                let same = match (got.as_f64(), default.as_f64()) {
                    (Some(a), Some(b)) => a == b,
                    _ => got == &default || (got.is_array() && numbers(got) == numbers(&default)),
                };
                assert!(
                    same,
                    "{} {}: `{key}` is {got} after parsing, the schema says {default}",
                    s.section, k.name
                );
                checked += 1;
            }
        }
        assert!(checked >= 60, "only {checked} defaults checked");
    }

    /// An array's numbers as f64 (1 and 1.0 alike).
    fn numbers(v: &Value) -> Vec<Option<f64>> {
        v.as_array()
            .map(|a| a.iter().map(Value::as_f64).collect())
            .unwrap_or_default()
    }

    /// `(key, default)` of a kind's keys and its section's common keys
    /// that have a `default` value in the schema.
    fn sections_defaults(schema: &Value, s: &Section, k: &Kind) -> Vec<(String, Value)> {
        let defs = &schema["$defs"];
        let (def, _, tag) = FAMILIES
            .iter()
            .find(|(_, sec, _)| *sec == s.section)
            .unwrap();
        let family = &defs[*def];
        let variant = family["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["properties"][*tag]["const"] == k.name.as_str())
            .unwrap();
        let config = resolve(variant["$ref"].as_str().unwrap(), defs).unwrap();
        let mut out = Vec::new();
        for object in [config, family] {
            if let Some(props) = object["properties"].as_object() {
                for (key, p) in props {
                    if let Some(d) = p.get("default") {
                        out.push((key.clone(), d.clone()));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_listing_shows_each_kind_its_keys_and_defaults() {
        let text = listing(None).unwrap();
        for needle in [
            "[[attack]] — kind = fgsm | pgd | apgd",
            "  kind = \"pgd\": ",
            "    steps ",
            "default 40",
            "default 2.5·ε/steps",
            "\"linf\" | \"l2\"",
            "[[attribution]] — method = saliency",
            "  method = \"grad_cam\": ",
            "default the last conv2d layer",
            "[[equivariance]] — kind = shift",
            "corruptions",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        let pgd = listing(Some("pgd")).unwrap();
        assert!(
            pgd.contains("kind = \"pgd\"") && !pgd.contains("kind = \"fgsm\""),
            "{pgd}"
        );
        let stress = listing(Some("stress")).unwrap();
        assert!(
            stress.contains("\"calibration\"") && !stress.contains("[[attack]]"),
            "{stress}"
        );
        let e = listing(Some("pgdd")).unwrap_err().to_string();
        assert!(
            e.contains("`pgdd`") && e.contains("did you mean `pgd`?"),
            "{e}"
        );
    }
}
