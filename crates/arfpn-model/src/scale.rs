//! Magnification: the cell size a detector was trained at, and what to do with an image whose
//! cells look larger or smaller ([`DataInfo::rescale_decision`]). Detection at a rescaled
//! size is `arfpn_lab::detect_at_scale`.
//!
//! Microscopes and cameras differ (BCCD's red cells are ≈ 105 px across, other 1000× sets'
//! ≈ 39 px), and a detector only works near the scale it was trained at. The checkpoint
//! records the training data's typical cell size from its annotations ([`DataInfo`]);
//! `detect` rescales each image to it, from a given size, a given µm per pixel, or a
//! confident single-image estimate ([`estimate_cell_size_with_confidence`](crate::estimate_cell_size_with_confidence)).

use arfpn_boxes::GroundTruth;
use arfpn_voc::RgbImage;
use serde::{Deserialize, Serialize};

use crate::cell_size::estimate_cell_size;
use crate::CellSizeEstimate;

/// What the detector knows about its training data's scale (stored in the checkpoint).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataInfo {
    /// Median `sqrt(width · height)` of the training boxes, in pixels.
    pub cell_size_px: Option<f32>,
    /// Micrometres per pixel of the training images, when the dataset states it.
    pub um_per_px: Option<f32>,
    /// Median of [`estimate_cell_size`] over (a sample of) the training images: the
    /// estimator's own reading of the training data, kept for reference (decisions compare
    /// an image's estimate with the annotated [`cell_size_px`](Self::cell_size_px), which
    /// the estimator is calibrated to).
    pub estimated_cell_px: Option<f32>,
}

/// Images whose estimated cell size is within this factor of the training size are not
/// rescaled.
pub const RESCALE_TOLERANCE: f32 = 1.25;

/// What to do with one image's scale ([`DataInfo::rescale_decision`]).
#[derive(Clone, Debug, PartialEq)]
pub enum RescaleDecision {
    /// Keep the image as it is, and why.
    Keep {
        /// Why (no training size, no or an unconfident estimate, or the sizes match).
        reason: String,
    },
    /// The cells differ from training by more than [`RESCALE_TOLERANCE`] according to a
    /// confident estimate: resize the image by `factor` (training size / estimate).
    Rescale {
        /// Training cell size / estimated cell size.
        factor: f32,
        /// The sizes compared.
        reason: String,
    },
}

impl DataInfo {
    /// The factor to resize an image by so that its cells match the training scale, given an
    /// estimate of its cell size (pixels): the annotated training size
    /// ([`cell_size_px`](Self::cell_size_px)) over the estimate. `None` when the training
    /// size is unknown or the estimate is not a positive number.
    ///
    /// ```
    /// let info = arfpn_model::DataInfo { cell_size_px: Some(100.0), ..Default::default() };
    /// assert_eq!(info.rescale_for_estimate(50.0), Some(2.0));
    /// ```
    pub fn rescale_for_estimate(&self, estimate: f32) -> Option<f32> {
        if !(estimate.is_finite() && estimate > 0.0) {
            return None;
        }
        Some(self.cell_size_px? / estimate)
    }

