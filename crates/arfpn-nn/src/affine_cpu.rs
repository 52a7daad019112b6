//! `y[n, c, ·] = x[n, c, ·] · scale[c] + shift[c]` (frozen batch norm) as one parallel CPU
//! pass, with the input gradient `dx = dy · scale[c]` as another. `scale` and `shift` are
//! constants of the op (frozen: they get no gradient), so the backward graph holds only the
//! input — candle's `broadcast_mul` + `broadcast_add` keep two full-size maps and run their
//! backward on one thread.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use crate::real::Real;
use crate::storage::{contiguous_slice, par_build};

/// The per-channel affine of an `[N, C, ...]` tensor (f32 or f64, contiguous).
#[derive(Clone, Debug)]
pub(crate) struct ChannelAffine {
    pub scale: Arc<Vec<f64>>,
    pub shift: Option<Arc<Vec<f64>>>,
}

fn apply<T: Real>(x: &[T], c: usize, plane: usize, scale: &[f64], shift: Option<&[f64]>) -> Vec<T> {
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
            for (o, &v) in yp.iter_mut().zip(&x[i * plane..]) {
                o.write(v * a + b);
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
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(apply(
                contiguous_slice::<f32>(s, l, "channel_affine", "x")?,
                c,
                plane,
                &self.scale,
                shift,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(apply(
                contiguous_slice::<f64>(s, l, "channel_affine", "x")?,
                c,
                plane,
                &self.scale,
                shift,
            )),
            _ => candle_core::bail!("channel_affine: only f32 and f64 are supported"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let scale_only = ChannelAffine {
            scale: self.scale.clone(),
            shift: None,
        };
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&scale_only)?))
    }
}
