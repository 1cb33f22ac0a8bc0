//! The `[[attribution]]` section of a plan. Each entry reads itself
//! ([`AttributionSpec::from_entry`], the method's keys in the method's
//! file); this file checks what spans entries (the attacks `on` names,
//! unique names) and, once the model is known, what depends on it (noise
//! scales that follow the range, a fixed class, Grad-CAM's layer,
//! occlusion's window). Every problem is reported, each naming the file,
//! the entry and the key.

use toml::{Table, Value};

use super::{AttackSpec, ModelFacts};
use crate::attribution::spec::{
    default_correlation_subset, DEFAULT_INFIDELITY_STDEV, DEFAULT_ROAD_NOISE,
    DEFAULT_SENSITIVITY_RADIUS,
};
use crate::attribution::{AttributionSpec, AttributionTarget, Metric};
use crate::entry::{did_you_mean, entries, Entry, Errors};

/// Reads the `attribution` array of the plan's top-level table; `attacks`
/// are the plan's attacks, which `on` may name.
pub(super) fn parse(
    top: &mut Table,
    attacks: &[AttackSpec],
    errors: &mut Errors,
) -> Vec<AttributionSpec> {
    let mut out: Vec<AttributionSpec> = Vec::new();
    for mut e in entries(top, "attribution", errors) {
        let spec = AttributionSpec::from_entry(&mut e);
        let on = read_on(&mut e, attacks);
        let label = e.label().to_string();
        e.finish(errors);
        let Some(mut spec) = spec else { continue };
        if out.iter().any(|a| a.name == spec.name) {
            errors.push(format!(
                "{label}: `name` \"{}\" is used twice; names must be unique",
                spec.name
            ));
            continue;
        }
        spec.on = on;
        out.push(spec);
    }
    out
}

/// `on`: `"all"` or a list of the plan's attack names, kept in plan order
/// so tensors and records come in a stable order.
fn read_on(e: &mut Entry, attacks: &[AttackSpec]) -> Vec<String> {
    let names: Vec<String> = match e.take("on") {
        None => return Vec::new(),
        Some(Value::String(s)) if s == "all" => attacks.iter().map(|a| a.name.clone()).collect(),
        Some(Value::Array(items)) => {
            let mut names = Vec::new();
            for item in items {
                let Value::String(s) = item else {
                    e.fail(
                        "on",
                        format!("must list attack names, found {}", item.type_str()),
                    );
                    continue;
                };
                if attacks.iter().any(|a| a.name == s) {
                    names.push(s);
                } else {
                    e.fail("on", not_an_attack(&s, attacks));
                }
            }
            attacks
                .iter()
                .filter(|a| names.contains(&a.name))
                .map(|a| a.name.clone())
                .collect()
        }
        Some(other) => {
            e.fail(
                "on",
                format!("must be \"all\" or a list of attack names, found {other}"),
            );
            return Vec::new();
        }
    };
    if names.iter().any(|a| a == "clean") {
        e.fail(
            "on",
            "names an attack called \"clean\", which would collide with the clean maps (attr/<name>/clean): rename the attack",
        );
    }
    names
}

/// Why `name` is not one of `attacks`: an ε list's name (its entries are
/// renamed `name@ε`), or an unknown name.
fn not_an_attack(name: &str, attacks: &[AttackSpec]) -> String {
    if let Some(hint) = super::attacks::curve_hint(name, attacks) {
        return format!("names \"{name}\", but {hint}");
    }
    let known: Vec<&str> = attacks.iter().map(|a| a.name.as_str()).collect();
    format!(
        "names \"{name}\", which is not an attack of this plan (attacks: {}){}",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        },
        did_you_mean(name, &known)
    )
}

