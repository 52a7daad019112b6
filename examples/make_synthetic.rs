//! Render a synthetic blood-smear dataset (all 14 RBC morphology classes of the paper) as
//! Pascal VOC: the project's embedded default data.
//!
//! ```sh
//! cargo run --release --example make_synthetic -- OUT_DIR [--images N] [--seed S]
//!     [--width W] [--height H] [--png] [--profile default|realistic] [--cell-scale X]
//! ```
//! Defaults: 24 images of 500x375 px (the paper's crop size), seed 0, JPEG, the `default`
//! profile (the quickstart's look) at cell scale 1 (≈ 21 px cells). `--profile realistic`
//! gives overlapping size distributions between classes, per-image stain and illumination
//! variation and wider blur/noise; `--cell-scale 4.5` gives BCCD-like ≈ 95 px cells
//! (0.5..=8, and the smaller image side must hold 3 cells). Sizes are limited to
//! 64..=16384 px a side and 4096x4096 px in all (`SyntheticConfig::validate`).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use arfpn_voc::synthetic::{
    write_dataset, ImageFormat, SyntheticConfig, MAX_CELL_SCALE, MIN_CELL_SCALE,
};
use clap::{Parser, ValueEnum};

/// `--profile` values.
#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    /// Today's look (the quickstart's): narrow per-class size ranges, uniform stain.
    Default,
    /// Overlapping sizes, stain/illumination variation, wider blur and noise.
    Realistic,
}

/// Render a synthetic 14-class RBC smear dataset (Pascal VOC layout).
#[derive(Parser)]
#[command(name = "make_synthetic")]
struct Args {
    /// Output folder (created): JPEGImages/, Annotations/, ImageSets/Main/, classes.txt.
    out: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    images: u64,
    /// Seed (the dataset is identical for the same seed on every platform).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image width, px (64..=16384; width x height at most 4096x4096 px).
    #[arg(long, default_value_t = 500)]
    width: u32,
    /// Image height, px (64..=16384).
    #[arg(long, default_value_t = 375)]
    height: u32,
    /// Write PNG instead of JPEG.
    #[arg(long)]
    png: bool,
    /// Look of the smears.
    #[arg(long, value_enum, default_value = "default")]
    profile: ProfileArg,
    /// Multiplier of the cell size (1: ~21 px cells; 4.5: BCCD-like ~95 px), 0.5..=8.
    #[arg(long, default_value_t = 1.0, value_parser = parse_cell_scale)]
    cell_scale: f32,
}

fn parse_cell_scale(s: &str) -> Result<f32, String> {
    let v: f32 = s
        .parse()
        .map_err(|e| format!("not a number: {s:?} ({e})"))?;
    if v.is_finite() && (MIN_CELL_SCALE..=MAX_CELL_SCALE).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{v} is outside {MIN_CELL_SCALE}..={MAX_CELL_SCALE}"
        ))
    }
}

fn main() -> ExitCode {
    let a = Args::parse();
    let base = match a.profile {
        ProfileArg::Default => SyntheticConfig::default(),
        ProfileArg::Realistic => SyntheticConfig::realistic(),
    };
    let cfg = SyntheticConfig {
        cell_scale: a.cell_scale,
        width: a.width,
        height: a.height,
        format: if a.png {
            ImageFormat::Png
        } else {
            ImageFormat::Jpeg
        },
        ..base
    };
    // All arguments are checked before anything is rendered.
    if let Err(e) = cfg.validate() {
        eprintln!("error: --width/--height/--cell-scale: {e}");
        return ExitCode::from(2);
    }
    let t0 = Instant::now();
    match write_dataset(&a.out, a.images as usize, a.seed, &cfg) {
        Ok(s) => {
            println!(
                "wrote {} images ({}x{}, seed {}, profile {}, cell scale {}) to {} in {:.2}s: \
                 train {} / val {} / test {}",
                s.images,
                cfg.width,
                cfg.height,
                a.seed,
                cfg.profile.name(),
                cfg.cell_scale,
                a.out.display(),
                t0.elapsed().as_secs_f64(),
                s.train,
                s.val,
                s.test
            );
            let total: usize = s.objects_per_class.iter().map(|c| c.1).sum();
            println!("objects: {total}");
            for (name, n) in &s.objects_per_class {
                println!("  {name:<22} {n}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
