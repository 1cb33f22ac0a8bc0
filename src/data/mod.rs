//! Input data: loading a labelled image dataset (IDX files such as MNIST, or an
//! image folder laid out as torchvision's `ImageFolder`) into one `N×C×H×W`
//! tensor of `f32` pixels in `[0, 1]`, converted to the model's channel count
//! and size, with a SHA-256 that pins the files read.
//!
//! [`load`] decides the format from the path; [`idx`] reads and writes IDX
//! files; [`arrays`] reads NumPy `.npy`/`.npz` arrays and `cifar` CIFAR
//! binary batch files; [`subset`] decides which items a limit takes; the image-folder
//! reader (which matches subfolders to the model's class names) is private
//! to this module.

use std::fmt;
use std::fs;
use std::path::Path;

use image::imageops::FilterType;
use image::{ImageBuffer, Luma};

use crate::error::{Error, Remedy, Result};

pub mod arrays;
pub mod batch;
mod cifar;
mod folder;
pub mod idx;
pub mod subset;

pub use idx::{read_idx_images, read_idx_labels, write_idx_images, write_idx_labels, IdxImages};

/// A loaded dataset: pixels in `[0, 1]`, row-major `N×C×H×W`, `f32`.
#[derive(Clone, PartialEq)]
pub struct Dataset {
    /// The pixels, `n * channels * height * width` values in `[0, 1]`
    /// (a byte divided by 255, a 16-bit sample by 65535), item after item,
    /// each item channel after channel, each channel row after row.
    pub pixels: Vec<f32>,
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
    /// One label per item.
    pub labels: Vec<u32>,
    /// The name of each class, indexed by label: `"0"`, `"1"`, ... for IDX
    /// files (ten names when every label is below 10, else one per label up
    /// to the largest); for an image folder, the model's class names when
    /// subfolders were matched to them ([`LoadOptions::class_names`]), else
    /// the sorted subfolder names.
    pub class_names: Vec<String>,
    /// What the data is, for people: `IDX <images file>` or `image folder <path>`.
    pub source: String,
    /// Lowercase hex SHA-256 over the raw bytes of the files read, in the
    /// order they were read, so that a report can pin the data.
    pub sha256: String,
}

/// What loading learnt about a dataset beyond its items: what a report says
/// about how they were drawn, and what may make its numbers wrong.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataNotes {
    /// How the items were drawn from the source: `all M in file order` or
    /// `first N of M in file order` (IDX), `all M` or `class-stratified N of
    /// M` (image folder).
    pub subset: String,
    /// Problems that do not stop the audit (an image folder numbered by
    /// sorted name for a model whose classes have no names), one sentence
    /// each.
    pub warnings: Vec<String>,
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("shape", &self.shape)
            .field("classes", &self.class_names.len())
            .field("source", &self.source)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl Dataset {
    /// The number of items, `N`.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of values in one item, `C * H * W`.
    pub fn item_len(&self) -> usize {
        self.shape[1] * self.shape[2] * self.shape[3]
    }

    /// The pixels of item `i` (`C * H * W` values).
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn item(&self, i: usize) -> &[f32] {
        let len = self.item_len();
        &self.pixels[i * len..(i + 1) * len]
    }

    /// The first `n` items (all of them when there are fewer). `source` and
    /// `sha256` are kept: they name the files read, and `shape[0]` says how
    /// many items of them are used.
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            pixels: self.pixels[..n * self.item_len()].to_vec(),
            shape: [n, self.shape[1], self.shape[2], self.shape[3]],
            labels: self.labels[..n].to_vec(),
            class_names: self.class_names.clone(),
            source: self.source.clone(),
            sha256: self.sha256.clone(),
        }
    }

    /// Checks that every label is below `classes` (the model's number of
    /// outputs); the error names the data source, the first offending item,
    /// its class name (an image folder's subfolder) and its label.
    pub fn labels_in_range(&self, classes: usize) -> Result<()> {
        match self
            .labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= classes)
        {
            None => Ok(()),
            Some((i, &l)) => {
                let class = match self.class_names.get(l as usize) {
                    Some(name) => format!(" (class `{name}`)"),
                    None => String::new(),
                };
                Err(Error::data(
                    &self.source,
                    format!(
                        "item {i} has label {l}{class}, but the model has {classes} classes \
                         (labels 0..={})",
                        classes.saturating_sub(1)
                    ),
                ))
            }
        }
    }
}

