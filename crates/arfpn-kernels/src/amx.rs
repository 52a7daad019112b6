//! bf16 matrix products on Intel AMX (Advanced Matrix Extensions: Sapphire Rapids and later
//! Xeons), for the optional bf16 products of convolutions and linear layers, forward and
//! backward ([`MatmulPrecision::Bf16`]).
//!
//! The operands are rounded to bfloat16 (round to nearest even, as PyTorch's `autocast`
//! does) and multiplied with f32 accumulation by the `TDPBF16PS` instruction, 16×16 outputs ×
//! 32 products per instruction. The kernel keeps a 32×32 block of the product in four tile
//! registers while it walks the shared dimension 32 at a time (two tiles of the left operand,
//! two of the right one): the usual 2×2 register blocking for this instruction, which uses
//! all eight tile registers.
//!
//! Layouts (all zero-padded, so the kernel never needs edge cases):
//! * left operand `A [m, k]` → [`PackedA`]: bf16 `[m↑32, k↑32]` in tiles of 16 rows × 32
//!   columns, each tile one contiguous kilobyte: `(i, k)` at
//!   `(i / 16)·lda + (k / 32)·512 + (i % 16)·32 + k % 32` with the stride between panels of
//!   16 rows `lda = 16 · k↑32` ([`PackedA::stride`]);
//! * right operand `B [k, n]` → "VNNI" pairs in panels of 32 columns: the pair `(p, j)`,
//!   holding `bf16(B[2p, j])` in its low and `bf16(B[2p + 1, j])` in its high half, at
//!   `(j / 32)·ldb + 32·p + j % 32` with the panel stride `ldb = 32 · k↑32 / 2`
//!   ([`pack_b_rows`], [`pack_b_transposed`], [`panel_stride`]). Each tile of B the kernel
//!   loads is then one contiguous kilobyte and a whole panel one contiguous stretch (a
//!   row-major layout put the 16 rows of a tile up to tens of kilobytes apart, a page each,
//!   which halved the kernel's speed on wide products);
//! * result `C [m↑32, n↑32]` f32, row-major, overwritten or added to
//!   ([`RawGemm::accumulate`]).
//!
//! ↑32 is "rounded up to a multiple of 32".
//!
//! [`available`] says whether this CPU and kernel allow AMX (the Linux kernel only lets a
//! process use the tile registers after it asks, `arch_prctl(ARCH_REQ_XCOMP_PERM)`; asked
//! once). Everything here is inline assembly behind that check; elsewhere the callers keep
//! their f32 path.
//!
//! [`MatmulPrecision::Bf16`]: crate::MatmulPrecision::Bf16

/// Rounds up to a multiple of 32, the block of the kernel.
pub(crate) fn up32(x: usize) -> usize {
    x.div_ceil(32) * 32
}

/// f32 → bf16 bits, round to nearest even; NaN stays a (quiet) NaN, ±∞ stays ±∞, finite
/// values above bf16's largest round to ±∞ (as IEEE rounding does).
#[inline(always)]
pub(crate) fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if (b & 0x7fff_ffff) > 0x7f80_0000 {
        return ((b >> 16) | 0x40) as u16;
    }
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// bf16 bits → f32 (exact).
#[cfg(test)]
pub(crate) fn from_bf16(x: u16) -> f32 {
    f32::from_bits((x as u32) << 16)
}

/// The left operand of [`matmul`], packed: `[m↑32, k↑32]` bf16 in tiles of 16 × 32 (see
/// the module docs).
pub(crate) struct PackedA {
    pub m: usize,
    pub k: usize,
    data: Vec<u16>,
}

impl PackedA {
    /// Packs `a [m, k]` given by `(row stride, column stride)` over `src`, the rows spread
    /// over rayon's pool.
    pub fn new(src: &[f32], m: usize, k: usize, strides: (usize, usize)) -> Self {
        let mut a = Self {
            m: 0,
            k: 0,
            data: Vec::new(),
        };
        a.refill(src, m, k, strides, true);
        a
    }

