//! CPU kernels of the 2-D convolution: im2col / col2im around the `gemm` crate's matrix
//! product (the engine candle's own matmul uses), for the forward pass and the input,
//! weight and bias gradients. NCHW, contiguous, f32 or f64.
//!
//! Per image and group, with `K = Cg·kh·kw` and `L = Ho·Wo`:
//! * forward: `Y[Og, L] = W[Og, K] · cols[K, L]`
//! * input gradient: `dcols[K, L] = Wᵀ · dY`, then col2im adds `dcols` into `dX`
//! * weight gradient: `dW[Og, K] += dY[Og, L] · colsᵀ`
//!
//! A 1×1 convolution with stride 1 and no padding needs no im2col: `cols` is the input.

use rayon::prelude::*;
use std::ops::Range;

use crate::element::{at_least, Element};

mod bf16;
mod winograd;
pub(crate) use bf16::{conv_bwd_input_bf16, conv_bwd_weight_bf16, conv_fwd_bf16};

/// Sizes of one convolution; all validated by the caller (`conv::Geometry::new`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub stride: usize,
    pub pad: usize,
    pub dil: usize,
    pub groups: usize,
}

impl Geom {
    fn cg(&self) -> usize {
        self.c / self.groups
    }
    fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Rows of the column matrix of one group.
    fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    fn l(&self) -> usize {
        self.ho * self.wo
    }
    /// True when the column matrix of an image is the image itself.
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }
}

