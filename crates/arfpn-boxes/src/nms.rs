//! Non-maximum suppression: single-class ([`nms`]) and per class ([`batched_nms`]).
//!
//! Semantics are torchvision's: boxes are visited in decreasing score order; a box is kept
//! unless a box kept before it overlaps it with IoU **strictly greater** than the
//! threshold. The result lists kept indices in decreasing score order (equal scores: lower
//! index first). Boxes with a non-finite coordinate or a NaN score are never kept.
//!
//! Implementation: the candidates are sorted once and their coordinates copied into
//! score-ordered arrays. Small inputs run the textbook loop (each kept box scans the later,
//! still-alive ones). From [`GRID_MIN`] boxes on, each candidate is tested only against the
//! already-kept boxes that share a cell of a uniform grid with it (a box is suppressed
//! exactly when some kept box overlaps it too much, so this is the same algorithm), which
//! turns the quadratic scan into a near-linear one for the dense, small boxes of cell
//! smears. Both IoU tests reject on the x overlap, then the y overlap, before dividing.

use std::collections::HashMap;

use crate::{BBox, BoxError};

/// Score-ordered copy of the candidates.
struct Sorted {
    /// Original index of rank `r`.
    index: Vec<usize>,
    x1: Vec<f32>,
    y1: Vec<f32>,
    x2: Vec<f32>,
    y2: Vec<f32>,
    area: Vec<f32>,
}

/// From this many candidates (per group) on, NMS uses the grid.
pub const GRID_MIN: usize = 128;

fn check(boxes: &[BBox], scores: &[f32], iou_threshold: f32) -> Result<(), BoxError> {
    BoxError::check_len("boxes", boxes.len(), "scores", scores.len())?;
    if iou_threshold.is_nan() || iou_threshold < 0.0 {
        return Err(BoxError::invalid(
            "iou_threshold",
            format!("must be >= 0, got {iou_threshold}"),
        ));
    }
    Ok(())
}

impl Sorted {
    fn new(boxes: &[BBox], scores: &[f32]) -> Self {
        let mut index: Vec<usize> = (0..boxes.len())
            .filter(|&i| boxes[i].is_finite() && !scores[i].is_nan())
            .collect();
        // Stable: equal scores keep ascending index order.
        index.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let n = index.len();
        let mut s = Sorted {
            x1: Vec::with_capacity(n),
            y1: Vec::with_capacity(n),
            x2: Vec::with_capacity(n),
            y2: Vec::with_capacity(n),
            area: Vec::with_capacity(n),
            index,
        };
        for &i in &s.index {
            let b = &boxes[i];
            s.x1.push(b.x1);
            s.y1.push(b.y1);
            s.x2.push(b.x2);
            s.y2.push(b.y2);
            s.area.push(b.area());
        }
        s
    }

    /// `IoU(i, j) > thr`, computed exactly as [`BBox::iou`] does (so results are
    /// bit-for-bit those of the textbook loop), rejecting disjoint pairs early.
    #[inline]
    fn overlaps(&self, i: usize, j: usize, thr: f32) -> bool {
        let w = (self.x2[i].min(self.x2[j]) - self.x1[i].max(self.x1[j])).max(0.0);
        if w <= 0.0 {
            return false;
        }
        let h = (self.y2[i].min(self.y2[j]) - self.y1[i].max(self.y1[j])).max(0.0);
        let inter = w * h;
        inter > 0.0 && inter / (self.area[i] + self.area[j] - inter) > thr
    }

    /// Greedy NMS over `ranks` (ascending = decreasing score); returns the kept ranks.
    fn greedy(&self, ranks: &[usize], thr: f32) -> Vec<usize> {
        if ranks.len() >= GRID_MIN {
            self.greedy_grid(ranks, thr)
        } else {
            self.greedy_plain(ranks, thr)
        }
    }

