//! PASCAL VOC average precision, exactly as the official devkit (`VOCevaldet.m`, `VOCap`).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::sort_by_score_desc;
use crate::{voc_iou, BoxConvention, Dataset, IouComparison, MetricsError};

/// Which VOC AP definition to compute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum VocMethod {
    /// VOC2007: mean over the 11 recall thresholds `k * 0.1` (as numpy's
    /// `arange(0, 1.1, 0.1)`: a recall of exactly 0.3 does not reach
    /// `0.30000000000000004`) of the best precision at recall `>=` the threshold.
    ElevenPoint,
    /// VOC2010+: area under the monotone precision envelope (`VOCap`). Default.
    #[default]
    AllPoint,
}

/// What to do with ground truth marked `ignore` (VOC `difficult`) or `crowd`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DifficultPolicy {
    /// Devkit: not counted in `npos`; a detection whose best match is such a box is neither
    /// TP nor FP (even if the box was already matched). Default.
    #[default]
    Ignore,
    /// Count them as ordinary ground truth.
    AsGt,
    /// Remove them before matching: a detection on one is matched against the other boxes
    /// (and usually becomes a false positive).
    Drop,
}

/// Options of [`evaluate_voc`]. The defaults are the VOC devkit's, except the box
/// convention, which is this workspace's continuous one (set [`BoxConvention::PlusOne`] to
/// reproduce the devkit on VOC's inclusive pixel indices).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocOptions {
    /// Which AP definition to compute (all-point by default).
    pub method: VocMethod,
    /// Matching threshold (0.5).
    pub iou_threshold: f64,
    /// Whether an IoU equal to `iou_threshold` matches (`>=`, the devkit's default) or not
    /// (`>`).
    pub comparison: IouComparison,
    /// How widths and heights are measured in the IoU: continuous `x2 - x1` (default) or
    /// VOC's inclusive `x2 - x1 + 1`.
    pub convention: BoxConvention,
    /// How ground truth marked `ignore` (VOC `difficult`) or `crowd` is treated.
    pub difficult: DifficultPolicy,
}

impl Default for VocOptions {
    fn default() -> Self {
        Self {
            method: VocMethod::AllPoint,
            iou_threshold: 0.5,
            comparison: IouComparison::GreaterEqual,
            convention: BoxConvention::Continuous,
            difficult: DifficultPolicy::Ignore,
        }
    }
}

/// How one detection was judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The first detection (in rank order) to match a not-yet-taken ground-truth box.
    TruePositive,
    /// Best IoU below the threshold, no ground truth in the image, or a duplicate on a box
    /// already taken.
    FalsePositive,
    /// Best match is an ignored (difficult) box.
    Ignored,
}

/// The ranked detections of one class with their cumulative counts: one point per
/// detection that is not [`Outcome::Ignored`], in descending score order (stable).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PrCurve {
    /// Score of each point.
    pub scores: Vec<f64>,
    /// Cumulative true positives up to and including each point.
    pub tp: Vec<usize>,
    /// Cumulative false positives up to and including each point.
    pub fp: Vec<usize>,
    /// `tp / (tp + fp)`.
    pub precision: Vec<f64>,
    /// `tp / npos` (all zero when `npos == 0`).
    pub recall: Vec<f64>,
}

/// VOC result for one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocClassResult {
    /// `None` when the class has no (non-ignored) ground truth: AP is undefined there and
    /// the class is left out of the mean. `Some(0.0)` for a class with ground truth but no
    /// correct detection.
    pub ap: Option<f64>,
    /// Number of ground-truth boxes that count (non-difficult under the default policy).
    pub npos: usize,
    /// Total true positives over all detections of the class.
    pub tp: usize,
    /// Total false positives over all detections of the class.
    pub fp: usize,
    /// Detections neither TP nor FP (matched to an ignored box).
    pub ignored: usize,
    /// The class's precision/recall curve, one point per non-ignored detection.
    pub curve: PrCurve,
    /// Every detection of this class as `(index into Dataset::dets, outcome)`, in rank
    /// order (descending score, ties in input order).
    pub outcomes: Vec<(usize, Outcome)>,
}

