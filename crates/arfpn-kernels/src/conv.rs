//! 2-D convolution (NCHW) with a fast CPU forward and backward.
//!
//! On the CPU, [`conv2d_op`] runs as candle custom ops: the forward, the input gradient, the
//! weight gradient and the bias gradient are each their own op (see `conv_cpu.rs`), built on
//! the `gemm` crate's matrix product (the engine candle's matmul uses; its AVX-512 kernels
//! are enabled through the workspace's `x86-v4` feature and picked at run time):
//!
//! * forward: per (image, group, tile of output positions) an im2col tile in a per-thread,
//!   cache-sized buffer times the weight matrix; tiles run in parallel on rayon's pool;
//! * input gradient: per (image, group, block of input channels) `Wᵀ·dY` tile by tile, added
//!   into `dx` by col2im (blocks own disjoint planes of `dx`, so they run in parallel);
//! * weight gradient: per (group, block of input channels) `dY·colsᵀ` accumulated over
//!   images and tiles into that block's columns of `dW`;
//! * a 1×1 stride-1 unpadded convolution is a plain matrix product (no im2col);
//! * gradients are computed only for arguments that take part in a gradient computation
//!   (`Tensor::track_op`): no input gradient for an image, no weight gradient for frozen
//!   weights.
//!
//! Supported: f32 and f64, any stride, padding, dilation and group count, any batch size,
//! every height/width combination — including the odd/even mixes where candle 0.11's own
//! stride-2 backward fails. On other devices it is candle's `conv2d` (plus a broadcast bias),
//! so the layer is a drop-in on CUDA; there the backward is candle's, with its stride-2
//! parity bug worked around by zero-padding one dimension (`conv2d_candle`; tested on the
//! CPU, not yet run on a GPU).

use crate::conv_cpu::{self, Geom};
use crate::dispatch_float;
use crate::element::Element;
use crate::error::{config_err, shape_err, KernelError};
use crate::storage::contiguous_slice;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};
use serde::{Deserialize, Serialize};

/// Hyper-parameters of a 2-D convolution, in PyTorch's meaning (symmetric zero padding).
///
/// ```
/// let cfg = arfpn_kernels::Conv2dConfig { stride: 2, padding: 3, ..Default::default() };
/// assert_eq!((cfg.dilation, cfg.groups), (1, 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Conv2dConfig {
    /// Step of the kernel, in input pixels, along both H and W (≥ 1; default 1).
    pub stride: usize,
    /// Zero rows/columns added on each side of H and W (default 0).
    pub padding: usize,
    /// Spacing between kernel taps, in input pixels (≥ 1; default 1, a dense kernel).
    pub dilation: usize,
    /// Number of channel groups (≥ 1; default 1): input and output channels are split into
    /// `groups` blocks and each output block sees only its input block. Both channel counts
    /// must be divisible by it.
    pub groups: usize,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

const OP: &str = "conv2d";

/// Checks the arguments and returns the geometry of the convolution.
fn geometry(x: &Tensor, w: &Tensor, b: Option<&Tensor>, cfg: Conv2dConfig) -> Result<Geom> {
    if cfg.stride == 0 {
        return Err(config_err(OP, "stride", "must be >= 1"));
    }
    if cfg.dilation == 0 {
        return Err(config_err(OP, "dilation", "must be >= 1"));
    }
    if cfg.groups == 0 {
        return Err(config_err(OP, "groups", "must be >= 1"));
    }
    let &[n, c, h, wd] = x.dims() else {
        return Err(shape_err(OP, "x", x.dims(), "[N, C, H, W]"));
    };
    let &[o, cg, kh, kw] = w.dims() else {
        return Err(shape_err(OP, "w", w.dims(), "[O, C/groups, kh, kw]"));
    };
    if !c.is_multiple_of(cfg.groups) || !o.is_multiple_of(cfg.groups) || cg != c / cfg.groups {
        return Err(shape_err(
            OP,
            "w",
            w.dims(),
            format!(
                "[O, {}/{} , kh, kw] with O divisible by groups={}",
                c, cfg.groups, cfg.groups
            ),
        ));
    }
    if kh == 0 || kw == 0 || o == 0 {
        return Err(shape_err(OP, "w", w.dims(), "non-empty kernel"));
    }
    let eff_h = cfg.dilation * (kh - 1) + 1;
    let eff_w = cfg.dilation * (kw - 1) + 1;
    if eff_h > h + 2 * cfg.padding || eff_w > wd + 2 * cfg.padding {
        return Err(shape_err(
            OP,
            "x",
            x.dims(),
            format!(
                "padded spatial size at least the dilated kernel {eff_h}x{eff_w} (padding {})",
                cfg.padding
            ),
        ));
    }
    if let Some(b) = b {
        if b.dims() != [o] {
            return Err(shape_err(OP, "b", b.dims(), format!("[{o}]")));
        }
        if b.dtype() != x.dtype() {
            return Err(config_err(
                OP,
                "b",
                format!("dtype {:?} differs from x's {:?}", b.dtype(), x.dtype()),
            ));
        }
    }
    if w.dtype() != x.dtype() {
        return Err(config_err(
            OP,
            "w",
            format!("dtype {:?} differs from x's {:?}", w.dtype(), x.dtype()),
        ));
    }
    Ok(Geom {
        n,
        c,
        h,
        w: wd,
        o,
        kh,
        kw,
        ho: (h + 2 * cfg.padding - eff_h) / cfg.stride + 1,
        wo: (wd + 2 * cfg.padding - eff_w) / cfg.stride + 1,
        stride: cfg.stride,
        pad: cfg.padding,
        dil: cfg.dilation,
        groups: cfg.groups,
    })
}

