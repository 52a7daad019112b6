//! Detects and counts cells in smear photographs with a trained checkpoint, or with the
//! blood-cell model that ships with arfpn when no checkpoint is given.
//!
//! ```text
//! cargo run --release --example detect -- smear1.jpg smears/ --out results/
//! cargo run --release --example detect -- --checkpoint runs/bccd/best.safetensors smear1.jpg --out results/
//! ```
//!
//! Writes into `--out`: per image an annotated picture (`<name>.png`, boxes in class
//! colours) and its detections as VOC XML (`annotations/<name>.xml`, pseudo-labels), where
//! `<name>` is the image's path below the deepest folder holding every input, without its
//! extension (`a` for `smears/a.jpg`; `patientA/field1` and `patientB/field1` for two
//! `field1.jpg` in two folders: no output overwrites another); all
//! detections as a COCO results file (`detections.json`, image ids in `images.json`); the
//! differential count per image (rows keyed by the input's path as given) and overall
//! (`counts.csv`, `counts.json`, and a table on the
//! terminal); and `report.html`, one self-contained page (thumbnails, counts, class
//! percentages) that opens in a browser without a server.

mod cli;

use std::io::Write;
use std::path::{Path, PathBuf};

use arfpn::lab::{
    coco_results, count_report_html, detect_at_scale, draw_detections, voc_annotation, FieldTiling,
    ReportImage,
};
use arfpn::{Detections, Detector, ImageSize};
use candle_core::Device;
use clap::Parser;

/// Detect and count cells in smear images.
#[derive(Parser, Debug)]
#[command(name = "detect", version)]
struct Args {
    /// A checkpoint written by `train` or `quickstart`; without it, the blood-cell model that
    /// ships with arfpn (Platelets, RBC, WBC; `models/README.md`).
    #[arg(long, value_parser = cli::existing_file)]
    checkpoint: Option<PathBuf>,
    /// Image files or folders of images (.jpg, .jpeg, .png, .bmp).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// Detections scoring below this are not drawn, exported or counted.
    #[arg(long, default_value_t = 0.5, value_parser = cli::unit_f32)]
    score: f32,
    /// Whole-field tiling: auto (tile images larger than --tile-size) or off.
    #[arg(long, default_value = "auto", value_parser = ["auto", "off"])]
    tile: String,
    /// Tile side for --tile auto.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(64..=8192))]
    tile_size: u64,
    /// Typical cell size (pixels) in these images: each image is rescaled to the training
    /// cell size recorded in the checkpoint.
    #[arg(long, value_parser = positive_f32, conflicts_with = "um_per_px")]
    cell_size_px: Option<f32>,
    /// Micrometres per pixel of these images (needs the training µm/px in the checkpoint).
    #[arg(long, value_parser = positive_f32)]
    um_per_px: Option<f32>,
    /// Without --cell-size-px/--um-per-px: estimate each image's typical cell size and, when
    /// the estimate is confident and differs from the training size by more than 1.25×, warn
    /// (`warn`, the default) or rescale that image (`auto`, which also says why it leaves an
    /// image alone); `off` does nothing.
    #[arg(long, default_value = "warn")]
    rescale: cli::Rescale,
    /// Precision of the network's matrix products: f32, or bf16 (bf16 operands, f32
    /// accumulation; runs on CPUs with Intel AMX, f32 elsewhere).
    #[arg(long, default_value = "f32")]
    precision: arfpn::MatmulPrecision,
    /// Keep subnormal floats instead of flushing them to zero (`arfpn_kernels::flush_denormals`,
    /// the default: a fresh network's first steps can otherwise run several times slower).
    #[arg(long)]
    keep_denormals: bool,
}

fn positive_f32(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a finite number > 0")),
    }
}

/// The factor given on the command line (`--cell-size-px`, `--um-per-px`), and why; `None`
/// when each image's own estimate decides (`--rescale`).
fn given_scale(a: &Args, train: &arfpn::DataInfo) -> Result<Option<(f32, String)>, String> {
    if a.cell_size_px.is_none() && a.um_per_px.is_none() {
        return Ok(None);
    }
    let Some(train_px) = train.cell_size_px else {
        return Ok(Some((
            1.0,
            "the checkpoint records no training cell size: no rescaling".into(),
        )));
    };
    if let Some(px) = a.cell_size_px {
        return Ok(Some((
            train_px / px,
            format!("cells {px:.0} px given, trained at {train_px:.0} px"),
        )));
    }
    let um = a.um_per_px.unwrap_or(1.0);
    let Some(train_um) = train.um_per_px else {
        return Err("--um-per-px needs the training µm/px, which this checkpoint does not record; give --cell-size-px".into());
    };
    Ok(Some((
        um / train_um,
        format!("{um} µm/px given, trained at {train_um} µm/px"),
    )))
}

fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let is_image = |p: &Path| {
        p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            matches!(
                e.to_ascii_lowercase().as_str(),
                "jpg" | "jpeg" | "png" | "bmp"
            )
        })
    };
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|q| q.is_file() && is_image(q))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{}: no .jpg/.png/.bmp images in this folder",
                    p.display()
                ));
            }
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    Ok(out)
}

/// Where each input's outputs go, relative to `--out` and without extension: the image's
/// path relative to the deepest folder holding every input. Images from one folder keep
/// their file stems (`smears/a.jpg` -> `a`); same-named files from different folders keep
/// the folders (`patientA/field1.jpg`, `patientB/field1.jpg` -> `patientA/field1`,
/// `patientB/field1`), so no output overwrites another. Files that differ only in their
/// extension (`field1.jpg`, `field1.png`) keep it (`field1.jpg`, `field1.png`).
fn output_names(images: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let full: Vec<PathBuf> = images
        .iter()
        .map(|p| std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect::<Result<_, _>>()?;
    for (i, p) in full.iter().enumerate() {
        if let Some(j) = full[..i].iter().position(|q| q == p) {
            return Err(format!(
                "{} and {} are the same file, given twice",
                images[j].display(),
                images[i].display()
            ));
        }
    }
    let mut common: Vec<std::path::Component> = match full.first().and_then(|p| p.parent()) {
        Some(dir) => dir.components().collect(),
        None => return Ok(Vec::new()),
    };
    for p in &full {
        let dir: Vec<_> = p
            .parent()
            .map(|d| d.components().collect())
            .unwrap_or_default();
        let shared = common.iter().zip(&dir).take_while(|(a, b)| a == b).count();
        common.truncate(shared);
    }
    let root: PathBuf = common.iter().collect();
    let relative: Vec<PathBuf> = full
        .iter()
        .map(|p| {
            p.strip_prefix(&root)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| p.clone())
        })
        .collect();
    let mut seen: std::collections::HashMap<PathBuf, usize> = std::collections::HashMap::new();
    for r in &relative {
        *seen.entry(r.with_extension("")).or_default() += 1;
    }
    Ok(relative
        .into_iter()
        .map(|r| {
            let bare = r.with_extension("");
            if seen[&bare] > 1 {
                r
            } else {
                bare
            }
        })
        .collect())
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn main() -> std::process::ExitCode {
    // Keep freed feature maps in the process (see arfpn_kernels::keep_freed_memory): it halves a
    // training step's time by sparing the kernel from clearing pages again and again.
    arfpn_kernels::keep_freed_memory();
    cli::exit_with(run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    if !a.keep_denormals {
        arfpn_kernels::flush_denormals();
    }
    let images = collect_images(&a.inputs)?;
    let names = output_names(&images)?;
    std::fs::create_dir_all(a.out.join("annotations"))
        .map_err(|e| format!("{}: cannot create the output folder: {e}", a.out.display()))?;
    let probe = a.out.join(".write-test");
    std::fs::write(&probe, b"").map_err(|e| {
        format!(
            "{}: the output folder is not writable: {e}",
            a.out.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    let mut detector = match &a.checkpoint {
        Some(p) => Detector::load(p, &Device::Cpu)?,
        None => {
            eprintln!("no --checkpoint: using the built-in blood-cell model (models/README.md)");
            Detector::default_model(&Device::Cpu)?
        }
    };
    detector.set_matmul_precision(a.precision);
    let classes = detector.classes().to_vec();
    let tiles = cli::field_tiling(a.tile_size as usize);
    let given = given_scale(&a, &detector.config().data)?;
    if let Some((_, why)) = &given {
        eprintln!("{why}");
    }
    let mut coco = Vec::new();
    let mut ids = Vec::new();
    let mut rows: Vec<ReportImage> = Vec::new();
    let mut failed = Vec::new();
    for (k, path) in images.iter().enumerate() {
        let img = match arfpn_voc::image_io::load_rgb(path) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("skipped: {e}");
                failed.push(path.display().to_string());
                continue;
            }
        };
        let size = ImageSize::new(img.height() as usize, img.width() as usize);
        let tiling = if a.tile == "auto" {
            tiles
        } else {
            FieldTiling {
                tile: usize::MAX / 4,
                ..tiles
            }
        };
        let scale = match &given {
            Some((scale, _)) => *scale,
            None => {
                let s = cli::estimated_scale(a.rescale, &detector.config().data, &img);
                let name = path.display();
                match &s.reason {
                    Some(reason) if s.unheeded => eprintln!(
                        "warning: {name}: {reason}; not rescaled: give --cell-size-px N (or --rescale auto)"
                    ),
                    Some(reason) if s.factor != 1.0 => {
                        eprintln!("{name}: {reason}: rescaled by {:.2}", s.factor)
                    }
                    Some(reason) if a.rescale == cli::Rescale::Auto => eprintln!("{name}: {reason}"),
                    _ => {}
                }
                s.factor
            }
        };
        let dets: Detections = detect_at_scale(&detector, &img, scale, &tiling)?.above(a.score);
        let name = names[k].display().to_string();
        let picture_path = a.out.join(format!("{name}.png"));
        let xml_path = a.out.join("annotations").join(format!("{name}.xml"));
        for p in [&picture_path, &xml_path] {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
            }
        }
        let picture = draw_detections(&img, &dets, a.score, 2);
        picture.save(&picture_path)?;
        let filename = path.file_name().and_then(|s| s.to_str()).unwrap_or("image");
        voc_annotation(&dets, &classes, filename, size, a.score)?.write(&xml_path)?;
        let id = (k + 1) as u64;
        coco.extend(coco_results(&dets, id));
        ids.push(serde_json::json!({"id": id, "file_name": path.display().to_string(), "width": size.width, "height": size.height}));
        let scale = 360.0 / size.width.max(size.height) as f32;
        let thumb = image::imageops::thumbnail(
            &picture,
            ((size.width as f32 * scale).max(1.0)) as u32,
            ((size.height as f32 * scale).max(1.0)) as u32,
        );
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(thumb)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
        rows.push(ReportImage {
            name: path.display().to_string(),
            counts: dets.counts(classes.len()),
            thumbnail_png: png,
        });
    }
    if rows.is_empty() {
        return Err(format!("no image could be read ({} failed)", failed.len()).into());
    }
    std::fs::write(a.out.join("detections.json"), serde_json::to_string(&coco)?)?;
    std::fs::write(
        a.out.join("images.json"),
        serde_json::to_string_pretty(&ids)?,
    )?;
    // Differential counts.
    let total = arfpn::lab::class_totals(classes.len(), &rows);
    let all: usize = total.iter().sum();
    let pct = arfpn::lab::percent;
    let mut csv = String::from("image,class,count,percent\n");
    for r in &rows {
        let n: usize = r.counts.iter().sum();
        for (c, name) in classes.iter().enumerate() {
            csv += &format!(
                "{},{},{},{:.2}\n",
                csv_field(&r.name),
                name,
                r.counts[c],
                pct(r.counts[c], n)
            );
        }
    }
    for (c, name) in classes.iter().enumerate() {
        csv += &format!("ALL,{},{},{:.2}\n", name, total[c], pct(total[c], all));
    }
    std::fs::write(a.out.join("counts.csv"), &csv)?;
    let json = serde_json::json!({
        "score_threshold": a.score,
        "classes": classes,
        "images": rows.iter().map(|r| serde_json::json!({"image": r.name, "counts": r.counts, "total": r.counts.iter().sum::<usize>()})).collect::<Vec<_>>(),
        "total": {"counts": total, "cells": all},
        "failed": failed,
    });
    std::fs::write(
        a.out.join("counts.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!(
        "differential count over {} image(s), score >= {}:",
        rows.len(),
        a.score
    );
    let w = classes.iter().map(|c| c.len()).max().unwrap_or(5).max(5);
    for (c, name) in classes.iter().enumerate() {
        println!(
            "  {name:>w$}  {:>6}  {:>6.2} %",
            total[c],
            pct(total[c], all)
        );
    }
    println!("  {:>w$}  {all:>6}", "total");
    // The report page.
    let model = a
        .checkpoint
        .as_ref()
        .map_or("built-in blood-cell model".into(), |p| {
            p.display().to_string()
        });
    let html = count_report_html(&classes, &rows, a.score, &model);
    let mut f = std::fs::File::create(a.out.join("report.html"))?;
    f.write_all(html.as_bytes())?;
    println!(
        "wrote {} (report.html, counts.csv/json, detections.json, pictures, annotations/)",
        a.out.display()
    );
    if !failed.is_empty() {
        return Err(format!(
            "{} image(s) could not be read: {}",
            failed.len(),
            failed.join(", ")
        )
        .into());
    }
    Ok(())
}
