//! MultiScaleRoIAlign: level rule, order of results, equality with per-level roi_align,
//! gradients to every level, and argument checks.
mod common;

use arfpn_boxes::SplitMix64;
use arfpn_roi_align::{roi_align, MultiScaleRoIAlign};
use arfpn_testkit::uniform_values;
use candle_core::{DType, Device, Tensor, Var};
use common::*;

const CPU: Device = Device::Cpu;

fn pyramid(
    rng: &mut SplitMix64,
    n: usize,
    c: usize,
    img: (usize, usize),
    strides: &[usize],
) -> Vec<Tensor> {
    strides
        .iter()
        .map(|&s| {
            let (h, w) = (img.0.div_ceil(s), img.1.div_ceil(s));
            Tensor::from_vec(uniform_values(rng, n * c * h * w), (n, c, h, w), &CPU)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
        })
        .collect()
}

#[test]
fn level_rule_follows_the_fpn_paper() {
    let p = MultiScaleRoIAlign::detectron2(&[4, 8, 16, 32], (7, 7)).unwrap();
    // k = floor(4 + log2(sqrt(area) / 224)), clamped to 2..=5; index = k - 2.
    let side = |s: f64| p.level_of(10.0, 20.0, 10.0 + s, 20.0 + s);
    assert_eq!(side(224.0), 2); // k = 4 -> stride 16
    assert_eq!(side(223.9), 1);
    assert_eq!(side(112.0), 1); // exactly k = 3: eps keeps floor from slipping to 2
    assert_eq!(side(111.9), 0);
    assert_eq!(side(448.0), 3);
    assert_eq!(side(5000.0), 3); // clamped to the coarsest
    assert_eq!(side(1.0), 0); // clamped to the finest
    assert_eq!(side(0.0), 0); // empty box
    assert_eq!(p.level_of(5.0, 5.0, 1.0, 9.0), 0); // inverted box: area < 0
    assert_eq!(p.level_of(0.0, 0.0, 112.0 * 4.0, 112.0), 2); // sqrt(area) = 224
                                                             // Boxes whose sqrt(area) is an exact power-of-two multiple of 224 but whose area is not
                                                             // exactly representable still land on their level thanks to eps.
    for k in -2i32..=1 {
        let s = 224.0 * 2f64.powi(k);
        assert_eq!(
            p.level_of(0.1, 0.3, 0.1 + s, 0.3 + s),
            (k + 2).clamp(0, 3) as usize,
            "side {s}"
        );
    }
}

#[test]
fn equals_per_level_roi_align_in_input_order() {
    let strides = [4, 8, 16, 32];
    let mut rng = SplitMix64::new(3);
    let feats = pyramid(&mut rng, 2, 3, (256, 192), &strides);
    // Boxes of sides 8..720 px so that every level is used, in shuffled order (the
    // 720 px ones reach level 3 at any aspect: sqrt(area) >= 720 * 0.9 * sqrt(0.5) > 448).
    let bx: Vec<[f64; 5]> = (0..24)
        .map(|i| {
            let s = [8.0, 40.0, 100.0, 150.0, 300.0, 720.0][i % 6] * rng.range(0.9, 1.1);
            let (x, y) = (rng.range(-10.0, 150.0), rng.range(-10.0, 200.0));
            [(i % 2) as f64, x, y, x + s, y + s * rng.range(0.5, 1.5)]
        })
        .collect();
    let boxes = boxes_tensor(&bx, DType::F32).unwrap();
    for pooler in [
        MultiScaleRoIAlign::detectron2(&strides, (7, 7)).unwrap(),
        MultiScaleRoIAlign::torchvision(&strides, (3, 5)).unwrap(),
    ] {
        let levels = pooler.assign_levels(&boxes).unwrap();
        assert_eq!(
            {
                let mut l = levels.clone();
                l.sort();
                l.dedup();
                l
            },
            vec![0, 1, 2, 3]
        );
        let y = pooler.forward(&feats, &boxes).unwrap();
        let (ph, pw) = pooler.output_size();
        let (s, a) = if ph == 7 { (0, true) } else { (2, false) };
        for (k, &l) in levels.iter().enumerate() {
            let one = boxes.narrow(0, k, 1).unwrap();
            let want = roi_align(&feats[l], &one, (ph, pw), 1.0 / strides[l] as f32, s, a).unwrap();
            let got = y.narrow(0, k, 1).unwrap();
            assert_eq!(
                got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "box {k} (level {l})"
            );
        }
    }
}

