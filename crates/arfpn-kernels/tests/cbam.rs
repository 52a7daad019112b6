//! The fused CBAM op, alone and as a residual unit's end (`cbam_add_relu`): values and every
//! gradient equal the composed candle form (ties included), f64 finite differences, f32
//! agreement on maps larger than one task's chunk, shape errors.

use arfpn_kernels::{
    add_relu, cbam, cbam_add_relu, cbam_composed, ChannelGateWeights, SpatialGateWeights,
};
use arfpn_testkit::{uniform, uniform_vec, weighted_sum, GradCheck, Tolerance};
use candle_core::{DType, Device, Result, Tensor, Var};

/// x, fc1 weight, fc1 bias, fc2 weight, fc2 bias, conv weight, conv bias, shortcut.
fn params(
    seed: u64,
    (n, c, h, w): (usize, usize, usize, usize),
    hidden: usize,
    k: usize,
    dtype: DType,
) -> Result<Vec<Tensor>> {
    let dev = Device::Cpu;
    let shapes: [Vec<usize>; 8] = [
        vec![n, c, h, w],
        vec![hidden, c, 1, 1],
        vec![hidden],
        vec![c, hidden, 1, 1],
        vec![c],
        vec![1, 2, k, k],
        vec![1],
        vec![n, c, h, w],
    ];
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| uniform(seed + i as u64, s.as_slice(), dtype, &dev))
        .collect()
}

/// The gate weights among [`params`]' tensors.
fn gates(t: &[Tensor]) -> (ChannelGateWeights<'_>, SpatialGateWeights<'_>) {
    let ch = ChannelGateWeights {
        fc1_weight: &t[1],
        fc1_bias: &t[2],
        fc2_weight: &t[3],
        fc2_bias: &t[4],
    };
    let sp = SpatialGateWeights {
        conv_weight: &t[5],
        conv_bias: &t[6],
    };
    (ch, sp)
}

/// CBAM of `t[0]` (fused op or composed form); with `residual`, `max(· + t[7], 0)`.
fn run(t: &[Tensor], channel: bool, fused: bool, residual: bool) -> Result<Tensor> {
    let (ch, sp) = gates(t);
    let ch = channel.then_some(&ch);
    match (fused, residual) {
        (true, false) => cbam(&t[0], ch, &sp),
        (true, true) => cbam_add_relu(&t[0], &t[7], ch, &sp),
        (false, false) => Ok(cbam_composed(&t[0], ch, &sp)?.y),
        (false, true) => add_relu(&cbam_composed(&t[0], ch, &sp)?.y, &t[7]),
    }
}

/// Values and the gradients of `weighted_sum` with respect to every input, fused vs composed.
fn compare(t: &[Tensor], channel: bool, residual: bool, tol: f64) -> Result<()> {
    let vars: Vec<Var> = t.iter().map(Var::from_tensor).collect::<Result<_>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let (yf, yc) = (
        run(&ts, channel, true, residual)?,
        run(&ts, channel, false, residual)?,
    );
    let close = |a: &Tensor, b: &Tensor, what: &str| -> Result<()> {
        let a = a.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let b = b.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-3);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= tol * scale,
                "{what}[{i}]: fused {x} vs composed {y} (scale {scale})"
            );
        }
        Ok(())
    };
    close(&yf, &yc, "y")?;
    let (gf, gc) = (
        weighted_sum(&yf, 99)?.backward()?,
        weighted_sum(&yc, 99)?.backward()?,
    );
    let names = [
        "x",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "conv.weight",
        "conv.bias",
        "shortcut",
    ];
    for (i, v) in vars.iter().enumerate() {
        if (!channel && (1..=4).contains(&i)) || (!residual && i == 7) {
            assert!(
                gf.get(v.as_tensor()).is_none(),
                "unused {} got a gradient",
                names[i]
            );
            continue;
        }
        let (a, b) = (gf.get(v.as_tensor()), gc.get(v.as_tensor()));
        let (Some(a), Some(b)) = (a, b) else {
            panic!("no gradient for {}", names[i]);
        };
        close(a, b, names[i])?;
    }
    Ok(())
}

/// Inputs on a grid of 1/4 after a ReLU: many positions share a channel's maximum and many
/// positions have all-zero channels (ties in the spatial maximum).
fn tied(t: &mut [Tensor]) -> Result<()> {
    t[0] = ((&t[0] * 4.0)?.round()? / 4.0)?.relu()?;
    Ok(())
}

#[test]
fn fused_equals_composed_with_ties_f64() -> Result<()> {
    for (dims, hidden, k) in [
        ((2, 5, 6, 9), 3, 3),
        ((1, 4, 4, 5), 2, 7),
        ((1, 3, 1, 1), 1, 3),
    ] {
        for channel in [true, false] {
            let mut t = params(7, dims, hidden, k, DType::F64)?;
            tied(&mut t)?;
            for residual in [false, true] {
                compare(&t, channel, residual, 1e-11)?;
            }
        }
    }
    Ok(())
}

#[test]
fn fused_equals_composed_f32_across_chunks() -> Result<()> {
    // 30 × 40 = 1 200 positions: several of the op's 512-position tasks; two images.
    let t = params(3, (2, 8, 30, 40), 2, 7, DType::F32)?;
    compare(&t, true, true, 2e-5)?;
    let mut t = params(4, (1, 6, 20, 33), 3, 5, DType::F32)?;
    tied(&mut t)?;
    compare(&t, true, false, 2e-5)
}

