//! Checks our ops against torchvision's own outputs and input gradients, stored in
//! tests/data/torchvision_roi.safetensors by scripts/roi_align_torchvision.py (torchvision
//! 0.29.2): boxes inside, partly and wholly outside, zero-size, tiny, inverted, two images;
//! every aligned / sampling_ratio combination.
mod common;

use arfpn_roi_align::{roi_align, roi_pool};
use candle_core::{Device, Tensor};
use common::fwd_bwd;
use std::collections::HashMap;

fn fixture() -> HashMap<String, Tensor> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/torchvision_roi.safetensors"
    );
    candle_core::safetensors::load(path, &Device::Cpu).expect("fixture is committed with the crate")
}

fn assert_close(name: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dims(), want.dims(), "{name}: shape");
    let g = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let w = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{name}[{i}]: ours {a}, torchvision {b}"
        );
    }
}

#[test]
fn roi_align_equals_torchvision() {
    let f = fixture();
    let (x, boxes, go) = (&f["input"], &f["boxes"], &f["grad_out"]);
    let mut checked = 0;
    for aligned in [false, true] {
        for sampling in [0, 2, -1, 3] {
            let tag = format!("align_{}_s{}", if aligned { "a" } else { "u" }, sampling)
                .replace('-', "m");
            let (y, g) = fwd_bwd(x, go, |t| {
                roi_align(t, boxes, (3, 4), 0.5, sampling, aligned)
            })
            .unwrap();
            assert_close(&format!("{tag}_out"), &y, &f[&format!("{tag}_out")]);
            assert_close(&format!("{tag}_grad"), &g, &f[&format!("{tag}_grad")]);
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
}

#[test]
fn roi_pool_equals_torchvision() {
    let f = fixture();
    let (y, g) = fwd_bwd(&f["input"], &f["grad_out"], |t| {
        roi_pool(t, &f["boxes"], (3, 4), 0.5)
    })
    .unwrap();
    assert_close("pool_out", &y, &f["pool_out"]);
    assert_close("pool_grad", &g, &f["pool_grad"]);
}
