//! Pixels to terminal cells. An image becomes RGB pixels (through the same
//! conversions as the PNG export, so the screen and the files agree), is
//! resampled to the cells it is given (area average when shrinking, nearest
//! neighbour when enlarging) and is drawn two pixel rows per cell with the
//! upper half block `▀`: foreground = upper pixel, background = lower pixel.
//! Colours are 24-bit where the terminal says it supports them (`COLORTERM`
//! = `truecolor` or `24bit`), else the nearest of the xterm 256-colour palette.

use image::RgbImage;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::widgets::Widget;

/// One pixel's red, green and blue.
pub type Rgb = [u8; 3];

/// An RGB image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Pixels {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width · height` pixels, row by row.
    pub data: Vec<Rgb>,
}

impl Pixels {
    /// An input `[C, H, W]` with values in `range`: RGB for 3 channels, else
    /// the mean of the channels in grey (as in the PNG export).
    pub fn from_input(values: &[f32], shape: [usize; 3], range: (f32, f32)) -> Pixels {
        let [c, h, w] = shape;
        if values.len() < c * h * w {
            // Never expected (the sidecar's shapes are checked on opening);
            // an empty image is better than a panic.
            return Pixels::from_rgb_image(&RgbImage::new(0, 0));
        }
        let img = crate::report::images::to_image(values, c, h, w, range);
        Pixels::from_rgb_image(&img.to_rgb8())
    }

    /// Pixels of an 8-bit RGB image.
    pub fn from_rgb_image(img: &RgbImage) -> Pixels {
        Pixels {
            width: img.width() as usize,
            height: img.height() as usize,
            data: img.pixels().map(|p| p.0).collect(),
        }
    }

    /// The pixel at column `x`, row `y`.
    pub fn get(&self, x: usize, y: usize) -> Option<Rgb> {
        if x >= self.width {
            return None;
        }
        self.data.get(y * self.width + x).copied()
    }

    /// This image at `width × height`: each target pixel is the mean of the
    /// source pixels it covers when shrinking (so thin strokes fade instead
    /// of vanishing), the nearest source pixel when enlarging.
    pub fn resample(&self, width: usize, height: usize) -> Pixels {
        let mut data = Vec::with_capacity(width * height);
        if self.width == 0 || self.height == 0 {
            data.resize(width * height, [0, 0, 0]);
            return Pixels {
                width,
                height,
                data,
            };
        }
        let span = |t: usize, target: usize, source: usize| {
            let lo = t * source / target;
            let hi = ((t + 1) * source / target).max(lo + 1).min(source);
            lo..hi
        };
        for ty in 0..height {
            let rows = span(ty, height, self.height);
            for tx in 0..width {
                let cols = span(tx, width, self.width);
                let mut sum = [0u32; 3];
                let mut n = 0u32;
                for y in rows.clone() {
                    for x in cols.clone() {
                        let p = self.data[y * self.width + x];
                        for k in 0..3 {
                            sum[k] += p[k] as u32;
                        }
                        n += 1;
                    }
                }
                data.push(sum.map(|s| ((s + n / 2) / n.max(1)) as u8));
            }
        }
        Pixels {
            width,
            height,
            data,
        }
    }
}

/// The largest `(columns, pixel rows)` that shows a `width × height` image
/// with its aspect ratio in `max_cols × max_rows` cells (two pixel rows per
/// cell); at least one pixel each way.
pub fn fit(width: usize, height: usize, max_cols: u16, max_rows: u16) -> (usize, usize) {
    if width == 0 || height == 0 || max_cols == 0 || max_rows == 0 {
        return (0, 0);
    }
    let cols = max_cols as f64;
    let pixel_rows = 2.0 * max_rows as f64;
    let scale = (cols / width as f64).min(pixel_rows / height as f64);
    let w = ((width as f64 * scale).floor() as usize).clamp(1, max_cols as usize);
    let h = ((height as f64 * scale).floor() as usize).clamp(1, 2 * max_rows as usize);
    (w, h)
}

/// How colours reach the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    /// 24-bit colour.
    TrueColor,
    /// The xterm 256-colour palette.
    Indexed,
}

impl ColorMode {
    /// 24-bit colour when `COLORTERM` says so, else the 256-colour palette.
    pub fn from_env() -> ColorMode {
        ColorMode::from_colorterm(std::env::var("COLORTERM").ok().as_deref())
    }

