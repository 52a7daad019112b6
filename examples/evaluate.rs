//! Evaluates a COCO results file against COCO ground truth with VOC07 11-point, VOC
//! all-point and COCO (pycocotools) rules.
//!
//! ```text
//! cargo run --release --example evaluate -- --gt GT.json --detections DETS.json \
//!     [--iou-strict] [--plus-one] [--max-dets N] [--json]
//!     [--score-threshold T] [--csv OUT.csv] [--curves OUT.csv] [--plot OUT.png|OUT.svg]
//! cargo run --release --example evaluate -- --data VOC_DIR --split test --detections DETS.json ...
//! cargo run --release --example evaluate -- --data VOC_DIR --split test --checkpoint MODEL.safetensors [--json] [--plot DIR/pr.png]
//! ```
//! * `--checkpoint FILE` (with `--data/--split`): runs the detector on the split's images
//!   (whole images, one at a time) instead of reading `--detections`; the checkpoint's class
//!   list must be the dataset's.
//! * `--data VOC_DIR --split S`: the ground truth read straight from a VOC split (strict
//!   loading, label set from `classes.txt` or discovered over all splits), converted as
//!   `voc_to_coco` does: image ids `1..` in split-file order, `category_id` = class id + 1
//!   in the label set's order. Detections must use those ids.
//! * `GT.json`: COCO instances (`images`, `annotations` with `bbox` = `[x, y, w, h]`,
//!   `category_id`, optional `area`, and `difficult`, `ignore` or `iscrowd` = 1 meaning
//!   "ignored"; `categories` with `id` and `name`). `DETS.json`: a COCO results list
//!   (`image_id`, `category_id`, `bbox`, `score`); integral floats such as `1.0` are
//!   accepted as ids, as pycocotools does. An empty list is evaluated (all zeros) with a
//!   warning.
//! * `--iou-strict`: VOC matching with `IoU > 0.5` (py-faster-rcnn / detectron2) instead of
//!   the devkit's `>=`. `--plus-one`: VOC areas with the devkit's `+1` pixel. Both affect
//!   the VOC numbers only; COCO always follows pycocotools.
//! * `--max-dets N`: COCO's per-image-and-class cap (default 100; maxDets = [1, 10, N]).
//! * `--json`: print only the summary JSON object on stdout (see `Report::summary_json`).
//! * `--score-threshold T` (0.5, in [0, 1]): P/R/F1 columns and confusion matrix; `--csv` writes the
//!   per-class table, `--curves` the PR curve points, `--plot` draws the PR curves.

mod cli;

fn main() -> std::process::ExitCode {
    cli::evaluate_cmd::main_with(std::env::args_os())
}
