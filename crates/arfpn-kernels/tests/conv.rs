//! The convolution: forward equal to candle's, all three gradients equal to finite
//! differences, on odd/even sizes, strides 1/2, padding 0/1/3, kernels 1/3/7, dilation,
//! groups, batch > 1. (The layer, `arfpn_nn::Conv2d`, is tested in arfpn-nn.)

mod common;
use arfpn_kernels::{conv2d_op, Conv2dConfig};
use arfpn_testkit::{max_abs_diff, uniform, weighted_sum, GradCheck, Tolerance};
use candle_core::{DType, Device, Result, Tensor, Var};
use common::cfg;

/// (n, c, h, w, o, k, cfg)
fn cases() -> Vec<(usize, usize, usize, usize, usize, usize, Conv2dConfig)> {
    vec![
        (2, 3, 7, 6, 4, 3, cfg(1, 1, 1, 1)),
        (2, 3, 7, 6, 4, 3, cfg(2, 1, 1, 1)),
        (1, 2, 8, 7, 3, 3, cfg(2, 0, 1, 1)),
        (2, 3, 9, 8, 2, 7, cfg(2, 3, 1, 1)),
        (1, 3, 5, 5, 4, 1, cfg(1, 0, 1, 1)),
        (2, 4, 6, 5, 3, 1, cfg(2, 0, 1, 1)),
        (1, 2, 5, 6, 2, 1, cfg(1, 1, 1, 1)),
        (1, 2, 9, 7, 3, 3, cfg(1, 2, 2, 1)),
        (2, 4, 6, 7, 6, 3, cfg(2, 1, 1, 2)),
        (1, 2, 4, 5, 3, 3, cfg(1, 3, 1, 1)),
        (1, 2, 10, 11, 2, 3, cfg(3, 1, 2, 1)),
    ]
}

#[test]
fn forward_equals_candle() -> Result<()> {
    for (i, &(n, c, h, w, o, k, cf)) in cases().iter().enumerate() {
        for dtype in [DType::F32, DType::F64] {
            let x = uniform(10 + i as u64, &[n, c, h, w], dtype, &Device::Cpu)?;
            let wt = uniform(
                20 + i as u64,
                &[o, c / cf.groups, k, k],
                dtype,
                &Device::Cpu,
            )?;
            let b = uniform(30 + i as u64, &[o], dtype, &Device::Cpu)?;
            let ours = conv2d_op(&x, &wt, Some(&b), cf)?;
            let theirs = x
                .conv2d(&wt, cf.padding, cf.stride, cf.dilation, cf.groups)?
                .broadcast_add(&b.reshape((1, o, 1, 1))?)?;
            assert_eq!(ours.dims(), theirs.dims(), "case {i}");
            let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
            let d = max_abs_diff(&ours, &theirs)?;
            assert!(d < tol, "case {i} {dtype:?}: max diff {d}");
            let no_bias = conv2d_op(&x, &wt, None, cf)?;
            let d = max_abs_diff(
                &no_bias,
                &x.conv2d(&wt, cf.padding, cf.stride, cf.dilation, cf.groups)?,
            )?;
            assert!(d < tol, "case {i} {dtype:?} without bias: max diff {d}");
        }
    }
    Ok(())
}

#[test]
fn gradients_match_finite_differences() -> Result<()> {
    for (i, &(n, c, h, w, o, k, cf)) in cases().iter().enumerate() {
        let x = uniform(40 + i as u64, &[n, c, h, w], DType::F64, &Device::Cpu)?;
        let wt = uniform(
            50 + i as u64,
            &[o, c / cf.groups, k, k],
            DType::F64,
            &Device::Cpu,
        )?;
        let b = uniform(60 + i as u64, &[o], DType::F64, &Device::Cpu)?;
        GradCheck::new(1e-6, Tolerance::mixed(1e-7, 1e-7))
            .inputs(&[x.clone(), wt.clone(), b], |a| {
                weighted_sum(&conv2d_op(&a[0], &a[1], Some(&a[2]), cf)?, 70 + i as u64)
            })?;
        GradCheck::new(1e-6, Tolerance::mixed(1e-7, 1e-7)).inputs(&[x, wt], |a| {
            weighted_sum(&conv2d_op(&a[0], &a[1], None, cf)?, 80 + i as u64)
        })?;
    }
    Ok(())
}

