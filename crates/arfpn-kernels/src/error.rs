//! The errors of this crate's ops.

/// Bad arguments or shapes given to an `arfpn-kernels` op. Functions that return
/// `candle_core::Result` wrap it (`candle_core::Error::Wrapped`), so its message reaches the
/// caller unchanged.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum KernelError {
    /// A tensor argument does not have the rank or shape the layer needs.
    #[error("{op}: argument `{arg}` has shape {got:?}, expected {expected}")]
    Shape {
        /// The function or layer that rejected the argument (e.g. `"conv2d"`).
        op: &'static str,
        /// The argument's parameter name (e.g. `"x"`, `"w"`).
        arg: &'static str,
        /// The argument's actual dimensions.
        got: Vec<usize>,
        /// A human-readable description of the accepted shape (e.g. `"[N, C, H, W]"`).
        expected: String,
    },
    /// A scalar or configuration argument is out of range.
    #[error("{op}: invalid `{arg}`: {reason}")]
    Config {
        /// The function, layer or configuration type that rejected the value.
        op: &'static str,
        /// The parameter or field name (e.g. `"stride"`, `"lr"`).
        arg: &'static str,
        /// Why the value was rejected.
        reason: String,
    },
    /// A dtype the layer does not implement.
    #[error("{op}: unsupported dtype {dtype:?} (expected f32 or f64)")]
    DType {
        /// The function or layer that rejected the tensor.
        op: &'static str,
        /// The tensor's dtype.
        dtype: candle_core::DType,
    },
}

impl From<KernelError> for candle_core::Error {
    fn from(e: KernelError) -> Self {
        candle_core::Error::wrap(e)
    }
}

/// Shorthand for a [`KernelError::Config`] turned into a candle error.
pub(crate) fn config_err(
    op: &'static str,
    arg: &'static str,
    reason: impl Into<String>,
) -> candle_core::Error {
    KernelError::Config {
        op,
        arg,
        reason: reason.into(),
    }
    .into()
}

/// Shorthand for a [`KernelError::Shape`] turned into a candle error.
pub(crate) fn shape_err(
    op: &'static str,
    arg: &'static str,
    got: &[usize],
    expected: impl Into<String>,
) -> candle_core::Error {
    KernelError::Shape {
        op,
        arg,
        got: got.to_vec(),
        expected: expected.into(),
    }
    .into()
}
