//! f64 finite differences through the whole head: losses → predictor → box head →
//! RoIAlign → the FPN feature maps (and into a box-head weight).

use arfpn_boxes::{BBox, ClassId, GroundTruth, SplitMix64};
use arfpn_head::{BoxHeadConfig, PoolerConfig, RoiHeadConfig, RoiHeads};
use arfpn_nn::{FeatureMap, SeededVarMap, ShapeSpec};
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
    let loss = |a: &Tensor, b: &Tensor| -> Result<Tensor, Box<dyn std::error::Error>> {
        let feats = [
            FeatureMap::new("p2", 4, a.clone()),
            FeatureMap::new("p3", 8, b.clone()),
        ];
        let l = heads.forward_train(&feats, &proposals, &gt, &mut SplitMix64::new(9))?;
        Ok((l.classification + l.box_regression)?)
    };
    let total = loss(p2.as_tensor(), p3.as_tensor())?;
    let grads = total.backward()?;
    let fc6 = vars
        .named_vars()
        .into_iter()
        .find(|(n, _)| n.ends_with("fc6.weight") || n.ends_with("conv1.weight"))
        .ok_or("no first box-head layer")?
        .1;
    let eps = 1e-5;
    let mut checked = 0;
    // Each (variable, flat index) probe: analytic vs central difference.
    let probes: Vec<(&Var, usize)> = [
        (&p2, 3 * 16 * 16),
        (&p3, 3 * 8 * 8),
        (&fc6, fc6.elem_count()),
    ]
    .into_iter()
    .flat_map(|(v, n)| (0..12).map(move |k| (v, (k * 7919 + 13) % n)))
    .collect();
    for (var, idx) in probes {
        let g = grads
            .get(var.as_tensor())
            .ok_or("no gradient")?
            .flatten_all()?
            .to_vec1::<f64>()?[idx];
        let base = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        let eval = |delta: f64| -> Result<f64, Box<dyn std::error::Error>> {
            let mut v = base.clone();
            v[idx] += delta;
            var.set(&Tensor::from_vec(v, var.shape(), &dev)?)?;
            let l = loss(p2.as_tensor(), p3.as_tensor())?.to_scalar::<f64>()?;
            Ok(l)
        };
        let fd = (eval(eps)? - eval(-eps)?) / (2.0 * eps);
        var.set(&Tensor::from_vec(base, var.shape(), &dev)?)?;
        assert!(
            (g - fd).abs() <= 1e-6 + 1e-4 * fd.abs().max(g.abs()),
            "index {idx}: analytic {g} vs finite difference {fd}"
        );
        if g != 0.0 {
            checked += 1;
        }
    }
    assert!(
        checked >= 12,
        "only {checked} probes had a non-zero gradient"
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
