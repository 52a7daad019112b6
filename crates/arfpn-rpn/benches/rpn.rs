//! Anchor generation, matching/targets and proposal selection for a 480×640 image with
//! FPN levels P2–P6 (strides 4–64) and the dense RBC anchors (9 per location, ≈ 230 k
//! anchors), against ≈ 230 cell-sized ground-truth boxes.
//!
//! The inputs are written to `$TMPDIR/arfpn_rpn_bench.f32` (or `$ARFPN_RPN_BENCH`) for
//! `scripts/bench_rpn_torchvision.py`: little-endian f32 values `L, n_0..n_{L-1}, G`, then the
//! `R = Σ n_l` anchors (4 each), `R` logits, `R` deltas (4 each) and `G` ground-truth boxes.
//! Our results go to the same path with `.out` appended, for the script to compare with
//! torchvision's: `R` match labels (gt index, -1 background, -2 ignore, as torchvision's
//! `Matcher`), then `P` and the `P` test-phase proposals `x1 y1 x2 y2 score`.

use std::hint::black_box;
use std::io::Write;

use arfpn_boxes::{BBox, ImageSize, Match, SplitMix64};
use arfpn_rpn::{
    rpn_targets, select_proposals, AnchorConfig, AnchorGenerator, LevelPredictions, Proposals,
    RpnConfig,
};
use criterion::{criterion_main, Criterion};

const H: usize = 480;
const W: usize = 640;
const STRIDES: [usize; 5] = [4, 8, 16, 32, 64];

fn names() -> Vec<String> {
    STRIDES
        .iter()
        .map(|s| format!("p{}", s.trailing_zeros()))
        .collect()
}

fn grids() -> Vec<(usize, usize)> {
    // Feature sizes of a 480×640 input: ceil(size / stride).
    STRIDES
        .iter()
        .map(|s| (H.div_ceil(*s), W.div_ceil(*s)))
        .collect()
}

fn generate(g: &AnchorGenerator) -> Vec<BBox> {
    let mut all = Vec::new();
    for (l, (h, w)) in grids().into_iter().enumerate() {
        all.extend_from_slice(&g.grid_anchors(l, h, w).unwrap());
    }
    all
}

