//! A run directory's files besides the trainer's own writing: the log file
//! (`log.jsonl`, one JSON object per line), the checkpoints in `checkpoints/`
//! ([`latest_checkpoint`]) and the plots drawn from the log ([`plot_log`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use arfpn_model::{DetectorError, Result};

/// The step checkpoints of a run (`checkpoints/step-*.safetensors`), oldest first.
pub(crate) fn list_checkpoints(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = run_dir.join("checkpoints");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(DetectorError::io(&dir, e)),
    };
    for e in entries {
        let e = e.map_err(|err| DetectorError::io(&dir, err))?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("step-") && name.ends_with(".safetensors") {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The newest checkpoint of a run, if any.
pub fn latest_checkpoint(run_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list_checkpoints(run_dir)?.pop())
}

/// Draws `loss.png` (the loss terms against the step) and, when the run evaluated,
/// `map.png` (validation mAP@0.5) from the run's `log.jsonl`.
pub fn plot_log(run_dir: &Path) -> Result<()> {
    let log = run_dir.join("log.jsonl");
    let text = std::fs::read_to_string(&log).map_err(|e| DetectorError::io(&log, e))?;
    // (name in the plot and in today's logs, name in logs written before the rename)
    let terms = [
        ("total", "total"),
        ("loss_objectness", "rpn_objectness"),
        ("loss_rpn_box_reg", "rpn_box"),
        ("loss_classifier", "cls"),
        ("loss_box_reg", "box"),
    ];
    let mut losses: Vec<(String, Vec<(f64, f64)>)> = terms
        .iter()
        .map(|t| (t.0.to_string(), Vec::new()))
        .collect();
    let mut map = vec![("val mAP@0.5".to_string(), Vec::new())];
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue; // a line cut by a crash
        };
        let data = &v["data"];
        let Some(step) = data["step"].as_f64() else {
            continue;
        };
        match v["event"].as_str() {
            Some("step") => {
                for (k, (t, old)) in terms.iter().enumerate() {
                    let l = &data["losses"];
                    if let Some(x) = l[t].as_f64().or_else(|| l[old].as_f64()) {
                        losses[k].1.push((step, x));
                    }
                }
            }
            Some("eval") => {
                if let Some(m) = data["map50"].as_f64() {
                    map[0].1.push((step, m));
                }
            }
            _ => {}
        }
    }
    let plot_err = |e: arfpn_metrics::MetricsError| {
        DetectorError::io(&log, std::io::Error::other(e.to_string()))
    };
    if losses[0].1.len() >= 2 {
        arfpn_metrics::plot_lines(
            "Training losses",
            "step",
            "loss",
            &losses,
            run_dir.join("loss.png"),
        )
        .map_err(plot_err)?;
    }
    if !map[0].1.is_empty() {
        arfpn_metrics::plot_lines(
            "Validation mAP@0.5 (VOC all-point)",
            "step",
            "mAP",
            &map,
            run_dir.join("map.png"),
        )
        .map_err(plot_err)?;
    }
    Ok(())
}

/// `log.jsonl`, opened for appending.
pub(crate) struct LogFile {
    path: PathBuf,
    file: std::fs::File,
}

impl LogFile {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| DetectorError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    pub(crate) fn write(&mut self, value: &serde_json::Value) -> Result<()> {
        writeln!(self.file, "{value}").map_err(|e| DetectorError::io(&self.path, e))
    }
}
