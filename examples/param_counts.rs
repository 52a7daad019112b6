//! Parameter counts of every ResNet preset x attention variant, backbone alone and with the
//! FPN (256 channels, GroupNorm, so no running statistics are counted), as a Markdown table.
//!
//! `cargo run --release --example param_counts`

use arfpn_backbone::{count_parameters, AttentionKind, ResNet, ResNetConfig};
use arfpn_fpn::{BackboneWithFpn, FpnConfig};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("| backbone | attention | backbone params | + FPN params | + FPN, f32 MiB |");
    println!("|---|---|---:|---:|---:|");
    let kinds = [
        ("none (FPN)", AttentionKind::None),
        ("channel (C-ARFPN)", AttentionKind::channel()),
        ("spatial (S-ARFPN)", AttentionKind::spatial()),
        ("CBAM (CS-ARFPN)", AttentionKind::cbam()),
    ];
    for depth in [18, 34, 50, 101] {
        for (label, kind) in &kinds {
            let cfg = ResNetConfig::from_depth(depth)?.with_attention(kind.clone());
            let vm_b = VarMap::new();
            ResNet::new(
                &cfg,
                VarBuilder::from_varmap(&vm_b, DType::F32, &Device::Cpu),
            )?;
            let backbone_params = count_parameters(&vm_b);
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
            let backbone = ResNet::new(&cfg, vb.pp("backbone"))?;
            BackboneWithFpn::new(Box::new(backbone), &FpnConfig::default(), vb)?;
            let total = count_parameters(&vm);
            let mib = total as f64 * 4.0 / (1024.0 * 1024.0);
            println!("| ResNet-{depth} | {label} | {backbone_params} | {total} | {mib:.2} |");
        }
    }
    Ok(())
}
