//! Typed boxes and the box operations shared by the arfpn crates.
//!
//! This crate has no tensor dependency: datasets, metrics and the detector's CPU-side
//! target assignment all speak [`BBox`].
//!
//! # Pixel convention
//! Boxes are **continuous corner coordinates** `(x1, y1, x2, y2)` in pixels of the image
//! they belong to: pixel `(i, j)` covers the square `[i, i+1) × [j, j+1)`, so a box that
//! covers exactly pixels `0..=9` horizontally is `x1 = 0, x2 = 10` and has width 10.
//! This is torchvision's and detectron2's convention (areas are `w * h`, no `+1`).
//! Pascal VOC files store 1-based inclusive pixel indices; `arfpn-voc` converts them in
//! exactly one place (`xmin - 1`, `xmax` unchanged).
//!
//! # Class labels and background
//! A [`ClassId`] always names a *foreground* class, `0..num_classes`, in datasets,
//! detections and metrics alike. Background is never a `ClassId`; a classifier that needs
//! a background column puts it **last**, at [`background_index`]`(num_classes)`
//! (detectron2's convention). Matchers label anchors with enums, not magic numbers.

mod bbox;
mod iou;

pub use bbox::BBox;
pub use iou::{iou_matrix, pairwise_iou};

/// Index of a foreground class, `0..num_classes`. See the crate docs for the background rule.
pub type ClassId = usize;

/// Column of the background class in a classifier with `num_classes` foreground classes:
/// always the last one.
///
/// ```
/// assert_eq!(arfpn_boxes::background_index(14), 14);
/// ```
pub fn background_index(num_classes: usize) -> usize {
    num_classes
}
