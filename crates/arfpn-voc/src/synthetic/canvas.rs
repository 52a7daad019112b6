//! The optical-density canvas: cells and platelets add their stain absorbance per pixel
//! (Beer–Lambert, so overlapping cells are darker where they overlap).

use std::f32::consts::PI;

use arfpn_boxes::SplitMix64;

use super::cells::Cell;
use super::stain::Stain;

pub(super) struct Canvas {
    pub(super) w: usize,
    pub(super) h: usize,
    /// Optical density per pixel and channel.
    pub(super) od: Vec<f32>,
}

impl Canvas {
    pub(super) fn add_cell(&mut self, c: &Cell, stain: &Stain) {
        let rmax = c.max_radius() + 1.5;
        let x0 = ((c.cx - rmax).floor().max(0.0)) as usize;
        let y0 = ((c.cy - rmax).floor().max(0.0)) as usize;
        let x1 = ((c.cx + rmax).ceil().min(self.w as f32)).max(0.0) as usize;
        let y1 = ((c.cy + rmax).ceil().min(self.h as f32)).max(0.0) as usize;
        let (sr, cr) = c.rot.sin_cos();
        for y in y0..y1 {
            for x in x0..x1 {
                let dx = x as f32 + 0.5 - c.cx;
                let dy = y as f32 + 0.5 - c.cy;
                let u = dx * cr + dy * sr;
                let v = -dx * sr + dy * cr;
                let rho = (u * u + v * v).sqrt();
                let t = v.atan2(u);
                let b = c.boundary(t);
                let cov = (b - rho + 0.5).clamp(0.0, 1.0);
                if cov <= 0.0 || b <= 0.0 {
                    continue;
                }
                let s = (rho / b).min(1.0);
                let mut thick = c.thickness(u, v, s) * c.density * cov;
                let mut dot = 0.0;
                for &(du, dv, dr) in &c.dots {
                    let d = ((u - du).powi(2) + (v - dv).powi(2)).sqrt();
                    dot += (dr - d + 0.5).clamp(0.0, 1.0);
                }
                dot = dot.min(1.0) * cov;
                thick = thick.max(0.0);
                let i = (y * self.w + x) * 3;
                for ch in 0..3 {
                    self.od[i + ch] += stain.rbc[ch] * thick + stain.dots[ch] * dot;
                }
            }
        }
    }

    pub(super) fn add_platelet(
        &mut self,
        rng: &mut SplitMix64,
        cx: f32,
        cy: f32,
        r: f32,
        scale: f32,
        stain: &Stain,
    ) {
        let grains: Vec<(f32, f32, f32)> = (0..5)
            .map(|_| {
                let t = rng.range(0.0, 2.0 * PI as f64) as f32;
                let d = r * 0.5 * rng.uniform() as f32;
                (
                    cx + d * t.cos(),
                    cy + d * t.sin(),
                    rng.range(0.6, 1.1) as f32 * scale,
                )
            })
            .collect();
        let x0 = (cx - r - 2.0).floor().max(0.0) as usize;
        let y0 = (cy - r - 2.0).floor().max(0.0) as usize;
        let x1 = ((cx + r + 2.0).ceil() as usize).min(self.w);
        let y1 = ((cy + r + 2.0).ceil() as usize).min(self.h);
        for y in y0..y1 {
            for x in x0..x1 {
                let px = x as f32 + 0.5;
                let py = y as f32 + 0.5;
                let d = ((px - cx).powi(2) + (py - cy).powi(2)).sqrt();
                let cov = (r - d + 0.5).clamp(0.0, 1.0) * 0.55;
                let g: f32 = grains
                    .iter()
                    .map(|&(gx, gy, gr)| {
                        let dg = ((px - gx).powi(2) + (py - gy).powi(2)).sqrt();
                        (gr - dg + 0.5).clamp(0.0, 1.0)
                    })
                    .sum::<f32>()
                    .min(1.0);
                let a = cov + 0.6 * g;
                let i = (y * self.w + x) * 3;
                for ch in 0..3 {
                    self.od[i + ch] += stain.platelet[ch] * a;
                }
            }
        }
    }
}