/// 2-D convolution of `x: [N, C, H, W]` with `w: [O, C/groups, kh, kw]` plus an optional
/// bias `b: [O]`, in PyTorch's semantics (`torch.nn.functional.conv2d`). Returns
/// `[N, O, Ho, Wo]`, `Ho = (H + 2·padding − dilation·(kh−1) − 1) / stride + 1`.
///
/// CPU tensors (f32 or f64) use this crate's kernels, whose backward gives the gradients of
/// `x`, `w` and `b` for every shape. Other devices use candle's `conv2d`.
///
/// On the CPU, 3×3 convolutions at stride 1 (dilation 1, padding ≤ 2, ≥ 16 channels per
/// group, an output of at least 256 2×2 tiles) run as Winograd F(2×2, 3×3) products, with
/// 2.25× fewer multiply-adds than the im2col kernels and f32 errors at their level (the
/// tests compare both with f64 direct loops); which algorithm runs depends on the shape
/// only, never on the thread count. `ARFPN_NO_WINOGRAD=1` in the environment (read once)
/// keeps every convolution on im2col.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use arfpn_kernels::{conv2d_op, Conv2dConfig};
/// let x = Tensor::ones((1, 2, 5, 4), candle_core::DType::F32, &Device::Cpu)?;
/// let w = Tensor::ones((3, 2, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let cfg = Conv2dConfig { stride: 2, padding: 1, ..Default::default() };
/// let y = conv2d_op(&x, &w, None, cfg)?;
/// assert_eq!(y.dims(), &[1, 3, 3, 2]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn conv2d_op(x: &Tensor, w: &Tensor, b: Option<&Tensor>, cfg: Conv2dConfig) -> Result<Tensor> {
    let geom = geometry(x, w, b, cfg)?;
    if !x.device().is_cpu() {
        return conv2d_candle(x, w, b, cfg, &geom);
    }
    if !matches!(x.dtype(), DType::F32 | DType::F64) {
        return Err(KernelError::DType {
            op: OP,
            dtype: x.dtype(),
        }
        .into());
    }
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, ConvFwdBias(geom)),
        None => x.apply_op2(&w, ConvFwd(geom)),
    }
}

/// candle's own `conv2d` (non-CPU devices), with its stride-2 backward made correct for every
/// height/width mix. candle's backward derives one `output_padding` = `(H + 2p − eff) mod s`
/// from the height and applies it to the width too; when the two differ, the dimension with
/// the smaller remainder is zero-padded at its end until both remainders agree. That keeps
/// the output unchanged (the added zeros fall where the conv already saw zero padding, and
/// the remainder stays below the stride), and the added cells are cut off again by `narrow`
/// in the backward.
fn conv2d_candle(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    cfg: Conv2dConfig,
    g: &Geom,
) -> Result<Tensor> {
    let rem = |size: usize, k: usize| {
        (size + 2 * cfg.padding - (cfg.dilation * (k - 1) + 1)) % cfg.stride
    };
    let (rh, rw) = (rem(g.h, g.kh), rem(g.w, g.kw));
    let x = if rh != rw {
        let r = rh.max(rw);
        x.pad_with_zeros(2, 0, r - rh)?
            .pad_with_zeros(3, 0, r - rw)?
    } else {
        x.clone()
    };
    let y = x.conv2d(w, cfg.padding, cfg.stride, cfg.dilation, cfg.groups)?;
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, g.o, 1, 1))?),
        None => Ok(y),
    }
}

