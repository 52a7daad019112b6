//! Trained arfpn detectors, embedded as safetensors checkpoints (f16 weights, no optimiser
//! state). The model card, with data, recipe, test metrics and intended use, is this crate's
//! `README.md` (`models/README.md` in the repository).
//!
//! Load one with `arfpn::Detector::default_model` (the blood-cell model) or
//! `arfpn::Detector::load_bytes(BLOOD_CELLS, ...)`. This crate holds bytes only, so that the
//! weights can be left out of an application that brings its own (`arfpn`'s
//! `default-model` feature).

/// The blood-cell model: classes `Platelets`, `RBC`, `WBC` (in that order); the `cpu-small` preset (ResNet-18
/// at half width with CBAM attention, 64-channel FPN) trained on BCCD and TXL-PBC's training
/// splits. A checkpoint file as `arfpn::Detector::save_compact` writes it.
pub static BLOOD_CELLS: &[u8] = include_bytes!("../blood_cells.safetensors");

/// The file name [`BLOOD_CELLS`] was built from, for messages.
pub const BLOOD_CELLS_NAME: &str = "arfpn-models/blood_cells.safetensors";
