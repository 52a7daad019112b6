//! RoIAlign: hand-computed values, torchvision's border rules, a naive reference, finite
//! differences, determinism and bad input.
mod common;

use arfpn_boxes::SplitMix64;
use arfpn_roi_align::roi_align;
use arfpn_testkit::{uniform_values, GradCheck, Tolerance};
use candle_core::{DType, Device, Tensor};
use common::*;

const CPU: Device = Device::Cpu;

/// `1 x 1 x h x w` map with value `10 * y + x + c` at pixel (y, x).
fn ramp(h: usize, w: usize, c: f32) -> Tensor {
    let v: Vec<f32> = (0..h * w)
        .map(|i| 10.0 * (i / w) as f32 + (i % w) as f32 + c)
        .collect();
    Tensor::from_vec(v, (1, 1, h, w), &CPU).unwrap()
}

fn boxes(rows: &[[f32; 5]]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), 5), &CPU).unwrap()
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol,
            "element {i}: {x} vs {y} (all: {a:?} vs {b:?})"
        );
    }
}

#[test]
fn linear_ramp_hand_computed() {
    // Bilinear interpolation of a linear ramp is exact, so each bin is 10 * mean(y) + mean(x).
    // Box x 1..5, y 2..4 -> bins 2 px wide, 1 px high.
    let x = ramp(8, 8, 0.0);
    let b = boxes(&[[0., 1., 2., 5., 4.]]);
    // Unaligned: bin centres y = 2.5, 3.5 and x = 2, 4.
    for s in [2, 0, 1, 3, -1] {
        assert_close(
            &vals(&roi_align(&x, &b, (2, 2), 1.0, s, false).unwrap()),
            &[27., 29., 37., 39.],
            1e-5,
        );
    }
    // Aligned: everything shifted by -0.5 px.
    for s in [2, 0, 1, 3] {
        assert_close(
            &vals(&roi_align(&x, &b, (2, 2), 1.0, s, true).unwrap()),
            &[21.5, 23.5, 31.5, 33.5],
            1e-5,
        );
    }
    // spatial_scale 0.5: the same box in a 16x16 image's coordinates.
    let b2 = boxes(&[[0., 2., 4., 10., 8.]]);
    assert_close(
        &vals(&roi_align(&x, &b2, (2, 2), 0.5, 2, false).unwrap()),
        &[27., 29., 37., 39.],
        1e-5,
    );
}

#[test]
fn border_rules_each_aligned_sampling_combination() {
    // Box x -3..1, y 0..1 on a 4x4 ramp (+1): samples left of -1 contribute 0 but count; samples
    // in [-1, 0) clamp to column 0. Worked by hand for each combination:
    // unaligned, s=2: samples (0.25, -2) (0.25, 0) (0.75, -2) (0.75, 0) -> (3.5 + 8.5) / 4
    // unaligned, adaptive (grid 1x4): y 0.5, x -2.5 -1.5 -0.5 0.5 -> (6 + 6.5) / 4
    // aligned, s=2: y -0.25 0.25, x -2.5 -0.5 -> (1 + 3.5) / 4
    // aligned, adaptive (grid 1x4): y 0, x -3 -2 -1 0 -> (1 + 1) / 4
    let x = ramp(4, 4, 1.0);
    let b = boxes(&[[0., -3., 0., 1., 1.]]);
    let got: Vec<f32> = [(false, 2), (false, 0), (true, 2), (true, 0)]
        .iter()
        .map(|&(a, s)| vals(&roi_align(&x, &b, (1, 1), 1.0, s, a).unwrap())[0])
        .collect();
    assert_close(&got, &[3.0, 3.125, 1.125, 0.5], 1e-6);
    // Samples in (H - 1, H] clamp to the last row/column: box 3..4 x 3..4, unaligned, 1 sample
    // at (3.5, 3.5) -> pixel (3, 3) = 34.
    let b = boxes(&[[0., 3., 3., 4., 4.]]);
    assert_close(
        &vals(&roi_align(&x, &b, (1, 1), 1.0, 1, false).unwrap()),
        &[34.],
        1e-6,
    );
}

