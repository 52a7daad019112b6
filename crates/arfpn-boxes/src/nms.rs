//! Non-maximum suppression: single-class ([`nms`]) and per class ([`batched_nms`]).
//!
//! Semantics are torchvision's: boxes are visited in decreasing score order; a box is kept
//! unless a box kept before it overlaps it with IoU **strictly greater** than the
//! threshold. The result lists kept indices in decreasing score order (equal scores: lower
//! index first). Boxes with a non-finite coordinate or a NaN score are never kept.
//!
//! Implementation: the candidates are sorted once; their coordinates are copied into
//! score-ordered arrays; each kept box then scans the later, still-alive boxes with an IoU
//! test that first rejects on the x overlap and then on the y overlap before dividing.

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

fn check(boxes: &[BBox], scores: &[f32], iou_threshold: f32) -> Result<(), BoxError> {
    BoxError::check_len("boxes", boxes.len(), "scores", scores.len())?;
    if iou_threshold.is_nan() {
        return Err(BoxError::invalid("iou_threshold", "is NaN"));
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

    /// Greedy NMS over `ranks` (ascending = decreasing score); returns the kept ranks.
    /// The IoU is computed exactly as [`BBox::iou`] does, so results are bit-for-bit those
    /// of the textbook loop.
    fn greedy(&self, ranks: &[usize], thr: f32) -> Vec<usize> {
        let n = ranks.len();
        let mut alive = vec![true; n];
        let mut keep = Vec::new();
        for a in 0..n {
            if !alive[a] {
                continue;
            }
            let i = ranks[a];
            keep.push(i);
            let (ix1, iy1, ix2, iy2, ia) =
                (self.x1[i], self.y1[i], self.x2[i], self.y2[i], self.area[i]);
            for b in a + 1..n {
                if !alive[b] {
                    continue;
                }
                let j = ranks[b];
                let w = (ix2.min(self.x2[j]) - ix1.max(self.x1[j])).max(0.0);
                if w <= 0.0 {
                    continue;
                }
                let h = (iy2.min(self.y2[j]) - iy1.max(self.y1[j])).max(0.0);
                let inter = w * h;
                if inter <= 0.0 {
                    continue;
                }
                if inter / (ia + self.area[j] - inter) > thr {
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
                BBox::new(x, y, x + w, y + h)
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
            let n = rng.below(if case % 10 == 0 { 600 } else { 80 });
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
        assert!(batched_nms(&[b], &[1.0], &[], 0.5).is_err());
    }
}
