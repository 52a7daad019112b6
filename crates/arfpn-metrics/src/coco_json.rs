//! Reading COCO instances files and COCO results lists into a [`Dataset`].

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::{Dataset, Detection, GtBox, MetricsError, Rect};

/// A COCO ground-truth file read into a [`Dataset`], with the id maps.
///
/// Images and categories are indexed in ascending id order (pycocotools sorts
/// `imgIds` and `catIds`); class names are the categories' `name`s.
#[derive(Clone, Debug, PartialEq)]
pub struct CocoGt {
    /// The ground truth (and, after [`CocoGt::add_results`], the detections) with images
    /// and classes renumbered to dense indices; boxes are COCO `[x, y, w, h]` in pixels.
    pub dataset: Dataset,
    /// COCO `id` of each image index.
    pub image_ids: Vec<i64>,
    /// COCO `id` of each class index.
    pub category_ids: Vec<i64>,
    image_index: HashMap<i64, usize>,
    category_index: HashMap<i64, usize>,
}

fn err(record: impl Into<String>, reason: impl Into<String>) -> MetricsError {
    MetricsError::Json {
        record: record.into(),
        reason: reason.into(),
    }
}

/// A JSON syntax error, with a clearer message for the non-finite literals Python's `json`
/// writes (`NaN`, `Infinity`), which JSON does not allow.
fn parse_json(text: &str, what: &str) -> Result<Value, MetricsError> {
    serde_json::from_str(text).map_err(|e| {
        let (line, col) = (e.line(), e.column());
        let rest = text
            .lines()
            .nth(line.saturating_sub(1))
            .and_then(|l| l.get(col.saturating_sub(1)..))
            .unwrap_or("")
            .trim_start_matches(|c: char| c.is_whitespace() || c == ':' || c == ',');
        let bad = ["NaN", "Infinity", "-Infinity"].into_iter().find(|t| rest.starts_with(t));
        match bad {
            Some(t) => err(
                what,
                format!("line {line} column {col}: `{t}` is not a valid JSON number (scores and boxes must be finite)"),
            ),
            None => err(what, e.to_string()),
        }
    })
}

fn field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    rec: &str,
) -> Result<&'a Value, MetricsError> {
    obj.get(name)
        .ok_or_else(|| err(rec, format!("missing field `{name}`")))
}

/// An integer id. Integral floats (`1.0`, as Python writes `float` ids) are accepted, as
/// pycocotools does (`1.0 == 1` as a dict key); `1.5` or a string is an error.
fn int_field(obj: &Map<String, Value>, name: &str, rec: &str) -> Result<i64, MetricsError> {
    let v = field(obj, name, rec)?;
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        // 2^63 is exactly representable; every integral f64 below it fits in an i64.
        Some(x) if x.fract() == 0.0 && x.abs() < 9_223_372_036_854_775_808.0 => Ok(x as i64),
        _ => Err(err(rec, format!("field `{name}` = {v} is not an integer"))),
    }
}

fn num_field(obj: &Map<String, Value>, name: &str, rec: &str) -> Result<f64, MetricsError> {
    field(obj, name, rec)?
        .as_f64()
        .ok_or_else(|| err(rec, format!("field `{name}` is not a number")))
}

/// A flag that is absent, `0`/`1`, or a boolean.
fn flag(obj: &Map<String, Value>, name: &str, rec: &str) -> Result<bool, MetricsError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => match v.as_f64() {
            Some(x) => Ok(x != 0.0),
            None => Err(err(rec, format!("field `{name}` is not 0/1 or a boolean"))),
        },
    }
}

fn bbox(obj: &Map<String, Value>, rec: &str) -> Result<Rect, MetricsError> {
    let arr = field(obj, "bbox", rec)?
        .as_array()
        .filter(|a| a.len() == 4)
        .ok_or_else(|| err(rec, "field `bbox` is not an array [x, y, w, h]"))?;
    let mut v = [0.0; 4];
    for (slot, x) in v.iter_mut().zip(arr) {
        *slot = x
            .as_f64()
            .ok_or_else(|| err(rec, "field `bbox` holds a non-number"))?;
    }
    if v[2] < 0.0 || v[3] < 0.0 {
        return Err(err(
            rec,
            format!("bbox {v:?} has a negative width or height"),
        ));
    }
    Ok(Rect::from_xywh(v[0], v[1], v[2], v[3]))
}

fn objects<'a>(
    root: &'a Value,
    key: &str,
    what: &str,
) -> Result<Vec<&'a Map<String, Value>>, MetricsError> {
    let arr = root
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| err(what, format!("missing array `{key}`")))?;
    arr.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_object()
                .ok_or_else(|| err(format!("{key}[{i}]"), "not an object"))
        })
        .collect()
}

