//! Stochastic gradient descent with momentum and weight decay, in PyTorch's semantics
//! (`torch.optim.SGD` with `dampening = 0`). candle 0.11's `SGD` has neither momentum nor
//! weight decay.

use crate::error::config_err;
use candle_core::{
    backprop::GradStore, CpuStorage, DType, InplaceOp3, Layout, Result, Tensor, Var, WithDType,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of [`SgdMomentum`]. The defaults are the paper's (momentum 0.9, weight
/// decay 1e-4) with detectron2's base learning rate for one image per batch (0.0025).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SgdConfig {
    /// Learning rate (finite, ≥ 0; default 0.0025).
    pub lr: f64,
    /// Momentum factor (finite, ≥ 0; default 0.9); 0 is plain SGD.
    pub momentum: f64,
    /// L2 penalty: `weight_decay·p` is added to each gradient before the momentum update
    /// (finite, ≥ 0; default 1e-4).
    pub weight_decay: f64,
    /// Nesterov momentum (needs `momentum > 0`; default false).
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 0.0025,
            momentum: 0.9,
            weight_decay: 1e-4,
            nesterov: false,
        }
    }
}

impl SgdConfig {
    fn validate(&self) -> Result<()> {
        const OP: &str = "SgdConfig";
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(config_err(
                OP,
                "lr",
                format!("{} must be finite and >= 0", self.lr),
            ));
        }
        if !(self.momentum.is_finite() && self.momentum >= 0.0) {
            return Err(config_err(
                OP,
                "momentum",
                format!("{} must be finite and >= 0", self.momentum),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(config_err(
                OP,
                "weight_decay",
                format!("{} must be finite and >= 0", self.weight_decay),
            ));
        }
        if self.nesterov && self.momentum <= 0.0 {
            return Err(config_err(OP, "nesterov", "needs momentum > 0"));
        }
        Ok(())
    }
}

struct Param {
    var: Var,
    weight_decay: f64,
    buf: Option<Tensor>,
}

/// Momentum SGD. Per step, for each variable `p` that has a gradient `g`
/// (as `torch.optim.SGD`, dampening 0):
///
/// ```text
/// g ← g + weight_decay·p
/// buf ← g                      (first step)
/// buf ← momentum·buf + g       (later steps)
/// g ← g + momentum·buf  if nesterov, else  g ← buf
/// p ← p − lr·g
/// ```
///
/// Variables without a gradient in the `GradStore` are left alone (their momentum too).
///
/// On the CPU (f32 or f64) a step is two fused parallel passes per variable that update the
/// momentum buffer and the weights in place, rounding each operation as the composed candle
/// ops do (tested bit for bit); elsewhere it composes candle ops.
///
/// ```
/// use candle_core::{Device, Var};
/// use candle_nn::Optimizer;
/// let w = Var::new(&[1.0f32], &Device::Cpu)?;
/// let mut opt = arfpn_nn::SgdMomentum::new(vec![w.clone()], arfpn_nn::SgdConfig {
///     lr: 0.1, momentum: 0.9, weight_decay: 0.0, nesterov: false })?;
/// let loss = w.as_tensor().sqr()?.sum_all()?; // d/dw = 2w = 2
/// opt.backward_step(&loss)?;
/// assert!((w.to_vec1::<f32>()?[0] - 0.8).abs() < 1e-6);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub struct SgdMomentum {
    params: Vec<Param>,
    config: SgdConfig,
}

impl SgdMomentum {
    /// The configuration (with the current learning rate).
    pub fn config(&self) -> SgdConfig {
        self.config
    }

    /// The momentum buffers, one per variable in construction order (`None` before the
    /// variable's first step). With [`set_momentum_buffers`](Self::set_momentum_buffers) this
    /// is what a checkpoint needs to resume bit for bit.
    ///
    /// The buffers are copies: later steps update the optimizer's own buffers in place and
    /// leave these alone.
    pub fn momentum_buffers(&self) -> Result<Vec<Option<Tensor>>> {
        self.params
            .iter()
            .map(|p| p.buf.as_ref().map(|b| b.copy()).transpose())
            .collect()
    }

