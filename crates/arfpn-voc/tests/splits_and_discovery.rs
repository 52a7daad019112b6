//! Lenient loading goes on past bad split-file lines; an empty split is a valid, empty
//! dataset; class discovery runs over the splits that have objects.

use std::io::Cursor;
use std::path::PathBuf;

use arfpn_testkit::shared_data;
use arfpn_voc::{
    discover_labels, Action, LabelSet, Labels, LoadOptions, Mode, VocDataset, VocError,
};

fn dataset(tag: &str, train: &str, val: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("arfpn-voc-splits-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for d in ["Annotations", "JPEGImages", "ImageSets/Main"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let img = image::RgbImage::from_fn(48, 40, |x, y| image::Rgb([x as u8 * 5, y as u8 * 6, 90]));
    let mut b = Cursor::new(Vec::new());
    img.write_to(&mut b, image::ImageFormat::Png).unwrap();
    for (id, class) in [("a", "WBC"), ("b", "RBC")] {
        std::fs::write(root.join(format!("JPEGImages/{id}.png")), b.get_ref()).unwrap();
        std::fs::write(
            root.join(format!("Annotations/{id}.xml")),
            format!(
                "<annotation><filename>{id}.png</filename><size><width>48</width><height>40</height></size>\
                 <object><name>{class}</name><bndbox><xmin>3</xmin><ymin>3</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>"
            ),
        )
        .unwrap();
    }
    std::fs::write(root.join("ImageSets/Main/train.txt"), train).unwrap();
    std::fs::write(root.join("ImageSets/Main/val.txt"), val).unwrap();
    root
}

#[test]
fn lenient_mode_reports_a_duplicate_id_and_goes_on() {
    let root = dataset("dup", "a\nb\na\n", "");
    let labels = Labels::Explicit(LabelSet::bccd());
    let e = VocDataset::open(&root, "train", &LoadOptions::strict(labels.clone())).unwrap_err();
    assert!(matches!(e, VocError::InvalidSplit { line: 3, .. }), "{e}");
    let ds = VocDataset::open(&root, "train", &LoadOptions::lenient(labels)).unwrap();
    let ids: Vec<&str> = ds.samples().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    let [p] = ds.problems() else {
        panic!("{:?}", ds.problems())
    };
    assert_eq!((p.id.as_str(), p.action), ("a", Action::IgnoredLine));
    assert!(p.to_string().contains("listed twice"), "{p}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn empty_split_is_valid_and_discovery_skips_it() {
    let root = dataset("empty", "a\nb\n", "");
    for mode in [Mode::Strict, Mode::Lenient] {
        let opts = LoadOptions {
            labels: Labels::Explicit(LabelSet::bccd()),
            mode,
            ..Default::default()
        };
        let ds = VocDataset::open(&root, "val", &opts).unwrap();
        assert!(ds.is_empty() && ds.problems().is_empty());
    }
    let labels = discover_labels(&root, &["train", "val"]).unwrap();
    assert_eq!(labels.names(), ["RBC", "WBC"]);
    // Only empty splits: nothing to discover, and the error says so.
    let e = discover_labels(&root, &["val"]).unwrap_err();
    assert!(e.to_string().contains("no split has a valid object"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bccd_mini_with_its_empty_val_split_discovers_three_classes() {
    let Some(root) = shared_data("bccd-mini") else {
        return;
    };
    let labels = discover_labels(&root, &["train", "val", "test"]).unwrap();
    assert_eq!(labels.names(), ["Platelets", "RBC", "WBC"]);
    let opts = LoadOptions::strict(Labels::Explicit(labels));
    assert!(VocDataset::open(&root, "val", &opts).unwrap().is_empty());
    assert_eq!(VocDataset::open(&root, "train", &opts).unwrap().len(), 8);
}
