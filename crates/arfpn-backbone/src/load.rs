//! Loading (e.g. torchvision-converted) weights: `arfpn-nn`'s safetensors loading (see
//! [`arfpn_nn::load_safetensors`] for converting torchvision's ResNets) with the backbone's
//! errors.

use crate::error::Result;
pub use arfpn_nn::{count_parameters, LoadReport};
use candle_nn::VarMap;
use std::path::Path;

/// Overwrites the variables of `varmap` with the same-named tensors of a safetensors file
/// (converted to each variable's dtype and device) and reports what matched: build the
/// backbone with [`NormKind::frozen_batch_norm`](crate::NormKind::frozen_batch_norm) (or
/// `batch_norm`) on a `VarMap`, then load torchvision's file; its `fc.*` shows up as
/// unexpected and `*.num_batches_tracked` as ignored.
///
/// A tensor whose shape differs from its variable's is an error
/// ([`BackboneError::ShapeMismatch`](crate::BackboneError::ShapeMismatch)); nothing is
/// partially loaded in that case. An unreadable file is
/// [`BackboneError::Load`](crate::BackboneError::Load).
pub fn load_safetensors(varmap: &VarMap, path: impl AsRef<Path>) -> Result<LoadReport> {
    Ok(arfpn_nn::load_safetensors(varmap, path)?)
}
