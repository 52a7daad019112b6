//! TEMPORARY private shim with the agreed `arfpn_nn` layer API (phase 1), written on top of
//! candle_nn until branch `nn` lands. Delete this file and replace it by
//! `pub(crate) use arfpn_nn::{...}` once `arfpn_nn` exports the layers.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Init, VarBuilder};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

pub fn conv2d_op(x: &Tensor, w: &Tensor, b: Option<&Tensor>, cfg: Conv2dConfig) -> Result<Tensor> {
    let y = x.conv2d(w, cfg.padding, cfg.stride, cfg.dilation, cfg.groups)?;
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    cfg: Conv2dConfig,
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv2d_op(x, &self.weight, self.bias.as_ref(), self.cfg)
    }
}

pub fn conv2d(
    in_c: usize,
    out_c: usize,
    k: usize,
    cfg: Conv2dConfig,
    bias: bool,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let fan_in = (in_c / cfg.groups * k * k) as f64;
    let weight = vb.get_with_hints(
        (out_c, in_c / cfg.groups, k, k),
        "weight",
        Init::Randn {
            mean: 0.,
            stdev: (2.0 / fan_in).sqrt(),
        },
    )?;
    let bias = if bias {
        Some(vb.get_with_hints(out_c, "bias", Init::Const(0.))?)
    } else {
        None
    };
    Ok(Conv2d { weight, bias, cfg })
}

pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let x = if padding > 0 {
        let (n, c, h, w) = x.dims4()?;
        let neg = |shape: (usize, usize, usize, usize)| -> Result<Tensor> {
            Tensor::full(f32::NEG_INFINITY, shape, x.device())?.to_dtype(x.dtype())
        };
        let x = Tensor::cat(
            &[
                neg((n, c, h, padding))?,
                x.clone(),
                neg((n, c, h, padding))?,
            ],
            3,
        )?;
        let w2 = w + 2 * padding;
        Tensor::cat(
            &[neg((n, c, padding, w2))?, x, neg((n, c, padding, w2))?],
            2,
        )?
    } else {
        x.clone()
    };
    let (_, _, h, w) = x.dims4()?;
    let (oh, ow) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
    let mut out: Option<Tensor> = None;
    for di in 0..kernel {
        let rows: Vec<u32> = (0..oh).map(|i| (di + i * stride) as u32).collect();
        let xr = x.index_select(&Tensor::new(rows.as_slice(), x.device())?, 2)?;
        for dj in 0..kernel {
            let cols: Vec<u32> = (0..ow).map(|j| (dj + j * stride) as u32).collect();
            let v = xr.index_select(&Tensor::new(cols.as_slice(), x.device())?, 3)?;
            out = Some(match out {
                Some(o) => o.maximum(&v)?,
                None => v,
            });
        }
    }
    out.ok_or_else(|| candle_core::Error::Msg("max_pool2d: kernel 0".into()))
}

#[derive(Clone, Debug)]
pub struct GroupNorm(candle_nn::GroupNorm);

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward(x)
    }
}

pub fn group_norm(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<GroupNorm> {
    Ok(GroupNorm(candle_nn::group_norm(groups, channels, eps, vb)?))
}

#[derive(Clone, Debug)]
pub struct FrozenBatchNorm2d {
    scale: Tensor,
    shift: Tensor,
}

impl Module for FrozenBatchNorm2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
    }
}

pub fn frozen_batch_norm2d(channels: usize, eps: f64, vb: VarBuilder) -> Result<FrozenBatchNorm2d> {
    let w = vb.get_with_hints(channels, "weight", Init::Const(1.))?;
    let b = vb.get_with_hints(channels, "bias", Init::Const(0.))?;
    let rm = vb.get_with_hints(channels, "running_mean", Init::Const(0.))?;
    let rv = vb.get_with_hints(channels, "running_var", Init::Const(1.))?;
    let scale = (w / (rv + eps)?.sqrt()?)?.detach();
    let shift = (b - (rm * &scale)?)?.detach();
    Ok(FrozenBatchNorm2d {
        scale: scale.reshape((1, channels, 1, 1))?,
        shift: shift.reshape((1, channels, 1, 1))?,
    })
}

#[derive(Clone, Debug)]
pub struct BatchNorm2d(candle_nn::BatchNorm);

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.0.forward_t(x, train)
    }
}

pub fn batch_norm2d(
    channels: usize,
    eps: f64,
    momentum: f64,
    vb: VarBuilder,
) -> Result<BatchNorm2d> {
    let cfg = candle_nn::BatchNormConfig {
        eps,
        remove_mean: true,
        affine: true,
        momentum,
    };
    Ok(BatchNorm2d(candle_nn::batch_norm(channels, cfg, vb)?))
}
