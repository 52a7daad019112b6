//! Winograd F(2×2, 3×3) convolutions (Lavin & Gray, "Fast Algorithms for Convolutional Neural
//! Networks", CVPR 2016): the 3×3, stride-1 convolutions of the detector (ResNet's middle
//! convolutions, the FPN's outputs, the RPN head) in 16 products of 4×4 transformed tiles
//! instead of 36 multiplications per 2×2 output tile — 2.25× fewer multiply-adds, and the same
//! matrix products (one per transformed position ξ) run through `gemm`.
//!
//! For a 2×2 output tile `Y`, its 4×4 input patch `d` and a 3×3 kernel `g`:
//!
//! ```text
//! Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//!
//!      ⎡1  0 -1  0⎤        ⎡ 1    0    0 ⎤
//! Bᵀ = ⎢0  1  1  0⎥    G = ⎢ 1/2  1/2  1/2⎥    Aᵀ = ⎡1 1  1  0⎤
//!      ⎢0 -1  1  0⎥        ⎢ 1/2 -1/2  1/2⎥         ⎣0 1 -1 -1⎦
//!      ⎣0  1  0 -1⎦        ⎣ 0    0    1 ⎦
//! ```
//!
//! Summed over input channels, position ξ of the transformed output is a matrix product
//! `M[ξ] (O × tiles) = U[ξ] (O × C) · V[ξ] (C × tiles)`, with `U = G g Gᵀ` per (output,
//! input) channel pair and `V = Bᵀ d B` per (input channel, tile). The three passes:
//!
//! - forward: the above, then `Y = Aᵀ M A` per (output channel, tile);
//! - input gradient: the forward of `dY` with the kernel flipped and its channels swapped
//!   (`w'[c, o, i, j] = w[o, c, 2-i, 2-j]`) and padding `2 - pad`;
//! - weight gradient: `dU[ξ] = Σ_tiles (A dY Aᵀ)[ξ] · V[ξ]ᵀ`, then `dw = Gᵀ dU G`.
//!
//! The rounding differs from the im2col products' (the transforms add and subtract inputs
//! before they are multiplied), at the level of a few units in the last place of f32 for
//! this small tile; `ARFPN_NO_WINOGRAD=1` (read once) turns the kernels off.

use rayon::prelude::*;

use super::{chunks, matmul, Geom, SharedMut};
use crate::element::Element;

/// Fewest channels (input and output, per group) for which the transforms pay off.
const MIN_CHANNELS: usize = 16;
/// Fewest 2×2 output tiles per image (a 32×32 output). On smaller maps the 16 transformed
/// weight matrices, repacked for every block of tiles, cost more than the multiplications
/// saved (a 256-channel 15×20 map ran at 0.8× the im2col kernels' speed). The choice
/// depends on the geometry only, never on the thread count, so that results do not either.
const MIN_TILES: usize = 256;
/// Target tiles per work item (whole rows of tiles): the transformed tiles of one item,
/// `16 × C × tiles` values, stay in the last-level cache.
const TARGET_TILES: usize = 256;

/// Whether the Winograd kernels are on (not `ARFPN_NO_WINOGRAD`, read once).
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("ARFPN_NO_WINOGRAD").is_none())
}

/// Whether `g` runs on the Winograd kernels: a 3×3 kernel at stride 1, no dilation, padding
/// at most 2 (so that the input gradient is a padded convolution too), enough channels and
/// tiles, and the kernels not turned off.
pub(crate) fn applies(g: &Geom) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == 1
        && g.dil == 1
        && g.pad <= 2
        && g.cg() >= MIN_CHANNELS
        && g.og() >= MIN_CHANNELS
        && g.ho.div_ceil(2) * g.wo.div_ceil(2) >= MIN_TILES
        && enabled()
}

/// One image and group of a stride-1 3×3 convolution: `cin` planes of `hin × win` in,
/// `cout` planes of `hout × wout` out, `pad` zeros around the input.
#[derive(Clone, Copy, Debug)]
struct Plan {
    cin: usize,
    hin: usize,
    win: usize,
    cout: usize,
    hout: usize,
    wout: usize,
    pad: usize,
}

impl Plan {
    /// Rows and columns of 2×2 output tiles.
    fn tiles(&self) -> (usize, usize) {
        (self.hout.div_ceil(2), self.wout.div_ceil(2))
    }

