//! Serialisable ResNet configuration with the torchvision presets.

use crate::attention::AttentionKind;
use crate::error::{config_err, Result};
use crate::norm::NormKind;
use serde::{Deserialize, Serialize};

/// The residual unit of a ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// Two 3×3 convolutions (ResNet-18/34); output channels = planes.
    Basic,
    /// 1×1, 3×3 (strided, "ResNet v1.5" as torchvision), 1×1; output channels = 4 × planes.
    Bottleneck,
}

impl BlockKind {
    /// Output channels per plane: 1 for basic units, 4 for bottlenecks.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// A ResNet: block type, units per stage, width, normalisation and attention.
///
/// Stage `i` (`layer{i+1}`, output `c{i+2}`, stride `2^(i+2)`) has `width * 2^i` planes, so
/// `width = 64` is torchvision's network and `width / 64` is the width multiplier. The stem has
/// `width` channels.
///
/// ```
/// use arfpn_backbone::{AttentionKind, ResNetConfig};
/// let cfg = ResNetConfig::resnet50().with_attention(AttentionKind::cbam());
/// assert_eq!(cfg.stage_depths, [3, 4, 6, 3]);
/// let json = serde_json::to_string(&cfg).unwrap();
/// assert_eq!(serde_json::from_str::<ResNetConfig>(&json).unwrap(), cfg);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Basic units (ResNet-18/34) or bottlenecks (ResNet-50/101).
    pub block: BlockKind,
    /// Residual units in `layer1..layer4`.
    pub stage_depths: [usize; 4],
    /// Planes of the stem and of `layer1` (64 in torchvision).
    pub width: usize,
    /// Image channels (3 for RGB).
    pub in_channels: usize,
    /// The normalisation after every convolution (default: GroupNorm, 32 groups). Its group
    /// count must divide `width`.
    #[serde(default)]
    pub norm: NormKind,
    /// The attention module in each residual unit (default none, the plain FPN baseline):
    /// channel (C-ARFPN), spatial (S-ARFPN), CBAM (CS-ARFPN) or a registered custom one.
    #[serde(default)]
    pub attention: AttentionKind,
    /// The stages (1–4, `layer1` … `layer4`) whose residual units carry `attention`; the
    /// others have none, as attention papers ablate (e.g. `[3, 4]`). `None`: every stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_stages: Option<Vec<usize>>,
}

impl ResNetConfig {
    fn preset(block: BlockKind, stage_depths: [usize; 4]) -> Self {
        Self {
            block,
            stage_depths,
            width: 64,
            in_channels: 3,
            norm: NormKind::default(),
            attention: AttentionKind::None,
            attention_stages: None,
        }
    }
    /// ResNet-18: basic units `[2, 2, 2, 2]`.
    pub fn resnet18() -> Self {
        Self::preset(BlockKind::Basic, [2, 2, 2, 2])
    }
    /// ResNet-34: basic units `[3, 4, 6, 3]`.
    pub fn resnet34() -> Self {
        Self::preset(BlockKind::Basic, [3, 4, 6, 3])
    }
    /// ResNet-50: bottlenecks `[3, 4, 6, 3]`.
    pub fn resnet50() -> Self {
        Self::preset(BlockKind::Bottleneck, [3, 4, 6, 3])
    }
    /// ResNet-101: bottlenecks `[3, 4, 23, 3]`.
    pub fn resnet101() -> Self {
        Self::preset(BlockKind::Bottleneck, [3, 4, 23, 3])
    }
    /// The preset for a depth of 18, 34, 50 or 101.
    pub fn from_depth(depth: usize) -> Result<Self> {
        match depth {
            18 => Ok(Self::resnet18()),
            34 => Ok(Self::resnet34()),
            50 => Ok(Self::resnet50()),
            101 => Ok(Self::resnet101()),
            d => Err(config_err(
                "depth",
                format!("{d} is not one of 18, 34, 50, 101"),
            )),
        }
    }

    /// Sets [`width`](Self::width) (planes of the stem and `layer1`); not validated here.
    pub fn with_width(mut self, width: usize) -> Self {
        self.width = width;
        self
    }
    /// Sets [`stage_depths`](Self::stage_depths) (units in `layer1..layer4`); not validated
    /// here.
    pub fn with_stage_depths(mut self, stage_depths: [usize; 4]) -> Self {
        self.stage_depths = stage_depths;
        self
    }
    /// Sets [`norm`](Self::norm); not validated here.
    pub fn with_norm(mut self, norm: NormKind) -> Self {
        self.norm = norm;
        self
    }
    /// Sets [`attention`](Self::attention) (in the stages of
    /// [`attention_stages`](Self::attention_stages), all by default); not validated here.
    pub fn with_attention(mut self, attention: AttentionKind) -> Self {
        self.attention = attention;
        self
    }
    /// Attention in these stages only (1–4); see [`attention_stages`](Self::attention_stages).
    pub fn with_attention_stages(mut self, stages: &[usize]) -> Self {
        self.attention_stages = Some(stages.to_vec());
        self
    }

    /// Whether the units of stage `stage` (1–4) carry attention.
    pub fn has_attention(&self, stage: usize) -> bool {
        self.attention_stages
            .as_ref()
            .is_none_or(|s| s.contains(&stage))
    }

    /// Planes of stage `i` (0-based).
    pub fn planes(&self, stage: usize) -> usize {
        self.width << stage
    }

    /// Output channels of stage `i` (0-based): planes × expansion.
    pub fn stage_channels(&self, stage: usize) -> usize {
        self.planes(stage) * self.block.expansion()
    }

    /// Checks every field; the error names the one at fault.
    pub fn validate(&self) -> Result<()> {
        for (i, &d) in self.stage_depths.iter().enumerate() {
            if d == 0 {
                return Err(config_err(
                    format!("stage_depths[{i}]"),
                    "must be at least 1",
                ));
            }
        }
        if self.width == 0 {
            return Err(config_err("width", "must be at least 1"));
        }
        if self.in_channels == 0 {
            return Err(config_err("in_channels", "must be at least 1"));
        }
        self.attention.validate()?;
        if let Some(stages) = &self.attention_stages {
            for (i, &s) in stages.iter().enumerate() {
                if !(1..=4).contains(&s) || stages[..i].contains(&s) {
                    return Err(config_err(
                        format!("attention_stages[{i}]"),
                        format!("{s}: stages are 1-4 (layer1-layer4), each at most once"),
                    ));
                }
            }
        }
        // Every normalised channel count is a multiple of `width` times a power of two.
        self.norm.check_channels(self.width)?;
        Ok(())
    }
}
