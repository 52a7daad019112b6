//! Pascal VOC annotation files: the file-level types ([`VocAnnotation`], [`VocObject`]),
//! reading with `roxmltree` ([`parse_annotation`]) and writing ([`VocAnnotation::to_xml`]),
//! plus the class-resolved form the rest of the crate works on ([`Sample`], [`Object`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use arfpn_boxes::{BBox, ClassId};
use serde::{Deserialize, Serialize};

use crate::coords::{bbox_to_voc, voc_extent_positive, voc_inside, voc_to_bbox};
use crate::error::{Result, VocError};
use crate::labels::LabelSet;

/// One `<object>` of a VOC file, as written (class by name, box already continuous,
/// see [`crate::coords`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocObject {
    /// `<name>`: the class name as written (trimmed), not yet resolved to a [`ClassId`].
    pub name: String,
    /// `<pose>`; `"Unspecified"` when absent.
    pub pose: String,
    /// `<truncated>` (`0`/`1` or `false`/`true`; false when absent): the object continues
    /// past the image border.
    pub truncated: bool,
    /// `<difficult>` (`0`/`1` or `false`/`true`; false when absent): hard to recognise;
    /// evaluation ignores it.
    pub difficult: bool,
    /// `<bndbox>` converted to continuous corner coordinates in pixels (`xmin - 1`,
    /// `ymin - 1`, `xmax`, `ymax`; see [`crate::coords`]).
    pub bbox: BBox,
}

/// One VOC annotation file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocAnnotation {
    /// `<folder>`; `"JPEGImages"` when absent.
    pub folder: String,
    /// `<filename>`: the image file inside `JPEGImages/`.
    pub filename: String,
    /// `<size><width>`: the image width in pixels.
    pub width: u32,
    /// `<size><height>`: the image height in pixels.
    pub height: u32,
    /// `<size><depth>`; 3 when absent.
    pub depth: u32,
    /// The `<object>` elements, in document order.
    pub objects: Vec<VocObject>,
}

/// The result of [`parse_annotation`]: the annotation with every usable object, the
/// per-object problems (each such object is left out of `annotation.objects`), and for each
/// kept object its index in the file (for error messages naming `object[i]`).
#[derive(Debug)]
pub struct ParsedAnnotation {
    /// The annotation with the usable objects only.
    pub annotation: VocAnnotation,
    /// One entry per `<object>` left out, in document order.
    pub object_errors: Vec<ObjectError>,
    /// For each object in `annotation.objects`, its 0-based index among the file's
    /// `<object>` elements (parallel to `annotation.objects`).
    pub source_index: Vec<usize>,
}

/// An `<object>` that [`parse_annotation`] left out.
#[derive(Debug)]
pub struct ObjectError {
    /// Its index among the file's `<object>` elements.
    pub index: usize,
    /// Its `<name>`, when it had one (so statistics can still count it).
    pub name: Option<String>,
    /// Why it was left out, naming the file and the field (`object[i]/...`).
    pub error: VocError,
}

/// A labelled object with its class resolved against a [`LabelSet`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Continuous corner coordinates in the image's pixels.
    pub bbox: BBox,
    /// The object's foreground class: the position of its name in the [`LabelSet`].
    pub class: ClassId,
    /// VOC `difficult`: evaluation ignores it (neither TP nor FP); COCO export writes it as
    /// `ignore = 1` (see [`crate::coco`]).
    pub difficult: bool,
    /// VOC `truncated`: the object continues past the image border.
    pub truncated: bool,
}

/// One image of a dataset: where its pixels are, how large they are, and its objects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Image id (the file stem listed in `ImageSets/Main/<split>.txt`).
    pub id: String,
    /// Path of the image file.
    pub image_path: PathBuf,
    /// Image width in pixels (as annotated; checked against the file when loading).
    pub width: u32,
    /// Image height in pixels (as annotated; checked against the file when loading).
    pub height: u32,
    /// The image's objects, in annotation order.
    pub objects: Vec<Object>,
}

impl Sample {
    /// All boxes, in object order.
    pub fn boxes(&self) -> Vec<BBox> {
        self.objects.iter().map(|o| o.bbox).collect()
    }

    /// All class ids, in object order.
    pub fn classes(&self) -> Vec<ClassId> {
        self.objects.iter().map(|o| o.class).collect()
    }

