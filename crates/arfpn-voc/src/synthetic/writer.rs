//! Writing a rendered dataset as Pascal VOC: per-image seeds, the split sizes, images,
//! annotations, split files, `classes.txt` and `synthetic.json`.

use std::path::Path;

use arfpn_boxes::SplitMix64;
use image::RgbImage;
use rayon::prelude::*;
use serde::Serialize;

use super::config::{ImageFormat, SyntheticConfig};
use super::render::render_image;
use crate::annotation::Sample;
use crate::error::{Result, VocError};
use crate::labels::{LabelSet, RBC14_CLASSES};
use crate::splits::write_split;

/// The per-image seed of image `index` of a dataset generated with `seed`.
pub fn image_seed(seed: u64, index: usize) -> u64 {
    let mut r = SplitMix64::new(seed ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    r.next_u64()
}

/// What [`write_dataset`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct SyntheticSummary {
    /// Number of images written (all splits together).
    pub images: usize,
    /// Objects per class, in [`RBC14_CLASSES`] order.
    pub objects_per_class: Vec<(String, usize)>,
    /// Number of images in the `train` split.
    pub train: usize,
    /// Number of images in the `val` split.
    pub val: usize,
    /// Number of images in the `test` split.
    pub test: usize,
}

/// The `(train, val, test)` sizes for `n` images.
pub fn split_sizes(n: usize, val_fraction: f32, test_fraction: f32) -> (usize, usize, usize) {
    let mut val = (n as f32 * val_fraction).round() as usize;
    let mut test = (n as f32 * test_fraction).round() as usize;
    if n >= 3 {
        val = val.max(1);
        test = test.max(1);
    }
    while val + test > n {
        if test >= val && test > 0 {
            test -= 1;
        } else {
            val -= 1;
        }
    }
    (n - val - test, val, test)
}

/// Render `n` images (in parallel) and write them as a Pascal VOC dataset in `out`:
/// `JPEGImages/synth_NNNNN.{jpg,png}`, `Annotations/*.xml`, `ImageSets/Main/{train,val,
/// test,trainval}.txt` (consecutive ids: the first images train, then val, then test),
/// `classes.txt` (the 14 names, one per line, id order) and `synthetic.json` (config,
/// seed, counts). Deterministic in `(n, seed, cfg)`.
pub fn write_dataset(
    out: &Path,
    n: usize,
    seed: u64,
    cfg: &SyntheticConfig,
) -> Result<SyntheticSummary> {
    if n == 0 {
        return Err(VocError::InvalidArgument {
            name: "images",
            reason: "need at least one image".into(),
        });
    }
    cfg.validate()?;
    for d in ["Annotations", "JPEGImages"] {
        let p = out.join(d);
        std::fs::create_dir_all(&p).map_err(|e| VocError::io(&p, e))?;
    }
    let labels = LabelSet::rbc14();
    let ext = match cfg.format {
        ImageFormat::Jpeg => "jpg",
        ImageFormat::Png => "png",
    };
    let counts: Vec<Result<Vec<usize>>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let id = format!("synth_{i:05}");
            let s = render_image(cfg, image_seed(seed, i))?;
            let img_path = out.join("JPEGImages").join(format!("{id}.{ext}"));
            save(&s.image, &img_path, cfg.format)?;
            let sample = Sample {
                id: id.clone(),
                image_path: img_path,
                width: cfg.width,
                height: cfg.height,
                objects: s.objects,
            };
            let ann = sample.to_voc(&labels)?;
            ann.write(&out.join("Annotations").join(format!("{id}.xml")))?;
            let mut c = vec![0usize; labels.len()];
            for o in &sample.objects {
                c[o.class.index()] += 1;
            }
            Ok(c)
        })
        .collect();
    let mut per_class = vec![0usize; labels.len()];
    for c in counts {
        for (t, v) in per_class.iter_mut().zip(c?) {
            *t += v;
        }
    }
    let ids: Vec<String> = (0..n).map(|i| format!("synth_{i:05}")).collect();
    let (tr, va, te) = split_sizes(n, cfg.val_fraction, cfg.test_fraction);
    write_split(out, "train", &ids[..tr])?;
    write_split(out, "val", &ids[tr..tr + va])?;
    write_split(out, "test", &ids[tr + va..])?;
    write_split(out, "trainval", &ids[..tr + va])?;
    let classes = out.join("classes.txt");
    std::fs::write(&classes, RBC14_CLASSES.join("\n") + "\n")
        .map_err(|e| VocError::io(&classes, e))?;
    let summary = SyntheticSummary {
        images: n,
        objects_per_class: RBC14_CLASSES
            .iter()
            .zip(&per_class)
            .map(|(n, c)| (n.to_string(), *c))
            .collect(),
        train: tr,
        val: va,
        test: te,
    };
    let meta = serde_json::json!({
        "generator": "arfpn-voc synthetic",
        "seed": seed,
        "config": cfg,
        "summary": summary,
    });
    let meta_path = out.join("synthetic.json");
    let text = serde_json::to_string_pretty(&meta).map_err(|e| VocError::InvalidArgument {
        name: "config",
        reason: e.to_string(),
    })?;
    std::fs::write(&meta_path, text).map_err(|e| VocError::io(&meta_path, e))?;
    Ok(summary)
}

fn save(img: &RgbImage, path: &Path, format: ImageFormat) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| VocError::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    let res = match format {
        ImageFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, 95).encode_image(img)
        }
        ImageFormat::Png => img.write_to(&mut w, image::ImageFormat::Png),
    };
    res.map_err(|e| VocError::UnreadableImage {
        image: path.to_path_buf(),
        message: format!("cannot encode: {e}"),
    })
}
