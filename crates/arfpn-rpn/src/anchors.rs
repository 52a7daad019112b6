//! Anchor boxes: per-level sizes × aspect ratios, tiled over each feature map.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arfpn_boxes::BBox;
use arfpn_nn::FeatureMap;
use serde::{Deserialize, Serialize};

use crate::{Result, RpnError};

/// A setting given either once for all pyramid levels or once per level.
///
/// In JSON a flat list (`[0.5, 1.0, 2.0]`) is [`Levels::All`] and a list of lists
/// (`[[16.0], [32.0]]`) is [`Levels::Each`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Levels<T> {
    /// The same value at every level.
    All(T),
    /// One value per level, fine to coarse.
    Each(Vec<T>),
}

impl<T: Clone> Levels<T> {
    /// The value for each of `levels` levels, or a [`RpnError::LevelCount`] naming `field`.
    pub fn resolve(&self, field: &'static str, names: &[String]) -> Result<Vec<T>> {
        match self {
            Levels::All(v) => Ok(vec![v.clone(); names.len()]),
            Levels::Each(v) if v.len() == names.len() => Ok(v.clone()),
            Levels::Each(v) => Err(RpnError::LevelCount {
                field,
                settings: v.len(),
                levels: names.len(),
                names: names.join(", "),
            }),
        }
    }
}

/// What anchors to make. Sizes are the square root of the anchor area in input pixels;
/// an aspect ratio is `height / width` (torchvision's convention), so a size `s` and
/// ratio `r` give `w = s / sqrt(r)`, `h = s * sqrt(r)`.
///
/// # Defaults for red blood cells
/// [`AnchorConfig::default`] is [`rbc_dense`](Self::rbc_dense): the "anchor intensive"
/// setting for FPN levels P2–P6 (strides 4–64). RBCs are roughly round, 8–40 px across
/// (≈ 21 px in the paper's 375×500 crops) and packed ≈ 230 per crop. Torchvision's one size
/// per level (32 at P2) gives a 21 px cell a best IoU of 0.43 — below the 0.7 positive
/// threshold, so only low-quality matches would train the RPN. `rbc_dense` puts three
/// sizes per level, `8·2^l · {1, 2^(2/3), 2^(4/3)}` for level `l = 0..5` (8, 12.7, 20.2 at
/// P2; 16, 25.4, 40.3 at P3; … 128, 203, 323 at P6), with ratios 0.5, 1, 2 (elliptocytes
/// and teardrop cells are elongated). The levels overlap in size on purpose: an anchor's
/// IoU with an object also drops with the distance between their centres, which is up to
/// half a stride, so small cells are better served by large anchors on the fine stride-4
/// level than by the same size on a coarser level. Together the sizes are `8·2^(k/3)` for
/// `k = 0` and `k = 2..=14`, and 323: from 12.7 to 203 px every square object has a square
/// anchor within a factor 2^(1/6) in size (IoU ≥ 0.79 when centred on an anchor position),
/// from 8 to 12.7 px within 2^(1/3) (IoU ≥ 0.63).
///
/// Measured on 230 random 8–40 px cells in 480×640 (the `arfpn-rpn` bench prints it): the
/// share of cells that have an anchor with IoU ≥ 0.7 / 0.5 is 60 % / 99 % for
/// `rbc_dense`, 36 % / 99 % for sizes `8·2^l·{1, 2^(1/3), 2^(2/3)}` (no overlap between
/// levels, same anchor count), 34 % / 56 % for torchvision's `paper(32)` and 3 % / 26 %
/// for `paper(4)`. Cells without a 0.7 anchor are trained through the low-quality
/// matches (on in [`RpnConfig`](crate::RpnConfig)).
///
/// The paper (Song et al. 2021, Discussion) reports the best "anchor size" as 32 for
/// CS-ARFPN and 4 for S-ARFPN without defining it. In the TensorFlow FPN code of that time
/// the anchor size is the P2 base size, doubled per level (`BASE_ANCHOR_SIZE_LIST`); that
/// reading is [`paper`](Self::paper)`(32.0)` / `paper(4.0)`, for reproducing their ablation.
///
/// ```
/// use arfpn_rpn::{AnchorConfig, Levels};
/// let c = AnchorConfig::paper(32.0);
/// assert_eq!(c.sizes, Levels::Each(vec![vec![32.0], vec![64.0], vec![128.0], vec![256.0], vec![512.0]]));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnchorConfig {
    /// Anchor sizes (sqrt of area, pixels).
    pub sizes: Levels<Vec<f32>>,
    /// Aspect ratios `height / width`.
    pub aspect_ratios: Levels<Vec<f32>>,
    /// Anchor centres sit at `(x + offset) * stride`: `0.0` as torchvision and detectron2
    /// (the cell's top-left corner), `0.5` for the cell centre. In `[0, 1)`.
    pub offset: f32,
    /// Round each location's zero-centred anchors to whole pixels, as torchvision's
    /// `AnchorGenerator.generate_anchors` does (`base_anchors.round()`, halves to even):
    /// size 32, ratio 0.5 gives `[-23, -11, 23, 11]` instead of `[-22.63, -11.31, 22.63,
    /// 11.31]`. On in [`torchvision`](Self::torchvision) (so the `fpn-r*` presets reproduce
    /// torchvision's proposals), off in [`rbc_dense`](Self::rbc_dense) and
    /// [`paper`](Self::paper), which the paper's ablations and the `*-arfpn-*` and
    /// `cpu-small` presets use. Absent in JSON written before this setting existed, which
    /// reads as `false`.
    #[serde(default)]
    pub round_cell_anchors: bool,
}