    /// Rows of tiles per work item: about [`TARGET_TILES`] tiles, in blocks of equal size,
    /// and at least as many items over the `pairs` (image, group) pairs as rayon threads.
    fn rows_per_block(&self, pairs: usize) -> usize {
        let (th, tw) = self.tiles();
        let blocks = th
            .div_ceil((TARGET_TILES / tw).max(1))
            .max(rayon::current_num_threads().div_ceil(pairs.max(1)))
            .min(th);
        th.div_ceil(blocks.max(1))
    }
}

/// `U[ξ][o][c] = (G w[o, c] Gᵀ)[ξ]` for kernels `w: [cout, cin, 3, 3]` (`flip`: read
/// `w[c, o, 2-i, 2-j]` from `w: [cin, cout, 3, 3]` instead, for the input gradient).
fn transform_weights<T: Element>(w: &[T], cout: usize, cin: usize, flip: bool) -> Vec<T> {
    let half = T::of(0.5);
    let mut u = vec![T::ZERO; 16 * cout * cin];
    for o in 0..cout {
        for c in 0..cin {
            let g = |i: usize, j: usize| {
                if flip {
                    w[(c * cout + o) * 9 + (2 - i) * 3 + (2 - j)]
                } else {
                    w[(o * cin + c) * 9 + i * 3 + j]
                }
            };
            // Gg: 4×3.
            let gg: [[T; 3]; 4] = [
                std::array::from_fn(|j| g(0, j)),
                std::array::from_fn(|j| (g(0, j) + g(1, j) + g(2, j)) * half),
                std::array::from_fn(|j| (g(0, j) - g(1, j) + g(2, j)) * half),
                std::array::from_fn(|j| g(2, j)),
            ];
            for (i, row) in gg.iter().enumerate() {
                let (a, b, e) = (row[0], row[1], row[2]);
                let vals = [a, (a + b + e) * half, (a - b + e) * half, e];
                for (j, v) in vals.into_iter().enumerate() {
                    u[((i * 4 + j) * cout + o) * cin + c] = v;
                }
            }
        }
    }
    u
}

/// `V[ξ][c][t] = (Bᵀ d B)[ξ]` for the tiles of tile rows `ty0..ty0 + rows` of the input
/// planes `x: [cin, hin, win]`, written to `v` (`16 × cin × tb` values, `tb = rows · tw`).
fn transform_input<T: Element>(x: &[T], p: &Plan, ty0: usize, rows: usize, v: &mut [T]) {
    let (_, tw) = p.tiles();
    let tb = rows * tw;
    let pw = 2 * tw + 2;
    let mut prow = vec![T::ZERO; 4 * pw];
    let mut hx = vec![T::ZERO; 16 * tw];
    for c in 0..p.cin {
        let plane = &x[c * p.hin * p.win..(c + 1) * p.hin * p.win];
        for r in 0..rows {
            let ty = ty0 + r;
            // The four input rows of this tile row, zero-padded to 2·tw + 2 columns.
            for (k, pr) in prow.chunks_mut(pw).enumerate() {
                let iy = (2 * ty + k) as isize - p.pad as isize;
                pr.fill(T::ZERO);
                if iy >= 0 && (iy as usize) < p.hin {
                    let src = &plane[iy as usize * p.win..(iy as usize + 1) * p.win];
                    let n = p.win.min(pw - p.pad);
                    pr[p.pad..p.pad + n].copy_from_slice(&src[..n]);
                }
            }
            // Across each row: (d0 - d2, d1 + d2, d2 - d1, d1 - d3) per tile.
            for (k, pr) in prow.chunks(pw).enumerate() {
                let (h0, rest) = hx[k * 4 * tw..(k + 1) * 4 * tw].split_at_mut(tw);
                let (h1, rest) = rest.split_at_mut(tw);
                let (h2, h3) = rest.split_at_mut(tw);
                for tx in 0..tw {
                    let d = &pr[2 * tx..2 * tx + 4];
                    h0[tx] = d[0] - d[2];
                    h1[tx] = d[1] + d[2];
                    h2[tx] = d[2] - d[1];
                    h3[tx] = d[1] - d[3];
                }
            }
            // Down each column, the same combination of the four rows.
            for j in 0..4 {
                let row = |k: usize| &hx[(k * 4 + j) * tw..(k * 4 + j + 1) * tw];
                let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                let at = |i: usize| ((i * 4 + j) * p.cin + c) * tb + r * tw;
                let combos: [(&[T], &[T], bool); 4] = [
                    (r0, r2, false),
                    (r1, r2, true),
                    (r2, r1, false),
                    (r1, r3, false),
                ];
                for (i, (a, b, add)) in combos.into_iter().enumerate() {
                    let dst = &mut v[at(i)..at(i) + tw];
                    if add {
                        for ((d, a), b) in dst.iter_mut().zip(a).zip(b) {
                            *d = *a + *b;
                        }
                    } else {
                        for ((d, a), b) in dst.iter_mut().zip(a).zip(b) {
                            *d = *a - *b;
                        }
                    }
                }
            }
        }
    }
}

