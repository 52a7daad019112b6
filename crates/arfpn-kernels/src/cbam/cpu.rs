//! The arithmetic of the fused CBAM op, per image: the forward (channel gate from the
//! average- and max-pooled descriptors through the shared MLP, then the spatial gate from
//! the channel mean and max through the 7×7 convolution) and its backward, in the element
//! type with f64 sums. `cbam.rs` checks the arguments and wires them into candle.

use super::*;

/// What the forward keeps for the backward (per image, concatenated over images), as f64:
/// every value is an f32 or f64 of the forward, so converting back is exact.
#[derive(Debug, Default)]
pub(super) struct Saved {
    /// Channel means and maxima of `x`, `[N, C]` (how many positions attain each maximum,
    /// which only the backward needs, it counts itself).
    avg: Vec<f64>,
    mx: Vec<f64>,
    /// The MLP's hidden activations (after ReLU) for the two descriptors, `[N, h]`.
    hid_avg: Vec<f64>,
    hid_max: Vec<f64>,
    /// The channel gate `[N, C]` (ones without one).
    pub(super) cw: Vec<f64>,
    /// `[mean_c(xc); max_c(xc)]`, `[N, 2, H·W]`, and the spatial gate `[N, H·W]`.
    desc: Vec<f64>,
    pub(super) sw: Vec<f64>,
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// `Σ term(j)` for `j < n`, in f64 but without one dependent f64 addition per term (which
/// runs at a quarter of the memory's speed): 16 partial sums in `T`, restarted every 256
/// terms, each block's added in f64.
#[inline(always)]
fn lane_sum<T: Element>(n: usize, term: impl Fn(usize) -> T) -> f64 {
    let mut total = 0f64;
    let mut j = 0;
    while j < n {
        let end = (j + 256).min(n);
        let mut acc = [T::ZERO; 16];
        while j + 16 <= end {
            for (l, a) in acc.iter_mut().enumerate() {
                *a += term(j + l);
            }
            j += 16;
        }
        while j < end {
            acc[0] += term(j);
            j += 1;
        }
        total += acc.iter().map(|a| a.f()).sum::<f64>();
    }
    total
}

/// The maximum of a non-empty row (NaN wins, as in candle), branch-free per lane.
fn row_max<T: Element>(row: &[T]) -> T {
    let Some(&first) = row.first() else {
        return T::ZERO;
    };
    let mut lanes = [first; 16];
    let mut nan = false;
    let mut chunks = row.chunks_exact(16);
    for ch in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(ch) {
            nan |= v.is_nan();
            *m = if v > *m { v } else { *m };
        }
    }
    for &v in chunks.remainder() {
        nan |= v.is_nan();
        lanes[0] = if v > lanes[0] { v } else { lanes[0] };
    }
    if nan {
        return T::of(f64::NAN);
    }
    lanes
        .into_iter()
        .fold(first, |m, v| if v > m { v } else { m })
}

/// Positions per task of the passes that reduce over channels.
const COLS: usize = 512;

/// `out[y, x] += Σ_taps w[ky, kx] · src[y + ky − r, x + kx − r]` over one `k×k` kernel of one
/// input channel, zero outside `src` (`h × w`); rows of `out` in parallel.
fn correlate_add<T: Element>(out: &mut [T], src: &[T], wk: &[T], h: usize, w: usize, k: usize) {
    let r = k / 2;
    out.par_chunks_mut(w.max(1))
        .enumerate()
        .for_each(|(yy, orow)| {
            for ky in 0..k {
                let sy = yy + ky;
                if sy < r || sy - r >= h {
                    continue;
                }
                let srow = &src[(sy - r) * w..(sy - r + 1) * w];
                for kx in 0..k {
                    let wv = wk[ky * k + kx];
                    // Output columns whose source column x + kx − r lies inside the row.
                    let lo = r.saturating_sub(kx);
                    let hi = (w + r).saturating_sub(kx).min(w);
                    if lo >= hi {
                        continue;
                    }
                    let s0 = lo + kx - r;
                    for (o, &s) in orow[lo..hi].iter_mut().zip(&srow[s0..s0 + hi - lo]) {
                        *o += wv * s;
                    }
                }
            }
        });
}

