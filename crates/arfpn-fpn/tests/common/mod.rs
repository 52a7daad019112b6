//! Shared test helpers: deterministic tensors and a finite-difference gradient check.
#![allow(dead_code)]

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;

/// Deterministic pseudo-random values in [-1, 1) (64-bit LCG), so failures reproduce.
pub fn lcg_values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

pub fn lcg_tensor(shape: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    let n = shape.iter().product();
    Tensor::from_vec(lcg_values(n, seed), shape, &Device::Cpu)?.to_dtype(dtype)
}

/// Overwrites every variable with deterministic values (scale `1/sqrt(fan_in)`; norm weights
/// near 1) so tests do not depend on the random initialisation.
pub fn reseed(vm: &VarMap, seed: u64) -> Result<()> {
    let data = vm.data().lock().unwrap();
    let mut names: Vec<_> = data.keys().cloned().collect();
    names.sort();
    for (i, name) in names.iter().enumerate() {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let fan_in: usize = if dims.len() > 1 {
            dims[1..].iter().product()
        } else {
            1
        };
        let t = lcg_tensor(&dims, seed + i as u64, var.dtype())?;
        let t = if name.ends_with("running_var") {
            (t.abs()? + 0.5)?
        } else if dims.len() == 1 && name.ends_with("weight") {
            ((t * 0.2)? + 1.0)?
        } else {
            (t * (1.0 / (fan_in as f64).sqrt()))?
        };
        var.set(&t)?;
    }
    Ok(())
}

/// Compares the autograd gradient of `loss()` (a scalar) with respect to `var` against central
/// differences at `probes` evenly spread elements. Returns the worst error relative to
/// `max(|numeric|, 1e-3)`.
pub fn grad_error(loss: &dyn Fn() -> Result<Tensor>, var: &Var, probes: usize) -> Result<f64> {
    let grads = loss()?.backward()?;
    let g = grads
        .get(var)
        .ok_or_else(|| candle_core::Error::Msg("no gradient for the variable".into()))?
        .flatten_all()?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?;
    let orig = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
    let shape = var.dims().to_vec();
    let n = orig.len();
    let eps = 1e-5;
    let mut worst: f64 = 0.0;
    let step = (n / probes.max(1)).max(1);
    for idx in (0..n).step_by(step).take(probes) {
        let mut v = orig.clone();
        v[idx] += eps;
        var.set(&Tensor::from_vec(
            v.clone(),
            shape.as_slice(),
            &Device::Cpu,
        )?)?;
        let lp = loss()?.to_scalar::<f64>()?;
        v[idx] -= 2.0 * eps;
        var.set(&Tensor::from_vec(v, shape.as_slice(), &Device::Cpu)?)?;
        let lm = loss()?.to_scalar::<f64>()?;
        let num = (lp - lm) / (2.0 * eps);
        let err = (num - g[idx]).abs() / num.abs().max(1e-3);
        worst = worst.max(err);
    }
    var.set(&Tensor::from_vec(orig, shape.as_slice(), &Device::Cpu)?)?;
    Ok(worst)
}

/// `sum(y * r)` for a fixed deterministic `r`: a scalar whose gradient touches every output.
pub fn weighted_sum(y: &Tensor, seed: u64) -> Result<Tensor> {
    let r = lcg_tensor(y.dims(), seed, y.dtype())?;
    (y * r)?.sum_all()
}
