//! A seeded generator of microscope-like blood smears with all 14 RBC morphology classes of
//! the paper ([`crate::labels::RBC14_CLASSES`]): the project's embedded default dataset,
//! since real RBC morphology data cannot ship with it.
//!
//! # What is drawn
//! A pale, slightly tinted background (colour jitter per image, mild vignetting) densely
//! filled with red cells that touch each other, a few platelets as unlabelled clutter, then
//! optical blur and sensor noise. Cells are rendered as stain absorbance (Beer–Lambert:
//! `pixel = background · exp(-absorbance · thickness)`), so overlapping cells are darker
//! where they overlap, as in a real smear. Morphologies follow the paper's rules:
//!
//! | class | drawn as |
//! |---|---|
//! | `normal` | round, diameter 19.2–21.2 px: box ≈ 21 px (19–25 with irregularity and rounding), biconcave pallor |
//! | `microcyte` | round, diameter 12–15.6 px: box at most 18 px |
//! | `macrocyte` | round, diameter 26–31 px: box at least 25 px |
//! | `elliptocyte` | ellipse, axis ratio 1.7–2.4 |
//! | `target_cell` | dense central dot, pale ring, dense rim ("shooting target") |
//! | `hypochromic` | thin cell with a large pale centre (narrow rim) |
//! | `hyperchromic` | dark cell with little pallor |
//! | `spherocyte` | small (13–17 px), dense, no pallor |
//! | `stomatocyte` | slit-shaped, slightly curved ("mouth") pallor |
//! | `teardrop` | round body with one thin tapering tail |
//! | `schistocyte` | small irregular fragment with a straight cut edge |
//! | `basophilic_stippling` | normal-sized cell with 6–16 fine dark blue dots |
//! | `overlap` | two cells overlapping by 10–45 % of their diameter; one box around both |
//! | `edge` | any cell cut by the image border (30–85 % visible); box clipped to the image |
//!
//! The table is the [`SmearProfile::Default`] profile at [`SyntheticConfig::cell_scale`] 1
//! (the quickstart's data; its output is pinned by a test). There a single cue separates
//! some classes (the longest box side never overlaps between microcytes, normal cells and
//! macrocytes). [`SmearProfile::Realistic`] ([`SyntheticConfig::realistic`]) is harder:
//! relative diameters are drawn from overlapping normal distributions (normal N(1, 0.08),
//! microcyte N(0.8, 0.08), macrocyte N(1.25, 0.1), spherocyte N(0.85, 0.08), ...), so the
//! shape (ellipse, tail, fragment), the pallor (size and depth of the pale centre, target
//! ring, slit) and the texture (stippling) carry the class; spherocytes have no pallor and a
//! smooth outline while hyperchromic cells keep a small pale centre; hypochromic cells are
//! no paler overall than normal ones, only their pale centre is larger. Each image also gets
//! its own stain hue/saturation (cells and background), an off-centre vignette times an
//! illumination gradient, and wider blur and noise ranges. `cell_scale` multiplies every
//! size (4.5: BCCD-like ≈ 95 px cells); outside the pinned default at scale 1, border cells
//! count towards [`SyntheticConfig::fill`] by their visible fraction, and large cells can
//! make [`SyntheticConfig::min_per_class`] unreachable (as a small image does).
//!
//! Boxes are the cells' analytic extents rounded outwards to whole pixels. Every image
//! holds at least [`SyntheticConfig::min_per_class`] cells of each class (except `edge`,
//! which comes from the border cells; at least one per image is guaranteed too).
//!
//! Everything is a function of the seed (a [`SplitMix64`] per image): the same seed gives
//! the same pixels and boxes on every machine and thread count.

use std::f32::consts::PI;
use std::path::Path;

use arfpn_boxes::{BBox, ClassId, ImageSize};
use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::annotation::{Object, Sample};
use crate::error::{Result, VocError};
use crate::labels::{rbc, LabelSet, RBC14_CLASSES};
use crate::splits::write_split;
use crate::transforms::gaussian_blur_f32;
use arfpn_boxes::SplitMix64;

/// Image file format of a written synthetic dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageFormat {
    /// JPEG, quality 95 (the paper's own crops are JPEG).
    Jpeg,
    /// Lossless PNG.
    Png,
}

/// The look of the generated smears.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmearProfile {
    /// Today's look (the quickstart's): each class drawn from its own narrow size range,
    /// uniform stain. Its output is pinned (byte-for-byte) by a test.
    #[default]
    Default,
    /// Harder, closer to real smears: overlapping size distributions (normal ~ N(1, 0.08)
    /// relative diameter, microcytes and macrocytes shifted with overlapping tails), so
    /// shape, pallor and texture carry the class; per-image stain hue/saturation and
    /// illumination variation (vignetting, a gradient). Use
    /// [`SyntheticConfig::realistic`] for its wider blur and noise ranges too.
    Realistic,
}

impl SmearProfile {
    /// The profile's name as the command line and JSON spell it.
    pub fn name(self) -> &'static str {
        match self {
            SmearProfile::Default => "default",
            SmearProfile::Realistic => "realistic",
        }
    }
}

impl std::str::FromStr for SmearProfile {
    type Err = VocError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "default" => Ok(SmearProfile::Default),
            "realistic" => Ok(SmearProfile::Realistic),
            other => Err(VocError::InvalidArgument {
                name: "profile",
                reason: format!("unknown profile {other:?} (expected default or realistic)"),
            }),
        }
    }
}

