//! IDX files, the format MNIST is distributed in: reading an images file and
//! its labels file (raw or gzipped, gzip recognised by its magic bytes) into a
//! [`Dataset`], finding the labels file that goes with an images file, and
//! writing both kinds of file.
//!
//! An IDX file is a big-endian header (magic `0x00000803` = 2051 and the
//! dimensions `N, H, W` for images; magic `0x00000801` = 2049 and `N` for
//! labels) followed by one unsigned byte per pixel or label.

use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use super::subset::describe_file_order;
use super::{fit_size, hex, resize_plane, DataNotes, Dataset, LoadOptions};
use crate::error::{Error, Result};

/// Magic number of an IDX images file (unsigned bytes, 3 dimensions): 2051.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX labels file (unsigned bytes, 1 dimension): 2049.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const IMAGES_HEADER: usize = 16;
const LABELS_HEADER: usize = 8;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The contents of an IDX images file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub n: usize,
    /// Rows of each image.
    pub height: usize,
    /// Columns of each image.
    pub width: usize,
    /// `n * height * width` bytes, image after image, row-major.
    pub pixels: Vec<u8>,
}

/// Reads an IDX images file (raw or gzipped).
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    parse_images(path, read_raw(path, None)?)
}

/// Reads an IDX labels file (raw or gzipped).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    parse_labels(path, read_raw(path, None)?)
}

/// Writes `n` images of `h×w` bytes as an IDX images file, gzipped when
/// `gzip` is set (deterministically: the gzip header carries no time stamp).
pub fn write_idx_images(
    path: &Path,
    n: usize,
    h: usize,
    w: usize,
    pixels: &[u8],
    gzip: bool,
) -> Result<()> {
    let dims = [n, h, w]
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<std::result::Result<Vec<u32>, _>>()
        .map_err(|_| Error::Invalid(format!("IDX dimensions must be below 2^32: {n}x{h}x{w}")))?;
    let expected = n.checked_mul(h).and_then(|v| v.checked_mul(w));
    if expected != Some(pixels.len()) {
        return Err(Error::Invalid(format!(
            "{n} images of {h}x{w} need {n}*{h}*{w} bytes, got {}",
            pixels.len()
        )));
    }
    let mut header = Vec::with_capacity(IMAGES_HEADER);
    header.extend_from_slice(&IMAGES_MAGIC.to_be_bytes());
    for d in dims {
        header.extend_from_slice(&d.to_be_bytes());
    }
    write_file(path, &header, pixels, gzip)
}

/// Writes labels as an IDX labels file, gzipped when `gzip` is set
/// (deterministically: the gzip header carries no time stamp).
pub fn write_idx_labels(path: &Path, labels: &[u8], gzip: bool) -> Result<()> {
    let n = u32::try_from(labels.len())
        .map_err(|_| Error::Invalid(format!("too many labels for IDX: {}", labels.len())))?;
    let mut header = Vec::with_capacity(LABELS_HEADER);
    header.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    header.extend_from_slice(&n.to_be_bytes());
    write_file(path, &header, labels, gzip)
}

fn write_file(path: &Path, header: &[u8], body: &[u8], gzip: bool) -> Result<()> {
    let io = |e| Error::io(path, e);
    let file = BufWriter::new(fs::File::create(path).map_err(io)?);
    if gzip {
        let mut enc = GzEncoder::new(file, Compression::best());
        enc.write_all(header).map_err(io)?;
        enc.write_all(body).map_err(io)?;
        enc.finish().map_err(io)?.flush().map_err(io)?;
    } else {
        let mut file = file;
        file.write_all(header).map_err(io)?;
        file.write_all(body).map_err(io)?;
        file.flush().map_err(io)?;
    }
    Ok(())
}

