//! COCO "instances" JSON export and import of annotations.
//!
//! - Boxes: COCO `bbox = [x, y, w, h]` with `x = x1`, `w = x2 - x1` (continuous pixels,
//!   no `+1`: the same convention as [`arfpn_boxes::BBox`]); `area = w * h`.
//! - Categories: `id = ClassId + 1` (COCO ids start at 1), `name` from the label set.
//!   Import maps categories to `ClassId`s in ascending id order.
//! - Images: `id = index + 1` in sample order, `file_name` = the image's file name.
//! - VOC `difficult` is written as `"ignore": 1` (plus `"difficult": 1`), `iscrowd` stays 0:
//!   an ignored box is matched at most once with the ordinary IoU, which is VOC's meaning
//!   (arfpn-metrics, mmdetection). pycocotools only reads `iscrowd`; for it, export with
//!   [`CocoExportOptions::difficult_as_crowd`] (crowd semantics: any number of matches, IoU
//!   over the detection's area). Import sets `difficult` when any of `ignore`, `difficult`,
//!   `iscrowd` is 1. `truncated` travels as an extra `"truncated"` key.

use std::collections::HashMap;
use std::path::Path;

use arfpn_boxes::{BBox, ClassId};
use serde::{Deserialize, Serialize};

use crate::annotation::{Object, Sample};
use crate::error::{Result, VocError};
use crate::labels::LabelSet;

#[derive(Debug, Serialize, Deserialize)]
struct CocoFile {
    #[serde(default)]
    info: Option<serde_json::Value>,
    images: Vec<CocoImage>,
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CocoImage {
    id: i64,
    file_name: String,
    width: u32,
    height: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct CocoAnnotation {
    id: i64,
    image_id: i64,
    category_id: i64,
    bbox: Vec<f64>,
    #[serde(default)]
    area: Option<f64>,
    #[serde(default, deserialize_with = "flag")]
    iscrowd: u8,
    #[serde(default, deserialize_with = "flag")]
    ignore: u8,
    #[serde(default, deserialize_with = "flag")]
    difficult: u8,
    #[serde(default, deserialize_with = "flag")]
    truncated: u8,
}

/// A 0/1 flag written as a number (`0`, `1`, `1.0`), a boolean or `null`; any non-zero
/// number is 1.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u8, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::Null => Ok(0),
        serde_json::Value::Bool(b) => Ok(b as u8),
        serde_json::Value::Number(n) => Ok((n.as_f64().unwrap_or(0.0) != 0.0) as u8),
        other => Err(serde::de::Error::custom(format!(
            "expected 0/1 or a boolean, got {other}"
        ))),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CocoCategory {
    id: i64,
    name: String,
    #[serde(default)]
    supercategory: Option<String>,
}

/// Options of [`to_coco_json`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CocoExportOptions {
    /// Also set `iscrowd = 1` on difficult boxes (for pycocotools, which ignores `ignore`).
    pub difficult_as_crowd: bool,
}

/// The samples as a COCO instances JSON string (see the module docs for the mapping).
pub fn to_coco_json(
    samples: &[Sample],
    labels: &LabelSet,
    opts: CocoExportOptions,
) -> Result<String> {
    let images = samples
        .iter()
        .enumerate()
        .map(|(i, s)| CocoImage {
            id: i as i64 + 1,
            file_name: s
                .image_path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| s.id.clone()),
            width: s.width,
            height: s.height,
        })
        .collect();
    let mut annotations = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        for o in &s.objects {
            if o.class.index() >= labels.len() {
                return Err(VocError::InvalidArgument {
                    name: "labels",
                    reason: format!(
                        "sample {:?}: class id {} not in a label set of {}",
                        s.id,
                        o.class,
                        labels.len()
                    ),
                });
            }
            let [x, y, w, h] = o.bbox.to_xywh().map(f64::from);
            annotations.push(CocoAnnotation {
                id: annotations.len() as i64 + 1,
                image_id: i as i64 + 1,
                category_id: o.class.coco_id(),
                bbox: vec![x, y, w, h],
                area: Some(w * h),
                iscrowd: (o.difficult && opts.difficult_as_crowd) as u8,
                ignore: o.difficult as u8,
                difficult: o.difficult as u8,
                truncated: o.truncated as u8,
            });
        }
    }
    let categories = labels
        .names()
        .iter()
        .enumerate()
        .map(|(c, n)| CocoCategory {
            id: c as i64 + 1,
            name: n.clone(),
            supercategory: Some("cell".into()),
        })
        .collect();
    let file = CocoFile {
        info: Some(serde_json::json!({"description": "exported by arfpn-voc"})),
        images,
        annotations,
        categories,
    };
    serde_json::to_string(&file).map_err(|e| VocError::InvalidArgument {
        name: "samples",
        reason: e.to_string(),
    })
}