/// Smallest accepted [`SyntheticConfig::cell_scale`].
pub const MIN_CELL_SCALE: f32 = 0.5;
/// Largest accepted [`SyntheticConfig::cell_scale`].
pub const MAX_CELL_SCALE: f32 = 8.0;
/// A normal cell's nominal diameter at `cell_scale` 1, px.
pub const NORMAL_DIAMETER_PX: f32 = 20.2;
/// The smaller image side must hold this many nominal normal diameters (an overlap pair of
/// two macrocytes is about this long).
pub const MIN_SIDE_IN_CELLS: f32 = 3.0;

/// Parameters of the generator. The defaults give the paper's crop size (500×375) with
/// ≈ 250 cells per image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyntheticConfig {
    /// The look of the smears (absent in older JSON: [`SmearProfile::Default`]).
    #[serde(default)]
    pub profile: SmearProfile,
    /// Multiplier of every cell size (platelets and border offsets too):
    /// 1 gives ≈ 21 px normal cells, 4.5 BCCD-like ≈ 95 px ones.
    /// [`MIN_CELL_SCALE`]`..=`[`MAX_CELL_SCALE`] (absent in older JSON: 1).
    #[serde(default = "default_cell_scale")]
    pub cell_scale: f32,
    pub width: u32,
    pub height: u32,
    /// Target fraction of the image area covered by cells (random packing saturates near 0.5).
    pub fill: f32,
    /// Probability that a new cell is placed touching an existing one (else anywhere).
    pub touching: f32,
    /// Minimum number of cells of each class per image (`edge`: at least 1).
    pub min_per_class: usize,
    /// Range of the per-image optical blur (Gaussian sigma, px).
    pub blur_sigma: (f32, f32),
    /// Range of the per-image sensor noise (standard deviation, 0–255 scale).
    pub noise_sigma: (f32, f32),
    /// Maximum number of (unlabelled) platelets per image.
    pub max_platelets: usize,
    /// Range of the visible fraction (box area inside the image) of `edge` cells.
    pub edge_visible: (f32, f32),
    /// Fraction of the images in the `val` and in the `test` split (each at least one image
    /// when there are 3 or more).
    pub val_fraction: f32,
    pub test_fraction: f32,
    pub format: ImageFormat,
}

/// Smallest side of a synthetic image, px.
pub const MIN_SIDE: u32 = 64;
/// Largest side of a synthetic image, px.
pub const MAX_SIDE: u32 = 16384;
/// Largest area of a synthetic image, px (4096 × 4096; rendering is O(area) with a large
/// constant: this much takes seconds, not the hours of an unchecked 100000²).
pub const MAX_PIXELS: u64 = 4096 * 4096;

fn default_cell_scale() -> f32 {
    1.0
}

impl SyntheticConfig {
    /// The [`SmearProfile::Realistic`] profile with its wider optics: blur sigma 0.5–1.8 px,
    /// noise 2–8 (0–255 scale); everything else as [`SyntheticConfig::default`].
    pub fn realistic() -> Self {
        Self {
            profile: SmearProfile::Realistic,
            blur_sigma: (0.5, 1.8),
            noise_sigma: (2.0, 8.0),
            ..Self::default()
        }
    }

    /// Check the configuration before any rendering: each side within
    /// [`MIN_SIDE`]`..=`[`MAX_SIDE`] px, the area at most [`MAX_PIXELS`], `fill` in
    /// `(0, 0.9)`, the probabilities and fractions in `[0, 1]`, the ranges ordered and
    /// finite, `cell_scale` finite in [`MIN_CELL_SCALE`]`..=`[`MAX_CELL_SCALE`] and small
    /// enough that the smaller side holds [`MIN_SIDE_IN_CELLS`] normal cells. Errors:
    /// [`VocError::InvalidArgument`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |name: &'static str, reason: String| Err(VocError::InvalidArgument { name, reason });
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if !(MIN_SIDE..=MAX_SIDE).contains(&v) {
                return bad(
                    name,
                    format!("{v} px is outside the supported {MIN_SIDE}..={MAX_SIDE} px"),
                );
            }
        }
        let area = u64::from(self.width) * u64::from(self.height);
        if area > MAX_PIXELS {
            return bad(
                "width/height",
                format!(
                    "{}x{} = {area} px exceeds the limit of {MAX_PIXELS} px (4096x4096)",
                    self.width, self.height
                ),
            );
        }
        if !(self.fill > 0.0 && self.fill < 0.9) {
            return bad("fill", format!("must be in (0, 0.9), got {}", self.fill));
        }
        for (name, v) in [
            ("touching", self.touching),
            ("val_fraction", self.val_fraction),
            ("test_fraction", self.test_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(name, format!("must be in [0, 1], got {v}"));
            }
        }
        if self.val_fraction + self.test_fraction > 1.0 {
            return bad(
                "val_fraction/test_fraction",
                format!("sum {} exceeds 1", self.val_fraction + self.test_fraction),
            );
        }
        for (name, (lo, hi)) in [
            ("blur_sigma", self.blur_sigma),
            ("noise_sigma", self.noise_sigma),
            ("edge_visible", self.edge_visible),
        ] {
            if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi) {
                return bad(
                    name,
                    format!("need a finite range 0 <= lo <= hi, got ({lo}, {hi})"),
                );
            }
        }
        let scale = self.cell_scale;
        if !(scale.is_finite() && (MIN_CELL_SCALE..=MAX_CELL_SCALE).contains(&scale)) {
            return bad(
                "cell_scale",
                format!(
                    "must be a finite number in {MIN_CELL_SCALE}..={MAX_CELL_SCALE}, got {scale}"
                ),
            );
        }
        let need = MIN_SIDE_IN_CELLS * NORMAL_DIAMETER_PX * scale;
        let side = self.width.min(self.height);
        if (side as f32) < need {
            return bad(
                "cell_scale",
                format!(
                    "{scale} gives {:.0} px cells: the smaller image side ({side} px) must be at \
                     least {need:.0} px ({MIN_SIDE_IN_CELLS} cells); lower cell_scale or enlarge \
                     width/height",
                    NORMAL_DIAMETER_PX * scale
                ),
            );
        }
        Ok(())
    }
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            profile: SmearProfile::Default,
            cell_scale: 1.0,
            width: 500,
            height: 375,
            fill: 0.62,
            touching: 0.7,
            min_per_class: 2,
            blur_sigma: (0.6, 1.0),
            noise_sigma: (1.5, 4.0),
            max_platelets: 4,
            edge_visible: (0.3, 0.85),
            val_fraction: 0.15,
            test_fraction: 0.15,
            format: ImageFormat::Jpeg,
        }
    }
}

