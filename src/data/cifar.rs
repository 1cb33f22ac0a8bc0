//! CIFAR-10 and CIFAR-100 binary batch files (the "binary version" of the
//! datasets, not the Python pickles) read into a [`Dataset`](super::Dataset).
//!
//! A CIFAR-10 record is 1 label byte and 3,072 pixel bytes (red, green and
//! blue 32×32 planes, row-major); a CIFAR-100 record is a coarse label byte,
//! a fine label byte and the same 3,072 pixels (the fine label is used).
//!
//! Which of the two a `.bin` file is: its size decides when it is a whole
//! number of records of only one kind (3,073 or 3,074 bytes). When it is a
//! whole number of both, the name decides: CIFAR-100 when the path mentions
//! `cifar-100` or the file is `train.bin` / `test.bin` (CIFAR-100's names;
//! CIFAR-10's are `data_batch_N.bin` and `test_batch.bin`), else CIFAR-10.

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::subset::describe_file_order;
use super::{hex, DataNotes, Dataset, LoadOptions};
use crate::error::{Error, Result};

const PIXELS: usize = 3 * 32 * 32;
const CIFAR10_RECORD: usize = 1 + PIXELS;
const CIFAR100_RECORD: usize = 2 + PIXELS;

/// Which CIFAR a batch file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Cifar10,
    Cifar100,
}

/// The kind of a file of `len` bytes at `path`, by the rule in the module
/// docs; an error when `len` is no whole number of records.
pub(crate) fn kind_of(path: &Path, len: usize) -> Result<Kind> {
    let ten = len % CIFAR10_RECORD == 0;
    let hundred = len % CIFAR100_RECORD == 0;
    match (len > 0 && ten, len > 0 && hundred) {
        (true, false) => Ok(Kind::Cifar10),
        (false, true) => Ok(Kind::Cifar100),
        (true, true) => {
            let text = path.to_string_lossy().to_lowercase();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if text.contains("cifar-100") || name == "train.bin" || name == "test.bin" {
                Ok(Kind::Cifar100)
            } else {
                Ok(Kind::Cifar10)
            }
        }
        (false, false) => Err(Error::format(
            path,
            format!(
                "{len} bytes is not a whole number of CIFAR-10 ({CIFAR10_RECORD}-byte) or \
                 CIFAR-100 ({CIFAR100_RECORD}-byte) records (truncated?)"
            ),
        )),
    }
}

/// Loads a CIFAR binary batch file; the model must take `3×32×32` inputs.
pub(crate) fn load_cifar(path: &Path, opts: &LoadOptions) -> Result<(Dataset, DataNotes)> {
    let raw = fs::read(path).map_err(|e| Error::io(path, e))?;
    cifar_from_bytes(path, &raw, opts)
}

