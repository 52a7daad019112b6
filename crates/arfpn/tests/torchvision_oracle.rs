//! The whole-detector oracle: a torchvision 0.29 Faster R-CNN (a narrow ResNet-18-FPN with
//! seeded, peaked random weights; `scripts/make_torchvision_oracle.py`) imported with
//! [`Detector::from_torchvision`] gives torchvision's FPN maps, proposals and detections on
//! two synthetic 320×256 smears (PNG, so both sides decode the same pixels). The fixture was
//! only written where torchvision's f32 and f64 runs, and f32 runs on inputs moved by 1e-6,
//! agree: differences at rounding level cannot change its outcome. Also torchvision's
//! `nms` / `batched_nms` keep lists on random clustered boxes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arfpn::{load_image, presets, Detector, ImageBatch};
use arfpn_boxes::{batched_nms, nms, BBox};
use arfpn_head::BoxHeadConfig;
use candle_core::{DType, Device, Tensor};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torchvision")
        .join(name)
}

/// The architecture the script builds, as an `fpn-r18` variant.
fn config() -> Res<arfpn::DetectorConfig> {
    let mut c = presets::preset(presets::Variant::Fpn, 18, &["a", "b", "c"])?;
    c.backbone.width = 8;
    c.fpn.out_channels = 32;
    c.roi_heads.box_head = BoxHeadConfig::TwoMlp {
        representation_size: 128,
    };
    c.input.min_size = Some(256);
    c.input.max_size = 320;
    Ok(c)
}

fn expected() -> Res<HashMap<String, Tensor>> {
    Ok(candle_core::safetensors::load(
        fixture("expected.safetensors"),
        &Device::Cpu,
    )?)
}

fn boxes_of(t: &Tensor) -> Res<Vec<BBox>> {
    Ok(t.to_dtype(DType::F32)?
        .to_vec2::<f32>()?
        .into_iter()
        .map(|r| BBox::new(r[0], r[1], r[2], r[3]))
        .collect())
}

fn indices(t: &Tensor) -> Res<Vec<usize>> {
    Ok(t.to_vec1::<i64>()?
        .into_iter()
        .map(|v| v as usize)
        .collect())
}

#[test]
fn imported_torchvision_model_gives_torchvisions_outputs() -> Res {
    let dev = Device::Cpu;
    let det = Detector::from_torchvision(fixture("model.safetensors"), config()?, &dev)?;
    let images = [
        load_image(fixture("image-0.png"), &dev)?,
        load_image(fixture("image-1.png"), &dev)?,
    ];
    let batch = ImageBatch::from_images(&images, 32)?;
    let out = det.inspect(&batch)?;
    let want = expected()?;

    // Backbone + FPN: P2-P6 ("0".."3", "pool"), 64 seeded positions each and the statistics.
    for (f, tv) in out.features.iter().zip(["0", "1", "2", "3", "pool"]) {
        let shape: Vec<usize> = indices(&want[&format!("fpn.{tv}.shape")])?;
        assert_eq!(f.tensor.dims(), shape.as_slice(), "level {tv}");
        let flat: Vec<f32> = f.tensor.flatten_all()?.to_vec1()?;
        let stats: Vec<f32> = want[&format!("fpn.{tv}.stats")].to_vec1()?;
        let tol = 1e-4 * stats[1].max(1.0);
        let values: Vec<f32> = want[&format!("fpn.{tv}.value")].to_vec1()?;
        for (i, v) in indices(&want[&format!("fpn.{tv}.index")])?
            .into_iter()
            .zip(values)
        {
            assert!(
                (flat[i] - v).abs() <= tol,
                "level {tv}, element {i}: ours {}, torchvision {v}",
                flat[i]
            );
        }
        let n = flat.len() as f64;
        let mean = flat.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = flat.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(
            (mean - stats[0] as f64).abs() <= tol as f64,
            "level {tv} mean"
        );
        assert!(
            (var.sqrt() - stats[1] as f64).abs() <= tol as f64,
            "level {tv} std"
        );
    }

    for i in 0..2 {
        // Proposals: the same boxes within 1e-3 px. Proposals of equal objectness (uniform
        // image regions make them) come in an unspecified order, so each of torchvision's
        // is matched to its own of ours.
        let tv = boxes_of(&want[&format!("proposals.{i}")])?;
        let ours = &out.proposals[i].boxes;
        assert_eq!(ours.len(), tv.len(), "image {i}: proposal count");
        let dist = |a: &BBox, b: &BBox| {
            (a.x1 - b.x1)
                .abs()
                .max((a.y1 - b.y1).abs())
                .max((a.x2 - b.x2).abs())
                .max((a.y2 - b.y2).abs())
        };
        let mut used = vec![false; ours.len()];
        let mut in_place = 0;
        for (k, b) in tv.iter().enumerate() {
            if dist(&ours[k], b) <= 1e-3 && !used[k] {
                used[k] = true;
                in_place += 1;
                continue;
            }
            let j = (0..ours.len())
                .filter(|&j| !used[j])
                .min_by(|&x, &y| dist(&ours[x], b).total_cmp(&dist(&ours[y], b)))
                .ok_or("no proposal left")?;
            let d = dist(&ours[j], b);
            assert!(
                d <= 1e-3,
                "image {i}: torchvision's proposal {k} {b:?} has no match (closest {d} px)"
            );
            used[j] = true;
        }
        // Nearly all in torchvision's order too (swaps only among equal objectness).
        assert!(
            in_place * 100 >= tv.len() * 95,
            "image {i}: only {in_place} of {} proposals in torchvision's order",
            tv.len()
        );
        // Detections: same count and order, labels, IoU >= 0.999, scores within 1e-4.
        let tv_boxes = boxes_of(&want[&format!("detections.{i}.boxes")])?;
        let tv_scores: Vec<f32> = want[&format!("detections.{i}.scores")].to_vec1()?;
        let tv_labels = indices(&want[&format!("detections.{i}.labels")])?;
        let d = &out.detections[i];
        assert!(
            tv_boxes.len() >= 10,
            "the fixture should have tens of detections"
        );
        assert_eq!(d.len(), tv_boxes.len(), "image {i}: detection count");
        for k in 0..d.len() {
            assert_eq!(
                d.classes[k].index() + 1,
                tv_labels[k],
                "image {i}, detection {k}: label"
            );
            let iou = d.boxes[k].iou(&tv_boxes[k]);
            assert!(iou >= 0.999, "image {i}, detection {k}: IoU {iou}");
            let ds = (d.scores[k] - tv_scores[k]).abs();
            assert!(
                ds <= 1e-4,
                "image {i}, detection {k}: score differs by {ds}"
            );
        }
    }
    // `detect` is the same path as `inspect`.
    let dets = det.detect(&batch)?;
    assert_eq!(dets, out.detections);
    Ok(())
}

