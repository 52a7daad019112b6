//! The bf16 variants of the convolution's forward, input gradient and weight gradient:
//! operands rounded to bf16 and packed into AMX tile layouts (`amx.rs`), products
//! accumulated in f32. Used inside a `MatmulPrecision::Bf16` scope on CPUs with AMX; the
//! tiling and im2col geometry are the f32 path's (`conv_cpu.rs`).

use super::*;

/// The column tile of one image group (all its rows, output positions `l0..l0+len`) packed
/// as the right operand of an AMX product, two rows at a time through `two` (`2·len`
/// values): the f32 tile itself is never written.
fn im2col_packed(xs: &[f32], g: &Geom, l0: usize, len: usize, two: &mut [f32], rhs: &mut [u32]) {
    use crate::amx::{pack_pair_row, panel_stride, up32};
    let k = g.k();
    let ps = panel_stride(k);
    let (r0, r1) = two[..2 * len].split_at_mut(len);
    for p in 0..up32(k) / 2 {
        if 2 * p >= k {
            r0.fill(0.0);
            pack_pair_row(r0, None, p, ps, rhs);
            continue;
        }
        im2col_row(xs, g, 2 * p, l0, r0);
        if 2 * p + 1 < k {
            im2col_row(xs, g, 2 * p + 1, l0, r1);
            pack_pair_row(r0, Some(r1), p, ps, rhs);
        } else {
            pack_pair_row(r0, None, p, ps, rhs);
        }
    }
}

/// Per-thread buffers of [`conv_fwd_bf16`], kept between calls (every use overwrites what
/// it reads, so they are never cleared).
#[derive(Default)]
struct Bf16Scratch {
    /// Two rows of the column matrix ([`im2col_packed`]).
    two_rows: Vec<f32>,
    rhs: Vec<u32>,
    out: Vec<f32>,
}

thread_local! {
    static BF16_SCRATCH: std::cell::RefCell<Bf16Scratch> = Default::default();
}

/// [`conv_fwd`] with bf16 operands and f32 accumulation on AMX (see `amx.rs`); the caller
/// checks `amx::available()`.
///
/// The weights of each group are packed once; work items are (image, group, tile of output
/// positions) as in [`conv_fwd`], each packing its column tile (by im2col two rows at a
/// time, [`im2col_packed`], or straight from the input for a pointwise convolution) and
/// multiplying on its thread, into
/// the output directly when the tile is whole 32×32 blocks, else through a buffer.
pub(crate) fn conv_fwd_bf16(x: &[f32], wt: &[f32], g: &Geom, tiling: Tiling) -> Vec<f32> {
    use crate::amx::{self, up32, PackedA};
    let (cg, og, k, l) = (g.cg(), g.og(), g.k(), g.l());
    let total = g.n * g.o * l;
    let packed: Vec<PackedA> = (0..g.groups)
        .into_par_iter()
        .map(|gr| PackedA::new(&wt[gr * og * k..(gr + 1) * og * k], og, k, (k, 1)))
        .collect();
    // Column tiles a multiple of the kernel's 32 (the last one of an image may be shorter).
    let lt = up32(tiling.tile_len::<f32>(k, l)).min(up32(l));
    let items: Vec<(usize, usize, (usize, usize))> = (0..g.n)
        .flat_map(|b| (0..g.groups).flat_map(move |gr| chunks(l, lt).map(move |t| (b, gr, t))))
        .collect();
    let pointwise = g.is_pointwise();
    // Every value of `y` is written by exactly one item below before `set_len`.
    let mut y: Vec<f32> = Vec::with_capacity(total);
    let yp = SharedMut(y.as_mut_ptr());
    items.into_par_iter().for_each(|(b, gr, (l0, len))| {
        let mut fresh = Bf16Scratch::default();
        BF16_SCRATCH.with(|cell| {
            let mut held = cell.try_borrow_mut();
            let s = match held.as_deref_mut() {
                Ok(s) => s,
                Err(_) => &mut fresh,
            };
            let xs = &x[(b * g.c + gr * cg) * g.h * g.w..][..cg * g.h * g.w];
            let np = up32(len);
            let rhs = at_least(&mut s.rhs, up32(k) / 2 * np);
            if pointwise {
                amx::pack_b_rows(&xs[l0..], k, len, l, rhs);
            } else {
                im2col_packed(xs, g, l0, len, at_least(&mut s.two_rows, 2 * len), rhs);
            }
            let off = (b * g.o + gr * og) * l + l0;
            // Item (b, gr, tile) owns rows gr·og..(gr+1)·og of image b, columns l0..l0+len.
            assert!(og >= 1 && off + (og - 1) * l + len <= total);
            if og.is_multiple_of(32) && len.is_multiple_of(32) {
                // SAFETY: operands sized above (and asserted inside); rows of `y` at stride l,
                // columns l0..l0+len of this item only, inside the allocation (asserted).
                unsafe { amx::matmul_strided(&packed[gr], rhs, len, yp.ptr().add(off), l, 0..np) };
            } else {
                let out = at_least(&mut s.out, up32(og) * np);
                amx::matmul(&packed[gr], rhs, len, out);
                for (i, row) in out.chunks_exact(np).take(og).enumerate() {
                    // SAFETY: inside `y`'s allocation (asserted), this item's region only.
                    unsafe {
                        std::ptr::copy_nonoverlapping(row.as_ptr(), yp.ptr().add(off + i * l), len)
                    };
                }
            }
        })
    });
    // SAFETY: the items cover every (image, channel, position) once: all values written.
    unsafe { y.set_len(total) };
    y
}

