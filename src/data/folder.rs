//! Image folders laid out as torchvision's `ImageFolder`: one subfolder per
//! class, classes and files in the order torchvision gives them, images
//! (PNG, JPEG, BMP) decoded with the `image` crate and converted to the
//! model's channel count and size. This file also owns how subfolders become
//! labels: matched by name to the model's class names when its spec has
//! them, else numbered in sorted order as torchvision numbers them.
//!
//! Order follows torchvision: classes are the subfolders sorted by name
//! (byte-wise, as Python sorts `str`); within a class, files are found
//! recursively as `os.walk` finds them, folders sorted by path and files by
//! name. Files whose extension is not an image extension are skipped; hidden
//! entries (names starting with `.`) are skipped too.

use std::fs;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GenericImageView};
use sha2::{Digest, Sha256};

use super::subset::{describe_stratified, stratified_order};
use super::{fit_size, hex, resize_plane, DataNotes, Dataset, LoadOptions};
use crate::error::{Error, Result};

/// The extensions read (lowercase, compared case-insensitively).
const SUPPORTED: [&str; 4] = [".png", ".jpg", ".jpeg", ".bmp"];
/// torchvision's other image extensions: files with them would be part of
/// the dataset in torchvision, so they are an error here, not skipped.
const UNSUPPORTED: [&str; 5] = [".ppm", ".pgm", ".tif", ".tiff", ".webp"];
/// How deep class folders may nest (guards against symlink loops).
const MAX_DEPTH: usize = 64;

fn has_ext(name: &str, exts: &[&str]) -> bool {
    let lower = name.to_lowercase();
    exts.iter().any(|e| lower.ends_with(e))
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
        return Err(Error::data(
            source,
            "no class folders: an image folder holds one subfolder per class, \
             each with that class's images",
        ));
    }
    classes.sort_by(|a, b| a.0.cmp(&b.0));
    let folder_names: Vec<&str> = classes.iter().map(|(_, name, _)| name.as_str()).collect();
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

/// How an image folder's class subfolders become labels.
struct Labeling {
    /// The label of each subfolder, in sorted folder order.
    labels: Vec<u32>,
    /// The name of each label (the dataset's `class_names`).
    class_names: Vec<String>,
    /// A note for the report when the labels may not be the model's.
    warnings: Vec<String>,
}

/// Labels the sorted subfolders `folders` of `source`: by name against the
/// model's class names when `opts` has them, else by sorted position as
/// torchvision numbers them (with a warning unless every folder is named by
/// the number it gets). Errors name the folder and list the model's classes.
fn label_folders(source: &str, folders: &[&str], opts: &LoadOptions) -> Result<Labeling> {
    let names = opts.class_names.as_deref().filter(|n| !n.is_empty());
    let Some(names) = names else {
        if let Some(k) = opts.num_classes {
            if folders.len() > k {
                return Err(Error::data(
                    source,
                    format!(
                        "{} class folders but the model has {k} classes: folders are numbered in \
                         sorted order, so {} would get labels the model lacks (name the \
                         model's classes under `classes` in its spec to match folders by name)",
                        folders.len(),
                        quoted(&folders[k..])
                    ),
                ));
            }
        }
        let labels = (0..folders.len())
            .map(|l| {
                u32::try_from(l).map_err(|_| Error::data(source, "more than 2^32 class folders"))
            })
            .collect::<Result<Vec<u32>>>()?;
        let mut warnings = Vec::new();
        if !named_by_their_labels(folders) {
            let shown: Vec<String> = folders
                .iter()
                .take(5)
                .enumerate()
                .map(|(l, f)| format!("{f} → {l}"))
                .collect();
            let more = if folders.len() > 5 { ", …" } else { "" };
            warnings.push(format!(
                "the model's spec names no classes, so the {} class folders of {source} are \
                 numbered in sorted order ({}{more}); if the model's outputs are in another \
                 order, its accuracy here is wrong: list its class names in output order under \
                 `classes` in the spec",
                folders.len(),
                shown.join(", ")
            ));
        }
        return Ok(Labeling {
            labels,
            class_names: folders.iter().map(|f| f.to_string()).collect(),
            warnings,
        });
    };
    let mut labels = Vec::with_capacity(folders.len());
    let mut unknown = Vec::new();
    for folder in folders {
        let outputs: Vec<usize> = (0..names.len()).filter(|&i| names[i] == *folder).collect();
        match outputs[..] {
            [] => unknown.push(*folder),
            [label] => labels.push(
                u32::try_from(label).map_err(|_| Error::data(source, "more than 2^32 classes"))?,
            ),
            _ => {
                return Err(Error::data(
                    source,
                    format!(
                        "class folder `{folder}` matches {} of the model's classes (outputs {:?}): \
                         class names in the spec must be unique to match folders by name",
                        outputs.len(),
                        outputs
                    ),
                ))
            }
        }
    }
    if !unknown.is_empty() {
        let listed: Vec<&str> = names.iter().take(50).map(String::as_str).collect();
        let more = if names.len() > 50 { ", …" } else { "" };
        return Err(Error::data(
            source,
            format!(
                "class folder(s) {} are not classes of the model, whose {} classes are: {}{more}",
                quoted(&unknown),
                names.len(),
                listed.join(", ")
            ),
        ));
    }
    Ok(Labeling {
        labels,
        class_names: names.to_vec(),
        warnings: Vec::new(),
    })
}

