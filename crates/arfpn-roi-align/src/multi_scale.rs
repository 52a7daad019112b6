//! RoIAlign over a feature pyramid: each box is pooled from the level its size selects.
use crate::{checks, roi_align, RoiError};
use candle_core::{DType, Result, Tensor};

/// RoIAlign over several feature maps of a pyramid (finest first), each described by its
/// stride. Each box goes to level `k = floor(k0 + log2(sqrt(area) / s0) + eps)` of the FPN paper
/// (Lin et al. 2017, eq. 1), clamped to the available levels, where level `k` has stride `2^k`;
/// the results come back in the input box order.
///
/// * `canonical_scale` `s0` = 224 and `canonical_level` `k0` = 4 are the paper's (and
///   torchvision's and Detectron2's) values: a 224x224 box pools from stride 16.
/// * `eps`: a box of side exactly `s0 * 2^j` gives an exact integer `k` only up to rounding
///   (`sqrt` and `log2` of areas like 112^2 may land a hair below the integer, and `floor` would
///   then pick the finer level). Like torchvision (`LevelMapper`, eps = 1e-6 added after the
///   `log2`) we add `eps` to `k` before the `floor`, so such boxes go to the level their size
///   names. The area `(x2 - x1) * (y2 - y1)` and the rule are evaluated in f64. Detectron2
///   instead adds 1e-8 inside the `log2`; the two differ only for boxes within ~1e-6 of a level
///   boundary. Empty or inverted boxes (area <= 0) go to the finest level.
///
/// Defaults: [`MultiScaleRoIAlign::detectron2`] (`aligned = true`, adaptive sampling), which
/// the arfpn detector uses, and [`MultiScaleRoIAlign::torchvision`] (`aligned = false`,
/// sampling 2, as torchvision's Faster R-CNN).
///
/// ```
/// use arfpn_roi_align::MultiScaleRoIAlign;
/// use candle_core::{DType, Device, Tensor};
/// # fn main() -> candle_core::Result<()> {
/// let pooler = MultiScaleRoIAlign::detectron2(&[4, 8, 16, 32], (7, 7))?;
/// let dev = Device::Cpu;
/// let feats: Vec<Tensor> = [4usize, 8, 16, 32]
///     .iter()
///     .map(|s| Tensor::zeros((1, 8, 256 / s, 256 / s), DType::F32, &dev))
///     .collect::<candle_core::Result<_>>()?;
/// let boxes = Tensor::new(&[[0f32, 10., 10., 50., 60.], [0., 0., 0., 250., 250.]], &dev)?;
/// assert_eq!(pooler.forward(&feats, &boxes)?.dims(), &[2, 8, 7, 7]);
/// assert_eq!(pooler.assign_levels(&boxes)?, vec![0, 2]); // strides 4 and 16
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MultiScaleRoIAlign {
    strides: Vec<usize>,
    output_size: (usize, usize),
    sampling_ratio: i32,
    aligned: bool,
    canonical_scale: f64,
    canonical_level: usize,
    eps: f64,
    /// log2 of the finest stride.
    k_min: i64,
}

impl MultiScaleRoIAlign {
    /// A pooler over levels of the given `strides` (finest first, powers of two, each twice the
    /// previous, e.g. `[4, 8, 16, 32]` for P2-P5). `output_size`, `sampling_ratio` and `aligned`
    /// are passed to [`roi_align`]; `canonical_scale`, `canonical_level` and `eps` set the level
    /// rule (224, 4 and 1e-6 in torchvision).
    pub fn new(
        strides: &[usize],
        output_size: (usize, usize),
        sampling_ratio: i32,
        aligned: bool,
        canonical_scale: f64,
        canonical_level: usize,
        eps: f64,
    ) -> Result<Self> {
        let bad = || RoiError::Strides {
            strides: strides.to_vec(),
        };
        let first = *strides.first().ok_or_else(bad)?;
        if !first.is_power_of_two() || strides.windows(2).any(|p| p[1] != 2 * p[0]) {
            return Err(bad().into());
        }
        if output_size.0 == 0 || output_size.1 == 0 {
            return Err(RoiError::OutputSize {
                op: "MultiScaleRoIAlign",
                ph: output_size.0,
                pw: output_size.1,
            }
            .into());
        }
        if !(canonical_scale.is_finite() && canonical_scale > 0.0) {
            let reason = "must be finite and positive";
            return Err(RoiError::Config {
                arg: "canonical_scale",
                value: canonical_scale,
                reason,
            }
            .into());
        }
        if !(eps.is_finite() && (0.0..1.0).contains(&eps)) {
            return Err(RoiError::Config {
                arg: "eps",
                value: eps,
                reason: "must be in [0, 1)",
            }
            .into());
        }
        Ok(Self {
            strides: strides.to_vec(),
            output_size,
            sampling_ratio,
            aligned,
            canonical_scale,
            canonical_level,
            eps,
            k_min: first.trailing_zeros() as i64,
        })
    }

    /// Detectron2's pooler settings (`ROIAlignV2`): `aligned = true`, adaptive sampling
    /// (`sampling_ratio = 0`), level rule 224 / 4 / eps 1e-6. The arfpn detector's choice.
    pub fn detectron2(strides: &[usize], output_size: (usize, usize)) -> Result<Self> {
        Self::new(strides, output_size, 0, true, 224.0, 4, 1e-6)
    }