/// `Y = Aᵀ M A` for output channels `0..cout`, tile rows `ty0..ty0 + rows`, from
/// `m: [16][cout][tb]`, into the output planes `y: [cout, hout, wout]` (only those rows).
///
/// # Safety
/// `y` must point to `cout · hout · wout` writable values, and no other thread may touch
/// output rows `2·ty0 .. 2·(ty0 + rows)` of any plane meanwhile.
unsafe fn transform_output<T: Element>(m: &[T], p: &Plan, ty0: usize, rows: usize, y: *mut T) {
    let (_, tw) = p.tiles();
    let tb = rows * tw;
    let mut out = vec![T::ZERO; 2 * 2 * tw];
    for o in 0..p.cout {
        for r in 0..rows {
            let ms: [&[T]; 16] =
                std::array::from_fn(|xi| &m[(xi * p.cout + o) * tb + r * tw..][..tw]);
            let (top, bottom) = out.split_at_mut(2 * tw);
            for (tx, (t, b)) in top
                .chunks_exact_mut(2)
                .zip(bottom.chunks_exact_mut(2))
                .enumerate()
            {
                let mm = |i: usize, j: usize| ms[i * 4 + j][tx];
                // S = Aᵀ M: rows (M0 + M1 + M2, M1 - M2 - M3); then Y = S A likewise.
                let s0 = |j: usize| mm(0, j) + mm(1, j) + mm(2, j);
                let s1 = |j: usize| mm(1, j) - mm(2, j) - mm(3, j);
                let (a0, a1, a2, a3) = (s0(0), s0(1), s0(2), s0(3));
                t[0] = a0 + a1 + a2;
                t[1] = a1 - a2 - a3;
                let (b0, b1, b2, b3) = (s1(0), s1(1), s1(2), s1(3));
                b[0] = b0 + b1 + b2;
                b[1] = b1 - b2 - b3;
            }
            let ty = ty0 + r;
            for (a, src) in out.chunks(2 * tw).enumerate() {
                let oy = 2 * ty + a;
                if oy < p.hout {
                    let off = (o * p.hout + oy) * p.wout;
                    // SAFETY: row oy of plane o lies inside `y` and belongs to this caller
                    // (see the function's contract).
                    let dst = unsafe { std::slice::from_raw_parts_mut(y.add(off), p.wout) };
                    dst.copy_from_slice(&src[..p.wout]);
                }
            }
        }
    }
}

/// `(A dY Aᵀ)[ξ]` for output channels `0..cout` and the tiles of tile rows `ty0..ty0 + rows`
/// of `dy: [cout, hout, wout]` (zero past the edges), into `ut: [16][cout][tb]`.
fn transform_grad<T: Element>(dy: &[T], p: &Plan, ty0: usize, rows: usize, ut: &mut [T]) {
    let (_, tw) = p.tiles();
    let tb = rows * tw;
    let mut rowbuf = vec![T::ZERO; 2 * 2 * tw];
    for o in 0..p.cout {
        let plane = &dy[o * p.hout * p.wout..(o + 1) * p.hout * p.wout];
        for r in 0..rows {
            let ty = ty0 + r;
            for (a, buf) in rowbuf.chunks_mut(2 * tw).enumerate() {
                let oy = 2 * ty + a;
                buf.fill(T::ZERO);
                if oy < p.hout {
                    buf[..p.wout].copy_from_slice(&plane[oy * p.wout..(oy + 1) * p.wout]);
                }
            }
            let (top, bottom) = rowbuf.split_at(2 * tw);
            // Across: (d0, d0 + d1, d0 - d1, -d1); down: the same on the two rows.
            for tx in 0..tw {
                let h = |row: &[T], j: usize| {
                    let (d0, d1) = (row[2 * tx], row[2 * tx + 1]);
                    match j {
                        0 => d0,
                        1 => d0 + d1,
                        2 => d0 - d1,
                        _ => T::ZERO - d1,
                    }
                };
                for j in 0..4 {
                    let (t, b) = (h(top, j), h(bottom, j));
                    let vals = [t, t + b, t - b, T::ZERO - b];
                    for (i, val) in vals.into_iter().enumerate() {
                        ut[((i * 4 + j) * p.cout + o) * tb + r * tw + tx] = val;
                    }
                }
            }
        }
    }
}