impl Default for AnchorConfig {
    fn default() -> Self {
        Self::rbc_dense()
    }
}

impl AnchorConfig {
    /// Three overlapping sizes per level for P2–P6 (see the type docs), ratios 0.5/1/2,
    /// offset 0.
    pub fn rbc_dense() -> Self {
        let sizes = (0..5)
            .map(|l| {
                (0..3)
                    .map(|k| 8.0 * 2f32.powi(l) * 2f32.powf(2.0 * k as f32 / 3.0))
                    .collect()
            })
            .collect();
        Self {
            sizes: Levels::Each(sizes),
            aspect_ratios: Levels::All(vec![0.5, 1.0, 2.0]),
            offset: 0.0,
            round_cell_anchors: false,
        }
    }

    /// One size per level, `base · 2^l` for P2–P6, ratios 0.5/1/2, offset 0: the paper's
    /// "anchor size" read as the P2 base size (32 for CS-ARFPN, 4 for S-ARFPN).
    pub fn paper(base: f32) -> Self {
        Self {
            sizes: Levels::Each((0..5).map(|l| vec![base * 2f32.powi(l)]).collect()),
            aspect_ratios: Levels::All(vec![0.5, 1.0, 2.0]),
            offset: 0.0,
            round_cell_anchors: false,
        }
    }

    /// torchvision's FPN default: 32, 64, 128, 256, 512 with ratios 0.5/1/2, offset 0, cell
    /// anchors rounded to whole pixels (`paper(32.0)` with
    /// [`round_cell_anchors`](Self::round_cell_anchors)).
    pub fn torchvision() -> Self {
        Self {
            round_cell_anchors: true,
            ..Self::paper(32.0)
        }
    }
}

/// Makes the anchors of each level, caching them per feature-map size.
///
/// Order inside a level is torchvision's: row `y`, then column `x`, then the `A` anchors of
/// the location (aspect ratio outer, size inner), i.e. index `(y * W + x) * A + a` — the order
/// of the RPN head's flattened outputs. The zero-centred anchors are rounded to whole pixels
/// only with [`AnchorConfig::round_cell_anchors`] (torchvision always rounds them), and the
/// stride is the feature map's own, not `image_size // grid_size` (the same for inputs
/// padded to the backbone's multiple, as both pad them).
pub struct AnchorGenerator {
    names: Vec<String>,
    strides: Vec<usize>,
    /// Zero-centred anchors of one location, per level.
    cell_anchors: Vec<Vec<BBox>>,
    offset: f32,
    cache: Mutex<GridCache>,
}

/// Anchor grids by `(level, height, width)`.
type GridCache = HashMap<(usize, usize, usize), Arc<Vec<BBox>>>;

/// Cached grids beyond this count are dropped (multi-scale training makes many sizes).
const CACHE_LIMIT: usize = 64;

