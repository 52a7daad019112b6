//! RoIPool (Girshick, Fast R-CNN) with torchvision's exact semantics, as a candle custom op
//! whose backward is itself a custom op.
//!
//! Each RoI is rounded to whole pixels (`round(x * spatial_scale)`, half away from zero), is
//! at least 1x1, and each bin takes the maximum of its pixels (0 for an empty bin). The backward
//! op recomputes each bin's argmax from the input instead of storing it (the first maximum in
//! row-major order wins, as in torchvision) and adds the bin's gradient there. CPU: rayon over
//! channels in the forward and over the `N * C` planes in the backward (each plane visits its
//! image's RoIs in input order: no atomics, deterministic), so that a task's planes stay in cache.
use crate::checks::{check, Dims};
use crate::roi_align::same_dtype;
use arfpn_kernels::Element;
use arfpn_kernels::{contiguous_slice, dispatch_float};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// RoIPool over `input` (`[N, C, H, W]`, f32 or f64) for `boxes` (`[K, 5]`, same dtype, rows
/// `(batch_index, x1, y1, x2, y2)` in image coordinates), giving `[K, C, ph, pw]`.
///
/// Mirrors `torchvision.ops.roi_pool(input, boxes, output_size, spatial_scale)`. The gradient
/// flows to `input` (to each bin's first maximum), not to `boxes`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// # fn main() -> candle_core::Result<()> {
/// let x = Tensor::arange(0f32, 16., &Device::Cpu)?.reshape((1, 1, 4, 4))?;
/// let boxes = Tensor::new(&[[0f32, 0., 0., 3., 3.]], &Device::Cpu)?;
/// let y = arfpn_roi_align::roi_pool(&x, &boxes, (2, 2), 1.0)?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![5., 7., 13., 15.]);
/// # Ok(()) }
/// ```
pub fn roi_pool(
    input: &Tensor,
    boxes: &Tensor,
    output_size: (usize, usize),
    spatial_scale: f32,
) -> Result<Tensor> {
    let d = check("roi_pool", input, boxes, output_size, spatial_scale as f64)?;
    let p = Params {
        ph: output_size.0,
        pw: output_size.1,
        scale: spatial_scale as f64,
    };
    let boxes = boxes.detach().contiguous()?;
    if d.k * d.c == 0 && !input.device().is_cpu() {
        return Tensor::zeros((d.k, d.c, p.ph, p.pw), input.dtype(), input.device());
    }
    input.contiguous()?.apply_op2(&boxes, RoiPool { p })
}

#[derive(Debug, Clone, Copy)]
struct Params {
    ph: usize,
    pw: usize,
    scale: f64,
}

struct RoiPool {
    p: Params,
}

/// `(grad_output [K, C, PH, PW], input [N, C, H, W], boxes [K, 5]) -> grad_input`.
struct RoiPoolBackward {
    p: Params,
}

/// The pixel ranges of every bin of one RoI.
struct RoiBins {
    batch: usize,
    /// `(start, end)` per output row.
    rows: Vec<(usize, usize)>,
    /// `(start, end)` per output column.
    cols: Vec<(usize, usize)>,
}

fn roi_bins<T: Element>(roi: &[T], p: &Params, h: usize, w: usize) -> RoiBins {
    let scale = T::from_f64(p.scale);
    let r = |v: T| (v * scale).round().to_i64();
    let (sw, sh, ew, eh) = (r(roi[1]), r(roi[2]), r(roi[3]), r(roi[4]));
    let ranges = |start: i64, end: i64, pooled: usize, size: usize| {
        let len = (end - start + 1).max(1);
        let bin = T::from_i64(len) / T::from_i64(pooled as i64);
        (0..pooled)
            .map(|i| {
                let a = (T::from_i64(i as i64) * bin).floor().to_i64();
                let b = (T::from_i64(i as i64 + 1) * bin).ceil().to_i64();
                let clamp = |v: i64| (v + start).clamp(0, size as i64) as usize;
                (clamp(a), clamp(b))
            })
            .collect()
    };
    RoiBins {
        batch: roi[0].to_i64() as usize,
        rows: ranges(sh, eh, p.ph, h),
        cols: ranges(sw, ew, p.pw, w),
    }
}

/// torchvision's bin maximum over `plane` (`w` pixels per row): `(value, Some(index))`, or
/// `(0, None)` for an empty bin.
#[inline]
fn bin_max<T: Element>(
    plane: &[T],
    w: usize,
    (h0, h1): (usize, usize),
    (w0, w1): (usize, usize),
) -> (T, Option<usize>) {
    if h1 <= h0 || w1 <= w0 {
        return (T::zero(), None);
    }
    let (mut m, mut arg) = (T::POOL_LOWEST, None);
    for y in h0..h1 {
        for (x, &v) in plane[y * w + w0..y * w + w1].iter().enumerate() {
            if v > m {
                m = v;
                arg = Some(y * w + w0 + x);
            }
        }
    }
    (m, arg)
}

/// The value of [`bin_max`] without tracking the argmax (the forward's inner loop).
#[inline]
fn bin_value<T: Element>(
    plane: &[T],
    w: usize,
    (h0, h1): (usize, usize),
    (w0, w1): (usize, usize),
) -> T {
    if h1 <= h0 || w1 <= w0 {
        return T::zero();
    }
    let mut m = T::POOL_LOWEST;
    for y in h0..h1 {
        for &v in &plane[y * w + w0..y * w + w1] {
            m = if v > m { v } else { m };
        }
    }
    m
}

