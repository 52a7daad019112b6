//! [`VocDataset`]: one split of a VOC directory, validated, with a seeded reproducible
//! order and parallel image decoding.
//!
//! Layout (Pascal VOC): `<root>/Annotations/<id>.xml`, `<root>/JPEGImages/<filename>`,
//! `<root>/ImageSets/Main/<split>.txt`.

use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::annotation::{read_annotation, Object, ParsedAnnotation, Sample};
use crate::error::{Action, Problem, Result, VocError};
use crate::image_io::{image_size, load_rgb};
use crate::labels::{LabelSet, Labels};
use crate::splits::{read_split, read_split_lenient};
use arfpn_boxes::SplitMix64;

/// What to do with bad input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// The first problem that would remove an image or an object is returned as the error
    /// (warnings such as near-duplicates never fail).
    #[default]
    Strict,
    /// Load everything valid; every problem is returned in [`VocDataset::problems`] with
    /// what was done about it. Nothing is dropped without a [`Problem`].
    Lenient,
}

/// How much of each image [`VocDataset::open`] checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageCheck {
    /// Do not touch the images (fastest; problems surface when decoding).
    None,
    /// Read each image file without decoding pixels
    /// ([`crate::image_io::check_image_file`]): finds missing files, unknown formats, size
    /// mismatches, sizes above [`crate::image_io::MAX_IMAGE_PIXELS`] and truncated files
    /// (JPEG without its end-of-image marker or with a segment cut short, PNG without
    /// `IEND`, BMP shorter than its header says).
    #[default]
    Header,
    /// Decode every image fully (the header check, then the strict decoder: finds corrupt
    /// entropy-coded data too).
    Decode,
}

/// Options of [`VocDataset::open`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Where the label set comes from: a fixed list, or discovered from the split.
    pub labels: Labels,
    /// Whether the first problem fails loading ([`Mode::Strict`], default) or is reported
    /// and skipped ([`Mode::Lenient`]).
    pub mode: Mode,
    /// How much of each image file is checked while opening (default
    /// [`ImageCheck::Header`]).
    pub image_check: ImageCheck,
    /// Same-class box pairs with IoU above this are reported as near-duplicates
    /// (warnings, both kept); `None` disables the check. Default 0.8.
    pub near_duplicate_iou: Option<f32>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            labels: Labels::Discover,
            mode: Mode::Strict,
            image_check: ImageCheck::Header,
            near_duplicate_iou: Some(0.8),
        }
    }
}

impl LoadOptions {
    /// Lenient loading with the given label source.
    pub fn lenient(labels: Labels) -> Self {
        Self {
            labels,
            mode: Mode::Lenient,
            ..Self::default()
        }
    }

    /// Strict loading with the given label source.
    pub fn strict(labels: Labels) -> Self {
        Self {
            labels,
            ..Self::default()
        }
    }
}

/// One split of a VOC dataset, loaded and validated.
///
/// ```no_run
/// use arfpn_voc::{LabelSet, Labels, LoadOptions, VocDataset};
/// let ds = VocDataset::open("data/bccd", "train", &LoadOptions::lenient(Labels::Explicit(LabelSet::bccd())))?;
/// for p in ds.problems() { eprintln!("{p}"); }
/// for batch in ds.batches(Some(42), 8) {
///     for item in batch.items { let _ = (item.sample.objects.len(), item.image.dimensions()); }
///     for p in batch.skipped { eprintln!("skipped: {p}"); }
/// }
/// # Ok::<(), arfpn_voc::VocError>(())
/// ```
#[derive(Debug)]
pub struct VocDataset {
    root: PathBuf,
    split: String,
    labels: LabelSet,
    samples: Vec<Sample>,
    problems: Vec<Problem>,
}

/// Per-id result of the parallel read phase.
struct Read {
    id: String,
    xml: PathBuf,
    parsed: Result<ParsedAnnotation>,
    image_problem: Option<VocError>,
}

