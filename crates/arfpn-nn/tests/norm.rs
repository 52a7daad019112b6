//! GroupNorm, FrozenBatchNorm2d and BatchNorm2d: hand-computed values, finite-difference
//! gradients, frozen parameters, running-statistics updates.

use arfpn_nn::{batch_norm2d, frozen_batch_norm2d, group_norm, NnError, Norm, NormKind};
use arfpn_testkit::{uniform, weighted_sum, GradCheck, Tolerance};
use candle_core::{DType, Device, Module, ModuleT, Result, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;

fn vb_from(ts: &[(&str, &Tensor)]) -> VarBuilder<'static> {
    let map: HashMap<String, Tensor> = ts
        .iter()
        .map(|(k, t)| (k.to_string(), (*t).clone()))
        .collect();
    VarBuilder::from_tensors(map, DType::F64, &Device::Cpu)
}

/// Per-(sample, group) normalisation written out with loops.
fn group_norm_reference(
    x: &[f64],
    dims: [usize; 4],
    groups: usize,
    w: &[f64],
    b: &[f64],
    eps: f64,
) -> Vec<f64> {
    let [n, c, h, wd] = dims;
    let cg = c / groups;
    let m = cg * h * wd;
    let mut y = vec![0.0; x.len()];
    for i in 0..n {
        for g in 0..groups {
            let s = (i * c + g * cg) * h * wd;
            let mean = x[s..s + m].iter().sum::<f64>() / m as f64;
            let var = x[s..s + m].iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m as f64;
            for k in 0..m {
                let ch = g * cg + k / (h * wd);
                y[s + k] = (x[s + k] - mean) / (var + eps).sqrt() * w[ch] + b[ch];
            }
        }
    }
    y
}

/// GroupNorm (or `forward_relu`: `relu` of it) equals the hand-written f64 reference, and its
/// gradients pass f64 finite differences; the seed draws the inputs (away from the ReLU's
/// kink for the seeds used).
fn values_and_gradients(relu: bool, seed: u64) -> Result<()> {
    let dims = [2, 6, 3, 4];
    let x = uniform(seed, &dims, DType::F64, &Device::Cpu)?;
    let w = uniform(seed + 1, &[6], DType::F64, &Device::Cpu)?;
    let b = uniform(seed + 2, &[6], DType::F64, &Device::Cpu)?;
    let run = |gn: &arfpn_nn::GroupNorm, t: &Tensor| {
        if relu {
            gn.forward_relu(t)
        } else {
            gn.forward(t)
        }
    };
    let gn = group_norm(3, 6, 1e-5, vb_from(&[("weight", &w), ("bias", &b)]))?;
    let y = run(&gn, &x)?.flatten_all()?.to_vec1::<f64>()?;
    let expected = group_norm_reference(
        &x.flatten_all()?.to_vec1()?,
        dims,
        3,
        &w.to_vec1()?,
        &b.to_vec1()?,
        1e-5,
    );
    // Both signs occur, so the ReLU case tests both branches.
    assert!(expected.iter().any(|v| *v < 0.0) && expected.iter().any(|v| *v > 0.0));
    for (a, e) in y.iter().zip(&expected) {
        let e = if relu { e.max(0.0) } else { *e };
        assert!((a - e).abs() < 1e-12, "{a} vs {e}");
    }
    GradCheck::new(1e-6, Tolerance::mixed(1e-6, 1e-6)).inputs(&[x, w, b], |a| {
        let gn = group_norm(3, 6, 1e-5, vb_from(&[("weight", &a[1]), ("bias", &a[2])]))?;
        weighted_sum(&run(&gn, &a[0])?, 4)
    })?;
    Ok(())
}

#[test]
fn group_norm_values_and_gradients() -> Result<()> {
    values_and_gradients(false, 1)
}

#[test]
fn group_norm_relu_values_and_gradients() -> Result<()> {
    values_and_gradients(true, 5)
}

#[test]
fn group_norm_defaults_and_errors() -> Result<()> {
    let vm = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let gn = group_norm(2, 4, 1e-5, vb.pp("gn"))?;
    assert_eq!(
        vm.data()
            .lock()
            .expect("lock")
            .get("gn.weight")
            .expect("weight")
            .to_vec1::<f32>()?,
        [1f32; 4]
    );
    let x = Tensor::zeros((1, 3, 2, 2), DType::F32, &Device::Cpu)?;
    assert!(gn.forward(&x).is_err());
    assert!(group_norm(3, 4, 1e-5, vb.pp("bad")).is_err());
    Ok(())
}

