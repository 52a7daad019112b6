//! What the examples share (`mod cli;` in each): argument value parsers (every parser names
//! what it expected, so clap's error names the argument and the bad value), the training
//! progress display, and the bodies of the `train` and `evaluate` commands
//! ([`train_cmd`], [`evaluate_cmd`]), which `examples/custom_attention.rs` runs after
//! registering its module.

#![allow(dead_code)] // each example uses a subset

use std::path::Path;

pub mod evaluate_cmd;
pub mod http;
pub mod train_cmd;

/// A finite number.
pub fn finite_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!("{s:?} is not a finite number")),
    }
}

/// A number in `[0, 1]`.
pub fn unit_f64(s: &str) -> Result<f64, String> {
    let x = finite_f64(s)?;
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{x} is outside [0, 1]"))
    }
}

/// A number in `[0, 1]`, as f32.
pub fn unit_f32(s: &str) -> Result<f32, String> {
    unit_f64(s).map(|x| x as f32)
}

/// A number in `[0, 1)`, as f32.
pub fn unit_open_f32(s: &str) -> Result<f32, String> {
    let x = unit_f64(s)?;
    if x < 1.0 {
        Ok(x as f32)
    } else {
        Err(format!("{x} is outside [0, 1)"))
    }
}

/// A finite number `>= 0`, as f32.
pub fn non_negative_f32(s: &str) -> Result<f32, String> {
    let x = finite_f64(s)?;
    if x >= 0.0 {
        Ok(x as f32)
    } else {
        Err(format!("{x} is negative"))
    }
}

/// `WxH`, both positive integers (e.g. `500x375`).
pub fn size_wxh(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not WIDTHxHEIGHT with positive integers (e.g. 500x375)");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    match (w.parse::<u32>(), h.parse::<u32>()) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(bad()),
    }
}

/// A comma-separated list of split names, none empty (`train,val,test`).
pub fn split_list(s: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = s.split(',').map(|x| x.trim().to_string()).collect();
    if names.iter().any(|n| n.is_empty()) {
        return Err(format!(
            "{s:?}: empty split name (give names such as train,val,test)"
        ));
    }
    if let Some(n) = names.iter().find(|n| n.contains(['/', '\\'])) {
        return Err(format!("{n:?} is a path, not a split name"));
    }
    Ok(names)
}

/// A comma-separated, non-empty list of class names.
pub fn label_list(s: &str) -> Result<arfpn_voc::LabelSet, String> {
    arfpn_voc::LabelSet::new(s.split(',')).map_err(|e| e.to_string())
}

/// An existing file (checked before any work starts).
pub fn existing_file(s: &str) -> Result<std::path::PathBuf, String> {
    let p = Path::new(s);
    if p.is_file() {
        Ok(p.to_path_buf())
    } else if p.exists() {
        Err(format!("{s}: not a file"))
    } else {
        Err(format!("{s}: no such file"))
    }
}

/// An existing directory.
pub fn existing_dir(s: &str) -> Result<std::path::PathBuf, String> {
    let p = Path::new(s);
    if p.is_dir() {
        Ok(p.to_path_buf())
    } else if p.exists() {
        Err(format!("{s}: not a directory"))
    } else {
        Err(format!("{s}: no such directory"))
    }
}

/// An output file whose folder exists (so a typo fails before the work, not after).
pub fn output_file(s: &str) -> Result<std::path::PathBuf, String> {
    let p = Path::new(s);
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        Ok(p.to_path_buf())
    } else {
        Err(format!("{s}: folder {} does not exist", dir.display()))
    }
}

static STOP: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
    std::sync::OnceLock::new();

extern "C" fn on_sigint(_: libc::c_int) {
    // Async-signal-safe: an atomic load and an atomic store.
    if let Some(flag) = STOP.get() {
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // A second Ctrl-C ends the process at once.
    // SAFETY: restoring the default disposition is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
}

/// On the first Ctrl-C (SIGINT), sets `flag` (the trainer then writes a final checkpoint
/// and returns); a second one exits at once.
pub fn stop_on_ctrl_c(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    if STOP.set(flag).is_ok() {
        let handler: extern "C" fn(libc::c_int) = on_sigint;
        // SAFETY: installing a handler that only touches atomics.
        unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
    }
}

/// What to do about an image whose cells look larger or smaller than the training data's
/// (`detect --rescale`, `serve`'s `rescale=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rescale {
    /// No estimate, no change.
    Off,
    /// Estimate; report a confident mismatch, change nothing.
    Warn,
    /// Estimate; rescale on a confident mismatch.
    Auto,
}

