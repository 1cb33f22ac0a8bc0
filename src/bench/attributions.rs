//! `xai-audit bench --attributions`: the cost of each attribution method and
//! metric per input on a model, with the settings the default plan uses, so a
//! plan's time can be estimated before it runs. Speed lives here, never in a
//! test's assertions.

use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

use crate::attribution::deeplift::DeepLiftConfig;
use crate::attribution::deeplift_shap::DeepLiftShapConfig;
use crate::attribution::gradcam::GradCamConfig;
use crate::attribution::gradient_shap::{self, GradientShapConfig};
use crate::attribution::guided_backprop::GuidedBackpropConfig;
use crate::attribution::guided_gradcam::GuidedGradCamConfig;
use crate::attribution::input_x_gradient::InputXGradientConfig;
use crate::attribution::integrated_gradients::IntegratedGradientsConfig;
use crate::attribution::kernel_shap::{self, KernelShapConfig};
use crate::attribution::lime::{self, LimeConfig};
use crate::attribution::lrp::{Composite, LrpConfig};
use crate::attribution::metrics::{
    perturbation_curves, pixel_scores, ranking, Curve, CurveSettings,
};
use crate::attribution::occlusion::OcclusionConfig;
use crate::attribution::saliency::SaliencyConfig;
use crate::attribution::smoothgrad::{self, SmoothGradConfig};
use crate::attribution::{entry_stream, tensor4, Attribution, ExplainBatch, MethodConfig};
use crate::audit::clean::predict;
use crate::error::Result;

