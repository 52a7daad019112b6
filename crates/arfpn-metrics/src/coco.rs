//! COCO box AP/AR, exactly as pycocotools' `COCOeval` (`evaluate`, `accumulate`,
//! `summarize`) with `iouType="bbox"`, `useCats=1`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::sort_by_score_desc;
use crate::{coco_iou, Dataset, MetricsError};

/// pycocotools' IoU thresholds: `0.5 + i * ((0.95 - 0.5) / 9)`, i.e. numpy's
/// `linspace(.5, .95, 10)` bit for bit (the 9th is `0.8999999999999999`).
pub fn coco_iou_thresholds() -> Vec<f64> {
    let step = (0.95 - 0.5) / 9.0;
    (0..10).map(|i| 0.5 + i as f64 * step).collect()
}

/// pycocotools' recall thresholds: `i * 0.01` for `i` in `0..=100` (numpy's
/// `linspace(0, 1, 101)`, which differs from `i / 100` at ten points).
pub fn coco_recall_thresholds() -> Vec<f64> {
    (0..=100).map(|i| i as f64 * 0.01).collect()
}

/// Options of [`evaluate_coco`]. Defaults are pycocotools' `Params(iouType="bbox")`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoOptions {
    /// Increasing per-image-and-class detection caps; the last one is the cap used for
    /// matching and for AP (pycocotools `maxDets = [1, 10, 100]`). Raise the last for dense
    /// scenes (blood smears hold 200+ cells).
    pub max_dets: [usize; 3],
    /// IoU thresholds (`coco_iou_thresholds()`).
    pub iou_thresholds: Vec<f64>,
    /// Recall thresholds (`coco_recall_thresholds()`).
    pub recall_thresholds: Vec<f64>,
    /// Area ranges all / small / medium / large, inclusive at both ends.
    pub area_ranges: [(f64, f64); 4],
}

impl Default for CocoOptions {
    fn default() -> Self {
        Self {
            max_dets: [1, 10, 100],
            iou_thresholds: coco_iou_thresholds(),
            recall_thresholds: coco_recall_thresholds(),
            area_ranges: [
                (0.0, 1e10),
                (0.0, 32.0 * 32.0),
                (32.0 * 32.0, 96.0 * 96.0),
                (96.0 * 96.0, 1e10),
            ],
        }
    }
}

impl CocoOptions {
    /// Defaults with the last `maxDets` set to `max_dets`: `[1, 10, max_dets]` (as
    /// detectron2's `max_dets_per_image`), the smaller caps clamped to `max_dets`.
    pub fn with_max_dets(max_dets: usize) -> Self {
        let m = max_dets.max(1);
        Self {
            max_dets: [1, 10.min(m), m],
            ..Self::default()
        }
    }
}

/// The twelve numbers of `COCOeval.summarize()`; `None` where pycocotools prints -1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CocoStats {
    /// AP @[.5:.95], all areas, last maxDets (pycocotools' `summarize` hard-codes 100 here,
    /// giving -1 for other caps; this uses the last cap, as detectron2's `COCOevalMaxDets`).
    pub ap: Option<f64>,
    /// AP at IoU 0.5 (PASCAL-style), all areas, last maxDets; `None` also when 0.5 is not
    /// among [`CocoOptions::iou_thresholds`].
    pub ap50: Option<f64>,
    /// AP at IoU 0.75 (strict), all areas, last maxDets; `None` also when 0.75 is not among
    /// [`CocoOptions::iou_thresholds`].
    pub ap75: Option<f64>,
    /// AP @[.5:.95] of small objects (area range 1 of [`CocoOptions::area_ranges`], by
    /// default up to 32² pixels), last maxDets.
    pub ap_small: Option<f64>,
    /// AP @[.5:.95] of medium objects (area range 2, by default 32² to 96² pixels), last
    /// maxDets.
    pub ap_medium: Option<f64>,
    /// AP @[.5:.95] of large objects (area range 3, by default above 96² pixels), last
    /// maxDets.
    pub ap_large: Option<f64>,
    /// AR with maxDets\[0\] (1).
    pub ar1: Option<f64>,
    /// AR with maxDets\[1\] (10).
    pub ar10: Option<f64>,
    /// AR with maxDets\[2\] (100 by default).
    pub ar_max: Option<f64>,
    /// AR @[.5:.95] of small objects (area range 1), last maxDets.
    pub ar_small: Option<f64>,
    /// AR @[.5:.95] of medium objects (area range 2), last maxDets.
    pub ar_medium: Option<f64>,
    /// AR @[.5:.95] of large objects (area range 3), last maxDets.
    pub ar_large: Option<f64>,
}

