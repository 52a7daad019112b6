//! RoIAlign (He et al., Mask R-CNN) with torchvision's exact semantics, as a candle custom op
//! whose backward is itself a custom op.
//!
//! CPU strategy. The bilinear sampling of one output bin is separable: a sample at `(y, x)`
//! weighs pixel `(yi, xi)` by `wy(yi) * wx(xi)`, and torchvision's border rules (a sample
//! beyond `-1` or the size contributes zero; coordinates clamp at 0 and at the last pixel)
//! act on each axis separately. So, once per RoI, each output row `ph` gets a short list of
//! `(pixel row, summed weight)` taps (all `grid_h` samples merged, `1 / count` folded in) and
//! each output column `pw` one of `(pixel column, weight)`; these are reused for every channel.
//! * forward: the input is transposed once to `[N, H, W, C]`, so each tap is a contiguous,
//!   vectorised `acc[c] += w * row[c]` over all channels; rayon runs over RoIs.
//! * backward: the output gradient is transposed to `[K, bins, C]` and scattered into an
//!   `[N, H, W, C]` buffer with the same vectorised axpy; rayon runs over bands of rows, each
//!   band visiting the RoIs in input order. No atomics, no races, and the summation order of
//!   every element is fixed, so the result is deterministic and independent of the thread
//!   count. The buffer is transposed back to `[N, C, H, W]` at the end.
use crate::checks::{check, Dims};
use arfpn_kernels::Element;
use arfpn_kernels::{contiguous_slice, dispatch_float};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// RoIAlign over `input` (`[N, C, H, W]`, f32 or f64) for `boxes` (`[K, 5]`, same dtype, rows
/// `(batch_index, x1, y1, x2, y2)` in image coordinates), giving `[K, C, ph, pw]`.
///
/// Mirrors `torchvision.ops.roi_align(input, boxes, output_size, spatial_scale,
/// sampling_ratio, aligned)`:
/// * box coordinates are multiplied by `spatial_scale` (`1 / stride` of the feature map);
/// * `aligned = true` shifts them by -0.5 pixel (the pixel model of Detectron2's
///   `ROIAlignV2`); `aligned = false` keeps torchvision's legacy model and forces each RoI to at
///   least 1x1 pixel;
/// * `sampling_ratio > 0` samples `sampling_ratio^2` points per bin; `<= 0` samples
///   `ceil(roi_h / ph) x ceil(roi_w / pw)` points (adaptive, per RoI); the bin value is their mean;
/// * a sample beyond `-1` or the map size contributes zero (it is still counted); others clamp
///   to the map.
///
/// Which defaults to use: torchvision's Faster R-CNN pools with `aligned = false,
/// sampling_ratio = 2`; Detectron2 (and mmdetection) with `aligned = true, sampling_ratio = 0`.
/// The arfpn detector uses Detectron2's, the modern pixel model; this op takes either.
///
/// The gradient flows to `input` (not to `boxes`, as in torchvision). Bad arguments (ranks,
/// dtypes, devices, a batch index outside `0..N`, non-finite coordinates) give an error.
///
/// ```
/// use candle_core::{Device, Tensor};
/// # fn main() -> candle_core::Result<()> {
/// let x = Tensor::arange(0f32, 16., &Device::Cpu)?.reshape((1, 1, 4, 4))?;
/// let boxes = Tensor::new(&[[0f32, 0., 0., 4., 4.]], &Device::Cpu)?;
/// let y = arfpn_roi_align::roi_align(&x, &boxes, (2, 2), 1.0, 2, true)?;
/// assert_eq!(y.dims(), &[1, 1, 2, 2]);
/// // The half-pixel shift puts bin (0, 0)'s four samples on the centres of pixels (0, 0),
/// // (0, 1), (1, 0) and (1, 1), whose values 0, 1, 4, 5 average to 2.5.
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![2.5, 4.5, 10.5, 12.5]);
/// # Ok(()) }
/// ```
pub fn roi_align(
    input: &Tensor,
    boxes: &Tensor,
    output_size: (usize, usize),
    spatial_scale: f32,
    sampling_ratio: i32,
    aligned: bool,
) -> Result<Tensor> {
    let d = check("roi_align", input, boxes, output_size, spatial_scale as f64)?;
    let p = Params {
        ph: output_size.0,
        pw: output_size.1,
        scale: spatial_scale as f64,
        sampling_ratio,
        aligned,
    };
    let boxes = boxes.detach().contiguous()?;
    if d.k * d.c == 0 && !input.device().is_cpu() {
        // Nothing to launch; an empty result carries no gradient anyway.
        return Tensor::zeros((d.k, d.c, p.ph, p.pw), input.dtype(), input.device());
    }
    input.contiguous()?.apply_op2(&boxes, RoiAlign { p })
}