    /// Packs `a [m, k]` into this buffer (reusing its memory), on the calling thread only
    /// unless `parallel`.
    pub fn refill(
        &mut self,
        src: &[f32],
        m: usize,
        k: usize,
        (rs, cs): (usize, usize),
        parallel: bool,
    ) {
        use rayon::prelude::*;
        let kp = up32(k);
        if m > 0 && k > 0 {
            assert!((m - 1) * rs + (k - 1) * cs < src.len());
        }
        self.m = m;
        self.k = k;
        self.data.resize(up32(m) * kp, 0);
        if kp == 0 {
            return;
        }
        // One panel of 16 rows: each row converted whole, then cut into its tiles; or, when
        // A is the transpose of a row-major matrix (unit row stride: a weight read as `Wᵀ`),
        // 16 consecutive values of each source row at a time, straight into the tiles.
        let panel = |(q, out): (usize, &mut [u16]), tmp: &mut Vec<u16>| {
            if rs == 1 && cs != 1 {
                let rows = 16.min(m.saturating_sub(q * 16));
                out.fill(0);
                if rows == 0 {
                    return;
                }
                for j in 0..k {
                    let base = j / 32 * 512 + j % 32;
                    for (r, v) in src[q * 16 + j * cs..][..rows].iter().enumerate() {
                        out[base + r * 32] = to_bf16(*v);
                    }
                }
                return;
            }
            tmp.resize(kp, 0);
            let row = &mut tmp[..];
            for r in 0..16 {
                let i = q * 16 + r;
                if i >= m {
                    row.fill(0);
                } else if cs == 1 {
                    convert(&src[i * rs..i * rs + k], &mut row[..k]);
                    row[k..].fill(0);
                } else {
                    for (j, v) in row[..k].iter_mut().enumerate() {
                        *v = to_bf16(src[i * rs + j * cs]);
                    }
                    row[k..].fill(0);
                }
                put_row(out, r, row);
            }
        };
        let panels = &mut self.data[..up32(m) * kp];
        if parallel {
            panels
                .par_chunks_exact_mut(16 * kp)
                .enumerate()
                .for_each_init(Vec::new, |tmp, item| panel(item, tmp));
        } else {
            let mut tmp = Vec::new();
            for item in panels.chunks_exact_mut(16 * kp).enumerate() {
                panel(item, &mut tmp);
            }
        }
    }

    /// Packs `a [m, k]` row by row, `row(i, out)` writing the `k` values of row `i` into
    /// `out`, on the calling thread: how the convolution's weight gradient packs its im2col
    /// rows without writing an f32 tile first.
    pub fn refill_rows(&mut self, m: usize, k: usize, mut row: impl FnMut(usize, &mut [f32])) {
        let kp = up32(k);
        self.m = m;
        self.k = k;
        self.data.resize(up32(m) * kp, 0);
        let mut vals = vec![0f32; k];
        let mut half = vec![0u16; kp];
        for i in 0..up32(m) {
            if i < m {
                row(i, &mut vals);
                convert(&vals, &mut half[..k]);
            } else {
                half.fill(0);
            }
            put_row(&mut self.data[i / 16 * 16 * kp..][..16 * kp], i % 16, &half);
        }
    }

    /// Start of the packed values (tiles of 16 × 32, see the module docs).
    pub fn as_ptr(&self) -> *const u16 {
        self.data.as_ptr()
    }

    /// Stride between the panels of 16 rows: `16 · k↑32`.
    pub fn stride(&self) -> usize {
        16 * up32(self.k)
    }
}

/// `dst[i] = bf16(src[i])`.
fn convert(src: &[f32], dst: &mut [u16]) {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if available() {
        // SAFETY: `available` implies AVX-512F/BW.
        return unsafe { x86::convert_avx512(src, dst) };
    }
    convert_scalar(src, dst)
}

