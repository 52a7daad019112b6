//! Max pooling with padding and any kernel/stride, in PyTorch's semantics, with a backward.
//!
//! candle 0.11's `max_pool2d` has no padding and no backward when kernel ≠ stride, which rules
//! out the ResNet stem's 3×3/2 pool with padding 1.

use crate::dispatch_float;
use crate::element::Element;
use crate::error::{config_err, shape_err};
use crate::storage::{contiguous_slice, fused_cpu};
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const OP: &str = "max_pool2d";

#[derive(Clone, Copy, Debug)]
struct PoolGeom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    k: usize,
    s: usize,
    p: usize,
}

fn geometry(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<PoolGeom> {
    if kernel == 0 {
        return Err(config_err(OP, "kernel", "must be >= 1"));
    }
    if stride == 0 {
        return Err(config_err(OP, "stride", "must be >= 1"));
    }
    if padding > kernel / 2 {
        return Err(config_err(
            OP,
            "padding",
            format!("{padding} exceeds half the kernel size {kernel} (PyTorch's rule)"),
        ));
    }
    let &[n, c, h, w] = x.dims() else {
        return Err(shape_err(OP, "x", x.dims(), "[N, C, H, W]"));
    };
    if h + 2 * padding < kernel || w + 2 * padding < kernel {
        return Err(shape_err(
            OP,
            "x",
            x.dims(),
            format!("padded spatial size at least the kernel {kernel} (padding {padding})"),
        ));
    }
    Ok(PoolGeom {
        n,
        c,
        h,
        w,
        ho: (h + 2 * padding - kernel) / stride + 1,
        wo: (w + 2 * padding - kernel) / stride + 1,
        k: kernel,
        s: stride,
        p: padding,
    })
}

/// 2-D max pooling of `x: [N, C, H, W]` as `torch.nn.functional.max_pool2d(x, kernel, stride,
/// padding)` (floor mode, dilation 1): padded cells count as −∞, NaN propagates, and the
/// gradient goes to the first maximum of each window (row-major), accumulating where windows
/// overlap. `padding` may be at most `kernel / 2`.
///
/// CPU f32/f64 tensors use a custom op; other devices or dtypes a composition of candle ops
/// (−∞ padding, `k²` strided selections and `maximum`), whose gradient on exact ties may be
/// shared between the tied cells.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::arange(0f32, 16., &Device::Cpu)?.reshape((1, 1, 4, 4))?;
/// let y = arfpn_kernels::max_pool2d(&x, 3, 2, 1)?; // the ResNet stem pool
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [5., 7., 13., 15.]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let g = geometry(x, kernel, stride, padding)?;
    if fused_cpu(x, &[]) {
        x.contiguous()?.apply_op1(MaxPoolFwd(g))
    } else {
        max_pool2d_composed(x, g)
    }
}

/// The device-generic route: pad with −∞ and take the maximum of the `k²` strided views.
fn max_pool2d_composed(x: &Tensor, g: PoolGeom) -> Result<Tensor> {
    let x = if g.p > 0 {
        let dev = x.device();
        let ninf = |d: &[usize]| Tensor::full(f32::NEG_INFINITY, d, dev)?.to_dtype(x.dtype());
        let side = ninf(&[g.n, g.c, g.h, g.p])?;
        let x = Tensor::cat(&[&side, x, &side], 3)?;
        let top = ninf(&[g.n, g.c, g.p, g.w + 2 * g.p])?;
        Tensor::cat(&[&top, &x, &top], 2)?
    } else {
        x.clone()
    };
    let dev = x.device();
    let mut out: Option<Tensor> = None;
    for i in 0..g.k {
        let rows: Vec<u32> = (0..g.ho).map(|o| (o * g.s + i) as u32).collect();
        let rows = Tensor::new(rows.as_slice(), dev)?;
        let xr = x.index_select(&rows, 2)?;
        for j in 0..g.k {
            let cols: Vec<u32> = (0..g.wo).map(|o| (o * g.s + j) as u32).collect();
            let v = xr.index_select(&Tensor::new(cols.as_slice(), dev)?, 3)?;
            out = Some(match out {
                None => v,
                Some(m) => m.maximum(&v)?,
            });
        }
    }
    // kernel >= 1, so at least one view was taken.
    out.ok_or_else(|| config_err(OP, "kernel", "must be >= 1"))
}