/// VOC result for all classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocResult {
    /// The options the evaluation ran with.
    pub options: VocOptions,
    /// One entry per class, in class order.
    pub per_class: Vec<VocClassResult>,
    /// Mean of the defined per-class APs (`None` when no class has ground truth).
    pub map: Option<f64>,
}

/// Evaluates `data` with the VOC devkit's rules, class by class (in parallel; the result
/// does not depend on the thread count).
///
/// Matching, per class: detections in descending score order (stable); each goes to the
/// ground-truth box of its image with the highest IoU (the first on ties, boxes without
/// overlap skipped); if that IoU passes the threshold, it is ignored when the box is
/// ignored (difficult), a TP when the box is not yet taken, a FP (duplicate) otherwise;
/// there is no fall-back to the second-best box. Below the threshold it is a FP.
///
/// Deviation from the devkit, documented: where the devkit's precision is `0/0 = NaN`
/// (ranks before the first TP/FP, all ignored), ignored detections are simply dropped from
/// the curve, which gives the devkit's AP whenever that is a number, and 0 where the devkit
/// gives NaN (every detection of a class ignored), as the Python ports do.
pub fn evaluate_voc(data: &Dataset, opts: &VocOptions) -> Result<VocResult, MetricsError> {
    data.validate()?;
    if !(opts.iou_threshold.is_finite() && (0.0..=1.0).contains(&opts.iou_threshold)) {
        return Err(MetricsError::BadOption {
            option: "iou_threshold",
            reason: format!("{} is not in [0, 1]", opts.iou_threshold),
        });
    }
    let nc = data.num_classes();
    let mut class_dets = vec![Vec::new(); nc];
    for (i, d) in data.dets.iter().enumerate() {
        class_dets[d.class].push(i);
    }
    let gt_groups = data.gt_groups();
    let per_class: Vec<VocClassResult> = class_dets
        .into_par_iter()
        .enumerate()
        .map(|(c, dets)| {
            let groups = &gt_groups[c * data.num_images..(c + 1) * data.num_images];
            evaluate_class(data, groups, dets, opts)
        })
        .collect();
    let map = mean_defined(per_class.iter().map(|r| r.ap));
    Ok(VocResult {
        options: *opts,
        per_class,
        map,
    })
}

