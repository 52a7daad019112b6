//! Fused CPU kernels of [`GroupNorm`](crate::GroupNorm), optionally followed by a ReLU
//! ([`GroupNorm::forward_relu`](crate::GroupNorm::forward_relu)): parallel over
//! (sample, group) with rayon, each group's elements read while they are in cache. The
//! composed candle version makes ~8 full passes over the map in each direction.
//!
//! Forward, per (sample, group) of `m` elements: the mean (one pass), the variance about it
//! (a second pass over the same, cache-resident group) and `y = x·a + s` per channel (ReLU'd
//! when fused). Backward, with `x̂ = (x − μ)·r`, `r = 1/√(σ² + ε)` and `d = dy` (or `dy·[y > 0]`
//! when fused): `dw_c = Σ d·x̂`, `db_c = Σ d`, `dx = r·(d·w − mean(d·w) − x̂·mean(d·w·x̂))`,
//! i.e. one pass for the per-channel sums and one for `dx` (an affine map of `d` and `x`).
//!
//! Numerics: the element-wise work runs in the element type (f32 vectorises), every sum is
//! taken in blocks of [`BLOCK`] elements over [`LANES`] independent lanes in the element
//! type and the blocks are added in f64, so no f32 sum ever runs over more than
//! `BLOCK / LANES` terms. Sums about a mean (variance, `Σ d·(x − μ)`) are taken about the
//! mean rounded to the element type and corrected exactly in f64, so a large mean next to
//! a small spread loses no precision. Per-(sample, group) partial sums of `dw`/`db` are
//! reduced in a fixed order: the result does not depend on the thread count.

use std::sync::Arc;

use crate::real::Real;
use crate::storage::{contiguous_slice, par_build};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Independent accumulators of a block sum (one AVX-512 register of f32).
const LANES: usize = 16;
/// Elements summed in the element type before the partial sum is added in f64.
const BLOCK: usize = 512;

/// `(Σ f(a_i, b_i, c_i), Σ g(a_i, b_i, c_i))` over equal-length slices, blockwise as the
/// module docs say. `f` and `g` must be cheap and inlinable: this is the inner loop.
#[inline(always)]
fn sums2<T: Real>(
    a: &[T],
    b: &[T],
    c: &[T],
    f: impl Fn(T, T, T) -> T,
    g: impl Fn(T, T, T) -> T,
) -> (f64, f64) {
    let (mut tf, mut tg) = (0.0f64, 0.0f64);
    for ((ab, bb), cb) in a.chunks(BLOCK).zip(b.chunks(BLOCK)).zip(c.chunks(BLOCK)) {
        let (mut af, mut ag) = ([T::ZERO; LANES], [T::ZERO; LANES]);
        let (ai, bi, ci) = (
            ab.chunks_exact(LANES),
            bb.chunks_exact(LANES),
            cb.chunks_exact(LANES),
        );
        let (ar, br, cr) = (ai.remainder(), bi.remainder(), ci.remainder());
        for ((x, y), z) in ai.zip(bi).zip(ci) {
            for l in 0..LANES {
                af[l] += f(x[l], y[l], z[l]);
                ag[l] += g(x[l], y[l], z[l]);
            }
        }
        for ((&x, &y), &z) in ar.iter().zip(br).zip(cr) {
            tf += f(x, y, z).f();
            tg += g(x, y, z).f();
        }
        tf += af.iter().map(|v| v.f()).sum::<f64>();
        tg += ag.iter().map(|v| v.f()).sum::<f64>();
    }
    (tf, tg)
}

/// `(mean, 1/sqrt(var + eps), a first estimate of the mean in T)` of one group (biased
/// variance), both computed about that estimate and corrected in f64.
fn stats<T: Real>(xg: &[T], eps: f64) -> (f64, f64, T) {
    let m = xg.len() as f64;
    let (sum, _) = sums2(xg, xg, xg, |x, _, _| x, |_, _, _| T::ZERO);
    let mean = sum / m;
    let mt = T::of(mean);
    let (d1, d2) = sums2(xg, xg, xg, |x, _, _| x - mt, |x, _, _| (x - mt) * (x - mt));
    // The first pass's blockwise f32 sums of raw values carry rounding of the size of the
    // mean; the sums about μ_T do not. So μ = μ_T + Σ(x − μ_T)/m, and
    // Σ(x − μ)² = Σ(x − μ_T)² − m·(μ − μ_T)².
    let shift = d1 / m;
    let var = (d2 / m - shift * shift).max(0.0);
    (mt.f() + shift, 1.0 / (var + eps).sqrt(), mt)
}

