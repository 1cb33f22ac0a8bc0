//! The architecture spec parser on arbitrary UTF-8: parsing must fail with an
//! error or give a spec whose shapes, parameters and JSON round trip hold up.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xai_audit::model::spec::ArchSpec;

fuzz_target!(|text: &str| {
    let Ok(spec) = ArchSpec::from_json(text, "fuzz.arch.json") else {
        return;
    };
    // A parsed spec has been validated: shape inference succeeds and ends in
    // a vector of class scores.
    let infos = spec.layer_infos().expect("a parsed spec infers its shapes");
    assert!(!infos.is_empty());
    assert!(spec.num_classes() > 0, "a parsed spec has classes");
    assert_eq!(spec.class_names().len(), spec.num_classes());
    let params = spec.params();
    let _ = spec.parameter_count();
    for p in &params {
        assert!(!p.name.is_empty());
    }
    // What it writes, it reads back unchanged.
    let json = spec.to_json_pretty();
    let again = ArchSpec::from_json(&json, "round trip")
        .unwrap_or_else(|e| panic!("the written spec does not parse: {e}\n{json}"));
    assert_eq!(again, spec, "round trip changed the spec");
});