/// Statistics loaded into the `VarMap` after the layer was built (the pretrained-weights path:
/// build the backbone, then load torchvision's file) must take effect.
#[test]
fn frozen_batch_norm_sees_weights_loaded_after_it_was_built() -> Result<()> {
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let bn = frozen_batch_norm2d(2, 0.0, vb)?;
    let x = Tensor::new(&[[[[3.0f64]], [[0.0]]]], &Device::Cpu)?;
    // Initial values (1, 0, 0, 1): identity.
    assert_eq!(bn.forward(&x)?.flatten_all()?.to_vec1::<f64>()?, [3.0, 0.0]);
    {
        let data = vm.data().lock().unwrap();
        for (name, v) in [
            ("weight", [2.0f64, -1.0]),
            ("bias", [0.5, 1.0]),
            ("running_mean", [1.0, -2.0]),
            ("running_var", [4.0, 0.25]),
        ] {
            data[name].set(&Tensor::new(&v, &Device::Cpu)?)?;
        }
    }
    assert_eq!(
        bn.forward(&x)?.flatten_all()?.to_vec1::<f64>()?,
        [2.5, -3.0]
    );
    Ok(())
}

#[test]
fn frozen_batch_norm_is_a_fixed_affine_with_input_gradient_only() -> Result<()> {
    let w = Tensor::new(&[2.0f64, -1.0], &Device::Cpu)?;
    let b = Tensor::new(&[0.5f64, 1.0], &Device::Cpu)?;
    let m = Tensor::new(&[1.0f64, -2.0], &Device::Cpu)?;
    let v = Tensor::new(&[4.0f64, 0.25], &Device::Cpu)?;
    let ws = Var::from_tensor(&w)?;
    let vb = vb_from(&[
        ("weight", ws.as_tensor()),
        ("bias", &b),
        ("running_mean", &m),
        ("running_var", &v),
    ]);
    let bn = frozen_batch_norm2d(2, 0.0, vb)?;
    let x = Var::from_tensor(&Tensor::new(&[[[[3.0f64]], [[0.0]]]], &Device::Cpu)?)?;
    let y = bn.forward(&x)?;
    // (3-1)/2*2+0.5 = 2.5; (0+2)/0.5*(-1)+1 = -3.
    assert_eq!(y.flatten_all()?.to_vec1::<f64>()?, [2.5, -3.0]);
    let g = y.sum_all()?.backward()?;
    assert!(g.get(&ws).is_none(), "frozen weight must get no gradient");
    assert_eq!(
        g.get(&x).expect("dx").flatten_all()?.to_vec1::<f64>()?,
        [1.0, -2.0]
    );
    let x = uniform(5, &[2, 2, 3, 3], DType::F64, &Device::Cpu)?;
    let bn = frozen_batch_norm2d(
        2,
        1e-5,
        vb_from(&[
            ("weight", &w),
            ("bias", &b),
            ("running_mean", &m),
            ("running_var", &v),
        ]),
    )?;
    GradCheck::new(1e-6, Tolerance::mixed(1e-8, 1e-8))
        .inputs(&[x], |a| weighted_sum(&bn.forward(&a[0])?, 6))?;
    Ok(())
}