impl CocoStats {
    /// `COCOeval.stats` order, -1 for undefined.
    pub fn to_array(&self) -> [f64; 12] {
        [
            self.ap,
            self.ap50,
            self.ap75,
            self.ap_small,
            self.ap_medium,
            self.ap_large,
            self.ar1,
            self.ar10,
            self.ar_max,
            self.ar_small,
            self.ar_medium,
            self.ar_large,
        ]
        .map(|v| v.unwrap_or(-1.0))
    }
}

/// COCO AP of one class (all areas, last maxDets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CocoClassResult {
    /// Mean over IoU thresholds and recall points; `None` without ground truth.
    pub ap: Option<f64>,
    /// At IoU 0.5 (`None` also when 0.5 is not among the thresholds).
    pub ap50: Option<f64>,
    /// At IoU 0.75.
    pub ap75: Option<f64>,
}

/// Everything `COCOeval.accumulate()` and `summarize()` produce.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoResult {
    /// The options the evaluation ran with; they give the sizes `T` (IoU thresholds) and
    /// `R` (recall thresholds) of the arrays below, and the meaning of each index.
    pub options: CocoOptions,
    /// Number of foreground classes `K` (the array dimension `K`).
    pub num_classes: usize,
    /// `eval['precision']`, shape `[T, R, K, A, M]` row-major, -1 where undefined.
    pub precision: Vec<f64>,
    /// `eval['recall']`, shape `[T, K, A, M]` row-major, -1 where undefined.
    pub recall: Vec<f64>,
    /// The twelve summary numbers of `COCOeval.summarize()`.
    pub stats: CocoStats,
    /// AP, AP50 and AP75 of each class, indexed by class (`num_classes` entries).
    pub per_class: Vec<CocoClassResult>,
}

impl CocoResult {
    /// `precision[t, r, k, a, m]`.
    pub fn precision_at(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        let (nr, nk) = (self.options.recall_thresholds.len(), self.num_classes);
        self.precision[(((t * nr + r) * nk + k) * 4 + a) * 3 + m]
    }

    /// `recall[t, k, a, m]`.
    pub fn recall_at(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        self.recall[((t * self.num_classes + k) * 4 + a) * 3 + m]
    }
}

/// Per (class, image, area range): the `evaluateImg` record.
struct ImageEval {
    /// Detection scores in rank order (truncated to the last maxDets).
    scores: Vec<f64>,
    /// `[t * nd + d]`: matched to some ground truth (`nd = scores.len()`).
    matched: Vec<bool>,
    /// `[t * nd + d]`: ignored.
    ignored: Vec<bool>,
    /// Non-ignored ground truth count.
    npig: usize,
}

