//! The contract between a backbone and what consumes its feature maps (FPN, heads).

use crate::error::Result;
use arfpn_nn::{FeatureMaps, ShapeSpec};
use candle_core::Tensor;

/// A multi-scale feature extractor.
pub trait Backbone: Send + Sync {
    /// Name, channels and stride of every output, fine to coarse, known before any forward.
    fn output_shapes(&self) -> Vec<ShapeSpec>;

    /// Inputs whose height and width are multiples of this give feature maps that halve
    /// exactly from level to level (what a top-down pathway needs).
    fn size_divisibility(&self) -> usize;

    /// Runs the backbone on `[N, C, H, W]` images; `train` selects training behaviour of
    /// trainable batch norm. Outputs follow [`output_shapes`](Backbone::output_shapes).
    fn forward_t(&self, images: &Tensor, train: bool) -> Result<FeatureMaps>;

    /// Full names of the parameters an optimiser must not update (frozen batch norms,
    /// running statistics, fixed layers), as the backbone's `VarBuilder` named them. A
    /// detector trains every other parameter. The default: none.
    fn frozen_parameters(&self) -> Vec<String> {
        Vec::new()
    }
}
