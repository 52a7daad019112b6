//! Forward and forward+backward of ResNet-FPN backbones at 480x640 (one image, f32, CPU).
//!
//! `cargo bench -p arfpn-fpn --bench backbone_fpn` (compare with
//! `scripts/bench_backbone_torchvision.py`, same shapes, 2 threads).

use arfpn_backbone::{AttentionKind, NormKind, ResNet, ResNetConfig};
use arfpn_fpn::{BackboneWithFpn, FpnConfig};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{criterion_main, Criterion};

fn build(cfg: &ResNetConfig) -> (VarMap, BackboneWithFpn) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let backbone = ResNet::new(cfg, vb.pp("backbone")).unwrap();
    let net = BackboneWithFpn::new(Box::new(backbone), &FpnConfig::default(), vb).unwrap();
    (vm, net)
}

fn loss(net: &BackboneWithFpn, x: &Tensor) -> Tensor {
    let outs = net.forward_t(x, true).unwrap();
    let mut total = Tensor::new(0f32, &Device::Cpu).unwrap();
    for o in outs {
        total = (total + o.tensor.mean_all().unwrap()).unwrap();
    }
    total
}

fn bench(c: &mut Criterion) {
    arfpn_kernels::keep_freed_memory();
    let x = Tensor::randn(0f32, 1.0, (1, 3, 480, 640), &Device::Cpu).unwrap();
    // FrozenBN as torchvision's detection backbones, so the comparison is like for like.
    let frozen = NormKind::FrozenBatchNorm { eps: 0.0 };
    let variants = [
        (
            "r18_fpn_frozenbn",
            ResNetConfig::resnet18().with_norm(frozen.clone()),
            true,
        ),
        (
            "r50_fpn_frozenbn",
            ResNetConfig::resnet50().with_norm(frozen.clone()),
            true,
        ),
        ("r50_fpn_groupnorm", ResNetConfig::resnet50(), false),
        (
            "r50_cbam_fpn_groupnorm",
            ResNetConfig::resnet50().with_attention(AttentionKind::cbam()),
            false,
        ),
    ];
    let mut group = c.benchmark_group("backbone_fpn_480x640");
    group.sample_size(10);
    for (name, cfg, backward) in variants {
        let (_vm, net) = build(&cfg);
        group.bench_function(format!("{name}/forward"), |b| {
            b.iter(|| net.forward_t(&x, false).unwrap())
        });
        if backward {
            group.bench_function(format!("{name}/forward_backward"), |b| {
                b.iter(|| loss(&net, &x).backward().unwrap())
            });
        }
    }
    group.finish();
}

/// The group `criterion_main!` runs: `bench` under Criterion's default configuration as
/// overridden by the command line (what `criterion_group!(benches, bench)` generates, written
/// out so that it can be documented).
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
}
criterion_main!(benches);
