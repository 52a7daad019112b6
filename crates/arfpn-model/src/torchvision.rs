//! A whole torchvision Faster R-CNN in: [`Detector::from_torchvision`].
//!
//! torchvision's `FasterRCNN` state dict and an `fpn-r*` detector share every weight name
//! and shape (pinned by `tests/names.rs`) except the box predictor, which torchvision lays
//! out with the background first and a box regressor for it:
//!
//! | torchvision | arfpn |
//! |---|---|
//! | `cls_score` rows `[background, class 1, …, class K]` | rows `[class 1, …, class K, background]` |
//! | `bbox_pred` rows `4·(K + 1)`, the first 4 for the background | rows `4·K` (no background regressor) |
//!
//! Export a model's state dict with `scripts/export_torchvision_detector.py`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::checkpoint::set_weights;
use crate::{Detector, DetectorConfig, DetectorError, LoadReport, Result};

const CLS_WEIGHT: &str = "roi_heads.box_predictor.cls_score.weight";
const CLS_BIAS: &str = "roi_heads.box_predictor.cls_score.bias";
const BOX_WEIGHT: &str = "roi_heads.box_predictor.bbox_pred.weight";
const BOX_BIAS: &str = "roi_heads.box_predictor.bbox_pred.bias";

/// [`Detector::from_torchvision`].
pub(crate) fn from_torchvision(
    path: &Path,
    config: DetectorConfig,
    device: &Device,
) -> Result<Detector> {
    let detector = Detector::new(config, 0, device)?;
    let tensors = candle_core::safetensors::load(path, device).map_err(|e| {
        DetectorError::checkpoint(path, format!("not a readable safetensors file: {e}"))
    })?;
    let weights = torchvision_to_arfpn(path, tensors, detector.classes().len())?;
    let report = set_weights(&detector, path, &weights)?;
    check_complete(path, &report)?;
    Ok(detector)
}

/// Renames legacy keys, drops `num_batches_tracked` and re-lays the predictor.
fn torchvision_to_arfpn(
    path: &Path,
    tensors: HashMap<String, Tensor>,
    num_classes: usize,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::with_capacity(tensors.len());
    for (name, t) in tensors {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let name = modern_name(&name);
        if out.contains_key(&name) {
            return Err(DetectorError::checkpoint(
                path,
                format!("`{name}` appears under its old and its new torchvision name"),
            ));
        }
        out.insert(name, t);
    }
    let k = num_classes;
    // Rows of a predictor tensor: `per_class` for each class, the background included.
    let check_rows = |name: &str, t: &Tensor, per_class: usize| -> Result<()> {
        let got = t.dims().first().copied().unwrap_or(0);
        let want = per_class * (k + 1);
        if got != want {
            return Err(DetectorError::checkpoint(
                path,
                format!(
                    "`{name}` has {got} rows ({} classes with the background); the \
                     configuration has {k} classes, so torchvision's model needs {want} rows \
                     (num_classes={})",
                    got / per_class,
                    k + 1
                ),
            ));
        }
        Ok(())
    };
    // The predictor's rows (background first, a background regressor) re-laid as ours
    // (background last, none) by the head crate's own mapping, after the class count is
    // checked against the configuration.
    for (name, per_class) in [
        (CLS_WEIGHT, 1),
        (CLS_BIAS, 1),
        (BOX_WEIGHT, 4),
        (BOX_BIAS, 4),
    ] {
        if let Some(t) = out.remove(name) {
            check_rows(name, &t, per_class)?;
            let short = name.trim_start_matches("roi_heads.box_predictor.");
            let relaid = arfpn_head::torchvision_to_ours(short, &t)
                .map_err(|e| DetectorError::checkpoint(path, e.to_string()))?;
            out.insert(name.to_string(), relaid);
        }
    }
    Ok(out)
}