#[test]
fn nms_keep_lists_match_torchvision() -> Res {
    let want = expected()?;
    let boxes = boxes_of(&want["nms.boxes"])?;
    let scores: Vec<f32> = want["nms.scores"].to_vec1()?;
    let groups = indices(&want["nms.idxs"])?;
    for t in ["0.3", "0.5", "0.7"] {
        let thresh: f32 = t.parse()?;
        assert_eq!(
            nms(&boxes, &scores, thresh)?,
            indices(&want[&format!("nms.keep.{t}")])?,
            "nms at {t}"
        );
        assert_eq!(
            batched_nms(&boxes, &scores, &groups, thresh)?,
            indices(&want[&format!("nms.batched_keep.{t}")])?,
            "batched_nms at {t}"
        );
    }
    Ok(())
}

#[test]
fn a_model_of_another_architecture_is_refused_with_the_tensors_at_fault() -> Res {
    let dev = Device::Cpu;
    // Four classes instead of the model's three.
    let mut c = config()?;
    c.classes.push("d".into());
    let e = Detector::from_torchvision(fixture("model.safetensors"), c, &dev)
        .err()
        .ok_or("a 4-class config loaded a 3-class model")?
        .to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("cls_score"),
        "{e}"
    );
    // Another FPN width: a shape error naming the tensor.
    let mut c = config()?;
    c.fpn.out_channels = 16;
    let e = Detector::from_torchvision(fixture("model.safetensors"), c, &dev)
        .err()
        .ok_or("a 16-channel FPN loaded a 32-channel model")?
        .to_string();
    assert!(e.contains("backbone.fpn"), "{e}");
    // A file with a tensor the detector lacks, and one without a weight it needs.
    let dir = std::env::temp_dir().join(format!("arfpn-tv-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut weights = candle_core::safetensors::load(fixture("model.safetensors"), &dev)?;
    weights.insert("extra.weight".into(), Tensor::zeros(3, DType::F32, &dev)?);
    let path = dir.join("extra.safetensors");
    candle_core::safetensors::save(&weights, &path)?;
    let e = Detector::from_torchvision(&path, config()?, &dev)
        .err()
        .ok_or("an extra tensor was accepted")?
        .to_string();
    assert!(e.contains("extra.weight"), "{e}");
    weights.remove("extra.weight");
    weights.remove("rpn.head.cls_logits.bias");
    candle_core::safetensors::save(&weights, &path)?;
    let e = Detector::from_torchvision(&path, config()?, &dev)
        .err()
        .ok_or("a missing tensor was accepted")?
        .to_string();
    assert!(e.contains("rpn.head.cls_logits.bias"), "{e}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn imported_model_round_trips_through_an_arfpn_checkpoint() -> Res {
    let dev = Device::Cpu;
    let det = Detector::from_torchvision(fixture("model.safetensors"), config()?, &dev)?;
    let dir = std::env::temp_dir().join(format!("arfpn-tv-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("imported.safetensors");
    det.save(&path)?;
    let back = Detector::load(&path, &dev)?;
    assert!(back.config().rpn.anchors.round_cell_anchors);
    let image = load_image(fixture("image-0.png"), &dev)?;
    assert_eq!(back.detect_image(&image)?, det.detect_image(&image)?);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
