//! IoU between sets of boxes.

use crate::BBox;

/// IoU of every box in `a` with every box in `b`, row-major `[a.len() × b.len()]`:
/// entry `i * b.len() + j` is `a[i].iou(&b[j])`.
///
/// ```
/// use arfpn_boxes::{iou_matrix, BBox};
/// let a = [BBox::new(0.0, 0.0, 2.0, 2.0)];
/// let b = [BBox::new(0.0, 0.0, 2.0, 2.0), BBox::new(1.0, 0.0, 3.0, 2.0)];
/// assert_eq!(iou_matrix(&a, &b), vec![1.0, 2.0 / 6.0]);
/// ```
pub fn iou_matrix(a: &[BBox], b: &[BBox]) -> Vec<f32> {
    let areas_b: Vec<f32> = b.iter().map(BBox::area).collect();
    let mut out = Vec::with_capacity(a.len() * b.len());
    for ba in a {
        let area_a = ba.area();
        for (bb, &area_b) in b.iter().zip(&areas_b) {
            let inter = ba.intersection(bb).area();
            out.push(if inter > 0.0 {
                inter / (area_a + area_b - inter)
            } else {
                0.0
            });
        }
    }
    out
}

/// IoU of `a[i]` with `b[i]` for each `i` (the shorter length wins).
pub fn pairwise_iou(a: &[BBox], b: &[BBox]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x.iou(y)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_matches_scalar_iou() {
        let a = [BBox::new(0.0, 0.0, 4.0, 4.0), BBox::new(2.0, 1.0, 5.0, 7.0)];
        let b = [
            BBox::new(1.0, 1.0, 3.0, 3.0),
            BBox::new(0.0, 0.0, 0.0, 0.0),
            BBox::new(2.0, 1.0, 5.0, 7.0),
        ];
        let m = iou_matrix(&a, &b);
        assert_eq!(m.len(), 6);
        for i in 0..2 {
            for j in 0..3 {
                assert_eq!(m[i * 3 + j], a[i].iou(&b[j]));
            }
        }
        assert_eq!(m[5], 1.0);
        assert_eq!(m[1], 0.0);
        assert_eq!(pairwise_iou(&a, &b[..2]), vec![a[0].iou(&b[0]), 0.0]);
    }
}
