//! `flush_denormals`: results are unchanged where no subnormal occurs, and subnormal
//! results become 0 on the calling thread and in rayon's pool. Its own test binary: the
//! mode is per thread and changes the process's rayon pool.

use std::hint::black_box;

use arfpn_kernels::{conv2d_op, denormals_flushed, flush_denormals, Conv2dConfig};
use candle_core::{Device, Tensor};

#[test]
fn flushing_keeps_normal_results_and_zeroes_subnormal_ones() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    // A convolution (the fused CPU op, run on rayon's pool) on normal-range values.
    let x = Tensor::randn(0f32, 1.0, (2, 8, 19, 23), &dev)?;
    let w = Tensor::randn(0f32, 0.2, (16, 8, 3, 3), &dev)?;
    let cfg = Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    let conv = |x: &Tensor| conv2d_op(x, &w, None, cfg);
    let before = conv(&x)?.flatten_all()?.to_vec1::<f32>()?;
    let tiny = f32::MIN_POSITIVE;
    assert!(
        black_box(tiny) * black_box(0.25f32) > 0.0,
        "subnormals are kept by default"
    );

    let supported = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));
    assert_eq!(flush_denormals(), supported);
    assert_eq!(denormals_flushed(), supported);
    let after = conv(&x)?.flatten_all()?.to_vec1::<f32>()?;
    assert!(before.iter().all(|v| v.is_normal() || *v == 0.0));
    assert_eq!(
        before.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        after.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        "normal results must not change"
    );
    if supported {
        assert_eq!(black_box(tiny) * black_box(0.25f32), 0.0);
        // In every rayon worker too.
        let pool = rayon::broadcast(|_| black_box(tiny) * black_box(0.25f32));
        assert!(pool.iter().all(|v| *v == 0.0), "{pool:?}");
        // A subnormal input is read as zero (DAZ / FZ).
        let sub = f32::from_bits(1);
        assert_eq!(black_box(sub) * black_box(1.0f32), 0.0);
    }
    Ok(())
}
