//! The IDX reader's and writer's tests: round trips raw and gzipped, and
//! every malformation a file can have.

use std::path::PathBuf;

use super::*;
use crate::data::{hex, load, LoadOptions};

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
    // A user gave `x.png` as the data: every accepted format is listed.
    let png = dir.path().join("x.png");
    fs::write(&png, "not really").unwrap();
    let e = err_text(load(&png, &opts()));
    for want in [
        "x.png",
        "a single image is not a dataset",
        "IDX images file",
        "image folder with one subfolder per class",
        ".npy array of images with a labels file",
        ".npz holding images and labels",
        "CIFAR-10 or CIFAR-100 binary batch",
    ] {
        assert!(e.contains(want), "{want}: {e}");
    }
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
