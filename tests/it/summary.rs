//! A summary that explains itself (issue 17), through the real binary on a
//! 3×32×32 model of named classes whose every figure has a closed form:
//! the headline per threat model against RobustBench's and AutoAttack's,
//! minimum-norm attacks as distances, class names with their index in the
//! warnings, the noise table and `eval`'s per-class table.

use std::path::Path;

use xai_audit::report::io::read_report;

use super::honest_data::write_model;
use super::xai;

const SIDE: usize = 32;
/// Classes in output order; `cat` images are red, `dog` green, `frog` blue;
/// `bird` (no images) has a constant logit of −1, below every other. Four
/// classes, as AutoAttack's targeted DLR loss needs.
const CLASSES: [&str; 4] = ["frog", "dog", "cat", "bird"];
/// The bias of the `frog` logit: noise (channel means near ½) lands there.
const FROG_BIAS: f64 = 0.3;

/// Logit of class k = mean of its colour's channel (+ the frog bias).
fn model(path: &Path) {
    let mut weight = vec![0f32; 12];
    for (k, class) in CLASSES.iter().enumerate() {
        if let Some(channel) = ["cat", "dog", "frog"].iter().position(|c| c == class) {
            weight[k * 3 + channel] = 1.0;
        }
    }
    let spec = format!(
        r#"{{"version": 1, "input": {{"shape": [3, {SIDE}, {SIDE}]}}, "classes": {CLASSES:?}, "layers": [
        {{"op": "global_avg_pool2d"}},
        {{"op": "linear", "param": "fc", "in_features": 3, "out_features": 4}}]}}"#
    );
    write_model(
        path,
        &[
            ("fc.weight", weight, vec![4, 3]),
            ("fc.bias", vec![FROG_BIAS as f32, 0.0, 0.0, -1.0], vec![4]),
        ],
        &[("xai_audit.arch", &spec)],
    );
}

