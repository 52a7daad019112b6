//! Truncated JPEGs are found on every decode path (header check, full decode, batches,
//! `load`), in strict and lenient mode alike, and named in the error.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use arfpn_voc::{Action, ImageCheck, LabelSet, Labels, LoadOptions, Mode, VocDataset, VocError};

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x ^ y) % 256) as u8,
        ])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn xml(id: &str, w: u32, h: u32) -> String {
    format!(
        "<annotation><filename>{id}.jpg</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>\
         <object><name>RBC</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>30</xmax><ymax>30</ymax></bndbox></object></annotation>"
    )
}

/// `good` intact, `cut` truncated to a third of its bytes.
fn dataset(tag: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("arfpn-voc-corrupt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for d in ["Annotations", "JPEGImages", "ImageSets/Main"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let b = jpeg(96, 64);
    std::fs::write(root.join("JPEGImages/good.jpg"), &b).unwrap();
    std::fs::write(root.join("JPEGImages/cut.jpg"), &b[..b.len() / 3]).unwrap();
    for id in ["good", "cut"] {
        std::fs::write(root.join(format!("Annotations/{id}.xml")), xml(id, 96, 64)).unwrap();
    }
    std::fs::write(root.join("ImageSets/Main/train.txt"), "good\ncut\n").unwrap();
    root
}

fn names_cut(e: &VocError) -> bool {
    matches!(e, VocError::CorruptImage { path, .. } if path.ends_with("cut.jpg"))
        && e.to_string().contains("cut.jpg")
}

fn opts(mode: Mode, image_check: ImageCheck) -> LoadOptions {
    LoadOptions {
        labels: Labels::Explicit(LabelSet::bccd()),
        mode,
        image_check,
        ..Default::default()
    }
}

#[test]
fn truncated_jpeg_is_a_problem_in_every_mode_and_check() {
    let root = dataset("modes");
    for check in [ImageCheck::Header, ImageCheck::Decode] {
        let e = VocDataset::open(&root, "train", &opts(Mode::Strict, check)).unwrap_err();
        assert!(names_cut(&e), "{check:?}: {e}");
        let ds = VocDataset::open(&root, "train", &opts(Mode::Lenient, check)).unwrap();
        assert_eq!(ds.len(), 1, "{check:?}");
        assert_eq!(ds.samples()[0].id, "good");
        let [p] = ds.problems() else {
            panic!("{check:?}: {:?}", ds.problems())
        };
        assert_eq!((p.id.as_str(), p.action), ("cut", Action::DroppedImage));
        assert!(names_cut(&p.error), "{}", p.error);
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn truncated_jpeg_is_skipped_by_batches_and_load() {
    let root = dataset("batches");
    let ds = VocDataset::open(&root, "train", &opts(Mode::Strict, ImageCheck::None)).unwrap();
    assert_eq!(ds.len(), 2);
    let idx = ds.samples().iter().position(|s| s.id == "cut").unwrap();
    // Not `unwrap_err`: a wrongly loaded image would print all its pixels.
    let Err(e) = ds.load(idx) else {
        panic!("the truncated image was loaded")
    };
    assert!(names_cut(&e), "{e}");
    let batches: Vec<_> = ds.batches(None, 8).collect();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].items.len(), 1);
    let [p] = &batches[0].skipped[..] else {
        panic!("{:?}", batches[0].skipped)
    };
    assert!(names_cut(&p.error), "{}", p.error);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn check_image_file_is_public_for_other_image_inputs() {
    let root = dataset("public");
    let p: &Path = &root.join("JPEGImages/cut.jpg");
    let e = arfpn_voc::image_io::check_image_file(p).unwrap_err();
    assert!(names_cut(&e), "{e}");
    let info = arfpn_voc::image_io::check_image_file(&root.join("JPEGImages/good.jpg")).unwrap();
    assert_eq!((info.width, info.height), (96, 64));
    let _ = std::fs::remove_dir_all(&root);
}
