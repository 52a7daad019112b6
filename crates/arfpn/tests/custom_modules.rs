//! A researcher's own attention module and backbone inside the whole detector: registered
//! by name, placed in chosen stages, trained by `Trainer` (a parameter named `bn1` included),
//! checkpointed and reloaded with identical detections; an unregistered name is a clear
//! error.

mod common;
use common::smears;
use std::collections::BTreeSet;
use std::sync::Mutex;

use arfpn::train::{TrainConfig, Trainer};
use arfpn::{Detector, DetectorConfig};
use arfpn_backbone::{
    register_attention, register_backbone, Attention, AttentionFactory, AttentionKind,
    AttentionSite, Backbone, NormKind, Reweighting,
};
use arfpn_kernels::Conv2dConfig;
use arfpn_nn::{conv2d, Conv2d, FeatureMap, FeatureMaps, ShapeSpec};
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

type Res<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A per-channel gate `sigmoid(bn1.weight * mean(x) + bn1.bias) * prior`, whose parameters
/// are deliberately named like a ResNet norm (`bn1.*`), and a fixed `prior` it reports as
/// frozen.
struct NamedLikeANorm {
    weight: Tensor,
    bias: Tensor,
    prior: Tensor,
    prior_name: String,
}

impl Reweighting for NamedLikeANorm {
    fn weights(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(3)?.mean_keepdim(2)?;
        let z = mean
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)?;
        candle_nn::ops::sigmoid(&z)?.broadcast_mul(&self.prior)
    }
    fn map_name(&self) -> &str {
        "gate"
    }
    fn frozen_parameters(&self) -> Vec<String> {
        vec![self.prior_name.clone()]
    }
}

/// Builds [`NamedLikeANorm`] and records every site it was asked for, with its bias (tests
/// run in parallel: each test filters by its own bias).
struct Factory {
    initial_bias: f64,
}

static SITES: Mutex<Vec<(f64, AttentionSite)>> = Mutex::new(Vec::new());

impl AttentionFactory for Factory {
    fn build(&self, site: &AttentionSite, vb: VarBuilder) -> Result<Box<dyn Attention>> {
        SITES.lock().unwrap().push((self.initial_bias, *site));
        let c = site.channels;
        let shape = (1, c, 1, 1);
        let bn = vb.pp("bn1");
        Ok(Box::new(NamedLikeANorm {
            weight: bn.get_with_hints(shape, "weight", Init::Const(0.5))?,
            bias: bn.get_with_hints(shape, "bias", Init::Const(self.initial_bias))?,
            prior: vb.get_with_hints((1, 1, 1, 1), "prior", Init::Const(1.0))?,
            prior_name: format!("{}.prior", vb.prefix()),
        }))
    }
}

fn register() {
    register_attention("named_like_a_norm", |params| {
        let initial_bias = params
            .get("initial_bias")
            .and_then(|v| v.as_f64())
            .ok_or_else(|| {
                candle_core::Error::Msg("params.initial_bias: a number is needed".into())
            })?;
        Ok(Box::new(Factory { initial_bias }))
    });
    register_backbone("four_convs", |params, vb| {
        let width = params.get("width").and_then(|v| v.as_u64()).unwrap_or(8) as usize;
        Ok(Box::new(FourConvs::new(width, vb)?))
    });
}

/// A backbone of four strided convolutions (strides 4, 8, 16, 32); `c2.weight` is fixed.
struct FourConvs {
    convs: Vec<Conv2d>,
    width: usize,
    frozen: Vec<String>,
}

impl FourConvs {
    fn new(width: usize, vb: VarBuilder) -> Result<Self> {
        let mut convs = Vec::new();
        let mut in_c = 3;
        for (i, stride) in [4, 2, 2, 2].into_iter().enumerate() {
            let cfg = Conv2dConfig {
                stride,
                padding: 1,
                ..Default::default()
            };
            let out_c = width << i;
            convs.push(conv2d(
                in_c,
                out_c,
                3,
                cfg,
                true,
                arfpn_nn::inits::KAIMING_FAN_OUT,
                vb.pp(format!("c{}", i + 2)),
            )?);
            in_c = out_c;
        }
        Ok(Self {
            convs,
            width,
            frozen: vec![format!("{}.c2.weight", vb.prefix())],
        })
    }
}

