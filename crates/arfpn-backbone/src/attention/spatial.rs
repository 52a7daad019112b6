//! Spatial attention (the spatial gate of CBAM, Woo et al. 2018), the paper's S-ARFPN.

use super::{Attention, AttentionMap};
use arfpn_kernels::Conv2dConfig;
use arfpn_nn::{conv2d, Conv2d};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `y = x * sigmoid(conv_k×k([mean_c(x); max_c(x)]))`.
///
/// The two-channel descriptor is ordered as in the CBAM paper: channel-wise **average first,
/// then maximum** (the `Jongchan/attention-module` reference code concatenates max first; swap
/// the two input channels of `conv.weight` when importing its weights). Parameters:
/// `conv.weight [1, 2, k, k]`, `conv.bias [1]`; padding `k / 2` keeps the size.
#[derive(Clone, Debug)]
pub struct SpatialAttention {
    conv: Conv2d,
}

impl SpatialAttention {
    /// Spatial attention with a `kernel_size`×`kernel_size` convolution (padding
    /// `kernel_size / 2`), its parameters taken from (or, if new, created in) `vb`. Fails if
    /// `kernel_size` is even.
    pub fn new(kernel_size: usize, vb: VarBuilder) -> Result<Self> {
        if kernel_size.is_multiple_of(2) {
            candle_core::bail!("SpatialAttention: kernel_size must be odd, got {kernel_size}");
        }
        let cfg = Conv2dConfig {
            padding: kernel_size / 2,
            ..Default::default()
        };
        Ok(Self {
            conv: conv2d(
                2,
                1,
                kernel_size,
                cfg,
                true,
                arfpn_nn::inits::KAIMING_FAN_OUT,
                vb.pp("conv"),
            )?,
        })
    }

    /// The convolution in the form [`arfpn_kernels::cbam`] takes.
    pub(crate) fn gate_weights(&self) -> Result<arfpn_kernels::SpatialGateWeights<'_>> {
        Ok(arfpn_kernels::SpatialGateWeights {
            conv_weight: self.conv.weight(),
            conv_bias: super::channel::bias(&self.conv, "conv")?,
        })
    }

    /// The spatial weights `sigmoid(conv([mean_c(x); max_c(x)]))`, shape `[N, 1, H, W]`
    /// (the composed form of what [`Attention::forward`] applies in one op).
    pub fn weights(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.conv.forward(&Self::descriptor(x)?)?)
    }

    /// The `[N, 2, H, W]` descriptor `[mean over channels; max over channels]` (the max's
    /// gradient is split among ties, see [`max_keepdim_split`](crate::max_keepdim_split)).
    pub fn descriptor(x: &Tensor) -> Result<Tensor> {
        Tensor::cat(
            &[
                arfpn_kernels::channel_mean(x)?,
                super::max_keepdim_split(x, 1)?,
            ],
            1,
        )
    }
}

/// `forward`, `forward_add_relu` and `forward_with_maps` are [`arfpn_kernels::cbam`] without a
/// channel gate (one fused op on the CPU); [`SpatialAttention::weights`] is the composed form.
impl Attention for SpatialAttention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        arfpn_kernels::cbam(x, None, &self.gate_weights()?)
    }

    fn forward_add_relu(&self, x: &Tensor, shortcut: &Tensor) -> Result<Tensor> {
        arfpn_kernels::cbam_add_relu(x, shortcut, None, &self.gate_weights()?)
    }

    fn forward_with_maps(&self, x: &Tensor) -> Result<(Tensor, Vec<AttentionMap>)> {
        let out = arfpn_kernels::cbam_with_maps(x, None, &self.gate_weights()?)?;
        let map = AttentionMap {
            name: "spatial".into(),
            tensor: out.spatial_weights,
        };
        Ok((out.y, vec![map]))
    }
}
