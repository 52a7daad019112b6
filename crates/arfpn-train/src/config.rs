//! The settings of a training run: [`TrainConfig`] (steps, batch, optimizer, schedule,
//! clipping, evaluation, checkpoints, augmentation, oversampling) and the schedule the
//! commands use ([`step_schedule`]).

use arfpn_kernels::MatmulPrecision;
use arfpn_nn::{LrDecay, LrSchedule};
use serde::{Deserialize, Serialize};

use crate::AugmentConfig;
use arfpn_model::{DetectorError, Result};

#[cfg(doc)]
use arfpn_model::Detector;
#[cfg(doc)]
use arfpn_nn::{Adam, SgdMomentum};

/// Which optimizer, with its settings (the learning rate comes from the schedule).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// Momentum SGD ([`SgdMomentum`]).
    Sgd {
        /// Momentum factor; 0 is plain SGD.
        momentum: f64,
        /// L2 penalty coefficient added to the gradients (biases and normalisation
        /// parameters are left out unless [`TrainConfig::decay_norm_and_bias`]).
        weight_decay: f64,
        /// Nesterov momentum (needs `momentum > 0`).
        nesterov: bool,
    },
    /// Adam ([`Adam`]).
    Adam {
        /// Decay rate of the first-moment (mean) estimate, in `[0, 1)`.
        beta1: f64,
        /// Decay rate of the second-moment estimate, in `[0, 1)`.
        beta2: f64,
        /// Added to the denominator for numerical stability, > 0.
        eps: f64,
        /// L2 penalty coefficient added to the gradients before the moments (not decoupled
        /// as in AdamW); biases and normalisation parameters are left out unless
        /// [`TrainConfig::decay_norm_and_bias`].
        weight_decay: f64,
    },
}

impl Default for OptimizerConfig {
    /// The paper's momentum SGD: momentum 0.9, weight decay 1e-4.
    fn default() -> Self {
        Self::Sgd {
            momentum: 0.9,
            weight_decay: 1e-4,
            nesterov: false,
        }
    }
}

/// Rare-class oversampling (see [`TrainConfig::oversample`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OversampleConfig {
    /// A class is rare when its share of all training objects is below this (e.g. 0.05).
    pub max_share: f32,
    /// Extra appearances per epoch of an image holding a rare class.
    pub copies: usize,
}

/// Every setting of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Optimizer steps in the run.
    pub steps: usize,
    /// Images per step (of any sizes; padded into one batch).
    pub batch_size: usize,
    /// The optimizer and its settings (momentum SGD by default).
    pub optimizer: OptimizerConfig,
    /// Learning rate per step (warm-up, then decay), evaluated at the 0-based index of the
    /// step about to run; see also [`step_schedule`].
    pub schedule: LrSchedule,
    /// Apply weight decay to biases and normalisation parameters too (detectron2: no).
    pub decay_norm_and_bias: bool,
    /// Clip the global gradient L2 norm to this value.
    pub clip_grad_norm: Option<f64>,
    /// Train on fixed overlapping crops of every image instead of whole images (the
    /// paper: 500×375 with 30 % overlap, `TileConfig::default()`); each crop is one item of
    /// the data order, and [`augment`](Self::augment) then applies to the crops.
    pub tiles: Option<arfpn_voc::tiling::TileConfig>,
    /// Flips and random crops applied to each training image (or crop) every time it is
    /// drawn.
    pub augment: AugmentConfig,
    /// The paper's rare-class oversampling: images holding a class whose share of all
    /// training objects is below `max_share` appear `1 + copies` times per epoch (each copy
    /// augmented anew, flips included).
    pub oversample: Option<OversampleConfig>,
    /// Seed of the data order, augmentation and sampling (the weights have their own).
    pub seed: u64,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Checkpoints kept in `checkpoints/` (the oldest are removed).
    pub keep_last: usize,
    /// Evaluate on the validation data every this many steps (and at the end).
    pub eval_every: Option<usize>,
    /// Stop when this many evaluations in a row did not improve the best mAP.
    pub early_stop_patience: Option<usize>,
    /// Stop with an error after this many non-finite steps in a row.
    pub max_bad_steps: usize,
    /// Log losses every this many steps.
    pub log_every: usize,
    /// Precision of the convolutions' and linear layers' products in the training steps
    /// (forward and backward): f32, or bf16 with f32 accumulation on CPUs with Intel AMX
    /// (see [`arfpn_kernels::with_matmul_precision`]). Evaluation during training follows the
    /// detector's own setting ([`Detector::set_matmul_precision`]).
    pub precision: MatmulPrecision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 1,
            optimizer: OptimizerConfig::default(),
            schedule: LrSchedule {
                base_lr: 0.01,
                warmup_iters: 100,
                warmup_factor: 0.001,
                decay: LrDecay::MultiStep {
                    milestones: vec![600, 800],
                    gamma: 0.1,
                },
                min_lr: 1e-6,
            },
            decay_norm_and_bias: false,
            clip_grad_norm: Some(10.0),
            tiles: None,
            augment: AugmentConfig::default(),
            oversample: None,
            seed: 0,
            checkpoint_every: 500,
            keep_last: 2,
            eval_every: None,
            early_stop_patience: None,
            max_bad_steps: 20,
            log_every: 20,
            precision: MatmulPrecision::F32,
        }
    }
}

