//! CBAM (Woo et al. 2018), the paper's channel + spatial attention, as one fused CPU op with
//! its own backward; [`cbam_composed`] is the same function in candle ops (other devices, the
//! attention maps, the tests' reference).
//!
//! ```text
//! cw = σ(mlp(avgpool(x)) + mlp(maxpool(x)))          [N, C, 1, 1]   channel gate
//! xc = x · cw
//! sw = σ(conv_k×k([mean_c(xc); max_c(xc)]))           [N, 1, H, W]   spatial gate
//! y  = xc · sw
//! ```
//!
//! Composed, every residual unit of a CS-ARFPN keeps `xc` alive for the backward and the
//! backward makes about a dozen full-size temporaries (the broadcast gradients of the two
//! poolings and of the channel mean, the max's gradient, the gate gradients and their sums).
//! The fused op keeps only its output and a few `[N, C]` / `[N, H, W]` vectors, and its
//! backward reads `x` and `dy` three times and writes `dx` once. Without a channel gate
//! (`channel: None`) it is the spatial attention alone (the paper's S-ARFPN).
//!
//! The maxima (over positions for the channel gate, over channels for the spatial one) give
//! their gradient to every tied element in equal shares, as PyTorch's `amax` and
//! [`amax_keepdim`](crate::amax_keepdim) do. The op's small products (the MLP, the k×k
//! convolution) are computed in f64 or the element type whatever
//! [`with_matmul_precision`](crate::with_matmul_precision) says; the composed form follows it.

use crate::dispatch_float;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::element::Element;
use crate::error::{config_err, shape_err};
use crate::relu::{relu_grad, relu_of};
use crate::storage::{contiguous_slice, fused_cpu, par_build};
use crate::{amax_keepdim, channel_mean, conv2d_op, gate, Conv2dConfig};

/// The channel gate's shared MLP, as 1×1 convolutions (torchvision `SqueezeExcitation`'s
/// shapes): `fc1_weight [h, C, 1, 1]`, `fc1_bias [h]`, `fc2_weight [C, h, 1, 1]`,
/// `fc2_bias [C]`.
#[derive(Clone, Copy, Debug)]
pub struct ChannelGateWeights<'a> {
    /// Squeeze (C → h hidden units) weight, `[h, C, 1, 1]`; a ReLU follows this layer.
    pub fc1_weight: &'a Tensor,
    /// Squeeze bias, `[h]`.
    pub fc1_bias: &'a Tensor,
    /// Excitation (h → C) weight, `[C, h, 1, 1]`; its output goes into the sigmoid.
    pub fc2_weight: &'a Tensor,
    /// Excitation bias, `[C]`.
    pub fc2_bias: &'a Tensor,
}

/// The spatial gate's convolution: `conv_weight [1, 2, k, k]` (input channels: the mean over
/// channels, then the maximum), `conv_bias [1]`, `k` odd, padding `k / 2`.
#[derive(Clone, Copy, Debug)]
pub struct SpatialGateWeights<'a> {
    /// `[1, 2, k, k]`: input channel 0 sees the channel mean, channel 1 the channel maximum.
    pub conv_weight: &'a Tensor,
    /// `[1]`.
    pub conv_bias: &'a Tensor,
}

/// What [`cbam_composed`] computed: the output and the two gates it applied.
#[derive(Clone, Debug)]
pub struct CbamOutput {
    /// `x · cw · sw`, the shape of `x`.
    pub y: Tensor,
    /// `cw`, `[N, C, 1, 1]` (None without a channel gate).
    pub channel_weights: Option<Tensor>,
    /// `sw`, `[N, 1, H, W]`.
    pub spatial_weights: Tensor,
}

const OP: &str = "cbam";

/// Sizes of one call, checked against the parameters.
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    /// Hidden width of the MLP; 0 without a channel gate.
    hidden: usize,
    k: usize,
}

impl Dims {
    fn hw(&self) -> usize {
        self.h * self.w
    }

