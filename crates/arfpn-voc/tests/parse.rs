//! VOC reading/writing: every bad-input case, strict and lenient modes, round-trip.

use std::path::{Path, PathBuf};

use arfpn_voc::{
    parse_annotation, Action, BBox, ImageCheck, LabelSet, Labels, LoadOptions, Mode, VocAnnotation,
    VocDataset, VocError, VocObject,
};

fn xml(objects: &str) -> String {
    format!(
        "<annotation><folder>JPEGImages</folder><filename>a.png</filename>\
         <size><width>20</width><height>10</height><depth>3</depth></size>{objects}</annotation>"
    )
}

fn obj(name: &str, b: [&str; 4]) -> String {
    format!(
        "<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>\
         <difficult>0</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax>\
         <ymax>{}</ymax></bndbox></object>",
        b[0], b[1], b[2], b[3]
    )
}

fn p() -> &'static Path {
    Path::new("Annotations/x.xml")
}

#[test]
fn converts_one_based_inclusive_to_continuous() {
    let parsed = parse_annotation(&xml(&obj("RBC", ["1", "2", "10", "10"])), p()).unwrap();
    assert!(parsed.object_errors.is_empty());
    let a = parsed.annotation;
    assert_eq!((a.width, a.height, a.depth), (20, 10, 3));
    assert_eq!(a.objects[0].bbox, BBox::new(0.0, 1.0, 10.0, 10.0));
    // Float coordinates are accepted too.
    let a = parse_annotation(&xml(&obj("RBC", ["1.5", "2", "10.25", "10"])), p()).unwrap();
    assert_eq!(
        a.annotation.objects[0].bbox,
        BBox::new(0.5, 1.0, 10.25, 10.0)
    );
}

#[test]
fn malformed_xml_names_the_file() {
    for text in ["<annotation><filename>", "not xml", "<foo></foo>", ""] {
        let e = parse_annotation(text, p()).unwrap_err();
        assert!(matches!(e, VocError::MalformedXml { .. }), "{text:?}: {e}");
        assert!(e.to_string().contains("Annotations/x.xml"), "{e}");
    }
}

#[test]
fn missing_and_invalid_image_fields() {
    let cases = [
        (
            "<annotation><size><width>2</width><height>2</height></size></annotation>",
            "filename",
        ),
        ("<annotation><filename>a</filename></annotation>", "size"),
        (
            "<annotation><filename>a</filename><size><height>2</height></size></annotation>",
            "size/width",
        ),
        (
            "<annotation><filename>a</filename><size><width>2</width></size></annotation>",
            "size/height",
        ),
    ];
    for (text, field) in cases {
        match parse_annotation(text, p()).unwrap_err() {
            VocError::MissingField { field: f, path } => {
                assert_eq!(f, field);
                assert_eq!(path, p());
            }
            e => panic!("{text}: {e}"),
        }
    }
    for w in ["0", "-3", "abc", "2.5", "inf"] {
        let text = format!("<annotation><filename>a</filename><size><width>{w}</width><height>2</height></size></annotation>");
        match parse_annotation(&text, p()).unwrap_err() {
            VocError::InvalidField { field, value, .. } => {
                assert_eq!(field, "size/width");
                assert_eq!(value, w);
            }
            e => panic!("{w}: {e}"),
        }
    }
}

