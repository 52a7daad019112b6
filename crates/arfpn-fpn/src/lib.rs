//! Feature pyramid network for the ARFPN detector: lateral 1×1 convolutions, a top-down
//! pathway (nearest 2× upsampling + addition), 3×3 output convolutions, and P6 by stride-2
//! subsampling of P5. Outputs are [`FeatureMap`](arfpn_nn::FeatureMap)s that carry their stride.
//!
//! Images must be padded to a multiple of 32 for a ResNet ([`arfpn_nn::ImageBatch`] does it);
//! the FPN checks this and does not pad by itself.

#![forbid(unsafe_code)]

mod backbone_with_fpn;
mod config;
mod error;
mod fpn;

pub use backbone_with_fpn::BackboneWithFpn;
pub use config::FpnConfig;
pub use error::{FpnError, Result};
pub use fpn::Fpn;
