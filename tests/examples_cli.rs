//! The example programs answer `--help`, name a bad argument, check arguments before any
//! work, and behave on bad data as documented (issue 11).
//!
//! The binaries are the ones `cargo test` builds next to this test (`target/<profile>/
//! examples/`); `cargo test --test examples_cli` alone does not build examples, so the
//! first test run builds them with `cargo build --examples` (same profile, same target
//! folder).

mod common;

use arfpn_testkit::shared_data;
use common::run;
use std::path::{Path, PathBuf};
use std::process::Output;

const EXAMPLES: [&str; 20] = [
    "backbone_timing",
    "cell_size_accuracy",
    "custom_attention",
    "dataset_stats",
    "detect",
    "detector_timing",
    "evaluate",
    "feature_maps",
    "gpu_check",
    "import_torchvision",
    "make_synthetic",
    "pack_model",
    "param_counts",
    "quickstart",
    "serve",
    "serve_load",
    "tile_dataset",
    "to_png",
    "train",
    "voc_to_coco",
];

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arfpn-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn every_example_answers_help_and_names_a_bad_argument() {
    for name in EXAMPLES {
        for h in ["-h", "--help"] {
            let o = run(name, &[h]);
            assert_eq!(o.status.code(), Some(0), "{name} {h}: {}", text(&o));
            assert!(text(&o).contains("Usage:"), "{name} {h}: {}", text(&o));
        }
        // The help opens with what the command does, not the package's description.
        let help = text(&run(name, &["--help"]));
        assert!(
            !help.contains("cross-crate tests of the arfpn workspace"),
            "{name} --help: {help}"
        );
        let o = run(name, &["--bogus-flag"]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", text(&o));
        assert!(text(&o).contains("--bogus-flag"), "{name}: {}", text(&o));
    }
}

/// Without a CUDA device (and in this build, without the `cuda` feature) the GPU check says
/// why it cannot run and exits 3, which scripts/gpu-run.sh and CI can tell from a failure.
#[test]
fn gpu_check_without_a_device_says_so_and_exits_3() {
    let o = run("gpu_check", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("SKIP gpu_check: no CUDA device"),
        "{}",
        text(&o)
    );
    let o = run("gpu_check", &["--device", "cpu"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--device cpu"), "{}", text(&o));
}

#[test]
fn malformed_values_are_named_and_checked_before_work() {
    let out = tmp("malformed");
    let src = out.join("src");
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "tile_dataset",
            vec![
                ".".into(),
                out.display().to_string(),
                "--overlap".into(),
                "abc".into(),
            ],
            "--overlap",
        ),
        (
            "tile_dataset",
            vec![".".into(), out.display().to_string(), "--sigma=-1".into()],
            "--sigma",
        ),
        (
            "tile_dataset",
            vec![".".into(), out.display().to_string(), "--tile=500".into()],
            "--tile",
        ),
        (
            "make_synthetic",
            vec![src.display().to_string(), "--images=x".into()],
            "--images",
        ),
        (
            "make_synthetic",
            vec![
                src.display().to_string(),
                "--width".into(),
                "100000".into(),
                "--height".into(),
                "100000".into(),
            ],
            "width",
        ),
        (
            "make_synthetic",
            vec![src.display().to_string(), "--cell-scale=9".into()],
            "--cell-scale",
        ),
        (
            "make_synthetic",
            vec![src.display().to_string(), "--cell-scale=nan".into()],
            "--cell-scale",
        ),
        (
            "make_synthetic",
            // Within 0.5..=8 but too large for a 500x375 image.
            vec![src.display().to_string(), "--cell-scale=7".into()],
            "cell_scale",
        ),
        (
            "make_synthetic",
            vec![src.display().to_string(), "--profile=fancy".into()],
            "--profile",
        ),
        (
            "evaluate",
            vec![
                "--gt=/nonexistent/gt.json".into(),
                "--detections=/nonexistent/d.json".into(),
            ],
            "/nonexistent/gt.json",
        ),
        (
            "feature_maps",
            vec!["--image=/nonexistent.png".into()],
            "/nonexistent.png",
        ),
        (
            "feature_maps",
            vec!["--weights=fpn=/nonexistent/w.safetensors".into()],
            "/nonexistent/w.safetensors",
        ),
        (
            "evaluate",
            vec![
                "--gt=Cargo.toml".into(),
                "--detections=Cargo.toml".into(),
                "--plot=/nonexistent/dir/pr.png".into(),
            ],
            "/nonexistent/dir",
        ),
        (
            "evaluate",
            vec![
                "--gt=Cargo.toml".into(),
                "--detections=Cargo.toml".into(),
                "--plot=pr.gif".into(),
            ],
            ".png or .svg",
        ),
        (
            "voc_to_coco",
            vec![".".into(), "--out=/nonexistent/dir/gt.json".into()],
            "/nonexistent/dir",
        ),
        (
            "feature_maps",
            vec!["--weights".into(), "cs-arfpn".into()],
            "--weights",
        ),
        (
            "feature_maps",
            vec!["--weights=cs-arnfp=x.safetensors".into()],
            "cs-arnfp",
        ),
        (
            "dataset_stats",
            vec![".".into(), "--splits=".into()],
            "--splits",
        ),
        ("backbone_timing", vec!["--runs=0".into()], "--runs"),
        ("param_counts", vec!["--depth=7".into()], "--depth"),
    ];
    for (name, args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let t0 = std::time::Instant::now();
        let o = run(name, &args);
        let msg = text(&o);
        assert!(!o.status.success(), "{name} {args:?} succeeded: {msg}");
        assert!(
            msg.contains(want),
            "{name} {args:?}: {msg:?} should name {want:?}"
        );
        assert!(!msg.contains("(strict mode)"), "{name}: {msg}");
        assert!(
            t0.elapsed().as_secs() < 20,
            "{name} {args:?} did work first"
        );
    }
    assert!(!src.exists() && !out.exists(), "nothing written");
}

/// A small synthetic VOC dataset written by the library (no committed images).
fn synthetic(dir: &Path, n: usize) {
    let cfg = arfpn_voc::synthetic::SyntheticConfig {
        width: 160,
        height: 120,
        min_per_class: 1,
        ..Default::default()
    };
    arfpn_voc::synthetic::write_dataset(dir, n, 3, &cfg).unwrap();
}

fn count_files(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == ext)
        })
        .count()
}

