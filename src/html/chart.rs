//! Charts for the HTML page, drawn by plotters into SVG text (inlined in the
//! page) or an RGB buffer (PNG, for `--plots`). Text is measured and drawn
//! with the DejaVu Sans font embedded in the binary (`assets/fonts`, Bitstream
//! Vera licence), so no system font or fontconfig is needed.

use std::ops::Range;
use std::sync::OnceLock;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
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
        /// A logarithmic x axis (every x must be positive).
        log_x: bool,
    },
    /// Bars over numeric bins (a histogram or a reliability diagram): one bar
    /// per series in each bin, side by side.
    Binned {
        /// Title above the plot.
        title: String,
        /// X axis label.
        x_label: String,
        /// Y axis label.
        y_label: String,
        /// Bin edges, ascending: `edges.len() - 1` bins.
        edges: Vec<f64>,
        /// `(series name, one value per bin)`; `None` leaves the bin empty.
        series: Vec<(String, Vec<Option<f64>>)>,
        /// The y axis's span.
        y_range: Range<f64>,
        /// Draws the line y = x (perfect calibration).
        diagonal: bool,
    },
    /// A grid of values as coloured cells with their values written in:
    /// rows top to bottom, columns left to right, white at `range.start`
    /// and the palette's blue at `range.end`.
    Heatmap {
        /// Title above the plot.
        title: String,
        /// Row names.
        rows: Vec<String>,
        /// Column names.
        columns: Vec<String>,
        /// `values[row][column]`.
        values: Vec<Vec<f64>>,
        /// The values the colour scale spans.
        range: Range<f64>,
        /// How a value is written in its cell.
        percent: bool,
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
            let root = SVGBackend::with_string(&mut out, self.size()).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(draw_err)?;
        }
        Ok(out)
    }

    /// The chart's size in pixels: [`SIZE`], taller for bar charts of many
    /// bars and heat maps of many rows.
    pub fn size(&self) -> (u32, u32) {
        match self {
            Chart::Bars {
                categories, groups, ..
            } => {
                let bars = (categories.len() * groups.len().max(1)) as u32;
                (
                    SIZE.0,
                    (110 + bars * 14 + categories.len() as u32 * 6).max(SIZE.1),
                )
            }
            Chart::Heatmap { rows, .. } => (SIZE.0, (90 + rows.len() as u32 * 24).max(SIZE.1)),
            _ => SIZE,
        }
    }

    /// The chart as PNG bytes, at `scale` × [`Chart::size`].
    ///
    /// # Errors
    /// As [`Chart::svg`], and PNG encoding.
    pub fn png(&self, scale: u32) -> Result<Vec<u8>> {
        font()?;
        let (w, h) = self.size();
        let (w, h) = (w * scale, h * scale);
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
                log_x,
            } => {
                let xs = series
                    .iter()
                    .flat_map(|s| s.points.iter().map(|p| p.0))
                    .filter(|x| !*log_x || *x > 0.0);
                let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                    (a.min(x), b.max(x))
                });
                let builder = |root| {
                    let mut b = ChartBuilder::on(root);
                    b.caption(title, (FONT, 19))
                        .margin(12)
                        .x_label_area_size(40)
                        .y_label_area_size(56);
                    b
                };
                if *log_x {
                    let (lo, hi) = if lo.is_finite() && hi > lo {
                        (lo, hi)
                    } else if lo.is_finite() {
                        (lo / 2.0, lo * 2.0)
                    } else {
                        (1.0, 10.0)
                    };
                    let mut chart = builder(root)
                        .build_cartesian_2d((lo / 1.1..hi * 1.1).log_scale(), y_range.clone())
                        .map_err(draw_err)?;
                    // Crowding is judged on the axis as drawn: log x.
                    let logged: Vec<Series> = series
                        .iter()
                        .map(|s| Series {
                            name: String::new(),
                            points: s
                                .points
                                .iter()
                                .map(|&(x, y)| (x.max(lo).log10(), y))
                                .collect(),
                        })
                        .collect();
                    let corner = emptiest_corner(
                        &logged,
                        (lo.log10(), hi.log10()),
                        (y_range.start, y_range.end),
                    );
                    lines(&mut chart, x_label, y_label, series, corner)?;
                } else {
                    let (lo, hi) = if lo.is_finite() && hi > lo {
                        (lo, hi)
                    } else if lo.is_finite() {
                        (lo - 0.5, lo + 0.5)
                    } else {
                        (0.0, 1.0)
                    };
                    let pad = (hi - lo) * 0.04;
                    let mut chart = builder(root)
                        .build_cartesian_2d(lo - pad..hi + pad, y_range.clone())
                        .map_err(draw_err)?;
                    let corner = emptiest_corner(series, (lo, hi), (y_range.start, y_range.end));
                    lines(&mut chart, x_label, y_label, series, corner)?;
                }
            }
            Chart::Binned {
                title,
                x_label,
                y_label,
                edges,
                series,
                y_range,
                diagonal,
            } => {
                let lo = edges.first().copied().unwrap_or(0.0);
                let hi = edges
                    .last()
                    .copied()
                    .filter(|h| *h > lo)
                    .unwrap_or(lo + 1.0);
                let mut chart = ChartBuilder::on(root)
                    .caption(title, (FONT, 19))
                    .margin(12)
                    .x_label_area_size(40)
                    .y_label_area_size(56)
                    .build_cartesian_2d(lo..hi, y_range.clone())
                    .map_err(draw_err)?;
                chart
                    .configure_mesh()
                    .x_desc(x_label.as_str())
                    .y_desc(y_label.as_str())
                    .label_style((FONT, 15))
                    .light_line_style(RGBColor(235, 235, 235))
                    .max_light_lines(2)
                    .draw()
                    .map_err(draw_err)?;
                let k = series.len().max(1) as f64;
                for (j, (name, values)) in series.iter().enumerate() {
                    let c = color(j);
                    chart
                        .draw_series(edges.windows(2).zip(values).filter_map(|(e, v)| {
                            let v = (*v)?;
                            let w = (e[1] - e[0]) * 0.9 / k;
                            let x0 = e[0] + (e[1] - e[0]) * 0.05 + j as f64 * w;
                            Some(Rectangle::new(
                                [(x0, y_range.start), (x0 + w * 0.95, v)],
                                c.filled(),
                            ))
                        }))
                        .map_err(draw_err)?
                        .label(name.as_str())
                        .legend(move |(x, y)| {
                            Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled())
                        });
                }
                if *diagonal {
                    chart
                        .draw_series(DashedLineSeries::new(
                            [(lo, lo), (hi, hi)],
                            6,
                            4,
                            RGBColor(90, 90, 90).stroke_width(1),
                        ))
                        .map_err(draw_err)?
                        .label("perfect calibration")
                        .legend(|(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(90, 90, 90))
                        });
                }
                legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
            }
            Chart::Heatmap {
                title,
                rows,
                columns,
                values,
                range,
                percent,
            } => {
                let (nr, nc) = (rows.len().max(1), columns.len().max(1));
                let longest = rows.iter().map(|r| r.chars().count()).max().unwrap_or(4);
                let mut chart = ChartBuilder::on(root)
                    .caption(title, (FONT, 19))
                    .margin(12)
                    .x_label_area_size(28)
                    .y_label_area_size((longest as u32 * 7 + 12).min(160))
                    .build_cartesian_2d(0f64..nc as f64, 0f64..nr as f64)
                    .map_err(draw_err)?;
                let (rn, cn) = (rows.clone(), columns.clone());
                let label = move |names: &[String], v: f64, flip: bool| {
                    let i = v.floor();
                    if (v - i - 0.5).abs() > 1e-6 || i < 0.0 || i as usize >= names.len() {
                        return String::new();
                    }
                    let i = i as usize;
                    names[if flip { names.len() - 1 - i } else { i }].clone()
                };
                chart
                    .configure_mesh()
                    .disable_mesh()
                    .x_labels(nc * 2 + 1)
                    .y_labels(nr * 2 + 1)
                    .x_label_formatter(&|x| label(&cn, *x, false))
                    .y_label_formatter(&|y| label(&rn, *y, true))
                    .label_style((FONT, 14))
                    .draw()
                    .map_err(draw_err)?;
                let span = (range.end - range.start).max(f64::MIN_POSITIVE);
                let top = PALETTE[0];
                for (r, row) in values.iter().enumerate() {
                    let y0 = (nr - 1 - r) as f64;
                    for (c, &v) in row.iter().enumerate() {
                        let t = ((v - range.start) / span).clamp(0.0, 1.0);
                        let mix = |a: u8| (255.0 + (a as f64 - 255.0) * t).round() as u8;
                        let fill = RGBColor(mix(top.0), mix(top.1), mix(top.2));
                        let x0 = c as f64;
                        chart
                            .draw_series(std::iter::once(Rectangle::new(
                                [(x0, y0), (x0 + 1.0, y0 + 1.0)],
                                fill.filled(),
                            )))
                            .map_err(draw_err)?;
                        let text = if *percent {
                            format!("{:.0}", v * 100.0)
                        } else {
                            format!("{v:.2}")
                        };
                        let ink = if t > 0.55 { WHITE } else { BLACK };
                        chart
                            .draw_series(std::iter::once(Text::new(
                                text,
                                (x0 + 0.5, y0 + 0.5),
                                (FONT, 11)
                                    .into_font()
                                    .color(&ink)
                                    .pos(Pos::new(HPos::Center, VPos::Center)),
                            )))
                            .map_err(draw_err)?;
                    }
                }
            }
            Chart::Bars {
                title,
                y_label,
                categories,
                groups,
                y_range,
            } => {
                // Horizontal bars: category names (attack names, class
                // names) read whole along the y axis, however many.
                let n = categories.len().max(1);
                let k = groups.len().max(1);
                let titled = root.titled(title, (FONT, 19)).map_err(draw_err)?;
                let (strip, plot) = titled.split_vertically(26);
                legend_strip(
                    &strip,
                    groups
                        .iter()
                        .enumerate()
                        .map(|(j, (name, _))| (name.as_str(), color(j))),
                )?;
                let longest = categories
                    .iter()
                    .map(|c| shorten(c).chars().count())
                    .max()
                    .unwrap_or(4);
                let mut chart = ChartBuilder::on(&plot)
                    .margin(12)
                    .margin_top(4)
                    .x_label_area_size(40)
                    .y_label_area_size((longest as u32 * 7 + 14).clamp(40, 200))
                    .build_cartesian_2d(y_range.clone(), 0f64..n as f64)
                    .map_err(draw_err)?;
                let names = categories.clone();
                chart
                    .configure_mesh()
                    .disable_y_mesh()
                    .y_labels(n * 2 + 1)
                    .y_label_formatter(&|y| {
                        // Labels sit at each group's centre (i + 0.5), the
                        // first category at the top.
                        let i = y.floor();
                        if (y - i - 0.5).abs() < 1e-6 && (i as usize) < names.len() {
                            shorten(&names[names.len() - 1 - i as usize])
                        } else {
                            String::new()
                        }
                    })
                    .x_desc(y_label.as_str())
                    .label_style((FONT, 14))
                    .light_line_style(RGBColor(235, 235, 235))
                    .max_light_lines(2)
                    .draw()
                    .map_err(draw_err)?;
                let height = 0.8 / k as f64;
                for (j, (_, values)) in groups.iter().enumerate() {
                    let c = color(j);
                    chart
                        .draw_series(values.iter().enumerate().map(|(i, &v)| {
                            let y1 = (n - i) as f64 - 0.1 - j as f64 * height;
                            Rectangle::new(
                                [(y_range.start, y1 - height * 0.95), (v, y1)],
                                c.filled(),
                            )
                        }))
                        .map_err(draw_err)?;
                }
            }
        }
        Ok(())
    }
}

