//! Checkpoints: one safetensors file with the weights, the configuration and the class names
//! in its metadata, and optionally extra state (a trainer's optimizer buffers, schedule
//! position, ...), written atomically.
//!
//! Metadata keys: `arfpn.format` (`"1"`), `arfpn.config` (the [`DetectorConfig`] as JSON),
//! `arfpn.classes` (JSON list). Extra tensors live under names that start with `state.`;
//! extra metadata keys must not start with `arfpn.`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::{Detector, DetectorConfig, DetectorError, Result};

const FORMAT_KEY: &str = "arfpn.format";
const CONFIG_KEY: &str = "arfpn.config";
const CLASSES_KEY: &str = "arfpn.classes";
const FORMAT: &str = "1";
/// Prefix of the tensors that are not model weights.
pub const STATE_PREFIX: &str = "state.";

/// What a checkpoint holds besides the weights: extra tensors (names must start with
/// [`STATE_PREFIX`]) and metadata strings.
#[derive(Clone, Debug, Default)]
pub struct CheckpointState {
    /// Named tensors stored beside the weights; every name must start with [`STATE_PREFIX`].
    /// [`Checkpoint::read`] returns them sorted by name.
    pub tensors: Vec<(String, Tensor)>,
    /// Safetensors metadata entries; keys starting with `arfpn.` are reserved (saving with one
    /// is an error, and reading leaves them out).
    pub metadata: HashMap<String, String>,
}

/// A checkpoint read from disk.
pub struct Checkpoint {
    /// The file it was read from.
    pub path: PathBuf,
    /// The detector configuration stored in its metadata, already validated.
    pub config: DetectorConfig,
    /// Model weights by name.
    pub weights: HashMap<String, Tensor>,
    /// Extra state saved with them.
    pub state: CheckpointState,
}

/// What [`Detector::load_weights`] and [`Detector::load_backbone_weights`] did, tensor by
/// tensor: the backbone crate's report (`ignored` lists torchvision's
/// `num_batches_tracked` counters).
pub use arfpn_backbone::LoadReport;

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one:
/// a temporary file beside it, `fsync`, rename over `path`, `fsync` of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| DetectorError::checkpoint(path, "the path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            // Persist the rename; not every platform can sync a directory.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(DetectorError::io(path, e));
    }
    Ok(())
}

/// Writes `det`'s weights (in `dtype`, else as they are), configuration and `state`
/// ([`Detector::save_with_state`], [`Detector::save_compact`]).
pub(crate) fn write_checkpoint(
    det: &Detector,
    path: &Path,
    state: &CheckpointState,
    dtype: Option<DType>,
) -> Result<()> {
    let mut metadata = HashMap::new();
    for (k, v) in &state.metadata {
        if k.starts_with("arfpn.") {
            return Err(DetectorError::input(
                "state.metadata",
                format!("key `{k}`: the `arfpn.` prefix is reserved"),
            ));
        }
        metadata.insert(k.clone(), v.clone());
    }
    metadata.insert(FORMAT_KEY.into(), FORMAT.into());
    metadata.insert(CONFIG_KEY.into(), det.config().to_json()?);
    metadata.insert(
        CLASSES_KEY.into(),
        serde_json::to_string(det.classes()).map_err(|e| {
            DetectorError::checkpoint(path, format!("cannot encode the classes: {e}"))
        })?,
    );
    let mut tensors: Vec<(String, Tensor)> = det
        .vars()
        .named_vars()
        .into_iter()
        .map(|(n, v)| {
            let t = v.as_tensor().to_device(&Device::Cpu);
            (n, t.and_then(|t| t.to_dtype(dtype.unwrap_or(t.dtype()))))
        })
        .map(|(n, t)| t.map(|t| (n, t)))
        .collect::<candle_core::Result<_>>()?;
    for (n, t) in &state.tensors {
        if !n.starts_with(STATE_PREFIX) {
            return Err(DetectorError::input(
                "state.tensors",
                format!("`{n}` must start with `{STATE_PREFIX}`"),
            ));
        }
        tensors.push((n.clone(), t.to_device(&Device::Cpu)?));
    }
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n, t)), Some(metadata))
        .map_err(|e| DetectorError::checkpoint(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, &bytes)
}

/// The detector a checkpoint describes, with its weights ([`Detector::load`]).
pub(crate) fn from_checkpoint(ckpt: Checkpoint, device: &Device) -> Result<Detector> {
    let det = Detector::new(ckpt.config.clone(), 0, device)?;
    let report = set_weights(&det, &ckpt.path, &ckpt.weights)?;
    if !report.is_complete() {
        return Err(DetectorError::checkpoint(
            &ckpt.path,
            format!("does not match the architecture in its own metadata: {report}"),
        ));
    }
    Ok(det)
}