    /// Offsets of the packed parameter vector: fc1 weight, fc1 bias, fc2 weight, fc2 bias,
    /// conv weight, conv bias (the MLP's four are empty without a channel gate).
    fn offsets(&self) -> [usize; 7] {
        let (c, h, k) = (self.c, self.hidden, self.k);
        let sizes = [h * c, h, c * h, if h > 0 { c } else { 0 }, 2 * k * k, 1];
        let mut o = [0; 7];
        for i in 0..6 {
            o[i + 1] = o[i] + sizes[i];
        }
        o
    }
}

fn check(
    x: &Tensor,
    channel: Option<&ChannelGateWeights>,
    spatial: &SpatialGateWeights,
) -> Result<Dims> {
    let (n, c, h, w) = match *x.dims() {
        [n, c, h, w] if c > 0 => (n, c, h, w),
        _ => return Err(shape_err(OP, "x", x.dims(), "[N, C, H, W] with C >= 1")),
    };
    let k = match *spatial.conv_weight.dims() {
        [1, 2, k, k2] if k == k2 && k % 2 == 1 => k,
        _ => {
            return Err(shape_err(
                OP,
                "conv_weight",
                spatial.conv_weight.dims(),
                "[1, 2, k, k] with k odd",
            ))
        }
    };
    if spatial.conv_bias.dims() != [1] {
        return Err(shape_err(OP, "conv_bias", spatial.conv_bias.dims(), "[1]"));
    }
    let hidden = match channel {
        None => 0,
        Some(m) => {
            let hidden = match *m.fc1_weight.dims() {
                [hd, cc, 1, 1] if cc == c && hd > 0 => hd,
                _ => {
                    return Err(shape_err(
                        OP,
                        "fc1_weight",
                        m.fc1_weight.dims(),
                        format!("[h, {c}, 1, 1]"),
                    ))
                }
            };
            let want = [
                ("fc1_bias", m.fc1_bias, vec![hidden]),
                ("fc2_weight", m.fc2_weight, vec![c, hidden, 1, 1]),
                ("fc2_bias", m.fc2_bias, vec![c]),
            ];
            for (name, t, dims) in want {
                if t.dims() != dims.as_slice() {
                    return Err(shape_err(OP, name, t.dims(), format!("{dims:?}")));
                }
            }
            hidden
        }
    };
    Ok(Dims {
        n,
        c,
        h,
        w,
        hidden,
        k,
    })
}

/// CBAM applied to `x` `[N, C, H, W]`: the fused CPU op for f32/f64 tensors on the CPU,
/// [`cbam_composed`] otherwise. Without `channel` it is the spatial attention alone.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use arfpn_kernels::{cbam, ChannelGateWeights, SpatialGateWeights};
/// let dev = Device::Cpu;
/// let x = Tensor::ones((1, 4, 5, 5), DType::F32, &dev)?;
/// let z = |s: &[usize]| Tensor::zeros(s, DType::F32, &dev);
/// let (w1, b1, w2, b2) = (z(&[2, 4, 1, 1])?, z(&[2])?, z(&[4, 2, 1, 1])?, z(&[4])?);
/// let (cw, cb) = (z(&[1, 2, 7, 7])?, z(&[1])?);
/// let channel = ChannelGateWeights { fc1_weight: &w1, fc1_bias: &b1, fc2_weight: &w2, fc2_bias: &b2 };
/// let spatial = SpatialGateWeights { conv_weight: &cw, conv_bias: &cb };
/// // Zero weights: both gates are σ(0) = 0.5.
/// let y = cbam(&x, Some(&channel), &spatial)?;
/// assert_eq!(y.sum_all()?.to_scalar::<f32>()?, 100.0 * 0.25);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn cbam(
    x: &Tensor,
    channel: Option<&ChannelGateWeights>,
    spatial: &SpatialGateWeights,
) -> Result<Tensor> {
    match fused(x, None, channel, spatial)? {
        Some((y, _)) => Ok(y),
        None => Ok(cbam_composed(x, channel, spatial)?.y),
    }
}

