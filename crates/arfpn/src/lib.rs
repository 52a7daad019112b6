//! # arfpn — the ARFPN blood-smear detector
//!
//! The Attention Residual Feature Pyramid Network of Song et al. (*Front. Med.* 2021) as a
//! library: image → attention-residual ResNet → FPN → RPN → RoIAlign → Fast R-CNN head →
//! detections (the paper's Figure 2), composed from the workspace's parts.
//!
//! ```no_run
//! use arfpn::{load_image, Detector};
//! use candle_core::Device;
//!
//! let detector = Detector::load("model.safetensors", &Device::Cpu)?;
//! let image = load_image("smear.jpg", &Device::Cpu)?;
//! let detections = detector.detect_image(&image)?.above(0.5);
//! for (class, n) in arfpn::lab::class_counts(&detections, detector.classes()) {
//!     println!("{class:>12}: {n}");
//! }
//! # Ok::<(), arfpn::DetectorError>(())
//! ```
//!
//! This crate is the one to depend on; it puts three crates, split by job, behind one name:
//!
//! | crate | here | what |
//! |---|---|---|
//! | `arfpn-model` | the root (`arfpn::*`) | [`Detector`] and everything it is made of and saved as: [`DetectorConfig`], [`presets`], [`InputConfig`], [`Checkpoint`], torchvision import, [`image_tensor`], [`DetectorError`]; the input-scale contract ([`DataInfo`], [`estimate_cell_size_with_confidence`]) |
//! | `arfpn-train` | [`train`] (feature `train`) | [`train::Trainer`], [`train::TrainConfig`], [`train::TrainData`], augmentation, tiled training data, evaluation ([`train::voc_map`]), loss and mAP plots |
//! | `arfpn-lab` | [`lab`] | whole fields ([`lab::detect_field`]), detection at a rescaled magnification ([`lab::detect_at_scale`]), pictures ([`lab::draw_detections`]), COCO/VOC export, counts ([`lab::class_counts`]) and the differential-count report ([`lab::count_report_html`]) |
//!
//! Each has its own crate docs with a table of its files. The parts the model is composed of
//! are here too ([`backbone`], [`fpn`], [`rpn`], [`roi_align`], [`head`], [`boxes`], [`nn`], [`kernels`],
//! [`voc`], [`metrics`] with `train`), with `candle_core`, `candle_nn` and `serde_json`, so
//! that a dependent needs only `arfpn`; [`prelude`] imports what applications use.
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `train` | on | [`train`]: the trainer, training data, augmentation, tiled training data, evaluation, loss and mAP plots; brings `arfpn-metrics` and `plotters` |
//! | `toml` | on | TOML detector configs ([`DetectorConfig::from_toml`]); JSON always works |
//! | `default-model` | on | the shipped blood-cell model, embedded (`Detector::default_model`, about 8 MB) |
//! | `cuda` | off | candle's CUDA backend and the CUDA RoIAlign kernels (the device stays a run-time choice) |
//!
//! An application that only loads a checkpoint and detects (counts, draws, exports) depends
//! on `arfpn = { version = "0.1", default-features = false }`.
//!
//! Training, step by step (the `Trainer` wraps this):
//!
//! ```
//! use arfpn::{presets, Detector};
//! use arfpn_boxes::{BBox, ClassId, GroundTruth, SplitMix64};
//! use arfpn_nn::{ImageBatch, SgdConfig, SgdMomentum};
//! use candle_core::{Device, Tensor};
//! use candle_nn::Optimizer;
//!
//! let mut cfg = presets::cpu_small(&["cell"]);
//! cfg.backbone.width = 8;
//! cfg.fpn.out_channels = 16;
//! let det = Detector::new(cfg, 0, &Device::Cpu)?;
//! let mut opt = SgdMomentum::new(det.trainable_vars(), SgdConfig { lr: 0.01, ..SgdConfig::default() })?;
//! let image = Tensor::rand(0f32, 1., (3, 64, 64), &Device::Cpu)?;
//! let batch = ImageBatch::from_images(&[image], 1)?;
//! let gt = GroundTruth::new(vec![BBox::new(10.0, 10.0, 30.0, 28.0)], vec![ClassId::new(0)])?;
//! let mut rng = SplitMix64::new(1);
//! let losses = det.forward_train(&batch, &[gt], &mut rng)?;
//! opt.backward_step(&losses.total)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// The model (`arfpn-model`): the detector, its configuration and checkpoints, at the root.
pub use arfpn_model::*;

