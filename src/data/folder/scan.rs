//! Which files of an image folder's class subfolder are images, and in what
//! order, as torchvision finds them: within a class, files are found
//! recursively as `os.walk` finds them, folders sorted by path and files by
//! name (byte-wise, as Python sorts `str`). Files whose extension is not an
//! image extension are skipped; hidden entries (names starting with `.`)
//! are skipped too.

use std::fs;
use std::path::{Path, PathBuf};

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

/// How many image files `dir` holds directly (not in subfolders), for
/// hints about a folder laid out wrongly.
pub(super) fn images_in(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name.starts_with('.') && e.path().is_file() && has_ext(&name, &SUPPORTED)
        })
        .count()
}

/// Whether `dir` holds an image file directly (stops at the first).
pub(super) fn has_images(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        !name.starts_with('.')
            && has_ext(&name, &SUPPORTED)
            && e.file_type().is_ok_and(|t| !t.is_dir())
    })
}

/// The names of `dir`'s visible subfolders, sorted.
pub(super) fn subfolders(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// The image files of one class folder, in torchvision's order.
pub(super) fn class_files(dir: &Path, source: &str) -> Result<Vec<PathBuf>> {
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