/// Index (within the plane) of the first maximum of the window of output `(oy, ox)`, or
/// `None` when the window lies entirely in the padding (impossible when `p <= k/2`).
#[cfg(test)]
fn window_argmax<T: Element>(plane: &[T], g: &PoolGeom, oy: usize, ox: usize) -> Option<usize> {
    let y0 = (oy * g.s) as isize - g.p as isize;
    let x0 = (ox * g.s) as isize - g.p as isize;
    let mut best: Option<(usize, T)> = None;
    for yy in y0.max(0)..(y0 + g.k as isize).min(g.h as isize) {
        for xx in x0.max(0)..(x0 + g.k as isize).min(g.w as isize) {
            let idx = yy as usize * g.w + xx as usize;
            let v = plane[idx];
            match best {
                Some((_, m)) if !(v > m || v.is_nan()) || m.is_nan() => {}
                _ => best = Some((idx, v)),
            }
        }
    }
    best.map(|(i, _)| i)
}

/// Whether `v` replaces `m` as the maximum met so far when a window is scanned in
/// row-major order: when `v > m` or `v` is the first NaN; ties keep the earlier cell (as
/// the row-major scan `window_argmax` of the tests). Written with `&`/`|` so that it
/// compiles to selects, not branches.
#[inline(always)]
fn takes<T: Element>(v: T, m: T) -> bool {
    !m.is_nan() & ((v > m) | v.is_nan())
}

/// The outputs `ox` whose tap `kx` lies inside a row of `w` cells: `0 <= ox·s + kx − p < w`.
fn tap_range(g: &PoolGeom, kx: usize) -> std::ops::Range<usize> {
    let lo = g.p.saturating_sub(kx).div_ceil(g.s);
    let end = if g.w + g.p > kx {
        ((g.w + g.p - kx - 1) / g.s + 1).min(g.wo)
    } else {
        0
    };
    lo..end.max(lo)
}

/// One plane's window maxima: the value a row-major scan of each window picks (the tests'
/// `window_argmax`; the same cell, so the same bits, ±0 included), computed separably: each
/// window row's maximum over its columns (a tap at a time across all outputs of the row),
/// then over the rows in order. Both steps keep the earlier cell on ties, which is what a
/// row-major scan keeps. `hv` is a scratch row.
fn plane_max<T: Element>(plane: &[T], g: &PoolGeom, out: &mut [T], hv: &mut [T]) {
    let taps: Vec<_> = (0..g.k).map(|kx| tap_range(g, kx)).collect();
    for (oy, ov) in out.chunks_mut(g.wo).enumerate() {
        let mut first_row = true;
        for ky in 0..g.k {
            let Some(yy) = (oy * g.s + ky).checked_sub(g.p).filter(|&y| y < g.h) else {
                continue;
            };
            let row = &plane[yy * g.w..(yy + 1) * g.w];
            // Each output's first tap inside the row starts its maximum (with p <= k/2
            // every output has one: tap kx = p is column ox·s).
            hv.fill(T::NEG_INFINITY);
            // The tap ranges move left as kx grows (their starts and ends do not increase),
            // so the outputs that already met a tap are those from the smallest start so far.
            let mut seen_from = usize::MAX;
            for (kx, r) in taps.iter().enumerate() {
                let split = seen_from.clamp(r.start, r.end);
                let col = |ox: usize| ox * g.s + kx - g.p;
                for ox in r.start..split {
                    hv[ox] = row[col(ox)];
                }
                for ox in split..r.end {
                    let v = row[col(ox)];
                    hv[ox] = if takes(v, hv[ox]) { v } else { hv[ox] };
                }
                seen_from = seen_from.min(r.start);
            }
            if first_row {
                ov.copy_from_slice(hv);
                first_row = false;
            } else {
                for (m, &v) in ov.iter_mut().zip(hv.iter()) {
                    *m = if takes(v, *m) { v } else { *m };
                }
            }
        }
    }
}

