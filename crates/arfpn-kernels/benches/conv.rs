//! Forward and forward+backward of the ResNet/FPN convolutions at 480×640, this crate's
//! `conv2d_op` beside candle's `conv2d` (and, on CPUs with AMX, both with bf16 products,
//! `arfpn-bf16`). Throughput is reported in FLOP ("elements"/s =
//! FLOP/s): forward `2·N·O·Ho·Wo·C·kh·kw`, forward+backward three times that (dx and dw).
//!
//! cargo bench -j 2 -p arfpn-kernels --bench conv --no-run
//! <binary> --bench --warm-up-time 1 --measurement-time 5 --sample-size 10

use arfpn_kernels::{conv2d_op, with_matmul_precision, Conv2dConfig, MatmulPrecision};
use candle_core::{DType, Device, Tensor, Var};
use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};

struct Case {
    name: &'static str,
    input: (usize, usize, usize, usize),
    out: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "stem7x7s2_3to64_480x640",
        input: (1, 3, 480, 640),
        out: 64,
        k: 7,
        stride: 2,
        pad: 3,
    },
    Case {
        name: "3x3_256to256_120x160",
        input: (1, 256, 120, 160),
        out: 256,
        k: 3,
        stride: 1,
        pad: 1,
    },
    Case {
        name: "1x1_1024to256_30x40",
        input: (1, 1024, 30, 40),
        out: 256,
        k: 1,
        stride: 1,
        pad: 0,
    },
    Case {
        name: "3x3s2_128to128_120x160",
        input: (1, 128, 120, 160),
        out: 128,
        k: 3,
        stride: 2,
        pad: 1,
    },
];

fn flops(c: &Case) -> u64 {
    let (n, ci, h, w) = c.input;
    let ho = (h + 2 * c.pad - c.k) / c.stride + 1;
    let wo = (w + 2 * c.pad - c.k) / c.stride + 1;
    (2 * n * c.out * ho * wo * ci * c.k * c.k) as u64
}

fn bench(cr: &mut Criterion) {
    let dev = Device::Cpu;
    for c in CASES {
        let (n, ci, h, w) = c.input;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (n, ci, h, w), &dev).unwrap()).unwrap();
        let wt = Var::from_tensor(
            &(Tensor::randn(0f32, 1., (c.out, ci, c.k, c.k), &dev).unwrap() * 0.05).unwrap(),
        )
        .unwrap();
        let b = Var::from_tensor(&Tensor::zeros(c.out, DType::F32, &dev).unwrap()).unwrap();
        let cfg = Conv2dConfig {
            stride: c.stride,
            padding: c.pad,
            ..Default::default()
        };
        let ours = |x: &Tensor| conv2d_op(x, &wt, Some(&b), cfg).unwrap();
        let candle = |x: &Tensor| {
            x.conv2d(&wt, c.pad, c.stride, 1, 1)
                .unwrap()
                .broadcast_add(&b.reshape((1, c.out, 1, 1)).unwrap())
                .unwrap()
        };
        // candle's stride-2 backward needs H, W of equal parity: true for these shapes.
        let mut g = cr.benchmark_group(format!("conv/{}", c.name));
        g.throughput(Throughput::Elements(flops(c)));
        g.bench_function(BenchmarkId::new("forward", "arfpn"), |bn| {
            bn.iter(|| ours(&x.as_tensor().detach()))
        });
        if arfpn_kernels::bf16_matmul_available() {
            g.bench_function(BenchmarkId::new("forward", "arfpn-bf16"), |bn| {
                bn.iter(|| {
                    with_matmul_precision(MatmulPrecision::Bf16, || ours(&x.as_tensor().detach()))
                })
            });
        }
        g.bench_function(BenchmarkId::new("forward", "candle"), |bn| {
            bn.iter(|| candle(&x.as_tensor().detach()))
        });
        g.throughput(Throughput::Elements(3 * flops(c)));
        g.bench_function(BenchmarkId::new("forward_backward", "arfpn"), |bn| {
            bn.iter(|| ours(&x).sum_all().unwrap().backward().unwrap())
        });
        if arfpn_kernels::bf16_matmul_available() {
            g.bench_function(BenchmarkId::new("forward_backward", "arfpn-bf16"), |bn| {
                bn.iter(|| {
                    with_matmul_precision(MatmulPrecision::Bf16, || {
                        ours(&x).sum_all().unwrap().backward().unwrap()
                    })
                })
            });
        }
        g.bench_function(BenchmarkId::new("forward_backward", "candle"), |bn| {
            bn.iter(|| candle(&x).sum_all().unwrap().backward().unwrap())
        });
        g.finish();
    }
}

/// The group `criterion_main!` runs: `bench` under Criterion's default configuration as
/// overridden by the command line (what `criterion_group!(benches, bench)` generates, written
/// out so that it can be documented).
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
}
criterion_main!(benches);
