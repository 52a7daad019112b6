//! Decode images with arfpn's decoder and save them as PNG (lossless), so that another tool
//! (torchvision, PIL) sees exactly the pixels arfpn sees.
//!
//! ```sh
//! cargo run --release --example to_png -- ../shared/data/bccd/JPEGImages --out /tmp/bccd-png
//! ```
//! JPEG decoders differ by a few grey levels (`docs/results.md`, "JPEG decoding"); compare
//! detectors on the PNGs this writes. Inputs are files or folders (.jpg, .jpeg, .png, .bmp);
//! `<out>/<stem>.png` is written for each, and two inputs with the same stem are an error.

mod cli;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Decode images with arfpn's decoder and write them as PNG.
#[derive(Parser)]
#[command(name = "to_png")]
struct Args {
    /// Image files or folders of images.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
}

fn run(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut files = Vec::new();
    for input in &a.inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        ["jpg", "jpeg", "png", "bmp"].contains(&e.to_ascii_lowercase().as_str())
                    })
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    std::fs::create_dir_all(&a.out)?;
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for f in &files {
        let stem = f
            .file_stem()
            .ok_or_else(|| format!("{}: no file name", f.display()))?
            .to_string_lossy()
            .into_owned();
        if let Some(first) = seen.insert(stem.clone(), f.clone()) {
            return Err(format!(
                "{} and {} would both be written as {stem}.png",
                first.display(),
                f.display()
            )
            .into());
        }
        let img = arfpn_voc::image_io::load_rgb(f)?;
        let out = a.out.join(format!("{stem}.png"));
        img.save(&out)
            .map_err(|e| format!("{}: cannot write: {e}", out.display()))?;
    }
    println!("{}: {} PNG files", a.out.display(), files.len());
    Ok(())
}

fn main() -> ExitCode {
    cli::exit_with(run(&Args::parse()))
}
