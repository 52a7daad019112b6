//! The basic residual unit of ResNet-18/34, with attention before the addition.

use crate::attention::{Attention, AttentionMap};
use crate::error::Result;
use crate::norm::{self, Norm, NormKind};
use crate::residual::{attend_and_add, unit_frozen_parameters, Downsample};
use arfpn_kernels::Conv2dConfig;
use arfpn_nn::{conv2d, Conv2d};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// `relu(attention(bn2(conv2(relu(bn1(conv1(x)))))) + shortcut(x))`; conv1 is 3×3 with the
/// unit's stride, conv2 3×3. Parameter names as torchvision's `BasicBlock`.
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: Norm,
    conv2: Conv2d,
    bn2: Norm,
    attention: Box<dyn Attention>,
    downsample: Option<Downsample>,
    frozen: Vec<String>,
}

impl BasicBlock {
    /// Builds the unit under `vb` (torchvision names) around `attention`, the module built
    /// for it (parameters under `vb.pp("attention")`, for the unit's output channels). A
    /// projection shortcut (`downsample.*`) is added when the stride or the channel count
    /// changes.
    pub fn new(
        in_c: usize,
        planes: usize,
        stride: usize,
        norm: &NormKind,
        attention: Box<dyn Attention>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let c1 = Conv2dConfig {
            stride,
            padding: 1,
            ..Default::default()
        };
        let c2 = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let downsample = Downsample::if_needed(in_c, planes, stride, norm, vb.pp("downsample"))?;
        let frozen = unit_frozen_parameters(
            norm,
            &vb,
            &["bn1", "bn2"],
            downsample.as_ref(),
            attention.as_ref(),
        );
        Ok(Self {
            conv1: conv2d(
                in_c,
                planes,
                3,
                c1,
                false,
                arfpn_nn::inits::KAIMING_FAN_OUT,
                vb.pp("conv1"),
            )?,
            bn1: norm::build(norm, planes, vb.pp("bn1"))?,
            conv2: conv2d(
                planes,
                planes,
                3,
                c2,
                false,
                arfpn_nn::inits::KAIMING_FAN_OUT,
                vb.pp("conv2"),
            )?,
            bn2: norm::build(norm, planes, vb.pp("bn2"))?,
            attention,
            downsample,
            frozen,
        })
    }

    /// Full names of the unit's parameters an optimiser must not update (its norms' and
    /// its attention module's, see [`Backbone::frozen_parameters`](crate::Backbone::frozen_parameters)).
    pub fn frozen_parameters(&self) -> &[String] {
        &self.frozen
    }

    /// Runs the unit; when `maps` is given, the attention maps are appended to it.
    pub fn forward_t(
        &self,
        x: &Tensor,
        train: bool,
        maps: Option<&mut Vec<AttentionMap>>,
    ) -> candle_core::Result<Tensor> {
        let y = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
        attend_and_add(
            self.attention.as_ref(),
            &self.conv2.forward(&y)?,
            &self.bn2,
            x,
            self.downsample.as_ref(),
            train,
            maps,
        )
    }
}