    /// The mode for a `COLORTERM` value.
    pub fn from_colorterm(value: Option<&str>) -> ColorMode {
        match value.map(str::to_ascii_lowercase).as_deref() {
            Some("truecolor") | Some("24bit") => ColorMode::TrueColor,
            _ => ColorMode::Indexed,
        }
    }

    /// A pixel's colour in this mode.
    pub fn color(self, p: Rgb) -> Color {
        match self {
            ColorMode::TrueColor => Color::Rgb(p[0], p[1], p[2]),
            ColorMode::Indexed => Color::Indexed(xterm_index(p)),
        }
    }
}

/// The channel levels of the xterm 6×6×6 colour cube.
const CUBE_LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];

/// The nearest xterm palette entry: the 6×6×6 cube (16–231) or the grey ramp
/// (232–255, 8 + 10k), whichever is closer; the 16 system colours are left
/// out because terminals redefine them.
pub fn xterm_index(p: Rgb) -> u8 {
    let nearest_level = |v: u8| {
        let mut best = 0;
        for (i, &l) in CUBE_LEVELS.iter().enumerate() {
            if (l as i32 - v as i32).abs() < (CUBE_LEVELS[best] as i32 - v as i32).abs() {
                best = i;
            }
        }
        best
    };
    let ci = p.map(nearest_level);
    let cube = ci.map(|i| CUBE_LEVELS[i]);
    let mean = (p[0] as u32 + p[1] as u32 + p[2] as u32) / 3;
    let grey_step = ((mean as i32 - 8 + 5) / 10).clamp(0, 23);
    let grey = (8 + 10 * grey_step) as u8;
    let dist = |q: Rgb| -> i32 { (0..3).map(|k| (q[k] as i32 - p[k] as i32).pow(2)).sum() };
    if dist([grey; 3]) < dist(cube) {
        232 + grey_step as u8
    } else {
        16 + (36 * ci[0] + 6 * ci[1] + ci[2]) as u8
    }
}

/// A widget drawing [`Pixels`] with half blocks, as large as fits its area
/// (aspect ratio kept), centred horizontally.
pub struct CellImage<'a> {
    /// The image.
    pub pixels: &'a Pixels,
    /// How colours are written.
    pub mode: ColorMode,
}

