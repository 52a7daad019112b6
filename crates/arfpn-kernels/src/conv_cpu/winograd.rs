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

use super::{chunks, gather, matmul, Geom, SharedMut};
use crate::element::Element;

/// Fewest channels (input and output, per group) for which the transforms pay off.
const MIN_CHANNELS: usize = 16;
/// Fewest 2×2 output tiles per image (a 32×32 output). On smaller maps the 16 transformed
/// weight matrices, repacked for every block of tiles, cost more than the multiplications
/// saved (a 256-channel 15×20 map ran at 0.8× the im2col kernels' speed). The choice
/// depends on the geometry only, never on the thread count.
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

/// `U[o][ξ][c] = (G w[o, c] Gᵀ)[ξ]` for kernels `w: [cout, cin, 3, 3]` (`flip`: read
/// `w[c, o, 2-i, 2-j]` from `w: [cin, cout, 3, 3]` instead, for the input gradient), in
/// parallel over output channels. Position ξ's matrix `U[·][ξ][·]` is `cout × cin` at row
/// stride `16 · cin`.
fn transform_weights<T: Element>(w: &[T], cout: usize, cin: usize, flip: bool) -> Vec<T> {
    let half = T::of(0.5);
    let mut u = vec![T::ZERO; 16 * cout * cin];
    u.par_chunks_mut(16 * cin).enumerate().for_each(|(o, uo)| {
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
                    uo[(i * 4 + j) * cin + c] = v;
                }
            }
        }
    });
    u
}

/// `dst = a + b` element-wise (a loop the compiler vectorises).
fn add<T: Element>(dst: &mut [T], a: &[T], b: &[T]) {
    for ((d, a), b) in dst.iter_mut().zip(a).zip(b) {
        *d = *a + *b;
    }
}

/// `dst = a - b` element-wise.
fn sub<T: Element>(dst: &mut [T], a: &[T], b: &[T]) {
    for ((d, a), b) in dst.iter_mut().zip(a).zip(b) {
        *d = *a - *b;
    }
}

/// `dst = a + b + c` element-wise.
fn add3<T: Element>(dst: &mut [T], a: &[T], b: &[T], c: &[T]) {
    for (((d, a), b), c) in dst.iter_mut().zip(a).zip(b).zip(c) {
        *d = *a + *b + *c;
    }
}

/// `dst = a - b - c` element-wise.
fn sub3<T: Element>(dst: &mut [T], a: &[T], b: &[T], c: &[T]) {
    for (((d, a), b), c) in dst.iter_mut().zip(a).zip(b).zip(c) {
        *d = *a - *b - *c;
    }
}

/// Splits `src` into its even- and odd-indexed values (`even[k] = src[2k]`,
/// `odd[k] = src[2k + 1]`) with im2col's strided [`gather`], so that the tiles' columns are
/// read at unit stride.
fn deinterleave<T: Element>(src: &[T], even: &mut [T], odd: &mut [T]) {
    gather(even, src, 2);
    gather(odd, &src[1..], 2);
}

