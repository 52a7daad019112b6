//! The `evaluate` command's body (`examples/evaluate.rs` is its `main`), shared so that a
//! program that registers its own modules (`examples/custom_attention.rs`) runs the same
//! command after registering them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use arfpn_metrics::{
    plot_pr_curves, BoxConvention, CocoGt, CocoOptions, IouComparison, Report, ReportOptions,
    VocOptions,
};
use arfpn_voc::coco::{to_coco_json, CocoExportOptions};
use arfpn_voc::splits::list_splits;
use arfpn_voc::{dataset_labels, Labels, LoadOptions, VocDataset};
use clap::{ArgGroup, Parser};

/// Evaluate COCO-format detections with VOC07 11-point, VOC all-point and COCO rules.
#[derive(Parser)]
#[command(name = "evaluate")]
#[command(group(ArgGroup::new("ground_truth").required(true).args(["gt", "data"])))]
#[command(group(ArgGroup::new("source").required(true).args(["detections", "checkpoint"])))]
struct Args {
    /// Ground truth: a COCO instances file.
    #[arg(long, value_parser = super::existing_file)]
    gt: Option<PathBuf>,
    /// Ground truth: a Pascal VOC folder (with --split).
    #[arg(long, value_parser = super::existing_dir, requires = "split")]
    data: Option<PathBuf>,
    /// The VOC split to evaluate against (with --data).
    #[arg(long, requires = "data")]
    split: Option<String>,
    /// The detections: a COCO results list.
    #[arg(long, value_parser = super::existing_file)]
    detections: Option<PathBuf>,
    /// Or a detector checkpoint to run on the split (needs --data and --split).
    #[arg(long, value_parser = super::existing_file, requires = "data")]
    checkpoint: Option<PathBuf>,
    /// VOC matching with IoU > 0.5 (py-faster-rcnn, detectron2) instead of the devkit's >=.
    #[arg(long)]
    iou_strict: bool,
    /// VOC areas with the devkit's +1 pixel.
    #[arg(long)]
    plus_one: bool,
    /// COCO's per-image-and-class detection cap (maxDets = [1, 10, N]).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    max_dets: u64,
    /// Print only the summary JSON object.
    #[arg(long)]
    json: bool,
    /// Precision of the network's matrix products (with --checkpoint): f32, or bf16 (bf16 operands, f32
    /// accumulation; runs on CPUs with Intel AMX, f32 elsewhere).
    #[arg(long, default_value = "f32")]
    precision: arfpn::MatmulPrecision,
    /// Score threshold of the P/R/F1 columns and the confusion matrix, in [0, 1].
    #[arg(long, default_value_t = 0.5, value_parser = super::unit_f64, allow_negative_numbers = true)]
    score_threshold: f64,
    /// Write the per-class table as CSV.
    #[arg(long, value_parser = super::output_file)]
    csv: Option<PathBuf>,
    /// Write the PR curve points as CSV.
    #[arg(long, value_parser = super::output_file)]
    curves: Option<PathBuf>,
    /// Draw the PR curves (.png or .svg).
    #[arg(long, value_parser = plot_file)]
    plot: Option<PathBuf>,
}

fn plot_file(s: &str) -> Result<PathBuf, String> {
    let p = super::output_file(s)?;
    match p
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png" | "svg") => Ok(p),
        _ => Err(format!("{s}: the file name must end in .png or .svg")),
    }
}

