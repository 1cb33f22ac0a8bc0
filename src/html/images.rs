//! Images on the page: inputs, perturbations and attribution maps as PNG
//! data URIs (the page loads nothing from anywhere), scaled to a thumbnail
//! size so that a gallery of a 1,000-input report stays small.
//!
//! Drawing the pixels is [`crate::report::images`]' and
//! [`crate::attribution::images`]' job (the same functions `--save-images`
//! and the terminal UI's export use); this file only sizes and encodes.

use base64::Engine as _;
use image::imageops::FilterType;
use image::DynamicImage;

use super::escape;
use crate::error::{Error, Result};

/// Default thumbnail size: the longer side, in pixels.
pub const THUMBNAIL: u32 = 96;

/// An image ready for an `<img>` tag: its data URI and its size in pixels
/// (for the tag's `width` and `height`, so the page does not reflow).
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    /// `data:image/png;base64,…`.
    pub uri: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// `img` scaled so that its longer side is `side` pixels, as a
/// `data:image/png;base64,…` URI. Small inputs (MNIST's 28 px) are enlarged
/// by whole multiples with nearest-neighbour sampling so pixels stay sharp;
/// large ones (ImageNet's 224 px) are reduced with a triangle filter.
///
/// # Errors
/// PNG encoding fails (never expected for an in-memory buffer).
pub fn thumbnail(img: &DynamicImage, side: u32) -> Result<Thumbnail> {
    let (w, h) = (img.width().max(1), img.height().max(1));
    let longer = w.max(h);
    let side = side.max(1);
    let scaled = if longer <= side {
        let k = side / longer;
        if k > 1 {
            img.resize_exact(w * k, h * k, FilterType::Nearest)
        } else {
            img.clone()
        }
    } else {
        img.resize(side, side, FilterType::Triangle)
    };
    let mut png = Vec::new();
    scaled
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Invalid(format!("encoding a thumbnail as PNG failed: {e}")))?;
    Ok(Thumbnail {
        uri: format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&png)
        ),
        width: scaled.width(),
        height: scaled.height(),
    })
}

/// One thumbnail with its caption (`caption` is HTML, already escaped),
/// loaded lazily so that a gallery does not hold up the page's load event.
pub fn thumb(t: &Thumbnail, alt: &str, caption: &str) -> String {
    format!(
        "<div class=\"thumb\"><img loading=\"lazy\" decoding=\"async\" src=\"{}\" width=\"{}\" height=\"{}\" alt=\"{}\"><span>{caption}</span></div>",
        t.uri,
        t.width,
        t.height,
        escape(alt)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, RgbImage};

    fn decode(t: &Thumbnail) -> DynamicImage {
        let b64 = t.uri.strip_prefix("data:image/png;base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        image::load_from_memory(&bytes).unwrap()
    }

    #[test]
    fn small_inputs_grow_by_whole_multiples_and_keep_their_pixels() {
        let mut img = GrayImage::new(28, 28);
        img.put_pixel(3, 5, image::Luma([255]));
        let t = thumbnail(&DynamicImage::ImageLuma8(img), 96).unwrap();
        assert_eq!((t.width, t.height), (84, 84));
        let out = decode(&t).to_luma8();
        // 96 / 28 = 3 whole times.
        assert_eq!(out.dimensions(), (84, 84));
        assert_eq!(out.get_pixel(3 * 3 + 1, 5 * 3 + 2).0, [255]);
        assert_eq!(out.get_pixel(0, 0).0, [0]);
    }

    #[test]
    fn large_inputs_shrink_to_the_side_keeping_the_aspect() {
        let img = RgbImage::from_pixel(224, 112, image::Rgb([10, 200, 30]));
        let t = thumbnail(&DynamicImage::ImageRgb8(img), 96).unwrap();
        assert_eq!((t.width, t.height), (96, 48));
        let out = decode(&t).to_rgb8();
        assert_eq!(out.dimensions(), (96, 48));
        assert_eq!(out.get_pixel(40, 20).0, [10, 200, 30]);
    }
}
