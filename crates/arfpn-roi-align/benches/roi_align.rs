//! RoIAlign CPU benchmarks (the workload of docs/benchmarks.md `## arfpn-roi-align`, mirrored
//! by scripts/bench_roi_align_torchvision.py): 1000 RoIs of 16-64 px on a 1x256x128x160 map
//! (stride 4, a 512x640 image), 7x7 output, sampling 2, aligned; forward and forward+backward;
//! the same boxes through MultiScaleRoIAlign over strides 4-32 (all of them land on stride 4),
//! and 1000 boxes of 16-448 px spread over the four levels.
//!
//!     cargo bench -j 2 -p arfpn-roi-align --no-run
//!     <bench binary> --bench --warm-up-time 1 --measurement-time 5
use arfpn_roi_align::{roi_align, roi_pool, MultiScaleRoIAlign};
use candle_core::{Device, Tensor, Var};
use criterion::{criterion_main, Criterion};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

const IMG: (f32, f32) = (512.0, 640.0);

/// `k` boxes with sides uniform in `[lo, hi]` px, inside the 512x640 image.
fn boxes(k: usize, lo: f32, hi: f32, seed: u64) -> Tensor {
    let mut r = Lcg(seed);
    let mut v = Vec::with_capacity(k * 5);
    for _ in 0..k {
        let (w, h) = (lo + (hi - lo) * r.next(), lo + (hi - lo) * r.next());
        let (x, y) = ((IMG.1 - w) * r.next(), (IMG.0 - h) * r.next());
        v.extend_from_slice(&[0.0, x, y, x + w, y + h]);
    }
    Tensor::from_vec(v, (k, 5), &Device::Cpu).unwrap()
}

fn map(c: usize, h: usize, w: usize, seed: u64) -> Tensor {
    let mut r = Lcg(seed);
    let v: Vec<f32> = (0..c * h * w).map(|_| r.next() - 0.5).collect();
    Tensor::from_vec(v, (1, c, h, w), &Device::Cpu).unwrap()
}

fn bench(c: &mut Criterion) {
    let x = Var::from_tensor(&map(256, 128, 160, 1)).unwrap();
    let b = boxes(1000, 16.0, 64.0, 2);
    let mut g = c.benchmark_group("roi_align_1000x256x7x7");
    g.sample_size(10);
    g.bench_function("forward", |bench| {
        bench.iter(|| roi_align(&x, &b, (7, 7), 0.25, 2, true).unwrap())
    });
    g.bench_function("forward_backward", |bench| {
        bench.iter(|| {
            roi_align(x.as_tensor(), &b, (7, 7), 0.25, 2, true)
                .unwrap()
                .backward()
                .unwrap()
        })
    });
    g.bench_function("roi_pool_forward_backward", |bench| {
        bench.iter(|| {
            roi_pool(x.as_tensor(), &b, (7, 7), 0.25)
                .unwrap()
                .backward()
                .unwrap()
        })
    });
    g.finish();

    let strides = [4, 8, 16, 32];
    let feats: Vec<Var> = strides
        .iter()
        .map(|s| Var::from_tensor(&map(256, 512 / s, 640 / s, *s as u64)).unwrap())
        .collect();
    let feats: Vec<Tensor> = feats.iter().map(|v| v.as_tensor().clone()).collect();
    let pooler = MultiScaleRoIAlign::new(&strides, (7, 7), 2, true, 224.0, 4, 1e-6).unwrap();
    let mixed = boxes(1000, 16.0, 448.0, 3);
    let mut g = c.benchmark_group("multi_scale_roi_align_1000x256x7x7");
    g.sample_size(10);
    for (name, bx) in [("boxes16-64", &b), ("boxes16-448", &mixed)] {
        g.bench_function(format!("{name}/forward"), |bench| {
            bench.iter(|| pooler.forward(&feats, bx).unwrap())
        });
        g.bench_function(format!("{name}/forward_backward"), |bench| {
            bench.iter(|| pooler.forward(&feats, bx).unwrap().backward().unwrap())
        });
    }
    g.finish();
}

/// Runs `bench` with Criterion's default settings overridden by the command-line
/// arguments: what `criterion_group!(benches, bench)` expands to, written out so that it
/// carries a doc comment.
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
}

criterion_main!(benches);
