//! GroupNorm (32 groups) on a 1×256×120×160 map (a stride-4 ResNet level at 480×640): the fused
//! CPU op (alone and with the ReLU fused) beside the same layer written with candle tensor ops,
//! forward and forward+backward. `scripts/bench_group_norm_torch.py` times PyTorch's.
//!
//! cargo bench -j 2 -p arfpn-nn --bench norm --no-run
//! <binary> --bench --warm-up-time 1 --measurement-time 5 --sample-size 10

use arfpn_nn::group_norm;
use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let gn = group_norm(
        32,
        256,
        1e-5,
        VarBuilder::from_varmap(&vm, DType::F32, &dev),
    )
    .unwrap();
    let x =
        Var::from_tensor(&Tensor::randn(0f32, 1f32, (1, 256, 120, 160), &dev).unwrap()).unwrap();
    let mut g = c.benchmark_group("group_norm_256x120x160");
    g.bench_function("fused/forward", |b| b.iter(|| gn.forward(&x).unwrap()));
    g.bench_function("composed/forward", |b| {
        b.iter(|| gn.forward_composed(&x).unwrap())
    });
    g.bench_function("fused/forward_backward", |b| {
        b.iter(|| {
            gn.forward(&x)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        })
    });
    g.bench_function("fused_relu/forward_backward", |b| {
        b.iter(|| {
            gn.forward_relu(&x)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        })
    });
    g.bench_function("composed/forward_backward", |b| {
        b.iter(|| {
            let y = gn.forward_composed(&x).unwrap();
            y.sum_all().unwrap().backward().unwrap()
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
