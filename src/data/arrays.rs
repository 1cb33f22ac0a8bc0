//! Arrays as data: a NumPy `.npy` of images with a `.npy` of labels, or an
//! `.npz` holding both, read into a [`Dataset`]. This file
//! owns the NPY header (versions 1 to 3), the layout rule (`N×C×H×W` or
//! `N×H×W×C`, inferred from the model's input shape) and the units rule:
//! `uint8` pixels are 0…255 like image files, `float32` values are in the
//! model's input units and must lie inside its range.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::subset::describe_file_order;
use super::{hex, DataNotes, Dataset, LoadOptions};
use crate::error::{Error, Result};

/// How the axes of a 4-D image array are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[N, C, H, W]` (PyTorch).
    Nchw,
    /// `[N, H, W, C]` (TensorFlow, NumPy images).
    Nhwc,
}

/// What array files need besides their path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArrayOptions {
    /// The labels `.npy` that goes with an images `.npy` (1-D, any integer
    /// type, one label per item).
    pub labels: Option<PathBuf>,
    /// The layout of the images, needed only when both layouts fit the
    /// model's `[C, H, W]`; otherwise it is inferred (and, when given, checked).
    pub layout: Option<Layout>,
    /// The names of the images and labels arrays in an `.npz` (default `x`, `y`).
    pub npz_keys: Option<(String, String)>,
}

/// The element type of an array, as its NPY `descr` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    U8,
    F32,
    /// An integer type: bytes per element and signedness.
    Int(usize, bool),
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::F32 => 4,
            Dtype::Int(size, _) => size,
        }
    }
}

/// A parsed NPY array: its type, shape and raw little-endian data.
#[derive(Debug)]
struct Npy {
    dtype: Dtype,
    descr: String,
    shape: Vec<usize>,
    data: Vec<u8>,
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// The quoted value after `'key':` in a header dict.
fn header_str<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let rest = header_value(header, key)?;
    let quote = rest.chars().next()?;
    if quote != '\'' && quote != '"' {
        return None;
    }
    let rest = &rest[1..];
    rest.find(quote).map(|end| &rest[..end])
}

/// The text right after `'key':` (spaces skipped).
fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?;
    Some(rest.trim_start())
}

/// Parses NPY bytes; `name` is what errors call the array (a file, or an
/// `.npz` member).
fn parse_npy(name: &Path, bytes: &[u8]) -> Result<Npy> {
    let bad = |m: String| Error::format(name, m);
    if !bytes.starts_with(NPY_MAGIC) || bytes.len() < 10 {
        return Err(bad("not an NPY file (no \\x93NUMPY magic)".into()));
    }
    let major = bytes[6];
    let (len, start): (usize, usize) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        2 | 3 => return Err(bad("truncated NPY header".into())),
        v => return Err(bad(format!("unsupported NPY version {v}"))),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad("truncated NPY header".into()))?;
    let header = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| bad("the NPY header is not text".into()))?;
    let descr = header_str(header, "descr")
        .ok_or_else(|| bad(format!("the NPY header has no 'descr' string: {header}")))?;
    if header_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(bad(
            "the array is in Fortran (column-major) order; save it C-ordered \
             (np.ascontiguousarray)"
                .into(),
        ));
    }
    let dtype = match descr {
        "|u1" | "<u1" | "u1" => Dtype::U8,
        "<f4" => Dtype::F32,
        "|i1" | "<i1" | "i1" => Dtype::Int(1, true),
        "<u2" => Dtype::Int(2, false),
        "<i2" => Dtype::Int(2, true),
        "<u4" => Dtype::Int(4, false),
        "<i4" => Dtype::Int(4, true),
        "<u8" => Dtype::Int(8, false),
        "<i8" => Dtype::Int(8, true),
        d if d.starts_with('>') => {
            return Err(bad(format!(
                "the array is big-endian ({d}); save it little-endian (arr.astype(arr.dtype.newbyteorder('<')))"
            )))
        }
        d => return Err(bad(format!("unsupported dtype {d}"))),
    };
    let shape_text = header_value(header, "shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad(format!("the NPY header has no 'shape' tuple: {header}")))?;
    let mut shape = Vec::new();
    for part in shape_text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let dim = part
            .trim_end_matches('L')
            .parse::<usize>()
            .map_err(|_| bad(format!("bad dimension `{part}` in the NPY shape")))?;
        shape.push(dim);
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|c| c.checked_mul(dtype.size()))
        .ok_or_else(|| bad(format!("the shape {shape:?} is too large")))?;
    let have = bytes.len() - end;
    if have < count {
        return Err(bad(format!(
            "data shorter than the header claims: shape {shape:?} of {descr} needs {count} bytes, \
             the file has {have}"
        )));
    }
    if have > count {
        return Err(bad(format!(
            "{} bytes of data after the shape {shape:?} of {descr} that the header declares",
            have - count
        )));
    }
    Ok(Npy {
        dtype,
        descr: descr.to_string(),
        shape,
        data: bytes[end..].to_vec(),
    })
}