/// One image's forward (`x` is its `[C, H·W]`); appends to `s` and returns its output.
fn forward_image<T: Element>(
    x: &[T],
    shortcut: Option<&[T]>,
    p: &[T],
    d: &Dims,
    s: &mut Saved,
) -> Vec<T> {
    let (c, hw, hidden) = (d.c, d.hw(), d.hidden);
    let o = d.offsets();
    let cw: Vec<T> = if hidden == 0 {
        vec![T::of(1.0); c]
    } else {
        // Channel statistics, one row (channel) per task.
        let stats: Vec<(f64, T)> = x
            .par_chunks(hw.max(1))
            .map(|row| (lane_sum(row.len(), |j| row[j]) / hw as f64, row_max(row)))
            .collect();
        let avg: Vec<f64> = stats.iter().map(|t| t.0).collect();
        let mx: Vec<f64> = stats.iter().map(|t| t.1.f()).collect();
        let mlp_hidden = |v: &[f64]| -> Vec<f64> {
            (0..hidden)
                .into_par_iter()
                .map(|j| {
                    let wr = &p[o[0] + j * c..o[0] + (j + 1) * c];
                    let z = p[o[1] + j].f() + wr.iter().zip(v).map(|(a, b)| a.f() * b).sum::<f64>();
                    z.max(0.0)
                })
                .collect()
        };
        let (ha, hm) = (mlp_hidden(&avg), mlp_hidden(&mx));
        let cw: Vec<T> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let wr = &p[o[2] + ch * hidden..o[2] + (ch + 1) * hidden];
                let dot = |h: &[f64]| wr.iter().zip(h).map(|(a, b)| a.f() * b).sum::<f64>();
                T::of(sigmoid(2.0 * p[o[3] + ch].f() + dot(&ha) + dot(&hm)))
            })
            .collect();
        s.avg.extend(&avg);
        s.mx.extend(&mx);
        s.hid_avg.extend(&ha);
        s.hid_max.extend(&hm);
        cw
    };
    s.cw.extend(cw.iter().map(|v| v.f()));

    // The spatial descriptor of xc = x · cw, a chunk of positions per task.
    let mut mean = vec![T::ZERO; hw];
    let mut max = vec![T::ZERO; hw];
    mean.par_chunks_mut(COLS)
        .zip(max.par_chunks_mut(COLS))
        .enumerate()
        .for_each(|(t, (me, mx))| {
            let j0 = t * COLS;
            // Channel 0 starts the sums and maxima; the others fold in with selects (a NaN
            // takes the maximum and keeps it: no later value compares greater).
            let row0 = &x[j0..j0 + me.len()];
            let mut acc: Vec<f64> = row0.iter().map(|&v| (v * cw[0]).f()).collect();
            for (m, &v) in mx.iter_mut().zip(row0) {
                *m = v * cw[0];
            }
            for (ch, &g) in cw.iter().enumerate().skip(1) {
                let row = &x[ch * hw + j0..ch * hw + j0 + me.len()];
                for ((a, m), &v) in acc.iter_mut().zip(mx.iter_mut()).zip(row) {
                    let v = v * g;
                    *a += v.f();
                    *m = if (v > *m) | v.is_nan() { v } else { *m };
                }
            }
            for (o, a) in me.iter_mut().zip(acc) {
                *o = T::of(a / c as f64);
            }
        });

    // The spatial gate: σ(conv(desc) + b).
    let kk = d.k * d.k;
    let mut logits = vec![p[o[5]]; hw];
    for (ci, src) in [&mean, &max].into_iter().enumerate() {
        let wk = &p[o[4] + ci * kk..o[4] + (ci + 1) * kk];
        correlate_add(&mut logits, src, wk, d.h, d.w, d.k);
    }
    let sw: Vec<T> = logits.iter().map(|v| T::of(sigmoid(v.f()))).collect();
    s.desc.extend(mean.iter().chain(&max).map(|v| v.f()));
    s.sw.extend(sw.iter().map(|v| v.f()));

    // y = (x · cw) · sw (then max(y + shortcut, 0)), one channel per task.
    // SAFETY: each task writes its whole plane.
    unsafe {
        par_build(c * hw, hw.max(1), |ch, out| {
            let (g, row) = (cw[ch], &x[ch * hw..(ch + 1) * hw]);
            match shortcut {
                None => {
                    for ((o, &v), &s) in out.iter_mut().zip(row).zip(&sw) {
                        o.write(v * g * s);
                    }
                }
                Some(sc) => {
                    let sc = &sc[ch * hw..(ch + 1) * hw];
                    for (((o, &v), &s), &b) in out.iter_mut().zip(row).zip(&sw).zip(sc) {
                        o.write(relu_of(v * g * s + b));
                    }
                }
            }
        })
    }
}

/// The images' planes as one vector (no copy for a single image, the usual batch).
pub(super) fn join<T: Copy>(mut parts: Vec<Vec<T>>) -> Vec<T> {
    match parts.len() {
        1 => parts.pop().unwrap_or_default(),
        _ => parts.concat(),
    }
}

