//! [`Rois`]: the `[K, 5]` box tensor of a batch, built from per-image boxes.

use arfpn_boxes::BBox;
use candle_core::{Device, Result, Tensor};

/// Boxes of several images as one `[K, 5]` f32 tensor of rows `(batch_index, x1, y1, x2, y2)`
/// (torchvision's RoI format), with the number of boxes of each image, so that nobody writes
/// batch-index columns by hand and results can be split back per image.
///
/// ```
/// use arfpn_boxes::BBox;
/// use arfpn_roi_align::Rois;
/// use candle_core::Device;
/// let r = Rois::from_boxes(
///     &[vec![BBox::new(0.0, 0.0, 4.0, 4.0)], vec![], vec![BBox::new(1.0, 2.0, 3.0, 4.0); 2]],
///     &Device::Cpu,
/// ).unwrap();
/// assert_eq!(r.per_image, vec![1, 0, 2]);
/// assert_eq!(r.tensor.to_vec2::<f32>().unwrap()[2], vec![2.0, 1.0, 2.0, 3.0, 4.0]);
/// assert_eq!(r.ranges(), vec![0..1, 1..1, 1..3]);
/// ```
#[derive(Clone, Debug)]
pub struct Rois {
    /// `[K, 5]` f32: `(batch_index, x1, y1, x2, y2)` in image pixels.
    pub tensor: Tensor,
    /// Boxes of image `i` (they are rows `sum(per_image[..i])..` of `tensor`).
    pub per_image: Vec<usize>,
}

impl Rois {
    /// One list of boxes per image of the batch (a list may be empty).
    pub fn from_boxes(boxes: &[Vec<BBox>], device: &Device) -> Result<Self> {
        let k: usize = boxes.iter().map(Vec::len).sum();
        let mut rows = Vec::with_capacity(5 * k);
        for (i, bs) in boxes.iter().enumerate() {
            for b in bs {
                rows.extend([i as f32, b.x1, b.y1, b.x2, b.y2]);
            }
        }
        Ok(Self {
            tensor: Tensor::from_vec(rows, (k, 5), device)?,
            per_image: boxes.iter().map(Vec::len).collect(),
        })
    }

    /// Total number of boxes `K`.
    pub fn len(&self) -> usize {
        self.per_image.iter().sum()
    }

    /// No boxes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row range of each image.
    pub fn ranges(&self) -> Vec<std::ops::Range<usize>> {
        let mut start = 0;
        self.per_image
            .iter()
            .map(|&n| {
                let r = start..start + n;
                start += n;
                r
            })
            .collect()
    }
}
