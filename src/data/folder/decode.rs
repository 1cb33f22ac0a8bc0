//! An image file as pixels: decoded with the `image` crate (PNG, JPEG, BMP;
//! 8- and 16-bit, grey or colour) and converted to the model's channel
//! count as PIL's `convert` does.

use std::fs;
use std::path::Path;

use image::{DynamicImage, GenericImageView};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Reads and decodes one image, hashing its bytes.
pub(super) fn decode(path: &Path, hasher: &mut Sha256) -> Result<DynamicImage> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    hasher.update(&bytes);
    let format = image::guess_format(&bytes)
        .or_else(|_| image::ImageFormat::from_path(path))
        .map_err(|_| Error::format(path, "not a PNG, JPEG or BMP image"))?;
    image::load_from_memory_with_format(&bytes, format)
        .map_err(|e| Error::format(path, format!("cannot decode the image: {e}")))
}

/// The image as `channels` planes of `H×W` values in `[0, 1]` (alpha dropped).
pub(super) fn image_to_chw(img: &DynamicImage, channels: usize) -> Vec<f32> {
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
