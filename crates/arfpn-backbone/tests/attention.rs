//! Known-value tests of the attention modules on hand-made inputs and weights.

use arfpn_backbone::{
    max_keepdim_split, Attention, AttentionFactory, AttentionKind, Cbam, ChannelAttention,
    NoAttention, Reweighting, SpatialAttention,
};
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;

fn vb_from(tensors: Vec<(&str, Tensor)>) -> VarBuilder<'static> {
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    VarBuilder::from_tensors(map, DType::F64, &Device::Cpu)
}

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn close(a: &Tensor, b: &[f64]) {
    let a = a.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() < 1e-12, "element {i}: {x} vs {y}");
    }
}

/// Two channels of a 2x2 map: channel 0 = [1, 2, 3, 4], channel 1 = [-1, -1, -1, -3].
fn input() -> Tensor {
    t(&[1., 2., 3., 4., -1., -1., -1., -3.], &[1, 2, 2, 2])
}

#[test]
fn channel_attention_is_input_times_sigmoid_of_excitation() -> Result<()> {
    // reduction 1: fc1 = [[1, 0], [0, 1]], bias [0, -1]; fc2 = [[2, 0], [1, 1]], bias [0, 0.5].
    let vb = vb_from(vec![
        ("fc1.weight", t(&[1., 0., 0., 1.], &[2, 2, 1, 1])),
        ("fc1.bias", t(&[0., -1.], &[2])),
        ("fc2.weight", t(&[2., 0., 1., 1.], &[2, 2, 1, 1])),
        ("fc2.bias", t(&[0., 0.5], &[2])),
    ]);
    let se = ChannelAttention::new(2, 1, vb)?;
    // Means: 2.5 and -1.5. Hidden: relu([2.5, -2.5]) = [2.5, 0]. Logits: [5, 2.5 + 0.5].
    let (s0, s1) = (sigmoid(5.0), sigmoid(3.0));
    let (y, maps) = se.forward_with_maps(&input())?;
    close(
        &y,
        &[s0, 2. * s0, 3. * s0, 4. * s0, -s1, -s1, -s1, -3. * s1],
    );
    assert_eq!(maps.len(), 1);
    close(&maps[0].tensor, &[s0, s1]);
    close(
        &se.forward(&input())?,
        &[s0, 2. * s0, 3. * s0, 4. * s0, -s1, -s1, -s1, -3. * s1],
    );
    assert_eq!(ChannelAttention::hidden_channels(64, 16), 4);
    assert_eq!(ChannelAttention::hidden_channels(8, 16), 1);
    Ok(())
}

#[test]
fn spatial_attention_weights_mean_and_max_over_channels() -> Result<()> {
    // 1x1 kernel: logit = 0.5 * mean_c + 2 * max_c - 1.
    let vb = vb_from(vec![
        ("conv.weight", t(&[0.5, 2.0], &[1, 2, 1, 1])),
        ("conv.bias", t(&[-1.0], &[1])),
    ]);
    let sa = SpatialAttention::new(1, vb)?;
    let x = input();
    // Per pixel: mean = [0, 0.5, 1, 0.5], max = [1, 2, 3, 4].
    let w: Vec<f64> = [(0.0, 1.0), (0.5, 2.0), (1.0, 3.0), (0.5, 4.0)]
        .iter()
        .map(|&(m, x)| sigmoid(0.5 * m + 2.0 * x - 1.0))
        .collect();
    let (y, maps) = sa.forward_with_maps(&x)?;
    close(&maps[0].tensor, &w);
    close(
        &y,
        &[
            w[0],
            2. * w[1],
            3. * w[2],
            4. * w[3],
            -w[0],
            -w[1],
            -w[2],
            -3. * w[3],
        ],
    );
    Ok(())
}

#[test]
fn spatial_attention_pads_to_keep_the_size() -> Result<()> {
    // 3x3 kernel that reads only the right neighbour's mean: zero padding at the border.
    let mut k = vec![0.0; 18];
    k[5] = 1.0; // channel 0 (mean), row 1, column 2
    let vb = vb_from(vec![
        ("conv.weight", t(&k, &[1, 2, 3, 3])),
        ("conv.bias", t(&[0.0], &[1])),
    ]);
    let sa = SpatialAttention::new(3, vb)?;
    let w = sa.weights(&input())?;
    // Means [[0, 0.5], [1, 0.5]] -> right neighbours [[0.5, pad 0], [0.5, pad 0]].
    close(&w, &[sigmoid(0.5), 0.5, sigmoid(0.5), 0.5]);
    Ok(())
}

#[test]
fn spatial_attention_on_maps_smaller_than_its_kernel() -> Result<()> {
    // A 7x7 all-ones kernel covers the whole 2x1 map from every cell (zero padding elsewhere):
    // each logit is the sum of the descriptor over the map.
    let vb = vb_from(vec![
        ("conv.weight", t(&[1.0; 98], &[1, 2, 7, 7])),
        ("conv.bias", t(&[0.0], &[1])),
    ]);
    let sa = SpatialAttention::new(7, vb)?;
    let x = t(&[1.0, 2.0, -1.0, 0.0], &[1, 2, 2, 1]);
    // Pixel 0: mean 0, max 1; pixel 1: mean 1, max 2 -> logit 4 everywhere.
    close(&sa.weights(&x)?, &[sigmoid(4.0), sigmoid(4.0)]);
    Ok(())
}