impl Widget for CellImage<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (w, h) = fit(
            self.pixels.width,
            self.pixels.height,
            area.width,
            area.height,
        );
        if w == 0 || h == 0 {
            return;
        }
        let shown = self.pixels.resample(w, h);
        let left = area.x + (area.width - w as u16) / 2;
        for cell_row in 0..h.div_ceil(2) {
            for x in 0..w {
                let top = shown.get(x, 2 * cell_row);
                let bottom = shown.get(x, 2 * cell_row + 1);
                let position = (left + x as u16, area.y + cell_row as u16);
                if let (Some(top), Some(cell)) = (top, buf.cell_mut(position)) {
                    cell.set_symbol("▀").set_fg(self.mode.color(top));
                    // An odd last pixel row leaves the lower half to the background.
                    cell.set_bg(bottom.map_or(Color::Reset, |b| self.mode.color(b)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: Rgb = [255, 0, 0];
    const GREEN: Rgb = [0, 255, 0];
    const BLUE: Rgb = [0, 0, 255];
    const WHITE: Rgb = [255, 255, 255];

    fn draw(pixels: &Pixels, mode: ColorMode, w: u16, h: u16) -> Buffer {
        let area = Rect::new(0, 0, w, h);
        let mut buf = Buffer::empty(area);
        CellImage { pixels, mode }.render(area, &mut buf);
        buf
    }

    #[test]
    fn a_2x2_image_is_one_row_of_half_blocks_with_upper_fg_and_lower_bg() {
        let pixels = Pixels {
            width: 2,
            height: 2,
            data: vec![RED, GREEN, BLUE, WHITE],
        };
        let buf = draw(&pixels, ColorMode::TrueColor, 2, 1);
        let left = &buf[(0, 0)];
        assert_eq!(left.symbol(), "▀");
        assert_eq!(left.fg, Color::Rgb(255, 0, 0));
        assert_eq!(left.bg, Color::Rgb(0, 0, 255));
        let right = &buf[(1, 0)];
        assert_eq!(right.fg, Color::Rgb(0, 255, 0));
        assert_eq!(right.bg, Color::Rgb(255, 255, 255));
    }

    #[test]
    fn the_256_colour_fallback_uses_palette_indices() {
        let pixels = Pixels {
            width: 1,
            height: 2,
            data: vec![RED, [128, 128, 128]],
        };
        let buf = draw(&pixels, ColorMode::Indexed, 1, 1);
        // xterm: 196 = cube (5, 0, 0); 244 = grey 8 + 10·12 = 128.
        assert_eq!(buf[(0, 0)].fg, Color::Indexed(196));
        assert_eq!(buf[(0, 0)].bg, Color::Indexed(244));
        assert_eq!(xterm_index([0, 0, 0]), 16);
        assert_eq!(xterm_index(WHITE), 231);
        assert_eq!(xterm_index([0, 135, 255]), 16 + 2 * 6 + 5);
    }

    #[test]
    fn colorterm_selects_the_mode() {
        assert_eq!(
            ColorMode::from_colorterm(Some("truecolor")),
            ColorMode::TrueColor
        );
        assert_eq!(
            ColorMode::from_colorterm(Some("24bit")),
            ColorMode::TrueColor
        );
        assert_eq!(ColorMode::from_colorterm(Some("")), ColorMode::Indexed);
        assert_eq!(ColorMode::from_colorterm(None), ColorMode::Indexed);
    }

    #[test]
    fn a_4x4_image_shrinks_to_the_means_of_its_2x2_blocks() {
        // Grey 4×4 in [0, 1]; each 2×2 block has a known mean.
        #[rustfmt::skip]
        let values = [
            0.0, 0.0, 1.0, 1.0,
            0.0, 0.0, 1.0, 1.0,
            1.0, 0.0, 0.2, 0.2,
            0.0, 1.0, 0.2, 0.2f32,
        ];
        let pixels = Pixels::from_input(&values, [1, 4, 4], (0.0, 1.0));
        assert_eq!(pixels.get(2, 0), Some(WHITE));
        let small = pixels.resample(2, 2);
        assert_eq!(small.get(0, 0), Some([0, 0, 0]));
        assert_eq!(small.get(1, 0), Some(WHITE));
        // (255 + 0 + 0 + 255) / 4 = 127.5 → 128; 0.2 · 255 = 51.
        assert_eq!(small.get(0, 1), Some([128; 3]));
        assert_eq!(small.get(1, 1), Some([51; 3]));
        // Drawn into a 2×1 cell area: the 4×4 image shrinks to 2×2.
        let buf = draw(&pixels, ColorMode::TrueColor, 2, 1);
        assert_eq!(buf[(0, 0)].fg, Color::Rgb(0, 0, 0));
        assert_eq!(buf[(0, 0)].bg, Color::Rgb(128, 128, 128));
        assert_eq!(buf[(1, 0)].bg, Color::Rgb(51, 51, 51));
    }

    #[test]
    fn three_channels_are_red_green_blue_planes_and_others_are_grey() {
        // [C=3, H=1, W=2]: pixel 0 = (1, 0, 0.5), pixel 1 = (0, 1, 0).
        let values = [1.0, 0.0, 0.0, 1.0, 0.5, 0.0f32];
        let pixels = Pixels::from_input(&values, [3, 1, 2], (0.0, 1.0));
        assert_eq!(pixels.data, vec![[255, 0, 128], [0, 255, 0]]);
        // Two channels: their mean, in a range of [-1, 1].
        let two = Pixels::from_input(&[1.0, -1.0, 1.0, 1.0], [2, 1, 2], (-1.0, 1.0));
        assert_eq!(two.data, vec![[255; 3], [128; 3]]);
    }

    #[test]
    fn enlarging_repeats_pixels_and_fit_keeps_the_aspect_ratio() {
        let pixels = Pixels {
            width: 2,
            height: 1,
            data: vec![RED, BLUE],
        };
        let big = pixels.resample(4, 2);
        assert_eq!(big.data, vec![RED, RED, BLUE, BLUE, RED, RED, BLUE, BLUE]);
        // 28×28 in 20 columns × 8 rows: limited by the 16 pixel rows.
        assert_eq!(fit(28, 28, 20, 8), (16, 16));
        // 32×16 in 100×100 cells: limited by the columns.
        assert_eq!(fit(32, 16, 100, 100), (100, 50));
        assert_eq!(fit(28, 28, 0, 8), (0, 0));
        // An odd pixel height leaves the last cell's lower half empty.
        let tall = Pixels {
            width: 1,
            height: 3,
            data: vec![RED, GREEN, BLUE],
        };
        let buf = draw(&tall, ColorMode::TrueColor, 1, 2);
        assert_eq!(buf[(0, 1)].fg, Color::Rgb(0, 0, 255));
        assert_eq!(buf[(0, 1)].bg, Color::Reset);
    }
}
