//! How well the single-image cell-size estimate holds, image by image: the table of
//! `docs/benchmarks.md` ("Cell-size estimate").
//!
//! ```text
//! cargo run --release --example cell_size_accuracy -- --bccd ../shared/data/bccd --txl-pbc ../shared/data/txl-pbc
//! ```
//! Truth per image: the median `sqrt(w · h)` of its red-cell boxes (class `RBC`; every class
//! of the synthetic smears is a red-cell morphology), leaving out boxes within 2 px of the
//! border (cut cells) when at least 3 remain; images with fewer than 3 red-cell boxes are not
//! scored. Rows: BCCD's test split, TXL-PBC's test split by source dataset
//! (`source_map.csv`), synthetic smears (realistic profile) at cell scales 0.5, 1, 2 and 4,
//! and BCCD's test images downscaled 2.5× (truth / 2.5). Columns: images, median absolute
//! relative error, share within ±25 %, share confident, share within ±25 % among the
//! confident, and the estimator's median time per image.

mod cli;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arfpn::voc::synthetic::{render_image, SmearProfile, SyntheticConfig};
use arfpn::voc::{Labels, LoadOptions, RgbImage, VocDataset};
use arfpn::{estimate_cell_size_with_confidence, BBox};
use clap::Parser;

/// Measure the single-image cell-size estimate against annotated box sizes.
#[derive(Parser)]
#[command(name = "cell_size_accuracy")]
struct Args {
    /// BCCD (its test split, and the split downscaled 2.5×).
    #[arg(long, value_parser = cli::existing_dir)]
    bccd: Option<PathBuf>,
    /// TXL-PBC (its test split by source dataset, from source_map.csv).
    #[arg(long, value_parser = cli::existing_dir)]
    txl_pbc: Option<PathBuf>,
    /// Synthetic smears per cell scale (0 to leave them out).
    #[arg(long, default_value_t = 20)]
    synthetic: u64,
}

/// One image's result: relative error, confident, seconds.
type Row = (f32, bool, f64);

fn truth(boxes: &[BBox], w: f32, h: f32) -> Option<f32> {
    let inner: Vec<&BBox> = boxes
        .iter()
        .filter(|b| b.x1 > 2.0 && b.y1 > 2.0 && b.x2 < w - 2.0 && b.y2 < h - 2.0)
        .collect();
    let chosen: Vec<&BBox> = if inner.len() >= 3 {
        inner
    } else {
        boxes.iter().collect()
    };
    if chosen.len() < 3 {
        return None;
    }
    let mut v: Vec<f32> = chosen
        .iter()
        .map(|b| (b.width() * b.height()).max(0.0).sqrt())
        .collect();
    v.sort_by(f32::total_cmp);
    Some(v[v.len() / 2])
}

fn measure(image: &RgbImage, truth: f32) -> Option<Row> {
    let t = Instant::now();
    let e = estimate_cell_size_with_confidence(image);
    let s = t.elapsed().as_secs_f64();
    let err = e.map_or(f32::INFINITY, |e| (e.size_px / truth - 1.0).abs());
    Some((err, e.is_some_and(|e| e.confident()), s))
}

fn print_row(name: &str, rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    let n = rows.len() as f64;
    let mut errs: Vec<f32> = rows.iter().map(|r| r.0).collect();
    errs.sort_by(f32::total_cmp);
    let mut secs: Vec<f64> = rows.iter().map(|r| r.2).collect();
    secs.sort_by(f64::total_cmp);
    let within = rows.iter().filter(|r| r.0 <= 0.25).count() as f64;
    let confident: Vec<&Row> = rows.iter().filter(|r| r.1).collect();
    let within_conf = confident.iter().filter(|r| r.0 <= 0.25).count() as f64;
    println!(
        "| {name} | {} | {:.1} % | {:.0} % | {:.0} % | {} | {:.0} ms |",
        rows.len(),
        100.0 * errs[errs.len() / 2],
        100.0 * within / n,
        100.0 * confident.len() as f64 / n,
        if confident.is_empty() {
            "–".to_string()
        } else {
            format!("{:.0} %", 100.0 * within_conf / confident.len() as f64)
        },
        1e3 * secs[secs.len() / 2],
    );
}

