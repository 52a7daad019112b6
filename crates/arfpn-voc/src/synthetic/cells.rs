//! The cell model: outline and haemoglobin-thickness shapes of one red cell in its own frame
//! (the geometry every morphology is drawn from), and the class draw of the freely placed
//! cells.

use std::f32::consts::PI;

use arfpn_boxes::{BBox, ClassId, SplitMix64};

use crate::labels::rbc;

/// The boundary of a cell in its own frame, as a radius per angle (all shapes are
/// star-shaped around the cell centre).
#[derive(Clone, Debug)]
pub(super) enum Outline {
    /// Circle of radius `r` with small harmonic irregularity.
    Round { r: f32 },
    /// Ellipse with semi-axes `a` (along u) and `b`.
    Ellipse { a: f32, b: f32 },
    /// Round body `r` with a tail along +u reaching `r * (1 + tail)`.
    Tear { r: f32, tail: f32 },
    /// Irregular fragment of radius `r`, cut by the line `v = cut * r`.
    Fragment { r: f32, cut: f32 },
}

/// Thickness (haemoglobin) profile inside the cell.
#[derive(Clone, Copy, Debug)]
pub(super) enum Thickness {
    /// `1 - depth * exp(-(s/width)^2)`: the normal biconcave disc.
    Pallor { depth: f32, width: f32 },
    /// Uniform, slightly domed, no pallor.
    Solid,
    /// Central dot, pale ring, dense rim.
    Target,
    /// Large pale centre, narrow dense rim.
    Hypochromic,
    /// Curved slit-shaped pallor along u.
    Slit { curve: f32 },
}

#[derive(Clone, Debug)]
pub(super) struct Cell {
    pub(super) cx: f32,
    pub(super) cy: f32,
    pub(super) rot: f32,
    pub(super) outline: Outline,
    pub(super) profile: Thickness,
    /// Absorbance multiplier (haemoglobin content).
    pub(super) density: f32,
    /// Boundary harmonics `(amplitude, phase)` for k = 2, 3, 4.
    pub(super) harm: [(f32, f32); 3],
    /// Stippling dots in the cell frame `(u, v, radius)`.
    pub(super) dots: Vec<(f32, f32, f32)>,
}

impl Cell {
    /// Nominal radius (for profile normalisation).
    pub(super) fn r(&self) -> f32 {
        match self.outline {
            Outline::Round { r } | Outline::Tear { r, .. } | Outline::Fragment { r, .. } => r,
            Outline::Ellipse { b, .. } => b,
        }
    }

    /// Boundary radius at local angle `t`.
    pub(super) fn boundary(&self, t: f32) -> f32 {
        let h = 1.0
            + self.harm[0].0 * (2.0 * t + self.harm[0].1).cos()
            + self.harm[1].0 * (3.0 * t + self.harm[1].1).cos()
            + self.harm[2].0 * (4.0 * t + self.harm[2].1).cos();
        match self.outline {
            Outline::Round { r } => r * h,
            Outline::Ellipse { a, b } => {
                let (s, c) = t.sin_cos();
                a * b / ((b * c).powi(2) + (a * s).powi(2)).sqrt() * h
            }
            Outline::Tear { r, tail } => {
                let c = t.cos().max(0.0);
                r * h * (1.0 + 0.2 * c * c + tail * c.powi(30))
            }
            Outline::Fragment { r, cut } => {
                let base = r * h;
                let s = t.sin();
                if s > 1e-3 {
                    base.min(cut * r / s).max(0.0)
                } else {
                    base
                }
            }
        }
    }

    /// Largest boundary radius (for collision tests and render bounds).
    pub(super) fn max_radius(&self) -> f32 {
        (0..180)
            .map(|i| self.boundary(i as f32 * 2.0 * PI / 180.0))
            .fold(0.0, f32::max)
    }

    /// Tight box of the outline in image coordinates (continuous).
    pub(super) fn extent(&self) -> BBox {
        let (mut x1, mut y1, mut x2, mut y2) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for i in 0..720 {
            let t = i as f32 * 2.0 * PI / 720.0;
            let rho = self.boundary(t);
            let x = self.cx + rho * (t + self.rot).cos();
            let y = self.cy + rho * (t + self.rot).sin();
            x1 = x1.min(x);
            y1 = y1.min(y);
            x2 = x2.max(x);
            y2 = y2.max(y);
        }
        BBox::new(x1, y1, x2, y2)
    }

    /// Relative haemoglobin thickness at local `(u, v)` with normalised radius `s` in [0, 1].
    pub(super) fn thickness(&self, u: f32, v: f32, s: f32) -> f32 {
        let r = self.r();
        let base = match self.profile {
            Thickness::Pallor { depth, width } => 1.0 - depth * (-(s / width).powi(2)).exp(),
            Thickness::Solid => 1.0 + 0.25 * (1.0 - s * s),
            Thickness::Target => {
                let ring = (-((s - 0.5) / 0.15).powi(2)).exp();
                1.0 - 0.75 * ring
            }
            Thickness::Hypochromic => 1.0 - 0.85 * (-(s / 0.72).powi(8)).exp(),
            Thickness::Slit { curve } => {
                let un = u / r;
                let vn = v / r - curve * un * un;
                let q = (un / 0.6).powi(2) + (vn / 0.13).powi(2);
                1.0 - 0.75 * (-q * q).exp()
            }
        };
        // A slightly denser membrane at the rim.
        let rim = 1.0 + 0.2 * (-((1.0 - s) / 0.1).powi(2)).exp();
        base * rim
    }
}

/// The single-cell morphologies (everything but `overlap` and `edge`).
pub(super) const MORPHS: [ClassId; 12] = [
    rbc::SCHISTOCYTE,
    rbc::SPHEROCYTE,
    rbc::STOMATOCYTE,
    rbc::TARGET_CELL,
    rbc::HYPOCHROMIC,
    rbc::ELLIPTOCYTE,
    rbc::NORMAL,
    rbc::HYPERCHROMIC,
    rbc::MICROCYTE,
    rbc::MACROCYTE,
    rbc::TEARDROP,
    rbc::BASOPHILIC_STIPPLING,
];

/// Relative frequency of each class among the freely drawn cells (index = ClassId;
/// `edge` comes from the border, not from this draw).
const WEIGHTS: [f32; 14] = [
    0.04, 0.045, 0.045, 0.045, 0.045, 0.045, 0.34, 0.05, 0.045, 0.12, 0.08, 0.04, 0.045, 0.0,
];

pub(super) fn draw_class(rng: &mut SplitMix64) -> ClassId {
    let total: f32 = WEIGHTS.iter().sum();
    let mut x = rng.uniform() as f32 * total;
    for (c, w) in WEIGHTS.iter().enumerate() {
        if x < *w {
            return ClassId::new(c);
        }
        x -= w;
    }
    rbc::NORMAL
}
