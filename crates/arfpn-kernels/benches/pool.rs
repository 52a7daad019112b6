//! The ResNet stem's max pool (3×3, stride 2, padding 1) on a 1×64×240×320 map (the stem's
//! output at 480×640): forward, and forward + backward. The backward's loss is a weighted
//! sum, so its gradient is a full map like a real upstream gradient.
//!
//! cargo bench -j 2 -p arfpn-kernels --bench pool --no-run
//! <binary> --bench --warm-up-time 1 --measurement-time 3 --sample-size 10

use arfpn_kernels::max_pool2d;
use candle_core::{Device, Tensor, Var};
use criterion::{criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (1, 64, 240, 320), &dev).unwrap()).unwrap();
    let w = Tensor::randn(0f32, 1., (1, 64, 120, 160), &dev).unwrap();
    let mut g = c.benchmark_group("max_pool2d_3x3s2_64x240x320");
    g.bench_function("forward", |b| b.iter(|| max_pool2d(&x, 3, 2, 1).unwrap()));
    g.bench_function("forward_backward", |b| {
        b.iter(|| {
            let y = max_pool2d(&x, 3, 2, 1).unwrap();
            (y * &w).unwrap().sum_all().unwrap().backward().unwrap()
        })
    });
    g.finish();
}

/// The group `criterion_main!` runs: `bench` under Criterion's default configuration as
/// overridden by the command line (what `criterion_group!(benches, bench)` generates, written
/// out so that it can be documented).
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
}
criterion_main!(benches);
