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
//! for (class, n) in arfpn::class_counts(&detections, detector.classes()) {
//!     println!("{class:>12}: {n}");
//! }
//! # Ok::<(), arfpn::DetectorError>(())
//! ```
//!
//! | file | what |
//! |---|---|
//! | `config.rs` | [`DetectorConfig`]: the serde tree (input, backbone, fpn, rpn, roi_heads), JSON and TOML |
//! | `presets.rs` | [`presets`]: `fpn`/`c-arfpn`/`s-arfpn`/`cs-arfpn` × R18/34/50/101, `cpu-small` |
//! | `input.rs` | [`InputConfig`]: normalisation, torchvision-style resizing, padding; boxes mapped back |
//! | `detector.rs` | [`Detector`]: `forward_train` → [`DetectorLosses`], `detect` → `Vec<Detections>` |
//! | `checkpoint.rs` | safetensors checkpoints with the config in the metadata, atomic writes |
//! | `pretrained.rs` | torchvision ImageNet backbone weights |
//! | `torchvision.rs` | [`Detector::from_torchvision`]: a whole torchvision Faster R-CNN state dict |
//! | `image.rs` | [`image_tensor`], [`load_image`] |
//! | `evaluate.rs` | [`voc_map`], [`metrics_dataset`]: scores with `arfpn-metrics` |
//! | `trainer.rs` | [`Trainer`], [`TrainConfig`]: SGD/Adam, schedule, clipping, NaN guard, eval, resumable checkpoints |
//! | `augment.rs` | [`AugmentConfig`]: flips, random crops |
//! | `draw.rs` | [`draw_detections`]: boxes in class colours |
//! | `field.rs` | [`detect_tiled`], [`FieldTiling`]: whole fields in overlapping tiles, merged so each cell counts once |
//! | `cell_size.rs` | [`estimate_cell_size_with_confidence`]: a single image's red-cell size (gradient voting for circle centres) |
//! | `scale.rs` | [`DataInfo`] (training cell size), [`DataInfo::rescale_decision`], `detect_at_scale` |
//! | `export.rs` | [`coco_results`], [`voc_annotation`], [`class_counts`] |
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `train` | on | [`Trainer`], [`TrainData`], augmentation, tiled training data, evaluation ([`voc_map`]), loss and mAP plots; brings `arfpn-metrics` and `plotters` |
//! | `toml` | on | TOML detector configs ([`DetectorConfig::from_toml`]); JSON always works |
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

#[cfg(feature = "train")]
mod augment;
mod cell_size;
mod checkpoint;
mod config;
mod detector;
mod draw;
mod error;
#[cfg(feature = "train")]
mod evaluate;
mod export;
mod field;
mod image;
mod input;
pub mod presets;
mod pretrained;
mod scale;
#[cfg(feature = "train")]
mod tiled_data;
mod torchvision;
#[cfg(feature = "train")]
mod trainer;

#[cfg(feature = "train")]
pub use augment::{augment, AugmentConfig};
pub use cell_size::{estimate_cell_size, estimate_cell_size_with_confidence, CellSizeEstimate};
pub use checkpoint::{write_atomic, Checkpoint, CheckpointState, LoadReport, STATE_PREFIX};
pub use config::{DetectorConfig, LossWeights};
pub use detector::{Detector, DetectorLosses, Inspection, LossValues};
pub use draw::{class_colour, draw_detections, CLASS_COLOURS};
pub use error::{DetectorError, Result};
#[cfg(feature = "train")]
pub use evaluate::{metrics_dataset, voc_map};
pub use export::{class_counts, coco_results, voc_annotation, CocoDetection};
pub use field::{detect_tiled, FieldTiling};

/// The old name of [`FieldTiling`] (whole-field inference tiles), renamed because
/// `arfpn_voc::tiling::TileConfig` (training crops) is another thing.
#[deprecated(since = "0.1.0", note = "renamed `FieldTiling`")]
pub type TileConfig = FieldTiling;
/// The old name of [`CocoDetection`] (one record of a COCO results file), renamed because
/// `arfpn_metrics::CocoResult` is a COCOeval summary.
#[deprecated(since = "0.1.0", note = "renamed `CocoDetection`")]
pub type CocoResult = CocoDetection;
pub use image::{image_tensor, load_image};
pub use input::InputConfig;
pub use scale::{
    median_cell_estimate, typical_cell_size, DataInfo, RescaleDecision, RESCALE_TOLERANCE,
};
#[cfg(feature = "train")]
pub use tiled_data::{CropRect, TiledData};
#[cfg(feature = "train")]
pub use trainer::{
    detect_all, epoch_entries, latest_checkpoint, plot_log, step_schedule, EvalEvent,
    OptimizerConfig, OversampleConfig, Silent, SkipEvent, StepEvent, TrainConfig, TrainData,
    TrainObserver, TrainSummary, Trainer,
};

pub use arfpn_boxes::{BBox, ClassId, Detections, GroundTruth, ImageSize};
pub use arfpn_kernels::{bf16_matmul_available, MatmulPrecision};
pub use arfpn_nn::ImageBatch;

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
/// configuration, training, images and boxes, optimizers, the backbone's choices and the
/// custom-module traits, and candle's `Device`, `DType`, `Tensor` and `Optimizer`.
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
    pub use crate::presets::{self, PresetName, Variant};
    pub use crate::{
        class_counts, image_tensor, load_image, BBox, ClassId, Detections, Detector,
        DetectorConfig, DetectorError, GroundTruth, ImageBatch, ImageSize, MatmulPrecision,
    };
    #[cfg(feature = "train")]
    pub use crate::{AugmentConfig, OptimizerConfig, TrainConfig, TrainData, Trainer};
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
