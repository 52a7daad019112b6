//! The bf16 matrix-product path (`with_matmul_precision(MatmulPrecision::Bf16, …)`):
//! convolutions and linear layers equal an f64 computation on the bf16-rounded operands
//! (rounded by candle's own `to_dtype(BF16)`, an independent implementation) up to f32
//! accumulation error, forward and backward; outside the scope, or on a machine without
//! AMX, nothing changes.

mod common;
use arfpn_kernels::{
    bf16_matmul_available, conv2d_op, matmul_precision, matmul_transposed, with_matmul_precision,
    Conv2dConfig, MatmulPrecision,
};
use arfpn_testkit::uniform;
use candle_core::{DType, Device, Result, Tensor, Var};
use common::cfg;

const BF16: MatmulPrecision = MatmulPrecision::Bf16;

/// f64 copy of `t` after rounding to bf16.
fn rounded_f64(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::BF16)?.to_dtype(DType::F64)
}

fn bits(t: &Tensor) -> Result<Vec<u32>> {
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(f32::to_bits)
        .collect())
}

/// `|got − want| ≤ 1e-6·scale + 1e-7` elementwise, where `scale` is the same product of
/// the absolute values (a bound on the f32 accumulation error of a sum of those terms).
fn assert_close(got: &Tensor, want: &Tensor, scale: &Tensor, what: &str) -> Result<()> {
    let got = got.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let want = want.flatten_all()?.to_vec1::<f64>()?;
    let scale = scale.flatten_all()?.to_vec1::<f64>()?;
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, ((g, w), s)) in got.iter().zip(&want).zip(&scale).enumerate() {
        assert!(
            (g - w).abs() <= 1e-6 * s + 1e-7,
            "{what}: element {i}: {g} vs {w} (scale {s})"
        );
    }
    Ok(())
}

/// (n, c, h, w, o, k, cfg): 3×3, strided, 7×7 stem-like, pointwise (stride 1 and 2),
/// dilated, grouped, more output channels than one 32-row block, odd sizes everywhere.
fn cases() -> Vec<(usize, usize, usize, usize, usize, usize, Conv2dConfig)> {
    vec![
        (2, 3, 9, 8, 5, 3, cfg(1, 1, 1, 1)),
        (1, 16, 13, 11, 40, 3, cfg(2, 1, 1, 1)),
        (1, 3, 23, 21, 17, 7, cfg(2, 3, 1, 1)),
        (2, 40, 7, 9, 33, 1, cfg(1, 0, 1, 1)),
        (1, 24, 9, 10, 70, 1, cfg(2, 0, 1, 1)),
        (1, 8, 12, 12, 16, 3, cfg(1, 2, 2, 1)),
        (2, 8, 6, 7, 12, 3, cfg(1, 1, 1, 2)),
        (1, 64, 30, 34, 64, 3, cfg(1, 1, 1, 1)),
        // Pointwise with whole 32×32 blocks: the input gradient is written straight into
        // dx (two images; two groups of 32 channels).
        (2, 64, 8, 8, 48, 1, cfg(1, 0, 1, 1)),
        (1, 64, 4, 8, 64, 1, cfg(1, 0, 1, 2)),
    ]
}

#[test]
fn conv_bf16_equals_f64_on_rounded_operands() -> Result<()> {
    if !bf16_matmul_available() {
        eprintln!("skipped: no AMX-BF16 on this machine (see bf16_without_amx_is_f32)");
        return Ok(());
    }
    let dev = Device::Cpu;
    for (i, &(n, c, h, w, o, k, cf)) in cases().iter().enumerate() {
        let x = uniform(100 + i as u64, &[n, c, h, w], DType::F32, &dev)?;
        let wt = uniform(200 + i as u64, &[o, c / cf.groups, k, k], DType::F32, &dev)?;
        let b = uniform(300 + i as u64, &[o], DType::F32, &dev)?;
        let got = with_matmul_precision(BF16, || conv2d_op(&x, &wt, Some(&b), cf))?;
        let (xr, wr) = (rounded_f64(&x)?, rounded_f64(&wt)?);
        // The bias is added in f32, not rounded.
        let want = conv2d_op(&xr, &wr, Some(&b.to_dtype(DType::F64)?), cf)?;
        let scale = conv2d_op(&xr.abs()?, &wr.abs()?, None, cf)?;
        assert_close(&got, &want, &scale, &format!("conv case {i}"))?;
        // Not the f32 result: the operands really were rounded.
        let exact = conv2d_op(&x, &wt, Some(&b), cf)?;
        assert_ne!(bits(&got)?, bits(&exact)?, "conv case {i}");
    }
    Ok(())
}

