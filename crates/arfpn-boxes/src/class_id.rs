//! [`ClassId`]: a foreground class, never a column index or a COCO category id.

use serde::{Deserialize, Serialize};

/// Index of a foreground class, `0..num_classes`, in datasets, detections and metrics
/// alike. Background is never a `ClassId`: a classifier's background column is
/// [`background_index`]`(num_classes)`, the last one. COCO files number categories from 1
/// ([`ClassId::coco_id`] / [`ClassId::from_coco_id`]).
///
/// A newtype, so that a logit column or a COCO id cannot pass as a class by accident.
///
/// ```
/// use arfpn_boxes::ClassId;
/// let c = ClassId::new(2);
/// assert_eq!(c.index(), 2);
/// assert_eq!(c.coco_id(), 3);
/// assert_eq!(ClassId::from_coco_id(3), Some(c));
/// assert_eq!(ClassId::from_coco_id(0), None);
/// assert_eq!(serde_json::to_string(&c).unwrap(), "2");
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ClassId(usize);

impl ClassId {
    /// The class at `index` of the label set.
    pub const fn new(index: usize) -> Self {
        Self(index)
    }

    /// Its position in the label set (and its logit column).
    pub const fn index(self) -> usize {
        self.0
    }

    /// COCO's `category_id` for this class (`index + 1`).
    pub const fn coco_id(self) -> i64 {
        self.0 as i64 + 1
    }

    /// The class of a COCO `category_id` (`None` for ids below 1).
    pub fn from_coco_id(id: i64) -> Option<Self> {
        (id >= 1).then(|| Self((id - 1) as usize))
    }
}

impl std::fmt::Display for ClassId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Column of the background class in a classifier with `num_classes` foreground classes:
/// always the last one.
///
/// ```
/// assert_eq!(arfpn_boxes::background_index(14), 14);
/// ```
pub fn background_index(num_classes: usize) -> usize {
    num_classes
}
