//! Per-split statistics of a loaded [`VocDataset`]: image and object counts per class,
//! image sizes, box sizes, and the problems found (used by the `dataset_stats` example).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::dataset::VocDataset;
use crate::error::{Action, VocError};

/// Summary statistics of one split.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SplitStats {
    /// The split's name (the `ImageSets/Main/<split>.txt` stem).
    pub split: String,
    /// Images listed in the split file.
    pub images_listed: usize,
    /// Images kept after validation.
    pub images_kept: usize,
    /// Objects per class name *as annotated*: kept objects plus objects dropped with a
    /// known `<name>` (zero-area boxes, boxes outside the image, unknown classes). This is
    /// what a dataset's README counts.
    pub objects_annotated: BTreeMap<String, usize>,
    /// Objects per class name that were kept.
    pub objects_kept: BTreeMap<String, usize>,
    /// Kept images per `(width, height)`.
    pub image_sizes: BTreeMap<(u32, u32), usize>,
    /// Kept box widths and heights per class (continuous pixels), sorted ascending.
    pub box_widths: BTreeMap<String, Vec<f32>>,
    /// Kept box heights per class (continuous pixels), sorted ascending.
    pub box_heights: BTreeMap<String, Vec<f32>>,
    /// Kept images with no kept box of a class, per class.
    pub images_without: BTreeMap<String, usize>,
    /// Number of problems per kind ([`error_kind`], e.g. `"DegenerateBox"`) and action
    /// (the [`Action`] variant name, e.g. `"DroppedObject"`).
    pub problems: BTreeMap<(String, String), usize>,
}

/// The name of a [`VocError`] variant (e.g. `"DegenerateBox"`).
pub fn error_kind(e: &VocError) -> &'static str {
    match e {
        VocError::Io { .. } => "Io",
        VocError::MalformedXml { .. } => "MalformedXml",
        VocError::MissingField { .. } => "MissingField",
        VocError::InvalidField { .. } => "InvalidField",
        VocError::UnknownClass { .. } => "UnknownClass",
        VocError::DegenerateBox { .. } => "DegenerateBox",
        VocError::BoxOutsideImage { .. } => "BoxOutsideImage",
        VocError::MissingImage { .. } => "MissingImage",
        VocError::UnreadableImage { .. } => "UnreadableImage",
        VocError::SizeMismatch { .. } => "SizeMismatch",
        VocError::NearDuplicate { .. } => "NearDuplicate",
        VocError::InvalidLabelSet(_) => "InvalidLabelSet",
        VocError::InvalidSplit { .. } => "InvalidSplit",
        VocError::Coco { .. } => "Coco",
        VocError::InvalidArgument { .. } => "InvalidArgument",
        VocError::CorruptImage { .. } => "CorruptImage",
        VocError::ImageTooLarge { .. } => "ImageTooLarge",
    }
}

impl SplitStats {
    /// Statistics of a loaded split.
    pub fn compute(ds: &VocDataset) -> Self {
        let mut s = SplitStats {
            split: ds.split().to_string(),
            images_kept: ds.len(),
            ..Default::default()
        };
        let labels = ds.labels();
        let dropped_images: BTreeSet<&str> = ds
            .problems()
            .iter()
            .filter(|p| p.action == Action::DroppedImage)
            .map(|p| p.id.as_str())
            .collect();
        s.images_listed = ds.len() + dropped_images.len();
        for name in labels.names() {
            s.objects_annotated.insert(name.clone(), 0);
            s.objects_kept.insert(name.clone(), 0);
            s.images_without.insert(name.clone(), 0);
        }
        for sample in ds.samples() {
            *s.image_sizes
                .entry((sample.width, sample.height))
                .or_default() += 1;
            let mut present = vec![false; labels.len()];
            for o in &sample.objects {
                let name = labels.name(o.class).unwrap_or("?").to_string();
                present[o.class.index().min(labels.len() - 1)] = true;
                *s.objects_kept.entry(name.clone()).or_default() += 1;
                *s.objects_annotated.entry(name.clone()).or_default() += 1;
                s.box_widths
                    .entry(name.clone())
                    .or_default()
                    .push(o.bbox.width());
                s.box_heights.entry(name).or_default().push(o.bbox.height());
            }
            for (c, p) in present.iter().enumerate() {
                if !p {
                    *s.images_without
                        .entry(labels.names()[c].clone())
                        .or_default() += 1;
                }
            }
        }
        for p in ds.problems() {
            if p.action == Action::DroppedObject {
                if let Some(n) = &p.name {
                    *s.objects_annotated.entry(n.clone()).or_default() += 1;
                }
            }
            let key = (error_kind(&p.error).to_string(), format!("{:?}", p.action));
            *s.problems.entry(key).or_default() += 1;
        }
        for v in s.box_widths.values_mut().chain(s.box_heights.values_mut()) {
            v.sort_by(f32::total_cmp);
        }
        s
    }

    /// Total annotated objects over all classes.
    pub fn total_annotated(&self) -> usize {
        self.objects_annotated.values().sum()
    }

    /// Total kept objects over all classes.
    pub fn total_kept(&self) -> usize {
        self.objects_kept.values().sum()
    }
}

/// The `q`-quantile (`0..=1`, nearest rank) of an ascending slice; `None` when empty.
pub fn quantile(sorted: &[f32], q: f64) -> Option<f32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    Some(sorted[i])
}