/// The contiguous data of a CPU storage as a slice of `T`.
fn forward<T: Element + candle_core::WithDType>(
    g: &Geom,
    x: (&CpuStorage, &Layout),
    w: (&CpuStorage, &Layout),
    b: Option<(&CpuStorage, &Layout)>,
    kernel: fn(&[T], &[T], &Geom, conv_cpu::Tiling) -> Vec<T>,
) -> Result<Vec<T>> {
    let xs = contiguous_slice::<T>(x.0, x.1, OP, "x")?;
    let ws = contiguous_slice::<T>(w.0, w.1, OP, "w")?;
    let mut y = kernel(xs, ws, g, Default::default());
    if let Some(b) = b {
        let bs = contiguous_slice::<T>(b.0, b.1, OP, "b")?;
        let l = g.ho * g.wo;
        for (i, plane) in y.chunks_mut(l).enumerate() {
            let bias = bs[i % g.o];
            plane.iter_mut().for_each(|v| *v += bias);
        }
    }
    Ok(y)
}

fn out_shape(g: &Geom) -> Shape {
    Shape::from((g.n, g.o, g.ho, g.wo))
}

fn dispatch_fwd(
    g: &Geom,
    x: (&CpuStorage, &Layout),
    w: (&CpuStorage, &Layout),
    b: Option<(&CpuStorage, &Layout)>,
) -> Result<(CpuStorage, Shape)> {
    // bf16 products when the calling thread asks for them (`precision.rs`).
    let st = if matches!(x.0, CpuStorage::F32(_)) && crate::precision::use_bf16() {
        CpuStorage::F32(forward::<f32>(g, x, w, b, conv_cpu::conv_fwd_bf16)?)
    } else {
        dispatch_float!(OP, x.0, |T| forward::<T>(g, x, w, b, conv_cpu::conv_fwd)?)
    };
    Ok((st, out_shape(g)))
}

/// Gradients of `x` and `w` from the output gradient; `None` for an argument that is not
/// part of a gradient computation (e.g. the input image, or frozen weights).
fn backward_xw(
    g: Geom,
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let grad = grad.contiguous()?;
    let dx = match x.track_op() {
        true => Some(grad.apply_op2_no_bwd(w, &ConvBwd(g, Grad::Input))?),
        false => None,
    };
    let dw = match w.track_op() {
        true => Some(x.apply_op2_no_bwd(&grad, &ConvBwd(g, Grad::Weight))?),
        false => None,
    };
    Ok((dx, dw))
}

/// Forward without bias: `(x, w) → y`.
struct ConvFwd(Geom);

impl CustomOp2 for ConvFwd {
    fn name(&self) -> &'static str {
        "arfpn-conv2d"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch_fwd(&self.0, (s1, l1), (s2, l2), None)
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        backward_xw(self.0, x, w, grad)
    }
}

/// Forward with bias: `(x, w, b) → y`.
struct ConvFwdBias(Geom);

impl CustomOp3 for ConvFwdBias {
    fn name(&self) -> &'static str {
        "arfpn-conv2d-bias"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch_fwd(&self.0, (s1, l1), (s2, l2), Some((s3, l3)))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = backward_xw(self.0, x, w, grad)?;
        let db = grad.contiguous()?.apply_op1_no_bwd(&ConvBwdBias(self.0))?;
        Ok((dx, dw, Some(db)))
    }
}

/// Which gradient a [`ConvBwd`] op computes.
#[derive(Clone, Copy, Debug)]
enum Grad {
    /// `(dy, w) → dx`.
    Input,
    /// `(x, dy) → dw`.
    Weight,
}

/// The input or weight gradient of a convolution (see [`Grad`] for the operands).
struct ConvBwd(Geom, Grad);

/// A gradient kernel: `(first operand, second operand, geometry, tiling) → gradient`.
type GradKernel<T> = fn(&[T], &[T], &Geom, conv_cpu::Tiling) -> Vec<T>;