/// Loads an images `.npy` and its labels `.npy` (`opts.arrays.labels`).
pub(crate) fn load_npy(images: &Path, opts: &LoadOptions) -> Result<(Dataset, DataNotes)> {
    let Some(labels) = &opts.arrays.labels else {
        return Err(Error::data(
            images.display().to_string(),
            "an images .npy needs a labels .npy (1-D, one integer label per item) \
             given with it",
        ));
    };
    let image_bytes = fs::read(images).map_err(|e| Error::io(images, e))?;
    let label_bytes = fs::read(labels).map_err(|e| Error::io(labels, e))?;
    let mut hasher = Sha256::new();
    hasher.update(&image_bytes);
    hasher.update(&label_bytes);
    let x = parse_npy(images, &image_bytes)?;
    let y = parse_npy(labels, &label_bytes)?;
    build(
        images,
        &x,
        labels,
        &y,
        format!("NPY {}", images.display()),
        hex(&hasher.finalize()),
        opts,
    )
}

/// Loads an `.npz` holding the images and labels arrays (`x` and `y`, or
/// `opts.arrays.npz_keys`).
pub(crate) fn load_npz(path: &Path, opts: &LoadOptions) -> Result<(Dataset, DataNotes)> {
    let raw = fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    hasher.update(&raw);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&raw[..]))
        .map_err(|e| Error::format(path, format!("not a readable .npz (zip) file: {e}")))?;
    let (xk, yk) = match &opts.arrays.npz_keys {
        Some((x, y)) => (x.as_str(), y.as_str()),
        None => ("x", "y"),
    };
    let keys: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok())
        .map(|n| n.trim_end_matches(".npy").to_string())
        .collect();
    let mut member = |key: &str| -> Result<(PathBuf, Npy)> {
        let name = PathBuf::from(format!("{}[{key}]", path.display()));
        let mut file = match archive.by_name(&format!("{key}.npy")) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(Error::format(
                    path,
                    format!(
                        "no array `{key}` in the archive (it holds: {}); name the images \
                         and labels arrays",
                        keys.join(", ")
                    ),
                ));
            }
            Err(e) => return Err(Error::format(path, format!("bad .npz member `{key}`: {e}"))),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::format(path, format!("corrupt .npz member `{key}`: {e}")))?;
        let npy = parse_npy(&name, &bytes)?;
        Ok((name, npy))
    };
    let (xname, x) = member(xk)?;
    let (yname, y) = member(yk)?;
    build(
        &xname,
        &x,
        &yname,
        &y,
        format!("NPZ {}", path.display()),
        hex(&hasher.finalize()),
        opts,
    )
}