    /// The same as [`greedy_plain`](Self::greedy_plain), testing each candidate only
    /// against kept boxes in the grid cells it touches. Two boxes with a positive
    /// intersection share a cell (the cell index is a monotone function of the
    /// coordinate), and IoU > thr >= 0 needs a positive intersection.
    fn greedy_grid(&self, ranks: &[usize], thr: f32) -> Vec<usize> {
        let n = ranks.len();
        let (mut min_x, mut min_y) = (f32::INFINITY, f32::INFINITY);
        let (mut max_x, mut max_y) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        let mut extent = 0.0f64;
        for &r in ranks {
            min_x = min_x.min(self.x1[r]);
            min_y = min_y.min(self.y1[r]);
            max_x = max_x.max(self.x2[r]);
            max_y = max_y.max(self.y2[r]);
            extent += (self.x2[r] - self.x1[r])
                .max(self.y2[r] - self.y1[r])
                .max(0.0) as f64;
        }
        let (span_x, span_y) = ((max_x - min_x).max(0.0), (max_y - min_y).max(0.0));
        // Cells about the size of a typical box, at most ~4 per candidate.
        let mut cell = ((extent / n as f64) as f32)
            .max(span_x.max(span_y) / 1024.0)
            .max(1e-6);
        let dims = |c: f32| {
            (
                ((span_x / c).floor() as usize + 1).min(1 << 12),
                ((span_y / c).floor() as usize + 1).min(1 << 12),
            )
        };
        while dims(cell).0 * dims(cell).1 > 4 * n + 16 {
            cell *= 2.0;
        }
        let (gw, gh) = dims(cell);
        let col = |x: f32| (((x - min_x) / cell) as usize).min(gw - 1);
        let row = |y: f32| (((y - min_y) / cell) as usize).min(gh - 1);
        // Kept boxes per cell, stored inline (x1, y1, x2, y2, area) for locality.
        let mut grid: Vec<Vec<[f32; 5]>> = vec![Vec::new(); gw * gh];
        let mut keep = Vec::new();
        for &j in ranks {
            let (x1, y1, x2, y2, area) =
                (self.x1[j], self.y1[j], self.x2[j], self.y2[j], self.area[j]);
            if !(x2 >= x1 && y2 >= y1) {
                // An inverted box overlaps nothing: kept, and suppresses nothing.
                keep.push(j);
                continue;
            }
            let (c0, c1) = (col(x1), col(x2));
            let (r0, r1) = (row(y1), row(y2));
            // Same arithmetic as `overlaps(i, j)` with the kept box as `i`.
            let hit = |k: &[f32; 5]| {
                let w = (k[2].min(x2) - k[0].max(x1)).max(0.0);
                if w <= 0.0 {
                    return false;
                }
                let h = (k[3].min(y2) - k[1].max(y1)).max(0.0);
                let inter = w * h;
                inter > 0.0 && inter / (k[4] + area - inter) > thr
            };
            let suppressed = (r0..=r1).any(|r| {
                grid[r * gw + c0..=r * gw + c1]
                    .iter()
                    .any(|kept| kept.iter().any(hit))
            });
            if !suppressed {
                keep.push(j);
                for r in r0..=r1 {
                    for cell in &mut grid[r * gw + c0..=r * gw + c1] {
                        cell.push([x1, y1, x2, y2, area]);
                    }
                }
            }
        }
        keep
    }

    /// The textbook loop: each kept box suppresses the later boxes it overlaps too much.
    fn greedy_plain(&self, ranks: &[usize], thr: f32) -> Vec<usize> {
        let n = ranks.len();
        let mut alive = vec![true; n];
        let mut keep = Vec::new();
        for a in 0..n {
            if !alive[a] {
                continue;
            }
            let i = ranks[a];
            keep.push(i);
            for b in a + 1..n {
                if alive[b] && self.overlaps(i, ranks[b], thr) {
                    alive[b] = false;
                }
            }
        }
        keep
    }
}

/// Single-class NMS; returns the kept indices in decreasing score order.
///
/// ```
/// use arfpn_boxes::{nms, BBox};
/// let boxes = [
///     BBox::new(0.0, 0.0, 10.0, 10.0),
///     BBox::new(1.0, 0.0, 11.0, 10.0), // IoU 0.82 with box 0
///     BBox::new(20.0, 0.0, 30.0, 10.0),
/// ];
/// assert_eq!(nms(&boxes, &[0.9, 0.95, 0.1], 0.5).unwrap(), vec![1, 2]);
/// ```
pub fn nms(boxes: &[BBox], scores: &[f32], iou_threshold: f32) -> Result<Vec<usize>, BoxError> {
    check(boxes, scores, iou_threshold)?;
    let s = Sorted::new(boxes, scores);
    let ranks: Vec<usize> = (0..s.index.len()).collect();
    Ok(s.greedy(&ranks, iou_threshold)
        .into_iter()
        .map(|r| s.index[r])
        .collect())
}

