//! RoI pooling over named FPN levels: [`PoolerConfig`] → [`Pooler`].

use arfpn_nn::{FeatureMap, ShapeSpec};
use arfpn_roi_align::{roi_pool, MultiScaleRoIAlign, Rois};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::{HeadError, Result};

/// How many bilinear samples RoIAlign takes per bin side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// `ceil(bin size)` samples (detectron2's `ROIAlignV2`; torchvision's `sampling_ratio=0`).
    Adaptive,
    /// A fixed number per bin side (torchvision's Faster R-CNN: 2).
    Fixed(u32),
}

impl Sampling {
    /// torchvision's `sampling_ratio` integer (`0` = adaptive).
    pub fn ratio(self) -> i32 {
        match self {
            Sampling::Adaptive => 0,
            Sampling::Fixed(n) => n as i32,
        }
    }
}

/// RoIAlign or RoIPool (the paper's Table 6 compares them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// Mask R-CNN's bilinear RoIAlign (through [`arfpn_roi_align::MultiScaleRoIAlign`]) with
    /// the configured `sampling` and `aligned`; the default.
    #[default]
    RoiAlign,
    /// Fast R-CNN's max pooling over quantised bins (`sampling` and `aligned` unused).
    RoiPool,
}

/// Which FPN levels the head pools from and how.
///
/// ```
/// let c = arfpn_head::PoolerConfig::default();
/// assert_eq!(c.levels, ["p2", "p3", "p4", "p5"]);
/// assert_eq!((c.output_size, c.aligned), (7, true));
/// let json = serde_json::to_string(&c).unwrap();
/// assert_eq!(serde_json::from_str::<arfpn_head::PoolerConfig>(&json).unwrap(), c);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolerConfig {
    /// Level names, finest first (strides must double; P6 feeds only the RPN).
    pub levels: Vec<String>,
    /// Pooled bins per side (7).
    pub output_size: usize,
    /// RoIAlign samples per bin side (detectron2: adaptive; torchvision: fixed 2).
    pub sampling: Sampling,
    /// RoIAlign's half-pixel shift (detectron2 `true`, torchvision `false`).
    pub aligned: bool,
    /// RoIAlign (default) or RoIPool.
    pub kind: PoolKind,
}

impl Default for PoolerConfig {
    /// detectron2's `ROIAlignV2` over P2–P5, 7×7: the arfpn detector's choice.
    fn default() -> Self {
        Self {
            levels: ["p2", "p3", "p4", "p5"].map(String::from).to_vec(),
            output_size: 7,
            sampling: Sampling::Adaptive,
            aligned: true,
            kind: PoolKind::RoiAlign,
        }
    }
}

impl PoolerConfig {
    /// torchvision's Faster R-CNN pooler: `aligned = false`, sampling 2, P2–P5, 7×7.
    pub fn torchvision() -> Self {
        Self {
            sampling: Sampling::Fixed(2),
            aligned: false,
            ..Self::default()
        }
    }
}

/// Pools `[K, C, s, s]` features for boxes from the configured FPN levels, each box from the
/// level its size selects (FPN paper eq. 1, 224 / level 4, as torchvision and detectron2).
/// Built from the levels' [`ShapeSpec`]s, so a missing level or a channel mismatch is an
/// error at construction.
#[derive(Clone, Debug)]
pub struct Pooler {
    config: PoolerConfig,
    levels: Vec<ShapeSpec>,
    multi_scale: MultiScaleRoIAlign,
}