#[test]
fn linear_bf16_equals_f64_on_rounded_operands() -> Result<()> {
    if !bf16_matmul_available() {
        eprintln!("skipped: no AMX-BF16 on this machine (see bf16_without_amx_is_f32)");
        return Ok(());
    }
    let dev = Device::Cpu;
    for (i, &(m, k, n)) in [(1, 1, 1), (7, 33, 5), (70, 600, 40), (33, 64, 1030)]
        .iter()
        .enumerate()
    {
        let x = uniform(10 + i as u64, &[m, k], DType::F32, &dev)?;
        let w = uniform(20 + i as u64, &[n, k], DType::F32, &dev)?;
        let b = uniform(30 + i as u64, &[n], DType::F32, &dev)?;
        let got = with_matmul_precision(BF16, || matmul_transposed(&x, &w)?.broadcast_add(&b))?;
        let (xr, wr) = (rounded_f64(&x)?, rounded_f64(&w)?);
        let want = xr
            .matmul(&wr.t()?)?
            .broadcast_add(&b.to_dtype(DType::F64)?)?;
        let scale = xr.abs()?.matmul(&wr.abs()?.t()?)?;
        assert_close(&got, &want, &scale, &format!("linear case {i}"))?;
    }
    Ok(())
}

/// `Σ y·r` for a fixed random `r`: its gradients are the ops' backward products with an
/// upstream gradient `r` that is not exact in bf16.
fn weighted(y: &Tensor, seed: u64) -> Result<(Tensor, Tensor)> {
    let r = uniform(seed, y.dims(), DType::F32, y.device())?;
    Ok(((y * &r)?.sum_all()?, r))
}

/// A backward run inside the scope computes the input and weight gradients with bf16
/// products: equal to f64 gradients of the bf16-rounded operands and upstream gradient, up
/// to f32 accumulation. The bound of each value is the same gradient with every operand
/// replaced by its absolute value.
#[test]
fn gradients_inside_the_scope_use_bf16_products() -> Result<()> {
    if !bf16_matmul_available() {
        eprintln!("skipped: no AMX-BF16 on this machine");
        return Ok(());
    }
    let dev = Device::Cpu;
    for (i, &(n, c, h, w, o, k, cf)) in cases().iter().enumerate() {
        let x = Var::from_tensor(&uniform(400 + i as u64, &[n, c, h, w], DType::F32, &dev)?)?;
        let wt = uniform(500 + i as u64, &[o, c / cf.groups, k, k], DType::F32, &dev)?;
        let wt = Var::from_tensor(&wt)?;
        let got = with_matmul_precision(BF16, || -> Result<_> {
            let y = conv2d_op(x.as_tensor(), wt.as_tensor(), None, cf)?;
            let (loss, r) = weighted(&y, 600 + i as u64)?;
            let g = loss.backward()?;
            Ok((g.get(&x).cloned(), g.get(&wt).cloned(), r))
        })?;
        let (gx, gw, r) = got;
        // f64 references on rounded operands, and their bounds.
        let reference = |abs: bool| -> Result<(Tensor, Tensor)> {
            let f = |t: &Tensor| -> Result<Tensor> {
                let t = rounded_f64(t)?;
                if abs {
                    t.abs()
                } else {
                    Ok(t)
                }
            };
            let (xr, wr, rr) = (
                Var::from_tensor(&f(x.as_tensor())?)?,
                Var::from_tensor(&f(wt.as_tensor())?)?,
                f(&r)?,
            );
            let y = conv2d_op(xr.as_tensor(), wr.as_tensor(), None, cf)?;
            let g = (y * rr)?.sum_all()?.backward()?;
            let get = |v: &Var| g.get(v.as_tensor()).cloned().expect("a gradient");
            Ok((get(&xr), get(&wr)))
        };
        let (wx, ww) = reference(false)?;
        let (sx, sw) = reference(true)?;
        assert_close(&gx.expect("dx"), &wx, &sx, &format!("conv case {i}: dx"))?;
        assert_close(&gw.expect("dw"), &ww, &sw, &format!("conv case {i}: dw"))?;
    }
    for (i, &(m, k, n)) in [(7, 33, 5), (70, 600, 40), (33, 64, 1030)]
        .iter()
        .enumerate()
    {
        let x = Var::from_tensor(&uniform(700 + i as u64, &[m, k], DType::F32, &dev)?)?;
        let w = Var::from_tensor(&uniform(800 + i as u64, &[n, k], DType::F32, &dev)?)?;
        let (gx, gw, r) = with_matmul_precision(BF16, || -> Result<_> {
            let z = matmul_transposed(x.as_tensor(), w.as_tensor())?;
            let (loss, r) = weighted(&z, 900 + i as u64)?;
            let g = loss.backward()?;
            Ok((g.get(&x).cloned(), g.get(&w).cloned(), r))
        })?;
        let (gx, gw) = (gx.expect("dx"), gw.expect("dw"));
        let (xr, wr, rr) = (rounded_f64(&x)?, rounded_f64(&w)?, rounded_f64(&r)?);
        // z = x·wᵀ: dx = r·w, dw = rᵀ·x.
        let dx = rr.matmul(&wr)?;
        let dw = rr.t()?.matmul(&xr)?;
        let sx = rr.abs()?.matmul(&wr.abs()?)?;
        let sw = rr.abs()?.t()?.matmul(&xr.abs()?)?;
        assert_close(&gx, &dx, &sx, &format!("linear case {i}: dx"))?;
        assert_close(&gw, &dw, &sw, &format!("linear case {i}: dw"))?;
    }
    Ok(())
}