/// Lines with more points than this are drawn without markers.
const MAX_MARKERS: usize = 40;

/// Series `i`'s colour: the palette, again from its start past 8 series
/// (whose lines are then dashed and their markers triangles, see [`lines`]).
fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The mesh, one line with markers per series and the legend, on an x axis
/// of any scale.
fn lines<'a, DB, X>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, RangedCoordf64>>,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    corner: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .max_light_lines(2)
        .draw()
        .map_err(draw_err)?;
    for (i, s) in series.iter().enumerate() {
        let c = color(i);
        let style = c.stroke_width(2);
        // Past the palette's 8 colours, lines repeat a colour: dashes and
        // triangle markers tell them apart.
        let second_round = i >= PALETTE.len();
        let drawn = if second_round {
            chart.draw_series(DashedLineSeries::new(s.points.iter().copied(), 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(s.points.iter().copied(), style))
        };
        drawn
            .map_err(draw_err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                if second_round {
                    PathElement::new(vec![(x, y), (x + 6, y)], style)
                } else {
                    PathElement::new(vec![(x, y), (x + 18, y)], style)
                }
            });
        // A distribution of a thousand inputs is a curve, not markers.
        if s.points.len() > MAX_MARKERS {
            continue;
        }
        if second_round {
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&p| TriangleMarker::new(p, 4, c.filled())),
                )
                .map_err(draw_err)?;
        } else {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(draw_err)?;
        }
    }
    if series.len() > 1 || series.iter().any(|s| !s.name.is_empty()) {
        legend(chart, corner)?;
    }
    Ok(())
}

