//! Layers candle 0.11 lacks or gets wrong, and the typed feature maps that the arfpn
//! backbone, FPN, RPN and RoI heads pass to each other.

mod feature_map;

pub use feature_map::{FeatureMap, FeatureMaps, ShapeSpec};
