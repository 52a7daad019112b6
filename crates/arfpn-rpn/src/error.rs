//! The error type of this crate.

use arfpn_boxes::BoxError;

/// Everything that can go wrong building or running the RPN. Messages name the field,
/// level or argument at fault.
///
/// New variants may be added, so a `match` needs a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpnError {
    /// A per-level setting does not have one entry per feature level.
    #[error(
        "`{field}` has {settings} per-level entries but the RPN is built for {levels} feature \
         levels ({names}); give one entry per level, or a single list shared by all levels"
    )]
    LevelCount {
        /// The setting at fault, e.g. `anchors.sizes` or `anchors.aspect_ratios`.
        field: &'static str,
        /// Number of per-level entries it has.
        settings: usize,
        /// Number of feature levels the RPN is built for.
        levels: usize,
        /// Those levels' names, comma-separated, fine to coarse.
        names: String,
    },
    /// The head's anchors per location disagree with the anchor generator.
    #[error(
        "level {level} (`{name}`): the anchor generator makes {generator} anchors per location \
         but the RPN head predicts {head}; a shared RPN head needs the same \
         `sizes.len() * aspect_ratios.len()` at every level"
    )]
    AnchorsPerLocation {
        /// Index of the level at fault (0 = finest).
        level: usize,
        /// Its name (e.g. `p3`).
        name: String,
        /// Anchors per location the generator makes there (that level's
        /// `sizes.len() * aspect_ratios.len()`).
        generator: usize,
        /// Anchors per location the head predicts (its objectness channels).
        head: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid `{field}`: {reason}")]
    InvalidConfig {
        /// The setting at fault: a dotted path in [`RpnConfig`](crate::RpnConfig), e.g.
        /// `anchors.offset` or `smooth_l1_beta` (`train` or `test` for a value of
        /// [`ProposalParams`](crate::ProposalParams), which `reason` names); or `inputs`,
        /// `levels`, `strides` or `head` for the levels and head the RPN is built from.
        field: &'static str,
        /// What is wrong with it, with the offending value.
        reason: String,
    },
    /// The tensors or boxes passed at run time do not fit the network.
    #[error("bad input `{argument}`: {reason}")]
    BadInput {
        /// The argument at fault, e.g. `features`, `image_sizes`, `ground_truth` or
        /// `targets`.
        argument: &'static str,
        /// How it fails to fit (the sizes, names or levels involved).
        reason: String,
    },
    /// An error from `arfpn-boxes`: an invalid matcher, sampler or box-coder setting, or
    /// arguments rejected by a box operation such as NMS.
    #[error(transparent)]
    Boxes(#[from] BoxError),
    /// A tensor operation failed: wrong shapes or dtypes, a device error, or a weight
    /// missing from (or misshapen in) the `VarBuilder`.
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
