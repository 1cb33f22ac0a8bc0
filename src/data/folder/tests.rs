//! The image-folder reader's tests: torchvision's order, colour conversion,
//! labelling by name and by number, and every error a folder can raise.

use std::fs;
use std::path::Path;

use crate::data::{load, load_with_notes, Dataset, LoadOptions};
use crate::error::Result;
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

/// A user's `Bird/` and `cats/` next to a model naming `bird` and `cat`
/// got only the list of classes: a folder within a case change or a typo
/// of a class gets a did-you-mean.
#[test]
fn a_folder_off_by_case_or_a_typo_gets_the_class_it_meant() {
    let dir = classes_folder(&["Bird", "cats", "dog", "zebra"]);
    let e = err_text(load(dir.path(), &named(&["bird", "cat", "dog"])));
    assert!(e.contains("`Bird/`: did you mean `bird`?"), "{e}");
    assert!(e.contains("case included"), "{e}");
    assert!(e.contains("`cats/`: did you mean `cat`?"), "{e}");
    assert!(!e.contains("`zebra/`"), "no near class, no hint: {e}");
}

/// A user gave `data` whose only subfolder `test/` holds the class
/// folders: every image became class `test`, or an unknown class.
#[test]
fn a_folder_one_level_too_high_says_which_one_was_meant() {
    let dir = tempfile::tempdir().unwrap();
    grey(dir.path(), "test/0/a.png", 1, 1, 1);
    grey(dir.path(), "test/1/a.png", 1, 1, 1);
    let want = format!("did you mean {}?", dir.path().join("test").display());
    for options in [opts(1), named(&["0", "1"])] {
        let e = err_text(load(dir.path(), &options));
        assert!(e.contains(&want), "{e}");
        assert!(e.contains("`test` holds folders (test holds 0, 1)"), "{e}");
    }
    // Class folders whose images sit in subfolders of their own are read.
    let d = load(&dir.path().join("test"), &opts(1)).unwrap();
    assert_eq!(d.len(), 2);
}

/// A user gave a flat folder of images: it says how many and what layout
/// is needed.
#[test]
fn a_flat_folder_of_images_says_how_many_and_what_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        grey(dir.path(), &format!("{i}.png"), 1, 1, 1);
    }
    let e = err_text(load(dir.path(), &opts(1)));
    assert!(e.contains("holds 3 images directly"), "{e}");
    assert!(e.contains("one subfolder per class"), "{e}");
    assert!(e.contains(".npz array with their labels"), "{e}");
}
