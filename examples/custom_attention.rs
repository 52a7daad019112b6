//! Plugging your own attention module into every residual unit, without forking the backbone.
//!
//! `cargo run --release --example custom_attention`
//!
//! The module here is a "gated channel" attention: each channel gets a learnable gate
//! `sigmoid(w_c * mean(x_c) + b_c)`, a one-parameter-per-channel cousin of squeeze-and-
//! excitation. Implement [`Attention`] for the module and [`AttentionFactory`] for its
//! hyper-parameters; the residual unit calls `build` with the channel count at the insertion
//! point (after the last conv + norm, before the addition) and a `VarBuilder` scoped to
//! `layer{s}.{u}.attention`.

use arfpn_backbone::{
    Attention, AttentionFactory, AttentionMap, Backbone, NormKind, ResNet, ResNetConfig,
};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};

/// The module: one gate weight and bias per channel.
struct GatedChannel {
    weight: Tensor, // [1, C, 1, 1]
    bias: Tensor,   // [1, C, 1, 1]
}

impl GatedChannel {
    fn gates(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(3)?.mean_keepdim(2)?;
        candle_nn::ops::sigmoid(
            &mean
                .broadcast_mul(&self.weight)?
                .broadcast_add(&self.bias)?,
        )
    }
}

impl Attention for GatedChannel {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_mul(&self.gates(x)?)
    }

    // Optional: expose the gates to `ResNet::forward_traced` for visualisation.
    fn forward_with_maps(&self, x: &Tensor) -> Result<(Tensor, Vec<AttentionMap>)> {
        let g = self.gates(x)?;
        let y = x.broadcast_mul(&g)?;
        Ok((
            y,
            vec![AttentionMap {
                name: "gate".into(),
                tensor: g,
            }],
        ))
    }
}

/// The factory: hyper-parameters (here just the initial bias) and the per-unit construction.
struct GatedChannelFactory {
    initial_bias: f64,
}

impl AttentionFactory for GatedChannelFactory {
    fn build(&self, channels: usize, vb: VarBuilder) -> Result<Box<dyn Attention>> {
        let weight = vb.get_with_hints(channels, "gate.weight", Init::Const(0.0))?;
        let bias = vb.get_with_hints(channels, "gate.bias", Init::Const(self.initial_bias))?;
        Ok(Box::new(GatedChannel {
            weight: weight.reshape((1, channels, 1, 1))?,
            bias: bias.reshape((1, channels, 1, 1))?,
        }))
    }
}

/// Plug a user-defined attention module ("gated channel") into every residual unit of a
/// small ResNet-50 and run it forward and backward (random weights, CPU).
#[derive(clap::Parser)]
#[command(name = "custom_attention")]
struct Args {}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let Args {} = clap::Parser::parse();
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    // A CPU-sized ResNet-50: bottlenecks, quarter width, GroupNorm with 8 groups.
    let cfg = ResNetConfig::resnet50()
        .with_width(16)
        .with_norm(NormKind::group_norm(8));
    let factory = GatedChannelFactory { initial_bias: 2.0 };
    let net = ResNet::with_attention(&cfg, &factory, vb)?;

    let mut names: Vec<String> = vm
        .data()
        .lock()
        .unwrap()
        .keys()
        .filter(|k| k.contains("attention"))
        .cloned()
        .collect();
    names.sort();
    println!(
        "{} attention parameters, e.g. {:?}",
        names.len(),
        &names[..4]
    );

    let x = Tensor::randn(0f32, 1.0, (1, 3, 128, 160), &dev)?;
    let trace = net.forward_traced(&x, true)?;
    for f in &trace.features {
        println!(
            "{}: stride {:>2}, shape {:?}",
            f.name,
            f.stride,
            f.tensor.dims()
        );
    }
    let first = &trace.attention[0];
    println!(
        "{} gate map shape {:?}",
        first.unit,
        first.maps[0].tensor.dims()
    );

    // Gradients reach the custom module's parameters like any other.
    let loss = trace.features[3].tensor.sqr()?.mean_all()?;
    let grads = loss.backward()?;
    let data = vm.data().lock().unwrap();
    let g = grads
        .get(&data["layer4.2.attention.gate.weight"])
        .expect("the custom attention is trained");
    println!(
        "|d loss / d layer4.2.attention.gate.weight| = {:.3e}",
        g.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?
    );
    assert_eq!(net.output_shapes().len(), 4);
    Ok(())
}
