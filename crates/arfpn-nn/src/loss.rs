//! Losses shared by the RPN and the box head: binary cross-entropy with logits, smooth-L1,
//! (class-weighted) softmax cross-entropy and softmax focal loss. All are differentiable
//! with candle's autograd, numerically stable for saturated logits, and checked against
//! hand-computed values and finite differences (this file's tests).

use candle_core::{DType, Result, Tensor, D};

use crate::error::{config_err, shape_err};

/// Numerically stable binary cross-entropy with logits, elementwise:
/// `max(x, 0) - x·y + ln(1 + e^{-|x|})` (candle's own is NaN once the sigmoid saturates).
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let soft = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (logits.relu()? - (logits * targets)?)? + soft
}

/// Elementwise smooth-L1 (Huber / `beta`): `0.5 d² / beta` for `|d| < beta`, else
/// `|d| - 0.5 beta`, with `d = pred - target`. `beta` must be `> 0`.
pub fn smooth_l1(pred: &Tensor, target: &Tensor, beta: f64) -> Result<Tensor> {
    if !(beta > 0.0 && beta.is_finite()) {
        return Err(config_err(
            "smooth_l1",
            "beta",
            format!("must be finite and > 0, got {beta}"),
        ));
    }
    let d = (pred - target)?.abs()?;
    let quad = ((&d * &d)? * (0.5 / beta))?;
    let lin = (&d - 0.5 * beta)?;
    d.lt(beta)?.where_cond(&quad, &lin)
}

/// `log_softmax` over the last dimension of `[N, C]` logits, stable (the max is subtracted)
/// and differentiable (candle's `softmax_last_dim` has no gradient).
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let m = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&m)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

fn check_targets(op: &'static str, logits: &Tensor, targets: &[u32]) -> Result<(usize, usize)> {
    let (n, c) = logits
        .dims2()
        .map_err(|_| shape_err(op, "logits", logits.dims(), "[N, C]"))?;
    if targets.len() != n {
        return Err(shape_err(op, "targets", &[targets.len()], format!("[{n}]")));
    }
    if let Some(t) = targets.iter().find(|&&t| t as usize >= c) {
        return Err(config_err(
            op,
            "targets",
            format!("class {t} out of range for {c} columns"),
        ));
    }
    Ok((n, c))
}

/// `log p[i, targets[i]]` as `[N]`.
fn target_log_probs(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let idx = Tensor::new(targets, logits.device())?.unsqueeze(1)?;
    log_softmax(logits)?.gather(&idx, 1)?.squeeze(1)
}

/// Softmax cross-entropy of `[N, C]` logits against column indices, PyTorch's
/// `F.cross_entropy(logits, targets, weight)`: without weights the mean over the `N` rows;
/// with per-class `weights` (`C` values, finite and >= 0) `Σ w[t_i]·nll_i / Σ w[t_i]`.
/// `N = 0` gives 0.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let logits = Tensor::new(&[[0f32, 0.0], [2.0, 0.0]], &Device::Cpu).unwrap();
/// let l = arfpn_nn::cross_entropy(&logits, &[0, 0], None).unwrap().to_scalar::<f32>().unwrap();
/// let want = (2f32.ln() + (1.0 + (-2f32).exp()).ln()) / 2.0;
/// assert!((l - want).abs() < 1e-6);
/// ```
pub fn cross_entropy(logits: &Tensor, targets: &[u32], weights: Option<&[f32]>) -> Result<Tensor> {
    let (n, c) = check_targets("cross_entropy", logits, targets)?;
    if n == 0 {
        return Tensor::zeros((), logits.dtype(), logits.device());
    }
    let nll = target_log_probs(logits, targets)?.neg()?;
    match weights {
        None => nll.mean_all(),
        Some(w) => {
            if w.len() != c || w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
                return Err(config_err(
                    "cross_entropy",
                    "weights",
                    format!("need {c} finite values >= 0, got {w:?}"),
                ));
            }
            let per: Vec<f32> = targets.iter().map(|&t| w[t as usize]).collect();
            let total: f32 = per.iter().sum();
            if total <= 0.0 {
                return Tensor::zeros((), logits.dtype(), logits.device());
            }
            let wt = Tensor::new(per.as_slice(), logits.device())?.to_dtype(logits.dtype())?;
            (nll * wt)?.sum_all()? / total as f64
        }
    }
}

