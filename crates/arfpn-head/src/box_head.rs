//! Box heads: pooled RoI features `[K, C, s, s]` → one vector per RoI `[K, D]`.
//!
//! * [`TwoMlpHead`]: torchvision's `TwoMLPHead` (flatten, `fc6`, ReLU, `fc7`, ReLU; 1024).
//! * [`ConvFcHead`]: detectron2's `FastRCNNConvFCHead` (`conv1..convN` 3×3 with GroupNorm and
//!   ReLU, flatten, `fc1`, ReLU), the sounder choice for training from scratch.

use arfpn_kernels::Conv2dConfig;
use arfpn_nn::{conv2d, group_norm, inits, linear, Conv2d, GroupNorm, Linear};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::{HeadError, Result};

/// Which box head, with its sizes.
///
/// ```
/// use arfpn_head::BoxHeadConfig;
/// let c: BoxHeadConfig = serde_json::from_str(r#"{"type":"two_mlp","representation_size":1024}"#).unwrap();
/// assert_eq!(c, BoxHeadConfig::default());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BoxHeadConfig {
    /// Two fully connected layers of `representation_size` (torchvision: 1024).
    TwoMlp {
        /// Width of `fc6` and `fc7`, hence of the head's output.
        representation_size: usize,
    },
    /// `num_convs` 3×3 convolutions of `conv_dim` channels, each GroupNorm(`norm_groups`) +
    /// ReLU, then one fully connected layer of `fc_dim` (detectron2's `4conv1fc`: 4, 256, 1024).
    ConvFc {
        /// Number of 3×3 convolutions (0 gives a single fc on the pooled features).
        num_convs: usize,
        /// Output channels of each convolution.
        conv_dim: usize,
        /// Width of the fully connected layer, hence of the head's output.
        fc_dim: usize,
        /// GroupNorm groups of each convolution; must divide `conv_dim`.
        norm_groups: usize,
    },
}

impl Default for BoxHeadConfig {
    fn default() -> Self {
        Self::TwoMlp {
            representation_size: 1024,
        }
    }
}

impl BoxHeadConfig {
    /// detectron2's `FastRCNNConvFCHead` with GroupNorm: 4 convs of 256, one fc of 1024.
    pub fn conv4_fc1() -> Self {
        Self::ConvFc {
            num_convs: 4,
            conv_dim: 256,
            fc_dim: 1024,
            norm_groups: 32,
        }
    }
}

/// torchvision's `TwoMLPHead` (parameters `fc6.*`, `fc7.*`). New weights are drawn as
/// detectron2's `c2_xavier_fill` (`kaiming_uniform_(a=1)`), biases zero.
#[derive(Clone, Debug)]
pub struct TwoMlpHead {
    fc6: Linear,
    fc7: Linear,
}

impl TwoMlpHead {
    /// The two layers for flattened inputs of `in_features` (`C × s × s` of the pooled
    /// features) and outputs of `representation_size`, with parameters `fc6.*` and `fc7.*`
    /// taken from (or created in) `vb`.
    pub fn new(in_features: usize, representation_size: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc6: linear(
                in_features,
                representation_size,
                true,
                inits::KAIMING_UNIFORM_A1,
                vb.pp("fc6"),
            )?,
            fc7: linear(
                representation_size,
                representation_size,
                true,
                inits::KAIMING_UNIFORM_A1,
                vb.pp("fc7"),
            )?,
        })
    }

    /// `[K, C, s, s]` pooled features (any shape `[K, ...]` with `in_features` elements per
    /// RoI) → `[K, representation_size]`, after a ReLU.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.flatten_from(1)?;
        let x = arfpn_kernels::relu(&self.fc6.forward(&x)?)?;
        Ok(arfpn_kernels::relu(&self.fc7.forward(&x)?)?)
    }
}

/// detectron2's `FastRCNNConvFCHead` with GroupNorm (parameters `conv{i}.weight`,
/// `conv{i}.norm.{weight,bias}`, `fc1.*`; detectron2's names). Convolutions are drawn as
/// `c2_msra_fill` (kaiming normal, fan-out), the fc as `c2_xavier_fill`.
#[derive(Clone, Debug)]
pub struct ConvFcHead {
    convs: Vec<(Conv2d, GroupNorm)>,
    fc: Linear,
}

