//! Errors of the backbone crate.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading or running a backbone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackboneError {
    /// A configuration value is unusable; `field` names it (e.g. `stage_depths[2]`).
    #[error("invalid backbone config `{field}`: {reason}")]
    Config {
        /// The field's path in the configuration, e.g. `stage_depths[2]`, `width`,
        /// `attention.kernel_size`, `norm.groups`.
        field: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// The input does not fit the backbone: the message says how (not `[N, C, H, W]`, the
    /// wrong channel count, an empty image; or, from loading, an empty or poisoned `VarMap`).
    #[error("invalid backbone input: {0}")]
    Input(String),
    /// A weights file could not be read.
    #[error("cannot load weights from {path}: {source}")]
    Load {
        /// The weights file.
        path: PathBuf,
        /// Why it could not be read or parsed as safetensors.
        #[source]
        source: candle_core::Error,
    },
    /// A tensor in the weights file has the wrong shape for the parameter of the same name.
    #[error(
        "weights file {path}: tensor `{name}` has shape {found:?}, the model expects {expected:?}"
    )]
    ShapeMismatch {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name in the file (and the parameter's in the model), e.g.
        /// `layer1.0.conv1.weight`.
        name: String,
        /// The shape of the model's parameter.
        expected: Vec<usize>,
        /// The shape of the tensor in the file.
        found: Vec<usize>,
    },
    /// A configuration (or a checkpoint's) names a custom module that this program has not
    /// registered.
    #[error(
        "{kind} `{name}` is not registered in this program (registered: {registered}); call \
         arfpn_backbone::{register}(\"{name}\", ...) with its constructor before building or \
         loading a model that uses it"
    )]
    NotRegistered {
        /// `"attention module"` or `"backbone"`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The registry function to call.
        register: &'static str,
        /// The names registered, comma-separated (`none` when empty).
        registered: String,
    },
    /// An error inside a tensor operation (or inside a user's attention module).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<arfpn_nn::LoadError> for BackboneError {
    fn from(e: arfpn_nn::LoadError) -> Self {
        use arfpn_nn::LoadError;
        match e {
            LoadError::Read { path, source } => Self::Load { path, source },
            LoadError::ShapeMismatch {
                path,
                name,
                expected,
                found,
            } => Self::ShapeMismatch {
                path,
                name,
                expected,
                found,
            },
            LoadError::Candle(e) => Self::Candle(e),
            e @ (LoadError::Poisoned | LoadError::EmptyVarMap) => Self::Input(e.to_string()),
            other => Self::Input(other.to_string()),
        }
    }
}

/// A configuration error of an `arfpn-nn` layer keeps its name as the field
/// (`op.arg`, e.g. `norm.groups`); the others are candle errors, as the layers' own.
impl From<arfpn_nn::NnError> for BackboneError {
    fn from(e: arfpn_nn::NnError) -> Self {
        match e {
            arfpn_nn::NnError::Config { op, arg, reason } => Self::Config {
                field: format!("{op}.{arg}"),
                reason,
            },
            other => Self::Candle(other.into()),
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, BackboneError>;

pub(crate) fn config_err(field: impl Into<String>, reason: impl Into<String>) -> BackboneError {
    BackboneError::Config {
        field: field.into(),
        reason: reason.into(),
    }
}
