//! Argument checks shared by `roi_align` and `roi_pool`: shapes, dtypes, devices and the box
//! values themselves, so that no kernel (CPU or CUDA) can read out of bounds.
use crate::RoiError;
use candle_core::{DType, Layout, Tensor};

/// The sizes of a checked call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
}

impl Dims {
    /// The sizes of a `[N, C, H, W]` map and `[K, 5]` boxes, read from their layouts (inside
    /// a custom op, after [`check`] has validated the tensors).
    pub(crate) fn from_layouts(map: &Layout, boxes: &Layout) -> candle_core::Result<Self> {
        let (n, c, h, w) = map.shape().dims4()?;
        let (k, _) = boxes.shape().dims2()?;
        Ok(Dims { n, c, h, w, k })
    }
}

/// Largest `|coordinate * spatial_scale|` accepted: beyond 2^24 f32 no longer represents every
/// pixel position, and an adaptive sampling grid would grow without bound.
const MAX_SCALED_COORD: f64 = (1u64 << 24) as f64;

pub(crate) fn check(
    op: &'static str,
    input: &Tensor,
    boxes: &Tensor,
    output_size: (usize, usize),
    spatial_scale: f64,
) -> Result<Dims, RoiError> {
    let (n, c, h, w) = match *input.dims() {
        [n, c, h, w] => (n, c, h, w),
        _ => {
            return Err(RoiError::InputRank {
                op,
                shape: input.dims().to_vec(),
            })
        }
    };
    let k = match *boxes.dims() {
        [k, 5] => k,
        _ => {
            return Err(RoiError::BoxesShape {
                op,
                shape: boxes.dims().to_vec(),
            })
        }
    };
    let dtype = input.dtype();
    if !matches!(dtype, DType::F32 | DType::F64) {
        return Err(RoiError::DType {
            op,
            arg: "input",
            dtype,
        });
    }
    if boxes.dtype() != dtype {
        if !matches!(boxes.dtype(), DType::F32 | DType::F64) {
            return Err(RoiError::DType {
                op,
                arg: "boxes",
                dtype: boxes.dtype(),
            });
        }
        return Err(RoiError::DTypeMismatch {
            op,
            input: dtype,
            boxes: boxes.dtype(),
        });
    }
    if !input.device().same_device(boxes.device()) {
        return Err(RoiError::DeviceMismatch {
            op,
            input: input.device().location(),
            boxes: boxes.device().location(),
        });
    }
    if h == 0 || w == 0 {
        return Err(RoiError::EmptyInput { op, h, w });
    }
    let (ph, pw) = output_size;
    if ph == 0 || pw == 0 {
        return Err(RoiError::OutputSize { op, ph, pw });
    }
    if !(spatial_scale.is_finite() && spatial_scale > 0.0) {
        return Err(RoiError::SpatialScale {
            op,
            value: spatial_scale,
        });
    }
    if k > 0 {
        let rows = boxes
            .to_dtype(DType::F64)
            .and_then(|b| b.to_vec2::<f64>())
            .map_err(|_| RoiError::BoxesShape {
                op,
                shape: boxes.dims().to_vec(),
            })?;
        for (row, r) in rows.iter().enumerate() {
            let b = r[0];
            if !(b.is_finite() && b >= 0.0 && b.fract() == 0.0 && (b as usize) < n) {
                return Err(RoiError::BatchIndex {
                    op,
                    row,
                    value: b,
                    batch: n,
                });
            }
            for &v in &r[1..] {
                if !v.is_finite() {
                    return Err(RoiError::NonFiniteBox { op, row, value: v });
                }
                if (v * spatial_scale).abs() > MAX_SCALED_COORD {
                    return Err(RoiError::BoxOutOfRange { op, row, value: v });
                }
            }
        }
    }
    Ok(Dims { n, c, h, w, k })
}
