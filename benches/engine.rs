//! One PGD step's hot path — a forward pass and the cross-entropy input
//! gradient for a batch of 100 shipped digits — on the fast engine and on the
//! candle reference, for profiling (`cargo bench --bench engine`; add
//! `-- --profile-time 10` under a profiler). Throughput is in images.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xai_audit::data::batch::{batch_tensor, load_for_model, DataRequest};
use xai_audit::engine::FastNet;
use xai_audit::model::{load_model, Classifier, Objective};

fn step(c: &mut Criterion) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = load_for_model(
        &DataRequest {
            limit: Some(100),
            ..Default::default()
        },
        [1, 28, 28],
        10,
    )
    .expect("the shipped digits load");
    for model in ["mnist_cnn", "mnist_mlp", "mnist_resnet"] {
        let net = load_model(&root.join(format!("assets/{model}.safetensors")), None)
            .expect("the shipped model loads")
            .network;
        let fast = FastNet::compile(&net).expect("the engine compiles the shipped model");
        let x = batch_tensor(&data, 0, data.len(), net.input_range()).expect("a batch");
        let labels = &data.labels;
        let mut group = c.benchmark_group(format!("{model} forward+input-gradient, batch 100"));
        group.throughput(Throughput::Elements(data.len() as u64));
        group.sample_size(20);
        group.bench_function("fast", |b| {
            b.iter(|| {
                fast.input_grad(&x, Objective::CrossEntropy(labels))
                    .expect("runs")
            })
        });
        group.bench_function("reference", |b| {
            b.iter(|| {
                net.input_grad(&x, Objective::CrossEntropy(labels))
                    .expect("runs")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, step);
criterion_main!(benches);
