//! The `train` command's body (`examples/train.rs` is its `main`), shared so that a
//! program that registers its own modules (`examples/custom_attention.rs`) runs the same
//! command after registering them.

use std::path::PathBuf;

use arfpn::presets::PresetName;
use arfpn::train::{OptimizerConfig, TrainConfig, TrainData, Trainer};
use arfpn::{Detector, DetectorConfig};
use arfpn_voc::{dataset_labels, LoadOptions, VocDataset};
use candle_core::Device;
use clap::Parser;

/// Train an ARFPN detector on a VOC dataset.
#[derive(Parser, Debug)]
#[command(name = "train", version)]
struct Args {
    /// VOC dataset root (Annotations/, JPEGImages/, ImageSets/Main/{train,val}.txt).
    #[arg(long, value_parser = super::existing_dir)]
    data: PathBuf,
    /// Run directory (checkpoints, log, best model).
    #[arg(long)]
    out: PathBuf,
    /// Preset: cpu-small, fpn-r50, cs-arfpn-r50, ... (ignored with --resume or --config).
    #[arg(long, default_value = "cpu-small")]
    preset: String,
    /// A detector config file (.json or .toml) instead of a preset.
    #[arg(long, value_parser = super::existing_file)]
    config: Option<PathBuf>,
    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    resume: bool,
    /// Total training steps.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    steps: u64,
    /// Images per step.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    batch_size: u64,
    /// Base learning rate (after warm-up).
    #[arg(long, default_value_t = 0.02, value_parser = super::finite_f64)]
    lr: f64,
    /// Optimizer: sgd (momentum 0.9, weight decay 1e-4) or adam.
    #[arg(long, default_value = "sgd", value_parser = ["sgd", "adam"])]
    optimizer: String,
    /// Random training crops WxH (e.g. 384x384); whole images without it.
    #[arg(long, value_parser = super::size_wxh)]
    crop: Option<(u32, u32)>,
    /// Train on fixed overlapping crops WxH of every image (the paper: 500x375) instead of
    /// whole images; --crop then draws random crops from those.
    #[arg(long, value_parser = super::size_wxh)]
    tiles: Option<(u32, u32)>,
    /// Overlap of neighbouring --tiles crops, in [0, 1).
    #[arg(long, default_value_t = 0.3, value_parser = super::unit_open_f32)]
    tile_overlap: f32,
    /// Evaluate on the val split every N steps (and at the end).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    eval_every: u64,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every: u64,
    /// Seed of the weights, data order, augmentation and sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The paper's rare-class oversampling: images holding a class below this share of all
    /// training objects (e.g. 0.05) appear 3 times per epoch.
    #[arg(long, value_parser = super::unit_f32)]
    oversample_rare: Option<f32>,
    /// Lenient loading: drop unusable objects and images (each reported) instead of stopping
    /// at the first (BCCD has two zero-area boxes).
    #[arg(long)]
    lenient: bool,
    /// Precision of the training steps' convolution and linear-layer products: f32, or
    /// bf16 (bf16 operands, f32 accumulation; on CPUs with Intel AMX, f32 elsewhere).
    #[arg(long, default_value = "f32")]
    precision: arfpn::MatmulPrecision,
    /// Device: cpu or cuda:N (needs the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Keep subnormal floats instead of flushing them to zero (`arfpn_kernels::flush_denormals`,
    /// the default: a fresh network's first steps can otherwise run several times slower).
    #[arg(long)]
    keep_denormals: bool,
}

fn device(s: &str) -> Result<Device, Box<dyn std::error::Error>> {
    match s {
        "cpu" => Ok(Device::Cpu),
        s if s.starts_with("cuda") => {
            let n: usize = s.strip_prefix("cuda:").unwrap_or("0").parse()?;
            Ok(Device::new_cuda(n)?)
        }
        _ => Err(format!("--device {s}: expected cpu or cuda:N").into()),
    }
}

