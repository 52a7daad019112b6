//! Cross-crate tests: the parts fit together the way the detector (`arfpn::Detector`)
//! composes them, through their public APIs and the workspace conventions (typed boxes,
//! foreground class ids, feature maps that carry their strides).

use std::path::PathBuf;

use arfpn_boxes::{BBox, ClassId, GroundTruth, SplitMix64};
use arfpn_metrics::{CocoGt, Report, ReportOptions};
use arfpn_nn::{ImageBatch, SeededVarMap};
use arfpn_roi_align::{MultiScaleRoIAlign, Rois};
use arfpn_rpn::{RegionProposalNetwork, RpnConfig};
use arfpn_testkit::fixture::tiny_backbone_fpn;
use arfpn_voc::coco::{to_coco_json, CocoExportOptions};
use arfpn_voc::synthetic::{write_dataset, SyntheticConfig};
use arfpn_voc::{LabelSet, Labels, LoadOptions, VocDataset};
use candle_core::{DType, Device, Tensor};

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arfpn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// COCO results for the dataset's own boxes, with every class id moved by `class_shift`.
fn results_from_gt(gt_json: &str, class_shift: i64, num_classes: i64) -> String {
    let gt: serde_json::Value = serde_json::from_str(gt_json).unwrap();
    let dets: Vec<serde_json::Value> = gt["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let c = a["category_id"].as_i64().unwrap();
            let c = (c - 1 + class_shift).rem_euclid(num_classes) + 1;
            serde_json::json!({
                "image_id": a["image_id"], "category_id": c, "bbox": a["bbox"], "score": 0.9,
            })
        })
        .collect();
    serde_json::to_string(&dets).unwrap()
}

/// Synthetic smears -> VOC on disk -> strict loader -> COCO export -> metrics. Detections equal
/// to the ground truth score AP 1 under every protocol; the same boxes with the wrong class
/// ids do not, so a class-id or coordinate convention that drifts between the crates fails.
#[test]
fn synthetic_dataset_flows_through_coco_into_the_metrics() {
    let dir = temp_dir("compose-voc");
    let cfg = SyntheticConfig {
        width: 160,
        height: 128,
        ..SyntheticConfig::default()
    };
    write_dataset(&dir, 3, 11, &cfg).unwrap();
    let labels = LabelSet::rbc14();
    let ds = VocDataset::open(
        &dir,
        "trainval",
        &LoadOptions::strict(Labels::Explicit(labels.clone())),
    )
    .unwrap();
    assert!(ds.problems().is_empty(), "{:?}", ds.problems());
    let n_objects: usize = ds.samples().iter().map(|s| s.objects.len()).sum();
    assert!(n_objects > 20, "only {n_objects} cells");
    let gt_json = to_coco_json(ds.samples(), &labels, CocoExportOptions::default()).unwrap();

    let mut gt = CocoGt::parse(&gt_json).unwrap();
    gt.add_results(&results_from_gt(&gt_json, 0, 14)).unwrap();
    let report = Report::evaluate(&gt.dataset, &ReportOptions::default()).unwrap();
    // 11-point AP sums eleven 1.0s then divides by 11, as the devkit does: 1 + 2e-16.
    for (name, v) in [
        ("voc07", report.voc07.map),
        ("voc", report.voc.map),
        ("coco", report.coco.stats.ap),
    ] {
        assert!((v.unwrap() - 1.0).abs() < 1e-12, "{name}: {v:?}");
    }

    let mut shifted = CocoGt::parse(&gt_json).unwrap();
    shifted
        .add_results(&results_from_gt(&gt_json, 1, 14))
        .unwrap();
    let report = Report::evaluate(&shifted.dataset, &ReportOptions::default()).unwrap();
    assert!(report.voc.map.unwrap() < 0.5, "{:?}", report.voc.map);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Backbone (CBAM) -> FPN -> RPN (train and test) -> multi-scale RoIAlign on P2-P5, with the
/// levels described only by the strides the feature maps carry; the RPN loss and the pooled
/// features both send gradients back into the first convolution of the backbone. Weights are
/// seeded and named as torchvision's Faster R-CNN (`backbone.body.*`, `backbone.fpn.*`,
/// `rpn.head.*`).
#[test]
fn backbone_fpn_rpn_and_roi_align_compose() -> TestResult {
    let dev = Device::Cpu;
    let vars = SeededVarMap::new(5);
    let vb = vars.var_builder(DType::F32, &dev);
    // ResNet-18 layout, width 8, CBAM, GroupNorm; 8-channel FPN with P6.
    let net = tiny_backbone_fpn(vb.pp("backbone"))?;
    let shapes = net.output_shapes();
    assert_eq!(
        shapes.iter().map(|s| s.stride).collect::<Vec<_>>(),
        [4, 8, 16, 32, 64]
    );
    let rpn = RegionProposalNetwork::new(RpnConfig::default(), &shapes, vb.pp("rpn"))?;

    let image = Tensor::rand(0f32, 1f32, (3, 64, 96), &dev)?;
    let batch = ImageBatch::from_images(&[image], net.size_divisibility())?;
    let size = batch.sizes[0];
    let maps = net.forward_t(&batch.tensor, true)?;
    let gt = [GroundTruth::new(
        vec![
            BBox::new(10.0, 12.0, 31.0, 33.0),
            BBox::new(50.0, 20.0, 70.0, 41.0),
        ],
        vec![ClassId::new(0), ClassId::new(3)],
    )?];
    let out = rpn.forward_train(&maps, &batch.sizes, &gt, &mut SplitMix64::new(5))?;
    let loss = out.losses.total()?;
    assert!(loss.to_scalar::<f32>()?.is_finite());
    let named = vars.named_vars();
    let conv1 = &named
        .iter()
        .find(|(n, _)| n == "backbone.body.conv1.weight")
        .expect("torchvision name of the stem convolution")
        .1;
    let g = loss.backward()?;
    let g1 = g.get(conv1.as_tensor()).expect("RPN loss reaches the stem");
    assert!(g1.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);

    let proposals = rpn.forward_test(&maps, &batch.sizes)?;
    let props = &proposals[0];
    assert!(!props.boxes.is_empty());
    for b in &props.boxes {
        assert!(b.is_valid() && *b == b.clip(size), "{b:?}");
    }
    // The RoI levels are those of stride <= 32 (P2-P5); P6 only feeds the RPN.
    let roi_maps: Vec<_> = maps.iter().filter(|m| m.stride <= 32).collect();
    let strides: Vec<usize> = roi_maps.iter().map(|m| m.stride).collect();
    let pooler = MultiScaleRoIAlign::detectron2(&strides, (7, 7))?;
    let k = props.boxes.len().min(50);
    let rois = Rois::from_boxes(&[props.boxes[..k].to_vec()], &dev)?;
    let feats: Vec<Tensor> = roi_maps.iter().map(|m| m.tensor.clone()).collect();
    let pooled = pooler.forward(&feats, &rois.tensor)?;
    assert_eq!(pooled.dims(), &[k, 8, 7, 7]);
    let g = pooled.sqr()?.sum_all()?.backward()?;
    let g1 = g
        .get(conv1.as_tensor())
        .expect("pooled features reach the stem");
    assert!(g1.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
    Ok(())
}
