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
        let color = Palette99::pick(k).to_rgba();
        let name = class_names
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("class {k}"));
        chart
            .draw_series(LineSeries::new(
                envelope_steps(&c.curve.recall, &c.curve.precision),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(format!("{name} (AP {ap:.3})"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
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
