//! RoIAlign and RoIPool for [candle](https://github.com/huggingface/candle), with
//! torchvision's exact semantics, forward and backward, on CPU and (feature `cuda`) NVIDIA
//! GPUs, plus [`MultiScaleRoIAlign`] to pool boxes from a feature pyramid.
//!
//! * [`roi_align`] / [`roi_pool`] mirror `torchvision.ops.roi_align` / `roi_pool`: `input`
//!   `[N, C, H, W]`, `boxes` `[K, 5]` rows `(batch_index, x1, y1, x2, y2)` in image
//!   coordinates, output `[K, C, ph, pw]`. Both are candle custom ops whose backward is itself
//!   a custom op, so `loss.backward()` reaches the feature maps. f32 and f64.
//! * CPU: rayon-parallel, deterministic backward without atomics. CUDA (feature `cuda`):
//!   kernels in `kernels/*.cu`, compiled to PTX by `build.rs` with nvcc (see
//!   `scripts/cuda-env.sh`), one thread per output element, `atomicAdd` backward.
//! * Errors: bad arguments give a [`RoiError`] (wrapped in `candle_core::Error`) naming the
//!   operation and the argument.
//!
//! `aligned` / `sampling_ratio`: torchvision's Faster R-CNN uses `false` / 2, Detectron2
//! `true` / 0 (adaptive). The arfpn detector uses Detectron2's (the half-pixel shift makes a box
//! pool exactly the pixels it covers); both ops take either.

// The CUDA launch glue (`cuda.rs`) allocates device memory and launches kernels.
#![cfg_attr(not(feature = "cuda"), forbid(unsafe_code))]

mod checks;
#[cfg(feature = "cuda")]
mod cuda;
mod error;
mod multi_scale;
mod roi_align;
mod roi_pool;
mod rois;

pub use error::RoiError;
pub use multi_scale::MultiScaleRoIAlign;
pub use roi_align::roi_align;
pub use roi_pool::roi_pool;
pub use rois::Rois;
