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

use std::sync::{Arc, Mutex, OnceLock};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::error::{config_err, shape_err};
use crate::real::Real;
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
/// use arfpn_nn::{cbam, ChannelGateWeights, SpatialGateWeights};
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
/// use arfpn_nn::{cbam_add_relu, SpatialGateWeights};
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

/// What the forward keeps for the backward (per image, concatenated over images), as f64:
/// every value is an f32 or f64 of the forward, so converting back is exact.
#[derive(Debug, Default)]
struct Saved {
    /// Channel means and maxima of `x`, `[N, C]` (how many positions attain each maximum,
    /// which only the backward needs, it counts itself).
    avg: Vec<f64>,
    mx: Vec<f64>,
    /// The MLP's hidden activations (after ReLU) for the two descriptors, `[N, h]`.
    hid_avg: Vec<f64>,
    hid_max: Vec<f64>,
    /// The channel gate `[N, C]` (ones without one).
    cw: Vec<f64>,
    /// `[mean_c(xc); max_c(xc)]`, `[N, 2, H·W]`, and the spatial gate `[N, H·W]`.
    desc: Vec<f64>,
    sw: Vec<f64>,
}

/// The fused op: `(x, packed parameters) -> y`. `saved` is filled by the forward and read by
/// the backward of the same call (candle keeps this op value in the graph).
#[derive(Debug)]
struct Cbam {
    dims: Dims,
    saved: Arc<OnceLock<Saved>>,
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// `Σ term(j)` for `j < n`, in f64 but without one dependent f64 addition per term (which
/// runs at a quarter of the memory's speed): 16 partial sums in `T`, restarted every 256
/// terms, each block's added in f64.
#[inline(always)]
fn lane_sum<T: Real>(n: usize, term: impl Fn(usize) -> T) -> f64 {
    let mut total = 0f64;
    let mut j = 0;
    while j < n {
        let end = (j + 256).min(n);
        let mut acc = [T::ZERO; 16];
        while j + 16 <= end {
            for (l, a) in acc.iter_mut().enumerate() {
                *a += term(j + l);
            }
            j += 16;
        }
        while j < end {
            acc[0] += term(j);
            j += 1;
        }
        total += acc.iter().map(|a| a.f()).sum::<f64>();
    }
    total
}

/// The maximum of a non-empty row (NaN wins, as in candle), branch-free per lane.
fn row_max<T: Real>(row: &[T]) -> T {
    let Some(&first) = row.first() else {
        return T::ZERO;
    };
    let mut lanes = [first; 16];
    let mut nan = false;
    let mut chunks = row.chunks_exact(16);
    for ch in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(ch) {
            nan |= v.is_nan();
            *m = if v > *m { v } else { *m };
        }
    }
    for &v in chunks.remainder() {
        nan |= v.is_nan();
        lanes[0] = if v > lanes[0] { v } else { lanes[0] };
    }
    if nan {
        return T::of(f64::NAN);
    }
    lanes
        .into_iter()
        .fold(first, |m, v| if v > m { v } else { m })
}

/// Positions per task of the passes that reduce over channels.
const COLS: usize = 512;

/// `out[y, x] += Σ_taps w[ky, kx] · src[y + ky − r, x + kx − r]` over one `k×k` kernel of one
/// input channel, zero outside `src` (`h × w`); rows of `out` in parallel.
fn correlate_add<T: Real>(out: &mut [T], src: &[T], wk: &[T], h: usize, w: usize, k: usize) {
    let r = k / 2;
    out.par_chunks_mut(w.max(1))
        .enumerate()
        .for_each(|(yy, orow)| {
            for ky in 0..k {
                let sy = yy + ky;
                if sy < r || sy - r >= h {
                    continue;
                }
                let srow = &src[(sy - r) * w..(sy - r + 1) * w];
                for kx in 0..k {
                    let wv = wk[ky * k + kx];
                    // Output columns whose source column x + kx − r lies inside the row.
                    let lo = r.saturating_sub(kx);
                    let hi = (w + r).saturating_sub(kx).min(w);
                    if lo >= hi {
                        continue;
                    }
                    let s0 = lo + kx - r;
                    for (o, &s) in orow[lo..hi].iter_mut().zip(&srow[s0..s0 + hi - lo]) {
                        *o += wv * s;
                    }
                }
            }
        });
}

