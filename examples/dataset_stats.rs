//! Per-split and per-class statistics of a Pascal VOC dataset, and every problem found.
//!
//! ```sh
//! cargo run --release --example dataset_stats -- DATASET_DIR [--splits train,val,test]
//!     [--labels RBC,WBC,Platelets] [--strict] [--quiet]
//! ```
//! Loads each split leniently (unless `--strict`), with the label set discovered from the
//! annotations unless `--labels` is given, and prints: images and objects per split and
//! class (objects *as annotated*, i.e. including boxes the loader had to drop, as dataset
//! READMEs count them, and the kept count), image sizes, box size distribution per class,
//! images lacking a class, and every problem (`--quiet`: only the counts per kind).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use arfpn_voc::splits::list_splits;
use arfpn_voc::stats::{quantile, SplitStats};
use arfpn_voc::{LabelSet, Labels, LoadOptions, Mode, VocDataset};

fn usage() -> ExitCode {
    eprintln!(
        "usage: dataset_stats DATASET_DIR [--splits a,b,..] [--labels A,B,..] [--strict] [--quiet]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut root: Option<PathBuf> = None;
    let mut splits: Option<Vec<String>> = None;
    let mut labels = Labels::Discover;
    let mut mode = Mode::Lenient;
    let mut quiet = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--splits" => match args.next() {
                Some(v) => splits = Some(v.split(',').map(str::to_string).collect()),
                None => return usage(),
            },
            "--labels" => match args.next().map(|v| LabelSet::new(v.split(','))) {
                Some(Ok(l)) => labels = Labels::Explicit(l),
                Some(Err(e)) => {
                    eprintln!("--labels: {e}");
                    return ExitCode::from(2);
                }
                None => return usage(),
            },
            "--strict" => mode = Mode::Strict,
            "--quiet" => quiet = true,
            "-h" | "--help" => return usage(),
            _ if root.is_none() && !a.starts_with("--") => root = Some(PathBuf::from(a)),
            _ => return usage(),
        }
    }
    let Some(root) = root else { return usage() };
    let splits = match splits {
        Some(s) => s,
        None => match list_splits(&root) {
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
    // Discover the label set over all splits together so ids agree between splits.
    if labels == Labels::Discover {
        let mut names = std::collections::BTreeSet::new();
        for split in &splits {
            let opts = LoadOptions {
                mode: Mode::Lenient,
                image_check: arfpn_voc::ImageCheck::None,
                near_duplicate_iou: None,
                ..Default::default()
            };
            match VocDataset::open(&root, split, &opts) {
                Ok(ds) => names.extend(ds.labels().names().iter().cloned()),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        match LabelSet::new(names) {
            Ok(l) => labels = Labels::Explicit(l),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let opts = LoadOptions {
        labels,
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
            Err(e) => {
                eprintln!("error (strict mode): {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let elapsed = t0.elapsed();
    let names: Vec<String> = datasets[0].labels().names().to_vec();
    println!(
        "dataset {}  (classes: {})",
        root.display(),
        names.join(", ")
    );
    println!(
        "loaded and validated {} splits in {:.2}s (XML parse + image header check)\n",
        splits.len(),
        elapsed.as_secs_f64()
    );

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
