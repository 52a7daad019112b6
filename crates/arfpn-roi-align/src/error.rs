//! The errors of this crate. The public functions return `candle_core::Result` (as every
//! candle op does); a [`RoiError`] is wrapped into `candle_core::Error::Wrapped`, so its
//! message names the operation and the argument at fault.
use candle_core::{DType, DeviceLocation};

/// Bad input to [`crate::roi_align`], [`crate::roi_pool`] or [`crate::MultiScaleRoIAlign`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoiError {
    #[error("{op}: `input` must have shape [N, C, H, W], got {shape:?}")]
    InputRank { op: &'static str, shape: Vec<usize> },
    #[error("{op}: `input` has an empty spatial size {h}x{w}")]
    EmptyInput {
        op: &'static str,
        h: usize,
        w: usize,
    },
    #[error("{op}: `boxes` must have shape [K, 5] with rows (batch_index, x1, y1, x2, y2), got {shape:?}")]
    BoxesShape { op: &'static str, shape: Vec<usize> },
    #[error("{op}: `{arg}` has dtype {dtype:?}; only f32 and f64 are supported")]
    DType {
        op: &'static str,
        arg: &'static str,
        dtype: DType,
    },
    #[error("{op}: `boxes` has dtype {boxes:?} but `input` has {input:?}; they must match")]
    DTypeMismatch {
        op: &'static str,
        input: DType,
        boxes: DType,
    },
    #[error("{op}: `boxes` is on {boxes:?} but `input` is on {input:?}")]
    DeviceMismatch {
        op: &'static str,
        input: DeviceLocation,
        boxes: DeviceLocation,
    },
    #[error("{op}: box {row}: batch index {value} is not an integer in 0..{batch}")]
    BatchIndex {
        op: &'static str,
        row: usize,
        value: f64,
        batch: usize,
    },
    #[error("{op}: box {row}: coordinate {value} is not finite")]
    NonFiniteBox {
        op: &'static str,
        row: usize,
        value: f64,
    },
    #[error("{op}: box {row}: coordinate {value} times spatial_scale exceeds 2^24 pixels")]
    BoxOutOfRange {
        op: &'static str,
        row: usize,
        value: f64,
    },
    #[error("{op}: `output_size` must be positive, got {ph}x{pw}")]
    OutputSize {
        op: &'static str,
        ph: usize,
        pw: usize,
    },
    #[error("{op}: `spatial_scale` must be finite and positive, got {value}")]
    SpatialScale { op: &'static str, value: f64 },
    #[error("MultiScaleRoIAlign: `strides` {strides:?} must be non-empty powers of two, each twice the previous")]
    Strides { strides: Vec<usize> },
    #[error("MultiScaleRoIAlign: `{arg}` = {value} is invalid: {reason}")]
    Config {
        arg: &'static str,
        value: f64,
        reason: &'static str,
    },
    #[error("MultiScaleRoIAlign: got {got} feature maps for {expected} strides")]
    FeatureCount { expected: usize, got: usize },
    #[error("MultiScaleRoIAlign: feature {level} (stride {stride}) has shape {shape:?}; expected [{n}, {c}, H, W] with H in {h_ok:?} and W in {w_ok:?} (the finest level's extent divided by the stride)")]
    FeatureShape {
        level: usize,
        stride: usize,
        shape: Vec<usize>,
        n: usize,
        c: usize,
        h_ok: (usize, usize),
        w_ok: (usize, usize),
    },
}

impl From<RoiError> for candle_core::Error {
    fn from(e: RoiError) -> Self {
        candle_core::Error::wrap(e)
    }
}
