//! Equality with torchvision's `RoIHeads` on a shared small case: the same weights (torch
//! names, background first, re-laid by `torchvision_to_ours`), features and proposals give
//! the same class logits, box deltas, losses and post-processed detections. The fixture is
//! written by `scripts/export_head_fixture.py` (torch 2.15 / torchvision 0.29.2, float64).

use std::collections::HashMap;

use arfpn_boxes::{BBox, ClassId, GroundTruth, ImageSize, SplitMix64};
use arfpn_head::{
    torchvision_to_ours, BoxHeadConfig, PoolerConfig, PostProcessConfig, RoiHeadConfig, RoiHeads,
};
use arfpn_nn::{FeatureMap, SeededVarMap, ShapeSpec};
use arfpn_roi_align::Rois;
use candle_core::{DType, Device, Tensor};

type Res = Result<(), Box<dyn std::error::Error>>;

fn fixture() -> candle_core::Result<HashMap<String, Tensor>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/torchvision_head.safetensors"
    );
    candle_core::safetensors::load(path, &Device::Cpu)
}

fn boxes(t: &Tensor) -> candle_core::Result<Vec<BBox>> {
    Ok(t.to_vec2::<f64>()?
        .into_iter()
        .map(|r| BBox::new(r[0] as f32, r[1] as f32, r[2] as f32, r[3] as f32))
        .collect())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> candle_core::Result<f64> {
    (a - b)?.abs()?.max_all()?.to_scalar::<f64>()
}

#[test]
fn roi_heads_match_torchvision() -> Res {
    let fx = fixture()?;
    let get = |k: &str| {
        fx.get(k)
            .cloned()
            .ok_or_else(|| format!("fixture lacks {k}"))
    };
    let config = RoiHeadConfig {
        pooler: PoolerConfig {
            levels: vec!["p2".into(), "p3".into()],
            ..PoolerConfig::torchvision()
        },
        box_head: BoxHeadConfig::TwoMlp {
            representation_size: 16,
        },
        postprocess: PostProcessConfig {
            detections_per_image: 100,
            min_size: 1e-2,
            ..PostProcessConfig::default()
        },
        ..RoiHeadConfig::default()
    };
    let vars = SeededVarMap::new(0);
    let specs = [ShapeSpec::new("p2", 4, 4), ShapeSpec::new("p3", 4, 8)];
    let heads = RoiHeads::new(
        &config,
        2,
        &specs,
        vars.var_builder(DType::F64, &Device::Cpu).pp("roi_heads"),
    )?;
    // torchvision's weights, re-laid where the layouts differ.
    for (name, var) in vars.named_vars() {
        let t = get(&name)?;
        let t = match name.strip_prefix("roi_heads.box_predictor.") {
            Some(rest) => torchvision_to_ours(rest, &t)?,
            None => t,
        };
        var.set(&t)?;
    }
    let features = [
        FeatureMap::new("p2", 4, get("features.p2")?),
        FeatureMap::new("p3", 8, get("features.p3")?),
    ];
    let proposals = vec![boxes(&get("proposals")?)?];
    // Class logits and deltas for the proposals (eval mode in torchvision).
    let rois = Rois::from_boxes(&proposals, &Device::Cpu)?;
    let (logits, deltas) = heads.predict(&features, &rois)?;
    let tv_logits = get("expected.class_logits")?;
    let tv_logits = Tensor::cat(&[tv_logits.narrow(1, 1, 2)?, tv_logits.narrow(1, 0, 1)?], 1)?;
    let tv_deltas = get("expected.box_deltas")?.narrow(1, 4, 8)?;
    // Boxes pass through f32 (our proposals are f32 BBoxes), hence ~1e-6.
    let dl = max_abs_diff(&logits, &tv_logits)?;
    let dd = max_abs_diff(&deltas, &tv_deltas)?;
    assert!(
        dl < 1e-5 && dd < 1e-5,
        "logits differ by {dl}, deltas by {dd}"
    );
    // Losses: every proposal (and ground truth) is sampled on both sides.
    let labels: Vec<i64> = get("gt.labels")?.to_vec1()?;
    let gt = GroundTruth::new(
        boxes(&get("gt.boxes")?)?,
        labels
            .iter()
            .map(|&l| ClassId::new(l as usize - 1))
            .collect(),
    )?;
    let losses = heads.forward_train(&features, &proposals, &[gt], &mut SplitMix64::new(0))?;
    let cls = losses.loss_classifier.to_scalar::<f64>()?;
    let reg = losses.loss_box_reg.to_scalar::<f64>()?;
    let tv_cls = get("expected.loss_classifier")?.to_vec1::<f64>()?[0];
    let tv_reg = get("expected.loss_box_reg")?.to_vec1::<f64>()?[0];
    assert!(
        (cls - tv_cls).abs() < 1e-5,
        "classification loss {cls} vs torchvision {tv_cls}"
    );
    assert!(
        (reg - tv_reg).abs() < 1e-5,
        "box loss {reg} vs torchvision {tv_reg}"
    );
    // Post-processed detections: same boxes, scores and classes, in the same order.
    let dets = heads.forward_test(&features, &proposals, &[ImageSize::new(64, 64)])?;
    let tv_boxes = boxes(&get("expected.boxes")?)?;
    let tv_scores: Vec<f64> = get("expected.scores")?.to_vec1()?;
    let tv_labels: Vec<i64> = get("expected.labels")?.to_vec1()?;
    assert_eq!(dets[0].len(), tv_boxes.len());
    for i in 0..tv_boxes.len() {
        let (a, b) = (dets[0].boxes[i], tv_boxes[i]);
        assert!(
            (a.x1 - b.x1).abs() < 1e-3
                && (a.y1 - b.y1).abs() < 1e-3
                && (a.x2 - b.x2).abs() < 1e-3
                && (a.y2 - b.y2).abs() < 1e-3,
            "detection {i}: {a:?} vs torchvision {b:?}"
        );
        assert!((dets[0].scores[i] as f64 - tv_scores[i]).abs() < 1e-5);
        assert_eq!(dets[0].classes[i].index() as i64, tv_labels[i] - 1);
    }
    Ok(())
}
