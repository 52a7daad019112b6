//! `y[n, c, ·] = x[n, c, ·] · scale[c] + shift[c]` (frozen batch norm), optionally followed by
//! a ReLU, as one parallel CPU pass, with the input gradient `dx = dy · scale[c]` (masked by
//! `[y > 0]` after the ReLU) as another. `scale` and `shift` are constants of the op (frozen:
//! they get no gradient), so the backward graph holds only the input (and the output, for the
//! ReLU's mask) — candle's `broadcast_mul` + `broadcast_add` keep two full-size maps and run
//! their backward on one thread, and a separate ReLU would add a pass and a map each way.

use crate::dispatch_float;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use crate::element::Element;
use crate::relu::relu_of;
use crate::storage::{contiguous_slice, par_build};

/// The per-channel affine of an `[N, C, ...]` tensor (f32 or f64, contiguous).
#[derive(Clone, Debug)]
struct ChannelAffine {
    scale: Arc<Vec<f64>>,
    shift: Option<Arc<Vec<f64>>>,
    /// Apply [`relu_of`] to each result: the values of `relu(affine(x))` in one pass.
    relu: bool,
}

fn apply<T: Element>(
    x: &[T],
    c: usize,
    plane: usize,
    scale: &[f64],
    shift: Option<&[f64]>,
    relu: bool,
) -> Vec<T> {
    assert!(plane > 0 && x.len().is_multiple_of(plane));
    // SAFETY: plane i of the output is written whole from plane i of `x` (`x` is whole
    // planes, asserted).
    unsafe {
        par_build(x.len(), plane, |i, yp| {
            let ch = i % c;
            let a = T::of(scale[ch]);
            let b = T::of(shift.map_or(0.0, |s| s[ch]));
            // A multiplication then an addition in the element type, rounded as candle's
            // broadcast_mul + broadcast_add round them (no fused multiply-add).
            let xp = &x[i * plane..(i + 1) * plane];
            if relu {
                for (o, &v) in yp.iter_mut().zip(xp) {
                    o.write(relu_of(v * a + b));
                }
            } else {
                for (o, &v) in yp.iter_mut().zip(xp) {
                    o.write(v * a + b);
                }
            }
        })
    }
}

impl CustomOp1 for ChannelAffine {
    fn name(&self) -> &'static str {
        "channel_affine"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l.dims();
        let c = dims.get(1).copied().unwrap_or(0);
        if c != self.scale.len() || self.shift.as_ref().is_some_and(|b| b.len() != c) {
            candle_core::bail!("channel_affine: {c} channels, {} scales", self.scale.len());
        }
        let plane: usize = dims.iter().skip(2).product();
        if plane == 0 || c == 0 {
            return Ok((s.clone(), l.shape().clone()));
        }
        let shift = self.shift.as_deref().map(|v| v.as_slice());
        let out = dispatch_float!("channel_affine", s, |T| apply(
            contiguous_slice::<T>(s, l, "channel_affine", "x")?,
            c,
            plane,
            &self.scale,
            shift,
            self.relu,
        ));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        if self.relu {
            let op = MaskedScale {
                scale: self.scale.clone(),
            };
            return Ok(Some(
                dy.contiguous()?.apply_op2_no_bwd(&y.contiguous()?, &op)?,
            ));
        }
        let scale_only = ChannelAffine {
            scale: self.scale.clone(),
            shift: None,
            relu: false,
        };
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&scale_only)?))
    }
}

/// The input gradient of a [`ChannelAffine`] with ReLU: `dx = (dy · [y > 0]) · scale[c]`,
/// the ReLU's gradient (PyTorch's rule: 0 at 0) then the affine's, rounded as the two
/// separate passes round them.
#[derive(Clone, Debug)]
struct MaskedScale {
    scale: Arc<Vec<f64>>,
}