#[derive(Debug, Clone, Copy)]
struct Params {
    ph: usize,
    pw: usize,
    scale: f64,
    sampling_ratio: i32,
    aligned: bool,
}

/// The forward op: `(input [N, C, H, W], boxes [K, 5]) -> [K, C, PH, PW]`.
struct RoiAlign {
    p: Params,
}

/// The backward op: `(grad_output [K, C, PH, PW], boxes [K, 5]) -> grad_input [N, C, H, W]`.
struct RoiAlignBackward {
    p: Params,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
}

/// Merged bilinear taps along one axis: output row (or column) `p` reads pixels
/// `idx[bounds[p]..bounds[p + 1]]` with weights `w[same range]`.
pub(crate) struct AxisTaps<T> {
    idx: Vec<usize>,
    w: Vec<T>,
    bounds: Vec<usize>,
}

impl<T: Element> AxisTaps<T> {
    fn taps(&self, p: usize) -> impl Iterator<Item = (usize, T)> + '_ {
        let r = self.bounds[p]..self.bounds[p + 1];
        self.idx[r.clone()]
            .iter()
            .copied()
            .zip(self.w[r].iter().copied())
    }

    /// Taps of `pooled` output positions along an axis of `size` pixels. `start`, `bin` and
    /// `grid` are torchvision's `roi_start`, `bin_size` and `roi_bin_grid`; every weight is
    /// multiplied by `factor`.
    fn new(start: T, bin: T, grid: i64, pooled: usize, size: usize, factor: T) -> Self {
        let mut t = AxisTaps {
            idx: Vec::new(),
            w: Vec::new(),
            bounds: vec![0],
        };
        let grid_t = T::from_i64(grid);
        let (lo, hi) = (T::from_f64(-1.0), T::from_i64(size as i64));
        for p in 0..pooled {
            let from = t.idx.len();
            for i in 0..grid.max(0) {
                // Same expression and evaluation order as torchvision.
                let mut c = start
                    + T::from_i64(p as i64) * bin
                    + T::from_f64(i as f64 + 0.5) * bin / grid_t;
                if c < lo || c > hi {
                    continue; // the whole sample contributes zero
                }
                if c <= T::zero() {
                    c = T::zero();
                }
                let mut low = c.to_i64() as usize;
                let high;
                if low >= size - 1 {
                    low = size - 1;
                    high = low;
                    c = T::from_i64(low as i64);
                } else {
                    high = low + 1;
                }
                let l = c - T::from_i64(low as i64);
                t.push(from, low, (T::one() - l) * factor);
                t.push(from, high, l * factor);
            }
            t.bounds.push(t.idx.len());
        }
        t
    }

    /// Adds `w` to pixel `i`'s tap of the current position (taps from `from` on).
    fn push(&mut self, from: usize, i: usize, w: T) {
        // Samples are monotonic along an axis, so a repeated pixel is one of the last taps.
        if let Some(j) = (from..self.idx.len()).rev().find(|&j| self.idx[j] == i) {
            self.w[j] += w;
        } else {
            self.idx.push(i);
            self.w.push(w);
        }
    }
}

/// The taps of one RoI.
pub(crate) struct RoiTaps<T> {
    batch: usize,
    y: AxisTaps<T>,
    x: AxisTaps<T>,
}

fn roi_taps<T: Element>(roi: &[T], p: &Params, h: usize, w: usize) -> RoiTaps<T> {
    let scale = T::from_f64(p.scale);
    let offset = T::from_f64(if p.aligned { 0.5 } else { 0.0 });
    let (sw, sh) = (roi[1] * scale - offset, roi[2] * scale - offset);
    let (ew, eh) = (roi[3] * scale - offset, roi[4] * scale - offset);
    let (mut rw, mut rh) = (ew - sw, eh - sh);
    if !p.aligned {
        // torchvision: "force malformed ROIs to be 1x1"
        if rw < T::one() {
            rw = T::one();
        }
        if rh < T::one() {
            rh = T::one();
        }
    }
    let (ph, pw) = (T::from_i64(p.ph as i64), T::from_i64(p.pw as i64));
    let (bh, bw) = (rh / ph, rw / pw);
    let grid = |r: T, pooled: T| {
        if p.sampling_ratio > 0 {
            p.sampling_ratio as i64
        } else {
            (r / pooled).ceil().to_i64()
        }
    };
    let (gh, gw) = (grid(rh, ph), grid(rw, pw));
    let count = (gh.max(0) * gw.max(0)).max(1);
    RoiTaps {
        batch: roi[0].to_i64() as usize,
        y: AxisTaps::new(sh, bh, gh, p.ph, h, T::one() / T::from_i64(count)),
        x: AxisTaps::new(sw, bw, gw, p.pw, w, T::one()),
    }
}

