//! The generator's public configuration: image format, smear profile, size limits and
//! [`SyntheticConfig`] with its validation.

use serde::{Deserialize, Serialize};

use crate::error::{Result, VocError};

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
    /// Image width in pixels, [`MIN_SIDE`]`..=`[`MAX_SIDE`], with `width * height` at most
    /// [`MAX_PIXELS`] (default 500).
    pub width: u32,
    /// Image height in pixels, same limits as `width` (default 375).
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
    /// Fraction of the images in the `test` split, in `[0, 1]`; `val_fraction +
    /// test_fraction` must not exceed 1.
    pub test_fraction: f32,
    /// File format of the written images.
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