/// The boundary of a cell in its own frame, as a radius per angle (all shapes are
/// star-shaped around the cell centre).
#[derive(Clone, Debug)]
enum Outline {
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
enum Thickness {
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
struct Cell {
    cx: f32,
    cy: f32,
    rot: f32,
    outline: Outline,
    profile: Thickness,
    /// Absorbance multiplier (haemoglobin content).
    density: f32,
    /// Boundary harmonics `(amplitude, phase)` for k = 2, 3, 4.
    harm: [(f32, f32); 3],
    /// Stippling dots in the cell frame `(u, v, radius)`.
    dots: Vec<(f32, f32, f32)>,
}

impl Cell {
    /// Nominal radius (for profile normalisation).
    fn r(&self) -> f32 {
        match self.outline {
            Outline::Round { r } | Outline::Tear { r, .. } | Outline::Fragment { r, .. } => r,
            Outline::Ellipse { b, .. } => b,
        }
    }

    /// Boundary radius at local angle `t`.
    fn boundary(&self, t: f32) -> f32 {
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
    fn max_radius(&self) -> f32 {
        (0..180)
            .map(|i| self.boundary(i as f32 * 2.0 * PI / 180.0))
            .fold(0.0, f32::max)
    }

    /// Tight box of the outline in image coordinates (continuous).
    fn extent(&self) -> BBox {
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
    fn thickness(&self, u: f32, v: f32, s: f32) -> f32 {
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

/// Per-image stain and optics.
struct Stain {
    background: [f32; 3],
    rbc: [f32; 3],
    dots: [f32; 3],
    platelet: [f32; 3],
}

fn jitter(rng: &mut SplitMix64, v: f32, rel: f32) -> f32 {
    v * (1.0 + rel * rng.range(-1.0, 1.0) as f32)
}

/// The single-cell morphologies (everything but `overlap` and `edge`).
const MORPHS: [ClassId; 12] = [
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

fn draw_class(rng: &mut SplitMix64) -> ClassId {
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

/// A cell of morphology `class` centred at `(cx, cy)` in the given profile, sizes times
/// `scale`.
fn make_cell(
    rng: &mut SplitMix64,
    profile: SmearProfile,
    scale: f32,
    class: ClassId,
    cx: f32,
    cy: f32,
) -> Cell {
    match profile {
        SmearProfile::Default => make_cell_default(rng, scale, class, cx, cy),
        SmearProfile::Realistic => make_cell_realistic(rng, scale, class, cx, cy),
    }
}

/// The default profile's cell: narrow per-class size ranges. Its random draws must not
/// change (the default output is pinned); `s == 1` multiplies exactly.
fn make_cell_default(rng: &mut SplitMix64, s: f32, class: ClassId, cx: f32, cy: f32) -> Cell {
    let mut h = |amp: f32| {
        (
            amp * rng.range(0.3, 1.0) as f32,
            rng.range(0.0, std::f64::consts::TAU) as f32,
        )
    };
    let harm = [h(0.035), h(0.02), h(0.012)];
    let normal_pallor = Thickness::Pallor {
        depth: rng.range(0.6, 0.72) as f32,
        width: rng.range(0.4, 0.48) as f32,
    };
    let mut cell = Cell {
        cx,
        cy,
        rot: rng.range(0.0, 2.0 * PI as f64) as f32,
        outline: Outline::Round {
            r: rng.range(9.6, 10.6) as f32 * s,
        },
        profile: normal_pallor,
        density: rng.range(0.92, 1.08) as f32,
        harm,
        dots: Vec::new(),
    };
    match class {
        rbc::MICROCYTE => {
            cell.outline = Outline::Round {
                r: rng.range(6.0, 7.8) as f32 * s,
            };
            cell.profile = Thickness::Pallor {
                depth: 0.45,
                width: 0.4,
            };
        }
        rbc::MACROCYTE => {
            cell.outline = Outline::Round {
                r: rng.range(13.0, 15.5) as f32 * s,
            };
        }
        rbc::SPHEROCYTE => {
            cell.outline = Outline::Round {
                r: rng.range(6.5, 8.5) as f32 * s,
            };
            cell.profile = Thickness::Solid;
            cell.density = rng.range(1.45, 1.7) as f32;
            cell.harm = [(0.01, 0.0), (0.0, 0.0), (0.0, 0.0)];
        }
        rbc::HYPERCHROMIC => {
            cell.profile = Thickness::Pallor {
                depth: 0.15,
                width: 0.3,
            };
            cell.density = rng.range(1.6, 1.9) as f32;
        }
        rbc::HYPOCHROMIC => {
            cell.profile = Thickness::Hypochromic;
            cell.density = rng.range(0.8, 0.95) as f32;
        }
        rbc::TARGET_CELL => {
            cell.outline = Outline::Round {
                r: rng.range(10.0, 12.0) as f32 * s,
            };
            cell.profile = Thickness::Target;
            cell.density = rng.range(1.1, 1.25) as f32;
        }
        rbc::STOMATOCYTE => {
            cell.profile = Thickness::Slit {
                curve: rng.range(-0.5, 0.5) as f32,
            };
            cell.density = rng.range(1.05, 1.2) as f32;
        }
        rbc::ELLIPTOCYTE => {
            let b = rng.range(5.0, 6.5) as f32 * s;
            cell.outline = Outline::Ellipse {
                a: b * rng.range(1.7, 2.4) as f32,
                b,
            };
            cell.profile = Thickness::Pallor {
                depth: 0.3,
                width: 0.4,
            };
        }
        rbc::TEARDROP => {
            cell.outline = Outline::Tear {
                r: rng.range(8.5, 10.0) as f32 * s,
                tail: rng.range(0.8, 1.2) as f32,
            };
            cell.profile = Thickness::Pallor {
                depth: 0.4,
                width: 0.35,
            };
        }
        rbc::SCHISTOCYTE => {
            cell.outline = Outline::Fragment {
                r: rng.range(6.5, 9.0) as f32 * s,
                cut: rng.range(-0.05, 0.35) as f32,
            };
            cell.harm = [
                (
                    rng.range(0.12, 0.25) as f32,
                    rng.range(0.0, std::f64::consts::TAU) as f32,
                ),
                (
                    rng.range(0.08, 0.18) as f32,
                    rng.range(0.0, std::f64::consts::TAU) as f32,
                ),
                (
                    rng.range(0.0, 0.06) as f32,
                    rng.range(0.0, std::f64::consts::TAU) as f32,
                ),
            ];
            cell.profile = Thickness::Solid;
            cell.density = rng.range(1.15, 1.35) as f32;
        }
        rbc::BASOPHILIC_STIPPLING => {
            let r = cell.r();
            let n = 6 + rng.below(11);
            for _ in 0..n {
                let rho = r * 0.8 * rng.uniform().sqrt() as f32;
                let t = rng.range(0.0, 2.0 * PI as f64) as f32;
                cell.dots
                    .push((rho * t.cos(), rho * t.sin(), rng.range(0.6, 1.0) as f32 * s));
            }
        }
        _ => {}
    }
    cell
}

/// A normal draw `mean + sd * z`, clamped to `[lo, hi]` (no unbounded tails).
fn gauss(rng: &mut SplitMix64, mean: f32, sd: f32, lo: f32, hi: f32) -> f32 {
    (mean + sd * rng.normal() as f32).clamp(lo, hi)
}

/// Relative diameter distribution `(mean, sd, lo, hi)` of each class in the realistic
/// profile (1 = a nominal normal cell, [`NORMAL_DIAMETER_PX`] px at scale 1). Microcytes,
/// normal cells and macrocytes overlap in their tails as in real smears (MCV spreads),
/// spherocytes and hyperchromic cells share sizes with microcytes and normal cells.
fn realistic_size(class: ClassId) -> (f32, f32, f32, f32) {
    match class {
        rbc::MICROCYTE => (0.8, 0.08, 0.55, 1.05),
        rbc::MACROCYTE => (1.25, 0.1, 0.95, 1.6),
        rbc::SPHEROCYTE => (0.85, 0.08, 0.6, 1.1),
        rbc::TARGET_CELL => (1.05, 0.08, 0.8, 1.35),
        rbc::TEARDROP => (0.92, 0.08, 0.7, 1.2),
        rbc::SCHISTOCYTE => (0.78, 0.1, 0.5, 1.05),
        _ => (1.0, 0.08, 0.75, 1.3),
    }
}

/// The realistic profile's cell: sizes overlap between classes, so the class is carried by
/// shape (ellipse, tail, fragment), pallor (size and depth of the pale centre, target ring,
/// slit) and texture (stippling), with wider per-cell density and pallor variation.
fn make_cell_realistic(rng: &mut SplitMix64, s: f32, class: ClassId, cx: f32, cy: f32) -> Cell {
    let tau = std::f64::consts::TAU;
    let mut h = |amp: f32| (amp * rng.range(0.3, 1.0) as f32, rng.range(0.0, tau) as f32);
    let harm = [h(0.045), h(0.025), h(0.015)];
    let (mean, sd, lo, hi) = realistic_size(class);
    let r = 0.5 * NORMAL_DIAMETER_PX * s * gauss(rng, mean, sd, lo, hi);
    let mut cell = Cell {
        cx,
        cy,
        rot: rng.range(0.0, tau) as f32,
        outline: Outline::Round { r },
        profile: Thickness::Pallor {
            depth: rng.range(0.5, 0.78) as f32,
            width: rng.range(0.36, 0.5) as f32,
        },
        density: rng.range(0.85, 1.15) as f32,
        harm,
        dots: Vec::new(),
    };
    match class {
        rbc::MICROCYTE => {
            // Often a little hypochromic too, but not always: size is the main cue.
            cell.profile = Thickness::Pallor {
                depth: rng.range(0.4, 0.7) as f32,
                width: rng.range(0.36, 0.48) as f32,
            };
        }
        rbc::SPHEROCYTE => {
            // Smooth, domed, no pallor at all.
            cell.profile = Thickness::Solid;
            cell.density = rng.range(1.3, 1.75) as f32;
            cell.harm = [(rng.range(0.0, 0.012) as f32, 0.0), (0.0, 0.0), (0.0, 0.0)];
        }
        rbc::HYPERCHROMIC => {
            // Dense, but a small pale centre and an ordinary outline remain.
            cell.profile = Thickness::Pallor {
                depth: rng.range(0.12, 0.28) as f32,
                width: rng.range(0.25, 0.35) as f32,
            };
            cell.density = rng.range(1.3, 1.75) as f32;
        }
        rbc::HYPOCHROMIC => {
            // The large pale centre is the cue; overall density overlaps normal cells.
            cell.profile = Thickness::Hypochromic;
            cell.density = rng.range(0.8, 1.05) as f32;
        }
        rbc::TARGET_CELL => {
            cell.profile = Thickness::Target;
            cell.density = rng.range(1.0, 1.25) as f32;
        }
        rbc::STOMATOCYTE => {
            cell.profile = Thickness::Slit {
                curve: rng.range(-0.5, 0.5) as f32,
            };
            cell.density = rng.range(0.95, 1.2) as f32;
        }
        rbc::ELLIPTOCYTE => {
            // Same area as a round cell of radius r, axis ratio 1.5–2.4.
            let ratio = rng.range(1.5, 2.4) as f32;
            let k = ratio.sqrt();
            cell.outline = Outline::Ellipse { a: r * k, b: r / k };
            cell.profile = Thickness::Pallor {
                depth: rng.range(0.2, 0.45) as f32,
                width: 0.4,
            };
        }
        rbc::TEARDROP => {
            cell.outline = Outline::Tear {
                r,
                tail: rng.range(0.6, 1.3) as f32,
            };
            cell.profile = Thickness::Pallor {
                depth: rng.range(0.3, 0.5) as f32,
                width: 0.35,
            };
        }
        rbc::SCHISTOCYTE => {
            cell.outline = Outline::Fragment {
                r,
                cut: rng.range(-0.05, 0.35) as f32,
            };
            cell.harm = [
                (rng.range(0.12, 0.25) as f32, rng.range(0.0, tau) as f32),
                (rng.range(0.08, 0.18) as f32, rng.range(0.0, tau) as f32),
                (rng.range(0.0, 0.06) as f32, rng.range(0.0, tau) as f32),
            ];
            cell.profile = Thickness::Solid;
            cell.density = rng.range(1.05, 1.4) as f32;
        }
        rbc::BASOPHILIC_STIPPLING => {
            let n = 6 + rng.below(11);
            for _ in 0..n {
                let rho = r * 0.8 * rng.uniform().sqrt() as f32;
                let t = rng.range(0.0, tau) as f32;
                let dr = rng.range(0.5, 1.0) as f32 * s;
                cell.dots.push((rho * t.cos(), rho * t.sin(), dr));
            }
        }
        _ => {}
    }
    cell
}

/// One placed, labelled object: its cells and its class.
struct Placed {
    cells: Vec<Cell>,
    class: ClassId,
    bbox: BBox,
}

struct Canvas {
    w: usize,
    h: usize,
    /// Optical density per pixel and channel.
    od: Vec<f32>,
}

impl Canvas {
    fn add_cell(&mut self, c: &Cell, stain: &Stain) {
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

    fn add_platelet(
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

/// Realistic profile: per-image hue and saturation shift of the cells' stain and of the
/// background (smears stained on different days, by different hands).
fn realistic_stain(rng: &mut SplitMix64, stain: &mut Stain) {
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
struct Illumination {
    vignette: f32,
    centre: (f32, f32),
    gradient: (f32, f32),
}

impl Illumination {
    fn draw(rng: &mut SplitMix64) -> Self {
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
    fn light(&self, nx: f32, ny: f32) -> f32 {
        let (dx, dy) = (nx - self.centre.0, ny - self.centre.1);
        let v = 1.0 - self.vignette * 2.0 * (dx * dx + dy * dy);
        let g = 1.0 + self.gradient.0 * nx + self.gradient.1 * ny;
        (v * g).max(0.05)
    }
}

/// A rendered synthetic image with its objects (class ids of [`LabelSet::rbc14`]).
#[derive(Clone, Debug)]
pub struct SyntheticImage {
    pub image: RgbImage,
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

/// The per-image seed of image `index` of a dataset generated with `seed`.
pub fn image_seed(seed: u64, index: usize) -> u64 {
    let mut r = SplitMix64::new(seed ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    r.next_u64()
}

/// What [`write_dataset`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct SyntheticSummary {
    pub images: usize,
    /// Objects per class, in [`RBC14_CLASSES`] order.
    pub objects_per_class: Vec<(String, usize)>,
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

/// The `(train, val, test)` sizes for `n` images.
pub fn split_sizes(n: usize, val_fraction: f32, test_fraction: f32) -> (usize, usize, usize) {
    let mut val = (n as f32 * val_fraction).round() as usize;
    let mut test = (n as f32 * test_fraction).round() as usize;
    if n >= 3 {
        val = val.max(1);
        test = test.max(1);
    }
    while val + test > n {
        if test >= val && test > 0 {
            test -= 1;
        } else {
            val -= 1;
        }
    }
    (n - val - test, val, test)
}

/// Render `n` images (in parallel) and write them as a Pascal VOC dataset in `out`:
/// `JPEGImages/synth_NNNNN.{jpg,png}`, `Annotations/*.xml`, `ImageSets/Main/{train,val,
/// test,trainval}.txt` (consecutive ids: the first images train, then val, then test),
/// `classes.txt` (the 14 names, one per line, id order) and `synthetic.json` (config,
/// seed, counts). Deterministic in `(n, seed, cfg)`.
pub fn write_dataset(
    out: &Path,
    n: usize,
    seed: u64,
    cfg: &SyntheticConfig,
) -> Result<SyntheticSummary> {
    if n == 0 {
        return Err(VocError::InvalidArgument {
            name: "images",
            reason: "need at least one image".into(),
        });
    }
    cfg.validate()?;
    for d in ["Annotations", "JPEGImages"] {
        let p = out.join(d);
        std::fs::create_dir_all(&p).map_err(|e| VocError::io(&p, e))?;
    }
    let labels = LabelSet::rbc14();
    let ext = match cfg.format {
        ImageFormat::Jpeg => "jpg",
        ImageFormat::Png => "png",
    };
    let counts: Vec<Result<Vec<usize>>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let id = format!("synth_{i:05}");
            let s = render_image(cfg, image_seed(seed, i))?;
            let img_path = out.join("JPEGImages").join(format!("{id}.{ext}"));
            save(&s.image, &img_path, cfg.format)?;
            let sample = Sample {
                id: id.clone(),
                image_path: img_path,
                width: cfg.width,
                height: cfg.height,
                objects: s.objects,
            };
            let ann = sample.to_voc(&labels)?;
            ann.write(&out.join("Annotations").join(format!("{id}.xml")))?;
            let mut c = vec![0usize; labels.len()];
            for o in &sample.objects {
                c[o.class.index()] += 1;
            }
            Ok(c)
        })
        .collect();
    let mut per_class = vec![0usize; labels.len()];
    for c in counts {
        for (t, v) in per_class.iter_mut().zip(c?) {
            *t += v;
        }
    }
    let ids: Vec<String> = (0..n).map(|i| format!("synth_{i:05}")).collect();
    let (tr, va, te) = split_sizes(n, cfg.val_fraction, cfg.test_fraction);
    write_split(out, "train", &ids[..tr])?;
    write_split(out, "val", &ids[tr..tr + va])?;
    write_split(out, "test", &ids[tr + va..])?;
    write_split(out, "trainval", &ids[..tr + va])?;
    let classes = out.join("classes.txt");
    std::fs::write(&classes, RBC14_CLASSES.join("\n") + "\n")
        .map_err(|e| VocError::io(&classes, e))?;
    let summary = SyntheticSummary {
        images: n,
        objects_per_class: RBC14_CLASSES
            .iter()
            .zip(&per_class)
            .map(|(n, c)| (n.to_string(), *c))
            .collect(),
        train: tr,
        val: va,
        test: te,
    };
    let meta = serde_json::json!({
        "generator": "arfpn-voc synthetic",
        "seed": seed,
        "config": cfg,
        "summary": summary,
    });
    let meta_path = out.join("synthetic.json");
    let text = serde_json::to_string_pretty(&meta).map_err(|e| VocError::InvalidArgument {
        name: "config",
        reason: e.to_string(),
    })?;
    std::fs::write(&meta_path, text).map_err(|e| VocError::io(&meta_path, e))?;
    Ok(summary)
}

fn save(img: &RgbImage, path: &Path, format: ImageFormat) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| VocError::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    let res = match format {
        ImageFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, 95).encode_image(img)
        }
        ImageFormat::Png => img.write_to(&mut w, image::ImageFormat::Png),
    };
    res.map_err(|e| VocError::UnreadableImage {
        image: path.to_path_buf(),
        message: format!("cannot encode: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SyntheticConfig {
        SyntheticConfig {
            width: 192,
            height: 144,
            min_per_class: 1,
            ..Default::default()
        }
    }

    #[test]
    fn huge_or_tiny_sizes_are_rejected_at_once() {
        let t0 = std::time::Instant::now();
        for (w, h, field) in [
            (100_000, 100_000, "width"),
            (63, 500, "width"),
            (500, 20_000, "height"),
            (8192, 8192, "width/height"),
        ] {
            let cfg = SyntheticConfig {
                width: w,
                height: h,
                ..Default::default()
            };
            match cfg.validate() {
                Err(VocError::InvalidArgument { name, .. }) => assert_eq!(name, field, "{w}x{h}"),
                other => panic!("{w}x{h}: {other:?}"),
            }
            assert!(render_image(&cfg, 0).is_err());
            let dir = std::env::temp_dir().join(format!("arfpn_synth_huge_{}", std::process::id()));
            assert!(write_dataset(&dir, 1, 0, &cfg).is_err());
            assert!(!dir.exists(), "nothing is written for an invalid config");
        }
        assert!(t0.elapsed().as_secs() < 5);
        let ok = SyntheticConfig {
            width: 4096,
            height: 4096,
            ..Default::default()
        };
        ok.validate().unwrap();
        let bad_frac = SyntheticConfig {
            val_fraction: 0.7,
            test_fraction: 0.7,
            ..Default::default()
        };
        assert!(bad_frac.validate().is_err());
    }

    #[test]
    fn every_class_is_drawn_with_valid_boxes() {
        for seed in 0..3 {
            let s = render_image(&small(), seed).unwrap();
            let (w, h) = (192.0, 144.0);
            let mut seen = [0usize; 14];
            for o in &s.objects {
                seen[o.class.index()] += 1;
                let b = o.bbox;
                assert!(
                    b.is_valid() && b.x1 >= 0.0 && b.y1 >= 0.0 && b.x2 <= w && b.y2 <= h,
                    "{b:?}"
                );
                for v in b.to_array() {
                    assert_eq!(v.fract(), 0.0, "boxes are whole pixels: {b:?}");
                }
                let on_border = b.x1 == 0.0 || b.y1 == 0.0 || b.x2 == w || b.y2 == h;
                assert_eq!(on_border, o.class == rbc::EDGE, "{o:?}");
                assert_eq!(o.truncated, o.class == rbc::EDGE);
                let side = b.width().max(b.height());
                match o.class {
                    rbc::MICROCYTE => assert!(side <= 18.0, "microcyte {b:?}"),
                    rbc::MACROCYTE => assert!(b.width().min(b.height()) >= 25.0, "macrocyte {b:?}"),
                    rbc::NORMAL => assert!((19.0..=25.0).contains(&side), "normal {b:?}"),
                    rbc::ELLIPTOCYTE => {
                        let (lo, hi) = (b.width().min(b.height()), side);
                        assert!(hi >= 12.0 && lo >= 6.0, "elliptocyte {b:?}");
                    }
                    _ => {}
                }
            }
            for (c, n) in seen.iter().enumerate() {
                assert!(*n >= 1, "seed {seed}: class {} missing", RBC14_CLASSES[c]);
            }
            assert!(s.objects.len() > 40, "dense: {} objects", s.objects.len());
        }
    }

    #[test]
    fn deterministic_per_seed() {
        let a = render_image(&small(), 5).unwrap();
        let b = render_image(&small(), 5).unwrap();
        let c = render_image(&small(), 6).unwrap();
        assert_eq!(a.image, b.image);
        assert_eq!(a.objects, b.objects);
        assert_ne!(a.image, c.image);
        assert_ne!(image_seed(1, 0), image_seed(1, 1));
        assert_ne!(image_seed(1, 0), image_seed(2, 0));
    }

    #[test]
    fn pixels_look_like_a_stained_smear() {
        let s = render_image(&small(), 1).unwrap();
        // Background pale, cells reddish: red channel dominates, image not flat.
        let (mut r, mut g, mut b) = (0u64, 0u64, 0u64);
        for p in s.image.pixels() {
            r += p.0[0] as u64;
            g += p.0[1] as u64;
            b += p.0[2] as u64;
        }
        let n = (192 * 144) as u64;
        assert!(
            r / n > 180 && r > g && g > 0 && b > 0,
            "{} {} {}",
            r / n,
            g / n,
            b / n
        );
        // Inside a normal cell the green channel is darker than on the background.
        let cell = s
            .objects
            .iter()
            .find(|o| o.class == rbc::HYPERCHROMIC)
            .unwrap();
        let (cx, cy) = cell.bbox.center();
        let inside = s.image.get_pixel(cx as u32, cy as u32).0[1];
        assert!(inside < 150, "hyperchromic centre green {inside}");
    }

    /// FNV-1a 64 over the pixels and the object list (box corners as f32 bits, class,
    /// truncated flag).
    fn render_hash(s: &SyntheticImage) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut eat = |b: u8| {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        };
        for &b in s.image.as_raw() {
            eat(b);
        }
        for o in &s.objects {
            for v in o.bbox.to_array() {
                for b in v.to_bits().to_le_bytes() {
                    eat(b);
                }
            }
            for b in (o.class.index() as u32).to_le_bytes() {
                eat(b);
            }
            eat(u8::from(o.truncated));
        }
        h
    }

    /// The default profile's output is pinned: the quickstart's reported figures depend on
    /// it. A change here must be deliberate (and the README's figures re-measured).
    #[test]
    fn default_profile_output_is_pinned() {
        let s = render_image(&SyntheticConfig::default(), 0).unwrap();
        assert_eq!(
            s.objects.len(),
            PIN_FULL_OBJECTS,
            "objects of the 500x375 seed-0 render"
        );
        assert_eq!(s.image.get_pixel(250, 187).0, PIN_FULL_PIXEL);
        assert_eq!(render_hash(&s), PIN_FULL_HASH, "500x375 seed 0");
        let s = render_image(&small(), 3).unwrap();
        assert_eq!(render_hash(&s), PIN_SMALL_HASH, "192x144 seed 3");
    }
    const PIN_FULL_OBJECTS: usize = 317;
    const PIN_FULL_PIXEL: [u8; 3] = [240, 197, 204];
    const PIN_FULL_HASH: u64 = 0xe6e8_3f41_68d6_6527;
    const PIN_SMALL_HASH: u64 = 0x9929_06c1_cc8c_415f;

    /// `(min, max)` of the longest box side of microcytes, normal cells and macrocytes over
    /// `n` renders.
    fn size_ranges(cfg: &SyntheticConfig, n: u64) -> [(f32, f32); 3] {
        let mut out = [(f32::MAX, f32::MIN); 3];
        for seed in 0..n {
            for o in render_image(cfg, 100 + seed).unwrap().objects {
                let k = match o.class {
                    rbc::MICROCYTE => 0,
                    rbc::NORMAL => 1,
                    rbc::MACROCYTE => 2,
                    _ => continue,
                };
                let side = o.bbox.width().max(o.bbox.height());
                out[k] = (out[k].0.min(side), out[k].1.max(side));
            }
        }
        out
    }

    #[test]
    fn realistic_sizes_overlap_between_micro_normal_macro() {
        let [mi, no, ma] = size_ranges(&SyntheticConfig::default(), 3);
        assert!(mi.1 < no.0 && no.1 < ma.0, "default: {mi:?} {no:?} {ma:?}");
        let [mi, no, ma] = size_ranges(&SyntheticConfig::realistic(), 3);
        assert!(mi.1 > no.0, "realistic microcyte/normal: {mi:?} {no:?}");
        assert!(no.1 > ma.0, "realistic normal/macrocyte: {no:?} {ma:?}");
        assert!(
            mi.0 < no.0 && no.1 < ma.1,
            "means still ordered: {mi:?} {no:?} {ma:?}"
        );
    }

    #[test]
    fn realistic_is_deterministic_and_differs_from_default() {
        let cfg = SyntheticConfig {
            width: 192,
            height: 144,
            min_per_class: 1,
            ..SyntheticConfig::realistic()
        };
        let a = render_image(&cfg, 5).unwrap();
        let b = render_image(&cfg, 5).unwrap();
        assert_eq!(a.image, b.image);
        assert_eq!(a.objects, b.objects);
        assert_ne!(a.image, render_image(&cfg, 6).unwrap().image);
        assert_ne!(a.image, render_image(&small(), 5).unwrap().image);
        let mut seen = [0usize; 14];
        for o in &a.objects {
            seen[o.class.index()] += 1;
            assert!(o.bbox.is_valid(), "{o:?}");
        }
        assert!(seen.iter().all(|&n| n >= 1), "every class drawn: {seen:?}");
    }

    /// Median of the longest box side of the non-`edge` objects.
    fn median_side(s: &SyntheticImage) -> f32 {
        let mut v: Vec<f32> = s
            .objects
            .iter()
            .filter(|o| o.class != rbc::EDGE && o.class != rbc::OVERLAP)
            .map(|o| o.bbox.width().max(o.bbox.height()))
            .collect();
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    }

    #[test]
    fn cell_scale_scales_the_boxes() {
        for base in [SyntheticConfig::default(), SyntheticConfig::realistic()] {
            let one = median_side(&render_image(&base, 2).unwrap());
            let cfg = SyntheticConfig {
                cell_scale: 2.0,
                ..base.clone()
            };
            let s = render_image(&cfg, 2).unwrap();
            let two = median_side(&s);
            let ratio = two / one;
            assert!(
                (1.8..=2.2).contains(&ratio),
                "{:?}: {one} -> {two}",
                base.profile
            );
            assert!(s.objects.len() > 30, "still dense: {}", s.objects.len());
        }
        // BCCD-like: ~95 px cells, about a dozen per 500x375 image.
        let bccd = SyntheticConfig {
            cell_scale: 4.5,
            ..SyntheticConfig::realistic()
        };
        let s = render_image(&bccd, 0).unwrap();
        let m = median_side(&s);
        assert!((75.0..=115.0).contains(&m), "median side {m}");
        assert!(
            (5..=40).contains(&s.objects.len()),
            "{} objects",
            s.objects.len()
        );
    }

    #[test]
    fn bad_cell_scale_and_profile_are_rejected() {
        for profile in [SmearProfile::Default, SmearProfile::Realistic] {
            for (scale, w, h) in [
                (0.0, 500, 375),
                (-1.0, 500, 375),
                (0.49, 500, 375),
                (8.5, 4096, 4096),
                (f32::NAN, 500, 375),
                (f32::INFINITY, 500, 375),
                // Valid scale, but the image cannot hold three such cells.
                (6.5, 500, 375),
                (2.0, 192, 100),
            ] {
                let cfg = SyntheticConfig {
                    profile,
                    cell_scale: scale,
                    width: w,
                    height: h,
                    ..SyntheticConfig::default()
                };
                match cfg.validate() {
                    Err(VocError::InvalidArgument { name, reason }) => {
                        assert_eq!(name, "cell_scale", "{scale} {w}x{h}: {reason}")
                    }
                    other => panic!("{profile:?} {scale} {w}x{h}: {other:?}"),
                }
                assert!(render_image(&cfg, 0).is_err());
            }
            for scale in [0.5, 1.0, 4.5] {
                let cfg = SyntheticConfig {
                    profile,
                    cell_scale: scale,
                    ..SyntheticConfig::default()
                };
                cfg.validate().unwrap();
            }
        }
        assert_eq!(
            "realistic".parse::<SmearProfile>().unwrap(),
            SmearProfile::Realistic
        );
        assert_eq!(
            "default".parse::<SmearProfile>().unwrap(),
            SmearProfile::Default
        );
        match "fancy".parse::<SmearProfile>() {
            Err(VocError::InvalidArgument { name, .. }) => assert_eq!(name, "profile"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn config_json_old_and_new() {
        // JSON written before the profile existed still parses, as the default profile.
        let mut v = serde_json::to_value(SyntheticConfig::default()).unwrap();
        let obj = v.as_object_mut().unwrap();
        obj.remove("profile");
        obj.remove("cell_scale");
        let old: SyntheticConfig = serde_json::from_value(v).unwrap();
        assert_eq!(old, SyntheticConfig::default());
        let r = SyntheticConfig {
            cell_scale: 4.5,
            ..SyntheticConfig::realistic()
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"profile\":\"realistic\""), "{text}");
        assert_eq!(serde_json::from_str::<SyntheticConfig>(&text).unwrap(), r);
        let bad = text.replace("\"realistic\"", "\"fancy\"");
        assert!(serde_json::from_str::<SyntheticConfig>(&bad).is_err());
    }

    #[test]
    fn split_sizes_cover_all_images() {
        assert_eq!(split_sizes(24, 0.15, 0.15), (16, 4, 4));
        assert_eq!(split_sizes(3, 0.15, 0.15), (1, 1, 1));
        assert_eq!(split_sizes(1, 0.15, 0.15), (1, 0, 0));
        assert_eq!(split_sizes(2, 0.5, 0.5), (0, 1, 1));
        for n in 1..50 {
            let (a, b, c) = split_sizes(n, 0.2, 0.1);
            assert_eq!(a + b + c, n);
        }
    }

    #[test]
    fn rejects_bad_config() {
        let mut c = small();
        c.width = 10;
        assert!(render_image(&c, 0).is_err());
        let mut c = small();
        c.fill = 0.0;
        assert!(render_image(&c, 0).is_err());
    }
}
