//! Attention modules that live inside residual units.
//!
//! An attention module is shape-preserving (`[N, C, H, W] -> [N, C, H, W]`). The residual
//! unit builds it through an [`AttentionFactory`], passing the channel count at the insertion
//! point — after the last convolution and normalisation of the unit, before the residual
//! addition (the placement of SE-ResNet, CBAM and the ARFPN paper). Its parameters live under
//! the unit's `attention.` prefix, e.g. `layer2.0.attention.fc1.weight`.
//!
//! Built-in modules: [`ChannelAttention`] (squeeze-and-excitation, the paper's CARU),
//! [`SpatialAttention`] (S-ARFPN), [`Cbam`] (channel then spatial, the paper's CSARU) and
//! [`NoAttention`] (the plain FPN baseline). [`AttentionKind`] is the serialisable choice
//! among them and is itself a factory. A researcher's own module implements [`Attention`] and
//! [`AttentionFactory`] in their crate and is passed to
//! [`ResNet::with_attention`](crate::ResNet::with_attention); see
//! `examples/custom_attention.rs`.

mod cbam;
mod channel;
mod none;
mod spatial;

pub use cbam::Cbam;
pub use channel::ChannelAttention;
pub use none::NoAttention;
pub use spatial::SpatialAttention;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// One attention map recorded during a forward pass, for visualisation (the paper's Figure 7).
#[derive(Clone, Debug)]
pub struct AttentionMap {
    /// What the map weights: `"channel"` (shape `[N, C, 1, 1]`) or `"spatial"` (`[N, 1, H, W]`);
    /// user modules may use their own names.
    pub name: String,
    /// The weights (after the sigmoid) that multiplied the features.
    pub tensor: Tensor,
}

/// A shape-preserving module applied inside a residual unit.
///
/// Implement **either** [`weights`](Attention::weights) **or** [`forward`](Attention::forward):
///
/// * A module that is one reweighting `y = x * w(x)` (squeeze-and-excitation, spatial
///   attention, most gates) implements `weights` (the `w(x)` that broadcasts against `x`)
///   and, to expose `w(x)` to [`ResNet::forward_traced`](crate::ResNet::forward_traced),
///   [`map_name`](Attention::map_name). `forward` and `forward_with_maps` then default to
///   `x * w(x)` and to that plus one [`AttentionMap`] under the name.
/// * Any other module implements `forward` (and `forward_with_maps` when it has maps to
///   show, as [`Cbam`] does); the default `forward_with_maps` then records nothing.
///
/// A module that implements neither compiles, but its forward is an error naming both
/// methods (the defaults do not call each other in a loop).
///
/// ```
/// use arfpn_backbone::{Attention, AttentionMap};
/// use candle_core::{Device, Result, Tensor};
///
/// /// Halves every feature: a constant gate.
/// struct Half;
/// impl Attention for Half {
///     fn weights(&self, x: &Tensor) -> Result<Tensor> {
///         Tensor::new(0.5f32, x.device())?.reshape((1, 1, 1, 1))
///     }
///     fn map_name(&self) -> Option<&str> {
///         Some("half")
///     }
/// }
///
/// let x = Tensor::ones((1, 2, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let (y, maps) = Half.forward_with_maps(&x)?;
/// assert_eq!(y.sum_all()?.to_scalar::<f32>()?, 9.0);
/// assert_eq!(maps[0].name, "half");
/// assert_eq!(Half.forward(&x)?.sum_all()?.to_scalar::<f32>()?, 9.0);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub trait Attention: Send + Sync {
    /// The weights `w(x)` of a module that computes `y = x * w(x)`; they broadcast against
    /// `x` (`[N, C, 1, 1]` per channel, `[N, 1, H, W]` per position). The default is an
    /// error: modules that are not one reweighting implement [`forward`](Attention::forward)
    /// instead.
    fn weights(&self, x: &Tensor) -> Result<Tensor> {
        let _ = x;
        candle_core::bail!(
            "attention module `{}` does not implement `Attention::weights` (it is not one \
             reweighting x * w(x)); an attention module must implement `weights` or `forward`",
            std::any::type_name::<Self>()
        )
    }

    /// The name under which the default [`forward_with_maps`](Attention::forward_with_maps)
    /// records [`weights`](Attention::weights) (e.g. `"channel"`, `"spatial"`). The default,
    /// `None`, records nothing.
    fn map_name(&self) -> Option<&str> {
        None
    }

    /// Reweights `x` (`[N, C, H, W]`); the output has the shape of `x`. The default is
    /// `x * weights(x)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        arfpn_nn::gate(x, &self.weights(x)?)
    }

    /// Like [`forward`](Attention::forward), also returning the attention weights it applied.
    /// The default: with a [`map_name`](Attention::map_name), `x * weights(x)` and the weights
    /// under that name; without one, `forward(x)` and no maps.
    fn forward_with_maps(&self, x: &Tensor) -> Result<(Tensor, Vec<AttentionMap>)> {
        match self.map_name() {
            Some(name) => {
                let w = self.weights(x)?;
                let y = arfpn_nn::gate(x, &w)?;
                Ok((
                    y,
                    vec![AttentionMap {
                        name: name.to_string(),
                        tensor: w,
                    }],
                ))
            }
            None => Ok((self.forward(x)?, Vec::new())),
        }
    }

    /// True when [`forward`](Attention::forward) returns its input unchanged (and records no
    /// maps), as [`NoAttention`] does. A unit then folds its last norm into the residual
    /// addition (one fused op for frozen batch norms). The default is `false`.
    fn is_identity(&self) -> bool {
        false
    }

    /// The end of a residual unit: `max(forward(x) + shortcut, 0)` (`shortcut` has the shape
    /// of `x`). The default composes [`forward`](Attention::forward) and
    /// [`arfpn_nn::add_relu`]; a module may override it with one fused op ([`Cbam`] and
    /// [`SpatialAttention`] do, so that their output is not kept for the backward).
    fn forward_add_relu(&self, x: &Tensor, shortcut: &Tensor) -> Result<Tensor> {
        arfpn_nn::add_relu(&self.forward(x)?, shortcut)
    }
}

