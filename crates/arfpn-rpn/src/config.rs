//! The serialisable RPN configuration.

use arfpn_boxes::{BalancedSampler, BoxCoder, Matcher, DEFAULT_SCALE_CLAMP};
use serde::{Deserialize, Serialize};

use crate::{AnchorConfig, ProposalParams, Result, RpnError};

/// Every RPN setting, with torchvision's defaults except where dense RBC smears need more
/// (anchors, proposal counts).
///
/// ```
/// let c = arfpn_rpn::RpnConfig::default();
/// assert_eq!((c.fg_iou_thresh, c.bg_iou_thresh, c.batch_size_per_image), (0.7, 0.3, 256));
/// let json = serde_json::to_string(&c).unwrap();
/// assert_eq!(serde_json::from_str::<arfpn_rpn::RpnConfig>(&json).unwrap(), c);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpnConfig {
    /// Anchor sizes and aspect ratios per level ([`AnchorConfig::rbc_dense`] by default).
    pub anchors: AnchorConfig,
    /// IoU at or above which an anchor is foreground (0.7).
    pub fg_iou_thresh: f32,
    /// IoU below which an anchor is background (0.3).
    pub bg_iou_thresh: f32,
    /// Keep each ground truth's best anchors, ties included, even below `fg_iou_thresh`.
    pub allow_low_quality_matches: bool,
    /// Anchors sampled per image for the loss (256).
    pub batch_size_per_image: usize,
    /// Target fraction of positives in the sample (0.5).
    pub positive_fraction: f32,
    /// Box-coder weights (1, 1, 1, 1).
    pub box_coder_weights: [f32; 4],
    /// Smooth-L1 `beta` (1/9).
    pub smooth_l1_beta: f32,
    /// Proposal selection while training. torchvision: 2000 / 2000.
    pub train: ProposalParams,
    /// Proposal selection at inference. torchvision: 1000 / 1000, too few for ~230 cells
    /// per crop with several good anchors each.
    pub test: ProposalParams,
}

impl Default for RpnConfig {
    fn default() -> Self {
        let phase = |pre, post| ProposalParams {
            pre_nms_top_n: pre,
            post_nms_top_n: post,
            nms_thresh: 0.7,
            min_size: 1e-3,
            score_thresh: 0.0,
        };
        Self {
            anchors: AnchorConfig::default(),
            fg_iou_thresh: 0.7,
            bg_iou_thresh: 0.3,
            allow_low_quality_matches: true,
            batch_size_per_image: 256,
            positive_fraction: 0.5,
            box_coder_weights: [1.0; 4],
            smooth_l1_beta: 1.0 / 9.0,
            train: phase(4000, 2000),
            test: phase(2000, 2000),
        }
    }
}

impl RpnConfig {
    /// The matcher these settings describe.
    pub fn matcher(&self) -> Result<Matcher> {
        Ok(Matcher::new(
            self.fg_iou_thresh,
            self.bg_iou_thresh,
            self.allow_low_quality_matches,
        )?)
    }

    /// The sampler these settings describe.
    pub fn sampler(&self) -> Result<BalancedSampler> {
        Ok(BalancedSampler::new(
            self.batch_size_per_image,
            self.positive_fraction,
        )?)
    }

    /// The box coder these settings describe.
    pub fn box_coder(&self) -> Result<BoxCoder> {
        Ok(BoxCoder::with_clamp(
            self.box_coder_weights,
            DEFAULT_SCALE_CLAMP,
        )?)
    }

    /// Checks every field that does not depend on the feature levels.
    pub fn validate(&self) -> Result<()> {
        self.matcher()?;
        self.sampler()?;
        self.box_coder()?;
        if !(self.smooth_l1_beta > 0.0 && self.smooth_l1_beta.is_finite()) {
            return Err(RpnError::config(
                "smooth_l1_beta",
                format!("must be finite and > 0, got {}", self.smooth_l1_beta),
            ));
        }
        self.train.validate("train")?;
        self.test.validate("test")
    }
}
