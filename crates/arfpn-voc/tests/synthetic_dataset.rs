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

#[test]
fn seeded_order_and_parallel_batches_are_reproducible() {
    let out = tmp("b");
    let cfg = SyntheticConfig {
        width: 96,
        height: 80,
        min_per_class: 0,
        ..Default::default()
    };
    write_dataset(&out, 7, 3, &cfg).unwrap();
    let ds = VocDataset::open(
        &out,
        "trainval",
        &LoadOptions::strict(Labels::Explicit(LabelSet::rbc14())),
    )
    .unwrap();
    let n = ds.len();
    assert_eq!(n, 6); // 7 images: train 5, val 1, test 1
    assert_eq!(ds.order(None), (0..n).collect::<Vec<_>>());
    let a = ds.order(Some(9));
    assert_eq!(a, ds.order(Some(9)));
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..n).collect::<Vec<_>>());
    assert!(
        (0..20).any(|s| ds.order(Some(s)) != a),
        "different seeds give different orders"
    );
    let ids: Vec<String> = ds
        .batches(Some(9), 2)
        .flat_map(|b| {
            assert!(b.skipped.is_empty());
            b.items.into_iter().map(|i| {
                assert_eq!(i.image.dimensions(), (96, 80));
                i.sample.id
            })
        })
        .collect();
    let want: Vec<String> = a.iter().map(|&i| ds.samples()[i].id.clone()).collect();
    assert_eq!(ids, want);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn tiling_a_synthetic_field_keeps_every_small_cell_whole_somewhere() {
    use arfpn_voc::labels::rbc;
    use arfpn_voc::tiling::{tile_image, EdgePolicy, TileConfig};
    let cfg = SyntheticConfig {
        width: 300,
        height: 260,
        min_per_class: 1,
        ..Default::default()
    };
    let field = render_image(&cfg, 21).unwrap();
    let sample = arfpn_voc::Sample {
        id: "field".into(),
        image_path: "field.png".into(),
        width: 300,
        height: 260,
        objects: field.objects.clone(),
    };
    let tcfg = TileConfig {
        tile_width: 128,
        tile_height: 96,
        overlap: 0.3,
        edge: EdgePolicy {
            min_visible: 0.3,
            relabel_as: Some(rbc::EDGE),
        },
    };
    let tiles = tile_image(&field.image, &sample, &tcfg).unwrap();
    // x: 0, 90, 172; y: 0, 67, 134, 164.
    assert_eq!(tiles.len(), 3 * 4);
    for (img, t) in &tiles {
        assert_eq!(img.dimensions(), (128, 96));
        for o in &t.sample.objects {
            let b = o.bbox;
            assert!(b.is_valid() && b.x1 >= 0.0 && b.y1 >= 0.0 && b.x2 <= 128.0 && b.y2 <= 96.0);
        }
    }
    // Horizontal overlap 38 px, vertical 29 px: any box up to that size is whole in a tile,
    // with its class unchanged.
    for o in field
        .objects
        .iter()
        .filter(|o| o.bbox.width() <= 38.0 && o.bbox.height() <= 29.0)
    {
        let whole = tiles.iter().any(|(_, t)| {
            let shifted = o.bbox.translate(-(t.x as f32), -(t.y as f32));
            t.sample
                .objects
                .iter()
                .any(|p| p.bbox == shifted && p.class == o.class)
        });
        assert!(whole, "{o:?} not whole in any tile");
    }
}