/// Whether every folder is named by the label its sorted position gives it
/// (`0`, `1`, … `9`, written as Rust and Python write integers): then sorted
/// numbering cannot be mistaken for anything else.
fn named_by_their_labels(folders: &[&str]) -> bool {
    folders
        .iter()
        .enumerate()
        .all(|(label, name)| *name == label.to_string())
}

/// `` `a`, `b` `` for error messages.
fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The image files of one class folder, in torchvision's order.
fn class_files(dir: &Path, source: &str) -> Result<Vec<PathBuf>> {
    let mut groups: Vec<(Vec<u8>, Vec<PathBuf>)> = Vec::new();
    walk(dir, Vec::new(), 0, source, &mut groups)?;
    // os.walk's roots sorted as strings: the class folder's own path is a
    // prefix of its subfolders', so relative keys sort the same way.
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(groups.into_iter().flat_map(|(_, files)| files).collect())
}

fn walk(
    dir: &Path,
    key: Vec<u8>,
    depth: usize,
    source: &str,
    groups: &mut Vec<(Vec<u8>, Vec<PathBuf>)>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::data(
            source,
            format!(
                "{} is nested more than {MAX_DEPTH} folders deep (a symbolic link loop?)",
                dir.display()
            ),
        ));
    }
    let mut files: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    let mut subdirs: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let bytes = name.as_encoded_bytes().to_vec();
        if bytes.starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let lossy = name.to_string_lossy();
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => subdirs.push((bytes, path)),
            Ok(_) if has_ext(&lossy, &SUPPORTED) => files.push((bytes, path)),
            Ok(_) if has_ext(&lossy, &UNSUPPORTED) => {
                return Err(Error::format(
                    &path,
                    "this image format cannot be read (supported: png, jpg, jpeg, bmp); \
                     convert the file or move it out of the folder",
                ))
            }
            Ok(_) => {}
            Err(e) if has_ext(&lossy, &SUPPORTED) => return Err(Error::io(&path, e)),
            Err(_) => {}
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, path) in subdirs {
        let mut sub = key.clone();
        sub.push(b'/');
        sub.extend_from_slice(&name);
        walk(&path, sub, depth + 1, source, groups)?;
    }
    groups.push((key, files.into_iter().map(|(_, p)| p).collect()));
    Ok(())
}

/// Reads and decodes one image, hashing its bytes.
fn decode(path: &Path, hasher: &mut Sha256) -> Result<DynamicImage> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    hasher.update(&bytes);
    let format = image::guess_format(&bytes)
        .or_else(|_| image::ImageFormat::from_path(path))
        .map_err(|_| Error::format(path, "not a PNG, JPEG or BMP image"))?;
    image::load_from_memory_with_format(&bytes, format)
        .map_err(|e| Error::format(path, format!("cannot decode the image: {e}")))
}

