//! Your own attention module in the whole ARFPN detector: register it by name, train a
//! detector with it, save, reload, evaluate and look at its attention maps.
//!
//! ```text
//! cargo run --release --example custom_attention -- --data ../shared/data/bccd-mini --steps 300
//! cargo run --release --example custom_attention                 # synthetic smears, no data
//! cargo run --release --example custom_attention -- train --data ../shared/data/bccd --config experiments/configs/cpu-small-gated.json --out runs/gated
//! cargo run --release --example custom_attention -- evaluate --data ../shared/data/bccd --split test --checkpoint runs/gated/best.safetensors
//! ```
//!
//! The module here is a "gated channel" attention: each channel gets a learnable gate
//! `sigmoid(w_c · mean(x_c) + b_c)`, a one-parameter-per-channel cousin of
//! squeeze-and-excitation. It is a [`Reweighting`] (`x · w(x)`); a module of another shape
//! implements [`Attention::forward`] instead. Its factory learns where it is built
//! ([`AttentionSite`]: stage, unit, channels), and [`register_attention`] makes the name
//! `gated_channel` usable in any configuration, checkpoint and command of this program.
//!
//! `train` and `evaluate` as the first argument run the workspace's `train` and `evaluate`
//! commands with the module registered: `experiments/ablate.sh DATA STEPS custom` uses them
//! to compare it with the paper's four variants (`scripts/ablation_table.py` adds its row).

mod cli;

use std::path::PathBuf;

use arfpn::train::{detect_all, voc_map, TrainConfig, TrainData, Trainer};
use arfpn::{image_tensor, presets, Detector};
use arfpn_backbone::{
    register_attention, Attention, AttentionFactory, AttentionKind, AttentionSite, Reweighting,
};
use candle_core::{Device, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use clap::Parser;

// ---- The researcher's module: everything a new attention module needs. ----

/// One gate weight and bias per channel.
struct GatedChannel {
    weight: Tensor, // [1, C, 1, 1]
    bias: Tensor,   // [1, C, 1, 1]
}

impl Reweighting for GatedChannel {
    fn weights(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(3)?.mean_keepdim(2)?;
        candle_nn::ops::sigmoid(
            &mean
                .broadcast_mul(&self.weight)?
                .broadcast_add(&self.bias)?,
        )
    }
    fn map_name(&self) -> &str {
        "gate"
    }
}

/// The factory: the module's hyper-parameters, and its construction for each unit.
struct GatedChannelFactory {
    initial_bias: f64,
}

impl AttentionFactory for GatedChannelFactory {
    fn build(&self, site: &AttentionSite, vb: VarBuilder) -> Result<Box<dyn Attention>> {
        let shape = (1, site.channels, 1, 1);
        Ok(Box::new(GatedChannel {
            weight: vb.get_with_hints(shape, "gate.weight", Init::Const(0.0))?,
            bias: vb.get_with_hints(shape, "gate.bias", Init::Const(self.initial_bias))?,
        }))
    }
}

/// Makes `{"type": "custom", "name": "gated_channel", "params": {"initial_bias": 2.0}}`
/// buildable: call before building or loading a detector that uses it.
fn register() {
    register_attention("gated_channel", |params| {
        let initial_bias = params
            .get("initial_bias")
            .and_then(|v| v.as_f64())
            .unwrap_or(2.0);
        Ok(Box::new(GatedChannelFactory { initial_bias }))
    });
}

// ---- The loop: train, save, reload, evaluate, look. ----

/// Train and evaluate a detector whose residual units carry a custom attention module.
#[derive(Parser)]
#[command(
    name = "custom_attention",
    after_help = "`custom_attention train ARGS` / `custom_attention evaluate ARGS` run the train and \
                  evaluate commands with the module registered (see their --help)."
)]
struct Args {
    /// A VOC dataset with train and test splits; without it, synthetic smears.
    #[arg(long, value_parser = cli::existing_dir)]
    data: Option<PathBuf>,
    /// Training steps (random 256x256 crops, one image per step).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    steps: u64,
    /// Output folder (run directory and the checkpoint).
    #[arg(long, default_value = "target/custom_attention")]
    out: PathBuf,
    /// Start again when --out already holds a run.
    #[arg(long)]
    fresh: bool,
}

