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
    pub block: BlockKind,
    /// Residual units in `layer1..layer4`.
    pub stage_depths: [usize; 4],
    /// Planes of the stem and of `layer1` (64 in torchvision).
    pub width: usize,
    /// Image channels (3 for RGB).
    pub in_channels: usize,
    #[serde(default)]
    pub norm: NormKind,
    #[serde(default)]
    pub attention: AttentionKind,
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

    pub fn with_width(mut self, width: usize) -> Self {
        self.width = width;
        self
    }
    pub fn with_stage_depths(mut self, stage_depths: [usize; 4]) -> Self {
        self.stage_depths = stage_depths;
        self
    }
    pub fn with_norm(mut self, norm: NormKind) -> Self {
        self.norm = norm;
        self
    }
    pub fn with_attention(mut self, attention: AttentionKind) -> Self {
        self.attention = attention;
        self
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
        // Every normalised channel count is a multiple of `width` times a power of two.
        self.norm.check_channels(self.width)?;
        Ok(())
    }
}
