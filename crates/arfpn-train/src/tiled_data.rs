//! Training on fixed overlapping crops of each image (the paper cuts its 1418×1420 fields
//! into 500×375 crops with 30 % overlap), as a [`TrainData`] adapter: every crop is one
//! training item, cut on demand from its image, with the cells a crop border cuts handled
//! by an [`EdgePolicy`](arfpn_voc::tiling::EdgePolicy).
//!
//! The alternative, random crops drawn anew at every visit, is
//! [`AugmentConfig::crop`](crate::AugmentConfig::crop); the two can be combined.

use arfpn_boxes::{BBox, GroundTruth, ImageSize};
use arfpn_voc::tiling::{tile_positions, CropFate, TileConfig};
use arfpn_voc::RgbImage;

use crate::TrainData;
use arfpn_model::{DetectorError, Result};

/// One crop: the image it comes from and its rectangle there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropRect {
    /// Index of the source image in the wrapped [`TrainData`].
    pub image: usize,
    /// Left edge in the source image, in pixels.
    pub x: u32,
    /// Top edge in the source image, in pixels.
    pub y: u32,
    /// Width in pixels (the tile width, or the image's when it is narrower).
    pub width: u32,
    /// Height in pixels (the tile height, or the image's when it is shorter).
    pub height: u32,
}

/// A [`TrainData`] whose items are the overlapping crops of another's images, in image
/// order and row-major order within an image (positions from
/// [`tile_positions`]). An image not larger than the crop is one item, whole.
///
/// ```
/// use arfpn_model::{BBox, ClassId, GroundTruth};
/// use arfpn_train::{TiledData, TrainData};
/// use arfpn_voc::tiling::TileConfig;
/// let image = arfpn_voc::RgbImage::new(1000, 375);
/// let gt = GroundTruth { boxes: vec![BBox::new(10.0, 10.0, 40.0, 40.0)], classes: vec![ClassId::new(0)] };
/// let tiles = TiledData::new(vec![(image, gt)], TileConfig::default()).unwrap();
/// assert_eq!(tiles.len(), 3); // x = 0, 350, 500 for 500-wide crops with 30 % overlap
/// let (crop, truth) = tiles.get(0).unwrap();
/// assert_eq!(crop.dimensions(), (500, 375));
/// assert_eq!(truth.boxes, vec![BBox::new(10.0, 10.0, 40.0, 40.0)]);
/// ```
pub struct TiledData<D> {
    inner: D,
    config: TileConfig,
    crops: Vec<CropRect>,
}

impl<D: TrainData> TiledData<D> {
    /// Lays out the crops of every image of `inner` (reads each image's size once, through
    /// [`TrainData::image_size`]).
    pub fn new(inner: D, config: TileConfig) -> Result<Self> {
        config
            .validate()
            .map_err(|e| DetectorError::config("tiles", e.to_string()))?;
        let mut crops = Vec::new();
        for image in 0..inner.len() {
            let size = inner.image_size(image)?;
            let (w, h) = (size.width as u32, size.height as u32);
            let tw = config.tile_width.min(w);
            let th = config.tile_height.min(h);
            for &y in &tile_positions(h, th, config.overlap) {
                for &x in &tile_positions(w, tw, config.overlap) {
                    crops.push(CropRect {
                        image,
                        x,
                        y,
                        width: tw,
                        height: th,
                    });
                }
            }
        }
        Ok(Self {
            inner,
            config,
            crops,
        })
    }

    /// The crops, item by item.
    pub fn crops(&self) -> &[CropRect] {
        &self.crops
    }

    /// The wrapped data.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    fn rect(&self, index: usize) -> Result<CropRect> {
        self.crops.get(index).copied().ok_or_else(|| {
            DetectorError::input("index", format!("{index} >= {}", self.crops.len()))
        })
    }

    fn crop_truth(&self, r: &CropRect, gt: &GroundTruth) -> GroundTruth {
        let crop = BBox::new(
            r.x as f32,
            r.y as f32,
            (r.x + r.width) as f32,
            (r.y + r.height) as f32,
        );
        let mut out = GroundTruth::empty();
        for (b, &c) in gt.boxes.iter().zip(&gt.classes) {
            if let CropFate::Kept { bbox, class, .. } = self.config.edge.place(b, c, &crop) {
                out.boxes.push(bbox);
                out.classes.push(class);
            }
        }
        out
    }
}

impl<D: TrainData> TrainData for TiledData<D> {
    fn len(&self) -> usize {
        self.crops.len()
    }

    fn get(&self, index: usize) -> Result<(RgbImage, GroundTruth)> {
        let r = self.rect(index)?;
        let (image, gt) = self.inner.get(r.image)?;
        if r.x + r.width > image.width() || r.y + r.height > image.height() {
            return Err(DetectorError::input(
                "image",
                format!(
                    "image {} is {}x{}, smaller than its size when the crops were laid out",
                    r.image,
                    image.width(),
                    image.height()
                ),
            ));
        }
        let crop = image::imageops::crop_imm(&image, r.x, r.y, r.width, r.height).to_image();
        Ok((crop, self.crop_truth(&r, &gt)))
    }

    fn ground_truth(&self, index: usize) -> Result<GroundTruth> {
        let r = self.rect(index)?;
        Ok(self.crop_truth(&r, &self.inner.ground_truth(r.image)?))
    }

