//! The tiny attention-ResNet + FPN that tests above the FPN share (feature `fixture`): small
//! enough for a CPU test to train, and with every part the detector has (bottleneck-free
//! ResNet-18 layout, GroupNorm, CBAM in each residual unit, P2–P6).
//!
//! ```
//! use arfpn_testkit::fixture;
//! use candle_core::{DType, Device};
//! let vm = candle_nn::VarMap::new();
//! let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
//! let net = fixture::tiny_backbone_fpn(vb.pp("backbone"))?;
//! assert_eq!(net.output_shapes().len(), 5);
//! assert!(vm.data().lock().unwrap().contains_key("backbone.body.conv1.weight"));
//! # Ok::<(), arfpn_fpn::FpnError>(())
//! ```

use arfpn_backbone::{AttentionKind, NormKind, ResNetConfig};
use arfpn_fpn::{BackboneWithFpn, FpnConfig};
use candle_nn::VarBuilder;

/// ResNet-18 layout at width 8 with one residual unit per stage, GroupNorm with 4 groups and
/// CBAM (reduction 4, 3×3 spatial kernel) in every unit.
pub fn tiny_resnet_config() -> ResNetConfig {
    ResNetConfig::resnet18()
        .with_width(8)
        .with_stage_depths([1, 1, 1, 1])
        .with_norm(NormKind::group_norm(4))
        .with_attention(AttentionKind::Cbam {
            reduction: 4,
            kernel_size: 3,
        })
}

/// An 8-channel FPN with P6.
pub fn tiny_fpn_config() -> FpnConfig {
    FpnConfig {
        out_channels: 8,
        extra_p6: true,
    }
}

/// [`tiny_resnet_config`] + [`tiny_fpn_config`] as one [`BackboneWithFpn`]: parameters under
/// `vb`'s `body.*` and `fpn.*` (pass `vb.pp("backbone")` for the detector's names).
pub fn tiny_backbone_fpn(vb: VarBuilder) -> arfpn_fpn::Result<BackboneWithFpn> {
    BackboneWithFpn::resnet(&tiny_resnet_config(), &tiny_fpn_config(), vb)
}
