//! The single-image cell-size estimate (`estimate_cell_size_with_confidence`) on synthetic
//! smears of a BCCD photograph's size (640×480) and of a whole field (1418×1420). `detect`
//! and `serve` run it on every image whose magnification they check.
//!
//! cargo bench -j 2 -p arfpn-model --bench cell_size --no-run
//! <binary> --bench --warm-up-time 1 --measurement-time 5 --sample-size 10

use arfpn_model::estimate_cell_size_with_confidence;
use arfpn_voc::synthetic::{render_image, SyntheticConfig};
use criterion::{criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("cell_size_estimate");
    for (width, height) in [(640, 480), (1418, 1420)] {
        let cfg = SyntheticConfig {
            width,
            height,
            ..SyntheticConfig::default()
        };
        let image = render_image(&cfg, 0).unwrap().image;
        g.bench_function(format!("{width}x{height}"), |b| {
            b.iter(|| estimate_cell_size_with_confidence(&image))
        });
    }
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
