//! Typed feature maps: a tensor that knows its stride.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// What a module outputs at one level, known before any forward pass: a name
/// (`"c2"`, `"p3"`, …), the channel count and the stride in input pixels.
///
/// ```
/// let s = arfpn_nn::ShapeSpec::new("c3", 512, 8);
/// assert_eq!((s.channels, s.stride), (512, 8));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapeSpec {
    /// The level's name, e.g. `"c2"` for a backbone stage or `"p3"` for an FPN level.
    pub name: String,
    /// Channels `C` of the level's `[N, C, H, W]` maps.
    pub channels: usize,
    /// Input pixels per feature-map cell along H and W (4 for `c2`/`p2`, 8 for `c3`/`p3`, …).
    pub stride: usize,
}

impl ShapeSpec {
    /// A spec with these fields.
    pub fn new(name: impl Into<String>, channels: usize, stride: usize) -> Self {
        Self {
            name: name.into(),
            channels,
            stride,
        }
    }
}

/// A `[N, C, H, W]` tensor together with its level name and stride (input pixels per
/// feature-map cell).
#[derive(Clone, Debug)]
pub struct FeatureMap {
    /// The level's name, as in its [`ShapeSpec`] (`"c2"`, `"p3"`, …).
    pub name: String,
    /// Input pixels per feature-map cell along H and W.
    pub stride: usize,
    /// The map, `[N, C, H, W]`.
    pub tensor: Tensor,
}

impl FeatureMap {
    /// Wraps `tensor` (`[N, C, H, W]`) as the level `name` with this stride; nothing is
    /// checked.
    pub fn new(name: impl Into<String>, stride: usize, tensor: Tensor) -> Self {
        Self {
            name: name.into(),
            stride,
            tensor,
        }
    }

    /// Channels of the map (dimension 1).
    pub fn channels(&self) -> Result<usize> {
        self.tensor.dim(1)
    }

    /// `(height, width)` of the map.
    pub fn spatial_size(&self) -> Result<(usize, usize)> {
        Ok((self.tensor.dim(2)?, self.tensor.dim(3)?))
    }

    /// The [`ShapeSpec`] this map fulfils.
    pub fn spec(&self) -> Result<ShapeSpec> {
        Ok(ShapeSpec::new(
            self.name.clone(),
            self.channels()?,
            self.stride,
        ))
    }
}

/// Feature maps ordered from the finest (smallest stride) to the coarsest.
pub type FeatureMaps = Vec<FeatureMap>;

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn feature_map_reports_its_spec() -> Result<()> {
        let t = Tensor::zeros((2, 8, 5, 7), DType::F32, &Device::Cpu)?;
        let f = FeatureMap::new("p3", 8, t);
        assert_eq!(f.spatial_size()?, (5, 7));
        assert_eq!(f.spec()?, ShapeSpec::new("p3", 8, 8));
        Ok(())
    }
}