impl std::str::FromStr for Rescale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "warn" => Ok(Self::Warn),
            "auto" => Ok(Self::Auto),
            other => Err(format!("{other:?}: expected off, warn or auto")),
        }
    }
}

/// One image's scale from its own cell-size estimate: only a confident estimate that
/// differs from training by more than 1.25× matters — `Auto` rescales, `Warn` reports it.
pub struct EstimatedScale {
    /// The estimate (`None` with `Rescale::Off` or when the image gives none).
    pub estimate: Option<arfpn::CellSizeEstimate>,
    /// The factor to resize the image by (1 unless `Auto` rescales).
    pub factor: f32,
    /// The sizes compared, or why the image is left alone (`None` with `Rescale::Off`).
    pub reason: Option<String>,
    /// A confident mismatch that `Warn` left alone.
    pub unheeded: bool,
}

/// [`EstimatedScale`] for `image` against the training data `train`.
pub fn estimated_scale(
    mode: Rescale,
    train: &arfpn::DataInfo,
    image: &arfpn::voc::RgbImage,
) -> EstimatedScale {
    if mode == Rescale::Off {
        return EstimatedScale {
            estimate: None,
            factor: 1.0,
            reason: None,
            unheeded: false,
        };
    }
    let estimate = arfpn::estimate_cell_size_with_confidence(image);
    let (factor, reason, unheeded) = match train.rescale_decision(estimate) {
        arfpn::RescaleDecision::Rescale { factor, reason } if mode == Rescale::Auto => {
            (factor, reason, false)
        }
        arfpn::RescaleDecision::Rescale { reason, .. } => (1.0, reason, true),
        arfpn::RescaleDecision::Keep { reason } => (1.0, reason, false),
    };
    EstimatedScale {
        estimate,
        factor,
        reason: Some(reason),
        unheeded,
    }
}

/// Whole-field tiles of side `tile` px (images larger than that are detected tile by tile),
/// overlapping by a quarter tile, at most 160 px.
pub fn field_tiling(tile: usize) -> arfpn::lab::FieldTiling {
    arfpn::lab::FieldTiling {
        tile,
        overlap: (tile / 4).min(160),
        ..arfpn::lab::FieldTiling::default()
    }
}

/// Runs an example's body and turns its error into `error: …` on stderr and exit code 1
/// (the `Display` text, not the `Debug` dump `main` would print).
pub fn exit_with(result: Result<(), Box<dyn std::error::Error>>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The training commands' progress on stderr (a [`arfpn::train::TrainObserver`]): an indicatif
/// bar with step, loss components, learning rate, images/s and ETA when stderr is a
/// terminal, and plain lines (one every `log_every` steps) when it is a file or a pipe.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// A bar for a run that ends at step `steps`, starting at `start` (resumed runs).
    pub fn new(start: usize, steps: usize) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(steps as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} {msg} [{elapsed_precise}, eta {eta_precise}]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_position(start as u64);
            b.reset_eta();
            b
        });
        Self { bar }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.abandon();
        }
    }
}

impl arfpn::train::TrainObserver for Progress {
    fn on_step(&mut self, e: &arfpn::train::StepEvent) {
        let l = &e.losses;
        match &self.bar {
            Some(b) => {
                b.set_position(e.step as u64);
                b.set_message(format!(
                    "loss {:.3} (rpn {:.3}/{:.3}, cls {:.3}, box {:.3}) lr {:.2e} {:.2} img/s",
                    l.total, l.loss_objectness, l.loss_rpn_box_reg, l.loss_classifier, l.loss_box_reg, e.lr, e.images_per_s
                ));
            }
            None => eprintln!(
                "step {:>6}/{} loss {:.3} (rpn {:.3}/{:.3}, cls {:.3}, box {:.3}) lr {:.2e} {:.2} img/s, {:.0} s, eta {:.0} s",
                e.step, e.steps, l.total, l.loss_objectness, l.loss_rpn_box_reg, l.loss_classifier, l.loss_box_reg, e.lr,
                e.images_per_s, e.elapsed_s, e.eta_s
            ),
        }
    }
    fn on_eval(&mut self, e: &arfpn::train::EvalEvent) {
        self.line(format!(
            "step {:>6}: val mAP@0.5 {:.4}{}",
            e.step,
            e.map50,
            if e.best { " (best)" } else { "" }
        ));
    }
    fn on_skip(&mut self, e: &arfpn::train::SkipEvent) {
        self.line(format!(
            "step {:>6}: skipped, non-finite {} ({} skipped so far)",
            e.step,
            e.terms.join(", "),
            e.skipped_total
        ));
    }
    fn on_checkpoint(&mut self, step: usize, path: &std::path::Path) {
        self.line(format!("step {step:>6}: checkpoint {}", path.display()));
    }
}