fn parallelism() -> gemm::Parallelism {
    let t = rayon::current_num_threads();
    if t > 1 {
        gemm::Parallelism::Rayon(t)
    } else {
        gemm::Parallelism::None
    }
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]`, every operand given by (row stride, column
/// stride) over slices that the caller sized (checked).
#[allow(clippy::too_many_arguments)]
fn matmul<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[T],
    lhs_strides: (usize, usize),
    rhs: &[T],
    rhs_strides: (usize, usize),
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * dst_rs + n <= dst.len());
    // SAFETY: `dst` holds every index the product writes (asserted); the operands are
    // checked by `matmul_raw`; `dst` cannot alias them (a `&mut` borrow).
    unsafe {
        matmul_raw(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_rs,
            accumulate,
            lhs,
            lhs_strides,
            rhs,
            rhs_strides,
            par,
        )
    }
}

/// As [`matmul`] with a raw destination.
///
/// # Safety
/// `dst + i·dst_rs + j` must be valid for writes, and not read or written by anyone else
/// during the call, for all `i < m`, `j < n`.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_raw<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: usize,
    accumulate: bool,
    lhs: &[T],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[T],
    (rhs_rs, rhs_cs): (usize, usize),
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    // Bounds of the two operands: the largest index each product reads.
    if k > 0 {
        assert!((m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len());
        assert!((k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len());
    }
    // SAFETY: operand reads are in bounds (asserted), dst is the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { T::ONE } else { T::ZERO },
            T::ONE,
            false,
            false,
            false,
            par,
        )
    }
}

/// Output index range `[lo, hi)` along one axis for which the input coordinate
/// `out * stride + off` lies in `[0, size)`.
fn valid_range(off: isize, stride: usize, size: usize, out_len: usize) -> (usize, usize) {
    let s = stride as isize;
    // smallest o with o*s + off >= 0
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    // largest o with o*s + off <= size - 1
    let hi = if off > size as isize - 1 {
        0
    } else {
        ((size as isize - 1 - off) / s + 1) as usize
    };
    let lo = (lo as usize).min(out_len);
    (lo, hi.clamp(lo, out_len))
}

/// How the work is cut into cache-sized pieces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tiling {
    /// Bytes of column matrix one work item keeps (in L2/L3) at a time.
    pub tile_bytes: usize,
    /// Fewest output positions per tile (a multiple of 16 unless 1).
    pub min_tile: usize,
    /// Target rows (`channels·kh·kw`) of a channel block in the input and weight gradients.
    pub block_rows: usize,
}

impl Default for Tiling {
    fn default() -> Self {
        Self {
            tile_bytes: 1 << 21,
            min_tile: 64,
            block_rows: 576,
        }
    }
}

impl Tiling {
    /// Output positions per tile for a column matrix of `rows` rows.
    fn tile_len<T>(&self, rows: usize, l: usize) -> usize {
        let t = self.tile_bytes / (std::mem::size_of::<T>() * rows.max(1));
        let t = t.max(self.min_tile);
        let t = if t >= 16 { t / 16 * 16 } else { t };
        t.min(l).max(1)
    }

    /// Channels per block: about `block_rows` column rows, but few enough that the
    /// `outer × blocks` work items (`outer` independent ones, such as images × groups) give
    /// every rayon thread one.
    pub(crate) fn channel_block(&self, g: &Geom, outer: usize) -> usize {
        let cb = (self.block_rows / (g.kh * g.kw)).clamp(1, g.cg().max(1));
        let blocks_wanted = rayon::current_num_threads().div_ceil(outer.max(1));
        cb.min(g.cg().div_ceil(blocks_wanted)).max(1)
    }
}

/// A raw pointer that work items share; each item touches a disjoint region (see callers).
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);
// SAFETY: only used to hand disjoint sub-regions of one buffer to parallel work items.
unsafe impl<T: Send> Send for SharedMut<T> {}
// SAFETY: as for `Send`: each work item writes its own disjoint region.
unsafe impl<T: Send> Sync for SharedMut<T> {}
impl<T> SharedMut<T> {
    /// The pointer (a method, so closures capture the whole `Send + Sync` wrapper).
    fn ptr(self) -> *mut T {
        self.0
    }
}

/// Rows `channels c0..c0+cb` of the column matrix of one image group `x: [Cg, H, W]`,
/// restricted to output positions `l0..l0+lt`, written as `cols: [cb·kh·kw, lt]`.
fn im2col_tile<T: Element>(
    x: &[T],
    g: &Geom,
    c0: usize,
    cb: usize,
    l0: usize,
    lt: usize,
    cols: &mut [T],
) {
    let khw = g.kh * g.kw;
    for (row, out) in cols[..cb * khw * lt].chunks_mut(lt).enumerate() {
        im2col_row(x, g, c0 * khw + row, l0, out);
    }
}

/// Walks the output positions `l0..l0+lt` as row `row` (kernel tap `row % (kh·kw)`) of the
/// column matrix sees them, in runs within one output row: `f(run, input)` with `run` the
/// positions relative to `l0` and `input`, when some of them read the input (the others
/// read padding), `(iy, inside, ix)`: the part `inside` of the run (relative to its start)
/// reads input row `iy` from column `ix` on, at the convolution's stride. im2col and col2im
/// are this walk with a copy and an addition.
fn tap_runs(
    g: &Geom,
    row: usize,
    (l0, lt): (usize, usize),
    mut f: impl FnMut(Range<usize>, Option<(usize, Range<usize>, usize)>),
) {
    let (kh, kw, wo) = (g.kh, g.kw, g.wo);
    let i = (row / kw) % kh;
    let j = row % kw;
    let off_y = (i * g.dil) as isize - g.pad as isize;
    let off_x = (j * g.dil) as isize - g.pad as isize;
    let (y0, y1) = valid_range(off_y, g.stride, g.h, g.ho);
    let (x0, x1) = valid_range(off_x, g.stride, g.w, wo);
    let mut l = l0;
    while l < l0 + lt {
        let oy = l / wo;
        let xa = l % wo;
        let xb = wo.min(xa + (l0 + lt - l));
        let a = x0.clamp(xa, xb);
        let b = x1.clamp(a, xb);
        let input = (oy >= y0 && oy < y1 && a < b).then(|| {
            let iy = ((oy * g.stride) as isize + off_y) as usize;
            let ix = ((a * g.stride) as isize + off_x) as usize;
            (iy, a - xa..b - xa, ix)
        });
        f(l - l0..l - l0 + (xb - xa), input);
        l += xb - xa;
    }
}

/// Row `row` (channel `row / (kh·kw)`, kernel tap `row % (kh·kw)`) of the column matrix of
/// `x: [Cg, H, W]` at output positions `l0..l0 + out.len()`.
fn im2col_row<T: Element>(x: &[T], g: &Geom, row: usize, l0: usize, out: &mut [T]) {
    let (h, w) = (g.h, g.w);
    let c = row / (g.kh * g.kw);
    let plane = &x[c * h * w..(c + 1) * h * w];
    tap_runs(g, row, (l0, out.len()), |run, input| {
        let seg = &mut out[run];
        let Some((iy, inside, ix)) = input else {
            seg.fill(T::ZERO);
            return;
        };
        seg[..inside.start].fill(T::ZERO);
        seg[inside.end..].fill(T::ZERO);
        let src = &plane[iy * w..(iy + 1) * w];
        let dst = &mut seg[inside];
        gather(dst, &src[ix..], g.stride);
    });
}

/// `dst[k] = src[k·stride]`: a copy for stride 1, a de-interleave for stride 2 (the strided
/// convolutions of a ResNet), a stepped copy otherwise — all without index checks in the loop,
/// so the first two vectorise (a checked `src[k·stride]` loop was a quarter of a stride-2
/// convolution's time).
fn gather<T: Copy>(dst: &mut [T], src: &[T], stride: usize) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    match stride {
        1 => dst.copy_from_slice(&src[..n]),
        2 => {
            let (body, last) = dst.split_at_mut(n - 1);
            for (d, pair) in body.iter_mut().zip(src[..2 * (n - 1)].chunks_exact(2)) {
                *d = pair[0];
            }
            last[0] = src[2 * (n - 1)];
        }
        _ => {
            assert!(src.len() > (n - 1) * stride);
            for (d, s) in dst.iter_mut().zip(src.iter().step_by(stride)) {
                *d = *s;
            }
        }
    }
}

/// `dst[k·stride] += src[k]`, the adjoint of [`gather`], vectorising as it does.
fn scatter_add<T: Copy + std::ops::AddAssign>(dst: &mut [T], src: &[T], stride: usize) {
    let n = src.len();
    if n == 0 {
        return;
    }
    match stride {
        1 => {
            for (d, s) in dst[..n].iter_mut().zip(src) {
                *d += *s;
            }
        }
        2 => {
            let (body, last) = src.split_at(n - 1);
            for (pair, s) in dst[..2 * (n - 1)].chunks_exact_mut(2).zip(body) {
                pair[0] += *s;
            }
            dst[2 * (n - 1)] += last[0];
        }
        _ => {
            assert!(dst.len() > (n - 1) * stride);
            for (d, s) in dst.iter_mut().step_by(stride).zip(src) {
                *d += *s;
            }
        }
    }
}

/// Adds `cols: [cb·kh·kw, lt]` (row stride `ld ≥ lt`; channels `c0..c0+cb`, output
/// positions `l0..l0+lt`) into the planes `dx: [cb, H, W]` of those channels.
fn col2im_tile<T: Element>(
    cols: &[T],
    ld: usize,
    g: &Geom,
    cb: usize,
    (l0, lt): (usize, usize),
    dx: &mut [T],
) {
    let (h, w, khw) = (g.h, g.w, g.kh * g.kw);
    for row in 0..cb * khw {
        let src = &cols[row * ld..row * ld + lt];
        let c = row / khw;
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        tap_runs(g, row, (l0, lt), |run, input| {
            let Some((iy, inside, ix)) = input else {
                return;
            };
            let seg = &src[run][inside];
            let dst = &mut plane[iy * w..(iy + 1) * w];
            scatter_add(&mut dst[ix..], seg, g.stride);
        });
    }
}

/// `[start, start+len)` chunks of `0..total`.
fn chunks(total: usize, len: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..total.div_ceil(len)).map(move |i| (i * len, len.min(total - i * len)))
}

/// Forward: `x [N, C, H, W]`, `wt [O, C/groups, kh, kw]` → `[N, O, Ho, Wo]`.
///
/// Work items are (image, group, tile of output positions); each builds its column tile in
/// a per-thread buffer and multiplies it single-threaded, items running in parallel.
pub(crate) fn conv_fwd<T: Element>(x: &[T], wt: &[T], g: &Geom, tiling: Tiling) -> Vec<T> {
    if winograd::applies(g) {
        winograd::conv_fwd(x, wt, g)
    } else {
        conv_fwd_im2col(x, wt, g, tiling)
    }
}

/// [`conv_fwd`] through column matrices (im2col), for every geometry.
fn conv_fwd_im2col<T: Element>(x: &[T], wt: &[T], g: &Geom, tiling: Tiling) -> Vec<T> {
    let (cg, og, k, l) = (g.cg(), g.og(), g.k(), g.l());
    let total = g.n * g.o * l;
    if k == 0 {
        // No inputs per output: the sums are empty (a product with k = 0 writes nothing).
        return vec![T::ZERO; total];
    }
    // Every value of `y` is written by exactly one product below (each overwrites its block:
    // `accumulate` false) before `set_len`, so it is never zero-filled first.
    let mut y: Vec<T> = Vec::with_capacity(total);
    let yp = SharedMut(y.as_mut_ptr());
    if g.is_pointwise() {
        for b in 0..g.n {
            for gr in 0..g.groups {
                let xs = &x[(b * g.c + gr * cg) * g.h * g.w..][..cg * g.h * g.w];
                let ws = &wt[gr * og * k..(gr + 1) * og * k];
                let off = (b * g.o + gr * og) * l;
                assert!(off + og * l <= total);
                // SAFETY: rows gr·og..(gr+1)·og of image b, all columns: inside the
                // allocation (asserted), written by this product only.
                unsafe {
                    matmul_raw(
                        og,
                        l,
                        k,
                        yp.ptr().add(off),
                        l,
                        false,
                        ws,
                        (k, 1),
                        xs,
                        (l, 1),
                        parallelism(),
                    )
                };
            }
        }
        // SAFETY: the products above wrote every (image, channel, position).
        unsafe { y.set_len(total) };
        return y;
    }
    let lt = tiling.tile_len::<T>(k, l);
    let items: Vec<(usize, usize, (usize, usize))> = (0..g.n)
        .flat_map(|b| (0..g.groups).flat_map(move |gr| chunks(l, lt).map(move |t| (b, gr, t))))
        .collect();
    items.into_par_iter().for_each(|(b, gr, (l0, len))| {
        T::with_scratch(k * len, |cols| {
            let xs = &x[(b * g.c + gr * cg) * g.h * g.w..][..cg * g.h * g.w];
            let ws = &wt[gr * og * k..(gr + 1) * og * k];
            // Writes all k·len values of the tile (zeros where the window leaves the input).
            im2col_tile(xs, g, 0, cg, l0, len, cols);
            let off = (b * g.o + gr * og) * l + l0;
            // SAFETY: item (b, gr, tile) writes rows gr·og..(gr+1)·og of image b, columns
            // l0..l0+len only: disjoint from every other item, inside `y` (checked below).
            assert!(off + (og - 1) * l + len <= total);
            // SAFETY: see above: a disjoint region of `y`, in bounds (asserted).
            unsafe {
                matmul_raw(
                    og,
                    len,
                    k,
                    yp.ptr().add(off),
                    l,
                    false,
                    ws,
                    (k, 1),
                    &cols[..k * len],
                    (len, 1),
                    gemm::Parallelism::None,
                )
            };
        })
    });
    // SAFETY: the items cover every (image, group, tile) once: all values written.
    unsafe { y.set_len(total) };
    y
}

/// Input gradient: `dy [N, O, Ho, Wo]`, `wt` → `dx [N, C, H, W]`.
///
/// Work items are (image, group, block of input channels): `dcols = W[:, block]ᵀ · dY`, tile by
/// tile, scattered by col2im into that block's planes of `dx` (disjoint between items).
pub(crate) fn conv_bwd_input<T: Element>(dy: &[T], wt: &[T], g: &Geom, tiling: Tiling) -> Vec<T> {
    if winograd::applies(g) {
        winograd::conv_bwd_input(dy, wt, g)
    } else {
        conv_bwd_input_im2col(dy, wt, g, tiling)
    }
}

/// [`conv_bwd_input`] through column matrices (im2col), for every geometry.
fn conv_bwd_input_im2col<T: Element>(dy: &[T], wt: &[T], g: &Geom, tiling: Tiling) -> Vec<T> {
    let (cg, og, k, l) = (g.cg(), g.og(), g.k(), g.l());
    let mut dx = vec![T::ZERO; g.n * g.c * g.h * g.w];
    if g.is_pointwise() {
        for b in 0..g.n {
            for gr in 0..g.groups {
                let dys = &dy[(b * g.o + gr * og) * l..][..og * l];
                let ws = &wt[gr * og * k..(gr + 1) * og * k];
                let dxs = &mut dx[(b * g.c + gr * cg) * g.h * g.w..][..cg * g.h * g.w];
                // Wᵀ[k, o] = W[o, k]: row stride 1, column stride k.
                matmul(
                    k,
                    l,
                    og,
                    dxs,
                    l,
                    false,
                    ws,
                    (1, k),
                    dys,
                    (l, 1),
                    parallelism(),
                );
            }
        }
        return dx;
    }
    let khw = g.kh * g.kw;
    let cb = tiling.channel_block(g, g.n * g.groups);
    let lt = tiling.tile_len::<T>(cb * khw, l);
    let items: Vec<(usize, usize, (usize, usize))> = (0..g.n)
        .flat_map(|b| (0..g.groups).flat_map(move |gr| chunks(cg, cb).map(move |c| (b, gr, c))))
        .collect();
    let dxp = SharedMut(dx.as_mut_ptr());
    let dxlen = dx.len();
    let plane = g.h * g.w;
    items.into_par_iter().for_each_init(
        || vec![T::ZERO; cb * khw * lt],
        |dcols, (b, gr, (c0, nc))| {
            let dys = &dy[(b * g.o + gr * og) * l..][..og * l];
            let ws = &wt[gr * og * k..(gr + 1) * og * k];
            let off = (b * g.c + gr * cg + c0) * plane;
            assert!(off + nc * plane <= dxlen);
            // SAFETY: item (b, gr, c0..c0+nc) is the only one touching these planes of dx.
            let dxs = unsafe { std::slice::from_raw_parts_mut(dxp.ptr().add(off), nc * plane) };
            let m = nc * khw;
            for (l0, len) in chunks(l, lt) {
                // dcols[r, l] = Σ_o W[o, c0·khw + r] · dY[o, l0 + l]
                matmul(
                    m,
                    len,
                    og,
                    &mut dcols[..m * len],
                    len,
                    false,
                    &ws[c0 * khw..],
                    (1, k),
                    &dys[l0..],
                    (l, 1),
                    gemm::Parallelism::None,
                );
                col2im_tile(dcols, len, g, nc, (l0, len), dxs);
            }
        },
    );
    dx
}

/// Weight gradient: `x`, `dy` → `dw [O, C/groups, kh, kw]`.
///
/// Work items are (group, block of input channels): `dW[:, block] = Σ_images Σ_tiles dY ·
/// cols(block)ᵀ`, accumulated in place (columns of dW disjoint between items).
pub(crate) fn conv_bwd_weight<T: Element>(x: &[T], dy: &[T], g: &Geom, tiling: Tiling) -> Vec<T> {
    if winograd::applies(g) {
        winograd::conv_bwd_weight(x, dy, g)
    } else {
        conv_bwd_weight_im2col(x, dy, g, tiling)
    }
}

