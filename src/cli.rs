//! Command-line types (clap), and the words the command line uses for the
//! library's options and remedies (its flags). No I/O happens here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use xai_audit::error::{Opt, Remedy, Wording};

/// Audit a trained neural network: robustness, attributions, extrapolation, equivariance.
#[derive(Debug, Parser)]
#[command(name = "xai-audit", version, about, after_help = examples(TOP_EXAMPLES))]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare two reports of the same data: clean and robust accuracy, stress
    /// and equivariance headlines, and the inputs whose verdict flipped. Exit
    /// code 1 when a figure got worse by more than --threshold.
    #[command(after_help = examples(DIFF_EXAMPLES))]
    Diff {
        /// The earlier report (.json).
        old: PathBuf,
        /// The later report (.json).
        new: PathBuf,
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
        /// Percentage points a figure may worsen before it is a regression.
        #[arg(long, value_name = "PP", default_value_t = 1.0)]
        threshold: f64,
        /// Also write the comparison as a self-contained HTML page (default:
        /// NEW's path with .diff.html): figures side by side with their
        /// changes, and the flipped inputs with thumbnails.
        #[arg(long, value_name = "FILE", num_args = 0..=1)]
        html: Option<Option<PathBuf>>,
        /// Inputs drawn per flip gallery on the page, lowest index first (0:
        /// none).
        #[arg(long, value_name = "N", default_value_t = 6, requires = "html")]
        gallery: usize,
        /// Also write each of the page's charts here as SVG and PNG.
        #[arg(long, value_name = "DIR", requires = "html")]
        plots: Option<PathBuf>,
    },
    /// Write a model (.onnx, or .safetensors with any spec) as one
    /// self-describing .safetensors file: its weights, with its version-2
    /// spec embedded in the metadata.
    #[command(after_help = examples(CONVERT_EXAMPLES))]
    Convert {
        /// The model (.safetensors or .onnx).
        model: PathBuf,
        /// The .safetensors file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        model_args: ModelArgs,
    },
    /// Show a model file's tensors and its resolved layers (without a spec:
    /// the tensors and a skeleton spec to edit).
    #[command(after_help = examples(INSPECT_EXAMPLES))]
    Inspect {
        /// The model (.safetensors or .onnx).
        model: PathBuf,
        #[command(flatten)]
        model_args: ModelArgs,
        /// Print the resolved spec as version-2 JSON instead (a version-1
        /// spec translated, an ONNX graph imported).
        #[arg(long)]
        spec: bool,
    },
    /// Clean accuracy of a model on a dataset, overall and per class.
    #[command(after_help = examples(EVAL_EXAMPLES))]
    Eval {
        /// The model (.safetensors or .onnx).
        model: PathBuf,
        #[command(flatten)]
        model_args: ModelArgs,
        #[command(flatten)]
        data: DataArgs,
        /// Resize images whose size differs from the model's input.
        #[arg(long)]
        resize: bool,
        /// Use only N inputs: the first N of an IDX, array or CIFAR file; of
        /// an image folder, a class-stratified N (every class in proportion).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Inputs per forward pass.
        #[arg(long, value_name = "B", default_value_t = 100)]
        batch_size: usize,
        /// Which implementation runs the model: the fast engine when it supports
        /// every layer (auto), the fast engine or an error (fast), or candle
        /// autograd (reference).
        #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
        engine: EngineArg,
    },
    /// Audit a model: clean accuracy and robustness to each attack of a plan,
    /// written to a versioned JSON report and a tensor sidecar.
    #[command(after_help = examples(RUN_EXAMPLES))]
    Run(RunArgs),
    /// Combine the shard files of `run --shard K/N` (or `--shard auto`) runs
    /// into the report one run would have written (give the model, data,
    /// plan and options the shards were run with). It waits for none: every
    /// shard must be there, each once, of this job and finished, or the
    /// error names the shards missing, doubled or foreign by index. It reruns
    /// the clean pass, stress, equivariance and attributions, so it needs
    /// the model, the data and CPUs.
    #[command(after_help = examples(MERGE_EXAMPLES))]
    Merge {
        /// The job's arguments, as given to each shard.
        #[command(flatten)]
        job: JobArgs,
        /// The shard files (`<out>.shard-K-of-N`), directories holding them
        /// (every `*.shard-K-of-N` file in each), or quoted glob patterns
        /// (`'out/r.json.shard-*'`): all N shards.
        #[arg(required = true, num_args = 1.., value_name = "SHARDS")]
        shards: Vec<PathBuf>,
    },
    /// Browse a report in the terminal: inputs, attacks, attributions,
    /// stress and equivariance results (reads the report and its tensor
    /// sidecar; no model needed).
    #[command(after_help = examples(TUI_EXAMPLES))]
    Tui {
        /// The report (.json); its .safetensors sidecar must be beside it.
        report: PathBuf,
        /// Where `e` writes PNGs (default: <report stem>-export/ beside the report).
        #[arg(long, value_name = "DIR")]
        export_dir: Option<PathBuf>,
    },
    /// Write a report as one self-contained HTML page (charts with their
    /// numbers beside them; no script, no network) for reviews and model
    /// cards.
    #[command(after_help = examples(HTML_EXAMPLES))]
    Html {
        /// The report (.json).
        report: PathBuf,
        /// The page to write (default: the report's path with .html).
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// A CI gate to show as a badge, e.g. "robust_accuracy.pgd-linf-0.1
        /// >= 0.8" (repeatable; beside the plan's [gates]).
        #[arg(long = "gate", value_name = "EXPR")]
        gates: Vec<String>,
        /// Also write each chart here as SVG and PNG, for papers and slides.
        #[arg(long, value_name = "DIR")]
        plots: Option<PathBuf>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Print the JSON Schema of the report (as in reports/schema.json), or
    /// with --plan of a plan file (as in attacks/plan.schema.json).
    #[command(after_help = examples(SCHEMA_EXAMPLES))]
    Schema {
        /// The schema of a plan file instead of a report.
        #[arg(long, value_name = "FILE")]
        plan: bool,
    },
    /// List every kind a plan entry can have (attacks, attribution methods,
    /// stress and equivariance checks) with its keys, the values they take
    /// and their defaults, generated from the plan's schema.
    #[command(after_help = examples(KINDS_EXAMPLES))]
    Kinds {
        /// Only this section (attack, attribution, stress, equivariance) or
        /// kind (e.g. pgd, grad_cam).
        name: Option<String>,
    },
    /// Measure PGD-40 L∞ throughput (images/second) on a model, with the
    /// hot path's GFLOP/s against the machine's SGEMM peak and the peak RSS,
    /// or with --attributions the cost per input of each attribution method.
    #[command(after_help = examples(BENCH_EXAMPLES))]
    Bench {
        /// The model (.safetensors or .onnx).
        model: PathBuf,
        #[command(flatten)]
        model_args: ModelArgs,
        #[command(flatten)]
        data: DataArgs,
        /// Use only N inputs: the first N of an IDX, array or CIFAR file; of
        /// an image folder, a class-stratified N (every class in proportion).
        #[arg(long, value_name = "N", default_value_t = 1000)]
        limit: usize,
        /// Inputs per batch.
        #[arg(long, value_name = "B", default_value_t = 100)]
        batch_size: usize,
        /// PGD steps.
        #[arg(long, value_name = "S", default_value_t = 40)]
        steps: usize,
        /// PGD's L∞ budget, in the model's input units.
        #[arg(
            long,
            value_name = "E",
            default_value_t = 0.1,
            conflicts_with = "attributions"
        )]
        eps: f32,
        /// PGD's step length, in the model's input units.
        #[arg(
            long,
            value_name = "A",
            default_value_t = 0.01,
            conflicts_with = "attributions"
        )]
        step_size: f32,
        /// Which implementation runs the model: the fast engine when it supports
        /// every layer (auto), the fast engine or an error (fast), or candle
        /// autograd (reference).
        #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
        engine: EngineArg,
        /// Time each attribution method and metric per input instead.
        #[arg(long)]
        attributions: bool,
    },
}

