//! The element types of every CPU kernel in the workspace (f32 and f64): one trait, with the
//! arithmetic the fused ops need, the constants and scratch buffers of the convolution, and
//! the rounding RoIAlign's geometry needs (computed in the element type, as torchvision
//! does, so that sample coordinates and hence `floor` agree with torchvision bit for bit).

use candle_core::WithDType;

/// f32 or f64: what the CPU kernels of `arfpn-kernels` and `arfpn-roi-align` compute in.
///
/// Implemented for `f32` and `f64` only; generic kernels are written once over it and
/// dispatched on the storage's dtype by [`dispatch_float!`](crate::dispatch_float).
pub trait Element:
    WithDType
    + Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::AddAssign
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// −∞.
    const NEG_INFINITY: Self;
    /// torchvision's RoIPool start value for a non-empty bin (`-FLT_MAX` for every dtype).
    const POOL_LOWEST: Self;
    /// `v` rounded to this type (`v as f32` for f32).
    fn of(v: f64) -> Self;
    /// The value widened to f64.
    fn f(self) -> f64;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
    /// `self / n`, divided in the element type.
    fn div_count(self, n: usize) -> Self;
    /// The value's bit pattern (widened), to tell ±0 and NaN payloads apart.
    fn bits(self) -> u64;
    /// Largest integer ≤ the value.
    fn floor(self) -> Self;
    /// Smallest integer ≥ the value.
    fn ceil(self) -> Self;
    /// Rounds half away from zero (C's `round`).
    fn round(self) -> Self;
    /// Truncates towards zero (C's `(int)x`), saturating.
    fn to_i64(self) -> i64;
    /// The integer as this type.
    fn from_i64(v: i64) -> Self;
    /// Runs `f` on this thread's scratch buffer of `n` values, kept between calls (its
    /// contents are whatever the last user left: callers write every value they read). A
    /// fresh buffer when the thread's is already in use.
    fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

/// The first `n` values of `v`, grown (with zeros) when shorter.
pub(crate) fn at_least<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

macro_rules! element {
    ($t:ident) => {
        impl Element for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = $t::NEG_INFINITY;
            const POOL_LOWEST: Self = -(f32::MAX as $t);
            fn of(v: f64) -> Self {
                v as $t
            }
            fn f(self) -> f64 {
                self as f64
            }
            fn is_nan(self) -> bool {
                $t::is_nan(self)
            }
            fn div_count(self, n: usize) -> Self {
                self / n as $t
            }
            fn bits(self) -> u64 {
                self.to_bits() as u64
            }
            fn floor(self) -> Self {
                $t::floor(self)
            }
            fn ceil(self) -> Self {
                $t::ceil(self)
            }
            fn round(self) -> Self {
                $t::round(self)
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
                thread_local! {
                    static SCRATCH: std::cell::RefCell<Vec<$t>> = const { std::cell::RefCell::new(Vec::new()) };
                }
                SCRATCH.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut v) => f(at_least(&mut v, n)),
                    Err(_) => f(&mut vec![0.0; n]),
                })
            }
        }
    };
}
element!(f32);
element!(f64);
