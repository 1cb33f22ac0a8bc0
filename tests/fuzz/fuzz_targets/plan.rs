//! The TOML audit plan parser on arbitrary UTF-8, followed by the checks the
//! CLI runs against the model before any work starts.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xai_audit::plan::{ModelFacts, Plan, ResolvedPlan};
use xai_audit::model::spec::ArchSpec;

/// The shipped MNIST CNN's spec, as read from its safetensors metadata.
fn model_spec() -> &'static ArchSpec {
    static SPEC: OnceLock<ArchSpec> = OnceLock::new();
    SPEC.get_or_init(|| {
        ArchSpec::from_json(
            include_str!("../seeds/spec/mnist_cnn.arch.json"),
            "mnist_cnn",
        )
        .expect("the seed spec parses")
    })
}

fuzz_target!(|text: &str| {
    let origin = "fuzz.toml";
    let Ok(plan) = Plan::from_toml(text, origin) else {
        return;
    };
    let spec = model_spec();
    let facts = ModelFacts {
        spec,
        num_classes: spec.num_classes(),
    };
    let Ok(ResolvedPlan { plan, .. }) = plan.resolve(&facts, origin) else {
        return;
    };
    // Every attack of a valid plan can be built.
    for a in &plan.attacks {
        a.build().expect("a validated plan builds");
        let _ = a.target_label();
    }
});
