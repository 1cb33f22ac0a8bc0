//! The attribution sanity checks (Adebayo et al. 2018; Sixt et al. 2020) on
//! the shipped models: a method built to ignore the weights survives the
//! cascade and raises the warning, saliency does not; the curve covers every
//! layer with parameters, output first; nothing depends on the batch size;
//! and the report and summary carry it all.

use candle_core::Tensor;
use serde_json::Value;
use xai_audit::attribution::saliency::Saliency;
use xai_audit::attribution::sanity::{
    run_sanity, sobel_edges, Checked, MapSettings, ModelSource, SanityConfig, SanityResults,
    SanityTest,
};
use xai_audit::attribution::smoothgrad::{NoiseTunnelType, SmoothGrad};
use xai_audit::attribution::{Attribution, ExplainBatch, Explanation};
use xai_audit::data::batch::batch_tensor;
use xai_audit::engine::FastNet;
use xai_audit::error::Result;
use xai_audit::model::{Classifier, Network};

use super::attacks::shipped_cnn_and_digits;
use super::{root, xai};

/// The input's Sobel edges, repeated over the channels: a map that never
/// looks at the model.
struct EdgeDetector;

impl Attribution for EdgeDetector {
    fn explain(&self, _model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        let dims = batch.x.dims().to_vec();
        let shape = [dims[0], dims[1], dims[2], dims[3]];
        let x: Vec<f32> = batch.x.flatten_all()?.to_vec1()?;
        let edges = sobel_edges(&x, shape);
        let hw = shape[2] * shape[3];
        let maps: Vec<f32> = edges
            .chunks(hw)
            .flat_map(|e| std::iter::repeat_n(e, shape[1]).flatten().copied())
            .collect();
        Ok(Explanation::maps(Tensor::from_vec(
            maps,
            dims.as_slice(),
            &candle_core::Device::Cpu,
        )?))
    }

    fn model_calls(&self) -> usize {
        0
    }
}

fn fast(net: &Network) -> Result<Box<dyn Classifier>> {
    Ok(Box::new(FastNet::compile(net).unwrap()))
}

