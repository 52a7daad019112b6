//! Import a torchvision Faster R-CNN (state dict saved as safetensors) as an arfpn checkpoint.
//!
//! ```sh
//! /path/to/python scripts/export_torchvision_detector.py model.pt model.safetensors   # once, in Python
//! cargo run --release --example import_torchvision -- --weights model.safetensors \
//!     --preset fpn-r50 --classes WBC,RBC,Platelets --min-size 480 --max-size 640 --out model-arfpn.safetensors
//! ```
//! `--classes` lists the model's foreground classes in its label order (torchvision label
//! `i` is the `i`-th name; label 0 is the background). `--min-size` / `--max-size` are the
//! model's `GeneralizedRCNNTransform` sizes (torchvision's defaults 800 / 1333 when left
//! out). `--config FILE` (.json/.toml) describes any other architecture or thresholds. The
//! checkpoint then works with every command (`detect`, `evaluate`, `train --init`).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use arfpn::presets::PresetName;
use arfpn::{Detector, DetectorConfig};
use candle_core::Device;
use clap::Parser;

/// Import a torchvision Faster R-CNN state dict (safetensors) as an arfpn checkpoint.
#[derive(Parser)]
#[command(name = "import_torchvision")]
struct Args {
    /// The torchvision `FasterRCNN.state_dict()` saved as safetensors.
    #[arg(long, value_parser = cli::existing_file)]
    weights: PathBuf,
    /// The architecture: `fpn-r18`, `fpn-r34`, `fpn-r50` or `fpn-r101` (torchvision's
    /// `resnet_fpn_backbone` settings; other presets are accepted for models built to
    /// match them).
    #[arg(long, default_value = "fpn-r50", conflicts_with = "config")]
    preset: String,
    /// A detector config file (.json or .toml) instead of a preset.
    #[arg(long, value_parser = cli::existing_file)]
    config: Option<PathBuf>,
    /// The model's foreground classes, comma-separated, in label order.
    #[arg(long, value_parser = cli::label_list)]
    classes: arfpn_voc::LabelSet,
    /// The transform's `min_size` (shorter side after resizing).
    #[arg(long)]
    min_size: Option<usize>,
    /// The transform's `max_size` (cap on the longer side).
    #[arg(long)]
    max_size: Option<usize>,
    /// The arfpn checkpoint to write.
    #[arg(long, value_parser = cli::output_file)]
    out: PathBuf,
}

fn run(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let classes = a.classes.names();
    let mut config = match &a.config {
        Some(p) => DetectorConfig::load(p)?.with_classes(classes),
        None => a.preset.parse::<PresetName>()?.config(classes)?,
    };
    if let Some(m) = a.min_size {
        config.input.min_size = Some(m);
    }
    if let Some(m) = a.max_size {
        config.input.max_size = m;
    }
    config.validate()?;
    let detector = Detector::from_torchvision(&a.weights, config, &Device::Cpu)?;
    detector.save(&a.out)?;
    let n: usize = detector
        .vars()
        .named_vars()
        .iter()
        .map(|(_, v)| v.elem_count())
        .sum();
    println!(
        "{}: {} ({} parameters), classes {:?}, input min/max size {:?}/{}",
        a.out.display(),
        detector.config().name,
        n,
        detector.classes(),
        detector.config().input.min_size,
        detector.config().input.max_size
    );
    Ok(())
}

fn main() -> ExitCode {
    cli::exit_with(run(&Args::parse()))
}
