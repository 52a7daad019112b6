//! Dense workload: 118 images x 230 boxes, 14 classes, 1.2x detections.
//!
//! For a side-by-side comparison with pycocotools and faster-coco-eval on the *same*
//! input, write the workload with `scripts/metrics_oracle/bench_python.py DIR` (which also
//! times the Python tools) and run with `ARFPN_METRICS_BENCH_DIR=DIR`. Without it, a
//! workload of the same shape is generated here.

use criterion::{criterion_main, Criterion};

use arfpn_metrics::{
    evaluate_coco, evaluate_voc, CocoGt, CocoOptions, Dataset, Detection, GtBox, Rect, VocMethod,
    VocOptions,
};

/// Small deterministic generator (xorshift), same shape as the Python one.
fn generated() -> Dataset {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut u = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let (ni, nc) = (118, 14);
    let mut d = Dataset::new(ni, (0..nc).map(|k| format!("class_{k:02}")).collect());
    for i in 0..ni {
        let mut gts = Vec::new();
        for _ in 0..230 {
            let (w, h) = (14.0 + 12.0 * u(), 14.0 + 12.0 * u());
            let (x, y) = (u() * (512.0 - w), u() * (512.0 - h));
            let c = ((u() * u()) * nc as f64) as usize;
            gts.push((x, y, w, h, c));
            d.gts.push(GtBox::new(i, c, Rect::from_xywh(x, y, w, h)));
        }
        let mut n = 0;
        for &(x, y, w, h, c) in &gts {
            if u() < 0.85 {
                let c = if u() < 0.1 {
                    (u() * nc as f64) as usize
                } else {
                    c
                };
                let (dx, dy, dw, dh) = (u() - 0.5, u() - 0.5, u() - 0.5, u() - 0.5);
                let r = Rect::from_xywh(
                    x + dx * 0.3 * w,
                    y + dy * 0.3 * h,
                    w + dw * 0.3 * w,
                    h + dh * 0.3 * h,
                );
                d.dets
                    .push(Detection::new(i, c, r, (u() * 1000.0).round() / 1000.0));
                n += 1;
            }
        }
        while n < 276 {
            let r = Rect::from_xywh(u() * 490.0, u() * 490.0, 14.0 + 8.0 * u(), 14.0 + 8.0 * u());
            d.dets.push(Detection::new(
                i,
                (u() * nc as f64) as usize,
                r,
                (u() * 100.0).round() / 100.0,
            ));
            n += 1;
        }
    }
    d
}

fn workload() -> Dataset {
    match std::env::var("ARFPN_METRICS_BENCH_DIR") {
        Ok(dir) => {
            let read =
                |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).expect("read workload");
            let mut gt = CocoGt::parse(&read("gt.json")).expect("gt.json");
            gt.add_results(&read("dets.json")).expect("dets.json");
            eprintln!("workload from {dir}");
            gt.dataset
        }
        Err(_) => generated(),
    }
}

fn bench(c: &mut Criterion) {
    let data = workload();
    eprintln!(
        "{} images, {} GT, {} detections, {} classes, {} rayon threads",
        data.num_images,
        data.gts.len(),
        data.dets.len(),
        data.num_classes(),
        rayon::current_num_threads()
    );
    let coco = CocoOptions::default();
    let s = evaluate_coco(&data, &coco).unwrap().stats;
    eprintln!("COCO AP {:?} AP50 {:?}", s.ap, s.ap50);
    c.bench_function("coco_dense_118x230", |b| {
        b.iter(|| evaluate_coco(&data, &coco).unwrap())
    });
    for (name, method) in [
        ("voc07_dense_118x230", VocMethod::ElevenPoint),
        ("voc_dense_118x230", VocMethod::AllPoint),
    ] {
        let o = VocOptions {
            method,
            ..VocOptions::default()
        };
        c.bench_function(name, |b| b.iter(|| evaluate_voc(&data, &o).unwrap()));
    }
}

/// The benchmark group: runs the VOC and COCO evaluations of the workload with
/// Criterion's default configuration, overridden by the command-line options. Written out
/// by hand because the `criterion_group!` expansion, identical otherwise, cannot carry a
/// doc comment.
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
}
criterion_main!(benches);
