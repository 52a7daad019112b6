//! Output shapes and strides for every depth and attention variant, on odd image sizes.

use arfpn_backbone::{AttentionKind, Backbone, NormKind, ResNet, ResNetConfig};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};

/// torchvision's size arithmetic: every stride-2 layer maps `h` to `ceil(h / 2)`.
fn expected_sizes(h: usize) -> [usize; 4] {
    let half = |h: usize| h.div_ceil(2);
    let c2 = half(half(h));
    let c3 = half(c2);
    let c4 = half(c3);
    [c2, c3, c4, half(c4)]
}

fn tiny(depth: usize) -> ResNetConfig {
    // Real stage depths and block types, narrow widths so all variants run in a second.
    let cfg = ResNetConfig::from_depth(depth).unwrap();
    let width = if depth >= 50 { 4 } else { 8 };
    cfg.with_width(width).with_norm(NormKind::group_norm(2))
}

#[test]
fn every_depth_and_attention_on_odd_sizes() -> Result<()> {
    let kinds = [
        AttentionKind::None,
        AttentionKind::channel(),
        AttentionKind::spatial(),
        AttentionKind::cbam(),
    ];
    for depth in [18, 34, 50, 101] {
        for kind in &kinds {
            let cfg = tiny(depth).with_attention(kind.clone());
            let vm = VarMap::new();
            let net = ResNet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))
                .map_err(candle_core::Error::wrap)?;
            let specs = net.output_shapes();
            let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["c2", "c3", "c4", "c5"]);
            let exp = if depth >= 50 { 4 } else { 1 };
            for (s, spec) in specs.iter().enumerate() {
                assert_eq!(spec.stride, 4 << s);
                assert_eq!(
                    spec.channels,
                    (cfg.width * exp) << s,
                    "depth {depth} stage {s}"
                );
            }
            // Odd sizes; C5 is 2x1, smaller than the 7x7 spatial-attention kernel.
            let (h, w) = (37, 23);
            let x = Tensor::randn(0f32, 1., (2, 3, h, w), &Device::Cpu)?;
            let feats = net.forward_t(&x, true).map_err(candle_core::Error::wrap)?;
            let (eh, ew) = (expected_sizes(h), expected_sizes(w));
            for (i, (f, spec)) in feats.iter().zip(&specs).enumerate() {
                assert_eq!(f.spec()?, *spec, "depth {depth} {kind:?}");
                assert_eq!(f.tensor.dims(), [2, spec.channels, eh[i], ew[i]]);
                let finite = f.tensor.abs()?.max_all()?.to_scalar::<f32>()?.is_finite();
                assert!(finite, "depth {depth} {kind:?}: non-finite {}", f.name);
            }
        }
    }
    Ok(())
}

#[test]
fn traced_forward_exposes_stem_features_and_maps() -> Result<()> {
    let cfg = tiny(18).with_attention(AttentionKind::cbam());
    let vm = VarMap::new();
    let net = ResNet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))
        .map_err(candle_core::Error::wrap)?;
    let x = Tensor::randn(0f32, 1., (1, 3, 32, 48), &Device::Cpu)?;
    let t = net
        .forward_traced(&x, false)
        .map_err(candle_core::Error::wrap)?;
    assert_eq!(t.stem.dims(), [1, 8, 8, 12]);
    assert_eq!(t.features.len(), 4);
    let units: Vec<_> = t.attention.iter().map(|u| u.unit.as_str()).collect();
    assert_eq!(
        units,
        [
            "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0",
            "layer4.1"
        ]
    );
    let l3 = &t.attention[4];
    assert_eq!(l3.maps.len(), 2);
    assert_eq!(l3.maps[0].name, "channel");
    assert_eq!(l3.maps[0].tensor.dims(), [1, 32, 1, 1]);
    assert_eq!(l3.maps[1].name, "spatial");
    assert_eq!(l3.maps[1].tensor.dims(), [1, 1, 2, 3]);
    // The traced forward computes the same features as the plain one.
    let plain = net.forward_t(&x, false).map_err(candle_core::Error::wrap)?;
    let d = (&plain[3].tensor - &t.features[3].tensor)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert_eq!(d, 0.0);
    Ok(())
}

#[test]
fn bad_config_and_input_are_named_errors() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let bad_depth = ResNetConfig::resnet18().with_stage_depths([2, 0, 2, 2]);
    let e = ResNet::new(&bad_depth, vb.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("stage_depths[1]"), "{e}");
    let bad_groups = ResNetConfig::resnet18().with_width(8); // 32 groups > 8 channels
    let e = ResNet::new(&bad_groups, vb.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("norm.groups"), "{e}");
    let bad_kernel = tiny(18).with_attention(AttentionKind::Spatial { kernel_size: 4 });
    let e = ResNet::new(&bad_kernel, vb.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("kernel_size"), "{e}");
    assert!(ResNetConfig::from_depth(152).is_err());

    let net = ResNet::new(&tiny(18), vb).unwrap();
    let gray = Tensor::zeros((1, 1, 32, 32), DType::F32, &Device::Cpu).unwrap();
    let e = net.forward_t(&gray, false).err().unwrap().to_string();
    assert!(e.contains("3 image channels"), "{e}");
    let rank3 = Tensor::zeros((3, 32, 32), DType::F32, &Device::Cpu).unwrap();
    assert!(net.forward_t(&rank3, false).is_err());
}

#[test]
fn config_round_trips_through_json() {
    let cfg = ResNetConfig::resnet101()
        .with_norm(NormKind::frozen_batch_norm())
        .with_attention(AttentionKind::channel());
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(json.contains(r#""type":"channel""#), "{json}");
    let back: ResNetConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cfg);
    // norm and attention default when omitted.
    let minimal = r#"{"block":"bottleneck","stage_depths":[3,4,6,3],"width":64,"in_channels":3}"#;
    let c: ResNetConfig = serde_json::from_str(minimal).unwrap();
    assert_eq!(c, ResNetConfig::resnet50());
}
