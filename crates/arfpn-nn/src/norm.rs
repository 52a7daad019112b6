//! Normalisation layers with torchvision's parameter names: GroupNorm, frozen BatchNorm (fixed
//! affine) and trainable BatchNorm.
//!
//! GroupNorm runs as a fused custom op with its own backward on the CPU (`group_norm_cpu.rs`)
//! and as candle tensor ops elsewhere; the BatchNorms are compositions of candle ops. Every
//! gradient is checked by finite differences in the tests — unlike `candle_nn::LayerNorm`/
//! `RmsNorm`, whose fused contiguous path silently has no backward.

use crate::error::{config_err, shape_err};
use arfpn_kernels::{affine_add_relu, channel_affine, fused_cpu, group_norm_fused, Affine};
use candle_core::{DType, Module, ModuleT, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use std::sync::Arc;

fn check_nchw(
    op: &'static str,
    x: &Tensor,
    channels: usize,
) -> Result<(usize, usize, usize, usize)> {
    match *x.dims() {
        [n, c, h, w] if c == channels => Ok((n, c, h, w)),
        _ => Err(shape_err(
            op,
            "x",
            x.dims(),
            format!("[N, {channels}, H, W]"),
        )),
    }
}

fn check_eps(op: &'static str, eps: f64) -> Result<()> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(())
    } else {
        Err(config_err(
            op,
            "eps",
            format!("{eps} must be finite and >= 0"),
        ))
    }
}

/// Group normalisation (Wu & He 2018), as `torch.nn.GroupNorm(num_groups, channels, eps)`:
/// statistics per sample and group of `channels / num_groups` channels (biased variance),
/// then a per-channel affine `weight`, `bias`.
#[derive(Clone, Debug)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    num_groups: usize,
    channels: usize,
    eps: f64,
}

/// A [`GroupNorm`] whose `weight` (init 1) and `bias` (init 0) come from `vb`.
/// `num_groups` must divide `channels`. PyTorch's default `eps` is `1e-5`.
pub fn group_norm(
    num_groups: usize,
    channels: usize,
    eps: f64,
    vb: VarBuilder,
) -> Result<GroupNorm> {
    const OP: &str = "group_norm";
    if num_groups == 0 || !channels.is_multiple_of(num_groups) {
        return Err(config_err(
            OP,
            "num_groups",
            format!("{num_groups} must divide channels {channels}"),
        ));
    }
    check_eps(OP, eps)?;
    Ok(GroupNorm {
        weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
        bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
        num_groups,
        channels,
        eps,
    })
}

impl Module for GroupNorm {
    /// On the CPU, for f32/f64 with parameters of the input's dtype, a fused custom op
    /// (`group_norm_cpu.rs`); elsewhere the composition of candle ops
    /// ([`GroupNorm::forward_composed`]). Both compute the same values and gradients.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_fused(x, false)
    }
}

impl GroupNorm {
    /// `relu(self.forward(x))` as one fused op on the CPU (one pass less each way and no
    /// intermediate map kept for the backward); [`arfpn_kernels::relu`] of the composed form
    /// elsewhere. The gradient at exactly 0 is 0, as PyTorch's.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_fused(x, true)
    }

    fn forward_fused(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        check_nchw("group_norm", x, self.channels)?;
        let dt = x.dtype();
        if x.device().is_cpu()
            && matches!(dt, DType::F32 | DType::F64)
            && self.weight.dtype() == dt
            && self.bias.dtype() == dt
        {
            return group_norm_fused(x, &self.weight, &self.bias, self.num_groups, self.eps, relu);
        }
        let y = self.forward_composed(x)?;
        if relu {
            arfpn_kernels::relu(&y)
        } else {
            Ok(y)
        }
    }
}

impl GroupNorm {
    /// GroupNorm written with candle tensor ops (the reference for the fused CPU op, and the
    /// path on other devices).
    pub fn forward_composed(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = check_nchw("group_norm", x, self.channels)?;
        let xg = x.reshape((n, self.num_groups, (c / self.num_groups) * h * w))?;
        let mean = xg.mean_keepdim(D::Minus1)?;
        let xc = xg.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .reshape((n, c, h, w))?;
        xn.broadcast_mul(&self.weight.reshape((1, c, 1, 1))?)?
            .broadcast_add(&self.bias.reshape((1, c, 1, 1))?)
    }
}

