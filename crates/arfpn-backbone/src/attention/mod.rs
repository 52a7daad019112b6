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
//! among them and is itself a factory. A researcher's own module implements [`Attention`]
//! (or [`Reweighting`]) and [`AttentionFactory`] in their crate, and is registered by name
//! ([`register_attention`](crate::register_attention)) so that `AttentionKind::Custom { name, params }` builds it in a
//! whole detector, in its checkpoints and in the commands; see
//! `examples/custom_attention.rs`. [`ResNetConfig::attention_stages`](crate::ResNetConfig)
//! puts attention in selected stages only.

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

/// A shape-preserving module applied inside a residual unit: `forward` is all a module
/// must write. A module that is one reweighting `y = x * w(x)` implements [`Reweighting`]
/// instead and gets this trait from it.
///
/// The other methods are optional: [`forward_with_maps`](Attention::forward_with_maps) to
/// show maps in [`ResNet::forward_traced`](crate::ResNet::forward_traced) and the
/// `feature_maps` command, [`frozen_parameters`](Attention::frozen_parameters) for
/// parameters the optimiser must leave alone, and two speed hooks that only the built-in
/// modules need ([`is_identity`](Attention::is_identity),
/// [`forward_add_relu`](Attention::forward_add_relu)).
///
/// ```
/// use arfpn_backbone::Attention;
/// use candle_core::{Device, Result, Tensor};
///
/// /// Doubles every feature.
/// struct Double;
/// impl Attention for Double {
///     fn forward(&self, x: &Tensor) -> Result<Tensor> {
///         x * 2.0
///     }
/// }
///
/// let x = Tensor::ones((1, 2, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
/// assert_eq!(Double.forward(&x)?.sum_all()?.to_scalar::<f32>()?, 36.0);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// A type that implements neither this trait's `forward` nor [`Reweighting`] is not an
/// attention module, and the compiler says so:
///
/// ```compile_fail
/// struct Nothing;
/// impl arfpn_backbone::Attention for Nothing {}
/// ```
pub trait Attention: Send + Sync {
    /// Reweights `x` (`[N, C, H, W]`); the output has the shape of `x`.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// Like [`forward`](Attention::forward), also returning the attention weights it applied
    /// (for figures). The default returns `forward(x)` and no maps.
    fn forward_with_maps(&self, x: &Tensor) -> Result<(Tensor, Vec<AttentionMap>)> {
        Ok((self.forward(x)?, Vec::new()))
    }

    /// Full names of this module's parameters that must not be trained (e.g. statistics or
    /// a fixed prior), as its [`VarBuilder`] named them (`vb.prefix()` + `.` + name). A
    /// detector's `trainable_vars` leave them out. The default: none.
    fn frozen_parameters(&self) -> Vec<String> {
        Vec::new()
    }

    /// Optional speed hook: true when [`forward`](Attention::forward) returns its input
    /// unchanged (and records no maps), as [`NoAttention`] does. A unit then folds its last
    /// norm into the residual addition (one fused op for frozen batch norms). Default `false`.
    fn is_identity(&self) -> bool {
        false
    }

    /// Optional speed hook: the end of a residual unit, `max(forward(x) + shortcut, 0)`
    /// (`shortcut` has the shape of `x`). The default composes
    /// [`forward`](Attention::forward) and [`arfpn_kernels::add_relu`]; the built-in modules
    /// override it with one fused op, so that their output is not kept for the backward.
    fn forward_add_relu(&self, x: &Tensor, shortcut: &Tensor) -> Result<Tensor> {
        arfpn_kernels::add_relu(&self.forward(x)?, shortcut)
    }
}

/// An attention module that is one reweighting `y = x * w(x)` (squeeze-and-excitation,
/// spatial attention, most gates): it writes [`weights`](Reweighting::weights) and names its
/// map, and is an [`Attention`] through a blanket implementation (`forward` is
/// `x * weights(x)`, `forward_with_maps` adds the weights under
/// [`map_name`](Reweighting::map_name)).
///
/// ```
/// use arfpn_backbone::{Attention, Reweighting};
/// use candle_core::{Device, Result, Tensor};
///
/// /// Halves every feature: a constant gate.
/// struct Half;
/// impl Reweighting for Half {
///     fn weights(&self, x: &Tensor) -> Result<Tensor> {
///         Tensor::new(0.5f32, x.device())?.reshape((1, 1, 1, 1))
///     }
///     fn map_name(&self) -> &str {
///         "half"
///     }
/// }
///
/// let x = Tensor::ones((1, 2, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let (y, maps) = Half.forward_with_maps(&x)?;
/// assert_eq!(y.sum_all()?.to_scalar::<f32>()?, 9.0);
/// assert_eq!(maps[0].name, "half");
/// # Ok::<(), candle_core::Error>(())
/// ```
pub trait Reweighting: Send + Sync {
    /// The weights `w(x)`; they broadcast against `x` (`[N, C, 1, 1]` per channel,
    /// `[N, 1, H, W]` per position).
    fn weights(&self, x: &Tensor) -> Result<Tensor>;

