//! [`Detector`]: image → attention-residual ResNet → FPN → RPN → RoIAlign → Fast R-CNN
//! head → detections (the paper's Figure 2).

use arfpn_backbone::{ResNet, UnitAttention};
use arfpn_boxes::{BBox, Detections, GroundTruth, SplitMix64};
use arfpn_fpn::BackboneWithFpn;
use arfpn_head::RoiHeads;
use arfpn_kernels::{with_matmul_precision, MatmulPrecision};
use arfpn_nn::{FeatureMap, ImageBatch, SeededVarMap};
use arfpn_rpn::{Proposals, RegionProposalNetwork};
use std::collections::{HashMap, HashSet};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;

use crate::input::{prepare, Prepared};
use crate::{DetectorConfig, DetectorError, Result};

/// The four losses of a training step and their weighted total (the tensor to back-propagate).
/// The terms carry torchvision's names (the keys of `FasterRCNN`'s loss dict).
#[derive(Clone, Debug)]
pub struct DetectorLosses {
    /// RPN objectness: binary cross-entropy over the sampled anchors.
    pub loss_objectness: Tensor,
    /// RPN box regression: smooth-L1 over the positive anchors / sampled anchors.
    pub loss_rpn_box_reg: Tensor,
    /// Fast R-CNN classification over the sampled RoIs.
    pub loss_classifier: Tensor,
    /// Fast R-CNN box regression over the foreground RoIs / sampled RoIs.
    pub loss_box_reg: Tensor,
    /// `Σ weight · term` with the configuration's [`LossWeights`](crate::LossWeights).
    pub total: Tensor,
}

/// The losses as numbers (for logs and progress bars), named as torchvision names them.
/// Logs written before the rename (`rpn_objectness`, `rpn_box`, `cls`, `box`) still read.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossValues {
    /// [`DetectorLosses::loss_objectness`].
    #[serde(alias = "rpn_objectness")]
    pub loss_objectness: f32,
    /// [`DetectorLosses::loss_rpn_box_reg`].
    #[serde(alias = "rpn_box")]
    pub loss_rpn_box_reg: f32,
    /// [`DetectorLosses::loss_classifier`].
    #[serde(alias = "cls")]
    pub loss_classifier: f32,
    /// [`DetectorLosses::loss_box_reg`].
    #[serde(alias = "box")]
    pub loss_box_reg: f32,
    /// [`DetectorLosses::total`]: the weighted sum of the four terms.
    pub total: f32,
}

impl LossValues {
    /// The named terms whose value is not finite (empty when all are).
    pub fn non_finite(&self) -> Vec<&'static str> {
        [
            ("loss_objectness", self.loss_objectness),
            ("loss_rpn_box_reg", self.loss_rpn_box_reg),
            ("loss_classifier", self.loss_classifier),
            ("loss_box_reg", self.loss_box_reg),
            ("total", self.total),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_finite())
        .map(|(n, _)| n)
        .collect()
    }
}

impl DetectorLosses {
    /// Copies the five scalars to the host.
    pub fn values(&self) -> Result<LossValues> {
        let s = |t: &Tensor| -> Result<f32> { Ok(t.to_dtype(DType::F32)?.to_scalar::<f32>()?) };
        Ok(LossValues {
            loss_objectness: s(&self.loss_objectness)?,
            loss_rpn_box_reg: s(&self.loss_rpn_box_reg)?,
            loss_classifier: s(&self.loss_classifier)?,
            loss_box_reg: s(&self.loss_box_reg)?,
            total: s(&self.total)?,
        })
    }
}

/// The stages of one inference pass ([`Detector::inspect`]).
#[derive(Debug)]
pub struct Inspection {
    /// FPN maps, fine to coarse (`p2` … `p6`), for the padded batch.
    pub features: Vec<FeatureMap>,
    /// The RPN's proposals per image, best first, in the network's pixels.
    pub proposals: Vec<Proposals>,
    /// The final detections per image, in each image's own pixels.
    pub detections: Vec<Detections>,
}