#[inline(always)]
fn convert_scalar(src: &[f32], dst: &mut [u16]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = to_bf16(*s);
    }
}

/// Row `r` (of 16) of a panel of [`PackedA`], `row` its `k↑32` packed values, cut into the
/// panel's 16×32 tiles.
fn put_row(panel: &mut [u16], r: usize, row: &[u16]) {
    for (c, chunk) in row.chunks_exact(32).enumerate() {
        panel[c * 512 + r * 32..][..32].copy_from_slice(chunk);
    }
}

/// Stride between the 32-column panels of a packed right operand with `k` rows (in pairs).
pub(crate) fn panel_stride(k: usize) -> usize {
    up32(k) * 16
}

/// One panel of [`pack_b_rows`]: columns `c0..c0 + w` (`w ≤ 32`) of rows `src [k, ·]` (row
/// stride `rs`) as `out [k↑32 / 2, 32]` pairs, zero-padded.
fn pack_panel(src: &[f32], k: usize, rs: usize, c0: usize, w: usize, out: &mut [u32]) {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if available() {
        // SAFETY: `available` implies AVX-512F/BW.
        return unsafe { x86::pack_panel_avx512(src, k, rs, c0, w, out) };
    }
    pack_panel_scalar(src, k, rs, c0, w, out)
}

/// One row of 32 pairs: `o[j] = bf16(r0[j]) | bf16(r1[j]) << 16` for the `r0.len() ≤ 32`
/// values given (`r1` absent: the high halves zero), zero past them.
#[inline(always)]
fn pair_row(r0: &[f32], r1: Option<&[f32]>, o: &mut [u32]) {
    let w = r0.len();
    match r1 {
        Some(r1) => {
            if let (Ok(a), Ok(b), Ok(o)) = (
                <&[f32; 32]>::try_from(r0),
                <&[f32; 32]>::try_from(r1),
                <&mut [u32; 32]>::try_from(&mut *o),
            ) {
                // The whole-row case in fixed-size arrays, which the compiler vectorises.
                for j in 0..32 {
                    o[j] = to_bf16(a[j]) as u32 | (to_bf16(b[j]) as u32) << 16;
                }
                return;
            }
            for ((o, a), b) in o.iter_mut().zip(r0).zip(r1) {
                *o = to_bf16(*a) as u32 | (to_bf16(*b) as u32) << 16;
            }
        }
        None => {
            for (o, a) in o.iter_mut().zip(r0) {
                *o = to_bf16(*a) as u32;
            }
        }
    }
    o[w..32].fill(0);
}

#[inline(always)]
fn pack_panel_scalar(src: &[f32], k: usize, rs: usize, c0: usize, w: usize, out: &mut [u32]) {
    for (p, row) in out.chunks_exact_mut(32).enumerate() {
        let (k0, k1) = (2 * p, 2 * p + 1);
        if k0 >= k {
            row.fill(0);
            continue;
        }
        let r1 = (k1 < k).then(|| &src[k1 * rs + c0..][..w]);
        pair_row(&src[k0 * rs + c0..][..w], r1, row);
    }
}

/// Pair-row `p` of every panel of a packed right operand (panel stride `ps`) from the two
/// rows `r0`, `r1` (`r1` absent past the last row of B) of `n` values each: how a
/// convolution packs its column tile straight from im2col, two rows at a time.
pub(crate) fn pack_pair_row(r0: &[f32], r1: Option<&[f32]>, p: usize, ps: usize, dst: &mut [u32]) {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if available() {
        // SAFETY: `available` implies AVX-512F/BW.
        return unsafe { x86::pack_pair_row_avx512(r0, r1, p, ps, dst) };
    }
    pack_pair_row_scalar(r0, r1, p, ps, dst)
}