/// Checks the shapes of images and labels against each other and the
/// model, and builds the dataset.
fn build(
    xname: &Path,
    x: &Npy,
    yname: &Path,
    y: &Npy,
    source: String,
    sha256: String,
    opts: &LoadOptions,
) -> Result<(Dataset, DataNotes)> {
    let (n, chw, layout) = image_shape(xname, &x.shape, opts)?;
    let labels = read_labels(yname, y, n, opts.num_classes)?;
    let total = n;
    let n = opts.limit.map_or(total, |l| l.min(total));
    let [c, h, w] = chw;
    let per = c * h * w;
    let unit = unit_values(xname, x, n * per, opts.range)?;
    let mut pixels = Vec::with_capacity(n * per);
    for item in unit.chunks_exact(per) {
        match layout {
            Layout::Nchw => pixels.extend_from_slice(item),
            Layout::Nhwc => {
                for ch in 0..c {
                    for p in 0..h * w {
                        pixels.push(item[p * c + ch]);
                    }
                }
            }
        }
    }
    let data = Dataset {
        pixels,
        shape: [n, c, h, w],
        labels: labels[..n].to_vec(),
        class_names: class_names(&labels, opts),
        source,
        sha256,
    };
    let notes = DataNotes {
        subset: describe_file_order(n, total),
        warnings: Vec::new(),
    };
    Ok((data, notes))
}

/// The class names of array data: the model's when it names them, else
/// `"0"`, `"1"`, ... (as many as the model has outputs, else as IDX numbers
/// them).
pub(crate) fn class_names(labels: &[u32], opts: &LoadOptions) -> Vec<String> {
    if let Some(names) = opts.class_names.as_ref().filter(|n| !n.is_empty()) {
        return names.clone();
    }
    let max = labels.iter().copied().max().unwrap_or(0) as usize;
    let classes = opts
        .num_classes
        .unwrap_or(if max < 10 { 10 } else { max + 1 });
    (0..classes).map(|i| i.to_string()).collect()
}

/// `N`, `[C, H, W]` and the layout of an images array, checked against the
/// model's channels and size.
fn image_shape(
    name: &Path,
    shape: &[usize],
    opts: &LoadOptions,
) -> Result<(usize, [usize; 3], Layout)> {
    let c = opts.channels;
    let fits =
        |chw: [usize; 3]| chw[0] == c && opts.size.is_none_or(|(h, w)| (chw[1], chw[2]) == (h, w));
    let model = match opts.size {
        Some((h, w)) => format!("[{c}, {h}, {w}]"),
        None => format!("{c} channels"),
    };
    let mismatch = |why: &str| {
        Error::data(
            name.display().to_string(),
            format!("the images array has shape {shape:?} but the model takes {model} inputs{why}"),
        )
    };
    let (n, nchw, nhwc) = match *shape {
        [n, h, w] if c == 1 => (n, [1, h, w], [1, h, w]),
        [n, a, b, d] => (n, [a, b, d], [d, a, b]),
        _ => return Err(mismatch(" (expected [N, C, H, W] or [N, H, W, C])")),
    };
    if n == 0 {
        return Err(Error::format(name, "the images array holds zero items"));
    }
    let chosen = match (fits(nchw), fits(nhwc), opts.arrays.layout) {
        // With one channel both readings are the same bytes.
        (true, true, None) if c != 1 => {
            return Err(Error::data(
                name.display().to_string(),
                format!(
                    "the images array has shape {shape:?}, which fits the model's {model} \
                     inputs both as N×C×H×W and as N×H×W×C; say which layout it has"
                ),
            ))
        }
        (true, _, None) | (true, _, Some(Layout::Nchw)) => (nchw, Layout::Nchw),
        (_, true, None) | (_, true, Some(Layout::Nhwc)) => (nhwc, Layout::Nhwc),
        (_, _, Some(layout)) => {
            return Err(mismatch(&format!(" (read as {layout:?})").to_uppercase()))
        }
        (false, false, None) => return Err(mismatch("")),
    };
    Ok((n, chosen.0, chosen.1))
}

