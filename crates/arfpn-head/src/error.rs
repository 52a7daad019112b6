//! The errors of the box head.

use arfpn_boxes::BoxError;

/// Everything that can go wrong while building or running the box head.
///
/// New variants may be added, so a `match` needs a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// A configuration value is unusable; `field` names it (dotted path in the config).
    #[error("invalid RoI head config `{field}`: {reason}")]
    Config {
        /// Dotted path of the setting in [`RoiHeadConfig`](crate::RoiHeadConfig), e.g.
        /// `pooler.levels` or `postprocess.nms_thresh` (or `num_classes`).
        field: String,
        /// What is wrong with it (the accepted range, or the levels that exist).
        reason: String,
    },
    /// A feature map, proposal list or ground truth passed to the head does not fit.
    #[error("RoI head input `{arg}`: {reason}")]
    Input {
        /// The argument at fault, e.g. `features`, `ground_truth` or `box_deltas`.
        arg: &'static str,
        /// How it fails to fit (the sizes or names involved).
        reason: String,
    },
    /// An error from `arfpn-boxes`: an invalid matcher, sampler or box-coder setting, or
    /// ground truth that is not parallel, has a non-finite box or a class outside
    /// `0..num_classes`.
    #[error(transparent)]
    Boxes(#[from] BoxError),
    /// A tensor operation failed: wrong shapes or dtypes, a device error, a missing weight
    /// in the `VarBuilder`, or a rejected RoI pooling call (an
    /// [`arfpn_roi_align::RoiError`] wrapped by candle).
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
