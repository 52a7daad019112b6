//! The box head's losses: classification (cross-entropy, class-weighted cross-entropy or
//! softmax focal loss) and smooth-L1 box regression on the sampled foreground, normalised as
//! torchvision's `fastrcnn_loss`.

use arfpn_nn::{cross_entropy, smooth_l1, softmax_focal_loss};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::{HeadError, Result, RoiTargets};

/// The classification loss of the box head (the paper's discussion of class imbalance asks
/// for the last two).
///
/// ```
/// use arfpn_head::ClassificationLoss;
/// let l: ClassificationLoss = serde_json::from_str(r#"{"type":"focal","gamma":2.0}"#).unwrap();
/// assert_eq!(l, ClassificationLoss::Focal { gamma: 2.0, alpha: None });
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClassificationLoss {
    /// Softmax cross-entropy, mean over the sampled RoIs (torchvision).
    #[default]
    CrossEntropy,
    /// Cross-entropy with one weight per column (`K + 1` values, background last), PyTorch's
    /// `weight=` semantics. [`class_weights_from_counts`] derives them from frequencies.
    WeightedCrossEntropy {
        /// One finite, non-negative weight per classifier column: the `K` classes in order,
        /// then background.
        weights: Vec<f32>,
    },
    /// Softmax focal loss `-α_t (1 - p_t)^γ ln p_t` (Lin et al. 2017), mean over RoIs;
    /// `alpha`: optional `K + 1` per-column factors.
    Focal {
        /// Focusing exponent `γ`, finite and ≥ 0 (Lin et al. use 2; 0 without `alpha` is
        /// plain cross-entropy).
        gamma: f64,
        /// Per-column factors `α` (`K + 1` finite values ≥ 0, background last); `None`
        /// weighs every column 1.
        #[serde(default)]
        alpha: Option<Vec<f32>>,
    },
}

impl ClassificationLoss {
    /// Checks the weights' count against `num_classes + 1` columns.
    pub fn validate(&self, num_classes: usize) -> Result<()> {
        let check = |field: &str, w: &[f32]| {
            if w.len() != num_classes + 1 || w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
                Err(HeadError::config(
                    format!("classification_loss.{field}"),
                    format!(
                        "need {} finite values >= 0 (classes then background), got {}",
                        num_classes + 1,
                        w.len()
                    ),
                ))
            } else {
                Ok(())
            }
        };
        match self {
            Self::CrossEntropy => Ok(()),
            Self::WeightedCrossEntropy { weights } => check("weights", weights),
            Self::Focal { gamma, alpha } => {
                if !(gamma.is_finite() && *gamma >= 0.0) {
                    return Err(HeadError::config(
                        "classification_loss.gamma",
                        "must be finite and >= 0",
                    ));
                }
                alpha.as_deref().map_or(Ok(()), |a| check("alpha", a))
            }
        }
    }
}

/// Inverse-frequency weights for [`ClassificationLoss::WeightedCrossEntropy`] from the number
/// of ground-truth objects per class: `w_c = mean(n) / n_c` over the classes that occur
/// (so the average foreground weight is 1; an absent class gets 1), background 1.
///
/// ```
/// let w = arfpn_head::class_weights_from_counts(&[300, 100, 0]);
/// assert_eq!(w, vec![200.0 / 300.0, 2.0, 1.0, 1.0]);
/// ```
pub fn class_weights_from_counts(counts: &[usize]) -> Vec<f32> {
    let seen: Vec<usize> = counts.iter().copied().filter(|&n| n > 0).collect();
    let mean = if seen.is_empty() {
        1.0
    } else {
        seen.iter().sum::<usize>() as f32 / seen.len() as f32
    };
    let mut w: Vec<f32> = counts
        .iter()
        .map(|&n| if n == 0 { 1.0 } else { mean / n as f32 })
        .collect();
    w.push(1.0);
    w
}

/// The two box-head loss terms (scalars).
#[derive(Clone, Debug)]
pub struct RoiHeadLosses {
    /// The configured [`ClassificationLoss`] over the sampled RoIs of the batch (background
    /// is column `K`).
    pub loss_classifier: Tensor,
    /// Smooth-L1 over the positives' four deltas of their class, summed and divided by the
    /// number of sampled RoIs (torchvision).
    pub loss_box_reg: Tensor,
}

/// torchvision's `fastrcnn_loss` (with the configurable classification term) for the
/// sampled RoIs of a batch. `class_logits` `[R, K + 1]` and `box_deltas` `[R, 4K]` hold the
/// RoIs of `targets` in order (image by image, positives first within an image).
pub fn fast_rcnn_loss(
    class_logits: &Tensor,
    box_deltas: &Tensor,
    targets: &[RoiTargets],
    loss: &ClassificationLoss,
    smooth_l1_beta: f64,
) -> Result<RoiHeadLosses> {
    let (r, k1) = class_logits.dims2()?;
    let k = k1 - 1;
    if box_deltas.dims() != [r, 4 * k] {
        return Err(HeadError::input(
            "box_deltas",
            format!(
                "shape {:?} does not fit {r} RoIs of {k} classes",
                box_deltas.dims()
            ),
        ));
    }
    let labels: Vec<u32> = targets
        .iter()
        .flat_map(|t| t.labels.iter().copied())
        .collect();
    if labels.len() != r {
        return Err(HeadError::input(
            "targets",
            format!("{} labels for {r} RoIs", labels.len()),
        ));
    }
    let classification = match loss {
        ClassificationLoss::CrossEntropy => cross_entropy(class_logits, &labels, None)?,
        ClassificationLoss::WeightedCrossEntropy { weights } => {
            cross_entropy(class_logits, &labels, Some(weights))?
        }
        ClassificationLoss::Focal { gamma, alpha } => {
            softmax_focal_loss(class_logits, &labels, *gamma, alpha.as_deref())?
        }
    };
    // Rows of the positives' class deltas in the `[R * K, 4]` view.
    let mut rows = Vec::new();
    let mut reg = Vec::new();
    let mut base = 0;
    for t in targets {
        for i in 0..t.num_positive {
            rows.push(((base + i) * k + t.labels[i] as usize) as u32);
            reg.extend_from_slice(&t.regression[i]);
        }
        base += t.labels.len();
    }
    let dev = class_logits.device();
    let box_regression = if rows.is_empty() || r == 0 {
        // Keeps the graph connected so the deltas get a (zero) gradient.
        (box_deltas.sum_all()? * 0.0)?
    } else {
        let p = rows.len();
        let pred = box_deltas
            .reshape((r * k, 4))?
            .index_select(&Tensor::new(rows, dev)?, 0)?;
        let target = Tensor::from_vec(reg, (p, 4), dev)?.to_dtype(box_deltas.dtype())?;
        (smooth_l1(&pred, &target, smooth_l1_beta)?.sum_all()? / r as f64)?
    };
    Ok(RoiHeadLosses {
        loss_classifier: classification,
        loss_box_reg: box_regression,
    })
}
