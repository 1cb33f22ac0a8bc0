//! The terminal UI: the app driven by key and mouse events on a ratatui
//! `TestBackend`, its buffer checked against numbers read straight from the
//! report JSON and the sidecar (not through the UI's own types), reports
//! missing sections or with other input shapes, PNG export, and the real
//! binary's errors for newer, mismatched or sidecar-less reports.

use std::path::{Path, PathBuf};

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;
use serde_json::Value;
use xai_audit::tui::image::ColorMode;
use xai_audit::tui::{run_app, App, Options, ReportData};

use super::{root, xai};

fn example() -> PathBuf {
    root().join("reports/examples/mnist_cnn-quick.json")
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The app on `report` in a `width × height` test terminal, drawn once.
struct Ui {
    terminal: Terminal<TestBackend>,
    app: App,
}

impl Ui {
    fn open(report: &Path, width: u16, height: u16, export_dir: &Path) -> Ui {
        let data = ReportData::open(report).unwrap();
        let options = Options {
            export_dir: export_dir.to_path_buf(),
            color: ColorMode::TrueColor,
        };
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        let size = terminal.size().unwrap();
        let area = ratatui::layout::Rect::new(0, 0, size.width, size.height);
        let mut app = App::new(data, options, area);
        run_app(&mut terminal, &mut app, []).unwrap();
        Ui { terminal, app }
    }

    fn example() -> Ui {
        Ui::open(&example(), 100, 30, &std::env::temp_dir())
    }

    fn send(&mut self, events: impl IntoIterator<Item = Event>) {
        run_app(&mut self.terminal, &mut self.app, events).unwrap();
    }

    fn keys(&mut self, keys: &str) {
        self.send(keys.chars().map(|c| key(KeyCode::Char(c))));
    }

    fn lines(&self) -> Vec<String> {
        let buf = self.terminal.backend().buffer();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect()
            })
            .collect()
    }

    fn text(&self) -> String {
        self.lines().join("\n")
    }

    fn assert_shows(&self, needle: &str) {
        let text = self.text();
        assert!(text.contains(needle), "screen lacks {needle:?}:\n{text}");
    }

    /// The line of the list that holds the cursor.
    fn selected_row(&self) -> String {
        self.lines()
            .into_iter()
            .find(|l| l.contains('▶'))
            .expect("a selected row")
    }
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// The list's marks for a sample, from the JSON record.
fn marks(sample: &Value) -> String {
    let correct = sample["label"] == sample["prediction"];
    sample["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| match (correct, a["success"].as_bool().unwrap()) {
            (false, _) => '·',
            (true, true) => '✗',
            (true, false) => '✓',
        })
        .collect()
}

/// The list row of a sample as the JSON has it: index, label, prediction.
fn row_prefix(sample: &Value) -> String {
    let n = |k: &str| sample[k].as_u64().unwrap();
    format!("{:>5} {:>4} {:>4}", n("index"), n("label"), n("prediction"))
}

fn top1(v: &Value) -> f64 {
    v["top5"][0]["probability"].as_f64().unwrap()
}

#[test]
fn opening_shows_the_first_input_its_prediction_and_its_marks() {
    let ui = Ui::example();
    let r = json(&example());
    let s0 = &r["samples"][0];
    let row = ui.selected_row();
    assert!(row.contains(&row_prefix(s0)), "{row}");
    assert!(row.contains(&marks(s0)), "{row} lacks {}", marks(s0));
    ui.assert_shows(&format!(
        "input 0 · label {} · predicted {}",
        s0["label"], s0["prediction"]
    ));
    // Clean and after-attack top-1 probabilities in the prediction pane.
    ui.assert_shows(&pct(top1(s0)));
    ui.assert_shows(&format!(
        "after {}",
        r["summary"]["attacks"][0]["name"].as_str().unwrap()
    ));
    ui.assert_shows(&pct(top1(&s0["attacks"][0])));
    // Every listed input's row carries its marks.
    for s in r["samples"].as_array().unwrap().iter().take(20) {
        let text = ui.text();
        let line = text
            .lines()
            .find(|l| l.contains(&row_prefix(s)))
            .unwrap_or_else(|| panic!("no row for input {}", s["index"]));
        assert!(line.contains(&marks(s)), "{line}");
    }
}

