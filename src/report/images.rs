//! PNG export (`--save-images DIR`): per input, the clean image, each
//! adversarial image and its perturbation amplified to the full grey range
//! (mid-grey = no change), so a person can see what an attack did.

use std::path::Path;

use image::{DynamicImage, GrayImage, RgbImage};

use crate::attack::results::AuditResults;
use crate::error::{Error, Result};

/// One image, `[C, H, W]` in `range`, as 8-bit grey or RGB. `values` holds
/// at least `c * h * w` values.
pub fn to_image(values: &[f32], c: usize, h: usize, w: usize, range: (f32, f32)) -> DynamicImage {
    let (lo, hi) = range;
    let byte = |v: f32| (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8;
    let plane = h * w;
    if c == 3 {
        let mut img = RgbImage::new(w as u32, h as u32);
        for (i, px) in img.pixels_mut().enumerate() {
            *px = image::Rgb([
                byte(values[i]),
                byte(values[plane + i]),
                byte(values[2 * plane + i]),
            ]);
        }
        DynamicImage::ImageRgb8(img)
    } else {
        let mut img = GrayImage::new(w as u32, h as u32);
        for (i, px) in img.pixels_mut().enumerate() {
            // Several non-RGB channels: show their mean.
            let mean = (0..c).map(|k| values[k * plane + i]).sum::<f32>() / c as f32;
            *px = image::Luma([byte(mean)]);
        }
        DynamicImage::ImageLuma8(img)
    }
}

/// `adv − clean` scaled so that its largest |value| reaches 0 or 1 around
/// mid-grey 0.5 (no change), to be drawn in the range (0, 1).
pub fn amplified_perturbation(adv: &[f32], clean: &[f32]) -> Vec<f32> {
    let delta: Vec<f32> = adv.iter().zip(clean).map(|(a, x)| a - x).collect();
    let peak = delta.iter().fold(0f32, |m, d| m.max(d.abs()));
    delta
        .iter()
        .map(|d| {
            if peak > 0.0 {
                0.5 + 0.5 * d / peak
            } else {
                0.5
            }
        })
        .collect()
}

fn save(img: &DynamicImage, path: &Path) -> Result<()> {
    img.save(path)
        .map_err(|e| Error::format(path, format!("cannot write PNG: {e}")))
}

/// Writes `{index:05}_clean.png`, `{index:05}_{attack}_adv.png` and
/// `{index:05}_{attack}_delta.png` for every input.
pub fn save_images(
    dir: &Path,
    results: &AuditResults,
    shape: [usize; 4],
    range: (f32, f32),
) -> Result<usize> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let [n, c, h, w] = shape;
    let per = c * h * w;
    let mut written = 0;
    for i in 0..n {
        let clean = &results.clean.inputs[i * per..(i + 1) * per];
        save(
            &to_image(clean, c, h, w, range),
            &dir.join(format!("{i:05}_clean.png")),
        )?;
        written += 1;
        for a in &results.attacks {
            let adv = &a.adversarial[i * per..(i + 1) * per];
            save(
                &to_image(adv, c, h, w, range),
                &dir.join(format!("{i:05}_{}_adv.png", a.spec.name)),
            )?;
            let amplified = amplified_perturbation(adv, clean);
            save(
                &to_image(&amplified, c, h, w, (0.0, 1.0)),
                &dir.join(format!("{i:05}_{}_delta.png", a.spec.name)),
            )?;
            written += 2;
        }
    }
    Ok(written)
}
