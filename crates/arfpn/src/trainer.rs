//! [`Trainer`]: seeded data order and augmentation, momentum SGD or Adam with a warm-up
//! schedule, gradient clipping, a NaN/inf guard, periodic evaluation, and checkpoints that
//! resume bit for bit.
//!
//! A run directory holds `checkpoints/step-XXXXXXXX.safetensors` (the last
//! [`TrainConfig::keep_last`]), `best.safetensors` (highest validation mAP) and `log.jsonl`
//! (one JSON object per logged step and per evaluation).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arfpn_boxes::{Detections, GroundTruth, ImageSize, SplitMix64};
use arfpn_kernels::{with_matmul_precision, MatmulPrecision};
use arfpn_nn::{Adam, AdamConfig, ImageBatch, LrDecay, LrSchedule, SgdConfig, SgdMomentum};
use arfpn_voc::{RgbImage, VocDataset};
use candle_core::Var;
use candle_nn::Optimizer;
use serde::{Deserialize, Serialize};

use crate::augment::{augment, AugmentConfig};
use crate::checkpoint::{Checkpoint, CheckpointState};
use crate::{image_tensor, voc_map, Detector, DetectorError, LossValues, Result};

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

/// The entries of one epoch before shuffling: every image once, and images holding a rare
/// class `copies` more times.
pub fn epoch_entries(
    data: &dyn TrainData,
    num_classes: usize,
    oversample: Option<OversampleConfig>,
) -> Result<Vec<usize>> {
    let mut entries: Vec<usize> = (0..data.len()).collect();
    let Some(o) = oversample else {
        return Ok(entries);
    };
    let truth = (0..data.len())
        .map(|i| data.ground_truth(i))
        .collect::<Result<Vec<_>>>()?;
    let mut counts = vec![0usize; num_classes];
    for g in &truth {
        for c in &g.classes {
            if let Some(n) = counts.get_mut(c.index()) {
                *n += 1;
            }
        }
    }
    let total: usize = counts.iter().sum();
    let rare: Vec<bool> = counts
        .iter()
        .map(|&n| n > 0 && (n as f32) < o.max_share * total as f32)
        .collect();
    for (i, g) in truth.iter().enumerate() {
        if g.classes
            .iter()
            .any(|c| rare.get(c.index()).copied().unwrap_or(false))
        {
            entries.extend(std::iter::repeat_n(i, o.copies));
        }
    }
    Ok(entries)
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
/// let s = arfpn::step_schedule(0.02, 1000);
/// assert_eq!(s.lr_at(500), 0.02);
/// assert!((s.lr_at(800) - 0.002).abs() < 1e-12);
/// let tiny = arfpn::step_schedule(0.02, 2); // milestones stay strictly ascending
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

/// Training or validation images with their ground truth.
pub trait TrainData: Send + Sync {
    /// Number of items (images, or crops for [`TiledData`](crate::TiledData)); indices run
    /// over `0..len()`.
    fn len(&self) -> usize;
    /// Whether there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Image `index` (decoded) and its ground truth.
    fn get(&self, index: usize) -> Result<(RgbImage, GroundTruth)>;
    /// Only the ground truth of image `index` (override when it can skip decoding).
    fn ground_truth(&self, index: usize) -> Result<GroundTruth> {
        Ok(self.get(index)?.1)
    }
    /// The size of image `index` (override when it can skip decoding).
    fn image_size(&self, index: usize) -> Result<ImageSize> {
        let (w, h) = self.get(index)?.0.dimensions();
        Ok(ImageSize::new(h as usize, w as usize))
    }
}

impl TrainData for Box<dyn TrainData> {
    fn len(&self) -> usize {
        self.as_ref().len()
    }
    fn get(&self, index: usize) -> Result<(RgbImage, GroundTruth)> {
        self.as_ref().get(index)
    }
    fn ground_truth(&self, index: usize) -> Result<GroundTruth> {
        self.as_ref().ground_truth(index)
    }
    fn image_size(&self, index: usize) -> Result<ImageSize> {
        self.as_ref().image_size(index)
    }
}

/// Decoded images held in memory.
impl TrainData for Vec<(RgbImage, GroundTruth)> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn get(&self, index: usize) -> Result<(RgbImage, GroundTruth)> {
        self.as_slice()
            .get(index)
            .cloned()
            .ok_or_else(|| DetectorError::input("index", format!("{index} >= {}", self.len())))
    }
}

