//! The errors of the testkit.

use crate::grad::ProbeResult;

/// What a testkit check can report. Converts into `candle_core::Error`, so `?` works in a
/// test that returns `candle_core::Result`.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// Autograd gave no gradient for a checked tensor: it does not reach the loss, is
    /// detached, or goes through an op without a backward (candle's `*_no_bwd` ops).
    #[error(
        "`{target}` got no gradient from the loss (unused, detached, or an op without a backward)"
    )]
    NoGradient { target: String },
    /// Finite differences are checked in f64 only.
    #[error("`{target}` is {dtype:?}: finite differences need f64 tensors")]
    NotF64 {
        target: String,
        dtype: candle_core::DType,
    },
    /// A probe names an element the tensor does not have.
    #[error("`{target}`: probe index {index} is outside its {len} elements")]
    ProbeOutOfRange {
        target: String,
        index: usize,
        len: usize,
    },
    /// Some autograd derivatives differ from the central differences by more than the
    /// tolerance; `worst` is the probe furthest outside it.
    #[error(
        "finite-difference check failed at {failed} of {checked} probed elements; worst: {worst}"
    )]
    GradientMismatch {
        failed: usize,
        checked: usize,
        worst: Box<ProbeResult>,
    },
    /// An error of the checked computation itself.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<TestkitError> for candle_core::Error {
    fn from(e: TestkitError) -> Self {
        match e {
            TestkitError::Candle(e) => e,
            other => candle_core::Error::wrap(other),
        }
    }
}

/// Result alias of the testkit.
pub type Result<T> = std::result::Result<T, TestkitError>;
