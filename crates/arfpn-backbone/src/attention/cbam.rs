//! CBAM: channel attention from average- and max-pooled descriptors through a shared MLP, then
//! spatial attention (Woo et al. 2018), the paper's CSARU.

use super::channel::Mlp;
use super::{global_avg_pool, global_max_pool, Attention, AttentionMap, SpatialAttention};
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

/// `x' = x * sigmoid(mlp(avgpool(x)) + mlp(maxpool(x)))`, then `y = x' * spatial(x')`.
///
/// Parameters: `channel.fc1.*`, `channel.fc2.*` (hidden width `max(C / reduction, 1)`) and
/// `spatial.conv.*` (see [`SpatialAttention`]).
#[derive(Clone, Debug)]
pub struct Cbam {
    mlp: Mlp,
    spatial: SpatialAttention,
}

impl Cbam {
    /// A CBAM for `channels` channels, with channel-MLP hidden width
    /// `max(channels / reduction, 1)` and a `kernel_size`×`kernel_size` spatial convolution.
    /// Its parameters are taken from (or, if new, created in) `vb` under `channel.` and
    /// `spatial.`. Fails if `reduction` is 0 or `kernel_size` is even.
    pub fn new(
        channels: usize,
        reduction: usize,
        kernel_size: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        if reduction == 0 {
            candle_core::bail!("Cbam: reduction must be at least 1");
        }
        Ok(Self {
            mlp: Mlp::new(channels, reduction, vb.pp("channel"))?,
            spatial: SpatialAttention::new(kernel_size, vb.pp("spatial"))?,
        })
    }

    /// The channel weights `sigmoid(mlp(avg) + mlp(max))`, shape `[N, C, 1, 1]`.
    pub fn channel_weights(&self, x: &Tensor) -> Result<Tensor> {
        let logits =
            (self.mlp.forward(&global_avg_pool(x)?)? + self.mlp.forward(&global_max_pool(x)?)?)?;
        candle_nn::ops::sigmoid(&logits)
    }
}

/// `forward` is [`arfpn_kernels::cbam`] (one fused op with its own backward on the CPU: no
/// intermediate map is kept for the backward), `forward_add_relu` the same op ending the
/// residual unit ([`arfpn_kernels::cbam_add_relu`]), `forward_with_maps` the same op also
/// returning the two gates ([`arfpn_kernels::cbam_with_maps`]).
impl Attention for Cbam {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        arfpn_kernels::cbam(
            x,
            Some(&self.mlp.gate_weights()?),
            &self.spatial.gate_weights()?,
        )
    }

    fn forward_add_relu(&self, x: &Tensor, shortcut: &Tensor) -> Result<Tensor> {
        arfpn_kernels::cbam_add_relu(
            x,
            shortcut,
            Some(&self.mlp.gate_weights()?),
            &self.spatial.gate_weights()?,
        )
    }

    fn forward_with_maps(&self, x: &Tensor) -> Result<(Tensor, Vec<AttentionMap>)> {
        let out = arfpn_kernels::cbam_with_maps(
            x,
            Some(&self.mlp.gate_weights()?),
            &self.spatial.gate_weights()?,
        )?;
        let (y, sw) = (out.y, out.spatial_weights);
        let Some(cw) = out.channel_weights else {
            candle_core::bail!("Cbam: the op returned no channel weights");
        };
        let maps = vec![
            AttentionMap {
                name: "channel".into(),
                tensor: cw,
            },
            AttentionMap {
                name: "spatial".into(),
                tensor: sw,
            },
        ];
        Ok((y, maps))
    }
}