#[test]
fn boxes_wholly_outside_give_zero_output_and_gradient() {
    let x = ramp(4, 4, 1.0);
    let b = boxes(&[[0., 10., 10., 12., 13.], [0., -9., -9., -2.5, -2.5]]);
    for (a, s) in [(false, 2), (false, 0), (true, 2), (true, 0)] {
        let g = Tensor::ones((2, 1, 2, 2), DType::F32, &CPU).unwrap();
        let (y, gx) = fwd_bwd(&x, &g, |t| roi_align(t, &b, (2, 2), 1.0, s, a)).unwrap();
        assert!(vals(&y).iter().all(|&v| v == 0.0));
        assert!(vals(&gx).iter().all(|&v| v == 0.0));
    }
}

#[test]
fn degenerate_and_tiny_boxes() {
    let x = ramp(4, 4, 0.0);
    // Aligned zero-size box, adaptive: grid 0x0, count max(0, 1) = 1, no sample -> 0.
    let z = boxes(&[[0., 1.5, 1.5, 1.5, 1.5]]);
    assert_eq!(
        vals(&roi_align(&x, &z, (1, 1), 1.0, 0, true).unwrap()),
        vec![0.0]
    );
    // Aligned zero-size box, 2x2 samples: all at pixel centre (1, 1) -> 11.
    assert_close(
        &vals(&roi_align(&x, &z, (1, 1), 1.0, 2, true).unwrap()),
        &[11.0],
        1e-6,
    );
    // Unaligned zero-size box at (1, 1) is forced to 1x1: samples at 1.25 and 1.75 -> 16.5.
    let z = boxes(&[[0., 1., 1., 1., 1.]]);
    assert_close(
        &vals(&roi_align(&x, &z, (1, 1), 1.0, 2, false).unwrap()),
        &[16.5],
        1e-6,
    );
    // Tiny box (0.2 px), unaligned: forced to 1x1 from (2.1, 1.3) -> centre (1.8, 2.6).
    let t = boxes(&[[0., 2.1, 1.3, 2.3, 1.5]]);
    assert_close(
        &vals(&roi_align(&x, &t, (1, 1), 1.0, 0, false).unwrap()),
        &[20.6],
        1e-5,
    );
}

#[test]
fn empty_box_list() {
    let x = Tensor::ones((2, 3, 5, 5), DType::F32, &CPU).unwrap();
    let b = Tensor::zeros((0, 5), DType::F32, &CPU).unwrap();
    let g = Tensor::zeros((0, 3, 2, 2), DType::F32, &CPU).unwrap();
    let (y, gx) = fwd_bwd(&x, &g, |t| roi_align(t, &b, (2, 2), 1.0, 2, true)).unwrap();
    assert_eq!(y.dims(), &[0, 3, 2, 2]);
    assert_eq!(gx.dims(), &[2, 3, 5, 5]);
    assert!(vals(&gx).iter().all(|&v| v == 0.0));
}

#[test]
fn several_images_in_a_batch() {
    // Image b is constant 100 * (b + 1) + channel: every bin of a box inside reads its image.
    let (n, c) = (3, 2);
    let v: Vec<f32> = (0..n * c * 36)
        .map(|i| (100 * (i / (c * 36) + 1) + (i / 36) % c) as f32)
        .collect();
    let x = Tensor::from_vec(v, (n, c, 6, 6), &CPU).unwrap();
    let b = boxes(&[
        [2., 1., 1., 4., 4.],
        [0., 0., 0., 5., 5.],
        [1., 2., 2., 3., 5.],
        [2., 0., 1., 2., 2.],
    ]);
    let y = vals(&roi_align(&x, &b, (2, 2), 1.0, 2, true).unwrap());
    for (k, img) in [2usize, 0, 1, 2].iter().enumerate() {
        for ch in 0..c {
            for bin in 0..4 {
                let want = (100 * (img + 1) + ch) as f32;
                assert!(
                    (y[(k * c + ch) * 4 + bin] - want).abs() < 1e-4,
                    "box {k} channel {ch}"
                );
            }
        }
    }
}

/// Compares the op with the naive reference on random inputs for one configuration.
fn check_against_reference(
    dtype: DType,
    seed: u64,
    aligned: bool,
    sampling: i32,
    scale: f64,
    out: (usize, usize),
) {
    check_dims(dtype, seed, aligned, sampling, scale, out, (2, 3, 7, 9));
}

