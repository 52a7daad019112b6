//! The error type of this crate.

use arfpn_boxes::BoxError;

/// Everything that can go wrong building or running the RPN. Messages name the field,
/// level or argument at fault.
#[derive(Debug, thiserror::Error)]
pub enum RpnError {
    /// A per-level setting does not have one entry per feature level.
    #[error(
        "`{field}` has {settings} per-level entries but the RPN is built for {levels} feature \
         levels ({names}); give one entry per level, or a single list shared by all levels"
    )]
    LevelCount {
        field: &'static str,
        settings: usize,
        levels: usize,
        names: String,
    },
    /// The head's anchors per location disagree with the anchor generator.
    #[error(
        "level {level} (`{name}`): the anchor generator makes {generator} anchors per location \
         but the RPN head predicts {head}; a shared RPN head needs the same \
         `sizes.len() * aspect_ratios.len()` at every level"
    )]
    AnchorsPerLocation {
        level: usize,
        name: String,
        generator: usize,
        head: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid `{field}`: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    /// The tensors or boxes passed at run time do not fit the network.
    #[error("bad input `{argument}`: {reason}")]
    BadInput {
        argument: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Boxes(#[from] BoxError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl RpnError {
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        RpnError::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn input(argument: &'static str, reason: impl Into<String>) -> Self {
        RpnError::BadInput {
            argument,
            reason: reason.into(),
        }
    }
}

/// `Result` with [`RpnError`].
pub type Result<T> = std::result::Result<T, RpnError>;
