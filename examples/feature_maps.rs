//! Heat maps of the intermediate feature maps (C2–C4, P2–P4) and spatial attention maps of
//! the FPN, C-ARFPN and CS-ARFPN variants over an input image: the paper's Figure 7.
//!
//! ```text
//! cargo run --release --example feature_maps -- [--image smear.png] [--weights VARIANT=FILE]... [--out DIR]
//! ```
//!
//! Without `--image` a synthetic blood smear is drawn (pale background, red discs with a
//! lighter centre, some overlapping). Without `--weights` the networks keep their random
//! initialisation, which shows the mechanics only: Figure 7 needs trained detectors, e.g.
//! `--weights cs-arfpn=cs_arfpn.safetensors` with `backbone.*` / `fpn.*` tensor names. PNGs go
//! to `DIR` (default `target/feature_maps`), one per variant and map, plus the input.

use arfpn_backbone::{load_safetensors, AttentionKind, ResNet, ResNetConfig};
use arfpn_fpn::{pad_to_multiple, Fpn, FpnConfig};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use image::{Rgb, RgbImage};
use std::path::PathBuf;

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A synthetic smear: ~60 red blood cells with central pallor on a pale background.
fn synthetic_smear(w: u32, h: u32) -> RgbImage {
    let mut s: u64 = 0x5eed;
    let mut rnd = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let cells: Vec<(f64, f64, f64)> = (0..60)
        .map(|_| (rnd() * w as f64, rnd() * h as f64, 8.0 + 5.0 * rnd()))
        .collect();
    RgbImage::from_fn(w, h, |x, y| {
        let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
        let mut c = [236.0, 222.0, 220.0];
        let mut cover = 0;
        for &(cx, cy, r) in &cells {
            let d = ((px - cx).powi(2) + (py - cy).powi(2)).sqrt() / r;
            if d <= 1.0 {
                cover += 1;
                // Darker rim, pale centre (central pallor).
                let k = 0.55 + 0.35 * (1.0 - d).min(0.5) * 2.0 * (d < 0.45) as u8 as f64;
                let k = if d >= 0.45 { 0.55 - 0.1 * d } else { k };
                c = [c[0] * (0.6 + 0.4 * k), c[1] * k * 0.75, c[2] * k * 0.8];
            }
        }
        if cover > 1 {
            c = c.map(|v| v * 0.92);
        }
        Rgb(c.map(|v| v.clamp(0.0, 255.0) as u8))
    })
}

fn to_tensor(img: &RgbImage) -> candle_core::Result<Tensor> {
    let (w, h) = img.dimensions();
    let mean = [0.485f32, 0.456, 0.406];
    let std = [0.229f32, 0.224, 0.225];
    let mut data = vec![0f32; (3 * w * h) as usize];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            data[(c as u32 * w * h + y * w + x) as usize] =
                (p[c] as f32 / 255.0 - mean[c]) / std[c];
        }
    }
    Tensor::from_vec(data, (1, 3, h as usize, w as usize), &Device::Cpu)
}

/// A "jet"-like colour map for t in [0, 1].
fn jet(t: f32) -> [f32; 3] {
    let c = |x: f32| (1.5 - (4.0 * t - x).abs()).clamp(0.0, 1.0);
    [c(3.0), c(2.0), c(1.0)]
}

