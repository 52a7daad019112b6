//! What several of this crate's integration tests build: `cpu-small` shrunk for tests, and
//! small synthetic smears with their ground truth.

use arfpn::{presets, DetectorConfig, GroundTruth};
use arfpn_backbone::NormKind;
use arfpn_voc::synthetic::{render_image, SyntheticConfig};
use arfpn_voc::{RgbImage, VocError};

/// `cpu-small` at width 8, a 16-channel FPN and a 32-wide box head, with `norm`.
#[allow(dead_code)] // each test binary uses what it needs
pub fn tiny_with<S: AsRef<str>>(classes: &[S], norm: NormKind) -> DetectorConfig {
    let mut c = presets::cpu_small(classes);
    c.backbone.width = 8;
    c.backbone.norm = norm;
    c.fpn.out_channels = 16;
    c.roi_heads.box_head = arfpn_head::BoxHeadConfig::TwoMlp {
        representation_size: 32,
    };
    c
}

/// [`tiny_with`] GroupNorm(4).
#[allow(dead_code)]
pub fn tiny<S: AsRef<str>>(classes: &[S]) -> DetectorConfig {
    tiny_with(classes, NormKind::group_norm(4))
}

/// `n` synthetic 96×80 smears (seeds `first_seed..`) with their boxes, without platelets.
#[allow(dead_code)]
pub fn smears(n: u64, first_seed: u64) -> Result<Vec<(RgbImage, GroundTruth)>, VocError> {
    render(&smear_config(96, 80, 0), first_seed..first_seed + n)
}

/// Synthetic smears of `width × height` without platelets, at least `min_per_class` cells of
/// each class.
#[allow(dead_code)]
pub fn smear_config(width: u32, height: u32, min_per_class: usize) -> SyntheticConfig {
    SyntheticConfig {
        width,
        height,
        min_per_class,
        max_platelets: 0,
        ..SyntheticConfig::default()
    }
}

/// Synthetic smears drawn as `cfg` says, one per seed, with their boxes.
#[allow(dead_code)]
pub fn render(
    cfg: &SyntheticConfig,
    seeds: impl IntoIterator<Item = u64>,
) -> Result<Vec<(RgbImage, GroundTruth)>, VocError> {
    seeds
        .into_iter()
        .map(|seed| {
            let im = render_image(cfg, seed)?;
            let gt = GroundTruth {
                boxes: im.objects.iter().map(|o| o.bbox).collect(),
                classes: im.objects.iter().map(|o| o.class).collect(),
            };
            Ok((im.image, gt))
        })
        .collect()
}
