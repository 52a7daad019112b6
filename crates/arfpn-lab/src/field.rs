//! Whole-field inference: a smear photograph larger than the training crops is cut into
//! overlapping tiles, detected tile by tile, mapped back and merged so that each cell is
//! counted once.
//!
//! The merge rule: a detection that touches an *inner* tile border (one that is not the
//! image's border) is dropped — the cell it belongs to reaches into the neighbouring tile,
//! which, since tiles overlap by more than a cell, sees it whole; then per-class NMS across
//! tiles removes the copies of cells seen whole by two tiles. Cells cut by the image's own
//! border are kept (they are the `edge` cells a smear has).

use arfpn_boxes::{batched_nms, Detections, ImageSize};
use arfpn_voc::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use arfpn_model::{image_tensor, Detector, DetectorError, Result};

/// Tiling of a large field.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldTiling {
    /// Tile side in pixels (the training crop size is a good choice).
    pub tile: usize,
    /// Overlap of neighbouring tiles; must exceed the largest cell.
    pub overlap: usize,
    /// A box within this many pixels of an inner tile border counts as touching it.
    pub border_margin: f32,
    /// IoU of the cross-tile NMS.
    pub nms_thresh: f32,
    /// Detect tiles concurrently (rayon). It pays on the CPU, where a model's convolutions
    /// alone keep the cores only partly busy; [`detect_field`] turns it off on a
    /// GPU, which runs one stream anyway.
    pub parallel: bool,
}

impl Default for FieldTiling {
    fn default() -> Self {
        Self {
            tile: 512,
            overlap: 128,
            border_margin: 2.0,
            nms_thresh: 0.5,
            parallel: true,
        }
    }
}

impl FieldTiling {
    fn validate(&self) -> Result<()> {
        if self.tile < 32 || self.overlap * 2 >= self.tile {
            return Err(DetectorError::config(
                "tile",
                format!(
                    "tile {} must be >= 32 and more than twice the overlap {}",
                    self.tile, self.overlap
                ),
            ));
        }
        Ok(())
    }
}

/// Tile origins along one axis of length `len`: 0, stride, ..., with the last tile flush
/// with the end.
fn origins(len: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if len <= tile {
        return vec![0];
    }
    let stride = tile - overlap;
    let mut v: Vec<usize> = (0..)
        .map(|i| i * stride)
        .take_while(|&o| o + tile < len)
        .collect();
    v.push(len - tile);
    v
}

/// Runs `detect` on every tile of `image` and merges the results (see the module docs).
/// `detect` receives a tile and its top-left corner `[x, y]` in the field, and returns
/// detections in the tile's pixels. With [`FieldTiling::parallel`] the tiles are detected
/// concurrently on rayon's pool; the result does not depend on it (tiles are merged in
/// row-major order either way).
pub fn detect_tiled<F>(image: &RgbImage, config: &FieldTiling, detect: F) -> Result<Detections>
where
    F: Fn(&RgbImage, [usize; 2]) -> Result<Detections> + Sync,
{
    config.validate()?;
    let (w, h) = (image.width() as usize, image.height() as usize);
    let (tw, th) = (config.tile.min(w), config.tile.min(h));
    let xs = origins(w, config.tile, config.overlap);
    let ys = origins(h, config.tile, config.overlap);
    let corners: Vec<[usize; 2]> = ys
        .iter()
        .flat_map(|&y0| xs.iter().map(move |&x0| [x0, y0]))
        .collect();
    let run = |&[x0, y0]: &[usize; 2]| {
        let tile =
            image::imageops::crop_imm(image, x0 as u32, y0 as u32, tw as u32, th as u32).to_image();
        detect(&tile, [x0, y0])
    };
    let per_tile: Vec<Result<Detections>> = if config.parallel {
        corners.par_iter().map(run).collect()
    } else {
        corners.iter().map(run).collect()
    };
    let mut boxes = Vec::new();
    let mut scores = Vec::new();
    let mut classes = Vec::new();
    let m = config.border_margin;
    for (&[x0, y0], d) in corners.iter().zip(per_tile) {
        let d = d?;
        // Inner borders of this tile (those not on the image border).
        let left = x0 > 0;
        let top = y0 > 0;
        let right = x0 + tw < w;
        let bottom = y0 + th < h;
        for ((b, &s), &c) in d.boxes.iter().zip(&d.scores).zip(&d.classes) {
            let touches = (left && b.x1 <= m)
                || (top && b.y1 <= m)
                || (right && b.x2 >= tw as f32 - m)
                || (bottom && b.y2 >= th as f32 - m);
            if touches {
                continue;
            }
            boxes.push(b.translate(x0 as f32, y0 as f32));
            scores.push(s);
            classes.push(c);
        }
    }
    let groups: Vec<usize> = classes.iter().map(|c| c.index()).collect();
    let keep = batched_nms(&boxes, &scores, &groups, config.nms_thresh)?;
    let size = ImageSize::new(h, w);
    Ok(Detections {
        boxes: keep.iter().map(|&i| boxes[i].clip(size)).collect(),
        scores: keep.iter().map(|&i| scores[i]).collect(),
        classes: keep.iter().map(|&i| classes[i]).collect(),
    })
}

/// Detects in a whole field of any size with `detector`: directly when it fits in one tile,
/// else tile by tile with [`detect_tiled`].
pub fn detect_field(
    detector: &Detector,
    image: &RgbImage,
    config: &FieldTiling,
) -> Result<Detections> {
    config.validate()?;
    if image.width() as usize <= config.tile && image.height() as usize <= config.tile {
        return detector.detect_image(&image_tensor(image, detector.device())?);
    }
    let config = FieldTiling {
        parallel: config.parallel && detector.device().is_cpu(),
        ..*config
    };
    detect_tiled(image, &config, |tile, _| {
        detector.detect_image(&image_tensor(tile, detector.device())?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_cover_the_axis_with_the_overlap() {
        assert_eq!(origins(300, 512, 128), [0]);
        assert_eq!(origins(1000, 512, 128), [0, 384, 488]);
        assert_eq!(origins(1152, 512, 128), [0, 384, 640]);
    }
}
