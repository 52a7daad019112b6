//! The trainer: resume bit for bit, the NaN guard, evaluation, checkpoint rotation.

mod common;
use arfpn::train::{
    EvalEvent, OptimizerConfig, SkipEvent, StepEvent, TrainConfig, TrainData, TrainObserver,
    Trainer,
};
use arfpn::{Detector, GroundTruth};
use arfpn_nn::{LrDecay, LrSchedule};
use arfpn_voc::{LabelSet, RgbImage};
use candle_core::Device;
use common::{smears, tiny};

type Res = Result<(), Box<dyn std::error::Error>>;

fn classes() -> Vec<String> {
    LabelSet::rbc14().names().to_vec()
}

fn config(steps: usize, optimizer: OptimizerConfig) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: 2,
        optimizer,
        schedule: LrSchedule {
            base_lr: 0.01,
            warmup_iters: 5,
            warmup_factor: 0.1,
            decay: LrDecay::Cosine { total_iters: 20 },
            min_lr: 1e-6,
        },
        augment: arfpn::train::AugmentConfig {
            crop: Some([64, 64]),
            ..Default::default()
        },
        checkpoint_every: 10,
        keep_last: 2,
        log_every: 5,
        seed: 4,
        ..TrainConfig::default()
    }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("arfpn-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn weights(det: &Detector) -> Vec<(String, Vec<f32>)> {
    det.vars()
        .named_vars()
        .into_iter()
        .map(|(n, v)| {
            let t = v.as_tensor().flatten_all().and_then(|t| t.to_vec1::<f32>());
            (n, t.unwrap_or_default())
        })
        .collect()
}

fn resume_is_bit_for_bit(optimizer: OptimizerConfig, name: &str) -> Res {
    let dev = Device::Cpu;
    // 20 steps in one go.
    let dir_a = tmp(&format!("{name}-a"));
    let det = Detector::new(tiny(&classes()), 1, &dev)?;
    let mut t = Trainer::new(
        det,
        config(20, optimizer.clone()),
        Box::new(smears(3, 100)?),
        None,
        &dir_a,
    )?;
    t.run(&mut arfpn::train::Silent)?;
    let a = weights(t.detector());
    // 10 steps, stop, resume for 10 more.
    let dir_b = tmp(&format!("{name}-b"));
    let det = Detector::new(tiny(&classes()), 1, &dev)?;
    let mut t = Trainer::new(
        det,
        config(10, optimizer),
        Box::new(smears(3, 100)?),
        None,
        &dir_b,
    )?;
    t.run(&mut arfpn::train::Silent)?;
    drop(t);
    let mut t = Trainer::resume(&dir_b, Box::new(smears(3, 100)?), None, &dev, Some(20))?;
    assert_eq!(t.step(), 10);
    t.run(&mut arfpn::train::Silent)?;
    let b = weights(t.detector());
    assert_eq!(a.len(), b.len());
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(va == vb, "{na} differs after resuming");
    }
    // Weights did change from the initialisation.
    let init = weights(&Detector::new(tiny(&classes()), 1, &dev)?);
    assert!(init.iter().zip(&a).any(|(x, y)| x.1 != y.1));
    // Checkpoints rotate: the last two are kept.
    let kept = std::fs::read_dir(dir_b.join("checkpoints"))?.count();
    assert_eq!(kept, 2);
    // A fresh trainer refuses a folder with checkpoints; resuming an empty one fails.
    let det = Detector::new(tiny(&classes()), 1, &dev)?;
    let fresh = Trainer::new(
        det,
        config(5, OptimizerConfig::default()),
        Box::new(smears(1, 100)?),
        None,
        &dir_b,
    );
    assert!(
        matches!(&fresh, Err(arfpn::DetectorError::RunDir { path, .. }) if *path == dir_b),
        "{:?}",
        fresh.err()
    );
    let empty = Trainer::resume(tmp("empty"), Box::new(smears(1, 100)?), None, &dev, None);
    assert!(
        matches!(&empty, Err(arfpn::DetectorError::RunDir { reason, .. }) if reason.contains("no checkpoint")),
        "{:?}",
        empty.err()
    );
    std::fs::remove_dir_all(&dir_a)?;
    std::fs::remove_dir_all(&dir_b)?;
    Ok(())
}

#[test]
fn sgd_resume_is_bit_for_bit() -> Res {
    resume_is_bit_for_bit(OptimizerConfig::default(), "sgd")
}

#[test]
fn adam_resume_is_bit_for_bit() -> Res {
    resume_is_bit_for_bit(
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-4,
        },
        "adam",
    )
}

#[derive(Default)]
struct Record {
    steps: Vec<StepEvent>,
    evals: Vec<EvalEvent>,
    skips: Vec<SkipEvent>,
}

impl TrainObserver for Record {
    fn on_step(&mut self, e: &StepEvent) {
        self.steps.push(e.clone());
    }
    fn on_eval(&mut self, e: &EvalEvent) {
        self.evals.push(e.clone());
    }
    fn on_skip(&mut self, e: &SkipEvent) {
        self.skips.push(e.clone());
    }
}