/// `V[ξ][c][t] = (Bᵀ d B)[ξ]` for the tiles of tile rows `ty0..ty0 + rows` of the input
/// planes `x: [cin, hin, win]`, written to `v` (`16 × cin × tb` values, `tb = rows · tw`).
fn transform_input<T: Element>(x: &[T], p: &Plan, ty0: usize, rows: usize, v: &mut [T]) {
    let (_, tw) = p.tiles();
    let tb = rows * tw;
    let pw = 2 * tw + 2;
    let mut prow = vec![T::ZERO; pw];
    let (mut even, mut odd) = (vec![T::ZERO; tw + 1], vec![T::ZERO; tw + 1]);
    // hx[k][j]: row k of the patch after Bᵀ across (column combination j), per tile.
    let mut hx = vec![T::ZERO; 16 * tw];
    for c in 0..p.cin {
        let plane = &x[c * p.hin * p.win..(c + 1) * p.hin * p.win];
        for r in 0..rows {
            let ty = ty0 + r;
            for (k, hk) in hx.chunks_mut(4 * tw).enumerate() {
                // Input row 2·ty + k - pad, zero-padded to 2·tw + 2 columns.
                let iy = (2 * ty + k) as isize - p.pad as isize;
                prow.fill(T::ZERO);
                if iy >= 0 && (iy as usize) < p.hin {
                    let src = &plane[iy as usize * p.win..(iy as usize + 1) * p.win];
                    let n = p.win.min(pw - p.pad);
                    prow[p.pad..p.pad + n].copy_from_slice(&src[..n]);
                }
                // Tile tx reads d0..d3 = even[tx], odd[tx], even[tx+1], odd[tx+1]:
                // (d0 - d2, d1 + d2, d2 - d1, d1 - d3).
                deinterleave(&prow, &mut even, &mut odd);
                let (h0, rest) = hk.split_at_mut(tw);
                let (h1, rest) = rest.split_at_mut(tw);
                let (h2, h3) = rest.split_at_mut(tw);
                sub(h0, &even[..tw], &even[1..]);
                add(h1, &odd[..tw], &even[1..]);
                sub(h2, &even[1..], &odd[..tw]);
                sub(h3, &odd[..tw], &odd[1..]);
            }
            // Down each column, the same combination of the four rows.
            for j in 0..4 {
                let row = |k: usize| &hx[(k * 4 + j) * tw..(k * 4 + j + 1) * tw];
                let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                let at = |i: usize| ((i * 4 + j) * p.cin + c) * tb + r * tw;
                sub(&mut v[at(0)..at(0) + tw], r0, r2);
                add(&mut v[at(1)..at(1) + tw], r1, r2);
                sub(&mut v[at(2)..at(2) + tw], r2, r1);
                sub(&mut v[at(3)..at(3) + tw], r1, r3);
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
    // s[a][j]: row a of Aᵀ M (column j), per tile; then the two output columns per tile.
    let mut s = vec![T::ZERO; 8 * tw];
    let (mut even, mut odd) = (vec![T::ZERO; tw], vec![T::ZERO; tw]);
    let mut out = vec![T::ZERO; 2 * tw];
    for o in 0..p.cout {
        for r in 0..rows {
            let ms = |xi: usize| &m[(xi * p.cout + o) * tb + r * tw..][..tw];
            let (s0, s1) = s.split_at_mut(4 * tw);
            for j in 0..4 {
                // Aᵀ rows: (M0 + M1 + M2, M1 - M2 - M3).
                add3(&mut s0[j * tw..(j + 1) * tw], ms(j), ms(4 + j), ms(8 + j));
                sub3(
                    &mut s1[j * tw..(j + 1) * tw],
                    ms(4 + j),
                    ms(8 + j),
                    ms(12 + j),
                );
            }
            for (a, sa) in s.chunks(4 * tw).enumerate() {
                let oy = 2 * (ty0 + r) + a;
                if oy >= p.hout {
                    continue;
                }
                let col = |j: usize| &sa[j * tw..(j + 1) * tw];
                add3(&mut even, col(0), col(1), col(2));
                sub3(&mut odd, col(1), col(2), col(3));
                for ((pair, e), od) in out.chunks_exact_mut(2).zip(&even).zip(&odd) {
                    pair[0] = *e;
                    pair[1] = *od;
                }
                let off = (o * p.hout + oy) * p.wout;
                // SAFETY: row oy of plane o lies inside `y` and belongs to this caller (see
                // the function's contract).
                let dst = unsafe { std::slice::from_raw_parts_mut(y.add(off), p.wout) };
                dst.copy_from_slice(&out[..p.wout]);
            }
        }
    }
}

/// `(A dY Aᵀ)[ξ]` for output channels `0..cout` and the tiles of tile rows `ty0..ty0 + rows`
/// of `dy: [cout, hout, wout]` (zero past the edges), into `ut: [16][cout][tb]`.
fn transform_grad<T: Element>(dy: &[T], p: &Plan, ty0: usize, rows: usize, ut: &mut [T]) {
    let (_, tw) = p.tiles();
    let tb = rows * tw;
    let mut rowbuf = vec![T::ZERO; 2 * tw];
    // h[a][j]: output row a of the tile after A across (combination j), per tile.
    let mut h = vec![T::ZERO; 8 * tw];
    let (mut even, mut odd) = (vec![T::ZERO; tw], vec![T::ZERO; tw]);
    for o in 0..p.cout {
        let plane = &dy[o * p.hout * p.wout..(o + 1) * p.hout * p.wout];
        for r in 0..rows {
            let ty = ty0 + r;
            for (a, ha) in h.chunks_mut(4 * tw).enumerate() {
                let oy = 2 * ty + a;
                rowbuf.fill(T::ZERO);
                if oy < p.hout {
                    rowbuf[..p.wout].copy_from_slice(&plane[oy * p.wout..(oy + 1) * p.wout]);
                }
                // Across: (d0, d0 + d1, d0 - d1, -d1) with d0, d1 = even, odd.
                deinterleave(&rowbuf, &mut even, &mut odd);
                let (h0, rest) = ha.split_at_mut(tw);
                let (h1, rest) = rest.split_at_mut(tw);
                let (h2, h3) = rest.split_at_mut(tw);
                h0.copy_from_slice(&even);
                add(h1, &even, &odd);
                sub(h2, &even, &odd);
                for (d, v) in h3.iter_mut().zip(&odd) {
                    *d = T::ZERO - *v;
                }
            }
            // Down: (t, t + b, t - b, -b) from the top and bottom rows.
            let (top, bottom) = h.split_at(4 * tw);
            for j in 0..4 {
                let (t, b) = (&top[j * tw..(j + 1) * tw], &bottom[j * tw..(j + 1) * tw]);
                let at = |i: usize| ((i * 4 + j) * p.cout + o) * tb + r * tw;
                ut[at(0)..at(0) + tw].copy_from_slice(t);
                add(&mut ut[at(1)..at(1) + tw], t, b);
                sub(&mut ut[at(2)..at(2) + tw], t, b);
                for (d, v) in ut[at(3)..at(3) + tw].iter_mut().zip(b) {
                    *d = T::ZERO - *v;
                }
            }
        }
    }
}

/// `y = conv(input, w)` for one plan over `n` images of `groups` groups:
/// `input: [n, groups · cin, hin, win]` → `[n, groups · cout, hout, wout]`, with the kernels
/// `wt` transformed per group (`flip`: as for the input gradient, see [`transform_weights`]).
/// Work items are ((image, group) pair, block of tile rows).
fn forward_pass<T: Element>(
    p: &Plan,
    n: usize,
    groups: usize,
    input: &[T],
    wt: &[T],
    flip: bool,
) -> Vec<T> {
    let (plane_in, plane_out) = (p.hin * p.win, p.hout * p.wout);
    let per_group = p.cout * p.cin * 9;
    let us: Vec<Vec<T>> = (0..groups)
        .map(|gr| {
            let w = &wt[gr * per_group..(gr + 1) * per_group];
            transform_weights(w, p.cout, p.cin, flip)
        })
        .collect();
    let mut y = vec![T::ZERO; n * groups * p.cout * plane_out];
    let (th, tw) = p.tiles();
    let pairs = n * groups;
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
            // Pair i = image · groups + group: its planes follow each other in `input`/`y`.
            let x = &input[i * p.cin * plane_in..][..p.cin * plane_in];
            let u = &us[i % groups];
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
                    &u[xi * p.cin..],
                    (16 * p.cin, 1),
                    &v[xi * p.cin * tb..(xi + 1) * p.cin * tb],
                    (tb, 1),
                    gemm::Parallelism::None,
                );
            }
            let off = i * p.cout * plane_out;
            assert!(off + p.cout * plane_out <= ylen);
            // SAFETY: item (i, rows) alone writes output rows 2·ty0..2·(ty0+rows) of pair
            // i's planes, which lie inside `y` (asserted).
            unsafe { transform_output(m, p, ty0, rows, yp.ptr().add(off)) };
        },
    );
    y
}

