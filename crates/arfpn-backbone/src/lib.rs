//! ResNet backbones whose residual units carry attention, for the ARFPN detector
//! (Song et al., Front. Med. 2021).
//!
//! * [`ResNet`] — ResNet-18/34 (basic units) and 50/101 (bottlenecks), any width and stage
//!   depths ([`ResNetConfig`], serialisable), outputs C2–C5 as [`FeatureMap`](arfpn_nn::FeatureMap)s
//!   with strides 4, 8, 16, 32 and reports them through [`Backbone::output_shapes`] before any
//!   forward.
//! * Attention in every residual unit, after the last convolution + norm and before the
//!   addition: [`ChannelAttention`] (SE, C-ARFPN), [`SpatialAttention`] (S-ARFPN), [`Cbam`]
//!   (CS-ARFPN), [`NoAttention`] (FPN baseline), or your own through [`Attention`] +
//!   [`AttentionFactory`].
//! * Normalisation: [`NormKind`] GroupNorm (default, 32 groups), frozen or trainable batch norm
//!   (with [`Norm`], defined in `arfpn-nn` and re-exported).
//! * torchvision parameter names; [`load_safetensors`] (`arfpn-nn`'s, with this crate's
//!   errors) reports missing/unexpected tensors in a [`LoadReport`].
//! * [`ResNet::forward_traced`] exposes the stem output, C2–C5 and every attention map.
//!
//! Input size: any `H, W ≥ 1` runs forward (torchvision's size arithmetic, each stage
//! `ceil`-halves). For training, and for an FPN on top, pad images to a multiple of
//! [`Backbone::size_divisibility`] (32) so every level is exactly half the previous one
//! (`arfpn_nn::ImageBatch` pads them).
//!
//! ## Parameter counts
//!
//! See `docs/benchmarks.md` (section `arfpn-backbone / arfpn-fpn`) for the counts of every
//! preset with and without attention, compared with the paper's Table 7.

#![forbid(unsafe_code)]

mod attention;
mod backbone;
mod basic_block;
mod bottleneck;
mod config;
mod error;
mod load;
mod norm;
mod registry;
mod residual;
mod resnet;
mod stem;

pub use attention::{
    max_keepdim_split, Attention, AttentionFactory, AttentionKind, AttentionMap, AttentionSite,
    Cbam, ChannelAttention, NoAttention, Reweighting, SpatialAttention,
};
pub use backbone::Backbone;
pub use basic_block::BasicBlock;
pub use bottleneck::Bottleneck;
pub use config::{BlockKind, ResNetConfig};
pub use error::{BackboneError, Result};
pub use load::{count_parameters, load_safetensors, LoadReport};
pub use norm::{Norm, NormKind};
pub use registry::{
    register_attention, register_backbone, registered_attentions, registered_backbones,
    AttentionConstructor, BackboneConstructor, CustomBackbone,
};
pub use resnet::{ResNet, ResNetTrace, UnitAttention};
pub use stem::Stem;