/// `(channels, hw)` of `[N, C, H, W]`.
fn dims(l: &Layout) -> Result<(usize, usize)> {
    let (_, c, h, w) = l.shape().dims4()?;
    Ok((c, h * w))
}

/// Forward: `y = x·a + s` per channel (then `max(y, 0)` with `relu`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupNormFwd {
    pub groups: usize,
    pub eps: f64,
    pub relu: bool,
}

fn forward<T: Real>(x: &[T], w: &[T], b: &[T], c: usize, hw: usize, op: GroupNormFwd) -> Vec<T> {
    if x.is_empty() {
        return Vec::new();
    }
    let cg = c / op.groups;
    let m = cg * hw;
    assert!(m > 0 && x.len().is_multiple_of(m));
    // SAFETY: group i of the output is written whole (cg channels × hw) from group i of `x`
    // (`x` is whole groups, asserted).
    unsafe {
        par_build(x.len(), m, |i, yg| {
            let xg = &x[i * m..(i + 1) * m];
            let (mean, rstd, mt) = stats(xg, op.eps);
            let g = i % op.groups;
            for k in 0..cg {
                let ch = g * cg + k;
                // y = (x − μ_T)·a + (b + (μ_T − μ)·a): no cancellation for a large mean.
                let a = rstd * w[ch].f();
                let (at, st) = (T::of(a), T::of(b[ch].f() + (mt.f() - mean) * a));
                let (yc, xc) = (&mut yg[k * hw..(k + 1) * hw], &xg[k * hw..(k + 1) * hw]);
                if op.relu {
                    for (yv, &xv) in yc.iter_mut().zip(xc) {
                        let v = (xv - mt) * at + st;
                        yv.write(if v > T::ZERO { v } else { T::ZERO });
                    }
                } else {
                    for (yv, &xv) in yc.iter_mut().zip(xc) {
                        yv.write((xv - mt) * at + st);
                    }
                }
            }
        })
    }
}

