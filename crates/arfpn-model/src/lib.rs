//! # arfpn-model — the ARFPN detector model
//!
//! The Attention Residual Feature Pyramid Network of Song et al. (*Front. Med.* 2021) as a
//! model: image → attention-residual ResNet → FPN → RPN → RoIAlign → Fast R-CNN head →
//! detections (the paper's Figure 2), composed from the workspace's parts, with its
//! configuration, presets, checkpoints and input-scale description. Most users depend on the
//! `arfpn` facade, which re-exports this crate at its root; training is `arfpn-train`, the
//! laboratory tools (whole fields, pictures, exports, reports) are `arfpn-lab`.
//!
//! ```no_run
//! use arfpn_model::{load_image, Detector};
//! use candle_core::Device;
//!
//! let detector = Detector::load("model.safetensors", &Device::Cpu)?;
//! let image = load_image("smear.jpg", &Device::Cpu)?;
//! let detections = detector.detect_image(&image)?.above(0.5);
//! println!("{} cells", detections.len());
//! # Ok::<(), arfpn_model::DetectorError>(())
//! ```
//!
//! | file | what |
//! |---|---|
//! | `config.rs` | [`DetectorConfig`]: the serde tree (input, backbone, fpn, rpn, roi_heads, data), JSON and TOML |
//! | `presets.rs` | [`presets`]: `fpn`/`c-arfpn`/`s-arfpn`/`cs-arfpn` × R18/34/50/101, `cpu-small` |
//! | `input.rs` | [`InputConfig`]: normalisation, torchvision-style resizing, padding; boxes mapped back |
//! | `detector.rs` | [`Detector`], every method of it: `forward_train` → [`DetectorLosses`], `detect` → `Vec<Detections>`, saving and loading |
//! | `checkpoint.rs` | [`Checkpoint`]: safetensors checkpoints with the config in the metadata, atomic writes |
//! | `pretrained.rs` | torchvision ImageNet backbone weights ([`Detector::load_backbone_weights`]) |
//! | `torchvision.rs` | a whole torchvision Faster R-CNN state dict ([`Detector::from_torchvision`]) |
//! | `image.rs` | [`image_tensor`], [`load_image`] |
//! | `scale.rs` | [`DataInfo`] (the training data's cell size), [`DataInfo::rescale_decision`], [`typical_cell_size`] |
//! | `cell_size.rs` | [`estimate_cell_size_with_confidence`]: a single image's red-cell size (gradient voting for circle centres) |
//! | `error.rs` | [`DetectorError`], the error of this crate and of `arfpn-train` and `arfpn-lab` |
//!
//! ## Why the cell-size estimator is part of the model
//!
//! A detector only works near the magnification it was trained at, so the input scale is
//! part of the model's contract: the trainer records the training data's cell size in the
//! checkpoint ([`DetectorConfig::data`], a [`DataInfo`], from the annotations and from
//! [`median_cell_estimate`]), and detection rescales each image to it from the image's own
//! estimate ([`estimate_cell_size_with_confidence`], [`DataInfo::rescale_decision`]). Both
//! training and the lab tools need the estimator; keeping it here, beside the description it
//! is compared with, spares the training crate a dependency on the lab crate.
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `toml` | off | TOML detector configs ([`DetectorConfig::from_toml`]); JSON always works |
//! | `default-model` | off | the shipped blood-cell model, embedded (`Detector::default_model`) |
//! | `cuda` | off | candle's CUDA backend and the CUDA RoIAlign kernels (the device stays a run-time choice) |
//!
//! (The `arfpn` facade turns `toml` and `default-model` on by default.)
//!
//! Training, step by step (`arfpn_train::Trainer` wraps this):
//!
//! ```
//! use arfpn_model::{presets, Detector};
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

mod cell_size;
mod checkpoint;
mod config;
mod detector;
mod error;
mod image;
mod input;
pub mod presets;
mod pretrained;
mod scale;
mod torchvision;

pub use cell_size::{estimate_cell_size, estimate_cell_size_with_confidence, CellSizeEstimate};
pub use checkpoint::{write_atomic, Checkpoint, CheckpointState, LoadReport, STATE_PREFIX};
pub use config::{DetectorConfig, LossWeights};
pub use detector::{Detector, DetectorLosses, Inspection, LossValues};
pub use error::{DetectorError, Result};
pub use image::{image_tensor, load_image};
pub use input::InputConfig;
pub use scale::{
    median_cell_estimate, typical_cell_size, DataInfo, RescaleDecision, RESCALE_TOLERANCE,
};

pub use arfpn_boxes::{BBox, ClassId, Detections, GroundTruth, ImageSize};
pub use arfpn_kernels::{bf16_matmul_available, MatmulPrecision};
pub use arfpn_nn::ImageBatch;