fn check_image(xml: &Path, image: &Path, w: u32, h: u32, check: ImageCheck) -> Option<VocError> {
    let dims = match check {
        ImageCheck::None => return None,
        ImageCheck::Header => image_size(image),
        ImageCheck::Decode => load_rgb(image).map(|i| i.dimensions()),
    };
    match dims {
        Err(VocError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Some(VocError::MissingImage {
                path: xml.to_path_buf(),
                image: image.to_path_buf(),
            })
        }
        Err(e) => Some(e),
        Ok((iw, ih)) if (iw, ih) != (w, h) => Some(VocError::SizeMismatch {
            path: xml.to_path_buf(),
            image: image.to_path_buf(),
            xml_width: w,
            xml_height: h,
            width: iw,
            height: ih,
        }),
        Ok(_) => None,
    }
}

/// Same-class pairs with IoU above `thr`, as (i, j, iou) with `i < j` in object order.
pub fn near_duplicates(objects: &[Object], thr: f32) -> Vec<(usize, usize, f32)> {
    let mut out = Vec::new();
    for i in 0..objects.len() {
        for j in i + 1..objects.len() {
            if objects[i].class == objects[j].class {
                let iou = objects[i].bbox.iou(&objects[j].bbox);
                if iou > thr {
                    out.push((i, j, iou));
                }
            }
        }
    }
    out
}

/// The label set of a dataset from the annotations of several splits together: every
/// class name that occurs, sorted ([`LabelSet::discover`]), so that ids agree between the
/// splits. Empty splits and splits without valid objects contribute nothing; unreadable
/// annotations are skipped (loading reports them). Split files are read leniently.
///
/// Errors: an unreadable split file; [`VocError::InvalidLabelSet`] when no split has an
/// object.
pub fn discover_labels<S: AsRef<str>>(root: &Path, splits: &[S]) -> Result<LabelSet> {
    let mut ids = Vec::new();
    for split in splits {
        ids.extend(read_split_lenient(root, split.as_ref())?.0);
    }
    ids.sort();
    ids.dedup();
    let names: Vec<Vec<String>> = ids
        .par_iter()
        .filter_map(|id| {
            let xml = root.join("Annotations").join(format!("{id}.xml"));
            read_annotation(&xml).ok()
        })
        .map(|p| p.annotation.objects.into_iter().map(|o| o.name).collect())
        .collect();
    LabelSet::discover(names.iter().flatten().map(String::as_str)).map_err(|_| {
        let list: Vec<&str> = splits.iter().map(AsRef::as_ref).collect();
        VocError::InvalidLabelSet(format!(
            "no class could be discovered in {} (splits {}): no split has a valid object",
            root.display(),
            list.join(", ")
        ))
    })
}

