//! [`Rect`]: the box type the metrics work on, in `f64`.

use arfpn_boxes::BBox;
use serde::{Deserialize, Serialize};

/// An axis-aligned box in `f64`, remembering both its corners and its width/height
/// **as given**.
///
/// The two reference tools disagree on which numbers are primary: the VOC devkit reads
/// corners `(x1, y1, x2, y2)`, pycocotools reads COCO `[x, y, w, h]` and computes areas as
/// `w * h`. In floating point `(x + w) - x` is not always `w`, so to reproduce each tool
/// bit for bit a `Rect` keeps the numbers it was built from: [`Rect::from_corners`] stores
/// `w = x2 - x1`, [`Rect::from_xywh`] stores `x2 = x + w` (exactly what both tools do).
///
/// ```
/// use arfpn_metrics::Rect;
/// let r = Rect::from_xywh(10.0, 20.0, 4.0, 6.0);
/// assert_eq!(r.corners(), [10.0, 20.0, 14.0, 26.0]);
/// assert_eq!(r.area(), 24.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rect {
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
    w: f64,
    h: f64,
}

impl Rect {
    /// A box from its corners (VOC devkit form); width is `x2 - x1`.
    pub fn from_corners(x1: f64, y1: f64, x2: f64, y2: f64) -> Self {
        Self {
            x1,
            y1,
            x2,
            y2,
            w: x2 - x1,
            h: y2 - y1,
        }
    }

    /// A box from COCO's `[x, y, w, h]`; the far corner is `x + w`, `y + h`.
    pub fn from_xywh(x: f64, y: f64, w: f64, h: f64) -> Self {
        Self {
            x1: x,
            y1: y,
            x2: x + w,
            y2: y + h,
            w,
            h,
        }
    }

    /// `[x1, y1, x2, y2]`.
    pub fn corners(&self) -> [f64; 4] {
        [self.x1, self.y1, self.x2, self.y2]
    }

    /// `[x, y, w, h]`.
    pub fn xywh(&self) -> [f64; 4] {
        [self.x1, self.y1, self.w, self.h]
    }

    /// Width as stored (see the type docs).
    pub fn width(&self) -> f64 {
        self.w
    }

    /// Height as stored (see the type docs).
    pub fn height(&self) -> f64 {
        self.h
    }

    /// `w * h` (continuous convention, as pycocotools' `loadRes`).
    pub fn area(&self) -> f64 {
        self.w * self.h
    }

    /// Whether all six numbers are finite and the width and height are not negative.
    pub(crate) fn check(&self) -> Result<(), String> {
        let v = [self.x1, self.y1, self.x2, self.y2, self.w, self.h];
        if v.iter().any(|c| !c.is_finite()) {
            return Err(format!(
                "box {:?} has a non-finite coordinate",
                self.corners()
            ));
        }
        if self.w < 0.0 || self.h < 0.0 {
            return Err(format!(
                "box {:?} has a negative width or height",
                self.corners()
            ));
        }
        Ok(())
    }
}

impl From<BBox> for Rect {
    /// Widens the corners to `f64` (exactly) and keeps them as the primary numbers.
    fn from(b: BBox) -> Self {
        Rect::from_corners(b.x1 as f64, b.y1 as f64, b.x2 as f64, b.y2 as f64)
    }
}
