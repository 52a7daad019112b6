//! The element types the kernels support (f32 and f64), with the few float operations the
//! geometry needs. Geometry is computed in the element type, as torchvision does, so that
//! sample coordinates (and hence `floor`) agree with torchvision's bit for bit.
use candle_core::WithDType;

pub(crate) trait Real: WithDType {
    /// torchvision's RoIPool start value for a non-empty bin (`-FLT_MAX` for every dtype).
    const POOL_LOWEST: Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    /// Rounds half away from zero (C's `round`).
    fn round(self) -> Self;
    /// Truncates towards zero (C's `(int)x`), saturating.
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            const POOL_LOWEST: Self = -(f32::MAX as $t);
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            fn ceil(self) -> Self {
                <$t>::ceil(self)
            }
            fn round(self) -> Self {
                <$t>::round(self)
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
        }
    };
}
real!(f32);
real!(f64);
