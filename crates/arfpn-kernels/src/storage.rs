//! CPU storage access shared by the custom ops of this crate.

use crate::error::config_err;
use candle_core::{CpuStorage, DType, Layout, Result, Tensor, WithDType};

/// Whether this crate's fused CPU ops apply: `lead` on the CPU in f32 or f64, and each of
/// `others` on the CPU in the same dtype (otherwise the ops compose candle's, on any device).
pub fn fused_cpu(lead: &Tensor, others: &[&Tensor]) -> bool {
    lead.device().is_cpu()
        && matches!(lead.dtype(), DType::F32 | DType::F64)
        && others
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == lead.dtype())
}

/// The elements of `s` under a contiguous `layout`; an error naming `op` and `arg` otherwise
/// (the ops make their inputs contiguous, so this guards against a caller that did not).
pub fn contiguous_slice<'a, T: WithDType>(
    s: &'a CpuStorage,
    layout: &Layout,
    op: &'static str,
    arg: &'static str,
) -> Result<&'a [T]> {
    let data = s.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => Err(config_err(op, arg, "must be contiguous")),
    }
}

/// A new vector of `len` values made by `fill(i, out)` on consecutive chunks of `chunk`
/// values (`i` the chunk's index), the chunks in parallel, without zero-filling the memory
/// first (a full extra pass over the output of every element-wise op).
///
/// # Safety
/// `fill` writes every value of the chunk it is given.
pub(crate) unsafe fn par_build<T: Send>(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [std::mem::MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    use rayon::prelude::*;
    let mut y = Vec::with_capacity(len);
    y.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, out)| fill(i, out));
    // SAFETY: every chunk was written whole (the caller's contract).
    unsafe { y.set_len(len) };
    y
}