/// How to load a dataset so that it fits a model.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// The model's channel count, 1 (grey) or 3 (RGB). Grey data is repeated
    /// into three channels; RGB data is turned grey with the ITU-R 601 luma
    /// that PIL's `convert("L")` uses (`(299 R + 587 G + 114 B) / 1000`,
    /// rounded as PIL rounds). Alpha is dropped.
    pub channels: usize,
    /// The `(H, W)` the model expects; `None` takes whatever the data has
    /// (every item must then have the size of the first).
    pub size: Option<(usize, usize)>,
    /// What to do with an item of another size: `false` makes it an error
    /// that names the file and both sizes, `true` resizes it bilinearly
    /// (`image`'s `Triangle` filter).
    pub resize: bool,
    /// Load only `n` items: an IDX file's first `n`, in file order (MNIST's
    /// test split is already shuffled); for an image folder, the first `n`
    /// of a fixed class-interleaved order that keeps every class in
    /// proportion (see [`subset::stratified_order`]). Files not taken are not read.
    pub limit: Option<usize>,
    /// The model's class names in output order, when its spec names them:
    /// an image folder's subfolders are then matched to them by name (a
    /// subfolder the model lacks is an error; classes without a subfolder
    /// are fine). `None` (or empty): subfolders are numbered in sorted
    /// order, as torchvision's `ImageFolder` numbers them.
    pub class_names: Option<Vec<String>>,
    /// The model's number of outputs: an image folder with more class
    /// subfolders than this is an error before any image is read.
    pub num_classes: Option<usize>,
    /// What array files need besides their path (labels, layout, `.npz` keys).
    pub arrays: arrays::ArrayOptions,
    /// The model's input range: `float32` arrays are in these units and
    /// must lie inside it (they are mapped back to `[0, 1]`).
    pub range: (f32, f32),
}

impl Default for LoadOptions {
    /// One channel, the data's own size, no resizing, no limit.
    fn default() -> Self {
        LoadOptions {
            channels: 1,
            size: None,
            resize: false,
            limit: None,
            class_names: None,
            num_classes: None,
            arrays: arrays::ArrayOptions::default(),
            range: (0.0, 1.0),
        }
    }
}

impl LoadOptions {
    fn validate(&self) -> Result<()> {
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::Invalid(format!(
                "channels must be 1 (grey) or 3 (RGB), got {}",
                self.channels
            )));
        }
        if let Some((h, w)) = self.size {
            if h == 0 || w == 0 || u32::try_from(h).is_err() || u32::try_from(w).is_err() {
                return Err(Error::Invalid(format!(
                    "image size must be positive and below 2^32, got {h}x{w}"
                )));
            }
        }
        if self.limit == Some(0) {
            return Err(Error::Invalid("limit must be at least 1".into()));
        }
        Ok(())
    }
}
/// Where the shipped sample lives in the repository (it is also compiled into
/// the binary, so `run` works from any folder).
pub const SAMPLE_DIR: &str = "assets/mnist-sample";

/// The shipped sample: the first 1,000 digits of the MNIST test split used
/// here (see `assets/README.md`), embedded in the binary.
pub fn shipped_sample(opts: &LoadOptions) -> Result<Dataset> {
    shipped_sample_with_notes(opts).map(|(data, _)| data)
}