/// An image of a VOC split: id, pixels, red-cell boxes.
type Annotated = (String, RgbImage, Vec<BBox>);

/// The images of a VOC split with their red-cell boxes.
fn voc(root: &Path, split: &str) -> Result<Vec<Annotated>, Box<dyn std::error::Error>> {
    let ds = VocDataset::open(root, split, &LoadOptions::lenient(Labels::Discover))?;
    let rbc = ds
        .labels()
        .names()
        .iter()
        .position(|n| n.eq_ignore_ascii_case("rbc"))
        .ok_or_else(|| format!("{}: no RBC class", root.display()))?;
    let mut out = Vec::new();
    for i in 0..ds.len() {
        let item = ds.load(i)?;
        let boxes = item
            .sample
            .objects
            .iter()
            .filter(|o| o.class.index() == rbc)
            .map(|o| o.bbox)
            .collect();
        out.push((item.sample.id.clone(), item.image, boxes));
    }
    Ok(out)
}

fn run(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    println!("| dataset | images | median \\|rel. error\\| | within ±25 % | confident | within ±25 % among confident | time / image |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    if let Some(root) = &a.bccd {
        let (mut native, mut small) = (Vec::new(), Vec::new());
        for (_, image, boxes) in voc(root, "test")? {
            let (w, h) = (image.width(), image.height());
            let Some(t) = truth(&boxes, w as f32, h as f32) else {
                continue;
            };
            native.extend(measure(&image, t));
            let down = image::imageops::resize(
                &image,
                (w as f32 / 2.5).round() as u32,
                (h as f32 / 2.5).round() as u32,
                image::imageops::FilterType::Triangle,
            );
            small.extend(measure(&down, t / 2.5));
        }
        print_row("BCCD test", &native);
        print_row("BCCD test ÷ 2.5", &small);
    }
    if let Some(root) = &a.txl_pbc {
        let map = std::fs::read_to_string(root.join("source_map.csv"))?;
        let source: BTreeMap<String, String> = map
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                Some((f.first()?.to_string(), f.get(2)?.to_string()))
            })
            .collect();
        let mut rows: BTreeMap<String, Vec<Row>> = BTreeMap::new();
        for (id, image, boxes) in voc(root, "test")? {
            let Some(t) = truth(&boxes, image.width() as f32, image.height() as f32) else {
                continue;
            };
            let src = source.get(&id).cloned().unwrap_or_else(|| "?".into());
            rows.entry(src).or_default().extend(measure(&image, t));
        }
        for (src, r) in &rows {
            print_row(&format!("TXL-PBC test, {src}"), r);
        }
    }
    for (scale, (w, h)) in [
        (0.5, (500, 375)),
        (1.0, (500, 375)),
        (2.0, (640, 480)),
        (4.0, (1000, 750)),
    ] {
        if a.synthetic == 0 {
            break;
        }
        let cfg = SyntheticConfig {
            width: w,
            height: h,
            cell_scale: scale,
            profile: SmearProfile::Realistic,
            ..SyntheticConfig::default()
        };
        let mut rows = Vec::new();
        for seed in 0..a.synthetic {
            let s = render_image(&cfg, 1000 + seed)?;
            let boxes: Vec<BBox> = s.objects.iter().map(|o| o.bbox).collect();
            if let Some(t) = truth(&boxes, w as f32, h as f32) {
                rows.extend(measure(&s.image, t));
            }
        }
        print_row(&format!("synthetic, cell scale {scale}"), &rows);
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    cli::exit_with(run(&Args::parse()))
}