impl CustomOp3 for GroupNormFwd {
    fn name(&self) -> &'static str {
        if self.relu {
            "group_norm_relu"
        } else {
            "group_norm"
        }
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
        let op = self.name();
        let out = match sx {
            CpuStorage::F32(_) => CpuStorage::F32(forward(
                contiguous_slice(sx, lx, op, "x")?,
                contiguous_slice(sw, lw, op, "weight")?,
                contiguous_slice(sb, lb, op, "bias")?,
                c,
                hw,
                *self,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(forward(
                contiguous_slice(sx, lx, op, "x")?,
                contiguous_slice(sw, lw, op, "weight")?,
                contiguous_slice(sb, lb, op, "bias")?,
                c,
                hw,
                *self,
            )),
            _ => candle_core::bail!("{op}: only f32 and f64 are supported"),
        };
        Ok((out, lx.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let weight = Arc::new(w.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        let packed = grad.contiguous()?.apply_op3_no_bwd(
            x,
            res,
            &GroupNormBwd {
                groups: self.groups,
                eps: self.eps,
                relu: self.relu,
                weight,
            },
        )?;
        let (len, c) = (x.elem_count(), w.elem_count());
        let dx = packed.narrow(0, 0, len)?.reshape(x.shape())?;
        let dw = packed.narrow(0, len, c)?;
        let db = packed.narrow(0, len + c, c)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Backward: `(dy, x, y)` -> `[dx (flattened), dw, db]` packed in one vector; `y` (the
/// forward's output) is read only for the fused ReLU's mask.
#[derive(Clone, Debug)]
struct GroupNormBwd {
    groups: usize,
    eps: f64,
    relu: bool,
    weight: Arc<Vec<f64>>,
}

fn backward<T: Real>(dy: &[T], x: &[T], y: &[T], hw: usize, op: &GroupNormBwd) -> Vec<T> {
    let c = op.weight.len();
    let cg = c / op.groups;
    let m = cg * hw;
    let w = &op.weight;
    let mut out: Vec<T> = Vec::with_capacity(x.len() + 2 * c);
    if x.is_empty() {
        // No elements: zero gradients for the weights (an empty map contributes nothing).
        out.resize(2 * c, T::ZERO);
        return out;
    }
    let partial: Vec<(Vec<f64>, Vec<f64>)> = out.spare_capacity_mut()[..x.len()]
        .par_chunks_mut(m)
        .zip(x.par_chunks(m))
        .zip(dy.par_chunks(m))
        .zip(y.par_chunks(m))
        .enumerate()
        .map(|(i, (((dxg, xg), dyg), yg))| {
            let (mean, rstd, mt) = stats(xg, op.eps);
            let g = i % op.groups;
            let (mut dw, mut db) = (vec![0.0; cg], vec![0.0; cg]);
            let (mut s1, mut s2) = (0.0, 0.0);
            for k in 0..cg {
                let r = k * hw..(k + 1) * hw;
                let (sd, sdx) = if op.relu {
                    let d = |dy: T, y: T| if y > T::ZERO { dy } else { T::ZERO };
                    sums2(
                        &dyg[r.clone()],
                        &xg[r.clone()],
                        &yg[r],
                        |dy, _, y| d(dy, y),
                        |dy, x, y| d(dy, y) * (x - mt),
                    )
                } else {
                    sums2(
                        &dyg[r.clone()],
                        &xg[r.clone()],
                        &xg[r],
                        |dy, _, _| dy,
                        |dy, x, _| dy * (x - mt),
                    )
                };
                // Σ d·(x − μ) = Σ d·(x − μ_T) + (μ_T − μ)·Σ d.
                let wc = w[g * cg + k];
                db[k] = sd;
                dw[k] = rstd * (sdx + (mt.f() - mean) * sd);
                s1 += sd * wc;
                s2 += dw[k] * wc;
            }
            let (m1, m2) = (s1 / m as f64, s2 / m as f64);
            // dx = d·(r·w_c) + (x − μ_T)·(−r²·m2) + (−r·m1 − r²·m2·(μ_T − μ)).
            let bx = -rstd * rstd * m2;
            let (bt, ct) = (T::of(bx), T::of(-rstd * m1 + bx * (mt.f() - mean)));
            for k in 0..cg {
                let r = k * hw..(k + 1) * hw;
                let at = T::of(rstd * w[g * cg + k]);
                let (dxc, xc, dyc, yc) =
                    (&mut dxg[r.clone()], &xg[r.clone()], &dyg[r.clone()], &yg[r]);
                if op.relu {
                    for (((o, &xv), &dv), &yv) in dxc.iter_mut().zip(xc).zip(dyc).zip(yc) {
                        let d = if yv > T::ZERO { dv } else { T::ZERO };
                        o.write(d * at + (xv - mt) * bt + ct);
                    }
                } else {
                    for ((o, &xv), &dv) in dxc.iter_mut().zip(xc).zip(dyc) {
                        o.write(dv * at + (xv - mt) * bt + ct);
                    }
                }
            }
            (dw, db)
        })
        .collect();
    // SAFETY: the chunks above cover the first `x.len()` slots and every slot was written.
    unsafe { out.set_len(x.len()) };
    let (mut dw, mut db) = (vec![0.0; c], vec![0.0; c]);
    for (i, (pw, pb)) in partial.iter().enumerate() {
        let g = i % op.groups;
        for k in 0..cg {
            dw[g * cg + k] += pw[k];
            db[g * cg + k] += pb[k];
        }
    }
    out.extend(dw.into_iter().chain(db).map(T::of));
    out
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
        sy: &CpuStorage,
        ly: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (c, hw) = dims(lx)?;
        if c != self.weight.len() {
            candle_core::bail!(
                "group_norm_bwd: {} weights for {c} channels",
                self.weight.len()
            );
        }
        let op = "group_norm_bwd";
        let out = match sx {
            CpuStorage::F32(_) => CpuStorage::F32(backward(
                contiguous_slice(sdy, ldy, op, "grad")?,
                contiguous_slice(sx, lx, op, "x")?,
                contiguous_slice(sy, ly, op, "y")?,
                hw,
                self,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(backward(
                contiguous_slice(sdy, ldy, op, "grad")?,
                contiguous_slice(sx, lx, op, "x")?,
                contiguous_slice(sy, ly, op, "y")?,
                hw,
                self,
            )),
            _ => candle_core::bail!("{op}: only f32 and f64 are supported"),
        };
        let len = lx.shape().elem_count() + 2 * c;
        Ok((out, Shape::from(len)))
    }
}