/// One image's forward (`x` is its `[C, H·W]`); appends to `s` and returns its output.
fn forward_image<T: Real>(
    x: &[T],
    shortcut: Option<&[T]>,
    p: &[T],
    d: &Dims,
    s: &mut Saved,
) -> Vec<T> {
    let (c, hw, hidden) = (d.c, d.hw(), d.hidden);
    let o = d.offsets();
    let cw: Vec<T> = if hidden == 0 {
        vec![T::of(1.0); c]
    } else {
        // Channel statistics, one row (channel) per task.
        let stats: Vec<(f64, T)> = x
            .par_chunks(hw.max(1))
            .map(|row| (lane_sum(row.len(), |j| row[j]) / hw as f64, row_max(row)))
            .collect();
        let avg: Vec<f64> = stats.iter().map(|t| t.0).collect();
        let mx: Vec<f64> = stats.iter().map(|t| t.1.f()).collect();
        let mlp_hidden = |v: &[f64]| -> Vec<f64> {
            (0..hidden)
                .into_par_iter()
                .map(|j| {
                    let wr = &p[o[0] + j * c..o[0] + (j + 1) * c];
                    let z = p[o[1] + j].f() + wr.iter().zip(v).map(|(a, b)| a.f() * b).sum::<f64>();
                    z.max(0.0)
                })
                .collect()
        };
        let (ha, hm) = (mlp_hidden(&avg), mlp_hidden(&mx));
        let cw: Vec<T> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let wr = &p[o[2] + ch * hidden..o[2] + (ch + 1) * hidden];
                let dot = |h: &[f64]| wr.iter().zip(h).map(|(a, b)| a.f() * b).sum::<f64>();
                T::of(sigmoid(2.0 * p[o[3] + ch].f() + dot(&ha) + dot(&hm)))
            })
            .collect();
        s.avg.extend(&avg);
        s.mx.extend(&mx);
        s.hid_avg.extend(&ha);
        s.hid_max.extend(&hm);
        cw
    };
    s.cw.extend(cw.iter().map(|v| v.f()));

    // The spatial descriptor of xc = x · cw, a chunk of positions per task.
    let mut mean = vec![T::ZERO; hw];
    let mut max = vec![T::ZERO; hw];
    mean.par_chunks_mut(COLS)
        .zip(max.par_chunks_mut(COLS))
        .enumerate()
        .for_each(|(t, (me, mx))| {
            let j0 = t * COLS;
            // Channel 0 starts the sums and maxima; the others fold in with selects (a NaN
            // takes the maximum and keeps it: no later value compares greater).
            let row0 = &x[j0..j0 + me.len()];
            let mut acc: Vec<f64> = row0.iter().map(|&v| (v * cw[0]).f()).collect();
            for (m, &v) in mx.iter_mut().zip(row0) {
                *m = v * cw[0];
            }
            for (ch, &g) in cw.iter().enumerate().skip(1) {
                let row = &x[ch * hw + j0..ch * hw + j0 + me.len()];
                for ((a, m), &v) in acc.iter_mut().zip(mx.iter_mut()).zip(row) {
                    let v = v * g;
                    *a += v.f();
                    *m = if (v > *m) | v.is_nan() { v } else { *m };
                }
            }
            for (o, a) in me.iter_mut().zip(acc) {
                *o = T::of(a / c as f64);
            }
        });

    // The spatial gate: σ(conv(desc) + b).
    let kk = d.k * d.k;
    let mut logits = vec![p[o[5]]; hw];
    for (ci, src) in [&mean, &max].into_iter().enumerate() {
        let wk = &p[o[4] + ci * kk..o[4] + (ci + 1) * kk];
        correlate_add(&mut logits, src, wk, d.h, d.w, d.k);
    }
    let sw: Vec<T> = logits.iter().map(|v| T::of(sigmoid(v.f()))).collect();
    s.desc.extend(mean.iter().chain(&max).map(|v| v.f()));
    s.sw.extend(sw.iter().map(|v| v.f()));

    // y = (x · cw) · sw (then max(y + shortcut, 0)), one channel per task.
    // SAFETY: each task writes its whole plane.
    unsafe {
        par_build(c * hw, hw.max(1), |ch, out| {
            let (g, row) = (cw[ch], &x[ch * hw..(ch + 1) * hw]);
            match shortcut {
                None => {
                    for ((o, &v), &s) in out.iter_mut().zip(row).zip(&sw) {
                        o.write(v * g * s);
                    }
                }
                Some(sc) => {
                    let sc = &sc[ch * hw..(ch + 1) * hw];
                    for (((o, &v), &s), &b) in out.iter_mut().zip(row).zip(&sw).zip(sc) {
                        o.write(relu_of(v * g * s + b));
                    }
                }
            }
        })
    }
}