impl Pooler {
    /// Checks `config` against the available feature levels.
    pub fn new(config: &PoolerConfig, available: &[ShapeSpec]) -> Result<Self> {
        if config.levels.is_empty() {
            return Err(HeadError::config("pooler.levels", "no level given"));
        }
        if config.output_size == 0 {
            return Err(HeadError::config("pooler.output_size", "must be >= 1"));
        }
        if config.sampling == Sampling::Fixed(0) {
            return Err(HeadError::config(
                "pooler.sampling",
                "fixed(0) samples; use `adaptive`",
            ));
        }
        let mut levels = Vec::with_capacity(config.levels.len());
        for name in &config.levels {
            let spec = available.iter().find(|s| &s.name == name).ok_or_else(|| {
                HeadError::config(
                    "pooler.levels",
                    format!(
                        "level `{name}` is not produced by the backbone (it has {:?})",
                        available
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                    ),
                )
            })?;
            if spec.channels != available[0].channels {
                return Err(HeadError::config(
                    "pooler.levels",
                    format!(
                        "level `{name}` has {} channels, others {}",
                        spec.channels, available[0].channels
                    ),
                ));
            }
            levels.push(spec.clone());
        }
        let strides: Vec<usize> = levels.iter().map(|s| s.stride).collect();
        let s = config.output_size;
        let multi_scale = MultiScaleRoIAlign::new(
            &strides,
            (s, s),
            config.sampling.ratio(),
            config.aligned,
            224.0,
            4,
            1e-6,
        )
        .map_err(|e| HeadError::config("pooler.levels", format!("{e} (strides {strides:?})")))?;
        Ok(Self {
            config: config.clone(),
            levels,
            multi_scale,
        })
    }

    /// Channels of the pooled features.
    pub fn channels(&self) -> usize {
        self.levels[0].channels
    }

    /// Bins per side.
    pub fn output_size(&self) -> usize {
        self.config.output_size
    }

    /// The levels pooled from.
    pub fn levels(&self) -> &[ShapeSpec] {
        &self.levels
    }

    /// `[K, C, s, s]` for `rois` (image pixels), in the order of `rois`.
    pub fn forward(&self, features: &[FeatureMap], rois: &Rois) -> Result<Tensor> {
        let maps: Vec<Tensor> = self
            .levels
            .iter()
            .map(|spec| {
                let m = features
                    .iter()
                    .find(|f| f.name == spec.name)
                    .ok_or_else(|| {
                        HeadError::input("features", format!("level `{}` is missing", spec.name))
                    })?;
                if m.stride != spec.stride {
                    return Err(HeadError::input(
                        "features",
                        format!(
                            "level `{}` has stride {}, built for {}",
                            spec.name, m.stride, spec.stride
                        ),
                    ));
                }
                Ok(m.tensor.clone())
            })
            .collect::<Result<_>>()?;
        // Boxes in the features' dtype (Rois are built in f32).
        let boxes = match maps.first() {
            Some(m) if m.dtype() != rois.tensor.dtype() => rois.tensor.to_dtype(m.dtype())?,
            _ => rois.tensor.clone(),
        };
        match self.config.kind {
            PoolKind::RoiAlign => Ok(self.multi_scale.forward(&maps, &boxes)?),
            PoolKind::RoiPool => self.pool_max(&maps, &boxes),
        }
    }

    /// RoIPool per level with the same level rule, results back in box order.
    fn pool_max(&self, maps: &[Tensor], boxes: &Tensor) -> Result<Tensor> {
        let s = self.config.output_size;
        let k = boxes.dim(0)?;
        let levels = self.multi_scale.assign_levels(boxes)?;
        let mut pooled = Vec::new();
        let mut order: Vec<u32> = Vec::with_capacity(k);
        for (l, (map, spec)) in maps.iter().zip(&self.levels).enumerate() {
            let idx: Vec<u32> = (0..k as u32).filter(|&i| levels[i as usize] == l).collect();
            if idx.is_empty() && !(k == 0 && l == 0) {
                continue;
            }
            let sub = boxes.index_select(&Tensor::new(idx.as_slice(), boxes.device())?, 0)?;
            pooled.push(roi_pool(map, &sub, (s, s), 1.0 / spec.stride as f32)?);
            order.extend(idx);
        }
        let all = if pooled.len() == 1 {
            pooled.remove(0)
        } else {
            Tensor::cat(&pooled, 0)?
        };
        let mut inverse = vec![0u32; k];
        for (j, &i) in order.iter().enumerate() {
            inverse[i as usize] = j as u32;
        }
        Ok(all.index_select(&Tensor::new(inverse.as_slice(), boxes.device())?, 0)?)
    }
}
