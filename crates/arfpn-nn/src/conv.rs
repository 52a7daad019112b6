//! The convolution layer: [`Conv2d`] (weight, optional bias and its
//! [`Conv2dConfig`]) and [`conv2d`], its constructor from a `VarBuilder`. The convolution
//! itself, with its CPU forward and backward, is `arfpn_kernels::conv2d_op`.

use arfpn_kernels::{conv2d_op, Conv2dConfig};
use candle_core::{Module, Result, Tensor};

use crate::error::config_err;

const OP: &str = "conv2d";

/// A convolution layer: weight `[O, C/groups, k, k]`, optional bias `[O]`, and its
/// [`Conv2dConfig`]. Its forward is [`conv2d_op`].
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: Conv2dConfig,
}

impl Conv2d {
    /// A layer from existing tensors (e.g. loaded weights, or a custom initialisation).
    pub fn new(weight: Tensor, bias: Option<Tensor>, config: Conv2dConfig) -> Self {
        Self {
            weight,
            bias,
            config,
        }
    }
    /// The kernel, `[O, C/groups, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    /// The bias, `[O]`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
    /// Stride, padding, dilation and groups.
    pub fn config(&self) -> Conv2dConfig {
        self.config
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d_op(x, &self.weight, self.bias.as_ref(), self.config)
    }
}

/// A square-kernel convolution layer with parameters `weight: [O, I/groups, k, k]` and (if
/// `bias`) `bias: [O]` taken from `vb`. New weights are drawn as `init` (see
/// [`inits`](crate::inits): ResNet's `KAIMING_FAN_OUT`, the FPN's `KAIMING_UNIFORM_A1`, the
/// RPN head's `normal(0.01)`); a new bias is zero.
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// let vm = candle_nn::VarMap::new();
/// let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
/// let cfg = arfpn_kernels::Conv2dConfig { padding: 1, ..Default::default() };
/// let conv = arfpn_nn::conv2d(3, 8, 3, cfg, false, arfpn_nn::inits::KAIMING_FAN_OUT, vb.pp("conv1"))?;
/// let y = conv.forward(&Tensor::zeros((1, 3, 16, 16), DType::F32, &Device::Cpu)?)?;
/// assert_eq!(y.dims(), &[1, 8, 16, 16]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    bias: bool,
    init: candle_nn::Init,
    vb: candle_nn::VarBuilder,
) -> Result<Conv2d> {
    if cfg.groups == 0
        || !in_channels.is_multiple_of(cfg.groups)
        || !out_channels.is_multiple_of(cfg.groups)
    {
        return Err(config_err(
            OP,
            "groups",
            format!(
                "{} must divide in_channels {in_channels} and out_channels {out_channels}",
                cfg.groups
            ),
        ));
    }
    if kernel == 0 || out_channels == 0 {
        return Err(config_err(
            OP,
            "kernel",
            "kernel and out_channels must be >= 1",
        ));
    }
    let weight = vb.get_with_hints(
        (out_channels, in_channels / cfg.groups, kernel, kernel),
        "weight",
        init,
    )?;
    let bias = if bias {
        Some(vb.get_with_hints(out_channels, "bias", candle_nn::Init::Const(0.0))?)
    } else {
        None
    };
    Ok(Conv2d::new(weight, bias, cfg))
}