/// The label set of the dataset in `root`: `root/classes.txt` when present, else
/// [`discover_labels`] over `splits`. See [`parse_classes_txt`] for the two forms of
/// `classes.txt` that are read.
pub fn dataset_labels<S: AsRef<str>>(root: &Path, splits: &[S]) -> Result<LabelSet> {
    let path = root.join("classes.txt");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_classes_txt(&text).map_err(|e| match e {
            VocError::InvalidLabelSet(m) => {
                VocError::InvalidLabelSet(format!("{}: {m}", path.display()))
            }
            other => other,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => discover_labels(root, splits),
        Err(e) => Err(VocError::io(&path, e)),
    }
}

/// Reads a `classes.txt`: one class a line in id order, either as the name alone
/// (`normal`, as the synthetic generator and the tiler write it) or as `ID NAME`
/// (`0 normal`, a common export format), where the ids must count up by one from 0 or 1 in
/// line order. Blank lines are skipped. One form per file; a mix, or ids out of order, is
/// a [`VocError::InvalidLabelSet`] naming the line and the expected forms.
///
/// ```
/// use arfpn_voc::parse_classes_txt;
/// let a = parse_classes_txt("normal\nmacrocyte\n").unwrap();
/// let b = parse_classes_txt("0 normal\n1 macrocyte\n").unwrap();
/// assert_eq!(a.names(), b.names());
/// assert!(parse_classes_txt("0 normal\n2 macrocyte\n").is_err());
/// ```
pub fn parse_classes_txt(text: &str) -> Result<LabelSet> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let with_id = |l: &str| -> Option<(u64, String)> {
        let (id, name) = l.split_once(char::is_whitespace)?;
        let id = id.parse::<u64>().ok()?;
        let name = name.trim();
        (!name.is_empty()).then(|| (id, name.to_string()))
    };
    let expected = "expected one class name per line (`normal`) or `ID NAME` lines with ids \
                    counting up from 0 or 1 (`0 normal`), one form for the whole file";
    let numbered = lines.first().is_some_and(|(_, l)| with_id(l).is_some());
    if !numbered {
        if let Some((n, l)) = lines.iter().find(|(_, l)| with_id(l).is_some()) {
            return Err(VocError::InvalidLabelSet(format!(
                "line {n} `{l}` has an id but line {} has none: {expected}",
                lines[0].0
            )));
        }
        return LabelSet::new(lines.iter().map(|(_, l)| *l));
    }
    let mut names = Vec::with_capacity(lines.len());
    let mut first_id = None;
    for (k, (n, l)) in lines.iter().enumerate() {
        let (id, name) = with_id(l).ok_or_else(|| {
            VocError::InvalidLabelSet(format!("line {n} `{l}` is not `ID NAME`: {expected}"))
        })?;
        let start = *first_id.get_or_insert(id);
        if start > 1 || id != start + k as u64 {
            return Err(VocError::InvalidLabelSet(format!(
                "line {n} `{l}`: id {id} where {} was due: {expected}",
                if start > 1 { 0 } else { start + k as u64 }
            )));
        }
        names.push(name);
    }
    LabelSet::new(names)
}