/// A VOC split, decoded on demand (difficult objects are trained on, as torchvision does).
impl TrainData for VocDataset {
    fn len(&self) -> usize {
        VocDataset::len(self)
    }
    fn get(&self, index: usize) -> Result<(RgbImage, GroundTruth)> {
        let loaded = self.load(index)?;
        let gt = GroundTruth {
            boxes: loaded.sample.boxes(),
            classes: loaded.sample.classes(),
        };
        Ok((loaded.image, gt))
    }
    fn ground_truth(&self, index: usize) -> Result<GroundTruth> {
        let s = self.samples().get(index).ok_or_else(|| {
            DetectorError::input("index", format!("{index} >= {}", self.samples().len()))
        })?;
        Ok(GroundTruth {
            boxes: s.boxes(),
            classes: s.classes(),
        })
    }
    fn image_size(&self, index: usize) -> Result<ImageSize> {
        // The annotation's size; loading checks that the image agrees.
        let s = self.samples().get(index).ok_or_else(|| {
            DetectorError::input("index", format!("{index} >= {}", self.samples().len()))
        })?;
        Ok(ImageSize::new(s.height as usize, s.width as usize))
    }
}

/// One logged training step: sent every [`TrainConfig::log_every`] steps and after the
/// run's last step, for steps that updated the weights (a skipped step sends a
/// [`SkipEvent`] instead); also written to `log.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct StepEvent {
    /// The step just done, counted from 1 (so also the number of steps done, resumed runs
    /// included).
    pub step: usize,
    /// The run's total step count ([`TrainConfig::steps`]).
    pub steps: usize,
    /// The losses of this step's batch alone (not averaged), before the weight update.
    pub losses: LossValues,
    /// The learning rate this step used.
    pub lr: f64,
    /// Global L2 norm of the gradient over the trainable variables, before clipping.
    pub grad_norm: f64,
    /// Images per second since the previous `StepEvent` (or the start of
    /// [`Trainer::run`]), counting skipped steps' images and the time spent evaluating and
    /// checkpointing in between.
    pub images_per_s: f64,
    /// Seconds since this [`Trainer::run`] call started (time before a resume not included).
    pub elapsed_s: f64,
    /// Estimated seconds until `steps`, at this `run` call's average time per step.
    pub eta_s: f64,
}

/// One evaluation on the validation data (whole images, one at a time): sent every
/// [`TrainConfig::eval_every`] steps and after the run's last step, when validation data
/// was given; also written to `log.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct EvalEvent {
    /// Steps done when the evaluation ran (counted from 1, as [`StepEvent::step`]).
    pub step: usize,
    /// VOC all-point mAP@0.5, in `[0, 1]`; 0 when no class has validation ground truth.
    pub map50: f64,
    /// `(class, AP)` for classes with ground truth.
    pub per_class: Vec<(String, f64)>,
    /// Whether `map50` beats every earlier evaluation of the run (the first always does);
    /// the trainer then writes `best.safetensors`. Otherwise the evaluation counts towards
    /// [`TrainConfig::early_stop_patience`].
    pub best: bool,
}

/// A skipped step: its loss or gradient was not finite, so the weights were not updated.
/// Sent for every such step; after [`TrainConfig::max_bad_steps`] in a row the trainer
/// writes a checkpoint and stops with [`DetectorError::Diverged`].
#[derive(Clone, Debug, Serialize)]
pub struct SkipEvent {
    /// The skipped step, counted from 1 (it still counts as done).
    pub step: usize,
    /// The non-finite loss terms, by their [`LossValues`] names (`loss_objectness`, …,
    /// `total`), or `["gradient"]` when the losses were finite but the gradient norm was not.
    pub terms: Vec<String>,
    /// Steps skipped so far in the run, resumed runs included.
    pub skipped_total: usize,
}