/// Channel-mean of |features| (or the map itself for one channel), min-max normalised,
/// bilinearly resized to the image, coloured and blended 50/50 over it.
fn overlay(img: &RgbImage, map: &Tensor) -> AnyResult<RgbImage> {
    let m = map
        .abs()?
        .mean_keepdim(1)?
        .squeeze(0)?
        .squeeze(0)?
        .to_dtype(DType::F32)?;
    let (mh, mw) = m.dims2()?;
    let v = m.flatten_all()?.to_vec1::<f32>()?;
    let (lo, hi) = v
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let norm: Vec<f32> = v.iter().map(|x| (x - lo) / (hi - lo).max(1e-12)).collect();
    let (w, h) = img.dimensions();
    let sample = |fx: f32, fy: f32| {
        let x = (fx * mw as f32 - 0.5).clamp(0.0, (mw - 1) as f32);
        let y = (fy * mh as f32 - 0.5).clamp(0.0, (mh - 1) as f32);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(mw - 1), (y0 + 1).min(mh - 1));
        let (ax, ay) = (x - x0 as f32, y - y0 as f32);
        let at = |yy: usize, xx: usize| norm[yy * mw + xx];
        (1.0 - ay) * ((1.0 - ax) * at(y0, x0) + ax * at(y0, x1))
            + ay * ((1.0 - ax) * at(y1, x0) + ax * at(y1, x1))
    };
    Ok(RgbImage::from_fn(w, h, |x, y| {
        let t = sample((x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32);
        let col = jet(t);
        let p = img.get_pixel(x, y);
        Rgb([0, 1, 2].map(|c| (0.5 * p[c] as f32 + 0.5 * 255.0 * col[c]) as u8))
    }))
}

fn main() -> AnyResult<()> {
    let mut image_path: Option<PathBuf> = None;
    let mut out = PathBuf::from("target/feature_maps");
    let mut weights: Vec<(String, PathBuf)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--image" => image_path = Some(value()?.into()),
            "--out" => out = value()?.into(),
            "--weights" => {
                let v = value()?;
                let (k, f) = v.split_once('=').ok_or("--weights takes VARIANT=FILE")?;
                weights.push((k.to_string(), f.into()));
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let img = match &image_path {
        Some(p) => image::open(p)?.to_rgb8(),
        None => synthetic_smear(320, 256),
    };
    std::fs::create_dir_all(&out)?;
    img.save(out.join("input.png"))?;
    let x = pad_to_multiple(&to_tensor(&img)?, 32)?;

    let variants = [
        ("fpn", AttentionKind::None),
        ("c-arfpn", AttentionKind::channel()),
        ("cs-arfpn", AttentionKind::cbam()),
    ];
    for (name, kind) in variants {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let cfg = ResNetConfig::resnet50().with_attention(kind);
        let net = ResNet::new(&cfg, vb.pp("backbone"))?;
        let fpn = Fpn::new(
            &FpnConfig::default(),
            &arfpn_backbone::Backbone::output_shapes(&net),
            vb.pp("fpn"),
        )?;
        if let Some((_, file)) = weights.iter().find(|(k, _)| k == name) {
            println!("{name}: {}", load_safetensors(&vm, file)?);
        }
        let trace = net.forward_traced(&x, false)?;
        let p = fpn.forward(&trace.features)?;
        let mut written = Vec::new();
        // The heat maps cover the padded tensor; crop them back to the image's area.
        for f in trace.features.iter().take(3).chain(p.iter().take(3)) {
            let crop = crop_to_image(&f.tensor, f.stride, &img)?;
            let file = out.join(format!("{name}_{}.png", f.name));
            overlay(&img, &crop)?.save(&file)?;
            written.push(f.name.clone());
        }
        // Spatial attention of the last unit of layer1..layer3 (CBAM only).
        for unit in ["layer1.2", "layer2.3", "layer3.5"] {
            let Some(u) = trace.attention.iter().find(|u| u.unit == unit) else {
                continue;
            };
            if let Some(m) = u.maps.iter().find(|m| m.name == "spatial") {
                let stride = 4 << unit[5..6].parse::<usize>()?.saturating_sub(1);
                let crop = crop_to_image(&m.tensor, stride, &img)?;
                overlay(&img, &crop)?.save(out.join(format!("{name}_attention_{unit}.png")))?;
                written.push(format!("attention {unit}"));
            }
        }
        println!("{name}: wrote {}", written.join(", "));
    }
    println!("PNGs in {}", out.display());
    Ok(())
}

/// The cells of a stride-`stride` map that cover the (unpadded) image.
fn crop_to_image(t: &Tensor, stride: usize, img: &RgbImage) -> candle_core::Result<Tensor> {
    let h = (img.height() as usize).div_ceil(stride).min(t.dim(2)?);
    let w = (img.width() as usize).div_ceil(stride).min(t.dim(3)?);
    t.narrow(2, 0, h)?.narrow(3, 0, w)
}
