//! What the detector does to its input before the backbone: normalisation, optional
//! resizing (torchvision's `GeneralizedRCNNTransform`) and padding; and back again for the
//! boxes.

use arfpn_boxes::{BBox, GroundTruth, ImageSize};
use arfpn_nn::ImageBatch;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::{DetectorError, Result};

/// Input preprocessing. Images reach the detector as RGB `f32` in `[0, 1]`
/// ([`image_tensor`](crate::image_tensor) makes them); the detector subtracts `pixel_mean`,
/// divides by `pixel_std`, resizes when `min_size` is set, and pads to the backbone's multiple.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InputConfig {
    /// Resize so that the shorter side is `min_size` (unless the longer would exceed
    /// `max_size`), as torchvision (800 / 1333). `None` keeps each image's own scale: the
    /// right choice for microscopy, where the cell size in pixels is what the anchors fit.
    pub min_size: Option<usize>,
    /// Cap on the longer side after resizing (only used with `min_size`).
    pub max_size: usize,
    /// Per-channel mean subtracted from `[0, 1]` RGB (ImageNet's by default).
    pub pixel_mean: [f32; 3],
    /// Per-channel standard deviation divided by (ImageNet's by default).
    pub pixel_std: [f32; 3],
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            min_size: None,
            max_size: 1333,
            pixel_mean: [0.485, 0.456, 0.406],
            pixel_std: [0.229, 0.224, 0.225],
        }
    }
}

impl InputConfig {
    /// torchvision's `fasterrcnn_resnet50_fpn` transform: 800 / 1333, ImageNet statistics.
    pub fn torchvision() -> Self {
        Self {
            min_size: Some(800),
            ..Self::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(m) = self.min_size {
            if m == 0 || m > self.max_size {
                return Err(DetectorError::config(
                    "input.min_size",
                    format!("{m} must be in 1..=max_size ({})", self.max_size),
                ));
            }
        }
        if self.max_size == 0 {
            return Err(DetectorError::config("input.max_size", "must be >= 1"));
        }
        for c in 0..3 {
            if !self.pixel_mean[c].is_finite() {
                return Err(DetectorError::config(
                    format!("input.pixel_mean[{c}]"),
                    "must be finite",
                ));
            }
            if !(self.pixel_std[c].is_finite() && self.pixel_std[c] > 0.0) {
                return Err(DetectorError::config(
                    format!("input.pixel_std[{c}]"),
                    "must be finite and > 0",
                ));
            }
        }
        Ok(())
    }

    /// The size an image of `size` is resized to (torchvision's rule: one scale factor for
    /// both sides, output sides floored).
    pub fn resized_size(&self, size: ImageSize) -> ImageSize {
        let Some(min_size) = self.min_size else {
            return size;
        };
        let short = size.height.min(size.width) as f64;
        let long = size.height.max(size.width) as f64;
        let scale = (min_size as f64 / short).min(self.max_size as f64 / long);
        ImageSize::new(
            ((size.height as f64 * scale).floor() as usize).max(1),
            ((size.width as f64 * scale).floor() as usize).max(1),
        )
    }
}

/// The batch as the backbone sees it, with what is needed to map boxes back.
pub(crate) struct Prepared {
    pub batch: ImageBatch,
    /// Each image's size before resizing (the caller's pixels).
    pub original: Vec<ImageSize>,
}

impl Prepared {
    /// Scale factors `(y, x)` from the caller's pixels to the network's, for image `i`.
    fn scale(&self, i: usize) -> (f32, f32) {
        let (o, r) = (self.original[i], self.batch.sizes[i]);
        (
            r.height as f32 / o.height as f32,
            r.width as f32 / o.width as f32,
        )
    }

    /// Ground truth in the network's pixels.
    pub fn ground_truth_to_network(&self, gt: &[GroundTruth]) -> Vec<GroundTruth> {
        gt.iter()
            .enumerate()
            .map(|(i, g)| {
                let (sy, sx) = self.scale(i);
                let size = self.batch.sizes[i];
                GroundTruth {
                    boxes: g
                        .boxes
                        .iter()
                        .map(|b| scale_box(*b, sx, sy).clip(size))
                        .collect(),
                    classes: g.classes.clone(),
                }
            })
            .collect()
    }