/// Column rows per channel block in the AMX gradients: the value they were tuned with on
/// the Intel machine (the f32 kernels' 576 was tuned later, on an AMD machine without AMX).
const AMX_BLOCK_ROWS: usize = 128;

/// [`conv_bwd_input`] with bf16 operands and f32 accumulation on AMX; the caller checks
/// `amx::available()`.
///
/// The blocks `W[:, block]ᵀ` are packed once and each image's `dY` once (the f32 kernel's
/// work items would otherwise repack the same `dY` tile for every block of channels); items
/// are (block of input channels) per image, as in [`conv_bwd_input`], scattering through
/// col2im into their own planes of `dx`.
pub(crate) fn conv_bwd_input_bf16(dy: &[f32], wt: &[f32], g: &Geom, tiling: Tiling) -> Vec<f32> {
    use crate::amx::{
        gemm_raw, gemm_raw_parallel, pack_b_rows_parallel, panel_stride, up32, PackedA, RawGemm,
    };
    let tiling = Tiling {
        block_rows: AMX_BLOCK_ROWS,
        ..tiling
    };
    let (cg, og, k, l) = (g.cg(), g.og(), g.k(), g.l());
    let (lp, ogp) = (up32(l), up32(og));
    let plane = g.h * g.w;
    let total = g.n * g.c * plane;
    if g.is_pointwise() {
        // dx[cg, L] = Wᵀ[cg, og] · dY[og, L] per image and group, straight into `dx` (row
        // stride L = H·W) when the block is whole 32×32 tiles, else through a buffer.
        let direct = cg.is_multiple_of(32) && l.is_multiple_of(32);
        let mut dy_packed = vec![0u32; ogp / 2 * lp];
        let cgp = up32(cg);
        let wts: Vec<PackedA> = (0..g.groups)
            .map(|gr| PackedA::new(&wt[gr * og * k..(gr + 1) * og * k], cg, og, (1, k)))
            .collect();
        let mut out = if direct {
            Vec::new()
        } else {
            vec![0f32; cgp * lp]
        };
        // Every value of `dx` is written below (rows 0..cg, columns 0..L of every image and
        // group) before `set_len`.
        let mut dx: Vec<f32> = Vec::with_capacity(total);
        for b in 0..g.n {
            for (gr, a) in wts.iter().enumerate() {
                let dys = &dy[(b * g.o + gr * og) * l..][..og * l];
                pack_b_rows_parallel(dys, og, l, l, &mut dy_packed);
                let off = (b * g.c + gr * cg) * plane;
                assert!(off + cg * l <= total);
                let (c, ldc) = match direct {
                    // SAFETY: rows off.. of dx's allocation, inside it (asserted).
                    true => (unsafe { dx.as_mut_ptr().add(off) }, l),
                    false => (out.as_mut_ptr(), lp),
                };
                let raw = RawGemm {
                    a: a.as_ptr(),
                    lda: a.stride(),
                    b: dy_packed.as_ptr(),
                    ldb: panel_stride(og),
                    c,
                    ldc,
                    mp: cgp,
                    kp: ogp,
                    n_lo: 0,
                    n_hi: lp,
                    accumulate: false,
                };
                // SAFETY: A is cgp × ogp, B ogp/2 × lp pairs; C is `out` (cgp × lp) or, when
                // direct (cgp = cg, lp = L), this image and group's cg × L block of dx.
                unsafe { gemm_raw_parallel(raw) };
                if !direct {
                    for (i, row) in out.chunks_exact(lp).take(cg).enumerate() {
                        // SAFETY: row i of this block of dx, inside the allocation.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                row.as_ptr(),
                                dx.as_mut_ptr().add(off + i * l),
                                l,
                            )
                        };
                    }
                }
            }
        }
        // SAFETY: the blocks (image, group) cover dx, each written whole above.
        unsafe { dx.set_len(total) };
        return dx;
    }
    let mut dx = vec![0f32; total];
    let khw = g.kh * g.kw;
    let cb = tiling.channel_block(g, g.groups);
    let lt = up32(tiling.tile_len::<f32>(cb * khw, l)).min(lp);
    let blocks: Vec<(usize, usize, usize)> = (0..g.groups)
        .flat_map(|gr| chunks(cg, cb).map(move |(c0, nc)| (gr, c0, nc)))
        .collect();
    // Wᵀ rows c0·khw.. of group gr: element (r, o) = W[o, c0·khw + r] at column stride k.
    let wts: Vec<PackedA> = blocks
        .par_iter()
        .map(|&(gr, c0, nc)| PackedA::new(&wt[gr * og * k + c0 * khw..], nc * khw, og, (1, k)))
        .collect();
    let dxp = SharedMut(dx.as_mut_ptr());
    let dxlen = dx.len();
    for b in 0..g.n {
        let packed: Vec<Vec<u32>> = (0..g.groups)
            .map(|gr| {
                let mut v = vec![0u32; ogp / 2 * lp];
                pack_b_rows_parallel(&dy[(b * g.o + gr * og) * l..][..og * l], og, l, l, &mut v);
                v
            })
            .collect();
        (0..blocks.len()).into_par_iter().for_each_init(
            || vec![0f32; up32(cb * khw) * lt],
            |out, i| {
                let (gr, c0, nc) = blocks[i];
                let a = &wts[i];
                let m = nc * khw;
                let off = (b * g.c + gr * cg + c0) * plane;
                assert!(off + nc * plane <= dxlen);
                // SAFETY: item (b, gr, c0..c0+nc) is the only one touching these planes.
                let dxs = unsafe { std::slice::from_raw_parts_mut(dxp.ptr().add(off), nc * plane) };
                for (l0, len) in chunks(l, lt) {
                    let np = up32(len);
                    assert!(l0 + np <= lp && up32(m) * np <= out.len());
                    // SAFETY: A is up32(m) × ogp; B is the packed dY from its panel of
                    // column l0 (a multiple of 32) over np ≤ lp − l0 columns, ogp/2 pair
                    // rows; C is `out`.
                    unsafe {
                        gemm_raw(&RawGemm {
                            a: a.as_ptr(),
                            lda: a.stride(),
                            b: packed[gr].as_ptr().add(l0 / 32 * panel_stride(og)),
                            ldb: panel_stride(og),
                            c: out.as_mut_ptr(),
                            ldc: np,
                            mp: up32(m),
                            kp: ogp,
                            n_lo: 0,
                            n_hi: np,
                            accumulate: false,
                        })
                    };
                    col2im_tile(out, np, g, nc, (l0, len), dxs);
                }
            },
        );
    }
    dx
}

