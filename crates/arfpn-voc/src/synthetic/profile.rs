//! The two smear profiles' cell draws: a morphology class becomes a [`Cell`] with sizes,
//! pallor, density and texture drawn from the profile's per-class distributions.

use std::f32::consts::PI;

use arfpn_boxes::{ClassId, SplitMix64};

use super::cells::{Cell, Outline, Thickness};
use super::config::{SmearProfile, NORMAL_DIAMETER_PX};
use crate::labels::rbc;

/// A cell of morphology `class` centred at `(cx, cy)` in the given profile, sizes times
/// `scale`.
pub(super) fn make_cell(
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
