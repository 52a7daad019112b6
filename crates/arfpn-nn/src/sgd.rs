//! Stochastic gradient descent with momentum and weight decay, in PyTorch's semantics
//! (`torch.optim.SGD` with `dampening = 0`). candle 0.11's `SGD` has neither momentum nor
//! weight decay.

use crate::error::config_err;
use candle_core::{backprop::GradStore, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

/// Hyper-parameters of [`SgdMomentum`]. The defaults are the paper's (momentum 0.9, weight
/// decay 1e-4) with detectron2's base learning rate for one image per batch (0.0025).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
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
    pub fn momentum_buffers(&self) -> Vec<Option<Tensor>> {
        self.params.iter().map(|p| p.buf.clone()).collect()
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
        for (p, b) in self.params.iter_mut().zip(buffers) {
            p.buf = b;
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
            let w = p.var.as_tensor().detach();
            let mut g = g.detach();
            if p.weight_decay != 0.0 {
                g = (g + (&w * p.weight_decay)?)?;
            }
            if momentum != 0.0 {
                let buf = match p.buf.take() {
                    None => g.clone(),
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
