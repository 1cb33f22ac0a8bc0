//! Honest numbers on every model (issue 13, data and weights): image-folder
//! classes matched to the model's class names, `--limit` taking every class
//! in proportion and the report saying how the inputs were drawn, tied
//! weights saved as safetensors aliases, and prefixed `state_dict` names.
//! Each case is rebuilt from its description in a fresh folder and driven
//! through the real binary, on tiny models whose true accuracy is known.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use xai_audit::report::io::read_report;
use xai_audit::report::types::Report;

use super::{root, xai, Run};

/// Writes a safetensors file of f32 `tensors` with `metadata` (the spec
/// under `xai_audit.arch`, aliases, anything else).
pub(crate) fn write_model(
    path: &Path,
    tensors: &[(&str, Vec<f32>, Vec<usize>)],
    metadata: &[(&str, &str)],
) {
    let tensors: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(name, values, shape)| {
            let t = Tensor::from_slice(values, shape.as_slice(), &Device::Cpu).unwrap();
            (*name, t)
        })
        .collect();
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (*n, t)), Some(metadata))
        .expect("tensors serialize");
    std::fs::write(path, bytes).unwrap();
}

/// A model on 2×2 RGB images that predicts the class of the brightest
/// channel: red is `cat`, green `dog`, blue `frog`, whatever the order in
/// which `classes` lists them (its output order). `prefix` goes before every
/// tensor name (as DataParallel's `module.`).
pub(crate) fn colour_model(path: &Path, classes: &[&str], prefix: &str) {
    let channel = |class: &str| ["cat", "dog", "frog"].iter().position(|c| *c == class);
    let mut weight = vec![0f32; 9];
    for (output, class) in classes.iter().enumerate() {
        weight[output * 3 + channel(class).expect("cat, dog or frog")] = 1.0;
    }
    let spec = format!(
        r#"{{"version": 1, "input": {{"shape": [3, 2, 2]}}, "classes": {classes:?}, "layers": [
        {{"op": "global_avg_pool2d"}},
        {{"op": "linear", "param": "fc", "in_features": 3, "out_features": 3, "bias": false}}]}}"#
    );
    let name = format!("{prefix}fc.weight");
    write_model(
        path,
        &[(&name, weight, vec![3, 3])],
        &[("xai_audit.arch", &spec)],
    );
}

/// Three 2×2 images per class folder: `cat` red, `dog` green, `frog` blue
/// (other names grey).
pub(crate) fn colour_folder(root: &Path, classes: &[&str]) {
    for class in classes {
        let px = match *class {
            "cat" => [220, 10, 10],
            "dog" => [10, 220, 10],
            "frog" => [10, 10, 220],
            _ => [90, 90, 90],
        };
        for i in 0..3 {
            let path = root.join(class).join(format!("{i}.png"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            image::RgbImage::from_pixel(2, 2, image::Rgb(px))
                .save(path)
                .unwrap();
        }
    }
}

/// The accuracy `eval` printed, in percent.
fn eval_accuracy(run: &Run) -> f64 {
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix("clean accuracy "))
        .and_then(|v| v.trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in\n{}", run.stdout))
}

/// A plan with one cheap attack, so that `run` writes a report in moments.
fn tiny_plan(dir: &Path) {
    std::fs::write(
        dir.join("p.toml"),
        "[[attack]]\nname = \"fgsm\"\nkind = \"fgsm\"\nnorm = \"linf\"\neps = 0.01\n",
    )
    .unwrap();
}

/// `run` with the tiny plan, its report read back.
fn run_report(dir: &Path, args: &[&str]) -> Report {
    tiny_plan(dir);
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend(["--plan", "p.toml", "--out", "out/r.json"]);
    let r = xai(dir, &all);
    assert_eq!(r.code, 0, "{}", r.stderr);
    super::validate_against_schema(&dir.join("out/r.json"));
    read_report(&dir.join("out/r.json")).unwrap()
}

fn labels(report: &Report) -> Vec<u32> {
    report.samples.iter().map(|s| s.label).collect()
}

/// No warning about the data or the weights.
fn no_data_warning(report: &Report) -> bool {
    report.warnings.is_empty()
}

/// The bug: a model naming classes `cat, dog, frog`, evaluated on a folder
/// holding only `dog/` and `frog/`, scored 0% and labelled the dogs `cat`.
#[test]
fn a_folder_holding_some_of_the_models_classes_is_matched_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    colour_model(&d.join("m.safetensors"), &["cat", "dog", "frog"], "");
    colour_folder(&d.join("imgs"), &["dog", "frog"]);
    let acc = eval_accuracy(&xai(d, &["eval", "m.safetensors", "--data", "imgs"]));
    assert_eq!(acc, 100.0);
    let report = run_report(d, &["m.safetensors", "--data", "imgs"]);
    assert_eq!(report.summary.clean_accuracy, 1.0);
    assert_eq!(labels(&report), [1, 1, 1, 2, 2, 2]);
    assert!(no_data_warning(&report), "{:?}", report.warnings);
}

/// The bug: a spec listing its classes as `frog, dog, cat` (its output
/// order) scored 33% on `cat/ dog/ frog/`, where PyTorch gets 100%.
#[test]
fn classes_listed_in_output_order_label_the_folders_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    colour_model(&d.join("m.safetensors"), &["frog", "dog", "cat"], "");
    colour_folder(&d.join("imgs"), &["cat", "dog", "frog"]);
    let r = xai(d, &["eval", "m.safetensors", "--data", "imgs"]);
    assert_eq!(eval_accuracy(&r), 100.0);
    assert!(r.stdout.contains("  frog "), "{}", r.stdout);
    let report = run_report(d, &["m.safetensors", "--data", "imgs"]);
    assert_eq!(report.summary.clean_accuracy, 1.0);
    assert_eq!(labels(&report), [2, 2, 2, 1, 1, 1, 0, 0, 0]);
}

