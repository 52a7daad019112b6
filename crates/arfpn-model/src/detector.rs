//! [`Detector`]: image → attention-residual ResNet → FPN → RPN → RoIAlign → Fast R-CNN
//! head → detections (the paper's Figure 2).

use arfpn_backbone::{ResNet, UnitAttention};
use arfpn_boxes::{BBox, Detections, GroundTruth, SplitMix64};
use arfpn_fpn::BackboneWithFpn;
use arfpn_head::{RoiHeadLosses, RoiHeads};
use arfpn_kernels::{with_matmul_precision, MatmulPrecision};
use arfpn_nn::{FeatureMap, ImageBatch, SeededVarMap};
use arfpn_rpn::{Proposals, RegionProposalNetwork, RpnLosses};
use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;

use crate::checkpoint::{self, Checkpoint, CheckpointState};
use crate::input::{prepare, Prepared};
use crate::{pretrained, torchvision};
use crate::{DataInfo, DetectorConfig, DetectorError, LoadReport, Result};

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
/// Every method of the detector is in this file (its API in one place); saving and loading
/// ([`save`](Self::save), [`load`](Self::load), ...), torchvision import and pretrained
/// backbones delegate to `checkpoint.rs`, `torchvision.rs` and `pretrained.rs`.
///
/// ```
/// use arfpn_model::{presets, Detector};
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
    /// The stages over the variables themselves: [`Detector::forward_train`] runs them.
    training: Stages,
    /// The same stages over detached views of the same weights: [`Detector::detect`] runs
    /// them (see [`Detector::with_vars`] for why).
    inference: Stages,
    /// Precision of the convolutions' and linear layers' products in [`Detector::detect`].
    precision: MatmulPrecision,
    /// Variables no optimizer updates, as the modules report them.
    frozen: HashSet<String>,
}

/// The three stages of the network.
struct Stages {
    backbone: BackboneWithFpn,
    rpn: RegionProposalNetwork,
    roi_heads: RoiHeads,
}

/// Which pass [`Detector::run`] makes through the [`Stages`].
enum Pass<'a> {
    /// Training: the RPN and the RoI heads sample against `ground_truth` (one per image, in
    /// each image's pixels), drawing from `rng`, and return losses.
    Train {
        ground_truth: &'a [GroundTruth],
        rng: &'a mut SplitMix64,
    },
    /// Inference: proposals, then detections mapped back to each image's pixels.
    Test,
}

/// What the heads of one pass give.
enum Outcome {
    /// [`Pass::Train`]: the RPN's and the RoI heads' losses (unweighted).
    Losses(RpnLosses, RoiHeadLosses),
    /// [`Pass::Test`]: the stages' outputs.
    Inspection(Inspection),
}

impl Stages {
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

    /// Builds the two sets of stages over `vars`.
    fn with_vars(config: DetectorConfig, vars: SeededVarMap, device: &Device) -> Result<Self> {
        config.validate()?;
        let dtype = DType::F32;
        let training = Stages::build(&config, vars.var_builder(dtype, device))?;
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
        let inference = Stages::build(&config, VarBuilder::from_tensors(detached, dtype, device))?;
        let frozen = training.backbone.frozen_parameters().into_iter().collect();
        Ok(Self {
            config,
            vars,
            device: device.clone(),
            dtype,
            training,
            inference,
            precision: MatmulPrecision::F32,
            frozen,
        })
    }