#[test]
fn bad_objects_are_reported_with_their_field_and_left_out() {
    let objects = [
        obj("RBC", ["1", "1", "5", "5"]),  // 0 ok
        obj("RBC", ["1", "1", "x", "5"]),  // 1 not a number
        obj("RBC", ["4", "4", "4", "4"]),  // 2 zero area
        obj("RBC", ["6", "4", "3", "8"]),  // 3 negative area
        obj("RBC", ["0", "1", "5", "5"]),  // 4 outside (xmin < 1)
        obj("RBC", ["1", "1", "21", "5"]), // 5 outside (xmax > W)
        "<object><bndbox><xmin>1</xmin></bndbox></object>".to_string(), // 6 no name
        "<object><name>RBC</name></object>".to_string(), // 7 no bndbox
        obj("RBC", ["1", "1", "5", ""]),   // 8 empty ymax
        obj("RBC", ["1", "1", "NaN", "5"]), // 9 not finite
        obj("WBC", ["2", "2", "20", "10"]), // 10 ok
    ];
    let parsed = parse_annotation(&xml(&objects.concat()), p()).unwrap();
    assert_eq!(parsed.annotation.objects.len(), 2);
    assert_eq!(parsed.source_index, [0, 10]);
    let errs: Vec<(usize, String)> = parsed
        .object_errors
        .iter()
        .map(|e| (e.index, e.error.to_string()))
        .collect();
    let idx: Vec<usize> = errs.iter().map(|e| e.0).collect();
    assert_eq!(idx, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let e = &parsed.object_errors;
    assert!(
        matches!(&e[0].error, VocError::InvalidField { field, .. } if field == "object[1]/bndbox/xmax")
    );
    assert!(
        matches!(&e[1].error, VocError::DegenerateBox { field, .. } if field == "object[2]/bndbox")
    );
    assert!(
        matches!(&e[2].error, VocError::DegenerateBox { field, .. } if field == "object[3]/bndbox")
    );
    assert!(
        matches!(&e[3].error, VocError::BoxOutsideImage { field, .. } if field == "object[4]/bndbox")
    );
    assert!(matches!(
        &e[4].error,
        VocError::BoxOutsideImage {
            width: 20,
            height: 10,
            ..
        }
    ));
    assert!(
        matches!(&e[5].error, VocError::MissingField { field, .. } if field == "object[6]/name")
    );
    assert!(
        matches!(&e[6].error, VocError::MissingField { field, .. } if field == "object[7]/bndbox")
    );
    assert!(
        matches!(&e[7].error, VocError::MissingField { field, .. } if field == "object[8]/bndbox/ymax")
    );
    assert!(
        matches!(&e[8].error, VocError::InvalidField { field, .. } if field == "object[9]/bndbox/xmax")
    );
    assert_eq!(e[0].name.as_deref(), Some("RBC"));
    assert_eq!(e[5].name, None);
    for (_, msg) in errs {
        assert!(msg.contains("Annotations/x.xml"), "{msg}");
    }
}

#[test]
fn flags_parse_and_bad_flag_is_an_error() {
    let o = "<object><name>a</name><truncated>1</truncated><difficult>1</difficult>\
             <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>";
    let a = parse_annotation(&xml(o), p()).unwrap().annotation;
    assert!(a.objects[0].truncated && a.objects[0].difficult);
    assert_eq!(a.objects[0].pose, "Unspecified");
    let bad = o.replace("<difficult>1", "<difficult>2");
    let parsed = parse_annotation(&xml(&bad), p()).unwrap();
    assert!(matches!(&parsed.object_errors[0].error,
        VocError::InvalidField { field, .. } if field == "object[0]/difficult"));
}

#[test]
fn xml_round_trip_is_exact() {
    let a = VocAnnotation {
        folder: "JPEGImages".into(),
        filename: "we<ird> & \"name\".png".into(),
        width: 500,
        height: 375,
        depth: 3,
        objects: vec![
            VocObject {
                name: "target_cell".into(),
                pose: "Unspecified".into(),
                truncated: false,
                difficult: true,
                bbox: BBox::new(0.0, 0.0, 21.0, 21.0),
            },
            VocObject {
                name: "edge & <cut>".into(),
                pose: "Left".into(),
                truncated: true,
                difficult: false,
                bbox: BBox::new(12.345, 7.25, 499.99, 375.0),
            },
        ],
    };
    let text = a.to_xml();
    assert!(
        text.contains("<xmin>1</xmin>") && text.contains("<xmax>21</xmax>"),
        "{text}"
    );
    let back = parse_annotation(&text, p()).unwrap();
    assert!(back.object_errors.is_empty());
    assert_eq!(back.annotation, a);
}

// ---------------------------------------------------------------------------------------
// Dataset-level cases on a small directory written by the test.

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let d = std::env::temp_dir().join(format!("arfpn-voc-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("Annotations")).unwrap();
        std::fs::create_dir_all(d.join("JPEGImages")).unwrap();
        std::fs::create_dir_all(d.join("ImageSets/Main")).unwrap();
        TempDir(d)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_img(dir: &Path, name: &str, w: u32, h: u32) {
    image::RgbImage::from_pixel(w, h, image::Rgb([200, 150, 150]))
        .save(dir.join("JPEGImages").join(name))
        .unwrap();
}

fn write_xml(dir: &Path, id: &str, filename: &str, w: u32, h: u32, objects: &str) {
    let text = format!(
        "<annotation><filename>{filename}</filename><size><width>{w}</width>\
         <height>{h}</height><depth>3</depth></size>{objects}</annotation>"
    );
    std::fs::write(dir.join("Annotations").join(format!("{id}.xml")), text).unwrap();
}

/// A directory with one good image and one image per bad-input case.
fn bad_dataset() -> TempDir {
    let t = TempDir::new("bad");
    let d = &t.0;
    let good = obj("RBC", ["1", "1", "5", "5"]);
    write_img(d, "good.png", 20, 10);
    write_xml(
        d,
        "good",
        "good.png",
        20,
        10,
        &(good.clone() + &obj("RBC", ["1", "1", "5", "6"])),
    );
    std::fs::write(
        d.join("Annotations/malformed.xml"),
        "<annotation><filename>",
    )
    .unwrap();
    write_xml(d, "missing_image", "nothere.png", 20, 10, &good);
    std::fs::write(d.join("JPEGImages/garbage.png"), b"this is not an image").unwrap();
    write_xml(d, "unreadable", "garbage.png", 20, 10, &good);
    write_img(d, "small.bmp", 16, 10);
    write_xml(d, "size_mismatch", "small.bmp", 20, 10, &good);
    write_img(d, "objs.png", 20, 10);
    let objs = [
        good.clone(),
        obj("Martian", ["1", "1", "5", "5"]),
        obj("RBC", ["3", "3", "3", "3"]),
        obj("RBC", ["1", "1", "30", "5"]),
    ]
    .concat();
    write_xml(d, "objects", "objs.png", 20, 10, &objs);
    let ids = [
        "good",
        "malformed",
        "missing_image",
        "unreadable",
        "size_mismatch",
        "objects",
        "no_xml",
    ];
    std::fs::write(d.join("ImageSets/Main/train.txt"), ids.join("\n")).unwrap();
    t
}

#[test]
fn lenient_mode_reports_every_problem_and_keeps_the_valid_rest() {
    let t = bad_dataset();
    let opts = LoadOptions::lenient(Labels::Explicit(LabelSet::bccd()));
    let ds = VocDataset::open(&t.0, "train", &opts).unwrap();
    let ids: Vec<&str> = ds.samples().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["good", "objects"]);
    assert_eq!(ds.samples()[1].objects.len(), 1);
    let summary: Vec<(String, Action, &'static str)> = ds
        .problems()
        .iter()
        .map(|p| {
            let kind = match &p.error {
                VocError::MalformedXml { .. } => "malformed",
                VocError::MissingImage { .. } => "missing_image",
                VocError::UnreadableImage { .. } => "unreadable",
                VocError::SizeMismatch { .. } => "size_mismatch",
                VocError::UnknownClass { .. } => "unknown_class",
                VocError::DegenerateBox { .. } => "degenerate",
                VocError::BoxOutsideImage { .. } => "outside",
                VocError::NearDuplicate { .. } => "near_duplicate",
                VocError::Io { .. } => "io",
                _ => "other",
            };
            (p.id.clone(), p.action, kind)
        })
        .collect();
    use Action::*;
    let expected = vec![
        ("good".to_string(), Kept, "near_duplicate"),
        ("malformed".into(), DroppedImage, "malformed"),
        ("missing_image".into(), DroppedImage, "missing_image"),
        ("unreadable".into(), DroppedImage, "unreadable"),
        ("size_mismatch".into(), DroppedImage, "size_mismatch"),
        ("objects".into(), DroppedObject, "degenerate"),
        ("objects".into(), DroppedObject, "outside"),
        ("objects".into(), DroppedObject, "unknown_class"),
        ("no_xml".into(), DroppedImage, "io"),
    ];
    assert_eq!(summary, expected);
    // Every message names the file.
    for p in ds.problems() {
        let s = p.to_string();
        assert!(s.contains(&*t.0.to_string_lossy()), "{s}");
    }
    let unknown = ds
        .problems()
        .iter()
        .find(|p| matches!(p.error, VocError::UnknownClass { .. }))
        .unwrap();
    assert!(
        unknown.error.to_string().contains("object[1]/name"),
        "{}",
        unknown.error
    );
    assert_eq!(unknown.name.as_deref(), Some("Martian"));
}

#[test]
fn strict_mode_fails_on_the_first_dropping_problem_only() {
    let t = bad_dataset();
    let opts = LoadOptions::strict(Labels::Explicit(LabelSet::bccd()));
    let e = VocDataset::open(&t.0, "train", &opts).unwrap_err();
    assert!(matches!(e, VocError::MalformedXml { .. }), "{e}");
    // A split with only the good image (which has a near-duplicate warning) loads.
    std::fs::write(t.0.join("ImageSets/Main/ok.txt"), "good\n").unwrap();
    let ds = VocDataset::open(&t.0, "ok", &opts).unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds.problems().len(), 1);
    assert_eq!(ds.problems()[0].action, Action::Kept);
    // Each single bad case fails strictly with its own error.
    for (id, want) in [
        ("missing_image", "not found"),
        ("unreadable", "unreadable image"),
        ("size_mismatch", "annotation says 20x10"),
        ("objects", "zero or negative area"),
    ] {
        std::fs::write(t.0.join("ImageSets/Main/one.txt"), id).unwrap();
        let e = VocDataset::open(&t.0, "one", &opts).unwrap_err();
        assert!(e.to_string().contains(want), "{id}: {e}");
    }
    let e = VocDataset::open(&t.0, "nosuchsplit", &opts).unwrap_err();
    assert!(matches!(e, VocError::Io { .. }));
}

#[test]
fn discovered_labels_and_unchecked_images() {
    let t = bad_dataset();
    std::fs::write(
        t.0.join("ImageSets/Main/x.txt"),
        "good\nobjects\nsize_mismatch\n",
    )
    .unwrap();
    let opts = LoadOptions {
        labels: Labels::Discover,
        mode: Mode::Lenient,
        image_check: ImageCheck::None,
        near_duplicate_iou: None,
    };
    let ds = VocDataset::open(&t.0, "x", &opts).unwrap();
    assert_eq!(ds.labels().names(), ["Martian", "RBC"]);
    assert_eq!(ds.len(), 3); // size mismatch not checked at open ...
                             // ... but found when decoding, and reported as skipped.
    let batches: Vec<_> = ds.batches(None, 2).collect();
    assert_eq!(batches.len(), 2);
    let loaded: usize = batches.iter().map(|b| b.items.len()).sum();
    let skipped: Vec<_> = batches.iter().flat_map(|b| &b.skipped).collect();
    assert_eq!(loaded, 2);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].id, "size_mismatch");
    assert!(matches!(skipped[0].error, VocError::SizeMismatch { .. }));
}
