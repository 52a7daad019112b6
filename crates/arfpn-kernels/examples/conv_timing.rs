//! Quick side-by-side timing of the benchmark convolutions (the criterion bench is the
//! reference; this prints median wall time and median process CPU time per call, which is
//! robust when the machine is shared). Pair it with `scripts/bench_conv_torch.py`.
//!
//! RAYON_NUM_THREADS=1 cargo run --release -p arfpn-kernels --example conv_timing -- arfpn|candle [reps]

use arfpn_kernels::{conv2d_op, Conv2dConfig};
use candle_core::{DType, Device, Result, Tensor, Var};
use std::time::Instant;

fn cpu_time() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median (wall ms, CPU ms) of `reps` calls after one warm-up.
fn time(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    f()?;
    let (mut wall, mut cpu) = (vec![], vec![]);
    for _ in 0..reps {
        let (t, c) = (Instant::now(), cpu_time());
        f()?;
        wall.push(t.elapsed().as_secs_f64() * 1e3);
        cpu.push((cpu_time() - c) * 1e3);
    }
    Ok((median(wall), median(cpu)))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let which = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("arfpn")
        .to_string();
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let only = args.get(3).cloned();
    let dev = Device::Cpu;
    let cases = [
        ("stem7x7s2_3to64_480x640", (1, 3, 480, 640), 64, 7, 2, 3),
        ("3x3_256to256_120x160", (1, 256, 120, 160), 256, 3, 1, 1),
        ("1x1_1024to256_30x40", (1, 1024, 30, 40), 256, 1, 1, 0),
        ("3x3s2_128to128_120x160", (1, 128, 120, 160), 128, 3, 2, 1),
    ];
    println!("{which}, {} rayon threads", rayon::current_num_threads());
    println!(
        "{:28} {:>9} {:>9} {:>8} {:>12} {:>12} {:>8}",
        "shape", "fwd ms", "fwd cpu", "GFLOP/s", "f+b ms", "f+b cpu", "GFLOP/s"
    );
    for (name, (n, c, h, w), o, k, s, p) in cases {
        if only.as_deref().is_some_and(|x| !name.contains(x)) {
            continue;
        }
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (n, c, h, w), &dev)?)?;
        let wt = Var::from_tensor(&(Tensor::randn(0f32, 1., (o, c, k, k), &dev)? * 0.05)?)?;
        let b = Var::from_tensor(&Tensor::zeros(o, DType::F32, &dev)?)?;
        let cfg = Conv2dConfig {
            stride: s,
            padding: p,
            ..Default::default()
        };
        let conv = |x: &Tensor| -> Result<Tensor> {
            if which == "candle" {
                x.conv2d(&wt, p, s, 1, 1)?
                    .broadcast_add(&b.reshape((1, o, 1, 1))?)
            } else {
                conv2d_op(x, &wt, Some(&b), cfg)
            }
        };
        let ho = (h + 2 * p - k) / s + 1;
        let wo = (w + 2 * p - k) / s + 1;
        let gflop = (2 * n * o * ho * wo * c * k * k) as f64 / 1e9;
        let xd = x.as_tensor().detach();
        let (fw, fc) = time(reps, || conv(&xd).map(|_| ()))?;
        let (bw, bc) = time(reps, || conv(&x)?.sum_all()?.backward().map(|_| ()))?;
        println!(
            "{name:28} {fw:9.2} {fc:9.2} {:8.1} {bw:12.2} {bc:12.2} {:8.1}",
            gflop / fw * 1e3,
            3.0 * gflop / bw * 1e3
        );
    }
    Ok(())
}
