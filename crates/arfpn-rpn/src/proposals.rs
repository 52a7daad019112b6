//! Turning objectness and deltas into proposals (torchvision's `filter_proposals`).

use arfpn_boxes::{batched_nms, top_k, BBox, BoxCoder, Deltas, ImageSize};
use serde::{Deserialize, Serialize};

use crate::{Result, RpnError};

/// How many proposals to keep and how to filter them (one phase: train or test).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProposalParams {
    /// Highest-objectness anchors kept **per level** before NMS.
    pub pre_nms_top_n: usize,
    /// Proposals kept **per image** after NMS.
    pub post_nms_top_n: usize,
    /// NMS IoU threshold (per level).
    pub nms_thresh: f32,
    /// Boxes narrower or shorter than this (pixels) are dropped.
    pub min_size: f32,
    /// Proposals with objectness probability below this are dropped.
    pub score_thresh: f32,
}

impl ProposalParams {
    /// Checks the ranges; `phase` names the field in errors.
    pub fn validate(&self, phase: &'static str) -> Result<()> {
        if self.pre_nms_top_n == 0 || self.post_nms_top_n == 0 {
            return Err(RpnError::config(
                phase,
                "pre_nms_top_n and post_nms_top_n must be > 0",
            ));
        }
        if !(0.0..=1.0).contains(&self.nms_thresh) {
            return Err(RpnError::config(
                phase,
                format!("nms_thresh must be in [0, 1], got {}", self.nms_thresh),
            ));
        }
        if !(self.min_size >= 0.0 && self.min_size.is_finite()) {
            return Err(RpnError::config(
                phase,
                format!("min_size must be finite and >= 0, got {}", self.min_size),
            ));
        }
        if !(0.0..=1.0).contains(&self.score_thresh) {
            return Err(RpnError::config(
                phase,
                format!("score_thresh must be in [0, 1], got {}", self.score_thresh),
            ));
        }
        Ok(())
    }
}

/// The proposals of one image, in decreasing score order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Proposals {
    /// Boxes clipped to the image, finite, at least `min_size` wide and high.
    pub boxes: Vec<BBox>,
    /// Objectness probabilities (sigmoid of the logits).
    pub scores: Vec<f32>,
    /// Pyramid level each proposal came from.
    pub levels: Vec<usize>,
}

impl Proposals {
    /// Number of proposals.
    pub fn len(&self) -> usize {
        self.boxes.len()
    }

    /// No proposals.
    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }
}

/// One level of one image: anchors with their objectness logits and deltas (parallel).
#[derive(Clone, Copy, Debug)]
pub struct LevelPredictions<'a> {
    /// The level's anchors, `(x1, y1, x2, y2)` in image pixels.
    pub anchors: &'a [BBox],
    /// Objectness logit of each anchor (before the sigmoid).
    pub objectness: &'a [f32],
    /// Predicted box deltas of each anchor, decoded with the `coder` given to
    /// [`select_proposals`].
    pub deltas: &'a [Deltas],
}

/// Proposals for one image of `size` pixels.
///
/// Per level: the `pre_nms_top_n` anchors with the highest logits are decoded, scored with
/// a sigmoid, clipped to the image; boxes or scores that are not finite (NaN deltas or
/// logits) are dropped, then boxes smaller than `min_size` and scores below `score_thresh`.
/// NMS runs per level, and the best `post_nms_top_n` of all levels are kept.
pub fn select_proposals(
    levels: &[LevelPredictions<'_>],
    size: ImageSize,
    coder: &BoxCoder,
    params: &ProposalParams,
) -> Result<Proposals> {
    let mut boxes = Vec::new();
    let mut scores = Vec::new();
    let mut level_of = Vec::new();
    for (l, lp) in levels.iter().enumerate() {
        let n = lp.anchors.len();
        if lp.objectness.len() != n || lp.deltas.len() != n {
            return Err(RpnError::input(
                "predictions",
                format!(
                    "level {l}: {n} anchors, {} objectness values, {} deltas",
                    lp.objectness.len(),
                    lp.deltas.len()
                ),
            ));
        }
        for i in top_k(lp.objectness, params.pre_nms_top_n) {
            let score = sigmoid(lp.objectness[i]);
            let b = coder.decode_one(&lp.anchors[i], lp.deltas[i]).clip(size);
            if !(b.is_finite() && score.is_finite())
                || b.width() < params.min_size
                || b.height() < params.min_size
                || score < params.score_thresh
            {
                continue;
            }
            boxes.push(b);
            scores.push(score);
            level_of.push(l);
        }
    }
    let mut keep = batched_nms(&boxes, &scores, &level_of, params.nms_thresh)?;
    keep.truncate(params.post_nms_top_n);
    Ok(Proposals {
        boxes: keep.iter().map(|&i| boxes[i]).collect(),
        scores: keep.iter().map(|&i| scores[i]).collect(),
        levels: keep.iter().map(|&i| level_of[i]).collect(),
    })
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