#[test]
fn a_folder_class_the_model_lacks_exits_2_naming_it_and_the_models_classes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    colour_model(&d.join("m.safetensors"), &["cat", "dog", "frog"], "");
    colour_folder(&d.join("imgs"), &["cat", "dog", "horse"]);
    for command in ["eval", "run"] {
        xai(d, &[command, "m.safetensors", "--data", "imgs"]).expect_error(&[
            "imgs",
            "`horse`",
            "cat, dog, frog",
        ]);
    }
    assert!(!d.join("reports").exists());
}

/// Without class names in the spec, folders keep torchvision's sorted
/// numbering, and the report warns when their names are not those numbers.
#[test]
fn unnamed_classes_keep_sorted_numbering_with_a_warning_for_named_folders() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    colour_model(&d.join("m.safetensors"), &["cat", "dog", "frog"], "");
    // The same weights with the names taken out of the spec.
    let file = xai_audit::model::load::WeightsFile::read(&d.join("m.safetensors")).unwrap();
    let spec =
        file.metadata["xai_audit.arch"].replace(r#""classes": ["cat", "dog", "frog"], "#, "");
    std::fs::write(d.join("unnamed.json"), spec).unwrap();
    colour_folder(&d.join("imgs"), &["cat", "dog", "frog"]);
    let args = ["m.safetensors", "--arch", "unnamed.json", "--data", "imgs"];
    let report = run_report(d, &args);
    assert_eq!(report.summary.clean_accuracy, 1.0);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("names no classes") && w.contains("cat → 0, dog → 1, frog → 2")),
        "{:?}",
        report.warnings
    );
    let r = xai(d, &["eval", args[0], args[1], args[2], args[3], args[4]]);
    assert!(
        r.stderr
            .contains("warning: the model's spec names no classes"),
        "{}",
        r.stderr
    );
    // Folders named by their numbers: nothing to warn about.
    for (from, to) in [("cat", "0"), ("dog", "1"), ("frog", "2")] {
        std::fs::rename(d.join("imgs").join(from), d.join("imgs").join(to)).unwrap();
    }
    let report = run_report(d, &args);
    assert!(no_data_warning(&report), "{:?}", report.warnings);
}

/// A model on 2×2 grey images that predicts the class whose brightness is
/// nearest the image's mean (logit `2·c·x − c²` for class brightness `c`).
const BRIGHTNESS: [f32; 4] = [0.1, 0.35, 0.6, 0.85];

fn brightness_model(path: &Path) {
    let spec = r#"{"version": 1, "input": {"shape": [1, 2, 2]}, "classes": ["a", "b", "c", "d"], "layers": [
        {"op": "global_avg_pool2d"},
        {"op": "linear", "param": "fc", "in_features": 1, "out_features": 4}]}"#;
    let weight = BRIGHTNESS.iter().map(|c| 2.0 * c).collect();
    let bias = BRIGHTNESS.iter().map(|c| -c * c).collect();
    write_model(
        path,
        &[
            ("fc.weight", weight, vec![4, 1]),
            ("fc.bias", bias, vec![4]),
        ],
        &[("xai_audit.arch", spec)],
    );
}

