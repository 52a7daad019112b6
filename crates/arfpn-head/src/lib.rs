//! The Fast R-CNN box head of the arfpn detector (candle): RoI pooling over named FPN
//! levels, an MLP or conv box head, a class-specific predictor, training targets, losses and
//! post-processing — torchvision's `RoIHeads`, split by job.
//!
//! | file | what |
//! |---|---|
//! | `pooler.rs` | [`PoolerConfig`] (levels by name, [`Sampling`], [`PoolKind`] RoIAlign/RoIPool) → [`Pooler`] |
//! | `box_head.rs` | [`BoxHeadConfig`]: [`TwoMlpHead`] (`fc6`/`fc7`, torchvision) or [`ConvFcHead`] (4 conv + GN + 1 fc, detectron2) |
//! | `predictor.rs` | [`FastRcnnPredictor`]: `cls_score` (K + 1, background last), `bbox_pred` (4K); [`torchvision_to_ours`] |
//! | `sampling.rs` | [`select_training_rois`]: ground truth added to proposals, matcher 0.5, 512 RoIs / 25 % positives, deltas (10, 10, 5, 5) |
//! | `loss.rs` | [`fast_rcnn_loss`]: [`ClassificationLoss`] (CE, weighted CE, focal) + smooth-L1 (β = 1/9) / sampled RoIs |
//! | `postprocess.rs` | [`postprocess`]: softmax, per-class decode, clip, threshold 0.05, NMS 0.5, ≤ 1000 per image |
//! | `config.rs` | [`RoiHeadConfig`] (serde) |
//! | `roi_heads.rs` | [`RoiHeads`]: `forward_train` → losses, `forward_test` → [`Detections`](arfpn_boxes::Detections) |
//!
//! Labels follow the workspace rule: a [`ClassId`](arfpn_boxes::ClassId) is a foreground class
//! `0..K`; the classifier's background column is the last one.

#![forbid(unsafe_code)]

mod box_head;
mod config;
mod error;
mod loss;
mod pooler;
mod postprocess;
mod predictor;
mod roi_heads;
mod sampling;

pub use box_head::{BoxHead, BoxHeadConfig, ConvFcHead, TwoMlpHead};
pub use config::RoiHeadConfig;
pub use error::{HeadError, Result};
pub use loss::{class_weights_from_counts, fast_rcnn_loss, ClassificationLoss, RoiHeadLosses};
pub use pooler::{PoolKind, Pooler, PoolerConfig, Sampling};
pub use postprocess::{postprocess, PostProcessConfig};
pub use predictor::{torchvision_to_ours, FastRcnnPredictor};
pub use roi_heads::RoiHeads;
pub use sampling::{select_training_rois, RoiTargets};