/// Builds one attention module per residual unit, for the channel count at the insertion
/// point. `vb` is already scoped to the unit's `attention` prefix.
pub trait AttentionFactory: Send + Sync {
    fn build(&self, channels: usize, vb: VarBuilder) -> Result<Box<dyn Attention>>;
}

/// The built-in attention modules as a serialisable choice (the paper's variants).
///
/// ```
/// use arfpn_backbone::AttentionKind;
/// let cs: AttentionKind = serde_json::from_str(r#"{"type":"cbam","reduction":16,"kernel_size":7}"#).unwrap();
/// assert_eq!(cs, AttentionKind::cbam());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AttentionKind {
    /// No attention: the plain ResNet / FPN baseline.
    #[default]
    None,
    /// Squeeze-and-excitation (C-ARFPN): hidden width `max(channels / reduction, 1)`.
    Channel { reduction: usize },
    /// Spatial attention (S-ARFPN) with a `kernel_size`×`kernel_size` convolution (odd).
    Spatial { kernel_size: usize },
    /// Channel then spatial attention, CBAM (CS-ARFPN).
    Cbam {
        reduction: usize,
        kernel_size: usize,
    },
}

impl AttentionKind {
    /// Squeeze-and-excitation with the usual reduction ratio 16.
    pub fn channel() -> Self {
        Self::Channel { reduction: 16 }
    }
    /// Spatial attention with a 7×7 convolution.
    pub fn spatial() -> Self {
        Self::Spatial { kernel_size: 7 }
    }
    /// CBAM with reduction 16 and a 7×7 spatial convolution.
    pub fn cbam() -> Self {
        Self::Cbam {
            reduction: 16,
            kernel_size: 7,
        }
    }

    /// Checks the hyper-parameters; the error names the field at fault.
    pub fn validate(&self) -> std::result::Result<(), crate::BackboneError> {
        let (reduction, kernel) = match *self {
            Self::None => (None, None),
            Self::Channel { reduction } => (Some(reduction), None),
            Self::Spatial { kernel_size } => (None, Some(kernel_size)),
            Self::Cbam {
                reduction,
                kernel_size,
            } => (Some(reduction), Some(kernel_size)),
        };
        if reduction == Some(0) {
            return Err(crate::error::config_err(
                "attention.reduction",
                "must be at least 1",
            ));
        }
        if let Some(k) = kernel {
            if k.is_multiple_of(2) {
                return Err(crate::error::config_err(
                    "attention.kernel_size",
                    format!("must be odd (got {k}) so the map keeps the feature size"),
                ));
            }
        }
        Ok(())
    }
}

impl AttentionFactory for AttentionKind {
    fn build(&self, channels: usize, vb: VarBuilder) -> Result<Box<dyn Attention>> {
        self.validate().map_err(candle_core::Error::wrap)?;
        Ok(match *self {
            Self::None => Box::new(NoAttention),
            Self::Channel { reduction } => {
                Box::new(ChannelAttention::new(channels, reduction, vb)?)
            }
            Self::Spatial { kernel_size } => Box::new(SpatialAttention::new(kernel_size, vb)?),
            Self::Cbam {
                reduction,
                kernel_size,
            } => Box::new(Cbam::new(channels, reduction, kernel_size, vb)?),
        })
    }
}

/// Global average pool: `[N, C, H, W] -> [N, C, 1, 1]`.
pub(crate) fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.mean_keepdim(3)?.mean_keepdim(2)
}

/// Global max pool: `[N, C, H, W] -> [N, C, 1, 1]`, with [`max_keepdim_split`]'s gradient.
pub(crate) fn global_max_pool(x: &Tensor) -> Result<Tensor> {
    let (n, c, _, _) = x.dims4()?;
    max_keepdim_split(&x.flatten_from(2)?, 2)?.reshape((n, c, 1, 1))
}

/// Maximum over `dim` (kept) whose gradient is split evenly among tied maxima, like torch's
/// `amax`. candle's `max_keepdim` gives the full gradient to *every* tied element, which
/// over-counts: ReLU zeros make exact ties common inside residual units (measured: up to
/// 50% gradient error in a bottleneck with CBAM). The forward value is exactly the maximum.
pub fn max_keepdim_split(x: &Tensor, dim: usize) -> Result<Tensor> {
    // One parallel pass each way on the CPU (arfpn-nn's fused op), candle ops elsewhere.
    arfpn_nn::amax_keepdim(x, dim)
}