/// The first `count` values of an images array in `[0, 1]`: bytes over 255,
/// floats mapped from the model's `range` (every float must lie inside it).
fn unit_values(name: &Path, x: &Npy, count: usize, range: (f32, f32)) -> Result<Vec<f32>> {
    match x.dtype {
        Dtype::U8 => Ok(x.data[..count]
            .iter()
            .map(|&b| f32::from(b) / 255.0)
            .collect()),
        Dtype::F32 => {
            let (lo, hi) = range;
            let mut out = Vec::with_capacity(count);
            for (i, b) in x.data.chunks_exact(4).take(count).enumerate() {
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if !(lo..=hi).contains(&v) {
                    return Err(Error::data(
                        name.display().to_string(),
                        format!(
                            "value {v} at flat index {i} is outside the model's input range \
                             [{lo}, {hi}] (float32 arrays are in the model's input units)"
                        ),
                    ));
                }
                out.push(if hi > lo { (v - lo) / (hi - lo) } else { 0.0 });
            }
            Ok(out)
        }
        Dtype::Int(..) => Err(Error::data(
            name.display().to_string(),
            format!(
                "images must be uint8 (0…255) or float32 (model units), got {}",
                x.descr
            ),
        )),
    }
}

/// The labels of a 1-D integer array of `n` items, each below `classes`.
fn read_labels(name: &Path, y: &Npy, n: usize, classes: Option<usize>) -> Result<Vec<u32>> {
    let err = |m: String| Error::data(name.display().to_string(), m);
    let size = match y.dtype {
        Dtype::U8 => 1,
        Dtype::Int(size, _) => size,
        Dtype::F32 => return Err(err(format!("labels must be integers, got {}", y.descr))),
    };
    let signed = matches!(y.dtype, Dtype::Int(_, true));
    if y.shape.len() != 1 {
        return Err(err(format!(
            "labels must be a 1-D array, got shape {:?}",
            y.shape
        )));
    }
    if y.shape[0] != n {
        return Err(err(format!(
            "count mismatch: {} labels for the {n} items of the images array",
            y.shape[0]
        )));
    }
    let mut labels = Vec::with_capacity(n);
    for (i, b) in y.data.chunks_exact(size).enumerate() {
        let mut wide = [0u8; 8];
        wide[..size].copy_from_slice(b);
        let value: i128 = if signed && b[size - 1] & 0x80 != 0 {
            i128::from(u64::from_le_bytes(wide)) - (1i128 << (8 * size))
        } else {
            i128::from(u64::from_le_bytes(wide))
        };
        let limit = classes.map_or(i128::from(u32::MAX), |c| c as i128);
        if value < 0 || value >= limit {
            let range = match classes {
                Some(c) => format!(
                    "the model has {c} classes (labels 0..={})",
                    c.saturating_sub(1)
                ),
                None => "labels must be non-negative 32-bit".into(),
            };
            return Err(err(format!(
                "label {value} at index {i} is out of range: {range}"
            )));
        }
        labels.push(value as u32);
    }
    Ok(labels)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// NPY v1 bytes of `descr` with `shape` and raw `data`.
    pub(crate) fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let tuple = if dims.len() == 1 {
            format!("({},)", dims[0])
        } else {
            format!("({})", dims.join(", "))
        };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = NPY_MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn f32s(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn opts(c: usize, h: usize, w: usize, labels: &Path) -> LoadOptions {
        LoadOptions {
            channels: c,
            size: Some((h, w)),
            num_classes: Some(10),
            arrays: ArrayOptions {
                labels: Some(labels.to_path_buf()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Two items of 3×2×2: item k, channel c, pixel p has byte 100k + 10c + p.
    fn nchw_bytes() -> Vec<u8> {
        let mut v = Vec::new();
        for k in 0..2u8 {
            for c in 0..3u8 {
                for p in 0..4u8 {
                    v.push(100 * k + 10 * c + p);
                }
            }
        }
        v
    }

    fn nhwc_bytes() -> Vec<u8> {
        let mut v = Vec::new();
        for k in 0..2u8 {
            for p in 0..4u8 {
                for c in 0..3u8 {
                    v.push(100 * k + 10 * c + p);
                }
            }
        }
        v
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn uint8_nchw_and_nhwc_give_the_same_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let y = write(dir.path(), "y.npy", &npy("<i8", &[2], &i64s(&[3, 7])));
        let a = write(
            dir.path(),
            "a.npy",
            &npy("|u1", &[2, 3, 2, 2], &nchw_bytes()),
        );
        let b = write(
            dir.path(),
            "b.npy",
            &npy("|u1", &[2, 2, 2, 3], &nhwc_bytes()),
        );
        let (da, _) = load_npy(&a, &opts(3, 2, 2, &y)).unwrap();
        let (db, _) = load_npy(&b, &opts(3, 2, 2, &y)).unwrap();
        assert_eq!(da.shape, [2, 3, 2, 2]);
        assert_eq!(da.pixels, db.pixels);
        assert_eq!(da.labels, vec![3, 7]);
        // Item 1, channel 1, pixel 1.
        assert_eq!(da.pixels[12 + 4 + 1], 111.0 / 255.0);
    }

    fn i64s(values: &[i64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn ambiguous_layout_needs_to_be_named() {
        let dir = tempfile::tempdir().unwrap();
        let y = write(dir.path(), "y.npy", &npy("|u1", &[1], &[0]));
        // [1, 3, 3, 3] fits [3, 3, 3] either way.
        let x = write(dir.path(), "x.npy", &npy("|u1", &[1, 3, 3, 3], &[9; 27]));
        let e = load_npy(&x, &opts(3, 3, 3, &y)).unwrap_err().to_string();
        assert!(e.contains("x.npy") && e.contains("layout"), "{e}");
        let mut o = opts(3, 3, 3, &y);
        o.arrays.layout = Some(Layout::Nhwc);
        assert!(load_npy(&x, &o).is_ok());
    }

    #[test]
    fn float32_in_range_maps_back_to_unit() {
        let dir = tempfile::tempdir().unwrap();
        let y = write(dir.path(), "y.npy", &npy("<u2", &[1], &[4, 0]));
        let x = write(
            dir.path(),
            "x.npy",
            &npy("<f4", &[1, 1, 2, 2], &f32s(&[-1.0, 0.0, 0.5, 1.0])),
        );
        let mut o = opts(1, 2, 2, &y);
        o.range = (-1.0, 1.0);
        let (d, _) = load_npy(&x, &o).unwrap();
        assert_eq!(d.pixels, vec![0.0, 0.5, 0.75, 1.0]);
        assert_eq!(d.labels, vec![4]);
    }

    #[test]
    fn float32_out_of_range_names_index_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let y = write(dir.path(), "y.npy", &npy("|u1", &[1], &[0]));
        let x = write(
            dir.path(),
            "x.npy",
            &npy("<f4", &[1, 1, 2, 2], &f32s(&[0.0, 0.2, 1.5, 1.0])),
        );
        let e = load_npy(&x, &opts(1, 2, 2, &y)).unwrap_err().to_string();
        assert!(e.contains("x.npy"), "{e}");
        assert!(e.contains("value 1.5 at flat index 2"), "{e}");
    }

    #[test]
    fn wrong_shape_names_both_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let y = write(dir.path(), "y.npy", &npy("|u1", &[1], &[0]));
        let x = write(dir.path(), "x.npy", &npy("|u1", &[1, 1, 2, 3], &[0; 6]));
        let e = load_npy(&x, &opts(1, 2, 2, &y)).unwrap_err().to_string();
        assert!(e.contains("x.npy") && e.contains("[1, 1, 2, 3]"), "{e}");
        assert!(e.contains("[1, 2, 2]"), "{e}");
    }

    #[test]
    fn labels_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let x = write(dir.path(), "x.npy", &npy("|u1", &[2, 1, 1, 1], &[0, 255]));
        let short = write(dir.path(), "short.npy", &npy("|u1", &[1], &[0]));
        let e = load_npy(&x, &opts(1, 1, 1, &short))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("short.npy") && e.contains("count mismatch"),
            "{e}"
        );
        let big = write(
            dir.path(),
            "big.npy",
            &npy("<i4", &[2], &[1, 0, 0, 0, 12, 0, 0, 0]),
        );
        let e = load_npy(&x, &opts(1, 1, 1, &big)).unwrap_err().to_string();
        assert!(
            e.contains("big.npy") && e.contains("label 12 at index 1"),
            "{e}"
        );
        let neg = write(dir.path(), "neg.npy", &npy("|i1", &[2], &[0, 0xff]));
        let e = load_npy(&x, &opts(1, 1, 1, &neg)).unwrap_err().to_string();
        assert!(e.contains("label -1 at index 1"), "{e}");
    }

    #[test]
    fn malformed_npy_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let y = write(dir.path(), "y.npy", &npy("|u1", &[1], &[0]));
        let mut bytes = npy("|u1", &[1, 1, 2, 2], &[0; 4]);
        bytes.pop();
        let x = write(dir.path(), "trunc.npy", &bytes);
        let e = load_npy(&x, &opts(1, 2, 2, &y)).unwrap_err().to_string();
        assert!(e.contains("trunc.npy") && e.contains("shorter"), "{e}");
        let x = write(dir.path(), "be.npy", &npy(">f4", &[1, 1, 2, 2], &[0; 16]));
        let e = load_npy(&x, &opts(1, 2, 2, &y)).unwrap_err().to_string();
        assert!(e.contains("big-endian"), "{e}");
        let fortran = npy("|u1", &[1, 1, 2, 2], &[0; 4]);
        let mut fortran = fortran;
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        let x = write(dir.path(), "f.npy", &fortran);
        let e = load_npy(&x, &opts(1, 2, 2, &y)).unwrap_err().to_string();
        assert!(e.contains("Fortran"), "{e}");
        let x = write(
            dir.path(),
            "nolabels.npy",
            &npy("|u1", &[1, 1, 2, 2], &[0; 4]),
        );
        let e = load_npy(&x, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("labels"), "{e}");
    }

    fn npz(path: &Path, members: &[(&str, Vec<u8>)]) {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in members {
            zip.start_file(format!("{name}.npy"), options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn npz_with_default_and_custom_keys() {
        let dir = tempfile::tempdir().unwrap();
        let x = npy("|u1", &[2, 3, 2, 2], &nchw_bytes());
        let y = npy("|u1", &[2], &[1, 2]);
        let a = dir.path().join("a.npz");
        npz(&a, &[("x", x.clone()), ("y", y.clone())]);
        let o = LoadOptions {
            channels: 3,
            size: Some((2, 2)),
            ..Default::default()
        };
        let (d, _) = load_npz(&a, &o).unwrap();
        assert_eq!(d.shape, [2, 3, 2, 2]);
        assert_eq!(d.labels, vec![1, 2]);
        let b = dir.path().join("b.npz");
        npz(&b, &[("images", x), ("targets", y)]);
        let e = load_npz(&b, &o).unwrap_err().to_string();
        assert!(e.contains("b.npz") && e.contains("images, targets"), "{e}");
        let mut o = o;
        o.arrays.npz_keys = Some(("images".into(), "targets".into()));
        let (db, _) = load_npz(&b, &o).unwrap();
        assert_eq!(db.pixels, d.pixels);
        assert_eq!(db.labels, d.labels);
    }
}