#[inline(always)]
fn pack_pair_row_scalar(r0: &[f32], r1: Option<&[f32]>, p: usize, ps: usize, dst: &mut [u32]) {
    let n = r0.len();
    assert!(r1.is_none_or(|r| r.len() == n) && dst.len() >= up32(n) / 32 * ps);
    for q in 0..up32(n) / 32 {
        let (c0, c1) = (q * 32, n.min(q * 32 + 32));
        let o = &mut dst[q * ps + p * 32..][..32];
        pair_row(&r0[c0..c1], r1.map(|r| &r[c0..c1]), o);
    }
}

/// Packs rows `src [k, n]` (row stride `rs`, unit column stride) as the right operand:
/// fills `dst` (`k↑32 / 2 · n↑32` pairs, panels of 32 columns, padding included, set to
/// zero here).
pub(crate) fn pack_b_rows(src: &[f32], k: usize, n: usize, rs: usize, dst: &mut [u32]) {
    pack_b_rows_with(src, k, n, rs, dst, false)
}

/// [`pack_b_rows`] with its panels spread over rayon's pool.
pub(crate) fn pack_b_rows_parallel(src: &[f32], k: usize, n: usize, rs: usize, dst: &mut [u32]) {
    pack_b_rows_with(src, k, n, rs, dst, true)
}

fn pack_b_rows_with(src: &[f32], k: usize, n: usize, rs: usize, dst: &mut [u32], par: bool) {
    use rayon::prelude::*;
    let np = up32(n);
    let ps = panel_stride(k);
    assert!(dst.len() >= ps / 32 * np);
    if k > 0 && n > 0 {
        assert!((k - 1) * rs + n <= src.len());
    }
    if ps == 0 {
        return;
    }
    let panel = |(q, out): (usize, &mut [u32])| {
        let c0 = q * 32;
        pack_panel(src, k, rs, c0, n.min(c0 + 32) - c0, out)
    };
    let panels = &mut dst[..ps / 32 * np];
    if par {
        panels.par_chunks_exact_mut(ps).enumerate().for_each(panel);
    } else {
        panels.chunks_exact_mut(ps).enumerate().for_each(panel);
    }
}

/// Packs the transpose of `w [n, k]` (row-major, row stride `rs`) as the right operand
/// `B = wᵀ [k, n]` (a linear layer's weight, a convolution's `dYᵀ`): fills `dst`
/// (`k↑32 / 2 · n↑32` pairs in panels, as [`pack_b_rows`]).
///
/// A pair of `B` is two consecutive values of one row of `w`, so each row of `w` is first
/// converted to its `k↑32 / 2` pairs (one vectorised pass, rows in parallel), and the pairs
/// are then transposed as 32-bit words, a panel per parallel task, 16 pairs at a time.
pub(crate) fn pack_b_transposed(w: &[f32], n: usize, k: usize, rs: usize, dst: &mut [u32]) {
    use rayon::prelude::*;
    let np = up32(n);
    let kh = up32(k) / 2;
    let ps = panel_stride(k);
    assert!(dst.len() >= kh * np);
    if k > 0 && n > 0 {
        assert!((n - 1) * rs + k <= w.len());
    }
    if kh == 0 {
        return;
    }
    // t[j, p] = bf16(w[j, 2p]) | bf16(w[j, 2p + 1]) << 16 (zero past k).
    let mut t = vec![0u32; n * kh];
    t.par_chunks_exact_mut(kh)
        .enumerate()
        .with_min_len(8)
        .for_each_init(
            || vec![0u16; 2 * kh],
            |half, (j, pairs)| {
                convert(&w[j * rs..j * rs + k], &mut half[..k]);
                half[k..].fill(0);
                for (o, h) in pairs.iter_mut().zip(half.chunks_exact(2)) {
                    *o = h[0] as u32 | (h[1] as u32) << 16;
                }
            },
        );
    const PAIRS: usize = 16;
    dst[..kh * np]
        .par_chunks_exact_mut(ps)
        .enumerate()
        .for_each(|(q, out)| {
            let w = n.min(q * 32 + 32) - q * 32;
            for p0 in (0..kh).step_by(PAIRS) {
                let rows = PAIRS.min(kh - p0);
                let block = &mut out[p0 * 32..(p0 + rows) * 32];
                for jj in 0..w {
                    let src = &t[(q * 32 + jj) * kh + p0..][..rows];
                    for (pp, v) in src.iter().enumerate() {
                        block[pp * 32 + jj] = *v;
                    }
                }
                if w < 32 {
                    for row in block.chunks_exact_mut(32) {
                        row[w..].fill(0);
                    }
                }
            }
        });
}