    /// Builds the detector a checkpoint describes and loads its weights; every weight must
    /// be present and fit.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        checkpoint::from_checkpoint(Checkpoint::read(path.as_ref(), device)?, device)
    }

    /// [`Detector::load`] from a checkpoint held in memory; `name` stands for its path in
    /// errors.
    pub fn load_bytes(bytes: &[u8], name: impl AsRef<Path>, device: &Device) -> Result<Self> {
        checkpoint::from_checkpoint(
            Checkpoint::from_bytes(bytes, name.as_ref(), device)?,
            device,
        )
    }

    /// The blood-cell model that ships with arfpn (crate `arfpn-models`, model card in
    /// `models/README.md`): classes `Platelets`, `RBC`, `WBC` (in that order), the `cpu-small` architecture
    /// trained on BCCD and TXL-PBC. Its f16 weights are converted to f32 as they load.
    /// Needs the `default-model` feature (on by default).
    #[cfg(feature = "default-model")]
    pub fn default_model(device: &Device) -> Result<Self> {
        Self::load_bytes(
            arfpn_models::BLOOD_CELLS,
            arfpn_models::BLOOD_CELLS_NAME,
            device,
        )
    }

    /// Builds the detector `config` describes and loads a torchvision Faster R-CNN state dict
    /// saved as safetensors (e.g. `fasterrcnn_resnet50_fpn` into [`presets::fpn_r50`], a
    /// `resnet_fpn_backbone("resnet18")` model into `fpn-r18`). `config.classes` are the
    /// model's foreground classes in torchvision's label order (label `i` is
    /// `config.classes[i - 1]`; label 0 is the background).
    ///
    /// The predictor is re-laid (see the module docs), `num_batches_tracked` counters are
    /// ignored, and torchvision's names from before 0.13 (`fpn.inner_blocks.0.weight`,
    /// `rpn.head.conv.weight`) are read as today's. Every other tensor of the file must be a
    /// weight of the detector and every weight of the detector must be in the file, with
    /// the same shape: otherwise a [`DetectorError::Checkpoint`] names the file and the
    /// tensors at fault. f16 and bf16 files are converted to f32.
    ///
    /// Set `config.input` to the model's transform (`min_size`, `max_size`, `image_mean`,
    /// `image_std`) and `config.rpn` / `config.roi_heads.postprocess` to its thresholds and
    /// counts to get its detections: `fpn-r*` presets carry torchvision's defaults,
    /// including its rounded anchors ([`arfpn_rpn::AnchorConfig::torchvision`]).
    ///
    /// [`presets::fpn_r50`]: crate::presets::fpn_r50
    pub fn from_torchvision(
        path: impl AsRef<Path>,
        config: DetectorConfig,
        device: &Device,
    ) -> Result<Self> {
        torchvision::from_torchvision(path.as_ref(), config, device)
    }

    /// Saves the weights with the configuration (atomically, see [`write_atomic`](crate::write_atomic)).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_with_state(path, &CheckpointState::default())
    }

    /// Saves the weights in `dtype` (f16 or bf16 halve the file; f32 keeps it exact) with
    /// the configuration and `metadata` (keys must not start with `arfpn.`), and nothing of
    /// a trainer's state: the compact form a model ships in. [`Detector::load`] reads it and
    /// converts the weights back to the detector's dtype.
    pub fn save_compact(
        &self,
        path: impl AsRef<Path>,
        dtype: DType,
        metadata: &HashMap<String, String>,
    ) -> Result<()> {
        let state = CheckpointState {
            tensors: Vec::new(),
            metadata: metadata.clone(),
        };
        checkpoint::write_checkpoint(self, path.as_ref(), &state, Some(dtype))
    }

    /// Saves the weights, the configuration and `state` (a trainer's).
    pub fn save_with_state(&self, path: impl AsRef<Path>, state: &CheckpointState) -> Result<()> {
        checkpoint::write_checkpoint(self, path.as_ref(), state, None)
    }

    /// Loads a checkpoint's weights into this detector, after checking that it was made for
    /// the same classes and architecture (else [`DetectorError::Mismatch`] naming both).
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<LoadReport> {
        let ckpt = Checkpoint::read(path.as_ref(), &self.device().clone())?;
        self.check_compatible(&ckpt)?;
        self.set_weights(&ckpt.path, &ckpt.weights)
    }

    /// Errors unless `ckpt` has this detector's classes and architecture.
    pub fn check_compatible(&self, ckpt: &Checkpoint) -> Result<()> {
        checkpoint::check_compatible(self, ckpt)
    }

    /// Overwrites the variables with the same-named tensors of `weights` (converted to the
    /// variables' dtype and device) and reports what was loaded, missing and unexpected,
    /// without checking the checkpoint's configuration (see
    /// [`load_weights`](Self::load_weights) for that); `path` names the source in errors.
    /// A shape mismatch is an error and then nothing is changed. A trainer resuming from
    /// its own checkpoint ([`Checkpoint::weights`]) uses it.
    pub fn set_weights(
        &self,
        path: &Path,
        weights: &HashMap<String, Tensor>,
    ) -> Result<LoadReport> {
        checkpoint::set_weights(self, path, weights)
    }

    /// Loads a torchvision-named ResNet state dict (`conv1.weight`, `layer1.0.bn1.weight`,
    /// ...) into the backbone body; names already in the detector's form (`backbone.*`,
    /// `rpn.*`, `roi_heads.*`, e.g. a torchvision Faster R-CNN state dict's backbone, FPN and
    /// RPN) load as they are. The
    /// attention, FPN, RPN and head layers keep their fresh initialisation and are reported
    /// as `missing`; torchvision's classifier (`fc.*`) comes back as `unexpected`, its
    /// `num_batches_tracked` counters are skipped (listed as `ignored`). Convert the ImageNet weights once with
    ///
    /// ```text
    /// python -c "import torchvision; from safetensors.torch import save_file; save_file({k: v.contiguous() for k, v in torchvision.models.resnet50(weights='IMAGENET1K_V1').state_dict().items()}, 'resnet50.safetensors')"
    /// ```
    ///
    /// and build the detector with the same depth (and frozen batch norm to use the
    /// statistics as torchvision does).
    pub fn load_backbone_weights(&self, path: impl AsRef<Path>) -> Result<LoadReport> {
        pretrained::load_backbone_weights(self, path.as_ref())
    }

    /// Sets the precision of the matrix products of [`Detector::detect`] (and so of
    /// everything built on it): [`MatmulPrecision::Bf16`] rounds the operands of every
    /// convolution and linear layer to bf16 and accumulates in f32 on CPUs with Intel AMX
    /// (see [`arfpn_kernels::with_matmul_precision`]; [`arfpn_kernels::bf16_matmul_available`] says
    /// whether this machine has it, elsewhere nothing changes). Training
    /// ([`Detector::forward_train`]) always runs in f32.
    ///
    /// ```
    /// use arfpn_model::{presets, Detector, MatmulPrecision};
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
    /// [`data`](DetectorConfig::data) description a trainer records
    /// ([`set_data_info`](Self::set_data_info)); it is what [`save`](Self::save) writes into
    /// a checkpoint.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Sets what the detector knows about its training data (saved with it). Only this part
    /// of the configuration may change after building (it does not touch weights).
    pub fn set_data_info(&mut self, info: DataInfo) {
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

    /// The backbone and FPN that [`detect`](Self::detect) runs, parameters under
    /// `backbone.*`: the inference twin, built over detached views of the variables, so a
    /// forward pass through it records no backward graph. ([`forward_train`](Self::forward_train)
    /// runs its own twin over the variables themselves; both compute the same features.)
    pub fn backbone(&self) -> &BackboneWithFpn {
        &self.inference.backbone
    }

    /// The region proposal network that [`detect`](Self::detect) runs, parameters under
    /// `rpn.*` (the inference twin, as for [`backbone`](Self::backbone)).
    pub fn rpn(&self) -> &RegionProposalNetwork {
        &self.inference.rpn
    }

    /// The RoI heads (pooler, box head, box predictor) that [`detect`](Self::detect) runs,
    /// parameters under `roi_heads.*` (the inference twin, as for
    /// [`backbone`](Self::backbone)).
    pub fn roi_heads(&self) -> &RoiHeads {
        &self.inference.roi_heads
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
            self.inference.backbone.size_divisibility(),
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
        let Outcome::Losses(rpn, head) = self.run(images, Pass::Train { ground_truth, rng })?
        else {
            unreachable!("a training pass ends in losses")
        };
        let w = self.config.loss_weights;
        let total = ((((&rpn.loss_objectness * w.loss_objectness as f64)?
            + (&rpn.loss_rpn_box_reg * w.loss_rpn_box_reg as f64)?)?
            + (&head.loss_classifier * w.loss_classifier as f64)?)?
            + (&head.loss_box_reg * w.loss_box_reg as f64)?)?;
        Ok(DetectorLosses {
            loss_objectness: rpn.loss_objectness,
            loss_rpn_box_reg: rpn.loss_rpn_box_reg,
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
        Ok(self.inspect(images)?.detections)
    }

    /// What [`detect`](Self::detect) computes, stage by stage: the FPN maps, the RPN's
    /// proposals and the detections, for checking a stage against another implementation
    /// (the torchvision oracle test does) or looking inside. Features and proposals are in
    /// the network's pixels (after [`InputConfig`](crate::InputConfig) resizing and
    /// padding); detections in each image's own, as `detect` returns them.
    pub fn inspect(&self, images: &ImageBatch) -> Result<Inspection> {
        with_matmul_precision(self.precision, || {
            let Outcome::Inspection(inspection) = self.run(images, Pass::Test)? else {
                unreachable!("a test pass ends in detections")
            };
            Ok(inspection)
        })
    }

    /// The stage sequence, written once for both passes: prepare the batch → backbone and
    /// FPN → RPN → RoI heads → (at test) boxes back to each image's pixels. A training pass
    /// runs the stages over the variables and records a backward graph; a test pass runs the
    /// inference twin over their detached views.
    fn run(&self, images: &ImageBatch, pass: Pass<'_>) -> Result<Outcome> {
        let prepared = self.prepare(images)?;
        let sizes = &prepared.batch.sizes;
        // Training: the variables' stages, the ground truth in the network's pixels. Test: the
        // inference twin, on a detached input.
        let (stages, input, mut train) = match pass {
            Pass::Train { ground_truth, rng } => {
                let gt: Vec<GroundTruth> = prepared
                    .ground_truth_to_network(ground_truth)
                    .into_iter()
                    .map(drop_empty_boxes)
                    .collect();
                (
                    &self.training,
                    prepared.batch.tensor.clone(),
                    Some((gt, rng)),
                )
            }
            Pass::Test => (&self.inference, prepared.batch.tensor.detach(), None),
        };
        // Backbone and FPN.
        let features: Vec<FeatureMap> = stages.backbone.forward_t(&input, train.is_some())?;
        // RPN: proposals, and its losses in training.
        let (proposals, rpn_losses) = match &mut train {
            Some((gt, rng)) => {
                let out = stages.rpn.forward_train(&features, sizes, gt, rng)?;
                (out.proposals, Some(out.losses))
            }
            None => (stages.rpn.forward_test(&features, sizes)?, None),
        };
        let boxes: Vec<Vec<BBox>> = proposals.iter().map(|p| p.boxes.clone()).collect();
        // RoI heads: their losses in training; at test, detections mapped back to each
        // image's pixels.
        if let (Some((gt, rng)), Some(rpn_losses)) = (train, rpn_losses) {
            let head = stages
                .roi_heads
                .forward_train(&features, &boxes, &gt, rng)?;
            return Ok(Outcome::Losses(rpn_losses, head));
        }
        let mut detections = stages.roi_heads.forward_test(&features, &boxes, sizes)?;
        for (i, d) in detections.iter_mut().enumerate() {
            prepared.boxes_to_original(i, &mut d.boxes);
        }
        Ok(Outcome::Inspection(Inspection {
            features,
            proposals,
            detections,
        }))
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
