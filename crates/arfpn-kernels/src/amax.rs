//! The maximum over one dimension with PyTorch `amax`'s gradient (split evenly among tied
//! maxima), as one parallel CPU pass forward and one backward.
//!
//! candle's `max_keepdim` gives the *whole* gradient to every tied element, which
//! over-counts where ReLU zeros make ties common (CBAM's max-pooled descriptors). The
//! composed fix (`max`, `eq`, `to_dtype`, `sum`, `div`, `mul`, `sum`) costs seven
//! single-threaded passes over the map in each direction; this op costs one.

use crate::dispatch_float;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::element::Element;
use crate::error::shape_err;
use crate::storage::{contiguous_slice, fused_cpu};

/// `x.amax(dim, keepdim=True)` with the gradient of each output split evenly among the
/// elements that attain the maximum.
///
/// ```
/// use candle_core::{Device, Tensor, Var};
/// let x = Var::new(&[[1f32, 3.0, 3.0], [0.0, -1.0, 2.0]], &Device::Cpu)?;
/// let m = arfpn_kernels::amax_keepdim(x.as_tensor(), 1)?;
/// assert_eq!(m.to_vec2::<f32>()?, [[3.0], [2.0]]);
/// let g = m.sum_all()?.backward()?;
/// assert_eq!(g.get(x.as_tensor()).unwrap().to_vec2::<f32>()?, [[0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn amax_keepdim(x: &Tensor, dim: usize) -> Result<Tensor> {
    let dims = x.dims();
    if dim >= dims.len() || dims[dim] == 0 {
        return Err(shape_err(
            "amax_keepdim",
            "x",
            dims,
            format!("a non-empty dimension {dim}"),
        ));
    }
    if fused_cpu(x, &[]) {
        return x.contiguous()?.apply_op1(Amax { dim });
    }
    composed(x, dim)
}

/// The same function in candle ops (other devices and dtypes; the tests' reference).
pub fn composed(x: &Tensor, dim: usize) -> Result<Tensor> {
    let m = x.max_keepdim(dim)?.detach();
    let mask = x.broadcast_eq(&m)?.to_dtype(x.dtype())?;
    let share = mask.broadcast_div(&mask.sum_keepdim(dim)?)?;
    let s = (x * share)?.sum_keepdim(dim)?;
    // m + (s - s) keeps the forward exact while the gradient flows through s.
    m + (&s - s.detach())?
}

/// `[outer, reduced, inner]` view of a contiguous tensor reduced over `dim`.
pub(crate) fn split(dims: &[usize], dim: usize) -> (usize, usize, usize) {
    let outer = dims[..dim].iter().product();
    let inner = dims[dim + 1..].iter().product();
    (outer, dims[dim], inner)
}

/// Columns per parallel task when the reduced dimension is not the last.
pub(crate) const COLS: usize = 4096;

/// Maxima over `k` of `xb[k * inner + j0 + j]` into `out[j]` (NaN wins, as in candle).
fn column_max<T: Element>(xb: &[T], r: usize, inner: usize, j0: usize, out: &mut [T]) {
    let w = out.len();
    out.copy_from_slice(&xb[j0..j0 + w]);
    for k in 1..r {
        let row = &xb[k * inner + j0..k * inner + j0 + w];
        for (o, &v) in out.iter_mut().zip(row) {
            if v > *o || v.is_nan() {
                *o = v;
            }
        }
    }
}

fn forward<T: Element>(x: &[T], (outer, r, inner): (usize, usize, usize)) -> Vec<T> {
    let mut y = vec![T::ZERO; outer * inner];
    if inner == 1 {
        // Reduction over the last dimension: one output per contiguous row.
        y.par_iter_mut()
            .zip(x.par_chunks(r))
            .for_each(|(o, row)| column_max(row, r, 1, 0, std::slice::from_mut(o)));
    } else {
        // Parallel over outer blocks and, within each, over chunks of columns (the spatial
        // gate reduces channels of a single image: one outer block).
        y.par_chunks_mut(inner)
            .zip(x.par_chunks(r * inner))
            .for_each(|(o, xb)| {
                o.par_chunks_mut(COLS)
                    .enumerate()
                    .for_each(|(c, oc)| column_max(xb, r, inner, c * COLS, oc));
            });
    }
    y
}

