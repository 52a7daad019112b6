//! Detections out: COCO results JSON and VOC XML (pseudo-labels), with class names.

use arfpn_boxes::{ClassId, Detections, ImageSize};
use arfpn_voc::{VocAnnotation, VocObject};
use serde::{Deserialize, Serialize};

use arfpn_model::{DetectorError, Result};

/// One record of a COCO results file (`loadRes` format): `bbox` is `[x, y, width, height]`
/// in pixels, `category_id` is the class index + 1 ([`ClassId::coco_id`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoDetection {
    /// The image's id in the COCO ground truth, as given to [`coco_results`].
    pub image_id: u64,
    /// COCO category id: the detection's [`ClassId`] index + 1 (0 is background).
    pub category_id: i64,
    /// `[x, y, width, height]` in the image's pixels, `(x, y)` the top-left corner.
    pub bbox: [f32; 4],
    /// The detection's score: the classifier's probability for its class, in `[0, 1]`.
    pub score: f32,
}

/// The detections of one image as COCO results records.
///
/// ```
/// use arfpn_boxes::{BBox, ClassId, Detections};
/// let d = Detections::new(vec![BBox::new(1.0, 2.0, 11.0, 7.0)], vec![0.9], vec![ClassId::new(0)]).unwrap();
/// let r = arfpn_lab::coco_results(&d, 42);
/// assert_eq!((r[0].image_id, r[0].category_id, r[0].bbox), (42, 1, [1.0, 2.0, 10.0, 5.0]));
/// ```
pub fn coco_results(detections: &Detections, image_id: u64) -> Vec<CocoDetection> {
    detections
        .boxes
        .iter()
        .zip(&detections.scores)
        .zip(&detections.classes)
        .map(|((b, &score), c)| CocoDetection {
            image_id,
            category_id: c.coco_id(),
            bbox: [b.x1, b.y1, b.width(), b.height()],
            score,
        })
        .collect()
}

/// The detections of one image as a VOC annotation (e.g. pseudo-labels to correct by hand),
/// keeping those scoring at least `min_score`. `classes` are the detector's class names.
pub fn voc_annotation(
    detections: &Detections,
    classes: &[String],
    filename: &str,
    size: ImageSize,
    min_score: f32,
) -> Result<VocAnnotation> {
    let name = |c: ClassId| {
        classes.get(c.index()).cloned().ok_or_else(|| {
            DetectorError::input(
                "detections",
                format!("class {c} but only {} class names", classes.len()),
            )
        })
    };
    let mut objects = Vec::new();
    for ((b, &s), &c) in detections
        .boxes
        .iter()
        .zip(&detections.scores)
        .zip(&detections.classes)
    {
        if s >= min_score {
            objects.push(VocObject {
                name: name(c)?,
                pose: "Unspecified".into(),
                truncated: false,
                difficult: false,
                bbox: *b,
            });
        }
    }
    Ok(VocAnnotation {
        folder: "JPEGImages".into(),
        filename: filename.into(),
        width: size.width as u32,
        height: size.height as u32,
        depth: 3,
        objects,
    })
}

/// Detections per class name: `(name, count)` in class order (the differential count).
pub fn class_counts(detections: &Detections, classes: &[String]) -> Vec<(String, usize)> {
    let counts = detections.counts(classes.len());
    classes.iter().cloned().zip(counts).collect()
}
