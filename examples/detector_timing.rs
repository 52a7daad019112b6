//! One inference and one training step of a full detector at 480×640 (random weights, no
//! resizing), timed side by side with `scripts/bench_detector_torchvision.py`.
//!
//! ```text
//! cargo run --release --example detector_timing -- --preset fpn-r50 --threads 2 --runs 3 --json
//! ```
//!
//! Proposal and RoI counts are set to torchvision's (2000 / 2000 in training, 1000 / 1000 at
//! inference, 512 RoIs per image) whatever the preset, so both sides do the same work. Prints
//! `{"infer_ms": …, "train_step_ms": …, "first_train_step_ms": …, "peak_rss_mb": …}`
//! (minimum over the runs after one warm-up, and the warm-up's training step itself; with
//! `--threads 1` process CPU time, else wall time) and, without `--json`, a per-stage
//! profile of the inference. `--device cuda:0` (with the `cuda` feature) times the
//! same on a GPU. `--precision bf16` runs the convolutions and linear layers (forward and
//! backward) with bf16 products on CPUs with Intel AMX.

use std::time::Instant;

use arfpn::presets::PresetName;
use arfpn::{BBox, ClassId, Detector, GroundTruth, ImageBatch};
use arfpn_boxes::SplitMix64;
use arfpn_nn::{SgdConfig, SgdMomentum};
use candle_core::{Device, Tensor};
use candle_nn::Optimizer;
use clap::Parser;

/// Times one detector inference and one training step at 480×640.
#[derive(Parser, Debug)]
struct Args {
    /// Preset (`fpn-r50`, `cs-arfpn-r50`, `fpn-r18`, `cpu-small`, ...).
    #[arg(long, default_value = "fpn-r50")]
    preset: String,
    /// Worker threads (rayon); 1 reports process CPU time.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed runs after one warm-up (the minimum is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Image height and width.
    #[arg(long, default_value_t = 480)]
    height: usize,
    #[arg(long, default_value_t = 640)]
    width: usize,
    /// Print only the JSON object.
    #[arg(long)]
    json: bool,
    /// Device: cpu, or cuda:N (needs the `cuda` feature; times are wall times after a
    /// device synchronisation).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Precision of the matrix products of the inference and the training step (forward
    /// and backward): f32, or bf16 (Intel AMX, f32 accumulation; f32 where the CPU lacks
    /// AMX).
    #[arg(long, default_value = "f32")]
    precision: arfpn::MatmulPrecision,
    /// Time inference only (e.g. to profile it alone); `train_step_ms` is then null.
    #[arg(long)]
    skip_train: bool,
    /// Leave glibc's malloc at its defaults instead of calling `arfpn_kernels::keep_freed_memory`
    /// (to measure what that costs or saves).
    #[arg(long)]
    system_malloc: bool,
    /// Keep subnormal floats instead of flushing them to zero (`arfpn_kernels::flush_denormals`,
    /// the default: a fresh network's first steps can otherwise run several times slower).
    #[arg(long)]
    keep_denormals: bool,
}