/// The fused CPU frozen batch norm gives the composed form's values bit for bit (f32) and
/// the same input gradient, on maps large enough to be split among threads.
#[test]
fn fused_frozen_batch_norm_equals_the_composed_form() -> Result<()> {
    let dev = Device::Cpu;
    let c = 3;
    // Statistics drawn from seeds 1..=4, as this test always drew them.
    let bn = random_frozen(c, 0)?;
    let x = Var::from_tensor(&uniform(7, &[2, c, 70, 90], DType::F32, &dev)?)?;
    let fused = bn.forward(x.as_tensor())?;
    let composed = bn.forward_composed(x.as_tensor())?;
    assert_eq!(
        fused.flatten_all()?.to_vec1::<f32>()?,
        composed.flatten_all()?.to_vec1::<f32>()?
    );
    let dy = uniform(9, &[2, c, 70, 90], DType::F32, &dev)?;
    let gf = (&fused * &dy)?.sum_all()?.backward()?;
    let gc = (&composed * &dy)?.sum_all()?.backward()?;
    assert_eq!(
        gf.get(x.as_tensor())
            .expect("dx")
            .flatten_all()?
            .to_vec1::<f32>()?,
        gc.get(x.as_tensor())
            .expect("dx")
            .flatten_all()?
            .to_vec1::<f32>()?
    );
    // A wrong channel count is an error, not a panic.
    let bad = uniform(7, &[1, c + 1, 4, 4], DType::F32, &dev)?;
    assert!(bn.forward(&bad).is_err());
    assert!(bn.forward_relu(&bad).is_err());

    // `forward_relu` is one op with the values and input gradient of the norm then
    // `arfpn_kernels::relu`, bit for bit (weights are drawn in [-1, 1): some scales are negative).
    let fused = bn.forward_relu(x.as_tensor())?;
    let composed = arfpn_kernels::relu(&bn.forward_composed(x.as_tensor())?)?;
    let (yf, yc) = (
        fused.flatten_all()?.to_vec1::<f32>()?,
        composed.flatten_all()?.to_vec1::<f32>()?,
    );
    assert_eq!(yf, yc);
    let zeros = yf.iter().filter(|v| **v == 0.0).count();
    assert!(
        zeros > yf.len() / 10 && zeros < yf.len() * 9 / 10,
        "{zeros} zeros"
    );
    let gf = (&fused * &dy)?.sum_all()?.backward()?;
    let gc = (&composed * &dy)?.sum_all()?.backward()?;
    let bits = |g: &candle_core::backprop::GradStore| -> Result<Vec<u32>> {
        Ok(g.get(x.as_tensor())
            .expect("dx")
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| v.to_bits())
            .collect())
    };
    assert_eq!(bits(&gf)?, bits(&gc)?);
    Ok(())
}

/// A frozen batch norm for `c` channels with statistics drawn from seeds `10·seed + 1..=4`
/// (weight, bias, mean, then variances in [0.2, 1)).
fn random_frozen(c: usize, seed: u64) -> Result<arfpn_nn::FrozenBatchNorm2d> {
    let dev = Device::Cpu;
    let t = |k: u64| uniform(seed * 10 + k, &[c], DType::F32, &dev);
    let (w, b, m, v) = (t(1)?, t(2)?, t(3)?, t(4)?.affine(0.4, 0.6)?);
    let map: HashMap<String, Tensor> = [
        ("weight", &w),
        ("bias", &b),
        ("running_mean", &m),
        ("running_var", &v),
    ]
    .iter()
    .map(|(k, t)| (k.to_string(), (*t).clone()))
    .collect();
    frozen_batch_norm2d(c, 1e-5, VarBuilder::from_tensors(map, DType::F32, &dev))
}

/// The fused end of a residual unit with frozen norms equals the norms then `add_relu`, for
/// a projection shortcut (its own norm) and an identity one: values and both inputs'
/// gradients bit for bit; `Norm::forward_add_relu_t` takes the same path.
#[test]
fn fused_frozen_add_relu_equals_the_composed_form() -> Result<()> {
    let dev = Device::Cpu;
    let (c, dims) = (4, [2, 4, 50, 70]);
    let (na, nb) = (random_frozen(c, 1)?, random_frozen(c, 2)?);
    let a = Var::from_tensor(&uniform(11, &dims, DType::F32, &dev)?)?;
    let b = Var::from_tensor(&uniform(12, &dims, DType::F32, &dev)?)?;
    let dy = uniform(13, &dims, DType::F32, &dev)?;
    let bits = |t: &Tensor| -> Result<Vec<u32>> {
        Ok(t.flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| v.to_bits())
            .collect())
    };
    let grads = |y: &Tensor| -> Result<(Vec<u32>, Vec<u32>)> {
        let g = (y * &dy)?.sum_all()?.backward()?;
        Ok((
            bits(g.get(a.as_tensor()).expect("da"))?,
            bits(g.get(b.as_tensor()).expect("db"))?,
        ))
    };
    let (norm_a, norm_b) = (Norm::Frozen(na.clone()), Norm::Frozen(nb.clone()));
    for projection in [true, false] {
        let b_norm = projection.then_some(&nb);
        let fused = na.forward_add_relu(a.as_tensor(), b.as_tensor(), b_norm)?;
        let shortcut = match b_norm {
            Some(n) => n.forward_composed(b.as_tensor())?,
            None => b.as_tensor().clone(),
        };
        let composed = arfpn_kernels::add_relu(&na.forward_composed(a.as_tensor())?, &shortcut)?;
        let through_norm = norm_a.forward_add_relu_t(
            a.as_tensor(),
            b.as_tensor(),
            projection.then_some(&norm_b),
            true,
        )?;
        let y = bits(&fused)?;
        assert_eq!(y, bits(&composed)?, "values, projection {projection}");
        assert_eq!(
            y,
            bits(&through_norm)?,
            "Norm path, projection {projection}"
        );
        let zeros = y.iter().filter(|v| **v == 0).count();
        assert!(
            zeros > y.len() / 10 && zeros < y.len() * 9 / 10,
            "{zeros} zeros"
        );
        assert_eq!(
            grads(&fused)?,
            grads(&composed)?,
            "gradients, projection {projection}"
        );
    }
    // A shortcut of another shape is an error naming it, not a panic.
    let bad = uniform(14, &[2, 4, 50, 71], DType::F32, &dev)?;
    let err = na.forward_add_relu(a.as_tensor(), &bad, None).unwrap_err();
    assert!(err.to_string().contains("shortcut"), "{err}");
    Ok(())
}