/// `c [a.m↑32, n↑32] = A · B`, `b` packed by [`pack_b_rows`] / [`pack_b_transposed`] for
/// `k = a.k` and this `n`; `c` is overwritten, padding included. Runs on the calling thread.
///
/// # Panics
/// If [`available`] is false (callers check it first) or a buffer is too short.
pub(crate) fn matmul(a: &PackedA, b: &[u32], n: usize, c: &mut [f32]) {
    let np = up32(n);
    assert!(c.len() >= up32(a.m) * np);
    // SAFETY: `c` holds the whole product (asserted; the operands are checked inside) and is
    // borrowed mutably, so no one else writes it.
    unsafe { matmul_strided(a, b, n, c.as_mut_ptr(), np, 0..np) }
}

/// [`matmul`] with the columns split among the threads of rayon's pool.
pub(crate) fn matmul_parallel(a: &PackedA, b: &[u32], n: usize, c: &mut [f32]) {
    let (mp, kp, np) = (up32(a.m), up32(a.k), up32(n));
    check_operands(a, b, n);
    assert!(c.len() >= mp * np);
    if mp == 0 || np == 0 {
        return;
    }
    if kp == 0 {
        c[..mp * np].fill(0.0);
        return;
    }
    let g = RawGemm {
        a: a.data.as_ptr(),
        lda: a.stride(),
        b: b.as_ptr(),
        ldb: panel_stride(a.k),
        c: c.as_mut_ptr(),
        ldc: np,
        mp,
        kp,
        n_lo: 0,
        n_hi: np,
        accumulate: false,
    };
    // SAFETY: sizes checked; `c` is borrowed mutably, so no one else touches it.
    unsafe { gemm_raw_parallel(g) }
}

/// Asserts that AMX is usable and the packed operands of an `A·B` with `n` columns are whole.
fn check_operands(a: &PackedA, b: &[u32], n: usize) {
    assert!(available(), "AMX matmul called on a CPU without AMX");
    let (mp, kp, np) = (up32(a.m), up32(a.k), up32(n));
    assert!(b.len() >= kp / 2 * np && a.data.len() >= mp * kp);
}

/// [`matmul`] into a destination with row stride `ldc` (≥ `n↑32`), e.g. straight into a
/// convolution's output when `a.m` and `n` are multiples of 32.
///
/// # Safety
/// `c + i·ldc + j` writable for `i < a.m↑32`, `j` in `cols` (multiples of 32, within
/// `n↑32`), and touched by no one else meanwhile (the packed operands are asserted here).
pub(crate) unsafe fn matmul_strided(
    a: &PackedA,
    b: &[u32],
    n: usize,
    c: *mut f32,
    ldc: usize,
    cols: std::ops::Range<usize>,
) {
    let (mp, kp, np) = (up32(a.m), up32(a.k), up32(n));
    assert!(cols.start.is_multiple_of(32) && cols.end.is_multiple_of(32) && cols.end <= np);
    check_operands(a, b, n);
    if mp == 0 || cols.is_empty() {
        return;
    }
    if kp == 0 {
        for i in 0..mp {
            // SAFETY: row i's columns `cols` are writable (caller's contract).
            unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc + cols.start), cols.len()) }
                .fill(0.0);
        }
        return;
    }
    // SAFETY: AMX usable and operand sizes checked; `c`'s region is the caller's contract.
    unsafe {
        gemm_raw(&RawGemm {
            a: a.data.as_ptr(),
            lda: a.stride(),
            b: b.as_ptr(),
            ldb: panel_stride(a.k),
            c,
            ldc,
            mp,
            kp,
            n_lo: cols.start,
            n_hi: cols.end,
            accumulate: false,
        })
    }
}