impl VocDataset {
    /// Read, validate and index the split `split` of the VOC directory `root`
    /// (annotations parsed and images checked in parallel).
    ///
    /// Fails on an unreadable split file, and in [`Mode::Strict`] on the first problem (in
    /// split order) that would drop an image or object. In [`Mode::Lenient`] every problem
    /// is kept in [`Self::problems`].
    ///
    /// A split file line that lists an id a second time or is not one id fails in strict
    /// mode; in lenient mode it is skipped and reported ([`Action::IgnoredLine`]). An empty
    /// split is valid (an empty dataset); with [`Labels::Discover`] it has no class to
    /// discover, so pass the label set of the whole dataset ([`discover_labels`]).
    pub fn open(root: impl AsRef<Path>, split: &str, opts: &LoadOptions) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        if opts.mode == Mode::Strict {
            let ids = read_split(&root, split)?;
            return Self::open_inner(root, split, ids, Vec::new(), opts);
        }
        let (ids, line_problems) = read_split_lenient(&root, split)?;
        let problems = line_problems
            .into_iter()
            .map(|(id, error)| Problem {
                id,
                name: None,
                action: Action::IgnoredLine,
                error,
            })
            .collect();
        Self::open_inner(root, split, ids, problems, opts)
    }

    /// Like [`Self::open`] with an explicit id list; `split` only names the result.
    pub fn open_ids(
        root: impl AsRef<Path>,
        split: &str,
        ids: Vec<String>,
        opts: &LoadOptions,
    ) -> Result<Self> {
        Self::open_inner(root.as_ref().to_path_buf(), split, ids, Vec::new(), opts)
    }

    fn open_inner(
        root: PathBuf,
        split: &str,
        ids: Vec<String>,
        mut problems: Vec<Problem>,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let listed = ids.len();
        let reads: Vec<Read> = ids
            .into_par_iter()
            .map(|id| {
                let xml = root.join("Annotations").join(format!("{id}.xml"));
                let parsed = read_annotation(&xml);
                let image_problem = parsed.as_ref().ok().and_then(|p| {
                    let a = &p.annotation;
                    let img = root.join("JPEGImages").join(&a.filename);
                    check_image(&xml, &img, a.width, a.height, opts.image_check)
                });
                Read {
                    id,
                    xml,
                    parsed,
                    image_problem,
                }
            })
            .collect();
        let labels = match &opts.labels {
            Labels::Explicit(l) => l.clone(),
            Labels::Discover => {
                let names = reads
                    .iter()
                    .filter_map(|r| r.parsed.as_ref().ok())
                    .flat_map(|p| p.annotation.objects.iter().map(|o| o.name.as_str()));
                LabelSet::discover(names).map_err(|_| {
                    VocError::InvalidLabelSet(format!(
                        "no class could be discovered in split {split:?} of {} ({listed} images listed, no valid object): \
                         pass Labels::Explicit, e.g. discover_labels over all splits",
                        root.display()
                    ))
                })?
            }
        };
        let strict = opts.mode == Mode::Strict;
        let mut samples = Vec::new();
        let mut report = |id: &str, name: Option<String>, action: Action, error: VocError| {
            if strict && action != Action::Kept {
                return Err(error);
            }
            problems.push(Problem {
                id: id.to_string(),
                name,
                action,
                error,
            });
            Ok(())
        };
        for r in reads {
            let p = match r.parsed {
                Ok(p) => p,
                Err(e) => {
                    report(&r.id, None, Action::DroppedImage, e)?;
                    continue;
                }
            };
            if let Some(e) = r.image_problem {
                report(&r.id, None, Action::DroppedImage, e)?;
                continue;
            }
            for oe in p.object_errors {
                report(&r.id, oe.name, Action::DroppedObject, oe.error)?;
            }
            let a = p.annotation;
            let mut objects = Vec::with_capacity(a.objects.len());
            let mut fields = Vec::with_capacity(a.objects.len());
            for (o, src) in a.objects.into_iter().zip(p.source_index) {
                match labels.id(&o.name) {
                    Some(class) => {
                        objects.push(Object {
                            bbox: o.bbox,
                            class,
                            difficult: o.difficult,
                            truncated: o.truncated,
                        });
                        fields.push(src);
                    }
                    None => report(
                        &r.id,
                        Some(o.name.clone()),
                        Action::DroppedObject,
                        VocError::UnknownClass {
                            path: r.xml.clone(),
                            field: format!("object[{src}]/name"),
                            name: o.name,
                            known: labels.names().join(", "),
                        },
                    )?,
                }
            }
            if let Some(thr) = opts.near_duplicate_iou {
                for (i, j, iou) in near_duplicates(&objects, thr) {
                    let name = labels.name(objects[i].class).unwrap_or("?").to_string();
                    report(
                        &r.id,
                        Some(name.clone()),
                        Action::Kept,
                        VocError::NearDuplicate {
                            path: r.xml.clone(),
                            field_a: format!("object[{}]", fields[i]),
                            field_b: format!("object[{}]", fields[j]),
                            name,
                            iou,
                        },
                    )?;
                }
            }
            samples.push(Sample {
                image_path: root.join("JPEGImages").join(&a.filename),
                id: r.id,
                width: a.width,
                height: a.height,
                objects,
            });
        }
        Ok(Self {
            root,
            split: split.to_string(),
            labels,
            samples,
            problems,
        })
    }

    /// The dataset directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The split name.
    pub fn split(&self) -> &str {
        &self.split
    }

    /// The label set (explicit or discovered).
    pub fn labels(&self) -> &LabelSet {
        &self.labels
    }

    /// The kept samples, in split-file order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Every problem found by [`Self::open`] (lenient mode), in split order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Number of kept samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// No sample was kept.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Sample indices in a reproducible order: split order for `None`, a seeded shuffle
    /// (identical on every platform) for `Some(seed)`. Use e.g. `base_seed + epoch`.
    pub fn order(&self, seed: Option<u64>) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.samples.len()).collect();
        if let Some(s) = seed {
            SplitMix64::new(s).shuffle(&mut idx);
        }
        idx
    }

    /// Decode sample `index` (RGB) and check its size against the annotation.
    pub fn load(&self, index: usize) -> Result<LoadedImage> {
        let sample = self
            .samples
            .get(index)
            .ok_or_else(|| VocError::InvalidArgument {
                name: "index",
                reason: format!("{index} >= {} samples", self.samples.len()),
            })?;
        let image = load_rgb(&sample.image_path)?;
        if image.dimensions() != (sample.width, sample.height) {
            return Err(VocError::SizeMismatch {
                path: self
                    .root
                    .join("Annotations")
                    .join(format!("{}.xml", sample.id)),
                image: sample.image_path.clone(),
                xml_width: sample.width,
                xml_height: sample.height,
                width: image.width(),
                height: image.height(),
            });
        }
        Ok(LoadedImage {
            sample: sample.clone(),
            image,
        })
    }

    /// Iterate over all samples in [`Self::order`]`(seed)`, `batch_size` at a time, each
    /// batch decoded in parallel (rayon). An image that fails to decode is not yielded; it
    /// is reported in [`Batch::skipped`].
    pub fn batches(&self, seed: Option<u64>, batch_size: usize) -> Batches<'_> {
        Batches {
            ds: self,
            order: self.order(seed),
            pos: 0,
            batch_size: batch_size.max(1),
        }
    }
}

