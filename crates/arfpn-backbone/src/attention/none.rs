//! The identity "attention": the plain residual unit.

use super::Attention;
use candle_core::{Result, Tensor};

/// Returns its input unchanged; has no parameters.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAttention;

impl Attention for NoAttention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }

    fn is_identity(&self) -> bool {
        true
    }
}