/// ≈ 230 round-ish cells, 8–40 px, in the image.
fn cells(rng: &mut SplitMix64) -> Vec<BBox> {
    (0..230)
        .map(|_| {
            let s = 8.0 + rng.next_f32() * 32.0;
            let e = 0.8 + rng.next_f32() * 0.4;
            let (cx, cy) = (rng.next_f32() * W as f32, rng.next_f32() * H as f32);
            BBox::from_cxcywh(cx, cy, s * e, s / e)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let config = RpnConfig::default();
    let gen = AnchorGenerator::new(&config.anchors, &names(), &STRIDES).unwrap();
    let anchors = generate(&gen);
    eprintln!("{} anchors", anchors.len());

    c.bench_function("anchors_480x640_p2-p6_dense_uncached", |b| {
        b.iter(|| {
            let g = AnchorGenerator::new(&AnchorConfig::default(), &names(), &STRIDES).unwrap();
            black_box(generate(&g))
        })
    });
    c.bench_function("anchors_480x640_p2-p6_dense_cached", |b| {
        b.iter(|| black_box(generate(&gen)))
    });

    let mut rng = SplitMix64::new(5);
    let gt = cells(&mut rng);
    let matcher = config.matcher().unwrap();
    let sampler = config.sampler().unwrap();
    let coder = config.box_coder().unwrap();
    let m = matcher.match_boxes(&gt, &anchors);
    eprintln!(
        "{} positive anchors for {} cells",
        m.iter().filter(|m| m.is_foreground()).count(),
        gt.len()
    );
    // Anchor coverage of the cells: best anchor IoU per cell, for the presets.
    for (name, preset) in [
        ("rbc_dense", AnchorConfig::rbc_dense()),
        ("paper(32) = torchvision", AnchorConfig::paper(32.0)),
        ("paper(4)", AnchorConfig::paper(4.0)),
    ] {
        let a = generate(&AnchorGenerator::new(&preset, &names(), &STRIDES).unwrap());
        let best: Vec<f32> = gt
            .iter()
            .map(|g| a.iter().map(|a| g.iou(a)).fold(0.0, f32::max))
            .collect();
        let frac = |t: f32| best.iter().filter(|&&b| b >= t).count();
        eprintln!(
            "{name}: {} anchors; cells with an anchor of IoU >= 0.7 / 0.5 / 0.3: {} / {} / {} of {}",
            a.len(),
            frac(0.7),
            frac(0.5),
            frac(0.3),
            gt.len()
        );
    }
    c.bench_function("match_230gt_x_230k_anchors", |b| {
        b.iter(|| black_box(matcher.match_boxes(black_box(&gt), black_box(&anchors))))
    });
    c.bench_function("rpn_targets_230gt_x_230k_anchors", |b| {
        let mut r = SplitMix64::new(0);
        b.iter(|| {
            black_box(rpn_targets(
                &anchors, &gt, &matcher, &sampler, &coder, &mut r,
            ))
        })
    });

    // Proposal selection on random logits and small random deltas, test settings.
    let obj: Vec<f32> = (0..anchors.len())
        .map(|_| (rng.next_f32() - 0.5) * 8.0)
        .collect();
    let deltas: Vec<[f32; 4]> = (0..anchors.len())
        .map(|_| [0.0; 4].map(|_: f32| (rng.next_f32() - 0.5) * 0.4))
        .collect();
    let mut levels = Vec::new();
    let mut start = 0;
    for (l, (h, w)) in grids().into_iter().enumerate() {
        let n = h * w * gen.num_anchors_per_location()[l];
        levels.push(LevelPredictions {
            anchors: &anchors[start..start + n],
            objectness: &obj[start..start + n],
            deltas: &deltas[start..start + n],
        });
        start += n;
    }
    let path = write_file(&levels, &gt);
    let test = select_proposals(&levels, ImageSize::new(H, W), &coder, &config.test).unwrap();
    write_results(&path, &m, &test);
    for (phase, params) in [("test", config.test), ("train", config.train)] {
        let p = select_proposals(&levels, ImageSize::new(H, W), &coder, &params).unwrap();
        eprintln!("{phase}: {} proposals", p.len());
        c.bench_function(
            &format!(
                "proposals_230k_anchors_{phase}_pre{}_post{}",
                params.pre_nms_top_n, params.post_nms_top_n
            ),
            |b| {
                b.iter(|| {
                    black_box(
                        select_proposals(&levels, ImageSize::new(H, W), &coder, &params).unwrap(),
                    )
                })
            },
        );
    }
}

fn write_results(path: &std::path::Path, m: &[Match], p: &Proposals) {
    let mut v: Vec<f32> = m
        .iter()
        .map(|m| match m {
            Match::Matched(g) => *g as f32,
            Match::Background => -1.0,
            Match::Ignore => -2.0,
        })
        .collect();
    v.push(p.len() as f32);
    for (b, s) in p.boxes.iter().zip(&p.scores) {
        v.extend(b.to_array());
        v.push(*s);
    }
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = path.as_os_str().to_owned();
    out.push(".out");
    std::fs::write(&out, bytes).expect("write the bench results");
}

fn write_file(levels: &[LevelPredictions<'_>], gt: &[BBox]) -> std::path::PathBuf {
    let path = std::env::var_os("ARFPN_RPN_BENCH")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("arfpn_rpn_bench.f32"));
    let mut v: Vec<f32> = vec![levels.len() as f32];
    v.extend(levels.iter().map(|l| l.anchors.len() as f32));
    v.push(gt.len() as f32);
    for l in levels {
        v.extend(l.anchors.iter().flat_map(|b| b.to_array()));
    }
    for l in levels {
        v.extend_from_slice(l.objectness);
    }
    for l in levels {
        v.extend(l.deltas.iter().flatten());
    }
    v.extend(gt.iter().flat_map(|b| b.to_array()));
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(&bytes))
        .expect("write the bench inputs");
    eprintln!("wrote the inputs to {}", path.display());
    path
}

/// Runs `bench` with Criterion's default settings overridden by the command-line
/// arguments: what `criterion_group!(benches, bench)` expands to, written out so that it
/// carries a doc comment.
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
}

criterion_main!(benches);