/// `y = conv(x, w)` for one plan over `n` (image, group) pairs: `x_of(i)`, `u_of(i)` and the
/// output offset `y_off(i)` of pair `i`; work items are (pair, block of tile rows).
fn run_forward<'a, T: Element>(
    p: &Plan,
    pairs: usize,
    x_of: impl Fn(usize) -> (&'a [T], &'a [T]) + Sync,
    y: &mut [T],
    y_off: impl Fn(usize) -> usize + Sync,
) {
    let (th, tw) = p.tiles();
    let rb = p.rows_per_block(pairs);
    let items: Vec<(usize, (usize, usize))> = (0..pairs)
        .flat_map(|i| chunks(th, rb).map(move |b| (i, b)))
        .collect();
    let ylen = y.len();
    let yp = SharedMut(y.as_mut_ptr());
    items.into_par_iter().for_each_init(
        || {
            (
                vec![T::ZERO; 16 * p.cin * rb * tw],
                vec![T::ZERO; 16 * p.cout * rb * tw],
            )
        },
        |(v, m), (i, (ty0, rows))| {
            let (x, u) = x_of(i);
            let tb = rows * tw;
            transform_input(x, p, ty0, rows, v);
            for xi in 0..16 {
                matmul(
                    p.cout,
                    tb,
                    p.cin,
                    &mut m[xi * p.cout * tb..(xi + 1) * p.cout * tb],
                    tb,
                    false,
                    &u[xi * p.cout * p.cin..(xi + 1) * p.cout * p.cin],
                    (p.cin, 1),
                    &v[xi * p.cin * tb..(xi + 1) * p.cin * tb],
                    (tb, 1),
                    gemm::Parallelism::None,
                );
            }
            let off = y_off(i);
            assert!(off + p.cout * p.hout * p.wout <= ylen);
            // SAFETY: item (i, rows) alone writes output rows 2·ty0..2·(ty0+rows) of pair
            // i's planes, which lie inside `y` (asserted).
            unsafe { transform_output(m, p, ty0, rows, yp.ptr().add(off)) };
        },
    );
}

/// Forward: `x [N, C, H, W]`, `wt [O, C/groups, 3, 3]` → `[N, O, Ho, Wo]` (see [`applies`]).
pub(crate) fn conv_fwd<T: Element>(x: &[T], wt: &[T], g: &Geom) -> Vec<T> {
    let (cg, og) = (g.cg(), g.og());
    let p = Plan {
        cin: cg,
        hin: g.h,
        win: g.w,
        cout: og,
        hout: g.ho,
        wout: g.wo,
        pad: g.pad,
    };
    let us: Vec<Vec<T>> = (0..g.groups)
        .map(|gr| transform_weights(&wt[gr * og * cg * 9..(gr + 1) * og * cg * 9], og, cg, false))
        .collect();
    let mut y = vec![T::ZERO; g.n * g.o * g.ho * g.wo];
    let plane_in = g.h * g.w;
    run_forward(
        &p,
        g.n * g.groups,
        |i| {
            let (b, gr) = (i / g.groups, i % g.groups);
            (
                &x[(b * g.c + gr * cg) * plane_in..][..cg * plane_in],
                &us[gr][..],
            )
        },
        &mut y,
        |i| {
            let (b, gr) = (i / g.groups, i % g.groups);
            (b * g.o + gr * og) * g.ho * g.wo
        },
    );
    y
}

/// Input gradient: `dy [N, O, Ho, Wo]`, `wt` → `dx [N, C, H, W]`, as the forward of `dy`
/// with the flipped, transposed kernel and padding `2 - pad`.
pub(crate) fn conv_bwd_input<T: Element>(dy: &[T], wt: &[T], g: &Geom) -> Vec<T> {
    let (cg, og) = (g.cg(), g.og());
    let p = Plan {
        cin: og,
        hin: g.ho,
        win: g.wo,
        cout: cg,
        hout: g.h,
        wout: g.w,
        pad: 2 - g.pad,
    };
    let us: Vec<Vec<T>> = (0..g.groups)
        .map(|gr| transform_weights(&wt[gr * og * cg * 9..(gr + 1) * og * cg * 9], cg, og, true))
        .collect();
    let mut dx = vec![T::ZERO; g.n * g.c * g.h * g.w];
    let l = g.ho * g.wo;
    run_forward(
        &p,
        g.n * g.groups,
        |i| {
            let (b, gr) = (i / g.groups, i % g.groups);
            (&dy[(b * g.o + gr * og) * l..][..og * l], &us[gr][..])
        },
        &mut dx,
        |i| {
            let (b, gr) = (i / g.groups, i % g.groups);
            (b * g.c + gr * cg) * g.h * g.w
        },
    );
    dx
}

