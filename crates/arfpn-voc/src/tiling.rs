//! Tiling a large field into overlapping crops (the paper: 1418×1420 fields cut into
//! 500×375 crops with 30 % overlap), with an explicit policy for the cells a crop border
//! cuts ([`EdgePolicy`]).

use arfpn_boxes::{BBox, ClassId};
use image::{imageops, RgbImage};
use serde::{Deserialize, Serialize};

use crate::annotation::{Object, Sample};
use crate::error::{Result, VocError};

/// What happens to an object that a crop border cuts.
///
/// For every object overlapping a crop, `visible = area(box ∩ crop) / area(box)`.
/// - `visible < min_visible`: the object is dropped from that crop (counted in
///   [`Tile::dropped`]); it is in full view in a neighbouring crop when the overlap is
///   large enough.
/// - `min_visible <= visible < 1`: kept with its box clipped to the crop and
///   `truncated = true`; if `relabel_as` is set, its class becomes that class (the paper
///   labels cells at the image edge as "edge": use `Some(labels::rbc::EDGE)`).
/// - `visible == 1`: kept unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgePolicy {
    /// The smallest visible fraction of a cut object's box area (`0..=1`) for it to be
    /// kept in a crop (inclusive); default 0.3.
    pub min_visible: f32,
    /// The class given to objects kept but cut by the crop border; `None` keeps their own
    /// class.
    pub relabel_as: Option<ClassId>,
}

impl Default for EdgePolicy {
    /// Keep a cut cell when at least 30 % of its box is visible; do not relabel.
    fn default() -> Self {
        Self {
            min_visible: 0.3,
            relabel_as: None,
        }
    }
}

/// Where one object ends up in one crop ([`EdgePolicy::place`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CropFate {
    /// The box does not overlap the crop.
    Outside,
    /// It overlaps, but less than [`EdgePolicy::min_visible`] of it is inside.
    Dropped,
    /// Kept: the box clipped to the crop, in the crop's coordinates; `cut` when the crop
    /// border cut it (then `class` is [`EdgePolicy::relabel_as`] if that is set).
    Kept {
        /// The box clipped to the crop, in crop pixel coordinates (origin at the crop's
        /// top-left corner).
        bbox: BBox,
        /// The object's class, or [`EdgePolicy::relabel_as`] when it was cut and that is
        /// set.
        class: ClassId,
        /// Whether the crop border cut the box (less than all of it is inside).
        cut: bool,
    },
}

impl EdgePolicy {
    /// What this policy does to the object `bbox` of `class` in the crop `crop` (in the
    /// source image's pixels).
    ///
    /// ```
    /// use arfpn_boxes::{BBox, ClassId};
    /// use arfpn_voc::tiling::{CropFate, EdgePolicy};
    /// let edge = EdgePolicy { min_visible: 0.3, relabel_as: Some(ClassId::new(13)) };
    /// let crop = BBox::new(100.0, 0.0, 200.0, 100.0);
    /// // Half of the cell is inside: kept, clipped, moved into the crop and relabelled.
    /// let fate = edge.place(&BBox::new(90.0, 10.0, 110.0, 30.0), ClassId::new(6), &crop);
    /// assert_eq!(fate, CropFate::Kept {
    ///     bbox: BBox::new(0.0, 10.0, 10.0, 30.0), class: ClassId::new(13), cut: true });
    /// ```
    pub fn place(&self, bbox: &BBox, class: ClassId, crop: &BBox) -> CropFate {
        let inter = bbox.intersection(crop);
        let ia = inter.area();
        if ia <= 0.0 {
            return CropFate::Outside;
        }
        let area = bbox.area();
        let visible = if area > 0.0 { ia / area } else { 0.0 };
        if visible < self.min_visible {
            return CropFate::Dropped;
        }
        let cut = inter != *bbox;
        CropFate::Kept {
            bbox: inter.translate(-crop.x1, -crop.y1),
            class: match (cut, self.relabel_as) {
                (true, Some(c)) => c,
                _ => class,
            },
            cut,
        }
    }
}

/// Crop size, overlap and edge policy.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TileConfig {
    /// Crop width in pixels (positive; an image narrower than this gets one crop of its
    /// own width).
    pub tile_width: u32,
    /// Crop height in pixels (positive; an image lower than this gets one crop of its own
    /// height).
    pub tile_height: u32,
    /// Fraction of a tile shared with its neighbour, in `[0, 1)`.
    pub overlap: f32,
    /// What happens to the objects a crop border cuts.
    pub edge: EdgePolicy,
}

impl Default for TileConfig {
    /// The paper's crops: 500 wide, 375 high, 30 % overlap.
    fn default() -> Self {
        Self {
            tile_width: 500,
            tile_height: 375,
            overlap: 0.3,
            edge: EdgePolicy::default(),
        }
    }
}

