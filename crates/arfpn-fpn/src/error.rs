//! Errors of the FPN crate.

/// Everything that can go wrong while building or running the FPN.
#[derive(Debug, thiserror::Error)]
pub enum FpnError {
    /// The backbone's outputs cannot feed an FPN (e.g. strides not doubling).
    #[error("FPN input shapes: {0}")]
    InputShapes(String),
    /// A configuration value is unusable; `field` names it.
    #[error("invalid FPN config `{field}`: {reason}")]
    Config { field: String, reason: String },
    /// The feature maps passed to `forward` do not match the build-time shapes or sizes.
    #[error("FPN forward input: {0}")]
    Input(String),
    /// The backbone under the FPN failed.
    #[error("backbone: {0}")]
    Backbone(#[from] arfpn_backbone::BackboneError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, FpnError>;