/// The ARFPN detector. Build it from a [`DetectorConfig`] (see [`crate::presets`]), train it
/// with [`forward_train`](Self::forward_train) and an optimizer from `arfpn-nn`, run it with
/// [`detect`](Self::detect). `Send + Sync`: one loaded detector serves many threads.
///
/// Parameters carry torchvision's Faster R-CNN names: `backbone.body.*`, `backbone.fpn.*`,
/// `rpn.head.*`, `roi_heads.box_head.*`, `roi_heads.box_predictor.*`.
///
/// ```
/// use arfpn::{presets, Detector};
/// use arfpn_nn::ImageBatch;
/// use candle_core::{Device, Tensor};
/// let mut cfg = presets::cpu_small(&["rbc", "wbc"]);
/// cfg.backbone.width = 8; // tiny, for the example
/// cfg.fpn.out_channels = 16;
/// let det = Detector::new(cfg, 0, &Device::Cpu)?;
/// let image = Tensor::rand(0f32, 1., (3, 64, 80), &Device::Cpu)?;
/// let batch = ImageBatch::from_images(&[image], 1)?;
/// let dets = det.detect(&batch)?;
/// assert_eq!(dets.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Detector {
    config: DetectorConfig,
    vars: SeededVarMap,
    device: Device,
    dtype: DType,
    backbone: BackboneWithFpn,
    rpn: RegionProposalNetwork,
    roi_heads: RoiHeads,
    /// The same modules over detached views of the same weights, for [`Detector::detect`].
    inference: Modules,
    /// Precision of the convolutions' and linear layers' products in [`Detector::detect`].
    precision: MatmulPrecision,
    /// Variables no optimizer updates, as the modules report them.
    frozen: HashSet<String>,
}

/// The three stages of the network.
struct Modules {
    backbone: BackboneWithFpn,
    rpn: RegionProposalNetwork,
    roi_heads: RoiHeads,
}

impl Modules {
    fn build(config: &DetectorConfig, vb: VarBuilder) -> Result<Self> {
        let vb_backbone = vb.pp("backbone");
        let backbone = match &config.custom_backbone {
            Some(custom) => {
                let body = custom.build(vb_backbone.pp("body"))?;
                BackboneWithFpn::new(body, &config.fpn, vb_backbone)?
            }
            None => BackboneWithFpn::resnet(&config.backbone, &config.fpn, vb_backbone)?,
        };
        let levels = backbone.output_shapes();
        let rpn = RegionProposalNetwork::new(config.rpn.clone(), &levels, vb.pp("rpn"))?;
        let roi_heads = RoiHeads::new(
            &config.roi_heads,
            config.num_classes(),
            &levels,
            vb.pp("roi_heads"),
        )?;
        Ok(Self {
            backbone,
            rpn,
            roi_heads,
        })
    }
}

impl Detector {
    /// Builds a freshly initialised detector (weights drawn from `seed`, see
    /// [`SeededVarMap`]) on `device`, checking that the pieces fit: backbone stages and
    /// norm groups, FPN levels, anchors per level, pooler levels and classes.
    pub fn new(config: DetectorConfig, seed: u64, device: &Device) -> Result<Self> {
        Self::with_vars(config, SeededVarMap::new(seed), device)
    }

