//! Charts for the HTML page, drawn by plotters into SVG text (inlined in the
//! page) or an RGB buffer (PNG, for `--plots`). Text is measured and drawn
//! with the DejaVu Sans font embedded in the binary (`assets/fonts`, Bitstream
//! Vera licence), so no system font or fontconfig is needed.

use std::ops::Range;
use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::{Error, Result};

/// The font every chart uses.
const FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family name charts ask for.
const FONT: &str = "sans-serif";

/// Chart size in pixels (SVG user units).
pub const SIZE: (u32, u32) = (640, 360);

/// A colour-blind-safe palette (Okabe & Ito 2008).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

fn font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()) {
        Ok(())
    } else {
        Err(Error::Invalid(
            "the embedded chart font could not be read".into(),
        ))
    }
}

/// One named line of points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` in order of x.
    pub points: Vec<(f64, f64)>,
}

/// What a chart draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    /// Lines with markers over a numeric x axis.
    Lines {
        /// Title above the plot.
        title: String,
        /// X axis label.
        x_label: String,
        /// Y axis label.
        y_label: String,
        /// The lines.
        series: Vec<Series>,
        /// The y axis's span.
        y_range: Range<f64>,
    },
    /// Grouped bars: one group per category, one bar per series.
    Bars {
        /// Title above the plot.
        title: String,
        /// Y axis label.
        y_label: String,
        /// Category names, along x.
        categories: Vec<String>,
        /// `(series name, one value per category)`.
        groups: Vec<(String, Vec<f64>)>,
        /// The y axis's span.
        y_range: Range<f64>,
    },
}

fn draw_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Invalid(format!("drawing a chart failed: {e:?}"))
}

impl Chart {
    /// The chart as an SVG document.
    ///
    /// # Errors
    /// The font cannot be read, or plotters fails.
    pub fn svg(&self) -> Result<String> {
        font()?;
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(draw_err)?;
        }
        Ok(out)
    }

    /// The chart as PNG bytes, at `scale` × [`SIZE`].
    ///
    /// # Errors
    /// As [`Chart::svg`], and PNG encoding.
    pub fn png(&self, scale: u32) -> Result<Vec<u8>> {
        font()?;
        let (w, h) = (SIZE.0 * scale, SIZE.1 * scale);
        let mut buf = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(draw_err)?;
        }
        let img = image::RgbImage::from_raw(w, h, buf)
            .ok_or_else(|| Error::Invalid("chart buffer has the wrong size".into()))?;
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| Error::Invalid(format!("encoding a chart as PNG failed: {e}")))?;
        Ok(png)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(draw_err)?;
        match self {
            Chart::Lines {
                title,
                x_label,
                y_label,
                series,
                y_range,
            } => {
                let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
                let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                    (a.min(x), b.max(x))
                });
                let (lo, hi) = if lo.is_finite() && hi > lo {
                    (lo, hi)
                } else if lo.is_finite() {
                    (lo - 0.5, lo + 0.5)
                } else {
                    (0.0, 1.0)
                };
                let pad = (hi - lo) * 0.04;
                let mut chart = ChartBuilder::on(root)
                    .caption(title, (FONT, 18))
                    .margin(12)
                    .x_label_area_size(40)
                    .y_label_area_size(56)
                    .build_cartesian_2d(lo - pad..hi + pad, y_range.clone())
                    .map_err(draw_err)?;
                chart
                    .configure_mesh()
                    .x_desc(x_label.as_str())
                    .y_desc(y_label.as_str())
                    .label_style((FONT, 13))
                    .light_line_style(RGBColor(235, 235, 235))
                    .draw()
                    .map_err(draw_err)?;
                for (i, s) in series.iter().enumerate() {
                    let c = PALETTE[i % PALETTE.len()];
                    chart
                        .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                        .map_err(draw_err)?
                        .label(s.name.as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                        });
                    chart
                        .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                        .map_err(draw_err)?;
                }
                if series.len() > 1 || series.iter().any(|s| !s.name.is_empty()) {
                    legend(&mut chart)?;
                }
            }
            Chart::Bars {
                title,
                y_label,
                categories,
                groups,
                y_range,
            } => {
                let n = categories.len().max(1);
                let k = groups.len().max(1);
                let mut chart = ChartBuilder::on(root)
                    .caption(title, (FONT, 18))
                    .margin(12)
                    .x_label_area_size(if n > 6 { 70 } else { 40 })
                    .y_label_area_size(56)
                    .build_cartesian_2d(0f64..n as f64, y_range.clone())
                    .map_err(draw_err)?;
                let names = categories.clone();
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_labels(n * 2 + 1)
                    .x_label_formatter(&|x| {
                        // Labels sit at each group's centre (i + 0.5).
                        let i = x.floor();
                        if (x - i - 0.5).abs() < 1e-6 && (i as usize) < names.len() {
                            shorten(&names[i as usize])
                        } else {
                            String::new()
                        }
                    })
                    .y_desc(y_label.as_str())
                    .label_style((FONT, 12))
                    .light_line_style(RGBColor(235, 235, 235))
                    .draw()
                    .map_err(draw_err)?;
                let width = 0.8 / k as f64;
                for (j, (name, values)) in groups.iter().enumerate() {
                    let c = PALETTE[j % PALETTE.len()];
                    chart
                        .draw_series(values.iter().enumerate().map(|(i, &v)| {
                            let x0 = i as f64 + 0.1 + j as f64 * width;
                            Rectangle::new(
                                [(x0, y_range.start), (x0 + width * 0.95, v)],
                                c.filled(),
                            )
                        }))
                        .map_err(draw_err)?
                        .label(name.as_str())
                        .legend(move |(x, y)| {
                            Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled())
                        });
                }
                legend(&mut chart)?;
            }
        }
        Ok(())
    }
}

/// The series' legend, top right, over a translucent box.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)
}

/// A category name short enough for an axis label.
fn shorten(s: &str) -> String {
    const MAX: usize = 14;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Chart {
        Chart::Lines {
            title: "robust accuracy <against> ε".into(),
            x_label: "ε".into(),
            y_label: "%".into(),
            series: vec![Series {
                name: "pgd & co".into(),
                points: vec![(0.0, 99.0), (0.1, 50.0), (0.2, 10.0)],
            }],
            y_range: 0.0..100.0,
        }
    }

    #[test]
    fn svg_text_is_escaped_and_well_formed() {
        let svg = lines().svg().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
        assert!(svg.contains("&lt;against&gt;"), "title not escaped");
        assert!(svg.contains("pgd &amp; co"), "legend not escaped");
        assert!(!svg.contains("<against>"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn png_has_the_chart_size_and_is_not_blank() {
        let png = lines().png(1).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), SIZE);
        let dark = img
            .pixels()
            .filter(|p| p.0.iter().all(|&c| c < 100))
            .count();
        assert!(dark > 200, "only {dark} dark pixels: text and axes missing");
    }

    #[test]
    fn bars_draw_one_rectangle_per_value() {
        let chart = Chart::Bars {
            title: "t".into(),
            y_label: "%".into(),
            categories: vec!["a".into(), "b".into(), "c".into()],
            groups: vec![
                ("clean".into(), vec![99.0, 99.0, 99.0]),
                ("robust".into(), vec![50.0, 40.0, 0.0]),
            ],
            y_range: 0.0..100.0,
        };
        let svg = chart.svg().unwrap();
        // 6 bars + 2 legend swatches + the background (+ the mesh's frame).
        assert!(
            svg.matches("<rect").count() >= 9,
            "{}",
            svg.matches("<rect").count()
        );
    }
}
