//! Assigning each prediction (anchor or proposal) to a ground-truth box by IoU.

use serde::{Deserialize, Serialize};

use crate::{BBox, BoxError};

/// What the [`Matcher`] decided for one prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Match {
    /// Foreground: matched to the ground-truth box with this index.
    Matched(usize),
    /// Best IoU below the low threshold (or no ground truth at all).
    Background,
    /// Best IoU between the thresholds: neither foreground nor background (not sampled).
    Ignore,
}

impl Match {
    /// The matched ground-truth index, if foreground.
    pub fn gt(self) -> Option<usize> {
        match self {
            Match::Matched(g) => Some(g),
            _ => None,
        }
    }

    /// `true` for [`Match::Matched`].
    pub fn is_foreground(self) -> bool {
        matches!(self, Match::Matched(_))
    }
}

/// torchvision's `Matcher` / detectron2's `Matcher` with two thresholds.
///
/// For each prediction, take its best ground truth (highest IoU; the lowest index wins a
/// tie). If that IoU is `>= high_threshold` the prediction is [`Match::Matched`]; if it is
/// `< low_threshold` it is [`Match::Background`]; otherwise [`Match::Ignore`].
///
/// With `allow_low_quality_matches`, every ground truth also keeps the predictions that
/// overlap it best — **all** of them when several tie — even below `high_threshold`
/// (Faster R-CNN §3.1.2). Such a prediction is matched to *its own* best ground truth, as in
/// torchvision. Unlike torchvision, a ground truth whose best IoU is 0 claims nothing
/// (torchvision would match every non-overlapping prediction to it).
///
/// Empty ground truth is valid: every prediction is background. NaN qualities count as no
/// overlap; a ground-truth box that is not [`valid`](BBox::is_valid) (zero area, inverted,
/// non-finite) overlaps nothing.
///
/// ```
/// use arfpn_boxes::{BBox, Match, Matcher};
/// let m = Matcher::new(0.7, 0.3, false).unwrap();
/// let gt = [BBox::new(0.0, 0.0, 10.0, 10.0)];
/// let anchors = [
///     BBox::new(0.0, 0.0, 10.0, 9.0),   // IoU 0.9
///     BBox::new(0.0, 0.0, 10.0, 5.0),   // IoU 0.5
///     BBox::new(20.0, 0.0, 30.0, 10.0), // IoU 0
/// ];
/// assert_eq!(m.match_boxes(&gt, &anchors), vec![Match::Matched(0), Match::Ignore, Match::Background]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Matcher {
    /// A best IoU at or above this (inclusive) makes a prediction foreground; in `(0, 1]`.
    pub high_threshold: f32,
    /// A best IoU strictly below this makes a prediction background; in
    /// `[0, high_threshold]`. Equal thresholds leave no ignore band.
    pub low_threshold: f32,
    /// Also match every ground truth's best-overlapping predictions, whatever their IoU
    /// (see the type docs).
    pub allow_low_quality_matches: bool,
}

impl Matcher {
    /// Needs `0 <= low_threshold <= high_threshold <= 1` and `high_threshold > 0`.
    pub fn new(
        high_threshold: f32,
        low_threshold: f32,
        allow_low_quality_matches: bool,
    ) -> Result<Self, BoxError> {
        let m = Self {
            high_threshold,
            low_threshold,
            allow_low_quality_matches,
        };
        m.validate()?;
        Ok(m)
    }

    /// Checks the thresholds (useful after deserialising).
    pub fn validate(&self) -> Result<(), BoxError> {
        let (h, l) = (self.high_threshold, self.low_threshold);
        if !(h > 0.0 && h <= 1.0) {
            return Err(BoxError::invalid(
                "high_threshold",
                format!("must be in (0, 1], got {h}"),
            ));
        }
        if !(l >= 0.0 && l <= h) {
            return Err(BoxError::invalid(
                "low_threshold",
                format!("must be in [0, high_threshold = {h}], got {l}"),
            ));
        }
        Ok(())
    }

    fn label(&self, best: Option<(usize, f32)>) -> Match {
        let (g, q) = best.unwrap_or((usize::MAX, 0.0));
        if q >= self.high_threshold {
            Match::Matched(g)
        } else if q < self.low_threshold {
            Match::Background
        } else {
            Match::Ignore
        }
    }