/// One product for [`gemm_raw`]: `C[i, j] (+)= Σ_k A[i, k]·B[k, j]` for `i < mp`, `k < kp`,
/// `n_lo ≤ j < n_hi`, over raw packed operands with their own strides, so that callers
/// can multiply sub-blocks of larger packed matrices (a range of `k` from `k0`, a multiple of
/// 32, is an offset of `a` and of `b` by `16·k0`; a range of columns from `n0`, a multiple of 32, an
/// offset of `b` by `n0 / 32 · ldb`).
#[derive(Clone, Copy)]
pub(crate) struct RawGemm {
    /// bf16 in tiles of 16 × 32, stride `lda` between panels of 16 rows (see the module
    /// docs).
    pub a: *const u16,
    pub lda: usize,
    /// VNNI pairs in panels of 32 columns, panel stride `ldb` pairs (see the module docs).
    pub b: *const u32,
    pub ldb: usize,
    /// f32, row stride `ldc` values.
    pub c: *mut f32,
    pub ldc: usize,
    pub mp: usize,
    pub kp: usize,
    pub n_lo: usize,
    pub n_hi: usize,
    /// Add to `C` instead of overwriting it.
    pub accumulate: bool,
}

/// Runs a [`RawGemm`] on the calling thread.
///
/// # Safety
/// [`available`] is true; `mp`, `kp`, `n_lo`, `n_hi` are multiples of 32 with `mp, kp > 0`
/// and `n_lo < n_hi`; `a + (i / 16)·lda + (k / 32)·512 + (i % 16)·32 + k % 32` readable for
/// `i < mp`, `k < kp`;
/// `b + (j / 32)·ldb + 32·p + j % 32` readable for `p < kp/2`, `j < n_hi`; `c + i·ldc + j` readable and writable for `i < mp`,
/// `n_lo ≤ j < n_hi`, and not accessed by anyone else during the call.
pub(crate) unsafe fn gemm_raw(g: &RawGemm) {
    debug_assert!(available());
    debug_assert!(g.mp.is_multiple_of(32) && g.kp.is_multiple_of(32) && g.mp > 0 && g.kp > 0);
    debug_assert!(g.n_lo.is_multiple_of(32) && g.n_hi.is_multiple_of(32) && g.n_lo < g.n_hi);
    // SAFETY: the caller's contract.
    unsafe { x86::matmul(g) }
}

/// Columns `g.n_lo..g.n_hi` of a [`RawGemm`] split among the threads of rayon's pool.
///
/// # Safety
/// The contract of [`gemm_raw`] for `g`.
pub(crate) unsafe fn gemm_raw_parallel(g: RawGemm) {
    use rayon::prelude::*;
    let width = g.n_hi - g.n_lo;
    let per = up32(width.div_ceil(rayon::current_num_threads().max(1))).max(32);
    let shared = SharedGemm(g);
    (g.n_lo..g.n_hi)
        .step_by(per)
        .collect::<Vec<_>>()
        .into_par_iter()
        .for_each(|lo| {
            let mut g = shared.get();
            g.n_hi = g.n_hi.min(lo + per);
            g.n_lo = lo;
            // SAFETY: the caller's contract; each task owns its columns of C.
            unsafe { gemm_raw(&g) }
        });
}