/// `--preset`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PresetArg {
    /// Chosen from the model's input shape.
    Auto,
    /// attacks/mnist.toml.
    Mnist,
    /// attacks/cifar.toml.
    Cifar,
    /// attacks/imagenet.toml.
    Imagenet,
}

impl PresetArg {
    /// The preset asked for by name; `None` for `auto`.
    pub fn preset(self) -> Option<xai_audit::plan::Preset> {
        use xai_audit::plan::Preset;
        match self {
            PresetArg::Auto => None,
            PresetArg::Mnist => Some(Preset::Mnist),
            PresetArg::Cifar => Some(Preset::Cifar),
            PresetArg::Imagenet => Some(Preset::Imagenet),
        }
    }
}

/// Examples: a comment line, then the command (shipped files where they
/// do; `model.onnx`, a CIFAR-10 batch and a .npy pair stand for yours).
type Examples = &'static [(&'static str, &'static str)];

const TOP_EXAMPLES: Examples = &[
    (
        "Audit the shipped MNIST CNN with the default plan (about 35 s):",
        "xai-audit run assets/mnist_cnn.safetensors",
    ),
    (
        "Your ONNX model on a CIFAR-10 test batch, the quick plan:",
        "xai-audit run model.onnx --data cifar-10-batches-bin/test_batch.bin --plan attacks/quick.toml",
    ),
    (
        "Browse the report:",
        "xai-audit tui reports/mnist_cnn.json",
    ),
    (
        "What a plan can hold:",
        "xai-audit kinds",
    ),
];

