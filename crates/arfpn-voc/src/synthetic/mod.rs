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
//! Everything is a function of the seed (a [`SplitMix64`](arfpn_boxes::SplitMix64) per image): the same seed gives
//! the same pixels and boxes on every machine and thread count.
//!
//! # Layout
//! `config.rs` (the public configuration), `cells.rs` (a cell's outline and thickness
//! model, the class draw), `profile.rs` (each profile's per-class cell draws), `stain.rs`
//! (stain colours and illumination), `canvas.rs` (Beer–Lambert accumulation), `render.rs`
//! (placing and rendering one smear), `writer.rs` (a VOC dataset on disk).

mod canvas;
mod cells;
mod config;
mod profile;
mod render;
mod stain;
#[cfg(test)]
mod tests;
mod writer;

pub use config::{
    ImageFormat, SmearProfile, SyntheticConfig, MAX_CELL_SCALE, MAX_PIXELS, MAX_SIDE,
    MIN_CELL_SCALE, MIN_SIDE, MIN_SIDE_IN_CELLS, NORMAL_DIAMETER_PX,
};
pub use render::{render_image, SyntheticImage};
pub use writer::{image_seed, split_sizes, write_dataset, SyntheticSummary};