/// [`conv_bwd_weight`] through column matrices (im2col), for every geometry.
fn conv_bwd_weight_im2col<T: Element>(x: &[T], dy: &[T], g: &Geom, tiling: Tiling) -> Vec<T> {
    let (cg, og, k, l) = (g.cg(), g.og(), g.k(), g.l());
    let mut dw = vec![T::ZERO; g.o * k];
    if g.is_pointwise() {
        for b in 0..g.n {
            for gr in 0..g.groups {
                let xs = &x[(b * g.c + gr * cg) * g.h * g.w..][..cg * g.h * g.w];
                let dys = &dy[(b * g.o + gr * og) * l..][..og * l];
                let dws = &mut dw[gr * og * k..(gr + 1) * og * k];
                // xᵀ[l, k] = x[k, l]: row stride 1, column stride l.
                matmul(
                    og,
                    k,
                    l,
                    dws,
                    k,
                    b > 0,
                    dys,
                    (l, 1),
                    xs,
                    (1, l),
                    parallelism(),
                );
            }
        }
        return dw;
    }
    let khw = g.kh * g.kw;
    let cb = tiling.channel_block(g, g.groups);
    let lt = tiling.tile_len::<T>(cb * khw, l);
    let items: Vec<(usize, (usize, usize))> = (0..g.groups)
        .flat_map(|gr| chunks(cg, cb).map(move |c| (gr, c)))
        .collect();
    let dwp = SharedMut(dw.as_mut_ptr());
    let dwlen = dw.len();
    items.into_par_iter().for_each_init(
        || vec![T::ZERO; cb * khw * lt],
        |cols, (gr, (c0, nc))| {
            let n = nc * khw;
            let off = gr * og * k + c0 * khw;
            assert!(off + (og - 1) * k + n <= dwlen);
            let mut first = true;
            for b in 0..g.n {
                let xs = &x[(b * g.c + gr * cg) * g.h * g.w..][..cg * g.h * g.w];
                let dys = &dy[(b * g.o + gr * og) * l..][..og * l];
                for (l0, len) in chunks(l, lt) {
                    im2col_tile(xs, g, c0, nc, l0, len, cols);
                    // SAFETY: item (gr, c0..c0+nc) alone writes rows gr·og.. of dw, columns
                    // c0·khw..c0·khw+n (in bounds, checked above).
                    unsafe {
                        matmul_raw(
                            og,
                            n,
                            len,
                            dwp.ptr().add(off),
                            k,
                            !first,
                            &dys[l0..],
                            (l, 1),
                            &cols[..n * len],
                            (1, len),
                            gemm::Parallelism::None,
                        )
                    };
                    first = false;
                }
            }
        },
    );
    dw
}

