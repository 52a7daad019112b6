//! A backbone and an FPN on top of it, built and checked together.

use crate::config::FpnConfig;
use crate::error::{FpnError, Result};
use crate::fpn::Fpn;
use arfpn_backbone::{Backbone, ResNet, ResNetConfig};
use arfpn_nn::{FeatureMaps, ShapeSpec};
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// `fpn(body(images))`, torchvision's `BackboneWithFPN`. The FPN is built from the body's
/// [`output_shapes`](Backbone::output_shapes). Naming follows the workspace rule (each
/// constructor names only its own children): under the `vb` it is given, the body's
/// parameters live under `body.` and the FPN's under `fpn.`, so a detector that passes
/// `vb.pp("backbone")` gets torchvision's `backbone.body.*` / `backbone.fpn.*`.
///
/// ```
/// use arfpn_backbone::{NormKind, ResNetConfig};
/// use arfpn_fpn::{BackboneWithFpn, FpnConfig};
/// use candle_core::{DType, Device};
/// let vm = candle_nn::VarMap::new();
/// let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
/// let cfg = ResNetConfig::resnet18().with_width(8).with_norm(NormKind::group_norm(4));
/// let fpn = FpnConfig { out_channels: 16, extra_p6: true };
/// let net = BackboneWithFpn::resnet(&cfg, &fpn, vb.pp("backbone")).unwrap();
/// assert_eq!(net.output_shapes().len(), 5);
/// let names = vm.data().lock().unwrap();
/// assert!(names.contains_key("backbone.body.conv1.weight"));
/// assert!(names.contains_key("backbone.fpn.inner_blocks.0.0.weight"));
/// ```
pub struct BackboneWithFpn {
    backbone: Box<dyn Backbone>,
    fpn: Fpn,
}

impl BackboneWithFpn {
    /// Builds the FPN under `vb.pp("fpn")` for an already built body, which should have
    /// been built under `vb.pp("body")` of the same `vb` (custom bodies: any `Backbone`).
    pub fn new(backbone: Box<dyn Backbone>, config: &FpnConfig, vb: VarBuilder) -> Result<Self> {
        let fpn = Fpn::new(config, &backbone.output_shapes(), vb.pp("fpn"))?;
        Ok(Self { backbone, fpn })
    }

    /// Builds an attention-residual ResNet body under `vb.pp("body")` and the FPN on it
    /// under `vb.pp("fpn")`.
    pub fn resnet(resnet: &ResNetConfig, config: &FpnConfig, vb: VarBuilder) -> Result<Self> {
        let body = ResNet::new(resnet, vb.pp("body"))?;
        Self::new(Box::new(body), config, vb)
    }

    /// The body (e.g. the ResNet), whose outputs feed the FPN.
    pub fn backbone(&self) -> &dyn Backbone {
        self.backbone.as_ref()
    }

    /// The FPN on top of the body.
    pub fn fpn(&self) -> &Fpn {
        &self.fpn
    }

    /// The body's frozen parameters ([`Backbone::frozen_parameters`]); the FPN has none.
    pub fn frozen_parameters(&self) -> Vec<String> {
        self.backbone.frozen_parameters()
    }

    /// The FPN's output levels (`p2`–`p6` for a ResNet).
    pub fn output_shapes(&self) -> Vec<ShapeSpec> {
        self.fpn.output_shapes()
    }

    /// Image height and width must be multiples of this.
    pub fn size_divisibility(&self) -> usize {
        self.fpn
            .size_divisibility()
            .max(self.backbone.size_divisibility())
    }

    /// Runs both on `[N, C, H, W]` images whose `H` and `W` are multiples of
    /// [`size_divisibility`](Self::size_divisibility) (an [`arfpn_nn::ImageBatch`] pads them).
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Result<FeatureMaps> {
        let d = self.size_divisibility();
        let dims = images.dims();
        if dims.len() != 4 || !dims[2].is_multiple_of(d) || !dims[3].is_multiple_of(d) {
            return Err(FpnError::Input(format!(
                "images must be [N, C, H, W] with H and W multiples of {d}, got {dims:?}; \
                 batch them with arfpn_nn::ImageBatch (or arfpn_nn::pad_to_multiple)"
            )));
        }
        let feats = self.backbone.forward_t(images, train)?;
        self.fpn.forward(&feats)
    }
}
