//! One synthetic smear: border (`edge`) cells, then interior objects placed by tickets and
//! weighted draws, then the canvas, illumination, blur and noise.

use std::f32::consts::PI;

use arfpn_boxes::{BBox, ClassId, ImageSize, SplitMix64};
use image::RgbImage;

use super::canvas::Canvas;
use super::cells::{draw_class, Cell, MORPHS};
use super::config::{SmearProfile, SyntheticConfig};
use super::profile::make_cell;
use super::stain::{jitter, realistic_stain, Illumination, Stain};
use crate::annotation::Object;
use crate::error::{Result, VocError};
use crate::labels::rbc;
use crate::transforms::gaussian_blur_f32;

/// One placed, labelled object: its cells and its class.
struct Placed {
    cells: Vec<Cell>,
    class: ClassId,
    bbox: BBox,
}

/// A rendered synthetic image with its objects (class ids of
/// [`LabelSet::rbc14`](crate::labels::LabelSet::rbc14)).
#[derive(Clone, Debug)]
pub struct SyntheticImage {
    /// The rendered smear, 8-bit RGB, `width × height` of the config.
    pub image: RgbImage,
    /// The labelled objects: boxes in continuous pixel coordinates (rounded outwards to
    /// whole pixels, clipped to the image); `edge` cells are marked `truncated`, nothing
    /// is `difficult`. Platelets are not labelled.
    pub objects: Vec<Object>,
}

fn overlaps_any(placed: &[(f32, f32, f32)], x: f32, y: f32, r: f32) -> bool {
    // Cells may touch: up to 1.5 px of their bounding circles may overlap.
    placed
        .iter()
        .any(|&(px, py, pr)| (px - x).powi(2) + (py - y).powi(2) < (pr + r - 1.5).max(0.0).powi(2))
}

/// Box rounded outwards to whole pixels and clipped to the image.
fn pixel_box(b: BBox, w: f32, h: f32) -> BBox {
    BBox::new(b.x1.floor(), b.y1.floor(), b.x2.ceil(), b.y2.ceil())
        .clip(ImageSize::new(h as usize, w as usize))
}

fn union(a: BBox, b: BBox) -> BBox {
    BBox::new(
        a.x1.min(b.x1),
        a.y1.min(b.y1),
        a.x2.max(b.x2),
        a.y2.max(b.y2),
    )
}