    /// Boxes of image `i` from the network's pixels back to the caller's.
    pub fn boxes_to_original(&self, i: usize, boxes: &mut [BBox]) {
        let (sy, sx) = self.scale(i);
        if sx == 1.0 && sy == 1.0 {
            return;
        }
        for b in boxes {
            *b = scale_box(*b, 1.0 / sx, 1.0 / sy).clip(self.original[i]);
        }
    }
}

fn scale_box(b: BBox, sx: f32, sy: f32) -> BBox {
    BBox::new(b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy)
}

/// Checks the batch, normalises each image, resizes it and pads the lot to `divisibility`.
pub(crate) fn prepare(
    images: &ImageBatch,
    config: &InputConfig,
    divisibility: usize,
    dtype: DType,
) -> Result<Prepared> {
    let dims = images.tensor.dims();
    let &[n, c, ph, pw] = dims else {
        return Err(DetectorError::input(
            "images",
            format!("the batch tensor must be [N, 3, H, W], got {dims:?}"),
        ));
    };
    if c != 3 {
        return Err(DetectorError::input(
            "images",
            format!("images must have 3 (RGB) channels, got {c}"),
        ));
    }
    if n == 0 || n != images.sizes.len() {
        return Err(DetectorError::input(
            "images",
            format!(
                "{n} images in the tensor but {} sizes in the batch",
                images.sizes.len()
            ),
        ));
    }
    let device = images.tensor.device();
    let mean = Tensor::from_slice(&config.pixel_mean, (3, 1, 1), device)?;
    let std = Tensor::from_slice(&config.pixel_std, (3, 1, 1), device)?;
    let mut out = Vec::with_capacity(n);
    for (i, &size) in images.sizes.iter().enumerate() {
        if size.height == 0 || size.width == 0 {
            return Err(DetectorError::input(
                format!("images[{i}]"),
                format!("empty image ({}×{})", size.width, size.height),
            ));
        }
        if size.height > ph || size.width > pw {
            return Err(DetectorError::input(
                format!("images[{i}]"),
                format!(
                    "size {}×{} exceeds the batch tensor's {pw}×{ph}",
                    size.width, size.height
                ),
            ));
        }
        let im = images
            .tensor
            .get(i)?
            .narrow(1, 0, size.height)?
            .narrow(2, 0, size.width)?
            .to_dtype(DType::F32)?;
        // 0·x is 0 for every finite x and NaN for NaN and ±inf.
        let probe = (&im * 0.0)?.sum_all()?.to_scalar::<f32>()?;
        if probe != 0.0 {
            return Err(DetectorError::input(
                format!("images[{i}]"),
                "contains NaN or infinite values",
            ));
        }
        let im = im.broadcast_sub(&mean)?.broadcast_div(&std)?;
        let target = config.resized_size(size);
        let im = if target != size {
            im.unsqueeze(0)?
                .upsample_bilinear2d(target.height, target.width, false)?
                .squeeze(0)?
        } else {
            im
        };
        out.push(im.to_dtype(dtype)?);
    }
    let batch = ImageBatch::from_images(&out, divisibility)?;
    Ok(Prepared {
        batch,
        original: images.sizes.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn resized_size_follows_torchvision() {
        let c = InputConfig::torchvision();
        // 480×640: short side 480 → 800, long 1066.67 < 1333.
        assert_eq!(
            c.resized_size(ImageSize::new(480, 640)),
            ImageSize::new(800, 1066)
        );
        // 100×1000: 8× would make the long side 8000 > 1333, so scale = 1.333.
        assert_eq!(
            c.resized_size(ImageSize::new(100, 1000)),
            ImageSize::new(133, 1333)
        );
        let none = InputConfig::default();
        assert_eq!(
            none.resized_size(ImageSize::new(7, 9)),
            ImageSize::new(7, 9)
        );
    }

    #[test]
    fn normalises_and_maps_boxes_back() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = InputConfig {
            min_size: Some(20),
            max_size: 100,
            pixel_mean: [0.5, 0.5, 0.5],
            pixel_std: [0.25, 0.5, 1.0],
        };
        let im = Tensor::full(0.75f32, (3, 10, 10), &dev)?;
        let batch = ImageBatch::from_images(&[im], 1)?;
        let p = prepare(&batch, &cfg, 32, DType::F32)?;
        assert_eq!(p.batch.sizes, [ImageSize::new(20, 20)]);
        assert_eq!(p.batch.tensor.dims(), [1, 3, 32, 32]);
        let v = p
            .batch
            .tensor
            .get(0)?
            .get(0)?
            .get(5)?
            .get(5)?
            .to_scalar::<f32>()?;
        assert!((v - 1.0).abs() < 1e-6, "(0.75 - 0.5) / 0.25 = 1, got {v}");
        let v = p
            .batch
            .tensor
            .get(0)?
            .get(2)?
            .get(5)?
            .get(5)?
            .to_scalar::<f32>()?;
        assert!((v - 0.25).abs() < 1e-6);
        let gt = GroundTruth {
            boxes: vec![BBox::new(1.0, 2.0, 5.0, 12.0)],
            classes: vec![arfpn_boxes::ClassId::new(0)],
        };
        let net = p.ground_truth_to_network(&[gt]);
        // ×2, then clipped to the 20×20 network image.
        assert_eq!(net[0].boxes[0], BBox::new(2.0, 4.0, 10.0, 20.0));
        let mut back = net[0].boxes.clone();
        p.boxes_to_original(0, &mut back);
        assert_eq!(back[0], BBox::new(1.0, 2.0, 5.0, 10.0));
        Ok(())
    }

    #[test]
    fn nan_and_bad_shapes_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = InputConfig::default();
        let mut v = vec![0.5f32; 3 * 4 * 4];
        v[7] = f32::NAN;
        let im = Tensor::from_vec(v, (3, 4, 4), &dev)?;
        let batch = ImageBatch::from_images(&[im], 1)?;
        let err = prepare(&batch, &cfg, 32, DType::F32)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("NaN")));
        let gray = Tensor::zeros((1, 4, 4), DType::F32, &dev)?;
        let batch = ImageBatch::from_images(&[gray], 1)?;
        let err = prepare(&batch, &cfg, 32, DType::F32)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("3 (RGB)")));
        Ok(())
    }
}
