//! Learning-rate schedules: linear warm-up followed by constant, multi-step or cosine decay,
//! with a floor (the paper's minimum learning rate of 1e-6).

use crate::error::config_err;
use candle_core::Result;
use serde::{Deserialize, Serialize};

/// The decay applied after (and during) warm-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrDecay {
    /// `base_lr` throughout.
    Constant,
    /// `base_lr · gamma^(number of milestones <= iteration)` (PyTorch's `MultiStepLR`,
    /// detectron2's `WarmupMultiStepLR`). The paper: milestones `[60000, 80000]`, gamma 0.1.
    MultiStep {
        /// Iterations at which the rate is multiplied by `gamma`, strictly ascending.
        milestones: Vec<usize>,
        /// Factor applied at each milestone, in `(0, 1]`.
        gamma: f64,
    },
    /// `min_lr + (base_lr − min_lr)·(1 + cos(π·min(iteration, total)/total))/2`, i.e. half a
    /// cosine from `base_lr` at 0 to `min_lr` at `total_iters` (then flat).
    Cosine {
        /// Iterations over which the rate falls to `min_lr` (> 0).
        total_iters: usize,
    },
}

/// A learning-rate schedule: `lr_at(iteration)` for iterations counted from 0.
///
/// `lr = max(min_lr, warmup(iteration) · decay(iteration))`, where the linear warm-up factor
/// rises from `warmup_factor` at iteration 0 to 1 at `warmup_iters` (detectron2's
/// `"linear"` warm-up: `warmup_factor·(1 − α) + α`, `α = iteration / warmup_iters`).
///
/// ```
/// use arfpn_nn::{LrDecay, LrSchedule};
/// let s = LrSchedule::paper(0.01);
/// assert_eq!(s.lr_at(0), 0.01 * 0.001);
/// assert!((s.lr_at(70_000) - 0.001).abs() < 1e-15);
/// assert!((s.lr_at(100_000) - 0.0001).abs() < 1e-15);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// The rate after warm-up and before any decay (finite, ≥ 0).
    pub base_lr: f64,
    /// Iterations of linear warm-up (0: none).
    pub warmup_iters: usize,
    /// Multiplier of the rate at iteration 0, rising linearly to 1 at `warmup_iters`; in
    /// `[0, 1]`.
    pub warmup_factor: f64,
    /// How the rate falls after warm-up (it is computed from iteration 0 and multiplied by
    /// the warm-up factor).
    pub decay: LrDecay,
    /// The floor: `lr_at` never returns less (finite, ≥ 0). Also the end point of
    /// [`LrDecay::Cosine`].
    pub min_lr: f64,
}

impl LrSchedule {
    /// The paper's schedule: divided by 10 at 60k and 80k iterations, floor 1e-6, with
    /// detectron2's default linear warm-up (1000 iterations from 0.001·base_lr).
    pub fn paper(base_lr: f64) -> Self {
        Self {
            base_lr,
            warmup_iters: 1000,
            warmup_factor: 0.001,
            decay: LrDecay::MultiStep {
                milestones: vec![60_000, 80_000],
                gamma: 0.1,
            },
            min_lr: 1e-6,
        }
    }

    /// Checks the fields: finite, non-negative rates, `warmup_factor` in `[0, 1]`, `gamma` in
    /// `(0, 1]`, ascending milestones, `total_iters > 0`.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "LrSchedule";
        let nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !nonneg(self.base_lr) {
            return Err(config_err(
                OP,
                "base_lr",
                format!("{} must be finite and >= 0", self.base_lr),
            ));
        }
        if !nonneg(self.min_lr) {
            return Err(config_err(
                OP,
                "min_lr",
                format!("{} must be finite and >= 0", self.min_lr),
            ));
        }
        if !(0.0..=1.0).contains(&self.warmup_factor) {
            return Err(config_err(
                OP,
                "warmup_factor",
                format!("{} must be in [0, 1]", self.warmup_factor),
            ));
        }
        match &self.decay {
            LrDecay::Constant => {}
            LrDecay::MultiStep { milestones, gamma } => {
                if !(gamma.is_finite() && *gamma > 0.0 && *gamma <= 1.0) {
                    return Err(config_err(
                        OP,
                        "gamma",
                        format!("{gamma} must be in (0, 1]"),
                    ));
                }
                if milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(config_err(
                        OP,
                        "milestones",
                        format!("{milestones:?} must be strictly ascending"),
                    ));
                }
            }
            LrDecay::Cosine { total_iters } => {
                if *total_iters == 0 {
                    return Err(config_err(OP, "total_iters", "must be > 0"));
                }
            }
        }
        Ok(())
    }

    /// The learning rate of iteration `iteration` (0-based).
    pub fn lr_at(&self, iteration: usize) -> f64 {
        let warm = if iteration < self.warmup_iters {
            let alpha = iteration as f64 / self.warmup_iters as f64;
            self.warmup_factor * (1.0 - alpha) + alpha
        } else {
            1.0
        };
        let decayed = match &self.decay {
            LrDecay::Constant => self.base_lr,
            LrDecay::MultiStep { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| m <= iteration).count();
                self.base_lr * gamma.powi(passed as i32)
            }
            LrDecay::Cosine { total_iters } => {
                let t = iteration.min(*total_iters) as f64 / *total_iters as f64;
                let lo = self.min_lr.min(self.base_lr);
                lo + (self.base_lr - lo) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        };
        (warm * decayed).max(self.min_lr)
    }
}
