//! Pictures of detections: boxes outlined in a per-class colour.

use arfpn_boxes::Detections;
use arfpn_voc::RgbImage;

/// 14 colours that stay apart on a pale smear background: Okabe–Ito's eight (without
/// yellow, hard to see on white) followed by six darker, distinct hues.
pub const CLASS_COLOURS: [[u8; 3]; 14] = [
    [230, 159, 0],
    [86, 180, 233],
    [0, 158, 115],
    [0, 114, 178],
    [213, 94, 0],
    [204, 121, 167],
    [0, 0, 0],
    [117, 112, 179],
    [166, 86, 40],
    [27, 158, 119],
    [231, 41, 138],
    [102, 102, 102],
    [31, 120, 180],
    [152, 78, 163],
];

/// The colour of class `index` (cycling after 14).
pub fn class_colour(index: usize) -> [u8; 3] {
    CLASS_COLOURS[index % CLASS_COLOURS.len()]
}

/// A copy of `image` with every detection scoring at least `min_score` outlined
/// (`thickness` pixels, inside the box) in its class colour.
pub fn draw_detections(
    image: &RgbImage,
    detections: &Detections,
    min_score: f32,
    thickness: u32,
) -> RgbImage {
    let mut out = image.clone();
    let (w, h) = (out.width() as i64, out.height() as i64);
    for ((b, &s), c) in detections
        .boxes
        .iter()
        .zip(&detections.scores)
        .zip(&detections.classes)
    {
        if s < min_score || !b.is_finite() {
            continue;
        }
        let colour = image::Rgb(class_colour(c.index()));
        let x1 = (b.x1.floor() as i64).clamp(0, w - 1);
        let y1 = (b.y1.floor() as i64).clamp(0, h - 1);
        let x2 = ((b.x2.ceil() as i64) - 1).clamp(0, w - 1);
        let y2 = ((b.y2.ceil() as i64) - 1).clamp(0, h - 1);
        for t in 0..thickness as i64 {
            for x in x1..=x2 {
                for y in [y1 + t, y2 - t] {
                    if (y1..=y2).contains(&y) {
                        out.put_pixel(x as u32, y as u32, colour);
                    }
                }
            }
            for y in y1..=y2 {
                for x in [x1 + t, x2 - t] {
                    if (x1..=x2).contains(&x) {
                        out.put_pixel(x as u32, y as u32, colour);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arfpn_boxes::{BBox, ClassId};

    #[test]
    fn outlines_the_box_and_nothing_else() {
        let img = RgbImage::from_pixel(20, 20, image::Rgb([255, 255, 255]));
        let d = Detections::new(
            vec![
                BBox::new(5.0, 5.0, 10.0, 12.0),
                BBox::new(0.0, 0.0, 3.0, 3.0),
            ],
            vec![0.9, 0.1],
            vec![ClassId::new(1), ClassId::new(0)],
        )
        .expect("parallel lists");
        let out = draw_detections(&img, &d, 0.5, 1);
        let c = class_colour(1);
        assert_eq!(out.get_pixel(5, 5).0, c);
        assert_eq!(out.get_pixel(9, 11).0, c);
        assert_eq!(out.get_pixel(7, 8).0, [255, 255, 255], "inside stays");
        assert_eq!(out.get_pixel(10, 12).0, [255, 255, 255], "outside stays");
        assert_eq!(out.get_pixel(1, 0).0, [255, 255, 255], "below min_score");
    }
}