#[test]
fn f32_gradients_equal_f64_gradients() -> Result<()> {
    let cf = cfg(2, 1, 1, 1);
    let grads = |dtype: DType| -> Result<Vec<Vec<f64>>> {
        let x = Var::from_tensor(&uniform(1, &[2, 3, 9, 8], dtype, &Device::Cpu)?)?;
        let w = Var::from_tensor(&uniform(2, &[4, 3, 3, 3], dtype, &Device::Cpu)?)?;
        let b = Var::from_tensor(&uniform(3, &[4], dtype, &Device::Cpu)?)?;
        let loss = weighted_sum(&conv2d_op(&x, &w, Some(&b), cf)?, 4)?;
        let g = loss.backward()?;
        [&x, &w, &b]
            .iter()
            .map(|v| {
                g.get(v)
                    .expect("gradient")
                    .flatten_all()?
                    .to_dtype(DType::F64)?
                    .to_vec1()
            })
            .collect()
    };
    let (a, b) = (grads(DType::F32)?, grads(DType::F64)?);
    for (ga, gb) in a.iter().zip(&b) {
        for (u, v) in ga.iter().zip(gb) {
            assert!((u - v).abs() < 1e-4, "{u} vs {v}");
        }
    }
    Ok(())
}

/// Documents candle 0.11.1's stride-2 backward bug (H, W of different parity) that this
/// crate's convolution does not have. If candle fixes it, this test says so.
#[test]
fn candle_stride2_backward_fails_where_ours_works() -> Result<()> {
    let x = Var::from_tensor(&uniform(5, &[1, 2, 16, 15], DType::F64, &Device::Cpu)?)?;
    let w = Var::from_tensor(&uniform(6, &[3, 2, 3, 3], DType::F64, &Device::Cpu)?)?;
    let candle = x.conv2d(&w, 1, 2, 1, 1)?.sum_all()?.backward();
    assert!(
        candle.is_err(),
        "candle's stride-2 backward now works for 16x15: update the docs"
    );
    let cf = cfg(2, 1, 1, 1);
    let g = conv2d_op(&x, &w, None, cf)?.sum_all()?.backward()?;
    assert_eq!(g.get(&x).expect("dx").dims(), &[1, 2, 16, 15]);
    Ok(())
}

#[test]
fn bad_shapes_are_errors() -> Result<()> {
    let x = Tensor::zeros((1, 4, 5, 5), DType::F32, &Device::Cpu)?;
    let w = Tensor::zeros((2, 4, 3, 3), DType::F32, &Device::Cpu)?;
    let d = Conv2dConfig::default();
    let msg = |r: Result<Tensor>| r.expect_err("must fail").to_string();
    assert!(msg(conv2d_op(&x.flatten_all()?, &w, None, d)).contains("argument `x`"));
    assert!(msg(conv2d_op(&x, &w.narrow(1, 0, 3)?, None, d)).contains("argument `w`"));
    let b = Tensor::zeros(3, DType::F32, &Device::Cpu)?;
    assert!(msg(conv2d_op(&x, &w, Some(&b), d)).contains("argument `b`"));
    assert!(msg(conv2d_op(&x, &w, None, cfg(0, 0, 1, 1))).contains("stride"));
    assert!(msg(conv2d_op(&x, &w, None, cfg(1, 0, 1, 3))).contains("argument `w`"));
    let big = Tensor::zeros((2, 4, 7, 7), DType::F32, &Device::Cpu)?;
    assert!(msg(conv2d_op(&x, &big, None, d)).contains("dilated kernel"));
    assert!(msg(conv2d_op(&x.to_dtype(DType::F64)?, &w, None, d)).contains("dtype"));
    Ok(())
}

