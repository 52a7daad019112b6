//! Test helpers: random boxes, and a naive f64 transcription of torchvision's RoIAlign /
//! RoIPool loops (per sample, no precomputation), the independent reference the optimised
//! kernels are compared against.
#![allow(dead_code)]

use arfpn_boxes::SplitMix64;
use candle_core::{DType, Device, Result, Tensor, Var};

/// Random boxes `[K, 5]` over `n` images of `img_h x img_w` pixels, with some boxes outside.
pub fn random_boxes(
    rng: &mut SplitMix64,
    k: usize,
    n: usize,
    img_h: f64,
    img_w: f64,
) -> Vec<[f64; 5]> {
    (0..k)
        .map(|_| {
            let b = (rng.uniform() * n as f64).floor();
            let x1 = rng.range(-0.3 * img_w, 1.1 * img_w);
            let y1 = rng.range(-0.3 * img_h, 1.1 * img_h);
            let (w, h) = (rng.range(0.0, 0.7 * img_w), rng.range(0.0, 0.7 * img_h));
            [b, x1, y1, x1 + w, y1 + h]
        })
        .collect()
}

pub fn boxes_tensor(b: &[[f64; 5]], dtype: DType) -> Result<Tensor> {
    let flat: Vec<f64> = b.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (b.len(), 5), &Device::Cpu)?.to_dtype(dtype)
}

fn bilinear(plane: &[f64], h: usize, w: usize, y: f64, x: f64) -> Option<[(usize, f64); 4]> {
    if y < -1.0 || y > h as f64 || x < -1.0 || x > w as f64 {
        return None;
    }
    let (mut y, mut x) = (y.max(0.0), x.max(0.0));
    let (mut yl, mut xl) = (y as usize, x as usize);
    let (yh, xh);
    if yl >= h - 1 {
        yl = h - 1;
        yh = yl;
        y = yl as f64;
    } else {
        yh = yl + 1;
    }
    if xl >= w - 1 {
        xl = w - 1;
        xh = xl;
        x = xl as f64;
    } else {
        xh = xl + 1;
    }
    let _ = plane;
    let (ly, lx) = (y - yl as f64, x - xl as f64);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    Some([
        (yl * w + xl, hy * hx),
        (yl * w + xh, hy * lx),
        (yh * w + xl, ly * hx),
        (yh * w + xh, ly * lx),
    ])
}

/// The weights of one output element: `(flat input index, weight)` pairs (torchvision's loop).
#[allow(clippy::too_many_arguments)]
fn align_weights(
    roi: &[f64; 5],
    dims: (usize, usize, usize, usize),
    ch: usize,
    ph: usize,
    pw: usize,
    out: (usize, usize),
    scale: f64,
    sampling: i32,
    aligned: bool,
) -> Vec<(usize, f64)> {
    let (_, c, h, w) = dims;
    let off = if aligned { 0.5 } else { 0.0 };
    let (sw, sh) = (roi[1] * scale - off, roi[2] * scale - off);
    let (mut rw, mut rh) = (roi[3] * scale - off - sw, roi[4] * scale - off - sh);
    if !aligned {
        rw = rw.max(1.0);
        rh = rh.max(1.0);
    }
    let (bh, bw) = (rh / out.0 as f64, rw / out.1 as f64);
    let gh = if sampling > 0 {
        sampling as i64
    } else {
        (rh / out.0 as f64).ceil() as i64
    };
    let gw = if sampling > 0 {
        sampling as i64
    } else {
        (rw / out.1 as f64).ceil() as i64
    };
    let count = (gh * gw).max(1) as f64;
    let base = (roi[0] as usize * c + ch) * h * w;
    let mut r = Vec::new();
    for iy in 0..gh.max(0) {
        let y = sh + ph as f64 * bh + (iy as f64 + 0.5) * bh / gh as f64;
        for ix in 0..gw.max(0) {
            let x = sw + pw as f64 * bw + (ix as f64 + 0.5) * bw / gw as f64;
            if let Some(t) = bilinear(&[], h, w, y, x) {
                r.extend(t.iter().map(|&(i, wt)| (base + i, wt / count)));
            }
        }
    }
    r
}