/// The corner of the plot with the fewest points near it (the outer 40% of
/// each axis), where the legend hides the least; ties go to the upper right.
fn emptiest_corner(
    series: &[Series],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> SeriesLabelPosition {
    let at = |x: f64, lo: f64, hi: f64| if hi > lo { (x - lo) / (hi - lo) } else { 0.5 };
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let crowd = |right: bool, up: bool| {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| {
                let (u, v) = (at(*x, x0, x1), at(*y, y0, y1));
                (if right { u >= 0.6 } else { u <= 0.4 }) && (if up { v >= 0.6 } else { v <= 0.4 })
            })
            .count()
    };
    corners
        .into_iter()
        .min_by_key(|&(_, right, up)| crowd(right, up))
        .map(|(p, _, _)| p)
        .unwrap_or(SeriesLabelPosition::UpperRight)
}

/// The series' legend over a translucent box, where it hides least: lines
/// of accuracy or probability fall from the top left, so their legend sits
/// at the lower left.
fn legend<'a, DB, X>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, RangedCoordf64>>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .position(position)
        .draw()
        .map_err(draw_err)
}

/// A legend as one row of swatches and names, in its own strip above the
/// plot, so that it never hides a bar.
fn legend_strip<'a, DB: DrawingBackend>(
    strip: &DrawingArea<DB, Shift>,
    entries: impl Iterator<Item = (&'a str, RGBColor)>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut x = 70i32;
    for (name, c) in entries {
        strip
            .draw(&Rectangle::new([(x, 8), (x + 12, 20)], c.filled()))
            .map_err(draw_err)?;
        strip
            .draw(&Text::new(name.to_string(), (x + 17, 7), (FONT, 13)))
            .map_err(draw_err)?;
        x += 17 + (name.chars().count() as i32) * 8 + 20;
    }
    Ok(())
}