/// [`shipped_sample`] and what loading learnt about it.
pub fn shipped_sample_with_notes(opts: &LoadOptions) -> Result<(Dataset, DataNotes)> {
    opts.validate()?;
    const IMAGES: &[u8] = include_bytes!("../../assets/mnist-sample/sample-images-idx3-ubyte.gz");
    const LABELS: &[u8] = include_bytes!("../../assets/mnist-sample/sample-labels-idx1-ubyte.gz");
    let dir = Path::new(SAMPLE_DIR);
    idx::idx_from_bytes(
        &dir.join("sample-images-idx3-ubyte.gz"),
        IMAGES.to_vec(),
        &dir.join("sample-labels-idx1-ubyte.gz"),
        LABELS.to_vec(),
        opts,
    )
}

/// Loads the dataset at `path`:
/// - a folder holding an IDX images file (`*-images-idx3-ubyte`, optionally
///   `.gz`) and its labels file (`*-labels-idx1-ubyte[.gz]`): that IDX pair;
/// - an IDX images file: it, with the labels file whose name has
///   `labels-idx1` in place of `images-idx3` (with or without `.gz`);
/// - any other folder: an image folder, one subfolder per class, read in
///   torchvision `ImageFolder` order;
/// - a `.npy` file: an images array, with the labels array
///   [`arrays::ArrayOptions::labels`]; a `.npz` file: both arrays in one;
/// - a `.bin` file: a CIFAR-10 or CIFAR-100 binary batch file.
///
/// The pixels are converted to `opts.channels` and checked against (or
/// resized to) `opts.size`.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    load_with_notes(path, opts).map(|(data, _)| data)
}

/// [`load`], and what loading learnt about the data: how the items were
/// drawn (for the report) and warnings.
pub fn load_with_notes(path: &Path, opts: &LoadOptions) -> Result<(Dataset, DataNotes)> {
    opts.validate()?;
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let a = &opts.arrays;
    let is_array = |p: &Path| {
        matches!(
            p.extension()
                .and_then(|e| e.to_str())
                .map(str::to_lowercase)
                .as_deref(),
            Some("npy" | "npz")
        )
    };
    if !is_array(path) && (a.labels.is_some() || a.layout.is_some() || a.npz_keys.is_some()) {
        return Err(Error::format(
            path,
            "array options (labels file, layout, npz keys) apply only to .npy and .npz data; IDX files, CIFAR batches and image folders carry their own labels and layout",
        ));
    }
    if meta.is_dir() {
        match idx::find_in_dir(path)? {
            Some((images, labels)) => idx::load_idx(&images, &labels, opts),
            None => folder::load_folder(path, opts),
        }
    } else {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_lowercase);
        let a = &opts.arrays;
        let misplaced = match ext.as_deref() {
            Some("npy") => a.npz_keys.is_some().then_some("npz keys"),
            Some("npz") => a.labels.is_some().then_some("a labels file"),
            _ => None,
        };
        if let Some(what) = misplaced {
            return Err(Error::format(
                path,
                format!("{what} given, but this file does not take them"),
            ));
        }
        match ext.as_deref() {
            Some("npy") => return arrays::load_npy(path, opts),
            Some("npz") => return arrays::load_npz(path, opts),
            Some("bin") => return cifar::load_cifar(path, opts),
            _ => {}
        }
        let labels = idx::labels_path_for(path)?;
        idx::load_idx(path, &labels, opts)
    }
}

/// The size an item of size `found` (H, W) from `file` ends up with:
/// `found` itself when it is `expected`, `expected` when resizing is allowed,
/// and otherwise an error naming the file and both sizes. `what` says whose
/// size `expected` is ("the model expects", "the first image ... is").
pub(crate) fn fit_size(
    file: &Path,
    found: (usize, usize),
    expected: (usize, usize),
    what: &str,
    resize: bool,
) -> Result<(usize, usize)> {
    if found == expected || resize {
        Ok(expected)
    } else {
        Err(Error::data(
            file.display().to_string(),
            format!(
                "image is {}x{} (HxW) but {what} {}x{}",
                found.0, found.1, expected.0, expected.1
            ),
        )
        .remedied(Remedy::Resize))
    }
}