fn cpu_time_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.threads == 0 || args.runs == 0 {
        return Err("--threads and --runs must be at least 1".into());
    }
    if !args.system_malloc {
        arfpn_kernels::keep_freed_memory();
    }
    // Before the first tensor op: rayon reads this when its pool starts.
    std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
    if !args.keep_denormals {
        // After RAYON_NUM_THREADS: this starts rayon's pool.
        arfpn_kernels::flush_denormals();
    }
    let preset: PresetName = args.preset.parse()?;
    let mut cfg = preset.config(&arfpn_voc::RBC14_CLASSES)?;
    cfg.input.min_size = None;
    cfg.rpn.train.pre_nms_top_n = 2000;
    cfg.rpn.train.post_nms_top_n = 2000;
    cfg.rpn.test.pre_nms_top_n = 1000;
    cfg.rpn.test.post_nms_top_n = 1000;
    cfg.roi_heads.batch_size_per_image = 512;
    let dev = match args.device.as_str() {
        "cpu" => Device::Cpu,
        d => {
            let n: usize = d
                .strip_prefix("cuda:")
                .ok_or_else(|| format!("--device {d}: expected cpu or cuda:N"))?
                .parse()?;
            Device::new_cuda(n)?
        }
    };
    let cpu_clock = args.threads == 1 && dev.is_cpu();
    let mut det = Detector::new(cfg, 0, &dev)?;
    det.set_matmul_precision(args.precision);
    let mut rng = SplitMix64::new(0);
    let image = Tensor::rand(0f32, 1., (3, args.height, args.width), &dev)?;
    let batch = ImageBatch::from_images(&[image], 1)?;
    let mut boxes = Vec::new();
    let mut classes = Vec::new();
    for i in 0..20 {
        let x = rng.range(0.0, args.width as f64 - 60.0) as f32;
        let y = rng.range(0.0, args.height as f64 - 60.0) as f32;
        boxes.push(BBox::new(x, y, x + 20.0 + (i % 3) as f32 * 15.0, y + 25.0));
        classes.push(ClassId::new(i % 14));
    }
    let gt = GroundTruth::new(boxes, classes)?;
    let mut opt = SgdMomentum::new(det.trainable_vars(), SgdConfig::default())?;
    let clock = |f: &mut dyn FnMut() -> Result<(), Box<dyn std::error::Error>>| {
        let (w, c) = (Instant::now(), cpu_time_s());
        f().and_then(|_| Ok(dev.synchronize()?)).map(|_| {
            if cpu_clock {
                cpu_time_s() - c
            } else {
                w.elapsed().as_secs_f64()
            }
        })
    };
    let mut infer = f64::INFINITY;
    let mut train = f64::INFINITY;
    let mut first_train = f64::NAN;
    for run in 0..=args.runs {
        let ti = clock(&mut || {
            det.detect(&batch)?;
            Ok(())
        })?;
        let tt = clock(&mut || {
            if args.skip_train {
                return Ok(());
            }
            arfpn_kernels::with_matmul_precision(args.precision, || {
                let losses = det.forward_train(&batch, std::slice::from_ref(&gt), &mut rng)?;
                opt.backward_step(&losses.total)?;
                Ok(())
            })
        })?;
        if run > 0 {
            infer = infer.min(ti);
            train = train.min(tt);
        } else {
            first_train = tt;
        }
    }
    let out = serde_json::json!({
        "preset": args.preset,
        "threads": args.threads,
        "device": args.device,
        "precision": args.precision.to_string(),
        "bf16_available": arfpn::bf16_matmul_available(),
        "infer_ms": infer * 1e3,
        "train_step_ms": if args.skip_train { None } else { Some(train * 1e3) },
        // The warm-up step of the freshly initialised network (where subnormals occur).
        "first_train_step_ms": if args.skip_train { None } else { Some(first_train * 1e3) },
        "peak_rss_mb": peak_rss_mb(),
    });
    println!("{out}");
    if !args.json {
        profile(&det, &batch)?;
    }
    Ok(())
}

/// Wall time of each inference stage (one run).
fn profile(det: &Detector, batch: &ImageBatch) -> Result<(), Box<dyn std::error::Error>> {
    let t = Instant::now();
    let feats = det.backbone().forward_t(&batch.tensor, false)?;
    let t_backbone = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let proposals = det.rpn().forward_test(&feats, &batch.sizes)?;
    let t_rpn = t.elapsed().as_secs_f64();
    let boxes: Vec<Vec<BBox>> = proposals.into_iter().map(|p| p.boxes).collect();
    let t = Instant::now();
    det.roi_heads().forward_test(&feats, &boxes, &batch.sizes)?;
    let t_head = t.elapsed().as_secs_f64();
    println!("| stage | ms |\n|---|---|");
    println!("| backbone + FPN | {:.1} |", t_backbone * 1e3);
    println!("| RPN (head, anchors, proposals) | {:.1} |", t_rpn * 1e3);
    println!(
        "| RoI heads (pool, head, post-process) | {:.1} |",
        t_head * 1e3
    );
    Ok(())
}
