//! [`GroundTruth`] and [`Detections`]: what goes into a detector and what comes out.

use serde::{Deserialize, Serialize};

use crate::{BBox, BoxError, ClassId};

/// The annotated objects of one image: parallel lists of boxes (image pixels) and classes.
/// An image with no objects is valid training input.
///
/// ```
/// use arfpn_boxes::{BBox, ClassId, GroundTruth};
/// let gt = GroundTruth::new(vec![BBox::new(0.0, 0.0, 4.0, 4.0)], vec![ClassId::new(1)]).unwrap();
/// assert_eq!(gt.len(), 1);
/// assert!(GroundTruth::new(vec![], vec![ClassId::new(0)]).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// One box per object, corner coordinates in the image's pixels.
    pub boxes: Vec<BBox>,
    /// The foreground class of each object, parallel to `boxes`.
    pub classes: Vec<ClassId>,
}

impl GroundTruth {
    /// Checks that the two lists are parallel.
    pub fn new(boxes: Vec<BBox>, classes: Vec<ClassId>) -> Result<Self, BoxError> {
        BoxError::check_len("boxes", boxes.len(), "classes", classes.len())?;
        Ok(Self { boxes, classes })
    }

    /// An image without objects.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.boxes.len()
    }

    /// No objects.
    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    /// Checks that the lists are parallel, every box is finite and every class is below
    /// `num_classes`; the error names the first object at fault.
    pub fn validate(&self, num_classes: usize) -> Result<(), BoxError> {
        BoxError::check_len("boxes", self.boxes.len(), "classes", self.classes.len())?;
        for (i, (b, c)) in self.boxes.iter().zip(&self.classes).enumerate() {
            if !b.is_finite() {
                return Err(BoxError::invalid(
                    "boxes",
                    format!("object {i} has a non-finite box {b:?}"),
                ));
            }
            if c.index() >= num_classes {
                return Err(BoxError::invalid(
                    "classes",
                    format!("object {i} has class {c}, but there are {num_classes} classes"),
                ));
            }
        }
        Ok(())
    }
}

/// A detector's output for one image: parallel lists, highest score first, boxes in the
/// image's own pixels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Detections {
    /// One box per detection, corner coordinates in the image's pixels.
    pub boxes: Vec<BBox>,
    /// The confidence of each detection, parallel to `boxes` (the detector reports its
    /// softmax class probability, in `[0, 1]`). Highest first by convention;
    /// [`Detections::new`] does not check the order.
    pub scores: Vec<f32>,
    /// The predicted foreground class of each detection, parallel to `boxes`.
    pub classes: Vec<ClassId>,
}

impl Detections {
    /// Checks that the three lists are parallel.
    pub fn new(
        boxes: Vec<BBox>,
        scores: Vec<f32>,
        classes: Vec<ClassId>,
    ) -> Result<Self, BoxError> {
        BoxError::check_len("boxes", boxes.len(), "scores", scores.len())?;
        BoxError::check_len("boxes", boxes.len(), "classes", classes.len())?;
        Ok(Self {
            boxes,
            scores,
            classes,
        })
    }

    /// Number of detections.
    pub fn len(&self) -> usize {
        self.boxes.len()
    }

    /// Nothing detected.
    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    /// The detections scoring at least `min_score`, order kept.
    pub fn above(&self, min_score: f32) -> Detections {
        let keep: Vec<usize> = (0..self.len())
            .filter(|&i| self.scores[i] >= min_score)
            .collect();
        self.select(&keep)
    }

    /// The detections at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Detections {
        Detections {
            boxes: indices.iter().map(|&i| self.boxes[i]).collect(),
            scores: indices.iter().map(|&i| self.scores[i]).collect(),
            classes: indices.iter().map(|&i| self.classes[i]).collect(),
        }
    }

    /// How many detections of each class (`counts[c.index()]`, `num_classes` entries;
    /// classes at or above `num_classes` are not counted).
    pub fn counts(&self, num_classes: usize) -> Vec<usize> {
        let mut c = vec![0; num_classes];
        for k in &self.classes {
            if let Some(n) = c.get_mut(k.index()) {
                *n += 1;
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detections_select_count_and_validate() {
        let b = BBox::new(0.0, 0.0, 1.0, 1.0);
        let d = Detections::new(
            vec![b; 3],
            vec![0.9, 0.4, 0.6],
            vec![ClassId::new(0), ClassId::new(2), ClassId::new(2)],
        )
        .unwrap();
        assert_eq!(d.above(0.5).scores, vec![0.9, 0.6]);
        assert_eq!(d.counts(3), vec![1, 0, 2]);
        assert!(Detections::new(vec![b], vec![], vec![]).is_err());
        let gt = GroundTruth::new(vec![b], vec![ClassId::new(3)]).unwrap();
        assert!(gt.validate(4).is_ok());
        assert!(gt.validate(3).is_err());
        let bad = GroundTruth::new(
            vec![BBox::new(f32::NAN, 0.0, 1.0, 1.0)],
            vec![ClassId::new(0)],
        )
        .unwrap();
        assert!(bad.validate(4).is_err());
    }
}