/// torchvision ≥ 0.13's name for a pre-0.13 key (its own `_load_from_state_dict` hooks do
/// the same): FPN blocks and the RPN head conv became `Conv2dNormActivation`s.
fn modern_name(name: &str) -> String {
    for block in ["backbone.fpn.inner_blocks.", "backbone.fpn.layer_blocks."] {
        if let Some(rest) = name.strip_prefix(block) {
            // `<i>.weight` (old) vs `<i>.0.weight` (new).
            if let Some((i, param)) = rest.split_once('.') {
                if i.parse::<usize>().is_ok() && (param == "weight" || param == "bias") {
                    return format!("{block}{i}.0.{param}");
                }
            }
        }
    }
    for param in ["weight", "bias"] {
        if name == format!("rpn.head.conv.{param}") {
            return format!("rpn.head.conv.0.0.{param}");
        }
    }
    name.to_string()
}

/// Every weight of the detector loaded, nothing of the file left over.
fn check_complete(path: &Path, report: &LoadReport) -> Result<()> {
    if report.missing.is_empty() && report.unexpected.is_empty() {
        return Ok(());
    }
    let list = |v: &[String]| {
        let mut s = v.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
        if v.len() > 8 {
            s.push_str(&format!(", … ({} in all)", v.len()));
        }
        s
    };
    let mut parts = Vec::new();
    if !report.missing.is_empty() {
        parts.push(format!(
            "the file lacks {} of the detector's weights: {}",
            report.missing.len(),
            list(&report.missing)
        ));
    }
    if !report.unexpected.is_empty() {
        parts.push(format!(
            "the detector has no weight for {} of the file's tensors: {}",
            report.unexpected.len(),
            list(&report.unexpected)
        ));
    }
    Err(DetectorError::checkpoint(
        path,
        format!(
            "not a torchvision Faster R-CNN of this configuration's architecture (depth, \
             width, FPN channels, anchors per location, box head): {}",
            parts.join("; ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_are_read_as_todays() {
        assert_eq!(
            modern_name("backbone.fpn.inner_blocks.2.weight"),
            "backbone.fpn.inner_blocks.2.0.weight"
        );
        assert_eq!(
            modern_name("backbone.fpn.layer_blocks.0.bias"),
            "backbone.fpn.layer_blocks.0.0.bias"
        );
        assert_eq!(
            modern_name("rpn.head.conv.weight"),
            "rpn.head.conv.0.0.weight"
        );
        for same in [
            "backbone.fpn.inner_blocks.2.0.weight",
            "rpn.head.conv.0.0.bias",
            "backbone.body.layer1.0.conv1.weight",
        ] {
            assert_eq!(modern_name(same), same);
        }
    }

    #[test]
    fn predictor_rows_are_relaid() -> Result<()> {
        let dev = Device::Cpu;
        // K = 2 classes, representation 1: row r holds the value r.
        let cls = Tensor::new(&[[0f32], [1.], [2.]], &dev)?;
        let boxes = Tensor::arange(0f32, 12., &dev)?.reshape((12, 1))?;
        let t: HashMap<String, Tensor> = [
            (CLS_WEIGHT.to_string(), cls.clone()),
            (CLS_BIAS.to_string(), cls.flatten_all()?),
            (BOX_WEIGHT.to_string(), boxes.clone()),
            (BOX_BIAS.to_string(), boxes.flatten_all()?),
            ("x.num_batches_tracked".to_string(), cls.clone()),
        ]
        .into_iter()
        .collect();
        let out = torchvision_to_arfpn(Path::new("m.safetensors"), t.clone(), 2)?;
        assert_eq!(out[CLS_BIAS].to_vec1::<f32>()?, [1., 2., 0.]);
        assert_eq!(
            out[CLS_WEIGHT].flatten_all()?.to_vec1::<f32>()?,
            [1., 2., 0.]
        );
        let want: Vec<f32> = (4..12).map(|v| v as f32).collect();
        assert_eq!(out[BOX_BIAS].to_vec1::<f32>()?, want);
        assert!(!out.contains_key("x.num_batches_tracked"));
        // A model with another class count is named as such.
        let e = torchvision_to_arfpn(Path::new("m.safetensors"), t, 3).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("m.safetensors") && msg.contains("num_classes=4"),
            "{msg}"
        );
        Ok(())
    }
}
