//! Finite-difference gradient checks (f64) through the stem and through residual units with
//! every attention module. These catch candle's silent-gradient traps (pooling, upsampling,
//! fused ops) in anything the backbone uses.

use arfpn_backbone::{
    Attention, AttentionFactory, AttentionKind, AttentionSite, BasicBlock, Bottleneck, NormKind,
    Stem,
};
use arfpn_testkit::{reseed, uniform, weighted_sum, GradCheck, Target, Tolerance};
use candle_core::{DType, Device, Result, Var};
use candle_nn::{VarBuilder, VarMap};

/// Central differences with step 1e-5; the error relative to `max(|numeric|, 1e-3)` must
/// stay below 1e-4.
const CHECK: GradCheck = GradCheck {
    eps: 1e-5,
    tolerance: Tolerance::relative(1e-4, 1e-3),
};

fn kinds() -> Vec<AttentionKind> {
    vec![
        AttentionKind::None,
        AttentionKind::Channel { reduction: 4 },
        AttentionKind::Spatial { kernel_size: 3 },
        AttentionKind::Cbam {
            reduction: 4,
            kernel_size: 7,
        },
    ]
}

/// Checks d loss / d x (40 probes) and d loss / d p (12 probes each) for the parameters
/// `p` named in `params`.
fn check(
    vm: &VarMap,
    x: &Var,
    forward: &dyn Fn(&candle_core::Tensor) -> Result<candle_core::Tensor>,
    params: &[&str],
    what: &str,
) -> Result<()> {
    let data = vm.data().lock().unwrap().clone();
    let mut targets = vec![Target::spread(format!("{what}: input"), x, 40)];
    for p in params {
        let var = data
            .get(*p)
            .unwrap_or_else(|| panic!("{what}: no parameter {p}"));
        targets.push(Target::spread(format!("{what}: {p}"), var, 12));
    }
    CHECK.vars(&targets, || weighted_sum(&forward(x.as_tensor())?, 99))?;
    Ok(())
}

fn attention_params(kind: &AttentionKind) -> Vec<&'static str> {
    match kind {
        AttentionKind::None => vec![],
        AttentionKind::Channel { .. } => vec!["attention.fc1.weight", "attention.fc2.bias"],
        AttentionKind::Spatial { .. } => vec!["attention.conv.weight", "attention.conv.bias"],
        AttentionKind::Cbam { .. } => vec![
            "attention.channel.fc1.weight",
            "attention.channel.fc2.weight",
            "attention.spatial.conv.weight",
        ],
        AttentionKind::Custom { name, .. } => panic!("no parameter list for custom `{name}`"),
    }
}

/// The attention module of a unit with `channels` output channels, under `vb`'s `attention`.
fn module(kind: &AttentionKind, channels: usize, vb: &VarBuilder) -> Result<Box<dyn Attention>> {
    let site = AttentionSite {
        stage: 1,
        unit: 0,
        channels,
    };
    kind.build(&site, vb.pp("attention"))
}

#[test]
fn bottleneck_gradients_with_every_attention() -> Result<()> {
    for kind in kinds() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        // 8 -> 4 planes (16 out), stride 2: exercises conv1..3, the projection and attention.
        let unit = Bottleneck::new(
            8,
            4,
            2,
            &NormKind::group_norm(2),
            module(&kind, 16, &vb)?,
            vb,
        )
        .map_err(candle_core::Error::wrap)?;
        reseed(&vm, 7)?;
        let x = Var::from_tensor(&uniform(3, &[1, 8, 6, 6], DType::F64, &Device::Cpu)?)?;
        let mut params = vec![
            "conv1.weight",
            "conv2.weight",
            "bn3.weight",
            "downsample.0.weight",
        ];
        params.extend(attention_params(&kind));
        check(
            &vm,
            &x,
            &|x| unit.forward_t(x, true, None),
            &params,
            &format!("bottleneck {kind:?}"),
        )?;
    }
    Ok(())
}

#[test]
fn basic_block_gradients_with_every_attention() -> Result<()> {
    for kind in kinds() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        // Identity shortcut (same channels, stride 1).
        let unit = BasicBlock::new(
            8,
            8,
            1,
            &NormKind::group_norm(4),
            module(&kind, 8, &vb)?,
            vb,
        )
        .map_err(candle_core::Error::wrap)?;
        reseed(&vm, 11)?;
        // Seed 5 puts a ReLU/max kink within eps of one CBAM probe (central differences
        // straddle it: 4 % off, exact with eps 1e-7); seed 6 does not.
        let x = Var::from_tensor(&uniform(6, &[2, 8, 5, 7], DType::F64, &Device::Cpu)?)?;
        let mut params = vec!["conv1.weight", "bn2.bias"];
        params.extend(attention_params(&kind));
        check(
            &vm,
            &x,
            &|x| unit.forward_t(x, true, None),
            &params,
            &format!("basic {kind:?}"),
        )?;
    }
    Ok(())
}

/// Units with frozen batch norm, as torchvision's detection backbones run: without attention
/// the last norm, the projection's norm and the addition are one fused op; with it, separate
/// ops. Both shortcut kinds (projection: the bottleneck, identity: the basic block).
#[test]
fn units_with_frozen_batch_norm_gradients() -> Result<()> {
    let frozen = NormKind::frozen_batch_norm();
    for kind in [AttentionKind::None, AttentionKind::Channel { reduction: 4 }] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let unit = Bottleneck::new(8, 4, 2, &frozen, module(&kind, 16, &vb)?, vb)
            .map_err(candle_core::Error::wrap)?;
        reseed(&vm, 21)?;
        let x = Var::from_tensor(&uniform(23, &[1, 8, 6, 6], DType::F64, &Device::Cpu)?)?;
        let mut params = vec!["conv1.weight", "conv3.weight", "downsample.0.weight"];
        params.extend(attention_params(&kind));
        check(
            &vm,
            &x,
            &|x| unit.forward_t(x, true, None),
            &params,
            &format!("frozen bottleneck {kind:?}"),
        )?;

        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let unit = BasicBlock::new(8, 8, 1, &frozen, module(&kind, 8, &vb)?, vb)
            .map_err(candle_core::Error::wrap)?;
        reseed(&vm, 25)?;
        let x = Var::from_tensor(&uniform(27, &[2, 8, 5, 7], DType::F64, &Device::Cpu)?)?;
        let mut params = vec!["conv1.weight", "conv2.weight"];
        params.extend(attention_params(&kind));
        check(
            &vm,
            &x,
            &|x| unit.forward_t(x, true, None),
            &params,
            &format!("frozen basic block {kind:?}"),
        )?;
    }
    Ok(())
}

#[test]
fn stem_gradients() -> Result<()> {
    for norm in [NormKind::group_norm(2), NormKind::frozen_batch_norm()] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let stem = Stem::new(3, 4, &norm, vb).map_err(candle_core::Error::wrap)?;
        reseed(&vm, 13)?;
        // Even size: candle's stride-2 conv backward needs H and W of equal parity.
        let x = Var::from_tensor(&uniform(17, &[1, 3, 14, 10], DType::F64, &Device::Cpu)?)?;
        check(
            &vm,
            &x,
            &|x| stem.forward_t(x, true),
            &["conv1.weight"],
            &format!("stem {norm:?}"),
        )?;
    }
    Ok(())
}