/// Receives the trainer's events (a progress bar, a GUI, a test). Every method has an
/// empty default.
pub trait TrainObserver {
    /// A logged step (see [`StepEvent`] for when), after it is written to `log.jsonl`.
    fn on_step(&mut self, _event: &StepEvent) {}
    /// An evaluation (see [`EvalEvent`] for when), after it is written to `log.jsonl` and
    /// before `best.safetensors` is written.
    fn on_eval(&mut self, _event: &EvalEvent) {}
    /// A skipped step, after it is written to `log.jsonl`.
    fn on_skip(&mut self, _event: &SkipEvent) {}
    /// A checkpoint written to `path` (`checkpoints/step-XXXXXXXX.safetensors`) after `step`
    /// steps: every [`TrainConfig::checkpoint_every`] steps, at the end of the run and
    /// before stopping on divergence (not for `best.safetensors`).
    fn on_checkpoint(&mut self, _step: usize, _path: &Path) {}
}

/// An observer that does nothing.
pub struct Silent;
impl TrainObserver for Silent {}

/// How a run ended.
#[derive(Clone, Debug, Serialize)]
pub struct TrainSummary {
    /// Steps done in the whole run (resumed runs included, skipped steps counted).
    pub steps_done: usize,
    /// Steps skipped for non-finite losses or gradients in the whole run.
    pub skipped_steps: usize,
    /// The best validation mAP@0.5 of the run; `None` if it never evaluated.
    pub best_map50: Option<f64>,
    /// The checkpoint written at the end of the run.
    pub last_checkpoint: Option<PathBuf>,
    /// Stopped because [`TrainConfig::early_stop_patience`] evaluations in a row did not
    /// improve the best mAP.
    pub stopped_early: bool,
    /// Stopped because the [`stop_flag`](Trainer::stop_flag) was set.
    pub interrupted: bool,
    /// Seconds this [`Trainer::run`] call took.
    pub wall_s: f64,
}

enum Opt {
    Sgd(SgdMomentum),
    Adam(Adam),
}

impl Opt {
    fn set_lr(&mut self, lr: f64) {
        match self {
            Opt::Sgd(o) => o.set_learning_rate(lr),
            Opt::Adam(o) => o.set_learning_rate(lr),
        }
    }
    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        match self {
            Opt::Sgd(o) => o.step(grads)?,
            Opt::Adam(o) => o.step(grads)?,
        }
        Ok(())
    }
}

/// Where the trainer is: everything besides weights and optimizer buffers that a resume
/// needs (stored as JSON in the checkpoint metadata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Progress {
    step: usize,
    rng: u64,
    epoch: u64,
    position: usize,
    skipped_total: usize,
    bad_in_a_row: usize,
    best_map50: Option<f64>,
    evals_without_improvement: usize,
    config: TrainConfig,
}

const PROGRESS_KEY: &str = "trainer.progress";

/// Trains a [`Detector`] (see the module docs).
pub struct Trainer {
    detector: Detector,
    config: TrainConfig,
    train: Box<dyn TrainData>,
    val: Option<Box<dyn TrainData>>,
    run_dir: PathBuf,
    vars: Vec<(String, Var)>,
    opt: Opt,
    progress: Progress,
    /// One epoch's entries (image indices, rare-class images repeated) and this epoch's order.
    entries: Vec<usize>,
    order: Vec<usize>,
    stop: Arc<AtomicBool>,
}