/// Runs the sanity tests of `method` on the first `n` shipped digits (the
/// explained class: the prediction) with the CNN.
fn sanity_of(
    method: &dyn Attribution,
    tests: &[SanityTest],
    n: usize,
    batch_size: usize,
) -> (SanityResults, usize) {
    let (net, data) = shipped_cnn_and_digits(n);
    let model = fast(&net).unwrap();
    let x = batch_tensor(&data, 0, n, model.input_range()).unwrap();
    let classes: Vec<u32> = model
        .logits(&x)
        .unwrap()
        .argmax(1)
        .unwrap()
        .to_vec1()
        .unwrap();
    let settings = MapSettings {
        method,
        seed: 5,
        stream: 0,
        batch_size,
        top_k: 40,
    };
    let inputs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let mut maps = Vec::new();
    for first in (0..n).step_by(batch_size) {
        let len = batch_size.min(n - first);
        let xb = batch_tensor(&data, first, len, model.input_range()).unwrap();
        let batch = ExplainBatch {
            x: &xb,
            classes: &classes[first..first + len],
            first_index: first,
            seed: 5,
            stream: 0,
        };
        let m = method.explain(model.as_ref(), &batch).unwrap().maps;
        maps.extend(m.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
    let source = ModelSource {
        network: &net,
        build: &fast,
    };
    let config = SanityConfig {
        tests: tests.to_vec(),
        inputs: n,
        threshold: 0.5,
    };
    let checked = Checked {
        inputs: &inputs,
        shape: [n, 1, 28, 28],
        classes: &classes,
        maps: &maps,
    };
    let results = run_sanity(&source, model.as_ref(), &settings, &config, checked).unwrap();
    (results, net.parameter_layers().len())
}

#[test]
fn an_edge_detector_survives_randomization_and_saliency_does_not() {
    let all = [
        SanityTest::Cascading,
        SanityTest::Independent,
        SanityTest::RandomLogit,
    ];
    let (edges, layers) = sanity_of(&EdgeDetector, &all, 12, 12);
    assert_eq!(edges.survives_randomization, Some(true));
    for step in edges.cascading.iter().chain(&edges.independent) {
        let s = step.similarity;
        assert!((s.spearman_abs.unwrap() - 1.0).abs() < 1e-12, "{step:?}");
        assert!((s.ssim.unwrap() - 1.0).abs() < 1e-9, "{step:?}");
        assert_eq!(s.top_k_overlap, 1.0);
    }
    // The edge map is its own reference, and ignores the class too.
    assert!((edges.edge_reference.spearman_abs.unwrap() - 1.0).abs() < 1e-12);
    assert!((edges.random_logit.unwrap().spearman.unwrap() - 1.0).abs() < 1e-12);

    let (saliency, _) = sanity_of(&Saliency { abs: false }, &all, 12, 12);
    assert_eq!(saliency.survives_randomization, Some(false));
    let last = saliency.cascading.last().unwrap().similarity;
    assert!(last.spearman_abs.unwrap() < 0.5, "{last:?}");
    // One step per layer with parameters, output layer first.
    let (net, _) = shipped_cnn_and_digits(1);
    let names: Vec<String> = net
        .parameter_layers()
        .iter()
        .rev()
        .map(|l| l.name.clone())
        .collect();
    let cascade: Vec<String> = saliency.cascading.iter().map(|s| s.layer.clone()).collect();
    assert_eq!(cascade, names);
    assert_eq!(saliency.independent.len(), layers);
    // Randomizing the output layer alone is the cascade's first step.
    assert_eq!(
        saliency.independent[0].similarity,
        saliency.cascading[0].similarity
    );
    // The map for another class is a different map.
    assert!(saliency.random_logit.unwrap().spearman.unwrap() < 0.9);
}

#[test]
fn sanity_results_do_not_depend_on_the_batch_size() {
    let sg = SmoothGrad {
        samples: 3,
        stdev: 0.15,
        kind: NoiseTunnelType::SmoothGrad,
        abs: false,
        keep_noise: false,
    };
    let tests = [SanityTest::Cascading, SanityTest::RandomLogit];
    let (whole, _) = sanity_of(&sg, &tests, 6, 6);
    let (split, _) = sanity_of(&sg, &tests, 6, 4);
    assert_eq!(whole, split);
}

#[test]
fn the_report_carries_the_curves_and_flags_the_map_that_ignores_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "seed = 1\n\
         [[attribution]]\nname = \"sal\"\nmethod = \"saliency\"\nmetrics = []\n\
         sanity = [\"cascading\", \"independent\", \"random_logit\"]\nsanity_inputs = 6\n\
         [[attribution]]\nname = \"ixg\"\nmethod = \"input_x_gradient\"\nmetrics = []\n\
         sanity = [\"cascading\"]\n",
    )
    .unwrap();
    let model = root().join("assets/mnist_cnn.safetensors");
    let run = xai(
        dir.path(),
        &[
            "run",
            model.to_str().unwrap(),
            "--plan",
            "p.toml",
            "--limit",
            "10",
            "--out",
            "r.json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("survives randomization"),
        "{}",
        run.stdout
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    let summaries = report["summary"]["attributions"].as_array().unwrap();
    let sal = &summaries[0]["sanity"];
    assert_eq!(sal["inputs"], 6);
    assert_eq!(sal["survives_randomization"], false);
    assert_eq!(sal["cascading"].as_array().unwrap().len(), 4);
    assert_eq!(sal["independent"].as_array().unwrap().len(), 4);
    assert!(sal["random_logit"]["spearman_abs"].is_number());
    let ixg = &summaries[1]["sanity"];
    assert_eq!(ixg["inputs"], 10);
    assert_eq!(ixg["survives_randomization"], true);
    assert!(ixg["independent"].as_array().unwrap().is_empty());
    let flags: Vec<&Value> = report["summary"]["sanity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "attribution_survives_randomization")
        .collect();
    assert_eq!(flags.len(), 1, "{flags:?}");
    let message = flags[0]["message"].as_str().unwrap();
    assert!(message.contains("ixg") && message.contains("input_x_gradient"));
}