impl Backbone for FourConvs {
    fn output_shapes(&self) -> Vec<ShapeSpec> {
        (0..4)
            .map(|i| ShapeSpec::new(format!("c{}", i + 2), self.width << i, 4 << i))
            .collect()
    }
    fn size_divisibility(&self) -> usize {
        32
    }
    fn forward_t(&self, images: &Tensor, _train: bool) -> arfpn_backbone::Result<FeatureMaps> {
        let mut x = images.clone();
        let mut out = Vec::new();
        for (i, conv) in self.convs.iter().enumerate() {
            x = conv.forward(&x)?.relu()?;
            out.push(FeatureMap::new(format!("c{}", i + 2), 4 << i, x.clone()));
        }
        Ok(out)
    }
    fn frozen_parameters(&self) -> Vec<String> {
        self.frozen.clone()
    }
}

fn train_config(steps: usize) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: 1,
        augment: arfpn::train::AugmentConfig {
            crop: Some([64, 64]),
            ..Default::default()
        },
        checkpoint_every: steps,
        log_every: steps,
        seed: 3,
        ..TrainConfig::default()
    }
}

fn values(det: &Detector, name: &str) -> Res<Vec<f32>> {
    let vars = det.vars().named_vars();
    let (_, v) = vars
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| format!("no variable {name}"))?;
    Ok(v.as_tensor().flatten_all()?.to_vec1()?)
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("arfpn-custom-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn custom_attention_in_chosen_stages_trains_and_round_trips() -> Res {
    register();
    let data = smears(2, 200)?;
    let classes = arfpn_voc::LabelSet::rbc14().names().to_vec();
    let mut cfg = tiny_frozen(&classes);
    cfg.backbone.attention = AttentionKind::custom(
        "named_like_a_norm",
        serde_json::json!({"initial_bias": 1.0}),
    );
    cfg.backbone.attention_stages = Some(vec![3, 4]);
    let det = Detector::new(cfg, 0, &Device::Cpu)?;

    // Placement: the factory saw layer3 and layer4 units only (twice: the training and the
    // inference module trees), with their channels; parameters exist there only.
    let sites: BTreeSet<(usize, usize, usize)> = SITES
        .lock()
        .unwrap()
        .iter()
        .filter(|(bias, _)| *bias == 1.0)
        .map(|(_, s)| (s.stage, s.unit, s.channels))
        .collect();
    assert_eq!(
        sites,
        [(3, 0, 32), (3, 1, 32), (4, 0, 64), (4, 1, 64)]
            .into_iter()
            .collect()
    );
    let names: Vec<String> = det
        .vars()
        .named_vars()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains(".attention."))
        .collect();
    assert_eq!(names.len(), 4 * 3, "{names:?}");
    assert!(names
        .iter()
        .all(|n| n.starts_with("backbone.body.layer3.") || n.starts_with("backbone.body.layer4.")));

    // Trainability from the modules: the custom `bn1.*` trains, its `prior` and the frozen
    // batch norms do not.
    let bn1 = "backbone.body.layer4.1.attention.bn1.weight";
    let prior = "backbone.body.layer4.1.attention.prior";
    let frozen = det.frozen_vars();
    assert!(!frozen.iter().any(|n| n == bn1), "{frozen:?}");
    assert!(frozen.iter().any(|n| n == prior));
    assert!(frozen
        .iter()
        .any(|n| n == "backbone.body.layer4.1.bn1.weight"));
    assert!(frozen
        .iter()
        .any(|n| n == "backbone.body.layer2.0.downsample.1.running_var"));
    let before = (values(&det, bn1)?, values(&det, prior)?);
    let frozen_bn_before = values(&det, "backbone.body.layer4.1.bn1.weight")?;

    let dir = tmp("attention");
    let mut t = Trainer::new(det, train_config(3), Box::new(data), None, &dir)?;
    t.run(&mut arfpn::train::Silent)?;
    let det = t.into_detector();
    assert_ne!(values(&det, bn1)?, before.0, "the custom bn1 did not train");
    assert_eq!(values(&det, prior)?, before.1, "the frozen prior changed");
    assert_eq!(
        values(&det, "backbone.body.layer4.1.bn1.weight")?,
        frozen_bn_before
    );

    // Checkpoint round trip: same config, identical detections and attention maps.
    let path = dir.join("custom.safetensors");
    det.save(&path)?;
    let back = Detector::load(&path, &Device::Cpu)?;
    assert_eq!(back.config(), det.config());
    let image = Tensor::rand(0f32, 1., (3, 64, 96), &Device::Cpu)?;
    assert_eq!(back.detect_image(&image)?, det.detect_image(&image)?);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn unregistered_modules_are_named_with_how_to_register_them() -> Res {
    register();
    let classes = ["rbc"];
    let mut cfg = tiny_frozen(&classes.map(String::from));
    cfg.backbone.attention = AttentionKind::custom("my_unknown_gate", serde_json::Value::Null);
    let e = Detector::new(cfg.clone(), 0, &Device::Cpu)
        .err()
        .ok_or("an unregistered attention module built")?
        .to_string();
    assert!(
        e.contains("my_unknown_gate") && e.contains("register_attention"),
        "{e}"
    );
    // A checkpoint that names it does not load, with the same message and the file.
    let mut ok = cfg.clone();
    ok.backbone.attention = AttentionKind::custom(
        "named_like_a_norm",
        serde_json::json!({"initial_bias": 0.0}),
    );
    let det = Detector::new(ok, 0, &Device::Cpu)?;
    let dir = tmp("unregistered");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("m.safetensors");
    det.save(&path)?;
    // Rename the module in the metadata (same length, so the header stays valid).
    let mut bytes = std::fs::read(&path)?;
    let (from, to) = (b"named_like_a_norm", b"unknown_gate_name");
    let mut renamed = 0;
    for i in 0..bytes.len() - from.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            renamed += 1;
        }
    }
    assert!(renamed > 0);
    std::fs::write(&path, &bytes)?;
    let e = Detector::load(&path, &Device::Cpu)
        .err()
        .ok_or("a checkpoint with an unregistered module loaded")?
        .to_string();
    assert!(
        e.contains("unknown_gate_name")
            && e.contains("register_attention")
            && e.contains("m.safetensors"),
        "{e}"
    );
    // Bad parameters are the constructor's error.
    cfg.backbone.attention = AttentionKind::custom("named_like_a_norm", serde_json::json!({}));
    let e = Detector::new(cfg.clone(), 0, &Device::Cpu)
        .err()
        .ok_or("missing params accepted")?
        .to_string();
    assert!(e.contains("params.initial_bias"), "{e}");
    // An unregistered backbone.
    let cfg = cfg.with_custom_backbone("no_such_backbone", serde_json::Value::Null);
    let e = Detector::new(cfg, 0, &Device::Cpu)
        .err()
        .ok_or("an unregistered backbone built")?
        .to_string();
    assert!(
        e.contains("no_such_backbone") && e.contains("register_backbone"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn custom_backbone_trains_and_round_trips() -> Res {
    register();
    let classes = arfpn_voc::LabelSet::rbc14().names().to_vec();
    let cfg =
        tiny_frozen(&classes).with_custom_backbone("four_convs", serde_json::json!({"width": 8}));
    let det = Detector::new(cfg, 0, &Device::Cpu)?;
    assert!(det
        .vars()
        .named_vars()
        .iter()
        .all(|(n, _)| !n.starts_with("backbone.body.layer")));
    assert_eq!(det.frozen_vars(), ["backbone.body.c2.weight"]);
    let c3 = values(&det, "backbone.body.c3.weight")?;
    let c2 = values(&det, "backbone.body.c2.weight")?;
    let dir = tmp("backbone");
    let mut t = Trainer::new(det, train_config(3), Box::new(smears(2, 200)?), None, &dir)?;
    t.run(&mut arfpn::train::Silent)?;
    let det = t.into_detector();
    assert_ne!(values(&det, "backbone.body.c3.weight")?, c3);
    assert_eq!(values(&det, "backbone.body.c2.weight")?, c2);
    let path = dir.join("backbone.safetensors");
    det.save(&path)?;
    let back = Detector::load(&path, &Device::Cpu)?;
    let image = Tensor::rand(0f32, 1., (3, 64, 96), &Device::Cpu)?;
    assert_eq!(back.detect_image(&image)?, det.detect_image(&image)?);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// The tiny config with frozen batch norms (the custom modules' tests).
fn tiny_frozen(classes: &[String]) -> DetectorConfig {
    common::tiny_with(classes, NormKind::frozen_batch_norm())
}
