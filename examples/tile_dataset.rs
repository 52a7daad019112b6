//! The paper's preprocessing of large fields into a training dataset: Gaussian denoising,
//! tiling into overlapping crops (default 500x375, 30 % overlap) with cut cells relabelled
//! `edge`, and a horizontally flipped extra copy of every training crop holding rare classes.
//!
//! ```sh
//! cargo run --release --example make_synthetic -- out/fields --images 4 --width 1418 --height 1420
//! cargo run --release --example tile_dataset -- out/fields out/crops [--sigma 0.8]
//!     [--tile 500x375] [--overlap 0.3] [--min-visible 0.3] [--rare-share 0.05] [--min-rare 3]
//!     [--overwrite]
//! ```
//! Reads every split of IN_DIR (label set from `IN_DIR/classes.txt`, else discovered over
//! all splits that have objects; an empty split stays empty) and writes OUT_DIR as VOC with
//! the same split names; crops of one field stay in its split. OUT_DIR must be empty; with
//! `--overwrite` the files of a previous run (listed in its `.tile_dataset-written`) are
//! removed first. Problems of the input (truncated images, bad boxes) are listed and left
//! out.
//! Relabelling to `edge` happens only when the label set has a class named `edge`.

mod cli;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use arfpn_voc::oversample::{apply, oversample_plan, rare_classes, OversamplePolicy};
use arfpn_voc::splits::{list_splits, write_split};
use arfpn_voc::tiling::{tile_image, EdgePolicy, TileConfig};
use arfpn_voc::transforms::gaussian_denoise;
use arfpn_voc::{
    dataset_labels, image_io, Labels, LoadOptions, Result, Sample, VocDataset, VocError,
};
use clap::Parser;

/// The file in OUT_DIR listing (one relative path a line) every file a run wrote, so that
/// `--overwrite` removes exactly those and nothing else.
const MARKER: &str = ".tile_dataset-written";

/// Tile the large fields of a VOC dataset into overlapping, denoised crops (the paper's
/// preprocessing), with flipped extra copies of training crops that hold rare classes.
#[derive(Parser)]
#[command(name = "tile_dataset")]
struct Args {
    /// The source dataset (VOC layout).
    #[arg(value_parser = cli::existing_dir)]
    input: PathBuf,
    /// Output folder: must be empty or absent, unless --overwrite.
    output: PathBuf,
    /// Gaussian denoising sigma, px (0 = none).
    #[arg(long, default_value_t = 0.8, value_parser = cli::non_negative_f32, allow_negative_numbers = true)]
    sigma: f32,
    /// Crop size WIDTHxHEIGHT.
    #[arg(long, default_value = "500x375", value_parser = cli::size_wxh)]
    tile: (u32, u32),
    /// Fraction of a crop shared with its neighbour, in [0, 1).
    #[arg(long, default_value_t = 0.3, value_parser = cli::unit_open_f32, allow_negative_numbers = true)]
    overlap: f32,
    /// A cut box is kept (relabelled `edge` if the label set has it) when at least this
    /// fraction of it is inside the crop, in [0, 1].
    #[arg(long, default_value_t = 0.3, value_parser = cli::unit_f32, allow_negative_numbers = true)]
    min_visible: f32,
    /// A class is rare when it has less than this share of the training objects, in [0, 1].
    #[arg(long, default_value_t = 0.05, value_parser = cli::unit_f32, allow_negative_numbers = true)]
    rare_share: f32,
    /// A training crop with at least this many rare-class objects gets a flipped copy.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    min_rare: u64,
    /// Replace the output of a previous run in OUT_DIR: the files listed in its
    /// `.tile_dataset-written` are removed first (other files are left alone).
    #[arg(long)]
    overwrite: bool,
}

/// Check OUT_DIR before any work: absent or empty, or (with `--overwrite`) holding a
/// previous run's marker, whose files are removed. Returns the open marker file.
fn prepare_output(out: &Path, overwrite: bool) -> Result<std::fs::File> {
    let io = |p: &Path, e| VocError::Io {
        path: p.to_path_buf(),
        source: e,
    };
    if out.exists() && !out.is_dir() {
        return Err(VocError::InvalidArgument {
            name: "OUT_DIR",
            reason: format!("{} is not a directory", out.display()),
        });
    }
    let entries: Vec<PathBuf> = if out.is_dir() {
        std::fs::read_dir(out)
            .map_err(|e| io(out, e))?
            .map(|e| e.map(|e| e.path()).map_err(|err| io(out, err)))
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    let marker = out.join(MARKER);
    if !entries.is_empty() {
        if !overwrite {
            return Err(VocError::InvalidArgument {
                name: "OUT_DIR",
                reason: format!(
                    "{} is not empty; pass --overwrite to replace a previous tile_dataset run, or choose an empty folder",
                    out.display()
                ),
            });
        }
        let text = match std::fs::read_to_string(&marker) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VocError::InvalidArgument {
                    name: "OUT_DIR",
                    reason: format!(
                        "{} is not empty and has no {MARKER} of a previous tile_dataset run: not removing files this program did not write",
                        out.display()
                    ),
                })
            }
            Err(e) => return Err(io(&marker, e)),
        };
        for rel in text.lines().filter(|l| !l.is_empty()) {
            let rel = Path::new(rel);
            // Only plain relative paths below OUT_DIR (a hand-edited marker cannot reach out).
            if rel.is_absolute()
                || rel
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(VocError::InvalidArgument {
                    name: "OUT_DIR",
                    reason: format!("{}: unsafe entry {rel:?}", marker.display()),
                });
            }
            let p = out.join(rel);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&p, e)),
            }
        }
    }
    for d in ["Annotations", "JPEGImages", "ImageSets/Main"] {
        let p = out.join(d);
        std::fs::create_dir_all(&p).map_err(|e| io(&p, e))?;
    }
    std::fs::File::create(&marker).map_err(|e| io(&marker, e))
}

