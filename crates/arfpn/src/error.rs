//! The facade's error type: its own cases plus every part's, unchanged.

use std::path::PathBuf;

/// Everything that can go wrong building, running, saving or loading a detector. The larger
/// part errors are boxed to keep `Result<T>` small.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// A configuration value is unusable or the parts do not fit; `field` names it.
    #[error("invalid detector config `{field}`: {reason}")]
    Config { field: String, reason: String },
    /// An image or ground truth passed to the detector is unusable.
    #[error("detector input `{arg}`: {reason}")]
    Input { arg: String, reason: String },
    /// A checkpoint file is unreadable, truncated or not an arfpn checkpoint.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// A checkpoint was made for another detector: `field` differs.
    #[error("checkpoint {path} does not fit this detector: its {field} is {checkpoint}, this detector's is {ours}")]
    Mismatch {
        path: PathBuf,
        field: &'static str,
        checkpoint: String,
        ours: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Backbone(Box<arfpn_backbone::BackboneError>),
    #[error(transparent)]
    Fpn(Box<arfpn_fpn::FpnError>),
    #[error(transparent)]
    Rpn(#[from] arfpn_rpn::RpnError),
    #[error(transparent)]
    Head(#[from] arfpn_head::HeadError),
    #[error(transparent)]
    Boxes(#[from] arfpn_boxes::BoxError),
    #[error(transparent)]
    Voc(Box<arfpn_voc::VocError>),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl DetectorError {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn input(arg: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Input {
            arg: arg.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with [`DetectorError`].
pub type Result<T> = std::result::Result<T, DetectorError>;

impl From<arfpn_backbone::BackboneError> for DetectorError {
    fn from(e: arfpn_backbone::BackboneError) -> Self {
        Self::Backbone(Box::new(e))
    }
}

impl From<arfpn_fpn::FpnError> for DetectorError {
    fn from(e: arfpn_fpn::FpnError) -> Self {
        Self::Fpn(Box::new(e))
    }
}

impl From<arfpn_voc::VocError> for DetectorError {
    fn from(e: arfpn_voc::VocError) -> Self {
        Self::Voc(Box::new(e))
    }
}
