//! Named starting points, as plain functions: `<variant>-r<depth>` ([`preset`]) and
//! [`cpu_small`].
//!
//! | variant | attention in every residual unit | paper name |
//! |---|---|---|
//! | [`Variant::Fpn`] | none | FPN (the Faster R-CNN baseline) |
//! | [`Variant::CArfpn`] | channel (squeeze-excitation) | C-ARFPN |
//! | [`Variant::SArfpn`] | spatial | S-ARFPN |
//! | [`Variant::CsArfpn`] | channel then spatial (CBAM) | CS-ARFPN |
//!
//! `fpn-r*` are exactly torchvision's `fasterrcnn_resnet50_fpn` settings (frozen batch norm,
//! anchors 32–512 rounded to whole pixels as torchvision rounds them, 2000/2000 proposals in training and 1000/1000 at test, 512 RoIs, 100
//! detections, 800/1333 resizing), so comparisons with it are like for like and its models
//! import ([`Detector::from_torchvision`](crate::Detector::from_torchvision)). The `*-arfpn-*`
//! presets carry the paper's choices for training from scratch on smears: GroupNorm
//! everywhere in the backbone, small dense anchors ([`AnchorConfig::rbc_dense`]), more
//! proposals, up to 1000 detections per image and no resizing (cell size in pixels matters).

use std::fmt;
use std::str::FromStr;

use arfpn_backbone::{AttentionKind, NormKind, ResNetConfig};
use arfpn_fpn::FpnConfig;
use arfpn_head::{BoxHeadConfig, PoolerConfig, RoiHeadConfig};
use arfpn_rpn::{AnchorConfig, ProposalParams, RpnConfig};
use serde::{Deserialize, Serialize};

use crate::{DetectorConfig, DetectorError, InputConfig, LossWeights, Result};

/// The paper's four model variants (its Table 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Variant {
    /// No attention: plain ResNet-FPN Faster R-CNN.
    Fpn,
    /// Channel attention (squeeze-excitation).
    CArfpn,
    /// Spatial attention.
    SArfpn,
    /// Channel and spatial attention (CBAM), the paper's best model.
    CsArfpn,
}

impl Variant {
    /// All four, in the paper's order.
    pub const ALL: [Variant; 4] = [Self::Fpn, Self::CArfpn, Self::SArfpn, Self::CsArfpn];

    /// The attention this variant puts into every residual unit.
    pub fn attention(self) -> AttentionKind {
        match self {
            Self::Fpn => AttentionKind::None,
            Self::CArfpn => AttentionKind::channel(),
            Self::SArfpn => AttentionKind::spatial(),
            Self::CsArfpn => AttentionKind::cbam(),
        }
    }

    /// `fpn`, `c-arfpn`, `s-arfpn`, `cs-arfpn`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fpn => "fpn",
            Self::CArfpn => "c-arfpn",
            Self::SArfpn => "s-arfpn",
            Self::CsArfpn => "cs-arfpn",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A preset's name parsed: `<variant>-r<depth>` or `cpu-small`.
///
/// ```
/// use arfpn_model::presets::{PresetName, Variant};
/// let p: PresetName = "cs-arfpn-r50".parse().unwrap();
/// assert_eq!(p, PresetName::Model { variant: Variant::CsArfpn, depth: 50 });
/// assert!("cs-arfpn-r51".parse::<PresetName>().is_err());
/// let cfg = p.config(&["rbc"]).unwrap();
/// assert_eq!(cfg.name, "cs-arfpn-r50");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresetName {
    /// `<variant>-r<depth>`, built by [`preset`].
    Model {
        /// Which attention the residual units carry.
        variant: Variant,
        /// ResNet depth: 18, 34, 50 or 101.
        depth: usize,
    },
    /// `cpu-small`, built by [`cpu_small`].
    CpuSmall,
}

impl PresetName {
    /// Every preset name there is.
    pub fn all() -> Vec<PresetName> {
        let mut v = vec![PresetName::CpuSmall];
        for variant in Variant::ALL {
            for depth in [18, 34, 50, 101] {
                v.push(PresetName::Model { variant, depth });
            }
        }
        v
    }

    /// The configuration for `classes`.
    pub fn config<S: AsRef<str>>(self, classes: &[S]) -> Result<DetectorConfig> {
        match self {
            Self::Model { variant, depth } => preset(variant, depth, classes),
            Self::CpuSmall => Ok(cpu_small(classes)),
        }
    }
}

impl fmt::Display for PresetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Model { variant, depth } => write!(f, "{variant}-r{depth}"),
            Self::CpuSmall => f.write_str("cpu-small"),
        }
    }
}

impl FromStr for PresetName {
    type Err = DetectorError;