fn masked_scale<T: Element>(dy: &[T], y: &[T], c: usize, plane: usize, scale: &[f64]) -> Vec<T> {
    assert!(plane > 0 && dy.len().is_multiple_of(plane) && dy.len() == y.len());
    // SAFETY: plane i of the output is written whole from planes i of `dy` and `y` (whole
    // planes of equal length, asserted).
    unsafe {
        par_build(dy.len(), plane, |i, gp| {
            let a = T::of(scale[i % c]);
            let span = i * plane..(i + 1) * plane;
            for ((o, &d), &v) in gp.iter_mut().zip(&dy[span.clone()]).zip(&y[span]) {
                let masked = if v > T::ZERO { d } else { T::ZERO };
                o.write(masked * a);
            }
        })
    }
}

impl CustomOp2 for MaskedScale {
    fn name(&self) -> &'static str {
        "channel_affine_relu_grad"
    }

    fn cpu_fwd(
        &self,
        sd: &CpuStorage,
        ld: &Layout,
        sy: &CpuStorage,
        ly: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        const OP: &str = "channel_affine_relu_grad";
        let dims = ld.dims();
        let c = dims.get(1).copied().unwrap_or(0);
        if c != self.scale.len() || ly.dims() != dims {
            candle_core::bail!(
                "{OP}: dy {dims:?}, y {:?}, {} scales",
                ly.dims(),
                self.scale.len()
            );
        }
        let plane: usize = dims.iter().skip(2).product();
        if plane == 0 || c == 0 {
            return Ok((sd.clone(), ld.shape().clone()));
        }
        let out = dispatch_float!(OP, sd, |T| masked_scale(
            contiguous_slice::<T>(sd, ld, OP, "dy")?,
            contiguous_slice::<T>(sy, ly, OP, "y")?,
            c,
            plane,
            &self.scale,
        ));
        Ok((out, ld.shape().clone()))
    }
}

/// A per-channel `(scale, shift)` pair of a frozen affine, as the ops here take it.
pub type Affine = (Arc<Vec<f64>>, Arc<Vec<f64>>);

/// The end of a residual unit with frozen batch norms: `relu(affine_a(a) + b')` where `b'` is
/// `affine_b(b)` (a projection shortcut's norm) or `b` itself (an identity shortcut), in one
/// pass; the values of the separate affine(s) and [`crate::add_relu`], rounded as they round
/// them. Backward: `da = (dy · [y > 0]) · scale_a`, `db` the same with `scale_b` (or the masked
/// `dy`), two passes instead of three, and no intermediate map kept.
#[derive(Clone, Debug)]
struct AffineAddRelu {
    a: Affine,
    b: Option<Affine>,
}

fn affine_add_relu_values<T: Element>(
    a: &[T],
    b: &[T],
    c: usize,
    plane: usize,
    fa: (&[f64], &[f64]),
    fb: Option<(&[f64], &[f64])>,
) -> Vec<T> {
    assert!(plane > 0 && a.len().is_multiple_of(plane) && a.len() == b.len());
    // SAFETY: plane i of the output is written whole from planes i of `a` and `b` (whole
    // planes of equal length, asserted).
    unsafe {
        par_build(a.len(), plane, |i, yp| {
            let ch = i % c;
            let (sa, ta) = (T::of(fa.0[ch]), T::of(fa.1[ch]));
            let span = i * plane..(i + 1) * plane;
            let (ap, bp) = (&a[span.clone()], &b[span]);
            match fb {
                Some((s, t)) => {
                    let (sb, tb) = (T::of(s[ch]), T::of(t[ch]));
                    for ((o, &u), &v) in yp.iter_mut().zip(ap).zip(bp) {
                        o.write(relu_of((u * sa + ta) + (v * sb + tb)));
                    }
                }
                None => {
                    for ((o, &u), &v) in yp.iter_mut().zip(ap).zip(bp) {
                        o.write(relu_of((u * sa + ta) + v));
                    }
                }
            }
        })
    }
}

