//! RoIPool: hand-computed values, a naive reference, finite differences, bad input.
mod common;

use arfpn_boxes::SplitMix64;
use arfpn_roi_align::roi_pool;
use arfpn_testkit::{uniform_values, GradCheck, Tolerance};
use candle_core::{DType, Device, Tensor};
use common::*;

const CPU: Device = Device::Cpu;

fn vals(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn hand_computed_bins() {
    // 4x4 map 0..16. Box (0.6, 0.4, 2.4, 3.6) rounds to x 1..2, y 0..4 -> 2 x 5 px region;
    // 2x2 bins: rows [0, 3) and [2, 5) clipped to 4, columns [1, 2) and [2, 3).
    let x = Tensor::arange(0f32, 16., &CPU)
        .unwrap()
        .reshape((1, 1, 4, 4))
        .unwrap();
    let b = Tensor::new(&[[0f32, 0.6, 0.4, 2.4, 3.6]], &CPU).unwrap();
    assert_eq!(
        vals(&roi_pool(&x, &b, (2, 2), 1.0).unwrap()),
        vec![9., 10., 13., 14.]
    );
    // Wholly outside: every bin is empty -> 0, and its gradient goes nowhere.
    let b = Tensor::new(&[[0f32, 9., 9., 12., 12.]], &CPU).unwrap();
    let g = Tensor::ones((1, 1, 2, 2), DType::F32, &CPU).unwrap();
    let (y, gx) = fwd_bwd(&x, &g, |t| roi_pool(t, &b, (2, 2), 1.0)).unwrap();
    assert_eq!(vals(&y), vec![0.; 4]);
    assert_eq!(vals(&gx), vec![0.; 16]);
    // The gradient goes to each bin's first maximum; overlapping bins add up.
    let x = Tensor::new(&[[[[1f32, 5., 5.], [0., 2., 1.], [3., 0., 1.]]]], &CPU).unwrap();
    let b = Tensor::new(&[[0f32, 0., 0., 2., 2.]], &CPU).unwrap();
    let g = Tensor::new(&[[[[1f32, 2.], [4., 8.]]]], &CPU).unwrap();
    let (y, gx) = fwd_bwd(&x, &g, |t| roi_pool(t, &b, (2, 2), 1.0)).unwrap();
    // 3x3 region, bin size 1.5: rows/cols [0, 2) and [1, 3).
    assert_eq!(vals(&y), vec![5., 5., 3., 2.]);
    assert_eq!(vals(&gx), vec![0., 3., 0., 0., 8., 0., 4., 0., 0.]);
}

#[test]
fn matches_naive_reference_on_random_boxes() {
    for (seed, dtype) in [(1, DType::F64), (2, DType::F32), (3, DType::F64)] {
        for (scale, out) in [(1.0, (2, 3)), (0.5, (7, 7)), (0.25, (1, 2))] {
            let mut rng = SplitMix64::new(seed * 10 + out.0 as u64);
            let dims = (2, 3, 7, 9);
            let x = uniform_values(&mut rng, dims.0 * dims.1 * dims.2 * dims.3);
            let bx = random_boxes(&mut rng, 10, 2, 7.0 / scale, 9.0 / scale);
            let go = uniform_values(&mut rng, 10 * 3 * out.0 * out.1);
            let (wy, wg) = ref_roi_pool(&x, dims, &bx, out, scale, &go);
            let xt = Tensor::from_vec(x, dims, &CPU)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let gt = Tensor::from_vec(go, (10, 3, out.0, out.1), &CPU)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let bt = boxes_tensor(&bx, dtype).unwrap();
            let (y, g) = fwd_bwd(&xt, &gt, |t| roi_pool(t, &bt, out, scale as f32)).unwrap();
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-6 };
            assert!(
                max_abs_diff(&to_f64(&y), &wy) < tol,
                "forward {dtype:?} {scale} {out:?}"
            );
            assert!(
                max_abs_diff(&to_f64(&g), &wg) < tol,
                "backward {dtype:?} {scale} {out:?}"
            );
        }
    }
}

#[test]
fn finite_difference_gradient_f64() {
    // RoIPool is piecewise linear; random inputs have no ties, and eps is far below the gaps.
    let mut rng = SplitMix64::new(3);
    let dims = (2, 2, 5, 6);
    let numel = 120;
    let x = Tensor::from_vec(uniform_values(&mut rng, numel), dims, &CPU).unwrap();
    let bx = boxes_tensor(&random_boxes(&mut rng, 5, 2, 5.0, 6.0), DType::F64).unwrap();
    let go = Tensor::from_vec(uniform_values(&mut rng, 5 * 2 * 6), (5, 2, 2, 3), &CPU).unwrap();
    GradCheck::new(1e-7, Tolerance::absolute(1e-7))
        .inputs(&[x], |a| roi_pool(&a[0], &bx, (2, 3), 1.0)?.mul(&go))
        .unwrap();
}

#[test]
fn empty_boxes_and_bad_input() {
    let x = Tensor::ones((1, 2, 4, 4), DType::F32, &CPU).unwrap();
    let e = Tensor::zeros((0, 5), DType::F32, &CPU).unwrap();
    assert_eq!(roi_pool(&x, &e, (2, 2), 1.0).unwrap().dims(), &[0, 2, 2, 2]);
    let msg = |r: candle_core::Result<Tensor>| r.expect_err("an error").to_string();
    let b = Tensor::new(&[[0f32, 0., 0., 2., 2.]], &CPU).unwrap();
    assert!(msg(roi_pool(&x.flatten_all().unwrap(), &b, (2, 2), 1.0))
        .contains("roi_pool: `input` must have shape"));
    assert!(msg(roi_pool(
        &x,
        &Tensor::new(&[[3f32, 0., 0., 2., 2.]], &CPU).unwrap(),
        (2, 2),
        1.0
    ))
    .contains("batch index 3"));
    assert!(
        msg(roi_pool(&x.to_dtype(DType::BF16).unwrap(), &b, (2, 2), 1.0)).contains("dtype BF16")
    );
    assert!(msg(roi_pool(
        &x,
        &Tensor::new(&[[0f32, f32::NAN, 0., 2., 2.]], &CPU).unwrap(),
        (2, 2),
        1.0
    ))
    .contains("not finite"));
}
