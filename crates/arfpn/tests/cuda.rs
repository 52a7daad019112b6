//! The detector on a CUDA device agrees with the CPU (feature `cuda`; skips with a printed
//! reason where no device is present, e.g. with the stub driver of `scripts/cuda-env.sh`).

#[cfg(feature = "cuda")]
#[test]
fn detector_on_cuda_matches_cpu() -> Result<(), Box<dyn std::error::Error>> {
    use arfpn::{presets, BBox, ClassId, Detector, GroundTruth, ImageBatch};
    use arfpn_boxes::SplitMix64;
    use candle_core::{Device, Tensor};

    let gpu = match Device::new_cuda(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED detector_on_cuda_matches_cpu: no CUDA device ({e})");
            return Ok(());
        }
    };
    let mut cfg = presets::cpu_small(&["a", "b"]);
    cfg.backbone.width = 16;
    cfg.backbone.norm = arfpn_backbone::NormKind::group_norm(8);
    cfg.fpn.out_channels = 32;
    cfg.roi_heads.postprocess.score_thresh = 0.0;
    let cpu_det = Detector::new(cfg, 3, &Device::Cpu)?;
    let path = std::env::temp_dir().join(format!("arfpn-cuda-{}.safetensors", std::process::id()));
    cpu_det.save(&path)?;
    let gpu_det = Detector::load(&path, &gpu)?;
    let image = Tensor::rand(0f32, 1., (3, 96, 128), &Device::Cpu)?;
    let a = cpu_det.detect(&ImageBatch::from_images(std::slice::from_ref(&image), 1)?)?;
    let b = gpu_det.detect(&ImageBatch::from_images(&[image.to_device(&gpu)?], 1)?)?;
    assert_eq!(a[0].len(), b[0].len());
    for (x, y) in a[0].scores.iter().zip(&b[0].scores).take(50) {
        assert!((x - y).abs() < 1e-3, "scores {x} vs {y}");
    }
    let gt = GroundTruth::new(
        vec![BBox::new(10.0, 10.0, 40.0, 38.0)],
        vec![ClassId::new(1)],
    )?;
    let la = cpu_det
        .forward_train(
            &ImageBatch::from_images(std::slice::from_ref(&image), 1)?,
            std::slice::from_ref(&gt),
            &mut SplitMix64::new(1),
        )?
        .values()?;
    let lb = gpu_det
        .forward_train(
            &ImageBatch::from_images(&[image.to_device(&gpu)?], 1)?,
            &[gt],
            &mut SplitMix64::new(1),
        )?
        .values()?;
    assert!(
        (la.total - lb.total).abs() < 1e-3 * la.total.abs().max(1.0),
        "{la:?} vs {lb:?}"
    );
    let _ = std::fs::remove_file(&path);
    Ok(())
}

#[cfg(not(feature = "cuda"))]
#[test]
fn detector_on_cuda_matches_cpu() {
    eprintln!("SKIPPED detector_on_cuda_matches_cpu: built without the `cuda` feature");
}
