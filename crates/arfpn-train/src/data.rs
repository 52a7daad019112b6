//! What the trainer trains on: [`TrainData`] (images with their ground truth) and its
//! implementations for decoded images in memory and VOC splits, and the entries of an epoch
//! with rare-class oversampling ([`epoch_entries`]).

use arfpn_boxes::{GroundTruth, ImageSize};
use arfpn_voc::{RgbImage, VocDataset};

use crate::OversampleConfig;
use arfpn_model::{DetectorError, Result};

/// Training or validation images with their ground truth.
pub trait TrainData: Send + Sync {
    /// Number of items (images, or crops for [`TiledData`](crate::TiledData)); indices run
    /// over `0..len()`.
    fn len(&self) -> usize;
    /// Whether there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Image `index` (decoded) and its ground truth.
    fn get(&self, index: usize) -> Result<(RgbImage, GroundTruth)>;
    /// Only the ground truth of image `index` (override when it can skip decoding).
    fn ground_truth(&self, index: usize) -> Result<GroundTruth> {
        Ok(self.get(index)?.1)
    }
    /// The size of image `index` (override when it can skip decoding).
    fn image_size(&self, index: usize) -> Result<ImageSize> {
        let (w, h) = self.get(index)?.0.dimensions();
        Ok(ImageSize::new(h as usize, w as usize))
    }
}

impl TrainData for Box<dyn TrainData> {
    fn len(&self) -> usize {
        self.as_ref().len()
    }
    fn get(&self, index: usize) -> Result<(RgbImage, GroundTruth)> {
        self.as_ref().get(index)
    }
    fn ground_truth(&self, index: usize) -> Result<GroundTruth> {
        self.as_ref().ground_truth(index)
    }
    fn image_size(&self, index: usize) -> Result<ImageSize> {
        self.as_ref().image_size(index)
    }
}

/// Decoded images held in memory.
impl TrainData for Vec<(RgbImage, GroundTruth)> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn get(&self, index: usize) -> Result<(RgbImage, GroundTruth)> {
        self.as_slice()
            .get(index)
            .cloned()
            .ok_or_else(|| DetectorError::input("index", format!("{index} >= {}", self.len())))
    }
}

/// A VOC split, decoded on demand (difficult objects are trained on, as torchvision does).
impl TrainData for VocDataset {
    fn len(&self) -> usize {
        VocDataset::len(self)
    }
    fn get(&self, index: usize) -> Result<(RgbImage, GroundTruth)> {
        let loaded = self.load(index)?;
        let gt = GroundTruth {
            boxes: loaded.sample.boxes(),
            classes: loaded.sample.classes(),
        };
        Ok((loaded.image, gt))
    }
    fn ground_truth(&self, index: usize) -> Result<GroundTruth> {
        let s = self.samples().get(index).ok_or_else(|| {
            DetectorError::input("index", format!("{index} >= {}", self.samples().len()))
        })?;
        Ok(GroundTruth {
            boxes: s.boxes(),
            classes: s.classes(),
        })
    }
    fn image_size(&self, index: usize) -> Result<ImageSize> {
        // The annotation's size; loading checks that the image agrees.
        let s = self.samples().get(index).ok_or_else(|| {
            DetectorError::input("index", format!("{index} >= {}", self.samples().len()))
        })?;
        Ok(ImageSize::new(s.height as usize, s.width as usize))
    }
}

/// The entries of one epoch before shuffling: every image once, and images holding a rare
/// class `copies` more times.
pub fn epoch_entries(
    data: &dyn TrainData,
    num_classes: usize,
    oversample: Option<OversampleConfig>,
) -> Result<Vec<usize>> {
    let mut entries: Vec<usize> = (0..data.len()).collect();
    let Some(o) = oversample else {
        return Ok(entries);
    };
    let truth = (0..data.len())
        .map(|i| data.ground_truth(i))
        .collect::<Result<Vec<_>>>()?;
    let mut counts = vec![0usize; num_classes];
    for g in &truth {
        for c in &g.classes {
            if let Some(n) = counts.get_mut(c.index()) {
                *n += 1;
            }
        }
    }
    let total: usize = counts.iter().sum();
    let rare: Vec<bool> = counts
        .iter()
        .map(|&n| n > 0 && (n as f32) < o.max_share * total as f32)
        .collect();
    for (i, g) in truth.iter().enumerate() {
        if g.classes
            .iter()
            .any(|c| rare.get(c.index()).copied().unwrap_or(false))
        {
            entries.extend(std::iter::repeat_n(i, o.copies));
        }
    }
    Ok(entries)
}
