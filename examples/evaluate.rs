//! Evaluates a COCO results file against COCO ground truth with VOC07 11-point, VOC
//! all-point and COCO (pycocotools) rules.
//!
//! ```text
//! cargo run --release --example evaluate -- --gt GT.json --detections DETS.json \
//!     [--iou-strict] [--plus-one] [--max-dets N] [--json]
//!     [--score-threshold T] [--csv OUT.csv] [--plot OUT.png|OUT.svg]
//! ```
//! * `GT.json`: COCO instances (`images`, `annotations` with `bbox` = `[x, y, w, h]`,
//!   `category_id`, optional `area`, and `difficult`, `ignore` or `iscrowd` = 1 meaning
//!   "ignored"; `categories` with `id` and `name`). `DETS.json`: a COCO results list
//!   (`image_id`, `category_id`, `bbox`, `score`).
//! * `--iou-strict`: VOC matching with `IoU > 0.5` (py-faster-rcnn / detectron2) instead of
//!   the devkit's `>=`. `--plus-one`: VOC areas with the devkit's `+1` pixel. Both affect
//!   the VOC numbers only; COCO always follows pycocotools.
//! * `--max-dets N`: COCO's per-image-and-class cap (default 100; maxDets = [1, 10, N]).
//! * `--json`: print only the summary JSON object on stdout (see `Report::summary_json`).
//! * `--score-threshold T` (0.5): P/R/F1 columns and confusion matrix; `--csv`, `--plot`
//!   write the per-class table and the VOC all-point PR curves.

use std::process::ExitCode;

use arfpn_metrics::{
    plot_pr_curves, BoxConvention, CocoGt, CocoOptions, IouComparison, Report, ReportOptions,
    VocOptions,
};

struct Args {
    gt: String,
    dets: String,
    strict: bool,
    plus_one: bool,
    max_dets: usize,
    json: bool,
    score_threshold: f64,
    csv: Option<String>,
    plot: Option<String>,
}

const USAGE: &str =
    "usage: evaluate --gt GT.json --detections DETS.json [--iou-strict] [--plus-one] \
[--max-dets N] [--json] [--score-threshold T] [--csv OUT.csv] [--plot OUT.png|OUT.svg]";

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        gt: String::new(),
        dets: String::new(),
        strict: false,
        plus_one: false,
        max_dets: 100,
        json: false,
        score_threshold: 0.5,
        csv: None,
        plot: None,
    };
    let mut gt = None;
    let mut dets = None;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--gt" => gt = Some(value("--gt")?),
            "--detections" => dets = Some(value("--detections")?),
            "--iou-strict" => a.strict = true,
            "--plus-one" => a.plus_one = true,
            "--json" => a.json = true,
            "--max-dets" => {
                let v = value("--max-dets")?;
                a.max_dets = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--max-dets: {v:?} is not a positive integer"))?;
            }
            "--score-threshold" => {
                let v = value("--score-threshold")?;
                a.score_threshold = v
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite())
                    .ok_or_else(|| format!("--score-threshold: {v:?} is not a number"))?;
            }
            "--csv" => a.csv = Some(value("--csv")?),
            "--plot" => a.plot = Some(value("--plot")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    a.gt = gt.ok_or_else(|| format!("--gt is required\n{USAGE}"))?;
    a.dets = dets.ok_or_else(|| format!("--detections is required\n{USAGE}"))?;
    Ok(a)
}

fn run(a: &Args) -> Result<(), String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("cannot read {p}: {e}"));
    let mut gt = CocoGt::parse(&read(&a.gt)?).map_err(|e| format!("{}: {e}", a.gt))?;
    gt.add_results(&read(&a.dets)?)
        .map_err(|e| format!("{}: {e}", a.dets))?;
    let opts = ReportOptions {
        voc: VocOptions {
            comparison: if a.strict {
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
        coco: CocoOptions::with_max_dets(a.max_dets),
        score_threshold: a.score_threshold,
    };
    let report = Report::evaluate(&gt.dataset, &opts).map_err(|e| e.to_string())?;
    if let Some(p) = &a.csv {
        std::fs::write(p, report.to_csv()).map_err(|e| format!("cannot write {p}: {e}"))?;
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

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