/// [`Detector::check_compatible`].
pub(crate) fn check_compatible(det: &Detector, ckpt: &Checkpoint) -> Result<()> {
    let ours = det.config();
    let theirs = &ckpt.config;
    let mismatch = |field: &'static str, a: String, b: String| DetectorError::Mismatch {
        path: ckpt.path.clone(),
        field,
        checkpoint: a,
        ours: b,
    };
    if theirs.classes != ours.classes {
        return Err(mismatch(
            "class list",
            format!("{:?}", theirs.classes),
            format!("{:?}", ours.classes),
        ));
    }
    if theirs.backbone != ours.backbone {
        return Err(mismatch(
            "backbone",
            json(&theirs.backbone),
            json(&ours.backbone),
        ));
    }
    if theirs.custom_backbone != ours.custom_backbone {
        return Err(mismatch(
            "custom_backbone",
            json(&theirs.custom_backbone),
            json(&ours.custom_backbone),
        ));
    }
    if theirs.fpn != ours.fpn {
        return Err(mismatch("fpn", json(&theirs.fpn), json(&ours.fpn)));
    }
    if theirs.rpn.anchors != ours.rpn.anchors {
        return Err(mismatch(
            "rpn.anchors",
            json(&theirs.rpn.anchors),
            json(&ours.rpn.anchors),
        ));
    }
    if theirs.roi_heads.box_head != ours.roi_heads.box_head
        || theirs.roi_heads.pooler != ours.roi_heads.pooler
    {
        return Err(mismatch(
            "roi_heads box head / pooler",
            format!(
                "{} / {}",
                json(&theirs.roi_heads.box_head),
                json(&theirs.roi_heads.pooler)
            ),
            format!(
                "{} / {}",
                json(&ours.roi_heads.box_head),
                json(&ours.roi_heads.pooler)
            ),
        ));
    }
    Ok(())
}

/// [`Detector::set_weights`].
pub(crate) fn set_weights(
    det: &Detector,
    path: &Path,
    weights: &HashMap<String, Tensor>,
) -> Result<LoadReport> {
    let vars = det.vars().named_vars();
    let mut report = LoadReport::default();
    let mut updates = Vec::new();
    for (name, var) in &vars {
        match weights.get(name) {
            Some(t) if t.dims() != var.dims() => {
                return Err(DetectorError::checkpoint(
                    path,
                    format!(
                        "tensor `{name}` has shape {:?}, the detector's {:?}",
                        t.dims(),
                        var.dims()
                    ),
                ))
            }
            Some(t) => {
                updates.push((var, t.to_dtype(var.dtype())?.to_device(var.device())?));
                report.loaded.push(name.clone());
            }
            None => report.missing.push(name.clone()),
        }
    }
    let ours: std::collections::HashSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    report.unexpected = weights
        .keys()
        .filter(|k| !ours.contains(k.as_str()))
        .cloned()
        .collect();
    report.unexpected.sort();
    for (var, t) in updates {
        var.set(&t)?;
    }
    Ok(report)
}

/// A config part as JSON for an error message.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<unprintable: {e}>"))
}

impl Checkpoint {
    /// Reads and checks a checkpoint file; tensors go to `device`.
    pub fn read(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| DetectorError::io(path, e))?;
        Self::from_bytes(&bytes, path, device)
    }

    /// Reads and checks a checkpoint held in memory (an embedded model, an upload);
    /// `path` names it in errors and in [`Checkpoint::path`]. Tensors go to `device`.
    pub fn from_bytes(bytes: &[u8], path: &Path, device: &Device) -> Result<Self> {
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
            DetectorError::checkpoint(
                path,
                format!("not a readable safetensors file (truncated or corrupt?): {e}"),
            )
        })?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| DetectorError::checkpoint(path, format!("unreadable header: {e}")))?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        match metadata.get(FORMAT_KEY).map(String::as_str) {
            Some(FORMAT) => {}
            Some(v) => {
                return Err(DetectorError::checkpoint(
                    path,
                    format!("checkpoint format {v} is not supported (this build reads {FORMAT})"),
                ))
            }
            None => {
                return Err(DetectorError::checkpoint(
                    path,
                    "no `arfpn.format` in the metadata: not an arfpn checkpoint (for backbone \
                     weights use Detector::load_backbone_weights)",
                ))
            }
        }
        let config_json = metadata
            .get(CONFIG_KEY)
            .ok_or_else(|| DetectorError::checkpoint(path, "the metadata has no `arfpn.config`"))?;
        let config = DetectorConfig::from_json(config_json).map_err(|e| {
            DetectorError::checkpoint(path, format!("its `arfpn.config` is unusable: {e}"))
        })?;
        if let Some(classes) = metadata.get(CLASSES_KEY) {
            let classes: Vec<String> = serde_json::from_str(classes).map_err(|e| {
                DetectorError::checkpoint(path, format!("its `arfpn.classes` is unusable: {e}"))
            })?;
            if classes != config.classes {
                return Err(DetectorError::checkpoint(
                    path,
                    "`arfpn.classes` and the configuration's classes differ",
                ));
            }
        }
        config.validate().map_err(|e| {
            DetectorError::checkpoint(path, format!("its configuration cannot be used: {e}"))
        })?;
        let mut weights = HashMap::new();
        let mut state = CheckpointState::default();
        for (name, view) in st.tensors() {
            let t = candle_core::safetensors::Load::load(&view, device)?;
            if name.starts_with(STATE_PREFIX) {
                state.tensors.push((name, t));
            } else {
                weights.insert(name, t);
            }
        }
        state.tensors.sort_by(|a, b| a.0.cmp(&b.0));
        state.metadata = metadata
            .into_iter()
            .filter(|(k, _)| !k.starts_with("arfpn."))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            config,
            weights,
            state,
        })
    }
}
