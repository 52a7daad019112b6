//! PR curves drawn to PNG or SVG with `plotters` (pure Rust; the font is embedded).

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{MetricsError, VocResult};

/// DejaVu Sans, subset to Latin-1 (license: `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() -> Result<(), MetricsError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(MetricsError::Output {
            what: "plot".into(),
            reason: "embedded font rejected".into(),
        })
    }
}

/// The Okabe–Ito colour-blind-safe palette (Okabe & Ito 2008, "Color Universal Design"),
/// in its usual order: black, orange, sky blue, bluish green, yellow, blue, vermillion,
/// reddish purple.
pub const OKABE_ITO: [(u8, u8, u8); 8] = [
    (0, 0, 0),
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
];

/// The colour of the `k`-th PR curve: the seven [`OKABE_ITO`] colours that read on a white
/// background (yellow left out), in the order blue, vermillion, bluish green, reddish
/// purple, orange, sky blue, black; curves 7.. repeat them dashed ([`series_dashed`]).
pub fn series_color(k: usize) -> RGBColor {
    const ORDER: [usize; 7] = [5, 6, 3, 7, 1, 2, 0];
    let (r, g, b) = OKABE_ITO[ORDER[k % ORDER.len()]];
    RGBColor(r, g, b)
}

/// Whether the `k`-th PR curve is drawn dashed (the second round of colours and later).
pub fn series_dashed(k: usize) -> bool {
    k >= 7
}

/// The polyline of a class's precision envelope (the curve VOC all-point AP integrates),
/// as steps: precision `p_i` holds on `(r_{i-1}, r_i]`.
pub fn envelope_steps(recall: &[f64], precision: &[f64]) -> Vec<(f64, f64)> {
    let n = recall.len();
    let mut env = precision.to_vec();
    for i in (0..n.saturating_sub(1)).rev() {
        env[i] = env[i].max(env[i + 1]);
    }
    let mut pts = Vec::with_capacity(2 * n + 1);
    let mut prev_r = 0.0;
    for i in 0..n {
        if i > 0 && recall[i] == recall[i - 1] {
            continue;
        }
        pts.push((prev_r, env[i]));
        pts.push((recall[i], env[i]));
        prev_r = recall[i];
    }
    pts
}

/// Draws one precision-recall curve per class with ground truth (precision envelope of the
/// VOC matching), the legend naming each class with its AP (Figure 8 of the ARFPN paper).
/// The format follows the extension of `path`: `.png` or `.svg`.
pub fn plot_pr_curves(
    result: &VocResult,
    class_names: &[String],
    path: impl AsRef<Path>,
) -> Result<(), MetricsError> {
    let path = path.as_ref();
    register_font()?;
    let out_err = |e: String| MetricsError::Output {
        what: path.display().to_string(),
        reason: e,
    };
    let size = (960, 720);
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw(&root, result, class_names).map_err(out_err)
        }
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw(&root, result, class_names).map_err(out_err)
        }
        _ => Err(out_err("the file name must end in .png or .svg".into())),
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    result: &VocResult,
    class_names: &[String],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let title = match result.map {
        Some(m) => format!(
            "Precision-recall, IoU {} (mAP {m:.3})",
            result.options.iou_threshold
        ),
        None => format!("Precision-recall, IoU {}", result.options.iou_threshold),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("Recall")
        .y_desc("Precision")
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 18))
        .draw()
        .map_err(e)?;
    for (k, c) in result.per_class.iter().enumerate() {
        let Some(ap) = c.ap else { continue };
        let color = series_color(k);
        let name = class_names
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("class {k}"));
        let steps = envelope_steps(&c.curve.recall, &c.curve.precision);
        let style = color.stroke_width(2);
        let series = if series_dashed(k) {
            chart.draw_series(DashedLineSeries::new(steps, 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(steps, style))
        };
        let dashed = series_dashed(k);
        series
            .map_err(e)?
            .label(format!("{name} (AP {ap:.3})"))
            .legend(move |(x, y)| {
                let pts = if dashed {
                    vec![(x, y), (x + 8, y)]
                } else {
                    vec![(x, y), (x + 20, y)]
                };
                PathElement::new(pts, color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Draws named `(x, y)` series as lines (e.g. training losses or validation mAP against
/// the step), colours as [`series_color`], legend at the upper right. Empty series are
/// skipped; the axes span the data. The format follows the extension: `.png` or `.svg`.
pub fn plot_lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    path: impl AsRef<Path>,
) -> Result<(), MetricsError> {
    let path = path.as_ref();
    register_font()?;
    let out_err = |e: String| MetricsError::Output {
        what: path.display().to_string(),
        reason: e,
    };
    let size = (960, 540);
    let args = (title, x_desc, y_desc, series);
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw_lines(&root, args).map_err(out_err)
        }
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw_lines(&root, args).map_err(out_err)
        }
        _ => Err(out_err("the file name must end in .png or .svg".into())),
    }
}

type LineArgs<'a> = (&'a str, &'a str, &'a str, &'a [(String, Vec<(f64, f64)>)]);

fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (title, x_desc, y_desc, series): LineArgs<'_>,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let pts = series
        .iter()
        .flat_map(|(_, s)| s.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let (y0, y1) = (y0.min(0.0), y1 + pad);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(e)?;
    for (k, (name, s)) in series.iter().enumerate() {
        if s.is_empty() {
            continue;
        }
        let color = series_color(k);
        chart
            .draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))
            .map_err(e)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}
