//! What the stock-candle consumer checks, written once: the workspace's test
//! `crates/arfpn/tests/stock_candle_parity.rs` runs the same file (with the workspace's
//! patched candle-core), the consumer's `tests/stock_candle.rs` with candle-core from
//! crates.io. Both compare with the same files, so the two builds agree with each other and
//! with torchvision. Only `arfpn` paths are used: a dependent needs no other crate.

use std::path::{Path, PathBuf};

use arfpn::candle_core::{DType, Device};
use arfpn::prelude::*;
use arfpn::LossValues;

/// `Result` with a boxed error.
pub type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The folder of the torchvision whole-detector fixture (`crates/arfpn/tests/fixtures/torchvision`).
pub fn torchvision_fixture(repo_root: &Path) -> PathBuf {
    repo_root.join("crates/arfpn/tests/fixtures/torchvision")
}

/// The fixture's architecture (the same as `crates/arfpn/tests/torchvision_oracle.rs`).
fn fixture_config() -> Res<DetectorConfig> {
    let mut c = presets::preset(Variant::Fpn, 18, &["a", "b", "c"])?;
    c.backbone.width = 8;
    c.fpn.out_channels = 32;
    c.roi_heads.box_head = arfpn::head::BoxHeadConfig::TwoMlp {
        representation_size: 128,
    };
    c.input.min_size = Some(256);
    c.input.max_size = 320;
    Ok(c)
}

/// Imports the fixture's torchvision model, detects on its two images and checks the
/// detections against torchvision's: the same count, order and labels, IoU ≥ 0.999, scores
/// within 1e-4. Returns the number of detections checked.
pub fn check_torchvision_detections(fixture: &Path) -> Res<usize> {
    let dev = Device::Cpu;
    let det =
        Detector::from_torchvision(fixture.join("model.safetensors"), fixture_config()?, &dev)?;
    let images = [
        load_image(fixture.join("image-0.png"), &dev)?,
        load_image(fixture.join("image-1.png"), &dev)?,
    ];
    let out = det.detect(&ImageBatch::from_images(&images, 32)?)?;
    let want = arfpn::candle_core::safetensors::load(fixture.join("expected.safetensors"), &dev)?;
    let get = |k: &str| {
        want.get(k)
            .ok_or_else(|| format!("expected.safetensors lacks {k}"))
    };
    let mut checked = 0;
    for (i, d) in out.iter().enumerate() {
        let boxes = get(&format!("detections.{i}.boxes"))?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        let scores: Vec<f32> = get(&format!("detections.{i}.scores"))?.to_vec1()?;
        let labels: Vec<i64> = get(&format!("detections.{i}.labels"))?.to_vec1()?;
        if d.len() != boxes.len() {
            return Err(format!(
                "image {i}: {} detections, torchvision {}",
                d.len(),
                boxes.len()
            )
            .into());
        }
        for k in 0..d.len() {
            let tv = BBox::new(boxes[k][0], boxes[k][1], boxes[k][2], boxes[k][3]);
            let iou = d.boxes[k].iou(&tv);
            let ds = (d.scores[k] - scores[k]).abs();
            if d.classes[k].index() as i64 + 1 != labels[k] || iou < 0.999 || ds > 1e-4 {
                return Err(format!(
                    "image {i}, detection {k}: ours {:?} {} {:?}, torchvision {tv:?} {} {}",
                    d.boxes[k], d.scores[k], d.classes[k], scores[k], labels[k]
                )
                .into());
            }
            checked += 1;
        }
    }
    Ok(checked)
}

/// Trains a small detector (seed 0) for `steps` SGD steps on the fixture's first image with
/// four fixed boxes and returns each step's losses, computed before that step's update.
pub fn training_losses(fixture: &Path, steps: usize) -> Res<Vec<LossValues>> {
    let dev = Device::Cpu;
    let mut config = presets::cpu_small(&["rbc", "wbc"]);
    (config.backbone.width, config.fpn.out_channels) = (8, 16);
    config.backbone.attention = AttentionKind::cbam();
    let detector = Detector::new(config, 0, &dev)?;
    let mut sgd = SgdMomentum::new(
        detector.trainable_vars(),
        SgdConfig {
            lr: 0.01,
            ..SgdConfig::default()
        },
    )?;
    let image = load_image(fixture.join("image-0.png"), &dev)?;
    let batch = ImageBatch::from_images(&[image], 32)?;
    let truth = GroundTruth::new(
        vec![
            BBox::new(20.0, 30.0, 60.0, 72.0),
            BBox::new(100.0, 40.0, 141.0, 80.0),
            BBox::new(180.0, 150.0, 230.0, 205.0),
            BBox::new(250.0, 20.0, 300.0, 64.0),
        ],
        vec![
            ClassId::new(0),
            ClassId::new(0),
            ClassId::new(1),
            ClassId::new(0),
        ],
    )?;
    let mut rng = SplitMix64::new(7);
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let losses = detector.forward_train(&batch, std::slice::from_ref(&truth), &mut rng)?;
        out.push(losses.values()?);
        sgd.backward_step(&losses.total)?;
    }
    Ok(out)
}

/// The losses as JSON lines of numbers (the format of `consumer/expected_losses.json`).
pub fn losses_json(losses: &[LossValues]) -> String {
    let rows: Vec<String> = losses
        .iter()
        .map(|l| {
            format!(
                "  [{:e}, {:e}, {:e}, {:e}, {:e}]",
                l.loss_objectness, l.loss_rpn_box_reg, l.loss_classifier, l.loss_box_reg, l.total
            )
        })
        .collect();
    format!("[\n{}\n]\n", rows.join(",\n"))
}

/// Compares `losses` with the JSON written by [`losses_json`]: every term within 1e-5 relative
/// (1e-7 absolute).
pub fn compare_losses(losses: &[LossValues], expected_json: &str) -> Res {
    let want: Vec<Vec<f64>> = parse_rows(expected_json)?;
    if want.len() != losses.len() {
        return Err(format!("{} steps, expected {}", losses.len(), want.len()).into());
    }
    for (s, (l, w)) in losses.iter().zip(&want).enumerate() {
        let ours = [
            l.loss_objectness,
            l.loss_rpn_box_reg,
            l.loss_classifier,
            l.loss_box_reg,
            l.total,
        ];
        for (k, (&a, &b)) in ours.iter().zip(w).enumerate() {
            if (a as f64 - b).abs() > 1e-5 * b.abs() + 1e-7 {
                return Err(format!("step {s}, term {k}: {a} here, {b} expected").into());
            }
        }
    }
    Ok(())
}

/// Rows of numbers from `[[a, b, ...], ...]` (no JSON crate needed by a dependent).
fn parse_rows(text: &str) -> Res<Vec<Vec<f64>>> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or("not a JSON array")?;
    inner
        .split(']')
        .map(|r| r.trim().trim_start_matches(',').trim())
        .filter(|r| !r.is_empty())
        .map(|r| {
            r.trim_start_matches('[')
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .map_err(|e| format!("{v}: {e}").into())
                })
                .collect()
        })
        .collect()
}
