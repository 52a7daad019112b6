//! # arfpn-lab — the ARFPN detector at the bench
//!
//! What a laboratory does with a trained [`Detector`](arfpn_model::Detector) beyond `detect`:
//! whole smear fields of any size, images at another magnification than the training data's,
//! pictures, exports for other tools, and the differential-count report. Every function takes
//! the detector (or its detections) as an argument; nothing here trains.
//!
//! ```no_run
//! use arfpn_lab::{class_counts, detect_field, FieldTiling};
//! use arfpn_model::Detector;
//! use candle_core::Device;
//!
//! let detector = Detector::load("model.safetensors", &Device::Cpu)?;
//! let field = arfpn_voc::image_io::load_rgb("field.jpg".as_ref())?;
//! let detections = detect_field(&detector, &field, &FieldTiling::default())?.above(0.5);
//! for (class, n) in class_counts(&detections, detector.classes()) {
//!     println!("{class:>12}: {n}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | file | what |
//! |---|---|
//! | `field.rs` | [`detect_field`], [`detect_tiled`], [`FieldTiling`]: whole fields in overlapping tiles, merged so each cell counts once |
//! | `scale.rs` | [`detect_at_scale`]: detection after resizing an image to the training magnification |
//! | `draw.rs` | [`draw_detections`]: boxes in class colours ([`class_colour`]) |
//! | `export.rs` | [`coco_results`], [`voc_annotation`], [`class_counts`] |
//! | `report.rs` | [`count_report_html`]: the differential-count page |
//!
//! Errors are the model's [`DetectorError`](arfpn_model::DetectorError).

mod draw;
mod export;
mod field;
mod report;
mod scale;

pub use draw::{class_colour, draw_detections, CLASS_COLOURS};
pub use export::{class_counts, coco_results, voc_annotation, CocoDetection};
pub use field::{detect_field, detect_tiled, FieldTiling};
pub use report::{class_totals, count_report_html, percent, ReportImage};
pub use scale::detect_at_scale;