const RUN_EXAMPLES: Examples = &[
    (
        "The shipped MNIST CNN, default plan, shipped digits (about 35 s):",
        "xai-audit run assets/mnist_cnn.safetensors",
    ),
    (
        "A smoke test: the quick plan on 100 inputs, with a CI gate:",
        "xai-audit run assets/mnist_cnn.safetensors --plan attacks/quick.toml --limit 100 --gate \"robust_accuracy.pgd-linf-0.1 >= 0.5\"",
    ),
    (
        "An ONNX model on a CIFAR-10 batch, its class names from a file:",
        "xai-audit run model.onnx --data cifar-10-batches-bin/test_batch.bin --classes classes.txt --limit 500",
    ),
    (
        "Images and labels as NumPy arrays:",
        "xai-audit run model.onnx --data x_test.npy --labels y_test.npy --out reports/model.json",
    ),
    (
        "An image folder, one subfolder per class, resized to the model's input:",
        "xai-audit run model.onnx --data images/ --resize --limit 200",
    ),
    (
        "Shard 1 of 4 of a large audit (then `xai-audit merge`):",
        "xai-audit run model.onnx --data images/ --shard 1/4 --out r.json",
    ),
    (
        "A task of a Slurm job array (`sbatch --array=0-3`): the shard from SLURM_ARRAY_TASK_ID and its array:",
        "xai-audit run model.onnx --data images/ --shard auto --resume --out shards/r.json",
    ),
    (
        "A pod of a Kubernetes Indexed Job of 4 completions: JOB_COMPLETION_INDEX, with the count:",
        "xai-audit run model.onnx --data images/ --shard auto --shards 4 --out shards/r.json",
    ),
];

const MERGE_EXAMPLES: Examples = &[
    (
        "After `xai-audit run model.onnx --data images/ --shard K/4 --out r.json` for K = 1..4:",
        "xai-audit merge model.onnx r.json.shard-1-of-4 r.json.shard-2-of-4 r.json.shard-3-of-4 r.json.shard-4-of-4 --data images/ --out r.json",
    ),
    (
        "Every shard file in a directory (see docs/distributed.md for Slurm and Kubernetes):",
        "xai-audit merge model.onnx shards/ --data images/ --out shards/r.json",
    ),
    (
        "The shards a glob pattern matches, quoted so that xai-audit expands it:",
        "xai-audit merge model.onnx \"shards/r.json.shard-*\" --data images/ --out r.json",
    ),
];

const EVAL_EXAMPLES: Examples = &[
    (
        "The shipped MNIST CNN on the shipped 1,000 digits:",
        "xai-audit eval assets/mnist_cnn.safetensors",
    ),
    (
        "An ONNX model on a CIFAR-10 batch (ONNX carries no input range):",
        "xai-audit eval model.onnx --data cifar-10-batches-bin/test_batch.bin --input-range 0,1",
    ),
    (
        "NumPy arrays in N×H×W×C layout:",
        "xai-audit eval model.onnx --data x_test.npy --labels y_test.npy --layout nhwc",
    ),
    (
        "An image folder, one subfolder per class:",
        "xai-audit eval model.onnx --data images/ --resize --limit 1000",
    ),
];

const INSPECT_EXAMPLES: Examples = &[
    (
        "The shipped CNN's tensors and layers:",
        "xai-audit inspect assets/mnist_cnn.safetensors",
    ),
    (
        "An ONNX model's imported graph, with its class names:",
        "xai-audit inspect model.onnx --classes classes.txt",
    ),
    (
        "Weights saved from nn.DataParallel, without a spec yet (prints a skeleton):",
        "xai-audit inspect weights.safetensors --strip-prefix module.",
    ),
    (
        "The resolved spec as version-2 JSON:",
        "xai-audit inspect assets/mnist_resnet.safetensors --spec",
    ),
];

