//! The precision of the matrix products in the forward pass of [`conv2d_op`] and
//! [`Linear`]: f32 (the default) or bf16 operands with f32 accumulation on CPUs with Intel
//! AMX — the CPU counterpart of PyTorch's `torch.autocast("cpu", dtype=torch.bfloat16)` for
//! these two layers.
//!
//! Like `autocast`, the choice is a per-thread scope ([`with_matmul_precision`]): the
//! weights stay f32, each product rounds its two operands to bf16 (round to nearest even)
//! and accumulates in f32, and the result is f32, so nothing else in a model changes. What
//! counts is where an op runs: a backward pass (`loss.backward()`) run inside the scope
//! computes the input and weight gradients of convolutions and linear layers with bf16
//! products too (bias gradients and everything else stay f32), one run outside it in f32.
//! Where bf16 cannot run ([`bf16_matmul_available`] is false: no AMX, not Linux x86-64;
//! f64 tensors; a GPU tensor) the products stay f32.
//!
//! ```
//! use arfpn_kernels::{conv2d_op, with_matmul_precision, Conv2dConfig, MatmulPrecision};
//! use candle_core::{DType, Device, Tensor};
//! let x = Tensor::randn(0f32, 1., (1, 32, 16, 16), &Device::Cpu)?;
//! let w = Tensor::randn(0f32, 0.1, (64, 32, 3, 3), &Device::Cpu)?;
//! let cfg = Conv2dConfig { padding: 1, ..Default::default() };
//! let exact = conv2d_op(&x, &w, None, cfg)?;
//! let fast = with_matmul_precision(MatmulPrecision::Bf16, || conv2d_op(&x, &w, None, cfg))?;
//! // bf16 keeps 8 significant bits per operand: about 3 significant digits of the result.
//! let err = (exact - fast)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(err < 0.05);
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! [`conv2d_op`]: crate::conv2d_op
//! [`Linear`]: crate::Linear

use std::cell::Cell;

use serde::{Deserialize, Serialize};

/// Precision of the forward matrix products of convolutions and linear layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulPrecision {
    /// f32 operands and accumulation (the default).
    #[default]
    F32,
    /// bf16 operands, f32 accumulation, where the CPU has AMX-BF16; f32 elsewhere.
    Bf16,
}

impl std::fmt::Display for MatmulPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        })
    }
}

impl std::str::FromStr for MatmulPrecision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            _ => Err(format!(
                "unknown matmul precision {s:?} (expected f32 or bf16)"
            )),
        }
    }
}

thread_local! {
    static PRECISION: Cell<MatmulPrecision> = const { Cell::new(MatmulPrecision::F32) };
}

/// The precision in force on this thread.
pub fn matmul_precision() -> MatmulPrecision {
    PRECISION.with(Cell::get)
}

/// Runs `f` with `precision` in force on this thread, then restores the previous one (also
/// when `f` panics). Scopes nest.
pub fn with_matmul_precision<R>(precision: MatmulPrecision, f: impl FnOnce() -> R) -> R {
    struct Restore(MatmulPrecision);
    impl Drop for Restore {
        fn drop(&mut self) {
            PRECISION.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PRECISION.with(|p| p.replace(precision)));
    f()
}

/// Whether [`MatmulPrecision::Bf16`] runs in bf16 on this machine (an x86-64 Linux CPU with
/// AMX-BF16 and AVX-512, e.g. Xeon Sapphire Rapids or later). Setting the environment
/// variable `ARFPN_NO_AMX` (read once) turns it off.
pub fn bf16_matmul_available() -> bool {
    crate::amx::available()
}

/// True when the current thread asks for bf16 and the machine can do it.
pub(crate) fn use_bf16() -> bool {
    matmul_precision() == MatmulPrecision::Bf16 && bf16_matmul_available()
}