fn run(a: &Args) -> std::result::Result<(), Box<dyn std::error::Error>> {
    register();
    let (train, test, classes) = data(a.data.as_deref())?;
    let mut config = presets::cpu_small(&classes);
    config.backbone.attention =
        AttentionKind::custom("gated_channel", serde_json::json!({"initial_bias": 2.0}));
    config.backbone.attention_stages = Some(vec![2, 3, 4]); // or None: every stage
    let detector = Detector::new(config, 0, &Device::Cpu)?;

    let run_dir = a.out.join("run");
    if run_dir.exists() {
        if !a.fresh {
            return Err(format!(
                "{} holds a run: pass --fresh to start again",
                run_dir.display()
            )
            .into());
        }
        std::fs::remove_dir_all(&run_dir)?;
    }
    let steps = a.steps as usize;
    let recipe = TrainConfig {
        steps,
        augment: arfpn::train::AugmentConfig {
            crop: Some([256, 256]),
            ..Default::default()
        },
        checkpoint_every: steps,
        log_every: steps.div_ceil(10),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(detector, recipe, train, None, &run_dir)?;
    let summary = trainer.run(&mut cli::Progress::new(0, steps))?;
    let path = a.out.join("gated_channel.safetensors");
    trainer.detector().save(&path)?;

    let detector = Detector::load(&path, &Device::Cpu)?; // works because the name is registered
    let (detections, truth) = detect_all(&detector, test.as_ref())?;
    let map = voc_map(detector.classes(), &detections, &truth)?;
    println!(
        "{} steps in {:.0} s; {}: test mAP@0.5 {:.3}",
        summary.steps_done,
        summary.wall_s,
        path.display(),
        map.map.unwrap_or(0.0)
    );

    let (image, _) = test.get(0)?;
    for unit in detector.attention_maps(&image_tensor(&image, &Device::Cpu)?)? {
        for m in &unit.maps {
            let (lo, hi) = (
                m.tensor.min_all()?.to_scalar::<f32>()?,
                m.tensor.max_all()?.to_scalar::<f32>()?,
            );
            println!(
                "{:>9} {} {:?}: gates {lo:.3}..{hi:.3}",
                unit.unit,
                m.name,
                m.tensor.dims()
            );
        }
    }
    Ok(())
}

/// Train images, test images and class names.
type Data = (Box<dyn TrainData>, Box<dyn TrainData>, Vec<String>);

/// The train and test images: a VOC dataset's splits, or synthetic smears.
fn data(dir: Option<&std::path::Path>) -> std::result::Result<Data, Box<dyn std::error::Error>> {
    use arfpn_voc::{dataset_labels, splits::list_splits, Labels, LoadOptions, VocDataset};
    if let Some(dir) = dir {
        let labels = dataset_labels(dir, &list_splits(dir)?)?;
        let open = |split| {
            VocDataset::open(
                dir,
                split,
                &LoadOptions::lenient(Labels::Explicit(labels.clone())),
            )
        };
        return Ok((
            Box::new(open("train")?),
            Box::new(open("test")?),
            labels.names().to_vec(),
        ));
    }
    let cfg = arfpn_voc::synthetic::SyntheticConfig {
        width: 256,
        height: 256,
        ..Default::default()
    };
    let render = |seeds: std::ops::Range<u64>| -> std::result::Result<
        Vec<(arfpn_voc::RgbImage, arfpn::GroundTruth)>,
        arfpn_voc::VocError,
    > {
        seeds
            .map(|s| {
                let im = arfpn_voc::synthetic::render_image(&cfg, s)?;
                let gt = arfpn::GroundTruth {
                    boxes: im.objects.iter().map(|o| o.bbox).collect(),
                    classes: im.objects.iter().map(|o| o.class).collect(),
                };
                Ok((im.image, gt))
            })
            .collect()
    };
    let classes = arfpn_voc::LabelSet::rbc14().names().to_vec();
    Ok((
        Box::new(render(0..8)?),
        Box::new(render(100..104)?),
        classes,
    ))
}

fn main() -> std::process::ExitCode {
    arfpn_kernels::keep_freed_memory();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some(cmd @ ("train" | "evaluate")) => {
            register();
            let rest = std::iter::once(format!("custom_attention {cmd}").into())
                .chain(args[2..].iter().cloned());
            if cmd == "train" {
                cli::exit_with(cli::train_cmd::run(rest))
            } else {
                cli::evaluate_cmd::main_with(rest)
            }
        }
        _ => cli::exit_with(run(&Args::parse())),
    }
}