/// Times every method (and the metrics) over the first `limit` inputs in
/// batches of `batch_size` on `engine`; returns a printable table.
pub fn attribution_costs(
    model: &Path,
    model_opts: &crate::model::ModelOptions,
    data: Option<&Path>,
    arrays: &crate::data::arrays::ArrayOptions,
    limit: usize,
    batch_size: usize,
    engine: crate::engine::Engine,
) -> Result<String> {
    let (loaded, data) = super::bench_inputs_with(model, model_opts, data, arrays, limit)?;
    let selected = crate::engine::select(&loaded.network, engine)?;
    if let Some(why) = &selected.fallback {
        eprintln!("warning: {why}");
    }
    let net = selected.classifier.as_ref();
    let spec = loaded.network.spec();
    let [n, c, h, w] = data.shape;
    let per = c * h * w;
    let batch_size = batch_size.max(1);
    let classes = predict(net, &data, batch_size)?.predicted;
    let x: Vec<f32> = crate::data::batch::batch_tensor(&data, 0, n, net.input_range())?
        .flatten_all()?
        .to_vec1()?;

    // Each method at its defaults, completed against the model as a plan
    // would be; a method that does not fit the model is left out.
    let ig = IntegratedGradientsConfig::default();
    let configs = [
        (
            "saliency".to_string(),
            MethodConfig::Saliency(SaliencyConfig::default()),
        ),
        (
            "input_x_gradient".to_string(),
            MethodConfig::InputXGradient(InputXGradientConfig::default()),
        ),
        (
            format!("integrated_gradients ({}, gausslegendre)", ig.steps),
            MethodConfig::IntegratedGradients(ig),
        ),
        (
            "integrated_gradients (20, gausslegendre)".to_string(),
            MethodConfig::IntegratedGradients(IntegratedGradientsConfig {
                steps: 20,
                ..IntegratedGradientsConfig::default()
            }),
        ),
        (
            format!("smoothgrad ({} samples)", smoothgrad::DEFAULT_SAMPLES),
            MethodConfig::SmoothGrad(SmoothGradConfig::default()),
        ),
        (
            "occlusion (4×4, stride 2)".to_string(),
            MethodConfig::Occlusion(OcclusionConfig::default()),
        ),
        (
            "grad_cam".to_string(),
            MethodConfig::GradCam(GradCamConfig::default()),
        ),
        (
            "guided_backprop".to_string(),
            MethodConfig::GuidedBackprop(GuidedBackpropConfig::default()),
        ),
        (
            "guided_grad_cam".to_string(),
            MethodConfig::GuidedGradCam(GuidedGradCamConfig::default()),
        ),
        (
            "deeplift".to_string(),
            MethodConfig::DeepLift(DeepLiftConfig::default()),
        ),
        (
            format!(
                "deeplift_shap ({} baselines)",
                gradient_shap::DEFAULT_BASELINE_SAMPLES
            ),
            MethodConfig::DeepLiftShap(DeepLiftShapConfig::default()),
        ),
        (
            format!("gradient_shap ({} samples)", gradient_shap::DEFAULT_SAMPLES),
            MethodConfig::GradientShap(GradientShapConfig::default()),
        ),
        (
            format!("kernel_shap ({} samples)", kernel_shap::DEFAULT_SAMPLES),
            MethodConfig::KernelShap(KernelShapConfig::default()),
        ),
        (
            format!("lime ({} samples)", lime::DEFAULT_SAMPLES),
            MethodConfig::Lime(LimeConfig::default()),
        ),
        (
            "lrp (epsilon_plus_flat)".to_string(),
            MethodConfig::Lrp(LrpConfig::default()),
        ),
        (
            "lrp (epsilon_gamma_box)".to_string(),
            MethodConfig::Lrp(LrpConfig {
                composite: Composite::EpsilonGammaBox,
                ..LrpConfig::default()
            }),
        ),
    ];
    let mut methods: Vec<(String, Box<dyn Attribution>)> = Vec::new();
    for (mut name, mut config) in configs {
        if config.resolve(spec).is_err() {
            continue;
        }
        if let MethodConfig::GradCam(GradCamConfig {
            layer: Some(layer), ..
        }) = &config
        {
            name = format!("grad_cam (layer {layer})");
        }
        methods.push((name, config.build((h, w))));
    }

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "attribution cost per input on {n} inputs, batch {batch_size}, {threads} threads available\nmodel {}\n",
        model.display()
    );
    let _ = writeln!(
        out,
        "{:<42} {:>12} {:>10} {:>10}",
        "method or metric", "model calls", "ms/input", "inputs/s"
    );
    let row = |out: &mut String, name: &str, calls: String, seconds: f64| {
        let _ = writeln!(
            out,
            "{name:<42} {calls:>12} {:>10.2} {:>10.1}",
            1000.0 * seconds / n as f64,
            n as f64 / seconds
        );
    };
    let mut saliency_maps = Vec::with_capacity(n * per);
    for (k, (name, method)) in methods.iter().enumerate() {
        let started = Instant::now();
        for first in (0..n).step_by(batch_size) {
            let len = batch_size.min(n - first);
            let xt = tensor4(x[first * per..(first + len) * per].to_vec(), [len, c, h, w])?;
            let maps = method.explain(
                net,
                &ExplainBatch {
                    x: &xt,
                    classes: &classes[first..first + len],
                    first_index: first,
                    seed: 0,
                    stream: entry_stream(k),
                },
            )?;
            if k == 0 {
                saliency_maps.extend(maps.maps.flatten_all()?.to_vec1::<f32>()?);
            }
        }
        row(
            &mut out,
            name,
            method.model_calls().to_string(),
            started.elapsed().as_secs_f64(),
        );
    }

    // Metrics, on the saliency maps.
    let settings = CurveSettings {
        steps: 20,
        baseline: 0.0,
    };
    let started = Instant::now();
    for first in (0..n).step_by(batch_size) {
        let len = batch_size.min(n - first);
        let orders: Vec<Vec<usize>> = saliency_maps[first * per..(first + len) * per]
            .chunks(per)
            .map(|m| ranking(&pixel_scores(m, c)))
            .collect();
        for curve in [Curve::Deletion, Curve::Insertion] {
            perturbation_curves(
                net,
                &x[first * per..(first + len) * per],
                [len, c, h, w],
                &classes[first..first + len],
                &orders,
                curve,
                settings,
            )?;
        }
    }
    row(
        &mut out,
        "deletion + insertion (20 steps each)",
        "42 forward".into(),
        started.elapsed().as_secs_f64(),
    );
    let started = Instant::now();
    for m in saliency_maps.chunks(per) {
        std::hint::black_box(crate::attribution::metrics::gini(m));
    }
    row(
        &mut out,
        "sparseness (Gini)",
        "0".into(),
        started.elapsed().as_secs_f64(),
    );
    let _ = writeln!(
        out,
        "\nmax-sensitivity costs its sample count (default 10) times the method's cost."
    );
    Ok(out)
}
