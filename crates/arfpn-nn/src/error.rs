//! The errors of this crate.

/// Bad arguments or shapes given to an `arfpn-nn` layer. Functions that return
/// `candle_core::Result` wrap it (`candle_core::Error::Wrapped`), so its message reaches the
/// caller unchanged.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum NnError {
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

/// What can go wrong in [`load_safetensors`](crate::load_safetensors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A thread panicked while holding the `VarMap`'s lock.
    #[error("the VarMap's lock is poisoned (a thread panicked while holding it)")]
    Poisoned,
    /// There is nothing to load into.
    #[error("the VarMap is empty: build the model on it before loading weights")]
    EmptyVarMap,
    /// The weights file could not be read.
    #[error("cannot load weights from {path}: {source}")]
    Read {
        /// The weights file.
        path: std::path::PathBuf,
        /// Why it could not be read or parsed as safetensors.
        #[source]
        source: candle_core::Error,
    },
    /// A tensor in the weights file has the wrong shape for the variable of the same name.
    #[error(
        "weights file {path}: tensor `{name}` has shape {found:?}, the model expects {expected:?}"
    )]
    ShapeMismatch {
        /// The weights file.
        path: std::path::PathBuf,
        /// The tensor's name in the file (and the variable's in the `VarMap`).
        name: String,
        /// The shape of the model's variable.
        expected: Vec<usize>,
        /// The shape of the tensor in the file.
        found: Vec<usize>,
    },
    /// A tensor conversion or update failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<NnError> for candle_core::Error {
    fn from(e: NnError) -> Self {
        candle_core::Error::wrap(e)
    }
}

/// Shorthand for a [`NnError::Config`] turned into a candle error.
pub(crate) fn config_err(
    op: &'static str,
    arg: &'static str,
    reason: impl Into<String>,
) -> candle_core::Error {
    NnError::Config {
        op,
        arg,
        reason: reason.into(),
    }
    .into()
}

/// Shorthand for a [`NnError::Shape`] turned into a candle error.
pub(crate) fn shape_err(
    op: &'static str,
    arg: &'static str,
    got: &[usize],
    expected: impl Into<String>,
) -> candle_core::Error {
    NnError::Shape {
        op,
        arg,
        got: got.to_vec(),
        expected: expected.into(),
    }
    .into()
}