/// `max(cbam(x) + shortcut, 0)`, the end of a residual unit with CBAM, as one op on the CPU
/// (the attention's output is not kept: the backward works from the unit's output); elsewhere
/// [`cbam`] followed by [`add_relu`](crate::add_relu). `shortcut` has the shape of `x`.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use arfpn_kernels::{cbam_add_relu, SpatialGateWeights};
/// let dev = Device::Cpu;
/// let x = Tensor::ones((1, 2, 3, 3), DType::F32, &dev)?;
/// let shortcut = (Tensor::ones((1, 2, 3, 3), DType::F32, &dev)? * -0.75)?;
/// let (w, b) = (Tensor::zeros((1, 2, 3, 3), DType::F32, &dev)?, Tensor::zeros(1, DType::F32, &dev)?);
/// let spatial = SpatialGateWeights { conv_weight: &w, conv_bias: &b };
/// // Spatial gate σ(0) = 0.5: max(0.5 − 0.75, 0) = 0 everywhere.
/// let y = cbam_add_relu(&x, &shortcut, None, &spatial)?;
/// assert_eq!(y.sum_all()?.to_scalar::<f32>()?, 0.0);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn cbam_add_relu(
    x: &Tensor,
    shortcut: &Tensor,
    channel: Option<&ChannelGateWeights>,
    spatial: &SpatialGateWeights,
) -> Result<Tensor> {
    if shortcut.dims() != x.dims() {
        return Err(shape_err(
            OP,
            "shortcut",
            shortcut.dims(),
            format!("{:?} (the shape of x)", x.dims()),
        ));
    }
    if let Some((y, _)) = fused(x, Some(shortcut), channel, spatial)? {
        return Ok(y);
    }
    crate::add_relu(&cbam(x, channel, spatial)?, shortcut)
}

/// [`cbam`] that also returns the two gates it applied (on the CPU the fused op's own values,
/// copied out; elsewhere [`cbam_composed`]).
pub fn cbam_with_maps(
    x: &Tensor,
    channel: Option<&ChannelGateWeights>,
    spatial: &SpatialGateWeights,
) -> Result<CbamOutput> {
    let Some((y, saved)) = fused(x, None, channel, spatial)? else {
        return cbam_composed(x, channel, spatial);
    };
    let Some(s) = saved.get() else {
        return Err(config_err(OP, "x", "the forward kept no gates"));
    };
    let (dev, dt) = (x.device(), x.dtype());
    let &[n, c, h, w] = x.dims() else {
        return Err(shape_err(OP, "x", x.dims(), "[N, C, H, W]"));
    };
    let cw = Tensor::new(s.cw.as_slice(), dev)?
        .to_dtype(dt)?
        .reshape((n, c, 1, 1))?;
    let sw = Tensor::new(s.sw.as_slice(), dev)?
        .to_dtype(dt)?
        .reshape((n, 1, h, w))?;
    Ok(CbamOutput {
        y,
        channel_weights: channel.is_some().then_some(cw),
        spatial_weights: sw,
    })
}

/// The fused op's output (with `shortcut`: `max(y + shortcut, 0)`) and what its forward kept,
/// or None where it does not apply (another device or dtype).
fn fused(
    x: &Tensor,
    shortcut: Option<&Tensor>,
    channel: Option<&ChannelGateWeights>,
    spatial: &SpatialGateWeights,
) -> Result<Option<(Tensor, Arc<OnceLock<Saved>>)>> {
    let dims = check(x, channel, spatial)?;
    let mut params: Vec<&Tensor> = Vec::with_capacity(6);
    if let Some(m) = channel {
        params.extend([m.fc1_weight, m.fc1_bias, m.fc2_weight, m.fc2_bias]);
    }
    params.extend([spatial.conv_weight, spatial.conv_bias]);
    let with_shortcut: Vec<&Tensor> = params.iter().copied().chain(shortcut).collect();
    // Empty batches and maps go to the composed form too (the fused kernels assume H·W ≥ 1).
    if !fused_cpu(x, &with_shortcut) || dims.n == 0 || dims.hw() == 0 {
        return Ok(None);
    }
    let flat = params
        .iter()
        .map(|p| p.flatten_all())
        .collect::<Result<Vec<_>>>()?;
    let packed = Tensor::cat(&flat, 0)?;
    let saved = Arc::new(OnceLock::new());
    let op = Cbam {
        dims,
        saved: saved.clone(),
    };
    let x = x.contiguous()?;
    let y = match shortcut {
        None => x.apply_op2(&packed, op)?,
        Some(s) => x.apply_op3(&packed, &s.contiguous()?, op)?,
    };
    Ok(Some((y, saved)))
}

