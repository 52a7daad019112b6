//! Adam (Kingma & Ba 2015) in PyTorch's semantics (`torch.optim.Adam`, L2 weight decay added
//! to the gradient, bias-corrected moments), with its state exposed for checkpoints: the
//! paper's Table 5 compares it with momentum SGD.

use crate::error::config_err;
use candle_core::{backprop::GradStore, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

/// Hyper-parameters of [`Adam`] (PyTorch's defaults, weight decay 0).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdamConfig {
    /// Learning rate (step size), ≥ 0; default 1e-3.
    pub lr: f64,
    /// Decay rate β1 of the first-moment (mean) estimate, in [0, 1); default 0.9.
    pub beta1: f64,
    /// Decay rate β2 of the second-moment (uncentred variance) estimate, in [0, 1);
    /// default 0.999.
    pub beta2: f64,
    /// Added to the denominator's square root for numerical stability, > 0; default 1e-8.
    pub eps: f64,
    /// L2 penalty: `weight_decay·p` is added to each gradient before the moments are updated
    /// (not decoupled as in AdamW), ≥ 0; default 0.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

struct Param {
    var: Var,
    weight_decay: f64,
    /// First and second moments and the number of steps this variable took.
    m: Option<Tensor>,
    v: Option<Tensor>,
    steps: u64,
}

/// Adam. Per step, for each variable `p` with gradient `g` (step count `t` per variable):
///
/// ```text
/// g ← g + weight_decay·p
/// m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
/// p ← p − lr · (m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + eps)
/// ```
///
/// ```
/// use candle_core::{Device, Var};
/// use candle_nn::Optimizer;
/// let w = Var::new(&[1.0f32], &Device::Cpu)?;
/// let mut opt = arfpn_nn::Adam::new(vec![w.clone()], arfpn_nn::AdamConfig { lr: 0.1, ..Default::default() })?;
/// opt.backward_step(&w.as_tensor().sqr()?.sum_all()?)?;
/// // First step: m̂ = g, v̂ = g², so the update is lr · g / |g| = 0.1.
/// assert!((w.to_vec1::<f32>()?[0] - 0.9).abs() < 1e-6);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub struct Adam {
    params: Vec<Param>,
    config: AdamConfig,
}

/// One variable's Adam state: `(m, v, steps)`.
pub type AdamState = (Option<Tensor>, Option<Tensor>, u64);

impl Adam {
    /// The hyper-parameters in use, including a learning rate changed with
    /// `set_learning_rate`.
    pub fn config(&self) -> AdamConfig {
        self.config
    }

    /// Turns weight decay off for these variables.
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

    /// The moments and step counts, one per variable in construction order.
    pub fn state(&self) -> Vec<AdamState> {
        self.params
            .iter()
            .map(|p| (p.m.clone(), p.v.clone(), p.steps))
            .collect()
    }

    /// Restores [`state`](Self::state); count and shapes must match.
    pub fn set_state(&mut self, state: Vec<AdamState>) -> Result<()> {
        const OP: &str = "Adam::set_state";
        if state.len() != self.params.len() {
            return Err(config_err(
                OP,
                "state",
                format!(
                    "{} entries for {} variables",
                    state.len(),
                    self.params.len()
                ),
            ));
        }
        for (i, (p, (m, v, _))) in self.params.iter().zip(&state).enumerate() {
            for t in [m, v].into_iter().flatten() {
                if t.dims() != p.var.dims() {
                    return Err(config_err(
                        OP,
                        "state",
                        format!(
                            "entry {i} has shape {:?}, its variable {:?}",
                            t.dims(),
                            p.var.dims()
                        ),
                    ));
                }
            }
        }
        for (p, (m, v, steps)) in self.params.iter_mut().zip(state) {
            p.m = m;
            p.v = v;
            p.steps = steps;
        }
        Ok(())
    }
}

impl AdamConfig {
    fn validate(&self) -> Result<()> {
        const OP: &str = "AdamConfig";
        let check = |name: &'static str, v: f64, ok: bool| {
            if ok && v.is_finite() {
                Ok(())
            } else {
                Err(config_err(OP, name, format!("{v} is out of range")))
            }
        };
        check("lr", self.lr, self.lr >= 0.0)?;
        check("beta1", self.beta1, (0.0..1.0).contains(&self.beta1))?;
        check("beta2", self.beta2, (0.0..1.0).contains(&self.beta2))?;
        check("eps", self.eps, self.eps > 0.0)?;
        check("weight_decay", self.weight_decay, self.weight_decay >= 0.0)
    }
}

impl candle_nn::Optimizer for Adam {
    type Config = AdamConfig;

    fn new(vars: Vec<Var>, config: AdamConfig) -> Result<Self> {
        config.validate()?;
        let params = vars
            .into_iter()
            .filter(|v| v.dtype().is_float())
            .map(|var| Param {
                var,
                weight_decay: config.weight_decay,
                m: None,
                v: None,
                steps: 0,
            })
            .collect();
        Ok(Self { params, config })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
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
            let m = match p.m.take() {
                None => (&g * (1.0 - beta1))?,
                Some(m) => ((m * beta1)? + (&g * (1.0 - beta1))?)?,
            };
            let v = match p.v.take() {
                None => (g.sqr()? * (1.0 - beta2))?,
                Some(v) => ((v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?,
            };
            p.steps += 1;
            let bc1 = 1.0 - beta1.powi(p.steps as i32);
            let bc2 = 1.0 - beta2.powi(p.steps as i32);
            let denom = ((&v / bc2)?.sqrt()? + eps)?;
            let update = ((&m / bc1)? / denom)?;
            p.var.set(&(w - (update * lr)?)?)?;
            p.m = Some(m);
            p.v = Some(v);
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::Optimizer;

    /// Two steps on f(w) = w² + 3w from w = 1, by hand (β1 0.9, β2 0.999, lr 0.1, wd 0.5).
    #[test]
    fn two_steps_match_hand_computation() -> Result<()> {
        let w = Var::new(&[1.0f64], &Device::Cpu)?;
        let cfg = AdamConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..Default::default()
        };
        let mut opt = Adam::new(vec![w.clone()], cfg)?;
        let (mut m, mut v, mut x) = (0.0f64, 0.0f64, 1.0f64);
        for t in 1..=2 {
            let loss = ((w.as_tensor().sqr()? + (w.as_tensor() * 3.0)?)?).sum_all()?;
            opt.backward_step(&loss)?;
            let g = 2.0 * x + 3.0 + 0.5 * x;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            let mh = m / (1.0 - 0.9f64.powi(t));
            let vh = v / (1.0 - 0.999f64.powi(t));
            x -= 0.1 * mh / (vh.sqrt() + 1e-8);
            let got = w.to_vec1::<f64>()?[0];
            assert!((got - x).abs() < 1e-12, "step {t}: {got} vs {x}");
        }
        // State round trip.
        let st = opt.state();
        assert_eq!(st[0].2, 2);
        let mut other = Adam::new(vec![w.clone()], cfg)?;
        other.set_state(st)?;
        assert!(other.set_state(vec![]).is_err());
        Ok(())
    }
}
