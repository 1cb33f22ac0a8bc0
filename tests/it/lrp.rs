//! LRP against Zennit 0.5.1 (the newest release) on the shipped CNN and
//! residual model, 32 digits explained for their labels
//! (`tests/fixtures/zennit/lrp.safetensors`, written by
//! `examples/compare_zennit.py`: Zennit's composites with its batch-norm
//! canonizer and each residual join a `zennit.layer.Sum`, the logit put on
//! the output). Maps agree to 1e-4 of each map's largest value.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use xai_audit::attribution::lrp::{Composite, LrpConfig};
use xai_audit::attribution::{Attribution, ExplainBatch, MethodSettings};
use xai_audit::model::load_model;

use super::attributions::max_rel_diff;
use super::{fixture, root};

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn lrp_composites_match_zennit_on_both_shipped_models() {
    let t: HashMap<String, Tensor> =
        candle_core::safetensors::load(fixture("zennit/lrp.safetensors"), &Device::Cpu).unwrap();
    let (x, labels) = super::shap::shipped_digits(&t);
    let n = labels.len();
    assert_eq!(n, 32);
    let mut compared = 0;
    for (model, composites) in [
        (
            "cnn",
            &[
                ("epsilon_plus_flat", Composite::EpsilonPlusFlat),
                ("epsilon_gamma_box", Composite::EpsilonGammaBox),
                (
                    "epsilon_alpha2_beta1_flat",
                    Composite::EpsilonAlpha2Beta1Flat,
                ),
                ("epsilon_plus", Composite::EpsilonPlus),
            ][..],
        ),
        (
            "resnet",
            &[
                ("epsilon_plus_flat", Composite::EpsilonPlusFlat),
                ("epsilon_gamma_box", Composite::EpsilonGammaBox),
                (
                    "epsilon_alpha2_beta1_flat",
                    Composite::EpsilonAlpha2Beta1Flat,
                ),
            ][..],
        ),
    ] {
        let net = load_model(
            &root().join(format!("assets/mnist_{model}.safetensors")),
            None,
        )
        .unwrap()
        .network;
        for (name, composite) in composites {
            let lrp = LrpConfig {
                composite: *composite,
                ..LrpConfig::default()
            }
            .build((28, 28));
            let e = lrp
                .explain(
                    &net,
                    &ExplainBatch {
                        x: &x,
                        classes: &labels,
                        first_index: 0,
                        seed: 0,
                        stream: 0,
                    },
                )
                .unwrap();
            let theirs = flat(&t[&format!("{model}/{name}")]);
            let ours = flat(&e.maps);
            let d = max_rel_diff(&ours, &theirs, n);
            eprintln!("{model} {name}: max relative difference {d:.2e}");
            assert!(d <= 1e-4, "{model} {name}: {d:.3e} from Zennit");
            compared += 1;
        }
    }
    assert_eq!(compared, 7);
}