    pub(crate) fn with_vars(
        config: DetectorConfig,
        vars: SeededVarMap,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let dtype = DType::F32;
        let Modules {
            backbone,
            rpn,
            roi_heads,
        } = Modules::build(&config, vars.var_builder(dtype, device))?;
        // Inference runs on detached views of the variables: they share the variables'
        // storage (so training steps and checkpoint loads, which update the variables in
        // place, are seen at once), but no operation on them records a backward graph. A
        // forward pass then frees each feature map as soon as the next stage has consumed
        // it, instead of keeping every intermediate alive for a backward that never comes.
        let detached: HashMap<String, Tensor> = vars
            .named_vars()
            .into_iter()
            .map(|(name, v)| (name, v.as_tensor().detach()))
            .collect();
        let inference = Modules::build(&config, VarBuilder::from_tensors(detached, dtype, device))?;
        let frozen = backbone.frozen_parameters().into_iter().collect();
        Ok(Self {
            config,
            vars,
            device: device.clone(),
            dtype,
            backbone,
            rpn,
            roi_heads,
            inference,
            precision: MatmulPrecision::F32,
            frozen,
        })
    }

    /// Sets the precision of the matrix products of [`Detector::detect`] (and so of
    /// everything built on it): [`MatmulPrecision::Bf16`] rounds the operands of every
    /// convolution and linear layer to bf16 and accumulates in f32 on CPUs with Intel AMX
    /// (see [`arfpn_kernels::with_matmul_precision`]; [`arfpn_kernels::bf16_matmul_available`] says
    /// whether this machine has it, elsewhere nothing changes). Training
    /// ([`Detector::forward_train`]) always runs in f32.
    ///
    /// ```
    /// use arfpn::{presets, Detector, MatmulPrecision};
    /// let mut det = Detector::new(presets::cpu_small(&["rbc"]), 0, &candle_core::Device::Cpu)?;
    /// det.set_matmul_precision(MatmulPrecision::Bf16);
    /// assert_eq!(det.matmul_precision(), MatmulPrecision::Bf16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_matmul_precision(&mut self, precision: MatmulPrecision) {
        self.precision = precision;
    }

    /// The precision [`Detector::detect`] uses (f32 unless set).
    pub fn matmul_precision(&self) -> MatmulPrecision {
        self.precision
    }

    /// The configuration the detector was built from (validated), with the
    /// [`data`](DetectorConfig::data) description a [`Trainer`](crate::Trainer) records; it
    /// is what [`save`](Self::save) writes into a checkpoint.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Only the data description may change after building (it does not touch weights).
    pub(crate) fn set_config_data(&mut self, info: crate::DataInfo) {
        self.config.data = info;
    }

    /// Foreground class names, in [`ClassId`](arfpn_boxes::ClassId) order.
    pub fn classes(&self) -> &[String] {
        &self.config.classes
    }

    /// The device the weights live on; the images given to [`detect`](Self::detect) and
    /// [`forward_train`](Self::forward_train) must be on it.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The variables (for optimizers and checkpoints).
    pub fn vars(&self) -> &SeededVarMap {
        &self.vars
    }

    /// The backbone and FPN of the training path ([`forward_train`](Self::forward_train)),
    /// parameters under `backbone.*`. [`detect`](Self::detect) runs a twin of this module
    /// built over detached views of the same weights, so both compute the same features, but
    /// a forward pass through this one records a backward graph.
    pub fn backbone(&self) -> &BackboneWithFpn {
        &self.backbone
    }

    /// The region proposal network of the training path, parameters under `rpn.*` (as for
    /// [`backbone`](Self::backbone), `detect` runs a twin over detached views of the same
    /// weights).
    pub fn rpn(&self) -> &RegionProposalNetwork {
        &self.rpn
    }

    /// The RoI heads (pooler, box head, box predictor) of the training path, parameters under
    /// `roi_heads.*` (as for [`backbone`](Self::backbone), `detect` runs a twin over detached
    /// views of the same weights).
    pub fn roi_heads(&self) -> &RoiHeads {
        &self.roi_heads
    }

    /// Variables an optimizer should update: every variable except those the modules
    /// report as frozen ([`Backbone::frozen_parameters`](arfpn_backbone::Backbone::frozen_parameters):
    /// frozen batch norms, batch-norm statistics, what a custom attention module or
    /// backbone reports). Parameter names play no part: a custom module's `bn1` trains.
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.vars
            .named_vars()
            .into_iter()
            .filter(|(name, _)| !self.frozen.contains(name))
            .map(|(_, v)| v)
            .collect()
    }

    /// The trainable variables detectron2 keeps out of weight decay: biases and
    /// normalisation parameters (every 1-D variable).
    pub fn no_decay_vars(&self) -> Vec<Var> {
        self.vars
            .named_vars()
            .into_iter()
            .filter(|(name, v)| !self.frozen.contains(name) && v.rank() == 1)
            .map(|(_, v)| v)
            .collect()
    }

    /// Full names of the variables no optimizer updates (see
    /// [`trainable_vars`](Self::trainable_vars)), sorted.
    pub fn frozen_vars(&self) -> Vec<String> {
        let mut v: Vec<String> = self.frozen.iter().cloned().collect();
        v.sort();
        v
    }

    fn prepare(&self, images: &ImageBatch) -> Result<Prepared> {
        if !images.tensor.device().same_device(&self.device) {
            return Err(DetectorError::input(
                "images",
                format!(
                    "the batch is on {:?}, the detector on {:?}",
                    images.tensor.device(),
                    self.device
                ),
            ));
        }
        prepare(
            images,
            &self.config.input,
            self.backbone.size_divisibility(),
            self.dtype,
        )
    }

    /// One training forward pass: the four losses for `images` (RGB in `[0, 1]`, any sizes)
    /// against `ground_truth` (one per image, boxes in each image's pixels; images without
    /// objects are valid). Boxes are clipped to their image; a box with no area left inside
    /// it is dropped. Sampling draws from `rng`.
    pub fn forward_train(
        &self,
        images: &ImageBatch,
        ground_truth: &[GroundTruth],
        rng: &mut SplitMix64,
    ) -> Result<DetectorLosses> {
        if ground_truth.len() != images.len() {
            return Err(DetectorError::input(
                "ground_truth",
                format!(
                    "{} ground truths for {} images",
                    ground_truth.len(),
                    images.len()
                ),
            ));
        }
        for (i, gt) in ground_truth.iter().enumerate() {
            gt.validate(self.config.num_classes())
                .map_err(|e| DetectorError::input(format!("ground_truth[{i}]"), e.to_string()))?;
        }
        let prepared = self.prepare(images)?;
        let gt: Vec<GroundTruth> = prepared
            .ground_truth_to_network(ground_truth)
            .into_iter()
            .map(drop_empty_boxes)
            .collect();
        let features: Vec<FeatureMap> = self.backbone.forward_t(&prepared.batch.tensor, true)?;
        let sizes = &prepared.batch.sizes;
        let rpn = self.rpn.forward_train(&features, sizes, &gt, rng)?;
        let proposals: Vec<Vec<BBox>> = rpn.proposals.into_iter().map(|p| p.boxes).collect();
        let head = self
            .roi_heads
            .forward_train(&features, &proposals, &gt, rng)?;
        let w = self.config.loss_weights;
        let total = ((((&rpn.losses.loss_objectness * w.loss_objectness as f64)?
            + (&rpn.losses.loss_rpn_box_reg * w.loss_rpn_box_reg as f64)?)?
            + (&head.loss_classifier * w.loss_classifier as f64)?)?
            + (&head.loss_box_reg * w.loss_box_reg as f64)?)?;
        Ok(DetectorLosses {
            loss_objectness: rpn.losses.loss_objectness,
            loss_rpn_box_reg: rpn.losses.loss_rpn_box_reg,
            loss_classifier: head.loss_classifier,
            loss_box_reg: head.loss_box_reg,
            total,
        })
    }

    /// Detections for each image of the batch (RGB in `[0, 1]`, any sizes), boxes in each
    /// image's own pixels, highest score first, at most
    /// `roi_heads.postprocess.detections_per_image` per image.
    ///
    /// Images are zero-padded to the batch's largest size; features near an image's right
    /// and bottom border, and so its detections there, can change slightly with the padding
    /// (as in torchvision and detectron2). Batching images of one size changes nothing.
    pub fn detect(&self, images: &ImageBatch) -> Result<Vec<Detections>> {
        with_matmul_precision(self.precision, || self.detect_inner(images))
    }

    fn detect_inner(&self, images: &ImageBatch) -> Result<Vec<Detections>> {
        Ok(self.run_inference(images)?.detections)
    }

    /// What [`detect`](Self::detect) computes, stage by stage: the FPN maps, the RPN's
    /// proposals and the detections, for checking a stage against another implementation
    /// (the torchvision oracle test does) or looking inside. Features and proposals are in
    /// the network's pixels (after [`InputConfig`](crate::InputConfig) resizing and
    /// padding); detections in each image's own, as `detect` returns them.
    pub fn inspect(&self, images: &ImageBatch) -> Result<Inspection> {
        with_matmul_precision(self.precision, || self.run_inference(images))
    }

    /// The inference path (`detect` and `inspect`).
    fn run_inference(&self, images: &ImageBatch) -> Result<Inspection> {
        let prepared = self.prepare(images)?;
        let m = &self.inference;
        let input = prepared.batch.tensor.detach();
        let features = m.backbone.forward_t(&input, false)?;
        let sizes = &prepared.batch.sizes;
        let proposals = m.rpn.forward_test(&features, sizes)?;
        let boxes: Vec<Vec<BBox>> = proposals.iter().map(|p| p.boxes.clone()).collect();
        let mut detections = m.roi_heads.forward_test(&features, &boxes, sizes)?;
        for (i, d) in detections.iter_mut().enumerate() {
            prepared.boxes_to_original(i, &mut d.boxes);
        }
        Ok(Inspection {
            features,
            proposals,
            detections,
        })
    }

    /// The attention maps every residual unit of the ResNet body applies to `image`
    /// (`[3, H, W]`, RGB in `[0, 1]`, prepared as [`detect`](Self::detect) prepares it):
    /// the paper's Figure 7, and a custom module's maps
    /// ([`Attention::forward_with_maps`](arfpn_backbone::Attention::forward_with_maps)).
    /// Units without attention give empty lists. An error for a custom backbone, which is
    /// not a ResNet.
    pub fn attention_maps(&self, image: &Tensor) -> Result<Vec<UnitAttention>> {
        if self.config.custom_backbone.is_some() {
            return Err(DetectorError::input(
                "backbone",
                "attention maps are recorded by the built-in ResNet body, not a custom backbone",
            ));
        }
        let batch = ImageBatch::from_images(std::slice::from_ref(image), 1)?;
        let prepared = self.prepare(&batch)?;
        // The body over detached views of the same weights, as `detect` runs it.
        let body: HashMap<String, Tensor> = self
            .vars
            .named_vars()
            .into_iter()
            .filter_map(|(name, v)| {
                let short = name.strip_prefix("backbone.body.")?.to_string();
                Some((short, v.as_tensor().detach()))
            })
            .collect();
        let vb = VarBuilder::from_tensors(body, self.dtype, &self.device);
        let net = ResNet::new(&self.config.backbone, vb)?;
        let input = prepared.batch.tensor.detach();
        let trace = with_matmul_precision(self.precision, || net.forward_traced(&input, false))?;
        Ok(trace.attention)
    }

    /// Detects in one image (`[3, H, W]`, RGB in `[0, 1]`).
    pub fn detect_image(&self, image: &Tensor) -> Result<Detections> {
        let batch = ImageBatch::from_images(std::slice::from_ref(image), 1)?;
        let mut d = self.detect(&batch)?;
        d.pop()
            .ok_or_else(|| DetectorError::input("image", "no detections list came back"))
    }
}