/// A [`RawGemm`] handed to parallel tasks that write disjoint column ranges of its C.
#[derive(Clone, Copy)]
struct SharedGemm(RawGemm);
// SAFETY: only used by `gemm_raw_parallel`, whose tasks read the shared operands and write
// disjoint column ranges of C.
unsafe impl Send for SharedGemm {}
// SAFETY: as for `Send`: shared reads of the operands, disjoint writes of C.
unsafe impl Sync for SharedGemm {}
impl SharedGemm {
    /// The product (a method, so closures capture the whole `Send + Sync` wrapper).
    fn get(self) -> RawGemm {
        self.0
    }
}

/// Whether AMX-BF16 can run here (checked and permission asked once per process).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(x86::enable)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod x86;

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod x86 {
    pub(super) fn enable() -> bool {
        false
    }
    pub(super) unsafe fn matmul(_: &super::RawGemm) {
        unreachable!("AMX matmul without AMX")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-0.5, 0.5).
    fn vals(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// `A·B` in f64 from the bf16-rounded operands (each product is exact in f64).
    fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
        let r = |x: f32| from_bf16(to_bf16(x)) as f64;
        let mut c = vec![0.0; m * n];
        let mut abs = vec![0.0; m * n];
        for i in 0..m {
            for kk in 0..k {
                let av = r(a[i * k + kk]);
                for j in 0..n {
                    let p = av * r(b[kk * n + j]);
                    c[i * n + j] += p;
                    abs[i * n + j] += p.abs();
                }
            }
        }
        (c, abs)
    }

    fn skip() -> bool {
        if !available() {
            eprintln!("skipped: this CPU or kernel has no AMX-BF16 (packing is still tested)");
            return true;
        }
        false
    }

    #[test]
    fn bf16_rounding_is_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80); // tie → even (down)
        assert_eq!(to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82); // tie → even (up)
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(to_bf16(-0.0), 0x8000);
        assert_eq!(to_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(to_bf16(f32::NEG_INFINITY), 0xff80);
        assert_eq!(to_bf16(f32::MAX), 0x7f80); // overflows to ∞, as IEEE rounding does
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert!(from_bf16(to_bf16(f32::from_bits(0x7f80_0001))).is_nan()); // NaN, not ∞
                                                                           // Any finite value: no bf16 neighbour is nearer, and ties go to the even one.
        let mut s = 0x1234_5678u32;
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let x = f32::from_bits(s);
            if !x.is_finite() || x.abs() > 3.0e38 {
                continue;
            }
            let r = to_bf16(x);
            let d = |h: u16| (from_bf16(h) as f64 - x as f64).abs();
            for nb in [r.wrapping_sub(1), r.wrapping_add(1)] {
                if from_bf16(nb).is_finite() && (nb & 0x7fff) <= 0x7f7f {
                    assert!(
                        d(r) < d(nb) || (d(r) == d(nb) && r.is_multiple_of(2)),
                        "{x:e}: {r:#x} vs {nb:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn packings_agree() {
        for (k, n) in [(1, 1), (33, 5), (64, 65), (147, 100), (70, 300)] {
            let b = vals(k * n, 3);
            let mut rows = vec![7u32; up32(k) / 2 * up32(n)];
            pack_b_rows(&b, k, n, n, &mut rows);
            let mut par = vec![3u32; rows.len()];
            pack_b_rows_parallel(&b, k, n, n, &mut par);
            assert_eq!(rows, par, "k {k} n {n}: parallel packing");
            let mut by_pairs = vec![1u32; rows.len()];
            for p in 0..up32(k) / 2 {
                let row = |r: usize| (r < k).then(|| &b[r * n..(r + 1) * n]);
                match row(2 * p) {
                    Some(r0) => {
                        pack_pair_row(r0, row(2 * p + 1), p, panel_stride(k), &mut by_pairs)
                    }
                    None => pack_pair_row(&vec![0.0; n], None, p, panel_stride(k), &mut by_pairs),
                }
            }
            assert_eq!(rows, by_pairs, "k {k} n {n}: pair by pair");
            let w: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let mut tr = vec![9u32; up32(k) / 2 * up32(n)];
            pack_b_transposed(&w, n, k, k, &mut tr);
            assert_eq!(rows, tr, "k {k} n {n}");
            // Rows of `w` at a longer stride (what lies between them is never read).
            let rs = k + 3;
            let wp: Vec<f32> = (0..n * rs)
                .map(|i| {
                    if i % rs < k {
                        w[i / rs * k + i % rs]
                    } else {
                        f32::NAN
                    }
                })
                .collect();
            let mut tp = vec![5u32; tr.len()];
            pack_b_transposed(&wp, n, k, rs, &mut tp);
            assert_eq!(rows, tp, "k {k} n {n} stride {rs}");
            // The layout, value by value: (kk, j) in panel j/32, pair-row kk/2, half kk%2;
            // padding (past k or n) zero.
            let (np, ps) = (up32(n), panel_stride(k));
            for kk in 0..up32(k) {
                for j in 0..np {
                    let got = (rows[j / 32 * ps + kk / 2 * 32 + j % 32] >> (16 * (kk % 2))) as u16;
                    let want = if kk < k && j < n {
                        to_bf16(b[kk * n + j])
                    } else {
                        0
                    };
                    assert_eq!(got, want, "k {k} n {n} at ({kk}, {j})");
                }
            }
        }
    }

    #[test]
    fn matmul_matches_f64_reference() {
        if skip() {
            return;
        }
        for (m, k, n) in [
            (1, 1, 1),
            (17, 33, 5),
            (3, 40, 70),
            (64, 147, 100),
            (33, 64, 65),
            (300, 1100, 40),
        ] {
            let a = vals(m * k, 1);
            let b = vals(k * n, 2);
            let pa = PackedA::new(&a, m, k, (k, 1));
            let mut pb = vec![0u32; up32(k) / 2 * up32(n)];
            pack_b_rows(&b, k, n, n, &mut pb);
            let mut c = vec![f32::NAN; up32(m) * up32(n)];
            matmul(&pa, &pb, n, &mut c);
            let (want, abs) = reference(&a, &b, m, k, n);
            let np = up32(n);
            for i in 0..m {
                for j in 0..n {
                    let err = (c[i * np + j] as f64 - want[i * n + j]).abs();
                    assert!(
                        err <= 1e-6 * abs[i * n + j] + 1e-30,
                        "{m}×{k}×{n} at ({i}, {j}): {} vs {}",
                        c[i * np + j],
                        want[i * n + j]
                    );
                }
            }
            // Padding rows and columns are zero.
            assert!(c.chunks(np).skip(m).all(|r| r.iter().all(|v| *v == 0.0)));
            assert!(c.chunks(np).all(|r| r[n..].iter().all(|v| *v == 0.0)));
            // Strided A (the transpose of a column-major copy) packs the same.
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let pt = PackedA::new(&at, m, k, (1, m));
            assert_eq!(pt.data, pa.data);
            // Row by row: the same.
            let mut rr = PackedA::new(&vals(40 * 70, 9), 40, 70, (70, 1));
            rr.refill_rows(m, k, |i, out| out.copy_from_slice(&a[i * k..(i + 1) * k]));
            assert_eq!(rr.data[..pa.data.len()], pa.data[..]);
            // A reused buffer that held a larger matrix packs the same (padding cleared).
            let mut re = PackedA::new(&vals(40 * 70, 9), 40, 70, (70, 1));
            re.refill(&a, m, k, (k, 1), false);
            assert_eq!(re.data[..pa.data.len()], pa.data[..]);
            // Split among threads: the same bits.
            let mut cp = vec![f32::NAN; c.len()];
            matmul_parallel(&pa, &pb, n, &mut cp);
            assert_eq!(
                cp.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}