/// Mean of the `Some` values, sequential sum; `None` when there are none.
pub(crate) fn mean_defined(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values.flatten() {
        sum += v;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

fn evaluate_class(
    data: &Dataset,
    gt_by_image: &[Vec<usize>],
    mut dets: Vec<usize>,
    opts: &VocOptions,
) -> VocClassResult {
    // Per image: the boxes that take part in matching, and whether each is ignored.
    let keep = |g: &crate::GtBox| !(opts.difficult == DifficultPolicy::Drop && g.is_ignored());
    let ignored = |g: &crate::GtBox| opts.difficult == DifficultPolicy::Ignore && g.is_ignored();
    let boxes: Vec<Vec<usize>> = gt_by_image
        .iter()
        .map(|ids| {
            ids.iter()
                .copied()
                .filter(|&i| keep(&data.gts[i]))
                .collect()
        })
        .collect();
    let npos = boxes
        .iter()
        .flatten()
        .filter(|&&i| !ignored(&data.gts[i]))
        .count();
    let mut taken: Vec<Vec<bool>> = boxes.iter().map(|b| vec![false; b.len()]).collect();

    sort_by_score_desc(&mut dets, &data.dets);
    let mut outcomes = Vec::with_capacity(dets.len());
    let mut curve = PrCurve::default();
    let (mut tp, mut fp, mut n_ignored) = (0usize, 0usize, 0usize);
    for &di in &dets {
        let d = &data.dets[di];
        let img = &boxes[d.image];
        let mut ovmax = f64::NEG_INFINITY;
        let mut jmax = usize::MAX;
        for (j, &gi) in img.iter().enumerate() {
            if let Some(ov) = voc_iou(&d.rect, &data.gts[gi].rect, opts.convention) {
                if ov > ovmax {
                    ovmax = ov;
                    jmax = j;
                }
            }
        }
        let outcome = if jmax != usize::MAX && opts.comparison.passes(ovmax, opts.iou_threshold) {
            if ignored(&data.gts[img[jmax]]) {
                Outcome::Ignored
            } else if !taken[d.image][jmax] {
                taken[d.image][jmax] = true;
                Outcome::TruePositive
            } else {
                Outcome::FalsePositive
            }
        } else {
            Outcome::FalsePositive
        };
        outcomes.push((di, outcome));
        match outcome {
            Outcome::Ignored => {
                n_ignored += 1;
                continue;
            }
            Outcome::TruePositive => tp += 1,
            Outcome::FalsePositive => fp += 1,
        }
        curve.scores.push(d.score);
        curve.tp.push(tp);
        curve.fp.push(fp);
        curve.precision.push(tp as f64 / (tp + fp) as f64);
        curve.recall.push(if npos > 0 {
            tp as f64 / npos as f64
        } else {
            0.0
        });
    }
    let ap = (npos > 0).then(|| match opts.method {
        VocMethod::ElevenPoint => eleven_point_ap(&curve.recall, &curve.precision),
        VocMethod::AllPoint => all_point_ap(&curve.recall, &curve.precision),
    });
    VocClassResult {
        ap,
        npos,
        tp,
        fp,
        ignored: n_ignored,
        curve,
        outcomes,
    }
}

/// VOC2007 11-point AP: `sum over t in {k * 0.1} of max(prec[rec >= t]) / 11`, with 0 where
/// no recall reaches `t`, accumulated in the devkit's order.
///
/// ```
/// use arfpn_metrics::eleven_point_ap;
/// // One TP out of 2 ground truths at precision 1: recall 0.5 reaches t = 0.0..=0.5.
/// // (accumulated term by term, as the devkit: not exactly 6.0 / 11.0)
/// let want = (0..6).fold(0.0, |ap, _| ap + 1.0 / 11.0);
/// assert_eq!(eleven_point_ap(&[0.5], &[1.0]), want);
/// ```
pub fn eleven_point_ap(recall: &[f64], precision: &[f64]) -> f64 {
    let mut ap = 0.0;
    for k in 0..11 {
        let t = k as f64 * 0.1;
        let p = recall
            .iter()
            .zip(precision)
            .filter(|(&r, _)| r >= t)
            .map(|(_, &p)| p)
            .fold(0.0f64, f64::max);
        ap += p / 11.0;
    }
    ap
}

/// VOC2010+ all-point AP (`VOCap`): area under the monotone precision envelope of the
/// curve extended with `(0, 0)` and `(1, 0)`.
///
/// ```
/// use arfpn_metrics::all_point_ap;
/// assert_eq!(all_point_ap(&[0.5, 0.5, 1.0], &[1.0, 0.5, 2.0 / 3.0]), 0.5 + 0.5 * 2.0 / 3.0);
/// ```
pub fn all_point_ap(recall: &[f64], precision: &[f64]) -> f64 {
    let n = recall.len();
    let mut mrec = Vec::with_capacity(n + 2);
    mrec.push(0.0);
    mrec.extend_from_slice(recall);
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(n + 2);
    mpre.push(0.0);
    mpre.extend_from_slice(precision);
    mpre.push(0.0);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    let mut ap = 0.0;
    for i in 1..mrec.len() {
        if mrec[i] != mrec[i - 1] {
            ap += (mrec[i] - mrec[i - 1]) * mpre[i];
        }
    }
    ap
}
