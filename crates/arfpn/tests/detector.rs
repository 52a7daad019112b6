//! The composed detector: training losses, inference, bad input, checkpoints, threads.

mod common;
use common::tiny;
use std::sync::Arc;

use arfpn::{BBox, ClassId, Detector, DetectorError, GroundTruth, ImageBatch, ImageSize};
use arfpn_backbone::NormKind;
use arfpn_boxes::SplitMix64;
use arfpn_nn::{SgdConfig, SgdMomentum};
use candle_core::{Device, Tensor};
use candle_nn::Optimizer;

type Res = Result<(), Box<dyn std::error::Error>>;

fn image(seed: u64, h: usize, w: usize) -> candle_core::Result<Tensor> {
    let mut rng = SplitMix64::new(seed);
    let v: Vec<f32> = (0..3 * h * w).map(|_| rng.uniform() as f32).collect();
    Tensor::from_vec(v, (3, h, w), &Device::Cpu)
}

fn gt(boxes: &[[f32; 4]]) -> GroundTruth {
    GroundTruth {
        boxes: boxes
            .iter()
            .map(|b| BBox::new(b[0], b[1], b[2], b[3]))
            .collect(),
        classes: (0..boxes.len()).map(|i| ClassId::new(i % 2)).collect(),
    }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("arfpn-det-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn detector_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Detector>();
}

/// `backbone()`, `rpn()` and `roi_heads()` are the modules `detect` runs: built over detached
/// views of the weights, so a forward pass through them records no backward graph (the
/// training modules, over the variables themselves, would).
#[test]
fn stage_accessors_return_the_modules_detect_runs() -> Res {
    let det = Detector::new(tiny(&["rbc"]), 0, &Device::Cpu)?;
    let x = image(3, 64, 64)?.unsqueeze(0)?;
    let features = det.backbone().forward_t(&x, false)?;
    assert!(!features.is_empty());
    for f in &features {
        assert!(!f.tensor.track_op(), "level {} records a graph", f.name);
    }
    Ok(())
}

#[test]
fn training_losses_are_finite_and_fall() -> Res {
    let det = Detector::new(tiny(&["a", "b"]), 1, &Device::Cpu)?;
    // Two images of different sizes; the second has no objects.
    let batch = ImageBatch::from_images(&[image(1, 64, 80)?, image(2, 48, 40)?], 1)?;
    let truth = [
        gt(&[[10.0, 10.0, 30.0, 34.0], [40.0, 20.0, 60.0, 40.0]]),
        GroundTruth::empty(),
    ];
    let mut opt = SgdMomentum::new(
        det.trainable_vars(),
        SgdConfig {
            lr: 0.02,
            ..SgdConfig::default()
        },
    )?;
    let mut rng = SplitMix64::new(3);
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..25 {
        let losses = det.forward_train(&batch, &truth, &mut rng)?;
        let v = losses.values()?;
        assert!(v.non_finite().is_empty(), "{v:?}");
        assert!(v.loss_objectness > 0.0 && v.loss_classifier > 0.0);
        let sum = v.loss_objectness + v.loss_rpn_box_reg + v.loss_classifier + v.loss_box_reg;
        assert!((sum - v.total).abs() <= 1e-5 * sum.max(1.0), "{v:?}");
        first.get_or_insert(v.total);
        last = v.total;
        opt.backward_step(&losses.total)?;
    }
    let first = first.unwrap_or(f32::NAN);
    assert!(last < 0.7 * first, "loss {first} -> {last}");
    Ok(())
}

#[test]
fn loss_weights_scale_the_total() -> Res {
    let mut cfg = tiny(&["a", "b"]);
    cfg.loss_weights.loss_classifier = 0.0;
    cfg.loss_weights.loss_rpn_box_reg = 2.0;
    let det = Detector::new(cfg, 1, &Device::Cpu)?;
    let batch = ImageBatch::from_images(&[image(1, 64, 64)?], 1)?;
    let v = det
        .forward_train(
            &batch,
            &[gt(&[[8.0, 8.0, 30.0, 30.0]])],
            &mut SplitMix64::new(0),
        )?
        .values()?;
    let expected = v.loss_objectness + 2.0 * v.loss_rpn_box_reg + v.loss_box_reg;
    assert!((v.total - expected).abs() < 1e-5, "{v:?}");
    Ok(())
}

#[test]
fn bad_and_edge_input_is_an_error_or_documented() -> Res {
    let det = Detector::new(tiny(&["a", "b"]), 1, &Device::Cpu)?;
    let mut rng = SplitMix64::new(0);
    // An empty image cannot even be batched.
    assert!(ImageBatch::from_images(
        &[Tensor::zeros(
            (3, 0, 5),
            candle_core::DType::F32,
            &Device::Cpu
        )?],
        1
    )
    .is_err());
    // A hand-made batch claiming an empty image is refused by the detector.
    let forged = ImageBatch {
        tensor: Tensor::zeros((1, 3, 32, 32), candle_core::DType::F32, &Device::Cpu)?,
        sizes: vec![ImageSize::new(0, 32)],
    };
    let err = det.detect(&forged).err().map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("empty image")),
        "{err:?}"
    );
    // Sizes that disagree with the tensor.
    let forged = ImageBatch {
        tensor: Tensor::zeros((1, 3, 32, 32), candle_core::DType::F32, &Device::Cpu)?,
        sizes: vec![ImageSize::new(40, 32)],
    };
    assert!(det.detect(&forged).is_err());
    // A 1-pixel image and an image smaller than every anchor run and find nothing absurd.
    for (h, w) in [(1, 1), (5, 3)] {
        let batch = ImageBatch::from_images(&[image(4, h, w)?], 1)?;
        let d = det.detect(&batch)?;
        let size = ImageSize::new(h, w);
        assert!(d[0].boxes.iter().all(|b| b.clip(size) == *b));
        det.forward_train(&batch, &[GroundTruth::empty()], &mut rng)?;
    }
    // NaN in the input.
    let mut v = vec![0.5f32; 3 * 16 * 16];
    v[100] = f32::NAN;
    let batch = ImageBatch::from_images(&[Tensor::from_vec(v, (3, 16, 16), &Device::Cpu)?], 1)?;
    let err = det.detect(&batch).err().map(|e| e.to_string());
    assert!(err.as_deref().is_some_and(|e| e.contains("NaN")), "{err:?}");
    // Boxes partly or wholly outside the image are clipped (documented) or dropped.
    let batch = ImageBatch::from_images(&[image(5, 64, 64)?], 1)?;
    let outside = gt(&[[-20.0, -5.0, 30.0, 90.0], [100.0, 100.0, 120.0, 130.0]]);
    let v = det.forward_train(&batch, &[outside], &mut rng)?.values()?;
    assert!(v.non_finite().is_empty());
    // Non-finite boxes, unknown classes and a wrong number of ground truths are errors.
    let err = det
        .forward_train(&batch, &[gt(&[[f32::NAN, 0.0, 5.0, 5.0]])], &mut rng)
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("ground_truth[0]")),
        "{err:?}"
    );
    let bad_class = GroundTruth {
        boxes: vec![BBox::new(0.0, 0.0, 5.0, 5.0)],
        classes: vec![ClassId::new(2)],
    };
    assert!(det.forward_train(&batch, &[bad_class], &mut rng).is_err());
    assert!(det.forward_train(&batch, &[], &mut rng).is_err());
    // Grey images.
    let grey = Tensor::zeros((1, 8, 8), candle_core::DType::F32, &Device::Cpu)?;
    assert!(det.detect(&ImageBatch::from_images(&[grey], 1)?).is_err());
    Ok(())
}