/// Three flat images per class: the class's channel 220, the others 10.
fn folder(root: &Path) {
    for (class, px) in [
        ("cat", [220, 10, 10]),
        ("dog", [10, 220, 10]),
        ("frog", [10, 10, 220]),
    ] {
        for i in 0..3 {
            let path = root.join(class).join(format!("{i}.png"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            image::RgbImage::from_pixel(SIDE as u32, SIDE as u32, image::Rgb(px))
                .save(path)
                .unwrap();
        }
    }
}

const PLAN: &str = r#"
[[attack]]
name = "aa"
kind = "autoattack"
eps = 0.03137254901960784

[[attack]]
name = "apgd-ce"
kind = "apgd"
eps = 0.03137254901960784
steps = 10

[[attack]]
name = "fmn-l2"
kind = "fmn"
norm = "l2"

[[attack]]
name = "fmn-linf"
kind = "fmn"
norm = "linf"
eps = 0.3

[[stress]]
name = "noise"
kind = "noise"
families = ["uniform"]
"#;

fn line<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in\n{text}"))
}

#[test]
fn the_summary_names_its_threat_models_distances_and_classes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    model(&d.join("m.safetensors"));
    folder(&d.join("imgs"));
    std::fs::write(d.join("p.toml"), PLAN).unwrap();
    let r = xai(
        d,
        &[
            "run",
            "m.safetensors",
            "--data",
            "imgs",
            "--plan",
            "p.toml",
            "--out",
            "r.json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = &r.stdout;
    let report = read_report(&d.join("r.json")).unwrap();
    super::validate_against_schema(&d.join("r.json"));
    assert_eq!(report.summary.clean_accuracy, 1.0, "{out}");

    // A colour's channel mean is 220/255, the others' 10/255; the logit
    // gap to the nearest other class, g, is 210/255 less the frog bias for
    // cat and dog images (frog is nearest) and 210/255 plus it for frog
    // images. The cheapest L∞ change moves two channels by g/2 each; the
    // cheapest L2 change spreads g/2 over each of the 32×32 pixels of both.
    let (hi, lo) = (220.0 / 255.0, 10.0 / 255.0);
    let near = hi - lo - FROG_BIAS;
    let far = hi - lo + FROG_BIAS;
    let l2 = |g: f64| (SIDE as f64) * g / 2f64.sqrt();

    // The headline: 8/255 on 32×32 RGB is RobustBench's threat model, far
    // below every gap; the `autoattack` entry is the full standard protocol.
    assert!(
        out.contains("\n  L∞ ε 0.0314 (8/255): 100.00% (9 of 9), worst case over aa, apgd-ce\n    the standard threat model: RobustBench's L∞ 8/255 for 32×32 RGB (CIFAR)\n    attacks APGD-CE, APGD-T, FAB-T, Square: AutoAttack's standard protocol (aa), with apgd-ce as well\n"),
        "{out}"
    );
    // L∞ 0.3 breaks the cat and dog images (g/2 = 0.26), not the frogs.
    assert!(near / 2.0 < 0.3 && far / 2.0 > 0.3);
    assert!(
        out.contains("\n  L∞ ε 0.3: 33.33% (3 of 9), worst case over fmn-linf\n    not a standard threat model: ε differs from RobustBench's L∞ 8/255 for 32×32 RGB (CIFAR)\n    attacks FMN only: not the AutoAttack standard protocol (it lacks APGD-CE, APGD-T, FAB-T, Square)\n"),
        "{out}"
    );
    assert!(
        out.contains("  not attacked: the standard threat model RobustBench's L2 0.5 for 32×32 RGB (CIFAR)\n"),
        "{out}"
    );

    // Minimum-norm attacks as distances: six inputs at the near gap, three
    // at the far one, so the 25th percentile and median are the near
    // distance and the 75th the far one (numpy's rule, 9 sorted values:
    // positions 2, 4 and 6).
    let fmn = |name: &str| {
        report
            .summary
            .attacks
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.distance.clone())
            .unwrap()
    };
    let close = |got: Option<f64>, want: f64, tol: f64| {
        let got = got.unwrap_or_else(|| panic!("no value, want {want}"));
        assert!((got - want).abs() <= tol * want, "{got} vs {want}");
    };
    let d2 = fmn("fmn-l2");
    assert_eq!((d2.inputs, d2.broken, d2.broken_within_eps), (9, 9, None));
    close(d2.percentile_25, l2(near), 0.02);
    close(d2.median, l2(near), 0.02);
    close(d2.percentile_75, l2(far), 0.02);
    let dinf = fmn("fmn-linf");
    assert_eq!((dinf.inputs, dinf.broken), (9, 6));
    close(dinf.percentile_25, near / 2.0, 0.02);
    close(dinf.median, near / 2.0, 0.02);
    assert_eq!(dinf.percentile_75, None, "the frogs lie beyond ε");
    assert_eq!(dinf.broken_within_eps, Some(6.0 / 9.0));
    let row: Vec<&str> = line(out, "fmn-linf ").split_whitespace().collect();
    assert_eq!(
        &row[..6],
        ["fmn-linf", "fmn", "L∞", "6", "of", "9"],
        "{row:?}"
    );
    assert_eq!(&row[8..], [">", "0.3", "66.67%", "(ε", "0.3)"], "{row:?}");
    let row: Vec<&str> = line(out, "fmn-l2 ").split_whitespace().collect();
    assert_eq!(&row[3..6], ["9", "of", "9"], "{row:?}");
    assert_eq!(&row[9..], ["-", "(no", "ε)"], "{row:?}");
    // Neither is a row of the robust-accuracy table.
    let table = &out[out.find("\nattack ").unwrap()..out.find("\nkey:").unwrap()];
    assert!(!table.contains("fmn"), "{table}");

    // Noise lands on frog, named with its index, in the table and the warning.
    assert!(
        line(out, "    uniform ").ends_with("frog (0) (100.0%) collapsed"),
        "{out}"
    );
    assert!(
        out.contains(
            "warning: noise: 100.0% of uniform noise inputs are classified as class frog (0):"
        ),
        "{out}"
    );

    // `eval`'s per-class table too.
    let e = xai(d, &["eval", "m.safetensors", "--data", "imgs"]);
    assert_eq!(e.code, 0, "{}", e.stderr);
    for class in ["frog (0)", "dog (1)", "cat (2)"] {
        let row: Vec<&str> = line(&e.stdout, &format!("  {class}"))
            .split_whitespace()
            .collect();
        assert_eq!(&row[2..], ["3", "/", "3", "100.00%"], "{}", e.stdout);
    }
}