const CONVERT_EXAMPLES: Examples = &[
    (
        "An ONNX model as one self-describing safetensors file:",
        "xai-audit convert model.onnx -o model.safetensors --classes classes.txt --input-range 0,1",
    ),
    (
        "Weights and a spec beside them, as one file:",
        "xai-audit convert weights.safetensors --arch model.arch.json -o model.safetensors",
    ),
];

const TUI_EXAMPLES: Examples = &[
    (
        "The shipped example report:",
        "xai-audit tui reports/examples/mnist_cnn-quick.json",
    ),
    (
        "A report, with `e` exporting PNGs to a folder of your choice:",
        "xai-audit tui reports/mnist_cnn.json --export-dir pngs/",
    ),
];

const HTML_EXAMPLES: Examples = &[
    (
        "The shipped example report as a page beside it:",
        "xai-audit html reports/examples/mnist_cnn-quick.json",
    ),
    (
        "To a file of your choice, with a gate's verdict and every chart as SVG and PNG:",
        "xai-audit html reports/mnist_cnn.json -o review/mnist_cnn.html --gate \"robust_accuracy.pgd-linf-0.1 >= 0.5\" --plots review/plots",
    ),
    (
        "Larger galleries of broken inputs, with bigger images (--gallery 0 leaves them out):",
        "xai-audit html reports/mnist_cnn.json --gallery 12 --thumbnail 128",
    ),
];

const DIFF_EXAMPLES: Examples = &[
    (
        "What changed between two audits of the same data:",
        "xai-audit diff reports/baseline.json reports/mnist_cnn.json",
    ),
    (
        "As JSON, failing on a 0.5-point regression (exit code 1):",
        "xai-audit diff baseline.json candidate.json --threshold 0.5 --json",
    ),
    (
        "Also as a page (candidate.diff.html), with up to 12 flipped inputs drawn per attack:",
        "xai-audit diff baseline.json candidate.json --html --gallery 12",
    ),
];

const SCHEMA_EXAMPLES: Examples = &[
    ("The report's schema:", "xai-audit schema"),
    ("A plan file's schema:", "xai-audit schema --plan"),
];

const KINDS_EXAMPLES: Examples = &[
    ("Everything a plan can hold:", "xai-audit kinds"),
    ("One kind's keys and defaults:", "xai-audit kinds pgd"),
    ("One section:", "xai-audit kinds stress"),
];

const BENCH_EXAMPLES: Examples = &[
    (
        "PGD-40 throughput of the shipped CNN on the shipped digits:",
        "xai-audit bench assets/mnist_cnn.safetensors",
    ),
    (
        "An ONNX model on a CIFAR-10 batch at ε = 8/255:",
        "xai-audit bench model.onnx --data cifar-10-batches-bin/test_batch.bin --limit 500 --eps 0.031 --step-size 0.0078",
    ),
    (
        "The cost per input of each attribution method:",
        "xai-audit bench assets/mnist_cnn.safetensors --attributions --limit 100",
    ),
];

/// The EXAMPLES section of a help text: a header styled as clap styles its
/// own, then each comment and command.
fn examples(items: Examples) -> clap::builder::StyledStr {
    use std::fmt::Write;
    let header = clap::builder::styling::Style::new().bold().underline();
    let mut text = clap::builder::StyledStr::new();
    let _ = writeln!(text, "{header}Examples:{header:#}");
    for (i, (comment, command)) in items.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(text);
        }
        let _ = writeln!(text, "  # {comment}\n  {command}");
    }
    text
}

/// The examples of `command` (a subcommand's name, or `None` for the
/// top level): what the help prints.
#[cfg(test)]
fn examples_of(command: Option<&str>) -> Examples {
    match command {
        None => TOP_EXAMPLES,
        Some("run") => RUN_EXAMPLES,
        Some("merge") => MERGE_EXAMPLES,
        Some("eval") => EVAL_EXAMPLES,
        Some("inspect") => INSPECT_EXAMPLES,
        Some("convert") => CONVERT_EXAMPLES,
        Some("tui") => TUI_EXAMPLES,
        Some("html") => HTML_EXAMPLES,
        Some("diff") => DIFF_EXAMPLES,
        Some("schema") => SCHEMA_EXAMPLES,
        Some("kinds") => KINDS_EXAMPLES,
        Some("bench") => BENCH_EXAMPLES,
        Some(other) => panic!("no examples for `{other}`"),
    }
}