#[test]
fn detections_are_in_each_images_own_pixels() -> Res {
    // With resizing on, boxes come back in the caller's pixels and inside each image.
    let mut cfg = tiny(&["a", "b"]);
    cfg.input.min_size = Some(96);
    cfg.input.max_size = 200;
    cfg.roi_heads.postprocess.score_thresh = 0.0;
    let det = Detector::new(cfg, 2, &Device::Cpu)?;
    let sizes = [ImageSize::new(40, 70), ImageSize::new(64, 50)];
    let batch = ImageBatch::from_images(&[image(1, 40, 70)?, image(2, 64, 50)?], 1)?;
    let dets = det.detect(&batch)?;
    assert_eq!(dets.len(), 2);
    for (d, s) in dets.iter().zip(sizes) {
        assert!(!d.is_empty());
        assert!(d
            .boxes
            .iter()
            .all(|b| b.x2 <= s.width as f32 && b.y2 <= s.height as f32));
        assert!(d.scores.windows(2).all(|w| w[0] >= w[1]));
    }
    // Without padding differences, batching changes nothing (GroupNorm and attention are
    // per image); padding changes features near the right and bottom borders, as in
    // torchvision and detectron2.
    let mut cfg = tiny(&["a", "b"]);
    cfg.roi_heads.postprocess.score_thresh = 0.0;
    let det = Detector::new(cfg, 2, &Device::Cpu)?;
    let batch = ImageBatch::from_images(&[image(1, 64, 96)?, image(2, 64, 96)?], 32)?;
    let dets = det.detect(&batch)?;
    let alone = det.detect(&ImageBatch::from_images(&[image(2, 64, 96)?], 32)?)?;
    assert_eq!(alone[0].len(), dets[1].len());
    for (a, s) in alone[0].boxes.iter().zip(&alone[0].scores) {
        let found = dets[1].boxes.iter().zip(&dets[1].scores).any(|(b, t)| {
            (a.x1 - b.x1).abs() < 1e-3 && (a.y2 - b.y2).abs() < 1e-3 && (s - t).abs() < 1e-5
        });
        assert!(found, "{a:?} ({s}) not in the batched result");
    }
    Ok(())
}

