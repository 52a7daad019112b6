//! Serialisable FPN configuration.

use serde::{Deserialize, Serialize};

/// FPN hyper-parameters.
///
/// ```
/// let cfg = arfpn_fpn::FpnConfig::default();
/// assert_eq!((cfg.out_channels, cfg.extra_p6), (256, true));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FpnConfig {
    /// Channels of every output level (256 in the FPN paper, torchvision and detectron2).
    pub out_channels: usize,
    /// Add one extra level by stride-2 subsampling of the coarsest output (P6 from P5, as
    /// torchvision's `LastLevelMaxPool` / detectron2's `LastLevelMaxPool`).
    pub extra_p6: bool,
}

impl Default for FpnConfig {
    fn default() -> Self {
        Self {
            out_channels: 256,
            extra_p6: true,
        }
    }
}