impl ConvBwd {
    /// The f32/f64 kernel and the names of the two operands.
    fn kernel<T: Element>(&self) -> (GradKernel<T>, [&'static str; 2]) {
        match self.1 {
            Grad::Input => (conv_cpu::conv_bwd_input::<T>, ["grad", "w"]),
            Grad::Weight => (conv_cpu::conv_bwd_weight::<T>, ["x", "grad"]),
        }
    }

    /// `kernel` on the two operands.
    fn run<T: Element>(
        &self,
        kernel: GradKernel<T>,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
    ) -> Result<Vec<T>> {
        let [n1, n2] = self.kernel::<T>().1;
        Ok(kernel(
            contiguous_slice(s1, l1, OP, n1)?,
            contiguous_slice(s2, l2, OP, n2)?,
            &self.0,
            Default::default(),
        ))
    }
}

impl CustomOp2 for ConvBwd {
    fn name(&self) -> &'static str {
        match self.1 {
            Grad::Input => "arfpn-conv2d-bwd-input",
            Grad::Weight => "arfpn-conv2d-bwd-weight",
        }
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = ((s1, l1), (s2, l2));
        // bf16 products when the calling thread asks for them (`precision.rs`).
        let st = if matches!(s1, CpuStorage::F32(_)) && crate::precision::use_bf16() {
            let bf16: GradKernel<f32> = match self.1 {
                Grad::Input => conv_cpu::conv_bwd_input_bf16,
                Grad::Weight => conv_cpu::conv_bwd_weight_bf16,
            };
            CpuStorage::F32(self.run(bf16, a, b)?)
        } else {
            dispatch_float!(OP, s1, |T| self.run(self.kernel::<T>().0, a, b)?)
        };
        let g = &self.0;
        let shape = match self.1 {
            Grad::Input => Shape::from((g.n, g.c, g.h, g.w)),
            Grad::Weight => Shape::from((g.o, g.c / g.groups, g.kh, g.kw)),
        };
        Ok((st, shape))
    }
}

/// Bias gradient: `dy → db`.
struct ConvBwdBias(Geom);

impl CustomOp1 for ConvBwdBias {
    fn name(&self) -> &'static str {
        "arfpn-conv2d-bwd-bias"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let l = g.ho * g.wo;
        let st = dispatch_float!(OP, s1, |T| conv_cpu::conv_bwd_bias(
            contiguous_slice(s1, l1, OP, "grad")?,
            g.n,
            g.o,
            l,
        ));
        Ok((st, Shape::from(g.o)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t(dims: &[usize], seed: usize) -> Result<Tensor> {
        let n: usize = dims.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|i| ((i * 7919 + seed * 104729) % 1000) as f64 / 500.0 - 1.0)
            .collect();
        Tensor::from_vec(v, dims, &Device::Cpu)
    }

    /// The non-CPU route (run here on the CPU) gives the same values and gradients as the
    /// CPU kernels, including odd/even mixes where candle's plain backward fails.
    #[test]
    fn candle_route_matches_cpu_kernels_on_parity_mixes() -> Result<()> {
        for (i, &(h, w, k, s, p, d)) in [
            (16, 15, 3, 2, 1, 1),
            (15, 16, 3, 2, 1, 1),
            (9, 12, 7, 2, 3, 1),
            (10, 13, 3, 3, 1, 1),
            (11, 8, 3, 2, 2, 2),
        ]
        .iter()
        .enumerate()
        {
            let cfg = Conv2dConfig {
                stride: s,
                padding: p,
                dilation: d,
                groups: 1,
            };
            let x = Var::from_tensor(&t(&[2, 3, h, w], i)?)?;
            let wt = Var::from_tensor(&t(&[4, 3, k, k], i + 10)?)?;
            let b = Var::from_tensor(&t(&[4], i + 20)?)?;
            let r = t(conv2d_op(&x, &wt, None, cfg)?.dims(), i + 30)?;
            let g = geometry(&x, &wt, Some(&b), cfg)?;
            let y1 = conv2d_op(&x, &wt, Some(&b), cfg)?;
            let y2 = conv2d_candle(&x, &wt, Some(&b), cfg, &g)?;
            let diff = |a: &Tensor, b: &Tensor| -> Result<f64> {
                (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()
            };
            assert!(diff(&y1, &y2)? < 1e-12, "case {i} forward");
            let g1 = (y1 * &r)?.sum_all()?.backward()?;
            let g2 = (y2 * &r)?.sum_all()?.backward()?;
            for v in [&x, &wt, &b] {
                let (a, c) = (g1.get(v).expect("ours"), g2.get(v).expect("candle route"));
                assert!(diff(a, c)? < 1e-10, "case {i} gradient");
            }
        }
        Ok(())
    }
}
