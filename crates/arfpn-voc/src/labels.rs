//! Label sets: the ordered list of foreground class names that maps a VOC `<name>` to a
//! [`ClassId`] (`0..len`, background is never a label).

use std::collections::{BTreeSet, HashMap};

use arfpn_boxes::ClassId;
use serde::{Deserialize, Serialize};

use crate::error::{Result, VocError};

/// The 14 red-blood-cell morphology classes of Song et al. (Front. Med. 2021), in the order
/// the paper lists them. These exact strings are the `<name>` values the synthetic
/// generator writes; [`LabelSet::rbc14`] maps them to ids `0..14` in this order.
///
/// | id | name | paper's description |
/// |---:|---|---|
/// | 0 | `schistocyte` | broken RBC, irregular "fragment" |
/// | 1 | `spherocyte` | small, dense, no central pallor |
/// | 2 | `stomatocyte` | slit-shaped ("mouth") central pallor |
/// | 3 | `target_cell` | "shooting target": central dot and ring |
/// | 4 | `hypochromic` | little haemoglobin: large pale centre |
/// | 5 | `elliptocyte` | elongated, ellipse-shaped |
/// | 6 | `normal` | normal RBC, about 21×21 px |
/// | 7 | `overlap` | overlapping RBCs (one box around the pair) |
/// | 8 | `hyperchromic` | much haemoglobin: dark, little pallor |
/// | 9 | `microcyte` | smaller than 18×18 px |
/// | 10 | `macrocyte` | larger than 24×24 px |
/// | 11 | `teardrop` | dacrocyte: drop shape with a tail |
/// | 12 | `basophilic_stippling` | dark blue-purple dots inside the cell |
/// | 13 | `edge` | cell cut by the image border |
pub const RBC14_CLASSES: [&str; 14] = [
    "schistocyte",
    "spherocyte",
    "stomatocyte",
    "target_cell",
    "hypochromic",
    "elliptocyte",
    "normal",
    "overlap",
    "hyperchromic",
    "microcyte",
    "macrocyte",
    "teardrop",
    "basophilic_stippling",
    "edge",
];

/// The [`ClassId`]s of [`RBC14_CLASSES`] (`LabelSet::rbc14()` order), by name.
pub mod rbc {
    use arfpn_boxes::ClassId;
    /// `schistocyte` (id 0): broken RBC, irregular "fragment".
    pub const SCHISTOCYTE: ClassId = ClassId::new(0);
    /// `spherocyte` (id 1): small, dense, no central pallor.
    pub const SPHEROCYTE: ClassId = ClassId::new(1);
    /// `stomatocyte` (id 2): slit-shaped ("mouth") central pallor.
    pub const STOMATOCYTE: ClassId = ClassId::new(2);
    /// `target_cell` (id 3): "shooting target": central dot and ring.
    pub const TARGET_CELL: ClassId = ClassId::new(3);
    /// `hypochromic` (id 4): little haemoglobin: large pale centre.
    pub const HYPOCHROMIC: ClassId = ClassId::new(4);
    /// `elliptocyte` (id 5): elongated, ellipse-shaped.
    pub const ELLIPTOCYTE: ClassId = ClassId::new(5);
    /// `normal` (id 6): normal RBC, about 21×21 px.
    pub const NORMAL: ClassId = ClassId::new(6);
    /// `overlap` (id 7): overlapping RBCs (one box around the pair).
    pub const OVERLAP: ClassId = ClassId::new(7);
    /// `hyperchromic` (id 8): much haemoglobin: dark, little pallor.
    pub const HYPERCHROMIC: ClassId = ClassId::new(8);
    /// `microcyte` (id 9): smaller than 18×18 px.
    pub const MICROCYTE: ClassId = ClassId::new(9);
    /// `macrocyte` (id 10): larger than 24×24 px.
    pub const MACROCYTE: ClassId = ClassId::new(10);
    /// `teardrop` (id 11): dacrocyte: drop shape with a tail.
    pub const TEARDROP: ClassId = ClassId::new(11);
    /// `basophilic_stippling` (id 12): dark blue-purple dots inside the cell.
    pub const BASOPHILIC_STIPPLING: ClassId = ClassId::new(12);
    /// `edge` (id 13): cell cut by the image border.
    pub const EDGE: ClassId = ClassId::new(13);
}

/// BCCD's and TXL-PBC's three classes, spelled as in their XML.
pub const BCCD_CLASSES: [&str; 3] = ["RBC", "WBC", "Platelets"];

/// An ordered, duplicate-free list of class names; the position of a name is its [`ClassId`].
///
/// ```
/// use arfpn_voc::{ClassId, LabelSet};
/// let labels = LabelSet::new(["RBC", "WBC", "Platelets"]).unwrap();
/// assert_eq!(labels.id("WBC"), Some(ClassId::new(1)));
/// assert_eq!(labels.name(ClassId::new(2)), Some("Platelets"));
/// assert_eq!(LabelSet::rbc14().id("edge"), Some(ClassId::new(13)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct LabelSet {
    names: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, ClassId>,
}