fn check_dims(
    dtype: DType,
    seed: u64,
    aligned: bool,
    sampling: i32,
    scale: f64,
    out: (usize, usize),
    dims: (usize, usize, usize, usize),
) {
    let mut rng = SplitMix64::new(seed);
    let x = uniform_values(&mut rng, dims.0 * dims.1 * dims.2 * dims.3);
    let bx = random_boxes(
        &mut rng,
        9,
        dims.0,
        dims.2 as f64 / scale,
        dims.3 as f64 / scale,
    );
    let k = bx.len();
    let go = uniform_values(&mut rng, k * dims.1 * out.0 * out.1);
    let (want_y, want_g) = ref_roi_align(&x, dims, &bx, out, scale, sampling, aligned, &go);
    let xt = Tensor::from_vec(x, dims, &CPU)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let gt = Tensor::from_vec(go, (k, dims.1, out.0, out.1), &CPU)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let bt = boxes_tensor(&bx, dtype).unwrap();
    let (y, g) = fwd_bwd(&xt, &gt, |t| {
        roi_align(t, &bt, out, scale as f32, sampling, aligned)
    })
    .unwrap();
    let tol = if dtype == DType::F64 { 1e-12 } else { 2e-5 };
    let ctx = format!("{dtype:?} aligned={aligned} sampling={sampling} scale={scale} out={out:?}");
    assert!(
        max_abs_diff(&to_f64(&y), &want_y) < tol,
        "forward {ctx}: {}",
        max_abs_diff(&to_f64(&y), &want_y)
    );
    assert!(
        max_abs_diff(&to_f64(&g), &want_g) < tol,
        "backward {ctx}: {}",
        max_abs_diff(&to_f64(&g), &want_g)
    );
}

#[test]
fn matches_naive_reference_on_random_boxes() {
    let mut seed = 1;
    for dtype in [DType::F64, DType::F32] {
        for aligned in [false, true] {
            for sampling in [-1, 0, 1, 2, 3] {
                for (scale, out) in [(1.0, (2, 3)), (0.5, (7, 7)), (0.25, (3, 1))] {
                    seed += 1;
                    check_against_reference(dtype, seed, aligned, sampling, scale, out);
                }
            }
        }
    }
}

#[test]
fn many_channels_and_odd_sizes_match_reference() {
    // More channels and pixels than one 32-wide transpose tile, sizes not multiples of it.
    check_dims(DType::F32, 99, true, 0, 0.5, (7, 7), (3, 37, 33, 35));
    check_dims(DType::F64, 98, false, 2, 1.0, (2, 2), (1, 65, 9, 34));
}

#[test]
fn finite_difference_gradient_f64() {
    // RoIAlign is linear in its input, so central differences are exact up to rounding.
    let mut rng = SplitMix64::new(7);
    let dims = (2, 2, 5, 6);
    let numel = dims.0 * dims.1 * dims.2 * dims.3;
    let x = Tensor::from_vec(uniform_values(&mut rng, numel), dims, &CPU).unwrap();
    let bx = boxes_tensor(&random_boxes(&mut rng, 5, 2, 10.0, 12.0), DType::F64).unwrap();
    let go = Tensor::from_vec(uniform_values(&mut rng, 5 * 2 * 2 * 3), (5, 2, 2, 3), &CPU).unwrap();
    for (aligned, s) in [(false, 2), (true, 0), (true, 1), (false, 0)] {
        GradCheck::new(1e-6, Tolerance::absolute(1e-8))
            .inputs(std::slice::from_ref(&x), |a| {
                roi_align(&a[0], &bx, (2, 3), 0.5, s, aligned)?.mul(&go)
            })
            .unwrap_or_else(|e| panic!("aligned={aligned} s={s}: {e}"));
    }
}

