//! The errors of this crate. The public functions return `candle_core::Result` (as every
//! candle op does); a [`RoiError`] is wrapped into `candle_core::Error::Wrapped`, so its
//! message names the operation and the argument at fault.
use candle_core::{DType, DeviceLocation};

/// Bad input to [`crate::roi_align`], [`crate::roi_pool`] or [`crate::MultiScaleRoIAlign`].
///
/// `op` fields hold the name of the operation that rejected the call: `"roi_align"`,
/// `"roi_pool"` or `"MultiScaleRoIAlign"` (whose tensor checks run on the finest feature map).
/// New variants may be added, so a `match` needs a wildcard arm.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RoiError {
    /// `input` is not a rank-4 `[N, C, H, W]` tensor.
    #[error("{op}: `input` must have shape [N, C, H, W], got {shape:?}")]
    InputRank {
        /// The operation that rejected the call.
        op: &'static str,
        /// The shape `input` has.
        shape: Vec<usize>,
    },
    /// `input` has zero height or zero width.
    #[error("{op}: `input` has an empty spatial size {h}x{w}")]
    EmptyInput {
        /// The operation that rejected the call.
        op: &'static str,
        /// Height `H` of `input`, in feature-map pixels.
        h: usize,
        /// Width `W` of `input`, in feature-map pixels.
        w: usize,
    },
    /// `boxes` is not a `[K, 5]` tensor of rows `(batch_index, x1, y1, x2, y2)`.
    #[error("{op}: `boxes` must have shape [K, 5] with rows (batch_index, x1, y1, x2, y2), got {shape:?}")]
    BoxesShape {
        /// The operation that rejected the call.
        op: &'static str,
        /// The shape `boxes` has.
        shape: Vec<usize>,
    },
    /// A tensor has a dtype other than f32 or f64.
    #[error("{op}: `{arg}` has dtype {dtype:?}; only f32 and f64 are supported")]
    DType {
        /// The operation that rejected the call.
        op: &'static str,
        /// The argument at fault: `"input"` or `"boxes"`.
        arg: &'static str,
        /// The unsupported dtype it has.
        dtype: DType,
    },
    /// `input` and `boxes` are both f32 or f64 but not the same one.
    #[error("{op}: `boxes` has dtype {boxes:?} but `input` has {input:?}; they must match")]
    DTypeMismatch {
        /// The operation that rejected the call.
        op: &'static str,
        /// The dtype of `input`.
        input: DType,
        /// The dtype of `boxes`.
        boxes: DType,
    },
    /// `input` and `boxes` live on different devices.
    #[error("{op}: `boxes` is on {boxes:?} but `input` is on {input:?}")]
    DeviceMismatch {
        /// The operation that rejected the call.
        op: &'static str,
        /// The device of `input`.
        input: DeviceLocation,
        /// The device of `boxes`.
        boxes: DeviceLocation,
    },
    /// A box's first column is not an integer batch index into `input`.
    #[error("{op}: box {row}: batch index {value} is not an integer in 0..{batch}")]
    BatchIndex {
        /// The operation that rejected the call.
        op: &'static str,
        /// The row of `boxes` at fault (0-based).
        row: usize,
        /// The value found in its batch-index column.
        value: f64,
        /// The batch size `N` of `input`; valid indices are `0..N`.
        batch: usize,
    },
    /// A box coordinate is NaN or infinite.
    #[error("{op}: box {row}: coordinate {value} is not finite")]
    NonFiniteBox {
        /// The operation that rejected the call.
        op: &'static str,
        /// The row of `boxes` at fault (0-based).
        row: usize,
        /// The offending coordinate, in image pixels.
        value: f64,
    },
    /// A box coordinate, once multiplied by `spatial_scale`, is larger than 2^24 in
    /// magnitude (f32 no longer represents every pixel position there).
    #[error("{op}: box {row}: coordinate {value} times spatial_scale exceeds 2^24 pixels")]
    BoxOutOfRange {
        /// The operation that rejected the call.
        op: &'static str,
        /// The row of `boxes` at fault (0-based).
        row: usize,
        /// The offending coordinate, in image pixels (before scaling).
        value: f64,
    },
    /// `output_size` has a zero side.
    #[error("{op}: `output_size` must be positive, got {ph}x{pw}")]
    OutputSize {
        /// The operation that rejected the call.
        op: &'static str,
        /// The requested number of output bins along the height.
        ph: usize,
        /// The requested number of output bins along the width.
        pw: usize,
    },
    /// `spatial_scale` is zero, negative, NaN or infinite.
    #[error("{op}: `spatial_scale` must be finite and positive, got {value}")]
    SpatialScale {
        /// The operation that rejected the call.
        op: &'static str,
        /// The `spatial_scale` given.
        value: f64,
    },
    /// [`crate::MultiScaleRoIAlign`] strides that are empty, not powers of two, or not each
    /// twice the previous.
    #[error("MultiScaleRoIAlign: `strides` {strides:?} must be non-empty powers of two, each twice the previous")]
    Strides {
        /// The strides given, in pixels of the image per pixel of the map.
        strides: Vec<usize>,
    },
    /// A [`crate::MultiScaleRoIAlign`] level-rule setting is out of range.
    #[error("MultiScaleRoIAlign: `{arg}` = {value} is invalid: {reason}")]
    Config {
        /// The setting at fault: `"canonical_scale"` or `"eps"`.
        arg: &'static str,
        /// The value given.
        value: f64,
        /// The range it must lie in.
        reason: &'static str,
    },
    /// [`crate::MultiScaleRoIAlign::forward`] got a different number of feature maps than
    /// it has strides.
    #[error("MultiScaleRoIAlign: got {got} feature maps for {expected} strides")]
    FeatureCount {
        /// The number of strides (levels) the pooler was built with.
        expected: usize,
        /// The number of feature maps passed.
        got: usize,
    },
    /// A feature map passed to [`crate::MultiScaleRoIAlign::forward`] does not fit the
    /// finest one: a different rank, batch size, channel count or dtype, or a spatial size
    /// other than the finest map's extent divided by the stride (rounded down or up).
    #[error("MultiScaleRoIAlign: feature {level} (stride {stride}) has shape {shape:?}; expected [{n}, {c}, H, W] with H in {h_ok:?} and W in {w_ok:?} (the finest level's extent divided by the stride)")]
    FeatureShape {
        /// Index of the map at fault in `features` (0 = finest).
        level: usize,
        /// The stride of that level.
        stride: usize,
        /// The shape the map has.
        shape: Vec<usize>,
        /// The batch size `N` expected (that of the finest map).
        n: usize,
        /// The channel count `C` expected (that of the finest map).
        c: usize,
        /// The two accepted heights: the finest map's extent divided by the stride, rounded
        /// down and up.
        h_ok: (usize, usize),
        /// The two accepted widths, rounded down and up likewise.
        w_ok: (usize, usize),
    },
}

impl From<RoiError> for candle_core::Error {
    fn from(e: RoiError) -> Self {
        candle_core::Error::wrap(e)
    }
}
