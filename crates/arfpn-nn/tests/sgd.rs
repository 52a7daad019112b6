//! Momentum SGD against PyTorch's `torch.optim.SGD` (values printed by torch 2.x, f64).

use arfpn_nn::{SgdConfig, SgdMomentum};
use candle_core::{Device, Result, Tensor, Var};
use candle_nn::Optimizer;

/// Three steps on `loss = sum(c·w²)`, `w0 = [1, −2, 0.5]`, `c = [3, 1, −2]`,
/// lr 0.1, momentum 0.9, weight decay 0.01. Expected values from
/// `torch.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=...)`.
fn run(nesterov: bool) -> Result<Vec<Vec<f64>>> {
    let w = Var::new(&[1.0f64, -2.0, 0.5], &Device::Cpu)?;
    let c = Tensor::new(&[3.0f64, 1.0, -2.0], &Device::Cpu)?;
    let cfg = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.01,
        nesterov,
    };
    let mut opt = SgdMomentum::new(vec![w.clone()], cfg)?;
    let mut out = vec![];
    for _ in 0..3 {
        let loss = (&c * w.as_tensor().sqr()?)?.sum_all()?;
        opt.backward_step(&loss)?;
        out.push(w.to_vec1::<f64>()?);
    }
    Ok(out)
}

fn assert_close(got: &[Vec<f64>], want: &[[f64; 3]]) {
    for (g, w) in got.iter().zip(want) {
        for (a, b) in g.iter().zip(w) {
            assert!((a - b).abs() < 1e-12, "{g:?} vs {w:?}");
        }
    }
}

#[test]
fn matches_torch_sgd_momentum() -> Result<()> {
    // Step 1 by hand: g = 2·3·1 + 0.01·1 = 6.01, buf = g, w = 1 − 0.601 = 0.399.
    assert_close(
        &run(false)?,
        &[
            [0.39899999999999997, -1.598, 0.6995],
            [-0.381699, -0.915002, 1.1581505],
            [-0.854927001, -0.116388398, 2.0330379995],
        ],
    );
    Ok(())
}

#[test]
fn matches_torch_sgd_nesterov() -> Result<()> {
    assert_close(
        &run(true)?,
        &[
            [-0.1419, -1.2362, 0.87905],
            [-0.46667439, -0.43847522, 1.707052805],
            [-0.302829565059, 0.223302188518, 3.4307052059705],
        ],
    );
    Ok(())
}

#[test]
fn vars_without_gradient_and_weight_decay_exclusion() -> Result<()> {
    let a = Var::new(&[1.0f64], &Device::Cpu)?;
    let b = Var::new(&[1.0f64], &Device::Cpu)?;
    let cfg = SgdConfig {
        lr: 0.5,
        momentum: 0.0,
        weight_decay: 0.1,
        nesterov: false,
    };
    let mut opt = SgdMomentum::new(vec![a.clone(), b.clone()], cfg)?;
    opt.exclude_from_weight_decay(std::slice::from_ref(&a));
    // Only `a` is in the loss: b has no gradient and must not move (no decay either).
    let loss = (a.as_tensor() * 2.0)?.sum_all()?;
    opt.backward_step(&loss)?;
    assert_eq!(a.to_vec1::<f64>()?, [0.0]); // 1 − 0.5·2, no decay
    assert_eq!(b.to_vec1::<f64>()?, [1.0]);
    opt.set_learning_rate(0.25);
    assert_eq!(opt.learning_rate(), 0.25);
    Ok(())
}

#[test]
fn config_validation_and_serde() {
    let bad = SgdConfig {
        nesterov: true,
        momentum: 0.0,
        ..Default::default()
    };
    assert!(SgdMomentum::new(vec![], bad).is_err());
    let neg = SgdConfig {
        lr: -1.0,
        ..Default::default()
    };
    assert!(SgdMomentum::new(vec![], neg).is_err());
    let cfg = SgdConfig::default();
    let json = serde_json::to_string(&cfg).expect("serialise");
    assert_eq!(
        serde_json::from_str::<SgdConfig>(&json).expect("parse"),
        cfg
    );
}

/// The step as candle ops (the formula of `torch.optim.SGD`, composed as before the fused
/// CPU update): the fused in-place update must equal it bit for bit.
fn composed_step(
    w: &Tensor,
    g: &Tensor,
    buf: &mut Option<Tensor>,
    cfg: SgdConfig,
) -> Result<Tensor> {
    let mut g = g.clone();
    if cfg.weight_decay != 0.0 {
        g = (g + (w * cfg.weight_decay)?)?;
    }
    if cfg.momentum != 0.0 {
        let b = match buf.take() {
            None => g.clone(),
            Some(b) => ((b * cfg.momentum)? + &g)?,
        };
        g = if cfg.nesterov {
            (g + (&b * cfg.momentum)?)?
        } else {
            b.clone()
        };
        *buf = Some(b);
    }
    w - (g * cfg.lr)?
}

#[test]
fn fused_update_equals_composed_ops_bit_for_bit() -> Result<()> {
    let dev = Device::Cpu;
    for (momentum, weight_decay, nesterov) in [
        (0.9, 1e-4, false),
        (0.9, 1e-4, true),
        (0.0, 1e-4, false),
        (0.9, 0.0, false),
    ] {
        let cfg = SgdConfig {
            lr: 0.013,
            momentum,
            weight_decay,
            nesterov,
        };
        // 70 000 values: several parallel chunks, the last one partial.
        let w0 = Tensor::randn(0f32, 1.0, (7, 10_000), &dev)?;
        let c = Tensor::randn(0f32, 1.0, (7, 10_000), &dev)?;
        let w = Var::from_tensor(&w0)?;
        let mut opt = SgdMomentum::new(vec![w.clone()], cfg)?;
        let (mut reference, mut buf) = (w0.copy()?, None);
        let mut snapshot = None;
        for step in 0..3 {
            // loss = Σ c·w² → g = 2·c·w.
            let g = ((&c * 2.0)? * &reference)?;
            let loss = (&c * w.as_tensor().sqr()?)?.sum_all()?;
            opt.backward_step(&loss)?;
            reference = composed_step(&reference, &g, &mut buf, cfg)?;
            let (a, b) = (
                w.flatten_all()?.to_vec1::<f32>()?,
                reference.flatten_all()?.to_vec1::<f32>()?,
            );
            let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "momentum {momentum}, decay {weight_decay}, nesterov {nesterov}, step {step}"
            );
            if step == 0 {
                snapshot = Some(opt.momentum_buffers()?);
            }
        }
        // Buffers handed out earlier are copies: later steps did not change them.
        if momentum != 0.0 {
            let first = snapshot.and_then(|s| s.into_iter().next().flatten());
            let first = first.expect("a buffer after the first step");
            let g0 = ((&c * 2.0)? * &w0)?;
            let want = if weight_decay != 0.0 {
                (g0 + (&w0 * weight_decay)?)?
            } else {
                g0
            };
            assert_eq!(
                first.flatten_all()?.to_vec1::<f32>()?,
                want.flatten_all()?.to_vec1::<f32>()?
            );
        }
    }
    Ok(())
}
