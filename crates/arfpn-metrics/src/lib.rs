//! Detection metrics that reproduce the reference tools exactly, and the reports a
//! haematologist reads.
//!
//! * [`evaluate_voc`]: PASCAL VOC AP as the official devkit computes it, VOC2007 11-point
//!   ([`VocMethod::ElevenPoint`]) or VOC2010+ all-point ([`VocMethod::AllPoint`]), with the
//!   conventions that differ between tools as explicit options ([`VocOptions`]).
//! * [`evaluate_coco`]: pycocotools' `COCOeval` for boxes: the full precision/recall
//!   arrays, the 12 summary numbers and per-class AP/AP50/AP75.
//! * [`Report`]: both of the above plus per-class precision/recall/F1 at a score threshold
//!   and at the F1-maximising threshold ([`prf_at`], [`best_f1`]), a class-agnostic
//!   [`confusion_matrix`] with a background row/column, rendered as a text table, JSON or CSV;
//!   [`plot_pr_curves`] draws the PR curves to PNG or SVG.
//! * [`CocoGt`]: reads a COCO instances file and a COCO results list.
//!
//! Inputs are plain lists ([`Dataset`] of [`GtBox`] and [`Detection`], boxes as [`Rect`] in
//! `f64`); there is no tensor dependency. All arithmetic is `f64`, in the reference tools'
//! order of operations, so results agree with them to the last bit (the oracle test
//! `tests/oracle.rs` compares ~358,000 values with a Python port of the devkit and with
//! pycocotools: max abs diff 0). Two documented deviations: where the devkit's precision is
//! `0/0` (every detection of a class on difficult boxes) AP is 0, not NaN; and with a
//! custom last `maxDets` the first COCO stat uses that cap (pycocotools hard-codes 100 there
//! and prints -1).
//!
//! ```
//! use arfpn_metrics::{evaluate_voc, Dataset, Detection, GtBox, Rect, VocOptions};
//! let mut data = Dataset::new(1, vec!["cell".into()]);
//! data.gts.push(GtBox::new(0, 0, Rect::from_corners(0.0, 0.0, 10.0, 10.0)));
//! data.dets.push(Detection::new(0, 0, Rect::from_corners(1.0, 0.0, 11.0, 10.0), 0.9));
//! let res = evaluate_voc(&data, &VocOptions::default()).unwrap();
//! assert_eq!(res.map, Some(1.0));
//! ```

#![forbid(unsafe_code)]

mod coco;
mod coco_json;
mod confusion;
mod dataset;
mod error;
mod iou;
mod plot;
mod prf;
mod rect;
mod report;
mod voc;

pub use coco::{
    coco_iou_thresholds, coco_recall_thresholds, evaluate_coco, CocoClassResult, CocoOptions,
    CocoResult, CocoStats,
};
pub use coco_json::CocoGt;
pub use confusion::{confusion_matrix, ConfusionMatrix};
pub use dataset::{Dataset, Detection, GtBox};
pub use error::MetricsError;
pub use iou::{coco_iou, voc_iou, BoxConvention, IouComparison};
pub use plot::{
    envelope_steps, plot_lines, plot_pr_curves, series_color, series_dashed, OKABE_ITO,
};
pub use prf::{best_f1, prf_at, PrfPoint};
pub use rect::Rect;
pub use report::{ClassReport, Report, ReportOptions};
pub use voc::{
    all_point_ap, eleven_point_ap, evaluate_voc, DifficultPolicy, Outcome, PrCurve, VocClassResult,
    VocMethod, VocOptions, VocResult,
};
