//! The evaluation input: ground truth and detections as flat lists, in input order.

use serde::{Deserialize, Serialize};

use crate::{MetricsError, Rect};

/// One ground-truth box.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GtBox {
    /// Image index, `0..Dataset::num_images`.
    pub image: usize,
    /// Foreground class, `0..Dataset::num_classes`.
    pub class: usize,
    /// The box in the image's pixel coordinates.
    pub rect: Rect,
    /// "Do not care" box (VOC `difficult`, COCO `ignore`): a detection matched to it is
    /// neither a true nor a false positive, and it does not count towards recall.
    /// See [`crate::DifficultPolicy`] for the VOC alternatives.
    pub ignore: bool,
    /// COCO `iscrowd`: an ignored region that any number of detections may match, whose IoU
    /// union is the detection's own area. Implies `ignore` for every metric.
    pub crowd: bool,
    /// Area used by COCO's small/medium/large ranges (COCO's annotation `area`, a segment
    /// area); `None` uses `w * h`.
    pub area: Option<f64>,
}

impl GtBox {
    /// A plain (not ignored, not crowd) box.
    pub fn new(image: usize, class: usize, rect: Rect) -> Self {
        Self {
            image,
            class,
            rect,
            ignore: false,
            crowd: false,
            area: None,
        }
    }

    /// Marks the box as ignored (`difficult`).
    pub fn ignored(mut self) -> Self {
        self.ignore = true;
        self
    }

    /// Marks the box as a crowd region.
    pub fn crowd(mut self) -> Self {
        self.crowd = true;
        self
    }

    /// Whether any metric treats this box as "do not care".
    pub fn is_ignored(&self) -> bool {
        self.ignore || self.crowd
    }

    /// Area for COCO's area ranges.
    pub fn range_area(&self) -> f64 {
        self.area.unwrap_or_else(|| self.rect.area())
    }
}

/// One scored detection.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Image index, `0..Dataset::num_images`.
    pub image: usize,
    /// Predicted foreground class, `0..Dataset::num_classes`.
    pub class: usize,
    /// The predicted box in the image's pixel coordinates.
    pub rect: Rect,
    /// Confidence; higher ranks first. Ties keep input order (stable sort).
    pub score: f64,
}

impl Detection {
    /// A detection.
    pub fn new(image: usize, class: usize, rect: Rect, score: f64) -> Self {
        Self {
            image,
            class,
            rect,
            score,
        }
    }
}

/// Ground truth and detections of a whole test set.
///
/// The order of [`Dataset::dets`] is the "file order" that breaks score ties: the VOC
/// devkit sorts all detections of a class stably, pycocotools sorts per image and then the
/// concatenation over images (in image-index order) stably.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Number of images; [`GtBox::image`] and [`Detection::image`] index `0..num_images`.
    /// Images without any box still count (they can only add false positives).
    pub num_images: usize,
    /// Class names, one per class; `num_classes()` is their count.
    pub class_names: Vec<String>,
    /// All ground-truth boxes of all images, in input order.
    pub gts: Vec<GtBox>,
    /// All detections of all images, in input ("file") order.
    pub dets: Vec<Detection>,
}

impl Dataset {
    /// An empty dataset with `num_images` images and the given class names.
    pub fn new(num_images: usize, class_names: Vec<String>) -> Self {
        Self {
            num_images,
            class_names,
            gts: Vec::new(),
            dets: Vec::new(),
        }
    }

    /// Number of foreground classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Checks every record: image and class in range, finite coordinates, no negative
    /// width or height, finite scores and areas. The evaluators call this first.
    pub fn validate(&self) -> Result<(), MetricsError> {
        let (ni, nc) = (self.num_images, self.num_classes());
        for (index, g) in self.gts.iter().enumerate() {
            let bad = |reason: String| MetricsError::BadGt { index, reason };
            if g.image >= ni {
                return Err(bad(format!(
                    "image {} out of range (num_images {ni})",
                    g.image
                )));
            }
            if g.class >= nc {
                return Err(bad(format!(
                    "class {} out of range (num_classes {nc})",
                    g.class
                )));
            }
            g.rect.check().map_err(bad)?;
            if let Some(a) = g.area {
                if !a.is_finite() || a < 0.0 {
                    return Err(bad(format!("area {a} is not a finite non-negative number")));
                }
            }
        }
        for (index, d) in self.dets.iter().enumerate() {
            let bad = |reason: String| MetricsError::BadDetection { index, reason };
            if d.image >= ni {
                return Err(bad(format!(
                    "image {} out of range (num_images {ni})",
                    d.image
                )));
            }
            if d.class >= nc {
                return Err(bad(format!(
                    "class {} out of range (num_classes {nc})",
                    d.class
                )));
            }
            d.rect.check().map_err(bad)?;
            if !d.score.is_finite() {
                return Err(bad(format!("score {} is not finite", d.score)));
            }
        }
        Ok(())
    }

    /// Indices of ground truth per `(class, image)`, flattened as `class * num_images +
    /// image`, each list in input order.
    pub(crate) fn gt_groups(&self) -> Vec<Vec<usize>> {
        let mut groups = vec![Vec::new(); self.num_classes() * self.num_images];
        for (i, g) in self.gts.iter().enumerate() {
            groups[g.class * self.num_images + g.image].push(i);
        }
        groups
    }

    /// Indices of detections per `(class, image)`, as [`Dataset::gt_groups`].
    pub(crate) fn det_groups(&self) -> Vec<Vec<usize>> {
        let mut groups = vec![Vec::new(); self.num_classes() * self.num_images];
        for (i, d) in self.dets.iter().enumerate() {
            groups[d.class * self.num_images + d.image].push(i);
        }
        groups
    }
}

/// Stable sort of detection indices by descending score (ties keep their order).
pub(crate) fn sort_by_score_desc(idx: &mut [usize], dets: &[Detection]) {
    // `partial_cmp`, not `total_cmp`: -0.0 and 0.0 tie, as in numpy and MATLAB. Scores are
    // validated finite, so the fallback never fires.
    idx.sort_by(|&a, &b| {
        dets[b]
            .score
            .partial_cmp(&dets[a].score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}