/// Bias gradient: sum of `dy [N, O, Ho, Wo]` over N, Ho, Wo → `[O]`.
pub(crate) fn conv_bwd_bias<T: Element>(dy: &[T], n: usize, o: usize, l: usize) -> Vec<T> {
    let mut db = vec![T::ZERO; o];
    for b in 0..n {
        for (ch, d) in db.iter_mut().enumerate() {
            let mut s = T::ZERO;
            for v in &dy[(b * o + ch) * l..][..l] {
                s += *v;
            }
            *d += s;
        }
    }
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_gather_and_scatter_add_match_the_index_loops() {
        for stride in 1..=4 {
            for n in 0..40 {
                for spare in 0..stride {
                    let len = if n == 0 {
                        spare
                    } else {
                        (n - 1) * stride + 1 + spare
                    };
                    let src: Vec<f64> = (0..len).map(|i| i as f64 * 0.5 - 3.0).collect();
                    let mut got = vec![f64::NAN; n];
                    gather(&mut got, &src, stride);
                    let want: Vec<f64> = (0..n).map(|k| src[k * stride]).collect();
                    assert_eq!(got, want, "gather stride {stride} n {n} len {len}");

                    let add: Vec<f64> = (0..n).map(|k| k as f64 + 0.25).collect();
                    let mut got = src.clone();
                    scatter_add(&mut got, &add, stride);
                    let mut want = src.clone();
                    for (k, a) in add.iter().enumerate() {
                        want[k * stride] += a;
                    }
                    assert_eq!(got, want, "scatter_add stride {stride} n {n} len {len}");
                }
            }
        }
    }

    /// Direct-loop convolution, input gradient and weight gradient (f64).
    fn naive(x: &[f64], w: &[f64], dy: &[f64], g: &Geom) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (cg, og) = (g.cg(), g.og());
        let mut y = vec![0.0; g.n * g.o * g.ho * g.wo];
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        for b in 0..g.n {
            for o in 0..g.o {
                let gr = o / og;
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let yi = ((b * g.o + o) * g.ho + oy) * g.wo + ox;
                        for c in 0..cg {
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let iy = (oy * g.stride + i * g.dil) as isize - g.pad as isize;
                                    let ix = (ox * g.stride + j * g.dil) as isize - g.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((b * g.c + gr * cg + c) * g.h + iy as usize) * g.w
                                        + ix as usize;
                                    let wi = ((o * cg + c) * g.kh + i) * g.kw + j;
                                    y[yi] += x[xi] * w[wi];
                                    dx[xi] += w[wi] * dy[yi];
                                    dw[wi] += x[xi] * dy[yi];
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    fn vals(n: usize, seed: usize) -> Vec<f64> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104729) % 1000) as f64) / 500.0 - 1.0)
            .collect()
    }

    /// The Winograd F(2×2, 3×3) kernels against direct loops: odd and even sizes, padding
    /// 0, 1 and 2, two groups, two images, in f64 (to rounding) and f32 (to f32 accuracy).
    #[test]
    fn winograd_kernels_equal_direct_loops() {
        // (n, c, o, h, w, pad, groups)
        for (n, c, o, h, w, pad, groups) in [
            (1, 16, 16, 32, 32, 1, 1),
            (2, 16, 24, 33, 37, 0, 1),
            (1, 20, 16, 29, 30, 2, 1),
            (2, 32, 32, 32, 33, 1, 2),
        ] {
            let (ho, wo) = (h + 2 * pad - 2, w + 2 * pad - 2);
            let g = Geom {
                n,
                c,
                h,
                w,
                o,
                kh: 3,
                kw: 3,
                ho,
                wo,
                stride: 1,
                pad,
                dil: 1,
                groups,
            };
            assert!(
                winograd::applies(&g),
                "{g:?} should run on the Winograd kernels"
            );
            let x = vals(n * c * h * w, 1);
            let wt = vals(o * (c / groups) * 9, 2);
            let dy = vals(n * o * ho * wo, 3);
            let (y, dx, dw) = naive(&x, &wt, &dy, &g);
            // Largest error relative to the largest reference value.
            let err = |got: &[f64], want: &[f64]| {
                assert_eq!(got.len(), want.len(), "{g:?}");
                let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
                let e = got
                    .iter()
                    .zip(want)
                    .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
                e / scale
            };
            // The dispatching kernels (what the ops call) take the Winograd path here.
            let t = Tiling::default();
            for (what, e) in [
                ("y", err(&conv_fwd(&x, &wt, &g, t), &y)),
                ("dx", err(&conv_bwd_input(&dy, &wt, &g, t), &dx)),
                ("dw", err(&conv_bwd_weight(&x, &dy, &g, t), &dw)),
            ] {
                assert!(e < 1e-14, "dispatched {what}: f64 error {e:e}, {g:?}");
            }
            for (what, e) in [
                ("y", err(&winograd::conv_fwd(&x, &wt, &g), &y)),
                ("dx", err(&winograd::conv_bwd_input(&dy, &wt, &g), &dx)),
                ("dw", err(&winograd::conv_bwd_weight(&x, &dy, &g), &dw)),
            ] {
                assert!(e < 1e-14, "{what}: f64 error {e:e}, {g:?}");
            }
            // In f32, within a few times the error of the im2col kernels.
            let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let d = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
            let (x32, w32, dy32) = (f(&x), f(&wt), f(&dy));
            for (what, wino, direct) in [
                (
                    "y",
                    err(&d(winograd::conv_fwd(&x32, &w32, &g)), &y),
                    err(&d(conv_fwd_im2col(&x32, &w32, &g, t)), &y),
                ),
                (
                    "dx",
                    err(&d(winograd::conv_bwd_input(&dy32, &w32, &g)), &dx),
                    err(&d(conv_bwd_input_im2col(&dy32, &w32, &g, t)), &dx),
                ),
                (
                    "dw",
                    err(&d(winograd::conv_bwd_weight(&x32, &dy32, &g)), &dw),
                    err(&d(conv_bwd_weight_im2col(&x32, &dy32, &g, t)), &dw),
                ),
            ] {
                println!("{what}: f32 error {wino:.2e} (im2col {direct:.2e}), {g:?}");
                assert!(
                    wino < 4.0 * direct.max(1e-7),
                    "{what}: {wino:e} vs {direct:e}, {g:?}"
                );
            }
        }
    }

    /// Winograd runs the 3×3 stride-1 convolutions on outputs of 256 2×2 tiles and more
    /// with ≥ 16 channels per group; im2col everything else (smaller maps, strided, dilated,
    /// thin, other kernel sizes).
    #[test]
    fn winograd_applies_to_the_shapes_it_pays_on() {
        let geom = |c: usize, ho: usize, wo: usize, k: usize, stride: usize, dil: usize| Geom {
            n: 1,
            c,
            h: ho * stride,
            w: wo * stride,
            o: c,
            kh: k,
            kw: k,
            ho,
            wo,
            stride,
            pad: dil * (k / 2),
            dil,
            groups: 1,
        };
        assert!(winograd::applies(&geom(256, 120, 160, 3, 1, 1)));
        assert!(winograd::applies(&geom(256, 30, 40, 3, 1, 1)));
        assert!(winograd::applies(&geom(16, 32, 32, 3, 1, 1)));
        // 80 tiles: too few.
        assert!(!winograd::applies(&geom(512, 15, 20, 3, 1, 1)));
        assert!(!winograd::applies(&geom(128, 60, 80, 3, 2, 1)));
        assert!(!winograd::applies(&geom(128, 60, 80, 3, 1, 2)));
        assert!(!winograd::applies(&geom(8, 120, 160, 3, 1, 1)));
        assert!(!winograd::applies(&geom(256, 120, 160, 1, 1, 1)));
        assert!(!winograd::applies(&geom(64, 120, 160, 5, 1, 1)));
    }

    /// The tiled kernels against direct loops, with tilings small enough that tiles split
    /// output rows and channel blocks split the input channels.
    #[test]
    fn tiled_kernels_equal_direct_loops() {
        // (n, c, h, w, o, k, stride, pad, dil, groups)
        let cases = [
            (2, 5, 7, 6, 4, 3, 1, 1, 1, 1),
            (1, 3, 9, 8, 5, 3, 2, 1, 1, 1),
            (2, 4, 8, 9, 2, 7, 2, 3, 1, 1),
            (1, 6, 6, 7, 4, 3, 2, 1, 1, 2),
            (1, 3, 9, 10, 2, 3, 1, 2, 2, 1),
            (2, 5, 5, 6, 3, 1, 2, 0, 1, 1),
            (1, 4, 5, 5, 3, 1, 1, 0, 1, 1),
            (1, 2, 4, 5, 3, 3, 3, 3, 1, 1),
        ];
        let tilings = [
            Tiling::default(),
            Tiling {
                tile_bytes: 1,
                min_tile: 1,
                block_rows: 1,
            },
            Tiling {
                tile_bytes: 8 * 9 * 5,
                min_tile: 1,
                block_rows: 10,
            },
            Tiling {
                tile_bytes: 8 * 20 * 7,
                min_tile: 7,
                block_rows: 20,
            },
        ];
        for (ci, &(n, c, h, w, o, k, stride, pad, dil, groups)) in cases.iter().enumerate() {
            let eff = dil * (k - 1) + 1;
            let g = Geom {
                n,
                c,
                h,
                w,
                o,
                kh: k,
                kw: k,
                ho: (h + 2 * pad - eff) / stride + 1,
                wo: (w + 2 * pad - eff) / stride + 1,
                stride,
                pad,
                dil,
                groups,
            };
            let x = vals(n * c * h * w, ci);
            let wt = vals(o * (c / groups) * k * k, ci + 100);
            let dy = vals(n * o * g.ho * g.wo, ci + 200);
            let (y, dx, dw) = naive(&x, &wt, &dy, &g);
            for t in tilings {
                let close = |a: &[f64], b: &[f64], what: &str| {
                    assert_eq!(a.len(), b.len());
                    for (u, v) in a.iter().zip(b) {
                        assert!((u - v).abs() < 1e-9, "case {ci} {t:?} {what}: {u} vs {v}");
                    }
                };
                close(&conv_fwd_im2col(&x, &wt, &g, t), &y, "forward");
                // The forward's column tiles live in a per-thread scratch buffer that is
                // never cleared: NaN left in it by an earlier user must not reach the output.
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .expect("a one-thread pool");
                let poisoned = pool.install(|| {
                    f64::with_scratch(1 << 16, |s| s.fill(f64::NAN));
                    conv_fwd_im2col(&x, &wt, &g, t)
                });
                close(&poisoned, &y, "forward after a NaN scratch");
                close(&conv_bwd_input_im2col(&dy, &wt, &g, t), &dx, "dx");
                close(&conv_bwd_weight_im2col(&x, &dy, &g, t), &dw, "dw");
            }
        }
    }

    #[test]
    fn channel_blocks_leave_no_thread_idle() {
        let g = Geom {
            n: 1,
            c: 64,
            h: 8,
            w: 8,
            o: 8,
            kh: 3,
            kw: 3,
            ho: 8,
            wo: 8,
            stride: 1,
            pad: 1,
            dil: 1,
            groups: 1,
        };
        let t = Tiling::default();
        let block = |threads: usize, outer: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| t.channel_block(&g, outer))
        };
        // 576 rows of 3×3 taps: all 64 channels in one block on one thread...
        assert_eq!(block(1, 1), 64);
        // ...but one block per thread when there is nothing else to run in parallel,
        assert_eq!(block(2, 1), 32);
        assert_eq!(block(3, 1), 22);
        // and whole blocks again when images or groups already give every thread an item.
        assert_eq!(block(2, 2), 64);
        assert_eq!(block(64, 1), 1);
    }

    #[test]
    fn valid_range_matches_brute_force() {
        for off in -7isize..7 {
            for stride in 1..4 {
                for size in 1..9 {
                    for out_len in 0..9 {
                        let brute: Vec<usize> = (0..out_len)
                            .filter(|&o| {
                                let i = (o * stride) as isize + off;
                                i >= 0 && i < size as isize
                            })
                            .collect();
                        let (lo, hi) = valid_range(off, stride, size, out_len);
                        let got: Vec<usize> = (lo..hi).collect();
                        assert_eq!(got, brute, "off {off} stride {stride} size {size}");
                    }
                }
            }
        }
    }
}