#[test]
fn training_logs_evaluates_and_keeps_the_best() -> Res {
    let dev = Device::Cpu;
    let dir = tmp("eval");
    let det = Detector::new(tiny(&classes()), 1, &dev)?;
    let mut cfg = config(30, OptimizerConfig::default());
    cfg.eval_every = Some(15);
    cfg.augment.crop = None;
    let val: Box<dyn TrainData> = Box::new(smears(1, 100)?);
    let mut t = Trainer::new(det, cfg, Box::new(smears(2, 100)?), Some(val), &dir)?;
    let mut rec = Record::default();
    let summary = t.run(&mut rec)?;
    assert_eq!(summary.steps_done, 30);
    assert_eq!(rec.steps.len(), 6);
    assert_eq!(rec.evals.len(), 2);
    assert!(rec.evals[0].best);
    let first = rec.steps[0].losses.total;
    let last = rec.steps[5].losses.total;
    assert!(last < first, "loss {first} -> {last}");
    assert!(dir.join("best.safetensors").exists());
    assert!(dir.join("loss.png").is_file() && dir.join("map.png").is_file());
    // The training scale is recorded and saved with the model.
    let size = t
        .detector()
        .config()
        .data
        .cell_size_px
        .ok_or("no cell size recorded")?;
    let truth: Vec<GroundTruth> = smears(2, 100)?.into_iter().map(|(_, g)| g).collect();
    assert_eq!(Some(size), arfpn::typical_cell_size(&truth));
    let best = Detector::load(dir.join("best.safetensors"), &dev)?;
    assert_eq!(best.config().data.cell_size_px, Some(size));
    let log = std::fs::read_to_string(dir.join("log.jsonl"))?;
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.iter().filter(|l| l["event"] == "eval").count(), 2);
    assert!(lines
        .iter()
        .any(|l| l["data"]["losses"]["loss_objectness"].is_number()));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn non_finite_steps_are_skipped_then_training_stops() -> Res {
    let dev = Device::Cpu;
    let dir = tmp("nan");
    let det = Detector::new(tiny(&classes()), 1, &dev)?;
    let mut cfg = config(50, OptimizerConfig::default());
    // A learning rate that blows the weights up within a step or two.
    cfg.schedule = LrSchedule {
        base_lr: 1e12,
        warmup_iters: 0,
        warmup_factor: 1.0,
        decay: LrDecay::Constant,
        min_lr: 0.0,
    };
    cfg.clip_grad_norm = None;
    cfg.max_bad_steps = 3;
    let mut t = Trainer::new(det, cfg, Box::new(smears(2, 100)?), None, &dir)?;
    let mut rec = Record::default();
    let err = t.run(&mut rec).err();
    let text = err.as_ref().map(|e| e.to_string());
    assert!(
        text.as_deref()
            .is_some_and(|e| e.contains("non-finite") && e.contains("3 steps in a row")),
        "{text:?}"
    );
    // Its own variant, naming the checkpoint that holds the last good weights (it exists).
    match err {
        Some(arfpn::DetectorError::Diverged {
            bad_steps,
            checkpoint,
            ..
        }) => {
            assert_eq!(bad_steps, 3);
            assert!(checkpoint.is_file(), "{}", checkpoint.display());
        }
        other => panic!("expected DetectorError::Diverged, got {other:?}"),
    }
    assert_eq!(rec.skips.len(), 3);
    assert!(!rec.skips[0].terms.is_empty());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn rare_class_images_are_oversampled() -> Res {
    use arfpn::train::{epoch_entries, OversampleConfig};
    use arfpn::{BBox, ClassId};
    let img = RgbImage::new(64, 64);
    let gt = |classes: &[usize]| GroundTruth {
        boxes: classes
            .iter()
            .map(|_| BBox::new(1.0, 1.0, 10.0, 10.0))
            .collect(),
        classes: classes.iter().map(|&c| ClassId::new(c)).collect(),
    };
    // Class 0: 19 objects, class 1: 1 object (5 %, rare below 0.1).
    let set: Vec<(RgbImage, GroundTruth)> = vec![
        (img.clone(), gt(&[0; 10])),
        (img.clone(), gt(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
        (img, gt(&[])),
    ];
    let o = OversampleConfig {
        max_share: 0.1,
        copies: 2,
    };
    assert_eq!(epoch_entries(&set, 2, Some(o))?, [0, 1, 2, 1, 1]);
    assert_eq!(epoch_entries(&set, 2, None)?, [0, 1, 2]);
    // Training with it runs and stays resumable.
    let dir = tmp("oversample");
    let mut cfg = config(4, OptimizerConfig::default());
    cfg.oversample = Some(o);
    let det = Detector::new(tiny(&classes()), 1, &Device::Cpu)?;
    let mut t = Trainer::new(det, cfg, Box::new(smears(3, 100)?), None, &dir)?;
    t.run(&mut arfpn::train::Silent)?;
    assert_eq!(t.step(), 4);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
