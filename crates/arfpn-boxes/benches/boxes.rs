//! NMS of 10 000 boxes. The boxes are written to a file (`ARFPN_NMS_BOXES`, default
//! `$TMPDIR/arfpn_nms_boxes_10000.f32`) that `scripts/bench_nms_torchvision.py` reads, so
//! torchvision's `nms`/`batched_nms` time exactly the same input.
//!
//! File format: little-endian f32 rows `x1 y1 x2 y2 score group`, first the "clustered"
//! set, then the "uniform" set (10 000 rows each). The indices arfpn keeps go to the same
//! path with `.out` appended (f32 values: for each set, `nms` then `batched_nms`, a count
//! followed by the kept indices) for the script to compare with torchvision's.

use std::hint::black_box;
use std::io::Write;

use arfpn_boxes::{batched_nms, nms, BBox, SplitMix64};
use criterion::{criterion_main, Criterion};

const N: usize = 10_000;
const GROUPS: usize = 5;

/// Proposal-like boxes: jittered copies around 300 RBC-sized cells in a 480×640 image.
fn clustered(rng: &mut SplitMix64) -> Vec<BBox> {
    let cells: Vec<(f32, f32, f32)> = (0..300)
        .map(|_| {
            (
                rng.next_f32() * 640.0,
                rng.next_f32() * 480.0,
                8.0 + rng.next_f32() * 32.0,
            )
        })
        .collect();
    (0..N)
        .map(|_| {
            let (cx, cy, s) = cells[rng.below(cells.len())];
            let j = |r: &mut SplitMix64| (r.next_f32() - 0.5) * 0.4 * s;
            let (dx, dy) = (j(rng), j(rng));
            let (w, h) = (s + j(rng), s + j(rng));
            BBox::from_cxcywh(cx + dx, cy + dy, w, h)
        })
        .collect()
}

/// Uniformly placed boxes 8–40 px in a 480×640 image.
fn uniform(rng: &mut SplitMix64) -> Vec<BBox> {
    (0..N)
        .map(|_| {
            let (x, y) = (rng.next_f32() * 640.0, rng.next_f32() * 480.0);
            BBox::new(
                x,
                y,
                x + 8.0 + rng.next_f32() * 32.0,
                y + 8.0 + rng.next_f32() * 32.0,
            )
        })
        .collect()
}

type Case = (&'static str, Vec<BBox>, Vec<f32>, Vec<usize>);

fn cases() -> Vec<Case> {
    let mut rng = SplitMix64::new(2021);
    let mut out = Vec::new();
    for (name, boxes) in [
        ("clustered", clustered(&mut rng)),
        ("uniform", uniform(&mut rng)),
    ] {
        let scores = (0..N).map(|_| rng.next_f32()).collect();
        let groups = (0..N).map(|_| rng.below(GROUPS)).collect();
        out.push((name, boxes, scores, groups));
    }
    out
}

fn write_file(cases: &[Case]) -> std::path::PathBuf {
    let path = std::env::var_os("ARFPN_NMS_BOXES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("arfpn_nms_boxes_10000.f32"));
    let mut bytes = Vec::new();
    for (_, boxes, scores, groups) in cases {
        for ((b, s), g) in boxes.iter().zip(scores).zip(groups) {
            for v in [b.x1, b.y1, b.x2, b.y2, *s, *g as f32] {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let mut f = std::fs::File::create(&path).expect("create the boxes file");
    f.write_all(&bytes).expect("write the boxes file");
    eprintln!("wrote {} boxes to {}", 2 * N, path.display());
    path
}

fn bench(c: &mut Criterion) {
    let cases = cases();
    let path = write_file(&cases);
    let mut kept: Vec<f32> = Vec::new();
    for (_, boxes, scores, groups) in &cases {
        for k in [
            nms(boxes, scores, 0.7).unwrap(),
            batched_nms(boxes, scores, groups, 0.7).unwrap(),
        ] {
            kept.push(k.len() as f32);
            kept.extend(k.iter().map(|&i| i as f32));
        }
    }
    let mut out = path.into_os_string();
    out.push(".out");
    let bytes: Vec<u8> = kept.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&out, bytes).expect("write the kept indices");
    for (name, boxes, scores, groups) in &cases {
        let kept = nms(boxes, scores, 0.7).unwrap().len();
        let kept_b = batched_nms(boxes, scores, groups, 0.7).unwrap().len();
        eprintln!("{name}: nms keeps {kept}, batched_nms keeps {kept_b}");
        c.bench_function(&format!("nms_10000_{name}_iou0.7"), |b| {
            b.iter(|| nms(black_box(boxes), black_box(scores), 0.7).unwrap())
        });
        c.bench_function(&format!("batched_nms_10000_{name}_5groups_iou0.7"), |b| {
            b.iter(|| {
                batched_nms(black_box(boxes), black_box(scores), black_box(groups), 0.7).unwrap()
            })
        });
    }
}

/// The benchmark group: runs the `nms` and `batched_nms` benchmarks with Criterion's
/// default configuration, overridden by the command-line options. Written out by hand
/// because the `criterion_group!` expansion, identical otherwise, cannot carry a doc
/// comment.
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
}
criterion_main!(benches);
