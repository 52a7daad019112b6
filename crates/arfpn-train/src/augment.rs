//! Training-time augmentation on decoded images and their boxes: flips and random crops,
//! all drawn from the trainer's seeded generator.

use arfpn_boxes::{BBox, ClassId, GroundTruth, ImageSize, SplitMix64};
use arfpn_voc::RgbImage;
use serde::{Deserialize, Serialize};

/// What the trainer does to each training image, in this order: random crop, horizontal
/// flip, vertical flip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AugmentConfig {
    /// Flip left–right with probability 0.5.
    pub hflip: bool,
    /// Flip top–bottom with probability 0.5 (smears have no up).
    pub vflip: bool,
    /// Random `[width, height]` crops of images larger than that (smaller sides are kept
    /// whole). A box cut by the crop is kept, clipped, when at least `min_visible` of its
    /// area stays inside; otherwise it is dropped.
    pub crop: Option<[usize; 2]>,
    /// Fraction of a box's area, in `[0, 1]`, that must stay inside a random crop for the
    /// box to be kept (0.5 by default). Only used with `crop`.
    pub min_visible: f32,
    /// The class of a cell cut by the image border (the paper's "edge cell"): a box the
    /// crop cuts becomes this class, so that crop borders are labelled as image borders are.
    /// `None` keeps the cut cell's own class.
    pub cut_class: Option<ClassId>,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            hflip: true,
            vflip: true,
            crop: None,
            min_visible: 0.5,
            cut_class: None,
        }
    }
}

/// Applies `config` to one image and its ground truth.
pub fn augment(
    image: &RgbImage,
    gt: &GroundTruth,
    config: &AugmentConfig,
    rng: &mut SplitMix64,
) -> (RgbImage, GroundTruth) {
    let (mut img, mut gt) = match config.crop {
        Some([cw, ch]) => random_crop(image, gt, [cw, ch], config, rng),
        None => (image.clone(), gt.clone()),
    };
    let (w, h) = (img.width() as f32, img.height() as f32);
    if config.hflip && rng.uniform() < 0.5 {
        img = image::imageops::flip_horizontal(&img);
        for b in &mut gt.boxes {
            *b = BBox::new(w - b.x2, b.y1, w - b.x1, b.y2);
        }
    }
    if config.vflip && rng.uniform() < 0.5 {
        img = image::imageops::flip_vertical(&img);
        for b in &mut gt.boxes {
            *b = BBox::new(b.x1, h - b.y2, b.x2, h - b.y1);
        }
    }
    (img, gt)
}

fn random_crop(
    image: &RgbImage,
    gt: &GroundTruth,
    [cw, ch]: [usize; 2],
    config: &AugmentConfig,
    rng: &mut SplitMix64,
) -> (RgbImage, GroundTruth) {
    let min_visible = config.min_visible;
    let (w, h) = (image.width() as usize, image.height() as usize);
    let (cw, ch) = (cw.min(w), ch.min(h));
    let x0 = rng.below(w - cw + 1);
    let y0 = rng.below(h - ch + 1);
    let img =
        image::imageops::crop_imm(image, x0 as u32, y0 as u32, cw as u32, ch as u32).to_image();
    let size = ImageSize::new(ch, cw);
    let mut out = GroundTruth::empty();
    for (b, &c) in gt.boxes.iter().zip(&gt.classes) {
        let moved = BBox::new(
            b.x1 - x0 as f32,
            b.y1 - y0 as f32,
            b.x2 - x0 as f32,
            b.y2 - y0 as f32,
        );
        let clipped = moved.clip(size);
        let area = moved.area();
        if area > 0.0 && clipped.area() >= min_visible * area && clipped.area() > 0.0 {
            // Ground truth lies inside the image, so any change is the crop's doing.
            let cut_by_crop = clipped != moved;
            out.boxes.push(clipped);
            out.classes.push(match config.cut_class {
                Some(edge) if cut_by_crop => edge,
                _ => c,
            });
        }
    }
    (img, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arfpn_boxes::ClassId;

    fn gt(b: [f32; 4]) -> GroundTruth {
        GroundTruth {
            boxes: vec![BBox::new(b[0], b[1], b[2], b[3])],
            classes: vec![ClassId::new(0)],
        }
    }

    #[test]
    fn flips_move_pixels_and_boxes_together() {
        // A 10×6 image with one white pixel at (1, 2) and a box around it.
        let mut img = RgbImage::new(10, 6);
        img.put_pixel(1, 2, image::Rgb([255, 255, 255]));
        let cfg = AugmentConfig {
            hflip: true,
            vflip: true,
            crop: None,
            min_visible: 0.5,
            cut_class: None,
        };
        for seed in 0..8 {
            let (out, g) = augment(
                &img,
                &gt([1.0, 2.0, 2.0, 3.0]),
                &cfg,
                &mut SplitMix64::new(seed),
            );
            let b = g.boxes[0];
            assert_eq!(
                out.get_pixel(b.x1 as u32, b.y1 as u32).0,
                [255, 255, 255],
                "seed {seed}"
            );
            assert_eq!((b.width(), b.height()), (1.0, 1.0));
        }
    }

    #[test]
    fn crops_shift_clip_and_drop_boxes() {
        let img = RgbImage::new(100, 80);
        let truth = GroundTruth {
            boxes: vec![
                BBox::new(0.0, 0.0, 20.0, 20.0),
                BBox::new(40.0, 30.0, 60.0, 50.0),
            ],
            classes: vec![ClassId::new(0), ClassId::new(1)],
        };
        let cfg = AugmentConfig {
            hflip: false,
            vflip: false,
            crop: Some([50, 40]),
            min_visible: 0.5,
            cut_class: None,
        };
        for seed in 0..20 {
            let mut rng = SplitMix64::new(seed);
            let (out, g) = augment(&img, &truth, &cfg, &mut rng);
            assert_eq!(out.dimensions(), (50, 40));
            for b in &g.boxes {
                assert!(b.x1 >= 0.0 && b.y1 >= 0.0 && b.x2 <= 50.0 && b.y2 <= 40.0);
                assert!(b.area() >= 0.5 * 400.0, "{b:?}");
            }
        }
        // With a cut class, boxes the crop cuts take it; whole ones keep theirs.
        let edge = ClassId::new(7);
        let with_cut = AugmentConfig {
            cut_class: Some(edge),
            ..cfg.clone()
        };
        let mut relabelled = 0;
        for seed in 0..20 {
            let (_, g) = augment(&img, &truth, &with_cut, &mut SplitMix64::new(seed));
            for (b, &c) in g.boxes.iter().zip(&g.classes) {
                let whole = b.area() == 400.0;
                assert_eq!(c == edge, !whole, "{b:?} {c:?}");
                relabelled += usize::from(c == edge);
            }
        }
        assert!(relabelled > 0);
        // A crop larger than the image keeps it whole.
        let cfg = AugmentConfig {
            crop: Some([500, 500]),
            ..cfg
        };
        let (out, g) = augment(&img, &truth, &cfg, &mut SplitMix64::new(0));
        assert_eq!((out.dimensions(), g), ((100, 80), truth));
    }
}
