//! Inference post-processing: softmax, per-class decoding, clipping, score threshold,
//! small-box removal, per-class NMS and a per-image cap (torchvision's
//! `postprocess_detections`).

use arfpn_boxes::{batched_nms, BBox, BoxCoder, ClassId, Detections, ImageSize};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::{HeadError, Result};

/// Inference settings of the box head.
///
/// ```
/// let p = arfpn_head::PostProcessConfig::default();
/// assert_eq!((p.score_thresh, p.nms_thresh, p.detections_per_image), (0.05, 0.5, 1000));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostProcessConfig {
    /// Keep class scores strictly above this (0.05).
    pub score_thresh: f32,
    /// Per-class NMS IoU (0.5).
    pub nms_thresh: f32,
    /// At most this many detections per image, best first. 1000 by default: a smear field
    /// holds 200+ cells, and torchvision's 100 silently truncates them.
    pub detections_per_image: usize,
    /// Drop boxes with a side below this many pixels (1e-2).
    pub min_size: f32,
}

impl Default for PostProcessConfig {
    fn default() -> Self {
        Self {
            score_thresh: 0.05,
            nms_thresh: 0.5,
            detections_per_image: 1000,
            min_size: 1e-2,
        }
    }
}

impl PostProcessConfig {
    /// Checks that `score_thresh` and `nms_thresh` lie in `[0, 1]` and `min_size` is finite
    /// and ≥ 0; the error names the field (`postprocess.*`).
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.score_thresh) {
            return Err(HeadError::config(
                "postprocess.score_thresh",
                "must be in [0, 1]",
            ));
        }
        if !(0.0..=1.0).contains(&self.nms_thresh) {
            return Err(HeadError::config(
                "postprocess.nms_thresh",
                "must be in [0, 1]",
            ));
        }
        if !(self.min_size >= 0.0 && self.min_size.is_finite()) {
            return Err(HeadError::config(
                "postprocess.min_size",
                "must be finite and >= 0",
            ));
        }
        Ok(())
    }
}

/// Detections per image from the predictor's outputs for `proposals` (image by image, in
/// order). Logits `[R, K + 1]` (background last), deltas `[R, 4K]`.
pub fn postprocess(
    class_logits: &Tensor,
    box_deltas: &Tensor,
    proposals: &[Vec<BBox>],
    sizes: &[ImageSize],
    coder: &BoxCoder,
    config: &PostProcessConfig,
) -> Result<Vec<Detections>> {
    let (r, k1) = class_logits.dims2()?;
    let k = k1 - 1;
    let total: usize = proposals.iter().map(Vec::len).sum();
    if total != r || proposals.len() != sizes.len() || box_deltas.dims() != [r, 4 * k] {
        return Err(HeadError::input(
            "predictions",
            format!(
                "{r} rows of logits, deltas {:?}, {total} proposals in {} images, {} sizes",
                box_deltas.dims(),
                proposals.len(),
                sizes.len()
            ),
        ));
    }
    let logits: Vec<f32> = class_logits
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let deltas: Vec<f32> = box_deltas.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let mut out = Vec::with_capacity(proposals.len());
    let mut row = 0;
    for (props, &size) in proposals.iter().zip(sizes) {
        let mut boxes = Vec::new();
        let mut scores = Vec::new();
        let mut classes = Vec::new();
        for p in props {
            let l = &logits[row * k1..(row + 1) * k1];
            let probs = softmax(l);
            for c in 0..k {
                let s = probs[c];
                if s.is_nan() || s <= config.score_thresh {
                    continue;
                }
                let d = &deltas[row * 4 * k + 4 * c..row * 4 * k + 4 * c + 4];
                let b = coder.decode_one(p, [d[0], d[1], d[2], d[3]]).clip(size);
                if !b.is_finite() || b.width() < config.min_size || b.height() < config.min_size {
                    continue;
                }
                boxes.push(b);
                scores.push(s);
                classes.push(c);
            }
            row += 1;
        }
        let mut keep = batched_nms(&boxes, &scores, &classes, config.nms_thresh)?;
        // Best first; equal scores keep the lower index first.
        keep.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        keep.truncate(config.detections_per_image);
        out.push(Detections {
            boxes: keep.iter().map(|&i| boxes[i]).collect(),
            scores: keep.iter().map(|&i| scores[i]).collect(),
            classes: keep.iter().map(|&i| ClassId::new(classes[i])).collect(),
        });
    }
    Ok(out)
}