#[test]
fn keys_move_the_selection_and_cycle_attacks_and_methods() {
    let mut ui = Ui::example();
    let r = json(&example());
    let attacks: Vec<&str> = r["summary"]["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    let methods: Vec<&str> = r["summary"]["attributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    ui.keys("jjjk");
    let s2 = &r["samples"][2];
    assert!(ui.selected_row().contains(&row_prefix(s2)));
    ui.assert_shows(&format!("input 2 · label {}", s2["label"]));
    ui.send([key(KeyCode::Down)]);
    let s3 = &r["samples"][3];
    ui.assert_shows(&format!(
        "input 3 · label {} · predicted {}",
        s3["label"], s3["prediction"]
    ));

    ui.send([key(KeyCode::Tab)]);
    ui.assert_shows(&format!("attack {} 2/{}", attacks[1], attacks.len()));
    ui.assert_shows(&format!("after {}", attacks[1]));
    ui.assert_shows(&pct(top1(&s3["attacks"][1])));
    // Shift-Tab twice from the second attack wraps to the last.
    ui.send([key(KeyCode::BackTab), key(KeyCode::BackTab)]);
    ui.assert_shows(&format!("attack {}", attacks[attacks.len() - 1]));

    ui.assert_shows(&format!("method {} 1/{}", methods[0], methods.len()));
    ui.keys("a");
    ui.assert_shows(&format!("method {} 2/{}", methods[1], methods.len()));
    ui.assert_shows(&format!("{} · clean", methods[1]));
    ui.keys("A");
    ui.assert_shows(&format!("method {}", methods[0]));
}

#[test]
fn the_attribution_pane_says_which_attacks_a_method_ran_on() {
    let mut ui = Ui::example();
    // The first attack (FGSM) is not in the saliency entry's `on`.
    ui.assert_shows("saliency did not run");
    // The second (PGD L∞) is: its map is drawn, so the message is gone.
    ui.send([key(KeyCode::Tab)]);
    assert!(!ui.text().contains("did not run on"), "{}", ui.text());
}

#[test]
fn filters_keep_the_inputs_the_json_says_and_sorts_order_them() {
    let mut ui = Ui::example();
    let r = json(&example());
    let samples = r["samples"].as_array().unwrap();
    let correct = |s: &Value| s["label"] == s["prediction"];

    // f: broken by the selected (first) attack.
    ui.keys("f");
    let broken: Vec<&Value> = samples
        .iter()
        .filter(|s| correct(s) && s["attacks"][0]["success"].as_bool().unwrap())
        .collect();
    ui.assert_shows(&format!("{}/{} listed", broken.len(), samples.len()));
    assert!(ui.selected_row().contains(&row_prefix(broken[0])));
    // Tab: the filter follows the attack.
    ui.send([key(KeyCode::Tab)]);
    let broken_1 = samples
        .iter()
        .filter(|s| correct(s) && s["attacks"][1]["success"].as_bool().unwrap())
        .count();
    ui.assert_shows(&format!("{broken_1}/{} listed", samples.len()));
    // f f: misclassified before any attack.
    ui.keys("ff");
    let wrong: Vec<&Value> = samples.iter().filter(|s| !correct(s)).collect();
    ui.assert_shows(&format!("{}/{} listed", wrong.len(), samples.len()));
    assert!(ui.selected_row().contains(&row_prefix(wrong[0])));
    ui.keys("f");
    ui.assert_shows(&format!("{0}/{0} listed", samples.len()));

    // s: by confidence, least confident first.
    ui.keys("gs");
    let least = samples
        .iter()
        .min_by(|a, b| top1(a).total_cmp(&top1(b)))
        .unwrap();
    ui.keys("g");
    assert!(
        ui.selected_row().contains(&row_prefix(least)),
        "{}",
        ui.selected_row()
    );
    // r: most confident first (ties by index).
    ui.keys("rg");
    let most = samples
        .iter()
        .max_by(|a, b| {
            top1(a)
                .total_cmp(&top1(b))
                .then(b["index"].as_u64().cmp(&a["index"].as_u64()))
        })
        .unwrap();
    assert!(ui.selected_row().contains(&row_prefix(most)));

    // s ×4: past the three attack sorts (tested on their own below) to the
    // attribution shift of saliency under the selected PGD attack.
    ui.keys("ssssg");
    let shift = |s: &Value| {
        let entry = &s["attributions"][0];
        1.0 - entry["attacks"][0]["top_k_overlap"].as_f64().unwrap()
    };
    let shifted = samples
        .iter()
        .max_by(|a, b| {
            shift(a)
                .total_cmp(&shift(b))
                .then(b["index"].as_u64().cmp(&a["index"].as_u64()))
        })
        .unwrap();
    ui.assert_shows("sort: attribution shift");
    assert!(ui.selected_row().contains(&row_prefix(shifted)));

    // s: by Lie derivative (mean over transformations), largest first.
    ui.keys("sg");
    let lie = |s: &Value| {
        let v = s["equivariance"]["lie_derivative"][0]["values"]
            .as_array()
            .unwrap();
        v.iter().map(|x| x.as_f64().unwrap()).sum::<f64>() / v.len() as f64
    };
    let steepest = samples
        .iter()
        .max_by(|a, b| lie(a).total_cmp(&lie(b)))
        .unwrap();
    ui.assert_shows("sort: Lie derivative");
    assert!(ui.selected_row().contains(&row_prefix(steepest)));
}

#[test]
fn slash_jumps_to_an_index_and_says_when_there_is_none() {
    let mut ui = Ui::example();
    let r = json(&example());
    ui.keys("/42");
    ui.assert_shows("jump to input: 42");
    ui.send([key(KeyCode::Enter)]);
    let s42 = &r["samples"][42];
    assert!(ui.selected_row().contains(&row_prefix(s42)));
    ui.assert_shows(&format!("input 42 · label {}", s42["label"]));
    ui.keys("/999");
    ui.send([key(KeyCode::Enter)]);
    ui.assert_shows("no input 999 in this report (50 inputs)");
    // A filtered-out input: the filter is reset to show it.
    ui.keys("fff/0");
    ui.send([key(KeyCode::Enter)]);
    ui.assert_shows("filter: all");
    assert!(ui.selected_row().contains(&row_prefix(&r["samples"][0])));
}

#[test]
fn help_summary_and_detail_views() {
    // Tall enough for the detail view to reach the equivariance section.
    let mut ui = Ui::open(&example(), 100, 50, &std::env::temp_dir());
    let r = json(&example());
    ui.keys("?");
    ui.assert_shows(" keys ");
    ui.assert_shows("Tab  Shift-Tab");
    ui.assert_shows("export the selected input's images as PNG");
    ui.send([key(KeyCode::Esc)]);
    assert!(!ui.text().contains("Tab  Shift-Tab"));
    assert!(!ui.app.quit, "Esc closes the help before it quits");

    ui.keys("2");
    let summary = &r["summary"];
    ui.assert_shows(&format!(
        "clean accuracy {}",
        pct(summary["clean_accuracy"].as_f64().unwrap())
    ));
    for a in summary["attacks"].as_array().unwrap() {
        let line = ui
            .lines()
            .into_iter()
            .find(|l| l.contains(&format!("│  {} ", a["name"].as_str().unwrap())))
            .unwrap();
        assert!(
            line.contains(&pct(a["robust_accuracy"].as_f64().unwrap())),
            "{line}"
        );
        assert!(
            line.contains(&pct(a["attack_success_rate"].as_f64().unwrap())),
            "{line}"
        );
    }
    ui.assert_shows("sanity checks");
    ui.assert_shows("extrapolation");

    // Detail of input 3 (misclassified, so the shifts may change it).
    ui.keys("1jjj3");
    let s3 = &r["samples"][3];
    ui.assert_shows(&format!(
        "input 3 · label {} · clean prediction {}",
        s3["label"], s3["prediction"]
    ));
    let consistency = &summary["equivariance"]["consistency"][0];
    let first_transform = consistency["transforms"][0]["transform"].as_str().unwrap();
    let after = &s3["equivariance"]["consistency"][0]["predictions"][0];
    let line = ui
        .lines()
        .into_iter()
        .find(|l| l.contains(first_transform))
        .unwrap();
    assert!(
        line.contains(&format!("{} → {}", s3["prediction"], after)),
        "{line}"
    );
    // Esc goes back to browsing, a second Esc quits.
    ui.send([key(KeyCode::Esc)]);
    assert!(!ui.app.quit);
    ui.assert_shows("top-5 probabilities");
    ui.send([key(KeyCode::Esc)]);
    assert!(ui.app.quit);
}

#[test]
fn a_click_selects_the_row_under_the_pointer() {
    let mut ui = Ui::example();
    let r = json(&example());
    let target = &r["samples"][5];
    let y = ui
        .lines()
        .iter()
        .position(|l| l.contains(&row_prefix(target)))
        .unwrap() as u16;
    ui.send([Event::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 4,
        row: y,
        modifiers: KeyModifiers::NONE,
    })]);
    assert!(ui.selected_row().contains(&row_prefix(target)));
    ui.assert_shows("input 5 · label");
}

