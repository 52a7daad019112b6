//! FPN: build-time checks, shapes, known values, P6, padding, and gradients through the
//! top-down path (which catches candle's overwriting upsample backward).

use arfpn_backbone::{AttentionKind, NormKind, ResNetConfig};
use arfpn_fpn::{BackboneWithFpn, Fpn, FpnConfig, FpnError};
use arfpn_nn::pad_to_multiple;
use arfpn_nn::{FeatureMap, ShapeSpec};
use arfpn_testkit::{reseed, uniform, weighted_sum, GradCheck, Target, Tolerance};
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn cfg(out_channels: usize) -> FpnConfig {
    FpnConfig {
        out_channels,
        extra_p6: true,
    }
}

fn specs(chs: &[usize], first_stride: usize) -> Vec<ShapeSpec> {
    chs.iter()
        .enumerate()
        .map(|(i, &c)| ShapeSpec::new(format!("c{}", i + 2), c, first_stride << i))
        .collect()
}

fn vb(vm: &VarMap, dtype: DType) -> VarBuilder<'_> {
    VarBuilder::from_varmap(vm, dtype, &Device::Cpu)
}

#[test]
fn build_checks_the_backbone_shapes() {
    let vm = VarMap::new();
    let build = |s: &[ShapeSpec], c: FpnConfig| {
        Fpn::new(&c, s, vb(&vm, DType::F32))
            .err()
            .map(|e| e.to_string())
    };
    let gap = [ShapeSpec::new("c2", 8, 4), ShapeSpec::new("c4", 8, 16)];
    assert!(build(&gap, cfg(8)).unwrap().contains("double"));
    let not_pow2 = [ShapeSpec::new("c2", 8, 6), ShapeSpec::new("c3", 8, 12)];
    assert!(build(&not_pow2, cfg(8)).unwrap().contains("power of two"));
    let zero = [ShapeSpec::new("c2", 0, 4)];
    assert!(build(&zero, cfg(8)).unwrap().contains("0 channels"));
    assert!(build(&[], cfg(8)).unwrap().contains("no input levels"));
    assert!(build(&specs(&[4, 8], 4), cfg(0))
        .unwrap()
        .contains("out_channels"));
    assert!(build(&specs(&[4, 8], 4), cfg(8)).is_none());
}

#[test]
fn outputs_p2_to_p6_with_strides_from_a_resnet() -> TestResult {
    let vm = VarMap::new();
    let rcfg = ResNetConfig::resnet50()
        .with_width(4)
        .with_stage_depths([1, 1, 1, 1])
        .with_norm(NormKind::group_norm(2))
        .with_attention(AttentionKind::cbam());
    let net = BackboneWithFpn::resnet(&rcfg, &cfg(8), vb(&vm, DType::F32).pp("backbone"))
        .map_err(candle_core::Error::wrap)?;
    let shapes = net.output_shapes();
    let got: Vec<_> = shapes
        .iter()
        .map(|s| (s.name.as_str(), s.channels, s.stride))
        .collect();
    assert_eq!(
        got,
        [
            ("p2", 8, 4),
            ("p3", 8, 8),
            ("p4", 8, 16),
            ("p5", 8, 32),
            ("p6", 8, 64)
        ]
    );
    assert_eq!(net.size_divisibility(), 32);
    let x = Tensor::randn(0f32, 1., (2, 3, 96, 160), &Device::Cpu)?;
    let p = net.forward_t(&x, true).map_err(candle_core::Error::wrap)?;
    let sizes: Vec<_> = p.iter().map(|f| f.tensor.dims().to_vec()).collect();
    assert_eq!(
        sizes,
        [
            [2, 8, 24, 40],
            [2, 8, 12, 20],
            [2, 8, 6, 10],
            [2, 8, 3, 5],
            [2, 8, 2, 3]
        ]
    );
    for (f, s) in p.iter().zip(&shapes) {
        assert_eq!(f.spec()?, *s);
    }
    // Parameter names: torchvision's, `body.*` and `fpn.*` under the caller's `backbone`.
    let names = vm
        .data()
        .lock()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    for n in [
        "backbone.fpn.inner_blocks.0.0.weight",
        "backbone.fpn.layer_blocks.3.0.bias",
        "backbone.body.layer4.0.conv3.weight",
    ] {
        assert!(names.iter().any(|k| k == n), "{n} missing");
    }
    // An unpadded image is refused with a hint, not a shape error deep inside.
    let odd = Tensor::zeros((1, 3, 100, 160), DType::F32, &Device::Cpu)?;
    let e = net.forward_t(&odd, false).unwrap_err().to_string();
    assert!(
        e.contains("multiples of 32") && e.contains("pad_to_multiple"),
        "{e}"
    );
    let padded = pad_to_multiple(&odd, 32)?;
    assert_eq!(
        net.forward_t(&padded, false)
            .map_err(candle_core::Error::wrap)?[0]
            .tensor
            .dims(),
        [1, 8, 32, 40]
    );
    Ok(())
}

