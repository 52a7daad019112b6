//! The CPU kernels of the arfpn detector: each a candle custom op with its own backward, so
//! that training runs fast on CPUs and every gradient candle 0.11 lacks or gets wrong is
//! there. All of the workspace's `unsafe` code and inline assembly lives here, each block
//! with a `SAFETY:` comment.
//!
//! | file | what |
//! |---|---|
//! | `conv.rs` | [`conv2d_op`], [`Conv2dConfig`]: the convolution's custom ops (forward, input, weight and bias gradients); candle's conv on other devices |
//! | `conv_cpu.rs` | im2col / col2im tiles around the `gemm` crate's product (f32, f64) |
//! | `conv_cpu/bf16.rs` | the same with bf16 operands on AMX |
//! | `conv_cpu/winograd.rs` | Winograd F(2×2, 3×3): the 3×3 stride-1 convolutions on maps of ≥ 256 2×2 tiles, 2.25× fewer multiply-adds (f32, f64; `ARFPN_NO_WINOGRAD=1` turns it off) |
//! | `matmul.rs` | [`matmul_transposed`]: a linear layer's product, bf16 on AMX in a bf16 scope |
//! | `amx.rs` | bf16 rounding and packing into AMX tile layouts, the blocked product's driver |
//! | `amx/x86.rs` | the `TDPBF16PS` kernel in inline assembly, CPUID and the kernel's permission |
//! | `precision.rs` | [`MatmulPrecision`], [`with_matmul_precision`]: the per-thread bf16 scope |
//! | `cbam.rs` | [`cbam`], [`cbam_add_relu`], [`cbam_with_maps`] (fused CBAM), [`cbam_composed`] (candle ops) |
//! | `cbam/cpu.rs` | the fused CBAM forward and backward arithmetic |
//! | `gate.rs` | [`gate`], [`gate_add_relu`], [`channel_mean`]: the attention modules' arithmetic |
//! | `group_norm.rs` | [`group_norm_fused`]: GroupNorm (+ ReLU) in one op |
//! | `affine.rs` | [`channel_affine`], [`affine_add_relu`]: the frozen batch norm's fused forms |
//! | `relu.rs` | [`relu`], [`add_relu`] |
//! | `amax.rs` | [`amax_keepdim`]: max over a dimension, tie-splitting gradient |
//! | `pool.rs` | [`max_pool2d`] with padding and kernel ≠ stride |
//! | `upsample.rs` | [`upsample_nearest2x`], [`add_upsample_nearest2x`] (accumulating backward) |
//! | `element.rs` | [`Element`]: the one f32/f64 trait of every kernel |
//! | `dispatch.rs` | [`dispatch_float!`]: the one f32/f64 dispatch of the ops' CPU forwards |
//! | `storage.rs` | [`contiguous_slice`], [`fused_cpu`]: CPU storage access; outputs built without zero-filling |
//! | `denormals.rs` | [`flush_denormals`]: FTZ/DAZ on this thread and rayon's pool |
//! | `allocator.rs` | [`keep_freed_memory`]: glibc tuning against page-fault churn |
//! | `error.rs` | [`KernelError`] |
//!
//! The ops take f32 and f64 on the CPU; on other devices the public functions compose
//! candle's ops (or use candle's, for the convolution), so layers built on them run anywhere.
//! Layers with weights (`Conv2d`, `Linear`, `GroupNorm`, frozen batch norm) are in
//! `arfpn-nn`, which calls these.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod affine;
mod allocator;
mod amax;
mod amx;
mod cbam;
mod conv;
mod conv_cpu;
mod denormals;
mod dispatch;
mod element;
mod error;
mod gate;
mod group_norm;
mod matmul;
mod pool;
mod precision;
mod relu;
mod storage;
mod upsample;

pub use affine::{affine_add_relu, channel_affine, Affine};
pub use allocator::keep_freed_memory;
pub use amax::amax_keepdim;
pub use cbam::{
    cbam, cbam_add_relu, cbam_composed, cbam_with_maps, CbamOutput, ChannelGateWeights,
    SpatialGateWeights,
};
pub use conv::{conv2d_op, Conv2dConfig};
pub use denormals::{denormals_flushed, flush_denormals};
pub use element::Element;
pub use error::KernelError;
pub use gate::{channel_mean, gate, gate_add_relu};
pub use group_norm::group_norm_fused;
pub use matmul::matmul_transposed;
pub use pool::max_pool2d;
pub use precision::{
    bf16_matmul_available, matmul_precision, with_matmul_precision, MatmulPrecision,
};
pub use relu::{add_relu, relu};
pub use storage::{contiguous_slice, fused_cpu};
pub use upsample::{add_upsample_nearest2x, upsample_nearest2x};