fn read(p: &Path) -> Result<String, String> {
    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// The ground truth as COCO JSON text, from `--gt` or from `--data/--split`.
fn ground_truth(a: &Args) -> Result<String, String> {
    if let Some(gt) = &a.gt {
        return read(gt);
    }
    let (Some(root), Some(split)) = (&a.data, &a.split) else {
        return Err("give --gt GT.json or --data VOC_DIR --split NAME".into());
    };
    let splits = list_splits(root).map_err(|e| e.to_string())?;
    let labels = dataset_labels(root, &splits).map_err(|e| e.to_string())?;
    let ds = VocDataset::open(root, split, &LoadOptions::strict(Labels::Explicit(labels)))
        .map_err(|e| e.to_string())?;
    to_coco_json(ds.samples(), ds.labels(), CocoExportOptions::default()).map_err(|e| e.to_string())
}

/// Runs the checkpoint on the `--data/--split` images; COCO results with image ids `1..` in
/// split order, as `ground_truth` numbers them.
fn run_checkpoint(a: &Args, checkpoint: &Path) -> Result<String, String> {
    let (Some(root), Some(split)) = (&a.data, &a.split) else {
        return Err("--checkpoint needs --data VOC_DIR --split NAME".into());
    };
    let mut detector =
        arfpn::Detector::load(checkpoint, &candle_core::Device::Cpu).map_err(|e| e.to_string())?;
    detector.set_matmul_precision(a.precision);
    let splits = list_splits(root).map_err(|e| e.to_string())?;
    let labels = dataset_labels(root, &splits).map_err(|e| e.to_string())?;
    if labels.names() != detector.classes() {
        return Err(format!(
            "{} was trained on classes {:?}, {} has {:?}",
            checkpoint.display(),
            detector.classes(),
            root.display(),
            labels.names()
        ));
    }
    let ds = VocDataset::open(root, split, &LoadOptions::strict(Labels::Explicit(labels)))
        .map_err(|e| e.to_string())?;
    let (dets, _) = arfpn::train::detect_all(&detector, &ds).map_err(|e| e.to_string())?;
    let results: Vec<arfpn::lab::CocoDetection> = dets
        .iter()
        .enumerate()
        .flat_map(|(i, d)| arfpn::lab::coco_results(d, (i + 1) as u64))
        .collect();
    serde_json::to_string(&results).map_err(|e| e.to_string())
}

fn run(a: &Args) -> Result<(), String> {
    let gt_name = match (&a.gt, &a.data) {
        (Some(p), _) => p.display().to_string(),
        (None, Some(d)) => format!(
            "{} split {:?}",
            d.display(),
            a.split.as_deref().unwrap_or("")
        ),
        (None, None) => String::new(),
    };
    let mut gt = CocoGt::parse(&ground_truth(a)?).map_err(|e| format!("{gt_name}: {e}"))?;
    let (dets, results) = match (&a.checkpoint, &a.detections) {
        (Some(ck), _) => (ck.display().to_string(), run_checkpoint(a, ck)?),
        (None, Some(d)) => (d.display().to_string(), read(d)?),
        (None, None) => return Err("give --detections DETS.json or --checkpoint FILE".into()),
    };
    gt.add_results(&results)
        .map_err(|e| format!("{dets}: {e}"))?;
    if gt.dataset.dets.is_empty() {
        eprintln!("warning: {dets} holds no detections: every AP and recall is 0");
    }
    let opts = ReportOptions {
        voc: VocOptions {
            comparison: if a.iou_strict {
                IouComparison::Greater
            } else {
                IouComparison::GreaterEqual
            },
            convention: if a.plus_one {
                BoxConvention::PlusOne
            } else {
                BoxConvention::Continuous
            },
            ..VocOptions::default()
        },
        coco: CocoOptions::with_max_dets(a.max_dets as usize),
        score_threshold: a.score_threshold,
    };
    let report = Report::evaluate(&gt.dataset, &opts).map_err(|e| e.to_string())?;
    let write = |p: &Path, text: String| {
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    if let Some(p) = &a.csv {
        write(p, report.to_csv())?;
    }
    if let Some(p) = &a.curves {
        write(p, report.pr_curves_csv())?;
    }
    if let Some(p) = &a.plot {
        plot_pr_curves(&report.voc, &gt.dataset.class_names, p).map_err(|e| e.to_string())?;
    }
    if a.json {
        println!("{}", report.summary_json());
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

/// Runs the command on `args` (the program name first, as `std::env::args_os()` gives them).
pub fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = Args::parse_from(args);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