/// The image as `channels` planes of `H×W` values in `[0, 1]` (alpha dropped).
fn image_to_chw(img: &DynamicImage, channels: usize) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let hw = w as usize * h as usize;
    let mut out = vec![0f32; channels * hw];
    let u8_unit = |v: u8| f32::from(v) / 255.0;
    // PIL's convert("L"): ITU-R 601 luma in 16-bit fixed point, rounded.
    let u8_luma = |r: u8, g: u8, b: u8| {
        let l = (u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16;
        l as f32 / 255.0
    };
    let u16_unit = |v: u16| f32::from(v) / 65535.0;
    let u16_luma = |r: u16, g: u16, b: u16| {
        (0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)) / 65535.0
    };
    match img {
        DynamicImage::ImageLuma8(b) => fill(&mut out, b.as_raw(), 1, false, u8_unit, u8_luma),
        DynamicImage::ImageLumaA8(b) => fill(&mut out, b.as_raw(), 2, false, u8_unit, u8_luma),
        DynamicImage::ImageRgb8(b) => fill(&mut out, b.as_raw(), 3, true, u8_unit, u8_luma),
        DynamicImage::ImageRgba8(b) => fill(&mut out, b.as_raw(), 4, true, u8_unit, u8_luma),
        DynamicImage::ImageLuma16(b) => fill(&mut out, b.as_raw(), 1, false, u16_unit, u16_luma),
        DynamicImage::ImageLumaA16(b) => fill(&mut out, b.as_raw(), 2, false, u16_unit, u16_luma),
        DynamicImage::ImageRgb16(b) => fill(&mut out, b.as_raw(), 3, true, u16_unit, u16_luma),
        DynamicImage::ImageRgba16(b) => fill(&mut out, b.as_raw(), 4, true, u16_unit, u16_luma),
        other => {
            let rgb = other.to_rgb32f();
            fill(
                &mut out,
                rgb.as_raw(),
                3,
                true,
                |v: f32| v.clamp(0.0, 1.0),
                |r, g, b| (0.299 * r + 0.587 * g + 0.114 * b).clamp(0.0, 1.0),
            )
        }
    }
    out
}