/// Stable softmax of one row (f32; the max is subtracted).
fn softmax(l: &[f32]) -> Vec<f32> {
    let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = l.iter().map(|v| (v - m).exp()).collect();
    let z: f32 = e.iter().sum();
    e.iter().map(|v| v / z).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn hand_computed_scores_boxes_nms_and_cap() {
        let dev = Device::Cpu;
        // Two classes. RoI 0: class 1 certain; RoI 1: same box, class 1 less sure (NMS drops
        // it); RoI 2: background.
        let big = 10.0f32;
        let logits = Tensor::new(
            &[[0.0f32, big, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, big]],
            &dev,
        )
        .unwrap();
        let mut d = vec![0f32; 3 * 8];
        d[4] = 0.1 * 10.0; // RoI 0, class 1: dx = 0.1 (weights 10) -> shift by 0.1 * width
        let deltas = Tensor::from_vec(d, (3, 8), &dev).unwrap();
        let p = BBox::new(10.0, 10.0, 30.0, 20.0);
        let coder = BoxCoder::new([10.0, 10.0, 5.0, 5.0]).unwrap();
        let cfg = PostProcessConfig::default();
        let det = postprocess(
            &logits,
            &deltas,
            &[vec![p, p, p]],
            &[ImageSize::new(100, 100)],
            &coder,
            &cfg,
        )
        .unwrap();
        let d = &det[0];
        let s0 = big.exp() / (2.0 + big.exp());
        assert_eq!(d.classes[0], ClassId::new(1));
        assert!((d.scores[0] - s0).abs() < 1e-6);
        assert!((d.boxes[0].x1 - 12.0).abs() < 1e-4 && (d.boxes[0].x2 - 32.0).abs() < 1e-4);
        // RoI 1's class-1 box overlaps RoI 0's (IoU 0.82): suppressed. Its class-0 score
        // 1/(2+e^2) = 0.106 > 0.05 survives (other class). RoI 2: all below threshold.
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d.classes[1], ClassId::new(0));
        // Clipping to the image and the cap.
        let det = postprocess(
            &logits,
            &deltas,
            &[vec![p, p, p]],
            &[ImageSize::new(15, 25)],
            &coder,
            &PostProcessConfig {
                detections_per_image: 1,
                ..cfg.clone()
            },
        )
        .unwrap();
        assert_eq!(det[0].len(), 1);
        assert_eq!(det[0].boxes[0], BBox::new(12.0, 10.0, 25.0, 15.0));
        assert!(postprocess(
            &logits,
            &deltas,
            &[vec![p]],
            &[ImageSize::new(9, 9)],
            &coder,
            &cfg
        )
        .is_err());
    }

    #[test]
    fn four_hundred_cells_keep_four_hundred_detections() {
        let dev = Device::Cpu;
        let n = 400;
        let props: Vec<BBox> = (0..n)
            .map(|i| {
                let (x, y) = ((i % 20) as f32 * 25.0, (i / 20) as f32 * 25.0);
                BBox::new(x, y, x + 20.0, y + 20.0)
            })
            .collect();
        let mut l = Vec::new();
        for _ in 0..n {
            l.extend([5.0f32, 0.0]);
        }
        let logits = Tensor::from_vec(l, (n, 2), &dev).unwrap();
        let deltas = Tensor::zeros((n, 4), DType::F32, &dev).unwrap();
        let det = postprocess(
            &logits,
            &deltas,
            &[props],
            &[ImageSize::new(500, 500)],
            &BoxCoder::new([10.0, 10.0, 5.0, 5.0]).unwrap(),
            &PostProcessConfig::default(),
        )
        .unwrap();
        assert_eq!(det[0].len(), 400);
    }
}
