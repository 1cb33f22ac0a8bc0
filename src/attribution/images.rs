//! Heatmap PNGs for `--save-images`: each map in a diverging colormap (red
//! where a pixel supports the explained class, blue where it opposes it,
//! symmetric around zero and scaled to the map's largest |value|) laid over
//! the input in grey, so the evidence is seen on the digit it belongs to.
//! Small images are enlarged (nearest neighbour) to stay legible.

use std::path::Path;

use image::RgbImage;

use super::metrics::pixel_scores;
use super::run::{AttributionResults, Audited};
use crate::error::{Error, Result};

/// Red for positive evidence, blue for negative (ColorBrewer RdBu ends).
const POSITIVE: [f32; 3] = [202.0, 0.0, 32.0];
const NEGATIVE: [f32; 3] = [5.0, 113.0, 176.0];

/// One heatmap over its input, enlarged by `scale`.
pub fn heatmap(
    map: &[f32],
    input: &[f32],
    shape: [usize; 3],
    range: (f32, f32),
    scale: usize,
) -> RgbImage {
    let [c, h, w] = shape;
    let scores = pixel_scores(map, c);
    let grey = pixel_scores(input, c);
    let peak = scores.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (lo, hi) = range;
    let scale = scale.max(1);
    let mut img = RgbImage::new((w * scale) as u32, (h * scale) as u32);
    for y in 0..h {
        for x in 0..w {
            let p = y * w + x;
            let g = ((grey[p] / c as f32 - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0;
            let t = if peak > 0.0 { scores[p] / peak } else { 0.0 };
            // Opacity grows with |t| (square root: weak evidence stays visible).
            let alpha = t.abs().sqrt();
            let color = if t >= 0.0 { POSITIVE } else { NEGATIVE };
            let px =
                image::Rgb([0, 1, 2].map(|k| ((1.0 - alpha) * g + alpha * color[k]).round() as u8));
            for dy in 0..scale {
                for dx in 0..scale {
                    img.put_pixel((x * scale + dx) as u32, (y * scale + dy) as u32, px);
                }
            }
        }
    }
    img
}

/// Writes `{index:05}_attr_{name}_clean.png` and
/// `{index:05}_attr_{name}_{attack}.png` for every input and entry; returns
/// how many files were written.
pub fn save_heatmaps(
    dir: &Path,
    results: &AttributionResults,
    audit: &Audited,
    range: (f32, f32),
) -> Result<usize> {
    if results.entries.is_empty() {
        return Ok(0);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let [n, c, h, w] = results.shape;
    let per = c * h * w;
    let scale = (112 / h.min(w).max(1)).max(1);
    let mut written = 0;
    for entry in &results.entries {
        for v in &entry.variants {
            let Some(inputs) = audit.get(&v.variant).map(|s| s.inputs) else {
                continue;
            };
            for i in 0..n {
                let span = i * per..(i + 1) * per;
                let img = heatmap(
                    &v.maps[span.clone()],
                    &inputs[span],
                    [c, h, w],
                    range,
                    scale,
                );
                let path = dir.join(format!("{i:05}_attr_{}_{}.png", entry.spec.name, v.variant));
                img.save(&path)
                    .map_err(|e| Error::format(&path, format!("cannot write PNG: {e}")))?;
                written += 1;
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_colours_follow_the_sign_and_show_the_input_where_zero() {
        let map = [1.0f32, -1.0, 0.0, 0.25];
        let input = [0.0f32, 0.0, 1.0, 0.0];
        let img = heatmap(&map, &input, [1, 2, 2], (0.0, 1.0), 2);
        assert_eq!(img.dimensions(), (4, 4));
        assert_eq!(img.get_pixel(0, 0).0, [202, 0, 32]);
        assert_eq!(img.get_pixel(2, 0).0, [5, 113, 176]);
        assert_eq!(img.get_pixel(0, 2).0, [255, 255, 255]);
        // Half-way opacity for |t| = 0.25 over black.
        assert_eq!(img.get_pixel(3, 3).0, [101, 0, 16]);
    }
}
