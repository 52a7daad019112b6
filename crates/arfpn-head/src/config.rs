//! [`RoiHeadConfig`]: every setting of the box head, serialisable.

use arfpn_boxes::{BalancedSampler, BoxCoder, Matcher, DEFAULT_SCALE_CLAMP};
use serde::{Deserialize, Serialize};

use crate::{
    BoxHeadConfig, ClassificationLoss, HeadError, PoolerConfig, PostProcessConfig, Result,
};

/// The Fast R-CNN head's configuration, torchvision's defaults except the per-image cap
/// (1000, see [`PostProcessConfig`]).
///
/// ```
/// let c = arfpn_head::RoiHeadConfig::default();
/// assert_eq!((c.batch_size_per_image, c.positive_fraction, c.box_coder_weights), (512, 0.25, [10.0, 10.0, 5.0, 5.0]));
/// let json = serde_json::to_string(&c).unwrap();
/// assert_eq!(serde_json::from_str::<arfpn_head::RoiHeadConfig>(&json).unwrap(), c);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoiHeadConfig {
    /// Which FPN levels the RoIs are pooled from, and how (RoIAlign over P2–P5, 7×7).
    pub pooler: PoolerConfig,
    /// The box head between the pooler and the predictor (torchvision's `TwoMLPHead`, 1024).
    pub box_head: BoxHeadConfig,
    /// IoU at or above which a RoI is foreground (0.5).
    pub fg_iou_thresh: f32,
    /// IoU below which a RoI is background (0.5).
    pub bg_iou_thresh: f32,
    /// RoIs sampled per image for the loss (512).
    pub batch_size_per_image: usize,
    /// Target fraction of foreground among them (0.25).
    pub positive_fraction: f32,
    /// Box-coder weights (10, 10, 5, 5).
    pub box_coder_weights: [f32; 4],
    /// Smooth-L1 `beta` of the box loss (1/9, torchvision).
    pub smooth_l1_beta: f32,
    /// The classification term of the loss (plain cross-entropy, as torchvision).
    pub classification_loss: ClassificationLoss,
    /// Inference settings: score threshold, NMS, detections per image.
    pub postprocess: PostProcessConfig,
}

impl Default for RoiHeadConfig {
    fn default() -> Self {
        Self {
            pooler: PoolerConfig::default(),
            box_head: BoxHeadConfig::default(),
            fg_iou_thresh: 0.5,
            bg_iou_thresh: 0.5,
            batch_size_per_image: 512,
            positive_fraction: 0.25,
            box_coder_weights: [10.0, 10.0, 5.0, 5.0],
            smooth_l1_beta: 1.0 / 9.0,
            classification_loss: ClassificationLoss::CrossEntropy,
            postprocess: PostProcessConfig::default(),
        }
    }
}

impl RoiHeadConfig {
    /// The matcher (no low-quality matches).
    pub fn matcher(&self) -> Result<Matcher> {
        Ok(Matcher::new(self.fg_iou_thresh, self.bg_iou_thresh, false)?)
    }

    /// The sampler.
    pub fn sampler(&self) -> Result<BalancedSampler> {
        Ok(BalancedSampler::new(
            self.batch_size_per_image,
            self.positive_fraction,
        )?)
    }

    /// The box coder.
    pub fn box_coder(&self) -> Result<BoxCoder> {
        Ok(BoxCoder::with_clamp(
            self.box_coder_weights,
            DEFAULT_SCALE_CLAMP,
        )?)
    }

    /// Checks every field that does not depend on the feature levels.
    pub fn validate(&self, num_classes: usize) -> Result<()> {
        self.matcher()?;
        self.sampler()?;
        self.box_coder()?;
        if self.batch_size_per_image == 0 {
            return Err(HeadError::config("batch_size_per_image", "must be >= 1"));
        }
        if !(self.smooth_l1_beta > 0.0 && self.smooth_l1_beta.is_finite()) {
            return Err(HeadError::config(
                "smooth_l1_beta",
                "must be finite and > 0",
            ));
        }
        self.classification_loss.validate(num_classes)?;
        self.postprocess.validate()
    }
}
