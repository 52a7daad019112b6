//! A small `cpu-small` detector trained on two synthetic smears reaches near-perfect AP on
//! them: every part (anchors, RPN targets and losses, proposals, RoIAlign, head targets and
//! losses, post-processing, box mapping) has to be right for this to happen.

use arfpn::{image_tensor, presets, voc_map, Detector, GroundTruth, ImageBatch};
use arfpn_backbone::{AttentionKind, NormKind};
use arfpn_boxes::SplitMix64;
use arfpn_nn::{SgdConfig, SgdMomentum};
use arfpn_voc::synthetic::{render_image, SyntheticConfig};
use arfpn_voc::LabelSet;
use candle_core::Device;
use candle_nn::Optimizer;

#[test]
fn cpu_small_overfits_two_synthetic_images() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::var("ARFPN_OVERFIT_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(240);
    let labels = LabelSet::rbc14();
    let classes: Vec<String> = labels.names().to_vec();
    let synth = SyntheticConfig {
        width: 128,
        height: 96,
        min_per_class: 1,
        max_platelets: 0,
        ..SyntheticConfig::default()
    };
    let dev = Device::Cpu;
    let mut images = Vec::new();
    let mut truth = Vec::new();
    for seed in [11, 12] {
        let s = render_image(&synth, seed)?;
        images.push(image_tensor(&s.image, &dev)?);
        truth.push(GroundTruth {
            boxes: s.objects.iter().map(|o| o.bbox).collect(),
            classes: s.objects.iter().map(|o| o.class).collect(),
        });
    }
    let mut cfg = presets::cpu_small(&classes);
    cfg.backbone.width = 16;
    cfg.backbone.norm = NormKind::group_norm(8);
    cfg.backbone.attention = AttentionKind::cbam();
    cfg.fpn.out_channels = 32;
    cfg.roi_heads.box_head = arfpn_head::BoxHeadConfig::TwoMlp {
        representation_size: 128,
    };
    let det = Detector::new(cfg, 0, &dev)?;
    let mut opt = SgdMomentum::new(
        det.trainable_vars(),
        SgdConfig {
            lr: 0.02,
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: false,
        },
    )?;
    let mut rng = SplitMix64::new(0);
    let t0 = std::time::Instant::now();
    let mut last = None;
    for step in 0..steps {
        let i = step % images.len();
        let batch = ImageBatch::from_images(std::slice::from_ref(&images[i]), 1)?;
        // Short linear warm-up, as every detector recipe does from scratch.
        let lr = 0.02 * ((step + 1) as f64 / 50.0).min(1.0);
        opt.set_learning_rate(lr);
        let losses = det.forward_train(&batch, std::slice::from_ref(&truth[i]), &mut rng)?;
        let v = losses.values()?;
        assert!(v.non_finite().is_empty(), "step {step}: {v:?}");
        opt.backward_step(&losses.total)?;
        last = Some(v);
    }
    let batch = ImageBatch::from_images(&images, 1)?;
    let dets = det.detect(&batch)?;
    let result = voc_map(&classes, &dets, &truth)?;
    let map = result.map.unwrap_or(0.0);
    eprintln!(
        "{steps} steps in {:.1} s, last losses {last:?}, mAP {map:.3} on {} objects",
        t0.elapsed().as_secs_f64(),
        truth.iter().map(|t| t.len()).sum::<usize>()
    );
    assert!(map >= 0.9, "mAP {map:.3} after {steps} steps");
    Ok(())
}
