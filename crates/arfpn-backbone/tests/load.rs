//! Loading weights from safetensors: torchvision names, missing/unexpected reports, errors.

use arfpn_backbone::{
    load_safetensors, AttentionKind, Backbone, BackboneError, NormKind, ResNet, ResNetConfig,
};
use arfpn_testkit::uniform;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "arfpn-backbone-{}-{name}.safetensors",
        std::process::id()
    ))
}

fn build(cfg: &ResNetConfig) -> (VarMap, ResNet) {
    let vm = VarMap::new();
    let net = ResNet::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    (vm, net)
}

/// A torchvision state_dict's names and shapes (tests/data, written by
/// scripts/torchvision_resnet_keys.py) filled with deterministic values, as safetensors.
fn torchvision_like_file(list: &str, name: &str) -> (PathBuf, HashMap<String, Tensor>) {
    let path = format!("{}/tests/data/{list}", env!("CARGO_MANIFEST_DIR"));
    let keys: Vec<(String, Vec<usize>)> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut map = HashMap::new();
    for (i, (k, shape)) in keys.into_iter().enumerate() {
        let t = if k.ends_with("num_batches_tracked") {
            Tensor::new(7i64, &Device::Cpu).unwrap()
        } else {
            let t = uniform(i as u64, shape.as_slice(), DType::F32, &Device::Cpu).unwrap();
            if k.ends_with("running_var") {
                (t.abs().unwrap() + 0.5).unwrap()
            } else {
                t
            }
        };
        map.insert(k, t);
    }
    let file = tmp(name);
    candle_core::safetensors::save(&map, &file).unwrap();
    (file, map)
}

fn assert_loads_torchvision(cfg: ResNetConfig, list: &str) -> Result<()> {
    let (file, tensors) = torchvision_like_file(list, list);
    let cfg = cfg.with_norm(NormKind::frozen_batch_norm());
    let (vm, net) = build(&cfg);
    let report = load_safetensors(&vm, &file).map_err(candle_core::Error::wrap)?;
    // The same network built directly from the file: loading into an already-built model
    // must give identical outputs (frozen BN statistics included).
    let direct = ResNet::new(
        &cfg,
        VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu),
    )
    .map_err(candle_core::Error::wrap)?;
    std::fs::remove_file(&file).ok();
    let x = uniform(9, &[1, 3, 64, 64], DType::F32, &Device::Cpu)?;
    let (a, b) = (
        net.forward_t(&x, false).map_err(candle_core::Error::wrap)?,
        direct
            .forward_t(&x, false)
            .map_err(candle_core::Error::wrap)?,
    );
    for (fa, fb) in a.iter().zip(&b) {
        let d = (&fa.tensor - &fb.tensor)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(d, 0.0, "{} differs after loading", fa.name);
    }
    assert!(report.missing.is_empty(), "missing: {:?}", report.missing);
    assert_eq!(report.unexpected, ["fc.bias", "fc.weight"]);
    assert!(!report.ignored.is_empty());
    assert!(report
        .ignored
        .iter()
        .all(|k| k.ends_with("num_batches_tracked")));
    assert_eq!(
        report.loaded.len() + report.unexpected.len() + report.ignored.len(),
        tensors.len()
    );
    let data = vm.data().lock().unwrap();
    for name in [
        "conv1.weight",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer4.1.bn2.running_var",
    ] {
        let d = (data[name].as_tensor() - &tensors[name])?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(d, 0.0, "{name} not loaded");
    }
    drop(data);
    // The loaded network runs.
    let x = Tensor::ones((1, 3, 64, 64), DType::F32, &Device::Cpu)?;
    assert_eq!(
        net.forward_t(&x, false)
            .map_err(candle_core::Error::wrap)?
            .len(),
        4
    );
    Ok(())
}

#[test]
fn torchvision_resnet18_names_and_shapes_load() -> Result<()> {
    assert_loads_torchvision(ResNetConfig::resnet18(), "torchvision_resnet18_keys.json")
}

