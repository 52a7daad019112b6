//! The [`BBox`] type: an axis-aligned box in continuous corner coordinates.

use serde::{Deserialize, Serialize};

use crate::ImageSize;

/// An axis-aligned box `(x1, y1, x2, y2)` in continuous pixel coordinates
/// (see the crate docs for the convention). A box with `x2 <= x1` or `y2 <= y1` is
/// *empty*: it has zero area and zero IoU with everything.
///
/// ```
/// use arfpn_boxes::BBox;
/// let b = BBox::from_xywh(10.0, 20.0, 4.0, 6.0);
/// assert_eq!(b, BBox::new(10.0, 20.0, 14.0, 26.0));
/// assert_eq!(b.area(), 24.0);
/// assert_eq!(b.center(), (12.0, 23.0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    /// Left edge in pixels (the left side of the leftmost covered pixel).
    pub x1: f32,
    /// Top edge in pixels (the top side of the topmost covered pixel).
    pub y1: f32,
    /// Right edge in pixels, exclusive: one past the last covered pixel column.
    pub x2: f32,
    /// Bottom edge in pixels, exclusive: one past the last covered pixel row.
    pub y2: f32,
}

impl BBox {
    /// A box from its corners.
    pub const fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }

    /// A box from its top-left corner, width and height (COCO's `[x, y, w, h]`).
    pub fn from_xywh(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self::new(x, y, x + w, y + h)
    }

    /// A box from its centre, width and height.
    pub fn from_cxcywh(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        Self::new(cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h)
    }

    /// `[x1, y1, x2, y2]`.
    pub fn to_array(self) -> [f32; 4] {
        [self.x1, self.y1, self.x2, self.y2]
    }

    /// `[x, y, w, h]` (COCO).
    pub fn to_xywh(self) -> [f32; 4] {
        [self.x1, self.y1, self.width(), self.height()]
    }

    /// `x2 - x1` (may be negative for an invalid box).
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }

    /// `y2 - y1` (may be negative for an invalid box).
    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }

    /// `(cx, cy)`.
    pub fn center(&self) -> (f32, f32) {
        (0.5 * (self.x1 + self.x2), 0.5 * (self.y1 + self.y2))
    }

    /// Area, `0` for an empty or inverted box.
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    /// All four coordinates are finite.
    pub fn is_finite(&self) -> bool {
        self.x1.is_finite() && self.y1.is_finite() && self.x2.is_finite() && self.y2.is_finite()
    }

    /// Finite with strictly positive width and height.
    pub fn is_valid(&self) -> bool {
        self.is_finite() && self.x2 > self.x1 && self.y2 > self.y1
    }

    /// Intersection with `other` (possibly empty).
    pub fn intersection(&self, other: &BBox) -> BBox {
        BBox::new(
            self.x1.max(other.x1),
            self.y1.max(other.y1),
            self.x2.min(other.x2),
            self.y2.min(other.y2),
        )
    }

    /// Intersection over union; `0` when the union is empty.
    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = self.intersection(other).area();
        if inter <= 0.0 {
            return 0.0;
        }
        inter / (self.area() + other.area() - inter)
    }

    /// The box clipped to the image (`[0, width] × [0, height]`).
    pub fn clip(&self, size: ImageSize) -> BBox {
        let (width, height) = (size.width_f32(), size.height_f32());
        BBox::new(
            self.x1.clamp(0.0, width),
            self.y1.clamp(0.0, height),
            self.x2.clamp(0.0, width),
            self.y2.clamp(0.0, height),
        )
    }

    /// The box scaled by `sx` horizontally and `sy` vertically (image resize).
    pub fn scale(&self, sx: f32, sy: f32) -> BBox {
        BBox::new(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)
    }

    /// The box translated by `(dx, dy)`.
    pub fn translate(&self, dx: f32, dy: f32) -> BBox {
        BBox::new(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)
    }

    /// The box mirrored left-right in an image `width` pixels wide.
    pub fn flip_horizontal(&self, width: f32) -> BBox {
        BBox::new(width - self.x2, self.y1, width - self.x1, self.y2)
    }
}

impl From<[f32; 4]> for BBox {
    fn from(a: [f32; 4]) -> Self {
        BBox::new(a[0], a[1], a[2], a[3])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_geometry() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(5.0, 5.0, 15.0, 15.0);
        assert_eq!(a.intersection(&b), BBox::new(5.0, 5.0, 10.0, 10.0));
        assert!((a.iou(&b) - 25.0 / 175.0).abs() < 1e-7);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        assert_eq!(BBox::new(3.0, 3.0, 1.0, 5.0).area(), 0.0);
        assert_eq!(a.flip_horizontal(100.0), BBox::new(90.0, 0.0, 100.0, 10.0));
        assert_eq!(
            BBox::new(-5.0, 2.0, 120.0, 40.0).clip(ImageSize::new(30, 100)),
            BBox::new(0.0, 2.0, 100.0, 30.0)
        );
        assert_eq!(
            BBox::from_cxcywh(5.0, 5.0, 10.0, 4.0),
            BBox::new(0.0, 3.0, 10.0, 7.0)
        );
        assert_eq!(a.scale(2.0, 0.5), BBox::new(0.0, 0.0, 20.0, 5.0));
    }

    #[test]
    fn validity() {
        assert!(BBox::new(0.0, 0.0, 1.0, 1.0).is_valid());
        assert!(!BBox::new(0.0, 0.0, 0.0, 1.0).is_valid());
        assert!(!BBox::new(f32::NAN, 0.0, 1.0, 1.0).is_valid());
        assert!(!BBox::new(0.0, 0.0, f32::INFINITY, 1.0).is_finite());
    }
}
