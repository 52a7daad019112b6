//! Presets: every name parses, validates, round-trips through JSON and TOML; the
//! torchvision preset has torchvision's exact parameter count and names; bad configurations
//! name the field at fault.

use arfpn::presets::{self, PresetName, Variant};
use arfpn::{Detector, DetectorConfig, DetectorError};
use arfpn_backbone::{AttentionKind, NormKind};
use candle_core::Device;

#[test]
fn every_preset_validates_and_round_trips() -> Result<(), DetectorError> {
    let names = PresetName::all();
    assert_eq!(names.len(), 17);
    for p in names {
        let cfg = p.config(&["a", "b"])?;
        cfg.validate()?;
        assert_eq!(cfg.name, p.to_string());
        assert_eq!(p.to_string().parse::<PresetName>()?, p);
        assert_eq!(DetectorConfig::from_json(&cfg.to_json()?)?, cfg, "{p} json");
        assert_eq!(DetectorConfig::from_toml(&cfg.to_toml()?)?, cfg, "{p} toml");
    }
    for bad in ["cs-arfpn", "xx-r50", "fpn-r20", "fpn-rr", ""] {
        let err = bad.parse::<PresetName>().err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("cs-arfpn-r50")),
            "{bad}: {err:?}"
        );
    }
    Ok(())
}

#[test]
fn variants_set_the_papers_attention_and_norms() -> Result<(), DetectorError> {
    let c = presets::cs_arfpn_r50(&["x"]);
    assert_eq!(c.backbone.attention, AttentionKind::cbam());
    assert_eq!(c.backbone.norm, NormKind::group_norm(32));
    assert_eq!(c.roi_heads.postprocess.detections_per_image, 1000);
    let f = presets::fpn_r50(&["x"]);
    assert_eq!(f.backbone.attention, AttentionKind::None);
    assert_eq!(f.backbone.norm, NormKind::frozen_batch_norm());
    assert_eq!(f.input.min_size, Some(800));
    assert_eq!(f.roi_heads.postprocess.detections_per_image, 100);
    assert_eq!(
        (f.rpn.train.pre_nms_top_n, f.rpn.test.post_nms_top_n),
        (2000, 1000)
    );
    for (v, a) in [
        (Variant::CArfpn, AttentionKind::channel()),
        (Variant::SArfpn, AttentionKind::spatial()),
    ] {
        assert_eq!(presets::preset(v, 18, &["x"])?.backbone.attention, a);
    }
    Ok(())
}

/// torchvision's `fasterrcnn_resnet50_fpn(num_classes=91)` has 41,755,286 parameters
/// (frozen batch norm holds buffers, not parameters): body convs 23,454,912 + FPN 3,344,384
/// + RPN head 593,935 + TwoMLPHead 13,895,680 + predictor 466,375.
///
/// Ours lacks one thing: torchvision's `bbox_pred` also regresses the background class (4 × 1024 + 4 = 4,100
/// parameters no loss ever trains); our predictor has 4K box outputs for K foreground classes
/// and `torchvision_to_ours` drops those rows when importing.
#[test]
fn fpn_r50_has_torchvisions_parameter_count_and_names() -> Result<(), DetectorError> {
    let classes: Vec<String> = (1..=90).map(|i| format!("c{i}")).collect();
    let det = Detector::new(presets::fpn_r50(&classes), 0, &Device::Cpu)?;
    let trainable: usize = det.trainable_vars().iter().map(|v| v.elem_count()).sum();
    assert_eq!(trainable, 41_755_286 - 4_100);
    let names: Vec<String> = det
        .vars()
        .named_vars()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for expected in [
        "backbone.body.conv1.weight",
        "backbone.body.bn1.running_var",
        "backbone.body.layer4.2.conv3.weight",
        "backbone.fpn.inner_blocks.3.0.weight",
        "backbone.fpn.layer_blocks.0.0.bias",
        "rpn.head.conv.0.0.weight",
        "rpn.head.cls_logits.weight",
        "rpn.head.bbox_pred.bias",
        "roi_heads.box_head.fc6.weight",
        "roi_heads.box_head.fc7.bias",
        "roi_heads.box_predictor.cls_score.weight",
        "roi_heads.box_predictor.bbox_pred.weight",
    ] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
    assert!(names.iter().all(|n| n.starts_with("backbone.body.")
        || n.starts_with("backbone.fpn.")
        || n.starts_with("rpn.head.")
        || n.starts_with("roi_heads.box_head.")
        || n.starts_with("roi_heads.box_predictor.")));
    Ok(())
}

#[test]
fn mismatched_pieces_are_named() {
    let mut cfg = presets::cpu_small(&["a"]);
    cfg.backbone.norm = NormKind::group_norm(7);
    let err = Detector::new(cfg, 0, &Device::Cpu)
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("groups")),
        "{err:?}"
    );

    let mut cfg = presets::cpu_small(&["a"]);
    cfg.roi_heads.pooler.levels = vec!["p2".into(), "p9".into()];
    let err = Detector::new(cfg, 0, &Device::Cpu)
        .err()
        .map(|e| e.to_string());
    assert!(err.as_deref().is_some_and(|e| e.contains("p9")), "{err:?}");

    let mut cfg = presets::cpu_small(&["a"]);
    cfg.rpn.anchors.sizes = arfpn_rpn::Levels::Each(vec![vec![8.0]; 3]);
    let err = Detector::new(cfg, 0, &Device::Cpu)
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("sizes")),
        "{err:?}"
    );

    let cfg = presets::cpu_small(&["a", "a"]);
    let err = Detector::new(cfg, 0, &Device::Cpu)
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("classes[1]")),
        "{err:?}"
    );

    let cfg = presets::cpu_small::<&str>(&[]);
    assert!(Detector::new(cfg, 0, &Device::Cpu).is_err());
}

#[test]
fn config_files_load_by_extension() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("arfpn-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cfg = presets::cpu_small(&["a", "b"]);
    for ext in ["json", "toml"] {
        let p = dir.join(format!("c.{ext}"));
        cfg.save(&p)?;
        assert_eq!(DetectorConfig::load(&p)?, cfg);
    }
    std::fs::write(dir.join("bad.toml"), "classes = 3\n")?;
    let err = DetectorConfig::load(dir.join("bad.toml"))
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("bad.toml")),
        "{err:?}"
    );
    assert!(DetectorConfig::load(dir.join("c.yaml")).is_err());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