/// One crop of a sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Tile {
    /// Left edge of the crop in the source image, in pixels (`x` of its top-left corner).
    pub x: u32,
    /// Top edge of the crop in the source image, in pixels (`y` of its top-left corner).
    pub y: u32,
    /// The crop's annotation: id `"{id}_x{x}_y{y}"`, size of the crop, boxes in crop
    /// coordinates (the `image_path` is the source image's).
    pub sample: Sample,
    /// Objects overlapping the crop but dropped by [`EdgePolicy::min_visible`].
    pub dropped: usize,
}

/// Start offsets of tiles of length `tile` along a side of length `len`: stride
/// `round(tile * (1 - overlap))` (at least 1), the last tile aligned to the far border so
/// the whole side is covered. A side shorter than the tile gets one tile at 0 (of length
/// `len`).
pub fn tile_positions(len: u32, tile: u32, overlap: f32) -> Vec<u32> {
    if len <= tile {
        return vec![0];
    }
    let stride = ((tile as f32 * (1.0 - overlap)).round() as u32).max(1);
    let mut v: Vec<u32> = (0..)
        .map(|i| i * stride)
        .take_while(|&p| p + tile < len)
        .collect();
    v.push(len - tile);
    v
}

impl TileConfig {
    /// Checks the sizes, the overlap and the edge policy.
    pub fn validate(&self) -> Result<()> {
        check(self)
    }
}

fn check(cfg: &TileConfig) -> Result<()> {
    if cfg.tile_width == 0 || cfg.tile_height == 0 {
        return Err(VocError::InvalidArgument {
            name: "tile_width/tile_height",
            reason: "must be positive".into(),
        });
    }
    if !(cfg.overlap >= 0.0 && cfg.overlap < 1.0) {
        return Err(VocError::InvalidArgument {
            name: "overlap",
            reason: format!("must be in [0, 1), got {}", cfg.overlap),
        });
    }
    if !(cfg.edge.min_visible >= 0.0 && cfg.edge.min_visible <= 1.0) {
        return Err(VocError::InvalidArgument {
            name: "edge.min_visible",
            reason: format!("must be in [0, 1], got {}", cfg.edge.min_visible),
        });
    }
    Ok(())
}

/// The annotations of every crop of `sample` (row-major order of crops). Objects are
/// assigned by [`EdgePolicy`]; crops without any object are returned too.
pub fn tile_sample(sample: &Sample, cfg: &TileConfig) -> Result<Vec<Tile>> {
    check(cfg)?;
    let tw = cfg.tile_width.min(sample.width);
    let th = cfg.tile_height.min(sample.height);
    let mut tiles = Vec::new();
    for &y in &tile_positions(sample.height, th, cfg.overlap) {
        for &x in &tile_positions(sample.width, tw, cfg.overlap) {
            let crop = BBox::new(x as f32, y as f32, (x + tw) as f32, (y + th) as f32);
            let mut objects = Vec::new();
            let mut dropped = 0;
            for o in &sample.objects {
                match cfg.edge.place(&o.bbox, o.class, &crop) {
                    CropFate::Outside => {}
                    CropFate::Dropped => dropped += 1,
                    CropFate::Kept { bbox, class, cut } => objects.push(Object {
                        bbox,
                        class,
                        difficult: o.difficult,
                        truncated: o.truncated || cut,
                    }),
                }
            }
            tiles.push(Tile {
                x,
                y,
                sample: Sample {
                    id: format!("{}_x{x}_y{y}", sample.id),
                    image_path: sample.image_path.clone(),
                    width: tw,
                    height: th,
                    objects,
                },
                dropped,
            });
        }
    }
    Ok(tiles)
}

/// The pixels of `tile` cut out of `img` (the image the tile's sample was made from).
pub fn crop(img: &RgbImage, tile: &Tile) -> Result<RgbImage> {
    let (w, h) = img.dimensions();
    if tile.x + tile.sample.width > w || tile.y + tile.sample.height > h {
        return Err(VocError::InvalidArgument {
            name: "tile",
            reason: format!(
                "crop {}x{} at ({}, {}) outside a {w}x{h} image",
                tile.sample.width, tile.sample.height, tile.x, tile.y
            ),
        });
    }
    Ok(imageops::crop_imm(img, tile.x, tile.y, tile.sample.width, tile.sample.height).to_image())
}