#[test]
fn moving_past_the_screen_scrolls_the_list_and_q_quits() {
    let mut ui = Ui::example();
    let r = json(&example());
    ui.send([key(KeyCode::End)]);
    let last = &r["samples"][49];
    assert!(ui.selected_row().contains(&row_prefix(last)));
    ui.send([key(KeyCode::PageUp)]);
    assert!(ui.text().contains('▶'));
    ui.keys("q");
    assert!(ui.app.quit);
}

/// The example report with its attribution, stress and equivariance
/// sections removed, with a copy of its sidecar, in `dir`.
fn stripped_example(dir: &Path) -> PathBuf {
    let mut r = json(&example());
    let summary = r["summary"].as_object_mut().unwrap();
    for k in ["attributions", "stress", "equivariance"] {
        summary.remove(k);
    }
    for s in r["samples"].as_array_mut().unwrap() {
        let s = s.as_object_mut().unwrap();
        for k in ["attributions", "stress", "equivariance"] {
            s.remove(k);
        }
    }
    let path = dir.join("bare.json");
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    std::fs::copy(
        example().with_extension("safetensors"),
        dir.join(r["tensors"].as_str().unwrap()),
    )
    .unwrap();
    path
}

#[test]
fn a_report_without_attributions_stress_or_equivariance_says_how_to_get_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = stripped_example(dir.path());
    let mut ui = Ui::open(&path, 100, 30, dir.path());
    ui.assert_shows("no attributions");
    ui.assert_shows("[[attribution]]");
    ui.keys("a2");
    ui.assert_shows("no stress tests in this report: add [[stress]] entries to the plan");
    ui.assert_shows("no equivariance checks in this report");
    ui.keys("3");
    ui.assert_shows("no attributions in this report: add [[attribution]] to the plan");
    ui.assert_shows("no stress tests in this report");
    // The sorts the report has no data for are skipped by `s`, each named
    // with the reason (index, confidence, three attack sorts, then back).
    ui.keys("1sssss");
    ui.assert_shows("sort: index");
    ui.assert_shows("skipped attribution shift (no attributions");
    ui.keys("g");
    assert!(ui
        .selected_row()
        .contains(&row_prefix(&json(&path)["samples"][0])));
}

/// A report of `n` inputs of shape `[c, h, w]` built from the example's
/// records: input 0 clean is the constant `clean`, every adversarial input 0
/// is `adv` (per channel), other inputs are zero.
fn synthetic(dir: &Path, shape: [usize; 3], clean: [f32; 3], adv: [f32; 3]) -> PathBuf {
    use candle_core::{Device, Tensor};
    let n = 4;
    let [c, h, w] = shape;
    let mut r = json(&stripped_example(dir));
    r["samples"].as_array_mut().unwrap().truncate(n);
    r["data"]["count"] = n.into();
    r["summary"]["count"] = n.into();
    r["data"]["input_shape"] = serde_json::json!(shape);
    r["tensors"] = "synthetic.safetensors".into();
    let image = |colour: [f32; 3]| -> Vec<f32> {
        let mut all = vec![0f32; n * c * h * w];
        for ch in 0..c {
            all[ch * h * w..(ch + 1) * h * w].fill(colour[ch.min(2)]);
        }
        all
    };
    let mut tensors = vec![(
        "x/clean".to_string(),
        Tensor::from_vec(image(clean), (n, c, h, w), &Device::Cpu).unwrap(),
    )];
    for a in r["summary"]["attacks"].as_array().unwrap() {
        tensors.push((
            format!("x/adv/{}", a["name"].as_str().unwrap()),
            Tensor::from_vec(image(adv), (n, c, h, w), &Device::Cpu).unwrap(),
        ));
    }
    xai_audit::report::tensors::write_tensors(&dir.join("synthetic.safetensors"), &tensors)
        .unwrap();
    let path = dir.join("synthetic.json");
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    path
}

/// Cells drawn as half blocks with this foreground colour: (count, min x).
fn cells_with(ui: &Ui, fg: Color) -> (usize, u16) {
    let buf = ui.terminal.backend().buffer();
    let mut count = 0;
    let mut min_x = u16::MAX;
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let cell = &buf[(x, y)];
            if cell.symbol() == "▀" && cell.fg == fg {
                count += 1;
                min_x = min_x.min(x);
            }
        }
    }
    (count, min_x)
}

#[test]
fn colour_inputs_of_any_size_are_drawn_in_their_colours() {
    let dir = tempfile::tempdir().unwrap();
    // RGB 5×7: orange clean, blue adversarial.
    let path = synthetic(dir.path(), [3, 5, 7], [1.0, 0.5, 0.0], [0.0, 0.0, 1.0]);
    let ui = Ui::open(&path, 100, 30, dir.path());
    let (orange, orange_x) = cells_with(&ui, Color::Rgb(255, 128, 0));
    let (blue, blue_x) = cells_with(&ui, Color::Rgb(0, 0, 255));
    assert!(orange > 0 && blue > 0, "{}", ui.text());
    assert!(orange_x < blue_x, "the clean image comes first");
    // The images are enlarged to fill their slot, aspect ratio kept: a 7×5
    // image over whole cells has twice as many pixel rows as cell rows.
    assert!(orange >= 7 * 5 / 2, "{orange} cells");
    // The perturbation is drawn too: red channel fully down (0), green down
    // (half the peak → 0.25), blue fully up (1), around mid-grey.
    let (delta, _) = cells_with(&ui, Color::Rgb(0, 64, 255));
    assert!(delta > 0, "no amplified perturbation cells");

    // A large grey input is shrunk to its slot and still drawn.
    let dir2 = tempfile::tempdir().unwrap();
    let path = synthetic(dir2.path(), [1, 120, 90], [1.0; 3], [0.0; 3]);
    let ui = Ui::open(&path, 100, 30, dir2.path());
    let (white, _) = cells_with(&ui, Color::Rgb(255, 255, 255));
    assert!(white > 0 && white < 100 * 30);
    // Bigger terminals give bigger images.
    let big = Ui::open(&path, 200, 60, dir2.path());
    assert!(cells_with(&big, Color::Rgb(255, 255, 255)).0 > white);
}

