//! What the trainer tells its caller: the events of a run ([`StepEvent`], [`EvalEvent`],
//! [`SkipEvent`]) sent to a [`TrainObserver`], and how the run ended ([`TrainSummary`]).

use std::path::{Path, PathBuf};

use arfpn_model::LossValues;
use serde::Serialize;

#[cfg(doc)]
use crate::{TrainConfig, Trainer};
#[cfg(doc)]
use arfpn_model::DetectorError;

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