impl ConvFcHead {
    /// The head for pooled features of `in_channels` channels and `output_size × output_size`
    /// bins: `num_convs` 3×3 convolutions (padding 1, no bias) of `conv_dim` channels, each
    /// followed by GroupNorm with `norm_groups` groups (eps 1e-5) and ReLU, then `fc1` to
    /// `fc_dim`. Parameters are taken from (or created in) `vb`. Fails with
    /// [`HeadError::Config`] when `norm_groups` does not divide `conv_dim`.
    pub fn new(
        in_channels: usize,
        output_size: usize,
        num_convs: usize,
        conv_dim: usize,
        fc_dim: usize,
        norm_groups: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        if num_convs > 0 && (norm_groups == 0 || !conv_dim.is_multiple_of(norm_groups)) {
            return Err(HeadError::config(
                "box_head.norm_groups",
                format!("{norm_groups} groups do not divide conv_dim {conv_dim}"),
            ));
        }
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let mut convs = Vec::with_capacity(num_convs);
        let mut c = in_channels;
        for i in 1..=num_convs {
            let v = vb.pp(format!("conv{i}"));
            let conv = conv2d(
                c,
                conv_dim,
                3,
                cfg,
                false,
                inits::KAIMING_FAN_OUT,
                v.clone(),
            )?;
            let norm = group_norm(norm_groups, conv_dim, 1e-5, v.pp("norm"))?;
            convs.push((conv, norm));
            c = conv_dim;
        }
        let fc = linear(
            c * output_size * output_size,
            fc_dim,
            true,
            inits::KAIMING_UNIFORM_A1,
            vb.pp("fc1"),
        )?;
        Ok(Self { convs, fc })
    }

    /// `[K, in_channels, s, s]` → `[K, fc_dim]`, after a ReLU.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for (conv, norm) in &self.convs {
            x = norm.forward_relu(&conv.forward(&x)?)?;
        }
        Ok(arfpn_kernels::relu(&self.fc.forward(&x.flatten_from(1)?)?)?)
    }
}

/// A built box head.
#[derive(Clone, Debug)]
pub enum BoxHead {
    /// Built from [`BoxHeadConfig::TwoMlp`].
    TwoMlp(TwoMlpHead),
    /// Built from [`BoxHeadConfig::ConvFc`].
    ConvFc(ConvFcHead),
}

impl BoxHead {
    /// Builds the head for pooled features of `channels × output_size²`.
    pub fn new(
        config: &BoxHeadConfig,
        channels: usize,
        output_size: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        match *config {
            BoxHeadConfig::TwoMlp {
                representation_size,
            } => {
                if representation_size == 0 {
                    return Err(HeadError::config(
                        "box_head.representation_size",
                        "must be >= 1",
                    ));
                }
                Ok(Self::TwoMlp(TwoMlpHead::new(
                    channels * output_size * output_size,
                    representation_size,
                    vb,
                )?))
            }
            BoxHeadConfig::ConvFc {
                num_convs,
                conv_dim,
                fc_dim,
                norm_groups,
            } => {
                if conv_dim == 0 || fc_dim == 0 {
                    return Err(HeadError::config(
                        "box_head",
                        "conv_dim and fc_dim must be >= 1",
                    ));
                }
                Ok(Self::ConvFc(ConvFcHead::new(
                    channels,
                    output_size,
                    num_convs,
                    conv_dim,
                    fc_dim,
                    norm_groups,
                    vb,
                )?))
            }
        }
    }

    /// Output features per RoI.
    pub fn out_features(config: &BoxHeadConfig) -> usize {
        match *config {
            BoxHeadConfig::TwoMlp {
                representation_size,
            } => representation_size,
            BoxHeadConfig::ConvFc { fc_dim, .. } => fc_dim,
        }
    }

    /// `[K, C, s, s]` → `[K, D]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::TwoMlp(h) => h.forward(x),
            Self::ConvFc(h) => h.forward(x),
        }
    }
}