/// Render one synthetic smear. Deterministic in `(cfg, seed)`.
pub fn render_image(cfg: &SyntheticConfig, seed: u64) -> Result<SyntheticImage> {
    cfg.validate()?;
    let mut rng = SplitMix64::new(seed);
    let (w, h) = (cfg.width as f32, cfg.height as f32);
    // Stain and optics of this image.
    let bg_level = rng.range(0.88, 0.96) as f32;
    let tint = [
        jitter(&mut rng, 1.0, 0.015),
        jitter(&mut rng, 0.965, 0.02),
        jitter(&mut rng, 0.965, 0.025),
    ];
    let dens = rng.range(0.85, 1.15) as f32;
    let mut stain = Stain {
        background: [bg_level * tint[0], bg_level * tint[1], bg_level * tint[2]],
        rbc: [
            jitter(&mut rng, 0.09, 0.3) * dens,
            jitter(&mut rng, 0.55, 0.12) * dens,
            jitter(&mut rng, 0.45, 0.15) * dens,
        ],
        dots: [
            jitter(&mut rng, 1.3, 0.1),
            jitter(&mut rng, 1.4, 0.1),
            jitter(&mut rng, 0.55, 0.2),
        ],
        platelet: [
            jitter(&mut rng, 0.75, 0.1),
            jitter(&mut rng, 0.95, 0.1),
            jitter(&mut rng, 0.35, 0.2),
        ],
    };
    let (profile, sc) = (cfg.profile, cfg.cell_scale);
    let realistic = profile == SmearProfile::Realistic;
    if realistic {
        realistic_stain(&mut rng, &mut stain);
    }

    let mut circles: Vec<(f32, f32, f32)> = Vec::new();
    let mut placed: Vec<Placed> = Vec::new();
    // Cells placed, in whole-cell equivalents, for the fill target. A border cell counts by
    // its visible fraction, except in the pinned default profile at scale 1, where it
    // counts whole (with large cells the border cells would otherwise reach the target
    // alone and leave the interior empty).
    let legacy_fill = profile == SmearProfile::Default && sc == 1.0;
    let mut filled = 0.0f32;

    // 1. Edge cells along the four borders.
    let perimeter = 2.0 * (w + h);
    let n_edge_tries = (perimeter / (12.0 * sc)) as usize;
    let mut n_edge = 0;
    for attempt in 0..n_edge_tries * 4 {
        if n_edge >= n_edge_tries / 2 && attempt >= n_edge_tries {
            break;
        }
        let morph = if rng.uniform() < 0.5 {
            rbc::NORMAL
        } else {
            MORPHS[rng.below(MORPHS.len())]
        };
        let side = rng.below(4);
        let along = rng.uniform() as f32;
        let off = rng.range(-0.6, 0.5) as f32 * 12.0 * sc;
        let (cx, cy) = match side {
            0 => (along * w, off),
            1 => (along * w, h - off),
            2 => (off, along * h),
            _ => (w - off, along * h),
        };
        let cell = make_cell(&mut rng, profile, sc, morph, cx, cy);
        let e = cell.extent();
        let full = BBox::new(e.x1.floor(), e.y1.floor(), e.x2.ceil(), e.y2.ceil());
        let vis = full.clip(ImageSize::new(h as usize, w as usize));
        let frac = if full.area() > 0.0 {
            vis.area() / full.area()
        } else {
            0.0
        };
        if frac < cfg.edge_visible.0 || frac > cfg.edge_visible.1 || !vis.is_valid() {
            continue;
        }
        let r = cell.max_radius();
        if overlaps_any(&circles, cx, cy, r) {
            continue;
        }
        circles.push((cx, cy, r));
        filled += if legacy_fill { 1.0 } else { frac };
        placed.push(Placed {
            bbox: vis,
            cells: vec![cell],
            class: rbc::EDGE,
        });
        n_edge += 1;
    }

    // 2. Interior objects: guaranteed tickets first, then weighted draws.
    let mut tickets: Vec<ClassId> = Vec::new();
    for _ in 0..cfg.min_per_class {
        tickets.extend(MORPHS);
        tickets.push(rbc::OVERLAP);
    }
    rng.shuffle(&mut tickets);
    // Overlap pairs are the hardest to fit: place them first.
    tickets.sort_by_key(|&c| c != rbc::OVERLAP);
    let mean_area = PI * 10.5 * 10.5 * sc * sc;
    let target_cells = (cfg.fill * w * h / mean_area) as usize;
    let mut failures = 0;
    let mut ticket_i = 0;
    while filled < target_cells as f32 && failures < 400 {
        let class = if ticket_i < tickets.len() {
            tickets[ticket_i]
        } else {
            draw_class(&mut rng)
        };
        let mut ok = false;
        for _ in 0..40 {
            // The object's cells, built around the origin.
            let mut cells = if class == rbc::OVERLAP {
                let pick = [rbc::NORMAL, rbc::NORMAL, rbc::MICROCYTE, rbc::MACROCYTE];
                let (ma, mb) = (pick[rng.below(4)], pick[rng.below(4)]);
                let a = make_cell(&mut rng, profile, sc, ma, 0.0, 0.0);
                let mut b = make_cell(&mut rng, profile, sc, mb, 0.0, 0.0);
                let t = rng.range(0.0, 2.0 * PI as f64) as f32;
                let d = (a.r() + b.r()) * rng.range(0.55, 0.9) as f32;
                b.cx = d * t.cos();
                b.cy = d * t.sin();
                vec![a, b]
            } else {
                vec![make_cell(&mut rng, profile, sc, class, 0.0, 0.0)]
            };
            let r0 = cells[0].max_radius();
            // Most candidates touch an already placed cell (real smears are dense, cells
            // touch); the rest fall anywhere.
            let (cx, cy) = if !circles.is_empty() && rng.uniform() < cfg.touching as f64 {
                let (px, py, pr) = circles[rng.below(circles.len())];
                let t = rng.range(0.0, 2.0 * PI as f64) as f32;
                let d = pr + r0 - rng.range(0.0, 1.5) as f32;
                (px + d * t.cos(), py + d * t.sin())
            } else {
                (
                    rng.range(16.0 * sc as f64, (w - 16.0 * sc) as f64) as f32,
                    rng.range(16.0 * sc as f64, (h - 16.0 * sc) as f64) as f32,
                )
            };
            for c in &mut cells {
                c.cx += cx;
                c.cy += cy;
            }
            let bbox = cells
                .iter()
                .map(Cell::extent)
                .reduce(union)
                .unwrap_or_default();
            // Interior objects must lie fully inside the image (1 px margin).
            if bbox.x1 < 1.0 || bbox.y1 < 1.0 || bbox.x2 > w - 1.0 || bbox.y2 > h - 1.0 {
                continue;
            }
            if cells
                .iter()
                .any(|c| overlaps_any(&circles, c.cx, c.cy, c.max_radius()))
            {
                continue;
            }
            for c in &cells {
                circles.push((c.cx, c.cy, c.max_radius()));
                filled += 1.0;
            }
            placed.push(Placed {
                bbox: pixel_box(bbox, w, h),
                cells,
                class,
            });
            ok = true;
            break;
        }
        if ok {
            ticket_i += 1;
            failures = 0;
        } else if ticket_i >= tickets.len() {
            failures += 1;
        } else {
            // A ticket that cannot be placed is retried with a fresh shape; give up on it
            // only after many tries (then the image is too small for the guarantee).
            failures += 1;
            if failures > 200 {
                ticket_i += 1;
                failures = 0;
            }
        }
    }

    // 3. Render.
    let (wu, hu) = (cfg.width as usize, cfg.height as usize);
    let mut canvas = Canvas {
        w: wu,
        h: hu,
        od: vec![0.0; wu * hu * 3],
    };
    for p in &placed {
        for c in &p.cells {
            canvas.add_cell(c, &stain);
        }
    }
    let n_plt = rng.below(cfg.max_platelets + 1);
    for _ in 0..n_plt {
        for _ in 0..50 {
            let cx = rng.range(6.0 * sc as f64, (w - 6.0 * sc) as f64) as f32;
            let cy = rng.range(6.0 * sc as f64, (h - 6.0 * sc) as f64) as f32;
            let r = rng.range(2.0, 3.5) as f32 * sc;
            if !overlaps_any(&circles, cx, cy, r + 1.5) {
                circles.push((cx, cy, r + 1.0));
                canvas.add_platelet(&mut rng, cx, cy, r, sc, &stain);
                break;
            }
        }
    }
    // Transmitted light with vignetting, then optics blur, then sensor noise.
    let vignette = rng.range(0.03, 0.1) as f32;
    let illum = if realistic {
        Some(Illumination::draw(&mut rng))
    } else {
        None
    };
    let mut img = vec![0.0f32; wu * hu * 3];
    for y in 0..hu {
        for x in 0..wu {
            let nx = (x as f32 + 0.5) / w - 0.5;
            let ny = (y as f32 + 0.5) / h - 0.5;
            let light = match &illum {
                None => 1.0 - vignette * 2.0 * (nx * nx + ny * ny),
                Some(il) => il.light(nx, ny),
            };
            let i = (y * wu + x) * 3;
            for ch in 0..3 {
                img[i + ch] = 255.0 * stain.background[ch] * light * (-canvas.od[i + ch]).exp();
            }
        }
    }
    let sigma = rng.range(cfg.blur_sigma.0 as f64, cfg.blur_sigma.1 as f64) as f32;
    gaussian_blur_f32(&mut img, wu, hu, 3, sigma);
    let noise = rng.range(cfg.noise_sigma.0 as f64, cfg.noise_sigma.1 as f64) as f32;
    let raw: Vec<u8> = img
        .iter()
        .map(|&v| (v + noise * rng.normal() as f32).round().clamp(0.0, 255.0) as u8)
        .collect();
    let image = RgbImage::from_raw(cfg.width, cfg.height, raw).ok_or_else(|| {
        VocError::InvalidArgument {
            name: "width/height",
            reason: "buffer size mismatch".into(),
        }
    })?;
    let objects = placed
        .iter()
        .map(|p| Object {
            bbox: p.bbox,
            class: p.class,
            difficult: false,
            truncated: p.class == rbc::EDGE,
        })
        .collect();
    Ok(SyntheticImage { image, objects })
}
