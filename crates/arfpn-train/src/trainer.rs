//! [`Trainer`]: seeded data order and augmentation, momentum SGD or Adam with a warm-up
//! schedule, gradient clipping, a NaN/inf guard, periodic evaluation, and checkpoints that
//! resume bit for bit.
//!
//! A run directory holds `checkpoints/step-XXXXXXXX.safetensors` (the last
//! [`TrainConfig::keep_last`]), `best.safetensors` (highest validation mAP) and `log.jsonl`
//! (one JSON object per logged step and per evaluation).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arfpn_boxes::SplitMix64;
use arfpn_kernels::with_matmul_precision;
use arfpn_model::{
    image_tensor, Checkpoint, CheckpointState, Detector, DetectorError, LossValues, Result,
};
use arfpn_nn::{Adam, AdamConfig, ImageBatch, SgdConfig, SgdMomentum};
use candle_core::Var;
use candle_nn::Optimizer;
use serde::{Deserialize, Serialize};

use crate::augment::augment;
use crate::log::{list_checkpoints, LogFile};
use crate::{
    detect_all, epoch_entries, voc_map, EvalEvent, OptimizerConfig, SkipEvent, StepEvent,
    TrainConfig, TrainData, TrainObserver, TrainSummary,
};
use crate::{latest_checkpoint, plot_log};

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
            let info = arfpn_model::DataInfo {
                cell_size_px: arfpn_model::typical_cell_size(&truth),
                estimated_cell_px: arfpn_model::median_cell_estimate(&images),
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