    /// Whether to rescale an image given its estimate: only for a
    /// [confident](CellSizeEstimate::confident) estimate that differs from the training size
    /// by more than [`RESCALE_TOLERANCE`]; otherwise [`RescaleDecision::Keep`] says why.
    ///
    /// ```
    /// use arfpn_model::{CellSizeEstimate, DataInfo, RescaleDecision};
    /// let info = DataInfo { cell_size_px: Some(100.0), ..Default::default() };
    /// let sure = |size_px| Some(CellSizeEstimate { size_px, confidence: 1.5 });
    /// assert!(matches!(info.rescale_decision(sure(110.0)), RescaleDecision::Keep { .. }));
    /// assert_eq!(
    ///     info.rescale_decision(sure(40.0)),
    ///     RescaleDecision::Rescale { factor: 2.5, reason: "estimated cell size 40 px (confidence 1.50), trained at 100 px: 2.50×".into() }
    /// );
    /// let unsure = Some(CellSizeEstimate { size_px: 40.0, confidence: 0.6 });
    /// assert!(matches!(info.rescale_decision(unsure), RescaleDecision::Keep { .. }));
    /// ```
    pub fn rescale_decision(&self, estimate: Option<CellSizeEstimate>) -> RescaleDecision {
        let keep = |reason: String| RescaleDecision::Keep { reason };
        let Some(train) = self.cell_size_px else {
            return keep("the checkpoint records no training cell size: no rescaling".into());
        };
        let Some(e) = estimate else {
            return keep("no cell size could be estimated: no rescaling".into());
        };
        let Some(factor) = self.rescale_for_estimate(e.size_px) else {
            return keep("no cell size could be estimated: no rescaling".into());
        };
        let sizes = format!(
            "estimated cell size {:.0} px (confidence {:.2}), trained at {train:.0} px",
            e.size_px, e.confidence
        );
        if !e.confident() {
            return keep(format!(
                "{sizes}: the estimate is not confident, no rescaling"
            ));
        }
        if (1.0 / RESCALE_TOLERANCE..=RESCALE_TOLERANCE).contains(&factor) {
            return keep(format!("{sizes}: no rescaling"));
        }
        RescaleDecision::Rescale {
            factor,
            reason: format!("{sizes}: {factor:.2}×"),
        }
    }
}

/// The median of [`estimate_cell_size`] over `images` (images without an estimate are
/// passed over); `None` when no image gives one.
pub fn median_cell_estimate<'a>(images: impl IntoIterator<Item = &'a RgbImage>) -> Option<f32> {
    let mut v: Vec<f32> = images.into_iter().filter_map(estimate_cell_size).collect();
    median(&mut v)
}

/// Median `sqrt(width · height)` of the boxes (`None` without boxes).
///
/// ```
/// use arfpn_boxes::{BBox, ClassId, GroundTruth};
/// let g = GroundTruth::new(
///     vec![BBox::new(0.0, 0.0, 10.0, 10.0), BBox::new(0.0, 0.0, 20.0, 20.0), BBox::new(0.0, 0.0, 30.0, 30.0)],
///     vec![ClassId::new(0); 3],
/// ).unwrap();
/// assert_eq!(arfpn_model::typical_cell_size([&g]), Some(20.0));
/// ```
pub fn typical_cell_size<'a>(truth: impl IntoIterator<Item = &'a GroundTruth>) -> Option<f32> {
    let mut sizes: Vec<f32> = truth
        .into_iter()
        .flat_map(|g| g.boxes.iter())
        .map(|b| (b.width() * b.height()).max(0.0).sqrt())
        .filter(|s| s.is_finite() && *s > 0.0)
        .collect();
    median(&mut sizes)
}