    fn image_size(&self, index: usize) -> Result<ImageSize> {
        let r = self.rect(index)?;
        Ok(ImageSize::new(r.height as usize, r.width as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arfpn_boxes::ClassId;
    use arfpn_voc::tiling::EdgePolicy;

    fn data() -> Vec<(RgbImage, GroundTruth)> {
        // 1000×600: crops of 500×375 at x ∈ {0, 350, 500}, y ∈ {0, 225}.
        let mut img = RgbImage::new(1000, 600);
        img.put_pixel(420, 300, image::Rgb([255, 0, 0]));
        let gt = GroundTruth {
            boxes: vec![
                BBox::new(410.0, 290.0, 430.0, 310.0), // inside crops (350, 0..), cut elsewhere
                BBox::new(900.0, 500.0, 960.0, 560.0), // only in the bottom-right crops
            ],
            classes: vec![ClassId::new(1), ClassId::new(2)],
        };
        let small = (RgbImage::new(300, 200), GroundTruth::empty());
        vec![(img, gt), small]
    }

    #[test]
    fn crops_cover_each_image_and_small_images_stay_whole() {
        let t = TiledData::new(data(), TileConfig::default()).unwrap();
        assert_eq!(t.len(), 3 * 2 + 1);
        let xs: Vec<u32> = t.crops()[..3].iter().map(|c| c.x).collect();
        assert_eq!(xs, vec![0, 350, 500]);
        assert_eq!(t.crops()[3].y, 225);
        let last = t.crops()[6];
        assert_eq!((last.image, last.width, last.height), (1, 300, 200));
        assert_eq!(t.image_size(6).unwrap(), ImageSize::new(200, 300));
        assert!(t.get(7).is_err());
    }

    #[test]
    fn pixels_and_boxes_move_together_and_cut_cells_follow_the_policy() {
        let cfg = TileConfig {
            edge: EdgePolicy {
                min_visible: 0.3,
                relabel_as: Some(ClassId::new(13)),
            },
            ..TileConfig::default()
        };
        let t = TiledData::new(data(), cfg).unwrap();
        // Crop (350, 0): the first cell lies whole inside at (60..80, 290..310).
        let (img, gt) = t.get(1).unwrap();
        assert_eq!(img.get_pixel(70, 300).0, [255, 0, 0]);
        assert_eq!(gt.boxes, vec![BBox::new(60.0, 290.0, 80.0, 310.0)]);
        assert_eq!(gt.classes, vec![ClassId::new(1)]);
        // Crop (500, 225) holds the second cell whole and not the first.
        let (_, gt) = t.get(5).unwrap();
        assert_eq!(gt.boxes, vec![BBox::new(400.0, 275.0, 460.0, 335.0)]);
        // Crop (500, 0): the first cell ends at x = 430, the second starts at y = 500.
        assert!(t.get(2).unwrap().1.boxes.is_empty());
        // ground_truth agrees with get everywhere.
        for i in 0..t.len() {
            assert_eq!(t.ground_truth(i).unwrap(), t.get(i).unwrap().1, "crop {i}");
        }
    }

    #[test]
    fn a_cell_cut_by_a_crop_border_is_clipped_and_relabelled_or_dropped() {
        let img = RgbImage::new(800, 375);
        // Crops at x = 0 and 300 (800 wide, 500-wide crops, 30 % overlap -> stride 350,
        // then the last aligned to the border at 300).
        let gt = GroundTruth {
            // 480..520 straddles x = 500, the first crop's right border: 50 % inside.
            // 290..310 straddles x = 300, the second crop's left border: 50 % inside.
            // 285..305 at x = 300: 25 % inside the second crop, below min_visible.
            boxes: vec![
                BBox::new(480.0, 10.0, 520.0, 50.0),
                BBox::new(290.0, 100.0, 310.0, 120.0),
                BBox::new(285.0, 200.0, 305.0, 220.0),
            ],
            classes: vec![ClassId::new(0), ClassId::new(0), ClassId::new(0)],
        };
        let cfg = TileConfig {
            edge: EdgePolicy {
                min_visible: 0.3,
                relabel_as: Some(ClassId::new(13)),
            },
            ..TileConfig::default()
        };
        let t = TiledData::new(vec![(img, gt)], cfg).unwrap();
        assert_eq!(
            t.crops().iter().map(|c| c.x).collect::<Vec<_>>(),
            vec![0, 300]
        );
        let (_, first) = t.get(0).unwrap();
        assert_eq!(first.boxes[0], BBox::new(480.0, 10.0, 500.0, 50.0));
        assert_eq!(first.classes[0], ClassId::new(13));
        // The other two lie whole in the first crop.
        assert_eq!(&first.classes[1..], &[ClassId::new(0), ClassId::new(0)]);
        let (_, second) = t.get(1).unwrap();
        assert_eq!(
            second.boxes,
            vec![
                BBox::new(180.0, 10.0, 220.0, 50.0),
                BBox::new(0.0, 100.0, 10.0, 120.0)
            ]
        );
        assert_eq!(second.classes, vec![ClassId::new(0), ClassId::new(13)]);
    }

    #[test]
    fn a_bad_configuration_is_refused() {
        let cfg = TileConfig {
            overlap: 1.0,
            ..TileConfig::default()
        };
        assert!(TiledData::new(data(), cfg).is_err());
    }
}
