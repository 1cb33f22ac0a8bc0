//! The plan's JSON Schema (`xai-audit schema --plan`, checked in as
//! `attacks/plan.schema.json`) agrees with the parser: every shipped plan
//! validates, and the mistakes the parser refuses (a misspelled key or kind,
//! a negative ε, a missing name, an unknown section) the schema refuses too.

use serde_json::Value;
use xai_audit::plan::schema::plan_schema_json;
use xai_audit::plan::Plan;

use super::{root, xai};

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&plan_schema_json()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// A plan's TOML text as the JSON value editors validate.
fn as_json(text: &str) -> Value {
    let table: toml::Table = text.parse().unwrap();
    serde_json::to_value(table).unwrap()
}

#[test]
fn the_checked_in_schema_is_current() {
    let file = std::fs::read_to_string(root().join("attacks/plan.schema.json")).unwrap();
    let printed = xai(&root(), &["schema", "--plan"]);
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    assert!(
        file == printed.stdout && file == plan_schema_json(),
        "attacks/plan.schema.json is stale: run `xai-audit schema --plan > attacks/plan.schema.json`"
    );
    // The report's schema is another one.
    assert_ne!(xai(&root(), &["schema"]).stdout, file);
}

#[test]
fn every_shipped_plan_validates() {
    let v = validator();
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("attacks")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        Plan::from_toml(&text, &path.display().to_string()).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&as_json(&text))
            .map(|e| e.to_string())
            .take(5)
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} plans found");
}

#[test]
fn what_the_parser_refuses_the_schema_refuses() {
    let v = validator();
    let good = "[[attack]]\nname = \"p\"\nkind = \"pgd\"\neps = [0.1, 0.2]\nsteps = 10\n\
                [[attack]]\nname = \"e\"\nkind = \"ensemble\"\nmembers = [\"p@0.1\"]\n\
                [[attack]]\nname = \"a\"\nkind = \"autoattack\"\neps = 0.1\nversion = \"standard\"\n\
                [[attack]]\nname = \"a1\"\nkind = \"autoattack\"\nnorm = \"l1\"\neps = 12\n\
                [[attack]]\nname = \"s1\"\nkind = \"square\"\nnorm = \"l1\"\neps = 12\nrescale_schedule = false\n\
                [[stress]]\nname = \"c\"\nkind = \"calibration\"\nbins = 10\n\
                [gates]\n\"clean_accuracy\" = \">= 0.9\"\n";
    Plan::from_toml(good, "good").unwrap();
    assert!(
        v.is_valid(&as_json(good)),
        "{:?}",
        v.iter_errors(&as_json(good))
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    for bad in [
        // a misspelled key
        "[[attack]]\nname = \"p\"\nkind = \"pgd\"\neps = 0.1\nstpes = 10\n",
        // a key of another kind
        "[[attack]]\nname = \"f\"\nkind = \"fgsm\"\neps = 0.1\nsteps = 10\n",
        // an unknown kind
        "[[attack]]\nname = \"p\"\nkind = \"pgdd\"\neps = 0.1\n",
        // a count below 1
        "[[attack]]\nname = \"p\"\nkind = \"pgd\"\neps = 0.1\nsteps = 0\n",
        "[[stress]]\nname = \"c\"\nkind = \"calibration\"\nbins = 0\n",
        // a negative ε
        "[[attack]]\nname = \"p\"\nkind = \"fgsm\"\neps = -0.1\n",
        // no name
        "[[stress]]\nkind = \"calibration\"\n",
        // an unknown section
        "seeds = 1\n[[attack]]\nname = \"p\"\nkind = \"fgsm\"\neps = 0.1\n",
        // an unknown method key
        "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\nsteps = 3\n",
        // a required key left out
        "[[attack]]\nname = \"p\"\nkind = \"pgd\"\nsteps = 10\n",
        "[[attack]]\nname = \"e\"\nkind = \"ensemble\"\n",
        // the written forms of autoattack and ensemble differ
        "[[attack]]\nname = \"a\"\nkind = \"autoattack\"\neps = 0.1\nmembers = [\"x\"]\n",
        "[[attack]]\nname = \"p\"\nkind = \"pgd\"\neps = 0.1\n[[attack]]\nname = \"e\"\nkind = \"ensemble\"\nmembers = [\"p\"]\nversion = \"standard\"\n",
        // a malformed gate
        "[[attack]]\nname = \"p\"\nkind = \"fgsm\"\neps = 0.1\n[gates]\n\"clean_accuracy\" = \"at least 0.9\"\n",
    ] {
        assert!(Plan::from_toml(bad, "bad").is_err(), "the parser takes {bad}");
        assert!(!v.is_valid(&as_json(bad)), "the schema takes {bad}");
    }
}

/// Schemas name their definitions after the Rust types, and a second type
/// of the same name (`NoiseConfig` in two families) is silently renamed
/// `NoiseConfig2`, changing the first one's schema: give it a schema name.
#[test]
fn no_two_config_types_share_a_schema_name() {
    for text in [plan_schema_json(), xai(&root(), &["schema"]).stdout] {
        let schema: Value = serde_json::from_str(&text).unwrap();
        let clashes: Vec<&String> = schema["$defs"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.ends_with(|c: char| c.is_ascii_digit()))
            .collect();
        assert!(clashes.is_empty(), "renamed by a name clash: {clashes:?}");
    }
}
