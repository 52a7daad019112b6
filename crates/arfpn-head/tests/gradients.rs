//! f64 finite differences through the whole head: losses → predictor → box head →
//! RoIAlign → the FPN feature maps (and into a box-head weight).

use arfpn_boxes::{BBox, ClassId, GroundTruth, SplitMix64};
use arfpn_head::{BoxHeadConfig, PoolerConfig, RoiHeadConfig, RoiHeads};
use arfpn_nn::{FeatureMap, SeededVarMap, ShapeSpec};
use arfpn_testkit::{GradCheck, Target, Tolerance};
use candle_core::{DType, Device, Tensor, Var};

type Res = Result<(), Box<dyn std::error::Error>>;

fn heads(config: &RoiHeadConfig, vars: &SeededVarMap) -> Result<RoiHeads, arfpn_head::HeadError> {
    let specs = [ShapeSpec::new("p2", 3, 4), ShapeSpec::new("p3", 3, 8)];
    RoiHeads::new(
        config,
        2,
        &specs,
        vars.var_builder(DType::F64, &Device::Cpu).pp("roi_heads"),
    )
}

fn check(config: RoiHeadConfig) -> Res {
    let dev = Device::Cpu;
    let vars = SeededVarMap::new(3);
    let heads = heads(&config, &vars)?;
    let mut rng = SplitMix64::new(1);
    let mut feat = |h: usize, w: usize| -> candle_core::Result<Var> {
        let v: Vec<f64> = (0..3 * h * w).map(|_| rng.normal()).collect();
        Var::from_tensor(&Tensor::from_vec(v, (1, 3, h, w), &dev)?)
    };
    let p2 = feat(32, 32)?;
    let p3 = feat(16, 16)?;
    let proposals = vec![vec![
        BBox::new(3.3, 4.1, 30.2, 40.7),
        BBox::new(10.4, 2.2, 50.9, 33.3),
        BBox::new(20.7, 20.1, 60.2, 61.6),
        BBox::new(1.6, 30.4, 14.3, 55.8),
        // Large enough for P3 (sqrt(area) >= 112).
        BBox::new(2.5, 3.5, 124.2, 120.9),
        BBox::new(6.1, 1.2, 126.4, 110.3),
    ]];
    let gt = vec![GroundTruth::new(
        vec![
            BBox::new(5.0, 5.0, 32.0, 38.0),
            BBox::new(22.0, 18.0, 58.0, 60.0),
        ],
        vec![ClassId::new(0), ClassId::new(1)],
    )?];
    let loss = || -> candle_core::Result<Tensor> {
        let feats = [
            FeatureMap::new("p2", 4, p2.as_tensor().clone()),
            FeatureMap::new("p3", 8, p3.as_tensor().clone()),
        ];
        let l = heads
            .forward_train(&feats, &proposals, &gt, &mut SplitMix64::new(9))
            .map_err(candle_core::Error::wrap)?;
        l.loss_classifier + l.loss_box_reg
    };
    let fc6 = vars
        .named_vars()
        .into_iter()
        .find(|(n, _)| n.ends_with("fc6.weight") || n.ends_with("conv1.weight"))
        .ok_or("no first box-head layer")?
        .1;
    // 12 probes of each variable, spread by a stride prime to the sizes; for the maps
    // within their first 3 * 16 * 16 (p2) and 3 * 8 * 8 (p3) elements.
    let probes = |n: usize| (0..12).map(|k| (k * 7919 + 13) % n).collect::<Vec<_>>();
    let targets = [
        Target::at("p2", &p2, probes(3 * 16 * 16)),
        Target::at("p3", &p3, probes(3 * 8 * 8)),
        Target::at("fc6", &fc6, probes(fc6.elem_count())),
    ];
    let report =
        GradCheck::new(1e-5, Tolerance::mixed(1e-6, 1e-4).symmetric()).vars(&targets, loss)?;
    assert!(
        report.nonzero() >= 12,
        "only {} probes had a non-zero gradient",
        report.nonzero()
    );
    Ok(())
}

#[test]
fn head_gradients_match_finite_differences_roi_align() -> Res {
    check(RoiHeadConfig {
        pooler: PoolerConfig {
            levels: vec!["p2".into(), "p3".into()],
            output_size: 3,
            ..PoolerConfig::default()
        },
        box_head: BoxHeadConfig::TwoMlp {
            representation_size: 8,
        },
        batch_size_per_image: 8,
        ..RoiHeadConfig::default()
    })
}

#[test]
fn head_gradients_match_finite_differences_conv_head_and_focal() -> Res {
    check(RoiHeadConfig {
        pooler: PoolerConfig {
            levels: vec!["p2".into(), "p3".into()],
            output_size: 3,
            ..PoolerConfig::torchvision()
        },
        box_head: BoxHeadConfig::ConvFc {
            num_convs: 2,
            conv_dim: 4,
            fc_dim: 8,
            norm_groups: 2,
        },
        classification_loss: arfpn_head::ClassificationLoss::Focal {
            gamma: 2.0,
            alpha: None,
        },
        batch_size_per_image: 8,
        ..RoiHeadConfig::default()
    })
}
