//! Minimum and median wall time of ResNet-FPN forward and forward+backward at 480x640, the
//! same workloads as `benches/backbone_fpn.rs` and `scripts/bench_backbone_torchvision.py`.
//! On a shared machine the minimum is the most stable figure to compare.
//!
//! `RAYON_NUM_THREADS=2 cargo run --release --example backbone_timing -- [--runs N]`

use arfpn_backbone::{NormKind, ResNet, ResNetConfig};
use arfpn_fpn::{BackboneWithFpn, FpnConfig};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clap::Parser;
use std::time::Instant;

/// Time ResNet-18/50-FPN forward and forward+backward at 480x640 on the CPU (random weights).
#[derive(Parser)]
#[command(name = "backbone_timing")]
struct Args {
    /// Timed runs per workload (after one warm-up run).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    runs: u64,
}

fn stats(mut t: Vec<f64>) -> (f64, f64) {
    t.sort_by(|a, b| a.total_cmp(b));
    (t[0], t[t.len() / 2])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs = Args::parse().runs as usize;
    // Keep freed feature maps in the process (see arfpn_kernels::keep_freed_memory): without it a
    // training step spends a quarter of its time in the kernel zeroing fresh pages.
    let tuned = arfpn_kernels::keep_freed_memory();
    println!("allocator tuned: {tuned}");
    let x = Tensor::randn(0f32, 1.0, (1, 3, 480, 640), &Device::Cpu)?;
    let frozen = NormKind::FrozenBatchNorm { eps: 0.0 };
    for (name, cfg) in [
        (
            "resnet18_fpn_frozenbn",
            ResNetConfig::resnet18().with_norm(frozen.clone()),
        ),
        (
            "resnet50_fpn_frozenbn",
            ResNetConfig::resnet50().with_norm(frozen.clone()),
        ),
    ] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let net = BackboneWithFpn::new(
            Box::new(ResNet::new(&cfg, vb.pp("backbone"))?),
            &FpnConfig::default(),
            vb,
        )?;
        let mut fwd = Vec::new();
        let mut fb = Vec::new();
        for i in 0..=runs {
            let t0 = Instant::now();
            net.forward_t(&x, false)?;
            let t1 = Instant::now();
            let mut loss = Tensor::new(0f32, &Device::Cpu)?;
            for o in net.forward_t(&x, true)? {
                loss = (loss + o.tensor.mean_all()?)?;
            }
            loss.backward()?;
            if i > 0 {
                // run 0 is the warm-up
                fwd.push((t1 - t0).as_secs_f64());
                fb.push(t1.elapsed().as_secs_f64());
            }
        }
        let ((fmin, fmed), (bmin, bmed)) = (stats(fwd), stats(fb));
        println!(
            "{name} forward min {:.0} ms median {:.0} ms, forward+backward min {:.0} ms median {:.0} ms",
            fmin * 1e3, fmed * 1e3, bmin * 1e3, bmed * 1e3
        );
    }
    Ok(())
}