/// Laboratory tools (`arfpn-lab`): whole fields, rescaled detection, pictures, exports,
/// counts and the differential-count report.
pub use arfpn_lab as lab;
/// Training (`arfpn-train`, feature `train`): the trainer, its data and configuration,
/// augmentation, evaluation and plots.
#[cfg(feature = "train")]
pub use arfpn_train as train;

// The parts, each reachable from here, so that a dependent needs only `arfpn` (and every type
// a public signature of this crate mentions has a path through it).
pub use arfpn_backbone as backbone;
pub use arfpn_boxes as boxes;
pub use arfpn_fpn as fpn;
pub use arfpn_head as head;
pub use arfpn_kernels as kernels;
#[cfg(feature = "train")]
pub use arfpn_metrics as metrics;
pub use arfpn_nn as nn;
pub use arfpn_roi_align as roi_align;
pub use arfpn_rpn as rpn;
pub use arfpn_voc as voc;
pub use candle_core;
pub use candle_nn;
/// `serde_json`, as custom-module parameters ([`backbone::AttentionKind::custom`]) and
/// configuration take `serde_json::Value`.
pub use serde_json;

/// What applications use, in one import: `use arfpn::prelude::*;` — the detector and its
/// configuration, training, images and boxes, counts, optimizers, the backbone's choices and
/// the custom-module traits, and candle's `Device`, `DType`, `Tensor` and `Optimizer`.
///
/// ```
/// use arfpn::prelude::*;
/// let mut config = presets::cpu_small(&["rbc"]);
/// (config.backbone.width, config.fpn.out_channels) = (8, 16);
/// config.backbone.attention = AttentionKind::channel();
/// let detector = Detector::new(config, 0, &Device::Cpu)?;
/// let mut sgd = SgdMomentum::new(detector.trainable_vars(), SgdConfig::default())?;
/// let image = Tensor::rand(0f32, 1., (3, 64, 64), &Device::Cpu)?;
/// let batch = ImageBatch::from_images(&[image], 1)?;
/// let truth = GroundTruth::new(vec![BBox::new(8.0, 8.0, 30.0, 28.0)], vec![ClassId::new(0)])?;
/// let losses = detector.forward_train(&batch, &[truth], &mut SplitMix64::new(0))?;
/// sgd.backward_step(&losses.total)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod prelude {
    pub use crate::lab::class_counts;
    pub use crate::presets::{self, PresetName, Variant};
    #[cfg(feature = "train")]
    pub use crate::train::{AugmentConfig, OptimizerConfig, TrainConfig, TrainData, Trainer};
    pub use crate::{
        image_tensor, load_image, BBox, ClassId, Detections, Detector, DetectorConfig,
        DetectorError, GroundTruth, ImageBatch, ImageSize, MatmulPrecision,
    };
    pub use arfpn_backbone::{
        register_attention, register_backbone, Attention, AttentionFactory, AttentionKind,
        AttentionSite, Backbone, NormKind, ResNetConfig, Reweighting,
    };
    pub use arfpn_boxes::SplitMix64;
    pub use arfpn_nn::{Adam, AdamConfig, LrDecay, LrSchedule, SgdConfig, SgdMomentum};
    pub use arfpn_voc::RgbImage;
    pub use candle_core::{DType, Device, Tensor};
    pub use candle_nn::Optimizer;
}

/// The README's Rust snippets, compiled and run as doctests so they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