/// Evaluates `data` as pycocotools' `COCOeval` does for boxes.
///
/// Every (image, class) with ground truth or detections takes part; ground truth with
/// `ignore` or `crowd` is ignored (pycocotools only knows `iscrowd`; set `ignore` for
/// VOC-style difficult boxes, matched at most once, with the ordinary IoU). Ties in IoU go
/// to the last eligible ground truth, ignored ground truth is tried after all others, and
/// the `maxDets` caps apply per image and class. Classes run in parallel; results do not
/// depend on the thread count.
pub fn evaluate_coco(data: &Dataset, opts: &CocoOptions) -> Result<CocoResult, MetricsError> {
    data.validate()?;
    check_options(opts)?;
    let (nk, ni) = (data.num_classes(), data.num_images);
    let (nt, nr, nm) = (opts.iou_thresholds.len(), opts.recall_thresholds.len(), 3);
    let gt_groups = data.gt_groups();
    let det_groups = data.det_groups();

    // Per class: [a][m] -> (precision [t][r], recall [t]).
    let per_class: Vec<Vec<(Vec<f64>, Vec<f64>)>> = (0..nk)
        .into_par_iter()
        .map(|k| {
            let evals: Vec<Option<[ImageEval; 4]>> = (0..ni)
                .map(|i| evaluate_img(data, &gt_groups[k * ni + i], &det_groups[k * ni + i], opts))
                .collect();
            let ranked = rank_detections(&evals);
            let mut out = Vec::with_capacity(4 * nm);
            for a in 0..4 {
                match outcomes_in_rank_order(&evals, &ranked, a, nt) {
                    Some((flags, npig)) => {
                        for m in 0..nm {
                            out.push(accumulate(&ranked, &flags, npig, opts.max_dets[m], opts));
                        }
                    }
                    None => out.extend((0..nm).map(|_| (Vec::new(), Vec::new()))),
                }
            }
            out
        })
        .collect();

    let mut precision = vec![-1.0; nt * nr * nk * 4 * nm];
    let mut recall = vec![-1.0; nt * nk * 4 * nm];
    for (k, cls) in per_class.iter().enumerate() {
        for a in 0..4 {
            for m in 0..nm {
                let (p, r) = &cls[a * nm + m];
                if p.is_empty() {
                    continue;
                }
                for t in 0..nt {
                    for ri in 0..nr {
                        precision[(((t * nr + ri) * nk + k) * 4 + a) * nm + m] = p[t * nr + ri];
                    }
                    recall[((t * nk + k) * 4 + a) * nm + m] = r[t];
                }
            }
        }
    }
    let mut result = CocoResult {
        options: opts.clone(),
        num_classes: nk,
        precision,
        recall,
        stats: CocoStats::default(),
        per_class: Vec::new(),
    };
    result.stats = summarize(&result);
    result.per_class = (0..nk)
        .map(|k| CocoClassResult {
            ap: precision_mean(&result, None, Some(k), 0, 2),
            ap50: iou_index(opts, 0.5)
                .and_then(|t| precision_mean(&result, Some(t), Some(k), 0, 2)),
            ap75: iou_index(opts, 0.75)
                .and_then(|t| precision_mean(&result, Some(t), Some(k), 0, 2)),
        })
        .collect();
    Ok(result)
}

fn check_options(opts: &CocoOptions) -> Result<(), MetricsError> {
    let bad = |option, reason: String| Err(MetricsError::BadOption { option, reason });
    if opts.max_dets[0] == 0 || !opts.max_dets.windows(2).all(|w| w[0] <= w[1]) {
        return bad(
            "max_dets",
            format!("{:?} must be positive and increasing", opts.max_dets),
        );
    }
    if opts.iou_thresholds.is_empty()
        || opts.iou_thresholds.iter().any(|t| !(0.0..=1.0).contains(t))
    {
        return bad(
            "iou_thresholds",
            format!("{:?} must be non-empty, in [0, 1]", opts.iou_thresholds),
        );
    }
    let r = &opts.recall_thresholds;
    if r.is_empty()
        || r.iter().any(|t| !(0.0..=1.0).contains(t))
        || !r.windows(2).all(|w| w[0] < w[1])
    {
        return bad(
            "recall_thresholds",
            "must be non-empty, increasing, in [0, 1]".into(),
        );
    }
    Ok(())
}

