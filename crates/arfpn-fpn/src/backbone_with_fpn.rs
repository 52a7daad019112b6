//! A backbone and an FPN on top of it, built and checked together.

use crate::config::FpnConfig;
use crate::error::{FpnError, Result};
use crate::fpn::Fpn;
use arfpn_backbone::Backbone;
use arfpn_nn::{FeatureMaps, ShapeSpec};
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// `fpn(backbone(images))`. The FPN is built from the backbone's
/// [`output_shapes`](Backbone::output_shapes); its parameters live under `fpn.`, the
/// backbone's under `backbone.` when built with [`BackboneWithFpn::new`].
pub struct BackboneWithFpn {
    backbone: Box<dyn Backbone>,
    fpn: Fpn,
}

impl BackboneWithFpn {
    /// Builds the FPN under `vb.pp("fpn")` for an already built backbone.
    pub fn new(backbone: Box<dyn Backbone>, config: &FpnConfig, vb: VarBuilder) -> Result<Self> {
        let fpn = Fpn::new(config, &backbone.output_shapes(), vb.pp("fpn"))?;
        Ok(Self { backbone, fpn })
    }

    pub fn backbone(&self) -> &dyn Backbone {
        self.backbone.as_ref()
    }

    pub fn fpn(&self) -> &Fpn {
        &self.fpn
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
    /// [`size_divisibility`](Self::size_divisibility) (see [`pad_to_multiple`](crate::pad_to_multiple)).
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Result<FeatureMaps> {
        let d = self.size_divisibility();
        let dims = images.dims();
        if dims.len() != 4 || !dims[2].is_multiple_of(d) || !dims[3].is_multiple_of(d) {
            return Err(FpnError::Input(format!(
                "images must be [N, C, H, W] with H and W multiples of {d}, got {dims:?}; \
                 pad them with arfpn_fpn::pad_to_multiple"
            )));
        }
        let feats = self.backbone.forward_t(images, train)?;
        self.fpn.forward(&feats)
    }
}
