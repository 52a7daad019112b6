//! Precision, recall and F1 of one class at a score threshold (the paper's Table 4).

use serde::{Deserialize, Serialize};

use crate::PrCurve;

/// Precision, recall and F1 of the detections with `score >= threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrfPoint {
    /// The score cut: detections scoring at least this (inclusive) are kept.
    pub threshold: f64,
    /// True positives among the kept detections.
    pub tp: usize,
    /// False positives among the kept detections.
    pub fp: usize,
    /// `tp / (tp + fp)`, 0 when nothing is kept.
    pub precision: f64,
    /// `tp / npos`, 0 when `npos == 0`.
    pub recall: f64,
    /// `2 P R / (P + R)`, 0 when both are 0.
    pub f1: f64,
}

impl PrfPoint {
    fn new(threshold: f64, tp: usize, fp: usize, npos: usize) -> Self {
        let precision = if tp + fp > 0 {
            tp as f64 / (tp + fp) as f64
        } else {
            0.0
        };
        let recall = if npos > 0 {
            tp as f64 / npos as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            threshold,
            tp,
            fp,
            precision,
            recall,
            f1,
        }
    }
}

/// P/R/F1 at `threshold` from a class's ranked curve (ignored detections do not count).
///
/// ```
/// use arfpn_metrics::{prf_at, PrCurve};
/// let curve = PrCurve {
///     scores: vec![0.9, 0.8, 0.7],
///     tp: vec![1, 1, 2],
///     fp: vec![0, 1, 1],
///     ..PrCurve::default()
/// };
/// let p = prf_at(&curve, 4, 0.75); // keeps 0.9 and 0.8: 1 TP, 1 FP
/// assert_eq!((p.tp, p.fp, p.precision, p.recall), (1, 1, 0.5, 0.25));
/// ```
pub fn prf_at(curve: &PrCurve, npos: usize, threshold: f64) -> PrfPoint {
    let kept = curve.scores.partition_point(|&s| s >= threshold);
    let (tp, fp) = if kept == 0 {
        (0, 0)
    } else {
        (curve.tp[kept - 1], curve.fp[kept - 1])
    };
    PrfPoint::new(threshold, tp, fp, npos)
}

/// The score threshold with the highest F1 (the highest such threshold on ties),
/// considering every distinct detection score; `None` without detections.
pub fn best_f1(curve: &PrCurve, npos: usize) -> Option<PrfPoint> {
    let n = curve.scores.len();
    let mut best: Option<PrfPoint> = None;
    for i in 0..n {
        // Only the last of a run of equal scores is a reachable cut.
        if i + 1 < n && curve.scores[i + 1] == curve.scores[i] {
            continue;
        }
        let p = PrfPoint::new(curve.scores[i], curve.tp[i], curve.fp[i], npos);
        if best.is_none_or(|b| p.f1 > b.f1) {
            best = Some(p);
        }
    }
    best
}