/// A decoded image with its (cloned) annotation.
#[derive(Clone, Debug)]
pub struct LoadedImage {
    /// The image's annotation (id, path, size, objects), as in the dataset.
    pub sample: Sample,
    /// The decoded pixels, 8-bit RGB, `sample.width × sample.height`.
    pub image: RgbImage,
}

/// One batch of [`VocDataset::batches`].
#[derive(Debug)]
pub struct Batch {
    /// Successfully decoded images, in iteration order.
    pub items: Vec<LoadedImage>,
    /// Images of this batch that could not be decoded, with why.
    pub skipped: Vec<Problem>,
}

/// Iterator returned by [`VocDataset::batches`].
pub struct Batches<'a> {
    ds: &'a VocDataset,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
}

impl Iterator for Batches<'_> {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let idx = &self.order[self.pos..end];
        self.pos = end;
        let results: Vec<(usize, Result<LoadedImage>)> =
            idx.par_iter().map(|&i| (i, self.ds.load(i))).collect();
        let mut batch = Batch {
            items: Vec::with_capacity(results.len()),
            skipped: Vec::new(),
        };
        for (i, r) in results {
            match r {
                Ok(item) => batch.items.push(item),
                Err(error) => batch.skipped.push(Problem {
                    id: self.ds.samples[i].id.clone(),
                    name: None,
                    action: Action::DroppedImage,
                    error,
                }),
            }
        }
        Some(batch)
    }
}

#[cfg(test)]
mod classes_txt_tests {
    use super::*;

    #[test]
    fn both_forms_read_the_same_and_bad_files_name_the_line() {
        let plain = parse_classes_txt("normal\nmacrocyte\n\nteardrop\n").unwrap();
        for numbered in [
            "0 normal\n1 macrocyte\n2 teardrop",
            "1 normal\n2  macrocyte\n3\tteardrop\n",
        ] {
            assert_eq!(parse_classes_txt(numbered).unwrap().names(), plain.names());
        }
        for (text, needle) in [
            (
                "0 normal\n2 macrocyte\n",
                "line 2 `2 macrocyte`: id 2 where 1 was due",
            ),
            (
                "5 normal\n6 macrocyte\n",
                "line 1 `5 normal`: id 5 where 0 was due",
            ),
            (
                "0 normal\nmacrocyte\n",
                "line 2 `macrocyte` is not `ID NAME`",
            ),
            (
                "normal\n1 macrocyte\n",
                "line 2 `1 macrocyte` has an id but line 1 has none",
            ),
        ] {
            let e = parse_classes_txt(text).unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("one form for the whole file"),
                "{e}"
            );
        }
    }
}