fn pool_fwd<T: Element + candle_core::WithDType>(x: &[T], g: &PoolGeom) -> Vec<T> {
    let mut y = vec![T::ZERO; g.n * g.c * g.ho * g.wo];
    y.par_chunks_mut(g.ho * g.wo)
        .enumerate()
        .for_each(|(pi, out)| {
            let plane = &x[pi * g.h * g.w..(pi + 1) * g.h * g.w];
            // `geometry` allows p <= k/2 only, so every output has a tap in every row of its
            // window that lies inside the plane.
            let mut hv = vec![T::ZERO; g.wo];
            plane_max(plane, g, out, &mut hv);
        });
    y
}

/// The cell a row-major scan of the window picks (the tests' `window_argmax`), found from
/// the window's maximum `m` (the forward's output): the first cell in row-major order with
/// `m`'s bits. It is that cell because the picked cell is the first one equal to the maximum
/// (the first NaN when there is one), and any earlier cell with the same bits would equal
/// the maximum too. Stops at the cell instead of comparing the whole window.
fn window_cell_of<T: Element>(
    plane: &[T],
    g: &PoolGeom,
    oy: usize,
    ox: usize,
    m: T,
) -> Option<usize> {
    let y0 = (oy * g.s) as isize - g.p as isize;
    let x0 = (ox * g.s) as isize - g.p as isize;
    let (xa, xb) = (
        x0.max(0) as usize,
        (x0 + g.k as isize).min(g.w as isize).max(0) as usize,
    );
    let mb = m.bits();
    for yy in y0.max(0)..(y0 + g.k as isize).min(g.h as isize) {
        let row = yy as usize * g.w;
        if let Some(j) = plane[row + xa..row + xb.max(xa)]
            .iter()
            .position(|v| v.bits() == mb)
        {
            return Some(row + xa + j);
        }
    }
    None
}

fn pool_bwd<T: Element + candle_core::WithDType>(
    x: &[T],
    y: &[T],
    dy: &[T],
    g: &PoolGeom,
) -> Vec<T> {
    let mut dx = vec![T::ZERO; g.n * g.c * g.h * g.w];
    dx.par_chunks_mut(g.h * g.w)
        .enumerate()
        .for_each(|(pi, dplane)| {
            let plane = &x[pi * g.h * g.w..(pi + 1) * g.h * g.w];
            let out = &y[pi * g.ho * g.wo..(pi + 1) * g.ho * g.wo];
            let grad = &dy[pi * g.ho * g.wo..(pi + 1) * g.ho * g.wo];
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let o = oy * g.wo + ox;
                    if let Some(i) = window_cell_of(plane, g, oy, ox, out[o]) {
                        dplane[i] += grad[o];
                    }
                }
            }
        });
    dx
}

struct MaxPoolFwd(PoolGeom);

impl CustomOp1 for MaxPoolFwd {
    fn name(&self) -> &'static str {
        "arfpn-max-pool2d"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let st = dispatch_float!(OP, s, |T| {
            pool_fwd(contiguous_slice::<T>(s, l, OP, "x")?, g)
        });
        Ok((st, Shape::from((g.n, g.c, g.ho, g.wo))))
    }
    fn bwd(&self, x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op3_no_bwd(
            res,
            &grad.contiguous()?,
            &MaxPoolBwd(self.0),
        )?))
    }
}

/// `(x, y, dy) -> dx`, `y` the forward's output.
struct MaxPoolBwd(PoolGeom);