/// BatchNorm with fixed statistics and affine parameters, as torchvision's
/// `ops.FrozenBatchNorm2d`: `y = (x − running_mean) / sqrt(running_var + eps) · weight + bias`.
/// The four tensors are detached views of the variables, so they never receive a gradient
/// (an optimizer skips them); the input does. Because they share the variables' storage,
/// weights loaded into the `VarMap` *after* the layer was built (e.g. torchvision's
/// ImageNet statistics through `VarMap::load`) take effect: the affine is recomputed from
/// them on every forward (four `[C]`-sized ops).
#[derive(Clone, Debug)]
pub struct FrozenBatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    eps: f64,
    channels: usize,
}

/// A [`FrozenBatchNorm2d`] reading `weight` (init 1), `bias` (0), `running_mean` (0) and
/// `running_var` (1) from `vb`. torchvision's default `eps` is `1e-5`.
pub fn frozen_batch_norm2d(channels: usize, eps: f64, vb: VarBuilder) -> Result<FrozenBatchNorm2d> {
    check_eps("frozen_batch_norm2d", eps)?;
    let get = |name: &str, init: f64| -> Result<Tensor> {
        Ok(vb
            .get_with_hints(channels, name, Init::Const(init))?
            .detach())
    };
    Ok(FrozenBatchNorm2d {
        weight: get("weight", 1.0)?,
        bias: get("bias", 0.0)?,
        running_mean: get("running_mean", 0.0)?,
        running_var: get("running_var", 1.0)?,
        eps,
        channels,
    })
}

impl FrozenBatchNorm2d {
    /// The per-channel `(scale, shift)` of `y = x · scale + shift`, each `[1, C, 1, 1]`.
    pub fn affine(&self) -> Result<(Tensor, Tensor)> {
        let scale = (&self.weight * (&self.running_var + self.eps)?.sqrt()?.recip()?)?;
        let shift = (&self.bias - (&self.running_mean * &scale)?)?;
        let dims = (1, self.channels, 1, 1);
        Ok((scale.reshape(dims)?, shift.reshape(dims)?))
    }
}

impl Module for FrozenBatchNorm2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_fused(x, false)
    }
}

impl FrozenBatchNorm2d {
    /// `relu(self.forward(x))` as one fused op on the CPU (one pass less each way and no
    /// intermediate map kept for the backward), with the same values and gradients as the
    /// two ops (the gradient at exactly 0 is 0, as PyTorch's); [`arfpn_kernels::relu`] of the
    /// composed form elsewhere.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_fused(x, true)
    }

    fn forward_fused(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        check_nchw("frozen_batch_norm2d", x, self.channels)?;
        if fused_cpu(x, &[]) {
            // One parallel pass (`arfpn_kernels::channel_affine`); the values are the composed form's, as the
            // affine is computed by the same tensor ops and applied in the element type.
            let (scale, shift) = self.host_affine(x.dtype())?;
            return channel_affine(x, scale, Some(shift), relu);
        }
        let (scale, shift) = self.affine()?;
        let y = x.broadcast_mul(&scale)?.broadcast_add(&shift)?;
        if relu {
            arfpn_kernels::relu(&y)
        } else {
            Ok(y)
        }
    }
}

impl FrozenBatchNorm2d {
    /// [`affine`](Self::affine) as host values, rounded to `dtype` (the element type the
    /// fused ops compute in) and held as f64.
    fn host_affine(&self, dtype: DType) -> Result<Affine> {
        let (scale, shift) = self.affine()?;
        let host = |t: &Tensor| -> Result<Arc<Vec<f64>>> {
            Ok(Arc::new(
                t.flatten_all()?
                    .to_dtype(dtype)?
                    .to_dtype(DType::F64)?
                    .to_vec1()?,
            ))
        };
        Ok((host(&scale)?, host(&shift)?))
    }

