//! The crate's typed errors ([`VocError`]) and the problem reports of lenient loading
//! ([`Problem`], [`Action`]).

use std::path::PathBuf;

use serde::Serialize;

/// Everything that can go wrong reading, validating or writing a dataset.
///
/// Every variant names the file at fault and, where it applies, the field inside it
/// (an XPath-like string such as `object[3]/bndbox/xmin`; objects are counted from 0 in
/// document order).
#[derive(Debug, thiserror::Error)]
pub enum VocError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The annotation is not well-formed XML, or its root is not `<annotation>`.
    #[error("{path}: malformed XML: {message}")]
    MalformedXml { path: PathBuf, message: String },
    /// A required element is absent or empty.
    #[error("{path}: missing field `{field}`")]
    MissingField { path: PathBuf, field: String },
    /// A field is present but its value cannot be used (not a number, not finite, negative size, ...).
    #[error("{path}: field `{field}` = {value:?}: {reason}")]
    InvalidField {
        path: PathBuf,
        field: String,
        value: String,
        reason: String,
    },
    /// An object's `<name>` is not in the label set.
    #[error("{path}: field `{field}`: unknown class {name:?} (label set: {known})")]
    UnknownClass {
        path: PathBuf,
        field: String,
        name: String,
        known: String,
    },
    /// A box whose VOC coordinates have `xmax <= xmin` or `ymax <= ymin`: zero or negative
    /// extent as annotated (see [`crate::coords`]).
    #[error("{path}: field `{field}`: box with zero or negative area (VOC xmin={xmin}, ymin={ymin}, xmax={xmax}, ymax={ymax})")]
    DegenerateBox {
        path: PathBuf,
        field: String,
        xmin: f64,
        ymin: f64,
        xmax: f64,
        ymax: f64,
    },
    /// A box that reaches outside the `width × height` image declared in `<size>`.
    #[error("{path}: field `{field}`: box outside the {width}x{height} image (VOC xmin={xmin}, ymin={ymin}, xmax={xmax}, ymax={ymax})")]
    BoxOutsideImage {
        path: PathBuf,
        field: String,
        xmin: f64,
        ymin: f64,
        xmax: f64,
        ymax: f64,
        width: u32,
        height: u32,
    },
    /// The image file named by the annotation does not exist.
    #[error("{path}: field `filename`: image {image:?} not found")]
    MissingImage { path: PathBuf, image: PathBuf },
    /// The image file exists but cannot be decoded.
    #[error("{image}: unreadable image: {message}")]
    UnreadableImage { image: PathBuf, message: String },
    /// The image file is truncated or corrupt: no end-of-image marker, a segment or scan
    /// cut short, or an error of the (strict) decoder. See [`crate::image_io`].
    #[error("{path}: corrupt image: {reason}")]
    CorruptImage { path: PathBuf, reason: String },
    /// The image's header declares more pixels than [`crate::image_io::MAX_IMAGE_PIXELS`].
    #[error("{path}: image too large: {width}x{height} px exceeds the limit of {limit} px")]
    ImageTooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        limit: u64,
    },
    /// The image's real size differs from the annotation's `<size>`.
    #[error("{path}: field `size`: annotation says {xml_width}x{xml_height}, image {image:?} is {width}x{height}")]
    SizeMismatch {
        path: PathBuf,
        image: PathBuf,
        xml_width: u32,
        xml_height: u32,
        width: u32,
        height: u32,
    },
    /// Two boxes of the same class overlap with IoU above the near-duplicate threshold
    /// (a warning: both are kept).
    #[error(
        "{path}: fields `{field_a}` and `{field_b}`: near-duplicate {name:?} boxes (IoU {iou:.3})"
    )]
    NearDuplicate {
        path: PathBuf,
        field_a: String,
        field_b: String,
        name: String,
        iou: f32,
    },
    /// A label set is unusable (empty, duplicate or blank names).
    #[error("invalid label set: {0}")]
    InvalidLabelSet(String),
    /// A split file lists an id twice or an id with whitespace.
    #[error("{path}: line {line}: {reason}")]
    InvalidSplit {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A COCO JSON file is malformed or inconsistent.
    #[error("{path}: COCO: {message}")]
    Coco { path: PathBuf, message: String },
    /// An argument to a function is out of its domain (named in the message).
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument { name: &'static str, reason: String },
}

impl VocError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VocError::Io {
            path: path.into(),
            source,
        }
    }
}

/// What lenient loading did about a [`Problem`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Action {
    /// The whole image (annotation + pixels) was left out.
    DroppedImage,
    /// One object was left out; the rest of the image was kept.
    DroppedObject,
    /// Nothing was removed: the problem is a warning (e.g. near-duplicate boxes).
    Kept,
    /// A line of the split file was skipped (an id listed a second time, a line that is
    /// not one id); the images of the other lines are unaffected.
    IgnoredLine,
}

/// One problem found while loading leniently: the error and what was done about it.
#[derive(Debug)]
pub struct Problem {
    /// Id of the image concerned.
    pub id: String,
    /// Class name of the object concerned, when known.
    pub name: Option<String>,
    pub action: Action,
    pub error: VocError,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.action {
            Action::DroppedImage => "dropped image",
            Action::DroppedObject => "dropped object",
            Action::Kept => "warning, kept",
            Action::IgnoredLine => "ignored split line",
        };
        write!(f, "[{what}] {}", self.error)
    }
}

/// `Result` with [`VocError`].
pub type Result<T, E = VocError> = std::result::Result<T, E>;