/// Transposes each row-major `[rows, cols]` matrix of `x` (a batch of them) to `[cols, rows]`, in
/// cache-sized tiles, in parallel. `[N, C, HW]` <-> `[N, HW, C]`.
pub(crate) fn transpose<T: Element>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
    const TILE: usize = 32;
    let mut out = vec![T::zero(); x.len()];
    if rows == 0 || cols == 0 {
        return out;
    }
    out.par_chunks_mut(rows * cols)
        .zip(x.par_chunks(rows * cols))
        .for_each(|(o, a)| {
            // Each task writes TILE output rows (= input columns c0..c0 + TILE).
            o.par_chunks_mut(TILE * rows)
                .enumerate()
                .for_each(|(t, ob)| {
                    let c0 = t * TILE;
                    let nc = ob.len() / rows;
                    for r0 in (0..rows).step_by(TILE) {
                        let r1 = (r0 + TILE).min(rows);
                        for j in 0..nc {
                            let orow = &mut ob[j * rows..(j + 1) * rows];
                            for (i, v) in orow[r0..r1].iter_mut().enumerate() {
                                *v = a[(r0 + i) * cols + c0 + j];
                            }
                        }
                    }
                });
        });
    out
}

fn forward_cpu<T: Element>(input: &[T], rois: &[T], d: Dims, p: &Params) -> Vec<T> {
    let bins = p.ph * p.pw;
    let mut out = vec![T::zero(); d.k * d.c * bins];
    if d.k == 0 || d.c == 0 {
        return out;
    }
    let (c, h, w) = (d.c, d.h, d.w);
    let nhwc = transpose(input, c, h * w);
    out.par_chunks_mut(c * bins).enumerate().for_each_init(
        || vec![T::zero(); bins * c],
        |acc, (k, o)| {
            acc.fill(T::zero());
            let t = roi_taps(&rois[k * 5..k * 5 + 5], p, h, w);
            let base = t.batch * h * w * c;
            for py in 0..p.ph {
                for (yi, wy) in t.y.taps(py) {
                    let row = &nhwc[base + yi * w * c..base + (yi + 1) * w * c];
                    for px in 0..p.pw {
                        let a = &mut acc[(py * p.pw + px) * c..(py * p.pw + px + 1) * c];
                        for (xi, wx) in t.x.taps(px) {
                            axpy(a, wy * wx, &row[xi * c..(xi + 1) * c]);
                        }
                    }
                }
            }
            for b in 0..bins {
                for (ch, v) in acc[b * c..(b + 1) * c].iter().enumerate() {
                    o[ch * bins + b] = *v;
                }
            }
        },
    );
    out
}

#[inline]
fn axpy<T: Element>(acc: &mut [T], a: T, x: &[T]) {
    for (o, v) in acc.iter_mut().zip(x) {
        *o += a * *v;
    }
}

/// Rows of the `[N * H, W * C]` gradient each backward task owns.
const BAND_ROWS: usize = 4;

fn backward_cpu<T: Element>(
    grad: &[T],
    rois: &[T],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    p: &Params,
) -> Vec<T> {
    let bins = p.ph * p.pw;
    let k = rois.len() / 5;
    if k == 0 || c == 0 {
        return vec![T::zero(); n * c * h * w];
    }
    let taps: Vec<RoiTaps<T>> = (0..k)
        .into_par_iter()
        .map(|i| roi_taps(&rois[i * 5..i * 5 + 5], p, h, w))
        .collect();
    // Rows of the map each RoI touches (global row = batch * h + y), to skip RoIs quickly.
    let rows: Vec<(usize, usize)> = taps
        .iter()
        .map(|t| {
            let (lo, hi) =
                t.y.idx
                    .iter()
                    .fold((usize::MAX, 0), |(a, b), &y| (a.min(y), b.max(y + 1)));
            (t.batch * h + lo.min(hi), t.batch * h + hi)
        })
        .collect();
    // Scatter into an [N, H, W, C] gradient; each task owns BAND_ROWS rows and visits the RoIs
    // in input order, so no element is written by two threads and every element's
    // summation order is fixed. For each output row `py` that reaches the band, the RoI's
    // gradient of that row is first transposed to [pw, C] so that a tap is a contiguous axpy.
    let row_len = w * c;
    let mut gin = vec![T::zero(); n * h * row_len];
    gin.par_chunks_mut(BAND_ROWS * row_len)
        .enumerate()
        .for_each_init(
            || vec![T::zero(); p.pw * c],
            |gb, (band, chunk)| {
                let r0 = band * BAND_ROWS;
                let r1 = r0 + chunk.len() / row_len;
                for (i, t) in taps.iter().enumerate() {
                    if rows[i].1 <= r0 || rows[i].0 >= r1 {
                        continue;
                    }
                    let g = &grad[i * c * bins..(i + 1) * c * bins];
                    for py in 0..p.ph {
                        let in_band =
                            |&(yi, _): &(usize, T)| (r0..r1).contains(&(t.batch * h + yi));
                        if !t.y.taps(py).any(|tap| in_band(&tap)) {
                            continue;
                        }
                        for (ch, gc) in g.chunks_exact(bins).enumerate() {
                            for px in 0..p.pw {
                                gb[px * c + ch] = gc[py * p.pw + px];
                            }
                        }
                        for (yi, wy) in t.y.taps(py).filter(in_band) {
                            let r = t.batch * h + yi - r0;
                            let row = &mut chunk[r * row_len..(r + 1) * row_len];
                            for px in 0..p.pw {
                                let gpx = &gb[px * c..(px + 1) * c];
                                for (xi, wx) in t.x.taps(px) {
                                    axpy(&mut row[xi * c..(xi + 1) * c], wy * wx, gpx);
                                }
                            }
                        }
                    }
                }
            },
        );
    transpose(&gin, h * w, c)
}