/// Reference RoIAlign forward and backward (`grad_out` -> grad_input), all in f64.
#[allow(clippy::too_many_arguments)]
pub fn ref_roi_align(
    x: &[f64],
    dims: (usize, usize, usize, usize),
    boxes: &[[f64; 5]],
    out: (usize, usize),
    scale: f64,
    sampling: i32,
    aligned: bool,
    grad_out: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let c = dims.1;
    let mut y = vec![0.0; boxes.len() * c * out.0 * out.1];
    let mut g = vec![0.0; x.len()];
    let mut o = 0;
    for roi in boxes {
        for ch in 0..c {
            for ph in 0..out.0 {
                for pw in 0..out.1 {
                    for (i, wt) in
                        align_weights(roi, dims, ch, ph, pw, out, scale, sampling, aligned)
                    {
                        y[o] += wt * x[i];
                        g[i] += wt * grad_out[o];
                    }
                    o += 1;
                }
            }
        }
    }
    (y, g)
}

/// Reference RoIPool forward and backward, in f64.
pub fn ref_roi_pool(
    x: &[f64],
    dims: (usize, usize, usize, usize),
    boxes: &[[f64; 5]],
    out: (usize, usize),
    scale: f64,
    grad_out: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let (_, c, h, w) = dims;
    let mut y = vec![0.0; boxes.len() * c * out.0 * out.1];
    let mut g = vec![0.0; x.len()];
    let mut o = 0;
    for roi in boxes {
        let r = |v: f64| (v * scale).round() as i64;
        let (sw, sh, ew, eh) = (r(roi[1]), r(roi[2]), r(roi[3]), r(roi[4]));
        let (rw, rh) = ((ew - sw + 1).max(1), (eh - sh + 1).max(1));
        let (bh, bw) = (rh as f64 / out.0 as f64, rw as f64 / out.1 as f64);
        for ch in 0..c {
            let base = (roi[0] as usize * c + ch) * h * w;
            for ph in 0..out.0 {
                for pw in 0..out.1 {
                    let cl = |v: i64, s: i64, n: usize| (v + s).clamp(0, n as i64) as usize;
                    let h0 = cl((ph as f64 * bh).floor() as i64, sh, h);
                    let h1 = cl(((ph + 1) as f64 * bh).ceil() as i64, sh, h);
                    let w0 = cl((pw as f64 * bw).floor() as i64, sw, w);
                    let w1 = cl(((pw + 1) as f64 * bw).ceil() as i64, sw, w);
                    let mut best: Option<(f64, usize)> = None;
                    for yy in h0..h1 {
                        for xx in w0..w1 {
                            let v = x[base + yy * w + xx];
                            if best.is_none_or(|(m, _)| v > m) {
                                best = Some((v, base + yy * w + xx));
                            }
                        }
                    }
                    if let Some((m, i)) = best {
                        y[o] = m;
                        g[i] += grad_out[o];
                    }
                    o += 1;
                }
            }
        }
    }
    (y, g)
}

/// Runs `f` on a Var made from `x` and returns (output, d(sum(out * grad_out))/dx).
pub fn fwd_bwd(
    x: &Tensor,
    grad_out: &Tensor,
    f: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<(Tensor, Tensor)> {
    let v = Var::from_tensor(x)?;
    let y = f(v.as_tensor())?;
    let loss = (y.clone() * grad_out)?.sum_all()?;
    let grads = loss.backward()?;
    let g = grads
        .get(v.as_tensor())
        .expect("gradient reaches the input")
        .clone();
    Ok((y, g))
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

pub fn to_f64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}