#[test]
fn small_and_odd_terminal_sizes_do_not_panic() {
    for (w, h) in [(100, 30), (60, 16), (20, 6), (1, 1), (250, 80)] {
        let mut ui = Ui::open(&example(), w, h, &std::env::temp_dir());
        ui.keys("jj?2");
        ui.keys("3");
        ui.send([Event::Resize(80, 24), key(KeyCode::Down)]);
    }
}

#[test]
fn export_writes_the_selected_inputs_pngs_with_the_sidecar_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pngs");
    let mut ui = Ui::open(&example(), 100, 30, &out);
    ui.keys("jje");
    let r = json(&example());
    let attacks = r["summary"]["attacks"].as_array().unwrap();
    // clean + (adv, delta) per attack + saliency and ig on clean and PGD L∞.
    let expected = 1 + 2 * attacks.len() + 4;
    ui.assert_shows(&format!("wrote {expected} PNG files"));
    let png = image::open(out.join("00002_clean.png")).unwrap().to_luma8();
    assert_eq!(png.dimensions(), (28, 28));
    // Pixel values straight from the sidecar file.
    let bytes = std::fs::read(example().with_extension("safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let clean = tensors.tensor("x/clean").unwrap();
    let values: Vec<f32> = clean
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let input2 = &values[2 * 784..3 * 784];
    for (i, px) in png.pixels().enumerate() {
        assert_eq!(px.0[0], (input2[i].clamp(0.0, 1.0) * 255.0).round() as u8);
    }
    for a in attacks {
        let name = a["name"].as_str().unwrap();
        assert!(out.join(format!("00002_{name}_adv.png")).is_file());
        assert!(out.join(format!("00002_{name}_delta.png")).is_file());
    }
    assert!(out.join("00002_attr_saliency_pgd-linf-0.1.png").is_file());
}

// The binary on bad reports: exit code 2, the file named, no panic.

#[test]
fn tui_refuses_a_newer_schema_version_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = json(&example());
    r["schema_version"] = 99.into();
    let path = dir.path().join("future.json");
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    xai(dir.path(), &["tui", "future.json"]).expect_error(&["future.json", "newer", "upgrade"]);
}

#[test]
fn tui_refuses_a_report_whose_sidecar_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(example(), dir.path().join("lonely.json")).unwrap();
    xai(dir.path(), &["tui", "lonely.json"])
        .expect_error(&["mnist_cnn-quick.safetensors", "not found"]);
}

#[test]
fn tui_refuses_a_sidecar_from_another_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = json(&example());
    r["samples"].as_array_mut().unwrap().truncate(10);
    r["data"]["count"] = 10.into();
    std::fs::write(
        dir.path().join("cut.json"),
        serde_json::to_string(&r).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        example().with_extension("safetensors"),
        dir.path().join("mnist_cnn-quick.safetensors"),
    )
    .unwrap();
    xai(dir.path(), &["tui", "cut.json"]).expect_error(&[
        "mnist_cnn-quick.safetensors",
        "x/clean",
        "[50, 1, 28, 28]",
        "10 inputs",
    ]);
    // A count that disagrees with the records is named too.
    r["data"]["count"] = 11.into();
    std::fs::write(
        dir.path().join("cut.json"),
        serde_json::to_string(&r).unwrap(),
    )
    .unwrap();
    xai(dir.path(), &["tui", "cut.json"]).expect_error(&["cut.json", "10 input records"]);
}

#[test]
fn tui_without_a_terminal_is_an_error_after_the_report_is_checked() {
    let r = xai(&root(), &["tui", example().to_str().unwrap()]);
    r.expect_error(&["not a terminal"]);
}

