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

/// The element types the kernels accept.
pub(crate) trait Elem:
    Copy + Send + Sync + 'static + std::ops::AddAssign + std::ops::Mul<Output = Self> + PartialOrd
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn is_nan(self) -> bool;
}
impl Elem for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}
impl Elem for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

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
/// stride) over slices that the caller sized.
#[allow(clippy::too_many_arguments)]
fn matmul<T: Elem>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[T],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[T],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // Bounds the unsafe call below: the largest index touched in each operand.
    assert!((m - 1) * dst_rs + n <= dst.len());
    if k > 0 {
        assert!((m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len());
        assert!((k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len());
    }
    // SAFETY: the asserts above keep every access inside the three slices; `dst` does not
    // alias `lhs` or `rhs` (a `&mut` borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
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
            parallelism(),
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

/// Column matrix `[Cg·kh·kw, Ho·Wo]` of one image group `x: [Cg, H, W]`.
fn im2col<T: Elem>(x: &[T], g: &Geom, cols: &mut [T]) {
    let (h, w, kh, kw, ho, wo) = (g.h, g.w, g.kh, g.kw, g.ho, g.wo);
    let l = g.l();
    cols.par_chunks_mut(l).enumerate().for_each(|(row, out)| {
        let c = row / (kh * kw);
        let i = (row / kw) % kh;
        let j = row % kw;
        let plane = &x[c * h * w..(c + 1) * h * w];
        let off_y = (i * g.dil) as isize - g.pad as isize;
        let off_x = (j * g.dil) as isize - g.pad as isize;
        let (y0, y1) = valid_range(off_y, g.stride, h, ho);
        let (x0, x1) = valid_range(off_x, g.stride, w, wo);
        for (oy, line) in out.chunks_mut(wo).enumerate() {
            if oy < y0 || oy >= y1 {
                line.fill(T::ZERO);
                continue;
            }
            let iy = (oy * g.stride) as isize + off_y;
            let src = &plane[iy as usize * w..(iy as usize + 1) * w];
            line[..x0].fill(T::ZERO);
            line[x1..].fill(T::ZERO);
            let ix0 = (x0 * g.stride) as isize + off_x;
            if g.stride == 1 {
                let ix0 = ix0 as usize;
                line[x0..x1].copy_from_slice(&src[ix0..ix0 + (x1 - x0)]);
            } else {
                for (k, v) in line[x0..x1].iter_mut().enumerate() {
                    *v = src[ix0 as usize + k * g.stride];
                }
            }
        }
    });
}

/// Adds the column matrix `cols: [Cg·kh·kw, Ho·Wo]` back into one image group `dx: [Cg, H, W]`.
fn col2im_add<T: Elem>(cols: &[T], g: &Geom, dx: &mut [T]) {
    let (h, w, kh, kw, wo) = (g.h, g.w, g.kh, g.kw, g.wo);
    let l = g.l();
    dx.par_chunks_mut(h * w).enumerate().for_each(|(c, plane)| {
        for i in 0..kh {
            for j in 0..kw {
                let row = (c * kh + i) * kw + j;
                let src = &cols[row * l..(row + 1) * l];
                let off_y = (i * g.dil) as isize - g.pad as isize;
                let off_x = (j * g.dil) as isize - g.pad as isize;
                let (y0, y1) = valid_range(off_y, g.stride, h, g.ho);
                let (x0, x1) = valid_range(off_x, g.stride, w, wo);
                for oy in y0..y1 {
                    let iy = ((oy * g.stride) as isize + off_y) as usize;
                    let dst = &mut plane[iy * w..(iy + 1) * w];
                    let line = &src[oy * wo..(oy + 1) * wo];
                    let ix0 = ((x0 * g.stride) as isize + off_x) as usize;
                    if g.stride == 1 {
                        for (d, s) in dst[ix0..ix0 + (x1 - x0)].iter_mut().zip(&line[x0..x1]) {
                            *d += *s;
                        }
                    } else {
                        for (k, s) in line[x0..x1].iter().enumerate() {
                            dst[ix0 + k * g.stride] += *s;
                        }
                    }
                }
            }
        }
    });
}

/// Forward: `x [N, C, H, W]`, `wt [O, C/groups, kh, kw]` → `[N, O, Ho, Wo]`.
pub(crate) fn conv_fwd<T: Elem>(x: &[T], wt: &[T], g: &Geom) -> Vec<T> {
    let (cg, og, k, l) = (g.cg(), g.og(), g.k(), g.l());
    let mut y = vec![T::ZERO; g.n * g.o * l];
    let mut cols = if g.is_pointwise() {
        Vec::new()
    } else {
        vec![T::ZERO; k * l]
    };
    for b in 0..g.n {
        for gr in 0..g.groups {
            let xs = &x[(b * g.c + gr * cg) * g.h * g.w..][..cg * g.h * g.w];
            let ws = &wt[gr * og * k..(gr + 1) * og * k];
            let ys = &mut y[(b * g.o + gr * og) * l..][..og * l];
            let cols: &[T] = if g.is_pointwise() {
                xs
            } else {
                im2col(xs, g, &mut cols);
                &cols
            };
            matmul(og, l, k, ys, l, false, ws, (k, 1), cols, (l, 1));
        }
    }
    y
}

/// Input gradient: `dy [N, O, Ho, Wo]`, `wt` → `dx [N, C, H, W]`.
pub(crate) fn conv_bwd_input<T: Elem>(dy: &[T], wt: &[T], g: &Geom) -> Vec<T> {
    let (cg, og, k, l) = (g.cg(), g.og(), g.k(), g.l());
    let mut dx = vec![T::ZERO; g.n * g.c * g.h * g.w];
    let mut dcols = if g.is_pointwise() {
        Vec::new()
    } else {
        vec![T::ZERO; k * l]
    };
    for b in 0..g.n {
        for gr in 0..g.groups {
            let dys = &dy[(b * g.o + gr * og) * l..][..og * l];
            let ws = &wt[gr * og * k..(gr + 1) * og * k];
            let dxs = &mut dx[(b * g.c + gr * cg) * g.h * g.w..][..cg * g.h * g.w];
            // Wᵀ[k, o] = W[o, k]: row stride 1, column stride k.
            if g.is_pointwise() {
                matmul(k, l, og, dxs, l, false, ws, (1, k), dys, (l, 1));
            } else {
                matmul(k, l, og, &mut dcols, l, false, ws, (1, k), dys, (l, 1));
                col2im_add(&dcols, g, dxs);
            }
        }
    }
    dx
}

/// Weight gradient: `x`, `dy` → `dw [O, C/groups, kh, kw]`.
pub(crate) fn conv_bwd_weight<T: Elem>(x: &[T], dy: &[T], g: &Geom) -> Vec<T> {
    let (cg, og, k, l) = (g.cg(), g.og(), g.k(), g.l());
    let mut dw = vec![T::ZERO; g.o * k];
    let mut cols = if g.is_pointwise() {
        Vec::new()
    } else {
        vec![T::ZERO; k * l]
    };
    for b in 0..g.n {
        for gr in 0..g.groups {
            let xs = &x[(b * g.c + gr * cg) * g.h * g.w..][..cg * g.h * g.w];
            let dys = &dy[(b * g.o + gr * og) * l..][..og * l];
            let dws = &mut dw[gr * og * k..(gr + 1) * og * k];
            let cols: &[T] = if g.is_pointwise() {
                xs
            } else {
                im2col(xs, g, &mut cols);
                &cols
            };
            // colsᵀ[l, k] = cols[k, l]: row stride 1, column stride l.
            matmul(og, k, l, dws, k, b > 0, dys, (l, 1), cols, (1, l));
        }
    }
    dw
}

/// Bias gradient: sum of `dy [N, O, Ho, Wo]` over N, Ho, Wo → `[O]`.
pub(crate) fn conv_bwd_bias<T: Elem>(dy: &[T], n: usize, o: usize, l: usize) -> Vec<T> {
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
    use super::valid_range;

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