impl CustomOp2 for AffineAddRelu {
    fn name(&self) -> &'static str {
        "affine_add_relu"
    }

    fn cpu_fwd(
        &self,
        sa: &CpuStorage,
        la: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        const OP: &str = "affine_add_relu";
        let dims = la.dims();
        let c = dims.get(1).copied().unwrap_or(0);
        let fits = |f: &Affine| f.0.len() == c && f.1.len() == c;
        if lb.dims() != dims || !fits(&self.a) || self.b.as_ref().is_some_and(|f| !fits(f)) {
            candle_core::bail!(
                "{OP}: a {dims:?}, b {:?}, {} scales",
                lb.dims(),
                self.a.0.len()
            );
        }
        let plane: usize = dims.iter().skip(2).product();
        if plane == 0 || c == 0 {
            return Ok((sa.clone(), la.shape().clone()));
        }
        let fa = (self.a.0.as_slice(), self.a.1.as_slice());
        let fb = self.b.as_ref().map(|f| (f.0.as_slice(), f.1.as_slice()));
        let out = dispatch_float!(OP, sa, |T| affine_add_relu_values(
            contiguous_slice::<T>(sa, la, OP, "a")?,
            contiguous_slice::<T>(sb, lb, OP, "b")?,
            c,
            plane,
            fa,
            fb,
        ));
        Ok((out, la.shape().clone()))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dy, y) = (dy.contiguous()?, y.contiguous()?);
        let masked = |scale: &Arc<Vec<f64>>| {
            let op = MaskedScale {
                scale: scale.clone(),
            };
            dy.apply_op2_no_bwd(&y, &op)
        };
        let da = masked(&self.a.0)?;
        let db = match &self.b {
            Some(f) => masked(&f.0)?,
            None => crate::relu::relu_grad(&dy, &y)?,
        };
        Ok((Some(da), Some(db)))
    }
}

/// `x·scale + shift` per channel of a contiguous-able `[N, C, ...]` CPU tensor (f32 or f64),
/// then `max(·, 0)` with `relu`, in one parallel pass; the backward is one pass too
/// (`dx = dy·scale`, masked by `y > 0` with `relu`). `scale` and `shift` are the per-channel
/// values already rounded to the tensor's dtype (held as f64): a multiplication then an
/// addition in the element type, rounded as candle's `broadcast_mul` + `broadcast_add` round
/// them. The frozen batch norm's fused forward.
///
/// ```
/// use std::sync::Arc;
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[[1f32, -2.0]], [[3.0, 4.0]]]], &Device::Cpu)?; // [1, 2, 1, 2]
/// let y = arfpn_kernels::channel_affine(&x, Arc::new(vec![2.0, 0.5]), Some(Arc::new(vec![0.0, 1.0])), true)?;
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [2.0, 0.0, 2.5, 3.0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn channel_affine(
    x: &Tensor,
    scale: Arc<Vec<f64>>,
    shift: Option<Arc<Vec<f64>>>,
    relu: bool,
) -> Result<Tensor> {
    x.contiguous()?
        .apply_op1(ChannelAffine { scale, shift, relu })
}

/// The end of a residual unit with frozen batch norms on the CPU (f32 or f64):
/// `relu(a·scale_a + shift_a + b')` with `b' = b·scale_b + shift_b` (`affine_b`, a projection
/// shortcut's norm) or `b` itself, in one pass, with the values and gradients of the separate
/// affines and [`add_relu`](crate::add_relu). `a` and `b` have one shape `[N, C, ...]`.
pub fn affine_add_relu(
    a: &Tensor,
    b: &Tensor,
    affine_a: Affine,
    affine_b: Option<Affine>,
) -> Result<Tensor> {
    a.contiguous()?.apply_op2(
        &b.contiguous()?,
        AffineAddRelu {
            a: affine_a,
            b: affine_b,
        },
    )
}
