//! The convolution layer: parameter names, shapes and initialisation, and its config's
//! serialisation (the op itself is tested in arfpn-kernels).

use arfpn_kernels::Conv2dConfig;
use arfpn_nn::conv2d;
use candle_core::{DType, Device, Module, Result, Tensor};

#[test]
fn layer_parameters_and_init() -> Result<()> {
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let conv = conv2d(
        64,
        64,
        3,
        Conv2dConfig {
            padding: 1,
            ..Default::default()
        },
        true,
        arfpn_nn::inits::KAIMING_FAN_OUT,
        vb.pp("c"),
    )?;
    let data = vm.data().lock().expect("lock");
    let w = data.get("c.weight").expect("c.weight");
    assert_eq!(w.dims(), &[64, 64, 3, 3]);
    assert_eq!(
        data.get("c.bias").expect("c.bias").to_vec1::<f32>()?,
        vec![0f32; 64]
    );
    // kaiming_normal_(fan_out, relu): std = sqrt(2 / (64*3*3)) = 0.0589.
    let v = w.flatten_all()?.to_vec1::<f32>()?;
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    let std = (v.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
    assert!(mean.abs() < 0.002, "mean {mean}");
    assert!((std - 0.0589).abs() < 0.002, "std {std}");
    drop(data);
    let y = conv.forward(&Tensor::ones((1, 64, 5, 4), DType::F32, &Device::Cpu)?)?;
    assert_eq!(y.dims(), &[1, 64, 5, 4]);
    assert_eq!(
        conv.config(),
        Conv2dConfig {
            padding: 1,
            ..Default::default()
        }
    );
    let json = serde_json::to_string(&conv.config()).expect("serialise");
    assert_eq!(
        serde_json::from_str::<Conv2dConfig>(&json).expect("parse"),
        conv.config()
    );
    Ok(())
}