/// Reads a file's bytes (hashing them as they are on disk), un-gzipping them
/// when they start with the gzip magic.
fn read_raw(path: &Path, hasher: Option<&mut Sha256>) -> Result<Vec<u8>> {
    let raw = fs::read(path).map_err(|e| Error::io(path, e))?;
    if let Some(h) = hasher {
        h.update(&raw);
    }
    gunzip_if_needed(path, raw)
}

/// `raw` itself, or its decompression when it starts with the gzip magic.
fn gunzip_if_needed(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::format(path, format!("corrupt or truncated gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

fn describe_magic(m: u32) -> String {
    match m {
        IMAGES_MAGIC => "2051, an IDX images file".into(),
        LABELS_MAGIC => "2049, an IDX labels file".into(),
        m if m >> 16 == 0 => format!(
            "an IDX file of type 0x{:02x} with {} dimensions",
            (m >> 8) & 0xff,
            m & 0xff
        ),
        _ => "not an IDX file".into(),
    }
}

fn check_magic(path: &Path, bytes: &[u8], expected: u32, header: usize, what: &str) -> Result<()> {
    if bytes.len() < 4 {
        return Err(Error::format(
            path,
            format!(
                "header too short: {} bytes, an IDX {what} header is {header} bytes",
                bytes.len()
            ),
        ));
    }
    let magic = be32(bytes, 0) as u32;
    if magic != expected {
        return Err(Error::format(
            path,
            format!(
                "bad magic number 0x{magic:08x} ({}); expected 0x{expected:08x} ({})",
                describe_magic(magic),
                describe_magic(expected)
            ),
        ));
    }
    if bytes.len() < header {
        return Err(Error::format(
            path,
            format!(
                "header too short: {} bytes, an IDX {what} header is {header} bytes",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

fn check_length(path: &Path, have: usize, expected: usize, claim: &str) -> Result<()> {
    if have < expected {
        Err(Error::format(
            path,
            format!(
                "data shorter than the header claims: {claim} need {expected} bytes, the file has {have}"
            ),
        ))
    } else if have > expected {
        Err(Error::format(
            path,
            format!(
                "{} bytes of data after the {claim} that the header declares",
                have - expected
            ),
        ))
    } else {
        Ok(())
    }
}

fn parse_images(path: &Path, mut bytes: Vec<u8>) -> Result<IdxImages> {
    check_magic(path, &bytes, IMAGES_MAGIC, IMAGES_HEADER, "images")?;
    let (n, height, width) = (be32(&bytes, 4), be32(&bytes, 8), be32(&bytes, 12));
    if n == 0 {
        return Err(Error::format(
            path,
            "the header says the file holds zero images",
        ));
    }
    if height == 0 || width == 0 {
        return Err(Error::format(
            path,
            format!("the header says the images are {height}x{width}"),
        ));
    }
    let claim = format!("{n} images of {height}x{width}");
    let expected = n
        .checked_mul(height)
        .and_then(|v| v.checked_mul(width))
        .ok_or_else(|| Error::format(path, format!("the header's {claim} are too large")))?;
    check_length(path, bytes.len() - IMAGES_HEADER, expected, &claim)?;
    bytes.drain(..IMAGES_HEADER);
    Ok(IdxImages {
        n,
        height,
        width,
        pixels: bytes,
    })
}

fn parse_labels(path: &Path, mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    check_magic(path, &bytes, LABELS_MAGIC, LABELS_HEADER, "labels")?;
    let n = be32(&bytes, 4);
    if n == 0 {
        return Err(Error::format(
            path,
            "the header says the file holds zero labels",
        ));
    }
    check_length(path, bytes.len() - LABELS_HEADER, n, &format!("{n} labels"))?;
    bytes.drain(..LABELS_HEADER);
    Ok(bytes)
}

/// Whether `name` is that of an IDX images file as found in a folder.
fn is_images_name(name: &str) -> bool {
    !name.starts_with('.')
        && (name.ends_with("-images-idx3-ubyte") || name.ends_with("-images-idx3-ubyte.gz"))
}

/// The IDX images file in `dir` and its labels file, if `dir` holds one;
/// an error when it holds several, or one without labels.
pub(crate) fn find_in_dir(dir: &Path) -> Result<Option<(PathBuf, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_images_name(name) && entry.path().is_file() {
            found.push(entry.path());
        }
    }
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => {
            let images = found.remove(0);
            let labels = labels_path_for(&images)?;
            Ok(Some((images, labels)))
        }
        _ => Err(Error::data(
            dir.display().to_string(),
            format!(
                "the folder holds several IDX images files ({}); pass the one to use",
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The labels file that goes with the IDX images file `images`: its name with
/// `labels-idx1` for `images-idx3`, as it is, then with `.gz` added or removed.
pub(crate) fn labels_path_for(images: &Path) -> Result<PathBuf> {
    let name = images
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if !name.contains("images-idx3") {
        let hint = if name.contains("labels-idx1") {
            "it looks like an IDX labels file; pass the images file (*-images-idx3-ubyte[.gz]) \
             or its folder"
        } else {
            "expected an IDX images file (named *-images-idx3-ubyte[.gz]) or a folder"
        };
        return Err(Error::data(
            images.display().to_string(),
            format!("not a dataset: {hint}"),
        ));
    }
    let base = name.replace("images-idx3", "labels-idx1");
    let other = match base.strip_suffix(".gz") {
        Some(raw) => raw.to_string(),
        None => format!("{base}.gz"),
    };
    let candidates = [images.with_file_name(&base), images.with_file_name(&other)];
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    Err(Error::data(
        images.display().to_string(),
        format!(
            "no labels file beside this IDX images file (looked for {} and {})",
            candidates[0].display(),
            candidates[1].display()
        ),
    ))
}

/// Loads the IDX pair `images` + `labels` as a dataset fitted to `opts`.
pub(crate) fn load_idx(
    images: &Path,
    labels: &Path,
    opts: &LoadOptions,
) -> Result<(Dataset, DataNotes)> {
    let image_bytes = fs::read(images).map_err(|e| Error::io(images, e))?;
    let label_bytes = fs::read(labels).map_err(|e| Error::io(labels, e))?;
    idx_from_bytes(images, image_bytes, labels, label_bytes, opts)
}

/// Builds a dataset from the (raw or gzipped) bytes of an IDX pair; the paths
/// only name the files in errors and in the dataset's `source`.
pub(crate) fn idx_from_bytes(
    images: &Path,
    image_bytes: Vec<u8>,
    labels: &Path,
    label_bytes: Vec<u8>,
    opts: &LoadOptions,
) -> Result<(Dataset, DataNotes)> {
    let source = format!("IDX {}", images.display());
    let mut hasher = Sha256::new();
    hasher.update(&image_bytes);
    hasher.update(&label_bytes);
    let imgs = parse_images(images, gunzip_if_needed(images, image_bytes)?)?;
    let labs = parse_labels(labels, gunzip_if_needed(labels, label_bytes)?)?;
    if imgs.n != labs.len() {
        return Err(Error::data(
            source,
            format!(
                "count mismatch: the images file has {} items but the labels file {} has {}",
                imgs.n,
                labels.display(),
                labs.len()
            ),
        ));
    }
    let (h, w) = (imgs.height, imgs.width);
    let (oh, ow) = match opts.size {
        Some(size) => fit_size(images, (h, w), size, "the model expects", opts.resize)?,
        None => (h, w),
    };
    let n = opts.limit.map_or(imgs.n, |l| l.min(imgs.n));
    let c = opts.channels;
    let mut pixels = Vec::with_capacity(n * c * oh * ow);
    for item in imgs.pixels.chunks_exact(h * w).take(n) {
        let plane: Vec<f32> = item.iter().map(|&b| f32::from(b) / 255.0).collect();
        let plane = resize_plane(&plane, h, w, oh, ow);
        for _ in 0..c {
            pixels.extend_from_slice(&plane);
        }
    }
    let max = labs.iter().copied().max().unwrap_or(0) as usize;
    let classes = if max < 10 { 10 } else { max + 1 };
    let data = Dataset {
        pixels,
        shape: [n, c, oh, ow],
        labels: labs[..n].iter().map(|&l| u32::from(l)).collect(),
        class_names: (0..classes).map(|i| i.to_string()).collect(),
        source,
        sha256: hex(&hasher.finalize()),
    };
    let notes = DataNotes {
        subset: describe_file_order(n, imgs.n),
        warnings: Vec::new(),
    };
    Ok((data, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::load;

    fn opts() -> LoadOptions {
        LoadOptions::default()
    }

    /// Writes `n` 3×2 images whose pixel j of image i is `i * 10 + j`, and
    /// labels `i % 10`, under `dir` with the given prefix.
    fn write_pair(dir: &Path, prefix: &str, n: usize, gzip: bool) -> (PathBuf, PathBuf) {
        let ext = if gzip { ".gz" } else { "" };
        let images = dir.join(format!("{prefix}-images-idx3-ubyte{ext}"));
        let labels = dir.join(format!("{prefix}-labels-idx1-ubyte{ext}"));
        let pixels: Vec<u8> = (0..n)
            .flat_map(|i| (0..6).map(move |j| (i * 10 + j) as u8))
            .collect();
        write_idx_images(&images, n, 3, 2, &pixels, gzip).unwrap();
        let labs: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write_idx_labels(&labels, &labs, gzip).unwrap();
        (images, labels)
    }

    fn err_text(r: Result<impl std::fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn roundtrip_raw_and_gzipped() {
        let dir = tempfile::tempdir().unwrap();
        for gzip in [false, true] {
            let (images, labels) = write_pair(dir.path(), &format!("g{gzip}"), 4, gzip);
            let raw = fs::read(&images).unwrap();
            assert_eq!(raw.starts_with(&GZIP_MAGIC), gzip);
            if !gzip {
                assert_eq!(&raw[..4], &[0, 0, 8, 3]);
                assert_eq!(&raw[4..8], &[0, 0, 0, 4]);
                assert_eq!(raw.len(), 16 + 24);
            }
            let imgs = read_idx_images(&images).unwrap();
            assert_eq!((imgs.n, imgs.height, imgs.width), (4, 3, 2));
            assert_eq!(imgs.pixels[6 * 3 + 5], 35);
            assert_eq!(read_idx_labels(&labels).unwrap(), vec![0, 1, 2, 3]);

            let d = load(&images, &opts()).unwrap();
            assert_eq!(d.shape, [4, 1, 3, 2]);
            assert_eq!(d.labels, vec![0, 1, 2, 3]);
            assert_eq!(d.item(3)[5], 35.0 / 255.0);
            assert_eq!(d.class_names.len(), 10);
            assert_eq!(d.class_names[9], "9");
            assert_eq!(d.source, format!("IDX {}", images.display()));
            let mut h = Sha256::new();
            h.update(fs::read(&images).unwrap());
            h.update(fs::read(&labels).unwrap());
            assert_eq!(d.sha256, hex(&h.finalize()));
        }
    }

    #[test]
    fn gzip_is_deterministic_and_detected_by_magic() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        write_idx_labels(&a, &[1, 2, 3], true).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        write_idx_labels(&b, &[1, 2, 3], true).unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
        // Gzipped content in a file whose name has no .gz is still read.
        assert_eq!(read_idx_labels(&a).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn bad_magic_says_found_and_expected() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = write_pair(dir.path(), "x", 2, false);
        let e = err_text(read_idx_images(&labels));
        assert!(e.contains("x-labels-idx1-ubyte"), "{e}");
        assert!(e.contains("0x00000801"), "{e}");
        assert!(e.contains("0x00000803"), "{e}");
        assert!(e.contains("2051"), "{e}");
        let e = err_text(read_idx_labels(&images));
        assert!(e.contains("bad magic number 0x00000803"), "{e}");
        let junk = dir.path().join("junk-images-idx3-ubyte");
        fs::write(&junk, b"PK\x03\x04 not idx at all").unwrap();
        let e = err_text(read_idx_images(&junk));
        assert!(e.contains("junk-images-idx3-ubyte"), "{e}");
        assert!(e.contains("not an IDX file"), "{e}");
    }

    #[test]
    fn header_too_short() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t-images-idx3-ubyte");
        fs::write(&p, [0, 0, 8, 3, 0, 0, 0, 1, 0, 0]).unwrap();
        let e = err_text(read_idx_images(&p));
        assert!(e.contains("header too short: 10 bytes"), "{e}");
        assert!(e.contains("t-images-idx3-ubyte"), "{e}");
        fs::write(&p, [0, 0]).unwrap();
        let e = err_text(read_idx_images(&p));
        assert!(e.contains("header too short: 2 bytes"), "{e}");
        fs::write(&p, []).unwrap();
        assert!(err_text(read_idx_images(&p)).contains("header too short: 0 bytes"));
    }

    #[test]
    fn truncated_and_overlong_data() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = write_pair(dir.path(), "t", 3, false);
        let mut raw = fs::read(&images).unwrap();
        raw.truncate(raw.len() - 1);
        fs::write(&images, &raw).unwrap();
        let e = err_text(load(&images, &opts()));
        assert!(e.contains("t-images-idx3-ubyte"), "{e}");
        assert!(e.contains("data shorter than the header claims"), "{e}");
        assert!(e.contains("need 18 bytes, the file has 17"), "{e}");

        let mut raw = fs::read(&labels).unwrap();
        raw.extend_from_slice(&[7, 7]);
        fs::write(&labels, &raw).unwrap();
        let e = err_text(read_idx_labels(&labels));
        assert!(e.contains("2 bytes of data after the 3 labels"), "{e}");
    }

    #[test]
    fn truncated_gzip_names_file() {
        let dir = tempfile::tempdir().unwrap();
        let (images, _) = write_pair(dir.path(), "z", 50, true);
        let raw = fs::read(&images).unwrap();
        fs::write(&images, &raw[..raw.len() / 2]).unwrap();
        let e = err_text(load(&images, &opts()));
        assert!(e.contains("z-images-idx3-ubyte.gz"), "{e}");
        assert!(e.contains("gzip"), "{e}");
    }

    #[test]
    fn zero_items_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e-images-idx3-ubyte");
        write_idx_images(&p, 0, 28, 28, &[], false).unwrap();
        assert!(err_text(read_idx_images(&p)).contains("zero images"));
        let l = dir.path().join("e-labels-idx1-ubyte");
        write_idx_labels(&l, &[], false).unwrap();
        assert!(err_text(read_idx_labels(&l)).contains("zero labels"));
    }

    #[test]
    fn label_count_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = write_pair(dir.path(), "m", 3, true);
        write_idx_labels(&labels, &[1, 2], true).unwrap();
        let e = err_text(load(&images, &opts()));
        assert!(e.contains("count mismatch"), "{e}");
        assert!(e.contains("has 3 items"), "{e}");
        assert!(e.contains("m-labels-idx1-ubyte.gz has 2"), "{e}");
    }

    #[test]
    fn labels_file_lookup() {
        let dir = tempfile::tempdir().unwrap();
        // gzipped images, raw labels
        let images = dir.path().join("s-images-idx3-ubyte.gz");
        write_idx_images(&images, 1, 1, 1, &[255], true).unwrap();
        let e = err_text(load(&images, &opts()));
        assert!(e.contains("no labels file"), "{e}");
        assert!(e.contains("s-labels-idx1-ubyte.gz"), "{e}");
        write_idx_labels(&dir.path().join("s-labels-idx1-ubyte"), &[7], false).unwrap();
        let d = load(&images, &opts()).unwrap();
        assert_eq!(d.labels, vec![7]);
        assert_eq!(d.pixels, vec![1.0]);
        // a labels file passed in place of the images file
        let e = err_text(load(&dir.path().join("s-labels-idx1-ubyte"), &opts()));
        assert!(e.contains("labels file"), "{e}");
        // any other file
        let other = dir.path().join("notes.txt");
        fs::write(&other, "hi").unwrap();
        let e = err_text(load(&other, &opts()));
        assert!(
            e.contains("notes.txt") && e.contains("not a dataset"),
            "{e}"
        );
    }

    #[test]
    fn directory_dispatch() {
        let dir = tempfile::tempdir().unwrap();
        write_pair(dir.path(), "only", 5, true);
        fs::create_dir(dir.path().join("a-class-folder")).unwrap();
        let d = load(dir.path(), &opts()).unwrap();
        assert!(d.source.starts_with("IDX "), "{}", d.source);
        assert_eq!(d.len(), 5);
        write_pair(dir.path(), "second", 2, false);
        let e = err_text(load(dir.path(), &opts()));
        assert!(e.contains("several IDX images files"), "{e}");
        assert!(
            e.contains("only-images") && e.contains("second-images"),
            "{e}"
        );
    }

    #[test]
    fn channels_size_resize_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = write_pair(dir.path(), "c", 12, false);
        write_idx_labels(&labels, &(0..12).collect::<Vec<u8>>(), false).unwrap();
        let d = load(
            &images,
            &LoadOptions {
                channels: 3,
                limit: Some(2),
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(d.shape, [2, 3, 3, 2]);
        assert_eq!(d.labels, vec![0, 1]);
        let item = d.item(1);
        assert_eq!(&item[0..6], &item[6..12]);
        assert_eq!(&item[0..6], &item[12..18]);
        assert_eq!(item[0], 10.0 / 255.0);
        // labels reach 11 in the file: one class name per label
        assert_eq!(d.class_names.len(), 12);
        // A limit keeps the file order, and says so.
        let notes = |limit| {
            let opts = LoadOptions { limit, ..opts() };
            crate::data::load_with_notes(&images, &opts).unwrap().1
        };
        assert_eq!(notes(Some(2)).subset, "first 2 of 12 in file order");
        assert_eq!(notes(Some(50)).subset, "all 12 in file order");
        assert_eq!(notes(None).subset, "all 12 in file order");

        let e = err_text(load(
            &images,
            &LoadOptions {
                size: Some((28, 28)),
                ..opts()
            },
        ));
        assert!(e.contains("c-images-idx3-ubyte"), "{e}");
        assert!(e.contains("3x2") && e.contains("28x28"), "{e}");
        let d = load(
            &images,
            &LoadOptions {
                size: Some((6, 4)),
                resize: true,
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(d.shape, [12, 1, 6, 4]);
        assert_eq!(d.pixels.len(), 12 * 24);
        assert!(d.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn write_rejects_wrong_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w");
        assert!(matches!(
            write_idx_images(&p, 2, 2, 2, &[0; 7], false),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn real_mnist_test_split() {
        let images = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/mnist/test-images-idx3-ubyte.gz"
        ));
        if !images.exists() {
            println!("skipped: {} is absent", images.display());
            return;
        }
        let d = load(images, &opts()).unwrap();
        assert_eq!(d.shape, [2000, 1, 28, 28]);
        assert_eq!(d.labels.len(), 2000);
        assert!(d.labels.iter().all(|&l| l < 10));
        assert_eq!(d.class_names.len(), 10);
        d.labels_in_range(10).unwrap();
        assert!(d.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
        let mean = d.pixels.iter().sum::<f32>() / d.pixels.len() as f32;
        assert!((0.05..0.25).contains(&mean), "mean pixel {mean}");
        // every class is present
        for c in 0..10 {
            assert!(d.labels.contains(&c), "class {c} missing");
        }
    }
}