/// NMS done independently for each value of `groups` (a class id, or a pyramid level):
/// boxes in different groups never suppress each other. Returns the kept indices of all
/// groups together in decreasing score order, like torchvision's `batched_nms`.
///
/// ```
/// use arfpn_boxes::{batched_nms, BBox};
/// let b = BBox::new(0.0, 0.0, 10.0, 10.0);
/// assert_eq!(batched_nms(&[b, b, b], &[0.5, 0.9, 0.7], &[0, 0, 1], 0.5).unwrap(), vec![1, 2]);
/// ```
pub fn batched_nms(
    boxes: &[BBox],
    scores: &[f32],
    groups: &[usize],
    iou_threshold: f32,
) -> Result<Vec<usize>, BoxError> {
    check(boxes, scores, iou_threshold)?;
    BoxError::check_len("boxes", boxes.len(), "groups", groups.len())?;
    let s = Sorted::new(boxes, scores);
    // Split the ranks by group, keeping score order inside each group.
    let mut by_group: HashMap<usize, Vec<usize>> = HashMap::new();
    for (r, &i) in s.index.iter().enumerate() {
        by_group.entry(groups[i]).or_default().push(r);
    }
    let mut kept: Vec<usize> = Vec::new();
    for ranks in by_group.values() {
        kept.extend(s.greedy(ranks, iou_threshold));
    }
    kept.sort_unstable();
    Ok(kept.into_iter().map(|r| s.index[r]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitMix64;

    /// The textbook algorithm, written independently of the fast one.
    fn brute_force(boxes: &[BBox], scores: &[f32], groups: &[usize], thr: f32) -> Vec<usize> {
        let mut order: Vec<usize> = (0..boxes.len())
            .filter(|&i| boxes[i].is_finite() && !scores[i].is_nan())
            .collect();
        order.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap().then(a.cmp(&b)));
        let mut keep: Vec<usize> = Vec::new();
        for &j in &order {
            if keep
                .iter()
                .all(|&i| groups[i] != groups[j] || boxes[i].iou(&boxes[j]) <= thr)
            {
                keep.push(j);
            }
        }
        keep
    }

    fn random_case(rng: &mut SplitMix64, n: usize) -> (Vec<BBox>, Vec<f32>, Vec<usize>) {
        let boxes: Vec<BBox> = (0..n)
            .map(|_| {
                let x = (rng.next_f32() * 100.0).round();
                let y = (rng.next_f32() * 100.0).round();
                let w = (rng.next_f32() * 30.0).round();
                let h = (rng.next_f32() * 30.0).round();
                if rng.below(50) == 0 {
                    BBox::new(x + w, y, x, y + h) // inverted
                } else {
                    BBox::new(x, y, x + w, y + h)
                }
            })
            .collect();
        // Coarse scores make ties common.
        let scores = (0..n).map(|_| (rng.next_f32() * 20.0).floor()).collect();
        let groups = (0..n).map(|_| rng.below(3)).collect();
        (boxes, scores, groups)
    }

    /// Property: on random boxes (with ties in score and IoU), the fast NMS equals brute force.
    #[test]
    fn matches_brute_force_on_random_boxes() {
        let mut rng = SplitMix64::new(1234);
        for case in 0..300 {
            // Below and above GRID_MIN, so both the plain and the grid loop are checked.
            let n = rng.below(if case % 5 == 0 { 1500 } else { 200 });
            let (boxes, scores, groups) = random_case(&mut rng, n);
            for thr in [0.0, 0.3, 0.5, 0.7, 1.0] {
                let zeros = vec![0; n];
                assert_eq!(
                    nms(&boxes, &scores, thr).unwrap(),
                    brute_force(&boxes, &scores, &zeros, thr),
                    "case {case} thr {thr}"
                );
                assert_eq!(
                    batched_nms(&boxes, &scores, &groups, thr).unwrap(),
                    brute_force(&boxes, &scores, &groups, thr),
                    "case {case} thr {thr}"
                );
            }
        }
    }

    #[test]
    fn non_finite_inputs_are_dropped_and_bad_arguments_rejected() {
        let b = BBox::new(0.0, 0.0, 10.0, 10.0);
        let nan = BBox::new(f32::NAN, 0.0, 10.0, 10.0);
        let keep = nms(&[nan, b, b, b], &[9.0, f32::NAN, 1.0, f32::INFINITY], 0.5).unwrap();
        assert_eq!(keep, vec![3]);
        assert_eq!(nms(&[], &[], 0.5).unwrap(), Vec::<usize>::new());
        // Zero-area boxes overlap nothing, so all are kept.
        let z = BBox::new(1.0, 1.0, 1.0, 1.0);
        assert_eq!(nms(&[z, z], &[1.0, 2.0], 0.0).unwrap(), vec![1, 0]);
        assert!(nms(&[b], &[], 0.5).is_err());
        assert!(nms(&[b], &[1.0], f32::NAN).is_err());
        assert!(nms(&[b], &[1.0], -0.1).is_err());
        assert!(batched_nms(&[b], &[1.0], &[], 0.5).is_err());
    }
}
