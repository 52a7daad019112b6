//! Loading speed: XML parsing + validation of a split, image decoding (one thread vs the
//! rayon pool), and rendering one synthetic image.
//!
//! ```sh
//! cargo bench -p arfpn-voc --bench loading -- --warm-up-time 1 --measurement-time 5
//! ```
//! Real-data benchmarks read `<workspace>/../shared/data/bccd` (or `$ARFPN_DATA/bccd`) and
//! are skipped with a message when it is absent (`arfpn_testkit::shared_data`).

use arfpn_testkit::shared_data;
use arfpn_voc::image_io::load_rgb;
use arfpn_voc::synthetic::{render_image, SyntheticConfig};
use arfpn_voc::{ImageCheck, LabelSet, Labels, LoadOptions, VocDataset};
use criterion::{criterion_main, Criterion, Throughput};

fn loading(c: &mut Criterion) {
    if let Some(root) = shared_data("bccd") {
        let mut opts = LoadOptions::lenient(Labels::Explicit(LabelSet::bccd()));
        let ds = VocDataset::open(&root, "train", &opts).expect("bccd train");
        let n = ds.len() as u64;
        let mut g = c.benchmark_group("bccd_train");
        g.sample_size(10);
        g.throughput(Throughput::Elements(n));
        opts.image_check = ImageCheck::None;
        g.bench_function("open_xml_only", |b| {
            b.iter(|| VocDataset::open(&root, "train", &opts).unwrap().len())
        });
        opts.image_check = ImageCheck::Header;
        g.bench_function("open_xml_and_image_headers", |b| {
            b.iter(|| VocDataset::open(&root, "train", &opts).unwrap().len())
        });
        // Same work as `decode_batches_rayon` (16 decoded images alive at a time) on the
        // calling thread only.
        g.bench_function("decode_batches_1_thread", |b| {
            b.iter(|| {
                ds.samples()
                    .chunks(16)
                    .map(|c| {
                        let imgs: Vec<_> =
                            c.iter().map(|s| load_rgb(&s.image_path).unwrap()).collect();
                        imgs.len()
                    })
                    .sum::<usize>()
            })
        });
        g.bench_function("decode_batches_rayon", |b| {
            b.iter(|| {
                ds.batches(Some(0), 16)
                    .map(|b| b.items.len())
                    .sum::<usize>()
            })
        });
        g.finish();
    }
    let cfg = SyntheticConfig::default();
    let mut g = c.benchmark_group("synthetic");
    g.sample_size(10);
    g.bench_function("render_500x375", |b| {
        b.iter(|| render_image(&cfg, 3).unwrap().objects.len())
    });
    g.finish();
}

/// The benchmark group: runs the loading benchmarks (split validation, image decoding,
/// synthetic rendering) with Criterion's default configuration, overridden by the
/// command-line options. Written out by hand because the `criterion_group!` expansion,
/// identical otherwise, cannot carry a doc comment.
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    loading(&mut criterion);
}
criterion_main!(benches);