/// Completes the attribution entries against the model: a sensitivity
/// radius, ROAD noise or infidelity σ left unset follows the range, an
/// unset faithfulness-correlation subset the input's size, a fixed class must exist, and each
/// method resolves its own settings (SmoothGrad's noise scale, Grad-CAM's
/// layer, occlusion's window).
pub(super) fn resolve(
    attributions: &mut [AttributionSpec],
    model: &ModelFacts,
    errors: &mut Errors,
    _warnings: &mut Vec<String>,
) {
    let k = model.num_classes;
    let [lo, hi] = model.spec.input.range;
    let width = (hi - lo) as f64;
    for (i, a) in attributions.iter_mut().enumerate() {
        let label = format!("attribution[{i}] \"{}\"", a.name);
        if a.wants(Metric::Sensitivity) && a.sensitivity_radius.is_none() {
            a.sensitivity_radius = Some(DEFAULT_SENSITIVITY_RADIUS * width);
        }
        if a.wants(Metric::Road) && a.road_noise.is_none() {
            a.road_noise = Some(DEFAULT_ROAD_NOISE * width);
        }
        if a.wants(Metric::Infidelity) && a.infidelity_stdev.is_none() {
            a.infidelity_stdev = Some(DEFAULT_INFIDELITY_STDEV * width);
        }
        if a.wants(Metric::FaithfulnessCorrelation) {
            let [_, h, w] = model.spec.input.shape;
            let pixels = h * w;
            match a.correlation_subset {
                None => a.correlation_subset = Some(default_correlation_subset(pixels)),
                Some(s) if s > pixels => errors.push(format!(
                    "{label}: `correlation_subset` {s} is more than the input's {pixels} pixels"
                )),
                Some(_) => {}
            }
        }
        if let AttributionTarget::Class(c) = a.target {
            if c as usize >= k {
                errors.push(format!(
                    "{label}: `target` class {c} is outside the model's {k} classes"
                ));
            }
        }
        if let Err(e) = a.method.resolve(model.spec) {
            errors.push(format!("{label}: `{}` {}", e.key, e.message));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::attribution::gradcam::{GradCamConfig, Upsample};
    use crate::attribution::integrated_gradients::{BaselineKind, Integration};
    use crate::attribution::occlusion::{default_stride, OcclusionConfig};
    use crate::attribution::smoothgrad::SmoothGradConfig;
    use crate::attribution::spec::{DEFAULT_METRICS, DEFAULT_SENSITIVITY_SAMPLES};
    use crate::attribution::{AttributionTarget, Fill, MethodConfig, MethodSettings, TargetRule};
    use crate::error::Result;
    use crate::model::ArchSpec;
    use crate::plan::{ModelFacts, Plan, ResolvedPlan};

    fn plan(text: &str) -> Result<Plan> {
        Plan::from_toml(text, "p.toml")
    }

    fn err(text: &str) -> String {
        plan(text).unwrap_err().to_string()
    }

    fn spec_of(model: &str) -> ArchSpec {
        crate::model::load_model(&Path::new(env!("CARGO_MANIFEST_DIR")).join(model), None)
            .unwrap()
            .network
            .spec()
            .clone()
    }

    fn resolve(text: &str, spec: &ArchSpec) -> Result<ResolvedPlan> {
        let facts = ModelFacts {
            spec,
            num_classes: spec.num_classes(),
        };
        plan(text).unwrap().resolve(&facts, "p.toml")
    }

    const ATTACK: &str = "[[attack]]\nname = \"pgd\"\nkind = \"pgd\"\neps = 0.1\n";

    #[test]
    fn built_methods_take_the_parsers_defaults() {
        // An 8×8 window strides by 4 whether the parser or the config's
        // default fills it in.
        let parsed =
            plan("[[attribution]]\nname = \"o\"\nmethod = \"occlusion\"\nwindow = 8\n").unwrap();
        let MethodConfig::Occlusion(occ) = &parsed.attributions[0].method else {
            panic!("{:?}", parsed.attributions[0].method)
        };
        assert_eq!(occ.stride, [4, 4]);
        assert_eq!(default_stride([8, 8]), [4, 4]);
        assert_eq!(default_stride([1, 3]), [1, 1]);
        let built = OcclusionConfig::default().build((28, 28));
        assert_eq!((built.window, built.stride), ((4, 4), (2, 2)));
        assert_eq!(
            SmoothGradConfig::default().build((28, 28)).stdev,
            0.15,
            "an unresolved stdev is its value on [0, 1]"
        );
    }

    #[test]
    fn defaults_are_resolved() {
        let p = plan(&format!(
            "{ATTACK}[[attribution]]\nname = \"ig\"\nmethod = \"integrated_gradients\"\non = \"all\"\n"
        ))
        .unwrap();
        let a = &p.attributions[0];
        let MethodConfig::IntegratedGradients(ig) = &a.method else {
            panic!("{:?}", a.method)
        };
        assert_eq!(ig.steps, 50);
        assert_eq!(ig.integration, Integration::GaussLegendre);
        assert_eq!(ig.baseline, BaselineKind::Zero);
        assert_eq!(ig.blur_sigma, None);
        assert_eq!(a.on, ["pgd"]);
        assert_eq!(a.target, AttributionTarget::Rule(TargetRule::Predicted));
        assert_eq!(a.metrics, DEFAULT_METRICS);
        assert_eq!(a.curve_steps, Some(20));
        assert_eq!(a.curve_baseline, Some(Fill::Value(0.0)));
        assert_eq!(a.sensitivity_samples, None);
        let p = plan(
            "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\nmetrics = [\"sensitivity\"]\ntarget = 3\n",
        )
        .unwrap();
        assert!(p.attacks.is_empty(), "attributions alone make a plan");
        let a = &p.attributions[0];
        assert_eq!(
            (a.sensitivity_samples, a.sensitivity_radius),
            (Some(DEFAULT_SENSITIVITY_SAMPLES), None)
        );
        assert_eq!(a.target, AttributionTarget::Class(3));
        assert_eq!(a.curve_steps, None);
        let p = plan("[[attribution]]\nname = \"g\"\nmethod = \"grad_cam\"\n").unwrap();
        assert_eq!(
            p.attributions[0].method,
            MethodConfig::GradCam(GradCamConfig {
                layer: None,
                relu: true,
                upsample: Upsample::Bilinear
            })
        );
    }

    #[test]
    fn errors_name_the_file_entry_and_key() {
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"anchors\"\n");
        assert!(
            e.contains("p.toml")
                && e.contains("attribution[0] \"x\"")
                && e.contains("`method`")
                && e.contains("anchors"),
            "{e}"
        );
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\nsteps = 5\n");
        assert!(
            e.contains("`steps`") && e.contains("not a known key"),
            "{e}"
        );
        let e = err(&format!(
            "{ATTACK}[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\non = [\"fgsm\"]\n"
        ));
        assert!(
            e.contains("`on`") && e.contains("\"fgsm\"") && e.contains("pgd"),
            "{e}"
        );
        let e =
            err("[[attribution]]\nname = \"x\"\nmethod = \"integrated_gradients\"\nsteps = 0\n");
        assert!(e.contains("`steps`") && e.contains("at least 1"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"integrated_gradients\"\nintegration = \"riemann_left\"\nsteps = 1\n");
        assert!(e.contains("`steps`") && e.contains("at least 2"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"integrated_gradients\"\nintegration = \"simpson\"\n");
        assert!(e.contains("`integration`") && e.contains("simpson"), "{e}");
        let e = err(
            "[[attribution]]\nname = \"x\"\nmethod = \"integrated_gradients\"\nblur_sigma = 2.0\n",
        );
        assert!(
            e.contains("`blur_sigma`") && e.contains("does not apply"),
            "{e}"
        );
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"smoothgrad\"\nstdev = -1\n");
        assert!(e.contains("`stdev`") && e.contains("-1"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"smoothgrad\"\nstdev = nan\n");
        assert!(e.contains("`stdev`") && e.contains("finite"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"occlusion\"\nwindow = [2, 0]\n");
        assert!(e.contains("`window`"), "{e}");
        let e = err(
            "[[attribution]]\nname = \"x\"\nmethod = \"occlusion\"\nbaseline_value = \"grey\"\n",
        );
        assert!(e.contains("`baseline_value`") && e.contains("grey"), "{e}");
        let e =
            err("[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\nmetrics = [\"fidelity\"]\n");
        assert!(e.contains("`metrics`") && e.contains("fidelity"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\ntarget = \"top\"\n");
        assert!(e.contains("`target`"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\n[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\n");
        assert!(e.contains("attribution[1]") && e.contains("twice"), "{e}");
        let e = err("[[attribution]]\nname = \"a/b\"\nmethod = \"saliency\"\n");
        assert!(e.contains("`name`") && e.contains("slashes"), "{e}");
        let e = err("[[attribution]]\nmethod = \"saliency\"\n");
        assert!(e.contains("`name`") && e.contains("missing"), "{e}");
        let e = err("[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\nmetrics_on = \"adv\"\n");
        assert!(e.contains("`metrics_on`") && e.contains("adv"), "{e}");
        let e = err(
            "[[attribution]]\nname = \"x\"\nmethod = \"saliency\"\nmetrics = []\ncurve_steps = 3\n",
        );
        assert!(e.contains("`curve_steps`") && e.contains("deletion"), "{e}");
        let e = err("attribution = 3\n");
        assert!(e.contains("[[attribution]]"), "{e}");
        let e = err("seed = 1\n");
        assert!(e.contains("no entries"), "{e}");
    }

    #[test]
    fn every_entrys_errors_are_reported_at_once() {
        let e = err("[[attribution]]\nname = \"a\"\nmethod = \"saliency\"\nabs = 1\ntop_k_fraction = 2\n[[attribution]]\nname = \"b\"\nmethod = \"smoothgrad\"\nstdv = 0.1\n");
        for want in [
            "3 errors",
            "attribution[0] \"a\": `abs` must be true or false",
            "attribution[0] \"a\": `top_k_fraction` must be in (0, 1], found 2",
            "attribution[1] \"b\": `stdv` is not a known key",
            "did you mean `stdev`?",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
    }

    #[test]
    fn on_naming_an_eps_list_says_so() {
        let e = err("[[attack]]\nname = \"pgd\"\nkind = \"pgd\"\neps = [0.1, 0.3]\n[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\non = [\"pgd\"]\n");
        assert!(
            e.contains("attribution[0] \"s\": `on`")
                && e.contains("\"pgd\" is an ε list: its entries are pgd@0.1, pgd@0.3"),
            "{e}"
        );
        let p = plan("[[attack]]\nname = \"pgd\"\nkind = \"pgd\"\neps = [0.1, 0.3]\n[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\non = [\"pgd@0.3\"]\n").unwrap();
        assert_eq!(p.attributions[0].on, ["pgd@0.3"]);
    }

    #[test]
    fn plans_round_trip_through_json_with_todays_field_names() {
        let p = plan(&format!(
            "{ATTACK}[[attribution]]\nname = \"sg\"\nmethod = \"smoothgrad\"\nstdev = 0.2\non = \"all\"\nmetrics = [\"sensitivity\", \"deletion\"]\ncurve_baseline = \"black\"\n[[attribution]]\nname = \"ixg\"\nmethod = \"input_x_gradient\"\nmetrics_on = \"clean\"\n"
        ))
        .unwrap();
        let json = serde_json::to_value(&p.attributions).unwrap();
        assert_eq!(
            json[0],
            serde_json::json!({
                "name": "sg", "method": "smoothgrad", "samples": 10, "stdev": 0.2,
                "nt_type": "smoothgrad", "abs": false, "keep_noise": false,
                "target": "predicted", "on": ["pgd"], "metrics": ["deletion", "sensitivity"],
                "metrics_on": "all", "top_k_fraction": 0.05, "curve_steps": 20,
                "curve_baseline": "black", "sensitivity_samples": 10
            })
        );
        assert_eq!(json[1]["method"], "input_x_gradient");
        assert_eq!(json[1]["metrics_on"], "clean");
        let back: Vec<crate::attribution::AttributionSpec> = serde_json::from_value(json).unwrap();
        assert_eq!(back, p.attributions);
    }

    #[test]
    fn faithfulness_metric_defaults_follow_the_model() {
        let spec = spec_of("assets/mnist_cnn.safetensors");
        let r = resolve(
            "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\nmetrics = [\"road\", \"infidelity\", \"faithfulness_correlation\"]\n",
            &spec,
        )
        .unwrap();
        let a = &r.plan.attributions[0];
        assert_eq!(
            a.road_fractions.as_deref(),
            Some(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9][..])
        );
        assert_eq!(a.road_noise, Some(0.01));
        assert_eq!(
            (
                a.infidelity_samples,
                a.infidelity_stdev,
                a.infidelity_normalize
            ),
            (Some(10), Some(0.1), Some(false))
        );
        assert_eq!(
            (a.correlation_runs, a.correlation_subset),
            (Some(100), Some(78))
        );
        assert_eq!(a.curve_baseline, Some(Fill::Value(0.0)));
        assert_eq!(a.curve_steps, None);
        // Unsorted fractions are sorted; a subset beyond the image is refused.
        let r = resolve(
            "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\nmetrics = [\"road\"]\nroad_fractions = [0.5, 0.25]\n",
            &spec,
        )
        .unwrap();
        assert_eq!(r.plan.attributions[0].road_fractions, Some(vec![0.25, 0.5]));
        let e = resolve(
            "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\nmetrics = [\"faithfulness_correlation\"]\ncorrelation_subset = 785\n",
            &spec,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`correlation_subset`") && e.contains("784 pixels"),
            "{e}"
        );
    }

    #[test]
    fn model_dependent_settings_are_checked() {
        let spec = spec_of("assets/mnist_cnn.safetensors");
        let r = resolve(
            "[[attribution]]\nname = \"g\"\nmethod = \"grad_cam\"\n[[attribution]]\nname = \"s\"\nmethod = \"smoothgrad\"\nmetrics = [\"sensitivity\"]\n",
            &spec,
        )
        .unwrap();
        let MethodConfig::GradCam(g) = &r.plan.attributions[0].method else {
            panic!()
        };
        assert_eq!(g.layer.as_deref(), Some("3"));
        let s = &r.plan.attributions[1];
        let MethodConfig::SmoothGrad(sg) = &s.method else {
            panic!()
        };
        assert_eq!(
            (sg.stdev, s.sensitivity_radius),
            (Some(0.15), Some(0.02)),
            "noise scales follow the [0, 1] range"
        );
        let e = resolve(
            "[[attribution]]\nname = \"g\"\nmethod = \"grad_cam\"\nlayer = \"12\"\n",
            &spec,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("p.toml")
                && e.contains("attribution[0] \"g\"")
                && e.contains("`layer`")
                && e.contains("\"12\""),
            "{e}"
        );
        let e = resolve(
            "[[attribution]]\nname = \"g\"\nmethod = \"grad_cam\"\nlayer = \"7\"\n",
            &spec,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a [C, H, W] feature map"), "{e}");
        let e = resolve(
            "[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\ntarget = 10\n",
            &spec,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`target`") && e.contains("class 10"), "{e}");
        let e = resolve(
            "[[attribution]]\nname = \"o\"\nmethod = \"occlusion\"\nwindow = 30\n",
            &spec,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`window`") && e.contains("28×28"), "{e}");
        // Both entries' problems at once.
        let e = resolve(
            "[[attribution]]\nname = \"o\"\nmethod = \"occlusion\"\nwindow = 4\nstride = 9\n[[attribution]]\nname = \"s\"\nmethod = \"saliency\"\ntarget = 10\n",
            &spec,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("attribution[0] \"o\": `stride`")
                && e.contains("attribution[1] \"s\": `target`"),
            "{e}"
        );
    }

    /// A user's `layer = "res2.blok.4"` got every layer of a ResNet and no
    /// suggestion: a typo gets the nearest layer, and a long list is cut to
    /// the nearest ten with a pointer to `inspect`.
    #[test]
    fn a_mistyped_grad_cam_layer_gets_a_suggestion_and_a_short_list() {
        let spec = spec_of("assets/mnist_resnet.safetensors");
        let e = resolve(
            "[[attribution]]\nname = \"g\"\nmethod = \"grad_cam\"\nlayer = \"3.bdy.3\"\n",
            &spec,
        )
        .unwrap_err()
        .to_string();
        for want in [
            "\"3.bdy.3\" is not a layer position of the model; did you mean `3.body.3`?",
            "nearest first: 3.body.3 (conv2d",
            "… and 3 more; `xai-audit inspect MODEL` lists them",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        let start = e.find("nearest first: ").unwrap() + "nearest first: ".len();
        let end = e.find("; … and").unwrap();
        assert_eq!(e[start..end].split("; ").count(), 10, "{e}");
    }

    #[test]
    fn grad_cam_defaults_to_the_last_conv_even_inside_residual_blocks() {
        let spec = spec_of("tests/fixtures/tiny_all_ops.safetensors");
        let r = resolve(
            "[[attribution]]\nname = \"g\"\nmethod = \"grad_cam\"\n",
            &spec,
        )
        .unwrap();
        let MethodConfig::GradCam(g) = &r.plan.attributions[0].method else {
            panic!()
        };
        assert_eq!(g.layer.as_deref(), Some("6.body.3"));
    }
}