impl Trainer {
    /// A new run in `run_dir` (created; must not already hold checkpoints — resume those
    /// with [`Trainer::resume`]).
    pub fn new(
        mut detector: Detector,
        config: TrainConfig,
        train: Box<dyn TrainData>,
        val: Option<Box<dyn TrainData>>,
        run_dir: impl AsRef<Path>,
    ) -> Result<Self> {
        let run_dir = run_dir.as_ref().to_path_buf();
        if latest_checkpoint(&run_dir)?.is_some() {
            return Err(DetectorError::run_dir(
                &run_dir,
                "it already holds checkpoints: resume it, or choose a new folder",
            ));
        }
        if detector.config().data.cell_size_px.is_none() {
            // Record the training scale (for magnification-aware detection): the annotated
            // cell size, and the cell-size estimate of up to 16 evenly spread images, the
            // like-for-like reference for the estimate of an input image.
            let truth = (0..train.len())
                .map(|i| train.ground_truth(i))
                .collect::<Result<Vec<_>>>()?;
            let n = train.len();
            let sample = n.min(16);
            let images = (0..sample)
                .map(|k| Ok(train.get(k * n / sample)?.0))
                .collect::<Result<Vec<_>>>()?;
            let info = crate::DataInfo {
                cell_size_px: crate::typical_cell_size(&truth),
                estimated_cell_px: crate::median_cell_estimate(&images),
                ..detector.config().data
            };
            detector.set_data_info(info);
        }
        let progress = Progress {
            step: 0,
            rng: config.seed,
            epoch: 0,
            position: 0,
            skipped_total: 0,
            bad_in_a_row: 0,
            best_map50: None,
            evals_without_improvement: 0,
            config: config.clone(),
        };
        Self::build(detector, progress, train, val, run_dir)
    }