/// A backward run outside the scope is the f32 one, even for a graph built inside it: with
/// `y.backward()` (every upstream gradient 1) the gradients do not depend on the forward
/// values, so they equal those of an f32 graph — bit for bit for the convolution, up to the
/// order of f32 sums for the linear layer (candle's matmul backward multiplies the same
/// matrices differently transposed).
#[test]
fn backward_outside_the_scope_is_f32() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&uniform(1, &[2, 8, 9, 10], DType::F32, &dev)?)?;
    let w = Var::from_tensor(&uniform(2, &[40, 8, 3, 3], DType::F32, &dev)?)?;
    let rows = Var::from_tensor(&uniform(3, &[50, 70], DType::F32, &dev)?)?;
    let lw = Var::from_tensor(&uniform(4, &[33, 70], DType::F32, &dev)?)?;
    let grads = |p: MatmulPrecision| -> Result<_> {
        let (y, z) = with_matmul_precision(p, || -> Result<_> {
            let y = conv2d_op(x.as_tensor(), w.as_tensor(), None, cfg(2, 1, 1, 1))?;
            let z = matmul_transposed(rows.as_tensor(), lw.as_tensor())?;
            Ok((y, z))
        })?;
        let (gc, gl) = (y.backward()?, z.backward()?);
        let get = |g: &candle_core::backprop::GradStore, v: &Var| {
            g.get(v.as_tensor()).cloned().expect("a gradient")
        };
        Ok([get(&gc, &x), get(&gc, &w), get(&gl, &rows), get(&gl, &lw)])
    };
    let [cx, cw, lx, lw32] = grads(MatmulPrecision::F32)?;
    let [bx, bw, blx, blw] = grads(BF16)?;
    assert_eq!(bits(&cx)?, bits(&bx)?);
    assert_eq!(bits(&cw)?, bits(&bw)?);
    for (a, b) in [(lx, blx), (lw32, blw)] {
        let diff = (&a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let size = a.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(size > 0.0 && diff <= 1e-6 * size, "{diff} vs {size}");
    }
    Ok(())
}

/// Where bf16 cannot run (here: f64 tensors; on a machine without AMX: everything), the
/// scope changes nothing.
#[test]
fn bf16_without_amx_is_f32() -> Result<()> {
    let dev = Device::Cpu;
    let x = uniform(5, &[1, 4, 6, 6], DType::F64, &dev)?;
    let w = uniform(6, &[3, 4, 3, 3], DType::F64, &dev)?;
    let a = conv2d_op(&x, &w, None, cfg(1, 1, 1, 1))?;
    let b = with_matmul_precision(BF16, || conv2d_op(&x, &w, None, cfg(1, 1, 1, 1)))?;
    assert_eq!(
        a.flatten_all()?.to_vec1::<f64>()?,
        b.flatten_all()?.to_vec1::<f64>()?
    );
    if !bf16_matmul_available() {
        let (x, w) = (x.to_dtype(DType::F32)?, w.to_dtype(DType::F32)?);
        let a = conv2d_op(&x, &w, None, cfg(1, 1, 1, 1))?;
        let b = with_matmul_precision(BF16, || conv2d_op(&x, &w, None, cfg(1, 1, 1, 1)))?;
        assert_eq!(bits(&a)?, bits(&b)?);
        eprintln!("no AMX-BF16 here: checked that the bf16 scope computes in f32");
    }
    Ok(())
}

#[test]
fn scopes_nest_and_restore_after_a_panic() {
    assert_eq!(matmul_precision(), MatmulPrecision::F32);
    with_matmul_precision(BF16, || {
        assert_eq!(matmul_precision(), BF16);
        with_matmul_precision(MatmulPrecision::F32, || {
            assert_eq!(matmul_precision(), MatmulPrecision::F32)
        });
        assert_eq!(matmul_precision(), BF16);
    });
    assert_eq!(matmul_precision(), MatmulPrecision::F32);
    let r = std::panic::catch_unwind(|| with_matmul_precision(BF16, || panic!("inside")));
    assert!(r.is_err());
    assert_eq!(matmul_precision(), MatmulPrecision::F32);
    // Other threads keep their own setting.
    with_matmul_precision(BF16, || {
        let other = std::thread::spawn(matmul_precision).join().expect("thread");
        assert_eq!(other, MatmulPrecision::F32);
    });
    assert_eq!("bf16".parse::<MatmulPrecision>(), Ok(BF16));
    assert!("fp16".parse::<MatmulPrecision>().is_err());
}
