//! Whole-field merging: known cells planted on a large synthetic field, a perfect per-tile
//! detector (it reports every planted cell's visible part in the tile, truncated cells
//! included), and every cell must come out exactly once with its full box.

use std::sync::atomic::{AtomicUsize, Ordering};

use arfpn::lab::{detect_tiled, FieldTiling};
use arfpn::Detections;
use arfpn_boxes::{iou_matrix, BBox, ImageSize};
use arfpn_voc::synthetic::{render_image, SyntheticConfig};

#[test]
fn every_planted_cell_is_found_once() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = SyntheticConfig {
        width: 1400,
        height: 1000,
        ..SyntheticConfig::default()
    };
    let field = render_image(&cfg, 3)?;
    let truth: Vec<BBox> = field.objects.iter().map(|o| o.bbox).collect();
    assert!(truth.len() > 1000, "{} cells", truth.len());
    let tiles = FieldTiling {
        tile: 400,
        overlap: 96,
        ..FieldTiling::default()
    };
    let calls = AtomicUsize::new(0);
    let raw = AtomicUsize::new(0);
    let perfect = |tile: &arfpn_voc::RgbImage, [x0, y0]: [usize; 2]| {
        calls.fetch_add(1, Ordering::Relaxed);
        let size = ImageSize::new(tile.height() as usize, tile.width() as usize);
        let mut d = Detections::default();
        for o in &field.objects {
            let b = BBox::new(
                o.bbox.x1 - x0 as f32,
                o.bbox.y1 - y0 as f32,
                o.bbox.x2 - x0 as f32,
                o.bbox.y2 - y0 as f32,
            )
            .clip(size);
            if b.area() > 0.0 {
                d.boxes.push(b);
                d.scores.push(0.9);
                d.classes.push(o.class);
            }
        }
        raw.fetch_add(d.len(), Ordering::Relaxed);
        Ok(d)
    };
    let merged = detect_tiled(&field.image, &tiles, perfect)?;
    // Tiles of 400 at x = 0, 304, 608, 912, 1000 and y = 0, 304, 600.
    assert_eq!(calls.load(Ordering::Relaxed), 15);
    // Detecting the tiles one after another gives the same merged result.
    let serial = FieldTiling {
        parallel: false,
        ..tiles
    };
    assert_eq!(detect_tiled(&field.image, &serial, perfect)?, merged);
    let raw = raw.load(Ordering::Relaxed) / 2;
    assert_eq!(merged.len(), truth.len(), "each cell once");
    let iou = iou_matrix(&merged.boxes, &truth);
    for (j, t) in truth.iter().enumerate() {
        let hits = (0..merged.len())
            .filter(|&i| iou[i * truth.len() + j] > 0.999)
            .count();
        assert_eq!(hits, 1, "cell {j} {t:?} found {hits} times");
    }
    // The tiles saw many cells more than once (whole or cut): the merge had work to do.
    assert!(
        raw > truth.len() + 200,
        "{raw} raw detections for {} cells",
        truth.len()
    );
    Ok(())
}
