//! An IDX pair as a dataset: the labels file that goes with an images file
//! (or the one pair in a folder), and the two read, checked against each
//! other and fitted to the model's channels and size.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{gunzip_if_needed, parse_images, parse_labels};
use crate::data::subset::describe_file_order;
use crate::data::{fit_size, hex, resize_plane, DataNotes, Dataset, LoadOptions};
use crate::error::{Error, Result};

/// Every data format `load` accepts, for the error on any other file.
const ACCEPTED_DATA: &str = "the accepted data are: an IDX images file \
     (*-images-idx3-ubyte[.gz], its labels file beside it) or a folder holding such a pair; an \
     image folder with one subfolder per class (PNG, JPEG, BMP); a .npy array of images with a \
     labels file, or a .npz holding images and labels; a CIFAR-10 or CIFAR-100 binary batch \
     (.bin)";

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
            ACCEPTED_DATA
        };
        let image = [".png", ".jpg", ".jpeg", ".bmp"]
            .iter()
            .any(|e| name.to_lowercase().ends_with(e));
        let single = if image {
            "a single image is not a dataset: put it in an image folder, in its class's \
             subfolder. "
        } else {
            ""
        };
        return Err(Error::data(
            images.display().to_string(),
            format!("not a dataset: {single}{hint}"),
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