fn cifar_from_bytes(path: &Path, raw: &[u8], opts: &LoadOptions) -> Result<(Dataset, DataNotes)> {
    let kind = kind_of(path, raw.len())?;
    if opts.channels != 3 || opts.size.is_some_and(|s| s != (32, 32)) {
        let model = match opts.size {
            Some((h, w)) => format!("[{}, {h}, {w}]", opts.channels),
            None => format!("{} channels", opts.channels),
        };
        return Err(Error::data(
            path.display().to_string(),
            format!("CIFAR images are [3, 32, 32] but the model takes {model} inputs"),
        ));
    }
    let (record, label_at) = match kind {
        Kind::Cifar10 => (CIFAR10_RECORD, 0),
        Kind::Cifar100 => (CIFAR100_RECORD, 1),
    };
    let total = raw.len() / record;
    let n = opts.limit.map_or(total, |l| l.min(total));
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(total);
    for (i, rec) in raw.chunks_exact(record).enumerate() {
        let label = rec[label_at];
        if let Some(classes) = opts.num_classes {
            if usize::from(label) >= classes {
                return Err(Error::data(
                    path.display().to_string(),
                    format!(
                        "label {label} at index {i} is out of range: the model has {classes} \
                         classes (labels 0..={})",
                        classes.saturating_sub(1)
                    ),
                ));
            }
        }
        labels.push(u32::from(label));
        if i < n {
            pixels.extend(rec[record - PIXELS..].iter().map(|&b| f32::from(b) / 255.0));
        }
    }
    let what = match kind {
        Kind::Cifar10 => "CIFAR-10",
        Kind::Cifar100 => "CIFAR-100",
    };
    let data = Dataset {
        pixels,
        shape: [n, 3, 32, 32],
        class_names: super::arrays::class_names(&labels, opts),
        labels: labels[..n].to_vec(),
        source: format!("{what} {}", path.display()),
        sha256: hex(&Sha256::digest(raw)),
    };
    let notes = DataNotes {
        subset: describe_file_order(n, total),
        warnings: Vec::new(),
    };
    Ok((data, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> LoadOptions {
        LoadOptions {
            channels: 3,
            size: Some((32, 32)),
            num_classes: Some(100),
            ..Default::default()
        }
    }

    fn record(labels: &[u8], fill: u8) -> Vec<u8> {
        let mut r = labels.to_vec();
        r.extend((0..PIXELS).map(|p| fill.wrapping_add(p as u8)));
        r
    }

    #[test]
    fn cifar10_records_parse() {
        let mut raw = record(&[3], 0);
        raw.extend(record(&[9], 10));
        let (d, notes) = cifar_from_bytes(Path::new("data_batch_1.bin"), &raw, &opts()).unwrap();
        assert_eq!(d.shape, [2, 3, 32, 32]);
        assert_eq!(d.labels, vec![3, 9]);
        assert_eq!(d.item(1)[1], 11.0 / 255.0);
        assert!(d.source.starts_with("CIFAR-10 "), "{}", d.source);
        assert!(notes.subset.contains('2'), "{}", notes.subset);
    }

    #[test]
    fn cifar100_uses_the_fine_label() {
        let mut raw = record(&[1, 42], 0);
        raw.extend(record(&[2, 77], 5));
        let (d, _) = cifar_from_bytes(Path::new("train.bin"), &raw, &opts()).unwrap();
        assert_eq!(d.labels, vec![42, 77]);
        assert_eq!(d.item(1)[0], 5.0 / 255.0);
        assert!(d.source.starts_with("CIFAR-100 "), "{}", d.source);
    }

    #[test]
    fn kind_follows_size_then_name() {
        let both = CIFAR10_RECORD * CIFAR100_RECORD;
        let p = Path::new("x/data_batch_1.bin");
        assert_eq!(kind_of(p, CIFAR10_RECORD).unwrap(), Kind::Cifar10);
        assert_eq!(kind_of(p, CIFAR100_RECORD).unwrap(), Kind::Cifar100);
        assert_eq!(kind_of(p, both).unwrap(), Kind::Cifar10);
        assert_eq!(
            kind_of(Path::new("cifar-100-binary/test.bin"), both).unwrap(),
            Kind::Cifar100
        );
        assert_eq!(
            kind_of(Path::new("test.bin"), both).unwrap(),
            Kind::Cifar100
        );
    }

    #[test]
    fn truncated_and_mismatched_files_are_errors() {
        let mut raw = record(&[3], 0);
        raw.extend(record(&[4], 0));
        raw.pop();
        let e = cifar_from_bytes(Path::new("cut.bin"), &raw, &opts())
            .unwrap_err()
            .to_string();
        assert!(e.contains("cut.bin") && e.contains("whole number"), "{e}");
        let e = cifar_from_bytes(Path::new("empty.bin"), &[], &opts()).unwrap_err();
        assert!(e.to_string().contains("empty.bin"), "{e}");
        let grey = LoadOptions {
            channels: 1,
            size: Some((28, 28)),
            ..Default::default()
        };
        let e = cifar_from_bytes(Path::new("a.bin"), &record(&[3], 0), &grey)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.bin") && e.contains("[1, 28, 28]"), "{e}");
        let ten = LoadOptions {
            num_classes: Some(10),
            ..opts()
        };
        let e = cifar_from_bytes(Path::new("train.bin"), &record(&[0, 50], 0), &ten)
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 50 at index 0"), "{e}");
    }
}