impl CocoGt {
    /// Parses a COCO instances file: `images` (`id`), `categories` (`id`, `name`),
    /// `annotations` (`image_id`, `category_id`, `bbox` = `[x, y, w, h]`, optional `area`,
    /// and `iscrowd` (crowd region), `ignore` or `difficult` (ignored box) = 1).
    pub fn parse(text: &str) -> Result<Self, MetricsError> {
        let root = parse_json(text, "ground-truth file")?;
        let mut image_ids = Vec::new();
        for (i, im) in objects(&root, "images", "ground-truth file")?
            .into_iter()
            .enumerate()
        {
            image_ids.push(int_field(im, "id", &format!("images[{i}]"))?);
        }
        let cats = objects(&root, "categories", "ground-truth file")?;
        let mut categories = Vec::new();
        for (i, c) in cats.into_iter().enumerate() {
            let rec = format!("categories[{i}]");
            let id = int_field(c, "id", &rec)?;
            let name = field(c, "name", &rec)?
                .as_str()
                .ok_or_else(|| err(&rec, "field `name` is not a string"))?;
            categories.push((id, name.to_string()));
        }
        image_ids.sort_unstable();
        if let Some(w) = image_ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(err("images", format!("duplicate image id {}", w[0])));
        }
        categories.sort_by_key(|c| c.0);
        if let Some(w) = categories.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(err(
                "categories",
                format!("duplicate category id {}", w[0].0),
            ));
        }
        let image_index: HashMap<i64, usize> = image_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i))
            .collect();
        let category_index: HashMap<i64, usize> = categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.0, i))
            .collect();
        let mut dataset = Dataset::new(
            image_ids.len(),
            categories.iter().map(|c| c.1.clone()).collect(),
        );
        for (i, a) in objects(&root, "annotations", "ground-truth file")?
            .into_iter()
            .enumerate()
        {
            let rec = format!("annotations[{i}]");
            let img = int_field(a, "image_id", &rec)?;
            let cat = int_field(a, "category_id", &rec)?;
            let image = *image_index
                .get(&img)
                .ok_or_else(|| err(&rec, format!("unknown image_id {img}")))?;
            let class = *category_index
                .get(&cat)
                .ok_or_else(|| err(&rec, format!("unknown category_id {cat}")))?;
            let area = match a.get("area") {
                None | Some(Value::Null) => None,
                Some(_) => Some(num_field(a, "area", &rec)?),
            };
            dataset.gts.push(GtBox {
                image,
                class,
                rect: bbox(a, &rec)?,
                ignore: flag(a, "ignore", &rec)? || flag(a, "difficult", &rec)?,
                crowd: flag(a, "iscrowd", &rec)?,
                area,
            });
        }
        let out = CocoGt {
            dataset,
            image_ids,
            category_ids: categories.iter().map(|c| c.0).collect(),
            image_index,
            category_index,
        };
        out.dataset
            .validate()
            .map_err(|e| err("ground-truth file", e.to_string()))?;
        Ok(out)
    }

    /// Parses a COCO results list (`image_id`, `category_id`, `bbox` = `[x, y, w, h]`,
    /// `score`) and appends the detections, in file order, to [`CocoGt::dataset`].
    pub fn add_results(&mut self, text: &str) -> Result<(), MetricsError> {
        let root = parse_json(text, "detections file")?;
        let arr = root
            .as_array()
            .ok_or_else(|| err("detections file", "not a JSON array of results"))?;
        let mut dets = Vec::with_capacity(arr.len());
        for (i, v) in arr.iter().enumerate() {
            let rec = format!("detections[{i}]");
            let d = v.as_object().ok_or_else(|| err(&rec, "not an object"))?;
            let img = int_field(d, "image_id", &rec)?;
            let cat = int_field(d, "category_id", &rec)?;
            let image = *self
                .image_index
                .get(&img)
                .ok_or_else(|| err(&rec, format!("unknown image_id {img}")))?;
            let class = *self
                .category_index
                .get(&cat)
                .ok_or_else(|| err(&rec, format!("unknown category_id {cat}")))?;
            let score = num_field(d, "score", &rec)?;
            if !score.is_finite() {
                return Err(err(&rec, format!("score {score} is not finite")));
            }
            dets.push(Detection {
                image,
                class,
                rect: bbox(d, &rec)?,
                score,
            });
        }
        self.dataset.dets.extend(dets);
        Ok(())
    }
}