#[test]
fn run_with_tui_but_no_terminal_warns_and_still_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("assets/mnist_cnn.safetensors");
    let plan = root().join("attacks/quick.toml");
    let r = xai(
        dir.path(),
        &[
            "run",
            model.to_str().unwrap(),
            "--plan",
            plan.to_str().unwrap(),
            "--limit",
            "10",
            "--out",
            "r.json",
            "--tui",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("--tui"), "{}", r.stderr);
    assert!(dir.path().join("r.json").is_file());
    // The report it wrote opens in the UI.
    let mut ui = Ui::open(&dir.path().join("r.json"), 100, 30, dir.path());
    ui.assert_shows("10/10 listed");

    // It stores the margins and true-class probabilities the worst-first
    // sorts use, and they agree with its top-5 probabilities (the softmax
    // normaliser cancels in ln p_y − ln p_j).
    let r = json(&dir.path().join("r.json"));
    let samples = r["samples"].as_array().unwrap();
    let close = |stored: &Value, from_top5: Option<f64>| {
        let stored = stored.as_f64().expect("a stored value");
        let expected = from_top5.expect("the true class in the top-5 (10 classes, 10 inputs)");
        assert!(
            (stored - expected).abs() <= 1e-3 * expected.abs().max(1.0),
            "{stored} vs {expected}"
        );
    };
    let mut checked = 0;
    for s in samples {
        if p_true_in_top5(s, &s["top5"]).is_some() {
            close(&s["margin"], margin_in_top5(s, &s["top5"]));
            let correct = s["label"] == s["prediction"];
            assert_eq!(s["margin"].as_f64().unwrap() > 0.0, correct, "{s}");
        }
        for a in s["attacks"].as_array().unwrap() {
            if p_true_in_top5(s, &a["top5"]).is_some() {
                close(&a["true_class_probability"], p_true_in_top5(s, &a["top5"]));
                close(&a["margin"], margin_in_top5(s, &a["top5"]));
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "{checked}");
    // The margin sort orders by the stored values.
    ui.keys("ssss");
    ui.assert_shows("sort: margin drop");
    let drop = |s: &Value| Some(s["margin"].as_f64()? - s["attacks"][0]["margin"].as_f64()?);
    assert_eq!(listed(&ui), order_by(samples, drop, true));
}

#[test]
fn the_summary_shows_eps_curves_and_sanity_flags_from_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = stripped_example(dir.path());
    let mut r = json(&path);
    r["summary"]["eps_curves"] = serde_json::json!([{
        "name": "pgd-sweep", "norm": "linf",
        "points": [{"eps": 0.05, "robust_accuracy": 0.9}, {"eps": 0.2, "robust_accuracy": 0.125}]
    }]);
    r["summary"]["sanity"] = serde_json::json!([{
        "check": "zero_gradients", "message": "12% of inputs have an all-zero input gradient"
    }]);
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    let mut ui = Ui::open(&path, 100, 40, dir.path());
    ui.keys("2");
    ui.assert_shows("robust accuracy against ε: pgd-sweep (linf)");
    let line = ui
        .lines()
        .into_iter()
        .find(|l| l.contains("ε 0.2 "))
        .unwrap();
    assert!(line.contains("12.5%"), "{line}");
    ui.assert_shows("⚠ zero_gradients: 12% of inputs have an all-zero input gradient");
}

#[test]
fn the_summary_names_the_class_a_noise_family_collapses_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = stripped_example(dir.path());
    let mut r = json(&path);
    let names = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    r["model"]["class_names"] = serde_json::json!(names);
    r["summary"]["stress"] = serde_json::json!({"noise": [{
        "name": "ood-noise", "data_mmc": 0.97,
        "families": [{
            "family": "uniform", "count": 40, "mmc": 0.91, "share_above_0_95": 0.5,
            "share_above_0_99": 0.25, "auroc": 0.8, "fpr_at_95_tpr": 0.6,
            "class_histogram": [0, 0, 0, 0, 0, 0, 0, 0, 36, 4], "top_class": 8,
            "top_class_share": 0.9, "collapsed": true, "examples": []
        }]
    }]});
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    let mut ui = Ui::open(&path, 110, 40, dir.path());
    ui.keys("2");
    let line = ui
        .lines()
        .into_iter()
        .find(|l| l.contains("uniform"))
        .unwrap();
    assert!(line.contains("eight (8) (90.0%) collapsed"), "{line}");
}

// The worst-first sorts: true class after the attack, perturbation norm,
// margin drop; the sorts a report has no data for; class names.

/// Input positions in the order a sort puts them: by `value`, ascending or
/// `descending`, ties in data order; inputs without a value last, in data
/// order.
fn order_by(
    samples: &[Value],
    value: impl Fn(&Value) -> Option<f64>,
    descending: bool,
) -> Vec<usize> {
    let mut valued: Vec<(usize, f64)> = Vec::new();
    let mut rest = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        match value(s) {
            Some(v) => valued.push((i, v)),
            None => rest.push(i),
        }
    }
    valued.sort_by(|a, b| {
        let by_value = a.1.partial_cmp(&b.1).unwrap();
        let by_value = if descending {
            by_value.reverse()
        } else {
            by_value
        };
        by_value.then(a.0.cmp(&b.0))
    });
    valued.into_iter().map(|(i, _)| i).chain(rest).collect()
}

/// The input indices of the list rows on screen, top to bottom.
fn listed(ui: &Ui) -> Vec<usize> {
    ui.lines()
        .iter()
        .filter_map(|l| {
            let cells: Vec<char> = l.chars().collect();
            if cells.first() != Some(&'│') {
                return None;
            }
            let index: String = cells.get(2..7)?.iter().collect();
            index.trim().parse().ok()
        })
        .collect()
}

/// The probability of the true class in a top-5 list of the JSON.
fn p_true_in_top5(sample: &Value, top5: &Value) -> Option<f64> {
    top5.as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == sample["label"])
        .map(|c| c["probability"].as_f64().unwrap())
}

/// `ln p_y − ln max_{j≠y} p_j` from a top-5 list of the JSON: the logit
/// margin, since the softmax normaliser cancels.
fn margin_in_top5(sample: &Value, top5: &Value) -> Option<f64> {
    let p_true = p_true_in_top5(sample, top5)?;
    let p_other = top5
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["class"] != sample["label"])
        .map(|c| c["probability"].as_f64().unwrap())
        .fold(0.0, f64::max);
    Some(p_true.ln() - p_other.ln())
}

