//! Layers candle 0.11 lacks or gets wrong, and the typed feature maps that the arfpn
//! backbone, FPN, RPN and RoI heads pass to each other.
//!
//! * [`conv2d_op`] / [`Conv2d`]: convolution whose CPU forward and backward (input, weight
//!   and bias gradients) are im2col + matrix-product custom ops; correct for every size and
//!   stride (candle's stride-2 backward fails when H and W differ in parity).
//! * [`cbam`]: CBAM attention (channel and spatial gates, Woo et al. 2018) as one fused CPU
//!   op with its own backward; [`cbam_composed`] is the same in candle ops.
//! * [`max_pool2d`]: padding and kernel ≠ stride, with a backward.
//! * [`upsample_nearest2x`]: a backward that accumulates.
//! * [`GroupNorm`], [`FrozenBatchNorm2d`], [`BatchNorm2d`] with torchvision parameter names;
//!   [`NormKind`] (serialisable choice among them) and [`Norm`] (the built layer).
//! * [`load_safetensors`] (weights into a `VarMap`, with a [`LoadReport`] of loaded,
//!   missing, unexpected and ignored tensors) and [`count_parameters`].
//! * [`SgdMomentum`] (PyTorch's SGD) and [`LrSchedule`].
//! * [`with_matmul_precision`]: bf16 products (f32 accumulation, Intel AMX) in the forward
//!   pass of convolutions and linear layers, PyTorch `autocast`'s CPU counterpart.
//! * [`linear`], the losses ([`cross_entropy`], [`softmax_focal_loss`], [`bce_with_logits`],
//!   [`smooth_l1`]) and seeded initialisation ([`SeededVarMap`], [`inits`]).
//!
//! # candle_nn layers that silently lack gradients (candle 0.11.1)
//!
//! These run forward fine but give **no gradient and no error** (`grads.get(x)` is `None`),
//! because they use `apply_op*_no_bwd`:
//! `candle_nn::ops::softmax_last_dim`, `ops::layer_norm`, `ops::rms_norm`, `ops::sdpa`, and
//! the `LayerNorm`/`RmsNorm` modules on contiguous input (they take the fused path).
//! Use `candle_nn::ops::softmax(x, D::Minus1)` and hand-written norms (as in [`GroupNorm`]).
//! Wrong rather than missing: `upsample_nearest2d`'s backward overwrites accumulated gradients
//! (use [`upsample_nearest2x`]); `max_pool2d`/`avg_pool2d` have no backward when kernel ≠
//! stride; `conv2d`'s backward fails for stride 2 with H, W of different parity;
//! `upsample_bilinear2d` has no backward (error); `candle_nn::SGD` has neither momentum nor
//! weight decay. The crate's tests check the softmax_last_dim, layer_norm, upsample and conv
//! cases against candle so that a candle upgrade that fixes them is noticed.

mod adam;
mod affine_cpu;
mod allocator;
mod amax;
mod amx;
mod cbam;
mod conv;
mod conv_cpu;
mod denormals;
mod error;
mod feature_map;
mod gate;
mod group_norm_cpu;
mod image_batch;
mod init;
mod linear;
mod loss;
mod lr_schedule;
mod norm;
mod norm_kind;
mod pool;
mod precision;
mod real;
mod relu;
mod safetensors_io;
mod sgd;
mod storage;
mod upsample;

pub use adam::{Adam, AdamConfig, AdamState};
pub use allocator::keep_freed_memory;
pub use amax::amax_keepdim;
pub use cbam::{
    cbam, cbam_add_relu, cbam_composed, cbam_with_maps, CbamOutput, ChannelGateWeights,
    SpatialGateWeights,
};
pub use conv::{conv2d, conv2d_op, Conv2d, Conv2dConfig};
pub use denormals::{denormals_flushed, flush_denormals};
pub use error::{LoadError, NnError};
pub use feature_map::{FeatureMap, FeatureMaps, ShapeSpec};
pub use gate::{channel_mean, gate, gate_add_relu};
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
pub use pool::max_pool2d;
pub use precision::{
    bf16_matmul_available, matmul_precision, with_matmul_precision, MatmulPrecision,
};
pub use relu::{add_relu, relu};
pub use safetensors_io::{count_parameters, load_safetensors, LoadReport};
pub use sgd::{SgdConfig, SgdMomentum};
pub use upsample::{add_upsample_nearest2x, upsample_nearest2x};
