//! Parameter counts of every ResNet preset x attention variant, backbone alone and with the
//! FPN (256 channels, GroupNorm, so no running statistics are counted), as a Markdown table,
//! beside the "Param (MB)" column of the paper's Table 7 where it has the configuration.
//!
//! `cargo run --release --example param_counts -- [--depth 18|34|50|101]`
//!
//! The paper's figure is for its whole detector (backbone, FPN, RPN and Fast R-CNN head, in
//! TensorFlow) while ours covers backbone + FPN only (the RPN and the box head add about
//! 14.5 M parameters for 14 classes, mostly the head's two 1024-wide fully connected
//! layers), so the columns are not expected to agree; the differences between variants are
//! comparable. The paper does not list C-ARFPN (channel attention alone) or ResNet-18/34.

use arfpn_backbone::{count_parameters, AttentionKind, ResNet, ResNetConfig};
use arfpn_fpn::{BackboneWithFpn, FpnConfig};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use clap::Parser;

/// Parameters per ResNet depth and attention variant, with the paper's Table 7 figures.
#[derive(Parser)]
#[command(name = "param_counts")]
struct Args {
    /// Only this ResNet depth [default: all of 18, 34, 50, 101].
    #[arg(long, value_parser = ["18", "34", "50", "101"])]
    depth: Option<String>,
}

/// "Param (MB)" of the paper's Table 7 (whole detector): (depth, variant label) -> MB.
fn paper_mb(depth: usize, label: &str) -> Option<f64> {
    match (depth, label) {
        (50, "none (FPN)") => Some(79.05),
        (50, "spatial (S-ARFPN)") => Some(88.67),
        (50, "CBAM (CS-ARFPN)") => Some(88.68),
        (101, "none (FPN)") => Some(115.27),
        (101, "spatial (S-ARFPN)") => Some(133.44),
        (101, "CBAM (CS-ARFPN)") => Some(133.43),
        _ => None,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let depths: Vec<usize> = match &args.depth {
        Some(d) => vec![d.parse()?],
        None => vec![18, 34, 50, 101],
    };
    println!("| backbone | attention | backbone params | + FPN params | + FPN, f32 MiB | paper Table 7, whole detector, MB |");
    println!("|---|---|---:|---:|---:|---:|");
    let kinds = [
        ("none (FPN)", AttentionKind::None),
        ("channel (C-ARFPN)", AttentionKind::channel()),
        ("spatial (S-ARFPN)", AttentionKind::spatial()),
        ("CBAM (CS-ARFPN)", AttentionKind::cbam()),
    ];
    for depth in depths {
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
            let paper = paper_mb(depth, label).map_or("-".to_string(), |m| format!("{m:.2}"));
            println!(
                "| ResNet-{depth} | {label} | {backbone_params} | {total} | {mib:.2} | {paper} |"
            );
        }
    }
    println!("\n(paper: backbone + FPN + RPN + box head; here: backbone + FPN only)");
    Ok(())
}