/// `--engine`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    /// The fast engine when it supports every layer, else the reference.
    Auto,
    /// The fast engine, or an error naming the layer it cannot run.
    Fast,
    /// The fast engine with im2col convolutions only (no Winograd): the
    /// rounding closest to the reference, a little slower on 3×3 layers.
    FastIm2col,
    /// candle autograd (slower; the reference the fast engine is tested against).
    Reference,
}

impl From<EngineArg> for xai_audit::engine::Engine {
    fn from(e: EngineArg) -> Self {
        match e {
            EngineArg::Auto => xai_audit::engine::Engine::Auto,
            EngineArg::Fast => xai_audit::engine::Engine::Fast,
            EngineArg::FastIm2col => xai_audit::engine::Engine::FastIm2col,
            EngineArg::Reference => xai_audit::engine::Engine::Reference,
        }
    }
}

/// What the HTML page shows beyond the report's figures (`html`, and
/// `run`/`merge` with `--html`).
#[derive(Debug, Clone, clap::Args)]
pub struct PageArgs {
    /// Inputs per gallery on the page: per attack, the inputs it broke with
    /// the largest drop in the true class's probability, and per noise
    /// family the most confident noise inputs (0: no galleries).
    #[arg(long, value_name = "N", default_value_t = xai_audit::html::DEFAULT_GALLERY)]
    pub gallery: usize,
    /// The longer side of each gallery image, in pixels.
    #[arg(long, value_name = "PX", default_value_t = xai_audit::html::images::THUMBNAIL,
          value_parser = clap::value_parser!(u32).range(8..=1024))]
    pub thumbnail: u32,
}

impl PageArgs {
    /// The library's page options.
    pub fn options(&self) -> xai_audit::html::PageOptions {
        xai_audit::html::PageOptions {
            gallery: self.gallery,
            thumbnail: self.thumbnail,
        }
    }
}

/// The data a model runs on (`eval`, `run`, `merge`, `bench`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DataArgs {
    /// Data: an IDX images file, a folder with an IDX pair, an image folder
    /// (one subfolder per class, matched by name to the model's classes), a
    /// .npy of images (with --labels), a .npz, or a CIFAR .bin batch file.
    /// Default: the shipped 1,000 MNIST digits (for 1×28×28 models).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub arrays: ArrayArgs,
}

/// How to read array data (`--data x.npy`, `data.npz`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ArrayArgs {
    /// With `--data x.npy`: the labels, a 1-D .npy of N integer labels.
    #[arg(long, value_name = "Y.NPY")]
    pub labels: Option<PathBuf>,
    /// The layout of an images array, needed only when both N×C×H×W and
    /// N×H×W×C fit the model's input shape (otherwise inferred).
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,
    /// With `--data data.npz`: the names of the images and labels arrays
    /// (default: x,y).
    #[arg(long, value_name = "IMAGES,LABELS", value_parser = parse_npz_keys)]
    pub npz_keys: Option<(String, String)>,
}

/// `--layout`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutArg {
    /// `[N, C, H, W]` (PyTorch).
    Nchw,
    /// `[N, H, W, C]` (TensorFlow, NumPy images).
    Nhwc,
}

fn parse_npz_keys(text: &str) -> Result<(String, String), String> {
    match text.split_once(',') {
        Some((x, y)) if !x.trim().is_empty() && !y.trim().is_empty() && !y.contains(',') => {
            Ok((x.trim().to_string(), y.trim().to_string()))
        }
        _ => Err(format!(
            "expected two array names, IMAGES,LABELS; got `{text}`"
        )),
    }
}

impl ArrayArgs {
    /// The library's options.
    pub fn options(self) -> xai_audit::data::arrays::ArrayOptions {
        use xai_audit::data::arrays::Layout;
        xai_audit::data::arrays::ArrayOptions {
            labels: self.labels,
            layout: self.layout.map(|l| match l {
                LayoutArg::Nchw => Layout::Nchw,
                LayoutArg::Nhwc => Layout::Nhwc,
            }),
            npz_keys: self.npz_keys,
        }
    }
}

