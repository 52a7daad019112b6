//! [`ImageSize`]: the one way the workspace names an image's height and width.

use serde::{Deserialize, Serialize};

/// Height and width of an image in pixels. Named fields, so that `(h, w)` and `(w, h)`
/// cannot be confused between crates.
///
/// ```
/// use arfpn_boxes::{BBox, ImageSize};
/// let s = ImageSize::new(375, 500);
/// assert_eq!((s.height, s.width), (375, 500));
/// assert_eq!(s.padded_to(32), ImageSize::new(384, 512));
/// assert_eq!(BBox::new(-4.0, 2.0, 600.0, 50.0).clip(s), BBox::new(0.0, 2.0, 500.0, 50.0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageSize {
    /// Number of pixel rows (the extent along `y`).
    pub height: usize,
    /// Number of pixel columns (the extent along `x`).
    pub width: usize,
}

impl ImageSize {
    /// `height × width` pixels.
    pub const fn new(height: usize, width: usize) -> Self {
        Self { height, width }
    }

    /// Number of pixels.
    pub const fn area(self) -> usize {
        self.height * self.width
    }

    /// No pixels.
    pub const fn is_empty(self) -> bool {
        self.height == 0 || self.width == 0
    }

    /// Both sides rounded up to a multiple of `multiple` (`multiple == 0` is treated as 1).
    pub fn padded_to(self, multiple: usize) -> Self {
        let m = multiple.max(1);
        Self::new(self.height.div_ceil(m) * m, self.width.div_ceil(m) * m)
    }

    /// `width` as `f32` (box coordinates).
    pub fn width_f32(self) -> f32 {
        self.width as f32
    }

    /// `height` as `f32` (box coordinates).
    pub fn height_f32(self) -> f32 {
        self.height as f32
    }
}

impl std::fmt::Display for ImageSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{} (w x h)", self.width, self.height)
    }
}