/// The bug: `--limit N` took the first N files in class order, so a 4-class
/// folder limited to half its size audited the first two classes only.
#[test]
fn a_limit_on_a_four_class_folder_keeps_every_class_in_proportion() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    brightness_model(&d.join("m.safetensors"));
    let sizes = [8, 4, 4, 4];
    for (class, (&n, c)) in ["a", "b", "c", "d"]
        .iter()
        .zip(sizes.iter().zip(BRIGHTNESS))
    {
        for i in 0..n {
            let path = d.join("imgs").join(class).join(format!("{i:02}.png"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let v = (c * 255.0).round() as u8;
            image::GrayImage::from_pixel(2, 2, image::Luma([v]))
                .save(path)
                .unwrap();
        }
    }
    let report = run_report(d, &["m.safetensors", "--data", "imgs", "--limit", "10"]);
    let mut counts = [0; 4];
    for l in labels(&report) {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [4, 2, 2, 2]);
    assert_eq!(report.summary.clean_accuracy, 1.0);
    assert_eq!(report.data.count, 10);
    assert_eq!(
        report.data.subset.as_deref(),
        Some("class-stratified 10 of 20")
    );
    // Any limit: a larger one takes a superset, each class within one item
    // of its share.
    for limit in [1, 3, 5, 13, 19] {
        let r = xai(
            d,
            &[
                "eval",
                "m.safetensors",
                "--data",
                "imgs",
                "--limit",
                &limit.to_string(),
            ],
        );
        assert_eq!(eval_accuracy(&r), 100.0);
        assert!(
            r.stdout
                .contains(&format!("({limit} inputs: class-stratified {limit} of 20)")),
            "{}",
            r.stdout
        );
    }
    let report = run_report(d, &["m.safetensors", "--data", "imgs"]);
    assert_eq!(report.data.subset.as_deref(), Some("all 20"));
}

#[test]
fn idx_limits_keep_the_file_order_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mlp = root().join("assets/mnist_mlp.safetensors");
    let report = run_report(d, &[mlp.to_str().unwrap(), "--limit", "7"]);
    assert_eq!(
        report.data.subset.as_deref(),
        Some("first 7 of 1000 in file order")
    );
    // The shipped sample's first seven labels, in file order.
    let sample = xai_audit::data::shipped_sample(&Default::default()).unwrap();
    assert_eq!(labels(&report), sample.labels[..7]);
}

/// Reports written before `data.subset` existed still load.
#[test]
fn reports_without_a_subset_still_load() {
    let path = root().join("reports/examples/mnist_cnn-quick.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("\"subset\""));
    let report = read_report(&path).unwrap();
    assert_eq!(
        report.schema_version, 1,
        "the example is a version 1 report"
    );
    assert_eq!(report.data.subset, None);
    // Older than the oldest readable version: refused by name.
    let v0 = text.replacen("\"schema_version\": 1", "\"schema_version\": 0", 1);
    let err = xai_audit::report::io::parse_report(&v0, &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("version 0 is older") && err.contains("mnist_cnn-quick.json"),
        "{err}"
    );
}

/// A small model on the shipped digits whose two 4×4 layers share one
/// weight matrix, written in full or, as `safetensors.torch.save_model`
/// writes it, with `fc2.weight` an alias of `fc1.weight`.
fn tied_model(path: &Path, aliased: bool) {
    let spec = r#"{"version": 1, "input": {"shape": [1, 28, 28]}, "layers": [
        {"op": "adaptive_avg_pool2d", "output_size": 2},
        {"op": "flatten"},
        {"op": "linear", "param": "fc1", "in_features": 4, "out_features": 4},
        {"op": "relu"},
        {"op": "linear", "param": "fc2", "in_features": 4, "out_features": 4},
        {"op": "relu"},
        {"op": "linear", "param": "head", "in_features": 4, "out_features": 10}]}"#;
    let wave = |n: usize, k: f32| (0..n).map(|i| (i as f32 * k).sin()).collect::<Vec<f32>>();
    let mut tensors = vec![
        ("fc1.weight", wave(16, 1.3), vec![4, 4]),
        ("fc1.bias", wave(4, 0.7), vec![4]),
        ("fc2.bias", wave(4, 2.1), vec![4]),
        ("head.weight", wave(40, 0.9), vec![10, 4]),
        ("head.bias", wave(10, 0.4), vec![10]),
    ];
    let mut metadata = vec![("xai_audit.arch", spec), ("format", "pt")];
    if aliased {
        metadata.push(("fc2.weight", "fc1.weight"));
    } else {
        tensors.push(("fc2.weight", wave(16, 1.3), vec![4, 4]));
    }
    write_model(path, &tensors, &metadata);
}