/// How to read the model file: its spec, tensor names, input range and
/// class names.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Architecture spec JSON (default: the file's metadata, then <stem>.arch.json;
    /// not for .onnx models, whose graph is the spec).
    #[arg(long, value_name = "FILE")]
    pub arch: Option<PathBuf>,
    /// Strip this prefix from the file's tensor names (e.g. `module.` from
    /// DataParallel, `_orig_mod.` from torch.compile); overrides the spec's
    /// `strip_prefix`.
    #[arg(long, value_name = "PREFIX")]
    pub strip_prefix: Option<String>,
    /// The model's valid input range, e.g. `0,255` or `-1,1`; overrides the
    /// spec's. An ONNX file carries none: without this, [0, 1] is assumed.
    #[arg(long, value_name = "LO,HI", value_parser = parse_range, allow_hyphen_values = true)]
    pub input_range: Option<[f32; 2]>,
    /// Class names, one per line in output order (overrides the spec's;
    /// an ONNX file carries none).
    #[arg(long, value_name = "FILE")]
    pub classes: Option<PathBuf>,
    /// The mean the model subtracts from its input, per channel (`0.485,0.456,0.406`)
    /// or one value, in input units; overrides the spec's. An ONNX graph
    /// exported without the training pipeline's normalization needs it.
    #[arg(
        long,
        value_name = "MEAN",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub mean: Option<Vec<f32>>,
    /// The standard deviation the model divides its input by, per channel
    /// or one value; overrides the spec's.
    #[arg(long, value_name = "STD", value_delimiter = ',')]
    pub std: Option<Vec<f32>>,
}

impl ModelArgs {
    /// The library's options.
    pub fn options(self) -> xai_audit::model::ModelOptions {
        xai_audit::model::ModelOptions {
            arch: self.arch,
            strip_prefix: self.strip_prefix,
            input_range: self.input_range,
            classes: self.classes,
            mean: self.mean,
            std: self.std,
        }
    }
}

/// `LO,HI` with finite `LO < HI`.
fn parse_range(text: &str) -> Result<[f32; 2], String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let bad = || format!("expected LO,HI (e.g. 0,255 or -1,1), found `{text}`");
    let [lo, hi] = parts.as_slice() else {
        return Err(bad());
    };
    let (lo, hi): (f32, f32) = (
        lo.parse().map_err(|_| bad())?,
        hi.parse().map_err(|_| bad())?,
    );
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(format!("needs finite LO < HI, found `{text}`"));
    }
    Ok([lo, hi])
}

/// What makes an audit job (`run`'s arguments but the shard and resume
/// options; `merge` takes exactly these, as given to each shard).
#[derive(Debug, clap::Args)]
pub struct JobArgs {
    /// The model (.safetensors or .onnx).
    pub model: PathBuf,
    #[command(flatten)]
    pub model_args: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Audit plan (TOML), used as written. Default: a built-in preset (--preset).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// The built-in plan to run without --plan: mnist (grayscale, MNIST
    /// budgets), cifar (RobustBench's CIFAR L∞ 8/255, L2 0.5), imagenet
    /// (L∞ 4/255), or auto: chosen from the model's input shape (the
    /// shorter side above 64 px → imagenet, else one channel → mnist, else
    /// cifar). Budgets are scaled to the model's input range.
    #[arg(long, value_enum, default_value_t = PresetArg::Auto, conflicts_with = "plan")]
    pub preset: PresetArg,
    /// Report path (.json); the tensors go beside it as .safetensors.
    /// Default: reports/<model stem>.json.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Use only N inputs: the first N of an IDX, array or CIFAR file; of an
    /// image folder, a class-stratified N (every class in proportion).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Seed for every random choice (overrides the plan's).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Inputs per batch (overrides the plan's; results do not depend on it).
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// A CI gate, e.g. "robust_accuracy.pgd-linf-0.1 >= 0.8" (repeatable; with
    /// the plan's [gates]). Exit code 1 when one fails.
    #[arg(long = "gate", value_name = "EXPR")]
    pub gates: Vec<String>,
    /// Write the gates' verdicts as JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Which implementation runs the model: the fast engine when it supports
    /// every layer (auto), the fast engine or an error (fast), or candle
    /// autograd (reference).
    #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
    pub engine: EngineArg,
    /// Resize images whose size differs from the model's input.
    #[arg(long)]
    pub resize: bool,
    /// Write each input's clean, adversarial and amplified-perturbation PNGs here.
    #[arg(long, value_name = "DIR")]
    pub save_images: Option<PathBuf>,
    /// Open the report in the terminal UI when the run finishes.
    #[arg(long)]
    pub tui: bool,
    /// Also write the report as a self-contained HTML page beside it
    /// (<out>.html).
    #[arg(long)]
    pub html: bool,
    #[command(flatten)]
    pub page: PageArgs,
}