/// Resizes one `h×w` plane of values in `[0, 1]` to `nh×nw`, bilinearly.
pub(crate) fn resize_plane(plane: &[f32], h: usize, w: usize, nh: usize, nw: usize) -> Vec<f32> {
    if (h, w) == (nh, nw) {
        return plane.to_vec();
    }
    // Dimensions come from IDX headers (u32), decoded images (u32) or
    // validated options (below 2^32), and the plane has h*w values.
    let buf: ImageBuffer<Luma<f32>, Vec<f32>> =
        ImageBuffer::from_raw(w as u32, h as u32, plane.to_vec())
            .expect("a plane holds h*w values");
    let mut out =
        image::imageops::resize(&buf, nw as u32, nh as u32, FilterType::Triangle).into_raw();
    for v in &mut out {
        *v = v.clamp(0.0, 1.0);
    }
    out
}

/// Lowercase hex of a digest.
pub(crate) use crate::util::hex;

/// How people read class `class` of a model whose classes are `names`
/// (index = class): `dog (2)` when the class has a name, `2` when it has
/// none or its name is its own number (a spec without class names numbers
/// them `"0"`, `"1"`, ...), so the index is always there and never twice.
pub fn class_label(names: &[String], class: usize) -> String {
    match names.get(class) {
        Some(name) if *name != class.to_string() => format!("{name} ({class})"),
        _ => class.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        Dataset {
            pixels: (0..12).map(|v| v as f32 / 12.0).collect(),
            shape: [3, 1, 2, 2],
            labels: vec![0, 4, 2],
            class_names: (0..10).map(|i| i.to_string()).collect(),
            source: "IDX tiny".into(),
            sha256: "ab".into(),
        }
    }

    #[test]
    fn class_labels_name_the_class_and_keep_its_index_once() {
        let named: Vec<String> = ["bird", "cat", "dog"].map(String::from).to_vec();
        assert_eq!(class_label(&named, 2), "dog (2)");
        assert_eq!(class_label(&named, 0), "bird (0)");
        // Beyond the names, or numbered names: the number alone.
        assert_eq!(class_label(&named, 7), "7");
        let numbered: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(class_label(&numbered, 8), "8");
        assert_eq!(class_label(&[], 3), "3");
    }

    #[test]
    fn take_len_item() {
        let d = tiny();
        assert_eq!(d.len(), 3);
        assert!(!d.is_empty());
        assert_eq!(d.item_len(), 4);
        assert_eq!(d.item(1), &d.pixels[4..8]);
        let t = d.take(2);
        assert_eq!(t.shape, [2, 1, 2, 2]);
        assert_eq!(t.labels, vec![0, 4]);
        assert_eq!(t.pixels, d.pixels[..8].to_vec());
        assert_eq!(d.take(99).len(), 3);
        assert!(d.take(0).is_empty());
    }

    #[test]
    fn labels_in_range_names_first_offender() {
        let d = tiny();
        assert!(d.labels_in_range(5).is_ok());
        let e = d.labels_in_range(3).unwrap_err().to_string();
        assert!(e.contains("IDX tiny"), "{e}");
        assert!(e.contains("item 1 has label 4 (class `4`)"), "{e}");
    }

    #[test]
    fn bad_options_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        for opts in [
            LoadOptions {
                channels: 4,
                ..Default::default()
            },
            LoadOptions {
                channels: 0,
                ..Default::default()
            },
            LoadOptions {
                size: Some((0, 3)),
                ..Default::default()
            },
            LoadOptions {
                limit: Some(0),
                ..Default::default()
            },
        ] {
            let e = load(dir.path(), &opts).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{e}");
        }
    }

    #[test]
    fn missing_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope");
        let e = load(&p, &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn resize_keeps_constant_planes() {
        let out = resize_plane(&[0.25; 16], 4, 4, 2, 3);
        assert_eq!(out.len(), 6);
        for v in out {
            assert!((v - 0.25).abs() < 1e-6, "{v}");
        }
    }
}
