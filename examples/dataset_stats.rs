//! Per-split and per-class statistics of a Pascal VOC dataset, and every problem found.
//!
//! ```sh
//! cargo run --release --example dataset_stats -- DATASET_DIR [--splits train,val,test]
//!     [--labels RBC,WBC,Platelets] [--strict] [--quiet]
//! ```
//! Loads each split leniently (unless `--strict`), with the label set from `--labels`, else
//! from `DATASET_DIR/classes.txt`, else discovered from the annotations, and prints: images and objects per split and
//! class (objects *as annotated*, i.e. including boxes the loader had to drop, as dataset
//! READMEs count them, and the kept count), image sizes, box size distribution per class,
//! images lacking a class, and every problem (`--quiet`: only the counts per kind).

mod cli;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use arfpn_voc::splits::list_splits;
use arfpn_voc::stats::{quantile, SplitStats};
use arfpn_voc::{dataset_labels, LabelSet, Labels, LoadOptions, Mode, VocDataset};
use clap::Parser;

/// Per-split and per-class statistics of a Pascal VOC dataset, and every problem found.
#[derive(Parser)]
#[command(name = "dataset_stats")]
struct Args {
    /// The dataset folder (Annotations/, JPEGImages/, ImageSets/Main/).
    #[arg(value_parser = cli::existing_dir)]
    dataset_dir: PathBuf,
    /// Splits to read, comma-separated [default: train,val,test where present, else all].
    #[arg(long, value_parser = cli::split_list)]
    splits: Option<Vec<String>>,
    /// The label set, comma-separated in id order [default: DATASET_DIR/classes.txt, else
    /// every class name of the splits, sorted].
    #[arg(long, value_parser = cli::label_list)]
    labels: Option<LabelSet>,
    /// Stop at the first problem that would drop an image or object.
    #[arg(long)]
    strict: bool,
    /// Print only the problem counts per kind, not every problem.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let root = a.dataset_dir;
    let quiet = a.quiet;
    let mode = if a.strict {
        Mode::Strict
    } else {
        Mode::Lenient
    };
    let splits = match a.splits {
        Some(s) => s,
        None => match list_splits(&root) {
            Ok(all) if all.is_empty() => {
                eprintln!(
                    "error: {}: no split file (ImageSets/Main/<split>.txt)",
                    root.display()
                );
                return ExitCode::FAILURE;
            }
            Ok(all) => {
                let std: Vec<String> = ["train", "val", "test"]
                    .iter()
                    .filter(|s| all.iter().any(|a| a == *s))
                    .map(|s| s.to_string())
                    .collect();
                if std.is_empty() {
                    all
                } else {
                    std
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    // One label set for all splits, so that ids agree between them: `--labels`, else
    // `classes.txt`, else discovered over the splits that have objects (an empty split is
    // valid and contributes nothing).
    let labels = match a.labels {
        Some(l) => l,
        None => match dataset_labels(&root, &splits) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let names: Vec<String> = labels.names().to_vec();
    let opts = LoadOptions {
        labels: Labels::Explicit(labels),
        mode,
        ..Default::default()
    };
    let mut stats = Vec::new();
    let mut datasets = Vec::new();
    let t0 = std::time::Instant::now();
    for split in &splits {
        match VocDataset::open(&root, split, &opts) {
            Ok(ds) => {
                stats.push(SplitStats::compute(&ds));
                datasets.push(ds);
            }
            Err(e) if mode == Mode::Strict => {
                eprintln!("error (strict mode): {e}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let elapsed = t0.elapsed();
    println!(
        "dataset {}  (classes: {})",
        root.display(),
        names.join(", ")
    );
    println!(
        "loaded and validated {} splits in {:.2}s (XML parse + image file check)",
        splits.len(),
        elapsed.as_secs_f64()
    );
    for (split, s) in splits.iter().zip(&stats) {
        if s.images_listed == 0 {
            println!("split {split:?} is empty (0 images listed)");
        }
    }
    println!();

    // Counts table.
    let header: Vec<String> = splits
        .iter()
        .cloned()
        .chain(["total".to_string()])
        .collect();
    println!("| class | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len()));
    let row = |label: &str, f: &dyn Fn(&SplitStats) -> usize| {
        let v: Vec<usize> = stats.iter().map(f).collect();
        let total: usize = v.iter().sum();
        let cells: Vec<String> = v.iter().chain([&total]).map(|x| x.to_string()).collect();
        println!("| {label} | {} |", cells.join(" | "));
    };
    row("*images*", &|s| s.images_listed);
    for n in &names {
        row(n, &|s| s.objects_annotated.get(n).copied().unwrap_or(0));
    }
    row("*all objects*", &|s| s.total_annotated());
    println!("\n(objects as annotated; kept after validation below)\n");
    row("*images kept*", &|s| s.images_kept);
    for n in &names {
        row(&format!("{n} kept"), &|s| {
            s.objects_kept.get(n).copied().unwrap_or(0)
        });
    }
    row("*objects kept*", &|s| s.total_kept());

    // Image sizes.
    let mut sizes: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for s in &stats {
        for (k, v) in &s.image_sizes {
            *sizes.entry(*k).or_default() += v;
        }
    }
    println!("\nimage sizes (kept images):");
    for ((w, h), n) in &sizes {
        println!("  {w}x{h}: {n}");
    }

    // Box sizes.
    println!("\nbox sizes, all splits (continuous px; min / p5 / median / p95 / max):");
    for n in &names {
        let mut ws: Vec<f32> = stats
            .iter()
            .flat_map(|s| s.box_widths.get(n).cloned().unwrap_or_default())
            .collect();
        let mut hs: Vec<f32> = stats
            .iter()
            .flat_map(|s| s.box_heights.get(n).cloned().unwrap_or_default())
            .collect();
        ws.sort_by(f32::total_cmp);
        hs.sort_by(f32::total_cmp);
        let q = |v: &[f32]| {
            [0.0, 0.05, 0.5, 0.95, 1.0]
                .iter()
                .map(|&p| quantile(v, p).map_or("-".into(), |x| format!("{x:.0}")))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        println!("  {n:<22} w {}   h {}", q(&ws), q(&hs));
    }

    println!("\nimages with no box of a class (kept images):");
    for n in &names {
        let v: usize = stats
            .iter()
            .map(|s| s.images_without.get(n).copied().unwrap_or(0))
            .sum();
        println!("  {n}: {v}");
    }

    // Problems.
    let mut kinds: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in &stats {
        for (k, v) in &s.problems {
            *kinds.entry(k.clone()).or_default() += v;
        }
    }
    let total: usize = kinds.values().sum();
    println!("\nproblems: {total}");
    for ((kind, action), n) in &kinds {
        println!("  {kind} ({action}): {n}");
    }
    if !quiet {
        for ds in &datasets {
            for p in ds.problems() {
                println!("  [{}] {}: {p}", ds.split(), p.id);
            }
        }
    }
    ExitCode::SUCCESS
}
