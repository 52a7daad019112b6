//! Nearest-neighbour 2× upsampling whose backward accumulates.
//!
//! candle 0.11's `upsample_nearest2d` backward *overwrites* the gradient already accumulated
//! for its input (`*sum_grad = ..`), so when the input also feeds another branch — the FPN
//! top-down pattern, where a lateral map is both upsampled and output — the other branch's
//! gradient is silently dropped. This version is a reshape/broadcast composition, whose
//! backward is candle's (correct) broadcast reduction, on every device.

use crate::dispatch_float;
use crate::element::Element;
use crate::error::shape_err;
use crate::storage::{contiguous_slice, fused_cpu, par_build};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// Nearest 2× upsampling of `x: [N, C, H, W]` to `[N, C, 2H, 2W]`, each cell copied into a 2×2
/// block (`torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")`).
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[[1f32, 2.]]]], &Device::Cpu)?;
/// let y = arfpn_kernels::upsample_nearest2x(&x)?;
/// assert_eq!(y.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?, [[1., 1., 2., 2.], [1., 1., 2., 2.]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let &[n, c, h, w] = x.dims() else {
        return Err(shape_err(
            "upsample_nearest2x",
            "x",
            x.dims(),
            "[N, C, H, W]",
        ));
    };
    x.reshape((n, c, h, 1, w, 1))?
        .broadcast_as((n, c, h, 2, w, 2))?
        .contiguous()?
        .reshape((n, c, 2 * h, 2 * w))
}

/// `lateral + upsample_nearest2x(inner)`, the FPN's top-down step (`lateral` `[N, C, 2H, 2W]`,
/// `inner` `[N, C, H, W]`): one parallel pass on the CPU for f32/f64 (no upsampled copy is
/// made), whose backward hands `dy` to `lateral` and the sum of each 2×2 block of `dy` to
/// `inner`, also in one pass; elsewhere the composition of [`upsample_nearest2x`] and `+`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let inner = Tensor::new(&[[[[1f32, 2.]]]], &Device::Cpu)?;
/// let lateral = Tensor::new(&[[[[0f32, 1., 2., 3.], [4., 5., 6., 7.]]]], &Device::Cpu)?;
/// let y = arfpn_kernels::add_upsample_nearest2x(&lateral, &inner)?;
/// assert_eq!(y.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?, [[1., 2., 4., 5.], [5., 6., 8., 9.]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn add_upsample_nearest2x(lateral: &Tensor, inner: &Tensor) -> Result<Tensor> {
    const OP: &str = "add_upsample_nearest2x";
    let &[n, c, h, w] = inner.dims() else {
        return Err(shape_err(OP, "inner", inner.dims(), "[N, C, H, W]"));
    };
    if lateral.dims() != [n, c, 2 * h, 2 * w] {
        return Err(shape_err(
            OP,
            "lateral",
            lateral.dims(),
            format!("[{n}, {c}, {}, {}] (twice inner's size)", 2 * h, 2 * w),
        ));
    }
    if !fused_cpu(lateral, &[inner]) {
        return lateral + upsample_nearest2x(inner)?;
    }
    lateral
        .contiguous()?
        .apply_op2(&inner.contiguous()?, AddUpsample)
}

/// `(lateral, inner) -> lateral + up2(inner)`.
#[derive(Clone, Copy, Debug)]
struct AddUpsample;

fn add_up_fwd<T: Element>(lat: &[T], inner: &[T], (h, w): (usize, usize)) -> Vec<T> {
    let (plane, w2) = (4 * h * w, 2 * w);
    if plane == 0 {
        return Vec::new();
    }
    // SAFETY: each task writes its whole output plane.
    unsafe {
        par_build(lat.len(), plane, |p, out| {
            let (lp, ip) = (
                &lat[p * plane..(p + 1) * plane],
                &inner[p * h * w..(p + 1) * h * w],
            );
            for (r, (orow, lrow)) in out.chunks_mut(w2).zip(lp.chunks(w2)).enumerate() {
                let irow = &ip[(r / 2) * w..(r / 2 + 1) * w];
                for ((o, l), &v) in orow.chunks_mut(2).zip(lrow.chunks(2)).zip(irow) {
                    o[0].write(l[0] + v);
                    o[1].write(l[1] + v);
                }
            }
        })
    }
}

/// The sum of each 2×2 block of `dy` (`[.., 2H, 2W]` -> `[.., H, W]`).
fn block_sum<T: Element>(dy: &[T], (h, w): (usize, usize)) -> Vec<T> {
    let (plane, w2) = (h * w, 2 * w);
    if plane == 0 {
        return Vec::new();
    }
    // SAFETY: each task writes its whole output plane.
    unsafe {
        par_build(dy.len() / 4, plane, |p, out| {
            let dp = &dy[p * 4 * plane..(p + 1) * 4 * plane];
            for (i, orow) in out.chunks_mut(w).enumerate() {
                let (a, b) = (
                    &dp[2 * i * w2..(2 * i + 1) * w2],
                    &dp[(2 * i + 1) * w2..(2 * i + 2) * w2],
                );
                for (j, o) in orow.iter_mut().enumerate() {
                    o.write((a[2 * j] + a[2 * j + 1]) + (b[2 * j] + b[2 * j + 1]));
                }
            }
        })
    }
}

impl CustomOp2 for AddUpsample {
    fn name(&self) -> &'static str {
        "add_upsample_nearest2x"
    }

    fn cpu_fwd(
        &self,
        sl: &CpuStorage,
        ll: &Layout,
        si: &CpuStorage,
        li: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        const OP: &str = "add_upsample_nearest2x";
        let &[_, _, h, w] = li.dims() else {
            return Err(shape_err(OP, "inner", li.dims(), "[N, C, H, W]"));
        };
        let out = dispatch_float!(OP, sl, |T| add_up_fwd(
            contiguous_slice::<T>(sl, ll, OP, "lateral")?,
            contiguous_slice::<T>(si, li, OP, "inner")?,
            (h, w),
        ));
        Ok((out, ll.shape().clone()))
    }

    fn bwd(
        &self,
        _lateral: &Tensor,
        inner: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let di = dy.apply_op1_no_bwd(&BlockSum {
            inner: inner.shape().clone(),
        })?;
        Ok((Some(dy), Some(di)))
    }
}

/// `dy -> ` the sums of its 2×2 blocks, in `inner`'s shape.
#[derive(Clone, Debug)]
struct BlockSum {
    inner: Shape,
}

impl CustomOp1 for BlockSum {
    fn name(&self) -> &'static str {
        "block_sum_2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        const OP: &str = "block_sum_2x2";
        let &[_, _, h, w] = self.inner.dims() else {
            return Err(shape_err(OP, "inner", self.inner.dims(), "[N, C, H, W]"));
        };
        let out = dispatch_float!(OP, s, |T| {
            block_sum(contiguous_slice::<T>(s, l, OP, "dy")?, (h, w))
        });
        Ok((out, self.inner.clone()))
    }
}
