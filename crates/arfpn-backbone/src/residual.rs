//! What basic and bottleneck units share: the projection shortcut and the attention call.

use crate::attention::{Attention, AttentionMap};
use crate::error::Result;
use crate::norm::{self, Norm, NormKind};
use arfpn_kernels::Conv2dConfig;
use arfpn_nn::{conv2d, Conv2d};
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;

/// The projection shortcut `downsample.0` (1×1 conv, strided) + `downsample.1` (norm), used
/// when a unit changes the stride or the channel count.
#[derive(Clone, Debug)]
pub(crate) struct Downsample {
    conv: Conv2d,
    norm: Norm,
}

impl Downsample {
    /// The shortcut projection when the unit changes the stride or the channel count, `None`
    /// (identity shortcut) otherwise.
    pub(crate) fn if_needed(
        in_c: usize,
        out_c: usize,
        stride: usize,
        norm: &NormKind,
        vb: VarBuilder,
    ) -> Result<Option<Self>> {
        if stride == 1 && in_c == out_c {
            return Ok(None);
        }
        let cfg = Conv2dConfig {
            stride,
            ..Default::default()
        };
        Ok(Some(Self {
            conv: conv2d(
                in_c,
                out_c,
                1,
                cfg,
                false,
                arfpn_nn::inits::KAIMING_FAN_OUT,
                vb.pp("0"),
            )?,
            norm: norm::build(norm, out_c, vb.pp("1"))?,
        }))
    }

    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.norm.forward_t(&self.conv.forward(x)?, train)
    }
}

/// The end of a unit: `relu(attention(norm(branch)) + shortcut(x))`, where `branch` is the
/// output of the unit's last convolution and `norm` the norm that follows it, with the
/// projection shortcut when there is one, recording the attention's maps when asked (then
/// through [`Attention::forward_with_maps`], otherwise through the possibly fused
/// [`Attention::forward_add_relu`]). Without attention ([`Attention::is_identity`]) the norms
/// and the addition are one op where [`Norm::forward_add_relu_t`] fuses them.
pub(crate) fn attend_and_add(
    attention: &dyn Attention,
    branch: &Tensor,
    norm: &Norm,
    x: &Tensor,
    downsample: Option<&Downsample>,
    train: bool,
    maps: Option<&mut Vec<AttentionMap>>,
) -> candle_core::Result<Tensor> {
    if attention.is_identity() {
        return match downsample {
            Some(d) => norm.forward_add_relu_t(branch, &d.conv.forward(x)?, Some(&d.norm), train),
            None => norm.forward_add_relu_t(branch, x, None, train),
        };
    }
    let y = norm.forward_t(branch, train)?;
    let shortcut = match downsample {
        Some(d) => d.forward_t(x, train)?,
        None => x.clone(),
    };
    match maps {
        Some(maps) => {
            let (y, m) = attention.forward_with_maps(&y)?;
            maps.extend(m);
            arfpn_kernels::add_relu(&y, &shortcut)
        }
        None => attention.forward_add_relu(&y, &shortcut),
    }
}

/// The frozen parameters of a residual unit built under `vb`: its norms `norms` (e.g.
/// `bn1`, `bn2`), the projection's norm `downsample.1` when it has one, and what its
/// attention module reports.
pub(crate) fn unit_frozen_parameters(
    kind: &NormKind,
    vb: &VarBuilder,
    norms: &[&str],
    downsample: Option<&Downsample>,
    attention: &dyn Attention,
) -> Vec<String> {
    let mut frozen: Vec<String> = norms
        .iter()
        .flat_map(|n| norm::frozen_names(kind, &vb.pp(*n)))
        .collect();
    if downsample.is_some() {
        frozen.extend(norm::frozen_names(kind, &vb.pp("downsample").pp("1")));
    }
    frozen.extend(attention.frozen_parameters());
    frozen
}