/// `dx = dy · [x == m] / #ties`: the tie counts per output (parallel over outputs), then
/// `dx` row by row (parallel over rows).
fn backward<T: Element>(
    x: &[T],
    m: &[T],
    dy: &[T],
    (_, r, inner): (usize, usize, usize),
) -> Vec<T> {
    let mut count = vec![0u32; m.len()];
    count
        .par_chunks_mut(inner)
        .zip(x.par_chunks(r * inner))
        .zip(m.par_chunks(inner))
        .for_each(|((cb, xb), mb)| {
            cb.par_chunks_mut(COLS).enumerate().for_each(|(c, cc)| {
                let j0 = c * COLS;
                for k in 0..r {
                    let row = &xb[k * inner + j0..k * inner + j0 + cc.len()];
                    for ((n, &v), &mv) in cc.iter_mut().zip(row).zip(&mb[j0..]) {
                        if v == mv {
                            *n += 1;
                        }
                    }
                }
            });
        });
    let mut dx = vec![T::ZERO; x.len()];
    dx.par_chunks_mut(inner)
        .zip(x.par_chunks(inner))
        .enumerate()
        .for_each(|(row, (dxr, xr))| {
            let b = row / r;
            let (mb, db, cb) = (
                &m[b * inner..(b + 1) * inner],
                &dy[b * inner..(b + 1) * inner],
                &count[b * inner..(b + 1) * inner],
            );
            for j in 0..inner {
                if xr[j] == mb[j] {
                    dxr[j] = db[j].div_count(cb[j] as usize);
                }
            }
        });
    dx
}

#[derive(Clone, Copy, Debug)]
struct Amax {
    dim: usize,
}

impl CustomOp1 for Amax {
    fn name(&self) -> &'static str {
        "amax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let parts = split(l.dims(), self.dim);
        let out = dispatch_float!("amax", s, |T| {
            forward(contiguous_slice::<T>(s, l, "amax", "x")?, parts)
        });
        let mut dims = l.dims().to_vec();
        dims[self.dim] = 1;
        Ok((out, Shape::from(dims)))
    }

    fn bwd(&self, x: &Tensor, m: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let packed = Tensor::cat(
            &[
                m.flatten_all()?,
                dy.contiguous()?.flatten_all()?.to_dtype(m.dtype())?,
            ],
            0,
        )?;
        Ok(Some(
            x.apply_op2_no_bwd(&packed, &AmaxBwd { dim: self.dim })?,
        ))
    }
}

/// Backward: `(x, [m; dy])` -> `dx`.
#[derive(Clone, Copy, Debug)]
struct AmaxBwd {
    dim: usize,
}

impl candle_core::CustomOp2 for AmaxBwd {
    fn name(&self) -> &'static str {
        "amax_bwd"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sp: &CpuStorage,
        lp: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let parts = split(lx.dims(), self.dim);
        let half = parts.0 * parts.2;
        let out = dispatch_float!("amax_bwd", sx, |T| {
            let p = contiguous_slice::<T>(sp, lp, "amax_bwd", "m, dy")?;
            backward(
                contiguous_slice::<T>(sx, lx, "amax_bwd", "x")?,
                &p[..half],
                &p[half..],
                parts,
            )
        });
        Ok((out, lx.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Values with many exact ties (as ReLU outputs have).
    fn tied(n: usize) -> Vec<f64> {
        (0..n).map(|i| ((i * 7919) % 13) as f64 / 4.0).collect()
    }

    #[test]
    fn equals_the_composed_form_with_ties_on_every_dimension() -> Result<()> {
        let dev = Device::Cpu;
        let shape = (2, 5, 3, 4);
        let x = Var::from_vec(tied(120), shape, &dev)?;
        let w = Tensor::new(
            (0..120).map(|i| i as f64 * 0.1 - 3.0).collect::<Vec<_>>(),
            &dev,
        )?
        .reshape(shape)?;
        for dim in 0..4 {
            let ours = amax_keepdim(x.as_tensor(), dim)?;
            let theirs = composed(x.as_tensor(), dim)?;
            assert_eq!(
                ours.flatten_all()?.to_vec1::<f64>()?,
                theirs.flatten_all()?.to_vec1::<f64>()?,
                "dim {dim}"
            );
            let lo = ours.broadcast_mul(&w.narrow(dim, 0, 1)?)?.sum_all()?;
            let lt = theirs.broadcast_mul(&w.narrow(dim, 0, 1)?)?.sum_all()?;
            let go = lo.backward()?.get(x.as_tensor()).cloned().expect("grad");
            let gt = lt.backward()?.get(x.as_tensor()).cloned().expect("grad");
            let (go, gt) = (
                go.flatten_all()?.to_vec1::<f64>()?,
                gt.flatten_all()?.to_vec1::<f64>()?,
            );
            for (i, (a, b)) in go.iter().zip(&gt).enumerate() {
                assert!((a - b).abs() < 1e-12, "dim {dim} element {i}: {a} vs {b}");
            }
        }
        Ok(())
    }

    #[test]
    fn large_maps_split_across_threads_and_bad_dims_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(tied(2 * 64 * 40 * 30), &dev)?
            .reshape((2, 64, 40, 30))?
            .to_dtype(DType::F32)?;
        for dim in [1, 3] {
            let a = amax_keepdim(&x, dim)?.flatten_all()?.to_vec1::<f32>()?;
            let b = x.max_keepdim(dim)?.flatten_all()?.to_vec1::<f32>()?;
            assert_eq!(a, b, "dim {dim}");
        }
        assert!(amax_keepdim(&x, 4).is_err());
        let empty = Tensor::zeros((2, 0), DType::F32, &dev)?;
        assert!(amax_keepdim(&empty, 1).is_err());
        Ok(())
    }
}