impl TrainConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, r: &str| Err(DetectorError::config(format!("train.{f}"), r));
        if self.steps == 0 {
            return bad("steps", "must be >= 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be >= 1");
        }
        if self.checkpoint_every == 0 || self.keep_last == 0 || self.log_every == 0 {
            return bad("checkpoint_every/keep_last/log_every", "must be >= 1");
        }
        if self.eval_every == Some(0) {
            return bad("eval_every", "must be >= 1");
        }
        if self.max_bad_steps == 0 {
            return bad("max_bad_steps", "must be >= 1");
        }
        if let Some(c) = self.clip_grad_norm {
            if !(c.is_finite() && c > 0.0) {
                return bad("clip_grad_norm", "must be finite and > 0");
            }
        }
        if let Some([w, h]) = self.augment.crop {
            if w < 32 || h < 32 {
                return bad("augment.crop", "crops must be at least 32×32");
            }
        }
        if let Some(t) = &self.tiles {
            t.validate()
                .map_err(|e| DetectorError::config("train.tiles", e.to_string()))?;
        }
        if let Some(o) = self.oversample {
            if !(o.max_share > 0.0 && o.max_share <= 1.0) || o.copies == 0 || o.copies > 100 {
                return bad(
                    "oversample",
                    "max_share must be in (0, 1] and copies in 1..=100",
                );
            }
        }
        if !(0.0..=1.0).contains(&self.augment.min_visible) {
            return bad("augment.min_visible", "must be in [0, 1]");
        }
        self.schedule
            .validate()
            .map_err(|e| DetectorError::config("train.schedule", e.to_string()))
    }
}

/// The schedule the commands use: linear warm-up over a tenth of the run (at most 500
/// steps) from 1 % of `base_lr`, then ÷10 at 3/4 and again at 9/10 of the run (detectron2's
/// recipe scaled to the run), floor 1e-6. Valid for any `steps >= 1`.
///
/// ```
/// let s = arfpn_train::step_schedule(0.02, 1000);
/// assert_eq!(s.lr_at(500), 0.02);
/// assert!((s.lr_at(800) - 0.002).abs() < 1e-12);
/// let tiny = arfpn_train::step_schedule(0.02, 2); // milestones stay strictly ascending
/// assert!(tiny.validate().is_ok());
/// ```
pub fn step_schedule(base_lr: f64, steps: usize) -> LrSchedule {
    let first = (steps * 3 / 4).max(1);
    let second = (steps * 9 / 10).max(first + 1);
    LrSchedule {
        base_lr,
        warmup_iters: (steps / 10).min(500),
        warmup_factor: 0.01,
        decay: LrDecay::MultiStep {
            milestones: vec![first, second],
            gamma: 0.1,
        },
        min_lr: 1e-6,
    }
}