/// Softmax focal loss (Lin et al. 2017 with a softmax): the mean over rows of
/// `-α_t (1 - p_t)^γ ln p_t`, with `α_t = alpha[t]` when per-class `alpha` is given (else 1).
/// `γ = 0` without `alpha` is [`cross_entropy`]. `N = 0` gives 0.
pub fn softmax_focal_loss(
    logits: &Tensor,
    targets: &[u32],
    gamma: f64,
    alpha: Option<&[f32]>,
) -> Result<Tensor> {
    let (n, c) = check_targets("softmax_focal_loss", logits, targets)?;
    if !(gamma >= 0.0 && gamma.is_finite()) {
        return Err(config_err(
            "softmax_focal_loss",
            "gamma",
            format!("must be finite and >= 0, got {gamma}"),
        ));
    }
    if n == 0 {
        return Tensor::zeros((), logits.dtype(), logits.device());
    }
    let logp = target_log_probs(logits, targets)?;
    let p = logp.exp()?;
    // (1 - p)^γ, with 1 - p clamped at 0 from below (p can round to just above 1).
    let one_minus = p.affine(-1.0, 1.0)?.relu()?;
    let modulator = if gamma == 0.0 {
        Tensor::ones_like(&p)?
    } else {
        // x^γ = exp(γ ln x); ln 0 = -inf gives exp(-inf) = 0, the right limit for γ > 0.
        (one_minus.log()? * gamma)?.exp()?
    };
    let mut loss = (modulator * logp.neg()?)?;
    if let Some(a) = alpha {
        if a.len() != c || a.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err(config_err(
                "softmax_focal_loss",
                "alpha",
                format!("need {c} finite values >= 0"),
            ));
        }
        let per: Vec<f32> = targets.iter().map(|&t| a[t as usize]).collect();
        let at = Tensor::new(per.as_slice(), logits.device())?.to_dtype(logits.dtype())?;
        loss = (loss * at)?;
    }
    loss.mean_all()
}

/// Per-class weights from class frequencies, `w_c = N / (C · n_c)` (scikit-learn's
/// "balanced"; a class never seen gets weight 0), optionally including a background count.
///
/// ```
/// assert_eq!(arfpn_nn::balanced_class_weights(&[30, 10, 0]), vec![2.0 / 3.0, 2.0, 0.0]);
/// ```
pub fn balanced_class_weights(counts: &[usize]) -> Vec<f32> {
    let total: usize = counts.iter().sum();
    let seen = counts.iter().filter(|&&n| n > 0).count().max(1);
    counts
        .iter()
        .map(|&n| {
            if n == 0 {
                0.0
            } else {
                total as f32 / (seen as f32 * n as f32)
            }
        })
        .collect()
}

