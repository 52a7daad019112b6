//! Per-image appearance: the stain colours (cells, stippling, platelets, background), their
//! per-image jitter, and the realistic profile's stain shift and uneven illumination.

use arfpn_boxes::SplitMix64;

/// Per-image stain and optics.
pub(super) struct Stain {
    pub(super) background: [f32; 3],
    pub(super) rbc: [f32; 3],
    pub(super) dots: [f32; 3],
    pub(super) platelet: [f32; 3],
}

pub(super) fn jitter(rng: &mut SplitMix64, v: f32, rel: f32) -> f32 {
    v * (1.0 + rel * rng.range(-1.0, 1.0) as f32)
}

/// Realistic profile: per-image hue and saturation shift of the cells' stain and of the
/// background (smears stained on different days, by different hands).
pub(super) fn realistic_stain(rng: &mut SplitMix64, stain: &mut Stain) {
    let bg_level = rng.range(0.8, 0.97) as f32;
    stain.background = [
        bg_level * jitter(rng, 1.0, 0.03),
        bg_level * jitter(rng, 0.95, 0.05),
        bg_level * jitter(rng, 0.95, 0.06),
    ];
    // Saturation: overall stain strength; hue: the red/blue balance of the absorbance.
    let sat = rng.range(0.7, 1.35) as f32;
    let red = jitter(rng, 1.0, 0.45);
    let green = jitter(rng, 1.0, 0.1);
    let blue = jitter(rng, 1.0, 0.3);
    for (v, k) in stain.rbc.iter_mut().zip([red, green, blue]) {
        *v *= sat * k;
    }
    for v in &mut stain.dots {
        *v = jitter(rng, *v, 0.15);
    }
}

/// Realistic profile: uneven illumination, an off-centre vignette times a linear gradient.
pub(super) struct Illumination {
    vignette: f32,
    centre: (f32, f32),
    gradient: (f32, f32),
}

impl Illumination {
    pub(super) fn draw(rng: &mut SplitMix64) -> Self {
        let vignette = rng.range(0.0, 0.3) as f32;
        let centre = (rng.range(-0.2, 0.2) as f32, rng.range(-0.2, 0.2) as f32);
        let g = rng.range(0.0, 0.18) as f32;
        let t = rng.range(0.0, std::f64::consts::TAU) as f32;
        Self {
            vignette,
            centre,
            gradient: (g * t.cos(), g * t.sin()),
        }
    }

    /// Relative light at normalised position `(nx, ny)` in `[-0.5, 0.5]²`.
    pub(super) fn light(&self, nx: f32, ny: f32) -> f32 {
        let (dx, dy) = (nx - self.centre.0, ny - self.centre.1);
        let v = 1.0 - self.vignette * 2.0 * (dx * dx + dy * dy);
        let g = 1.0 + self.gradient.0 * nx + self.gradient.1 * ny;
        (v * g).max(0.05)
    }
}
