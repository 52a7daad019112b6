//! The arfpn detector, end to end, on a fresh machine with no data: renders a synthetic
//! 14-class red-cell smear dataset, trains the `cpu-small` preset (a CS-ARFPN) on it,
//! evaluates on its test split and prints the per-class table, and writes a detections
//! picture and the PR curves.
//!
//! ```text
//! cargo run --release --example quickstart                 # ~10 minutes on 2 cores
//! cargo run --release --example quickstart -- --steps 100  # a quick look
//! ```

mod cli;

use std::path::PathBuf;
use std::time::Instant;

use arfpn::lab::draw_detections;
use arfpn::train::{detect_all, metrics_dataset, TrainConfig, TrainData, Trainer};
use arfpn::{presets, Detector};
use arfpn_metrics::{plot_pr_curves, Report, ReportOptions};
use arfpn_voc::synthetic::{write_dataset, SyntheticConfig};
use arfpn_voc::{LabelSet, LoadOptions, VocDataset};
use candle_core::Device;
use clap::Parser;

/// Train and evaluate an ARFPN detector on synthetic smears, from nothing.
#[derive(Parser, Debug)]
#[command(name = "quickstart", version)]
struct Args {
    /// Folder for the dataset, the run (checkpoints, log) and the pictures
    /// (default: target/quickstart).
    #[arg(long, default_value = "target/quickstart")]
    out: PathBuf,
    /// Synthetic images to render (70 % train, 15 % val, 15 % test).
    #[arg(long, default_value_t = 48, value_parser = clap::value_parser!(u64).range(3..=2000))]
    images: u64,
    /// Training steps (one 256×256 crop each).
    #[arg(long, default_value_t = 1400, value_parser = clap::value_parser!(u64).range(1..))]
    steps: u64,
    /// Seed of the data, the weights and the training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Synthetic profile: `default` (today's look, separable cues) or `realistic`
    /// (overlapping sizes, stain and illumination variation, more blur and noise).
    #[arg(long, default_value = "default", value_parser = ["default", "realistic"])]
    profile: String,
    /// Delete a previous quickstart run in --out first.
    #[arg(long)]
    fresh: bool,
    /// Keep subnormal floats instead of flushing them to zero (`arfpn_kernels::flush_denormals`,
    /// the default: a fresh network's first steps can otherwise run several times slower).
    #[arg(long)]
    keep_denormals: bool,
}

fn main() -> std::process::ExitCode {
    // Keep freed feature maps in the process (see arfpn_kernels::keep_freed_memory): it halves a
    // training step's time by sparing the kernel from clearing pages again and again.
    arfpn_kernels::keep_freed_memory();
    cli::exit_with(run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if !args.keep_denormals {
        arfpn_kernels::flush_denormals();
    }
    let t0 = Instant::now();
    let data_dir = args.out.join("data");
    let run_dir = args.out.join("run");
    if args.fresh || run_dir.join("checkpoints").exists() {
        // A quickstart always starts over: its point is the whole path.
        for d in [&data_dir, &run_dir] {
            if d.exists() {
                std::fs::remove_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            }
        }
    }
    // 1. Data.
    let synth = if args.profile == "realistic" {
        SyntheticConfig::realistic()
    } else {
        SyntheticConfig::default()
    };
    write_dataset(&data_dir, args.images as usize, args.seed, &synth)?;
    eprintln!(
        "rendered {} synthetic smears ({}×{}, {} profile) into {} in {:.1} s",
        args.images,
        synth.width,
        synth.height,
        args.profile,
        data_dir.display(),
        t0.elapsed().as_secs_f64()
    );
    let labels = LabelSet::rbc14();
    let opts = LoadOptions::strict(arfpn_voc::Labels::Explicit(labels.clone()));
    let train = VocDataset::open(&data_dir, "train", &opts)?;
    let val = VocDataset::open(&data_dir, "val", &opts)?;
    let test = VocDataset::open(&data_dir, "test", &opts)?;
    eprintln!(
        "splits: {} train, {} val, {} test images",
        train.len(),
        val.len(),
        test.len()
    );
    // 2. Model and training.
    let classes: Vec<String> = labels.names().to_vec();
    let detector = Detector::new(presets::cpu_small(&classes), args.seed, &Device::Cpu)?;
    let steps = args.steps as usize;
    let config = TrainConfig {
        steps,
        schedule: arfpn::train::step_schedule(0.02, steps),
        augment: arfpn::train::AugmentConfig {
            crop: Some([256, 256]),
            // Cells cut by a crop border are labelled as the generator labels cells cut by
            // the image border: `edge` (visible 30-85 % of their area).
            min_visible: 0.3,
            cut_class: labels.id("edge"),
            ..Default::default()
        },
        seed: args.seed,
        checkpoint_every: 500,
        log_every: 50,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(detector, config, Box::new(train), None, &run_dir)?;
    let stop = trainer.stop_flag();
    cli::stop_on_ctrl_c(stop);
    let summary = trainer.run(&mut cli::Progress::new(
        trainer.step(),
        trainer.config().steps,
    ))?;
    eprintln!(
        "trained {} steps in {:.0} s ({} skipped); checkpoint {}",
        summary.steps_done,
        summary.wall_s,
        summary.skipped_steps,
        summary
            .last_checkpoint
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    let detector = trainer.into_detector();
    // 3. Evaluation on the test split.
    let (dets, truth) = detect_all(&detector, &test)?;
    let data = metrics_dataset(&classes, &dets, &truth, None)?;
    let report = Report::evaluate(&data, &ReportOptions::default())?;
    println!("{}", report.to_table());
    let pr = args.out.join("pr_curves.png");
    plot_pr_curves(&report.voc, &classes, &pr)?;
    let (img, _) = TrainData::get(&test, 0)?;
    let picture = args.out.join("detections.png");
    draw_detections(&img, &dets[0], 0.5, 2).save(&picture)?;
    println!("PR curves: {}", pr.display());
    println!(
        "detections on test image 0 (score >= 0.5): {}",
        picture.display()
    );
    println!("total time: {:.0} s", t0.elapsed().as_secs_f64());
    println!(
        "mAP@0.5 (VOC all-point): {:.3}",
        report.voc.map.unwrap_or(0.0)
    );
    Ok(())
}
