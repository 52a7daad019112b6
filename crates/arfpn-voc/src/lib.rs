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
//! - [`image_io`] — JPEG/PNG/BMP decoding to RGB.
//!
//! Boxes are [`arfpn_boxes::BBox`] (continuous corners), classes [`arfpn_boxes::ClassId`]
//! (foreground only, `0..K`).

pub mod annotation;
pub mod coords;
pub mod dataset;
pub mod error;
pub mod image_io;
pub mod labels;
pub mod rng;
pub mod splits;
pub mod stats;
pub mod synthetic;
pub mod transforms;

pub use annotation::{
    parse_annotation, read_annotation, Object, ObjectError, ParsedAnnotation, Sample,
    VocAnnotation, VocObject,
};
pub use arfpn_boxes::{BBox, ClassId};
pub use dataset::{Batch, ImageCheck, LoadOptions, LoadedImage, Mode, VocDataset};
pub use error::{Action, Problem, Result, VocError};
pub use image::RgbImage;
pub use labels::{LabelSet, Labels, BCCD_CLASSES, RBC14_CLASSES};
