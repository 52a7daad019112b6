//! The paper's preprocessing of large fields into a training dataset: Gaussian denoising,
//! tiling into overlapping crops (default 500x375, 30 % overlap) with cut cells relabelled
//! `edge`, and a horizontally flipped extra copy of every training crop holding rare classes.
//!
//! ```sh
//! cargo run --release --example make_synthetic -- out/fields --images 4 --width 1418 --height 1420
//! cargo run --release --example tile_dataset -- out/fields out/crops [--sigma 0.8]
//!     [--tile 500x375] [--overlap 0.3] [--min-visible 0.3] [--rare-share 0.05] [--min-rare 3]
//! ```
//! Reads every split of IN_DIR (label set from `IN_DIR/classes.txt`, else discovered) and
//! writes OUT_DIR as VOC with the same split names; crops of one field stay in its split.
//! Relabelling to `edge` happens only when the label set has a class named `edge`.

use std::path::PathBuf;
use std::process::ExitCode;

use arfpn_voc::oversample::{apply, oversample_plan, rare_classes, OversamplePolicy};
use arfpn_voc::splits::{list_splits, write_split};
use arfpn_voc::tiling::{tile_image, EdgePolicy, TileConfig};
use arfpn_voc::transforms::gaussian_denoise;
use arfpn_voc::{image_io, LabelSet, Labels, LoadOptions, Result, Sample, VocDataset, VocError};

struct Args {
    input: PathBuf,
    output: PathBuf,
    sigma: f32,
    tile: TileConfig,
    rare_share: f32,
    min_rare: usize,
}

fn parse() -> Option<Args> {
    let mut it = std::env::args().skip(1);
    let mut pos = Vec::new();
    let mut a = Args {
        input: PathBuf::new(),
        output: PathBuf::new(),
        sigma: 0.8,
        tile: TileConfig::default(),
        rare_share: 0.05,
        min_rare: 3,
    };
    while let Some(x) = it.next() {
        match x.as_str() {
            "--sigma" => a.sigma = it.next()?.parse().ok()?,
            "--overlap" => a.tile.overlap = it.next()?.parse().ok()?,
            "--min-visible" => a.tile.edge.min_visible = it.next()?.parse().ok()?,
            "--rare-share" => a.rare_share = it.next()?.parse().ok()?,
            "--min-rare" => a.min_rare = it.next()?.parse().ok()?,
            "--tile" => {
                let v = it.next()?;
                let (w, h) = v.split_once('x')?;
                a.tile.tile_width = w.parse().ok()?;
                a.tile.tile_height = h.parse().ok()?;
            }
            _ if !x.starts_with("--") => pos.push(PathBuf::from(x)),
            _ => return None,
        }
    }
    if pos.len() != 2 {
        return None;
    }
    a.output = pos.pop()?;
    a.input = pos.pop()?;
    Some(a)
}

fn run(a: &Args) -> Result<()> {
    let labels = match std::fs::read_to_string(a.input.join("classes.txt")) {
        Ok(t) => Labels::Explicit(LabelSet::new(
            t.lines().map(str::trim).filter(|l| !l.is_empty()),
        )?),
        Err(_) => Labels::Discover,
    };
    let opts = LoadOptions::lenient(labels);
    for d in ["Annotations", "JPEGImages"] {
        let p = a.output.join(d);
        std::fs::create_dir_all(&p).map_err(|e| VocError::Io {
            path: p.clone(),
            source: e,
        })?;
    }
    for split in list_splits(&a.input)? {
        if split == "trainval" {
            continue;
        }
        let ds = VocDataset::open(&a.input, &split, &opts)?;
        for p in ds.problems() {
            eprintln!("[{split}] {p}");
        }
        let mut tile_cfg = a.tile;
        tile_cfg.edge = EdgePolicy {
            relabel_as: ds.labels().id("edge"),
            ..a.tile.edge
        };
        let mut crops: Vec<(arfpn_voc::RgbImage, Sample)> = Vec::new();
        let mut dropped = 0;
        for i in 0..ds.len() {
            let item = ds.load(i)?;
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
                min_rare_objects: a.min_rare,
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
            s.image_path = a.output.join("JPEGImages").join(format!("{}.jpg", s.id));
            image_io::save_rgb(&img, &s.image_path)?;
            s.to_voc(ds.labels())?
                .write(&a.output.join("Annotations").join(format!("{}.xml", s.id)))?;
            ids.push(s.id);
        }
        write_split(&a.output, &split, &ids)?;
        let flipped = plan.iter().filter(|p| p.flip).count();
        println!(
            "{split}: {} fields -> {} crops (+{flipped} flipped rare-class crops), {dropped} cut boxes below min-visible dropped",
            ds.len(),
            samples.len()
        );
    }
    let names = match &opts.labels {
        Labels::Explicit(l) => l.names().join("\n") + "\n",
        Labels::Discover => String::new(),
    };
    if !names.is_empty() {
        let p = a.output.join("classes.txt");
        std::fs::write(&p, names).map_err(|e| VocError::Io {
            path: p.clone(),
            source: e,
        })?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(a) = parse() else {
        eprintln!("usage: tile_dataset IN_DIR OUT_DIR [--sigma S] [--tile WxH] [--overlap F] [--min-visible F] [--rare-share F] [--min-rare N]");
        return ExitCode::from(2);
    };
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
