//! Render a synthetic blood-smear dataset (all 14 RBC morphology classes of the paper) as
//! Pascal VOC: the project's embedded default data.
//!
//! ```sh
//! cargo run --release --example make_synthetic -- OUT_DIR [--images N] [--seed S]
//!     [--width W] [--height H] [--png]
//! ```
//! Defaults: 24 images of 500x375 px (the paper's crop size), seed 0, JPEG.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use arfpn_voc::synthetic::{write_dataset, ImageFormat, SyntheticConfig};

fn usage() -> ExitCode {
    eprintln!(
        "usage: make_synthetic OUT_DIR [--images N] [--seed S] [--width W] [--height H] [--png]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let mut images = 24usize;
    let mut seed = 0u64;
    let mut cfg = SyntheticConfig::default();
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Option<u64> {
            let v = args.next()?;
            match v.parse() {
                Ok(n) => Some(n),
                Err(_) => {
                    eprintln!("{name}: not a non-negative integer: {v:?}");
                    None
                }
            }
        };
        match a.as_str() {
            "--images" => match num("--images") {
                Some(n) => images = n as usize,
                None => return usage(),
            },
            "--seed" => match num("--seed") {
                Some(n) => seed = n,
                None => return usage(),
            },
            "--width" => match num("--width") {
                Some(n) => cfg.width = n as u32,
                None => return usage(),
            },
            "--height" => match num("--height") {
                Some(n) => cfg.height = n as u32,
                None => return usage(),
            },
            "--png" => cfg.format = ImageFormat::Png,
            "-h" | "--help" => return usage(),
            _ if out.is_none() && !a.starts_with("--") => out = Some(PathBuf::from(a)),
            _ => return usage(),
        }
    }
    let Some(out) = out else { return usage() };
    let t0 = Instant::now();
    match write_dataset(&out, images, seed, &cfg) {
        Ok(s) => {
            println!(
                "wrote {} images ({}x{}, seed {seed}) to {} in {:.2}s: train {} / val {} / test {}",
                s.images,
                cfg.width,
                cfg.height,
                out.display(),
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
