//! Channel attention: squeeze-and-excitation (Hu et al. 2018), the paper's CARU.

use super::{global_avg_pool, Reweighting};
use arfpn_kernels::Conv2dConfig;
use arfpn_nn::{conv2d, Conv2d};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// The two-layer bottleneck MLP of SE and CBAM, written as 1×1 convolutions on `[N, C, 1, 1]`
/// descriptors so the weights have torchvision `SqueezeExcitation`'s shapes:
/// `fc1.weight [C/r, C, 1, 1]`, `fc1.bias`, `fc2.weight [C, C/r, 1, 1]`, `fc2.bias`.
#[derive(Clone, Debug)]
pub(crate) struct Mlp {
    fc1: Conv2d,
    fc2: Conv2d,
}

impl Mlp {
    pub(crate) fn new(channels: usize, reduction: usize, vb: VarBuilder) -> Result<Self> {
        let hidden = ChannelAttention::hidden_channels(channels, reduction);
        let cfg = Conv2dConfig::default();
        Ok(Self {
            fc1: conv2d(
                channels,
                hidden,
                1,
                cfg,
                true,
                arfpn_nn::inits::KAIMING_FAN_OUT,
                vb.pp("fc1"),
            )?,
            fc2: conv2d(
                hidden,
                channels,
                1,
                cfg,
                true,
                arfpn_nn::inits::KAIMING_FAN_OUT,
                vb.pp("fc2"),
            )?,
        })
    }

    /// The four tensors in the form [`arfpn_kernels::cbam`] takes.
    pub(crate) fn gate_weights(&self) -> Result<arfpn_kernels::ChannelGateWeights<'_>> {
        Ok(arfpn_kernels::ChannelGateWeights {
            fc1_weight: self.fc1.weight(),
            fc1_bias: bias(&self.fc1, "fc1")?,
            fc2_weight: self.fc2.weight(),
            fc2_bias: bias(&self.fc2, "fc2")?,
        })
    }

    /// `fc2(relu(fc1(d)))` for a `[N, C, 1, 1]` descriptor (pre-sigmoid logits).
    pub(crate) fn forward(&self, d: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(d)?.relu()?)
    }
}

/// The bias of a layer built with one (every attention layer is).
pub(crate) fn bias<'a>(conv: &'a Conv2d, name: &str) -> Result<&'a Tensor> {
    conv.bias()
        .ok_or_else(|| candle_core::Error::Msg(format!("attention layer {name} has no bias")))
}

/// Squeeze-and-excitation: `y = x * sigmoid(fc2(relu(fc1(avgpool(x)))))`.
///
/// The hidden width is `max(C / reduction, 1)`. Parameters: `fc1.{weight,bias}`,
/// `fc2.{weight,bias}` (as torchvision's `SqueezeExcitation`).
#[derive(Clone, Debug)]
pub struct ChannelAttention {
    mlp: Mlp,
}

impl ChannelAttention {
    /// Squeeze-and-excitation for `channels` channels with hidden width
    /// `max(channels / reduction, 1)`, its parameters taken from (or, if new, created in)
    /// `vb`. Fails if `reduction` is 0.
    pub fn new(channels: usize, reduction: usize, vb: VarBuilder) -> Result<Self> {
        if reduction == 0 {
            candle_core::bail!("ChannelAttention: reduction must be at least 1");
        }
        Ok(Self {
            mlp: Mlp::new(channels, reduction, vb)?,
        })
    }

    /// Width of the bottleneck: `max(channels / reduction, 1)`.
    pub fn hidden_channels(channels: usize, reduction: usize) -> usize {
        (channels / reduction.max(1)).max(1)
    }
}

/// A [`Reweighting`]: `x * weights(x)` and the `"channel"` map come from the blanket
/// [`Attention`](super::Attention) implementation; the end of a residual unit is one fused op.
impl Reweighting for ChannelAttention {
    /// The excitation `sigmoid(fc2(relu(fc1(avgpool(x)))))`, shape `[N, C, 1, 1]`.
    fn weights(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.mlp.forward(&global_avg_pool(x)?)?)
    }

    fn map_name(&self) -> &str {
        "channel"
    }

    /// `relu(x · weights(x) + shortcut)` with the gate and the residual end in one op
    /// ([`arfpn_kernels::gate_add_relu`]): the gated map is neither written nor kept.
    fn gate_add_relu(&self, x: &Tensor, shortcut: &Tensor) -> Result<Tensor> {
        arfpn_kernels::gate_add_relu(x, &self.weights(x)?, shortcut)
    }
}