#[test]
fn torchvision_resnet50_names_and_shapes_load() -> Result<()> {
    assert_loads_torchvision(ResNetConfig::resnet50(), "torchvision_resnet50_keys.json")
}

fn tiny() -> ResNetConfig {
    ResNetConfig::resnet18()
        .with_width(8)
        .with_stage_depths([1, 1, 1, 1])
        .with_norm(NormKind::group_norm(4))
        .with_attention(AttentionKind::cbam())
}

#[test]
fn missing_and_unexpected_tensors_are_reported_by_name() -> Result<()> {
    let (vm_a, _) = build(&tiny());
    let mut tensors: HashMap<String, Tensor> = vm_a
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    assert!(tensors.contains_key("layer3.0.attention.channel.fc1.weight"));
    assert!(tensors.contains_key("layer3.0.attention.spatial.conv.weight"));
    tensors
        .remove("layer2.0.attention.spatial.conv.bias")
        .unwrap();
    tensors.remove("layer1.0.conv2.weight").unwrap();
    tensors.insert(
        "head.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu)?,
    );
    let file = tmp("partial");
    candle_core::safetensors::save(&tensors, &file)?;
    let (vm_b, _) = build(&tiny());
    let report = load_safetensors(&vm_b, &file).map_err(candle_core::Error::wrap)?;
    std::fs::remove_file(&file).ok();
    assert_eq!(
        report.missing,
        [
            "layer1.0.conv2.weight",
            "layer2.0.attention.spatial.conv.bias"
        ]
    );
    assert_eq!(report.unexpected, ["head.weight"]);
    assert!(!report.is_complete());
    let shown = report.to_string();
    assert!(shown.contains("missing: layer1.0.conv2.weight"), "{shown}");
    Ok(())
}

#[test]
fn round_trip_reproduces_outputs() -> Result<()> {
    let (vm_a, net_a) = build(&tiny());
    let file = tmp("roundtrip");
    vm_a.save(&file)?;
    let (vm_b, net_b) = build(&tiny());
    let x = uniform(5, &[1, 3, 64, 64], DType::F32, &Device::Cpu)?;
    let before = net_b
        .forward_t(&x, false)
        .map_err(candle_core::Error::wrap)?;
    let report = load_safetensors(&vm_b, &file).map_err(candle_core::Error::wrap)?;
    std::fs::remove_file(&file).ok();
    assert!(report.is_complete(), "{report}");
    let a = net_a
        .forward_t(&x, false)
        .map_err(candle_core::Error::wrap)?;
    let b = net_b
        .forward_t(&x, false)
        .map_err(candle_core::Error::wrap)?;
    for ((fa, fb), f0) in a.iter().zip(&b).zip(&before) {
        let d = (&fa.tensor - &fb.tensor)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(d, 0.0, "{}", fa.name);
        let d0 = (&fa.tensor - &f0.tensor)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(d0 > 0.0, "{}: the reload changed nothing", fa.name);
    }
    Ok(())
}

#[test]
fn shape_mismatch_and_bad_files_are_errors() {
    let (vm, _) = build(&tiny());
    let mut tensors = HashMap::new();
    tensors.insert(
        "conv1.weight".to_string(),
        Tensor::zeros((8, 3, 3, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let file = tmp("mismatch");
    candle_core::safetensors::save(&tensors, &file).unwrap();
    let err = load_safetensors(&vm, &file).unwrap_err();
    std::fs::remove_file(&file).ok();
    match &err {
        BackboneError::ShapeMismatch {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, "conv1.weight");
            assert_eq!(expected, &[8, 3, 7, 7]);
            assert_eq!(found, &[8, 3, 3, 3]);
        }
        e => panic!("unexpected error {e}"),
    }
    let err = load_safetensors(&vm, "/nonexistent/weights.safetensors").unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/weights.safetensors"),
        "{err}"
    );
    assert!(load_safetensors(&VarMap::new(), "/nonexistent").is_err());
}