fn iou_index(opts: &CocoOptions, t: f64) -> Option<usize> {
    opts.iou_thresholds.iter().position(|&x| x == t)
}

/// `evaluateImg` for all four area ranges; `None` when the image has neither ground truth
/// nor detections of this class.
fn evaluate_img(
    data: &Dataset,
    gts: &[usize],
    dets: &[usize],
    opts: &CocoOptions,
) -> Option<[ImageEval; 4]> {
    if gts.is_empty() && dets.is_empty() {
        return None;
    }
    let mut dt: Vec<usize> = dets.to_vec();
    sort_by_score_desc(&mut dt, &data.dets);
    dt.truncate(opts.max_dets[2]);
    let nd = dt.len();
    let ng = gts.len();
    // Only pairs with IoU >= the lowest effective threshold can ever match, and skipping the
    // others does not change pycocotools' loop (they would `continue`); boxes are sparse,
    // so each detection keeps a short list `(gt index, IoU)` in ground-truth input order.
    let min_thr = opts
        .iou_thresholds
        .iter()
        .map(|&t| t.min(1.0 - 1e-10))
        .fold(f64::INFINITY, f64::min);
    let cands: Vec<Vec<(usize, f64)>> = dt
        .iter()
        .map(|&d| {
            let d = &data.dets[d];
            gts.iter()
                .enumerate()
                .filter_map(|(gi, &g)| {
                    let g = &data.gts[g];
                    let v = coco_iou(&d.rect, &g.rect, g.crowd);
                    (v >= min_thr).then_some((gi, v))
                })
                .collect()
        })
        .collect();
    let scores: Vec<f64> = dt.iter().map(|&d| data.dets[d].score).collect();
    let det_area: Vec<f64> = dt.iter().map(|&d| data.dets[d].rect.area()).collect();
    let nt = opts.iou_thresholds.len();
    let eval_range = |&(lo, hi): &(f64, f64)| {
        let gt_ig: Vec<bool> = gts
            .iter()
            .map(|&g| {
                let g = &data.gts[g];
                let a = g.range_area();
                g.is_ignored() || a < lo || a > hi
            })
            .collect();
        // Stable: non-ignored first.
        let order: Vec<usize> = (0..ng)
            .filter(|&g| !gt_ig[g])
            .chain((0..ng).filter(|&g| gt_ig[g]))
            .collect();
        let npig = gt_ig.iter().filter(|&&x| !x).count();
        let ig_sorted: Vec<bool> = order.iter().map(|&g| gt_ig[g]).collect();
        let crowd_sorted: Vec<bool> = order.iter().map(|&g| data.gts[gts[g]].crowd).collect();
        let mut pos = vec![0usize; ng];
        for (gs, &g) in order.iter().enumerate() {
            pos[g] = gs;
        }
        // Candidates as (sorted position, IoU), in sorted order.
        let sorted_cands: Vec<Vec<(usize, f64)>> = cands
            .iter()
            .map(|c| {
                let mut c: Vec<(usize, f64)> = c.iter().map(|&(g, v)| (pos[g], v)).collect();
                c.sort_unstable_by_key(|x| x.0);
                c
            })
            .collect();
        let mut matched = vec![false; nt * nd];
        let mut ignored = vec![false; nt * nd];
        let mut gt_taken = vec![false; ng];
        for (t, &thr) in opts.iou_thresholds.iter().enumerate() {
            gt_taken.iter_mut().for_each(|x| *x = false);
            for (d, cand) in sorted_cands.iter().enumerate() {
                let mut iou = thr.min(1.0 - 1e-10);
                let mut m = usize::MAX;
                for &(gs, v) in cand {
                    if gt_taken[gs] && !crowd_sorted[gs] {
                        continue;
                    }
                    if m != usize::MAX && !ig_sorted[m] && ig_sorted[gs] {
                        break;
                    }
                    if v < iou {
                        continue;
                    }
                    iou = v;
                    m = gs;
                }
                if m == usize::MAX {
                    ignored[t * nd + d] = det_area[d] < lo || det_area[d] > hi;
                    continue;
                }
                ignored[t * nd + d] = ig_sorted[m];
                matched[t * nd + d] = true;
                gt_taken[m] = true;
            }
        }
        ImageEval {
            scores: scores.clone(),
            matched,
            ignored,
            npig,
        }
    };
    let r = &opts.area_ranges;
    Some([
        eval_range(&r[0]),
        eval_range(&r[1]),
        eval_range(&r[2]),
        eval_range(&r[3]),
    ])
}

