//! Detection at a rescaled size: an image whose cells are larger or smaller than the training
//! data's is resized by the factor [`DataInfo::rescale_decision`] gives (or one the user
//! states) before detection, and the boxes are mapped back.

use arfpn_boxes::{BBox, Detections, ImageSize};
use arfpn_model::{Detector, DetectorError, Result};
use arfpn_voc::RgbImage;

use crate::{detect_field, FieldTiling};

#[cfg(doc)]
use arfpn_model::DataInfo;

/// Detects in `image` after resizing it by `scale` (e.g. training cell size / this image's
/// cell size), boxes mapped back to the image's own pixels. Images larger than one tile
/// (after resizing) are tiled with `tiles`.
pub fn detect_at_scale(
    detector: &Detector,
    image: &RgbImage,
    scale: f32,
    tiles: &FieldTiling,
) -> Result<Detections> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(DetectorError::input(
            "scale",
            format!("{scale} must be finite and > 0"),
        ));
    }
    let (w, h) = (image.width(), image.height());
    let (sw, sh) = (
        ((w as f32 * scale).round() as u32).max(1),
        ((h as f32 * scale).round() as u32).max(1),
    );
    let resized;
    let input = if (sw, sh) == (w, h) {
        image
    } else {
        resized = image::imageops::resize(image, sw, sh, image::imageops::FilterType::Triangle);
        &resized
    };
    let mut dets = detect_field(detector, input, tiles)?;
    let (fx, fy) = (w as f32 / sw as f32, h as f32 / sh as f32);
    let size = ImageSize::new(h as usize, w as usize);
    for b in &mut dets.boxes {
        *b = BBox::new(b.x1 * fx, b.y1 * fy, b.x2 * fx, b.y2 * fy).clip(size);
    }
    Ok(dets)
}
