//! TEMPORARY private shim with the agreed `arfpn_nn` layer API (phase 1) until branch `nn`
//! lands; then replace by `pub(crate) use arfpn_nn::{...}`.

use candle_core::{Module, Result, Tensor};
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

#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    cfg: Conv2dConfig,
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.cfg;
        let y = x.conv2d(&self.weight, c.padding, c.stride, c.dilation, c.groups)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
            None => Ok(y),
        }
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

pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    x.reshape((n, c, h, 1, w, 1))?
        .broadcast_as((n, c, h, 2, w, 2))?
        .contiguous()?
        .reshape((n, c, 2 * h, 2 * w))
}
