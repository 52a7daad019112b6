//! Packs a trained checkpoint into the compact form a model ships in (f16 or bf16 weights, no
//! optimiser state) and checks that the compact form scores like the original.
//!
//! ```text
//! cargo run --release --example pack_model -- --checkpoint runs/default-model/best.safetensors \
//!     --out models/blood_cells.safetensors --dtype f16 \
//!     --eval ../shared/data/bccd:test --eval ../shared/data/txl-pbc:test
//! ```
//!
//! For each `--eval DATA:SPLIT` both forms detect the split's images (whole images, native
//! scale) and are scored with VOC all-point AP at IoU 0.5 (the devkit's rules). The command
//! prints a per-class table of both, refuses to write when the compact form's mAP differs
//! from the original's by more than `--max-map-drop` (default 0.002), and records every
//! figure in the file's metadata (`model.eval.<dataset>.<split>.*`), where the shipped
//! model's test reads them back.

mod cli;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arfpn::train::{detect_all, voc_map};
use arfpn::Detector;
use arfpn_voc::{LoadOptions, VocDataset};
use candle_core::{DType, Device};
use clap::Parser;

/// Pack a checkpoint as f16/bf16 weights without optimiser state, checking its mAP.
#[derive(Parser, Debug)]
#[command(name = "pack_model", version)]
struct Args {
    /// The trained checkpoint (f32).
    #[arg(long, value_parser = cli::existing_file)]
    checkpoint: PathBuf,
    /// Where to write the compact model.
    #[arg(long)]
    out: PathBuf,
    /// Weight type of the compact model: f16 or bf16.
    #[arg(long, default_value = "f16", value_parser = ["f16", "bf16"])]
    dtype: String,
    /// A VOC dataset and split to score both forms on, as DATA_DIR:SPLIT (repeatable).
    #[arg(long)]
    eval: Vec<String>,
    /// Largest accepted loss of mAP@0.5 of the compact form against the original.
    #[arg(long, default_value_t = 0.002, value_parser = cli::unit_f64)]
    max_map_drop: f64,
    /// Free-form metadata to record, KEY=VALUE (repeatable; e.g. the training command).
    #[arg(long)]
    meta: Vec<String>,
}

fn main() -> std::process::ExitCode {
    cli::exit_with(run())
}

/// Per-class AP and the mAP of `detector` on a split.
fn score(detector: &Detector, data: &VocDataset) -> Result<(Vec<Option<f64>>, f64), String> {
    let (dets, truth) = detect_all(detector, data).map_err(|e| e.to_string())?;
    let r = voc_map(detector.classes(), &dets, &truth).map_err(|e| e.to_string())?;
    let map = r.map.ok_or("the split has no ground truth")?;
    Ok((r.per_class.iter().map(|c| c.ap).collect(), map))
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    arfpn_kernels::flush_denormals();
    let dtype = match a.dtype.as_str() {
        "bf16" => DType::BF16,
        _ => DType::F16,
    };
    let dev = Device::Cpu;
    let original = Detector::load(&a.checkpoint, &dev)?;
    let mut metadata = HashMap::new();
    for kv in &a.meta {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--meta {kv:?}: expected KEY=VALUE"))?;
        metadata.insert(format!("model.{k}"), v.to_string());
    }
    metadata.insert(
        "model.source_checkpoint".into(),
        a.checkpoint.display().to_string(),
    );
    metadata.insert("model.weights_dtype".into(), a.dtype.clone());
    // The compact form, exactly as it will be read back.
    let tmp = a.out.with_extension("packing.safetensors");
    original.save_compact(&tmp, dtype, &HashMap::new())?;
    let bytes = std::fs::read(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let _ = std::fs::remove_file(&tmp);
    let compact = Detector::load_bytes(&bytes, &a.out, &dev)?;
    let mut worst: f64 = 0.0;
    for spec in &a.eval {
        let (root, split) = spec
            .rsplit_once(':')
            .ok_or_else(|| format!("--eval {spec:?}: expected DATA_DIR:SPLIT"))?;
        let root = Path::new(root);
        let labels =
            arfpn_voc::Labels::Explicit(arfpn_voc::LabelSet::new(original.classes().to_vec())?);
        let data = VocDataset::open(root, split, &LoadOptions::lenient(labels))?;
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("data")
            .to_string();
        let (ap32, map32) = score(&original, &data)?;
        let (ap16, map16) = score(&compact, &data)?;
        println!(
            "\n{name} {split} ({} images): VOC all-point AP@0.5",
            data.samples().len()
        );
        println!("| class | f32 | {} |", a.dtype);
        println!("|---|---|---|");
        let fmt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
        for (c, class) in original.classes().iter().enumerate() {
            println!("| {class} | {} | {} |", fmt(ap32[c]), fmt(ap16[c]));
            let key = format!("model.eval.{name}.{split}.ap50.{class}");
            if let Some(v) = ap16[c] {
                metadata.insert(key, format!("{v:.6}"));
            }
        }
        println!("| **mAP** | **{map32:.4}** | **{map16:.4}** |");
        let key = format!("model.eval.{name}.{split}");
        metadata.insert(format!("{key}.map50_f32"), format!("{map32:.6}"));
        metadata.insert(format!("{key}.map50"), format!("{map16:.6}"));
        metadata.insert(format!("{key}.images"), data.samples().len().to_string());
        worst = worst.max(map32 - map16);
    }
    if worst > a.max_map_drop {
        return Err(format!(
            "the {} form loses {worst:.4} mAP@0.5 (more than --max-map-drop {}); not written",
            a.dtype, a.max_map_drop
        )
        .into());
    }
    compact.save_compact(&a.out, dtype, &metadata)?;
    let size = std::fs::metadata(&a.out)?.len();
    println!(
        "\nwrote {} ({:.2} MB, {} weights)",
        a.out.display(),
        size as f64 / 1e6,
        a.dtype
    );
    Ok(())
}