/// An error unless every storage has the first one's dtype (the ops take f32 or f64 inputs
/// and boxes of one dtype).
pub(crate) fn same_dtype(op: &str, storages: &[&CpuStorage]) -> Result<()> {
    let dtypes: Vec<DType> = storages.iter().map(|s| s.dtype()).collect();
    if dtypes.windows(2).any(|w| w[0] != w[1]) {
        return Err(candle_core::Error::Msg(format!(
            "{op}: unsupported dtypes {dtypes:?} (f32 or f64, all the same)"
        )));
    }
    Ok(())
}

impl CustomOp2 for RoiAlign {
    fn name(&self) -> &'static str {
        "roi_align"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = Dims::from_layouts(l1, l2)?;
        let shape = Shape::from((d.k, d.c, self.p.ph, self.p.pw));
        let op = "roi_align";
        same_dtype(op, &[s1, s2])?;
        let out = dispatch_float!(op, s1, |T| forward_cpu::<T>(
            contiguous_slice(s1, l1, op, "input")?,
            contiguous_slice(s2, l2, op, "rois")?,
            d,
            &self.p,
        ));
        Ok((out, shape))
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
        let l = self.launch(d.k * d.c * self.p.ph * self.p.pw, d.c, d.h, d.w);
        let out = crate::cuda::roi_align_fwd((s1, l1), (s2, l2), &l)?;
        Ok((out, Shape::from((d.k, d.c, self.p.ph, self.p.pw))))
    }

    fn bwd(
        &self,
        input: &Tensor,
        boxes: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = input.dims4()?;
        let op = RoiAlignBackward {
            p: self.p,
            n,
            c,
            h,
            w,
        };
        let g = grad.contiguous()?.apply_op2_no_bwd(boxes, &op)?;
        Ok((Some(g), None))
    }
}

#[cfg(feature = "cuda")]
impl RoiAlign {
    fn launch(&self, total: usize, c: usize, h: usize, w: usize) -> crate::cuda::Launch {
        crate::cuda::Launch {
            total,
            c,
            h,
            w,
            ph: self.p.ph,
            pw: self.p.pw,
            scale: self.p.scale,
            sampling_ratio: self.p.sampling_ratio,
            aligned: self.p.aligned,
        }
    }
}

impl CustomOp2 for RoiAlignBackward {
    fn name(&self) -> &'static str {
        "roi_align_backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = (self.n, self.c, self.h, self.w);
        let op = "roi_align backward";
        same_dtype(op, &[s1, s2])?;
        let out = dispatch_float!(op, s1, |T| backward_cpu::<T>(
            contiguous_slice(s1, l1, op, "grad")?,
            contiguous_slice(s2, l2, op, "rois")?,
            n,
            c,
            h,
            w,
            &self.p,
        ));
        Ok((out, Shape::from((n, c, h, w))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (k, _) = l2.shape().dims2()?;
        let fwd = RoiAlign { p: self.p };
        let l = fwd.launch(k * self.c * self.p.ph * self.p.pw, self.c, self.h, self.w);
        let out =
            crate::cuda::roi_align_bwd((s1, l1), (s2, l2), self.n * self.c * self.h * self.w, &l)?;
        Ok((out, Shape::from((self.n, self.c, self.h, self.w))))
    }
}