    /// torchvision's Faster R-CNN pooler settings: `aligned = false`, `sampling_ratio = 2`,
    /// level rule 224 / 4 / eps 1e-6.
    pub fn torchvision(strides: &[usize], output_size: (usize, usize)) -> Result<Self> {
        Self::new(strides, output_size, 2, false, 224.0, 4, 1e-6)
    }

    /// The strides of the levels, finest first.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// The pooled size `(ph, pw)`.
    pub fn output_size(&self) -> (usize, usize) {
        self.output_size
    }

    /// The level (an index into [`Self::strides`]) of a box `(x1, y1, x2, y2)` in image
    /// coordinates.
    pub fn level_of(&self, x1: f64, y1: f64, x2: f64, y2: f64) -> usize {
        let area = (x2 - x1) * (y2 - y1);
        let k =
            (self.canonical_level as f64 + (area.sqrt() / self.canonical_scale).log2() + self.eps)
                .floor();
        let k_max = self.k_min + self.strides.len() as i64 - 1;
        let k = if k.is_nan() {
            self.k_min
        } else {
            (k.clamp(self.k_min as f64, k_max as f64)) as i64
        };
        (k - self.k_min) as usize
    }

    /// The level of every box of `boxes` (`[K, 5]` or `[K, 4]`; the last four columns are
    /// `x1, y1, x2, y2`).
    pub fn assign_levels(&self, boxes: &Tensor) -> Result<Vec<usize>> {
        let rows = boxes.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        Ok(rows
            .iter()
            .map(|r| {
                let b = &r[r.len().saturating_sub(4)..];
                match b {
                    [x1, y1, x2, y2] => self.level_of(*x1, *y1, *x2, *y2),
                    _ => 0,
                }
            })
            .collect())
    }

    /// Pools `boxes` (`[K, 5]`, rows `(batch_index, x1, y1, x2, y2)` in image coordinates) from
    /// `features` (one `[N, C, H_l, W_l]` map per stride, finest first), giving `[K, C, ph, pw]`
    /// in the order of `boxes`. Checks that there is one map per stride, that all share `N`, `C`
    /// and dtype, and that each map's size is the finest map's extent divided by its stride
    /// (rounded either way). Gradients flow to every feature map.
    pub fn forward(&self, features: &[Tensor], boxes: &Tensor) -> Result<Tensor> {
        if features.len() != self.strides.len() {
            return Err(RoiError::FeatureCount {
                expected: self.strides.len(),
                got: features.len(),
            }
            .into());
        }
        let op = "MultiScaleRoIAlign";
        let s0 = self.strides[0];
        let (ph, pw) = self.output_size;
        let d = checks::check(op, &features[0], boxes, self.output_size, 1.0 / s0 as f64)?;
        for (level, (f, &s)) in features.iter().zip(&self.strides).enumerate() {
            let range = |extent: usize| (extent * s0 / s, (extent * s0).div_ceil(s));
            let (h_ok, w_ok) = (range(d.h), range(d.w));
            let ok = match *f.dims() {
                [n, c, h, w] => {
                    n == d.n
                        && c == d.c
                        && (h == h_ok.0 || h == h_ok.1)
                        && (w == w_ok.0 || w == w_ok.1)
                        && f.dtype() == features[0].dtype()
                }
                _ => false,
            };
            if !ok {
                let shape = f.dims().to_vec();
                return Err(RoiError::FeatureShape {
                    level,
                    stride: s,
                    shape,
                    n: d.n,
                    c: d.c,
                    h_ok,
                    w_ok,
                }
                .into());
            }
        }
        let scale = |s: usize| 1.0 / s as f32;
        if self.strides.len() == 1 || d.k == 0 {
            return roi_align(
                &features[0],
                boxes,
                (ph, pw),
                scale(s0),
                self.sampling_ratio,
                self.aligned,
            );
        }
        let levels = self.assign_levels(boxes)?;
        let mut pooled = Vec::new();
        let mut order: Vec<u32> = Vec::with_capacity(d.k);
        for (l, f) in features.iter().enumerate() {
            let idx: Vec<u32> = (0..d.k as u32)
                .filter(|&i| levels[i as usize] == l)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let sel = Tensor::new(idx.as_slice(), boxes.device())?;
            let sub = boxes.index_select(&sel, 0)?;
            pooled.push(roi_align(
                f,
                &sub,
                (ph, pw),
                scale(self.strides[l]),
                self.sampling_ratio,
                self.aligned,
            )?);
            order.extend(idx);
        }
        let all = if pooled.len() == 1 {
            pooled.remove(0)
        } else {
            Tensor::cat(&pooled, 0)?
        };
        if order.iter().enumerate().all(|(j, &i)| j == i as usize) {
            return Ok(all); // already in input order (e.g. every box on one level)
        }
        // `order[j]` is the input index of row j of `all`; invert it.
        let mut inverse = vec![0u32; d.k];
        for (j, &i) in order.iter().enumerate() {
            inverse[i as usize] = j as u32;
        }
        all.index_select(&Tensor::new(inverse.as_slice(), boxes.device())?, 0)
    }
}
