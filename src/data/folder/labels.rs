//! How an image folder's class subfolders become labels: matched by name to
//! the model's class names when its spec has them, else numbered in sorted
//! order as torchvision numbers them (classes are the subfolders sorted by
//! name, byte-wise, as Python sorts `str`).

use super::LoadOptions;
use crate::entry::did_you_mean;
use crate::error::{Error, Result};

/// How an image folder's class subfolders become labels.
pub(super) struct Labeling {
    /// The label of each subfolder, in sorted folder order.
    pub(super) labels: Vec<u32>,
    /// The name of each label (the dataset's `class_names`).
    pub(super) class_names: Vec<String>,
    /// A note for the report when the labels may not be the model's.
    pub(super) warnings: Vec<String>,
}

/// Labels the sorted subfolders `folders` of `source`: by name against the
/// model's class names when `opts` has them, else by sorted position as
/// torchvision numbers them (with a warning unless every folder is named by
/// the number it gets). Errors name the folder and list the model's classes.
pub(super) fn label_folders(
    source: &str,
    folders: &[&str],
    opts: &LoadOptions,
) -> Result<Labeling> {
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
        let hints: Vec<String> = unknown
            .iter()
            .filter_map(|folder| near_class(folder, names))
            .collect();
        return Err(Error::data(
            source,
            format!(
                "class folder(s) {} are not classes of the model, whose {} classes are: {}{more}{}",
                quoted(&unknown),
                names.len(),
                listed.join(", "),
                hints.iter().map(|h| format!("\n  {h}")).collect::<String>()
            ),
        ));
    }
    Ok(Labeling {
        labels,
        class_names: names.to_vec(),
        warnings: Vec::new(),
    })
}

/// `` `Bird/`: did you mean `bird`? `` when `folder` differs from one of
/// the model's class names only in case or by a typo (folders match class
/// names exactly).
fn near_class(folder: &str, names: &[String]) -> Option<String> {
    if let Some(name) = names.iter().find(|n| n.eq_ignore_ascii_case(folder)) {
        return Some(format!(
            "`{folder}/`: did you mean `{name}`? (folders match class names exactly, case included)"
        ));
    }
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    let hint = did_you_mean(folder, &known);
    (!hint.is_empty()).then(|| format!("`{folder}/`: {}", hint.trim_start_matches("; ")))
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
