//! [`RoiHeads`]: pooler → box head → predictor, with the training and inference paths.
//! Only wiring: each step lives in its own file.

use arfpn_boxes::{
    BBox, BalancedSampler, BoxCoder, Detections, GroundTruth, ImageSize, Matcher, SplitMix64,
};
use arfpn_nn::{FeatureMap, ShapeSpec};
use arfpn_roi_align::Rois;
use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::{
    fast_rcnn_loss, postprocess, select_training_rois, BoxHead, FastRcnnPredictor, HeadError,
    Pooler, Result, RoiHeadConfig, RoiHeadLosses,
};

/// The Fast R-CNN head of the detector. Parameters under `vb`: `box_head.*` and
/// `box_predictor.*` (a detector passes `vb.pp("roi_heads")`, giving torchvision's names).
pub struct RoiHeads {
    config: RoiHeadConfig,
    num_classes: usize,
    pooler: Pooler,
    box_head: BoxHead,
    predictor: FastRcnnPredictor,
    matcher: Matcher,
    sampler: BalancedSampler,
    coder: BoxCoder,
}

impl RoiHeads {
    /// Builds the head for `num_classes` foreground classes on the given feature levels.
    pub fn new(
        config: &RoiHeadConfig,
        num_classes: usize,
        levels: &[ShapeSpec],
        vb: VarBuilder,
    ) -> Result<Self> {
        if num_classes == 0 {
            return Err(HeadError::config("num_classes", "must be >= 1"));
        }
        config.validate(num_classes)?;
        let pooler = Pooler::new(&config.pooler, levels)?;
        let box_head = BoxHead::new(
            &config.box_head,
            pooler.channels(),
            pooler.output_size(),
            vb.pp("box_head"),
        )?;
        let predictor = FastRcnnPredictor::new(
            BoxHead::out_features(&config.box_head),
            num_classes,
            vb.pp("box_predictor"),
        )?;
        Ok(Self {
            matcher: config.matcher()?,
            sampler: config.sampler()?,
            coder: config.box_coder()?,
            config: config.clone(),
            num_classes,
            pooler,
            box_head,
            predictor,
        })
    }

    /// The configuration the head was built with.
    pub fn config(&self) -> &RoiHeadConfig {
        &self.config
    }

    /// Foreground classes `K` (the classifier has `K + 1` columns, background last).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Class logits `[R, K + 1]` and deltas `[R, 4K]` for `rois`.
    pub fn predict(&self, features: &[FeatureMap], rois: &Rois) -> Result<(Tensor, Tensor)> {
        let pooled = self.pooler.forward(features, rois)?;
        self.predictor.forward(&self.box_head.forward(&pooled)?)
    }

    /// Training: samples RoIs from `proposals` (+ ground truth) per image and returns the
    /// losses. Images without ground truth are valid.
    pub fn forward_train(
        &self,
        features: &[FeatureMap],
        proposals: &[Vec<BBox>],
        ground_truth: &[GroundTruth],
        rng: &mut SplitMix64,
    ) -> Result<RoiHeadLosses> {
        if proposals.len() != ground_truth.len() {
            return Err(HeadError::input(
                "ground_truth",
                format!(
                    "{} images of ground truth for {} of proposals",
                    ground_truth.len(),
                    proposals.len()
                ),
            ));
        }
        let mut targets = Vec::with_capacity(proposals.len());
        for (p, gt) in proposals.iter().zip(ground_truth) {
            gt.validate(self.num_classes)?;
            targets.push(select_training_rois(
                p,
                gt,
                self.num_classes,
                &self.matcher,
                &self.sampler,
                &self.coder,
                rng,
            ));
        }
        let boxes: Vec<Vec<BBox>> = targets.iter().map(|t| t.boxes.clone()).collect();
        let device = features
            .first()
            .map(|f| f.tensor.device().clone())
            .ok_or_else(|| HeadError::input("features", "no feature maps"))?;
        let rois = Rois::from_boxes(&boxes, &device)?;
        let (logits, deltas) = self.predict(features, &rois)?;
        fast_rcnn_loss(
            &logits,
            &deltas,
            &targets,
            &self.config.classification_loss,
            self.config.smooth_l1_beta as f64,
        )
    }

    /// Inference: detections per image, boxes clipped to each image's `sizes`.
    pub fn forward_test(
        &self,
        features: &[FeatureMap],
        proposals: &[Vec<BBox>],
        sizes: &[ImageSize],
    ) -> Result<Vec<Detections>> {
        if proposals.iter().all(Vec::is_empty) {
            return Ok(vec![Detections::default(); proposals.len()]);
        }
        let device = features
            .first()
            .map(|f| f.tensor.device().clone())
            .ok_or_else(|| HeadError::input("features", "no feature maps"))?;
        let rois = Rois::from_boxes(proposals, &device)?;
        let (logits, deltas) = self.predict(features, &rois)?;
        postprocess(
            &logits,
            &deltas,
            proposals,
            sizes,
            &self.coder,
            &self.config.postprocess,
        )
    }
}
