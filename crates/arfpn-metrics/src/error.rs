//! The error type of this crate.

/// Why an evaluation input was rejected or a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A ground-truth box is malformed (index into [`crate::Dataset::gts`]).
    #[error("ground truth #{index}: {reason}")]
    BadGt { index: usize, reason: String },
    /// A detection is malformed (index into [`crate::Dataset::dets`]).
    #[error("detection #{index}: {reason}")]
    BadDetection { index: usize, reason: String },
    /// A COCO JSON record is malformed (`record` names it, e.g. `annotations[17]`).
    #[error("{record}: {reason}")]
    Json { record: String, reason: String },
    /// An option is out of its domain.
    #[error("invalid option `{option}`: {reason}")]
    BadOption {
        option: &'static str,
        reason: String,
    },
    /// Writing a report or plot failed.
    #[error("could not write {what}: {reason}")]
    Output { what: String, reason: String },
}
