//! CUDA kernels against the CPU ones (forward and backward) on random inputs. Built only with
//! `--features cuda`; each test skips, printing why, when `Device::new_cuda(0)` fails (e.g. a
//! machine without a GPU, or the stub libcuda of scripts/cuda-env.sh).
#![cfg(feature = "cuda")]
mod common;

use arfpn_boxes::SplitMix64;
use arfpn_roi_align::{roi_align, roi_pool, MultiScaleRoIAlign};
use arfpn_testkit::uniform_values;
use candle_core::{DType, Device, Tensor};
use common::*;
use std::io::Write;

fn gpu(test: &str) -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            // Written to stderr directly so that the harness does not capture it.
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            let _ = writeln!(std::io::stderr(), "SKIP {test}: no CUDA device ({first})");
            None
        }
    }
}

fn inputs(seed: u64, dtype: DType) -> (Tensor, Tensor, Tensor) {
    let mut rng = SplitMix64::new(seed);
    let dims = (2, 8, 24, 32);
    let x = Tensor::from_vec(
        uniform_values(&mut rng, 2 * 8 * 24 * 32),
        dims,
        &Device::Cpu,
    )
    .unwrap()
    .to_dtype(dtype)
    .unwrap();
    let b = boxes_tensor(&random_boxes(&mut rng, 50, 2, 96.0, 128.0), dtype).unwrap();
    let g = Tensor::from_vec(
        uniform_values(&mut rng, 50 * 8 * 49),
        (50, 8, 7, 7),
        &Device::Cpu,
    )
    .unwrap()
    .to_dtype(dtype)
    .unwrap();
    (x, b, g)
}

fn close(name: &str, a: &Tensor, b: &Tensor, tol: f64) {
    let d = max_abs_diff(&to_f64(a), &to_f64(b));
    assert!(d < tol, "{name}: max |cuda - cpu| = {d}");
}

#[test]
fn roi_align_cuda_equals_cpu() {
    let Some(dev) = gpu("roi_align_cuda_equals_cpu") else {
        return;
    };
    for dtype in [DType::F32, DType::F64] {
        let (x, b, g) = inputs(1, dtype);
        let (xg, bg, gg) = (
            x.to_device(&dev).unwrap(),
            b.to_device(&dev).unwrap(),
            g.to_device(&dev).unwrap(),
        );
        for (aligned, s) in [(false, 2), (false, 0), (true, 2), (true, 0)] {
            let f = |t: &Tensor, bx: &Tensor| roi_align(t, bx, (7, 7), 0.25, s, aligned);
            let (yc, gc) = fwd_bwd(&x, &g, |t| f(t, &b)).unwrap();
            let (yg, ggr) = fwd_bwd(&xg, &gg, |t| f(t, &bg)).unwrap();
            let tol = if dtype == DType::F32 { 1e-4 } else { 1e-10 };
            close(&format!("forward {dtype:?} {aligned} {s}"), &yg, &yc, tol);
            close(&format!("backward {dtype:?} {aligned} {s}"), &ggr, &gc, tol);
        }
    }
}

#[test]
fn roi_pool_cuda_equals_cpu() {
    let Some(dev) = gpu("roi_pool_cuda_equals_cpu") else {
        return;
    };
    for dtype in [DType::F32, DType::F64] {
        let (x, b, g) = inputs(2, dtype);
        let (xg, bg, gg) = (
            x.to_device(&dev).unwrap(),
            b.to_device(&dev).unwrap(),
            g.to_device(&dev).unwrap(),
        );
        let (yc, gc) = fwd_bwd(&x, &g, |t| roi_pool(t, &b, (7, 7), 0.25)).unwrap();
        let (yg, ggr) = fwd_bwd(&xg, &gg, |t| roi_pool(t, &bg, (7, 7), 0.25)).unwrap();
        close("roi_pool forward", &yg, &yc, 1e-6);
        close("roi_pool backward", &ggr, &gc, 1e-5);
    }
}

#[test]
fn multi_scale_and_edge_cases_on_cuda() {
    let Some(dev) = gpu("multi_scale_and_edge_cases_on_cuda") else {
        return;
    };
    let mut rng = SplitMix64::new(3);
    let strides = [4, 8, 16, 32];
    let feats: Vec<Tensor> = strides
        .iter()
        .map(|s| {
            Tensor::from_vec(
                uniform_values(&mut rng, 4 * (256 / s) * (256 / s)),
                (1, 4, 256 / s, 256 / s),
                &Device::Cpu,
            )
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
        })
        .collect();
    let b = boxes_tensor(&random_boxes(&mut rng, 40, 1, 256.0, 256.0), DType::F32).unwrap();
    let p = MultiScaleRoIAlign::detectron2(&strides, (7, 7)).unwrap();
    let yc = p.forward(&feats, &b).unwrap();
    let fg: Vec<Tensor> = feats.iter().map(|f| f.to_device(&dev).unwrap()).collect();
    let yg = p.forward(&fg, &b.to_device(&dev).unwrap()).unwrap();
    close("multi-scale forward", &yg, &yc, 1e-4);
    // Empty box list and a batch index out of range.
    let e = Tensor::zeros((0, 5), DType::F32, &dev).unwrap();
    assert_eq!(
        roi_align(&fg[0], &e, (7, 7), 0.25, 0, true).unwrap().dims(),
        &[0, 4, 7, 7]
    );
    let bad = Tensor::new(&[[1f32, 0., 0., 4., 4.]], &dev).unwrap();
    assert!(roi_align(&fg[0], &bad, (7, 7), 0.25, 0, true).is_err());
    assert!(
        roi_align(&fg[0], &b, (7, 7), 0.25, 0, true).is_err(),
        "boxes on CPU, input on GPU"
    );
}