fn median(v: &mut [f32]) -> Option<f32> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    Some(v[v.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate_cell_size_with_confidence;
    use arfpn_voc::synthetic::{render_image, SmearProfile, SyntheticConfig};

    /// The median box side of the cells not cut by the image border.
    fn annotated(objects: &[arfpn_voc::Object], w: f32, h: f32) -> f32 {
        let mut v: Vec<f32> = objects
            .iter()
            .map(|o| o.bbox)
            .filter(|b| b.x1 > 2.0 && b.y1 > 2.0 && b.x2 < w - 2.0 && b.y2 < h - 2.0)
            .map(|b| (b.width() * b.height()).sqrt())
            .collect();
        median(&mut v).expect("cells")
    }

    /// Synthetic smears (the realistic profile) at known cell scales: every single-image
    /// estimate within 25 % of the annotated size, and confident.
    #[test]
    fn single_image_estimates_at_known_scales() {
        for (scale, (w, h), seeds) in [(1.0, (320, 240), 0..3u64), (2.0, (480, 360), 10..12)] {
            let cfg = SyntheticConfig {
                width: w,
                height: h,
                cell_scale: scale,
                profile: SmearProfile::Realistic,
                ..SyntheticConfig::default()
            };
            for seed in seeds {
                let s = render_image(&cfg, seed).expect("render");
                let truth = annotated(&s.objects, w as f32, h as f32);
                let e = estimate_cell_size_with_confidence(&s.image).expect("an estimate");
                let ratio = e.size_px / truth;
                assert!(
                    (0.75..=1.25).contains(&ratio) && e.confident(),
                    "scale {scale}, seed {seed}: {e:?} vs annotated {truth} px ({ratio:.2})"
                );
            }
        }
    }

    #[test]
    fn decisions_rescale_only_confident_mismatches() {
        let info = DataInfo {
            cell_size_px: Some(100.0),
            ..Default::default()
        };
        let est = |size_px, confidence| {
            Some(CellSizeEstimate {
                size_px,
                confidence,
            })
        };
        let keep = |d: RescaleDecision, needle: &str| match d {
            RescaleDecision::Keep { reason } => assert!(reason.contains(needle), "{reason}"),
            other => panic!("{other:?}"),
        };
        keep(info.rescale_decision(est(121.0, 2.0)), "no rescaling");
        keep(info.rescale_decision(est(81.0, 2.0)), "no rescaling");
        keep(info.rescale_decision(est(40.0, 0.9)), "not confident");
        keep(
            info.rescale_decision(None),
            "no cell size could be estimated",
        );
        keep(
            DataInfo::default().rescale_decision(est(40.0, 2.0)),
            "records no training cell size",
        );
        match info.rescale_decision(est(200.0, 1.0)) {
            RescaleDecision::Rescale { factor, .. } => assert_eq!(factor, 0.5),
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod bccd {
    use crate::{estimate_cell_size_with_confidence, DataInfo, RescaleDecision};

    /// BCCD (../shared/data/bccd-mini): a single in-distribution image gives no rescaling
    /// against the annotated training size, and the same image downscaled 2.5× is rescaled
    /// back by 2.5 within 25 %. Skips with a printed reason without the data.
    #[test]
    fn bccd_image_is_kept_and_its_downscaled_copy_rescaled_back() {
        let Some(root) = arfpn_testkit::shared_data("bccd-mini") else {
            return;
        };
        let opts = arfpn_voc::LoadOptions::lenient(arfpn_voc::Labels::Discover);
        let ds = arfpn_voc::VocDataset::open(&root, "train", &opts).expect("bccd-mini train");
        let truth: Vec<arfpn_boxes::GroundTruth> = (0..ds.len())
            .map(|i| {
                let s = &ds.samples()[i];
                arfpn_boxes::GroundTruth {
                    boxes: s.boxes(),
                    classes: s.classes(),
                }
            })
            .collect();
        let info = DataInfo {
            cell_size_px: crate::typical_cell_size(&truth),
            ..Default::default()
        };
        for i in 0..2 {
            let item = ds.load(i).expect("decodes");
            let e = estimate_cell_size_with_confidence(&item.image);
            eprintln!(
                "{}: {e:?}, trained at {:?}",
                item.sample.id, info.cell_size_px
            );
            assert!(
                matches!(info.rescale_decision(e), RescaleDecision::Keep { .. }),
                "{:?}",
                info.rescale_decision(e)
            );
            let (w, h) = (item.image.width(), item.image.height());
            let small = image::imageops::resize(
                &item.image,
                (w as f32 / 2.5).round() as u32,
                (h as f32 / 2.5).round() as u32,
                image::imageops::FilterType::Triangle,
            );
            match info.rescale_decision(estimate_cell_size_with_confidence(&small)) {
                RescaleDecision::Rescale { factor, .. } => assert!(
                    (2.5 / 1.25..=2.5 * 1.25).contains(&factor),
                    "{}: factor {factor}",
                    item.sample.id
                ),
                other => panic!("{}: {other:?}", item.sample.id),
            }
        }
    }
}