#[test]
fn backward_is_deterministic_across_thread_counts() {
    let mut rng = SplitMix64::new(11);
    let dims = (2, 16, 12, 12);
    let x = Tensor::from_vec(
        uniform_values(&mut rng, dims.0 * dims.1 * dims.2 * dims.3),
        dims,
        &CPU,
    )
    .unwrap()
    .to_dtype(DType::F32)
    .unwrap();
    let bx = boxes_tensor(&random_boxes(&mut rng, 40, 2, 12.0, 12.0), DType::F32).unwrap();
    let go = Tensor::from_vec(uniform_values(&mut rng, 40 * 16 * 49), (40, 16, 7, 7), &CPU)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| fwd_bwd(&x, &go, |t| roi_align(t, &bx, (7, 7), 1.0, 2, true)).unwrap())
    };
    let (y1, g1) = run(1);
    let (y3, g3) = run(3);
    assert_eq!(vals(&y1), vals(&y3));
    assert_eq!(vals(&g1), vals(&g3));
}

#[test]
fn non_contiguous_input_and_boxes() {
    let mut rng = SplitMix64::new(5);
    let x = Tensor::from_vec(uniform_values(&mut rng, 2 * 3 * 6 * 7), (2, 3, 7, 6), &CPU)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let xt = x.transpose(2, 3).unwrap(); // [2, 3, 6, 7], strided
    let b = boxes_tensor(&random_boxes(&mut rng, 4, 2, 6.0, 7.0), DType::F32).unwrap();
    let bt = b.t().unwrap().contiguous().unwrap().t().unwrap(); // [4, 5], strided
    let a = roi_align(&xt, &bt, (2, 2), 1.0, 0, true).unwrap();
    let e = roi_align(&xt.contiguous().unwrap(), &b, (2, 2), 1.0, 0, true).unwrap();
    assert_eq!(vals(&a), vals(&e));
}

fn err(r: candle_core::Result<Tensor>) -> String {
    match r {
        Ok(t) => panic!("expected an error, got a tensor of shape {:?}", t.dims()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_input_gives_clear_errors() {
    let x = Tensor::zeros((1, 2, 4, 4), DType::F32, &CPU).unwrap();
    let b = boxes(&[[0., 0., 0., 2., 2.]]);
    let ra = |x: &Tensor, b: &Tensor| roi_align(x, b, (2, 2), 1.0, 2, true);
    assert!(err(ra(&x.squeeze(0).unwrap(), &b)).contains("`input` must have shape [N, C, H, W]"));
    assert!(err(ra(&x, &b.narrow(1, 0, 4).unwrap())).contains("`boxes` must have shape [K, 5]"));
    assert!(err(ra(&x, &b.flatten_all().unwrap())).contains("`boxes` must have shape [K, 5]"));
    assert!(err(ra(&x, &boxes(&[[1., 0., 0., 2., 2.]])))
        .contains("batch index 1 is not an integer in 0..1"));
    assert!(err(ra(&x, &boxes(&[[-1., 0., 0., 2., 2.]]))).contains("batch index -1"));
    assert!(err(ra(&x, &boxes(&[[0.5, 0., 0., 2., 2.]]))).contains("batch index 0.5"));
    assert!(err(ra(&x, &boxes(&[[0., 0., f32::NAN, 2., 2.]])))
        .contains("box 0: coordinate NaN is not finite"));
    assert!(err(ra(&x, &boxes(&[[0., 0., 0., f32::INFINITY, 2.]]))).contains("not finite"));
    assert!(err(ra(&x, &boxes(&[[0., 0., 0., 1e9, 2.]]))).contains("exceeds 2^24"));
    assert!(err(ra(&x.to_dtype(DType::F16).unwrap(), &b)).contains("`input` has dtype F16"));
    assert!(err(ra(&x, &b.to_dtype(DType::F64).unwrap())).contains("must match"));
    assert!(err(ra(&x, &b.to_dtype(DType::U32).unwrap())).contains("`boxes` has dtype U32"));
    assert!(err(roi_align(&x, &b, (0, 2), 1.0, 2, true)).contains("`output_size` must be positive"));
    assert!(err(roi_align(&x, &b, (2, 2), 0.0, 2, true))
        .contains("`spatial_scale` must be finite and positive"));
    assert!(err(roi_align(&x, &b, (2, 2), f32::NAN, 2, true)).contains("spatial_scale"));
    let empty = Tensor::zeros((1, 2, 0, 4), DType::F32, &CPU).unwrap();
    assert!(err(ra(&empty, &b)).contains("empty spatial size"));
}