#[test]
fn batch_norm_train_eval_and_running_stats() -> Result<()> {
    let vm = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let bn = batch_norm2d(1, 0.0, 0.1, vb.pp("bn"))?;
    // One channel, values 1, 2, 3, 6: mean 3, biased var 3.5, unbiased 14/3.
    let x = Tensor::new(&[1.0f64, 2., 3., 6.], &Device::Cpu)?.reshape((2, 1, 1, 2))?;
    let y = bn.forward_t(&x, true)?.flatten_all()?.to_vec1::<f64>()?;
    let s = 3.5f64.sqrt();
    for (a, e) in y.iter().zip([-2.0 / s, -1.0 / s, 0.0, 3.0 / s]) {
        assert!((a - e).abs() < 1e-12);
    }
    let rm = bn.running_mean().to_vec1::<f64>()?[0];
    let rv = bn.running_var().to_vec1::<f64>()?[0];
    assert!((rm - 0.3).abs() < 1e-12, "running mean {rm}");
    assert!(
        (rv - (0.9 + 0.1 * 14.0 / 3.0)).abs() < 1e-12,
        "running var {rv}"
    );
    // The VarMap holds the updated statistics under torchvision's names.
    let data = vm.data().lock().expect("lock");
    assert!(
        (data
            .get("bn.running_mean")
            .expect("stat")
            .to_vec1::<f64>()?[0]
            - 0.3)
            .abs()
            < 1e-12
    );
    assert!(
        data.contains_key("bn.weight")
            && data.contains_key("bn.bias")
            && data.contains_key("bn.running_var")
    );
    drop(data);
    // Eval uses the running statistics.
    let y = bn.forward_t(&x, false)?.flatten_all()?.to_vec1::<f64>()?;
    assert!((y[0] - (1.0 - rm) / rv.sqrt()).abs() < 1e-12);
    Ok(())
}

#[test]
fn batch_norm_train_gradients() -> Result<()> {
    let x = uniform(7, &[2, 3, 2, 3], DType::F64, &Device::Cpu)?;
    let w = uniform(8, &[3], DType::F64, &Device::Cpu)?;
    let b = uniform(9, &[3], DType::F64, &Device::Cpu)?;
    GradCheck::new(1e-6, Tolerance::mixed(1e-6, 1e-6)).inputs(&[x, w, b], |a| {
        let m = Tensor::zeros(3, DType::F64, &Device::Cpu)?;
        let v = Tensor::ones(3, DType::F64, &Device::Cpu)?;
        let vb = vb_from(&[
            ("weight", &a[1]),
            ("bias", &a[2]),
            ("running_mean", &m),
            ("running_var", &v),
        ]);
        weighted_sum(&batch_norm2d(3, 1e-5, 0.1, vb)?.forward_t(&a[0], true)?, 10)
    })?;
    Ok(())
}

