//! Shared helpers of the arfpn-nn integration tests: deterministic random tensors and a
//! central finite-difference gradient check in f64.
#![allow(dead_code)]

use candle_core::{DType, Device, Result, Tensor, Var};

/// Deterministic pseudo-random values in [-1, 1) (xorshift), distinct with high probability.
pub fn rand_vec(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

pub fn rand_t(dims: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    let n = dims.iter().product();
    Tensor::from_vec(rand_vec(n, seed), dims, &Device::Cpu)?.to_dtype(dtype)
}

/// Checks the autograd gradients of `f(inputs)` (a scalar function, summed with fixed random
/// weights by the caller if needed) against central finite differences, for every input.
/// `inputs` are f64. Returns the largest absolute error seen.
pub fn check_grads(
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    eps: f64,
    tol: f64,
) -> Result<f64> {
    let vars: Vec<Var> = inputs.iter().map(Var::from_tensor).collect::<Result<_>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let loss = f(&ts)?;
    let grads = loss.backward()?;
    let mut worst = 0.0f64;
    for (i, v) in vars.iter().enumerate() {
        let g = match grads.get(v.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1::<f64>()?,
            None => panic!("input {i} got no gradient"),
        };
        let base = inputs[i].flatten_all()?.to_vec1::<f64>()?;
        for j in 0..base.len() {
            let eval = |delta: f64| -> Result<f64> {
                let mut d = base.clone();
                d[j] += delta;
                let mut args: Vec<Tensor> = inputs.to_vec();
                args[i] = Tensor::from_vec(d, inputs[i].dims(), &Device::Cpu)?;
                f(&args)?.to_scalar::<f64>()
            };
            let num = (eval(eps)? - eval(-eps)?) / (2.0 * eps);
            let err = (num - g[j]).abs();
            assert!(
                err <= tol * (1.0 + num.abs()),
                "input {i} element {j}: numeric {num} vs autograd {}",
                g[j]
            );
            worst = worst.max(err);
        }
    }
    Ok(worst)
}

/// `sum(y * r)` for fixed random `r` of `y`'s shape: a scalar whose gradient is `r`.
pub fn weighted_sum(y: &Tensor, seed: u64) -> Result<Tensor> {
    let r = rand_t(y.dims(), seed, y.dtype())?;
    (y * r)?.sum_all()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    (a - b)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()
}
