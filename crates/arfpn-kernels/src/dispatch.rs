//! The one f32/f64 dispatch of the custom ops' CPU forwards.

/// Runs a generic kernel on a `CpuStorage` of f32 or f64 and wraps the `Vec` it returns in a
/// storage of the same type; any other dtype returns [`KernelError::DType`](crate::KernelError)
/// (as a `candle_core::Error`) from the enclosing function.
///
/// `dispatch_float!(op_name, storage, |T| body)` binds the type alias `T` to `f32` or `f64`
/// in `body`, which evaluates to `Vec<T>` (or `?`-returns an error):
///
/// ```
/// use arfpn_kernels::dispatch_float;
/// use candle_core::{CpuStorage, Result};
///
/// fn doubled(s: &CpuStorage) -> Result<CpuStorage> {
///     Ok(dispatch_float!("doubled", s, |T| {
///         s.as_slice::<T>()?.iter().map(|&v| v + v).collect::<Vec<T>>()
///     }))
/// }
/// let out = doubled(&CpuStorage::F64(vec![1.0, 2.5]))?;
/// assert!(matches!(out, CpuStorage::F64(v) if v == [2.0, 5.0]));
/// assert!(doubled(&CpuStorage::U8(vec![1])).is_err());
/// # Ok::<(), candle_core::Error>(())
/// ```
#[macro_export]
macro_rules! dispatch_float {
    ($op:expr, $storage:expr, |$t:ident| $body:expr) => {
        match $storage {
            ::candle_core::CpuStorage::F32(_) => {
                #[allow(dead_code)]
                type $t = f32;
                ::candle_core::CpuStorage::F32($body)
            }
            ::candle_core::CpuStorage::F64(_) => {
                #[allow(dead_code)]
                type $t = f64;
                ::candle_core::CpuStorage::F64($body)
            }
            s => {
                return Err($crate::KernelError::DType {
                    op: $op,
                    dtype: ::candle_core::backend::BackendStorage::dtype(s),
                }
                .into())
            }
        }
    };
}