/// Weight gradient: `x`, `dy` → `dw [O, C/groups, 3, 3]`.
///
/// Work items (image, group, block of tile rows) are split into one contiguous run per
/// thread; each run sums `dU` in its own buffer, and the runs' sums are added at the end.
pub(crate) fn conv_bwd_weight<T: Element>(x: &[T], dy: &[T], g: &Geom) -> Vec<T> {
    let (cg, og) = (g.cg(), g.og());
    let p = Plan {
        cin: cg,
        hin: g.h,
        win: g.w,
        cout: og,
        hout: g.ho,
        wout: g.wo,
        pad: g.pad,
    };
    let (th, tw) = p.tiles();
    let rb = p.rows_per_block(g.n * g.groups);
    let items: Vec<(usize, usize, (usize, usize))> = (0..g.n)
        .flat_map(|b| (0..g.groups).flat_map(move |gr| chunks(th, rb).map(move |t| (b, gr, t))))
        .collect();
    let per_group = 16 * og * cg;
    let runs = rayon::current_num_threads().clamp(1, items.len().max(1));
    let run_len = items.len().div_ceil(runs);
    let plane_in = g.h * g.w;
    let l = g.ho * g.wo;
    let sums: Vec<Vec<T>> = items
        .par_chunks(run_len.max(1))
        .map(|run| {
            let mut du = vec![T::ZERO; g.groups * per_group];
            let mut v = vec![T::ZERO; 16 * cg * rb * tw];
            let mut ut = vec![T::ZERO; 16 * og * rb * tw];
            for &(b, gr, (ty0, rows)) in run {
                let tb = rows * tw;
                transform_input(
                    &x[(b * g.c + gr * cg) * plane_in..][..cg * plane_in],
                    &p,
                    ty0,
                    rows,
                    &mut v,
                );
                transform_grad(
                    &dy[(b * g.o + gr * og) * l..][..og * l],
                    &p,
                    ty0,
                    rows,
                    &mut ut,
                );
                let dug = &mut du[gr * per_group..(gr + 1) * per_group];
                for xi in 0..16 {
                    // dU[ξ] (og × cg) += Ũ[ξ] (og × tb) · V[ξ]ᵀ (tb × cg)
                    matmul(
                        og,
                        cg,
                        tb,
                        &mut dug[xi * og * cg..(xi + 1) * og * cg],
                        cg,
                        true,
                        &ut[xi * og * tb..(xi + 1) * og * tb],
                        (tb, 1),
                        &v[xi * cg * tb..(xi + 1) * cg * tb],
                        (1, tb),
                        gemm::Parallelism::None,
                    );
                }
            }
            du
        })
        .collect();
    let mut du = vec![T::ZERO; g.groups * per_group];
    for s in &sums {
        for (a, b) in du.iter_mut().zip(s) {
            *a += *b;
        }
    }
    // dw = Gᵀ dU G per (group, o, c).
    let half = T::of(0.5);
    let mut dw = vec![T::ZERO; g.o * cg * 9];
    for gr in 0..g.groups {
        let dug = &du[gr * per_group..(gr + 1) * per_group];
        for o in 0..og {
            for c in 0..cg {
                let d = |i: usize, j: usize| dug[((i * 4 + j) * og + o) * cg + c];
                // Gᵀ (3×4) rows: (1, ½, ½, 0), (0, ½, -½, 0), (0, ½, ½, 1).
                let t: [[T; 4]; 3] = [
                    std::array::from_fn(|j| d(0, j) + (d(1, j) + d(2, j)) * half),
                    std::array::from_fn(|j| (d(1, j) - d(2, j)) * half),
                    std::array::from_fn(|j| (d(1, j) + d(2, j)) * half + d(3, j)),
                ];
                let out = &mut dw[((gr * og + o) * cg + c) * 9..][..9];
                for (i, row) in t.iter().enumerate() {
                    let (a, b, e, f) = (row[0], row[1], row[2], row[3]);
                    out[i * 3] = a + (b + e) * half;
                    out[i * 3 + 1] = (b - e) * half;
                    out[i * 3 + 2] = (b + e) * half + f;
                }
            }
        }
    }
    dw
}