impl LabelSet {
    /// A label set from names in id order. Names are matched exactly (case-sensitive, as VOC
    /// does). Fails on an empty list, a blank name or a duplicate.
    pub fn new<I, S>(names: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        if names.is_empty() {
            return Err(VocError::InvalidLabelSet("no class names".into()));
        }
        let mut index = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            if n.trim().is_empty() || n.trim() != n {
                return Err(VocError::InvalidLabelSet(format!(
                    "class {i} has a blank name or surrounding whitespace: {n:?}"
                )));
            }
            if index.insert(n.clone(), ClassId::new(i)).is_some() {
                return Err(VocError::InvalidLabelSet(format!(
                    "duplicate class name {n:?}"
                )));
            }
        }
        Ok(Self { names, index })
    }

    /// The paper's 14 RBC morphology classes ([`RBC14_CLASSES`]).
    pub fn rbc14() -> Self {
        Self::new(RBC14_CLASSES).expect("RBC14_CLASSES is a valid label set")
    }

    /// BCCD's `RBC`, `WBC`, `Platelets` ([`BCCD_CLASSES`]).
    pub fn bccd() -> Self {
        Self::new(BCCD_CLASSES).expect("BCCD_CLASSES is a valid label set")
    }

    /// The label set discovered from the names that occur, sorted alphabetically (byte order)
    /// so the ids do not depend on file order.
    pub fn discover<'a, I: IntoIterator<Item = &'a str>>(names: I) -> Result<Self> {
        let set: BTreeSet<&str> = names.into_iter().collect();
        Self::new(set)
    }

    /// The id of `name`, if it is in the set.
    pub fn id(&self, name: &str) -> Option<ClassId> {
        self.index.get(name).copied()
    }

    /// The name of class `id`.
    pub fn name(&self, id: ClassId) -> Option<&str> {
        self.names.get(id.index()).map(String::as_str)
    }

    /// All names in id order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of foreground classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false (a label set has at least one class); present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl TryFrom<Vec<String>> for LabelSet {
    type Error = VocError;
    fn try_from(v: Vec<String>) -> Result<Self> {
        LabelSet::new(v)
    }
}

impl From<LabelSet> for Vec<String> {
    fn from(l: LabelSet) -> Self {
        l.names
    }
}

/// Where a dataset's label set comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Labels {
    /// Exactly these classes; any other `<name>` is an [`VocError::UnknownClass`].
    Explicit(LabelSet),
    /// Every name found in the annotations of the split, sorted ([`LabelSet::discover`]).
    Discover,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbc_constants_match_the_names() {
        let l = LabelSet::rbc14();
        assert_eq!(l.id("target_cell"), Some(rbc::TARGET_CELL));
        assert_eq!(
            l.id("basophilic_stippling"),
            Some(rbc::BASOPHILIC_STIPPLING)
        );
        assert_eq!(l.id("overlap"), Some(rbc::OVERLAP));
        assert_eq!(l.id("edge"), Some(rbc::EDGE));
        assert_eq!(l.id("teardrop"), Some(rbc::TEARDROP));
    }

    #[test]
    fn rejects_bad_sets() {
        assert!(LabelSet::new(Vec::<String>::new()).is_err());
        assert!(LabelSet::new(["a", "a"]).is_err());
        assert!(LabelSet::new(["a", ""]).is_err());
        assert!(LabelSet::new([" a"]).is_err());
    }

    #[test]
    fn rbc14_order_and_ids() {
        let l = LabelSet::rbc14();
        assert_eq!(l.len(), 14);
        assert_eq!(l.id("schistocyte"), Some(ClassId::new(0)));
        assert_eq!(l.id("normal"), Some(ClassId::new(6)));
        assert_eq!(l.id("edge"), Some(ClassId::new(13)));
        assert_eq!(l.id("Normal"), None);
    }

    #[test]
    fn discover_is_sorted_and_deduplicated() {
        let l = LabelSet::discover(["WBC", "RBC", "WBC", "Platelets"]).unwrap();
        assert_eq!(l.names(), ["Platelets", "RBC", "WBC"]);
    }

    #[test]
    fn serde_round_trip() {
        let l = LabelSet::bccd();
        let s = serde_json::to_string(&l).unwrap();
        assert_eq!(s, r#"["RBC","WBC","Platelets"]"#);
        let back: LabelSet = serde_json::from_str(&s).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.id("Platelets"), Some(ClassId::new(2)));
        assert!(serde_json::from_str::<LabelSet>(r#"["a","a"]"#).is_err());
    }
}
