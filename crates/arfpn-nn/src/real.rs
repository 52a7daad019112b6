//! The element types (f32, f64) of this crate's fused CPU ops (`relu.rs`, `amax.rs`,
//! `gate.rs`, `affine_cpu.rs`,
//! `group_norm_cpu.rs`): one trait instead of a private copy per op.

/// Arithmetic the fused kernels need on f32 and f64.
pub(crate) trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::AddAssign
    + 'static
{
    const ZERO: Self;
    fn of(v: f64) -> Self;
    fn f(self) -> f64;
    fn is_nan(self) -> bool;
    /// `self / n`, divided in the element type.
    fn div_count(self, n: usize) -> Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    fn of(v: f64) -> Self {
        v as f32
    }
    fn f(self) -> f64 {
        self as f64
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn div_count(self, n: usize) -> Self {
        self / n as f32
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    fn of(v: f64) -> Self {
        v
    }
    fn f(self) -> f64 {
        self
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn div_count(self, n: usize) -> Self {
        self / n as f64
    }
}