/// `run`'s arguments: the job, and how much of it this run does.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Audit only shard K of N (e.g. 2/4): every N-th batch, written to
    /// <out>.shard-K-of-N for `merge`; no report. `auto`: K and N from a
    /// Slurm job array task's SLURM_ARRAY_TASK_ID, _MIN, _MAX, _STEP and
    /// _COUNT (a contiguous array), or a Kubernetes Indexed Job's
    /// JOB_COMPLETION_INDEX (0-based) with --shards.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<ShardArg>,
    /// With --shard auto: the shard count, which a Kubernetes Indexed Job
    /// does not set (its `completions`); under Slurm it must equal
    /// SLURM_ARRAY_TASK_COUNT.
    #[arg(long, value_name = "N", requires = "shard")]
    pub shards: Option<usize>,
    /// Continue an interrupted run from <out>.partial (same model, data, plan,
    /// seed, batch size and engine); without it an old checkpoint is replaced.
    #[arg(long)]
    pub resume: bool,
}

/// `--shard`'s value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    /// Shard K of N, 1-based.
    Index(usize, usize),
    /// From the scheduler's variables.
    Auto,
}

/// `K/N` with 1 ≤ K ≤ N, or `auto`.
fn parse_shard(s: &str) -> Result<ShardArg, String> {
    if s.trim() == "auto" {
        return Ok(ShardArg::Auto);
    }
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: expected K/N, e.g. 2/4, or auto"))?;
    let (k, n): (usize, usize) = (
        k.trim()
            .parse()
            .map_err(|_| format!("`{s}`: K is not a number"))?,
        n.trim()
            .parse()
            .map_err(|_| format!("`{s}`: N is not a number"))?,
    );
    if k == 0 || k > n {
        return Err(format!("`{s}`: K must be between 1 and N"));
    }
    Ok(ShardArg::Index(k, n))
}

/// The library's options and remedies named by this binary's flags.
pub struct Flags;

impl Wording for Flags {
    fn option(&self, option: Opt) -> String {
        match option {
            Opt::BatchSize => "--batch-size",
            Opt::Out => "--out",
            Opt::Shard => "--shard",
            Opt::Shards => "--shards",
            Opt::Threshold => "--threshold",
        }
        .to_string()
    }

    fn remedy(&self, remedy: &Remedy) -> String {
        match remedy {
            Remedy::Resume => "run the same command again with --resume to continue".into(),
            Remedy::StartAfresh => "remove it or run without --resume".into(),
            Remedy::PassData => {
                "pass --data PATH (an IDX file, an image folder, a .npy with --labels, a .npz \
                 or a CIFAR .bin)"
                    .into()
            }
            Remedy::PassArch { sidecar } => format!(
                "pass --arch FILE, embed it in the safetensors metadata under `{}`, or write {} \
                 (examples/export_pytorch.py writes the spec from the PyTorch module)",
                xai_audit::model::spec::METADATA_KEY,
                sidecar.display()
            ),
            Remedy::StripPrefix(prefix) => format!(
                "pass --strip-prefix {prefix} or put \"strip_prefix\": \"{prefix}\" in the spec"
            ),
            Remedy::ReferenceEngine => "use --engine reference".into(),
            Remedy::Resize => "pass --resize to resize it".into(),
            Remedy::LoadConverted(path) => format!(
                "then audit the converted file: xai-audit run {}",
                shell_word(path)
            ),
            Remedy::GiveAsData(path) => {
                let labels = if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
                {
                    " --labels LABELS.npy"
                } else {
                    ""
                };
                format!(
                    "give it as the data: xai-audit run MODEL --data {}{labels}",
                    shell_word(path)
                )
            }
            Remedy::GiveShardCount => "pass --shards N, the Indexed Job's `completions`".into(),
            Remedy::NameShard => "pass --shard K/N instead of auto, or run as a task of a Slurm \
                 job array (sbatch --array) or a pod of a Kubernetes Indexed Job"
                .into(),
            Remedy::RunShards { missing, of } => {
                let runs: Vec<String> = missing
                    .iter()
                    .map(|k| format!("--shard {k}/{of}"))
                    .collect();
                format!(
                    "run {} with the job's options (xai-audit run ... {}), then merge again",
                    if missing.len() == 1 { "it" } else { "them" },
                    runs.join(", ")
                )
            }
        }
    }
}