/// [`conv_bwd_weight`] with bf16 operands and f32 accumulation on AMX; the caller checks
/// `amx::available()`.
///
/// Computes `dWᵀ[block] = Σ_images Σ_tiles cols(block, tile) · dY[:, tile]ᵀ`: each image's
/// `dYᵀ` is packed once as the right operand (shared by every block of channels), each
/// column tile is the left operand, packed by im2col row by row (no f32 tile, no
/// transpose), and each item (group,
/// block of input channels, as in [`conv_bwd_weight`]) accumulates its block in f32 and
/// writes its columns of `dW` once.
pub(crate) fn conv_bwd_weight_bf16(x: &[f32], dy: &[f32], g: &Geom, tiling: Tiling) -> Vec<f32> {
    use crate::amx::{gemm_raw, pack_b_transposed, panel_stride, up32, PackedA, RawGemm};
    let tiling = Tiling {
        block_rows: AMX_BLOCK_ROWS,
        ..tiling
    };
    let (cg, og, k, l) = (g.cg(), g.og(), g.k(), g.l());
    let (lp, ogp) = (up32(l), up32(og));
    let mut dw = vec![0f32; g.o * k];
    let plane = g.h * g.w;
    // dYᵀ [L, og] of every image and group as the right operand: lp/2 pair rows × ogp.
    let dyt: Vec<Vec<u32>> = (0..g.n * g.groups)
        .map(|i| {
            let mut v = vec![0u32; lp / 2 * ogp];
            pack_b_transposed(&dy[i * og * l..(i + 1) * og * l], og, l, l, &mut v);
            v
        })
        .collect();
    let (khw, cb) = if g.is_pointwise() {
        // Blocks of whole 32-row panels, at least two per thread.
        let threads = rayon::current_num_threads().max(1);
        (1, up32(cg.div_ceil(2 * threads)).min(cg))
    } else {
        (g.kh * g.kw, tiling.channel_block(g, g.groups))
    };
    let lt = up32(tiling.tile_len::<f32>(cb * khw, l)).min(lp);
    let items: Vec<(usize, (usize, usize))> = (0..g.groups)
        .flat_map(|gr| chunks(cg, cb).map(move |c| (gr, c)))
        .collect();
    let dwp = SharedMut(dw.as_mut_ptr());
    let dwlen = dw.len();
    let pointwise = g.is_pointwise();
    items.into_par_iter().for_each(|(gr, (c0, nc))| {
        let n = nc * khw;
        let mut a = PackedA::new(&[], 0, 0, (0, 0));
        let mut acc = vec![0f32; up32(n) * ogp];
        let mut first = true;
        for b in 0..g.n {
            let xs = &x[(b * g.c + gr * cg) * plane..][..cg * plane];
            let bt = &dyt[b * g.groups + gr];
            for (l0, len) in chunks(l, lt) {
                if pointwise {
                    a.refill(&xs[c0 * l + l0..], n, len, (l, 1), false);
                } else {
                    a.refill_rows(n, len, |r, out| im2col_row(xs, g, c0 * khw + r, l0, out));
                }
                assert!(l0 + up32(len) <= lp);
                // SAFETY: A is the tile (up32(n) × up32(len), its columns past `len` zero,
                // so the next tile's rows of B add nothing); B is dYᵀ from pair row l0/2 (l0
                // a multiple of 32) over up32(len)/2 ≤ (lp − l0)/2 pair rows × ogp; C `acc`
                // up32(n) × ogp.
                unsafe {
                    gemm_raw(&RawGemm {
                        a: a.as_ptr(),
                        lda: a.stride(),
                        b: bt.as_ptr().add(l0 * 16),
                        ldb: panel_stride(l),
                        c: acc.as_mut_ptr(),
                        ldc: ogp,
                        mp: up32(n),
                        kp: up32(len),
                        n_lo: 0,
                        n_hi: ogp,
                        accumulate: !first,
                    })
                };
                first = false;
            }
        }
        let off = gr * og * k + c0 * khw;
        assert!(off + (og - 1) * k + n <= dwlen);
        for o in 0..og {
            // SAFETY: item (gr, c0..c0+nc) alone writes rows gr·og.. of dw, columns
            // c0·khw..c0·khw+n (in bounds, checked above).
            let row = unsafe { std::slice::from_raw_parts_mut(dwp.ptr().add(off + o * k), n) };
            for (r, d) in row.iter_mut().enumerate() {
                *d = acc[r * ogp + o];
            }
        }
    });
    dw
}
