//! Pascal VOC datasets for the arfpn detector (no tensor dependency).
//!
//! - [`annotation`] — VOC XML reading ([`parse_annotation`], `roxmltree`) and writing
//!   ([`VocAnnotation::to_xml`]); the 1-based → continuous box conversion lives in
//!   [`coords`] and nowhere else.
//! - [`labels`] — label sets — the paper's 14 RBC classes ([`LabelSet::rbc14`]), BCCD's
//!   three, any user list, or discovered from the annotations.
//! - [`splits`] — `ImageSets/Main/<split>.txt`.
//! - [`dataset`] — [`VocDataset`] — validation in [`Mode::Strict`] or [`Mode::Lenient`]
//!   (every problem reported as a [`Problem`], nothing dropped silently), seeded order,
//!   parallel decoding.
//! - [`image_io`] — JPEG/PNG/BMP decoding to RGB, and the integrity checks of every decode
//!   path ([`image_io::check_image_file`]: truncated or corrupt files, declared sizes above
//!   [`image_io::MAX_IMAGE_PIXELS`]).
//! - [`transforms`] — resize to min/max side, horizontal flip, Gaussian denoising (boxes
//!   move with the pixels).
//! - [`tiling`] — overlapping crops of large fields with an explicit [`tiling::EdgePolicy`]
//!   for cut cells; [`oversample`] — flipped copies of crops holding rare classes.
//! - [`coco`] — COCO instances JSON export/import.
//! - [`synthetic`] — the seeded blood-smear generator with the paper's 14 classes (the
//!   project's embedded default data); [`stats`] — per-split statistics.
//!
//! ```no_run
//! use arfpn_voc::{LabelSet, Labels, LoadOptions, VocDataset};
//! arfpn_voc::synthetic::write_dataset("out/synthetic".as_ref(), 24, 0, &Default::default())?;
//! let ds = VocDataset::open("out/synthetic", "train", &LoadOptions::strict(Labels::Explicit(LabelSet::rbc14())))?;
//! for batch in ds.batches(Some(0), 8) {
//!     for item in batch.items {
//!         let (boxes, classes) = (item.sample.boxes(), item.sample.classes());
//!         let _ = (item.image.dimensions(), boxes, classes);
//!     }
//! }
//! # Ok::<(), arfpn_voc::VocError>(())
//! ```
//!
//! Boxes are [`arfpn_boxes::BBox`] (continuous corners), classes [`arfpn_boxes::ClassId`]
//! (foreground only, `0..K`).

#![forbid(unsafe_code)]

pub mod annotation;
pub mod coco;
pub mod coords;
pub mod dataset;
pub mod error;
pub mod image_io;
pub mod labels;
pub mod oversample;

pub mod splits;
pub mod stats;
pub mod synthetic;
pub mod tiling;
pub mod transforms;

pub use annotation::{
    parse_annotation, read_annotation, Object, ObjectError, ParsedAnnotation, Sample,
    VocAnnotation, VocObject,
};
pub use arfpn_boxes::{BBox, ClassId};
pub use dataset::{
    dataset_labels, discover_labels, parse_classes_txt, Batch, ImageCheck, LoadOptions,
    LoadedImage, Mode, VocDataset,
};
pub use error::{Action, Problem, Result, VocError};
pub use image::RgbImage;
pub use labels::{LabelSet, Labels, BCCD_CLASSES, RBC14_CLASSES};
