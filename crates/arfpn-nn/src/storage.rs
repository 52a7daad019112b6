//! CPU storage access shared by the custom ops of this crate.

use crate::error::config_err;
use candle_core::{CpuStorage, Layout, Result, WithDType};

/// The elements of `s` under a contiguous `layout`; an error naming `op` and `arg` otherwise
/// (the ops make their inputs contiguous, so this guards against a caller that did not).
pub(crate) fn contiguous_slice<'a, T: WithDType>(
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