impl CustomOp3 for MaxPoolBwd {
    fn name(&self) -> &'static str {
        "arfpn-max-pool2d-bwd"
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
        let g = &self.0;
        let st = dispatch_float!(OP, s1, |T| pool_bwd(
            contiguous_slice::<T>(s1, l1, OP, "x")?,
            contiguous_slice(s2, l2, OP, "y")?,
            contiguous_slice(s3, l3, OP, "grad")?,
            g,
        ));
        Ok((st, Shape::from((g.n, g.c, g.h, g.w))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn distinct(dims: (usize, usize, usize, usize), seed: u32) -> Result<Tensor> {
        // A permutation of 0..n scaled: distinct values, so no ties.
        let n = dims.0 * dims.1 * dims.2 * dims.3;
        let v: Vec<f64> = (0..n)
            .map(|i| ((i as u64 * 7919 + seed as u64) % n as u64) as f64 - n as f64 / 2.0)
            .collect();
        Tensor::from_vec(v, dims, &Device::Cpu)
    }

    /// The separable forward gives each window the bits of the cell the row-major scan
    /// picks, and the backward finds that cell from them, on planes full of ties (±0 included), NaNs and −∞, for every geometry the op
    /// accepts on small planes.
    #[test]
    fn separable_maximum_is_the_first_row_major_maximum() {
        let pick = [
            0.0,
            1.0,
            1.0,
            -0.0,
            f64::NAN,
            f64::NEG_INFINITY,
            2.0,
            1.0,
            -3.0,
        ];
        let mut state = 12345u64;
        let mut windows = 0;
        for (h, w) in [(1, 1), (2, 3), (5, 4), (7, 9), (8, 8), (3, 11)] {
            for k in 1..=5 {
                for s in 1..=3 {
                    for p in 0..=k / 2 {
                        if h + 2 * p < k || w + 2 * p < k {
                            continue;
                        }
                        let g = PoolGeom {
                            n: 1,
                            c: 1,
                            h,
                            w,
                            ho: (h + 2 * p - k) / s + 1,
                            wo: (w + 2 * p - k) / s + 1,
                            k,
                            s,
                            p,
                        };
                        for _ in 0..4 {
                            let plane: Vec<f64> = (0..h * w)
                                .map(|_| {
                                    state = state
                                        .wrapping_mul(6364136223846793005)
                                        .wrapping_add(1442695040888963407);
                                    pick[(state >> 33) as usize % pick.len()]
                                })
                                .collect();
                            let mut out = vec![0.0; g.ho * g.wo];
                            plane_max(&plane, &g, &mut out, &mut vec![0.0; g.wo]);
                            for oy in 0..g.ho {
                                for ox in 0..g.wo {
                                    let want = window_argmax(&plane, &g, oy, ox)
                                        .map_or(f64::NEG_INFINITY, |i| plane[i]);
                                    let got = out[oy * g.wo + ox];
                                    assert_eq!(got.to_bits(), want.to_bits(), "{g:?} ({oy}, {ox})");
                                    // The backward finds the same cell from the maximum.
                                    assert_eq!(
                                        window_cell_of(&plane, &g, oy, ox, got),
                                        window_argmax(&plane, &g, oy, ox),
                                        "{g:?} ({oy}, {ox})"
                                    );
                                    windows += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(windows > 1000);
    }

    /// The custom op and the device-generic composition agree, forward and backward.
    #[test]
    fn custom_op_equals_composed_route() -> Result<()> {
        for (k, s, p) in [(3, 2, 1), (2, 2, 0), (3, 1, 1), (5, 2, 2)] {
            let x = Var::from_tensor(&distinct((2, 2, 9, 8), k as u32)?)?;
            let r = distinct((2, 2, 9, 8), 3)?;
            let a = max_pool2d(&x, k, s, p)?;
            let b = max_pool2d_composed(&x, geometry(&x, k, s, p)?)?;
            assert_eq!(
                a.flatten_all()?.to_vec1::<f64>()?,
                b.flatten_all()?.to_vec1::<f64>()?
            );
            let rr = r.narrow(2, 0, a.dim(2)?)?.narrow(3, 0, a.dim(3)?)?;
            let ga = (&a * &rr)?.sum_all()?.backward()?;
            let gb = (&b * &rr)?.sum_all()?.backward()?;
            let ga = ga.get(&x).expect("dx").flatten_all()?.to_vec1::<f64>()?;
            let gb = gb.get(&x).expect("dx").flatten_all()?.to_vec1::<f64>()?;
            assert_eq!(ga, gb, "k {k} s {s} p {p}");
        }
        Ok(())
    }
}