/// The images' planes as one vector (no copy for a single image, the usual batch).
fn join<T: Copy>(mut parts: Vec<Vec<T>>) -> Vec<T> {
    match parts.len() {
        1 => parts.pop().unwrap_or_default(),
        _ => parts.concat(),
    }
}

fn forward<T: Real>(x: &[T], shortcut: Option<&[T]>, p: &[T], d: &Dims) -> (Vec<T>, Saved) {
    let mut s = Saved::default();
    let per = d.c * d.hw();
    let parts: Vec<Vec<T>> = (0..d.n)
        .map(|img| {
            let r = img * per..(img + 1) * per;
            let sc = shortcut.map(|sc| &sc[r.clone()]);
            forward_image(&x[r], sc, p, d, &mut s)
        })
        .collect();
    let y = join(parts);
    (y, s)
}

/// Image `img`'s backward (`x`, `dy` are its planes): returns its `dx` and adds its
/// parameter gradients to `dp`.
fn backward_image<T: Real>(
    x: &[T],
    dy: &[T],
    p: &[T],
    d: &Dims,
    s: &Saved,
    img: usize,
    dp: &mut [f64],
) -> Vec<T> {
    let (c, hw, hidden, k) = (d.c, d.hw(), d.hidden, d.k);
    let o = d.offsets();
    let cw: Vec<T> = s.cw[img * c..(img + 1) * c]
        .iter()
        .map(|&v| T::of(v))
        .collect();
    let desc = &s.desc[img * 2 * hw..(img + 1) * 2 * hw];
    let dmax: Vec<T> = desc[hw..].iter().map(|&v| T::of(v)).collect();
    let sw: Vec<T> = s.sw[img * hw..(img + 1) * hw]
        .iter()
        .map(|&v| T::of(v))
        .collect();

    // Pass 1 (chunks of positions): d sw = Σ_c dy · xc, and the ties of the channel maximum.
    let mut dsw = vec![0f64; hw];
    let mut ties = vec![0u32; hw];
    dsw.par_chunks_mut(COLS)
        .zip(ties.par_chunks_mut(COLS))
        .enumerate()
        .for_each(|(t, (ds, tc))| {
            let j0 = t * COLS;
            let m = &dmax[j0..j0 + ds.len()];
            for (ch, &g) in cw.iter().enumerate() {
                let (xr, dr) = (
                    &x[ch * hw + j0..ch * hw + j0 + ds.len()],
                    &dy[ch * hw + j0..ch * hw + j0 + ds.len()],
                );
                for ((((a, n), &v), &dv), &mv) in
                    ds.iter_mut().zip(tc.iter_mut()).zip(xr).zip(dr).zip(m)
                {
                    let v = v * g;
                    *a += (dv * v).f();
                    *n += u32::from(v == mv);
                }
            }
        });

    // The spatial gate's logits, then its convolution's gradients (small maps).
    let dlogit: Vec<f64> = dsw
        .iter()
        .zip(&sw)
        .map(|(&g, &s)| g * s.f() * (1.0 - s.f()))
        .collect();
    let kk = k * k;
    let r = k / 2;
    dp[o[5]] += dlogit.iter().sum::<f64>();
    let dwk: Vec<f64> = (0..2 * kk)
        .into_par_iter()
        .map(|tap| {
            let (ci, ky, kx) = (tap / kk, tap % kk / k, tap % k);
            let src = &desc[ci * hw..(ci + 1) * hw];
            let mut acc = 0f64;
            for yy in 0..d.h {
                let sy = yy + ky;
                if sy < r || sy - r >= d.h {
                    continue;
                }
                let lo = r.saturating_sub(kx);
                let hi = (d.w + r).saturating_sub(kx).min(d.w);
                if lo >= hi {
                    continue;
                }
                let s0 = (sy - r) * d.w + lo + kx - r;
                let (gr, sr) = (
                    &dlogit[yy * d.w + lo..yy * d.w + hi],
                    &src[s0..s0 + hi - lo],
                );
                acc += lane_sum(gr.len(), |j| gr[j] * sr[j]);
            }
            acc
        })
        .collect();
    for (t, v) in dwk.into_iter().enumerate() {
        dp[o[4] + t] += v;
    }
    // d desc = the convolution's transpose: correlate d logits with the flipped kernel.
    let mut ddesc = [vec![0f64; hw], vec![0f64; hw]];
    for (ci, dd) in ddesc.iter_mut().enumerate() {
        let flipped: Vec<f64> = (0..kk)
            .map(|t| p[o[4] + ci * kk + (kk - 1 - t)].f())
            .collect();
        correlate_add(dd, &dlogit, &flipped, d.h, d.w, k);
    }
    // Per position: the mean's share and the maximum's share (split among ties).
    let from_mean: Vec<T> = ddesc[0].iter().map(|&v| T::of(v / c as f64)).collect();
    let from_max: Vec<T> = ddesc[1]
        .iter()
        .zip(&ties)
        .map(|(&v, &n)| {
            if n == 0 {
                T::ZERO
            } else {
                T::of(v).div_count(n as usize)
            }
        })
        .collect();
    // dxc[ch, j] = dy · sw + the descriptor's share. (Slices of length `hw`, so that the
    // per-position loops below need no bounds checks and vectorise.)
    let (sw, from_mean, dmax, from_max) =
        (&sw[..hw], &from_mean[..hw], &dmax[..hw], &from_max[..hw]);
    let dxc = |ch: usize, j: usize, v: T, dv: T| -> T {
        let mut g = dv * sw[j] + from_mean[j];
        if v * cw[ch] == dmax[j] {
            g += from_max[j];
        }
        g
    };

    // The channel gate: d cw = Σ_p dxc · x (pass 2), then the MLP's gradients.
    let (mut from_avg, mut from_mx) = (vec![T::ZERO; c], vec![T::ZERO; c]);
    let mx: Vec<T> = if hidden > 0 {
        s.mx[img * c..(img + 1) * c]
            .iter()
            .map(|&v| T::of(v))
            .collect()
    } else {
        Vec::new()
    };
    if hidden > 0 {
        // With each channel's row in cache, also count the positions that attain its
        // maximum (they share the maximum's gradient).
        let (dcw, counts): (Vec<f64>, Vec<usize>) = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (xr, dr) = (&x[ch * hw..(ch + 1) * hw], &dy[ch * hw..(ch + 1) * hw]);
                let dcw = lane_sum(hw, |j| dxc(ch, j, xr[j], dr[j]) * xr[j]);
                (dcw, xr.iter().filter(|&&v| v == mx[ch]).count())
            })
            .unzip();
        let cwf = &s.cw[img * c..(img + 1) * c];
        let dz: Vec<f64> = dcw
            .iter()
            .zip(cwf)
            .map(|(&g, &s)| g * s * (1.0 - s))
            .collect();
        let (ha, hm) = (
            &s.hid_avg[img * hidden..(img + 1) * hidden],
            &s.hid_max[img * hidden..(img + 1) * hidden],
        );
        // fc2: z = W2 · h + b2 for both descriptors, summed.
        for ch in 0..c {
            dp[o[3] + ch] += 2.0 * dz[ch];
            let row = &mut dp[o[2] + ch * hidden..o[2] + (ch + 1) * hidden];
            for ((g, &a), &b) in row.iter_mut().zip(ha).zip(hm) {
                *g += dz[ch] * (a + b);
            }
        }
        // Back through fc2 to the hidden units (ReLU mask per descriptor).
        let dh: Vec<f64> = (0..hidden)
            .into_par_iter()
            .map(|j| {
                (0..c)
                    .map(|ch| p[o[2] + ch * hidden + j].f() * dz[ch])
                    .sum()
            })
            .collect();
        let dha: Vec<f64> = dh
            .iter()
            .zip(ha)
            .map(|(&g, &a)| if a > 0.0 { g } else { 0.0 })
            .collect();
        let dhm: Vec<f64> = dh
            .iter()
            .zip(hm)
            .map(|(&g, &a)| if a > 0.0 { g } else { 0.0 })
            .collect();
        let (avg, mxf) = (
            &s.avg[img * c..(img + 1) * c],
            &s.mx[img * c..(img + 1) * c],
        );
        for j in 0..hidden {
            dp[o[1] + j] += dha[j] + dhm[j];
            let row = &mut dp[o[0] + j * c..o[0] + (j + 1) * c];
            for ((g, &a), &m) in row.iter_mut().zip(avg).zip(mxf) {
                *g += dha[j] * a + dhm[j] * m;
            }
        }
        // Back through fc1 to the two descriptors, then to x's share of each.
        from_avg
            .par_iter_mut()
            .zip(from_mx.par_iter_mut())
            .enumerate()
            .for_each(|(ch, (fa, fm))| {
                let (mut ga, mut gm) = (0f64, 0f64);
                for j in 0..hidden {
                    let wv = p[o[0] + j * c + ch].f();
                    ga += wv * dha[j];
                    gm += wv * dhm[j];
                }
                *fa = T::of(ga / hw as f64);
                *fm = if counts[ch] == 0 {
                    T::ZERO
                } else {
                    T::of(gm).div_count(counts[ch])
                };
            });
    }

    // Pass 3: dx = dxc · cw + the channel descriptors' shares, one channel per task.
    // SAFETY: each task writes its whole plane.
    unsafe {
        par_build(c * hw, hw.max(1), |ch, out| {
            let (xr, dr) = (&x[ch * hw..(ch + 1) * hw], &dy[ch * hw..(ch + 1) * hw]);
            let g = cw[ch];
            for (j, (o, (&v, &dv))) in out.iter_mut().zip(xr.iter().zip(dr)).enumerate() {
                let mut val = dxc(ch, j, v, dv) * g;
                if hidden > 0 {
                    val += from_avg[ch];
                    if v == mx[ch] {
                        val += from_mx[ch];
                    }
                }
                o.write(val);
            }
        })
    }
}

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
        fn typed<T: Real + candle_core::WithDType>(
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
        let (out, saved) = match sx {
            CpuStorage::F32(_) => {
                let (y, s) = typed::<f32>((sx, lx), (sp, lp), shortcut, &d)?;
                (CpuStorage::F32(y), s)
            }
            CpuStorage::F64(_) => {
                let (y, s) = typed::<f64>((sx, lx), (sp, lp), shortcut, &d)?;
                (CpuStorage::F64(y), s)
            }
            _ => candle_core::bail!("cbam: only f32 and f64 are supported"),
        };
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
    fn run<T: Real>(&self, x: &[T], dy: &[T], p: &[T]) -> Result<Vec<T>> {
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
        let out = match (sx, sd, sp) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(self.run(
                    contiguous_slice::<f32>(sx, lx, G, "x")?,
                    contiguous_slice::<f32>(sd, ld, G, "dy")?,
                    contiguous_slice::<f32>(sp, lp, G, "params")?,
                )?)
            }
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(self.run(
                    contiguous_slice::<f64>(sx, lx, G, "x")?,
                    contiguous_slice::<f64>(sd, ld, G, "dy")?,
                    contiguous_slice::<f64>(sp, lp, G, "params")?,
                )?)
            }
            _ => candle_core::bail!("cbam_grad: x, dy and the parameters must share f32 or f64"),
        };
        Ok((out, lx.shape().clone()))
    }
}
