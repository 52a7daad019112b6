//! Flushing subnormal floats to zero, like `torch.set_flush_denormal(True)`.
//!
//! Products and sums whose result is subnormal (below `f32::MIN_POSITIVE`, ~1.2e-38) run far
//! slower than normal ones on x86 CPUs. The first training steps of a randomly initialised
//! frozen-batch-norm network produce such gradients: R50-FPN's first f32 step took 9.7–11.1 s
//! at one thread against 1.9–2.6 s for later steps (`docs/benchmarks.md`). Setting the CPU's
//! flush-to-zero (FTZ) and denormals-are-zero (DAZ) modes removes that cost; results change
//! only where a subnormal occurs, which it then treats as 0.
//!
//! The floating-point environment belongs to the program, so nothing here runs behind the
//! user's back: a program calls [`flush_denormals`] once at its start (the workspace's
//! commands do, unless given `--keep-denormals`).

/// Sets flush-to-zero and denormals-are-zero on the calling thread and on every thread of
/// rayon's global pool (where the fused CPU ops run); threads created afterwards by these
/// threads inherit the mode. Returns `true` when it was set everywhere; `false` on CPUs
/// without such a mode (anything but x86-64 and AArch64), where nothing changes.
///
/// ```
/// let on = arfpn_kernels::flush_denormals();
/// assert_eq!(on, arfpn_kernels::denormals_flushed());
/// ```
pub fn flush_denormals() -> bool {
    let here = set_flush();
    let pool = rayon::broadcast(|_| set_flush());
    here && pool.into_iter().all(|ok| ok)
}

/// Whether subnormal results are flushed to zero on the calling thread.
pub fn denormals_flushed() -> bool {
    flush_mode_bits().is_some_and(|(bits, mask)| bits & mask == mask)
}

/// MXCSR: FTZ (bit 15) and DAZ (bit 6).
#[cfg(target_arch = "x86_64")]
const MASK: u64 = (1 << 15) | (1 << 6);
/// FPCR: FZ (bit 24).
#[cfg(target_arch = "aarch64")]
const MASK: u64 = 1 << 24;

/// The control register's value and the mask of the flush bits.
fn flush_mode_bits() -> Option<(u64, u64)> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr: u32 = 0;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR register to the given address, which
        // points at a live, aligned `u32` on this stack frame; SSE is part of x86-64.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr as *mut u32, options(nostack));
        }
        Some((csr as u64, MASK))
    }
    #[cfg(target_arch = "aarch64")]
    {
        let fpcr: u64;
        // SAFETY: reading FPCR has no side effect and is allowed at EL0.
        unsafe {
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack));
        }
        Some((fpcr, MASK))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        None
    }
}

fn set_flush() -> bool {
    let Some((bits, mask)) = flush_mode_bits() else {
        return false;
    };
    let value = bits | mask;
    #[cfg(target_arch = "x86_64")]
    {
        let csr = value as u32;
        // SAFETY: `ldmxcsr` loads MXCSR from a live, aligned `u32`; the value is the current
        // register with only the FTZ and DAZ bits added, both defined on every x86-64 CPU
        // with SSE2 (DAZ on every SSE2 CPU of the last two decades; MXCSR_MASK reports it).
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr as *const u32, options(nostack));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: writing FPCR is allowed at EL0; only the FZ bit is added to its value.
        unsafe {
            std::arch::asm!("msr fpcr, {}", in(reg) value, options(nomem, nostack));
        }
    }
    denormals_flushed()
}