/// Fills `out` (C planes) from interleaved samples with `stride` samples per
/// pixel, the first one grey or the first three RGB.
fn fill<T: Copy>(
    out: &mut [f32],
    src: &[T],
    stride: usize,
    rgb: bool,
    unit: impl Fn(T) -> f32,
    luma: impl Fn(T, T, T) -> f32,
) {
    let channels = if rgb { 3 } else { 1 };
    let hw = src.len() / stride;
    let planes = out.len() / hw.max(1);
    for (p, px) in src.chunks_exact(stride).enumerate() {
        match (channels, planes) {
            (3, 3) => {
                out[p] = unit(px[0]);
                out[hw + p] = unit(px[1]);
                out[2 * hw + p] = unit(px[2]);
            }
            (3, _) => out[p] = luma(px[0], px[1], px[2]),
            _ => {
                let v = unit(px[0]);
                for c in 0..planes {
                    out[c * hw + p] = v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load, load_with_notes};
    use image::{ImageBuffer, Luma, Rgb, Rgba};

    fn grey(dir: &Path, rel: &str, w: u32, h: u32, v: u8) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        ImageBuffer::from_pixel(w, h, Luma([v])).save(&p).unwrap();
    }

    fn rgb(dir: &Path, rel: &str, w: u32, h: u32, px: [u8; 3]) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        ImageBuffer::from_pixel(w, h, Rgb(px)).save(&p).unwrap();
    }

    fn opts(channels: usize) -> LoadOptions {
        LoadOptions {
            channels,
            ..Default::default()
        }
    }

    fn err_text(r: Result<Dataset>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn class_and_file_order_like_torchvision() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // byte-wise: "B" < "a" < "b"; "10.png" < "2.png"; nested folders after files
        grey(root, "a/2.png", 2, 2, 20);
        grey(root, "a/10.png", 2, 2, 10);
        grey(root, "a/sub/1.png", 2, 2, 30);
        grey(root, "B/x.PNG", 2, 2, 40);
        grey(root, "b/y.bmp", 2, 2, 50);
        fs::write(root.join("a/readme.txt"), "not an image").unwrap();
        fs::write(root.join("a/.DS_Store"), "junk").unwrap();
        fs::write(root.join("a/.hidden.png"), "junk").unwrap();
        fs::write(root.join("loose.png"), "junk").unwrap();
        fs::create_dir(root.join(".git")).unwrap();
        let d = load(root, &opts(1)).unwrap();
        assert_eq!(d.class_names, vec!["B", "a", "b"]);
        assert_eq!(d.labels, vec![0, 1, 1, 1, 2]);
        let firsts: Vec<u8> = (0..d.len())
            .map(|i| (d.item(i)[0] * 255.0).round() as u8)
            .collect();
        assert_eq!(firsts, vec![40, 10, 20, 30, 50]);
        assert_eq!(d.shape, [5, 1, 2, 2]);
        assert_eq!(d.source, format!("image folder {}", root.display()));
        assert_eq!(d.sha256.len(), 64);

        // A limit takes the class-interleaved order: class `a` holds 3 of the
        // 5 files, so it goes first and twice, its files in sorted order.
        let d2 = load(
            root,
            &LoadOptions {
                limit: Some(2),
                ..opts(1)
            },
        )
        .unwrap();
        assert_eq!(d2.labels, vec![1, 1]);
        let firsts: Vec<u8> = (0..d2.len())
            .map(|i| (d2.item(i)[0] * 255.0).round() as u8)
            .collect();
        assert_eq!(firsts, vec![10, 20]);
        assert_eq!(d2.class_names.len(), 3);
        assert_ne!(d2.sha256, d.sha256);
        assert_eq!(load(root, &opts(1)).unwrap().sha256, d.sha256);
    }

    #[test]
    fn grey_and_rgb_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        rgb(root, "c/0.png", 1, 1, [255, 0, 0]);
        rgb(root, "c/1.png", 1, 1, [10, 20, 30]);
        grey(root, "c/2.png", 1, 1, 100);
        let p = root.join("c/3.png");
        ImageBuffer::from_pixel(1, 1, Rgba([0u8, 255, 0, 0]))
            .save(&p)
            .unwrap();

        let g = load(root, &opts(1)).unwrap();
        let expect_grey = [76u8, 18, 100, 150];
        for (i, e) in expect_grey.iter().enumerate() {
            assert_eq!(g.item(i), &[f32::from(*e) / 255.0], "item {i}");
        }
        let c = load(root, &opts(3)).unwrap();
        assert_eq!(c.shape, [4, 3, 1, 1]);
        assert_eq!(c.item(0), &[1.0, 0.0, 0.0]);
        assert_eq!(c.item(1), &[10.0 / 255.0, 20.0 / 255.0, 30.0 / 255.0]);
        assert_eq!(c.item(2), &[100.0 / 255.0; 3]);
        assert_eq!(c.item(3), &[0.0, 1.0, 0.0]); // alpha dropped
    }

    #[test]
    fn sixteen_bit_png() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k/a.png");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let img: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_raw(2, 1, vec![65535, 32768]).unwrap();
        img.save(&p).unwrap();
        let d = load(dir.path(), &opts(1)).unwrap();
        assert_eq!(d.pixels[0], 1.0);
        assert!((d.pixels[1] - 32768.0 / 65535.0).abs() < 1e-7);
    }

    #[test]
    fn jpeg_is_read() {
        let dir = tempfile::tempdir().unwrap();
        rgb(dir.path(), "j/a.JPG", 8, 8, [200, 200, 200]);
        let d = load(dir.path(), &opts(1)).unwrap();
        assert_eq!(d.shape, [1, 1, 8, 8]);
        assert!((d.pixels[0] - 200.0 / 255.0).abs() < 0.02);
    }

    #[test]
    fn corrupt_image_names_file() {
        let dir = tempfile::tempdir().unwrap();
        grey(dir.path(), "a/0.png", 2, 2, 1);
        fs::write(dir.path().join("a/1.png"), b"\x89PNG\r\n\x1a\ngarbage").unwrap();
        let e = err_text(load(dir.path(), &opts(1)));
        assert!(e.contains("1.png"), "{e}");
        assert!(e.contains("cannot decode"), "{e}");
        // a limit that stops before the corrupt file does not read it
        let d = load(
            dir.path(),
            &LoadOptions {
                limit: Some(1),
                ..opts(1)
            },
        )
        .unwrap();
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn a_stratified_limit_reads_only_the_files_it_takes() {
        let dir = tempfile::tempdir().unwrap();
        grey(dir.path(), "a/0.png", 2, 2, 1);
        grey(dir.path(), "a/1.png", 2, 2, 2);
        grey(dir.path(), "b/0.png", 2, 2, 3);
        // Last in b's order, so last of the interleaved order a0 b0 a1 b1.
        fs::write(dir.path().join("b/1.png"), b"\x89PNG\r\n\x1a\ngarbage").unwrap();
        let e = err_text(load(dir.path(), &opts(1)));
        assert!(e.contains("1.png") && e.contains("cannot decode"), "{e}");
        let (d, notes) = load_with_notes(
            dir.path(),
            &LoadOptions {
                limit: Some(3),
                ..opts(1)
            },
        )
        .unwrap();
        assert_eq!(d.labels, vec![0, 1, 0]);
        assert_eq!(notes.subset, "class-stratified 3 of 4");
    }

    /// Three 1×1 images per class folder in `names`, each pixel its class
    /// folder's position in `names` times 10.
    fn classes_folder(names: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in names.iter().enumerate() {
            for j in 0..3 {
                grey(dir.path(), &format!("{name}/{j}.png"), 1, 1, 10 * i as u8);
            }
        }
        dir
    }

    fn named(names: &[&str]) -> LoadOptions {
        LoadOptions {
            class_names: Some(names.iter().map(|n| n.to_string()).collect()),
            num_classes: Some(names.len()),
            ..opts(1)
        }
    }

    /// The bug this pins: a folder holding some of the model's classes was
    /// numbered from 0, so its dogs were labelled with the model's `cat`.
    #[test]
    fn folders_holding_a_subset_of_the_classes_are_matched_by_name() {
        let dir = classes_folder(&["dog", "frog"]);
        let (d, notes) = load_with_notes(dir.path(), &named(&["cat", "dog", "frog"])).unwrap();
        assert_eq!(d.labels, vec![1, 1, 1, 2, 2, 2]);
        assert_eq!(d.class_names, vec!["cat", "dog", "frog"]);
        assert!(notes.warnings.is_empty(), "{:?}", notes.warnings);
    }

    /// The bug this pins: classes listed in the model's output order were
    /// ignored, and folders numbered in sorted order instead.
    #[test]
    fn folders_are_labelled_in_the_models_output_order() {
        let dir = classes_folder(&["cat", "dog", "frog"]);
        let d = load(dir.path(), &named(&["frog", "dog", "cat"])).unwrap();
        assert_eq!(d.labels, vec![2, 2, 2, 1, 1, 1, 0, 0, 0]);
        // The pixels say which folder each item came from: cat 0, frog 20.
        assert_eq!(d.item(0), &[0.0]);
        assert_eq!(d.item(6), &[20.0 / 255.0]);
    }

    #[test]
    fn a_folder_the_model_lacks_is_an_error_listing_the_models_classes() {
        let dir = classes_folder(&["cat", "dog", "horse", "zebra"]);
        let e = err_text(load(dir.path(), &named(&["cat", "dog", "frog"])));
        assert!(e.contains("`horse`, `zebra`"), "{e}");
        assert!(e.contains("3 classes are: cat, dog, frog"), "{e}");
        assert!(e.contains(&dir.path().display().to_string()), "{e}");

        let e = err_text(load(dir.path(), &named(&["cat", "dog", "horse", "cat"])));
        assert!(e.contains("`cat`") && e.contains("unique"), "{e}");
    }

    #[test]
    fn without_names_folders_beyond_the_models_outputs_are_an_error() {
        let dir = classes_folder(&["a", "b", "c", "d"]);
        let e = err_text(load(
            dir.path(),
            &LoadOptions {
                num_classes: Some(3),
                // Not even the files of the first classes are read.
                limit: Some(1),
                ..opts(1)
            },
        ));
        assert!(e.contains("4 class folders") && e.contains("`d`"), "{e}");
    }

    #[test]
    fn without_names_sorted_numbering_warns_unless_folders_are_named_by_their_labels() {
        let warned = |names: &[&str]| {
            let dir = classes_folder(names);
            let (d, notes) = load_with_notes(dir.path(), &opts(1)).unwrap();
            assert_eq!(d.class_names, names.to_vec());
            !notes.warnings.is_empty()
        };
        assert!(!warned(&["0", "1", "2"]));
        assert!(!warned(&["0"]));
        // Names, a subset of indices, indices not in canonical form.
        assert!(warned(&["cat", "dog"]));
        assert!(warned(&["3", "7"]));
        assert!(warned(&["00", "01"]));
        // "10" sorts before "2", so it gets label 2.
        let eleven: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
        let mut sorted = eleven.clone();
        sorted.sort();
        assert!(warned(&sorted));
        let dir = classes_folder(&["cat", "dog"]);
        let (_, notes) = load_with_notes(dir.path(), &opts(1)).unwrap();
        let w = &notes.warnings[0];
        assert!(
            w.contains("cat → 0, dog → 1") && w.contains("`classes`"),
            "{w}"
        );
    }

    #[test]
    fn unsupported_image_extension_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        grey(dir.path(), "a/0.png", 2, 2, 1);
        fs::write(dir.path().join("a/1.tif"), b"II*\0").unwrap();
        let e = err_text(load(dir.path(), &opts(1)));
        assert!(e.contains("1.tif") && e.contains("cannot be read"), "{e}");
    }

    #[test]
    fn mixed_sizes_and_resize() {
        let dir = tempfile::tempdir().unwrap();
        grey(dir.path(), "a/0.png", 4, 4, 128);
        grey(dir.path(), "a/1.png", 6, 2, 128);
        let e = err_text(load(dir.path(), &opts(1)));
        assert!(e.contains("1.png"), "{e}");
        assert!(e.contains("2x6") && e.contains("4x4"), "{e}");
        assert!(e.contains("0.png"), "{e}");

        let d = load(
            dir.path(),
            &LoadOptions {
                resize: true,
                ..opts(3)
            },
        )
        .unwrap();
        assert_eq!(d.shape, [2, 3, 4, 4]);
        let d = load(
            dir.path(),
            &LoadOptions {
                size: Some((3, 5)),
                resize: true,
                ..opts(1)
            },
        )
        .unwrap();
        assert_eq!(d.shape, [2, 1, 3, 5]);
        for v in &d.pixels {
            assert!((v - 128.0 / 255.0).abs() < 1e-5, "{v}");
        }
        let e = err_text(load(
            dir.path(),
            &LoadOptions {
                size: Some((4, 4)),
                ..opts(1)
            },
        ));
        assert!(
            e.contains("1.png") && e.contains("model expects 4x4"),
            "{e}"
        );
    }

    #[test]
    fn empty_folders_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = err_text(load(dir.path(), &opts(1)));
        assert!(e.contains("no class folders"), "{e}");
        assert!(e.contains(&dir.path().display().to_string()), "{e}");

        grey(dir.path(), "full/0.png", 2, 2, 1);
        fs::create_dir(dir.path().join("hollow")).unwrap();
        fs::write(dir.path().join("hollow/notes.txt"), "x").unwrap();
        let e = err_text(load(dir.path(), &opts(1)));
        assert!(e.contains("hollow"), "{e}");
        assert!(e.contains("no valid file"), "{e}");
        assert!(!e.contains("full"), "{e}");
    }
}