/// `accumulate` for one (class, area range, maxDet): precision `[t][r]` and recall `[t]`;
/// empty vectors where pycocotools leaves -1.
/// `(score, image among the evaluated ones, rank in its image)` of every detection, in
/// pycocotools' accumulate order: concatenated in image order, then a stable sort by
/// descending score (numpy mergesort of -score). Scores do not depend on the area range,
/// and the stable order restricted to `rank < maxDet` is the stable order of that subset,
/// so one sort serves every (area range, maxDet).
fn rank_detections(evals: &[Option<[ImageEval; 4]>]) -> Vec<(f64, u32, u32)> {
    let mut all: Vec<(f64, u32, u32)> = Vec::new();
    for (e_i, e) in evals.iter().flatten().enumerate() {
        for (d, &s) in e[0].scores.iter().enumerate() {
            all.push((s, e_i as u32, d as u32));
        }
    }
    all.sort_by(|x, y| y.0.partial_cmp(&x.0).unwrap_or(std::cmp::Ordering::Equal));
    all
}

/// Outcome of each ranked detection at each IoU threshold for area range `a`, gathered
/// once into `[t][j]` order (`IGNORED`, `TP` or `FP`), with the non-ignored ground-truth
/// count; `None` where pycocotools leaves -1 (no image evaluated, or `npig == 0`).
fn outcomes_in_rank_order(
    evals: &[Option<[ImageEval; 4]>],
    ranked: &[(f64, u32, u32)],
    a: usize,
    nt: usize,
) -> Option<(Vec<u8>, usize)> {
    let es: Vec<&ImageEval> = evals.iter().flatten().map(|e| &e[a]).collect();
    if es.is_empty() {
        return None;
    }
    let npig: usize = es.iter().map(|e| e.npig).sum();
    if npig == 0 {
        return None;
    }
    let n = ranked.len();
    let mut flags = vec![IGNORED; nt * n];
    for (j, &(_, e_i, d)) in ranked.iter().enumerate() {
        let e = es[e_i as usize];
        let nd = e.scores.len();
        for t in 0..nt {
            let at = t * nd + d as usize;
            if !e.ignored[at] {
                flags[t * n + j] = if e.matched[at] { TP } else { FP };
            }
        }
    }
    Some((flags, npig))
}

const IGNORED: u8 = 0;
const TP: u8 = 1;
const FP: u8 = 2;

