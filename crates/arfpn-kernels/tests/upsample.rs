//! Nearest 2× upsampling: values, and a backward that accumulates when the input also feeds
//! another branch (the FPN top-down pattern); the fused `lateral + up(inner)` against it.

use arfpn_kernels::{add_upsample_nearest2x, upsample_nearest2x};
use arfpn_testkit::{max_abs_diff, uniform, weighted_sum, GradCheck, Tolerance};
use candle_core::{DType, Device, Result, Tensor, Var};

#[test]
fn equals_candle_forward() -> Result<()> {
    let x = uniform(1, &[2, 3, 5, 4], DType::F32, &Device::Cpu)?;
    let ours = upsample_nearest2x(&x)?;
    assert_eq!(ours.dims(), &[2, 3, 10, 8]);
    assert_eq!(max_abs_diff(&ours, &x.upsample_nearest2d(10, 8)?)?, 0.0);
    Ok(())
}

/// `loss = sum(up(x)·r1) + sum(x·r2)`: `dx = (2×2 block sums of r1) + r2`.
fn fpn_pattern(up: impl Fn(&Tensor) -> Result<Tensor>) -> Result<(Vec<f64>, Vec<f64>)> {
    let x = Var::from_tensor(&uniform(2, &[1, 2, 3, 5], DType::F64, &Device::Cpu)?)?;
    let r1 = uniform(3, &[1, 2, 6, 10], DType::F64, &Device::Cpu)?;
    let r2 = uniform(4, &[1, 2, 3, 5], DType::F64, &Device::Cpu)?;
    let lateral = (x.as_tensor() * 1.0)?; // used twice, like an FPN lateral map
    let loss = ((up(&lateral)? * &r1)?.sum_all()? + (&lateral * &r2)?.sum_all()?)?;
    let dx = loss
        .backward()?
        .get(&x)
        .expect("dx")
        .flatten_all()?
        .to_vec1::<f64>()?;
    let r1v = r1.flatten_all()?.to_vec1::<f64>()?;
    let r2v = r2.flatten_all()?.to_vec1::<f64>()?;
    let mut expected = r2v;
    for c in 0..2 {
        for i in 0..3 {
            for j in 0..5 {
                let mut s = 0.0;
                for (a, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    s += r1v[c * 60 + (2 * i + a) * 10 + 2 * j + b];
                }
                expected[c * 15 + i * 5 + j] += s;
            }
        }
    }
    Ok((dx, expected))
}

#[test]
fn backward_accumulates_with_other_uses_of_the_input() -> Result<()> {
    let (dx, expected) = fpn_pattern(upsample_nearest2x)?;
    for (a, b) in dx.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    // The fused top-down step, with a zero lateral map, is the same function.
    let (dx, expected) = fpn_pattern(|t| {
        let (n, c, h, w) = t.dims4()?;
        add_upsample_nearest2x(
            &Tensor::zeros((n, c, 2 * h, 2 * w), t.dtype(), t.device())?,
            t,
        )
    })?;
    for (a, b) in dx.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    Ok(())
}

/// Documents candle 0.11.1's overwrite bug; if candle fixes it, this says so.
#[test]
fn candle_upsample_backward_drops_other_gradients() -> Result<()> {
    let (dx, expected) = fpn_pattern(|t| t.upsample_nearest2d(6, 10))?;
    let same = dx.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-12);
    assert!(
        !same,
        "candle's upsample_nearest2d backward now accumulates: update the docs"
    );
    Ok(())
}

#[test]
fn finite_differences() -> Result<()> {
    let x = uniform(5, &[2, 2, 3, 4], DType::F64, &Device::Cpu)?;
    GradCheck::new(1e-6, Tolerance::mixed(1e-8, 1e-8))
        .inputs(&[x], |a| weighted_sum(&upsample_nearest2x(&a[0])?, 6))?;
    Ok(())
}

#[test]
fn bad_rank_is_an_error() {
    let x = Tensor::zeros((2, 3, 4), DType::F32, &Device::Cpu).expect("zeros");
    assert!(upsample_nearest2x(&x).is_err());
}

/// `lateral + up(inner)`: values and both gradients equal the composed form bit for bit, and
/// pass f64 finite differences; a lateral map of the wrong size is an error.
#[test]
fn fused_top_down_step() -> Result<()> {
    let dev = Device::Cpu;
    for dtype in [DType::F32, DType::F64] {
        let lat = Var::from_tensor(&uniform(7, &[2, 3, 6, 10], dtype, &dev)?)?;
        let inner = Var::from_tensor(&uniform(8, &[2, 3, 3, 5], dtype, &dev)?)?;
        let fused = add_upsample_nearest2x(lat.as_tensor(), inner.as_tensor())?;
        let composed = (lat.as_tensor() + upsample_nearest2x(inner.as_tensor())?)?;
        assert_eq!(max_abs_diff(&fused, &composed)?, 0.0);
        let gf = weighted_sum(&fused, 9)?.backward()?;
        let gc = weighted_sum(&composed, 9)?.backward()?;
        for v in [&lat, &inner] {
            let (a, b) = (
                gf.get(v).expect("fused grad"),
                gc.get(v).expect("composed grad"),
            );
            // The composed block sum adds in another order: equal to rounding.
            assert!(max_abs_diff(a, b)? < 1e-6, "{dtype:?}");
        }
    }
    let lat = uniform(10, &[1, 2, 4, 6], DType::F64, &dev)?;
    let inner = uniform(11, &[1, 2, 2, 3], DType::F64, &dev)?;
    GradCheck::new(1e-6, Tolerance::mixed(1e-8, 1e-8)).inputs(&[lat, inner], |a| {
        weighted_sum(&add_upsample_nearest2x(&a[0], &a[1])?, 12)
    })?;
    let bad = Tensor::zeros((1, 2, 5, 6), DType::F64, &dev)?;
    let e = add_upsample_nearest2x(&bad, &uniform(11, &[1, 2, 2, 3], DType::F64, &dev)?)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lateral"), "{e}");
    Ok(())
}
