//! Anchor generator and Region Proposal Network for the arfpn detector (candle).
//!
//! | file | what |
//! |---|---|
//! | `anchors.rs` | [`AnchorConfig`] (sizes/ratios per level, offset, RBC defaults), [`AnchorGenerator`] |
//! | `head.rs` | [`RpnHead`]: shared 3×3 conv + ReLU, 1×1 objectness (A) and deltas (4A) |
//! | `targets.rs` | [`rpn_targets`]: matcher 0.7/0.3 with low-quality matches, 256/0.5 sampling |
//! | `loss.rs` | [`rpn_loss`]: BCE-with-logits + smooth-L1 (β = 1/9) / sampled, as torchvision |
//! | `proposals.rs` | [`select_proposals`]: top-k per level, decode, clip, filter, NMS per level, top-k per image |
//! | `config.rs` | [`RpnConfig`] (serde), train and test [`ProposalParams`] |
//! | `rpn.rs` | [`RegionProposalNetwork`], built from the levels' [`ShapeSpec`](arfpn_nn::ShapeSpec)s |
//!
//! The box operations (matcher, sampler, coder, NMS) live in `arfpn-boxes` and work on
//! `&[BBox]`; this crate adds the tensors.
//!
//! ```
//! use arfpn_nn::{FeatureMap, ShapeSpec};
//! use arfpn_boxes::ImageSize;
//! use arfpn_rpn::{AnchorConfig, Levels, RegionProposalNetwork, RpnConfig};
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//!
//! let dev = Device::Cpu;
//! let vm = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
//! let specs = [ShapeSpec::new("p2", 8, 4), ShapeSpec::new("p3", 8, 8)];
//! let config = RpnConfig {
//!     anchors: AnchorConfig { sizes: Levels::Each(vec![vec![8.0], vec![16.0]]), ..AnchorConfig::default() },
//!     ..RpnConfig::default()
//! };
//! let rpn = RegionProposalNetwork::new(config, &specs, vb).unwrap();
//! let maps = vec![
//!     FeatureMap::new("p2", 4, Tensor::randn(0f32, 1., (1, 8, 8, 8), &dev).unwrap()),
//!     FeatureMap::new("p3", 8, Tensor::randn(0f32, 1., (1, 8, 4, 4), &dev).unwrap()),
//! ];
//! let proposals = rpn.forward_test(&maps, &[ImageSize::new(32, 32)]).unwrap();
//! assert!(proposals[0].len() <= 8 * 8 * 3 + 4 * 4 * 3);
//! ```

#![forbid(unsafe_code)]

mod anchors;
mod config;
mod error;
mod head;
mod loss;
mod proposals;
mod rpn;
mod targets;

pub use anchors::{AnchorConfig, AnchorGenerator, Levels};
pub use config::RpnConfig;
pub use error::{Result, RpnError};
pub use head::{LevelOutput, RpnHead};
pub use loss::{rpn_loss, RpnLosses};
pub use proposals::{select_proposals, LevelPredictions, ProposalParams, Proposals};
pub use rpn::{HeadOutputs, RegionProposalNetwork, RpnTrainOutput};
pub use targets::{rpn_targets, RpnTargets};