fn listed(root: &Path) -> usize {
    ["train", "val", "test"]
        .iter()
        .map(|s| {
            std::fs::read_to_string(root.join(format!("ImageSets/Main/{s}.txt")))
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count()
        })
        .sum()
}

#[test]
fn tile_dataset_refuses_a_full_folder_and_overwrite_clears_only_its_own_files() {
    let base = tmp("tile");
    let (src, out) = (base.join("src"), base.join("out"));
    synthetic(&src, 3);
    let out_s = out.display().to_string();
    let src_s = src.display().to_string();
    let o = run("tile_dataset", &[&src_s, &out_s, "--tile=64x48"]);
    assert!(o.status.success(), "{}", text(&o));
    let first = count_files(&out.join("JPEGImages"), "jpg");
    assert!(first > 0);
    assert_eq!(first, listed(&out));
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    // Again without --overwrite: refused, nothing changed.
    let o = run("tile_dataset", &[&src_s, &out_s, "--tile=80x60"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--overwrite"), "{}", text(&o));
    assert_eq!(count_files(&out.join("JPEGImages"), "jpg"), first);
    // With --overwrite and bigger tiles: the old tiles are gone, the user's file stays.
    let o = run(
        "tile_dataset",
        &[&src_s, &out_s, "--tile=80x60", "--overwrite"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let second = count_files(&out.join("JPEGImages"), "jpg");
    assert!(second < first, "{second} >= {first}");
    assert_eq!(second, listed(&out), "every JPEG is listed in a split file");
    assert_eq!(count_files(&out.join("Annotations"), "xml"), second);
    assert!(out.join("notes.txt").is_file());
    // A non-empty folder that no run wrote is not cleared even with --overwrite.
    let foreign = base.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("a.jpg"), "x").unwrap();
    let o = run(
        "tile_dataset",
        &[&src_s, &foreign.display().to_string(), "--overwrite"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(foreign.join("a.jpg").is_file());
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn truncated_jpeg_is_reported_by_dataset_stats_and_left_out_by_tile_dataset() {
    let base = tmp("trunc");
    let src = base.join("src");
    synthetic(&src, 3);
    let train = std::fs::read_to_string(src.join("ImageSets/Main/train.txt")).unwrap();
    let id = train.lines().next().unwrap().to_string();
    let jpg = src.join(format!("JPEGImages/{id}.jpg"));
    let bytes = std::fs::read(&jpg).unwrap();
    std::fs::write(&jpg, &bytes[..bytes.len() / 3]).unwrap();
    let src_s = src.display().to_string();
    let o = run("dataset_stats", &[&src_s]);
    let msg = text(&o);
    assert!(o.status.success(), "{msg}");
    assert!(msg.contains("problems: 1"), "{msg}");
    assert!(
        msg.contains("CorruptImage") && msg.contains(&format!("{id}.jpg")),
        "{msg}"
    );
    // Strict: the first problem is the error, with the strict prefix.
    let o = run("dataset_stats", &[&src_s, "--strict"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("(strict mode)") && text(&o).contains("corrupt image"));
    let out = base.join("out");
    let o = run(
        "tile_dataset",
        &[&src_s, &out.display().to_string(), "--tile=64x48"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(&format!("{id}.jpg")), "{}", text(&o));
    let tiles = std::fs::read_to_string(out.join("ImageSets/Main/train.txt")).unwrap();
    assert!(!tiles.contains(&id), "no tile of the truncated field");
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn dataset_stats_lenient_goes_on_past_a_duplicate_split_line() {
    let base = tmp("dup");
    synthetic(&base, 3);
    let p = base.join("ImageSets/Main/train.txt");
    let train = std::fs::read_to_string(&p).unwrap();
    let id = train.lines().next().unwrap().to_string();
    std::fs::write(&p, format!("{train}{id}\n")).unwrap();
    let o = run("dataset_stats", &[&base.display().to_string()]);
    let msg = text(&o);
    assert!(o.status.success(), "{msg}");
    assert!(
        msg.contains("listed twice") && !msg.contains("(strict mode)"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn bccd_mini_with_an_empty_val_split_is_summarised_and_tiled() {
    let Some(root) = shared_data("bccd-mini") else {
        return;
    };
    let root_s = root.display().to_string();
    let o = run("dataset_stats", &[&root_s, "--quiet"]);
    let msg = text(&o);
    assert!(o.status.success(), "{msg}");
    assert!(
        msg.contains("\"val\" is empty") && msg.contains("problems: 0"),
        "{msg}"
    );
    let out = tmp("bccd-mini-tiles");
    let o = run(
        "tile_dataset",
        &[
            &root_s,
            &out.display().to_string(),
            "--tile=320x240",
            "--overlap=0",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("ImageSets/Main/val.txt")).unwrap(),
        ""
    );
    assert_eq!(
        std::fs::read_to_string(out.join("classes.txt")).unwrap(),
        "Platelets\nRBC\nWBC\n"
    );
    let _ = std::fs::remove_dir_all(&out);
}

const DETS_EMPTY: &str = "[]";

#[test]
fn evaluate_reads_voc_ground_truth_warns_on_no_detections_and_checks_thresholds() {
    let base = tmp("eval");
    let voc = base.join("voc");
    synthetic(&voc, 3);
    let gt = base.join("gt.json");
    let (voc_s, gt_s) = (voc.display().to_string(), gt.display().to_string());
    let o = run(
        "voc_to_coco",
        &[&voc_s, "--split=test", &format!("--out={gt_s}")],
    );
    assert!(o.status.success(), "{}", text(&o));
    let coco: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&gt).unwrap()).unwrap();
    let anns = coco["annotations"].as_array().unwrap();
    assert!(!anns.is_empty());
    // Detections = the ground truth boxes, category ids written as floats (1.0).
    let dets: Vec<serde_json::Value> = anns
        .iter()
        .map(|a| {
            serde_json::json!({
                "image_id": a["image_id"],
                "category_id": a["category_id"].as_f64().unwrap(),
                "bbox": a["bbox"],
                "score": 0.9,
            })
        })
        .collect();
    let dets_p = base.join("dets.json");
    std::fs::write(&dets_p, serde_json::to_string(&dets).unwrap()).unwrap();
    assert!(serde_json::to_string(&dets).unwrap().contains(".0,"));
    let dets_s = dets_p.display().to_string();
    for gt_args in [
        vec![format!("--gt={gt_s}")],
        vec![format!("--data={voc_s}"), "--split=test".into()],
    ] {
        let mut args: Vec<&str> = gt_args.iter().map(String::as_str).collect();
        args.extend(["--detections", &dets_s, "--json"]);
        let o = run("evaluate", &args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let map = v["voc"]["map"].as_f64().unwrap();
        assert!(
            (map - 1.0).abs() < 1e-9,
            "detections = ground truth: VOC mAP {map}, {v}"
        );
    }
    // No detections: evaluated, with a warning.
    let empty = base.join("empty.json");
    std::fs::write(&empty, DETS_EMPTY).unwrap();
    let o = run(
        "evaluate",
        &[
            &format!("--gt={gt_s}"),
            "--detections",
            &empty.display().to_string(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("warning"),
        "{}",
        text(&o)
    );
    for t in ["2", "-0.1", "nan"] {
        let o = run(
            "evaluate",
            &[
                &format!("--gt={gt_s}"),
                "--detections",
                &dets_s,
                "--score-threshold",
                t,
            ],
        );
        assert_eq!(o.status.code(), Some(2), "{t}: {}", text(&o));
        assert!(text(&o).contains("--score-threshold"), "{}", text(&o));
    }
    // A 1.5 category id is an error naming the record.
    std::fs::write(
        &empty,
        r#"[{"image_id": 1, "category_id": 1.5, "bbox": [0,0,5,5], "score": 1}]"#,
    )
    .unwrap();
    let o = run(
        "evaluate",
        &[
            &format!("--gt={gt_s}"),
            "--detections",
            &empty.display().to_string(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("category_id") && text(&o).contains("1.5"),
        "{}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// `import_torchvision` turns the oracle's torchvision state dict into a checkpoint that
/// detects as torchvision did; a config with another class count is refused naming the
/// predictor; `to_png` writes the same pixels and refuses two inputs with one stem.
#[test]
fn import_torchvision_and_to_png() {
    use arfpn::{load_image, presets, Detector};
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/arfpn/tests/fixtures/torchvision");
    let dir = tmp("import-tv");
    std::fs::create_dir_all(&dir).unwrap();
    // The oracle's architecture as a config file.
    let mut c = presets::preset(presets::Variant::Fpn, 18, &["a", "b", "c"]).unwrap();
    c.backbone.width = 8;
    c.fpn.out_channels = 32;
    c.roi_heads.box_head = arfpn_head::BoxHeadConfig::TwoMlp {
        representation_size: 128,
    };
    let config = dir.join("narrow.json");
    c.save(&config).unwrap();
    let weights = fixtures.join("model.safetensors");
    let ckpt = dir.join("imported.safetensors");
    let args = |classes: &'static str| {
        vec![
            "--weights".to_string(),
            weights.display().to_string(),
            "--config".into(),
            config.display().to_string(),
            "--classes".into(),
            classes.into(),
            "--min-size".into(),
            "256".into(),
            "--max-size".into(),
            "320".into(),
            "--out".into(),
            ckpt.display().to_string(),
        ]
    };
    let a = args("a,b,c");
    let o = run(
        "import_torchvision",
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let det = Detector::load(&ckpt, &candle_core::Device::Cpu).unwrap();
    assert_eq!(det.config().input.min_size, Some(256));
    let image = load_image(fixtures.join("image-0.png"), &candle_core::Device::Cpu).unwrap();
    let d = det.detect_image(&image).unwrap();
    let want = candle_core::safetensors::load(
        fixtures.join("expected.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let scores: Vec<f32> = want["detections.0.scores"].to_vec1().unwrap();
    assert_eq!(d.len(), scores.len());
    assert!((d.scores[0] - scores[0]).abs() < 1e-4);
    // Four classes against a three-class model.
    let a = args("a,b,c,d");
    let o = run(
        "import_torchvision",
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("cls_score") && text(&o).contains("num_classes=5"),
        "{}",
        text(&o)
    );
    // --help says what the command does.
    let o = run("import_torchvision", &["--help"]);
    assert!(
        text(&o).contains("Import a torchvision Faster R-CNN"),
        "{}",
        text(&o)
    );

    // to_png: lossless, same pixels; one stem twice is refused.
    let png_dir = dir.join("png");
    let src = fixtures.join("image-1.png");
    let o = run(
        "to_png",
        &[src.to_str().unwrap(), "--out", png_dir.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let a = arfpn_voc::image_io::load_rgb(&src).unwrap();
    let b = arfpn_voc::image_io::load_rgb(&png_dir.join("image-1.png")).unwrap();
    assert_eq!(a.as_raw(), b.as_raw());
    let o = run(
        "to_png",
        &[
            src.to_str().unwrap(),
            png_dir.join("image-1.png").to_str().unwrap(),
            "--out",
            dir.join("png2").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("would both be written as image-1.png"),
        "{}",
        text(&o)
    );
    let o = run("to_png", &["--help"]);
    assert!(
        text(&o).contains("Decode images with arfpn's decoder"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The researcher's loop of issue 26: a custom attention module registered by name trains
/// in the whole detector, is saved, reloaded and evaluated, and shows its maps in the stages
/// it was placed in; its checkpoint evaluates through `custom_attention evaluate` (which
/// registers it) and is refused, naming the module, by the plain `evaluate`.
#[test]
fn custom_attention_trains_saves_reloads_evaluates_and_shows_its_maps() {
    let out = tmp("custom-attention");
    let data = shared_data("bccd-mini");
    let out_s = out.display().to_string();
    let mut args = vec!["--steps", "2", "--out", &out_s, "--fresh"];
    let data_s = data.as_ref().map(|d| d.display().to_string());
    if let Some(d) = &data_s {
        args.extend(["--data", d]);
    }
    let o = run("custom_attention", &args);
    let msg = text(&o);
    assert_eq!(o.status.code(), Some(0), "{msg}");
    assert!(msg.contains("test mAP@0.5"), "{msg}");
    for unit in ["layer2.0", "layer3.1", "layer4.1"] {
        assert!(msg.contains(&format!("{unit} gate [1, ")), "{unit}: {msg}");
    }
    assert!(
        !msg.contains("layer1.0 gate"),
        "layer1 has no attention: {msg}"
    );
    let ckpt = out.join("gated_channel.safetensors");
    let ckpt_s = ckpt.display().to_string();
    let Some(data) = data_s else {
        return;
    };
    let eval = [
        "--data",
        &data,
        "--split",
        "test",
        "--checkpoint",
        &ckpt_s,
        "--json",
    ];
    let o = run("custom_attention", &[&["evaluate"][..], &eval[..]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.is_object(), "{v}");
    let o = run("evaluate", &eval);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("gated_channel") && text(&o).contains("register_attention"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// `detect --rescale` on single BCCD images (issue 31): an in-distribution image gives no
/// warning and no rescaling; the same image downscaled 2.5× is rescaled back (`auto`) by
/// 2.5 within 25 %, or warned about (`warn`). Skips without ../shared/data.
#[test]
fn detect_rescales_only_confident_mismatches_on_single_bccd_images() {
    use arfpn::{presets, DataInfo, Detector};
    let Some(data) = shared_data("bccd-mini") else {
        return;
    };
    let out = tmp("rescale");
    std::fs::create_dir_all(&out).unwrap();
    let opts = arfpn_voc::LoadOptions::lenient(arfpn_voc::Labels::Discover);
    let ds = arfpn_voc::VocDataset::open(&data, "train", &opts).unwrap();
    let truth: Vec<arfpn::GroundTruth> = ds
        .samples()
        .iter()
        .map(|s| arfpn::GroundTruth {
            boxes: s.boxes(),
            classes: s.classes(),
        })
        .collect();
    let mut cfg = presets::cpu_small(ds.labels().names());
    (cfg.backbone.width, cfg.fpn.out_channels) = (8, 16);
    let mut det = Detector::new(cfg, 0, &candle_core::Device::Cpu).unwrap();
    det.set_data_info(DataInfo {
        cell_size_px: arfpn::typical_cell_size(&truth),
        ..Default::default()
    });
    let ckpt = out.join("bccd-scale.safetensors");
    det.save(&ckpt).unwrap();
    let item = ds.load(0).unwrap();
    let native = out.join("native.png");
    item.image.save(&native).unwrap();
    let (w, h) = (item.image.width(), item.image.height());
    let small = image::imageops::resize(
        &item.image,
        (w as f32 / 2.5).round() as u32,
        (h as f32 / 2.5).round() as u32,
        image::imageops::FilterType::Triangle,
    );
    let small_path = out.join("small.png");
    small.save(&small_path).unwrap();
    let detect = |image: &Path, mode: &str| {
        let o = run(
            "detect",
            &[
                "--checkpoint",
                ckpt.to_str().unwrap(),
                image.to_str().unwrap(),
                "--out",
                out.join(format!("det-{mode}")).to_str().unwrap(),
                "--rescale",
                mode,
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let msg = detect(&native, "warn");
    assert!(!msg.contains("warning"), "{msg}");
    let msg = detect(&native, "auto");
    assert!(
        msg.contains("no rescaling") && !msg.contains("rescaled by"),
        "{msg}"
    );
    let msg = detect(&small_path, "warn");
    assert!(
        msg.contains("warning") && msg.contains("not rescaled"),
        "{msg}"
    );
    let msg = detect(&small_path, "auto");
    let factor: f32 = msg
        .split("rescaled by ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no factor in {msg}"));
    assert!((2.0..=3.125).contains(&factor), "{msg}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn readme_lists_every_example() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut names: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path();
                (p.extension()? == "rs")
                    .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
            })
            .collect();
    names.sort();
    assert_eq!(names, EXAMPLES, "EXAMPLES above lists every example");
    for n in &names {
        assert!(
            readme.contains(&format!("--example {n}")),
            "README does not list {n}"
        );
    }
}

#[test]
fn feature_maps_writes_the_levels_the_readme_names_with_colour_bars() {
    let out = tmp("feature-maps");
    let o = run("feature_maps", &[&format!("--out={}", out.display())]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("random initialisation"), "{}", text(&o));
    let input = image::open(out.join("input.png")).unwrap();
    for variant in ["fpn", "c-arfpn", "cs-arfpn"] {
        for level in ["c2", "c3", "c4", "c5", "p2", "p3", "p4", "p5", "p6"] {
            let p = out.join(format!("{variant}_{level}.png"));
            let img = image::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(img.width() > input.width(), "{}: colour bar", p.display());
        }
    }
    let att = image::open(out.join("cs-arfpn_attention_layer2.3.png"))
        .unwrap()
        .to_rgb8();
    // The bar's top (value 1 of the fixed scale) is dark red, its bottom dark blue.
    let x = input.width() + 12;
    let (top, bottom) = (
        att.get_pixel(x, 16).0,
        att.get_pixel(x, att.height() - 16).0,
    );
    assert!(top[0] > 100 && top[2] < 50, "{top:?}");
    assert!(bottom[2] > 100 && bottom[0] < 50, "{bottom:?}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn param_counts_prints_the_papers_table_7_column() {
    let o = run("param_counts", &["--depth=50"]);
    let msg = text(&o);
    assert!(o.status.success(), "{msg}");
    assert!(msg.contains("paper Table 7"), "{msg}");
    for mb in ["79.05", "88.67", "88.68"] {
        assert!(msg.contains(mb), "{mb}: {msg}");
    }
}

/// The README's first command, shrunk: data, training, evaluation, pictures; then `detect`
/// and `evaluate --checkpoint` on what it trained, and their bad-input errors.
#[test]
fn quickstart_detect_and_evaluate_run_end_to_end() {
    let out = tmp("quickstart");
    let o = run(
        "quickstart",
        &[
            "--out",
            &out.display().to_string(),
            "--images",
            "3",
            "--steps",
            "3",
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("mAP@0.5 (VOC all-point): "), "{t}");
    assert!(out.join("pr_curves.png").is_file() && out.join("detections.png").is_file());
    let ckpt = out.join("run/checkpoints/step-00000003.safetensors");
    assert!(ckpt.is_file(), "{t}");
    // The trained detector's feature and attention maps (paper Fig. 7), drawn as configured
    // (cpu-small: a CBAM ResNet-18, so layer2's last unit is layer2.1).
    let maps = out.join("maps");
    let o = run(
        "feature_maps",
        &[
            "--checkpoint",
            &ckpt.display().to_string(),
            "--out",
            &maps.display().to_string(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("random initialisation"), "{}", text(&o));
    for f in [
        "cs-arfpn_c2.png",
        "cs-arfpn_p6.png",
        "cs-arfpn_attention_layer2.1.png",
    ] {
        assert!(maps.join(f).is_file(), "{f}: {}", text(&o));
    }
    // detect on the synthetic images.
    let det = out.join("detect");
    let images = out.join("data/JPEGImages");
    let o = run(
        "detect",
        &[
            "--checkpoint",
            &ckpt.display().to_string(),
            &images.display().to_string(),
            "--out",
            &det.display().to_string(),
            "--score",
            "0.0",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for f in [
        "report.html",
        "counts.csv",
        "counts.json",
        "detections.json",
        "images.json",
    ] {
        assert!(det.join(f).is_file(), "{f} missing");
    }
    let counts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(det.join("counts.json")).unwrap()).unwrap();
    assert_eq!(counts["images"].as_array().map(Vec::len), Some(3));
    assert_eq!(counts["classes"].as_array().map(Vec::len), Some(14));
    let html = std::fs::read_to_string(det.join("report.html")).unwrap();
    assert!(html.contains("data:image/png;base64,") && html.contains("Differential count"));
    assert!(std::fs::read_dir(det.join("annotations")).unwrap().count() == 3);
    // Same-named images in two folders (how microscopes name files): neither output
    // overwrites the other, the count rows are keyed by the input paths; the same file
    // given twice is refused.
    let first = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let fields = out.join("fields");
    for patient in ["patientA", "patientB"] {
        std::fs::create_dir_all(fields.join(patient)).unwrap();
        std::fs::copy(&first, fields.join(patient).join("field1.jpg")).unwrap();
    }
    let det2 = out.join("detect-same-names");
    let a = fields.join("patientA");
    let b = fields.join("patientB/field1.jpg");
    let o = run(
        "detect",
        &[
            "--checkpoint",
            &ckpt.display().to_string(),
            &a.display().to_string(),
            &b.display().to_string(),
            "--out",
            &det2.display().to_string(),
            "--score",
            "0.0",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for patient in ["patientA", "patientB"] {
        assert!(
            det2.join(patient).join("field1.png").is_file(),
            "{patient} picture"
        );
        assert!(
            det2.join("annotations")
                .join(patient)
                .join("field1.xml")
                .is_file(),
            "{patient} annotation"
        );
    }
    let csv = std::fs::read_to_string(det2.join("counts.csv")).unwrap();
    let keys: std::collections::BTreeSet<&str> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|k| *k != "ALL")
        .collect();
    let want: std::collections::BTreeSet<String> = [
        a.join("field1.jpg").display().to_string(),
        b.display().to_string(),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        keys.into_iter()
            .map(String::from)
            .collect::<std::collections::BTreeSet<_>>(),
        want
    );
    let o = run(
        "detect",
        &[
            "--checkpoint",
            &ckpt.display().to_string(),
            &b.display().to_string(),
            &b.display().to_string(),
            "--out",
            &out.join("detect-twice").display().to_string(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("given twice"), "{}", text(&o));
    // An empty folder and an undecodable image are named.
    let empty = out.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = run(
        "detect",
        &[
            "--checkpoint",
            &ckpt.display().to_string(),
            &empty.display().to_string(),
            "--out",
            &det.display().to_string(),
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o).contains("no .jpg/.png/.bmp images"),
        "{}",
        text(&o)
    );
    let bad = out.join("bad.jpg");
    let first = std::fs::read_dir(&images)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(first).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    let o = run(
        "detect",
        &[
            "--checkpoint",
            &ckpt.display().to_string(),
            &bad.display().to_string(),
            "--out",
            &det.display().to_string(),
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("bad.jpg"), "{}", text(&o));
    // evaluate --checkpoint on the test split.
    let o = run(
        "evaluate",
        &[
            "--data",
            &out.join("data").display().to_string(),
            "--split",
            "test",
            "--checkpoint",
            &ckpt.display().to_string(),
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert!(v.is_object(), "{v}");
    let _ = std::fs::remove_dir_all(&out);
}

/// `train` on ../shared/data/bccd-mini: a short run, then a resume.
#[test]
fn train_runs_and_resumes_on_bccd_mini() {
    let Some(data) = shared_data("bccd-mini") else {
        return;
    };
    let out = tmp("train");
    let args = |steps: &str, resume: bool| {
        let mut v = vec![
            "--data".to_string(),
            data.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--steps".into(),
            steps.into(),
            "--crop".into(),
            "128x128".into(),
            "--eval-every".into(),
            "100".into(),
        ];
        if resume {
            v.push("--resume".into());
        }
        v
    };
    let a = args("2", false);
    let o = run("train", &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.join("config.json").is_file() && out.join("log.jsonl").is_file());
    let a = args("3", true);
    let o = run("train", &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("resuming at step 2"), "{}", text(&o));
    assert!(out.join("checkpoints/step-00000003.safetensors").is_file());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn detect_without_a_checkpoint_uses_the_shipped_model() {
    let out = tmp("default-model");
    let image = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/arfpn/tests/fixtures/torchvision/image-0.png");
    let o = run(
        "detect",
        &[image.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("built-in blood-cell model"),
        "{}",
        text(&o)
    );
    let csv = std::fs::read_to_string(out.join("counts.csv")).unwrap();
    let classes: Vec<&str> = csv
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("ALL,"))
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(classes, ["Platelets", "RBC", "WBC"], "{csv}");
    assert!(out.join("image-0.png").is_file());
    let _ = std::fs::remove_dir_all(&out);
}
