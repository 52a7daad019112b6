//! Fused CPU kernels of [`GroupNorm`](crate::GroupNorm): one pass for the statistics and one
//! for the output (forward), two for the three gradients (backward), parallel over
//! (sample, group) with rayon. The composed candle version makes ~8 full passes over the map
//! in each direction, which made GroupNorm cost as much as the convolutions of a ResNet.
//!
//! Backward, per (sample, group) of `m` elements with `x̂ = (x − μ)·r`, `r = 1/√(σ² + ε)`:
//! `dx = r·(dy·w − mean(dy·w) − x̂·mean(dy·w·x̂))`, `dw_c = Σ dy·x̂`, `db_c = Σ dy`.
//! The per-(sample, group) partial sums of `dw`/`db` are reduced in a fixed order, so the
//! result does not depend on the thread count.

use crate::storage::contiguous_slice;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

/// Element types the kernels handle (accumulation is always in f64).
trait Real: WithDType + Send + Sync {
    fn f(self) -> f64;
    fn of(v: f64) -> Self;
}

impl Real for f32 {
    fn f(self) -> f64 {
        self as f64
    }
    fn of(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    fn f(self) -> f64 {
        self
    }
    fn of(v: f64) -> Self {
        v
    }
}

/// `(mean, 1/sqrt(var + eps))` of one group (two passes, biased variance).
fn stats<T: Real>(xg: &[T], eps: f64) -> (f64, f64) {
    let m = xg.len() as f64;
    let mean = xg.iter().map(|v| v.f()).sum::<f64>() / m;
    let var = xg.iter().map(|v| (v.f() - mean).powi(2)).sum::<f64>() / m;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `(channels, hw)` of `[N, C, H, W]`.
fn dims(l: &Layout) -> Result<(usize, usize)> {
    let (_, c, h, w) = l.shape().dims4()?;
    Ok((c, h * w))
}

/// Forward: `y = (x − μ)·r·w + b` as `x·a + s` per channel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupNormFwd {
    pub groups: usize,
    pub eps: f64,
}

fn forward<T: Real>(x: &[T], w: &[T], b: &[T], c: usize, hw: usize, op: GroupNormFwd) -> Vec<T> {
    let cg = c / op.groups;
    let mut y = vec![T::of(0.0); x.len()];
    y.par_chunks_mut(cg * hw)
        .zip(x.par_chunks(cg * hw))
        .enumerate()
        .for_each(|(i, (yg, xg))| {
            let (mean, rstd) = stats(xg, op.eps);
            let g = i % op.groups;
            for k in 0..cg {
                let ch = g * cg + k;
                let a = rstd * w[ch].f();
                let s = b[ch].f() - mean * a;
                let (yc, xc) = (&mut yg[k * hw..(k + 1) * hw], &xg[k * hw..(k + 1) * hw]);
                for (yv, xv) in yc.iter_mut().zip(xc) {
                    *yv = T::of(xv.f() * a + s);
                }
            }
        });
    y
}

impl CustomOp3 for GroupNormFwd {
    fn name(&self) -> &'static str {
        "group_norm"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (c, hw) = dims(lx)?;
        let out = match sx {
            CpuStorage::F32(_) => CpuStorage::F32(forward(
                contiguous_slice(sx, lx, "group_norm", "x")?,
                contiguous_slice(sw, lw, "group_norm", "weight")?,
                contiguous_slice(sb, lb, "group_norm", "bias")?,
                c,
                hw,
                *self,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(forward(
                contiguous_slice(sx, lx, "group_norm", "x")?,
                contiguous_slice(sw, lw, "group_norm", "weight")?,
                contiguous_slice(sb, lb, "group_norm", "bias")?,
                c,
                hw,
                *self,
            )),
            _ => candle_core::bail!("group_norm: only f32 and f64 are supported"),
        };
        Ok((out, lx.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let packed = grad.contiguous()?.apply_op3_no_bwd(
            x,
            w,
            &GroupNormBwd {
                groups: self.groups,
                eps: self.eps,
            },
        )?;
        let (len, c) = (x.elem_count(), w.elem_count());
        let dx = packed.narrow(0, 0, len)?.reshape(x.shape())?;
        let dw = packed.narrow(0, len, c)?;
        let db = packed.narrow(0, len + c, c)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Backward: `(dy, x, w)` -> `[dx (flattened), dw, db]` packed in one vector.
#[derive(Clone, Copy, Debug)]
struct GroupNormBwd {
    groups: usize,
    eps: f64,
}

fn backward<T: Real>(dy: &[T], x: &[T], w: &[T], c: usize, hw: usize, op: GroupNormBwd) -> Vec<T> {
    let cg = c / op.groups;
    let m = cg * hw;
    let mut dx = vec![T::of(0.0); x.len()];
    let partial: Vec<(Vec<f64>, Vec<f64>)> = dx
        .par_chunks_mut(m)
        .zip(x.par_chunks(m))
        .zip(dy.par_chunks(m))
        .enumerate()
        .map(|(i, ((dxg, xg), dyg))| {
            let (mean, rstd) = stats(xg, op.eps);
            let g = i % op.groups;
            let (mut dw, mut db) = (vec![0.0; cg], vec![0.0; cg]);
            let (mut s1, mut s2) = (0.0, 0.0);
            for k in 0..cg {
                let wc = w[g * cg + k].f();
                for j in k * hw..(k + 1) * hw {
                    let xhat = (xg[j].f() - mean) * rstd;
                    let d = dyg[j].f();
                    dw[k] += d * xhat;
                    db[k] += d;
                    s1 += d * wc;
                    s2 += d * wc * xhat;
                }
            }
            let (m1, m2) = (s1 / m as f64, s2 / m as f64);
            for k in 0..cg {
                let wc = w[g * cg + k].f();
                for j in k * hw..(k + 1) * hw {
                    let xhat = (xg[j].f() - mean) * rstd;
                    dxg[j] = T::of(rstd * (dyg[j].f() * wc - m1 - xhat * m2));
                }
            }
            (dw, db)
        })
        .collect();
    let (mut dw, mut db) = (vec![0.0; c], vec![0.0; c]);
    for (i, (pw, pb)) in partial.iter().enumerate() {
        let g = i % op.groups;
        for k in 0..cg {
            dw[g * cg + k] += pw[k];
            db[g * cg + k] += pb[k];
        }
    }
    dx.extend(dw.into_iter().chain(db).map(T::of));
    dx
}

impl CustomOp3 for GroupNormBwd {
    fn name(&self) -> &'static str {
        "group_norm_bwd"
    }

    fn cpu_fwd(
        &self,
        sdy: &CpuStorage,
        ldy: &Layout,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (c, hw) = dims(lx)?;
        let out = match sx {
            CpuStorage::F32(_) => CpuStorage::F32(backward(
                contiguous_slice(sdy, ldy, "group_norm", "grad")?,
                contiguous_slice(sx, lx, "group_norm", "x")?,
                contiguous_slice(sw, lw, "group_norm", "weight")?,
                c,
                hw,
                *self,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(backward(
                contiguous_slice(sdy, ldy, "group_norm", "grad")?,
                contiguous_slice(sx, lx, "group_norm", "x")?,
                contiguous_slice(sw, lw, "group_norm", "weight")?,
                c,
                hw,
                *self,
            )),
            _ => candle_core::bail!("group_norm: only f32 and f64 are supported"),
        };
        let len = lx.shape().elem_count() + 2 * c;
        Ok((out, Shape::from(len)))
    }
}
