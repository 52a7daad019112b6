//! CUDA launches of the kernels in `kernels/*.cu` (PTX built by `build.rs` when the `cuda`
//! feature is on). Every kernel runs one thread per output element in a grid-stride loop; the
//! backward kernels `atomicAdd` into a zeroed buffer, as torchvision's do.
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CudaStorage, DType, Layout, Result};

const ROI_ALIGN_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/roi_align.ptx"));
const ROI_POOL_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/roi_pool.ptx"));

/// What the kernels of one op need besides the tensors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Launch {
    /// Number of output elements of the kernel's work (K * C * PH * PW for all four kernels).
    pub total: usize,
    /// Channels `C` of the feature map.
    pub c: usize,
    /// Height `H` of the feature map.
    pub h: usize,
    /// Width `W` of the feature map.
    pub w: usize,
    /// Output bins along the height.
    pub ph: usize,
    /// Output bins along the width.
    pub pw: usize,
    /// `spatial_scale`: feature-map pixels per image pixel.
    pub scale: f64,
    /// RoIAlign only.
    pub sampling_ratio: i32,
    /// RoIAlign only.
    pub aligned: bool,
}

fn config(total: usize) -> LaunchConfig {
    let threads = 256u32;
    let blocks = total.div_ceil(threads as usize).clamp(1, 65_535) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn suffix(dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("f32"),
        DType::F64 => Ok("f64"),
        d => Err(candle_core::Error::Msg(format!(
            "arfpn-roi-align: unsupported dtype {d:?} on CUDA"
        ))),
    }
}

trait Elem: CudaDType + DeviceRepr + ValidAsZeroBits + candle_core::WithDType {}
impl Elem for f32 {}
impl Elem for f64 {}

/// A kernel family of `kernels/*.cu`: `{name}_f32` / `{name}_f64` in `module` (from `ptx`);
/// `roi_align` kernels take two more scalars (sampling ratio, aligned).
struct Kernel {
    name: &'static str,
    ptx: &'static str,
    module: &'static str,
    roi_align: bool,
}

const ALIGN_FWD: Kernel = Kernel {
    name: "roi_align_fwd",
    ptx: ROI_ALIGN_PTX,
    module: "arfpn_roi_align",
    roi_align: true,
};
const ALIGN_BWD: Kernel = Kernel {
    name: "roi_align_bwd",
    ptx: ROI_ALIGN_PTX,
    module: "arfpn_roi_align",
    roi_align: true,
};
const POOL_FWD: Kernel = Kernel {
    name: "roi_pool_fwd",
    ptx: ROI_POOL_PTX,
    module: "arfpn_roi_pool",
    roi_align: false,
};
const POOL_BWD: Kernel = Kernel {
    name: "roi_pool_bwd",
    ptx: ROI_POOL_PTX,
    module: "arfpn_roi_pool",
    roi_align: false,
};

/// Runs kernel `k` on `inputs` (storages with their layouts, contiguous) and returns a new
/// output of `out_len` elements (zeroed first when `zeroed`, for the scatter kernels).
fn run<T: Elem>(
    k: &Kernel,
    inputs: &[(&CudaStorage, &Layout)],
    out_len: usize,
    zeroed: bool,
    l: &Launch,
) -> Result<CudaStorage> {
    let dev = inputs[0].0.device().clone();
    let out = if zeroed {
        dev.alloc_zeros::<T>(out_len.max(1))?
    } else {
        unsafe { dev.alloc::<T>(out_len.max(1))? }
    };
    if l.total > 0 {
        let name = format!("{}_{}", k.name, suffix(T::DTYPE)?);
        let func = dev.get_or_load_custom_func(&name, k.module, k.ptx)?;
        let views = inputs
            .iter()
            .map(|(s, lay)| Ok(s.as_cuda_slice::<T>()?.slice(lay.start_offset()..)))
            .collect::<Result<Vec<_>>>()?;
        let mut b = func.builder();
        for v in &views {
            b.arg(v);
        }
        b.arg(&out);
        let scale = T::from_f64(l.scale);
        let (total, c, h, w, ph, pw) = (
            l.total as i64,
            l.c as i32,
            l.h as i32,
            l.w as i32,
            l.ph as i32,
            l.pw as i32,
        );
        let (sampling_ratio, aligned) = (l.sampling_ratio, l.aligned as i32);
        b.arg(&total)
            .arg(&c)
            .arg(&h)
            .arg(&w)
            .arg(&ph)
            .arg(&pw)
            .arg(&scale);
        if k.roi_align {
            b.arg(&sampling_ratio).arg(&aligned);
        }
        unsafe { b.launch(config(l.total)) }.w()?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev))
}

fn dispatch(
    k: &Kernel,
    inputs: &[(&CudaStorage, &Layout)],
    out_len: usize,
    zeroed: bool,
    l: &Launch,
) -> Result<CudaStorage> {
    match inputs[0].0.dtype() {
        DType::F32 => run::<f32>(k, inputs, out_len, zeroed, l),
        DType::F64 => run::<f64>(k, inputs, out_len, zeroed, l),
        d => Err(candle_core::Error::Msg(format!(
            "arfpn-roi-align: unsupported dtype {d:?} on CUDA"
        ))),
    }
}

/// RoIAlign forward: `input` [N, C, H, W], `rois` [K, 5] -> [K, C, PH, PW].
pub(crate) fn roi_align_fwd(
    input: (&CudaStorage, &Layout),
    rois: (&CudaStorage, &Layout),
    l: &Launch,
) -> Result<CudaStorage> {
    dispatch(&ALIGN_FWD, &[input, rois], l.total, false, l)
}

/// RoIAlign backward: `grad_out` [K, C, PH, PW], `rois` -> grad_input of `in_len` elements.
pub(crate) fn roi_align_bwd(
    grad: (&CudaStorage, &Layout),
    rois: (&CudaStorage, &Layout),
    in_len: usize,
    l: &Launch,
) -> Result<CudaStorage> {
    dispatch(&ALIGN_BWD, &[grad, rois], in_len, true, l)
}

/// RoIPool forward.
pub(crate) fn roi_pool_fwd(
    input: (&CudaStorage, &Layout),
    rois: (&CudaStorage, &Layout),
    l: &Launch,
) -> Result<CudaStorage> {
    dispatch(&POOL_FWD, &[input, rois], l.total, false, l)
}

/// RoIPool backward (recomputes each bin's argmax from `input`).
pub(crate) fn roi_pool_bwd(
    grad: (&CudaStorage, &Layout),
    input: (&CudaStorage, &Layout),
    rois: (&CudaStorage, &Layout),
    in_len: usize,
    l: &Launch,
) -> Result<CudaStorage> {
    dispatch(&POOL_BWD, &[grad, input, rois], in_len, true, l)
}
