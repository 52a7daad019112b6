//! The class-specific predictor: class logits (`K + 1`, background **last**) and box deltas
//! (`4K`, four per foreground class).

use arfpn_nn::{inits, linear, Linear};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::{HeadError, Result};

/// torchvision's `FastRCNNPredictor` names (`cls_score.*`, `bbox_pred.*`) with the workspace's
/// column layout: `cls_score` row `c` is class `c`, row `K` background; `bbox_pred` rows
/// `4c..4c+4` are class `c`'s deltas (no background rows). New weights are drawn as
/// detectron2's (`N(0, 0.01²)` and `N(0, 0.001²)`, zero biases).
/// torchvision checkpoints map 1:1 through [`torchvision_to_ours`].
#[derive(Clone, Debug)]
pub struct FastRcnnPredictor {
    cls_score: Linear,
    bbox_pred: Linear,
    num_classes: usize,
}

impl FastRcnnPredictor {
    /// A predictor for `num_classes` foreground classes on `in_features`-long vectors.
    pub fn new(in_features: usize, num_classes: usize, vb: VarBuilder) -> Result<Self> {
        if num_classes == 0 {
            return Err(HeadError::config("num_classes", "must be >= 1"));
        }
        Ok(Self {
            cls_score: linear(
                in_features,
                num_classes + 1,
                true,
                inits::normal(0.01),
                vb.pp("cls_score"),
            )?,
            bbox_pred: linear(
                in_features,
                4 * num_classes,
                true,
                inits::normal(0.001),
                vb.pp("bbox_pred"),
            )?,
            num_classes,
        })
    }

    /// Foreground classes `K`.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// `[R, D]` → (`[R, K + 1]` logits, `[R, 4K]` deltas).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.cls_score.forward(x)?, self.bbox_pred.forward(x)?))
    }
}

/// Re-lays torchvision's `box_predictor` tensors (background in row 0, `4(K+1)` delta rows
/// with the background's first) as ours (background last, `4K` rows). `name` is the
/// parameter name below `box_predictor` (`cls_score.weight`, `cls_score.bias`,
/// `bbox_pred.weight`, `bbox_pred.bias`); other names are returned unchanged.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let tv = Tensor::new(&[9f32, 0.0, 1.0], &Device::Cpu).unwrap(); // bg, class 0, class 1
/// let ours = arfpn_head::torchvision_to_ours("cls_score.bias", &tv).unwrap();
/// assert_eq!(ours.to_vec1::<f32>().unwrap(), vec![0.0, 1.0, 9.0]);
/// ```
pub fn torchvision_to_ours(name: &str, t: &Tensor) -> Result<Tensor> {
    let rows = t.dim(0)?;
    let bad = || HeadError::input("torchvision predictor", format!("`{name}` has {rows} rows"));
    Ok(match name {
        "cls_score.weight" | "cls_score.bias" => {
            if rows < 2 {
                return Err(bad());
            }
            Tensor::cat(&[t.narrow(0, 1, rows - 1)?, t.narrow(0, 0, 1)?], 0)?
        }
        "bbox_pred.weight" | "bbox_pred.bias" => {
            if rows < 8 || rows % 4 != 0 {
                return Err(bad());
            }
            t.narrow(0, 4, rows - 4)?
        }
        _ => t.clone(),
    })
}
