//! Typed boxes and the box operations shared by the arfpn crates.
//!
//! This crate has no tensor dependency: datasets, metrics and the detector's CPU-side
//! target assignment all speak [`BBox`] slices.
//!
//! | file | what |
//! |---|---|
//! | `bbox.rs` | [`BBox`] |
//! | `iou.rs` | [`iou_matrix`], [`pairwise_iou`] |
//! | `box_coder.rs` | [`BoxCoder`]: deltas with weights and the `ln(1000/16)` clamp |
//! | `box_ops.rs` | [`clip_boxes`], [`remove_small_boxes`] |
//! | `matcher.rs` | [`Matcher`] → [`Match`] (`Matched(gt)` / `Background` / `Ignore`) |
//! | `sampler.rs` | [`BalancedSampler`] → [`BalancedSample`] |
//! | `nms.rs` | [`nms`], [`batched_nms`] |
//! | `rng.rs` | [`SplitMix64`], the seeded generator of the whole workspace |
//! | `class_id.rs` | [`ClassId`] (a newtype), [`background_index`] |
//! | `image_size.rs` | [`ImageSize`] `{ height, width }` |
//! | `ground_truth.rs` | [`GroundTruth`] (what a detector trains on), [`Detections`] (what it returns) |
//! | `top_k.rs` | [`top_k`] |
//!
//! # Pixel convention
//! Boxes are **continuous corner coordinates** `(x1, y1, x2, y2)` in pixels of the image
//! they belong to: pixel `(i, j)` covers the square `[i, i+1) × [j, j+1)`, so a box that
//! covers exactly pixels `0..=9` horizontally is `x1 = 0, x2 = 10` and has width 10.
//! This is torchvision's and detectron2's convention (areas are `w * h`, no `+1`).
//! Pascal VOC files store 1-based inclusive pixel indices; `arfpn-voc` converts them in
//! exactly one place (`xmin - 1`, `xmax` unchanged).
//!
//! # Class labels and background
//! A [`ClassId`] always names a *foreground* class, `0..num_classes`, in datasets,
//! detections and metrics alike. Background is never a `ClassId`; a classifier that needs
//! a background column puts it **last**, at [`background_index`]`(num_classes)`
//! (detectron2's convention). Matchers label anchors with enums, not magic numbers.

#![forbid(unsafe_code)]

mod bbox;
mod box_coder;
mod box_ops;
mod class_id;
mod error;
mod ground_truth;
mod image_size;
mod iou;
mod matcher;
mod nms;
mod rng;
mod sampler;
mod top_k;

pub use bbox::BBox;
pub use box_coder::{BoxCoder, Deltas, DEFAULT_SCALE_CLAMP};
pub use box_ops::{clip_boxes, remove_small_boxes};
pub use class_id::{background_index, ClassId};
pub use error::BoxError;
pub use ground_truth::{Detections, GroundTruth};
pub use image_size::ImageSize;
pub use iou::{iou_matrix, pairwise_iou};
pub use matcher::{Match, Matcher};
pub use nms::{batched_nms, nms};
pub use rng::SplitMix64;
pub use sampler::{BalancedSample, BalancedSampler};
pub use top_k::top_k;
