//! Scoring a detector with `arfpn-metrics` (VOC devkit all-point AP by default), and the
//! detections to score ([`detect_all`]).

use arfpn_boxes::{BBox, Detections, GroundTruth};
use arfpn_metrics::{evaluate_voc, Dataset, Detection, GtBox, Rect, VocOptions, VocResult};

use arfpn_model::{image_tensor, Detector, DetectorError, Result};

use crate::TrainData;

fn rect(b: &BBox) -> Rect {
    Rect::from_corners(b.x1 as f64, b.y1 as f64, b.x2 as f64, b.y2 as f64)
}

/// The metrics crate's [`Dataset`] for detections against ground truth, image by image.
/// `difficult[i][j]`, when given, marks object `j` of image `i` as difficult (ignored).
pub fn metrics_dataset(
    classes: &[String],
    detections: &[Detections],
    ground_truth: &[GroundTruth],
    difficult: Option<&[Vec<bool>]>,
) -> Result<Dataset> {
    if detections.len() != ground_truth.len() {
        return Err(DetectorError::input(
            "detections",
            format!(
                "{} detection lists for {} images of ground truth",
                detections.len(),
                ground_truth.len()
            ),
        ));
    }
    let mut data = Dataset::new(ground_truth.len(), classes.to_vec());
    for (i, (d, g)) in detections.iter().zip(ground_truth).enumerate() {
        for (j, (b, c)) in g.boxes.iter().zip(&g.classes).enumerate() {
            let mut gt = GtBox::new(i, c.index(), rect(b));
            if difficult.and_then(|d| d.get(i)?.get(j).copied()) == Some(true) {
                gt = gt.ignored();
            }
            data.gts.push(gt);
        }
        for ((b, &s), c) in d.boxes.iter().zip(&d.scores).zip(&d.classes) {
            data.dets
                .push(Detection::new(i, c.index(), rect(b), s as f64));
        }
    }
    Ok(data)
}

/// VOC AP (all-point, IoU 0.5, the devkit's rules) of `detections` against `ground_truth`.
pub fn voc_map(
    classes: &[String],
    detections: &[Detections],
    ground_truth: &[GroundTruth],
) -> Result<VocResult> {
    let data = metrics_dataset(classes, detections, ground_truth, None)?;
    evaluate_voc(&data, &VocOptions::default())
        .map_err(|e| DetectorError::input("detections", e.to_string()))
}

/// Runs the detector on every image of `data` (one at a time) and returns the detections
/// with the ground truth.
pub fn detect_all(
    detector: &Detector,
    data: &dyn TrainData,
) -> Result<(Vec<Detections>, Vec<GroundTruth>)> {
    let mut dets = Vec::with_capacity(data.len());
    let mut truth = Vec::with_capacity(data.len());
    for i in 0..data.len() {
        let (img, gt) = data.get(i)?;
        dets.push(detector.detect_image(&image_tensor(&img, detector.device())?)?);
        truth.push(gt);
    }
    Ok((dets, truth))
}
