//! The normalisation that follows a convolution, chosen by configuration ([`NormKind`]) and
//! built as one layer type ([`Norm`]). The backbone and any other module with
//! configurable norms share them.

use crate::error::NnError;
use crate::norm::{
    batch_norm2d, frozen_batch_norm2d, group_norm, BatchNorm2d, FrozenBatchNorm2d, GroupNorm,
};
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Which normalisation follows each convolution. Its parameters keep torchvision's names
/// (`bn1.weight`, `bn1.bias`, plus `running_mean`/`running_var` for the batch norms) whatever
/// the kind, so one checkpoint layout serves all three.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NormKind {
    /// GroupNorm (Wu & He 2018): the sound default for training from scratch at batch size 1,
    /// as the paper does. `groups` must divide every normalised channel count.
    GroupNorm {
        /// Number of channel groups sharing one mean and variance per sample.
        groups: usize,
        /// Added to the variance before the square root (PyTorch's default 1e-5).
        eps: f64,
    },
    /// Batch norm with fixed statistics and affine (torchvision `FrozenBatchNorm2d`), for
    /// imported ImageNet weights. torchvision's detection weights use `eps = 0.0`, its ImageNet
    /// classifiers `1e-5`.
    FrozenBatchNorm {
        /// Added to `running_var` before the square root.
        eps: f64,
    },
    /// Trainable batch norm; statistics are updated when `train` is true.
    BatchNorm {
        /// Added to the variance before the square root (PyTorch's default 1e-5).
        eps: f64,
        /// Weight of the batch statistics in each running-statistics update, in `[0, 1]`
        /// (PyTorch's default 0.1).
        momentum: f64,
    },
}

impl Default for NormKind {
    fn default() -> Self {
        Self::GroupNorm {
            groups: 32,
            eps: 1e-5,
        }
    }
}

impl NormKind {
    /// GroupNorm with `groups` groups and eps 1e-5.
    pub fn group_norm(groups: usize) -> Self {
        Self::GroupNorm { groups, eps: 1e-5 }
    }
    /// Frozen batch norm with eps 1e-5 (torchvision ImageNet classifiers).
    pub fn frozen_batch_norm() -> Self {
        Self::FrozenBatchNorm { eps: 1e-5 }
    }
    /// Trainable batch norm with torch's defaults (eps 1e-5, momentum 0.1).
    pub fn batch_norm() -> Self {
        Self::BatchNorm {
            eps: 1e-5,
            momentum: 0.1,
        }
    }

    /// Checks that this norm can normalise `channels` channels; a bad group count is
    /// [`NnError::Config`] with `op` `"norm"` and `arg` `"groups"`.
    pub fn check_channels(&self, channels: usize) -> std::result::Result<(), NnError> {
        if let Self::GroupNorm { groups, .. } = *self {
            if groups == 0 || !channels.is_multiple_of(groups) {
                return Err(NnError::Config {
                    op: "norm",
                    arg: "groups",
                    reason: format!(
                        "{groups} groups do not divide {channels} channels; choose a group count \
                         that divides every stage width (or a wider backbone)"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A built normalisation layer of a [`NormKind`].
#[derive(Clone, Debug)]
pub enum Norm {
    /// Built from [`NormKind::GroupNorm`].
    Group(GroupNorm),
    /// Built from [`NormKind::FrozenBatchNorm`].
    Frozen(FrozenBatchNorm2d),
    /// Built from [`NormKind::BatchNorm`].
    Batch(BatchNorm2d),
}

impl Norm {
    /// Builds the `kind` layer for `channels` channels under `vb`. A group count that does
    /// not divide `channels` is an error naming `vb`'s prefix.
    pub fn new(kind: &NormKind, channels: usize, vb: VarBuilder) -> Result<Self> {
        kind.check_channels(channels).map_err(|e| match e {
            NnError::Config { op, arg, reason } => NnError::Config {
                op,
                arg,
                reason: format!("at `{}`: {reason}", vb.prefix()),
            },
            other => other,
        })?;
        Ok(match *kind {
            NormKind::GroupNorm { groups, eps } => {
                Norm::Group(group_norm(groups, channels, eps, vb)?)
            }
            NormKind::FrozenBatchNorm { eps } => {
                Norm::Frozen(frozen_batch_norm2d(channels, eps, vb)?)
            }
            NormKind::BatchNorm { eps, momentum } => {
                Norm::Batch(batch_norm2d(channels, eps, momentum, vb)?)
            }
        })
    }
}

impl ModuleT for Norm {
    /// `train` matters only to [`NormKind::BatchNorm`] (batch statistics, running update).
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Norm::Group(n) => n.forward(x),
            Norm::Frozen(n) => n.forward(x),
            Norm::Batch(n) => n.forward_t(x, train),
        }
    }
}

impl Norm {
    /// The end of a residual unit: `relu(self(x) + shortcut)` with `shortcut = b_norm(b)`
    /// (a projection shortcut) or `b` (identity). One fused op when the norms are frozen
    /// batch norms on the CPU ([`FrozenBatchNorm2d::forward_add_relu`]); otherwise the norms
    /// then [`arfpn_kernels::add_relu`].
    pub fn forward_add_relu_t(
        &self,
        x: &Tensor,
        b: &Tensor,
        b_norm: Option<&Norm>,
        train: bool,
    ) -> Result<Tensor> {
        match (self, b_norm) {
            (Norm::Frozen(n), None) => n.forward_add_relu(x, b, None),
            (Norm::Frozen(n), Some(Norm::Frozen(m))) => n.forward_add_relu(x, b, Some(m)),
            _ => {
                let shortcut = match b_norm {
                    Some(m) => m.forward_t(b, train)?,
                    None => b.clone(),
                };
                arfpn_kernels::add_relu(&self.forward_t(x, train)?, &shortcut)
            }
        }
    }

    /// `relu(self.forward_t(x, train))`: one fused op for GroupNorm and frozen batch norm on
    /// the CPU ([`GroupNorm::forward_relu`], [`FrozenBatchNorm2d::forward_relu`]), the norm
    /// then [`arfpn_kernels::relu`] otherwise.
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Norm::Group(n) => n.forward_relu(x),
            Norm::Frozen(n) => n.forward_relu(x),
            _ => arfpn_kernels::relu(&self.forward_t(x, train)?),
        }
    }
}
