//! Starting from pretrained backbone weights (e.g. torchvision's ImageNet ResNet).

use std::collections::HashMap;
use std::path::Path;

use crate::checkpoint::set_weights;
use crate::{Detector, DetectorError, LoadReport, Result};

/// [`Detector::load_backbone_weights`].
pub(crate) fn load_backbone_weights(det: &Detector, path: &Path) -> Result<LoadReport> {
    let tensors = candle_core::safetensors::load(path, det.device()).map_err(|e| {
        DetectorError::checkpoint(path, format!("not a readable safetensors file: {e}"))
    })?;
    let mut renamed = HashMap::new();
    let mut original = HashMap::new();
    let mut ignored = Vec::new();
    for (name, t) in tensors {
        if name.ends_with("num_batches_tracked") {
            ignored.push(name);
            continue;
        }
        let detector_name = ["backbone.", "rpn.", "roi_heads."]
            .iter()
            .any(|p| name.starts_with(p));
        let full = if detector_name {
            name.clone()
        } else {
            format!("backbone.body.{name}")
        };
        original.insert(full.clone(), name);
        renamed.insert(full, t);
    }
    let mut report = set_weights(det, path, &renamed)?;
    report.missing.retain(|n| n.starts_with("backbone.body."));
    // Unexpected tensors under the file's own names.
    for n in &mut report.unexpected {
        if let Some(o) = original.get(n) {
            *n = o.clone();
        }
    }
    report.unexpected.sort();
    ignored.sort();
    report.ignored = ignored;
    Ok(report)
}