    /// Restores buffers saved by [`momentum_buffers`](Self::momentum_buffers); the count and
    /// each shape must match.
    pub fn set_momentum_buffers(&mut self, buffers: Vec<Option<Tensor>>) -> Result<()> {
        if buffers.len() != self.params.len() {
            return Err(config_err(
                "SgdMomentum::set_momentum_buffers",
                "buffers",
                format!(
                    "{} buffers for {} variables",
                    buffers.len(),
                    self.params.len()
                ),
            ));
        }
        for (i, (p, b)) in self.params.iter().zip(&buffers).enumerate() {
            if let Some(b) = b {
                if b.dims() != p.var.dims() {
                    return Err(config_err(
                        "SgdMomentum::set_momentum_buffers",
                        "buffers",
                        format!(
                            "buffer {i} has shape {:?}, its variable {:?}",
                            b.dims(),
                            p.var.dims()
                        ),
                    ));
                }
            }
        }
        // Copies, since steps update the buffers in place.
        for (p, b) in self.params.iter_mut().zip(buffers) {
            p.buf = b.map(|b| b.copy()).transpose()?;
        }
        Ok(())
    }

    /// Turns weight decay off for these variables (e.g. normalisation weights and biases,
    /// detectron2's `WEIGHT_DECAY_NORM = 0`). Variables not held by the optimizer are ignored.
    pub fn exclude_from_weight_decay(&mut self, vars: &[Var]) {
        for p in &mut self.params {
            if vars
                .iter()
                .any(|v| v.as_tensor().id() == p.var.as_tensor().id())
            {
                p.weight_decay = 0.0;
            }
        }
    }
}

impl candle_nn::Optimizer for SgdMomentum {
    type Config = SgdConfig;

    fn new(vars: Vec<Var>, config: SgdConfig) -> Result<Self> {
        config.validate()?;
        let params = vars
            .into_iter()
            .filter(|v| v.dtype().is_float())
            .map(|var| Param {
                var,
                weight_decay: config.weight_decay,
                buf: None,
            })
            .collect();
        Ok(Self { params, config })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let SgdConfig {
            lr,
            momentum,
            nesterov,
            ..
        } = self.config;
        for p in &mut self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let w = p.var.as_tensor();
            let g = g.detach().contiguous()?;
            if fused(w, &g) {
                let up = Update {
                    lr,
                    momentum,
                    weight_decay: p.weight_decay,
                    nesterov,
                };
                if momentum != 0.0 {
                    let first = p.buf.is_none();
                    let buf = match p.buf.take() {
                        Some(b) => b,
                        None => w.zeros_like()?,
                    };
                    let pass = Pass::Buffer { first };
                    buf.inplace_op3(&g, w, &SgdPass { up, pass })?;
                    let pass = Pass::Weights { with_buf: true };
                    w.inplace_op3(&g, &buf, &SgdPass { up, pass })?;
                    p.buf = Some(buf);
                } else {
                    let pass = Pass::Weights { with_buf: false };
                    w.inplace_op3(&g, &g, &SgdPass { up, pass })?;
                }
                continue;
            }
            let w = w.detach();
            let mut g = g;
            if p.weight_decay != 0.0 {
                g = (g + (&w * p.weight_decay)?)?;
            }
            if momentum != 0.0 {
                let buf = match p.buf.take() {
                    None => g.copy()?,
                    Some(b) => ((b * momentum)? + &g)?,
                };
                g = if nesterov {
                    (g + (&buf * momentum)?)?
                } else {
                    buf.clone()
                };
                p.buf = Some(buf);
            }
            p.var.set(&(w - (g * lr)?)?)?;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }
}

/// Whether [`SgdMomentum::step`] updates `w` in place with the fused CPU ops below (f32 or
/// f64, contiguous, on the CPU); otherwise it composes candle ops (any device).
fn fused(w: &Tensor, g: &Tensor) -> bool {
    w.device().is_cpu()
        && w.is_contiguous()
        && w.dtype() == g.dtype()
        && matches!(w.dtype(), DType::F32 | DType::F64)
}