    /// The VOC annotation of this sample (class names from `labels`, pose `Unspecified`).
    /// Fails if a class id is not in `labels`.
    pub fn to_voc(&self, labels: &LabelSet) -> Result<VocAnnotation> {
        let filename = self
            .image_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{}.jpg", self.id));
        let mut objects = Vec::with_capacity(self.objects.len());
        for o in &self.objects {
            let name = labels
                .name(o.class)
                .ok_or_else(|| VocError::InvalidArgument {
                    name: "labels",
                    reason: format!(
                        "class id {} not in a label set of {}",
                        o.class,
                        labels.len()
                    ),
                })?;
            objects.push(VocObject {
                name: name.to_string(),
                pose: "Unspecified".into(),
                truncated: o.truncated,
                difficult: o.difficult,
                bbox: o.bbox,
            });
        }
        Ok(VocAnnotation {
            folder: "JPEGImages".into(),
            filename,
            width: self.width,
            height: self.height,
            depth: 3,
            objects,
        })
    }
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.has_tag_name(tag))
}

/// The trimmed text of `<tag>` under `node`, `None` when absent or empty.
fn child_text<'a>(node: roxmltree::Node<'a, '_>, tag: &str) -> Option<&'a str> {
    child(node, tag)
        .and_then(|c| c.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn missing(path: &Path, field: impl Into<String>) -> VocError {
    VocError::MissingField {
        path: path.to_path_buf(),
        field: field.into(),
    }
}

fn invalid(path: &Path, field: impl Into<String>, value: &str, reason: &str) -> VocError {
    VocError::InvalidField {
        path: path.to_path_buf(),
        field: field.into(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// A positive integer size field; accepts `640` and `640.0`.
fn parse_dim(path: &Path, field: &str, text: &str) -> Result<u32> {
    let v: f64 = text
        .parse()
        .map_err(|_| invalid(path, field, text, "not a number"))?;
    if !(v.is_finite() && v >= 1.0 && v.fract() == 0.0 && v <= u32::MAX as f64) {
        return Err(invalid(path, field, text, "must be a positive integer"));
    }
    Ok(v as u32)
}

fn parse_flag(path: &Path, field: &str, text: Option<&str>) -> Result<bool> {
    match text {
        None => Ok(false),
        Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(t) => Err(invalid(path, field, t, "must be 0 or 1")),
    }
}

fn parse_object(path: &Path, obj: roxmltree::Node, i: usize, w: u32, h: u32) -> Result<VocObject> {
    let f = |s: &str| format!("object[{i}]/{s}");
    let name = child_text(obj, "name").ok_or_else(|| missing(path, f("name")))?;
    let pose = child_text(obj, "pose").unwrap_or("Unspecified");
    let truncated = parse_flag(path, &f("truncated"), child_text(obj, "truncated"))?;
    let difficult = parse_flag(path, &f("difficult"), child_text(obj, "difficult"))?;
    let bnd = child(obj, "bndbox").ok_or_else(|| missing(path, f("bndbox")))?;
    let mut voc = [0.0f64; 4];
    for (k, tag) in ["xmin", "ymin", "xmax", "ymax"].iter().enumerate() {
        let field = f(&format!("bndbox/{tag}"));
        let t = child_text(bnd, tag).ok_or_else(|| missing(path, field.clone()))?;
        let v: f64 = t
            .parse()
            .map_err(|_| invalid(path, field.clone(), t, "not a number"))?;
        if !v.is_finite() {
            return Err(invalid(path, field, t, "not finite"));
        }
        voc[k] = v;
    }
    let [xmin, ymin, xmax, ymax] = voc;
    // Validate the coordinates as stored (f32 boxes), so that what passes here is exactly
    // what writing produces and reading again accepts.
    let bbox = voc_to_bbox(voc);
    if !bbox.is_finite() {
        return Err(invalid(
            path,
            f("bndbox"),
            &format!("{xmin}, {ymin}, {xmax}, {ymax}"),
            "coordinate out of the f32 range",
        ));
    }
    let stored = bbox_to_voc(&bbox);
    if !voc_extent_positive(stored) {
        return Err(VocError::DegenerateBox {
            path: path.to_path_buf(),
            field: f("bndbox"),
            xmin,
            ymin,
            xmax,
            ymax,
        });
    }
    if !voc_inside(stored, w, h) {
        return Err(VocError::BoxOutsideImage {
            path: path.to_path_buf(),
            field: f("bndbox"),
            xmin,
            ymin,
            xmax,
            ymax,
            width: w,
            height: h,
        });
    }
    Ok(VocObject {
        name: name.to_string(),
        pose: pose.to_string(),
        truncated,
        difficult,
        bbox,
    })
}

/// Parse the text of a VOC annotation file. `path` is only used to name the file in errors.
///
/// Returns `Err` when the file as a whole is unusable (not XML, root not `<annotation>`,
/// `filename` or `size/width|height` missing or invalid). Problems with single objects
/// (missing `name`/`bndbox`/coordinate, non-numeric or non-finite coordinate, invalid
/// `truncated`/`difficult`, zero/negative area, box outside the declared size) leave that
/// object out and are returned in [`ParsedAnnotation::object_errors`]; the caller decides
/// whether they are fatal ([`crate::Mode`]). Never panics (fuzzed, see `fuzz/`).
pub fn parse_annotation(text: &str, path: &Path) -> Result<ParsedAnnotation> {
    let doc = roxmltree::Document::parse(text).map_err(|e| VocError::MalformedXml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let root = doc.root_element();
    if !root.has_tag_name("annotation") {
        return Err(VocError::MalformedXml {
            path: path.to_path_buf(),
            message: format!(
                "root element is <{}>, expected <annotation>",
                root.tag_name().name()
            ),
        });
    }
    let filename = child_text(root, "filename").ok_or_else(|| missing(path, "filename"))?;
    let folder = child_text(root, "folder").unwrap_or("JPEGImages");
    let size = child(root, "size").ok_or_else(|| missing(path, "size"))?;
    let wt = child_text(size, "width").ok_or_else(|| missing(path, "size/width"))?;
    let ht = child_text(size, "height").ok_or_else(|| missing(path, "size/height"))?;
    let width = parse_dim(path, "size/width", wt)?;
    let height = parse_dim(path, "size/height", ht)?;
    let depth = match child_text(size, "depth") {
        None => 3,
        Some(d) => parse_dim(path, "size/depth", d)?,
    };
    let mut objects = Vec::new();
    let mut object_errors = Vec::new();
    let mut source_index = Vec::new();
    let object_nodes = root
        .children()
        .filter(|c| c.is_element() && c.has_tag_name("object"));
    for (i, obj) in object_nodes.enumerate() {
        match parse_object(path, obj, i, width, height) {
            Ok(o) => {
                objects.push(o);
                source_index.push(i);
            }
            Err(error) => object_errors.push(ObjectError {
                index: i,
                name: child_text(obj, "name").map(str::to_string),
                error,
            }),
        }
    }
    Ok(ParsedAnnotation {
        annotation: VocAnnotation {
            folder: folder.to_string(),
            filename: filename.to_string(),
            width,
            height,
            depth,
            objects,
        },
        object_errors,
        source_index,
    })
}

/// Read and parse an annotation file ([`parse_annotation`]).
pub fn read_annotation(path: &Path) -> Result<ParsedAnnotation> {
    let text = std::fs::read_to_string(path).map_err(|e| VocError::io(path, e))?;
    parse_annotation(&text, path)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Kept literally, these would be normalised or trimmed by an XML reader.
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate as VOC text: an integer when it is one (`12`), otherwise the shortest
/// decimal that reads back to the same `f64`.
fn coord(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl VocAnnotation {
    /// The annotation as VOC XML (tab-indented like LabelImg's output). Reading the result
    /// with [`parse_annotation`] gives back an equal annotation.
    pub fn to_xml(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "<annotation>");
        let _ = writeln!(s, "\t<folder>{}</folder>", escape(&self.folder));
        let _ = writeln!(s, "\t<filename>{}</filename>", escape(&self.filename));
        let _ = writeln!(s, "\t<size>");
        let _ = writeln!(s, "\t\t<width>{}</width>", self.width);
        let _ = writeln!(s, "\t\t<height>{}</height>", self.height);
        let _ = writeln!(s, "\t\t<depth>{}</depth>", self.depth);
        let _ = writeln!(s, "\t</size>");
        let _ = writeln!(s, "\t<segmented>0</segmented>");
        for o in &self.objects {
            let [xmin, ymin, xmax, ymax] = bbox_to_voc(&o.bbox);
            let _ = writeln!(s, "\t<object>");
            let _ = writeln!(s, "\t\t<name>{}</name>", escape(&o.name));
            let _ = writeln!(s, "\t\t<pose>{}</pose>", escape(&o.pose));
            let _ = writeln!(s, "\t\t<truncated>{}</truncated>", o.truncated as u8);
            let _ = writeln!(s, "\t\t<difficult>{}</difficult>", o.difficult as u8);
            let _ = writeln!(s, "\t\t<bndbox>");
            let _ = writeln!(s, "\t\t\t<xmin>{}</xmin>", coord(xmin));
            let _ = writeln!(s, "\t\t\t<ymin>{}</ymin>", coord(ymin));
            let _ = writeln!(s, "\t\t\t<xmax>{}</xmax>", coord(xmax));
            let _ = writeln!(s, "\t\t\t<ymax>{}</ymax>", coord(ymax));
            let _ = writeln!(s, "\t\t</bndbox>");
            let _ = writeln!(s, "\t</object>");
        }
        let _ = writeln!(s, "</annotation>");
        s
    }

    /// Write [`Self::to_xml`] to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_xml()).map_err(|e| VocError::io(path, e))
    }
}
