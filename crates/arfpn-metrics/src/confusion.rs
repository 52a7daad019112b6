//! Confusion matrix between classes, detections matched class-agnostically.

use serde::{Deserialize, Serialize};

use crate::dataset::sort_by_score_desc;
use crate::{voc_iou, BoxConvention, Dataset, MetricsError};

/// `(K + 1) x (K + 1)` counts: row = true class, column = predicted class, index `K` =
/// background. Row `K` holds detections that matched no ground truth (false alarms), column
/// `K` ground truth that no detection matched (misses); `[K][K]` is always 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Names of the `K` foreground classes, in class-index order (background has no
    /// entry).
    pub class_names: Vec<String>,
    /// Row-major counts, `(K + 1) * (K + 1)` entries; entry `t * (K + 1) + p` is
    /// [`ConfusionMatrix::get`]`(t, p)`.
    pub counts: Vec<usize>,
}

impl ConfusionMatrix {
    /// Number of foreground classes `K`.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Count for true class `t` and predicted class `p` (`K` = background).
    pub fn get(&self, t: usize, p: usize) -> usize {
        self.counts[t * (self.num_classes() + 1) + p]
    }
}

/// Builds the confusion matrix from the detections with `score >= score_threshold`.
///
/// Per image, detections in descending score order (stable) take the not-yet-matched
/// ground-truth box of **any** class with the highest IoU (first on ties) if it passes
/// `iou >= iou_threshold`. Ignored (difficult/crowd) ground truth is left out entirely
/// (a detection on it is not counted, and it is never a miss).
pub fn confusion_matrix(
    data: &Dataset,
    iou_threshold: f64,
    score_threshold: f64,
    convention: BoxConvention,
) -> Result<ConfusionMatrix, MetricsError> {
    data.validate()?;
    let k = data.num_classes();
    let mut counts = vec![0usize; (k + 1) * (k + 1)];
    let mut gts_of = vec![Vec::new(); data.num_images];
    for (i, g) in data.gts.iter().enumerate() {
        gts_of[g.image].push(i);
    }
    let mut dets_of = vec![Vec::new(); data.num_images];
    for (i, d) in data.dets.iter().enumerate() {
        if d.score >= score_threshold {
            dets_of[d.image].push(i);
        }
    }
    for (gts, mut dets) in gts_of.into_iter().zip(dets_of) {
        sort_by_score_desc(&mut dets, &data.dets);
        let mut taken = vec![false; gts.len()];
        for di in dets {
            let d = &data.dets[di];
            let mut best: Option<(f64, usize)> = None;
            for (j, &gi) in gts.iter().enumerate() {
                if taken[j] {
                    continue;
                }
                if let Some(v) = voc_iou(&d.rect, &data.gts[gi].rect, convention) {
                    if v >= iou_threshold && best.is_none_or(|(b, _)| v > b) {
                        best = Some((v, j));
                    }
                }
            }
            match best {
                Some((_, j)) => {
                    taken[j] = true;
                    let g = &data.gts[gts[j]];
                    if !g.is_ignored() {
                        counts[g.class * (k + 1) + d.class] += 1;
                    }
                }
                None => counts[k * (k + 1) + d.class] += 1,
            }
        }
        for (j, &gi) in gts.iter().enumerate() {
            let g = &data.gts[gi];
            if !taken[j] && !g.is_ignored() {
                counts[g.class * (k + 1) + k] += 1;
            }
        }
    }
    Ok(ConfusionMatrix {
        class_names: data.class_names.clone(),
        counts,
    })
}