#[test]
fn batch_norm_errors() -> Result<()> {
    let vm = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    assert!(batch_norm2d(2, 1e-5, 1.5, vb.pp("a")).is_err());
    let bn = batch_norm2d(2, 1e-5, 0.1, vb.pp("b"))?;
    assert!(bn
        .forward_t(
            &Tensor::zeros((1, 3, 2, 2), DType::F32, &Device::Cpu)?,
            true
        )
        .is_err());
    assert!(bn
        .forward_t(
            &Tensor::zeros((1, 2, 1, 1), DType::F32, &Device::Cpu)?,
            true
        )
        .is_err());
    Ok(())
}

/// An f32 GroupNorm of `groups` groups whose weight and bias are the variables `w` and `b`
/// (so their gradients can be read), eps 1e-5.
fn f32_group_norm(groups: usize, w: &Var, b: &Var) -> Result<arfpn_nn::GroupNorm> {
    let map: HashMap<String, Tensor> = [
        ("weight".to_string(), w.as_tensor().clone()),
        ("bias".to_string(), b.as_tensor().clone()),
    ]
    .into_iter()
    .collect();
    group_norm(
        groups,
        w.elem_count(),
        1e-5,
        VarBuilder::from_tensors(map, DType::F32, &Device::Cpu),
    )
}

