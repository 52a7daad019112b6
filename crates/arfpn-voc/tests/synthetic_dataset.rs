//! The written synthetic dataset is a valid VOC dataset that loads strictly with the
//! paper's 14 classes, and writing is reproducible.

use arfpn_voc::synthetic::{image_seed, render_image, write_dataset, SyntheticConfig};
use arfpn_voc::{read_annotation, LabelSet, Labels, LoadOptions, VocDataset};

fn tmp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("arfpn-synth-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn written_dataset_loads_strictly_and_matches_the_renderer() {
    let out = tmp("a");
    let cfg = SyntheticConfig {
        width: 160,
        height: 128,
        min_per_class: 1,
        ..Default::default()
    };
    let summary = write_dataset(&out, 3, 11, &cfg).unwrap();
    assert_eq!((summary.train, summary.val, summary.test), (1, 1, 1));
    let opts = LoadOptions::strict(Labels::Explicit(LabelSet::rbc14()));
    let mut total = 0;
    for split in ["train", "val", "test"] {
        let ds = VocDataset::open(&out, split, &opts).unwrap();
        assert_eq!(ds.len(), 1);
        assert!(ds
            .problems()
            .iter()
            .all(|p| p.action == arfpn_voc::Action::Kept));
        total += ds.samples()[0].objects.len();
    }
    let per_class: usize = summary.objects_per_class.iter().map(|c| c.1).sum();
    assert_eq!(total, per_class);
    // Boxes written == boxes rendered (exact round trip through VOC XML).
    let rendered = render_image(&cfg, image_seed(11, 0)).unwrap();
    let ann = read_annotation(&out.join("Annotations/synth_00000.xml")).unwrap();
    let boxes: Vec<_> = ann.annotation.objects.iter().map(|o| o.bbox).collect();
    let want: Vec<_> = rendered.objects.iter().map(|o| o.bbox).collect();
    assert_eq!(boxes, want);
    // Discovered labels equal the 14 classes when each occurs.
    let trainval = VocDataset::open(&out, "trainval", &LoadOptions::default()).unwrap();
    assert_eq!(trainval.len(), 2);
    assert!(std::fs::read_to_string(out.join("classes.txt"))
        .unwrap()
        .starts_with("schistocyte\n"));
    let _ = std::fs::remove_dir_all(&out);
}