/// Write [`to_coco_json`] to `path`.
pub fn write_coco(
    path: &Path,
    samples: &[Sample],
    labels: &LabelSet,
    opts: CocoExportOptions,
) -> Result<()> {
    let text = to_coco_json(samples, labels, opts)?;
    std::fs::write(path, text).map_err(|e| VocError::io(path, e))
}

/// Parse a COCO instances JSON. Image paths are `images_dir / file_name`, sample ids the
/// file stems. `path` names the source in errors. Fails (naming the record and field) on
/// malformed JSON, duplicate image/category/annotation ids, unknown `image_id` or
/// `category_id`, a `bbox` that is not 4 finite numbers with positive width and height, or a
/// box outside its image.
pub fn from_coco_json(
    text: &str,
    path: &Path,
    images_dir: &Path,
) -> Result<(LabelSet, Vec<Sample>)> {
    let err = |message: String| VocError::Coco {
        path: path.to_path_buf(),
        message,
    };
    let file: CocoFile = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
    let mut cats: Vec<&CocoCategory> = file.categories.iter().collect();
    cats.sort_by_key(|c| c.id);
    if let Some(w) = cats.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(err(format!("categories: id {} listed twice", w[0].id)));
    }
    let labels = LabelSet::new(cats.iter().map(|c| c.name.clone()))
        .map_err(|e| err(format!("categories: {e}")))?;
    let cat_index: HashMap<i64, usize> = cats.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    let mut img_index = HashMap::new();
    let mut samples = Vec::with_capacity(file.images.len());
    for (i, im) in file.images.iter().enumerate() {
        if img_index.insert(im.id, i).is_some() {
            return Err(err(format!("images[{i}].id: {} listed twice", im.id)));
        }
        let p = images_dir.join(&im.file_name);
        let id = Path::new(&im.file_name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| im.file_name.clone());
        samples.push(Sample {
            id,
            image_path: p,
            width: im.width,
            height: im.height,
            objects: Vec::new(),
        });
    }
    let mut ann_ids = HashMap::new();
    for (k, a) in file.annotations.iter().enumerate() {
        let rec = format!("annotations[{k}]");
        if ann_ids.insert(a.id, k).is_some() {
            return Err(err(format!("{rec}.id: {} listed twice", a.id)));
        }
        let &i = img_index
            .get(&a.image_id)
            .ok_or_else(|| err(format!("{rec}.image_id: unknown image id {}", a.image_id)))?;
        let &class = cat_index.get(&a.category_id).ok_or_else(|| {
            err(format!(
                "{rec}.category_id: unknown category id {}",
                a.category_id
            ))
        })?;
        if a.bbox.len() != 4 || a.bbox.iter().any(|v| !v.is_finite()) {
            return Err(err(format!(
                "{rec}.bbox: expected 4 finite numbers, got {:?}",
                a.bbox
            )));
        }
        let (x, y, w, h) = (a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3]);
        if w <= 0.0 || h <= 0.0 {
            return Err(err(format!(
                "{rec}.bbox: zero or negative area {:?}",
                a.bbox
            )));
        }
        let s = &mut samples[i];
        if x < 0.0 || y < 0.0 || x + w > s.width as f64 || y + h > s.height as f64 {
            return Err(err(format!(
                "{rec}.bbox: {:?} outside the {}x{} image",
                a.bbox, s.width, s.height
            )));
        }
        s.objects.push(Object {
            bbox: BBox::from_xywh(x as f32, y as f32, w as f32, h as f32),
            class: ClassId::new(class),
            difficult: a.ignore == 1 || a.difficult == 1 || a.iscrowd == 1,
            truncated: a.truncated == 1,
        });
    }
    Ok((labels, samples))
}

