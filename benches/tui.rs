//! Terminal UI timings: opening a report (read and check the JSON, index the
//! sidecar, decode the first input, first draw) and the response to each key
//! (the update, any decoding it triggers, and the redraw into a 100×30
//! `TestBackend` — what a terminal adds on top is writing the changed cells).
//!
//! The report is `$XAI_AUDIT_TUI_REPORT` when set (e.g. a default run on the
//! 1,000 shipped digits), else a 1,000-input report made from the shipped
//! example by repeating its 50 records and their tensors 20 times.
//!
//! ```sh
//! cargo bench --bench tui
//! XAI_AUDIT_TUI_REPORT=reports/mnist_cnn.json cargo bench --bench tui
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::Terminal;
use serde_json::Value;
use xai_audit::tui::event::Message;
use xai_audit::tui::image::ColorMode;
use xai_audit::tui::{App, Options, ReportData};

const INPUTS: usize = 1000;

/// The example report repeated to `INPUTS` inputs, written into `dir`.
fn thousand_input_report(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/examples");
    let text = std::fs::read_to_string(root.join("mnist_cnn-quick.json")).unwrap();
    let mut report: Value = serde_json::from_str(&text).unwrap();
    let samples = report["samples"].as_array().unwrap().clone();
    let copies = INPUTS / samples.len();
    let mut all = Vec::with_capacity(INPUTS);
    for _ in 0..copies {
        for s in &samples {
            let mut s = s.clone();
            s["index"] = all.len().into();
            all.push(s);
        }
    }
    report["samples"] = Value::Array(all);
    report["data"]["count"] = INPUTS.into();
    report["summary"]["count"] = INPUTS.into();
    report["tensors"] = "bench.safetensors".into();
    std::fs::write(
        dir.join("bench.json"),
        serde_json::to_string(&report).unwrap(),
    )
    .unwrap();

    let bytes = std::fs::read(root.join("mnist_cnn-quick.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut repeated: Vec<(String, Vec<u8>, Vec<usize>, safetensors::Dtype)> = Vec::new();
    for (name, view) in tensors.iter() {
        let mut shape = view.shape().to_vec();
        let per_input = name.starts_with("x/") || name.starts_with("attr");
        let data = if per_input && shape.first() == Some(&samples.len()) {
            shape[0] = INPUTS;
            view.data().repeat(copies)
        } else {
            view.data().to_vec()
        };
        repeated.push((name.to_string(), data, shape, view.dtype()));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = repeated
        .iter()
        .map(|(name, data, shape, dtype)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap();
            (name.clone(), view)
        })
        .collect();
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(dir.join("bench.safetensors"), out).unwrap();
    dir.join("bench.json")
}

fn open(path: &Path, export_dir: &Path, width: u16, height: u16) -> (Terminal<TestBackend>, App) {
    let data = ReportData::open(path).unwrap();
    let options = Options {
        export_dir: export_dir.to_path_buf(),
        color: ColorMode::TrueColor,
    };
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let app = App::new(data, options, Rect::new(0, 0, width, height));
    terminal.draw(|f| f.render_widget(&app, f.area())).unwrap();
    (terminal, app)
}

fn press(terminal: &mut Terminal<TestBackend>, app: &mut App, event: &Event) {
    app.handle_event(event);
    terminal.draw(|f| f.render_widget(&*app, f.area())).unwrap();
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = match std::env::var_os("XAI_AUDIT_TUI_REPORT") {
        Some(p) => PathBuf::from(p),
        None => thousand_input_report(dir.path()),
    };
    let export_dir = dir.path().join("export");
    let inputs = ReportData::open(&path).unwrap().report.samples.len();
    eprintln!("report {} ({inputs} inputs)", path.display());

    let mut group = c.benchmark_group("tui_open");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function(format!("open_{inputs}_inputs"), |b| {
        b.iter(|| black_box(open(&path, &export_dir, 100, 30)))
    });
    group.finish();

    let mut group = c.benchmark_group("tui_key_100x30");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(4));
    let (mut terminal, mut app) = open(&path, &export_dir, 100, 30);
    // Each press changes the state (a new input, attack, method, list or
    // screen), so every iteration decodes and draws what a user would see.
    let cases: Vec<(&str, Vec<Event>)> = vec![
        ("j (next input)", vec![key(KeyCode::Char('j'))]),
        ("k (previous input)", vec![key(KeyCode::Char('k'))]),
        ("PageDown", vec![key(KeyCode::PageDown)]),
        ("Tab (next attack)", vec![key(KeyCode::Tab)]),
        ("BackTab (previous attack)", vec![key(KeyCode::BackTab)]),
        ("a (next method)", vec![key(KeyCode::Char('a'))]),
        ("f (next filter)", vec![key(KeyCode::Char('f'))]),
        ("s (next sort)", vec![key(KeyCode::Char('s'))]),
        ("r (reverse sort)", vec![key(KeyCode::Char('r'))]),
        ("? (help, twice)", vec![key(KeyCode::Char('?')); 2]),
        (
            "2 1 (summary and back)",
            vec![key(KeyCode::Char('2')), key(KeyCode::Char('1'))],
        ),
        (
            "3 1 (detail and back)",
            vec![key(KeyCode::Char('3')), key(KeyCode::Char('1'))],
        ),
        (
            "/ 5 0 0 Enter (jump)",
            vec![
                key(KeyCode::Char('/')),
                key(KeyCode::Char('5')),
                key(KeyCode::Char('0')),
                key(KeyCode::Char('0')),
                key(KeyCode::Enter),
            ],
        ),
        ("e (export PNGs)", vec![key(KeyCode::Char('e'))]),
    ];
    for (name, events) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| {
                for e in events {
                    press(&mut terminal, &mut app, e);
                }
                // Stay inside the list: wrap around at either end.
                if app.cursor + 1 >= app.rows.len() {
                    app.update(Message::Home);
                } else if app.cursor == 0 {
                    app.update(Message::End);
                }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("tui_key_200x60");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(4));
    let (mut terminal, mut app) = open(&path, &export_dir, 200, 60);
    group.bench_function("j (next input)", |b| {
        b.iter(|| {
            press(&mut terminal, &mut app, &key(KeyCode::Char('j')));
            if app.cursor + 1 >= app.rows.len() {
                app.update(Message::Home);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