#[test]
fn worst_first_sorts_order_an_old_report_by_its_top5_probabilities() {
    // Tall enough for all 50 inputs to be listed at once.
    let mut ui = Ui::open(&example(), 100, 60, &std::env::temp_dir());
    let r = json(&example());
    assert_eq!(
        r["schema_version"], 1,
        "no stored margins: the top-5 is used"
    );
    let samples = r["samples"].as_array().unwrap();
    let correct = |s: &Value| s["label"] == s["prediction"];
    let p_true = |k: usize| move |s: &Value| p_true_in_top5(s, &s["attacks"][k]["top5"]);

    // s s: true class after the selected (first) attack, lowest first.
    ui.keys("ss");
    ui.assert_shows("sort: true class after attack ↑");
    assert_eq!(listed(&ui), order_by(samples, p_true(0), false));
    let worst = p_true(0)(&samples[order_by(samples, p_true(0), false)[0]]).unwrap();
    ui.keys("g");
    // Below 10% with one decimal.
    let shown = if worst < 0.095 {
        format!("{:.1}%", 100.0 * worst)
    } else {
        format!("{:.0}%", 100.0 * worst)
    };
    assert!(ui.selected_row().contains(&shown), "{}", ui.selected_row());
    // The order follows the attack.
    ui.send([key(KeyCode::Tab)]);
    assert_eq!(listed(&ui), order_by(samples, p_true(1), false));

    // s: the PGD L∞ attack's breaks by ‖δ‖∞, smallest first, then the rest.
    ui.keys("s");
    ui.assert_shows("sort: perturbation norm ↑");
    ui.assert_shows("‖δ‖∞");
    let norm = |k: usize, field: &'static str| {
        move |s: &Value| {
            let a = &s["attacks"][k];
            (correct(s) && a["success"].as_bool().unwrap()).then(|| a[field].as_f64().unwrap())
        }
    };
    assert_eq!(
        listed(&ui),
        order_by(samples, norm(1, "perturbation_linf"), false)
    );
    // The L2 attack is sorted by its own norm.
    ui.send([key(KeyCode::Tab)]);
    ui.assert_shows("‖δ‖₂");
    let by_l2 = order_by(samples, norm(2, "perturbation_l2"), false);
    assert_eq!(listed(&ui), by_l2);
    ui.keys("g");
    let cheapest = samples[by_l2[0]]["attacks"][2]["perturbation_l2"]
        .as_f64()
        .unwrap();
    assert!(ui.selected_row().contains(&format!("{cheapest:.3}")));

    // s: margin drop under the L2 attack, largest first; r reverses it.
    ui.keys("s");
    ui.assert_shows("sort: margin drop ↓");
    let drop = |s: &Value| {
        Some(margin_in_top5(s, &s["top5"])? - margin_in_top5(s, &s["attacks"][2]["top5"])?)
    };
    assert!(samples.iter().all(|s| drop(s).is_some()));
    assert_eq!(listed(&ui), order_by(samples, drop, true));
    ui.keys("r");
    ui.assert_shows("sort: margin drop ↑");
    assert_eq!(listed(&ui), order_by(samples, drop, false));
}

/// A four-input report (all classified correctly) with format 5's stored
/// values, chosen so that the top-5 alone could not give them: no top-5
/// after the attack holds the true class.
fn crafted(dir: &Path) -> PathBuf {
    let path = synthetic(dir, [1, 28, 28], [0.5; 3], [0.25; 3]);
    let mut r = json(&path);
    r["schema_version"] = 5.into();
    let p_true = [0.30, 0.05, 0.90, 0.20];
    let clean_margin = [4.0, 2.5, 3.5, 6.0];
    let attack_margin = [1.0, -2.0, 3.0, -0.5];
    let success = [true, true, false, true];
    let linf = [0.05, 0.2, 0.01, 0.1];
    for (i, s) in r["samples"].as_array_mut().unwrap().iter_mut().enumerate() {
        let label = s["label"].as_u64().unwrap();
        s["prediction"] = label.into();
        s["top5"][0]["class"] = label.into();
        s["top5"][1]["class"] = ((label + 1) % 10).into();
        s["margin"] = clean_margin[i].into();
        // Every other class than the true one, in the attack's top-5.
        let others: Vec<Value> = (0..10u64)
            .filter(|&c| c != label)
            .take(5)
            .map(|c| serde_json::json!({"class": c, "probability": 0.1}))
            .collect();
        for (k, a) in s["attacks"].as_array_mut().unwrap().iter_mut().enumerate() {
            a["top5"] = others.clone().into();
            a["prediction"] = others[0]["class"].clone();
            a["success"] = (k == 0 && success[i]).into();
            a["true_class_probability"] = p_true[i].into();
            a["margin"] = attack_margin[i].into();
            a["perturbation_linf"] = linf[i].into();
        }
    }
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    path
}

#[test]
fn worst_first_sorts_use_the_stored_probabilities_and_margins() {
    let dir = tempfile::tempdir().unwrap();
    let path = crafted(dir.path());
    let mut ui = Ui::open(&path, 100, 30, dir.path());
    ui.keys("ss");
    ui.assert_shows("sort: true class after attack");
    // p(y) 0.05 < 0.20 < 0.30 < 0.90.
    assert_eq!(listed(&ui), [1, 3, 0, 2]);
    ui.keys("g");
    assert!(ui.selected_row().contains("5.0%"), "{}", ui.selected_row());
    ui.keys("s");
    // Broken: 0 (0.05), 3 (0.1), 1 (0.2); input 2, the smallest δ, was not
    // broken, so it comes last.
    assert_eq!(listed(&ui), [0, 3, 1, 2]);
    ui.keys("s");
    // Drops: 3.0, 4.5, 0.5, 6.5.
    assert_eq!(listed(&ui), [3, 1, 0, 2]);
    ui.assert_shows(" 6.500 ");
    // The detail view shows the stored margin and probability.
    ui.keys("g3");
    ui.assert_shows("margin 6.000");
    let line = ui
        .lines()
        .into_iter()
        .find(|l| l.contains("✗ fgsm-linf-0.1"))
        .unwrap();
    assert!(line.contains("20.0%") && line.contains("-0.500"), "{line}");
}

