//! The RPN head: a shared 3×3 convolution + ReLU, then 1×1 objectness and box-delta
//! predictors, applied to every pyramid level.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::{Result, RpnError};

/// The convolution layer the head uses: arfpn-kernels' im2col + gemm convolution, whose
/// backward is faster than candle's and correct for every size.
type Conv = arfpn_nn::Conv2d;

/// A stride-1 `k × k` convolution with `padding`, weights `N(0, 0.01²)` and zero bias
/// (torchvision's RPN-head initialisation), named `weight`/`bias` under `vb`.
fn conv(in_c: usize, out_c: usize, k: usize, padding: usize, vb: VarBuilder) -> Result<Conv> {
    let cfg = arfpn_kernels::Conv2dConfig {
        padding,
        ..Default::default()
    };
    Ok(arfpn_nn::conv2d(
        in_c,
        out_c,
        k,
        cfg,
        true,
        arfpn_nn::inits::normal(0.01),
        vb,
    )?)
}

/// Raw head outputs for one level.
#[derive(Clone, Debug)]
pub struct LevelOutput {
    /// `[N, A, H, W]` objectness logits.
    pub objectness: Tensor,
    /// `[N, 4A, H, W]` box deltas, channel `4a + k` is delta `k` of anchor `a`.
    pub deltas: Tensor,
}

impl LevelOutput {
    /// torchvision's `permute_and_flatten`: objectness `[N, H·W·A]` and deltas
    /// `[N, H·W·A, 4]`, in the anchor generator's `(y, x, a)` order.
    pub fn flatten(&self) -> Result<(Tensor, Tensor)> {
        let (n, a, h, w) = self.objectness.dims4()?;
        let obj = self
            .objectness
            .permute((0, 2, 3, 1))?
            .contiguous()?
            .reshape((n, h * w * a))?;
        let d = self
            .deltas
            .reshape((n, a, 4, h, w))?
            .permute((0, 3, 4, 1, 2))?
            .contiguous()?
            .reshape((n, h * w * a, 4))?;
        Ok((obj, d))
    }
}

/// torchvision's `RPNHead`, with its tensor names: `conv.0.0` (the 3×3 convolution, inside
/// torchvision's `Sequential(Conv2dNormActivation)`), `cls_logits`, `bbox_pred`.
#[derive(Clone, Debug)]
pub struct RpnHead {
    conv: Conv,
    cls_logits: Conv,
    bbox_pred: Conv,
    in_channels: usize,
    num_anchors: usize,
}

impl RpnHead {
    /// A head for `in_channels`-channel maps predicting `num_anchors` anchors per location.
    pub fn new(in_channels: usize, num_anchors: usize, vb: VarBuilder) -> Result<Self> {
        if in_channels == 0 || num_anchors == 0 {
            return Err(RpnError::config(
                "head",
                format!("in_channels ({in_channels}) and num_anchors ({num_anchors}) must be > 0"),
            ));
        }
        Ok(Self {
            conv: conv(
                in_channels,
                in_channels,
                3,
                1,
                vb.pp("conv").pp("0").pp("0"),
            )?,
            cls_logits: conv(in_channels, num_anchors, 1, 0, vb.pp("cls_logits"))?,
            bbox_pred: conv(in_channels, 4 * num_anchors, 1, 0, vb.pp("bbox_pred"))?,
            in_channels,
            num_anchors,
        })
    }

    /// Anchors per location `A`.
    pub fn num_anchors(&self) -> usize {
        self.num_anchors
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// The head applied to one `[N, C, H, W]` map.
    pub fn forward_level(&self, x: &Tensor) -> Result<LevelOutput> {
        let c = x.dim(1)?;
        if c != self.in_channels {
            return Err(RpnError::input(
                "features",
                format!(
                    "map has {c} channels, the RPN head expects {}",
                    self.in_channels
                ),
            ));
        }
        let t = arfpn_kernels::relu(&self.conv.forward(x)?)?;
        Ok(LevelOutput {
            objectness: self.cls_logits.forward(&t)?,
            deltas: self.bbox_pred.forward(&t)?,
        })
    }

    /// The head applied to each level.
    pub fn forward(&self, levels: &[Tensor]) -> Result<Vec<LevelOutput>> {
        levels.iter().map(|x| self.forward_level(x)).collect()
    }
}