    /// Continues the run in `run_dir` from its latest checkpoint, exactly where it stopped
    /// (same weights, optimizer buffers, data order, augmentation and sampling draws).
    /// `steps`, when given, replaces the run's total step count.
    pub fn resume(
        run_dir: impl AsRef<Path>,
        train: Box<dyn TrainData>,
        val: Option<Box<dyn TrainData>>,
        device: &candle_core::Device,
        steps: Option<usize>,
    ) -> Result<Self> {
        let run_dir = run_dir.as_ref().to_path_buf();
        let path = latest_checkpoint(&run_dir)?
            .ok_or_else(|| DetectorError::run_dir(&run_dir, "it holds no checkpoint to resume"))?;
        let ckpt = Checkpoint::read(&path, device)?;
        let mut progress: Progress = ckpt
            .state
            .metadata
            .get(PROGRESS_KEY)
            .ok_or_else(|| DetectorError::checkpoint(&path, "no trainer state in it"))
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| {
                    DetectorError::checkpoint(&path, format!("unusable trainer state: {e}"))
                })
            })?;
        if let Some(s) = steps {
            progress.config.steps = s;
        }
        let detector = Detector::new(ckpt.config.clone(), 0, device)?;
        let report = detector.set_weights(&path, &ckpt.weights)?;
        if !report.is_complete() {
            return Err(DetectorError::checkpoint(&path, report.to_string()));
        }
        let mut trainer = Self::build(detector, progress, train, val, run_dir)?;
        trainer.restore_optimizer(&path, &ckpt.state)?;
        Ok(trainer)
    }

    fn build(
        detector: Detector,
        progress: Progress,
        train: Box<dyn TrainData>,
        val: Option<Box<dyn TrainData>>,
        run_dir: PathBuf,
    ) -> Result<Self> {
        let config = progress.config.clone();
        config.validate()?;
        let train: Box<dyn TrainData> = match config.tiles {
            Some(tiles) => Box::new(crate::TiledData::new(train, tiles)?),
            None => train,
        };
        if train.is_empty() {
            return Err(DetectorError::input("train", "the training data is empty"));
        }
        std::fs::create_dir_all(run_dir.join("checkpoints"))
            .map_err(|e| DetectorError::io(run_dir.join("checkpoints"), e))?;
        let trainable: std::collections::HashSet<_> = detector
            .trainable_vars()
            .iter()
            .map(|v| v.as_tensor().id())
            .collect();
        let vars: Vec<(String, Var)> = detector
            .vars()
            .named_vars()
            .into_iter()
            .filter(|(_, v)| trainable.contains(&v.as_tensor().id()))
            .collect();
        let list: Vec<Var> = vars.iter().map(|(_, v)| v.clone()).collect();
        let no_decay = detector.no_decay_vars();
        let opt = match config.optimizer {
            OptimizerConfig::Sgd {
                momentum,
                weight_decay,
                nesterov,
            } => {
                let mut o = SgdMomentum::new(
                    list,
                    SgdConfig {
                        lr: config.schedule.lr_at(0),
                        momentum,
                        weight_decay,
                        nesterov,
                    },
                )?;
                if !config.decay_norm_and_bias {
                    o.exclude_from_weight_decay(&no_decay);
                }
                Opt::Sgd(o)
            }
            OptimizerConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let mut o = Adam::new(
                    list,
                    AdamConfig {
                        lr: config.schedule.lr_at(0),
                        beta1,
                        beta2,
                        eps,
                        weight_decay,
                    },
                )?;
                if !config.decay_norm_and_bias {
                    o.exclude_from_weight_decay(&no_decay);
                }
                Opt::Adam(o)
            }
        };
        let entries = epoch_entries(train.as_ref(), detector.classes().len(), config.oversample)?;
        let order = epoch_order(config.seed, progress.epoch, &entries);
        Ok(Self {
            detector,
            config,
            train,
            val,
            run_dir,
            vars,
            opt,
            progress,
            entries,
            order,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The detector being trained (its weights are the latest step's).
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Gives the detector back (after [`run`](Self::run)).
    pub fn into_detector(self) -> Detector {
        self.detector
    }

    /// The training settings in effect; for a resumed run, those stored in its checkpoint
    /// (with `steps` replaced when [`resume`](Self::resume) was given one).
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Steps done so far.
    pub fn step(&self) -> usize {
        self.progress.step
    }

    /// Set this flag (e.g. from a SIGINT handler) to stop after the current step with a
    /// final checkpoint.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Trains until `steps` (or early stop, or the stop flag), checkpointing and evaluating
    /// as configured; writes a final checkpoint.
    pub fn run(&mut self, observer: &mut dyn TrainObserver) -> Result<TrainSummary> {
        let t0 = Instant::now();
        let mut log = LogFile::open(&self.run_dir.join("log.jsonl"))?;
        let mut last_checkpoint = None;
        let mut stopped_early = false;
        let mut interrupted = false;
        let mut window = (Instant::now(), 0usize);
        let start_step = self.progress.step;
        while self.progress.step < self.config.steps {
            if self.stop.load(Ordering::Relaxed) {
                interrupted = true;
                break;
            }
            let step = self.progress.step;
            let lr = self.config.schedule.lr_at(step);
            self.opt.set_lr(lr);
            let outcome = self.train_step()?;
            self.progress.step += 1;
            window.1 += self.config.batch_size;
            match outcome {
                StepOutcome::Done { losses, grad_norm } => {
                    self.progress.bad_in_a_row = 0;
                    if self.progress.step.is_multiple_of(self.config.log_every)
                        || self.progress.step == self.config.steps
                    {
                        let elapsed = t0.elapsed().as_secs_f64();
                        let done = (self.progress.step - start_step) as f64;
                        let ev = StepEvent {
                            step: self.progress.step,
                            steps: self.config.steps,
                            losses,
                            lr,
                            grad_norm,
                            images_per_s: window.1 as f64 / window.0.elapsed().as_secs_f64(),
                            elapsed_s: elapsed,
                            eta_s: elapsed / done * (self.config.steps - self.progress.step) as f64,
                        };
                        window = (Instant::now(), 0);
                        log.write(&serde_json::json!({"event": "step", "data": &ev}))?;
                        observer.on_step(&ev);
                    }
                }
                StepOutcome::Skipped(terms) => {
                    self.progress.skipped_total += 1;
                    self.progress.bad_in_a_row += 1;
                    let ev = SkipEvent {
                        step: step + 1,
                        terms,
                        skipped_total: self.progress.skipped_total,
                    };
                    log.write(&serde_json::json!({"event": "skip", "data": &ev}))?;
                    observer.on_skip(&ev);
                    if self.progress.bad_in_a_row >= self.config.max_bad_steps {
                        let path = self.write_checkpoint()?;
                        observer.on_checkpoint(self.progress.step, &path);
                        return Err(DetectorError::Diverged {
                            bad_steps: self.progress.bad_in_a_row,
                            step: ev.step,
                            terms: ev.terms.join(", "),
                            checkpoint: path,
                        });
                    }
                }
            }
            let at_end = self.progress.step == self.config.steps;
            if let Some(every) = self.config.eval_every {
                if self.val.is_some() && (self.progress.step.is_multiple_of(every) || at_end) {
                    let ev = self.evaluate_now()?;
                    log.write(&serde_json::json!({"event": "eval", "data": &ev}))?;
                    observer.on_eval(&ev);
                    if ev.best {
                        let best = self.run_dir.join("best.safetensors");
                        self.detector.save(&best)?;
                    } else if let Some(p) = self.config.early_stop_patience {
                        if self.progress.evals_without_improvement >= p {
                            stopped_early = true;
                        }
                    }
                }
            }
            if self
                .progress
                .step
                .is_multiple_of(self.config.checkpoint_every)
                && !at_end
            {
                let path = self.write_checkpoint()?;
                observer.on_checkpoint(self.progress.step, &path);
                last_checkpoint = Some(path);
            }
            if stopped_early {
                break;
            }
        }
        let path = self.write_checkpoint()?;
        observer.on_checkpoint(self.progress.step, &path);
        last_checkpoint = Some(path).or(last_checkpoint);
        drop(log);
        plot_log(&self.run_dir)?;
        Ok(TrainSummary {
            steps_done: self.progress.step,
            skipped_steps: self.progress.skipped_total,
            best_map50: self.progress.best_map50,
            last_checkpoint,
            stopped_early,
            interrupted,
            wall_s: t0.elapsed().as_secs_f64(),
        })
    }

    /// The next `batch_size` image indices in the seeded epoch order.
    fn next_indices(&mut self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.config.batch_size);
        while out.len() < self.config.batch_size {
            if self.progress.position >= self.order.len() {
                self.progress.epoch += 1;
                self.progress.position = 0;
                self.order = epoch_order(self.config.seed, self.progress.epoch, &self.entries);
            }
            out.push(self.order[self.progress.position]);
            self.progress.position += 1;
        }
        out
    }

    fn train_step(&mut self) -> Result<StepOutcome> {
        let mut rng = SplitMix64::new(self.progress.rng);
        let mut images = Vec::new();
        let mut truth = Vec::new();
        for i in self.next_indices() {
            let (img, gt) = self.train.get(i)?;
            let (img, gt) = augment(&img, &gt, &self.config.augment, &mut rng);
            images.push(image_tensor(&img, self.detector.device())?);
            truth.push(gt);
        }
        let batch = ImageBatch::from_images(&images, 1)?;
        let precision = self.config.precision;
        let losses = with_matmul_precision(precision, || {
            self.detector.forward_train(&batch, &truth, &mut rng)
        })?;
        self.progress.rng = rng.state();
        let values = losses.values()?;
        let bad = values.non_finite();
        if !bad.is_empty() {
            return Ok(StepOutcome::Skipped(
                bad.into_iter().map(String::from).collect(),
            ));
        }
        let mut grads = with_matmul_precision(precision, || losses.total.backward())?;
        let mut sq = 0f64;
        for (_, v) in &self.vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                sq += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        let norm = sq.sqrt();
        if !norm.is_finite() {
            return Ok(StepOutcome::Skipped(vec!["gradient".into()]));
        }
        if let Some(max) = self.config.clip_grad_norm {
            if norm > max {
                let scale = max / (norm + 1e-6);
                for (_, v) in &self.vars {
                    if let Some(g) = grads.remove(v.as_tensor()) {
                        grads.insert(v.as_tensor(), (g * scale)?);
                    }
                }
            }
        }
        self.opt.step(&grads)?;
        Ok(StepOutcome::Done {
            losses: values,
            grad_norm: norm,
        })
    }

    /// Evaluates on the validation data (full images) and updates the best mAP.
    fn evaluate_now(&mut self) -> Result<EvalEvent> {
        let Some(val) = &self.val else {
            return Err(DetectorError::input("val", "no validation data"));
        };
        let (dets, truth) = detect_all(&self.detector, val.as_ref())?;
        let result = voc_map(self.detector.classes(), &dets, &truth)?;
        let map50 = result.map.unwrap_or(0.0);
        let per_class = result
            .per_class
            .iter()
            .zip(self.detector.classes())
            .filter_map(|(c, n)| c.ap.map(|ap| (n.clone(), ap)))
            .collect();
        let best = self.progress.best_map50.is_none_or(|b| map50 > b);
        if best {
            self.progress.best_map50 = Some(map50);
            self.progress.evals_without_improvement = 0;
        } else {
            self.progress.evals_without_improvement += 1;
        }
        Ok(EvalEvent {
            step: self.progress.step,
            map50,
            per_class,
            best,
        })
    }

    /// Writes `checkpoints/step-XXXXXXXX.safetensors` and prunes old ones.
    fn write_checkpoint(&self) -> Result<PathBuf> {
        let dir = self.run_dir.join("checkpoints");
        let path = dir.join(format!("step-{:08}.safetensors", self.progress.step));
        let mut state = CheckpointState::default();
        match &self.opt {
            Opt::Sgd(o) => {
                for ((name, _), b) in self.vars.iter().zip(o.momentum_buffers()?) {
                    if let Some(b) = b {
                        state.tensors.push((format!("state.sgd.{name}"), b));
                    }
                }
            }
            Opt::Adam(o) => {
                for ((name, _), (m, v, steps)) in self.vars.iter().zip(o.state()) {
                    if let (Some(m), Some(v)) = (m, v) {
                        state.tensors.push((format!("state.adam_m.{name}"), m));
                        state.tensors.push((format!("state.adam_v.{name}"), v));
                        state
                            .metadata
                            .insert(format!("trainer.adam_steps.{name}"), steps.to_string());
                    }
                }
            }
        }
        let progress = serde_json::to_string(&self.progress).map_err(|e| {
            DetectorError::checkpoint(&path, format!("cannot encode the trainer state: {e}"))
        })?;
        state.metadata.insert(PROGRESS_KEY.into(), progress);
        self.detector.save_with_state(&path, &state)?;
        let mut all = list_checkpoints(&self.run_dir)?;
        while all.len() > self.config.keep_last {
            let old = all.remove(0);
            std::fs::remove_file(&old).map_err(|e| DetectorError::io(&old, e))?;
        }
        Ok(path)
    }

    /// Restores the optimizer's buffers from the checkpoint state already read by `resume`.
    fn restore_optimizer(&mut self, path: &Path, saved: &CheckpointState) -> Result<()> {
        let find = |key: String| {
            saved
                .tensors
                .iter()
                .find(|(n, _)| *n == key)
                .map(|(_, t)| t.clone())
        };
        match &mut self.opt {
            Opt::Sgd(o) => {
                let bufs = self
                    .vars
                    .iter()
                    .map(|(name, _)| find(format!("state.sgd.{name}")))
                    .collect();
                o.set_momentum_buffers(bufs)
                    .map_err(|e| DetectorError::checkpoint(path, e.to_string()))?;
            }
            Opt::Adam(o) => {
                let state = self
                    .vars
                    .iter()
                    .map(|(name, _)| {
                        let steps = saved
                            .metadata
                            .get(&format!("trainer.adam_steps.{name}"))
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        (
                            find(format!("state.adam_m.{name}")),
                            find(format!("state.adam_v.{name}")),
                            steps,
                        )
                    })
                    .collect();
                o.set_state(state)
                    .map_err(|e| DetectorError::checkpoint(path, e.to_string()))?;
            }
        }
        Ok(())
    }
}

enum StepOutcome {
    Done { losses: LossValues, grad_norm: f64 },
    Skipped(Vec<String>),
}

/// The order of epoch `epoch`: a seeded shuffle of the epoch's entries.
fn epoch_order(seed: u64, epoch: u64, entries: &[usize]) -> Vec<usize> {
    let mut idx: Vec<usize> = entries.to_vec();
    SplitMix64::new(seed ^ 0x5eed_0000_0000_0000 ^ epoch.wrapping_mul(0x9e37_79b9))
        .shuffle(&mut idx);
    idx
}

/// Runs the detector on every image of `data` (one at a time) and returns the detections
/// with the ground truth.
pub fn detect_all(
    detector: &Detector,
    data: &dyn TrainData,
) -> Result<(Vec<Detections>, Vec<GroundTruth>)> {
    let mut dets = Vec::with_capacity(data.len());
    let mut truth = Vec::with_capacity(data.len());
    for i in 0..data.len() {
        let (img, gt) = data.get(i)?;
        dets.push(detector.detect_image(&image_tensor(&img, detector.device())?)?);
        truth.push(gt);
    }
    Ok((dets, truth))
}

fn list_checkpoints(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = run_dir.join("checkpoints");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(DetectorError::io(&dir, e)),
    };
    for e in entries {
        let e = e.map_err(|err| DetectorError::io(&dir, err))?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("step-") && name.ends_with(".safetensors") {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The newest checkpoint of a run, if any.
pub fn latest_checkpoint(run_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list_checkpoints(run_dir)?.pop())
}

/// Draws `loss.png` (the loss terms against the step) and, when the run evaluated,
/// `map.png` (validation mAP@0.5) from the run's `log.jsonl`.
pub fn plot_log(run_dir: &Path) -> Result<()> {
    let log = run_dir.join("log.jsonl");
    let text = std::fs::read_to_string(&log).map_err(|e| DetectorError::io(&log, e))?;
    // (name in the plot and in today's logs, name in logs written before the rename)
    let terms = [
        ("total", "total"),
        ("loss_objectness", "rpn_objectness"),
        ("loss_rpn_box_reg", "rpn_box"),
        ("loss_classifier", "cls"),
        ("loss_box_reg", "box"),
    ];
    let mut losses: Vec<(String, Vec<(f64, f64)>)> = terms
        .iter()
        .map(|t| (t.0.to_string(), Vec::new()))
        .collect();
    let mut map = vec![("val mAP@0.5".to_string(), Vec::new())];
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue; // a line cut by a crash
        };
        let data = &v["data"];
        let Some(step) = data["step"].as_f64() else {
            continue;
        };
        match v["event"].as_str() {
            Some("step") => {
                for (k, (t, old)) in terms.iter().enumerate() {
                    let l = &data["losses"];
                    if let Some(x) = l[t].as_f64().or_else(|| l[old].as_f64()) {
                        losses[k].1.push((step, x));
                    }
                }
            }
            Some("eval") => {
                if let Some(m) = data["map50"].as_f64() {
                    map[0].1.push((step, m));
                }
            }
            _ => {}
        }
    }
    let plot_err = |e: arfpn_metrics::MetricsError| {
        DetectorError::io(&log, std::io::Error::other(e.to_string()))
    };
    if losses[0].1.len() >= 2 {
        arfpn_metrics::plot_lines(
            "Training losses",
            "step",
            "loss",
            &losses,
            run_dir.join("loss.png"),
        )
        .map_err(plot_err)?;
    }
    if !map[0].1.is_empty() {
        arfpn_metrics::plot_lines(
            "Validation mAP@0.5 (VOC all-point)",
            "step",
            "mAP",
            &map,
            run_dir.join("map.png"),
        )
        .map_err(plot_err)?;
    }
    Ok(())
}

struct LogFile {
    path: PathBuf,
    file: std::fs::File,
}

impl LogFile {
    fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| DetectorError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    fn write(&mut self, value: &serde_json::Value) -> Result<()> {
        writeln!(self.file, "{value}").map_err(|e| DetectorError::io(&self.path, e))
    }
}