/// Tile an image and its annotation: every crop with its pixels.
pub fn tile_image(
    img: &RgbImage,
    sample: &Sample,
    cfg: &TileConfig,
) -> Result<Vec<(RgbImage, Tile)>> {
    if img.dimensions() != (sample.width, sample.height) {
        return Err(VocError::SizeMismatch {
            path: sample.image_path.clone(),
            image: sample.image_path.clone(),
            xml_width: sample.width,
            xml_height: sample.height,
            width: img.width(),
            height: img.height(),
        });
    }
    tile_sample(sample, cfg)?
        .into_iter()
        .map(|t| Ok((crop(img, &t)?, t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(b: BBox, class: ClassId) -> Object {
        Object {
            bbox: b,
            class,
            difficult: false,
            truncated: false,
        }
    }

    #[test]
    fn paper_field_positions() {
        // 1418x1420 field, 500x375 crops, 30 % overlap.
        assert_eq!(tile_positions(1418, 500, 0.3), [0, 350, 700, 918]);
        assert_eq!(tile_positions(1420, 375, 0.3), [0, 263, 526, 789, 1045]);
        assert_eq!(tile_positions(500, 500, 0.3), [0]);
        assert_eq!(tile_positions(300, 500, 0.3), [0]);
        assert_eq!(tile_positions(10, 4, 0.0), [0, 4, 6]);
        // Every pixel covered, consecutive overlap at least the requested one.
        let p = tile_positions(1418, 500, 0.3);
        for w in p.windows(2) {
            assert!(w[1] - w[0] <= 350);
        }
        assert_eq!(p.last().unwrap() + 500, 1418);
    }

    #[test]
    fn boxes_are_clipped_relabelled_or_dropped() {
        let s = Sample {
            id: "f".into(),
            image_path: "f.png".into(),
            width: 20,
            height: 10,
            objects: vec![
                obj(BBox::new(1.0, 1.0, 5.0, 5.0), ClassId::new(0)), // inside tile 0 only
                obj(BBox::new(8.0, 2.0, 12.0, 6.0), ClassId::new(1)), // straddles the x=10 border
                obj(BBox::new(9.0, 2.0, 19.0, 4.0), ClassId::new(2)), // 10 % in tile 0, 90 % in tile 1
            ],
        };
        let cfg = TileConfig {
            tile_width: 10,
            tile_height: 10,
            overlap: 0.0,
            edge: EdgePolicy {
                min_visible: 0.3,
                relabel_as: Some(ClassId::new(13)),
            },
        };
        let tiles = tile_sample(&s, &cfg).unwrap();
        assert_eq!(tiles.len(), 2);
        assert_eq!((tiles[0].x, tiles[1].x), (0, 10));
        let t0 = &tiles[0].sample;
        assert_eq!(t0.id, "f_x0_y0");
        assert_eq!(t0.objects.len(), 2);
        assert_eq!(
            t0.objects[0],
            obj(BBox::new(1.0, 1.0, 5.0, 5.0), ClassId::new(0))
        );
        // Half of object 1 visible: clipped, truncated, relabelled "edge".
        assert_eq!(t0.objects[1].bbox, BBox::new(8.0, 2.0, 10.0, 6.0));
        assert_eq!(t0.objects[1].class, ClassId::new(13));
        assert!(t0.objects[1].truncated);
        // Object 2 is 10 % visible in tile 0: dropped there.
        assert_eq!(tiles[0].dropped, 1);
        let t1 = &tiles[1].sample;
        assert_eq!(t1.objects.len(), 2);
        assert_eq!(t1.objects[0].bbox, BBox::new(0.0, 2.0, 2.0, 6.0));
        assert_eq!(t1.objects[1].bbox, BBox::new(0.0, 2.0, 9.0, 4.0));
        assert_eq!(t1.objects[1].class, ClassId::new(13)); // 90 % visible, still cut
        assert_eq!(tiles[1].dropped, 0);
        // Without relabelling the class is kept.
        let cfg2 = TileConfig {
            edge: EdgePolicy::default(),
            ..cfg
        };
        assert_eq!(
            tile_sample(&s, &cfg2).unwrap()[0].sample.objects[1].class,
            ClassId::new(1)
        );
        assert!(tile_sample(
            &s,
            &TileConfig {
                overlap: 1.0,
                ..cfg
            }
        )
        .is_err());
    }

    #[test]
    fn crops_carry_the_pixels_under_their_boxes() {
        let img = RgbImage::from_fn(30, 20, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let s = Sample {
            id: "g".into(),
            image_path: "g.png".into(),
            width: 30,
            height: 20,
            objects: vec![obj(BBox::new(12.0, 11.0, 15.0, 14.0), ClassId::new(0))],
        };
        let cfg = TileConfig {
            tile_width: 16,
            tile_height: 16,
            overlap: 0.25,
            edge: EdgePolicy::default(),
        };
        let tiles = tile_image(&img, &s, &cfg).unwrap();
        // x: 0, 12, 14 (last aligned to the border); y: 0, 4.
        assert_eq!(tiles.len(), 3 * 2);
        for (crop, t) in &tiles {
            assert_eq!(crop.dimensions(), (16, 16));
            for o in &t.sample.objects {
                // The crop pixel at the box corner is the source pixel at the source corner.
                let p = crop.get_pixel(o.bbox.x1 as u32, o.bbox.y1 as u32).0;
                assert_eq!(
                    p,
                    [o.bbox.x1 as u8 + t.x as u8, o.bbox.y1 as u8 + t.y as u8, 0]
                );
            }
        }
        let n_with: usize = tiles
            .iter()
            .filter(|t| !t.1.sample.objects.is_empty())
            .count();
        assert!(n_with >= 1);
    }
}