/// `path` as one shell word (quoted when it holds anything but plain
/// characters).
fn shell_word(path: &std::path::Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// The words of a shell command line: split on spaces, double quotes
    /// grouping.
    fn words(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        out.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            out.push(word);
        }
        out
    }

    /// Every example of every help text is a command line this binary
    /// accepts, of the subcommand it illustrates: an example cannot name a
    /// flag that does not exist, or one of another subcommand.
    #[test]
    fn every_example_parses_as_the_subcommand_it_illustrates() {
        let mut names = vec![None];
        names.extend(
            Cli::command()
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .filter(|n| n != "help")
                .map(Some),
        );
        assert!(names.len() >= 11, "{names:?}");
        for name in names {
            let examples = examples_of(name.as_deref());
            assert!(!examples.is_empty(), "{name:?}");
            for (comment, command) in examples {
                assert!(comment.ends_with(':'), "{comment}");
                let argv = words(command);
                assert_eq!(argv[0], "xai-audit", "{command}");
                if let Some(name) = &name {
                    assert_eq!(&argv[1], name, "{command}");
                }
                if let Err(e) = Cli::try_parse_from(&argv) {
                    panic!("{command}: {e}");
                }
            }
        }
    }

    /// The README's shell examples are command lines this binary accepts.
    #[test]
    fn the_readmes_examples_parse() {
        let readme = include_str!("../README.md");
        let mut checked = 0;
        let mut in_sh = false;
        for line in readme.lines() {
            if line.starts_with("```") {
                in_sh = line == "```sh";
                continue;
            }
            let command = line.split(" # ").next().unwrap_or_default().trim();
            let command = command
                .strip_prefix("cargo run --release -- ")
                .map(|rest| format!("xai-audit {rest}"))
                .unwrap_or_else(|| command.to_string());
            if in_sh && command.starts_with("xai-audit ") {
                if let Err(e) = Cli::try_parse_from(words(&command)) {
                    panic!("README: {command}: {e}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 6, "only {checked} README examples found");
    }

    /// Each placeholder the README writes after a flag (`--limit N`) is the
    /// one `--help` shows for it (`--limit <N>`), in every subcommand that
    /// has the flag.
    #[test]
    fn the_readmes_placeholders_are_the_helps() {
        let readme = include_str!("../README.md");
        let cli = Cli::command();
        let (mut checked, mut wrong) = (0, Vec::new());
        for (i, _) in readme.match_indices("--") {
            if !readme[..i].ends_with([' ', '[', '`']) {
                continue;
            }
            let rest = &readme[i + 2..];
            let flag: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            let Some(after) = rest[flag.len()..].strip_prefix(' ') else {
                continue;
            };
            let word: String = after
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == ',' || *c == '/')
                .collect();
            if word.is_empty() || after[word.len()..].starts_with(|c: char| c.is_alphanumeric()) {
                continue;
            }
            for sub in cli.get_subcommands() {
                for arg in sub.get_arguments() {
                    if arg.get_long() == Some(flag.as_str()) {
                        let names: Vec<String> = arg
                            .get_value_names()
                            .unwrap_or_default()
                            .iter()
                            .map(|n| n.to_string())
                            .collect();
                        if names != [word.clone()] {
                            wrong.push(format!(
                                "README writes --{flag} {word}; `{} --help` shows {names:?}",
                                sub.get_name()
                            ));
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        assert!(checked >= 20, "only {checked} README placeholders found");
    }

    #[test]
    fn shard_takes_k_of_n_or_auto_and_shards_needs_it() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["xai-audit", "run", "m.onnx"];
            argv.extend(args);
            match Cli::try_parse_from(argv).map(|c| c.command) {
                Ok(Command::Run(r)) => Ok((r.shard, r.shards)),
                Ok(other) => panic!("{other:?}"),
                Err(e) => Err(e.kind()),
            }
        };
        assert_eq!(
            parse(&["--shard", "2/4"]),
            Ok((Some(ShardArg::Index(2, 4)), None))
        );
        assert_eq!(
            parse(&["--shard", "auto", "--shards", "3"]),
            Ok((Some(ShardArg::Auto), Some(3)))
        );
        assert_eq!(
            parse(&["--shards", "3"]),
            Err(clap::error::ErrorKind::MissingRequiredArgument)
        );
        assert!(parse(&["--shard", "0/4"]).is_err());
        assert!(parse(&["--shard", "automatic"]).is_err());
    }

    #[test]
    fn merge_takes_no_shard_or_resume_and_run_does() {
        let run = ["xai-audit", "run", "m.onnx", "--shard", "1/2", "--resume"];
        assert!(Cli::try_parse_from(run).is_ok());
        for flag in ["--shard", "--resume"] {
            let mut merge = vec!["xai-audit", "merge", "m.onnx", "r.json.shard-1-of-2", flag];
            if flag == "--shard" {
                merge.push("1/2");
            }
            let e = Cli::try_parse_from(merge).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{flag}: {e}"
            );
        }
    }
}