    /// `relu(self.forward(x) + shortcut)` with `shortcut = b_norm(b)` (a projection shortcut
    /// with its own frozen norm) or `b` (identity): the end of a residual unit as one fused op
    /// on the CPU, with the values and gradients of the separate norms and
    /// [`arfpn_kernels::add_relu`]; those ops elsewhere.
    pub fn forward_add_relu(
        &self,
        x: &Tensor,
        b: &Tensor,
        b_norm: Option<&FrozenBatchNorm2d>,
    ) -> Result<Tensor> {
        check_nchw("frozen_batch_norm2d", x, self.channels)?;
        if b.dims() != x.dims() {
            return Err(shape_err(
                "frozen_batch_norm2d",
                "shortcut",
                b.dims(),
                format!("{:?} (the shape of x)", x.dims()),
            ));
        }
        if fused_cpu(x, &[b]) {
            let affine_b = b_norm.map(|n| n.host_affine(x.dtype())).transpose()?;
            return affine_add_relu(x, b, self.host_affine(x.dtype())?, affine_b);
        }
        let shortcut = match b_norm {
            Some(n) => n.forward(b)?,
            None => b.clone(),
        };
        arfpn_kernels::add_relu(&self.forward(x)?, &shortcut)
    }

    /// The composed form of the forward (candle broadcast ops; the path on other devices).
    pub fn forward_composed(&self, x: &Tensor) -> Result<Tensor> {
        check_nchw("frozen_batch_norm2d", x, self.channels)?;
        let (scale, shift) = self.affine()?;
        x.broadcast_mul(&scale)?.broadcast_add(&shift)
    }
}

/// Trainable batch normalisation over `[N, C, H, W]`, as `torch.nn.BatchNorm2d(channels, eps,
/// momentum)`: in training (`forward_t(x, true)`) it normalises with the batch statistics
/// (biased variance) and updates `running_mean`/`running_var` in place as
/// `(1 − momentum)·running + momentum·batch` (unbiased variance for `running_var`); in
/// evaluation it uses the running statistics. `weight`/`bias` are trainable.
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    inner: candle_nn::BatchNorm,
    channels: usize,
}

/// A [`BatchNorm2d`] with `weight` (1), `bias` (0), `running_mean` (0), `running_var` (1)
/// from `vb`. PyTorch's defaults: `eps = 1e-5`, `momentum = 0.1`. The running statistics
/// become variables of a `VarMap` backed `vb` (so `VarMap::save` stores them); they get no
/// gradient, so an optimizer leaves them alone.
pub fn batch_norm2d(
    channels: usize,
    eps: f64,
    momentum: f64,
    vb: VarBuilder,
) -> Result<BatchNorm2d> {
    const OP: &str = "batch_norm2d";
    check_eps(OP, eps)?;
    if !(0.0..=1.0).contains(&momentum) {
        return Err(config_err(
            OP,
            "momentum",
            format!("{momentum} must be in [0, 1]"),
        ));
    }
    let cfg = candle_nn::BatchNormConfig {
        eps,
        remove_mean: true,
        affine: true,
        momentum,
    };
    Ok(BatchNorm2d {
        inner: candle_nn::batch_norm(channels, cfg, vb)?,
        channels,
    })
}

impl BatchNorm2d {
    /// The running per-channel mean, `[C]`, used in evaluation and updated by every training
    /// forward.
    pub fn running_mean(&self) -> &Tensor {
        self.inner.running_mean()
    }
    /// The running per-channel (unbiased) variance, `[C]`, used in evaluation and updated by
    /// every training forward.
    pub fn running_var(&self) -> &Tensor {
        self.inner.running_var()
    }
}

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (n, _, h, w) = check_nchw("batch_norm2d", x, self.channels)?;
        if train && n * h * w < 2 {
            return Err(shape_err(
                "batch_norm2d",
                "x",
                x.dims(),
                "more than one value per channel in training",
            ));
        }
        self.inner.forward_t(x, train)
    }
}
