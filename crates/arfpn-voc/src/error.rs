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
#[non_exhaustive]
pub enum VocError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory that could not be read, listed, created or written.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// The annotation is not well-formed XML, or its root is not `<annotation>`.
    #[error("{path}: malformed XML: {message}")]
    MalformedXml {
        /// The annotation file at fault.
        path: PathBuf,
        /// The XML parser's message (with its position in the file), or which root
        /// element was found instead of `<annotation>`.
        message: String,
    },
    /// A required element is absent or empty.
    #[error("{path}: missing field `{field}`")]
    MissingField {
        /// The annotation file at fault.
        path: PathBuf,
        /// The path of the absent element, e.g. `size/width` or `object[3]/bndbox/xmin`.
        field: String,
    },
    /// A field is present but its value cannot be used (not a number, not finite, negative size, ...).
    #[error("{path}: field `{field}` = {value:?}: {reason}")]
    InvalidField {
        /// The annotation file at fault.
        path: PathBuf,
        /// The path of the element, e.g. `size/width` or `object[3]/difficult`.
        field: String,
        /// The element's text as found in the file (trimmed).
        value: String,
        /// Why it is rejected, e.g. `not a number` or `must be 0 or 1`.
        reason: String,
    },
    /// An object's `<name>` is not in the label set.
    #[error("{path}: field `{field}`: unknown class {name:?} (label set: {known})")]
    UnknownClass {
        /// The annotation file at fault.
        path: PathBuf,
        /// The object's name element, e.g. `object[3]/name`.
        field: String,
        /// The class name found in the file.
        name: String,
        /// The names of the label set, comma-separated, in class-id order.
        known: String,
    },
    /// A box whose VOC coordinates have `xmax <= xmin` or `ymax <= ymin`: zero or negative
    /// extent as annotated (see [`crate::coords`]).
    #[error("{path}: field `{field}`: box with zero or negative area (VOC xmin={xmin}, ymin={ymin}, xmax={xmax}, ymax={ymax})")]
    DegenerateBox {
        /// The annotation file at fault.
        path: PathBuf,
        /// The object's box element, e.g. `object[3]/bndbox`.
        field: String,
        /// `<xmin>` as written in the file (VOC: 1-based, inclusive pixel index).
        xmin: f64,
        /// `<ymin>` as written in the file (VOC: 1-based, inclusive pixel index).
        ymin: f64,
        /// `<xmax>` as written in the file (VOC: 1-based, inclusive pixel index).
        xmax: f64,
        /// `<ymax>` as written in the file (VOC: 1-based, inclusive pixel index).
        ymax: f64,
    },
    /// A box that reaches outside the `width × height` image declared in `<size>`.
    #[error("{path}: field `{field}`: box outside the {width}x{height} image (VOC xmin={xmin}, ymin={ymin}, xmax={xmax}, ymax={ymax})")]
    BoxOutsideImage {
        /// The annotation file at fault.
        path: PathBuf,
        /// The object's box element, e.g. `object[3]/bndbox`.
        field: String,
        /// `<xmin>` as written in the file (1-based; must be at least 1).
        xmin: f64,
        /// `<ymin>` as written in the file (1-based; must be at least 1).
        ymin: f64,
        /// `<xmax>` as written in the file (inclusive; must be at most `width`).
        xmax: f64,
        /// `<ymax>` as written in the file (inclusive; must be at most `height`).
        ymax: f64,
        /// The image width in pixels declared in `<size><width>`.
        width: u32,
        /// The image height in pixels declared in `<size><height>`.
        height: u32,
    },
    /// The image file named by the annotation does not exist.
    #[error("{path}: field `filename`: image {image:?} not found")]
    MissingImage {
        /// The annotation file that names the image.
        path: PathBuf,
        /// Where the image was looked for.
        image: PathBuf,
    },
    /// The image file exists but cannot be decoded.
    #[error("{image}: unreadable image: {message}")]
    UnreadableImage {
        /// The image file at fault (when writing, the file that could not be encoded).
        image: PathBuf,
        /// The decoder's or encoder's message, e.g. `unknown image format: ...`.
        message: String,
    },
    /// The image file is truncated or corrupt: no end-of-image marker, a segment or scan
    /// cut short, or an error of the (strict) decoder. See [`crate::image_io`].
    #[error("{path}: corrupt image: {reason}")]
    CorruptImage {
        /// The image file at fault.
        path: PathBuf,
        /// What is wrong, e.g. a missing end-of-image marker or the decoder's error.
        reason: String,
    },
    /// The image's header declares more pixels than [`crate::image_io::MAX_IMAGE_PIXELS`].
    #[error("{path}: image too large: {width}x{height} px exceeds the limit of {limit} px")]
    ImageTooLarge {
        /// The image file at fault.
        path: PathBuf,
        /// The width in pixels declared in the file's header.
        width: u32,
        /// The height in pixels declared in the file's header.
        height: u32,
        /// The largest accepted `width * height`, in pixels.
        limit: u64,
    },
    /// The image's real size differs from the annotation's `<size>`.
    #[error("{path}: field `size`: annotation says {xml_width}x{xml_height}, image {image:?} is {width}x{height}")]
    SizeMismatch {
        /// The annotation file at fault; the image path when the sample came from memory
        /// (transforms and tiling).
        path: PathBuf,
        /// The image file whose size disagrees.
        image: PathBuf,
        /// The width in pixels the annotation declares.
        xml_width: u32,
        /// The height in pixels the annotation declares.
        xml_height: u32,
        /// The image's real width in pixels.
        width: u32,
        /// The image's real height in pixels.
        height: u32,
    },
    /// Two boxes of the same class overlap with IoU above the near-duplicate threshold
    /// (a warning: both are kept).
    #[error(
        "{path}: fields `{field_a}` and `{field_b}`: near-duplicate {name:?} boxes (IoU {iou:.3})"
    )]
    NearDuplicate {
        /// The annotation file holding both boxes.
        path: PathBuf,
        /// The first object, e.g. `object[2]` (the earlier one in the file).
        field_a: String,
        /// The second object, e.g. `object[5]`.
        field_b: String,
        /// The class name both objects share.
        name: String,
        /// The IoU of the two boxes (continuous coordinates), above
        /// [`crate::LoadOptions::near_duplicate_iou`].
        iou: f32,
    },
    /// A label set is unusable (empty, duplicate or blank names).
    #[error("invalid label set: {0}")]
    InvalidLabelSet(String),
    /// A split file lists an id twice or an id with whitespace.
    #[error("{path}: line {line}: {reason}")]
    InvalidSplit {
        /// The split file at fault (`ImageSets/Main/<split>.txt`).
        path: PathBuf,
        /// The 1-based line number in that file.
        line: usize,
        /// What is wrong with the line: more than one token, or an id listed twice.
        reason: String,
    },
    /// A COCO JSON file is malformed or inconsistent.
    #[error("{path}: COCO: {message}")]
    Coco {
        /// The COCO JSON file at fault.
        path: PathBuf,
        /// What is wrong: the JSON parser's error, or the record and field at fault and
        /// why (e.g. `annotations[4].bbox: zero or negative area ...`).
        message: String,
    },
    /// An argument to a function is out of its domain (named in the message).
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument or option field at fault, e.g. `index` or `edge.min_visible`.
        name: &'static str,
        /// Why its value is rejected, usually quoting it.
        reason: String,
    },
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
    /// What was done about it: the image or object dropped, the line skipped, or nothing.
    pub action: Action,
    /// The problem itself, naming the file (and field or line) at fault.
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
