//! The Region Proposal Network: anchors + head + targets + losses + proposals.

use std::sync::Arc;

use arfpn_boxes::{
    BBox, BalancedSampler, BoxCoder, Deltas, GroundTruth, ImageSize, Matcher, SplitMix64,
};
use arfpn_nn::{FeatureMap, ShapeSpec};
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use crate::{
    rpn_loss, rpn_targets, select_proposals, AnchorGenerator, LevelPredictions, ProposalParams,
    Proposals, Result, RpnConfig, RpnError, RpnHead, RpnLosses,
};

/// The head's outputs for a batch, all levels concatenated in anchor order.
#[derive(Clone, Debug)]
pub struct HeadOutputs {
    /// `[N, R]` objectness logits.
    pub objectness: Tensor,
    /// `[N, R, 4]` box deltas.
    pub deltas: Tensor,
    /// Anchors of each level (`R` is the sum of their lengths).
    pub anchors: Vec<Arc<Vec<BBox>>>,
}

/// What a training forward returns.
#[derive(Clone, Debug)]
pub struct RpnTrainOutput {
    /// Proposals per image (training top-k values), detached from the graph.
    pub proposals: Vec<Proposals>,
    /// Objectness and box-regression losses over the anchors sampled against the ground
    /// truth.
    pub losses: RpnLosses,
}

/// torchvision's `RegionProposalNetwork` for FPN levels.
///
/// Built from the [`ShapeSpec`]s of its input levels, so a mismatch between the anchor
/// settings, the head and the levels is an error at construction, before any image is
/// seen. Images are given by the [`ImageSize`] of their real (unpadded) content; images with
/// no ground-truth boxes are valid training input (all sampled anchors are negatives).
pub struct RegionProposalNetwork {
    config: RpnConfig,
    specs: Vec<ShapeSpec>,
    anchors: AnchorGenerator,
    head: RpnHead,
    matcher: Matcher,
    sampler: BalancedSampler,
    coder: BoxCoder,
}

impl RegionProposalNetwork {
    /// Builds the RPN and its head (weights under `vb`: `head.conv.0.0`, `head.cls_logits`,
    /// `head.bbox_pred`, torchvision's names).
    pub fn new(config: RpnConfig, inputs: &[ShapeSpec], vb: VarBuilder) -> Result<Self> {
        let anchors = Self::generator(&config, inputs)?;
        let a = anchors.num_anchors_per_location();
        let head = RpnHead::new(inputs[0].channels, a[0], vb.pp("head"))?;
        Self::assemble(config, inputs, anchors, head)
    }

    /// Builds the RPN around an existing head, checking that it fits the levels.
    pub fn with_head(config: RpnConfig, inputs: &[ShapeSpec], head: RpnHead) -> Result<Self> {
        let anchors = Self::generator(&config, inputs)?;
        Self::assemble(config, inputs, anchors, head)
    }

    fn generator(config: &RpnConfig, inputs: &[ShapeSpec]) -> Result<AnchorGenerator> {
        config.validate()?;
        if inputs.is_empty() {
            return Err(RpnError::config(
                "inputs",
                "the RPN needs at least one level",
            ));
        }
        let names: Vec<String> = inputs.iter().map(|s| s.name.clone()).collect();
        let strides: Vec<usize> = inputs.iter().map(|s| s.stride).collect();
        AnchorGenerator::new(&config.anchors, &names, &strides)
    }

