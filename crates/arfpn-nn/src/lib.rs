//! The layers, losses, optimisers and typed feature maps that the arfpn backbone, FPN, RPN
//! and RoI heads are built from, with torchvision's parameter names. The CPU arithmetic under
//! them (custom ops with their backward) is `arfpn-kernels`; this crate holds no `unsafe`.
//!
//! * [`Conv2d`] / [`conv2d`]: a convolution layer (weights from a `VarBuilder`) whose forward
//!   is `arfpn_kernels::conv2d_op`.
//! * [`GroupNorm`], [`FrozenBatchNorm2d`], [`BatchNorm2d`] with torchvision parameter names;
//!   [`NormKind`] (serialisable choice among them) and [`Norm`] (the built layer).
//! * [`Linear`] / [`linear`] (`arfpn_kernels::matmul_transposed`: bf16 products in a bf16 scope).
//! * the losses ([`cross_entropy`], [`softmax_focal_loss`], [`bce_with_logits`],
//!   [`smooth_l1`]) and seeded initialisation ([`SeededVarMap`], [`inits`]).
//! * [`SgdMomentum`] (PyTorch's SGD; its update is two fused in-place passes per variable),
//!   [`Adam`] and [`LrSchedule`].
//! * [`load_safetensors`] (weights into a `VarMap`, with a [`LoadReport`] of loaded,
//!   missing, unexpected and ignored tensors) and [`count_parameters`].
//! * [`FeatureMap`], [`ShapeSpec`], [`ImageBatch`]: what the stages pass to each other.
//!
//! # candle_nn layers that silently lack gradients (candle 0.11.1)
//!
//! These run forward fine but give **no gradient and no error** (`grads.get(x)` is `None`),
//! because they use `apply_op*_no_bwd`:
//! `candle_nn::ops::softmax_last_dim`, `ops::layer_norm`, `ops::rms_norm`, `ops::sdpa`, and
//! the `LayerNorm`/`RmsNorm` modules on contiguous input (they take the fused path).
//! Use `candle_nn::ops::softmax(x, D::Minus1)` and hand-written norms (as in [`GroupNorm`]).
//! Wrong rather than missing: `upsample_nearest2d`'s backward overwrites accumulated gradients
//! (use `arfpn_kernels::upsample_nearest2x`); `max_pool2d`/`avg_pool2d` have no backward when kernel ≠
//! stride; `conv2d`'s backward fails for stride 2 with H, W of different parity;
//! `upsample_bilinear2d` has no backward (error); `candle_nn::SGD` has neither momentum nor
//! weight decay. The crate's tests check the softmax_last_dim, layer_norm, upsample and conv
//! cases against candle so that a candle upgrade that fixes them is noticed.

#![forbid(unsafe_code)]

mod adam;
mod conv;
mod error;
mod feature_map;
mod image_batch;
mod init;
mod linear;
mod loss;
mod lr_schedule;
mod norm;
mod norm_kind;
mod safetensors_io;
mod sgd;

pub use adam::{Adam, AdamConfig, AdamState};
pub use conv::{conv2d, Conv2d};
pub use error::{LoadError, NnError};
pub use feature_map::{FeatureMap, FeatureMaps, ShapeSpec};
pub use image_batch::{pad_to_multiple, ImageBatch};
pub use init::{init_values, inits, SeededVarMap};
pub use linear::{linear, Linear};
pub use loss::{
    all_finite, balanced_class_weights, bce_with_logits, cross_entropy, log_softmax, smooth_l1,
    softmax_focal_loss,
};
pub use lr_schedule::{LrDecay, LrSchedule};
pub use norm::{
    batch_norm2d, frozen_batch_norm2d, group_norm, BatchNorm2d, FrozenBatchNorm2d, GroupNorm,
};
pub use norm_kind::{Norm, NormKind};
pub use safetensors_io::{count_parameters, load_safetensors, LoadReport};
pub use sgd::{SgdConfig, SgdMomentum};
