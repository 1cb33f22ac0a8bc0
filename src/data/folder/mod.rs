//! Image folders laid out as torchvision's `ImageFolder`: one subfolder per
//! class, classes and files in the order torchvision gives them, images
//! (PNG, JPEG, BMP) decoded with the `image` crate and converted to the
//! model's channel count and size. Classes are the subfolders sorted by
//! name (byte-wise, as Python sorts `str`).
//!
//! This file reads a folder into a dataset; `scan` finds the image files in
//! torchvision's order, `labels` turns subfolders into labels (by name
//! against the model's class names, else numbered in sorted order) and
//! `decode` turns an image file into planes of pixels.

use std::fs;
use std::path::{Path, PathBuf};

use image::GenericImageView;
use sha2::{Digest, Sha256};

use super::subset::{describe_stratified, stratified_order};
use super::{fit_size, hex, resize_plane, DataNotes, Dataset, LoadOptions};
use crate::error::{Error, Result};

mod decode;
mod labels;
mod scan;
#[cfg(test)]
mod tests;

use decode::{decode, image_to_chw};
use labels::label_folders;
use scan::class_files;

/// Why the folder of `classes` looks like the one above the image folder (`data` holding
/// `test/cat/…`): every "class" folder holds folders and no image of its
/// own, and either there is one such folder or none of them is a class of
/// the model. `None` when the layout looks right.
fn one_level_too_high(
    classes: &[(Vec<u8>, String, PathBuf)],
    opts: &LoadOptions,
) -> Option<String> {
    let holds_only_folders =
        |dir: &Path| !scan::has_images(dir) && !scan::subfolders(dir).is_empty();
    if !classes.iter().all(|(_, _, dir)| holds_only_folders(dir)) {
        return None;
    }
    let names = opts.class_names.as_deref().unwrap_or_default();
    let none_is_a_class = !classes.iter().any(|(_, name, _)| names.contains(name));
    if classes.len() > 1 && !none_is_a_class {
        return None;
    }
    let below: Vec<String> = classes
        .iter()
        .map(|(_, _, dir)| dir.display().to_string())
        .collect();
    let (_, first, first_dir) = &classes[0];
    let inner = scan::subfolders(first_dir);
    let shown: Vec<&str> = inner.iter().take(5).map(String::as_str).collect();
    let more = if inner.len() > 5 { ", …" } else { "" };
    Some(format!(
        "its subfolder{} {} hold{} folders ({first} holds {}{more}), not images: the class \
         folders are one level down; did you mean {}?",
        if classes.len() == 1 { "" } else { "s" },
        classes
            .iter()
            .map(|(_, name, _)| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", "),
        if classes.len() == 1 { "s" } else { "" },
        shown.join(", "),
        below.join(" or ")
    ))
}

/// Loads the image folder `root` as a dataset fitted to `opts`.
pub(crate) fn load_folder(root: &Path, opts: &LoadOptions) -> Result<(Dataset, DataNotes)> {
    let source = format!("image folder {}", root.display());
    let mut classes: Vec<(Vec<u8>, String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        let name = entry.file_name();
        let path = entry.path();
        if name.as_encoded_bytes().starts_with(b".") || !path.is_dir() {
            continue;
        }
        classes.push((
            name.as_encoded_bytes().to_vec(),
            name.to_string_lossy().into_owned(),
            path,
        ));
    }
    if classes.is_empty() {
        let images = scan::images_in(root);
        let found = match images {
            0 => String::new(),
            1 => "; it holds 1 image directly, with no class to label it by".to_string(),
            n => format!("; it holds {n} images directly, with no class to label them by"),
        };
        return Err(Error::data(
            source,
            format!(
                "no class folders{found}: an image folder holds one subfolder per class, \
                 named by the class, each with that class's images{}",
                if images > 0 {
                    " (move them into one subfolder per class, or give them as a .npy or \
                     .npz array with their labels)"
                } else {
                    ""
                }
            ),
        ));
    }
    classes.sort_by(|a, b| a.0.cmp(&b.0));
    let folder_names: Vec<&str> = classes.iter().map(|(_, name, _)| name.as_str()).collect();
    if let Some(hint) = one_level_too_high(&classes, opts) {
        return Err(Error::data(source, hint));
    }
    let labeling = label_folders(&source, &folder_names, opts)?;

    let mut files_per_class: Vec<Vec<PathBuf>> = Vec::with_capacity(classes.len());
    let mut empty = Vec::new();
    for (_, _, dir) in &classes {
        let files = class_files(dir, &source)?;
        if files.is_empty() {
            empty.push(dir.display().to_string());
        }
        files_per_class.push(files);
    }
    if !empty.is_empty() {
        return Err(Error::data(
            source,
            format!(
                "found no valid file for the class folder(s) {} (supported extensions: \
                 png, jpg, jpeg, bmp)",
                empty.join(", ")
            ),
        ));
    }
    // Without a limit, every file in torchvision's order; with one, the first
    // N of the class-interleaved order, so that every class is represented.
    // Only the files chosen here are read.
    let sizes: Vec<usize> = files_per_class.iter().map(Vec::len).collect();
    let total: usize = sizes.iter().sum();
    let items: Vec<(PathBuf, u32)> = match opts.limit {
        Some(limit) if limit < total => stratified_order(&sizes, limit)
            .into_iter()
            .map(|(c, i)| (files_per_class[c][i].clone(), labeling.labels[c]))
            .collect(),
        _ => files_per_class
            .iter()
            .zip(&labeling.labels)
            .flat_map(|(files, &label)| files.iter().map(move |f| (f.clone(), label)))
            .collect(),
    };
    let subset = describe_stratified(items.len(), total);

    let c = opts.channels;
    let mut hasher = Sha256::new();
    let mut pixels = Vec::new();
    let mut labels = Vec::with_capacity(items.len());
    // The size every item must end up with, and whose size it is.
    let mut target: Option<((usize, usize), String)> =
        opts.size.map(|s| (s, "the model expects".to_string()));
    for (path, label) in &items {
        let img = decode(path, &mut hasher)?;
        let (w, h) = img.dimensions();
        let found = (h as usize, w as usize);
        if h == 0 || w == 0 {
            return Err(Error::format(
                path,
                format!("the image is {h}x{w}: it has no pixels"),
            ));
        }
        let (oh, ow) = match &target {
            Some((size, what)) => fit_size(path, found, *size, what, opts.resize)?,
            None => {
                target = Some((found, format!("the first image, {}, is", path.display())));
                found
            }
        };
        let chw = image_to_chw(&img, c);
        let hw = found.0 * found.1;
        for plane in chw.chunks_exact(hw) {
            pixels.extend(resize_plane(plane, found.0, found.1, oh, ow));
        }
        labels.push(*label);
    }
    let (h, w) = target.map_or((0, 0), |(s, _)| s);
    let data = Dataset {
        pixels,
        shape: [labels.len(), c, h, w],
        labels,
        class_names: labeling.class_names,
        source,
        sha256: hex(&hasher.finalize()),
    };
    let notes = DataNotes {
        subset,
        warnings: labeling.warnings,
    };
    Ok((data, notes))
}