/// The scalars of one update.
#[derive(Clone, Copy)]
struct Update {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    nesterov: bool,
}

impl Update {
    /// `g + weight_decay·w`, rounded as candle's `g + (w * weight_decay)` (an affine
    /// `w·wd + 0` then an addition), so the fused step equals the composed one bit for bit.
    #[inline(always)]
    fn decayed<T: WithDType>(&self, g: T, w: T, wd: T) -> T {
        if self.weight_decay != 0.0 {
            g + (w * wd + T::zero())
        } else {
            g
        }
    }
}

/// Elements per parallel chunk of the updates.
const CHUNK: usize = 1 << 14;

/// The contiguous values of an operand of the in-place ops.
fn values<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout, what: &'static str) -> Result<&'a [T]> {
    arfpn_kernels::contiguous_slice(s, l, "sgd", what)
}

/// The contiguous values of the updated tensor.
fn values_mut<'a, T>(v: &'a mut [T], l: &Layout) -> Result<&'a mut [T]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("sgd: the updated tensor must be contiguous")
    };
    Ok(&mut v[a..b])
}

/// Which pass of a fused step an [`SgdPass`] makes.
#[derive(Clone, Copy)]
enum Pass {
    /// On the momentum buffer, sources `(g, w)`: `buf ← momentum·buf + (g + wd·w)`, or
    /// `buf ← g + wd·w` on the first step.
    Buffer { first: bool },
    /// On the weights, sources `(g, buf)`: `w ← w − lr·d`, with `d` the buffer,
    /// `g + wd·w + momentum·buf` (Nesterov) or, without momentum (`with_buf` false; `buf` is
    /// then not read), `g + wd·w`.
    Weights { with_buf: bool },
}

/// One in-place pass of [`SgdMomentum::step`] on the CPU.
struct SgdPass {
    up: Update,
    pass: Pass,
}

impl SgdPass {
    /// `dst[i] ← f(dst[i], a[i], b[i])` for the pass's `f`, over parallel chunks.
    fn run<T: WithDType>(&self, dst: &mut [T], a: &[T], b: &[T]) {
        let up = self.up;
        let pass = self.pass;
        let (lr, m, wd) = (
            T::from_f64(up.lr),
            T::from_f64(up.momentum),
            T::from_f64(up.weight_decay),
        );
        dst.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(d, (a, b))| {
                for ((d, &a), &b) in d.iter_mut().zip(a).zip(b) {
                    *d = match pass {
                        Pass::Buffer { first } => {
                            let (g, w) = (a, b);
                            let g1 = up.decayed(g, w, wd);
                            if first {
                                g1
                            } else {
                                (*d * m + T::zero()) + g1
                            }
                        }
                        Pass::Weights { with_buf } => {
                            let (w, g, buf) = (*d, a, b);
                            let step = match (with_buf, up.nesterov) {
                                (false, _) => up.decayed(g, w, wd),
                                (true, false) => buf,
                                (true, true) => up.decayed(g, w, wd) + (buf * m + T::zero()),
                            };
                            w - (step * lr + T::zero())
                        }
                    };
                }
            });
    }
}

impl InplaceOp3 for SgdPass {
    fn name(&self) -> &'static str {
        match self.pass {
            Pass::Buffer { .. } => "sgd-momentum-buffer",
            Pass::Weights { .. } => "sgd-weights",
        }
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<()> {
        match dst {
            CpuStorage::F32(v) => self.run::<f32>(
                values_mut(v, dst_l)?,
                values(a, al, "first source")?,
                values(b, bl, "second source")?,
            ),
            CpuStorage::F64(v) => self.run::<f64>(
                values_mut(v, dst_l)?,
                values(a, al, "first source")?,
                values(b, bl, "second source")?,
            ),
            _ => candle_core::bail!("sgd: only f32 and f64 are supported"),
        }
        Ok(())
    }
}
