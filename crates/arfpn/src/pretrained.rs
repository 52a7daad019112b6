//! Starting from pretrained backbone weights (e.g. torchvision's ImageNet ResNet).

use std::collections::HashMap;
use std::path::Path;

use crate::{Detector, DetectorError, LoadReport, Result};

impl Detector {
    /// Loads a torchvision-named ResNet state dict (`conv1.weight`, `layer1.0.bn1.weight`,
    /// ...) into the backbone body; names already in the detector's form (`backbone.*`,
    /// `rpn.*`, `roi_heads.*`, e.g. a torchvision Faster R-CNN state dict's backbone, FPN and
    /// RPN) load as they are. The
    /// attention, FPN, RPN and head layers keep their fresh initialisation and are reported
    /// as `missing`; torchvision's classifier (`fc.*`) comes back as `unexpected`, its
    /// `num_batches_tracked` counters are skipped (listed as `ignored`). Convert the ImageNet weights once with
    ///
    /// ```text
    /// python -c "import torchvision; from safetensors.torch import save_file; save_file({k: v.contiguous() for k, v in torchvision.models.resnet50(weights='IMAGENET1K_V1').state_dict().items()}, 'resnet50.safetensors')"
    /// ```
    ///
    /// and build the detector with the same depth (and frozen batch norm to use the
    /// statistics as torchvision does).
    pub fn load_backbone_weights(&self, path: impl AsRef<Path>) -> Result<LoadReport> {
        let path = path.as_ref();
        let tensors = candle_core::safetensors::load(path, self.device()).map_err(|e| {
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
        let mut report = self.set_weights(path, &renamed)?;
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
}