/// `true` if every element of `t` is finite.
pub fn all_finite(t: &Tensor) -> Result<bool> {
    let v: Vec<f64> = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
    Ok(v.iter().all(|x| x.is_finite()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn logits() -> Vec<f64> {
        vec![
            0.3, -1.2, 2.0, 0.0, 0.5, 0.1, -0.4, 1.5, -3.0, 0.2, 0.9, -0.7,
        ]
    }

    /// Central finite differences of `f` at `x0` vs autograd.
    fn check_grad(f: &dyn Fn(&Tensor) -> Result<Tensor>, x0: &[f64], shape: (usize, usize)) {
        let dev = Device::Cpu;
        let x = Var::from_vec(x0.to_vec(), shape, &dev).unwrap();
        let g = f(x.as_tensor()).unwrap().backward().unwrap();
        let g: Vec<f64> = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let eps = 1e-6;
        for i in 0..x0.len() {
            let mut p = x0.to_vec();
            p[i] += eps;
            let mut m = x0.to_vec();
            m[i] -= eps;
            let e = |v: Vec<f64>| {
                f(&Tensor::from_vec(v, shape, &dev).unwrap())
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let num = (e(p) - e(m)) / (2.0 * eps);
            assert!(
                (num - g[i]).abs() < 1e-6 * (1.0 + num.abs()),
                "elem {i}: fd {num} vs {}",
                g[i]
            );
        }
    }

    #[test]
    fn cross_entropy_hand_values_weights_and_gradients() {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(logits(), (4, 3), &dev).unwrap();
        let t = [2u32, 0, 1, 2];
        let rows = logits();
        let nll = |r: usize| {
            let row = &rows[3 * r..3 * r + 3];
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            lse - row[t[r] as usize]
        };
        let want: f64 = (0..4).map(nll).sum::<f64>() / 4.0;
        let got = cross_entropy(&x, &t, None)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((got - want).abs() < 1e-12);
        let w = [1.0f32, 2.0, 0.5];
        let num: f64 = (0..4).map(|r| w[t[r] as usize] as f64 * nll(r)).sum();
        let den: f64 = t.iter().map(|&c| w[c as usize] as f64).sum();
        let got = cross_entropy(&x, &t, Some(&w))
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((got - num / den).abs() < 1e-12);
        check_grad(&|x| cross_entropy(x, &t, Some(&w)), &logits(), (4, 3));
        assert!(cross_entropy(&x, &[0, 3, 0, 0], None).is_err());
        assert!(cross_entropy(&x, &[0, 1], None).is_err());
        // Saturated logits stay finite.
        let big = Tensor::new(&[[1000f64, -1000.0]], &dev).unwrap();
        assert!(cross_entropy(&big, &[1], None)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
            .is_finite());
    }

    #[test]
    fn focal_loss_matches_its_definition_and_reduces_to_ce() {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(logits(), (4, 3), &dev).unwrap();
        let t = [2u32, 0, 1, 2];
        let ce = cross_entropy(&x, &t, None)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let f0 = softmax_focal_loss(&x, &t, 0.0, None)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((ce - f0).abs() < 1e-12);
        let rows = logits();
        let want: f64 = (0..4)
            .map(|r| {
                let row = &rows[3 * r..3 * r + 3];
                let z: f64 = row.iter().map(|v| v.exp()).sum();
                let p = row[t[r] as usize].exp() / z;
                -(1.0 - p).powi(2) * p.ln()
            })
            .sum::<f64>()
            / 4.0;
        let got = softmax_focal_loss(&x, &t, 2.0, None)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        check_grad(
            &|x| softmax_focal_loss(x, &t, 2.0, Some(&[0.25, 1.0, 0.5])),
            &logits(),
            (4, 3),
        );
    }

    #[test]
    fn bce_and_smooth_l1_hand_values() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[0f64, 100.0, -100.0], &dev).unwrap();
        let y = Tensor::new(&[1f64, 1.0, 1.0], &dev).unwrap();
        let v: Vec<f64> = bce_with_logits(&x, &y).unwrap().to_vec1().unwrap();
        assert!((v[0] - 2f64.ln()).abs() < 1e-12 && v[1] < 1e-40 && (v[2] - 100.0).abs() < 1e-12);
        let p = Tensor::new(&[0.05f64, 1.0], &dev).unwrap();
        let z = Tensor::new(&[0f64, 0.0], &dev).unwrap();
        let v: Vec<f64> = smooth_l1(&p, &z, 1.0 / 9.0).unwrap().to_vec1().unwrap();
        assert!(
            (v[0] - 0.5 * 0.0025 * 9.0).abs() < 1e-12 && (v[1] - (1.0 - 0.5 / 9.0)).abs() < 1e-12
        );
        assert!(smooth_l1(&p, &z, 0.0).is_err());
    }
}
