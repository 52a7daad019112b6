//! # arfpn-train — training the ARFPN detector
//!
//! The [`Trainer`] takes an [`arfpn_model::Detector`], training (and optionally validation)
//! data and a [`TrainConfig`], and runs: seeded data order and augmentation, momentum SGD or
//! Adam with a warm-up schedule, gradient clipping, a NaN/inf guard, periodic evaluation
//! (VOC mAP with `arfpn-metrics`), and checkpoints that resume bit for bit. It records the
//! training data's cell size in the detector ([`arfpn_model::DataInfo`]), so that detection
//! can rescale images to it.
//!
//! ```no_run
//! use arfpn_model::{presets, Detector, GroundTruth};
//! use arfpn_train::{Silent, TrainConfig, Trainer};
//! use arfpn_voc::RgbImage;
//! use candle_core::Device;
//!
//! let images: Vec<(RgbImage, GroundTruth)> = Vec::new(); // your images and their boxes
//! let detector = Detector::new(presets::cpu_small(&["rbc", "wbc"]), 0, &Device::Cpu)?;
//! let config = TrainConfig { steps: 100, ..TrainConfig::default() };
//! let mut trainer = Trainer::new(detector, config, Box::new(images), None, "runs/demo")?;
//! let summary = trainer.run(&mut Silent)?;
//! println!("{} steps", summary.steps_done);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | file | what |
//! |---|---|
//! | `trainer.rs` | [`Trainer`]: the loop, the optimizer, evaluation, checkpoints and resuming |
//! | `config.rs` | [`TrainConfig`], [`OptimizerConfig`], [`OversampleConfig`], [`step_schedule`] |
//! | `data.rs` | [`TrainData`] and its implementations (images in memory, VOC splits), [`epoch_entries`] |
//! | `observer.rs` | [`TrainObserver`] and the events it receives ([`StepEvent`], [`EvalEvent`], [`SkipEvent`]), [`TrainSummary`] |
//! | `log.rs` | the run directory: `log.jsonl`, [`latest_checkpoint`], [`plot_log`] |
//! | `augment.rs` | [`AugmentConfig`], [`augment`]: flips, random crops |
//! | `tiled_data.rs` | [`TiledData`]: fixed overlapping crops as training items |
//! | `evaluate.rs` | [`detect_all`], [`voc_map`], [`metrics_dataset`]: scores with `arfpn-metrics` |
//!
//! Errors are the model's [`DetectorError`](arfpn_model::DetectorError).

mod augment;
mod config;
mod data;
mod evaluate;
mod log;
mod observer;
mod tiled_data;
mod trainer;

pub use augment::{augment, AugmentConfig};
pub use config::{step_schedule, OptimizerConfig, OversampleConfig, TrainConfig};
pub use data::{epoch_entries, TrainData};
pub use evaluate::{detect_all, metrics_dataset, voc_map};
pub use log::{latest_checkpoint, plot_log};
pub use observer::{EvalEvent, Silent, SkipEvent, StepEvent, TrainObserver, TrainSummary};
pub use tiled_data::{CropRect, TiledData};
pub use trainer::Trainer;
