//! CBAM (reduction 16, 7×7 spatial convolution) on a 1×256×120×160 map (the first stage of a
//! CS-ARFPN R50 at 480×640): the fused CPU op beside its composed form (candle ops and this
//! crate's gate, channel-mean and amax ops), alone and ending a residual unit
//! (`max(cbam(x) + shortcut, 0)`), forward and forward+backward. The backward's loss is a
//! weighted sum, so its gradient is a full map like a real upstream gradient.
//!
//! cargo bench -j 2 -p arfpn-kernels --bench cbam --no-run
//! <binary> --bench --warm-up-time 1 --measurement-time 5 --sample-size 10

use arfpn_kernels::{
    add_relu, cbam, cbam_add_relu, cbam_composed, ChannelGateWeights, SpatialGateWeights,
};
use candle_core::{Device, Result, Tensor, Var};
use criterion::{criterion_main, Criterion};

fn randn(shape: &[usize], std: f32) -> Var {
    Var::from_tensor(&Tensor::randn(0f32, std, shape, &Device::Cpu).unwrap()).unwrap()
}

fn bench(c: &mut Criterion) {
    let (ch, hidden) = (256, 16);
    let x = randn(&[1, ch, 120, 160], 1.0);
    let shortcut = randn(&[1, ch, 120, 160], 1.0);
    let w = Tensor::randn(0f32, 1.0, (1, ch, 120, 160), &Device::Cpu).unwrap();
    let (w1, b1) = (randn(&[hidden, ch, 1, 1], 0.1), randn(&[hidden], 0.1));
    let (w2, b2) = (randn(&[ch, hidden, 1, 1], 0.1), randn(&[ch], 0.1));
    let (cw, cb) = (randn(&[1, 2, 7, 7], 0.1), randn(&[1], 0.1));
    let channel = ChannelGateWeights {
        fc1_weight: &w1,
        fc1_bias: &b1,
        fc2_weight: &w2,
        fc2_bias: &b2,
    };
    let spatial = SpatialGateWeights {
        conv_weight: &cw,
        conv_bias: &cb,
    };
    let fused = || cbam(&x, Some(&channel), &spatial);
    let composed = || Ok::<_, candle_core::Error>(cbam_composed(&x, Some(&channel), &spatial)?.y);
    let fused_res = || cbam_add_relu(&x, &shortcut, Some(&channel), &spatial);
    let composed_res = || add_relu(&composed()?, &shortcut);
    let backward = |y: Result<Tensor>| {
        (y.unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
    };

    let mut g = c.benchmark_group("cbam_256x120x160");
    g.bench_function("fused/forward", |b| b.iter(|| fused().unwrap()));
    g.bench_function("composed/forward", |b| b.iter(|| composed().unwrap()));
    g.bench_function("fused/forward_backward", |b| b.iter(|| backward(fused())));
    g.bench_function("composed/forward_backward", |b| {
        b.iter(|| backward(composed()))
    });
    g.bench_function("fused_add_relu/forward_backward", |b| {
        b.iter(|| backward(fused_res()))
    });
    g.bench_function("composed_add_relu/forward_backward", |b| {
        b.iter(|| backward(composed_res()))
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