    /// Matches from a quality matrix, row-major `[num_gt × num_preds]` (entry
    /// `g * num_preds + p` is the IoU of ground truth `g` with prediction `p`, as
    /// [`iou_matrix`](crate::iou_matrix)`(gt, preds)` returns it).
    pub fn match_quality(
        &self,
        quality: &[f32],
        num_gt: usize,
        num_preds: usize,
    ) -> Result<Vec<Match>, BoxError> {
        BoxError::check_len(
            "quality",
            quality.len(),
            "num_gt * num_preds",
            num_gt * num_preds,
        )?;
        // Best ground truth per prediction; only positive, non-NaN qualities count.
        let mut best: Vec<Option<(usize, f32)>> = vec![None; num_preds];
        let mut gt_best = vec![0.0f32; num_gt];
        for g in 0..num_gt {
            let row = &quality[g * num_preds..(g + 1) * num_preds];
            for (p, &q) in row.iter().enumerate() {
                if q > 0.0 {
                    if best[p].is_none_or(|(_, b)| q > b) {
                        best[p] = Some((g, q));
                    }
                    if q > gt_best[g] {
                        gt_best[g] = q;
                    }
                }
            }
        }
        let mut out: Vec<Match> = best.iter().map(|b| self.label(*b)).collect();
        if self.allow_low_quality_matches {
            for g in 0..num_gt {
                if gt_best[g] <= 0.0 {
                    continue;
                }
                let row = &quality[g * num_preds..(g + 1) * num_preds];
                for (p, &q) in row.iter().enumerate() {
                    if q == gt_best[g] {
                        if let Some((bg, _)) = best[p] {
                            out[p] = Match::Matched(bg);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Matches `preds` against `gt` by IoU without building the `gt × preds` matrix: the
    /// ground truths are bucketed once on a grid of cells as large as the largest box, and
    /// each prediction is compared only with those in the cells it can reach. The result is identical
    /// to `match_quality(&iou_matrix(gt, preds), ..)`; memory is `O(gt + preds)`, which
    /// matters for hundreds of thousands of dense anchors.
    pub fn match_boxes(&self, gt: &[BBox], preds: &[BBox]) -> Vec<Match> {
        let index = GtIndex::new(gt);
        let mut best: Vec<Option<(usize, f32)>> = Vec::with_capacity(preds.len());
        let mut gt_best = vec![0.0f32; gt.len()];
        // (prediction, gt, iou) each time a prediction reached a gt's running best: every
        // final best (ties included) is among them, so no second pass is needed.
        let mut candidates: Vec<(usize, usize, f32)> = Vec::new();
        for (i, p) in preds.iter().enumerate() {
            let mut b: Option<(usize, f32)> = None;
            index.for_each_overlap(gt, p, |g, q| {
                if b.is_none_or(|(bg, bq)| q > bq || (q == bq && g < bg)) {
                    b = Some((g, q));
                }
                if q >= gt_best[g] {
                    gt_best[g] = q;
                    candidates.push((i, g, q));
                }
            });
            best.push(b);
        }
        let mut out: Vec<Match> = best.iter().map(|b| self.label(*b)).collect();
        if self.allow_low_quality_matches {
            for (i, g, q) in candidates {
                if q == gt_best[g] {
                    if let Some((bg, _)) = best[i] {
                        out[i] = Match::Matched(bg);
                    }
                }
            }
        }
        out
    }
}

/// Valid ground-truth boxes bucketed on a uniform grid by their top-left corner, with
/// cells at least as large as the largest box: a prediction can only overlap boxes whose
/// corner lies in `(p.x1 - size, p.x2) × (p.y1 - size, p.y2)`, a few cells.
struct GtIndex {
    cells: Vec<Vec<usize>>,
    /// Largest box side, slightly inflated so rounding can never exclude an overlap.
    size: f32,
    cell: f32,
    min_x: f32,
    min_y: f32,
    cols: usize,
    rows: usize,
}

impl GtIndex {
    fn new(gt: &[BBox]) -> Self {
        let valid: Vec<usize> = (0..gt.len()).filter(|&g| gt[g].is_valid()).collect();
        let (mut min_x, mut min_y, mut max_x, mut max_y) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        let mut size = 0.0f32;
        for &g in &valid {
            let b = &gt[g];
            min_x = min_x.min(b.x1);
            min_y = min_y.min(b.y1);
            max_x = max_x.max(b.x1);
            max_y = max_y.max(b.y1);
            size = size.max(b.width()).max(b.height());
        }
        let size = size * 1.001 + 1e-3;
        if valid.is_empty() {
            return Self {
                cells: Vec::new(),
                size,
                cell: 1.0,
                min_x: 0.0,
                min_y: 0.0,
                cols: 0,
                rows: 0,
            };
        }
        // At most 256 cells per side.
        let cell = size.max((max_x - min_x).max(max_y - min_y) / 256.0);
        let cols = ((max_x - min_x) / cell) as usize + 1;
        let rows = ((max_y - min_y) / cell) as usize + 1;
        let mut index = Self {
            cells: vec![Vec::new(); cols * rows],
            size,
            cell,
            min_x,
            min_y,
            cols,
            rows,
        };
        for g in valid {
            let (c, r) = (index.col(gt[g].x1), index.row(gt[g].y1));
            index.cells[r * cols + c].push(g);
        }
        index
    }

    /// Cell column of `x`, clamped to the grid (monotone in `x`).
    #[inline]
    fn col(&self, x: f32) -> usize {
        (((x - self.min_x) / self.cell).max(0.0) as usize).min(self.cols - 1)
    }

    #[inline]
    fn row(&self, y: f32) -> usize {
        (((y - self.min_y) / self.cell).max(0.0) as usize).min(self.rows - 1)
    }

    /// Calls `f(g, iou)` for every ground truth `g` with a positive IoU with `p`.
    #[inline]
    fn for_each_overlap(&self, gt: &[BBox], p: &BBox, mut f: impl FnMut(usize, f32)) {
        if self.cells.is_empty() || !p.is_valid() {
            return;
        }
        let (c0, c1) = (self.col(p.x1 - self.size), self.col(p.x2));
        let (r0, r1) = (self.row(p.y1 - self.size), self.row(p.y2));
        for r in r0..=r1 {
            for cell in &self.cells[r * self.cols + c0..=r * self.cols + c1] {
                for &g in cell {
                    let q = gt[g].iou(p);
                    if q > 0.0 {
                        f(g, q);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{iou_matrix, SplitMix64};
    use Match::*;

    #[test]
    fn crafted_matrix_with_low_quality_ties() {
        // 3 gt × 6 predictions.
        #[rustfmt::skip]
        let q = [
            // p0   p1   p2   p3   p4   p5
            0.80, 0.40, 0.10, 0.00, 0.20, 0.00, // gt0: best 0.8 (p0)
            0.10, 0.50, 0.50, 0.25, 0.00, 0.00, // gt1: best 0.5, tie p1/p2
            0.00, 0.45, 0.00, 0.20, 0.00, 0.00, // gt2: best 0.45 at p1, but p1's own best is gt1
        ];
        let (bg, kept) = (Background, Matched(1));
        for (high, low, allow_low_quality, want) in [
            (0.7, 0.3, false, [Matched(0), Ignore, Ignore, bg, bg, bg]),
            // p1 and p2 tie for gt1 -> both kept; p1 is matched to its own best (gt1, not gt2).
            (0.7, 0.3, true, [Matched(0), kept, kept, bg, bg, bg]),
            // Equal thresholds (RoI heads' 0.5/0.5): no Ignore.
            (0.5, 0.5, false, [Matched(0), kept, kept, bg, bg, bg]),
        ] {
            let m = Matcher::new(high, low, allow_low_quality).unwrap();
            assert_eq!(m.match_quality(&q, 3, 6).unwrap(), want.to_vec());
        }
    }

    #[test]
    fn argmax_tie_goes_to_lowest_gt_and_nan_is_no_overlap() {
        let q = [0.9, f32::NAN, 0.9, 0.1];
        let m = Matcher::new(0.7, 0.3, true).unwrap();
        assert_eq!(
            m.match_quality(&q, 2, 2).unwrap(),
            vec![Matched(0), Background]
        );
    }

    #[test]
    fn empty_inputs_and_bad_arguments() {
        let m = Matcher::new(0.7, 0.3, true).unwrap();
        let anchors = [BBox::new(0.0, 0.0, 4.0, 4.0); 3];
        assert_eq!(m.match_boxes(&[], &anchors), vec![Background; 3]);
        assert_eq!(m.match_quality(&[], 0, 3).unwrap(), vec![Background; 3]);
        assert!(m.match_boxes(&anchors, &[]).is_empty());
        // A zero-area gt claims nothing, even with low-quality matching.
        let gt = [BBox::new(1.0, 1.0, 1.0, 3.0)];
        assert_eq!(m.match_boxes(&gt, &anchors), vec![Background; 3]);
        assert!(m.match_quality(&[0.5], 2, 3).is_err());
        assert!(Matcher::new(0.3, 0.7, true).is_err());
        assert!(Matcher::new(f32::NAN, 0.3, true).is_err());
        assert!(Matcher::new(0.7, -0.1, true).is_err());
        assert!(Matcher::new(0.0, 0.0, true).is_err());
    }

    fn random_boxes(rng: &mut SplitMix64, n: usize, integer: bool, spread: f32) -> Vec<BBox> {
        (0..n)
            .map(|_| {
                let mut v = || {
                    let x = rng.next_f32() * 60.0;
                    if integer {
                        x.floor()
                    } else {
                        x
                    }
                };
                let (x, y, w, h) = (v() * spread, v() * spread, v() * 0.5, v() * 0.5);
                BBox::new(x, y, x + w, y + h)
            })
            .collect()
    }

    /// Property: the pruned box matcher equals matching on the full IoU matrix.
    #[test]
    fn match_boxes_equals_matrix_matching() {
        let mut rng = SplitMix64::new(42);
        for case in 0..200 {
            let integer = case % 2 == 0; // integer boxes produce many exact ties
                                         // Spread over up to 10x the box size, so the grid index has many cells.
            let spread = [1.0, 4.0, 10.0][case % 3];
            let (ng, np) = (rng.below(40), 1 + rng.below(300));
            let gt = random_boxes(&mut rng, ng, integer, spread);
            let mut preds = random_boxes(&mut rng, np, integer, spread);
            if !preds.is_empty() && case % 3 == 0 {
                let dup = preds[0];
                preds.push(dup);
            }
            for m in [
                Matcher::new(0.7, 0.3, true).unwrap(),
                Matcher::new(0.5, 0.5, false).unwrap(),
                Matcher::new(0.4, 0.0, true).unwrap(),
            ] {
                let q = iou_matrix(&gt, &preds);
                let want = m.match_quality(&q, gt.len(), preds.len()).unwrap();
                assert_eq!(m.match_boxes(&gt, &preds), want, "case {case}");
            }
        }
    }
}