/// The bug: a valid file with tied weights saved by
/// `safetensors.torch.save_model` was refused with "tensor fc2.weight is
/// missing".
#[test]
fn an_aliased_weights_file_gives_the_logits_of_the_full_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tied_model(&d.join("full.safetensors"), false);
    tied_model(&d.join("tied.safetensors"), true);
    let r = xai(d, &["inspect", "tied.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("alias of fc1.weight"), "{}", r.stdout);
    assert!(!r.stdout.contains("warning"), "{}", r.stdout);
    let reports: Vec<Report> = ["full.safetensors", "tied.safetensors"]
        .iter()
        .map(|m| {
            std::fs::remove_dir_all(d.join("out")).ok();
            run_report(d, &[m, "--limit", "20"])
        })
        .collect();
    assert!(no_data_warning(&reports[1]), "{:?}", reports[1].warnings);
    for (full, tied) in reports[0].samples.iter().zip(&reports[1].samples) {
        assert_eq!(full.top5, tied.top5);
    }
    // The probabilities depend on the input: the comparison means something.
    let first = &reports[0].samples[0].top5;
    assert!(reports[0].samples.iter().any(|s| &s.top5 != first));
}

/// A `module.`-prefixed file (DataParallel) fails with a hint naming the
/// prefix and the flag, and loads with `--strip-prefix module.` or the
/// spec's `strip_prefix`, in every command that loads a model.
#[test]
fn a_prefixed_file_fails_with_the_hint_and_loads_with_strip_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    colour_model(&d.join("m.safetensors"), &["cat", "dog", "frog"], "module.");
    colour_folder(&d.join("imgs"), &["cat", "dog", "frog"]);
    let needles = [
        "m.safetensors",
        "fc.weight",
        "`module.fc.weight`",
        "--strip-prefix module.",
        "\"strip_prefix\": \"module.\"",
    ];
    xai(d, &["inspect", "m.safetensors"]).expect_error(&needles);
    xai(d, &["eval", "m.safetensors", "--data", "imgs"]).expect_error(&needles);
    xai(d, &["run", "m.safetensors", "--data", "imgs"]).expect_error(&needles);

    let strip = ["--strip-prefix", "module."];
    let r = xai(d, &["inspect", "m.safetensors", strip[0], strip[1]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("prefix `module.` stripped"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("warning"), "{}", r.stdout);
    let r = xai(
        d,
        &[
            "eval",
            "m.safetensors",
            "--data",
            "imgs",
            strip[0],
            strip[1],
        ],
    );
    assert_eq!(eval_accuracy(&r), 100.0);
    let report = run_report(d, &["m.safetensors", "--data", "imgs", strip[0], strip[1]]);
    assert_eq!(report.summary.clean_accuracy, 1.0);
    // The report's spec records the prefix the weights were read with.
    assert_eq!(report.model.spec["strip_prefix"], "module.");
    let r = xai(
        d,
        &[
            "bench",
            "m.safetensors",
            "--data",
            "imgs",
            "--limit",
            "3",
            "--steps",
            "1",
            strip[0],
            strip[1],
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Shards of a run merge with the flag too.
    tiny_plan(d);
    let common = [
        "m.safetensors",
        "--data",
        "imgs",
        "--plan",
        "p.toml",
        "--out",
        "s/r.json",
    ];
    for shard in ["1/2", "2/2"] {
        let mut args = vec!["run"];
        args.extend(common);
        args.extend(["--batch-size", "5", "--shard", shard, strip[0], strip[1]]);
        let r = xai(d, &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let mut args = vec!["merge"];
    args.extend(common);
    args.extend(["--batch-size", "5", strip[0], strip[1]]);
    args.extend(["s/r.json.shard-1-of-2", "s/r.json.shard-2-of-2"]);
    let r = xai(d, &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        read_report(&d.join("s/r.json"))
            .unwrap()
            .summary
            .clean_accuracy,
        1.0
    );

    // The spec's own `strip_prefix` does the same.
    let file = xai_audit::model::load::WeightsFile::read(&d.join("m.safetensors")).unwrap();
    let spec = file.metadata["xai_audit.arch"].replacen('{', r#"{"strip_prefix": "module.", "#, 1);
    std::fs::write(d.join("s.json"), spec).unwrap();
    let r = xai(
        d,
        &[
            "eval",
            "m.safetensors",
            "--arch",
            "s.json",
            "--data",
            "imgs",
        ],
    );
    assert_eq!(eval_accuracy(&r), 100.0);
}