    /// The name of the map in [`Attention::forward_with_maps`] (e.g. `"channel"`).
    fn map_name(&self) -> &str;

    /// See [`Attention::frozen_parameters`]. The default: none.
    fn frozen_parameters(&self) -> Vec<String> {
        Vec::new()
    }

    /// Optional speed hook, see [`Attention::forward_add_relu`]; the default composes
    /// `x * weights(x)` and [`arfpn_kernels::add_relu`].
    fn gate_add_relu(&self, x: &Tensor, shortcut: &Tensor) -> Result<Tensor> {
        arfpn_kernels::add_relu(&arfpn_kernels::gate(x, &self.weights(x)?)?, shortcut)
    }
}

impl<T: Reweighting> Attention for T {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        arfpn_kernels::gate(x, &self.weights(x)?)
    }

    fn forward_with_maps(&self, x: &Tensor) -> Result<(Tensor, Vec<AttentionMap>)> {
        let w = self.weights(x)?;
        let y = arfpn_kernels::gate(x, &w)?;
        let map = AttentionMap {
            name: self.map_name().to_string(),
            tensor: w,
        };
        Ok((y, vec![map]))
    }

    fn frozen_parameters(&self) -> Vec<String> {
        Reweighting::frozen_parameters(self)
    }

    fn forward_add_relu(&self, x: &Tensor, shortcut: &Tensor) -> Result<Tensor> {
        self.gate_add_relu(x, shortcut)
    }
}

/// Where an attention module is built: the residual unit `layer{stage}.{unit}` and the
/// channel count at the insertion point (after the unit's last convolution and norm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionSite {
    /// The stage, 1–4 (`layer1` … `layer4`; outputs C2–C5).
    pub stage: usize,
    /// The unit within the stage, from 0.
    pub unit: usize,
    /// Channels of the features the module reweights.
    pub channels: usize,
}

/// Builds one attention module per residual unit. `vb` is already scoped to the unit's
/// `attention` prefix (`layer{stage}.{unit}.attention`).
pub trait AttentionFactory: Send + Sync {
    /// The module for the unit at `site`, its parameters created through `vb`.
    fn build(&self, site: &AttentionSite, vb: VarBuilder) -> Result<Box<dyn Attention>>;
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
    Channel {
        /// Ratio of the channel count to the MLP's hidden width (≥ 1; 16 in SENet and the
        /// paper).
        reduction: usize,
    },
    /// Spatial attention (S-ARFPN) with a `kernel_size`×`kernel_size` convolution (odd).
    Spatial {
        /// Side of the square convolution over the `[mean; max]` channel descriptor (odd,
        /// so that padding `kernel_size / 2` keeps H and W; 7 in CBAM).
        kernel_size: usize,
    },
    /// Channel then spatial attention, CBAM (CS-ARFPN).
    Cbam {
        /// The channel gate's reduction ratio, as in [`AttentionKind::Channel`].
        reduction: usize,
        /// The spatial gate's kernel side, as in [`AttentionKind::Spatial`].
        kernel_size: usize,
    },
    /// A module registered by name with [`register_attention`](crate::register_attention), built from `params` (any
    /// JSON; `null` when absent). A checkpoint records both, so it loads wherever the same
    /// name is registered.
    Custom {
        /// The name the module's factory was registered under.
        name: String,
        /// The module's own hyper-parameters, passed to its registered constructor
        /// unchanged.
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        params: serde_json::Value,
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

    /// A module registered with [`register_attention`](crate::register_attention) under `name`, with its parameters.
    pub fn custom(name: impl Into<String>, params: serde_json::Value) -> Self {
        Self::Custom {
            name: name.into(),
            params,
        }
    }

    /// Checks the hyper-parameters; the error names the field at fault. A custom module
    /// must be registered ([`register_attention`](crate::register_attention)).
    pub fn validate(&self) -> std::result::Result<(), crate::BackboneError> {
        let (reduction, kernel) = match *self {
            Self::Custom { ref name, .. } => {
                crate::registry::attention(name)?;
                (None, None)
            }
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
    fn build(&self, site: &AttentionSite, vb: VarBuilder) -> Result<Box<dyn Attention>> {
        self.validate().map_err(candle_core::Error::wrap)?;
        let channels = site.channels;
        Ok(match *self {
            Self::Custom {
                ref name,
                ref params,
            } => {
                let factory = crate::registry::attention(name).map_err(candle_core::Error::wrap)?;
                factory(params)?.build(site, vb)?
            }
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
    // One parallel pass each way on the CPU (arfpn-kernels' fused op), candle ops elsewhere.
    arfpn_kernels::amax_keepdim(x, dim)
}
