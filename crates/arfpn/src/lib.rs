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
//! | `field.rs` | [`detect_tiled`], [`TileConfig`]: whole fields in overlapping tiles, merged so each cell counts once |
//! | `scale.rs` | [`DataInfo`] (training cell size), [`estimate_cell_size`], `detect_at_scale` |
//! | `export.rs` | [`coco_results`], [`voc_annotation`], [`class_counts`] |
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

mod augment;
mod checkpoint;
mod config;
mod detector;
mod draw;
mod error;
mod evaluate;
mod export;
mod field;
mod image;
mod input;
pub mod presets;
mod pretrained;
mod scale;
mod tiled_data;
mod torchvision;
mod trainer;

pub use augment::{augment, AugmentConfig};
pub use checkpoint::{write_atomic, Checkpoint, CheckpointState, LoadReport, STATE_PREFIX};
pub use config::{DetectorConfig, LossWeights};
pub use detector::{Detector, DetectorLosses, Inspection, LossValues};
pub use draw::{class_colour, draw_detections, CLASS_COLOURS};
pub use error::{DetectorError, Result};
pub use evaluate::{metrics_dataset, voc_map};
pub use export::{class_counts, coco_results, voc_annotation, CocoResult};
pub use field::{detect_tiled, TileConfig};
pub use image::{image_tensor, load_image};
pub use input::InputConfig;
pub use scale::{estimate_cell_size, median_cell_estimate, typical_cell_size, DataInfo};
pub use tiled_data::{CropRect, TiledData};
pub use trainer::{
    detect_all, epoch_entries, latest_checkpoint, plot_log, step_schedule, EvalEvent,
    OptimizerConfig, OversampleConfig, Silent, SkipEvent, StepEvent, TrainConfig, TrainData,
    TrainObserver, TrainSummary, Trainer,
};

pub use arfpn_boxes::{BBox, ClassId, Detections, GroundTruth, ImageSize};
pub use arfpn_nn::{bf16_matmul_available, ImageBatch, MatmulPrecision};

/// The README's Rust snippets, compiled and run as doctests so they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