#[test]
fn gradients_pass_finite_differences() -> Result<()> {
    let check = GradCheck::new(1e-6, Tolerance::mixed(1e-6, 1e-6));
    for (channel, residual) in [(true, false), (false, false), (true, true), (false, true)] {
        let t = params(11, (2, 4, 5, 6), 2, 3, DType::F64)?;
        // The inputs the function reads: x, the MLP (with a channel gate), the convolution,
        // the shortcut (residual form).
        let used: Vec<usize> = (0..8)
            .filter(|&i| (channel || !(1..=4).contains(&i)) && (residual || i != 7))
            .collect();
        let inputs: Vec<Tensor> = used.iter().map(|&i| t[i].clone()).collect();
        let report = check.inputs(&inputs, |a| {
            let mut all = t.clone();
            for (&i, v) in used.iter().zip(a) {
                all[i] = v.clone();
            }
            weighted_sum(&run(&all, channel, true, residual)?, 5)
        })?;
        assert!(report.nonzero() > report.checked() / 2, "{report:?}");
    }
    Ok(())
}

#[test]
fn zero_weights_give_quarter_gates_and_bad_shapes_are_errors() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::new(uniform_vec(1, 2 * 3 * 4 * 4), &dev)?.reshape((2, 3, 4, 4))?;
    let z = |s: &[usize]| Tensor::zeros(s, DType::F64, &dev);
    let (w1, b1, w2, b2) = (z(&[2, 3, 1, 1])?, z(&[2])?, z(&[3, 2, 1, 1])?, z(&[3])?);
    let (cw, cb) = (z(&[1, 2, 3, 3])?, z(&[1])?);
    let ch = ChannelGateWeights {
        fc1_weight: &w1,
        fc1_bias: &b1,
        fc2_weight: &w2,
        fc2_bias: &b2,
    };
    let sp = SpatialGateWeights {
        conv_weight: &cw,
        conv_bias: &cb,
    };
    let y = cbam(&x, Some(&ch), &sp)?;
    let want = (&x * 0.25)?;
    assert!(arfpn_testkit::max_abs_diff(&y, &want)? < 1e-15);

    let even = z(&[1, 2, 4, 4])?;
    let bad_sp = SpatialGateWeights {
        conv_weight: &even,
        conv_bias: &cb,
    };
    let e = cbam(&x, Some(&ch), &bad_sp).unwrap_err().to_string();
    assert!(e.contains("conv_weight") && e.contains("k odd"), "{e}");
    let wrong = z(&[3, 4, 1, 1])?;
    let bad_ch = ChannelGateWeights {
        fc2_weight: &wrong,
        ..ch
    };
    let e = cbam(&x, Some(&bad_ch), &sp).unwrap_err().to_string();
    assert!(e.contains("fc2_weight"), "{e}");
    let e = cbam(&x.flatten_from(2)?, None, &sp)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[N, C, H, W]"), "{e}");
    Ok(())
}

#[test]
fn maps_are_the_gates_the_op_applied() -> Result<()> {
    for channel in [true, false] {
        let t = params(21, (2, 6, 7, 8), 3, 3, DType::F32)?;
        let (ch, sp) = gates(&t);
        let ch = channel.then_some(&ch);
        let fused = arfpn_kernels::cbam_with_maps(&t[0], ch, &sp)?;
        let composed = cbam_composed(&t[0], ch, &sp)?;
        // The same op as `cbam`: bit for bit.
        assert_eq!(
            arfpn_testkit::max_abs_diff(&fused.y, &cbam(&t[0], ch, &sp)?)?,
            0.0
        );
        assert!(
            arfpn_testkit::max_abs_diff(&fused.spatial_weights, &composed.spatial_weights)? < 1e-6
        );
        assert_eq!(fused.spatial_weights.dims(), [2, 1, 7, 8]);
        match (&fused.channel_weights, &composed.channel_weights) {
            (Some(a), Some(b)) => {
                assert_eq!(a.dims(), [2, 6, 1, 1]);
                assert!(arfpn_testkit::max_abs_diff(a, b)? < 1e-6);
            }
            (None, None) => assert!(!channel),
            _ => panic!("channel weights present on one side only"),
        }
        // y = x · cw · sw with the returned gates.
        let cw = match &fused.channel_weights {
            Some(c) => c.clone(),
            None => Tensor::ones((1, 1, 1, 1), DType::F32, &Device::Cpu)?,
        };
        let y = t[0]
            .broadcast_mul(&cw)?
            .broadcast_mul(&fused.spatial_weights)?;
        assert!(arfpn_testkit::max_abs_diff(&y, &fused.y)? < 1e-6);
    }
    Ok(())
}

#[test]
fn residual_form_checks_the_shortcut() -> Result<()> {
    let t = params(2, (1, 3, 4, 4), 1, 3, DType::F32)?;
    let (_, sp) = gates(&t);
    let short = t[7].narrow(2, 0, 3)?;
    let e = cbam_add_relu(&t[0], &short, None, &sp)
        .unwrap_err()
        .to_string();
    assert!(e.contains("shortcut"), "{e}");
    // A shortcut of another dtype takes the composed path (and its error).
    let f64s = t[7].to_dtype(DType::F64)?;
    assert!(cbam_add_relu(&t[0], &f64s, None, &sp).is_err());
    Ok(())
}
