//! Spatial attention (the spatial gate of CBAM, Woo et al. 2018), the paper's S-ARFPN.

use super::Attention;
use arfpn_nn::{conv2d, Conv2d, Conv2dConfig};
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

    /// The `[N, 2, H, W]` descriptor `[mean over channels; max over channels]` (the max's
    /// gradient is split among ties, see [`max_keepdim_split`](crate::max_keepdim_split)).
    pub fn descriptor(x: &Tensor) -> Result<Tensor> {
        Tensor::cat(
            &[arfpn_nn::channel_mean(x)?, super::max_keepdim_split(x, 1)?],
            1,
        )
    }
}

/// `x * weights(x)` and the `"spatial"` map come from the trait's defaults.
impl Attention for SpatialAttention {
    /// The spatial weights `sigmoid(conv([mean_c(x); max_c(x)]))`, shape `[N, 1, H, W]`.
    fn weights(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.conv.forward(&Self::descriptor(x)?)?)
    }

    fn map_name(&self) -> Option<&str> {
        Some("spatial")
    }
}
