//! [`DetectorConfig`]: one serde tree mirroring the module tree (backbone, fpn, rpn,
//! roi_heads, input), readable and writable as JSON and TOML.

use std::path::Path;

use arfpn_backbone::{CustomBackbone, ResNetConfig};
use arfpn_fpn::FpnConfig;
use arfpn_head::RoiHeadConfig;
use arfpn_rpn::RpnConfig;
use serde::{Deserialize, Serialize};

use crate::{DetectorError, InputConfig, Result};

/// Weights of the four loss terms in [`DetectorLosses::total`](crate::DetectorLosses).
/// All 1 by default (torchvision sums them unweighted).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LossWeights {
    /// Weight of [`DetectorLosses::loss_objectness`](crate::DetectorLosses::loss_objectness).
    #[serde(alias = "rpn_objectness")]
    pub loss_objectness: f32,
    /// Weight of [`DetectorLosses::loss_rpn_box_reg`](crate::DetectorLosses::loss_rpn_box_reg).
    #[serde(alias = "rpn_box")]
    pub loss_rpn_box_reg: f32,
    /// Weight of [`DetectorLosses::loss_classifier`](crate::DetectorLosses::loss_classifier).
    #[serde(alias = "cls")]
    pub loss_classifier: f32,
    /// Weight of [`DetectorLosses::loss_box_reg`](crate::DetectorLosses::loss_box_reg).
    #[serde(alias = "box")]
    pub loss_box_reg: f32,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self {
            loss_objectness: 1.0,
            loss_rpn_box_reg: 1.0,
            loss_classifier: 1.0,
            loss_box_reg: 1.0,
        }
    }
}

/// Every setting of a detector. Build one with a preset ([`crate::presets`]), adjust fields,
/// and pass it to [`Detector::new`](crate::Detector::new). `classes` are the foreground class
/// names in [`ClassId`](arfpn_boxes::ClassId) order.
///
/// ```
/// use arfpn_model::{presets, DetectorConfig};
/// let cfg = presets::cs_arfpn_r50(&["rbc", "wbc"]);
/// let toml = cfg.to_toml().unwrap();
/// assert_eq!(DetectorConfig::from_toml(&toml).unwrap(), cfg);
/// let json = cfg.to_json().unwrap();
/// assert_eq!(DetectorConfig::from_json(&json).unwrap(), cfg);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorConfig {
    /// The preset this configuration started from (informational, e.g. `cs-arfpn-r50`).
    #[serde(default)]
    pub name: String,
    /// Foreground class names; the classifier has `classes.len() + 1` outputs.
    pub classes: Vec<String>,
    /// Preprocessing before the backbone: normalisation, optional resizing, padding.
    pub input: InputConfig,
    /// The attention-residual ResNet body (not used when
    /// [`custom_backbone`](Self::custom_backbone) is set).
    pub backbone: ResNetConfig,
    /// A registered backbone ([`arfpn_backbone::register_backbone`]) instead of the ResNet:
    /// its [`output_shapes`](arfpn_backbone::Backbone::output_shapes) drive the FPN and the
    /// checks after it, its parameters live under `backbone.body.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_backbone: Option<CustomBackbone>,
    /// The feature pyramid on top of the backbone (output channels, extra P6 level).
    pub fpn: FpnConfig,
    /// The region proposal network: anchors, matching, sampling and proposal filtering.
    pub rpn: RpnConfig,
    /// The RoI heads: pooling, box head, sampling and the final score/NMS filtering.
    pub roi_heads: RoiHeadConfig,
    /// Weights of the four loss terms summed into the training loss (all 1 by default).
    #[serde(default)]
    pub loss_weights: LossWeights,
    /// The training data's scale (typical cell size), recorded by the trainer.
    #[serde(default)]
    pub data: crate::DataInfo,
}

impl DetectorConfig {
    /// Number of foreground classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Uses the backbone registered under `name` ([`arfpn_backbone::register_backbone`])
    /// with `params`.
    pub fn with_custom_backbone(
        mut self,
        name: impl Into<String>,
        params: serde_json::Value,
    ) -> Self {
        self.custom_backbone = Some(CustomBackbone {
            name: name.into(),
            params,
        });
        self
    }

    /// Replaces the class list.
    pub fn with_classes<S: AsRef<str>>(mut self, classes: &[S]) -> Self {
        self.classes = classes.iter().map(|c| c.as_ref().to_string()).collect();
        self
    }

