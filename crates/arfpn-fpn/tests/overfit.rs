//! Smoke test of gradient flow end to end: a tiny attention ResNet + FPN + 1x1 head overfits
//! one synthetic image's dense target, and every parameter receives a gradient.

// Deterministic initialisation (`arfpn_testkit::reseed`): with candle's unseeded random init
// the test was flaky, because a squeeze-excitation hidden layer whose ReLUs are all dead at
// initialisation (batch of one image) legitimately gets a zero gradient.
use arfpn_kernels::Conv2dConfig;
use arfpn_nn::conv2d;
use arfpn_testkit::fixture::tiny_backbone_fpn;
use arfpn_testkit::reseed;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};

/// A 64x64 RGB image with three discs of different colours, and the disc mask at stride 4.
fn synthetic() -> Result<(Tensor, Tensor)> {
    let discs = [
        (16.0, 20.0, 9.0, [0.9, 0.2, 0.3]),
        (44.0, 40.0, 12.0, [0.2, 0.8, 0.4]),
        (20.0, 50.0, 6.0, [0.3, 0.3, 0.9]),
    ];
    let inside = |x: f64, y: f64| {
        discs
            .iter()
            .find(|(cx, cy, r, _)| (x - cx).powi(2) + (y - cy).powi(2) <= r * r)
    };
    let mut img = vec![0f32; 3 * 64 * 64];
    for y in 0..64 {
        for x in 0..64 {
            let col = inside(x as f64 + 0.5, y as f64 + 0.5)
                .map(|d| d.3)
                .unwrap_or([0.1, 0.1, 0.1]);
            for c in 0..3 {
                img[c * 4096 + y * 64 + x] = col[c] as f32;
            }
        }
    }
    let mut mask = vec![0f32; 16 * 16];
    for y in 0..16 {
        for x in 0..16 {
            let (px, py) = (x as f64 * 4.0 + 2.0, y as f64 * 4.0 + 2.0);
            mask[y * 16 + x] = inside(px, py).is_some() as u8 as f32;
        }
    }
    let dev = Device::Cpu;
    Ok((
        Tensor::from_vec(img, (1, 3, 64, 64), &dev)?,
        Tensor::from_vec(mask, (1, 1, 16, 16), &dev)?,
    ))
}

/// `mean(max(z, 0) - z t + log(1 + exp(-|z|)))`: candle's `binary_cross_entropy_with_logit`
/// takes `log(sigmoid(z))`, which is NaN once the sigmoid saturates in f32.
fn stable_bce_with_logits(z: &Tensor, t: &Tensor) -> Result<Tensor> {
    let softplus = (z.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (z.relu()? - (z * t)? + softplus)?.mean_all()
}

const SEED: u64 = 3;

#[test]
fn tiny_backbone_fpn_overfits_one_image() -> Result<()> {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    // The tiny CBAM ResNet-18 + 8-channel FPN (P2-P6) of the testkit.
    let net = tiny_backbone_fpn(vb.pp("backbone")).map_err(candle_core::Error::wrap)?;
    // The head reads P2 (the target's resolution) plus the global mean of P3-P6, so every
    // output of the pyramid is used.
    let head = conv2d(
        8,
        1,
        1,
        Conv2dConfig::default(),
        true,
        arfpn_nn::inits::KAIMING_FAN_OUT,
        vb.pp("head"),
    )?;
    reseed(&vm, SEED)?;
    let (image, target) = synthetic()?;
    let loss_fn = || -> Result<Tensor> {
        let p = net
            .forward_t(&image, true)
            .map_err(candle_core::Error::wrap)?;
        let mut x = p[0].tensor.clone();
        for coarse in &p[1..] {
            x = x.broadcast_add(&coarse.tensor.mean_keepdim(3)?.mean_keepdim(2)?)?;
        }
        let logits = head.forward(&x)?;
        stable_bce_with_logits(&logits, &target)
    };

    // Every parameter gets a non-zero gradient from the first loss.
    let grads = loss_fn()?.backward()?;
    for (name, var) in vm.data().lock().unwrap().iter() {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let norm = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{name}: gradient norm {norm}"
        );
    }

    let params = ParamsAdamW {
        lr: 1e-2,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(vm.all_vars(), params)?;
    let first = loss_fn()?.to_scalar::<f32>()?;
    let mut last = first;
    for _ in 0..60 {
        let loss = loss_fn()?;
        last = loss.to_scalar::<f32>()?;
        opt.backward_step(&loss)?;
    }
    let last = last.min(loss_fn()?.to_scalar::<f32>()?);
    eprintln!("loss {first} -> {last}");
    assert!(last < 0.1 * first && last < 0.05, "loss {first} -> {last}");
    Ok(())
}
