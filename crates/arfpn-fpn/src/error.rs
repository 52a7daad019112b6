//! Errors of the FPN crate.

/// Everything that can go wrong while building or running the FPN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FpnError {
    /// The backbone's outputs cannot feed an FPN (e.g. strides not doubling).
    #[error("FPN input shapes: {0}")]
    InputShapes(String),
    /// A configuration value is unusable; `field` names it.
    #[error("invalid FPN config `{field}`: {reason}")]
    Config {
        /// The [`FpnConfig`](crate::FpnConfig) field, e.g. `out_channels`.
        field: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// The feature maps passed to `forward` do not match the build-time shapes or sizes.
    #[error("FPN forward input: {0}")]
    Input(String),
    /// The backbone under the FPN failed.
    #[error("backbone: {0}")]
    Backbone(#[from] arfpn_backbone::BackboneError),
    /// A tensor operation failed (including a layer's own argument checks, which report
    /// through candle's error).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, FpnError>;
