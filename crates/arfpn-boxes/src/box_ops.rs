//! Slice-level box helpers: clipping to the image and removing small boxes
//! (torchvision's `clip_boxes_to_image` and `remove_small_boxes`).

use crate::{BBox, ImageSize};

/// Clips every box in place to the image (`[0, width] × [0, height]`). NaN coordinates stay NaN, so a later
/// [`BBox::is_finite`] / [`remove_small_boxes`] still sees them.
///
/// ```
/// use arfpn_boxes::{clip_boxes, BBox, ImageSize};
/// let mut b = [BBox::new(-4.0, 2.0, 30.0, 50.0)];
/// clip_boxes(&mut b, ImageSize::new(40, 20));
/// assert_eq!(b[0], BBox::new(0.0, 2.0, 20.0, 40.0));
/// ```
pub fn clip_boxes(boxes: &mut [BBox], size: ImageSize) {
    let (width, height) = (size.width_f32(), size.height_f32());
    // `f32::clamp` keeps NaN (it only compares), unlike `max`/`min`.
    for b in boxes {
        b.x1 = b.x1.clamp(0.0, width);
        b.y1 = b.y1.clamp(0.0, height);
        b.x2 = b.x2.clamp(0.0, width);
        b.y2 = b.y2.clamp(0.0, height);
    }
}

/// Indices (ascending) of the boxes whose width and height are both `>= min_size`.
/// Boxes with a NaN coordinate are never kept.
///
/// ```
/// use arfpn_boxes::{remove_small_boxes, BBox};
/// let b = [
///     BBox::new(0.0, 0.0, 5.0, 5.0),
///     BBox::new(0.0, 0.0, 0.5, 9.0),
///     BBox::new(0.0, 0.0, f32::NAN, 9.0),
/// ];
/// assert_eq!(remove_small_boxes(&b, 1.0), vec![0]);
/// ```
pub fn remove_small_boxes(boxes: &[BBox], min_size: f32) -> Vec<usize> {
    boxes
        .iter()
        .enumerate()
        .filter(|(_, b)| b.width() >= min_size && b.height() >= min_size)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_nan_and_handles_outside_boxes() {
        let mut b = [
            BBox::new(f32::NAN, 0.0, 5.0, 5.0),
            BBox::new(50.0, 50.0, 60.0, 60.0),
        ];
        clip_boxes(&mut b, ImageSize::new(10, 20));
        assert!(b[0].x1.is_nan());
        assert_eq!(b[1], BBox::new(20.0, 10.0, 20.0, 10.0));
        assert_eq!(remove_small_boxes(&b, 1e-3), Vec::<usize>::new());
        // Zero-area boxes survive a zero threshold (as torchvision's `>=`).
        assert_eq!(remove_small_boxes(&b[1..], 0.0), vec![0]);
    }
}
