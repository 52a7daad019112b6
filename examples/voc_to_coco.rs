//! Export the ground truth of a Pascal VOC split as a COCO instances JSON file (the `--gt`
//! input of `evaluate`).
//!
//! ```sh
//! cargo run --release --example voc_to_coco -- VOC_DIR --split test --out gt.json [--difficult-as-crowd]
//! ```
//! Strict loading (the first problem is an error); the label set is `VOC_DIR/classes.txt`,
//! else discovered over all splits. Image ids are `1..` in split-file order, `category_id`
//! is the class id + 1; `difficult` boxes get `ignore = 1` (and `iscrowd = 1` with
//! `--difficult-as-crowd`, for pycocotools).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use arfpn_voc::coco::{write_coco, CocoExportOptions};
use arfpn_voc::splits::list_splits;
use arfpn_voc::{dataset_labels, Labels, LoadOptions, VocDataset};
use clap::Parser;

/// Export a VOC split's ground truth to COCO JSON.
#[derive(Parser)]
#[command(name = "voc_to_coco")]
struct Args {
    /// The VOC dataset folder.
    #[arg(value_parser = cli::existing_dir)]
    voc_dir: PathBuf,
    /// The split to export.
    #[arg(long, default_value = "test")]
    split: String,
    /// The COCO JSON file to write.
    #[arg(long, value_parser = cli::output_file)]
    out: PathBuf,
    /// Also mark difficult boxes `iscrowd = 1` (pycocotools ignores `ignore`).
    #[arg(long)]
    difficult_as_crowd: bool,
}

fn run(a: &Args) -> arfpn_voc::Result<usize> {
    let splits = list_splits(&a.voc_dir)?;
    let labels = dataset_labels(&a.voc_dir, &splits)?;
    let ds = VocDataset::open(
        &a.voc_dir,
        &a.split,
        &LoadOptions::strict(Labels::Explicit(labels)),
    )?;
    let opts = CocoExportOptions {
        difficult_as_crowd: a.difficult_as_crowd,
    };
    write_coco(&a.out, ds.samples(), ds.labels(), opts)?;
    Ok(ds.len())
}

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(n) => {
            println!("{}: {n} images of split {:?}", a.out.display(), a.split);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
