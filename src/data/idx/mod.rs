//! IDX files, the format MNIST is distributed in: reading and writing an
//! images file and a labels file (raw or gzipped, gzip recognised by its
//! magic bytes), every malformation an error naming the file. `pair` finds
//! the labels file that goes with an images file and reads the two into a
//! [`Dataset`](super::Dataset).
//!
//! An IDX file is a big-endian header (magic `0x00000803` = 2051 and the
//! dimensions `N, H, W` for images; magic `0x00000801` = 2049 and `N` for
//! labels) followed by one unsigned byte per pixel or label.

use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

mod pair;
#[cfg(test)]
mod tests;

pub(crate) use pair::{find_in_dir, idx_from_bytes, labels_path_for, load_idx};

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
