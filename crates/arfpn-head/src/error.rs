//! The errors of the box head.

use arfpn_boxes::BoxError;

/// Everything that can go wrong while building or running the box head.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// A configuration value is unusable; `field` names it (dotted path in the config).
    #[error("invalid RoI head config `{field}`: {reason}")]
    Config { field: String, reason: String },
    /// A feature map, proposal list or ground truth passed to the head does not fit.
    #[error("RoI head input `{arg}`: {reason}")]
    Input { arg: &'static str, reason: String },
    #[error(transparent)]
    Boxes(#[from] BoxError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl HeadError {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        HeadError::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn input(arg: &'static str, reason: impl Into<String>) -> Self {
        HeadError::Input {
            arg,
            reason: reason.into(),
        }
    }
}

/// `Result` with [`HeadError`].
pub type Result<T> = std::result::Result<T, HeadError>;
