//! Loading (e.g. torchvision-converted) weights into a model built on a [`VarMap`].
//!
//! Convert torchvision's ImageNet ResNet once (needs `pip install torch torchvision safetensors`):
//!
//! ```text
//! python -c "import torchvision; from safetensors.torch import save_file; save_file({k: v.contiguous() for k, v in torchvision.models.resnet50(weights='IMAGENET1K_V1').state_dict().items()}, 'resnet50.safetensors')"
//! ```
//!
//! Build the model with [`NormKind::frozen_batch_norm`](crate::NormKind::frozen_batch_norm)
//! (or `batch_norm`) on a `VarMap`, then call [`load_safetensors`]. torchvision's `fc.*` then
//! shows up as unexpected (a backbone has no classifier) and `*.num_batches_tracked` as
//! ignored. For a read-only model, `VarBuilder::from_mmaped_safetensors` works as well and
//! fails on the first missing tensor; `VarMap::save` writes a file this loads.

use crate::error::LoadError;
use candle_nn::VarMap;
use std::path::Path;

/// What [`load_safetensors`] did, tensor by tensor (each list sorted by name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Model parameters overwritten from the file.
    pub loaded: Vec<String>,
    /// Model parameters the file lacks (they keep their initial values).
    pub missing: Vec<String>,
    /// Tensors in the file the model has no parameter for.
    pub unexpected: Vec<String>,
    /// Tensors skipped on purpose: torchvision's `num_batches_tracked` counters, which carry
    /// no model state.
    pub ignored: Vec<String>,
}

impl LoadReport {
    /// True when every parameter was loaded and nothing in the file was left over.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "loaded {} tensors, {} missing, {} unexpected, {} ignored",
            self.loaded.len(),
            self.missing.len(),
            self.unexpected.len(),
            self.ignored.len()
        )?;
        if !self.missing.is_empty() {
            write!(f, "\n  missing: {}", self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "\n  unexpected: {}", self.unexpected.join(", "))?;
        }
        Ok(())
    }
}

/// Overwrites the variables of `varmap` with the same-named tensors of a safetensors file
/// (converted to each variable's dtype and device) and reports what matched.
///
/// A tensor whose shape differs from its variable's is an error
/// ([`LoadError::ShapeMismatch`]); nothing is partially loaded in that case.
pub fn load_safetensors(
    varmap: &VarMap,
    path: impl AsRef<Path>,
) -> std::result::Result<LoadReport, LoadError> {
    let path = path.as_ref();
    let data = varmap.data().lock().map_err(|_| LoadError::Poisoned)?;
    let Some(first) = data.values().next() else {
        return Err(LoadError::EmptyVarMap);
    };
    let device = first.device().clone();
    let tensors =
        candle_core::safetensors::load(path, &device).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let mut report = LoadReport::default();
    let mut updates = Vec::new();
    for (name, t) in &tensors {
        match data.get(name) {
            Some(var) => {
                if t.dims() != var.dims() {
                    return Err(LoadError::ShapeMismatch {
                        path: path.to_path_buf(),
                        name: name.clone(),
                        expected: var.dims().to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                updates.push((var, t.to_dtype(var.dtype())?));
                report.loaded.push(name.clone());
            }
            None if name.ends_with("num_batches_tracked") => report.ignored.push(name.clone()),
            None => report.unexpected.push(name.clone()),
        }
    }
    for (var, t) in updates {
        var.set(&t)?;
    }
    report.missing = data
        .keys()
        .filter(|k| !tensors.contains_key(*k))
        .cloned()
        .collect();
    report.loaded.sort();
    report.missing.sort();
    report.unexpected.sort();
    report.ignored.sort();
    Ok(report)
}

/// Number of scalars in all variables of `varmap` (trainable parameters and, for batch norm,
/// its running statistics).
pub fn count_parameters(varmap: &VarMap) -> usize {
    varmap.all_vars().iter().map(|v| v.elem_count()).sum()
}
