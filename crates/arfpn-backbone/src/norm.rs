//! The backbone's normalisation layers. [`NormKind`] and [`Norm`] live in `arfpn-nn`
//! (re-exported here); building one through [`build`] reports a group count that does not
//! divide the channels as [`BackboneError::Config`](crate::BackboneError::Config) on
//! `norm.groups`, naming the layer.

use crate::error::{config_err, Result};
use arfpn_nn::NnError;
pub use arfpn_nn::{Norm, NormKind};
use candle_nn::VarBuilder;

/// [`Norm::new`] with the backbone's error for a bad group count.
pub(crate) fn build(kind: &NormKind, channels: usize, vb: VarBuilder) -> Result<Norm> {
    kind.check_channels(channels).map_err(|e| match e {
        NnError::Config { reason, .. } => {
            config_err("norm.groups", format!("at `{}`: {reason}", vb.prefix()))
        }
        other => other.into(),
    })?;
    Ok(Norm::new(kind, channels, vb)?)
}

/// The parameters of a norm built under `vb` that an optimiser must not update: a frozen
/// batch norm's four tensors, a trainable batch norm's running statistics, nothing for
/// GroupNorm.
pub(crate) fn frozen_names(kind: &NormKind, vb: &VarBuilder) -> Vec<String> {
    let names: &[&str] = match kind {
        NormKind::FrozenBatchNorm { .. } => &["weight", "bias", "running_mean", "running_var"],
        NormKind::BatchNorm { .. } => &["running_mean", "running_var"],
        NormKind::GroupNorm { .. } => &[],
    };
    names
        .iter()
        .map(|n| format!("{}.{n}", vb.prefix()))
        .collect()
}
