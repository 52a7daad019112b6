//! The blood-cell model that ships with arfpn (`models/`): it loads, is what `detect` and
//! `serve` use without a checkpoint, scores at least 0.90 mAP@0.5 on BCCD's test split (when
//! `../shared/data` is there), and its compact f16 form scores within 0.002 of the f32
//! model it was packed from (figures `pack_model` recorded in the file, re-measured here).

use std::collections::HashMap;
use std::path::Path;

use arfpn::train::{detect_all, voc_map};
use arfpn::{Checkpoint, Detector};
use arfpn_testkit::shared_data;
use arfpn_voc::{LabelSet, Labels, LoadOptions, VocDataset};
use candle_core::{DType, Device};

type Res = Result<(), Box<dyn std::error::Error>>;

fn metadata() -> HashMap<String, String> {
    Checkpoint::from_bytes(
        arfpn_models::BLOOD_CELLS,
        Path::new(arfpn_models::BLOOD_CELLS_NAME),
        &Device::Cpu,
    )
    .expect("the embedded model reads")
    .state
    .metadata
}

#[test]
fn the_shipped_model_is_compact_and_loads() -> Res {
    let bytes = arfpn_models::BLOOD_CELLS;
    assert!(bytes.len() <= 10_000_000, "{} bytes", bytes.len());
    let ckpt = Checkpoint::from_bytes(bytes, Path::new("m"), &Device::Cpu)?;
    // f16 weights, no optimiser state.
    assert!(ckpt.state.tensors.is_empty());
    assert!(ckpt.weights.values().all(|t| t.dtype() == DType::F16));
    let det = Detector::default_model(&Device::Cpu)?;
    assert_eq!(det.classes(), ["Platelets", "RBC", "WBC"]);
    // The training scale is recorded (detect's magnification check needs it).
    assert!(det.config().data.cell_size_px.is_some());
    // Loaded weights are f32, equal to the stored f16 values.
    let name = "backbone.body.conv1.weight";
    let stored = ckpt.weights[name]
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let vars = det.vars().named_vars();
    let (_, var) = vars.iter().find(|(n, _)| n == name).ok_or(name)?;
    assert_eq!(var.dtype(), DType::F32);
    assert_eq!(var.as_tensor().flatten_all()?.to_vec1::<f32>()?, stored);
    Ok(())
}

#[test]
fn the_shipped_model_scores_090_on_bccd_test_and_f16_matches_f32() -> Res {
    let Some(root) = shared_data("bccd") else {
        return Ok(());
    };
    let meta = metadata();
    let recorded = |k: &str| -> Result<f64, Box<dyn std::error::Error>> {
        Ok(meta
            .get(&format!("model.eval.bccd.test.{k}"))
            .ok_or_else(|| format!("the model records no model.eval.bccd.test.{k}"))?
            .parse()?)
    };
    let det = Detector::default_model(&Device::Cpu)?;
    let labels = Labels::Explicit(LabelSet::new(det.classes().to_vec())?);
    let data = VocDataset::open(&root, "test", &LoadOptions::lenient(labels))?;
    assert_eq!(data.samples().len(), 72);
    let (dets, truth) = detect_all(&det, &data)?;
    let map = voc_map(det.classes(), &dets, &truth)?
        .map
        .ok_or("no ground truth")?;
    eprintln!(
        "shipped model on BCCD test: mAP@0.5 {map:.4} (recorded {:.4}, f32 {:.4})",
        recorded("map50")?,
        recorded("map50_f32")?
    );
    assert!(map >= 0.90, "mAP@0.5 {map}");
    // The same figure pack_model measured, and the f16 form within 0.002 of f32.
    assert!((map - recorded("map50")?).abs() < 1e-3);
    assert!((recorded("map50_f32")? - map).abs() <= 0.002);
    Ok(())
}