#[test]
fn gradients_reach_every_level() {
    let strides = [4, 8, 16];
    let mut rng = SplitMix64::new(4);
    let vars: Vec<Var> = pyramid(&mut rng, 1, 2, (512, 512), &strides)
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let feats: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    // Sides 40, 300 and 150 px: k = 2 (clamped), 4 and 3.
    let boxes = Tensor::new(
        &[
            [0f32, 8., 8., 48., 48.],
            [0., 10., 10., 310., 310.],
            [0., 5., 5., 155., 155.],
        ],
        &CPU,
    )
    .unwrap();
    let pooler = MultiScaleRoIAlign::detectron2(&strides, (2, 2)).unwrap();
    assert_eq!(pooler.assign_levels(&boxes).unwrap(), vec![0, 2, 1]);
    let grads = pooler
        .forward(&feats, &boxes)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (l, v) in vars.iter().enumerate() {
        let g = grads.get(v.as_tensor()).expect("gradient for every level");
        // Each box's gradient sums to (bins * channels) = 8 when fully inside its map.
        let total = g.sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!((total - 8.0).abs() < 1e-4, "level {l}: {total}");
    }
}

#[test]
fn single_level_and_empty_boxes() {
    let mut rng = SplitMix64::new(5);
    let feats = pyramid(&mut rng, 1, 2, (32, 32), &[8]);
    let p = MultiScaleRoIAlign::detectron2(&[8], (2, 2)).unwrap();
    let b = Tensor::new(&[[0f32, 1., 2., 30., 31.]], &CPU).unwrap();
    let want = roi_align(&feats[0], &b, (2, 2), 0.125, 0, true).unwrap();
    assert_eq!(to_f64(&p.forward(&feats, &b).unwrap()), to_f64(&want));
    let e = Tensor::zeros((0, 5), DType::F32, &CPU).unwrap();
    let feats = pyramid(&mut rng, 1, 2, (32, 32), &[4, 8]);
    let p = MultiScaleRoIAlign::detectron2(&[4, 8], (2, 2)).unwrap();
    assert_eq!(p.forward(&feats, &e).unwrap().dims(), &[0, 2, 2, 2]);
}

#[test]
fn bad_configuration_and_feature_maps() {
    let msg = |e: candle_core::Error| e.to_string();
    for bad in [&[][..], &[4, 16], &[3, 6], &[8, 4]] {
        let e = MultiScaleRoIAlign::detectron2(bad, (7, 7)).unwrap_err();
        assert!(
            msg(e).contains("must be non-empty powers of two"),
            "{bad:?}"
        );
    }
    assert!(
        msg(MultiScaleRoIAlign::new(&[4], (7, 7), 0, true, 0.0, 4, 1e-6).unwrap_err())
            .contains("canonical_scale")
    );
    assert!(
        msg(MultiScaleRoIAlign::new(&[4], (7, 7), 0, true, 224.0, 4, f64::NAN).unwrap_err())
            .contains("eps")
    );
    assert!(msg(MultiScaleRoIAlign::detectron2(&[4], (0, 7)).unwrap_err()).contains("output_size"));
    let mut rng = SplitMix64::new(6);
    let p = MultiScaleRoIAlign::detectron2(&[4, 8, 16], (2, 2)).unwrap();
    let feats = pyramid(&mut rng, 1, 2, (64, 48), &[4, 8, 16]);
    let b = Tensor::new(&[[0f32, 1., 2., 30., 31.]], &CPU).unwrap();
    assert!(p.forward(&feats, &b).is_ok());
    assert!(
        msg(p.forward(&feats[..2], &b).unwrap_err()).contains("got 2 feature maps for 3 strides")
    );
    let mut swapped = feats.clone();
    swapped.swap(1, 2);
    assert!(msg(p.forward(&swapped, &b).unwrap_err()).contains("feature 1 (stride 8)"));
    let mut other_c = feats.clone();
    other_c[2] = Tensor::zeros((1, 3, 4, 3), DType::F32, &CPU).unwrap();
    assert!(msg(p.forward(&other_c, &b).unwrap_err()).contains("feature 2 (stride 16)"));
    let bad_box = Tensor::new(&[[1f32, 1., 2., 30., 31.]], &CPU).unwrap();
    assert!(msg(p.forward(&feats, &bad_box).unwrap_err())
        .contains("MultiScaleRoIAlign: box 0: batch index 1"));
}