/// Runs the command on `args` (the program name first, as `std::env::args_os()` gives them).
pub fn run<I, T>(args: I) -> Result<(), Box<dyn std::error::Error>>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let a = Args::parse_from(args);
    if !a.keep_denormals {
        arfpn_kernels::flush_denormals();
    }
    let preset: Option<PresetName> = if a.config.is_none() && !a.resume {
        Some(a.preset.parse()?)
    } else {
        None
    };
    let dev = device(&a.device)?;
    let labels = dataset_labels(&a.data, &["train", "val"])?;
    let explicit = arfpn_voc::Labels::Explicit(labels.clone());
    let opts = if a.lenient {
        LoadOptions::lenient(explicit)
    } else {
        LoadOptions::strict(explicit)
    };
    let train = VocDataset::open(&a.data, "train", &opts)
        .map_err(|e| format!("{e} (--lenient drops such objects and goes on)"))?;
    let val = VocDataset::open(&a.data, "val", &opts)
        .ok()
        .filter(|v| !v.is_empty());
    for p in train
        .problems()
        .iter()
        .chain(val.iter().flat_map(|v| v.problems()))
    {
        eprintln!("data: {p}");
    }
    eprintln!(
        "{}: {} train, {} val images; classes {:?}",
        a.data.display(),
        train.len(),
        val.as_ref().map_or(0, |v| v.len()),
        labels.names()
    );
    let val: Option<Box<dyn TrainData>> = val.map(|v| Box::new(v) as Box<dyn TrainData>);
    let mut trainer = if a.resume {
        let t = Trainer::resume(&a.out, Box::new(train), val, &dev, Some(a.steps as usize))?;
        if t.detector().classes() != labels.names() {
            return Err(format!(
                "the run in {} was trained on classes {:?}, the dataset has {:?}",
                a.out.display(),
                t.detector().classes(),
                labels.names()
            )
            .into());
        }
        eprintln!("resuming at step {}", t.step());
        t
    } else {
        let config = match (&a.config, preset) {
            (Some(p), _) => DetectorConfig::load(p)?.with_classes(labels.names()),
            (None, Some(p)) => p.config(labels.names())?,
            (None, None) => return Err("--preset or --config is needed".into()),
        };
        std::fs::create_dir_all(&a.out)?;
        config.save(a.out.join("config.json"))?;
        let steps = a.steps as usize;
        let optimizer = match a.optimizer.as_str() {
            "adam" => OptimizerConfig::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 1e-4,
            },
            _ => OptimizerConfig::default(),
        };
        // A cell cut by a tile border is labelled as one cut by the image border, when the
        // dataset has that class (the paper's "edge").
        let edge_class = labels.id("edge");
        let train_cfg = TrainConfig {
            steps,
            batch_size: a.batch_size as usize,
            optimizer,
            schedule: arfpn::train::step_schedule(a.lr, steps),
            tiles: a.tiles.map(|(w, h)| arfpn_voc::tiling::TileConfig {
                tile_width: w,
                tile_height: h,
                overlap: a.tile_overlap,
                edge: arfpn_voc::tiling::EdgePolicy {
                    min_visible: 0.5,
                    relabel_as: edge_class,
                },
            }),
            augment: arfpn::train::AugmentConfig {
                crop: a.crop.map(|(w, h)| [w as usize, h as usize]),
                ..Default::default()
            },
            oversample: a
                .oversample_rare
                .map(|max_share| arfpn::train::OversampleConfig {
                    max_share,
                    copies: 2,
                }),
            seed: a.seed,
            eval_every: Some(a.eval_every as usize),
            checkpoint_every: a.checkpoint_every as usize,
            precision: a.precision,
            ..TrainConfig::default()
        };
        std::fs::write(
            a.out.join("train.json"),
            serde_json::to_string_pretty(&train_cfg)?,
        )?;
        let det = Detector::new(config, a.seed, &dev)?;
        Trainer::new(det, train_cfg, Box::new(train), val, &a.out)?
    };
    super::stop_on_ctrl_c(trainer.stop_flag());
    let s = trainer.run(&mut super::Progress::new(
        trainer.step(),
        trainer.config().steps,
    ))?;
    eprintln!(
        "{} after {} steps in {:.0} s ({} skipped){}; last checkpoint {}",
        if s.interrupted { "interrupted" } else { "done" },
        s.steps_done,
        s.wall_s,
        s.skipped_steps,
        s.best_map50
            .map(|m| format!(", best val mAP@0.5 {m:.4}"))
            .unwrap_or_default(),
        s.last_checkpoint
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}