/// `accumulate` for one (class, area range, maxDet): precision `[t][r]` and recall `[t]`.
fn accumulate(
    ranked: &[(f64, u32, u32)],
    flags: &[u8],
    npig: usize,
    max_det: usize,
    opts: &CocoOptions,
) -> (Vec<f64>, Vec<f64>) {
    let n = ranked.len();
    let keep: Vec<usize> = (0..n)
        .filter(|&j| (ranked[j].2 as usize) < max_det)
        .collect();
    let nd = keep.len();
    let nt = opts.iou_thresholds.len();
    let nr = opts.recall_thresholds.len();
    let mut precision = vec![0.0; nt * nr];
    let mut recall = vec![0.0; nt];
    let mut rc = vec![0.0; nd];
    let mut pr = vec![0.0; nd];
    for t in 0..nt {
        let f = &flags[t * n..(t + 1) * n];
        let (mut tp, mut fp) = (0.0f64, 0.0f64);
        for (j, &idx) in keep.iter().enumerate() {
            match f[idx] {
                TP => tp += 1.0,
                FP => fp += 1.0,
                _ => {}
            }
            rc[j] = tp / npig as f64;
            pr[j] = tp / (fp + tp + f64::EPSILON);
        }
        recall[t] = if nd > 0 { rc[nd - 1] } else { 0.0 };
        for i in (1..nd).rev() {
            if pr[i] > pr[i - 1] {
                pr[i - 1] = pr[i];
            }
        }
        // searchsorted(rc, recThrs, side='left'), stopping at the first index past the end.
        let mut pi = 0usize;
        for (ri, &thr) in opts.recall_thresholds.iter().enumerate() {
            while pi < nd && rc[pi] < thr {
                pi += 1;
            }
            if pi >= nd {
                break;
            }
            precision[t * nr + ri] = pr[pi];
        }
    }
    (precision, recall)
}

/// numpy's pairwise summation (`pairwise_sum` in `loops_utils.h.src`), so that means match
/// `np.mean` bit for bit.
pub(crate) fn numpy_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_sum(&a[..n2]) + numpy_sum(&a[n2..])
    }
}

/// Mean of the values `> -1`, numpy order; `None` when there are none.
fn mean_valid(values: Vec<f64>) -> Option<f64> {
    let v: Vec<f64> = values.into_iter().filter(|&x| x > -1.0).collect();
    (!v.is_empty()).then(|| numpy_sum(&v) / v.len() as f64)
}

/// Mean of `precision[t?, :, k?, a, m]` over the valid entries, in numpy's C order.
fn precision_mean(
    res: &CocoResult,
    t: Option<usize>,
    k: Option<usize>,
    a: usize,
    m: usize,
) -> Option<f64> {
    let nt = res.options.iou_thresholds.len();
    let nr = res.options.recall_thresholds.len();
    let ts: Vec<usize> = t.map_or((0..nt).collect(), |t| vec![t]);
    let ks: Vec<usize> = k.map_or((0..res.num_classes).collect(), |k| vec![k]);
    let mut v = Vec::with_capacity(ts.len() * nr * ks.len());
    for &t in &ts {
        for r in 0..nr {
            for &k in &ks {
                v.push(res.precision_at(t, r, k, a, m));
            }
        }
    }
    mean_valid(v)
}

fn recall_mean(res: &CocoResult, a: usize, m: usize) -> Option<f64> {
    let nt = res.options.iou_thresholds.len();
    let mut v = Vec::with_capacity(nt * res.num_classes);
    for t in 0..nt {
        for k in 0..res.num_classes {
            v.push(res.recall_at(t, k, a, m));
        }
    }
    mean_valid(v)
}

/// `COCOeval.summarize()` for boxes.
fn summarize(res: &CocoResult) -> CocoStats {
    let o = &res.options;
    let at = |iou: f64| iou_index(o, iou);
    CocoStats {
        ap: precision_mean(res, None, None, 0, 2),
        ap50: at(0.5).and_then(|t| precision_mean(res, Some(t), None, 0, 2)),
        ap75: at(0.75).and_then(|t| precision_mean(res, Some(t), None, 0, 2)),
        ap_small: precision_mean(res, None, None, 1, 2),
        ap_medium: precision_mean(res, None, None, 2, 2),
        ap_large: precision_mean(res, None, None, 3, 2),
        ar1: recall_mean(res, 0, 0),
        ar10: recall_mean(res, 0, 1),
        ar_max: recall_mean(res, 0, 2),
        ar_small: recall_mean(res, 1, 2),
        ar_medium: recall_mean(res, 2, 2),
        ar_large: recall_mean(res, 3, 2),
    }
}