/// Larger (still small) shapes that span several column tiles and channel blocks of the
/// default tiling: forward and both gradients against candle's (equal-parity sizes, where
/// candle's backward works).
#[test]
fn multi_tile_shapes_equal_candle_forward_and_backward() -> Result<()> {
    for (i, &(c, h, w, o, k, s, p)) in [
        (64, 32, 34, 32, 3, 1, 1),
        (48, 32, 32, 16, 3, 2, 1),
        (24, 40, 36, 8, 7, 2, 3),
        (64, 16, 16, 64, 1, 2, 0),
    ]
    .iter()
    .enumerate()
    {
        let x = Var::from_tensor(&uniform(
            90 + i as u64,
            &[2, c, h, w],
            DType::F32,
            &Device::Cpu,
        )?)?;
        let wt = Var::from_tensor(
            &(uniform(91 + i as u64, &[o, c, k, k], DType::F32, &Device::Cpu)? * 0.1)?,
        )?;
        let cf = cfg(s, p, 1, 1);
        let ours = conv2d_op(&x, &wt, None, cf)?;
        let theirs = x.conv2d(&wt, p, s, 1, 1)?;
        assert!(max_abs_diff(&ours, &theirs)? < 1e-4, "case {i} forward");
        let g1 = weighted_sum(&ours, 92)?.backward()?;
        let g2 = weighted_sum(&theirs, 92)?.backward()?;
        for v in [&x, &wt] {
            let (a, b) = (g1.get(v).expect("ours"), g2.get(v).expect("candle"));
            let d = max_abs_diff(a, b)?;
            assert!(d < 1e-3, "case {i} gradient diff {d}");
        }
    }
    Ok(())
}

/// Inputs outside the gradient computation (the image, frozen weights) get no gradient and
/// cost nothing; the others are unchanged.
#[test]
fn only_needed_gradients_are_computed() -> Result<()> {
    let x = uniform(1, &[1, 3, 9, 8], DType::F64, &Device::Cpu)?;
    let w = Var::from_tensor(&uniform(2, &[4, 3, 3, 3], DType::F64, &Device::Cpu)?)?;
    let b = Var::from_tensor(&uniform(3, &[4], DType::F64, &Device::Cpu)?)?;
    let cf = cfg(2, 1, 1, 1);
    let g = weighted_sum(&conv2d_op(&x, &w, Some(&b), cf)?, 4)?.backward()?;
    assert!(g.get(&x).is_none());
    let xv = Var::from_tensor(&x)?;
    let g_all = weighted_sum(&conv2d_op(&xv, &w, Some(&b), cf)?, 4)?.backward()?;
    assert_eq!(
        max_abs_diff(g.get(&w).expect("dw"), g_all.get(&w).expect("dw"))?,
        0.0
    );
    // Frozen weights: a plain tensor as w, the input still gets its gradient.
    let wf = w.as_tensor().detach();
    let g = weighted_sum(&conv2d_op(&xv, &wf, None, cf)?, 4)?.backward()?;
    assert!(g.get(&wf).is_none());
    assert!(g.get(&xv).is_some());
    Ok(())
}

#[test]
fn non_contiguous_input() -> Result<()> {
    let x = uniform(8, &[1, 3, 7, 6], DType::F32, &Device::Cpu)?.transpose(2, 3)?;
    let w = uniform(9, &[2, 3, 3, 3], DType::F32, &Device::Cpu)?;
    let ours = conv2d_op(&x, &w, None, cfg(1, 1, 1, 1))?;
    assert!(max_abs_diff(&ours, &x.contiguous()?.conv2d(&w, 1, 1, 1, 1)?)? < 1e-5);
    Ok(())
}