#[test]
fn cbam_is_channel_from_avg_and_max_then_spatial() -> Result<()> {
    // Shared MLP = identity with zero biases, so channel logits = relu(avg) + relu(max).
    let vb = vb_from(vec![
        ("channel.fc1.weight", t(&[1., 0., 0., 1.], &[2, 2, 1, 1])),
        ("channel.fc1.bias", t(&[0., 0.], &[2])),
        ("channel.fc2.weight", t(&[1., 0., 0., 1.], &[2, 2, 1, 1])),
        ("channel.fc2.bias", t(&[0., 0.], &[2])),
        ("spatial.conv.weight", t(&[1.0, -1.0], &[1, 2, 1, 1])),
        ("spatial.conv.bias", t(&[0.0], &[1])),
    ]);
    let cbam = Cbam::new(2, 1, 1, vb)?;
    // Channel 0: avg 2.5, max 4 -> sigmoid(6.5). Channel 1: avg -1.5, max -1 -> sigmoid(0) = 0.5.
    let (c0, c1) = (sigmoid(6.5), 0.5);
    let x = [1., 2., 3., 4., -1., -1., -1., -3.];
    let xc: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v * if i < 4 { c0 } else { c1 })
        .collect();
    let s: Vec<f64> = (0..4)
        .map(|p| {
            let (a, b) = (xc[p], xc[p + 4]);
            sigmoid((a + b) / 2.0 - a.max(b))
        })
        .collect();
    let expected: Vec<f64> = (0..8).map(|i| xc[i] * s[i % 4]).collect();
    let (y, maps) = cbam.forward_with_maps(&input())?;
    close(&y, &expected);
    close(&maps[0].tensor, &[c0, c1]);
    close(&maps[1].tensor, &s);
    Ok(())
}

#[test]
fn no_attention_is_the_identity() -> Result<()> {
    let x = input();
    close(
        &NoAttention.forward(&x)?,
        &x.flatten_all()?.to_vec1::<f64>()?,
    );
    let site = arfpn_backbone::AttentionSite {
        stage: 1,
        unit: 0,
        channels: 2,
    };
    let built = AttentionKind::None.build(&site, vb_from(vec![]))?;
    assert!(built.forward_with_maps(&x)?.1.is_empty());
    Ok(())
}

#[test]
fn max_gradient_is_split_among_ties() -> Result<()> {
    let x = Var::from_tensor(&t(&[3., 1., 3., 3., 2., 0.], &[2, 3]))?;
    let m = max_keepdim_split(x.as_tensor(), 1)?;
    close(&m, &[3., 3.]);
    let g = m.sum_all()?.backward()?;
    // Row 0: two tied maxima share the gradient; row 1: one maximum.
    close(g.get(&x).unwrap(), &[0.5, 0., 0.5, 1.0, 0., 0.]);
    Ok(())
}

/// `y = 2x`, written with `forward` only (like a user module that is not one reweighting).
struct Double;
impl Attention for Double {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x * 2.0
    }
}

/// A per-channel gate `[1, -1]` given by `weights` only: a [`Reweighting`].
struct Gate(&'static str);
impl Reweighting for Gate {
    fn weights(&self, x: &Tensor) -> Result<Tensor> {
        Tensor::new(&[1.0f64, -1.0], x.device())?.reshape((1, 2, 1, 1))
    }
    fn map_name(&self) -> &str {
        self.0
    }
}

#[test]
fn trait_defaults_serve_forward_only_and_weights_only_modules() -> Result<()> {
    let x = input();
    let v = x.flatten_all()?.to_vec1::<f64>()?;
    let (y, maps) = Double.forward_with_maps(&x)?;
    close(&y, &v.iter().map(|a| 2.0 * a).collect::<Vec<_>>());
    assert!(maps.is_empty(), "a forward-only module records no maps");
    let gated: Vec<f64> = v
        .iter()
        .enumerate()
        .map(|(i, a)| if i < 4 { *a } else { -a })
        .collect();
    close(&Gate("gate").forward(&x)?, &gated);
    let (y, maps) = Gate("gate").forward_with_maps(&x)?;
    close(&y, &gated);
    assert_eq!(maps.len(), 1);
    assert_eq!(maps[0].name, "gate");
    close(&maps[0].tensor, &[1.0, -1.0]);
    // The composed residual end of a reweighting.
    let shortcut = (x.ones_like()? * 0.5)?;
    let end = Gate("gate").forward_add_relu(&x, &shortcut)?;
    let want: Vec<f64> = gated.iter().map(|v| (v + 0.5).max(0.0)).collect();
    close(&end, &want);
    // A module implementing neither `forward` nor `Reweighting` does not compile (the
    // `compile_fail` example on `Attention`).
    Ok(())
}
