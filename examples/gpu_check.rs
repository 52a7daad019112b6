//! GPU agreement check: every op the detector uses, run on a CUDA device and on the CPU with
//! the same inputs, values and input gradients compared; then a whole detector's losses,
//! parameter gradients and detections. Prints one table row per check and exits non-zero if
//! any is outside its tolerance. Build with the `cuda` feature (`scripts/gpu-bundle.sh` makes
//! the stripped release binary for a GPU machine); without a device it says so and exits 3.
//!
//! ```text
//! cargo run --release --features arfpn/cuda --example gpu_check -- --device cuda:0
//! ```
//!
//! On the GPU the custom ops run as candle ops (convolution, GroupNorm, ReLU, max-pool, the
//! attention gates) or as arfpn-roi-align's CUDA kernels; on the CPU they run as this
//! workspace's fused kernels, so the check compares two independent implementations.

use arfpn::{presets, BBox, ClassId, Detector, GroundTruth, ImageBatch};
use arfpn_boxes::SplitMix64;
use arfpn_kernels::Conv2dConfig;
use arfpn_nn::SeededVarMap;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use clap::Parser;

/// Runs every op on a CUDA device and on the CPU and compares.
#[derive(Parser, Debug)]
#[command(name = "gpu_check", version)]
struct Args {
    /// CUDA device, `cuda:N`.
    #[arg(long, default_value = "cuda:0")]
    device: String,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Largest `|a − b|` over the largest `|b|` (at least 1e-6), one number per compared tensor.
fn rel_diff(a: &Tensor, b: &Tensor) -> Res<f64> {
    let a = a.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    let b = b.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    let d = (&a - &b)?.abs()?.max_all()?.to_scalar::<f64>()?;
    let s = b.abs()?.max_all()?.to_scalar::<f64>()?.max(1e-6);
    Ok(d / s)
}

/// Runs `f` on `inputs` (made variables) on both devices; compares the output and the
/// gradient of `Σ y·coef` for every input. Returns the worst relative difference.
fn agree(
    gpu: &Device,
    inputs: &[Tensor],
    f: &dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>,
) -> Res<f64> {
    let run = |dev: &Device| -> Res<(Tensor, Vec<Tensor>)> {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(&t.to_device(dev)?))
            .collect::<candle_core::Result<_>>()?;
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&ts)?;
        let coef = seeded_like(&y)?.to_device(dev)?;
        let grads = (&y * &coef)?.sum_all()?.backward()?;
        let g = ts
            .iter()
            .map(|t| {
                grads
                    .get(t)
                    .cloned()
                    .unwrap_or_else(|| t.zeros_like().expect("zeros"))
            })
            .collect();
        Ok((y, g))
    };
    let (yc, gc) = run(&Device::Cpu)?;
    let (yg, gg) = run(gpu)?;
    let mut worst = rel_diff(&yg, &yc)?;
    for (a, b) in gg.iter().zip(&gc) {
        worst = worst.max(rel_diff(a, b)?);
    }
    Ok(worst)
}

/// A fixed pseudo-random tensor of `t`'s shape (f32, CPU): the same on every run.
fn seeded_like(t: &Tensor) -> candle_core::Result<Tensor> {
    let mut rng = SplitMix64::new(t.elem_count() as u64);
    let v: Vec<f32> = (0..t.elem_count())
        .map(|_| rng.range(-1.0, 1.0) as f32)
        .collect();
    Tensor::from_vec(v, t.shape(), &Device::Cpu)
}

fn uniform(seed: u64, dims: &[usize]) -> Res<Tensor> {
    let mut rng = SplitMix64::new(seed);
    let n = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.range(-1.0, 1.0) as f32).collect();
    Ok(Tensor::from_vec(v, dims, &Device::Cpu)?)
}