/// The fused CPU op (plain, or with the ReLU fused) and the composed candle ops agree in
/// f32, values and all three gradients, on a non-contiguous input and a batch of several
/// samples.
fn fused_matches_composed(dims: [usize; 4], groups: usize, relu: bool, seed: u64) -> Result<()> {
    let [n, c, h, wd] = dims;
    // [n, c, h, wd] as a transposed (strided) view of [n, c, wd, h].
    let x = uniform(seed, &[n, c, wd, h], DType::F32, &Device::Cpu)?.transpose(2, 3)?;
    let w = Var::from_tensor(&(uniform(seed + 1, &[c], DType::F32, &Device::Cpu)? + 1.0)?)?;
    let b = Var::from_tensor(&uniform(seed + 2, &[c], DType::F32, &Device::Cpu)?)?;
    let xv = Var::from_tensor(&x.contiguous()?)?;
    let gn = f32_group_norm(groups, &w, &b)?;
    let fused = |t: &Tensor| {
        if relu {
            gn.forward_relu(t)
        } else {
            gn.forward(t)
        }
    };
    let composed = |t: &Tensor| -> Result<Tensor> {
        let y = gn.forward_composed(t)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    };
    let coef = uniform(seed + 3, &dims, DType::F32, &Device::Cpu)?;
    let d = (fused(&x)? - composed(&x)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(d < 1e-5, "values differ by {d}");
    let gf = (fused(xv.as_tensor())? * &coef)?.sum_all()?.backward()?;
    let gc = (composed(xv.as_tensor())? * &coef)?.sum_all()?.backward()?;
    for (name, t) in [
        ("x", xv.as_tensor()),
        ("weight", w.as_tensor()),
        ("bias", b.as_tensor()),
    ] {
        let (a, c) = (
            gf.get(t).expect("fused grad"),
            gc.get(t).expect("composed grad"),
        );
        let d = (a - c)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let scale = c.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
        assert!(d / scale < 1e-4, "d{name} differs by {d} (scale {scale})");
    }
    Ok(())
}

#[test]
fn group_norm_fused_matches_composed() -> Result<()> {
    fused_matches_composed([3, 8, 7, 5], 4, false, 11)?;
    // Groups longer than one summation block (512) with a ragged tail of lanes.
    fused_matches_composed([2, 6, 33, 37], 3, false, 21)
}

#[test]
fn group_norm_relu_fused_matches_composed() -> Result<()> {
    fused_matches_composed([3, 8, 7, 5], 4, true, 31)?;
    fused_matches_composed([2, 6, 33, 37], 3, true, 41)
}

/// An empty map (zero height) normalises to an empty map, and its backward gives zero
/// weight gradients, with or without the fused ReLU (no zero-sized chunking).
#[test]
fn group_norm_of_an_empty_map_is_empty() -> Result<()> {
    let w = Var::from_tensor(&Tensor::ones(4, DType::F32, &Device::Cpu)?)?;
    let b = Var::from_tensor(&Tensor::zeros(4, DType::F32, &Device::Cpu)?)?;
    let gn = f32_group_norm(2, &w, &b)?;
    let x = Var::from_tensor(&Tensor::zeros((1, 4, 0, 5), DType::F32, &Device::Cpu)?)?;
    for y in [gn.forward(x.as_tensor())?, gn.forward_relu(x.as_tensor())?] {
        assert_eq!(y.dims(), &[1, 4, 0, 5]);
        let g = y.sum_all()?.backward()?;
        let dw = g.get(w.as_tensor()).expect("dw").to_vec1::<f32>()?;
        assert_eq!(dw, vec![0.0; 4]);
    }
    Ok(())
}

/// A large mean next to a small spread (1000 ± 0.5) loses no precision in f32: the fused
/// op's values and gradients match the same inputs computed in f64 to f32 rounding, where
/// sums of raw values would cancel away most digits.
#[test]
fn group_norm_f32_is_accurate_for_a_large_mean() -> Result<()> {
    let dims = [1, 4, 40, 30];
    let x64 = (uniform(51, &dims, DType::F64, &Device::Cpu)? + 1000.0)?
        .to_dtype(DType::F32)?
        .to_dtype(DType::F64)?;
    let coef64 = uniform(52, &dims, DType::F64, &Device::Cpu)?;
    let run = |dt: DType| -> Result<(Vec<f64>, Vec<f64>)> {
        let x = Var::from_tensor(&x64.to_dtype(dt)?)?;
        let w = Tensor::new(&[1.5f64, -0.5, 2.0, 1.0], &Device::Cpu)?.to_dtype(dt)?;
        let b = Tensor::new(&[0.1f64, 0.2, -0.3, 0.0], &Device::Cpu)?.to_dtype(dt)?;
        let map: HashMap<String, Tensor> = [("weight".to_string(), w), ("bias".to_string(), b)]
            .into_iter()
            .collect();
        let gn = group_norm(2, 4, 1e-5, VarBuilder::from_tensors(map, dt, &Device::Cpu))?;
        let y = gn.forward(x.as_tensor())?;
        let g = (&y * coef64.to_dtype(dt)?)?.sum_all()?.backward()?;
        let dx = g.get(x.as_tensor()).expect("dx").clone();
        let flat = |t: Tensor| t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>();
        Ok((flat(y)?, flat(dx)?))
    };
    let (y32, dx32) = run(DType::F32)?;
    let (y64, dx64) = run(DType::F64)?;
    let worst = |a: &[f64], b: &[f64]| {
        let scale = b.iter().fold(0f64, |m, v| m.max(v.abs()));
        a.iter().zip(b).fold(0f64, |m, (p, q)| m.max((p - q).abs())) / scale
    };
    assert!(worst(&y32, &y64) < 2e-6, "y: {}", worst(&y32, &y64));
    assert!(worst(&dx32, &dx64) < 1e-5, "dx: {}", worst(&dx32, &dx64));
    Ok(())
}

/// `NormKind` builds the matching layer under torchvision's names and refuses a group count
/// that does not divide the channels, naming the layer's prefix.
#[test]
fn norm_kind_builds_each_layer_and_checks_groups() -> Result<()> {
    let vm = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let x = uniform(3, &[2, 4, 3, 3], DType::F64, &Device::Cpu)?;
    for (i, kind) in [
        NormKind::group_norm(2),
        NormKind::frozen_batch_norm(),
        NormKind::batch_norm(),
    ]
    .iter()
    .enumerate()
    {
        let norm = Norm::new(kind, 4, vb.pp(format!("n{i}")))?;
        assert_eq!(norm.forward_t(&x, true)?.dims(), x.dims());
        let json = serde_json::to_string(kind).expect("serialise");
        assert_eq!(
            &serde_json::from_str::<NormKind>(&json).expect("parse"),
            kind
        );
    }
    let names = vm
        .data()
        .lock()
        .expect("lock")
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    for n in ["n0.weight", "n1.running_var", "n2.running_mean"] {
        assert!(names.iter().any(|k| k == n), "{n} missing from {names:?}");
    }
    match NormKind::group_norm(3).check_channels(4) {
        Err(NnError::Config { op, arg, reason }) => {
            assert_eq!((op, arg), ("norm", "groups"));
            assert!(
                reason.contains("3 groups do not divide 4 channels"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(NormKind::batch_norm().check_channels(3).is_ok());
    let e = Norm::new(&NormKind::group_norm(3), 4, vb.pp("layer1.bn2"))
        .expect_err("3 groups, 4 channels")
        .to_string();
    assert!(e.contains("at `layer1.bn2`"), "{e}");
    Ok(())
}