/// CBAM in candle ops and this crate's fused pieces ([`gate`], [`channel_mean`],
/// [`amax_keepdim`], [`conv2d_op`]), returning the gates too.
pub fn cbam_composed(
    x: &Tensor,
    channel: Option<&ChannelGateWeights>,
    spatial: &SpatialGateWeights,
) -> Result<CbamOutput> {
    let d = check(x, channel, spatial)?;
    let (xc, cw) = match channel {
        None => (x.clone(), None),
        Some(m) => {
            let one = Conv2dConfig::default();
            let mlp = |v: &Tensor| -> Result<Tensor> {
                let hid = conv2d_op(v, m.fc1_weight, Some(m.fc1_bias), one)?.relu()?;
                conv2d_op(&hid, m.fc2_weight, Some(m.fc2_bias), one)
            };
            let avg = x.mean_keepdim(3)?.mean_keepdim(2)?;
            let mx = amax_keepdim(&x.flatten_from(2)?, 2)?.reshape((d.n, d.c, 1, 1))?;
            let cw = candle_nn::ops::sigmoid(&(mlp(&avg)? + mlp(&mx)?)?)?;
            (gate(x, &cw)?, Some(cw))
        }
    };
    let desc = Tensor::cat(&[channel_mean(&xc)?, amax_keepdim(&xc, 1)?], 1)?;
    let cfg = Conv2dConfig {
        padding: d.k / 2,
        ..Default::default()
    };
    let sw = candle_nn::ops::sigmoid(&conv2d_op(
        &desc,
        spatial.conv_weight,
        Some(spatial.conv_bias),
        cfg,
    )?)?;
    Ok(CbamOutput {
        y: gate(&xc, &sw)?,
        channel_weights: cw,
        spatial_weights: sw,
    })
}

/// The fused op: `(x, packed parameters) -> y`. `saved` is filled by the forward and read by
/// the backward of the same call (candle keeps this op value in the graph).
#[derive(Debug)]
struct Cbam {
    dims: Dims,
    saved: Arc<OnceLock<Saved>>,
}

mod cpu;
use cpu::{backward_image, forward, join, Saved};

impl Cbam {
    /// The forward of both arities: `shortcut` is the third input of the residual form.
    fn fwd(
        &self,
        (sx, lx): (&CpuStorage, &Layout),
        (sp, lp): (&CpuStorage, &Layout),
        shortcut: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.dims;
        if lx.dims() != [d.n, d.c, d.h, d.w]
            || lp.dims() != [d.offsets()[6]]
            || shortcut.is_some_and(|(_, l)| l.dims() != lx.dims())
        {
            return Err(config_err(OP, "x", "shapes changed after the check"));
        }
        fn typed<T: Element + candle_core::WithDType>(
            (sx, lx): (&CpuStorage, &Layout),
            (sp, lp): (&CpuStorage, &Layout),
            shortcut: Option<(&CpuStorage, &Layout)>,
            d: &Dims,
        ) -> Result<(Vec<T>, Saved)> {
            let sc = match shortcut {
                Some((ss, ls)) => Some(contiguous_slice::<T>(ss, ls, OP, "shortcut")?),
                None => None,
            };
            Ok(forward(
                contiguous_slice::<T>(sx, lx, OP, "x")?,
                sc,
                contiguous_slice::<T>(sp, lp, OP, "params")?,
                d,
            ))
        }
        let saved;
        let out = dispatch_float!(OP, sx, |T| {
            let (y, s) = typed::<T>((sx, lx), (sp, lp), shortcut, &d)?;
            saved = s;
            y
        });
        // A second forward of the same op value (not done by candle) keeps the first's data.
        let _ = self.saved.set(saved);
        Ok((out, lx.shape().clone()))
    }