fn forward_cpu<T: Element>(input: &[T], rois: &[T], d: Dims, p: &Params) -> Vec<T> {
    let bins = p.ph * p.pw;
    if d.k == 0 || d.c == 0 {
        return vec![T::zero(); d.k * d.c * bins];
    }
    let hw = d.h * d.w;
    let geo: Vec<RoiBins> = (0..d.k)
        .into_par_iter()
        .map(|k| roi_bins(&rois[k * 5..k * 5 + 5], p, d.h, d.w))
        .collect();
    // Channel-major first ([C, K, bins]): each task keeps one channel plane per image in cache
    // while it visits every RoI (RoI-major order would be bound by memory latency).
    let mut by_channel = vec![T::zero(); d.c * d.k * bins];
    by_channel
        .par_chunks_mut(d.k * bins)
        .enumerate()
        .for_each(|(ch, o)| {
            for (b, ok) in geo.iter().zip(o.chunks_exact_mut(bins)) {
                let plane = &input[(b.batch * d.c + ch) * hw..(b.batch * d.c + ch + 1) * hw];
                for (py, &rows) in b.rows.iter().enumerate() {
                    for (px, &cols) in b.cols.iter().enumerate() {
                        ok[py * p.pw + px] = bin_value(plane, d.w, rows, cols);
                    }
                }
            }
        });
    // Reorder [C, K, bins] -> [K, C, bins].
    let mut out = vec![T::zero(); d.k * d.c * bins];
    out.par_chunks_mut(d.c * bins)
        .enumerate()
        .for_each(|(k, o)| {
            for (ch, oc) in o.chunks_exact_mut(bins).enumerate() {
                oc.copy_from_slice(&by_channel[(ch * d.k + k) * bins..(ch * d.k + k + 1) * bins]);
            }
        });
    out
}

fn backward_cpu<T: Element>(grad: &[T], input: &[T], rois: &[T], d: Dims, p: &Params) -> Vec<T> {
    let bins = p.ph * p.pw;
    let hw = d.h * d.w;
    let mut gin = vec![T::zero(); d.n * d.c * hw];
    if d.k == 0 || d.c == 0 {
        return gin;
    }
    let geo: Vec<RoiBins> = (0..d.k)
        .into_par_iter()
        .map(|k| roi_bins(&rois[k * 5..k * 5 + 5], p, d.h, d.w))
        .collect();
    let mut by_image = vec![Vec::new(); d.n];
    for (k, b) in geo.iter().enumerate() {
        by_image[b.batch].push(k);
    }
    gin.par_chunks_mut(hw)
        .enumerate()
        .for_each(|(plane_idx, gplane)| {
            let (img, ch) = (plane_idx / d.c, plane_idx % d.c);
            let plane = &input[plane_idx * hw..(plane_idx + 1) * hw];
            for &k in &by_image[img] {
                let b = &geo[k];
                let g = &grad[(k * d.c + ch) * bins..(k * d.c + ch + 1) * bins];
                for (py, &rows) in b.rows.iter().enumerate() {
                    for (px, &cols) in b.cols.iter().enumerate() {
                        if let (_, Some(i)) = bin_max(plane, d.w, rows, cols) {
                            gplane[i] += g[py * p.pw + px];
                        }
                    }
                }
            }
        });
    gin
}

impl CustomOp2 for RoiPool {
    fn name(&self) -> &'static str {
        "roi_pool"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = Dims::from_layouts(l1, l2)?;
        let op = "roi_pool";
        same_dtype(op, &[s1, s2])?;
        let out = dispatch_float!(op, s1, |T| forward_cpu::<T>(
            contiguous_slice(s1, l1, op, "input")?,
            contiguous_slice(s2, l2, op, "rois")?,
            d,
            &self.p,
        ));
        Ok((out, Shape::from((d.k, d.c, self.p.ph, self.p.pw))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let d = Dims::from_layouts(l1, l2)?;
        let l = launch(&self.p, d.k, d.c, d.h, d.w);
        let out = crate::cuda::roi_pool_fwd((s1, l1), (s2, l2), &l)?;
        Ok((out, Shape::from((d.k, d.c, self.p.ph, self.p.pw))))
    }

    fn bwd(
        &self,
        input: &Tensor,
        boxes: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g =
            grad.contiguous()?
                .apply_op3_no_bwd(input, boxes, &RoiPoolBackward { p: self.p })?;
        Ok((Some(g), None))
    }
}

#[cfg(feature = "cuda")]
fn launch(p: &Params, k: usize, c: usize, h: usize, w: usize) -> crate::cuda::Launch {
    crate::cuda::Launch {
        total: k * c * p.ph * p.pw,
        c,
        h,
        w,
        ph: p.ph,
        pw: p.pw,
        scale: p.scale,
        sampling_ratio: 0,
        aligned: false,
    }
}

impl CustomOp3 for RoiPoolBackward {
    fn name(&self) -> &'static str {
        "roi_pool_backward"
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
        let d = Dims::from_layouts(l2, l3)?;
        let op = "roi_pool backward";
        same_dtype(op, &[s1, s2, s3])?;
        let out = dispatch_float!(op, s1, |T| backward_cpu::<T>(
            contiguous_slice(s1, l1, op, "grad")?,
            contiguous_slice(s2, l2, op, "input")?,
            contiguous_slice(s3, l3, op, "rois")?,
            d,
            &self.p,
        ));
        Ok((out, Shape::from((d.n, d.c, d.h, d.w))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let d = Dims::from_layouts(l2, l3)?;
        let l = launch(&self.p, d.k, d.c, d.h, d.w);
        let out =
            crate::cuda::roi_pool_bwd((s1, l1), (s2, l2), (s3, l3), d.n * d.c * d.h * d.w, &l)?;
        Ok((out, Shape::from((d.n, d.c, d.h, d.w))))
    }
}