#[test]
fn sorts_without_data_are_skipped_and_say_why() {
    // A report without attacks: every attack sort is skipped, by name.
    let dir = tempfile::tempdir().unwrap();
    let path = stripped_example(dir.path());
    let mut r = json(&path);
    r["summary"]["attacks"] = serde_json::json!([]);
    r["summary"]["eps_curves"] = serde_json::json!([]);
    for s in r["samples"].as_array_mut().unwrap() {
        s["attacks"] = serde_json::json!([]);
    }
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    let mut ui = Ui::open(&path, 250, 40, dir.path());
    ui.keys("ss");
    ui.assert_shows("sort: index");
    let no_attacks = "no attacks in this report: add [[attack]] entries to the plan";
    let skipped = format!(
        "skipped true class after attack, perturbation norm, margin drop ({no_attacks}); \
         attribution shift (no attributions in this report: add [[attribution]] to the plan); \
         Lie derivative (no Lie derivatives in this report"
    );
    ui.assert_shows(&skipped[..150]);
    assert!(
        ui.app.status.as_ref().unwrap().starts_with(&skipped),
        "{:?}",
        ui.app.status
    );
    // The help overlay greys them, the reason under each.
    ui.keys("?");
    let lines = ui.lines();
    let buf = ui.terminal.backend().buffer().clone();
    // The sort's name in the help's sort table: its row and column.
    let find = |key: &str| -> (usize, u16) {
        let needle = format!("│ {key}  ");
        let y = lines.iter().position(|l| l.contains(&needle)).unwrap();
        let x = lines[y][..lines[y].find(&needle).unwrap()].chars().count() + 2;
        (y, x as u16)
    };
    for key in [
        "true class after attack",
        "perturbation norm",
        "margin drop",
    ] {
        let (y, x) = find(key);
        assert_eq!(buf[(x, y as u16)].fg, Color::DarkGray, "{key} is greyed");
        assert!(
            lines[y + 1].contains(&format!("↳ unavailable: {no_attacks}")),
            "{}",
            lines[y + 1]
        );
    }
    ui.assert_shows(
        "↳ unavailable: no Lie derivatives in this report: add [[equivariance]] with \
         kind = \"lie_derivative\" to the plan",
    );
    let (y, x) = find("confidence");
    assert_ne!(buf[(x, y as u16)].fg, Color::DarkGray);
    assert!(!lines[y + 1].contains("unavailable"), "{}", lines[y + 1]);

    // An old report whose top-5 after the attack lacks the true class: the
    // true-class and margin sorts need a rerun; the norm sort works.
    let dir = tempfile::tempdir().unwrap();
    let path = crafted(dir.path());
    let mut r = json(&path);
    r["schema_version"] = 1.into();
    for s in r["samples"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("margin");
        for a in s["attacks"].as_array_mut().unwrap() {
            let a = a.as_object_mut().unwrap();
            a.remove("margin");
            a.remove("true_class_probability");
        }
    }
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    let mut ui = Ui::open(&path, 250, 30, dir.path());
    ui.keys("ss");
    ui.assert_shows("sort: perturbation norm");
    let skipped = "skipped true class after attack (the true class of 4 inputs is not among \
                   the top-5 stored after fgsm-linf-0.1, and this report (format version 1) \
                   predates per-input true-class probabilities: rerun the audit)";
    ui.assert_shows(&skipped[..150]);
    assert_eq!(ui.app.status.as_deref(), Some(skipped));
    ui.keys("s");
    ui.assert_shows("skipped margin drop (4 inputs have no logit margin");

    // A sort left without data by a change of attack says so and keeps data
    // order: the second attack broke nothing.
    let mut ui = Ui::open(&crafted(dir.path()), 150, 30, dir.path());
    ui.keys("sss");
    ui.assert_shows("sort: perturbation norm");
    ui.send([key(KeyCode::Tab)]);
    ui.assert_shows("no data to sort by: pgd-linf-0.1 broke no input");
    assert_eq!(listed(&ui), [0, 1, 2, 3]);
}

#[test]
fn class_names_replace_numbers_in_the_list_and_panes() {
    let dir = tempfile::tempdir().unwrap();
    let path = stripped_example(dir.path());
    let mut r = json(&path);
    let names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "tractor-trailer",
    ];
    r["model"]["class_names"] = serde_json::json!(names);
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    let name = |v: &Value| names[v.as_u64().unwrap() as usize];
    let mut ui = Ui::open(&path, 120, 40, dir.path());
    // Input 3 is misclassified: label and prediction differ.
    let s3 = &r["samples"][3];
    ui.keys("jjj");
    // Names are right-aligned to the longest name, cut at ten columns.
    let cut = |n: &str| {
        if n.chars().count() > 10 {
            format!("{}…", n.chars().take(9).collect::<String>())
        } else {
            n.to_string()
        }
    };
    let row = ui.selected_row();
    assert!(
        row.contains(&format!(
            "    3 {:>10} {:>10}",
            cut(name(&s3["label"])),
            cut(name(&s3["prediction"]))
        )),
        "{row}"
    );
    ui.assert_shows(&format!(
        "input 3 · label {} · predicted {}",
        name(&s3["label"]),
        name(&s3["prediction"])
    ));
    // The prediction pane names the top class after the attack.
    let after = &s3["attacks"][0]["top5"][0]["class"];
    let line = ui
        .lines()
        .into_iter()
        .find(|l| l.contains(&pct(top1(&s3["attacks"][0]))))
        .unwrap();
    assert!(line.contains(&cut(name(after))[..4]), "{line}");
    // A name longer than the column is cut with an ellipsis.
    let nine = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s["label"] == 9)
        .expect("an input of class 9");
    ui.keys(&format!("/{nine}"));
    ui.send([key(KeyCode::Enter)]);
    assert!(
        ui.selected_row().contains("tractor-t…"),
        "{}",
        ui.selected_row()
    );
    // The detail view names both.
    ui.keys("/3");
    ui.send([key(KeyCode::Enter)]);
    ui.keys("3");
    ui.assert_shows(&format!(
        "label {} · clean prediction {}",
        name(&s3["label"]),
        name(&s3["prediction"])
    ));
}

/// A user saw `0.03137254901960784` in the summary's ε column, and an FMN
/// entry as "robust 0.0% / success 100.0%" where `run` prints distances:
/// the summary writes ε as `run` does and shows minimum-norm attacks as
/// `run`'s distance table.
#[test]
fn the_summary_writes_eps_and_minimum_norm_attacks_as_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = stripped_example(dir.path());
    let mut r = json(&path);
    let attacks = r["summary"]["attacks"].as_array_mut().unwrap();
    attacks[0]["eps"] = serde_json::json!(8.0 / 255.0);
    attacks[2]["kind"] = serde_json::json!("fmn");
    attacks[2]["eps"] = Value::Null;
    attacks[2]["distance"] = serde_json::json!({
        "inputs": 49, "broken": 49, "percentile_25": 0.75, "median": 1.25,
        "percentile_75": 1.875, "broken_within_eps": null
    });
    std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
    let mut ui = Ui::open(&path, 160, 60, dir.path());
    ui.keys("2");
    let fgsm = ui
        .lines()
        .into_iter()
        .find(|l| l.contains("│  fgsm-linf-0.1 "))
        .unwrap();
    assert!(fgsm.contains("0.0314 (8/255)"), "{fgsm}");
    assert!(!ui.text().contains("0.0313725"));
    ui.assert_shows("minimum-norm attacks: distance to the decision boundary");
    let fmn = ui
        .lines()
        .into_iter()
        .find(|l| l.contains("pgd-l2-1.5 ") && l.contains("fmn"))
        .unwrap();
    for needle in ["49 of 49", "0.7500", "1.2500", "1.8750", "- (no ε)"] {
        assert!(fmn.contains(needle), "{needle}: {fmn}");
    }
    assert!(!fmn.contains('%'), "no robust accuracy for FMN: {fmn}");
}

