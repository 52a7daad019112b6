//! The one place where Pascal VOC's pixel convention is converted.
//!
//! VOC XML stores **1-based, inclusive** pixel indices: a box covering the first ten pixel
//! columns is `xmin=1, xmax=10`. arfpn (like torchvision and detectron2) uses **continuous
//! corner coordinates** where pixel `i` covers `[i, i+1)`: the same box is `x1=0, x2=10`.
//! So reading subtracts one from the minima and keeps the maxima:
//!
//! ```text
//! x1 = xmin - 1    y1 = ymin - 1    x2 = xmax    y2 = ymax
//! ```
//!
//! and writing adds it back. A box with `xmin == xmax` is, by that convention, one pixel
//! wide; annotation tools only produce it from a click without a drag, so the loader treats
//! `xmax <= xmin` (or `ymax <= ymin`) as a box with zero or negative area
//! ([`crate::VocError::DegenerateBox`]); BCCD has two of them.
//! Every function in this crate that reads or writes VOC coordinates goes through here.

use arfpn_boxes::BBox;

/// VOC `(xmin, ymin, xmax, ymax)` (1-based inclusive) to a continuous [`BBox`].
///
/// ```
/// use arfpn_voc::coords::{voc_to_bbox, bbox_to_voc};
/// let b = voc_to_bbox([1.0, 1.0, 10.0, 20.0]);
/// assert_eq!((b.x1, b.y1, b.x2, b.y2), (0.0, 0.0, 10.0, 20.0));
/// assert_eq!(b.width(), 10.0);
/// assert_eq!(bbox_to_voc(&b), [1.0, 1.0, 10.0, 20.0]);
/// ```
pub fn voc_to_bbox(voc: [f64; 4]) -> BBox {
    BBox::new(
        (voc[0] - 1.0) as f32,
        (voc[1] - 1.0) as f32,
        voc[2] as f32,
        voc[3] as f32,
    )
}

/// A continuous [`BBox`] to VOC `(xmin, ymin, xmax, ymax)` (1-based inclusive). Exact
/// inverse of [`voc_to_bbox`] for every `f32` box (the `+1` is done in `f64`).
pub fn bbox_to_voc(b: &BBox) -> [f64; 4] {
    [
        b.x1 as f64 + 1.0,
        b.y1 as f64 + 1.0,
        b.x2 as f64,
        b.y2 as f64,
    ]
}

/// The VOC-level validity rule: the annotated extent is positive (`xmax > xmin`, `ymax > ymin`).
pub fn voc_extent_positive(voc: [f64; 4]) -> bool {
    voc[2] > voc[0] && voc[3] > voc[1]
}

/// Whether a VOC box lies inside a `width × height` image: `xmin >= 1`, `ymin >= 1`,
/// `xmax <= width`, `ymax <= height` (i.e. the continuous box is inside `[0,W]×[0,H]`).
pub fn voc_inside(voc: [f64; 4], width: u32, height: u32) -> bool {
    voc[0] >= 1.0 && voc[1] >= 1.0 && voc[2] <= width as f64 && voc[3] <= height as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact_for_fractional_boxes() {
        for b in [
            BBox::new(0.0, 0.0, 1.0, 1.0),
            BBox::new(12.345, 0.1, 99.99, 480.0),
            BBox::new(1e-3, 7.25, 3.5, 1e4),
        ] {
            assert_eq!(voc_to_bbox(bbox_to_voc(&b)), b);
        }
    }

    #[test]
    fn inside_and_extent_rules() {
        assert!(voc_inside([1.0, 1.0, 640.0, 480.0], 640, 480));
        assert!(!voc_inside([0.0, 1.0, 10.0, 10.0], 640, 480));
        assert!(!voc_inside([1.0, 1.0, 641.0, 10.0], 640, 480));
        assert!(voc_extent_positive([1.0, 1.0, 2.0, 2.0]));
        assert!(!voc_extent_positive([504.0, 337.0, 504.0, 337.0]));
        assert!(!voc_extent_positive([10.0, 1.0, 5.0, 2.0]));
    }
}