impl AnchorGenerator {
    /// A generator for levels with these names and strides (fine to coarse). Fails when a
    /// per-level setting has the wrong number of entries, or a size, ratio or offset is
    /// out of range.
    pub fn new(config: &AnchorConfig, names: &[String], strides: &[usize]) -> Result<Self> {
        if names.is_empty() || names.len() != strides.len() {
            return Err(RpnError::config(
                "levels",
                format!(
                    "need at least one level and one stride per name, got {} names and {} strides",
                    names.len(),
                    strides.len()
                ),
            ));
        }
        if let Some(l) = strides.iter().position(|&s| s == 0) {
            return Err(RpnError::config(
                "strides",
                format!("level `{}` has stride 0", names[l]),
            ));
        }
        if !(config.offset >= 0.0 && config.offset < 1.0) {
            return Err(RpnError::config(
                "anchors.offset",
                format!("must be in [0, 1), got {}", config.offset),
            ));
        }
        let sizes = config.sizes.resolve("anchors.sizes", names)?;
        let ratios = config
            .aspect_ratios
            .resolve("anchors.aspect_ratios", names)?;
        let mut cell_anchors = Vec::with_capacity(names.len());
        for (l, (sizes, ratios)) in sizes.iter().zip(&ratios).enumerate() {
            let bad = |v: &f32| !(v.is_finite() && *v > 0.0);
            if sizes.is_empty() || sizes.iter().any(bad) {
                return Err(RpnError::config(
                    "anchors.sizes",
                    format!("level `{}`: need finite sizes > 0, got {sizes:?}", names[l]),
                ));
            }
            if ratios.is_empty() || ratios.iter().any(bad) {
                return Err(RpnError::config(
                    "anchors.aspect_ratios",
                    format!(
                        "level `{}`: need finite ratios > 0, got {ratios:?}",
                        names[l]
                    ),
                ));
            }
            cell_anchors.push(if config.round_cell_anchors {
                torchvision_cell_anchors(sizes, ratios)
            } else {
                cell_anchors_of(sizes, ratios)
            });
        }
        Ok(Self {
            names: names.to_vec(),
            strides: strides.to_vec(),
            cell_anchors,
            offset: config.offset,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Number of levels.
    pub fn num_levels(&self) -> usize {
        self.strides.len()
    }

    /// Level names, fine to coarse.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Anchors per location at each level.
    pub fn num_anchors_per_location(&self) -> Vec<usize> {
        self.cell_anchors.iter().map(Vec::len).collect()
    }

    /// The zero-centred anchors of one location at `level`.
    pub fn cell_anchors(&self, level: usize) -> &[BBox] {
        &self.cell_anchors[level]
    }

    /// All anchors of `level` on a `height × width` grid, in `(y, x, a)` order (cached).
    pub fn grid_anchors(
        &self,
        level: usize,
        height: usize,
        width: usize,
    ) -> Result<Arc<Vec<BBox>>> {
        if level >= self.num_levels() {
            return Err(RpnError::input(
                "level",
                format!("{level} but the generator has {} levels", self.num_levels()),
            ));
        }
        let key = (level, height, width);
        if let Some(a) = self.lock_cache().get(&key) {
            return Ok(a.clone());
        }
        let stride = self.strides[level] as f32;
        let cell = &self.cell_anchors[level];
        let mut out = Vec::with_capacity(height * width * cell.len());
        for y in 0..height {
            let cy = (y as f32 + self.offset) * stride;
            for x in 0..width {
                let cx = (x as f32 + self.offset) * stride;
                out.extend(cell.iter().map(|b| b.translate(cx, cy)));
            }
        }
        let out = Arc::new(out);
        let mut cache = self.lock_cache();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, out.clone());
        Ok(out)
    }

    /// Anchors for each feature map (fine to coarse). The maps must be the levels this
    /// generator was built for: same count and strides.
    pub fn anchors_for(&self, features: &[FeatureMap]) -> Result<Vec<Arc<Vec<BBox>>>> {
        self.check_features(features)?;
        features
            .iter()
            .enumerate()
            .map(|(l, f)| {
                let (h, w) = f.spatial_size()?;
                self.grid_anchors(l, h, w)
            })
            .collect()
    }

    /// Checks that `features` are this generator's levels.
    pub fn check_features(&self, features: &[FeatureMap]) -> Result<()> {
        if features.len() != self.num_levels() {
            return Err(RpnError::input(
                "features",
                format!(
                    "{} feature maps but the anchor generator was built for {} levels ({})",
                    features.len(),
                    self.num_levels(),
                    self.names.join(", ")
                ),
            ));
        }
        for (l, f) in features.iter().enumerate() {
            if f.stride != self.strides[l] {
                return Err(RpnError::input(
                    "features",
                    format!(
                        "map {l} (`{}`) has stride {} but level `{}` was built with stride {}",
                        f.name, f.stride, self.names[l], self.strides[l]
                    ),
                ));
            }
        }
        Ok(())
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, GridCache> {
        // A poisoned cache only means another thread panicked mid-insert; the map is still valid.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Zero-centred anchors of one location: ratio outer, size inner, `w = s / sqrt(r)`,
/// `h = s * sqrt(r)`.
fn cell_anchors_of(sizes: &[f32], ratios: &[f32]) -> Vec<BBox> {
    let mut cell = Vec::with_capacity(sizes.len() * ratios.len());
    for &r in ratios {
        let h_ratio = r.sqrt();
        for &s in sizes {
            let w = s / h_ratio;
            let h = s * h_ratio;
            cell.push(BBox::new(-0.5 * w, -0.5 * h, 0.5 * w, 0.5 * h));
        }
    }
    cell
}

/// torchvision's `generate_anchors` in its own f32 operation order: `h_ratios = sqrt(r)`,
/// `w_ratios = 1 / h_ratios`, `ws = w_ratios * s`, `hs = h_ratios * s`, then
/// `round([-ws, -hs, ws, hs] / 2)` with halves to even (`torch.round`).
fn torchvision_cell_anchors(sizes: &[f32], ratios: &[f32]) -> Vec<BBox> {
    let mut cell = Vec::with_capacity(sizes.len() * ratios.len());
    for &r in ratios {
        let h_ratio = r.sqrt();
        let w_ratio = 1.0 / h_ratio;
        for &s in sizes {
            let (ws, hs) = (w_ratio * s, h_ratio * s);
            let half = |v: f32| (v / 2.0).round_ties_even();
            cell.push(BBox::new(-half(ws), -half(hs), half(ws), half(hs)));
        }
    }
    cell
}

impl std::fmt::Debug for AnchorGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorGenerator")
            .field("names", &self.names)
            .field("strides", &self.strides)
            .field("cell_anchors", &self.cell_anchors)
            .field("offset", &self.offset)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|l| format!("p{}", l + 2)).collect()
    }

    #[test]
    fn hand_computed_anchors() {
        let c = AnchorConfig {
            sizes: Levels::All(vec![8.0]),
            aspect_ratios: Levels::All(vec![1.0, 4.0]),
            offset: 0.0,
            round_cell_anchors: false,
        };
        let g = AnchorGenerator::new(&c, &names(1), &[4]).unwrap();
        // Ratio 4 (h/w): w = 8/2 = 4, h = 16.
        assert_eq!(
            g.cell_anchors(0),
            &[
                BBox::new(-4.0, -4.0, 4.0, 4.0),
                BBox::new(-2.0, -8.0, 2.0, 8.0)
            ]
        );
        let a = g.grid_anchors(0, 2, 3).unwrap();
        assert_eq!(a.len(), 2 * 3 * 2);
        // (y=0, x=1, a=0) at index 2; (y=1, x=2, a=1) at index 11.
        assert_eq!(a[2], BBox::new(0.0, -4.0, 8.0, 4.0));
        assert_eq!(a[11], BBox::new(6.0, -4.0, 10.0, 12.0));
        // Offset 0.5 moves centres to the cell centres.
        let c = AnchorConfig { offset: 0.5, ..c };
        let g = AnchorGenerator::new(&c, &names(1), &[4]).unwrap();
        assert_eq!(
            g.grid_anchors(0, 1, 1).unwrap()[0],
            BBox::new(-2.0, -2.0, 6.0, 6.0)
        );
    }

    #[test]
    fn paper_values_without_rounding() {
        // Size 32, ratio 0.5 -> w = 32/sqrt(.5) = 45.25, h = 22.63.
        let g = AnchorGenerator::new(&AnchorConfig::paper(32.0), &names(5), &[4, 8, 16, 32, 64])
            .unwrap();
        assert_eq!(g.num_anchors_per_location(), vec![3; 5]);
        let b = g.cell_anchors(0)[0];
        assert!((b.width() - 45.254834).abs() < 1e-4 && (b.height() - 22.627417).abs() < 1e-4);
        assert!((g.cell_anchors(4)[1].width() - 512.0).abs() < 1e-4);
    }

    #[test]
    fn torchvision_rounds_cell_anchors_halves_to_even() {
        let g = AnchorGenerator::new(&AnchorConfig::torchvision(), &names(5), &[4, 8, 16, 32, 64])
            .unwrap();
        // Hand-computed: size 32, ratios 0.5 / 1 / 2: half-sides 22.63 x 11.31 -> 23 x 11,
        // 16 x 16, 11.31 x 22.63 -> 11 x 23; size 64, ratio 0.5: 45.25 x 22.63 -> 45 x 23.
        assert_eq!(
            g.cell_anchors(0),
            &[
                BBox::new(-23.0, -11.0, 23.0, 11.0),
                BBox::new(-16.0, -16.0, 16.0, 16.0),
                BBox::new(-11.0, -23.0, 11.0, 23.0),
            ]
        );
        assert_eq!(g.cell_anchors(1)[0], BBox::new(-45.0, -23.0, 45.0, 23.0));
        // torch.round takes halves to even: size 5 -> half-side 2.5 -> 2, size 7 -> 3.5 -> 4.
        let c = AnchorConfig {
            sizes: Levels::All(vec![5.0, 7.0]),
            aspect_ratios: Levels::All(vec![1.0]),
            offset: 0.0,
            round_cell_anchors: true,
        };
        let g = AnchorGenerator::new(&c, &names(1), &[4]).unwrap();
        assert_eq!(
            g.cell_anchors(0),
            &[
                BBox::new(-2.0, -2.0, 2.0, 2.0),
                BBox::new(-4.0, -4.0, 4.0, 4.0)
            ]
        );
        // A configuration written before the setting existed reads as unrounded.
        let old = r#"{"sizes": [32.0], "aspect_ratios": [1.0], "offset": 0.0}"#;
        let c: AnchorConfig = serde_json::from_str(old).unwrap();
        assert!(!c.round_cell_anchors);
    }

    #[test]
    fn rbc_default_covers_small_cells() {
        let c = AnchorConfig::default();
        let g = AnchorGenerator::new(&c, &names(5), &[4, 8, 16, 32, 64]).unwrap();
        assert_eq!(g.num_anchors_per_location(), vec![9; 5]);
        // Square objects of 13..=203 px have a square anchor with IoU >= 0.79, 8..=12 >= 0.63.
        let squares: Vec<f32> = (0..5)
            .flat_map(|l| {
                g.cell_anchors(l)
                    .iter()
                    .filter(|b| (b.width() - b.height()).abs() < 1e-3)
            })
            .map(|b| b.width())
            .collect();
        assert_eq!(squares.len(), 15);
        assert!((squares[1] - 12.699).abs() < 1e-2 && (squares[2] - 20.159).abs() < 1e-2);
        for s in 8..=203 {
            let s = s as f32;
            let best = squares
                .iter()
                .map(|&a| (a.min(s) / a.max(s)).powi(2))
                .fold(0.0, f32::max);
            let want = if s < 12.7 { 0.63 } else { 0.79 };
            assert!(best >= want, "size {s}: best IoU {best}");
        }
    }

    #[test]
    fn level_count_mismatch_is_a_clear_error() {
        let e =
            AnchorGenerator::new(&AnchorConfig::default(), &names(4), &[4, 8, 16, 32]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("anchors.sizes")
                && msg.contains("5 per-level")
                && msg.contains("4 feature"),
            "{msg}"
        );
        let c = AnchorConfig {
            aspect_ratios: Levels::Each(vec![vec![1.0]; 2]),
            ..AnchorConfig::paper(8.0)
        };
        assert!(AnchorGenerator::new(&c, &names(5), &[4, 8, 16, 32, 64])
            .unwrap_err()
            .to_string()
            .contains("anchors.aspect_ratios"));
        let bad = AnchorConfig {
            sizes: Levels::All(vec![0.0]),
            ..AnchorConfig::paper(8.0)
        };
        assert!(AnchorGenerator::new(&bad, &names(1), &[4]).is_err());
        let bad = AnchorConfig {
            offset: 1.0,
            ..AnchorConfig::paper(8.0)
        };
        assert!(AnchorGenerator::new(&bad, &names(5), &[4, 8, 16, 32, 64]).is_err());
        assert!(
            AnchorGenerator::new(&AnchorConfig::paper(8.0), &names(5), &[4, 8, 0, 32, 64]).is_err()
        );
    }

    #[test]
    fn cache_returns_the_same_grid_and_serde_round_trips() {
        let g = AnchorGenerator::new(&AnchorConfig::paper(4.0), &names(5), &[4, 8, 16, 32, 64])
            .unwrap();
        let a = g.grid_anchors(1, 5, 7).unwrap();
        let b = g.grid_anchors(1, 5, 7).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(g.grid_anchors(5, 1, 1).is_err());
        let c = AnchorConfig::default();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<AnchorConfig>(&json).unwrap(), c);
        let shared: AnchorConfig =
            serde_json::from_str(r#"{"sizes":[16.0,32.0],"aspect_ratios":[1.0],"offset":0.5}"#)
                .unwrap();
        assert_eq!(shared.sizes, Levels::All(vec![16.0, 32.0]));
    }
}