pub(super) fn forward<T: Element>(
    x: &[T],
    shortcut: Option<&[T]>,
    p: &[T],
    d: &Dims,
) -> (Vec<T>, Saved) {
    let mut s = Saved::default();
    let per = d.c * d.hw();
    let parts: Vec<Vec<T>> = (0..d.n)
        .map(|img| {
            let r = img * per..(img + 1) * per;
            let sc = shortcut.map(|sc| &sc[r.clone()]);
            forward_image(&x[r], sc, p, d, &mut s)
        })
        .collect();
    let y = join(parts);
    (y, s)
}

/// Image `img`'s backward (`x`, `dy` are its planes): returns its `dx` and adds its
/// parameter gradients to `dp`.
pub(super) fn backward_image<T: Element>(
    x: &[T],
    dy: &[T],
    p: &[T],
    d: &Dims,
    s: &Saved,
    img: usize,
    dp: &mut [f64],
) -> Vec<T> {
    let (c, hw, hidden, k) = (d.c, d.hw(), d.hidden, d.k);
    let o = d.offsets();
    let cw: Vec<T> = s.cw[img * c..(img + 1) * c]
        .iter()
        .map(|&v| T::of(v))
        .collect();
    let desc = &s.desc[img * 2 * hw..(img + 1) * 2 * hw];
    let dmax: Vec<T> = desc[hw..].iter().map(|&v| T::of(v)).collect();
    let sw: Vec<T> = s.sw[img * hw..(img + 1) * hw]
        .iter()
        .map(|&v| T::of(v))
        .collect();

    // Pass 1 (chunks of positions): d sw = Σ_c dy · xc, and the ties of the channel maximum.
    let mut dsw = vec![0f64; hw];
    let mut ties = vec![0u32; hw];
    dsw.par_chunks_mut(COLS)
        .zip(ties.par_chunks_mut(COLS))
        .enumerate()
        .for_each(|(t, (ds, tc))| {
            let j0 = t * COLS;
            let m = &dmax[j0..j0 + ds.len()];
            for (ch, &g) in cw.iter().enumerate() {
                let (xr, dr) = (
                    &x[ch * hw + j0..ch * hw + j0 + ds.len()],
                    &dy[ch * hw + j0..ch * hw + j0 + ds.len()],
                );
                for ((((a, n), &v), &dv), &mv) in
                    ds.iter_mut().zip(tc.iter_mut()).zip(xr).zip(dr).zip(m)
                {
                    let v = v * g;
                    *a += (dv * v).f();
                    *n += u32::from(v == mv);
                }
            }
        });

    // The spatial gate's logits, then its convolution's gradients (small maps).
    let dlogit: Vec<f64> = dsw
        .iter()
        .zip(&sw)
        .map(|(&g, &s)| g * s.f() * (1.0 - s.f()))
        .collect();
    let kk = k * k;
    let r = k / 2;
    dp[o[5]] += dlogit.iter().sum::<f64>();
    let dwk: Vec<f64> = (0..2 * kk)
        .into_par_iter()
        .map(|tap| {
            let (ci, ky, kx) = (tap / kk, tap % kk / k, tap % k);
            let src = &desc[ci * hw..(ci + 1) * hw];
            let mut acc = 0f64;
            for yy in 0..d.h {
                let sy = yy + ky;
                if sy < r || sy - r >= d.h {
                    continue;
                }
                let lo = r.saturating_sub(kx);
                let hi = (d.w + r).saturating_sub(kx).min(d.w);
                if lo >= hi {
                    continue;
                }
                let s0 = (sy - r) * d.w + lo + kx - r;
                let (gr, sr) = (
                    &dlogit[yy * d.w + lo..yy * d.w + hi],
                    &src[s0..s0 + hi - lo],
                );
                acc += lane_sum(gr.len(), |j| gr[j] * sr[j]);
            }
            acc
        })
        .collect();
    for (t, v) in dwk.into_iter().enumerate() {
        dp[o[4] + t] += v;
    }
    // d desc = the convolution's transpose: correlate d logits with the flipped kernel.
    let mut ddesc = [vec![0f64; hw], vec![0f64; hw]];
    for (ci, dd) in ddesc.iter_mut().enumerate() {
        let flipped: Vec<f64> = (0..kk)
            .map(|t| p[o[4] + ci * kk + (kk - 1 - t)].f())
            .collect();
        correlate_add(dd, &dlogit, &flipped, d.h, d.w, k);
    }
    // Per position: the mean's share and the maximum's share (split among ties).
    let from_mean: Vec<T> = ddesc[0].iter().map(|&v| T::of(v / c as f64)).collect();
    let from_max: Vec<T> = ddesc[1]
        .iter()
        .zip(&ties)
        .map(|(&v, &n)| {
            if n == 0 {
                T::ZERO
            } else {
                T::of(v).div_count(n as usize)
            }
        })
        .collect();
    // dxc[ch, j] = dy · sw + the descriptor's share. (Slices of length `hw`, so that the
    // per-position loops below need no bounds checks and vectorise.)
    let (sw, from_mean, dmax, from_max) =
        (&sw[..hw], &from_mean[..hw], &dmax[..hw], &from_max[..hw]);
    let dxc = |ch: usize, j: usize, v: T, dv: T| -> T {
        let mut g = dv * sw[j] + from_mean[j];
        if v * cw[ch] == dmax[j] {
            g += from_max[j];
        }
        g
    };

    // The channel gate: d cw = Σ_p dxc · x (pass 2), then the MLP's gradients.
    let (mut from_avg, mut from_mx) = (vec![T::ZERO; c], vec![T::ZERO; c]);
    let mx: Vec<T> = if hidden > 0 {
        s.mx[img * c..(img + 1) * c]
            .iter()
            .map(|&v| T::of(v))
            .collect()
    } else {
        Vec::new()
    };
    if hidden > 0 {
        // With each channel's row in cache, also count the positions that attain its
        // maximum (they share the maximum's gradient).
        let (dcw, counts): (Vec<f64>, Vec<usize>) = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (xr, dr) = (&x[ch * hw..(ch + 1) * hw], &dy[ch * hw..(ch + 1) * hw]);
                let dcw = lane_sum(hw, |j| dxc(ch, j, xr[j], dr[j]) * xr[j]);
                (dcw, xr.iter().filter(|&&v| v == mx[ch]).count())
            })
            .unzip();
        let cwf = &s.cw[img * c..(img + 1) * c];
        let dz: Vec<f64> = dcw
            .iter()
            .zip(cwf)
            .map(|(&g, &s)| g * s * (1.0 - s))
            .collect();
        let (ha, hm) = (
            &s.hid_avg[img * hidden..(img + 1) * hidden],
            &s.hid_max[img * hidden..(img + 1) * hidden],
        );
        // fc2: z = W2 · h + b2 for both descriptors, summed.
        for ch in 0..c {
            dp[o[3] + ch] += 2.0 * dz[ch];
            let row = &mut dp[o[2] + ch * hidden..o[2] + (ch + 1) * hidden];
            for ((g, &a), &b) in row.iter_mut().zip(ha).zip(hm) {
                *g += dz[ch] * (a + b);
            }
        }
        // Back through fc2 to the hidden units (ReLU mask per descriptor).
        let dh: Vec<f64> = (0..hidden)
            .into_par_iter()
            .map(|j| {
                (0..c)
                    .map(|ch| p[o[2] + ch * hidden + j].f() * dz[ch])
                    .sum()
            })
            .collect();
        let dha: Vec<f64> = dh
            .iter()
            .zip(ha)
            .map(|(&g, &a)| if a > 0.0 { g } else { 0.0 })
            .collect();
        let dhm: Vec<f64> = dh
            .iter()
            .zip(hm)
            .map(|(&g, &a)| if a > 0.0 { g } else { 0.0 })
            .collect();
        let (avg, mxf) = (
            &s.avg[img * c..(img + 1) * c],
            &s.mx[img * c..(img + 1) * c],
        );
        for j in 0..hidden {
            dp[o[1] + j] += dha[j] + dhm[j];
            let row = &mut dp[o[0] + j * c..o[0] + (j + 1) * c];
            for ((g, &a), &m) in row.iter_mut().zip(avg).zip(mxf) {
                *g += dha[j] * a + dhm[j] * m;
            }
        }
        // Back through fc1 to the two descriptors, then to x's share of each.
        from_avg
            .par_iter_mut()
            .zip(from_mx.par_iter_mut())
            .enumerate()
            .for_each(|(ch, (fa, fm))| {
                let (mut ga, mut gm) = (0f64, 0f64);
                for j in 0..hidden {
                    let wv = p[o[0] + j * c + ch].f();
                    ga += wv * dha[j];
                    gm += wv * dhm[j];
                }
                *fa = T::of(ga / hw as f64);
                *fm = if counts[ch] == 0 {
                    T::ZERO
                } else {
                    T::of(gm).div_count(counts[ch])
                };
            });
    }

    // Pass 3: dx = dxc · cw + the channel descriptors' shares, one channel per task.
    // SAFETY: each task writes its whole plane.
    unsafe {
        par_build(c * hw, hw.max(1), |ch, out| {
            let (xr, dr) = (&x[ch * hw..(ch + 1) * hw], &dy[ch * hw..(ch + 1) * hw]);
            let g = cw[ch];
            for (j, (o, (&v, &dv))) in out.iter_mut().zip(xr.iter().zip(dr)).enumerate() {
                let mut val = dxc(ch, j, v, dv) * g;
                if hidden > 0 {
                    val += from_avg[ch];
                    if v == mx[ch] {
                        val += from_mx[ch];
                    }
                }
                o.write(val);
            }
        })
    }
}
