//! The model's error type (the training and lab crates use it too): its own cases plus
//! every part's, unchanged.

use std::path::PathBuf;

/// Everything that can go wrong building, running, saving or loading a detector. The larger
/// part errors are boxed to keep `Result<T>` small.
///
/// New cases may be added in minor releases: match with a `_` arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectorError {
    /// A configuration value is unusable or the parts do not fit; `field` names it.
    #[error("invalid detector config `{field}`: {reason}")]
    Config {
        /// The configuration field at fault, as a dotted path (`rpn.pre_nms_top_n_train`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An image, ground truth or other argument passed to the detector is unusable.
    #[error("detector input `{arg}`: {reason}")]
    Input {
        /// The argument at fault (`image`, `ground_truth[2]`, `index`, ...).
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint file is unreadable, truncated or not an arfpn checkpoint.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint was made for another detector: `field` differs.
    #[error("checkpoint {path} does not fit this detector: its {field} is {checkpoint}, this detector's is {ours}")]
    Mismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// The setting that differs (`classes`, `config`, ...).
        field: &'static str,
        /// Its value in the checkpoint.
        checkpoint: String,
        /// Its value in the detector it was loaded into.
        ours: String,
    },
    /// Training stopped because too many steps in a row had a non-finite loss or gradient.
    /// The weights before those steps were saved to `checkpoint`: nothing trained is lost.
    #[error(
        "training diverged: {bad_steps} steps in a row had a non-finite loss or gradient \
         (last: step {step}, {terms}); stopped. Lower the learning rate or enable \
         clip_grad_norm; the last good weights are in {checkpoint}"
    )]
    Diverged {
        /// How many steps in a row were skipped.
        bad_steps: usize,
        /// The last skipped step (1-based).
        step: usize,
        /// The non-finite loss terms or gradients of that step, comma-separated.
        terms: String,
        /// The checkpoint written with the last good weights.
        checkpoint: PathBuf,
    },
    /// A run directory cannot be used as asked: a new run in a folder that already holds
    /// checkpoints, or a resume from a folder that holds none.
    #[error("run directory {path}: {reason}")]
    RunDir {
        /// The run directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder at fault.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The backbone refused its configuration or input.
    #[error(transparent)]
    Backbone(Box<arfpn_backbone::BackboneError>),
    /// The feature pyramid refused its configuration or input.
    #[error(transparent)]
    Fpn(Box<arfpn_fpn::FpnError>),
    /// The region proposal network refused its configuration or input.
    #[error(transparent)]
    Rpn(#[from] arfpn_rpn::RpnError),
    /// The RoI heads refused their configuration, input or weights.
    #[error(transparent)]
    Head(#[from] arfpn_head::HeadError),
    /// A box operation refused its input.
    #[error(transparent)]
    Boxes(#[from] arfpn_boxes::BoxError),
    /// A dataset (VOC or COCO files) could not be read.
    #[error(transparent)]
    Voc(Box<arfpn_voc::VocError>),
    /// A tensor operation failed (shape, dtype or device).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Constructors of the cases with a field and a reason, for the crates built on the model
/// (`arfpn-train`, `arfpn-lab`) and for applications.
impl DetectorError {
    /// [`DetectorError::Config`]: `field` (a dotted path) is unusable because of `reason`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// [`DetectorError::Input`]: the argument `arg` is unusable because of `reason`.
    pub fn input(arg: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Input {
            arg: arg.into(),
            reason: reason.into(),
        }
    }

    /// [`DetectorError::RunDir`]: the run directory `path` is unusable because of `reason`.
    pub fn run_dir(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::RunDir {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// [`DetectorError::Io`]: reading or writing `path` failed with `source`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// [`DetectorError::Checkpoint`]: the checkpoint `path` is unusable because of `reason`.
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with [`DetectorError`].
pub type Result<T> = std::result::Result<T, DetectorError>;

impl From<arfpn_backbone::BackboneError> for DetectorError {
    fn from(e: arfpn_backbone::BackboneError) -> Self {
        Self::Backbone(Box::new(e))
    }
}

impl From<arfpn_fpn::FpnError> for DetectorError {
    fn from(e: arfpn_fpn::FpnError) -> Self {
        Self::Fpn(Box::new(e))
    }
}

impl From<arfpn_voc::VocError> for DetectorError {
    fn from(e: arfpn_voc::VocError) -> Self {
        Self::Voc(Box::new(e))
    }
}
