//! The error type of this crate.

/// Why an evaluation input was rejected or a report could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A ground-truth box is malformed (index into [`crate::Dataset::gts`]).
    #[error("ground truth #{index}: {reason}")]
    BadGt {
        /// The 0-based position of the box in [`crate::Dataset::gts`].
        index: usize,
        /// What is wrong with it (image or class out of range, non-finite or negative-size
        /// box, bad area), with the offending value.
        reason: String,
    },
    /// A detection is malformed (index into [`crate::Dataset::dets`]).
    #[error("detection #{index}: {reason}")]
    BadDetection {
        /// The 0-based position of the detection in [`crate::Dataset::dets`].
        index: usize,
        /// What is wrong with it (image or class out of range, non-finite or negative-size
        /// box, non-finite score), with the offending value.
        reason: String,
    },
    /// A COCO JSON record is malformed (`record` names it, e.g. `annotations[17]`).
    #[error("{record}: {reason}")]
    Json {
        /// Where in the input the problem is: a record such as `annotations[17]` or
        /// `categories[2]`, a top-level array such as `images`, or the whole file
        /// (`ground-truth file`, `detections file`).
        record: String,
        /// What is wrong there: a missing or mistyped field, an unknown or duplicate id,
        /// a JSON syntax error (with its line and column), or a failed
        /// [`crate::Dataset::validate`] check.
        reason: String,
    },
    /// An option is out of its domain.
    #[error("invalid option `{option}`: {reason}")]
    BadOption {
        /// The name of the option field at fault, e.g. `"iou_threshold"`.
        option: &'static str,
        /// Why the value is rejected (usually quoting it).
        reason: String,
    },
    /// Writing a report or plot failed.
    #[error("could not write {what}: {reason}")]
    Output {
        /// What was being written: the output file's path, or `plot` when the embedded
        /// font could not be registered.
        what: String,
        /// The drawing or file-writing error as text, or why the path was refused (its
        /// extension is neither `.png` nor `.svg`).
        reason: String,
    },
}