    /// `dx` and the packed parameters' gradient for the attention's output gradient `dy`.
    fn grads(&self, x: &Tensor, p: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
        let Some(saved) = self.saved.get() else {
            return Err(config_err(OP, "x", "backward without a forward"));
        };
        let grad = CbamGrad {
            dims: self.dims,
            saved,
            dp: Mutex::new(Vec::new()),
        };
        let dx = x.apply_op3_no_bwd(&dy.contiguous()?, p, &grad)?;
        let dp = grad
            .dp
            .into_inner()
            .map_err(|_| config_err(OP, "params", "gradient buffer poisoned"))?;
        Ok((dx, Tensor::new(dp, p.device())?.to_dtype(p.dtype())?))
    }
}

/// `(x, packed parameters) -> x · cw · sw`.
impl CustomOp2 for Cbam {
    fn name(&self) -> &'static str {
        OP
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sp: &CpuStorage,
        lp: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.fwd((sx, lx), (sp, lp), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        p: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dp) = self.grads(x, p, dy)?;
        Ok((Some(dx), Some(dp)))
    }
}

/// `(x, packed parameters, shortcut) -> max(x · cw · sw + shortcut, 0)`.
impl CustomOp3 for Cbam {
    fn name(&self) -> &'static str {
        "cbam_add_relu"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sp: &CpuStorage,
        lp: &Layout,
        ss: &CpuStorage,
        ls: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.fwd((sx, lx), (sp, lp), Some((ss, ls)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        p: &Tensor,
        _shortcut: &Tensor,
        out: &Tensor,
        dout: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The ReLU's gradient is the shortcut's and the attention output's.
        let g = relu_grad(dout, out)?;
        let (dx, dp) = self.grads(x, p, &g)?;
        Ok((Some(dx), Some(dp), Some(g)))
    }
}

/// `(x, dy, params) -> dx`; the parameters' gradient is left in `dp` (f64).
struct CbamGrad<'a> {
    dims: Dims,
    saved: &'a Saved,
    dp: Mutex<Vec<f64>>,
}

impl CbamGrad<'_> {
    fn run<T: Element>(&self, x: &[T], dy: &[T], p: &[T]) -> Result<Vec<T>> {
        let d = &self.dims;
        let per = d.c * d.hw();
        let mut dp = vec![0f64; p.len()];
        let parts: Vec<Vec<T>> = (0..d.n)
            .map(|img| {
                let r = img * per..(img + 1) * per;
                backward_image(&x[r.clone()], &dy[r], p, d, self.saved, img, &mut dp)
            })
            .collect();
        let dx = join(parts);
        *self
            .dp
            .lock()
            .map_err(|_| config_err(OP, "params", "gradient buffer poisoned"))? = dp;
        Ok(dx)
    }
}

impl CustomOp3 for CbamGrad<'_> {
    fn name(&self) -> &'static str {
        "cbam_grad"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sd: &CpuStorage,
        ld: &Layout,
        sp: &CpuStorage,
        lp: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        const G: &str = "cbam_grad";
        let out = dispatch_float!("cbam_grad", sx, |T| {
            self.run(
                contiguous_slice::<T>(sx, lx, G, "x")?,
                contiguous_slice::<T>(sd, ld, G, "dy")?,
                contiguous_slice::<T>(sp, lp, G, "params")?,
            )?
        });
        Ok((out, lx.shape().clone()))
    }
}