fn boxes(seed: u64, k: usize, w: f32, h: f32) -> Res<Tensor> {
    let mut rng = SplitMix64::new(seed);
    let mut v = Vec::with_capacity(k * 5);
    for _ in 0..k {
        let (x, y) = (
            rng.range(0.0, w as f64 * 0.8),
            rng.range(0.0, h as f64 * 0.8),
        );
        let s = rng.range(4.0, w as f64 * 0.2);
        v.extend([0.0, x, y, x + s, y + s * rng.range(0.5, 1.5)].map(|a| a as f32));
    }
    Ok(Tensor::from_vec(v, (k, 5), &Device::Cpu)?)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) if e.to_string().starts_with("no CUDA device") => {
            eprintln!("SKIP gpu_check: {e}");
            std::process::ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Res<bool> {
    let a = Args::parse();
    let n: usize = a
        .device
        .strip_prefix("cuda:")
        .ok_or_else(|| format!("--device {}: expected cuda:N", a.device))?
        .parse()?;
    let gpu = Device::new_cuda(n).map_err(|e| format!("no CUDA device {n} ({e})"))?;
    let mut report = Report { ok: true };
    println!("| check | worst relative difference | tolerance | ok |\n|---|---|---|---|");
    let map = uniform(1, &[2, 16, 24, 32])?;
    let rois = boxes(2, 64, 32.0 * 4.0, 24.0 * 4.0)?;
    for (sampling, aligned, name) in [
        (2, true, "roi_align (7×7, 1/4, sampling 2, aligned)"),
        (0, false, "roi_align (adaptive sampling, not aligned)"),
    ] {
        let r = rois.clone();
        report.row(
            name,
            agree(&gpu, std::slice::from_ref(&map), &move |t| {
                let r = r.to_device(t[0].device())?;
                arfpn_roi_align::roi_align(&t[0], &r, (7, 7), 0.25, sampling, aligned)
            })?,
            1e-4,
        );
    }
    let r = rois.clone();
    report.row(
        "roi_pool (7×7, 1/4)",
        agree(&gpu, std::slice::from_ref(&map), &move |t| {
            arfpn_roi_align::roi_pool(&t[0], &r.to_device(t[0].device())?, (7, 7), 0.25)
        })?,
        1e-4,
    );
    let x = uniform(3, &[2, 8, 20, 28])?;
    for (stride, k) in [(1usize, 3usize), (2, 3), (2, 7), (1, 1)] {
        let w = uniform(4, &[12, 8, k, k])?;
        let b = uniform(5, &[12])?;
        let cfg = Conv2dConfig {
            stride,
            padding: k / 2,
            ..Default::default()
        };
        report.row(
            &format!("conv2d {k}×{k}/{stride} (x, w, b)"),
            agree(&gpu, &[x.clone(), w, b], &move |t| {
                arfpn_kernels::conv2d_op(&t[0], &t[1], Some(&t[2]), cfg)
            })?,
            1e-4,
        );
    }
    for relu in [false, true] {
        let w = uniform(6, &[8])?;
        let b = uniform(7, &[8])?;
        report.row(
            &format!("group_norm(4 groups){}", if relu { " + relu" } else { "" }),
            agree(&gpu, &[x.clone(), w, b], &move |t| {
                let vm = std::collections::HashMap::from([
                    ("weight".to_string(), t[1].clone()),
                    ("bias".to_string(), t[2].clone()),
                ]);
                let vb = VarBuilder::from_tensors(vm, DType::F32, t[0].device());
                let gn = arfpn_nn::group_norm(4, 8, 1e-5, vb)?;
                if relu {
                    gn.forward_relu(&t[0])
                } else {
                    candle_core::Module::forward(&gn, &t[0])
                }
            })?,
            1e-4,
        );
    }
    // Frozen batch norm (statistics as constants: weight, bias, mean, variance > 0), alone,
    // with the ReLU and as the end of a residual unit (projection and identity shortcuts).
    let frozen = |t: &[Tensor], seed: u64| -> candle_core::Result<arfpn_nn::FrozenBatchNorm2d> {
        let dev = t[0].device();
        let v = |k: u64| -> candle_core::Result<Tensor> {
            uniform(seed + k, &[8])
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?
                .to_device(dev)
        };
        let vm = std::collections::HashMap::from([
            ("weight".to_string(), v(0)?),
            ("bias".to_string(), v(1)?),
            ("running_mean".to_string(), v(2)?),
            ("running_var".to_string(), (v(3)?.abs()? + 0.5)?),
        ]);
        arfpn_nn::frozen_batch_norm2d(8, 1e-5, VarBuilder::from_tensors(vm, DType::F32, dev))
    };
    for (name, kind) in [
        ("frozen_batch_norm2d", 0),
        ("frozen_batch_norm2d + relu", 1),
        ("frozen_batch_norm2d end of a unit (projection)", 2),
        ("frozen_batch_norm2d end of a unit (identity)", 3),
    ] {
        report.row(
            name,
            agree(&gpu, &[x.clone(), uniform(12, x.dims())?], &move |t| {
                let a = frozen(t, 20)?;
                match kind {
                    0 => candle_core::Module::forward(&a, &t[0]),
                    1 => a.forward_relu(&t[0]),
                    2 => a.forward_add_relu(&t[0], &t[1], Some(&frozen(t, 30)?)),
                    _ => a.forward_add_relu(&t[0], &t[1], None),
                }
            })?,
            1e-5,
        );
    }
    report.row(
        "relu",
        agree(&gpu, std::slice::from_ref(&x), &|t| {
            arfpn_kernels::relu(&t[0])
        })?,
        1e-6,
    );
    report.row(
        "add_relu",
        agree(&gpu, &[x.clone(), uniform(8, x.dims())?], &|t| {
            arfpn_kernels::add_relu(&t[0], &t[1])
        })?,
        1e-6,
    );
    report.row(
        "max_pool2d 3×3/2 pad 1",
        agree(&gpu, std::slice::from_ref(&x), &|t| {
            arfpn_kernels::max_pool2d(&t[0], 3, 2, 1)
        })?,
        1e-6,
    );
    report.row(
        "upsample_nearest2x",
        agree(&gpu, std::slice::from_ref(&x), &|t| {
            arfpn_kernels::upsample_nearest2x(&t[0])
        })?,
        1e-6,
    );
    report.row(
        "amax_keepdim (channels)",
        agree(&gpu, std::slice::from_ref(&x), &|t| {
            arfpn_kernels::amax_keepdim(&t[0], 1)
        })?,
        1e-6,
    );
    report.row(
        "channel_mean",
        agree(&gpu, std::slice::from_ref(&x), &|t| {
            arfpn_kernels::channel_mean(&t[0])
        })?,
        1e-5,
    );
    report.row(
        "gate per channel / per position",
        agree(
            &gpu,
            &[
                x.clone(),
                uniform(9, &[2, 8, 1, 1])?,
                uniform(10, &[2, 1, 20, 28])?,
            ],
            &|t| arfpn_kernels::gate(&arfpn_kernels::gate(&t[0], &t[1])?, &t[2]),
        )?,
        1e-5,
    );
    report.row(
        "gate_add_relu (squeeze-excitation's unit end)",
        agree(
            &gpu,
            &[
                x.clone(),
                uniform(13, &[2, 8, 1, 1])?,
                uniform(14, x.dims())?,
            ],
            &|t| arfpn_kernels::gate_add_relu(&t[0], &t[1], &t[2]),
        )?,
        1e-5,
    );
    report.row(
        "CBAM attention (weights and input)",
        agree(&gpu, std::slice::from_ref(&x), &|t| {
            let vb = SeededVarMap::new(7).var_builder(DType::F32, t[0].device());
            let cbam = arfpn_backbone::Cbam::new(8, 4, 7, vb)?;
            arfpn_backbone::Attention::forward(&cbam, &t[0])
        })?,
        1e-4,
    );
    detector_check(&gpu, &mut report)?;
    roi_align_timing(&gpu)?;
    Ok(report.ok)
}

/// GPU time of RoIAlign on the workload of docs/benchmarks.md: 1000 boxes of 16–64 px on a
/// `1×256×128×160` map (stride 4), 7×7, sampling 2, aligned; best of 5 after a warm-up.
fn roi_align_timing(gpu: &Device) -> Res<()> {
    let map = Var::from_tensor(&uniform(20, &[1, 256, 128, 160])?.to_device(gpu)?)?;
    let mut rng = SplitMix64::new(21);
    let mut v = Vec::with_capacity(5000);
    for _ in 0..1000 {
        let (w, h) = (rng.range(16.0, 64.0), rng.range(16.0, 64.0));
        let (x, y) = (rng.range(0.0, 640.0 - w), rng.range(0.0, 512.0 - h));
        v.extend([0.0, x, y, x + w, y + h].map(|a| a as f32));
    }
    let rois = Tensor::from_vec(v, (1000, 5), gpu)?;
    let (mut fwd, mut both) = (f64::INFINITY, f64::INFINITY);
    for i in 0..6 {
        let t = std::time::Instant::now();
        let y = arfpn_roi_align::roi_align(map.as_tensor(), &rois, (7, 7), 0.25, 2, true)?;
        gpu.synchronize()?;
        let tf = t.elapsed().as_secs_f64();
        y.sum_all()?.backward()?;
        gpu.synchronize()?;
        let tb = t.elapsed().as_secs_f64();
        if i > 0 {
            fwd = fwd.min(tf);
            both = both.min(tb);
        }
    }
    println!(
        "\nRoIAlign on the GPU (1000 boxes, 1×256×128×160, 7×7): forward {:.2} ms, forward + backward {:.2} ms",
        fwd * 1e3,
        both * 1e3
    );
    Ok(())
}

/// Prints table rows and remembers whether all were within tolerance.
struct Report {
    ok: bool,
}

impl Report {
    fn row(&mut self, name: &str, worst: f64, tol: f64) {
        let ok = worst <= tol;
        self.ok &= ok;
        let mark = if ok { "yes" } else { "NO" };
        println!("| {name} | {worst:.2e} | {tol:.0e} | {mark} |");
    }
}

/// A small CS-ARFPN detector built on the CPU, loaded on the GPU from its checkpoint:
/// losses, every parameter's gradient, and detections.
fn detector_check(gpu: &Device, report: &mut Report) -> Res<()> {
    let mut cfg = presets::cpu_small(&["a", "b"]);
    cfg.roi_heads.postprocess.score_thresh = 0.0;
    let cpu_det = Detector::new(cfg, 3, &Device::Cpu)?;
    let path = std::env::temp_dir().join(format!(
        "arfpn-gpu-check-{}.safetensors",
        std::process::id()
    ));
    cpu_det.save(&path)?;
    let gpu_det = Detector::load(&path, gpu)?;
    let _ = std::fs::remove_file(&path);
    let image = uniform(11, &[3, 128, 160])?.affine(0.5, 0.5)?;
    let gt = GroundTruth::new(
        vec![
            BBox::new(10.0, 12.0, 40.0, 44.0),
            BBox::new(80.0, 60.0, 120.0, 96.0),
        ],
        vec![ClassId::new(0), ClassId::new(1)],
    )?;
    let mut out = Vec::new();
    for (det, dev) in [(&cpu_det, Device::Cpu), (&gpu_det, gpu.clone())] {
        let batch = ImageBatch::from_images(&[image.to_device(&dev)?], 1)?;
        let losses =
            det.forward_train(&batch, std::slice::from_ref(&gt), &mut SplitMix64::new(5))?;
        let grads = losses.total.backward()?;
        let g: Vec<Tensor> = det
            .trainable_vars()
            .iter()
            .map(|v| {
                grads
                    .get(v.as_tensor())
                    .cloned()
                    .unwrap_or(v.as_tensor().zeros_like().expect("zeros"))
            })
            .collect();
        let dets = det.detect(&batch)?;
        out.push((losses.values()?, g, dets));
    }
    let (lc, gc, dc) = &out[0];
    let (lg, gg, dg) = &out[1];
    let loss_diff = ((lc.total - lg.total).abs() / lc.total.abs().max(1e-6)) as f64;
    report.row("detector: training loss", loss_diff, 1e-3);
    let mut worst = 0f64;
    for (a, b) in gg.iter().zip(gc) {
        worst = worst.max(rel_diff(a, b)?);
    }
    report.row("detector: every parameter's gradient", worst, 1e-2);
    let n = dc[0].len().min(dg[0].len()).min(100);
    let score_diff = dc[0].scores[..n]
        .iter()
        .zip(&dg[0].scores[..n])
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    report.row(
        "detector: top-100 detection scores",
        score_diff as f64,
        1e-3,
    );
    Ok(())
}
