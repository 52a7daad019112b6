//! Seeded tensors: the same values for a seed on every machine (one
//! [`SplitMix64`](arfpn_boxes::SplitMix64) per tensor).

use arfpn_boxes::SplitMix64;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarMap;

/// `n` values uniform in `[-1, 1)` from `SplitMix64::new(seed)`.
pub fn uniform_vec(seed: u64, n: usize) -> Vec<f64> {
    uniform_values(&mut SplitMix64::new(seed), n)
}

/// The next `n` values of `rng`, uniform in `[-1, 1)` (for tests that draw inputs and boxes
/// from one generator).
pub fn uniform_values(rng: &mut SplitMix64, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.range(-1.0, 1.0)).collect()
}

/// A tensor of values uniform in `[-1, 1)` (drawn in f64, then cast to `dtype`).
pub fn uniform(
    seed: u64,
    shape: impl Into<Shape>,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Tensor> {
    seeded(seed, shape.into(), dtype, device, |r| r.range(-1.0, 1.0))
}

/// A tensor of standard normal values (drawn in f64, then cast to `dtype`).
pub fn randn(
    seed: u64,
    shape: impl Into<Shape>,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Tensor> {
    seeded(seed, shape.into(), dtype, device, SplitMix64::normal)
}

/// A tensor of `draw`s from `SplitMix64::new(seed)`, in row-major order.
fn seeded(
    seed: u64,
    shape: Shape,
    dtype: DType,
    device: &Device,
    mut draw: impl FnMut(&mut SplitMix64) -> f64,
) -> candle_core::Result<Tensor> {
    let mut rng = SplitMix64::new(seed);
    let v: Vec<f64> = (0..shape.elem_count()).map(|_| draw(&mut rng)).collect();
    Tensor::from_vec(v, shape, device)?.to_dtype(dtype)
}

/// `sum(y * r)` for a fixed [`uniform`] `r` (from `seed`) of `y`'s shape: a scalar whose
/// gradient with respect to `y` is `r`, so every output element matters to it.
pub fn weighted_sum(y: &Tensor, seed: u64) -> candle_core::Result<Tensor> {
    let r = uniform(seed, y.shape(), y.dtype(), y.device())?;
    (y * r)?.sum_all()
}

/// The largest `|a - b|` over all elements, as f64.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> candle_core::Result<f64> {
    (a - b)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()
}

/// Overwrites every variable of `vm` with deterministic values, so a test does not depend
/// on the random initialisation: variables are visited in name order, the `i`-th drawn with
/// [`uniform`] from `seed + i`, then scaled by `1 / sqrt(fan_in)` (`fan_in` = the product of
/// all dimensions but the first); 1-D `*weight`s (norm scales) become `1 + 0.2 u` and
/// `*running_var`s `|u| + 0.5`.
pub fn reseed(vm: &VarMap, seed: u64) -> candle_core::Result<()> {
    let data = vm
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("the VarMap's lock is poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (i, name) in names.into_iter().enumerate() {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let fan_in: usize = dims.iter().skip(1).product();
        let u = uniform(seed + i as u64, dims.as_slice(), var.dtype(), var.device())?;
        let t = if name.ends_with("running_var") {
            (u.abs()? + 0.5)?
        } else if dims.len() == 1 && name.ends_with("weight") {
            ((u * 0.2)? + 1.0)?
        } else {
            (u * (1.0 / (fan_in as f64).sqrt()))?
        };
        var.set(&t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_values_repeat_and_differ_between_seeds() {
        let a = uniform_vec(5, 1000);
        assert_eq!(a, uniform_vec(5, 1000));
        assert_ne!(a, uniform_vec(6, 1000));
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        let mean = a.iter().sum::<f64>() / 1000.0;
        assert!(mean.abs() < 0.1, "mean {mean}");
        let cpu = &Device::Cpu;
        let t = uniform(5, &[10, 100], DType::F32, cpu).unwrap();
        assert_eq!(t.dims(), [10, 100]);
        assert_eq!(t.dtype(), DType::F32);
        let n = randn(1, 4000, DType::F64, cpu)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let var = n.iter().map(|v| v * v).sum::<f64>() / 4000.0;
        assert!((var - 1.0).abs() < 0.1, "variance {var}");
        assert_eq!(
            n,
            randn(1, 4000, DType::F64, cpu)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        );
    }

    #[test]
    fn weighted_sum_has_the_weights_as_gradient() {
        let cpu = &Device::Cpu;
        let y =
            candle_core::Var::from_tensor(&uniform(1, &[3, 2], DType::F64, cpu).unwrap()).unwrap();
        let g = weighted_sum(y.as_tensor(), 9).unwrap().backward().unwrap();
        let want = uniform(9, &[3, 2], DType::F64, cpu).unwrap();
        assert_eq!(max_abs_diff(g.get(&y).unwrap(), &want).unwrap(), 0.0);
    }

    #[test]
    fn reseed_is_deterministic_and_scaled() {
        let fill = |seed| {
            let vm = VarMap::new();
            let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
            vb.get((4, 25), "conv.weight").unwrap();
            vb.get(4, "bn.weight").unwrap();
            vb.get(4, "bn.running_var").unwrap();
            reseed(&vm, seed).unwrap();
            let data = vm.data().lock().unwrap();
            let v = |n: &str| data[n].flatten_all().unwrap().to_vec1::<f64>().unwrap();
            (v("conv.weight"), v("bn.weight"), v("bn.running_var"))
        };
        let (w, g, rv) = fill(3);
        assert_eq!((w.clone(), g.clone(), rv.clone()), fill(3));
        assert_ne!(w, fill(4).0);
        assert!(w.iter().all(|v| v.abs() < 0.2), "scaled by 1/sqrt(25)");
        assert!(g.iter().all(|v| (0.8..1.2).contains(v)));
        assert!(rv.iter().all(|v| (0.5..1.5).contains(v)));
    }
}