/// Forward: `x [N, C, H, W]`, `wt [O, C/groups, 3, 3]` → `[N, O, Ho, Wo]` (see [`applies`]).
pub(crate) fn conv_fwd<T: Element>(x: &[T], wt: &[T], g: &Geom) -> Vec<T> {
    let p = Plan {
        cin: g.cg(),
        hin: g.h,
        win: g.w,
        cout: g.og(),
        hout: g.ho,
        wout: g.wo,
        pad: g.pad,
    };
    forward_pass(&p, g.n, g.groups, x, wt, false)
}

/// Input gradient: `dy [N, O, Ho, Wo]`, `wt` → `dx [N, C, H, W]`, as the forward of `dy`
/// with the flipped, transposed kernel and padding `2 - pad`.
pub(crate) fn conv_bwd_input<T: Element>(dy: &[T], wt: &[T], g: &Geom) -> Vec<T> {
    let p = Plan {
        cin: g.og(),
        hin: g.ho,
        win: g.wo,
        cout: g.cg(),
        hout: g.h,
        wout: g.w,
        pad: 2 - g.pad,
    };
    forward_pass(&p, g.n, g.groups, dy, wt, true)
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
                        &mut dug[xi * cg..],
                        16 * cg,
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
    // Σ over the runs, then dw = Gᵀ dU G per (output channel, input channel), in parallel
    // over output channels (`du: [O][16][cg]` and `dw: [O][cg][9]`, groups in turn).
    let mut du = vec![T::ZERO; g.groups * per_group];
    du.par_chunks_mut(16 * cg).enumerate().for_each(|(o, d)| {
        for s in &sums {
            for (a, b) in d.iter_mut().zip(&s[o * 16 * cg..(o + 1) * 16 * cg]) {
                *a += *b;
            }
        }
    });
    let half = T::of(0.5);
    let mut dw = vec![T::ZERO; g.o * cg * 9];
    dw.par_chunks_mut(cg * 9)
        .zip(du.par_chunks(16 * cg))
        .for_each(|(dwo, duo)| {
            for (c, out) in dwo.chunks_exact_mut(9).enumerate() {
                let d = |i: usize, j: usize| duo[(i * 4 + j) * cg + c];
                // Gᵀ (3×4) rows: (1, ½, ½, 0), (0, ½, -½, 0), (0, ½, ½, 1).
                let t: [[T; 4]; 3] = [
                    std::array::from_fn(|j| d(0, j) + (d(1, j) + d(2, j)) * half),
                    std::array::from_fn(|j| (d(1, j) - d(2, j)) * half),
                    std::array::from_fn(|j| (d(1, j) + d(2, j)) * half + d(3, j)),
                ];
                for (i, row) in t.iter().enumerate() {
                    let (a, b, e, f) = (row[0], row[1], row[2], row[3]);
                    out[i * 3] = a + (b + e) * half;
                    out[i * 3 + 1] = (b - e) * half;
                    out[i * 3 + 2] = (b + e) * half + f;
                }
            }
        });
    dw
}