/// Read a COCO instances JSON file ([`from_coco_json`]).
pub fn read_coco(path: &Path, images_dir: &Path) -> Result<(LabelSet, Vec<Sample>)> {
    let text = std::fs::read_to_string(path).map_err(|e| VocError::io(path, e))?;
    from_coco_json(&text, path, images_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Sample> {
        vec![
            Sample {
                id: "a".into(),
                image_path: "imgs/a.jpg".into(),
                width: 40,
                height: 30,
                objects: vec![
                    Object {
                        bbox: BBox::new(0.0, 1.0, 10.0, 21.0),
                        class: ClassId::new(1),
                        difficult: true,
                        truncated: false,
                    },
                    Object {
                        bbox: BBox::new(5.5, 2.25, 40.0, 30.0),
                        class: ClassId::new(0),
                        difficult: false,
                        truncated: true,
                    },
                ],
            },
            Sample {
                id: "b".into(),
                image_path: "imgs/b.png".into(),
                width: 8,
                height: 8,
                objects: vec![],
            },
        ]
    }

    #[test]
    fn export_fields_follow_coco() {
        let labels = LabelSet::new(["RBC", "WBC"]).unwrap();
        let text = to_coco_json(&samples(), &labels, CocoExportOptions::default()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let a0 = &v["annotations"][0];
        assert_eq!(a0["bbox"], serde_json::json!([0.0, 1.0, 10.0, 20.0]));
        assert_eq!(a0["area"], 200.0);
        assert_eq!(a0["category_id"], 2);
        assert_eq!(a0["image_id"], 1);
        assert_eq!(a0["ignore"], 1);
        assert_eq!(a0["iscrowd"], 0);
        assert_eq!(v["categories"][0]["name"], "RBC");
        assert_eq!(v["categories"][0]["id"], 1);
        assert_eq!(v["images"][1]["file_name"], "b.png");
        let crowd = to_coco_json(
            &samples(),
            &labels,
            CocoExportOptions {
                difficult_as_crowd: true,
            },
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&crowd).unwrap();
        assert_eq!(v["annotations"][0]["iscrowd"], 1);
        assert_eq!(v["annotations"][1]["iscrowd"], 0);
    }

    #[test]
    fn round_trip() {
        let labels = LabelSet::new(["RBC", "WBC"]).unwrap();
        let text = to_coco_json(&samples(), &labels, CocoExportOptions::default()).unwrap();
        let (l2, s2) = from_coco_json(&text, Path::new("x.json"), Path::new("imgs")).unwrap();
        assert_eq!(l2, labels);
        assert_eq!(s2, samples());
    }

    #[test]
    fn import_flags_and_errors() {
        let base = |ann: &str| {
            format!(
                r#"{{"images":[{{"id":7,"file_name":"p.jpg","width":10,"height":10}}],
                "categories":[{{"id":3,"name":"b"}},{{"id":1,"name":"a"}}],
                "annotations":[{ann}]}}"#
            )
        };
        let p = Path::new("in.json");
        let d = Path::new(".");
        let (l, s) = from_coco_json(
            &base(r#"{"id":1,"image_id":7,"category_id":3,"bbox":[1,2,3,4],"iscrowd":1}"#),
            p,
            d,
        )
        .unwrap();
        assert_eq!(l.names(), ["a", "b"]);
        assert_eq!(s[0].objects[0].class, ClassId::new(1));
        assert_eq!(s[0].objects[0].bbox, BBox::new(1.0, 2.0, 4.0, 6.0));
        assert!(s[0].objects[0].difficult);
        let (_, s) = from_coco_json(
            &base(r#"{"id":1,"image_id":7,"category_id":1,"bbox":[1,2,3,4],"difficult":1}"#),
            p,
            d,
        )
        .unwrap();
        assert!(s[0].objects[0].difficult);
        let flags = |extra: &str| {
            let ann = format!(r#"{{"id":1,"image_id":7,"category_id":1,"bbox":[1,2,3,4]{extra}}}"#);
            from_coco_json(&base(&ann), p, d).map(|(_, s)| s[0].objects[0].difficult)
        };
        assert!(flags(r#","ignore":true,"iscrowd":null"#).unwrap());
        assert!(!flags(r#","ignore":false,"iscrowd":0.0"#).unwrap());
        assert!(flags(r#","ignore":"yes""#).is_err());
        for (ann, want) in [
            (
                r#"{"id":1,"image_id":8,"category_id":1,"bbox":[1,2,3,4]}"#,
                "annotations[0].image_id",
            ),
            (
                r#"{"id":1,"image_id":7,"category_id":2,"bbox":[1,2,3,4]}"#,
                "annotations[0].category_id",
            ),
            (
                r#"{"id":1,"image_id":7,"category_id":1,"bbox":[1,2,3]}"#,
                "annotations[0].bbox",
            ),
            (
                r#"{"id":1,"image_id":7,"category_id":1,"bbox":[1,2,0,4]}"#,
                "zero or negative",
            ),
            (
                r#"{"id":1,"image_id":7,"category_id":1,"bbox":[8,2,3,4]}"#,
                "outside",
            ),
            (
                r#"{"id":1,"image_id":7,"category_id":1,"bbox":[1,2,3,4]},{"id":1,"image_id":7,"category_id":1,"bbox":[1,2,3,4]}"#,
                "annotations[1].id",
            ),
            (r#"{"id":1,"image_id":7,"category_id":1}"#, "bbox"),
        ] {
            let e = from_coco_json(&base(ann), p, d).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(want) && msg.contains("in.json"),
                "{ann}: {msg}"
            );
        }
        assert!(from_coco_json("{", p, d).is_err());
    }
}
