//! Max pooling: PyTorch semantics (padding = −∞, floor mode, first maximum), gradients by
//! finite differences, overlap accumulation, ties, errors.

use arfpn_kernels::max_pool2d;
use arfpn_testkit::{max_abs_diff, uniform, weighted_sum, GradCheck, Tolerance};
use candle_core::{DType, Device, Result, Tensor, Var};

#[test]
fn stem_pool_hand_computed() -> Result<()> {
    // torch.nn.functional.max_pool2d(torch.arange(20.).reshape(1,1,4,5), 3, 2, 1)
    // = [[6, 8, 9], [16, 18, 19]]
    let x = Tensor::arange(0f32, 20., &Device::Cpu)?.reshape((1, 1, 4, 5))?;
    let y = max_pool2d(&x, 3, 2, 1)?;
    assert_eq!(
        y.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?,
        [[6., 8., 9.], [16., 18., 19.]]
    );
    // Negative values: the padding must not win (it is −∞, not 0).
    let y = max_pool2d(&(x.neg()? - 1.0)?, 3, 2, 1)?;
    assert_eq!(
        y.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?,
        [[-1., -2., -4.], [-6., -7., -9.]]
    );
    Ok(())
}

#[test]
fn gradients_match_finite_differences() -> Result<()> {
    // (kernel, stride, padding, h, w)
    for (i, &(k, s, p, h, w)) in [
        (3, 2, 1, 7, 6),
        (3, 2, 1, 8, 9),
        (2, 2, 0, 5, 6),
        (3, 1, 1, 5, 4),
        (3, 2, 0, 7, 7),
        (5, 3, 2, 9, 8),
    ]
    .iter()
    .enumerate()
    {
        let x = uniform(100 + i as u64, &[2, 3, h, w], DType::F64, &Device::Cpu)?;
        GradCheck::new(1e-6, Tolerance::mixed(1e-7, 1e-7)).inputs(&[x], |a| {
            weighted_sum(&max_pool2d(&a[0], k, s, p)?, 200 + i as u64)
        })?;
    }
    Ok(())
}

#[test]
fn overlapping_windows_accumulate_and_ties_go_to_the_first() -> Result<()> {
    // A constant input: every window's first (top-left, in-bounds) cell takes the gradient.
    let x = Var::from_tensor(&Tensor::ones((1, 1, 4, 4), DType::F32, &Device::Cpu)?)?;
    let g = max_pool2d(&x, 3, 1, 1)?.sum_all()?.backward()?;
    let dx = g
        .get(&x)
        .expect("dx")
        .squeeze(0)?
        .squeeze(0)?
        .to_vec2::<f32>()?;
    // Windows of outputs (0..4)x(0..4) start at rows/cols max(o-1, 0): 0,0,1,2.
    assert_eq!(
        dx,
        [
            [4., 2., 2., 0.],
            [2., 1., 1., 0.],
            [2., 1., 1., 0.],
            [0., 0., 0., 0.]
        ]
    );
    // A single maximum shared by four overlapping windows gets four contributions.
    let mut v = vec![0f32; 25];
    v[12] = 5.0;
    let x = Var::from_tensor(&Tensor::from_vec(v, (1, 1, 5, 5), &Device::Cpu)?)?;
    let g = max_pool2d(&x, 3, 2, 0)?.sum_all()?.backward()?;
    let dx = g.get(&x).expect("dx").flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(dx[12], 4.0);
    Ok(())
}

#[test]
fn nan_propagates_like_torch() -> Result<()> {
    let x = Tensor::new(&[[[[1f32, f32::NAN], [3., 2.]]]], &Device::Cpu)?;
    let y = max_pool2d(&x, 2, 2, 0)?.flatten_all()?.to_vec1::<f32>()?;
    assert!(y[0].is_nan());
    Ok(())
}

#[test]
fn f32_equals_f64() -> Result<()> {
    let x = uniform(7, &[2, 3, 11, 10], DType::F64, &Device::Cpu)?;
    let a = max_pool2d(&x, 3, 2, 1)?;
    let b = max_pool2d(&x.to_dtype(DType::F32)?, 3, 2, 1)?.to_dtype(DType::F64)?;
    assert!(max_abs_diff(&a, &b)? < 1e-6);
    Ok(())
}

#[test]
fn bad_arguments_are_errors() -> Result<()> {
    let x = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu)?;
    let e = |r: Result<Tensor>| r.expect_err("must fail").to_string();
    assert!(e(max_pool2d(&x, 3, 2, 2)).contains("padding"));
    assert!(e(max_pool2d(&x, 0, 2, 0)).contains("kernel"));
    assert!(e(max_pool2d(&x, 2, 0, 0)).contains("stride"));
    assert!(e(max_pool2d(&x, 7, 1, 1)).contains("argument `x`"));
    assert!(e(max_pool2d(&x.flatten_all()?, 2, 2, 0)).contains("[N, C, H, W]"));
    Ok(())
}