    fn assemble(
        config: RpnConfig,
        inputs: &[ShapeSpec],
        anchors: AnchorGenerator,
        head: RpnHead,
    ) -> Result<Self> {
        for (l, (spec, a)) in inputs
            .iter()
            .zip(anchors.num_anchors_per_location())
            .enumerate()
        {
            if spec.channels != head.in_channels() {
                return Err(RpnError::config(
                    "inputs",
                    format!(
                        "level {l} (`{}`) has {} channels but the shared RPN head takes {}",
                        spec.name,
                        spec.channels,
                        head.in_channels()
                    ),
                ));
            }
            if a != head.num_anchors() {
                return Err(RpnError::AnchorsPerLocation {
                    level: l,
                    name: spec.name.clone(),
                    generator: a,
                    head: head.num_anchors(),
                });
            }
        }
        Ok(Self {
            matcher: config.matcher()?,
            sampler: config.sampler()?,
            coder: config.box_coder()?,
            config,
            specs: inputs.to_vec(),
            anchors,
            head,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RpnConfig {
        &self.config
    }

    /// The levels this RPN was built for.
    pub fn input_shapes(&self) -> &[ShapeSpec] {
        &self.specs
    }

    /// The anchor generator.
    pub fn anchor_generator(&self) -> &AnchorGenerator {
        &self.anchors
    }

    /// The head.
    pub fn head(&self) -> &RpnHead {
        &self.head
    }

    /// Runs the head on every level and gathers the anchors.
    pub fn head_outputs(&self, features: &[FeatureMap]) -> Result<HeadOutputs> {
        self.anchors.check_features(features)?;
        let n = features[0].tensor.dim(0)?;
        let mut obj = Vec::with_capacity(features.len());
        let mut del = Vec::with_capacity(features.len());
        for f in features {
            if f.tensor.dim(0)? != n {
                return Err(RpnError::input(
                    "features",
                    format!(
                        "map `{}` has batch {} but the first map has {n}",
                        f.name,
                        f.tensor.dim(0)?
                    ),
                ));
            }
            let (o, d) = self.head.forward_level(&f.tensor)?.flatten()?;
            obj.push(o);
            del.push(d);
        }
        Ok(HeadOutputs {
            objectness: Tensor::cat(&obj, 1)?,
            deltas: Tensor::cat(&del, 1)?,
            anchors: self.anchors.anchors_for(features)?,
        })
    }

    /// Proposals from head outputs (deltas and logits are detached and copied to the CPU).
    pub fn proposals(
        &self,
        out: &HeadOutputs,
        image_sizes: &[ImageSize],
        params: &ProposalParams,
    ) -> Result<Vec<Proposals>> {
        let n = out.objectness.dim(0)?;
        if image_sizes.len() != n {
            return Err(RpnError::input(
                "image_sizes",
                format!("{} sizes for a batch of {n}", image_sizes.len()),
            ));
        }
        let obj: Vec<Vec<f32>> = out.objectness.detach().to_dtype(DType::F32)?.to_vec2()?;
        let del: Vec<Vec<f32>> = out
            .deltas
            .detach()
            .to_dtype(DType::F32)?
            .flatten_from(1)?
            .to_vec2()?;
        let mut result = Vec::with_capacity(n);
        for (img, &size) in image_sizes.iter().enumerate() {
            let deltas: Vec<Deltas> = del[img]
                .chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect();
            let mut levels = Vec::with_capacity(out.anchors.len());
            let mut start = 0;
            for a in &out.anchors {
                let end = start + a.len();
                levels.push(LevelPredictions {
                    anchors: a,
                    objectness: &obj[img][start..end],
                    deltas: &deltas[start..end],
                });
                start = end;
            }
            result.push(select_proposals(&levels, size, &self.coder, params)?);
        }
        Ok(result)
    }

    /// Inference: proposals per image with the `test` settings.
    pub fn forward_test(
        &self,
        features: &[FeatureMap],
        image_sizes: &[ImageSize],
    ) -> Result<Vec<Proposals>> {
        let out = self.head_outputs(features)?;
        self.proposals(&out, image_sizes, &self.config.test)
    }

    /// Training: proposals with the `train` settings and the losses against the ground truth
    /// (one per image, possibly empty; only the boxes are used). Sampling draws from `rng`.
    pub fn forward_train(
        &self,
        features: &[FeatureMap],
        image_sizes: &[ImageSize],
        ground_truth: &[GroundTruth],
        rng: &mut SplitMix64,
    ) -> Result<RpnTrainOutput> {
        let out = self.head_outputs(features)?;
        let n = out.objectness.dim(0)?;
        if ground_truth.len() != n {
            return Err(RpnError::input(
                "ground_truth",
                format!(
                    "{} images of ground truth for a batch of {n}",
                    ground_truth.len()
                ),
            ));
        }
        let proposals = self.proposals(&out, image_sizes, &self.config.train)?;
        let all_anchors: Vec<BBox> = out.anchors.iter().flat_map(|a| a.iter().copied()).collect();
        let targets: Vec<_> = ground_truth
            .iter()
            .map(|gt| {
                rpn_targets(
                    &all_anchors,
                    &gt.boxes,
                    &self.matcher,
                    &self.sampler,
                    &self.coder,
                    rng,
                )
            })
            .collect();
        let losses = rpn_loss(
            &out.objectness,
            &out.deltas,
            &targets,
            self.config.smooth_l1_beta as f64,
        )?;
        Ok(RpnTrainOutput { proposals, losses })
    }
}