    /// Checks everything that can be checked without building the network (building checks
    /// that channels, levels and anchors fit, see [`Detector::new`](crate::Detector::new)).
    pub fn validate(&self) -> Result<()> {
        if self.classes.is_empty() {
            return Err(DetectorError::config(
                "classes",
                "at least one class is needed",
            ));
        }
        for (i, c) in self.classes.iter().enumerate() {
            if c.trim().is_empty() {
                return Err(DetectorError::config(
                    format!("classes[{i}]"),
                    "class names must not be empty",
                ));
            }
            if self.classes[..i].contains(c) {
                return Err(DetectorError::config(
                    format!("classes[{i}]"),
                    format!("`{c}` appears twice"),
                ));
            }
        }
        self.input.validate()?;
        match &self.custom_backbone {
            // A registered name; its own parameters are checked when it is built.
            Some(custom) => custom.check_registered()?,
            None => self.backbone.validate()?,
        }
        if self.fpn.out_channels == 0 {
            return Err(DetectorError::config("fpn.out_channels", "must be >= 1"));
        }
        self.rpn.validate()?;
        self.roi_heads.validate(self.num_classes())?;
        let w = self.loss_weights;
        for (field, v) in [
            ("loss_weights.loss_objectness", w.loss_objectness),
            ("loss_weights.loss_rpn_box_reg", w.loss_rpn_box_reg),
            ("loss_weights.loss_classifier", w.loss_classifier),
            ("loss_weights.loss_box_reg", w.loss_box_reg),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(DetectorError::config(
                    field,
                    format!("{v} must be finite and >= 0"),
                ));
            }
        }
        Ok(())
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| DetectorError::config("(json)", e.to_string()))
    }

    /// Parses JSON (unknown fields are an error, missing optional sections take defaults).
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| DetectorError::config("(json)", e.to_string()))
    }

    /// TOML. Without the crate's `toml` feature this is an error saying so.
    pub fn to_toml(&self) -> Result<String> {
        #[cfg(feature = "toml")]
        return toml::to_string_pretty(self)
            .map_err(|e| DetectorError::config("(toml)", e.to_string()));
        #[cfg(not(feature = "toml"))]
        Err(no_toml())
    }

    /// Parses TOML (unknown fields are an error). Without the crate's `toml` feature this is
    /// an error saying so.
    pub fn from_toml(text: &str) -> Result<Self> {
        #[cfg(feature = "toml")]
        return toml::from_str(text).map_err(|e| DetectorError::config("(toml)", e.to_string()));
        #[cfg(not(feature = "toml"))]
        {
            let _ = text;
            Err(no_toml())
        }
    }

    /// Reads a `.json` or `.toml` file (by extension) and validates it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| DetectorError::io(path, e))?;
        let parsed = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Self::from_toml(&text),
            Some("json") => Self::from_json(&text),
            _ => {
                return Err(DetectorError::config(
                    path.display().to_string(),
                    "a detector config must be a .json or .toml file",
                ))
            }
        };
        let cfg = parsed.map_err(|e| match e {
            DetectorError::Config { field, reason } => {
                DetectorError::config(format!("{} {field}", path.display()), reason)
            }
            other => other,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Writes a `.json` or `.toml` file (by extension).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => self.to_toml()?,
            Some("json") => self.to_json()?,
            _ => {
                return Err(DetectorError::config(
                    path.display().to_string(),
                    "a detector config must be a .json or .toml file",
                ))
            }
        };
        std::fs::write(path, text).map_err(|e| DetectorError::io(path, e))
    }
}

#[cfg(not(feature = "toml"))]
fn no_toml() -> DetectorError {
    DetectorError::config(
        "(toml)",
        "this build of arfpn has no TOML support: enable the `toml` feature, or use JSON",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_names_are_torchvisions_and_the_old_keys_still_read() {
        let w = LossWeights {
            loss_objectness: 1.0,
            loss_rpn_box_reg: 2.0,
            loss_classifier: 3.0,
            loss_box_reg: 4.0,
        };
        // Written with torchvision's names...
        let json = serde_json::to_value(w).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({"loss_objectness": 1.0, "loss_rpn_box_reg": 2.0,
                "loss_classifier": 3.0, "loss_box_reg": 4.0})
        );
        // ...and configs and logs from before the rename read as the same values.
        let old: LossWeights =
            serde_json::from_str(r#"{"rpn_objectness": 1, "rpn_box": 2, "cls": 3, "box": 4}"#)
                .expect("old config keys");
        assert_eq!(old, w);
        let old: crate::LossValues = serde_json::from_str(
            r#"{"rpn_objectness": 1, "rpn_box": 2, "cls": 3, "box": 4, "total": 10}"#,
        )
        .expect("old log keys");
        assert_eq!(
            (
                old.loss_objectness,
                old.loss_rpn_box_reg,
                old.loss_classifier,
                old.loss_box_reg,
                old.total
            ),
            (1.0, 2.0, 3.0, 4.0, 10.0)
        );
    }
}