#[test]
fn concurrent_detect_matches_serial() -> Res {
    let mut cfg = tiny(&["a", "b"]);
    cfg.roi_heads.postprocess.score_thresh = 0.0;
    let det = Arc::new(Detector::new(cfg, 5, &Device::Cpu)?);
    let images: Vec<Tensor> = (0..4).map(|i| image(i, 48, 56)).collect::<Result<_, _>>()?;
    let serial: Vec<_> = images
        .iter()
        .map(|im| det.detect_image(im))
        .collect::<Result<_, _>>()?;
    let handles: Vec<_> = images
        .into_iter()
        .map(|im| {
            let det = Arc::clone(&det);
            std::thread::spawn(move || det.detect_image(&im))
        })
        .collect();
    for (h, s) in handles.into_iter().zip(&serial) {
        let d = h.join().map_err(|_| "a detect thread panicked")??;
        assert_eq!(&d, s);
    }
    Ok(())
}

#[test]
fn save_load_gives_identical_detections() -> Res {
    let dir = tmp("save");
    let mut cfg = tiny(&["a", "b"]);
    cfg.roi_heads.postprocess.score_thresh = 0.0;
    let det = Detector::new(cfg.clone(), 9, &Device::Cpu)?;
    let im = image(7, 64, 72)?;
    let before = det.detect_image(&im)?;
    let path = dir.join("m.safetensors");
    det.save(&path)?;
    let loaded = Detector::load(&path, &Device::Cpu)?;
    assert_eq!(loaded.config(), det.config());
    assert_eq!(loaded.detect_image(&im)?, before);
    // Into a detector built with another seed: weights replaced, complete report.
    let other = Detector::new(cfg, 10, &Device::Cpu)?;
    assert_ne!(other.detect_image(&im)?, before);
    let report = other.load_weights(&path)?;
    assert!(report.is_complete(), "{report}");
    assert_eq!(other.detect_image(&im)?, before);
    // No temporary files left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn bad_checkpoints_are_clear_errors_and_leave_files_alone() -> Res {
    let dir = tmp("bad");
    let det = Detector::new(tiny(&["a", "b"]), 1, &Device::Cpu)?;
    let good = dir.join("good.safetensors");
    det.save(&good)?;
    let bytes = std::fs::read(&good)?;

    // Truncated.
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2])?;
    let err = Detector::load(&cut, &Device::Cpu)
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("cut.safetensors") && e.contains("truncated")),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&cut)?.len(), bytes.len() / 2);

    // Another architecture.
    let mut wide = tiny(&["a", "b"]);
    wide.fpn.out_channels = 32;
    let wide = Detector::new(wide, 1, &Device::Cpu)?;
    match wide.load_weights(&good) {
        Err(DetectorError::Mismatch {
            field,
            checkpoint,
            ours,
            ..
        }) => {
            assert_eq!(field, "fpn");
            assert!(
                checkpoint.contains("16") && ours.contains("32"),
                "{checkpoint} / {ours}"
            );
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    // Another class list, named both ways.
    let other = Detector::new(tiny(&["a", "c"]), 1, &Device::Cpu)?;
    let err = other.load_weights(&good).err().map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("class list")
            && e.contains("\"b\"")
            && e.contains("\"c\"")),
        "{err:?}"
    );
    // A safetensors file that is not an arfpn checkpoint.
    let plain = dir.join("plain.safetensors");
    candle_core::safetensors::save(
        &std::collections::HashMap::from([(
            "w".to_string(),
            Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu)?,
        )]),
        &plain,
    )?;
    let err = Detector::load(&plain, &Device::Cpu)
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("not an arfpn checkpoint")),
        "{err:?}"
    );
    // A missing file.
    assert!(matches!(
        Detector::load(dir.join("nope"), &Device::Cpu),
        Err(DetectorError::Io { .. })
    ));
    // The good file is untouched by all of this.
    assert_eq!(std::fs::read(&good)?, bytes);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn checkpoint_state_round_trips() -> Res {
    let dir = tmp("state");
    let det = Detector::new(tiny(&["a"]), 1, &Device::Cpu)?;
    let state = arfpn::CheckpointState {
        tensors: vec![(
            "state.momentum.x".into(),
            Tensor::arange(0f32, 4., &Device::Cpu)?,
        )],
        metadata: [("trainer.step".to_string(), "12".to_string())].into(),
    };
    let path = dir.join("s.safetensors");
    det.save_with_state(&path, &state)?;
    let ck = arfpn::Checkpoint::read(&path, &Device::Cpu)?;
    assert_eq!(
        ck.state.metadata.get("trainer.step").map(String::as_str),
        Some("12")
    );
    assert_eq!(
        ck.state.tensors[0].1.to_vec1::<f32>()?,
        [0.0, 1.0, 2.0, 3.0]
    );
    assert!(!ck.weights.contains_key("state.momentum.x"));
    let bad = arfpn::CheckpointState {
        tensors: vec![(
            "momentum".into(),
            Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu)?,
        )],
        ..Default::default()
    };
    assert!(det
        .save_with_state(dir.join("b.safetensors"), &bad)
        .is_err());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn torchvision_backbone_weights_load_into_the_body() -> Res {
    let dir = tmp("pre");
    let mut cfg = tiny(&["a"]);
    cfg.backbone.norm = NormKind::frozen_batch_norm();
    let det = Detector::new(cfg, 1, &Device::Cpu)?;
    // A torchvision-style state dict: body names without prefix, a classifier, a counter.
    let mut sd = std::collections::HashMap::new();
    for (name, v) in det.vars().named_vars() {
        if let Some(body) = name.strip_prefix("backbone.body.") {
            sd.insert(body.to_string(), (v.as_tensor() + 1.0)?);
        }
    }
    sd.insert(
        "fc.weight".into(),
        Tensor::zeros((10, 64), candle_core::DType::F32, &Device::Cpu)?,
    );
    sd.insert(
        "bn1.num_batches_tracked".into(),
        Tensor::zeros(1, candle_core::DType::I64, &Device::Cpu)?,
    );
    let path = dir.join("resnet.safetensors");
    candle_core::safetensors::save(&sd, &path)?;
    let report = det.load_backbone_weights(&path)?;
    assert_eq!(report.unexpected, ["fc.weight"]);
    assert!(report.missing.is_empty(), "{report}");
    assert!(report
        .loaded
        .iter()
        .all(|n| n.starts_with("backbone.body.")));
    assert_eq!(report.loaded.len(), sd.len() - 2);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A checkpoint write that fails (simulated: the temporary file cannot be created, as on a
/// full disk or a read-only folder) is an error naming the file, and the previous
/// checkpoint stays intact.
#[test]
fn a_failed_checkpoint_write_keeps_the_previous_one() -> Res {
    let dir = tmp("failwrite");
    let det = Detector::new(tiny(&["a", "b"]), 1, &Device::Cpu)?;
    let path = dir.join("m.safetensors");
    det.save(&path)?;
    let before = std::fs::read(&path)?;
    // Block the temporary file's name with a directory.
    let blocker = dir.join(format!(".m.safetensors.tmp-{}", std::process::id()));
    std::fs::create_dir_all(&blocker)?;
    let other = Detector::new(tiny(&["a", "b"]), 2, &Device::Cpu)?;
    let err = other.save(&path).err().map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("m.safetensors")),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read(&path)?,
        before,
        "the previous checkpoint changed"
    );
    assert!(Detector::load(&path, &Device::Cpu).is_ok());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