/// A category name short enough for an axis label.
fn shorten(s: &str) -> String {
    const MAX: usize = 26;
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
            log_x: false,
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

    /// The text of each `<text>` element of an SVG document.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_string())
            })
            .collect()
    }

    #[test]
    fn binned_bars_skip_empty_bins_and_draw_the_diagonal() {
        let chart = Chart::Binned {
            title: "reliability".into(),
            x_label: "confidence".into(),
            y_label: "accuracy".into(),
            edges: vec![0.0, 0.25, 0.5, 0.75, 1.0],
            series: vec![("accuracy".into(), vec![None, Some(0.3), None, Some(0.9)])],
            y_range: 0.0..1.0,
            diagonal: true,
        };
        let with = chart.svg().unwrap().matches("<rect").count();
        let Chart::Binned { series, .. } = &chart else {
            unreachable!()
        };
        let mut full = series.clone();
        full[0].1 = vec![Some(0.1), Some(0.3), Some(0.5), Some(0.9)];
        let all = Chart::Binned {
            title: "reliability".into(),
            x_label: "confidence".into(),
            y_label: "accuracy".into(),
            edges: vec![0.0, 0.25, 0.5, 0.75, 1.0],
            series: full,
            y_range: 0.0..1.0,
            diagonal: true,
        };
        // Two more bins filled, two more bars.
        assert_eq!(all.svg().unwrap().matches("<rect").count(), with + 2);
        assert!(chart.svg().unwrap().contains("perfect calibration"));
    }

    #[test]
    fn heat_maps_write_each_value_in_its_cell() {
        let chart = Chart::Heatmap {
            title: "corruptions".into(),
            rows: vec!["fog".into(), "jpeg".into()],
            columns: vec!["s1".into(), "s2".into(), "s3".into()],
            values: vec![vec![0.91, 0.52, 0.13], vec![0.99, 0.98, 0.97]],
            range: 0.0..1.0,
            percent: true,
        };
        let svg = chart.svg().unwrap();
        let written = texts(&svg);
        for v in ["91", "52", "13", "99", "98", "97", "fog", "jpeg", "s3"] {
            assert!(
                written.iter().any(|t| t == v),
                "{v} missing from {written:?}"
            );
        }
        assert!(svg.matches("<rect").count() >= 6);
        // Taller with more rows.
        assert!(chart.size().1 >= SIZE.1);
    }

    #[test]
    fn a_log_axis_spans_decades_and_lines_past_eight_are_dashed() {
        let series = |n: usize| -> Vec<Series> {
            (0..n)
                .map(|i| Series {
                    name: format!("s{i}"),
                    points: vec![(1.0, i as f64), (10.0, i as f64), (1000.0, i as f64)],
                })
                .collect()
        };
        let chart = |n| Chart::Lines {
            title: "α".into(),
            x_label: "α".into(),
            y_label: "mmc".into(),
            series: series(n),
            y_range: 0.0..10.0,
            log_x: true,
        };
        let eight = chart(8).svg().unwrap();
        let ticks = texts(&eight);
        assert!(
            ["1", "10", "100", "1000"]
                .iter()
                .all(|d| ticks.iter().any(|t| t.trim_end_matches(".0") == *d)),
            "no decade ticks in {ticks:?}"
        );
        // The ninth series repeats the first colour, as dashes: many short
        // segments instead of one polyline.
        let nine = chart(9).svg().unwrap();
        assert!(
            nine.matches("<polyline").count() > eight.matches("<polyline").count() + 2,
            "the ninth series is not dashed"
        );
    }

    #[test]
    fn the_legend_goes_where_the_lines_are_not() {
        // Robust accuracy falling from the upper left to the lower right:
        // both other corners are empty, and ties go to the upper right.
        let falling = vec![Series {
            name: "pgd".into(),
            points: vec![(0.0, 100.0), (0.5, 50.0), (0.9, 5.0), (1.0, 0.0)],
        }];
        assert!(matches!(
            emptiest_corner(&falling, (0.0, 1.0), (0.0, 100.0)),
            SeriesLabelPosition::UpperRight
        ));
        // A curve hugging the top: the legend goes below it.
        let high = vec![Series {
            name: "clean".into(),
            points: vec![(0.0, 99.0), (0.3, 98.0), (0.7, 98.0), (1.0, 97.0)],
        }];
        assert!(matches!(
            emptiest_corner(&high, (0.0, 1.0), (0.0, 100.0)),
            SeriesLabelPosition::LowerRight
        ));
        let rising = vec![Series {
            name: "insertion".into(),
            points: vec![(0.0, 0.0), (0.1, 0.9), (0.5, 1.0), (1.0, 1.0)],
        }];
        assert!(matches!(
            emptiest_corner(&rising, (0.0, 1.0), (0.0, 1.0)),
            SeriesLabelPosition::LowerRight
        ));
    }
}