    fn from_str(s: &str) -> Result<Self> {
        if s == "cpu-small" {
            return Ok(Self::CpuSmall);
        }
        let known = || {
            let names: Vec<String> = Self::all().iter().map(|p| p.to_string()).collect();
            DetectorError::config(
                "preset",
                format!("unknown preset `{s}`; known: {}", names.join(", ")),
            )
        };
        let (variant, depth) = s.rsplit_once("-r").ok_or_else(known)?;
        let variant = Variant::ALL
            .into_iter()
            .find(|v| v.name() == variant)
            .ok_or_else(known)?;
        let depth: usize = depth.parse().map_err(|_| known())?;
        if ![18, 34, 50, 101].contains(&depth) {
            return Err(known());
        }
        Ok(Self::Model { variant, depth })
    }
}

fn names<S: AsRef<str>>(classes: &[S]) -> Vec<String> {
    classes.iter().map(|c| c.as_ref().to_string()).collect()
}

/// `<variant>-r<depth>` for depth 18, 34, 50 or 101 (see the module docs for what each
/// variant sets). Change `backbone.width` afterwards for a thinner or wider network.
pub fn preset<S: AsRef<str>>(
    variant: Variant,
    depth: usize,
    classes: &[S],
) -> Result<DetectorConfig> {
    let resnet = ResNetConfig::from_depth(depth)
        .map_err(|e| DetectorError::config("preset depth", e.to_string()))?;
    let name = format!("{variant}-r{depth}");
    if variant == Variant::Fpn {
        return Ok(torchvision_like(name, resnet, classes));
    }
    Ok(DetectorConfig {
        name,
        classes: names(classes),
        input: InputConfig::default(),
        backbone: resnet
            .with_norm(NormKind::group_norm(32))
            .with_attention(variant.attention()),
        custom_backbone: None,
        fpn: FpnConfig::default(),
        rpn: RpnConfig::default(),
        roi_heads: RoiHeadConfig::default(),
        loss_weights: LossWeights::default(),
        data: crate::DataInfo::default(),
    })
}

/// torchvision's `fasterrcnn_resnet50_fpn` (and the same recipe on other depths).
fn torchvision_like<S: AsRef<str>>(
    name: String,
    resnet: ResNetConfig,
    classes: &[S],
) -> DetectorConfig {
    let phase = |n| ProposalParams {
        pre_nms_top_n: n,
        post_nms_top_n: n,
        nms_thresh: 0.7,
        min_size: 1e-3,
        score_thresh: 0.0,
    };
    let mut roi_heads = RoiHeadConfig {
        pooler: PoolerConfig::torchvision(),
        box_head: BoxHeadConfig::TwoMlp {
            representation_size: 1024,
        },
        ..RoiHeadConfig::default()
    };
    roi_heads.postprocess.detections_per_image = 100;
    DetectorConfig {
        name,
        classes: names(classes),
        input: InputConfig::torchvision(),
        backbone: resnet.with_norm(NormKind::frozen_batch_norm()),
        custom_backbone: None,
        fpn: FpnConfig::default(),
        rpn: RpnConfig {
            anchors: AnchorConfig::torchvision(),
            train: phase(2000),
            test: phase(1000),
            ..RpnConfig::default()
        },
        roi_heads,
        loss_weights: LossWeights::default(),
        data: crate::DataInfo::default(),
    }
}

/// `fpn-r50`: torchvision's `fasterrcnn_resnet50_fpn`.
pub fn fpn_r50<S: AsRef<str>>(classes: &[S]) -> DetectorConfig {
    torchvision_like("fpn-r50".into(), ResNetConfig::resnet50(), classes)
}

/// `cs-arfpn-r50`: the paper's CS-ARFPN on ResNet-50.
pub fn cs_arfpn_r50<S: AsRef<str>>(classes: &[S]) -> DetectorConfig {
    preset(Variant::CsArfpn, 50, classes).expect("50 is a ResNet depth")
}

/// `cpu-small`: a CS-ARFPN sized to train on 2 CPU cores in minutes — ResNet-18 at half
/// width with GroupNorm and CBAM, 64 FPN channels, dense small anchors, 1000/500 training
/// proposals, 256 RoIs per image and a 256-wide box head.
pub fn cpu_small<S: AsRef<str>>(classes: &[S]) -> DetectorConfig {
    let mut rpn = RpnConfig::default();
    rpn.train.pre_nms_top_n = 1000;
    rpn.train.post_nms_top_n = 500;
    rpn.test.pre_nms_top_n = 2000;
    rpn.test.post_nms_top_n = 1000;
    let roi_heads = RoiHeadConfig {
        box_head: BoxHeadConfig::TwoMlp {
            representation_size: 256,
        },
        batch_size_per_image: 256,
        ..RoiHeadConfig::default()
    };
    DetectorConfig {
        name: "cpu-small".into(),
        classes: names(classes),
        input: InputConfig::default(),
        backbone: ResNetConfig::resnet18()
            .with_width(32)
            .with_norm(NormKind::group_norm(8))
            .with_attention(AttentionKind::cbam()),
        custom_backbone: None,
        fpn: FpnConfig {
            out_channels: 64,
            extra_p6: true,
        },
        rpn,
        roi_heads,
        loss_weights: LossWeights::default(),
        data: crate::DataInfo::default(),
    }
}