fn drop_empty_boxes(gt: GroundTruth) -> GroundTruth {
    let (boxes, classes) = gt
        .boxes
        .into_iter()
        .zip(gt.classes)
        .filter(|(b, _)| b.width() > 0.0 && b.height() > 0.0)
        .unzip();
    GroundTruth { boxes, classes }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `detect` runs on detached views of the variables: an in-place update of a variable
    /// (what an optimizer step or a checkpoint load does) must show in the next detection.
    #[test]
    fn detect_sees_in_place_weight_updates() -> Result<()> {
        let mut cfg = crate::presets::cpu_small(&["a", "b"]);
        cfg.backbone.width = 8;
        cfg.fpn.out_channels = 16;
        let det = Detector::new(cfg, 3, &Device::Cpu)?;
        let image = Tensor::rand(0f32, 1., (3, 64, 64), &Device::Cpu)?;
        let before = det.detect_image(&image)?;
        let vars: HashMap<String, Var> = det.vars().named_vars().into_iter().collect();
        let w = &vars["roi_heads.box_predictor.cls_score.weight"];
        let b = &vars["roi_heads.box_predictor.cls_score.bias"];
        w.set(&w.zeros_like()?)?;
        // Logits (a, b, background) = (2, 0, 0) for every RoI.
        b.set(&Tensor::new(&[2f32, 0., 0.], &Device::Cpu)?)?;
        let after = det.detect_image(&image)?;
        let e2 = 2f32.exp();
        let (pa, pb) = (e2 / (e2 + 2.0), 1.0 / (e2 + 2.0));
        assert!(!after.is_empty());
        for (&s, c) in after.scores.iter().zip(&after.classes) {
            let want = if c.index() == 0 { pa } else { pb };
            assert!(
                (s - want).abs() < 1e-5,
                "class {c:?} score {s}, want {want}"
            );
        }
        assert_ne!(before, after);
        Ok(())
    }

    /// The modules' frozen parameters are, for the built-in ResNet, exactly what the
    /// former name rule froze (every `bn<digits>` and `downsample.1` tensor of the body
    /// under frozen batch norm, running statistics under trainable batch norm): the set an
    /// optimizer updates is unchanged for the paper's and torchvision's models.
    #[test]
    fn frozen_vars_of_the_resnet_are_its_norms() -> Result<()> {
        let old_rule = |name: &str| {
            let parts: Vec<&str> = name.split('.').collect();
            name.starts_with("backbone.body.")
                && parts.windows(2).any(|w| {
                    (w[0].starts_with("bn") && w[0][2..].chars().all(|c| c.is_ascii_digit()))
                        || (w[0] == "downsample" && w[1] == "1")
                })
        };
        for depth in [18, 50] {
            let mut cfg = crate::presets::preset(crate::presets::Variant::CArfpn, depth, &["a"])?;
            cfg.backbone.width = 8;
            cfg.backbone.norm = arfpn_backbone::NormKind::frozen_batch_norm();
            let det = Detector::new(cfg.clone(), 0, &Device::Cpu)?;
            let mut want: Vec<String> = det
                .vars()
                .named_vars()
                .into_iter()
                .map(|(n, _)| n)
                .filter(|n| old_rule(n))
                .collect();
            want.sort();
            assert_eq!(det.frozen_vars(), want, "depth {depth}");
            cfg.backbone.norm = arfpn_backbone::NormKind::BatchNorm {
                eps: 1e-5,
                momentum: 0.1,
            };
            let det = Detector::new(cfg, 0, &Device::Cpu)?;
            let frozen = det.frozen_vars();
            assert!(!frozen.is_empty());
            assert!(frozen
                .iter()
                .all(|n| n.ends_with("running_mean") || n.ends_with("running_var")));
            let stats = det
                .vars()
                .named_vars()
                .into_iter()
                .filter(|(n, _)| n.ends_with("running_mean") || n.ends_with("running_var"))
                .count();
            assert_eq!(frozen.len(), stats);
        }
        Ok(())
    }
}