/// A user read `flip  change expected, consistency 100.0%` with no reason:
/// the summary's key says what "change expected" means, the same text as
/// `run` prints (one formatting, in `stress::report`).
#[test]
fn the_summary_explains_change_expected_as_run_does() {
    let mut ui = Ui::open(&example(), 220, 200, &std::env::temp_dir());
    ui.keys("2");
    let report = xai_audit::report::io::read_report(&example()).unwrap();
    let cli = xai_audit::audit::text::summary_table(&report);
    let key = cli
        .lines()
        .find(|l| l.contains("change expected  "))
        .expect("run's summary explains change expected");
    assert!(key.contains("should NOT be invariant"), "{key}");
    assert!(key.contains("ignores a change it should notice"), "{key}");
    ui.assert_shows(key.trim());
}

/// A report of every method the build knows, each with the cascading and
/// random-logit sanity checks on the first two of three inputs, and the
/// `--save-images` folder beside it.
fn every_method_report(dir: &Path) -> (PathBuf, PathBuf) {
    let mut plan = String::from("seed = 0\n");
    for m in xai_audit::attribution::METHODS {
        plan.push_str(&format!(
            "\n[[attribution]]\nname = \"{m}\"\nmethod = \"{m}\"\nmetrics = []\nsanity = [\"cascading\", \"random_logit\"]\nsanity_inputs = 2\n"
        ));
        plan.push_str(match *m {
            "integrated_gradients" => "steps = 8\n",
            "kernel_shap" | "lime" => "samples = 40\n",
            "smoothgrad" => "samples = 3\n",
            "deeplift_shap" => "baseline_samples = 2\n",
            _ => "",
        });
    }
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    let model = root().join("assets/mnist_cnn.safetensors");
    let r = xai(
        dir,
        &[
            "run",
            model.to_str().unwrap(),
            "--plan",
            "plan.toml",
            "--limit",
            "3",
            "--out",
            "every.json",
            "--save-images",
            "img",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    (dir.join("every.json"), dir.join("img"))
}

/// Cycling with `a` visits every method of a report of all of them, once
/// each, and back to the first; the detail view shows, for the selected
/// input and method, its own sanity numbers from the JSON (each cascade
/// step and the random-logit test) or says the input was not checked; the
/// summary the per-method means and the warning; `--save-images` wrote a
/// heatmap per method and input.
#[test]
fn the_detail_view_shows_each_methods_sanity_checks_for_the_selected_input() {
    let dir = tempfile::tempdir().unwrap();
    let (report, images) = every_method_report(dir.path());
    let r = json(&report);
    let entries = r["summary"]["attributions"].as_array().unwrap();
    let mut methods: Vec<&str> = entries
        .iter()
        .map(|e| e["method"].as_str().unwrap())
        .collect();
    methods.sort_unstable();
    let mut known = xai_audit::attribution::METHODS.to_vec();
    known.sort_unstable();
    assert_eq!(methods, known, "the report has every method");
    let n = entries.len();
    let r3 = |v: &Value| v.as_f64().map_or("-".to_string(), |v| format!("{v:.3}"));

    let mut ui = Ui::open(&report, 120, 90, dir.path());
    ui.keys("j3");
    let mut visited = Vec::new();
    for k in 0..=n {
        let e = &entries[k % n];
        let name = e["name"].as_str().unwrap();
        ui.assert_shows(&format!("sanity checks · {name}"));
        ui.assert_shows(&format!("method {}/{n}", k % n + 1));
        let mine = &e["sanity"]["per_input"][1];
        let logit = &mine["random_logit"];
        let line = ui
            .lines()
            .into_iter()
            .find(|l| l.contains("a random other class"))
            .unwrap_or_else(|| panic!("{name}: no random-logit line"));
        assert!(
            line.contains(&format!(
                "{:>7} {:>7} {:>6}",
                r3(&logit["spearman_abs"]),
                r3(&logit["spearman"]),
                r3(&logit["ssim"])
            )),
            "{name}: {line} vs {logit}"
        );
        // Each cascade step, this input's numbers, by layer.
        let steps = e["sanity"]["cascading"].as_array().unwrap();
        assert!(!steps.is_empty());
        for (step, s) in steps.iter().zip(mine["cascading"].as_array().unwrap()) {
            let layer = format!("layer {}", step["layer"].as_str().unwrap());
            let line = ui
                .lines()
                .into_iter()
                .find(|l| l.contains(&layer))
                .unwrap_or_else(|| panic!("{name}: no line for {layer}"));
            assert!(
                line.contains(&format!(
                    "{:>7} {:>7}",
                    r3(&s["spearman_abs"]),
                    r3(&s["spearman"])
                )),
                "{name} {layer}: {line} vs {s}"
            );
        }
        if k < n {
            visited.push(name.to_string());
        } else {
            assert_eq!(name, visited[0], "cycling wraps to the first method");
        }
        ui.keys("a");
    }
    visited.sort();
    visited.dedup();
    assert_eq!(visited.len(), n, "every method visited once");

    // The third input was not checked (sanity_inputs = 2).
    ui.keys("1j3");
    ui.assert_shows("checked on the first 2 inputs (sanity_inputs); this is input 3");

    // The summary: a line per method and the flag for those that survive.
    ui.keys("2");
    let text = {
        let mut all = String::new();
        for _ in 0..12 {
            all.push_str(&ui.text());
            ui.send([key(KeyCode::PageDown)]);
        }
        all
    };
    for e in entries {
        let name = e["name"].as_str().unwrap();
        assert!(
            text.contains(&format!("{name:<16} all ")),
            "summary lacks {name}'s cascade line"
        );
    }
    let flagged = entries
        .iter()
        .filter(|e| e["sanity"]["survives_randomization"] == true)
        .count();
    assert!(flagged > 0, "deeplift's |map| survives on MNIST");
    assert!(text.contains("attribution_survives_randomization"));

    for i in 0..3 {
        for e in entries {
            let png = images.join(format!(
                "{i:05}_attr_{}_clean.png",
                e["name"].as_str().unwrap()
            ));
            assert!(png.exists(), "{} missing", png.display());
        }
    }
}