/// Appends `rel` to the marker (before the file is written, so an interrupted run can be
/// cleared too).
fn record(marker: &mut std::fs::File, out: &Path, rel: &str) -> Result<PathBuf> {
    writeln!(marker, "{rel}").map_err(|e| VocError::Io {
        path: out.join(MARKER),
        source: e,
    })?;
    Ok(out.join(rel))
}

fn run(a: &Args) -> Result<()> {
    let tile = TileConfig {
        tile_width: a.tile.0,
        tile_height: a.tile.1,
        overlap: a.overlap,
        edge: EdgePolicy {
            min_visible: a.min_visible,
            ..EdgePolicy::default()
        },
    };
    let splits: Vec<String> = list_splits(&a.input)?
        .into_iter()
        .filter(|s| s != "trainval")
        .collect();
    if splits.is_empty() {
        return Err(VocError::InvalidArgument {
            name: "IN_DIR",
            reason: format!("{}: no split file in ImageSets/Main", a.input.display()),
        });
    }
    // One label set for every split (ids agree between them): classes.txt, else the
    // classes of the splits that have objects.
    let label_set = dataset_labels(&a.input, &splits)?;
    let opts = LoadOptions::lenient(Labels::Explicit(label_set.clone()));
    let mut marker = prepare_output(&a.output, a.overwrite)?;
    for split in splits {
        let ds = VocDataset::open(&a.input, &split, &opts)?;
        if ds.is_empty() && ds.problems().is_empty() {
            println!("{split}: empty split");
        }
        for p in ds.problems() {
            eprintln!("[{split}] {p}");
        }
        let mut tile_cfg = tile;
        tile_cfg.edge = EdgePolicy {
            relabel_as: ds.labels().id("edge"),
            ..tile.edge
        };
        let mut crops: Vec<(arfpn_voc::RgbImage, Sample)> = Vec::new();
        let mut dropped = 0;
        for i in 0..ds.len() {
            let item = match ds.load(i) {
                Ok(item) => item,
                Err(e) => {
                    // Checked at open already; a file that changed since is reported too.
                    eprintln!("[{split}] [dropped image] {e}");
                    continue;
                }
            };
            let (img, s) = gaussian_denoise(&item.image, &item.sample, a.sigma)?;
            for (crop, t) in tile_image(&img, &s, &tile_cfg)? {
                dropped += t.dropped;
                crops.push((crop, t.sample));
            }
        }
        let samples: Vec<Sample> = crops.iter().map(|c| c.1.clone()).collect();
        let plan = if split == "train" {
            let policy = OversamplePolicy {
                rare_classes: rare_classes(&samples, ds.labels().len(), a.rare_share),
                min_rare_objects: a.min_rare as usize,
            };
            oversample_plan(&samples, &policy)?
        } else {
            oversample_plan(
                &samples,
                &OversamplePolicy {
                    rare_classes: vec![],
                    min_rare_objects: 1,
                },
            )?
        };
        let mut ids = Vec::with_capacity(plan.len());
        for entry in &plan {
            let (img, mut s) = apply(*entry, &crops[entry.index].0, &crops[entry.index].1)?;
            s.image_path = record(&mut marker, &a.output, &format!("JPEGImages/{}.jpg", s.id))?;
            image_io::save_rgb(&img, &s.image_path)?;
            let xml = record(&mut marker, &a.output, &format!("Annotations/{}.xml", s.id))?;
            s.to_voc(ds.labels())?.write(&xml)?;
            ids.push(s.id);
        }
        record(
            &mut marker,
            &a.output,
            &format!("ImageSets/Main/{split}.txt"),
        )?;
        write_split(&a.output, &split, &ids)?;
        let flipped = plan.iter().filter(|p| p.flip).count();
        println!(
            "{split}: {} fields -> {} crops (+{flipped} flipped rare-class crops), {dropped} cut boxes below min-visible dropped",
            ds.len(),
            samples.len()
        );
    }
    let p = record(&mut marker, &a.output, "classes.txt")?;
    std::fs::write(&p, label_set.names().join("\n") + "\n").map_err(|e| VocError::Io {
        path: p.clone(),
        source: e,
    })?;
    Ok(())
}

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
