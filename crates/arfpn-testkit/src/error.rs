//! The errors of the testkit.

use crate::grad::ProbeResult;

/// What a testkit check can report. Converts into `candle_core::Error`, so `?` works in a
/// test that returns `candle_core::Result`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// Autograd gave no gradient for a checked tensor: it does not reach the loss, is
    /// detached, or goes through an op without a backward (candle's `*_no_bwd` ops).
    #[error(
        "`{target}` got no gradient from the loss (unused, detached, or an op without a backward)"
    )]
    NoGradient {
        /// The target's name in the check (`input 0`, … or a [`Target`](crate::Target)'s
        /// name).
        target: String,
    },
    /// Finite differences are checked in f64 only.
    #[error("`{target}` is {dtype:?}: finite differences need f64 tensors")]
    NotF64 {
        /// The target's name in the check.
        target: String,
        /// The dtype it has instead.
        dtype: candle_core::DType,
    },
    /// A probe names an element the tensor does not have.
    #[error("`{target}`: probe index {index} is outside its {len} elements")]
    ProbeOutOfRange {
        /// The target's name in the check.
        target: String,
        /// The offending flat (row-major) index.
        index: usize,
        /// The tensor's element count.
        len: usize,
    },
    /// Some autograd derivatives differ from the central differences by more than the
    /// tolerance; `worst` is the probe furthest outside it.
    #[error(
        "finite-difference check failed at {failed} of {checked} probed elements; worst: {worst}"
    )]
    GradientMismatch {
        /// Probes outside the tolerance.
        failed: usize,
        /// Probes evaluated, over all targets.
        checked: usize,
        /// The probe with the largest error relative to what its tolerance allowed.
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