#[test]
fn forward_rejects_maps_that_do_not_match() -> TestResult {
    let vm = VarMap::new();
    let fpn = Fpn::new(&cfg(4), &specs(&[2, 3], 4), vb(&vm, DType::F32))?;
    let m = |c, s, h, w| {
        FeatureMap::new(
            "x",
            s,
            Tensor::zeros((1, c, h, w), DType::F32, &Device::Cpu).unwrap(),
        )
    };
    let e = fpn.forward(&[m(2, 4, 8, 8)]).unwrap_err();
    assert!(matches!(e, FpnError::Input(_)));
    let e = fpn
        .forward(&[m(2, 4, 8, 8), m(5, 8, 4, 4)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 channels"), "{e}");
    let e = fpn
        .forward(&[m(2, 4, 9, 8), m(3, 8, 4, 4)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("twice"), "{e}");
    assert_eq!(fpn.forward(&[m(2, 4, 8, 6), m(3, 8, 4, 3)])?.len(), 3);
    Ok(())
}

fn from_tensors(tensors: Vec<(String, Tensor)>) -> VarBuilder<'static> {
    VarBuilder::from_tensors(
        tensors.into_iter().collect::<HashMap<_, _>>(),
        DType::F64,
        &Device::Cpu,
    )
}

#[test]
fn top_down_is_lateral_plus_nearest_upsampling() -> TestResult {
    // One channel everywhere; laterals multiply by (1, 10, 100); output convs are the identity
    // (3x3 kernel with a centre 1). Then p4 = 100 c4, p3 = 10 c3 + up(p4), p2 = c2 + up(p3).
    let dev = Device::Cpu;
    let mut centre = vec![0.0; 9];
    centre[4] = 1.0;
    let mut ts = Vec::new();
    for (l, scale) in [(2, 1.0), (3, 10.0), (4, 100.0)] {
        ts.push((
            format!("inner_blocks.{}.0.weight", l - 2),
            Tensor::new(&[[[[scale]]]], &dev)?,
        ));
        ts.push((
            format!("inner_blocks.{}.0.bias", l - 2),
            Tensor::new(&[0.0], &dev)?,
        ));
        ts.push((
            format!("layer_blocks.{}.0.weight", l - 2),
            Tensor::from_vec(centre.clone(), (1, 1, 3, 3), &dev)?,
        ));
        ts.push((
            format!("layer_blocks.{}.0.bias", l - 2),
            Tensor::new(&[0.0], &dev)?,
        ));
    }
    let fpn = Fpn::new(&cfg(1), &specs(&[1, 1, 1], 4), from_tensors(ts))?;
    let c2 = Tensor::arange(0.0, 16.0, &dev)?.reshape((1, 1, 4, 4))?;
    let c3 = Tensor::new(&[[[[1.0, 2.0], [3.0, 4.0]]]], &dev)?;
    let c4 = Tensor::new(&[[[[5.0]]]], &dev)?;
    let p = fpn.forward(&[
        FeatureMap::new("c2", 4, c2),
        FeatureMap::new("c3", 8, c3),
        FeatureMap::new("c4", 16, c4),
    ])?;
    let v = |i: usize| p[i].tensor.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert_eq!(v(2), [500.0]);
    assert_eq!(v(1), [510.0, 520.0, 530.0, 540.0]);
    let up = [
        510.0, 510.0, 520.0, 520.0, 510.0, 510.0, 520.0, 520.0, 530.0, 530.0, 540.0, 540.0, 530.0,
        530.0, 540.0, 540.0,
    ];
    let expected: Vec<f64> = up.iter().enumerate().map(|(i, u)| i as f64 + u).collect();
    assert_eq!(v(0), expected);
    // P6 is P4 (the coarsest) subsampled with stride 2: a 1x1 map stays.
    assert_eq!(p[3].name, "p5");
    assert_eq!(p[3].stride, 32);
    assert_eq!(p[3].tensor.flatten_all()?.to_vec1::<f64>()?, [500.0]);
    Ok(())
}

#[test]
fn p6_is_every_second_cell_of_p5_on_odd_sizes() -> TestResult {
    let dev = Device::Cpu;
    let ts = vec![
        (
            "inner_blocks.0.0.weight".to_string(),
            Tensor::new(&[[[[1.0]]]], &dev)?,
        ),
        (
            "inner_blocks.0.0.bias".to_string(),
            Tensor::new(&[0.0], &dev)?,
        ),
        (
            "layer_blocks.0.0.weight".to_string(),
            Tensor::from_vec(
                [0., 0., 0., 0., 1., 0., 0., 0., 0.].to_vec(),
                (1, 1, 3, 3),
                &dev,
            )?,
        ),
        (
            "layer_blocks.0.0.bias".to_string(),
            Tensor::new(&[0.0], &dev)?,
        ),
    ];
    let fpn = Fpn::new(&cfg(1), &[ShapeSpec::new("c5", 1, 32)], from_tensors(ts))?;
    let c5 = Tensor::arange(0.0, 15.0, &dev)?.reshape((1, 1, 5, 3))?;
    let p = fpn.forward(&[FeatureMap::new("c5", 32, c5)])?;
    assert_eq!((p[1].name.as_str(), p[1].stride), ("p6", 64));
    // torchvision max_pool2d(k=1, s=2): rows 0, 2, 4 and columns 0, 2.
    assert_eq!(p[1].tensor.dims(), [1, 1, 3, 2]);
    assert_eq!(
        p[1].tensor.flatten_all()?.to_vec1::<f64>()?,
        [0.0, 2.0, 6.0, 8.0, 12.0, 14.0]
    );
    Ok(())
}

#[test]
fn gradients_through_the_top_down_path() -> TestResult {
    let vm = VarMap::new();
    let fpn = Fpn::new(&cfg(3), &specs(&[2, 3, 4], 4), vb(&vm, DType::F64))?;
    reseed(&vm, 21)?;
    let xs: Vec<Var> = [(2, 8, 12), (3, 4, 6), (4, 2, 3)]
        .iter()
        .enumerate()
        .map(|(i, &(c, h, w))| {
            Var::from_tensor(
                &uniform(40 + i as u64, &[2, c, h, w], DType::F64, &Device::Cpu).unwrap(),
            )
            .unwrap()
        })
        .collect();
    let loss = || -> Result<Tensor> {
        let feats: Vec<FeatureMap> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| FeatureMap::new(format!("c{}", i + 2), 4 << i, x.as_tensor().clone()))
            .collect();
        let outs = fpn.forward(&feats).map_err(candle_core::Error::wrap)?;
        let mut total = Tensor::new(0.0f64, &Device::Cpu)?;
        for (i, o) in outs.iter().enumerate() {
            total = (total + weighted_sum(&o.tensor, 70 + i as u64)?)?;
        }
        Ok(total)
    };
    // The coarsest input reaches every output through the top-down path: if an upsample
    // backward overwrote instead of accumulating, its gradient would be wrong.
    let data = vm.data().lock().unwrap().clone();
    let mut targets: Vec<Target> = xs
        .iter()
        .enumerate()
        .map(|(i, x)| Target::spread(format!("input c{}", i + 2), x, 30))
        .collect();
    for p in [
        "inner_blocks.2.0.weight",
        "inner_blocks.1.0.bias",
        "layer_blocks.0.0.weight",
    ] {
        targets.push(Target::spread(p, &data[p], 12));
    }
    // Step 1e-5; the error relative to max(|numeric|, 1e-3) must stay below 1e-4.
    GradCheck::new(1e-5, Tolerance::relative(1e-4, 1e-3)).vars(&targets, loss)?;
    Ok(())
}

#[test]
fn pad_to_multiple_pads_bottom_right_with_zeros() -> TestResult {
    let x = (Tensor::ones((1, 2, 3, 5), DType::F32, &Device::Cpu)? * 2.0)?;
    let y = pad_to_multiple(&x, 4)?;
    assert_eq!(y.dims(), [1, 2, 4, 8]);
    assert_eq!(y.sum_all()?.to_scalar::<f32>()?, 2.0 * 30.0);
    assert_eq!(
        y.narrow(2, 0, 3)?
            .narrow(3, 0, 5)?
            .sum_all()?
            .to_scalar::<f32>()?,
        60.0
    );
    let same = pad_to_multiple(&y, 4)?;
    assert_eq!(same.dims(), [1, 2, 4, 8]);
    assert!(pad_to_multiple(&x, 0).is_err());
    Ok(())
}
