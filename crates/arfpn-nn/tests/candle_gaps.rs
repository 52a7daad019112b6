//! The candle_nn gaps named in the crate docs, checked so that a candle upgrade that closes
//! them is noticed (these tests then fail and the docs need updating).

use candle_core::{DType, Device, Result, Tensor, Var, D};

fn gets_gradient(f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<bool> {
    let x = Var::from_tensor(&Tensor::arange(0f32, 12., &Device::Cpu)?.reshape((3, 4))?)?;
    let y = f(x.as_tensor())?;
    let w = Tensor::arange(0f32, 12., &Device::Cpu)?.reshape((3, 4))?;
    Ok((y * w)?.sum_all()?.backward()?.get(&x).is_some())
}

#[test]
fn fused_candle_nn_ops_silently_lack_gradients() -> Result<()> {
    assert!(!gets_gradient(candle_nn::ops::softmax_last_dim)?);
    let alpha = Tensor::ones(4, DType::F32, &Device::Cpu)?;
    let beta = Tensor::zeros(4, DType::F32, &Device::Cpu)?;
    assert!(!gets_gradient(|x| candle_nn::ops::layer_norm(
        x, &alpha, &beta, 1e-5
    ))?);
    assert!(!gets_gradient(|x| candle_nn::ops::rms_norm(
        x, &alpha, 1e-5
    ))?);
    let ln = candle_nn::LayerNorm::new(alpha.clone(), beta.clone(), 1e-5);
    assert!(!gets_gradient(|x| candle_core::Module::forward(&ln, x))?);
    // The unfused alternatives do get gradients.
    assert!(gets_gradient(|x| candle_nn::ops::softmax(x, D::Minus1))?);
    assert!(gets_gradient(|x| candle_nn::ops::layer_norm_slow(
        x, &alpha, &beta, 1e-5
    ))?);
    Ok(())
}

#[test]
fn candle_max_pool_has_no_backward_when_kernel_differs_from_stride() -> Result<()> {
    let x = Var::from_tensor(&Tensor::ones((1, 1, 6, 6), DType::F32, &Device::Cpu)?)?;
    let r = x.max_pool2d_with_stride(3, 2)?.sum_all()?.backward();
    assert!(r.is_err());
    Ok(())
}
