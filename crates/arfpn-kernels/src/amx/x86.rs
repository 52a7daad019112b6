//! The AMX `TDPBF16PS` kernel in inline assembly (x86-64 Linux): tile configuration, the
//! permission request to the kernel (`arch_prctl`), and the blocked product with software
//! prefetch. `amx.rs` packs the operands and calls in only when [`enable`] said yes.
use std::arch::asm;

/// Tile configuration (palette 1): eight tiles of 16 rows × 64 bytes. tmm0–3 hold a 32×32
/// f32 block of C, tmm4–5 two 16×32 bf16 blocks of A, tmm6–7 two 32×16 (VNNI) of B.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// CPUID leaf 7 (EDX bits 22 AMX-BF16, 24 AMX-TILE), the AVX-512 the packing relies on,
/// and the kernel's permission for the tile data state (Linux ≥ 5.16).
pub(super) fn enable() -> bool {
    if std::env::var_os("ARFPN_NO_AMX").is_some() {
        return false;
    }
    // CPUID leaf 7 exists on every x86_64 CPU that reports max leaf ≥ 7.
    let max_leaf = std::arch::x86_64::__cpuid(0).eax;
    if max_leaf < 7 {
        return false;
    }
    let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
    let cpu = edx & (1 << 22) != 0 && edx & (1 << 24) != 0;
    let avx512 =
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw");
    if !cpu || !avx512 {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) takes two integers, reads
    // and writes no memory of ours, and only changes this process's permission to use the
    // AMX tile state.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    ret == 0
}

/// Prefetches into L1 the kilobyte (16 lines) at `reg + off` (an assembler template
/// line per line); the kernel asks for its operands' tiles two steps ahead of their use.
macro_rules! prefetch_kib {
    ($reg:literal, $off:literal) => {
        concat!(
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            "]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 64]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 128]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 192]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 256]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 320]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 384]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 448]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 512]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 576]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 640]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 704]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 768]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 832]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 896]\n",
            "prefetcht0 [",
            $reg,
            " + ",
            $off,
            " + 960]",
        )
    };
}

/// Blocking of the product: the shared dimension in slices of `KC`, the rows of A in
/// blocks of `MC`, so that a block of A (`MC·KC` bf16 = 256 KiB) stays in L2 while a
/// 32-column panel of B (`KC·32` bf16 = 32 KiB) stays in L1 across it.
const KC: usize = 512;
const MC: usize = 256;

/// Columns `n_lo..n_hi` of `C (+)= A·B` as [`super::RawGemm`] describes them.
///
/// # Safety
/// AMX enabled ([`enable`] returned true) and the contract of [`super::gemm_raw`].
pub(super) unsafe fn matmul(g: &super::RawGemm) {
    let super::RawGemm {
        a,
        lda,
        b,
        ldb,
        c,
        ldc,
        mp,
        kp,
        n_lo,
        n_hi,
        accumulate,
    } = *g;
    // SAFETY: `CONFIG` is a valid palette-1 tile configuration (64 bytes, static); the
    // caller checked `enable()`, so the process may use the AMX state.
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) &CONFIG as *const TileConfig, options(nostack));
    }
    let sa: usize = 32 * 2; // bytes per row inside a tile of A
    let a_next = lda * 2; // bytes from one panel of 16 rows of A to the next
    let sb: usize = 32 * 4; // bytes per row of pairs inside a panel of B
    let sc = ldc * 4; // bytes per row of C
    let b_step = 16 * sb; // 32 values of k = 16 rows of pairs
    for k0 in (0..kp).step_by(KC) {
        let steps = KC.min(kp - k0) / 32;
        for mb in (0..mp).step_by(MC) {
            for n0 in (n_lo..n_hi).step_by(32) {
                for m0 in (mb..mp.min(mb + MC)).step_by(32) {
                    // SAFETY: the caller's sizes: A rows m0..m0+32 at k0..k0+32·steps,
                    // B pair-rows k0/2.. at columns n0..n0+32, C rows m0..m0+32 at
                    // columns n0..n0+32, all inside the buffers.
                    unsafe {
                        let a0 = a.add(m0 / 16 * lda + k0 * 16) as usize;
                        let b0 = b.add(n0 / 32 * ldb + k0 / 2 * 32) as usize;
                        let c0 = c.add(m0 * ldc + n0) as usize;
                        let c2 = c0 + 16 * sc;
                        if k0 == 0 && !accumulate {
                            asm!(
                                "tilezero tmm0",
                                "tilezero tmm1",
                                "tilezero tmm2",
                                "tilezero tmm3",
                                options(nostack)
                            );
                        } else {
                            asm!(
                                "tileloadd tmm0, [{c0} + {sc}]",
                                "tileloadd tmm1, [{c0} + {sc} + 64]",
                                "tileloadd tmm2, [{c2} + {sc}]",
                                "tileloadd tmm3, [{c2} + {sc} + 64]",
                                c0 = in(reg) c0,
                                c2 = in(reg) c2,
                                sc = in(reg) sc,
                                options(nostack)
                            );
                        }
                        asm!(
                            "2:",
                            "tileloadd tmm4, [{a0} + {sa}]",
                            "tileloadd tmm5, [{a1} + {sa}]",
                            "tileloadd tmm6, [{b} + {sb}]",
                            "tileloadd tmm7, [{b} + {sb} + 64]",
                            "tdpbf16ps tmm0, tmm4, tmm6",
                            "tdpbf16ps tmm1, tmm4, tmm7",
                            "tdpbf16ps tmm2, tmm5, tmm6",
                            "tdpbf16ps tmm3, tmm5, tmm7",
                            prefetch_kib!("{a0}", "2048"),
                            prefetch_kib!("{a1}", "2048"),
                            prefetch_kib!("{b}", "4096"),
                            prefetch_kib!("{b}", "5120"),
                            "add {a0}, 1024",
                            "add {a1}, 1024",
                            "add {b}, {bstep}",
                            "dec {cnt}",
                            "jnz 2b",
                            "tilestored [{c0} + {sc}], tmm0",
                            "tilestored [{c0} + {sc} + 64], tmm1",
                            "tilestored [{c2} + {sc}], tmm2",
                            "tilestored [{c2} + {sc} + 64], tmm3",
                            a0 = inout(reg) a0 => _,
                            a1 = inout(reg) a0 + a_next => _,
                            b = inout(reg) b0 => _,
                            c0 = in(reg) c0,
                            c2 = in(reg) c2,
                            sa = in(reg) sa,
                            sb = in(reg) sb,
                            sc = in(reg) sc,
                            bstep = in(reg) b_step,
                            cnt = inout(reg) steps => _,
                            options(nostack),
                        );
                    }
                }
            }
        }
    }
    // SAFETY: releases the tile state this function configured; touches no memory.
    unsafe { asm!("tilerelease", options(nostack)) };
}

/// [`super::convert_scalar`] compiled for AVX-512.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn convert_avx512(src: &[f32], dst: &mut [u16]) {
    super::convert_scalar(src, dst)
}

/// [`super::pack_pair_row_scalar`] compiled for AVX-512.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn pack_pair_row_avx512(
    r0: &[f32],
    r1: Option<&[f32]>,
    p: usize,
    ps: usize,
    dst: &mut [u32],
) {
    super::pack_pair_row_scalar(r0, r1, p, ps, dst)
}

/// [`super::pack_panel_scalar`] compiled for AVX-512.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn pack_panel_avx512(
    src: &[f32],
    k: usize,
    rs: usize,
    c0: usize,
    w: usize,
    out: &mut [u32],
) {
    super::pack_panel_scalar(src, k, rs, c0, w, out)
}
