//! The ResNet stem: 7×7/2 convolution, norm, ReLU, 3×3/2 max-pool (stride 4 in total).

use crate::error::Result;
use crate::norm::{self, Norm, NormKind};
use arfpn_kernels::{max_pool2d, Conv2dConfig};
use arfpn_nn::{conv2d, Conv2d};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// `maxpool3x3/2(relu(bn1(conv1(x))))` with torchvision's names `conv1.weight`, `bn1.*`.
#[derive(Clone, Debug)]
pub struct Stem {
    conv1: Conv2d,
    bn1: Norm,
    frozen: Vec<String>,
}

impl Stem {
    /// Builds the stem under `vb`: `conv1` (7×7/2, no bias) and `bn1`.
    pub fn new(in_c: usize, out_c: usize, norm: &NormKind, vb: VarBuilder) -> Result<Self> {
        let cfg = Conv2dConfig {
            stride: 2,
            padding: 3,
            ..Default::default()
        };
        Ok(Self {
            conv1: conv2d(
                in_c,
                out_c,
                7,
                cfg,
                false,
                arfpn_nn::inits::KAIMING_FAN_OUT,
                vb.pp("conv1"),
            )?,
            bn1: norm::build(norm, out_c, vb.pp("bn1"))?,
            frozen: norm::frozen_names(norm, &vb.pp("bn1")),
        })
    }

    /// Full names of `bn1`'s parameters an optimiser must not update.
    pub fn frozen_parameters(&self) -> &[String] {
        &self.frozen
    }

    /// Output `[N, width, ceil(H/4)', W']` with torchvision's size arithmetic.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let y = self.bn1.forward_relu_t(&self.conv1.forward(x)?, train)?;
        max_pool2d(&y, 3, 2, 1)
    }
}
