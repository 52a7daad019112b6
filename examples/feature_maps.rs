//! Heat maps of the intermediate feature maps (backbone C2–C5, FPN P2–P6) and spatial
//! attention maps of the FPN, C-ARFPN and CS-ARFPN variants over an input image: the
//! paper's Figure 7.
//!
//! ```text
//! cargo run --release --example feature_maps -- [--image smear.png] [--weights VARIANT=FILE]... [--out DIR]
//! cargo run --release --example feature_maps -- --image smear.jpg --checkpoint runs/NAME/best.safetensors... [--out DIR]
//! ```
//!
//! `--checkpoint` draws trained detectors as they were configured (what `train` wrote: any
//! depth, width, norm and attention), each named after its attention (`fpn`, `c-arfpn`,
//! `s-arfpn`, `cs-arfpn`); the spatial attention maps are those of the last unit of
//! layer1–layer3.
//! Without `--image` a synthetic blood smear is drawn (pale background, red discs with a
//! lighter centre, some overlapping). **Without `--weights` the networks keep their random
//! initialisation**: the maps then show the mechanics only (where the receptive fields and
//! paddings fall), not what a detector attends to; Figure 7 needs trained detectors, e.g.
//! `--weights cs-arfpn=cs_arfpn.safetensors` with `backbone.*` / `fpn.*` tensor names
//! (VARIANT is one of `fpn`, `c-arfpn`, `cs-arfpn`; every file is checked before any work).
//! PNGs go to `DIR` (default `target/feature_maps`): `input.png`, and per variant
//! `VARIANT_C2..C5.png`, `VARIANT_P2..P6.png` and, for CS-ARFPN, `VARIANT_attention_layerN.U.png`.
//!
//! Each map is blended 50/50 over the image with a colour bar on the right (top: the
//! largest value, bottom: the smallest, with their values):
//! * feature maps: the channel mean of |x|, scaled between the minimum and maximum of the
//!   map's **interior** (the outermost ring of cells left out of the range and clamped);
//! * attention maps: the sigmoid output itself, on the fixed scale 0–1.
//!
//! The bright frame along the image border: every convolution pads its input with zeros
//! (3×3 convs, and the 7×7 conv of the spatial attention over the channel mean/max maps),
//! so the cells next to the border see zeros where interior cells see image, and respond
//! differently. It is a property of the networks (torchvision's and the paper's pad the same
//! way), strongest with random weights. The attention maps show it as it is (fixed scale);
//! for the feature maps the interior range keeps it from compressing everything else into
//! one colour.

mod cli;

use arfpn_backbone::{load_safetensors, AttentionKind, ResNet, ResNetConfig};
use arfpn_fpn::{Fpn, FpnConfig};
use arfpn_nn::pad_to_multiple;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clap::Parser;
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};

type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const VARIANTS: [&str; 3] = ["fpn", "c-arfpn", "cs-arfpn"];

/// Heat maps of C2–C5, P2–P6 and the spatial attention of FPN, C-ARFPN and CS-ARFPN
/// (paper Fig. 7). Random weights unless --weights is given.
#[derive(Parser)]
#[command(name = "feature_maps")]
struct Args {
    /// Input image (JPEG/PNG/BMP) [default: a synthetic smear].
    #[arg(long, value_parser = cli::existing_file)]
    image: Option<PathBuf>,
    /// Trained weights of a variant, VARIANT=FILE (VARIANT: fpn, c-arfpn, cs-arfpn);
    /// repeatable.
    #[arg(long, value_parser = weights_arg)]
    weights: Vec<(String, PathBuf)>,
    /// A trained detector checkpoint (what `train` writes); repeatable. Its backbone and FPN
    /// are drawn as configured (any depth, width, norm and attention), named after the
    /// attention (fpn, c-arfpn, s-arfpn, cs-arfpn); the random variants are then skipped.
    #[arg(long, value_parser = cli::existing_file)]
    checkpoint: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, default_value = "target/feature_maps")]
    out: PathBuf,
}

fn weights_arg(s: &str) -> Result<(String, PathBuf), String> {
    let (k, f) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not VARIANT=FILE"))?;
    if !VARIANTS.contains(&k) {
        return Err(format!(
            "unknown variant {k:?} (one of {})",
            VARIANTS.join(", ")
        ));
    }
    Ok((k.to_string(), cli::existing_file(f)?))
}

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

/// The image normalised by `mean`/`std` per channel (the detector's `input` settings; the
/// random variants use ImageNet's, the detector default).
fn to_tensor(img: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> candle_core::Result<Tensor> {
    let (w, h) = img.dimensions();
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

/// How a map's values become colours.
#[derive(Clone, Copy)]
enum Scale {
    /// Between the minimum and maximum of the interior cells (border ring excluded).
    Interior,
    /// Fixed `[lo, hi]`.
    Fixed(f32, f32),
}

/// The channel mean of |x| (the value itself for one channel) as an `h x w` grid.
fn channel_mean(map: &Tensor) -> AnyResult<(usize, usize, Vec<f32>)> {
    let m = map
        .abs()?
        .mean_keepdim(1)?
        .squeeze(0)?
        .squeeze(0)?
        .to_dtype(DType::F32)?;
    let (mh, mw) = m.dims2()?;
    Ok((mh, mw, m.flatten_all()?.to_vec1::<f32>()?))
}

fn range(v: &[f32], mh: usize, mw: usize, scale: Scale) -> (f32, f32) {
    match scale {
        Scale::Fixed(lo, hi) => (lo, hi),
        Scale::Interior => {
            let ring = usize::from(mh >= 6 && mw >= 6);
            let mut lo = f32::MAX;
            let mut hi = f32::MIN;
            for y in ring..mh - ring {
                for x in ring..mw - ring {
                    lo = lo.min(v[y * mw + x]);
                    hi = hi.max(v[y * mw + x]);
                }
            }
            (lo, hi)
        }
    }
}

/// The map bilinearly resized to the image, coloured, blended 50/50 over it, with a colour
/// bar on the right.
fn overlay(img: &RgbImage, map: &Tensor, scale: Scale) -> AnyResult<RgbImage> {
    let (mh, mw, v) = channel_mean(map)?;
    let (lo, hi) = range(&v, mh, mw, scale);
    let norm: Vec<f32> = v
        .iter()
        .map(|x| ((x - lo) / (hi - lo).max(1e-12)).clamp(0.0, 1.0))
        .collect();
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
    const BAR: u32 = 72;
    let mut out = RgbImage::from_pixel(w + BAR, h, Rgb([255, 255, 255]));
    for (x, y, px) in out.enumerate_pixels_mut() {
        if x < w {
            let t = sample((x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32);
            let col = jet(t);
            let p = img.get_pixel(x, y);
            *px = Rgb([0, 1, 2].map(|c| (0.5 * p[c] as f32 + 0.5 * 255.0 * col[c]) as u8));
        }
    }
    // Colour bar: a gradient from hi (top) to lo (bottom), labelled at both ends.
    let (top, bottom) = (14u32, h.saturating_sub(14).max(15));
    for y in top..bottom {
        let t = 1.0 - (y - top) as f32 / (bottom - top - 1).max(1) as f32;
        let col = jet(t).map(|c| (255.0 * c) as u8);
        for x in w + 8..w + 20 {
            out.put_pixel(x, y, Rgb(col));
        }
    }
    draw_text(&mut out, w + 24, top, &label(hi));
    draw_text(&mut out, w + 24, bottom.saturating_sub(10), &label(lo));
    Ok(out)
}

fn label(v: f32) -> String {
    if v != 0.0 && (v.abs() >= 1000.0 || v.abs() < 0.01) {
        format!("{v:.1e}")
    } else {
        format!("{v:.2}")
    }
}

/// 3x5 glyphs (rows top to bottom, 3 bits each) for the colour bar labels.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        'e' => [0, 7, 7, 4, 7],
        _ => return None,
    })
}

/// Black text at 2x scale (8 px a character, 10 px high).
fn draw_text(img: &mut RgbImage, x0: u32, y0: u32, s: &str) {
    for (i, c) in s.chars().enumerate() {
        let Some(g) = glyph(c) else { continue };
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3u32 {
                if bits >> (2 - col) & 1 == 1 {
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let x = x0 + i as u32 * 8 + col * 2 + dx;
                        let y = y0 + row as u32 * 2 + dy;
                        if x < img.width() && y < img.height() {
                            img.put_pixel(x, y, Rgb([0, 0, 0]));
                        }
                    }
                }
            }
        }
    }
}

fn save(img: &RgbImage, path: &Path) -> AnyResult<()> {
    img.save(path)
        .map_err(|e| format!("{}: {e}", path.display()).into())
}

fn main() -> AnyResult<()> {
    let args = Args::parse();
    let img = match &args.image {
        Some(p) => image::open(p)
            .map_err(|e| format!("{}: {e}", p.display()))?
            .to_rgb8(),
        None => synthetic_smear(320, 256),
    };
    let out = &args.out;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    save(&img, &out.join("input.png"))?;
    if !args.checkpoint.is_empty() {
        let mut seen: Vec<String> = Vec::new();
        for file in &args.checkpoint {
            let ckpt = arfpn::Checkpoint::read(file, &Device::Cpu)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let cfg = &ckpt.config;
            let variant = match &cfg.backbone.attention {
                AttentionKind::None => "fpn",
                AttentionKind::Channel { .. } => "c-arfpn",
                AttentionKind::Spatial { .. } => "s-arfpn",
                AttentionKind::Cbam { .. } => "cs-arfpn",
                AttentionKind::Custom { name, .. } => name.as_str(),
            };
            let n = seen.iter().filter(|v| *v == variant).count();
            seen.push(variant.to_string());
            let name = if n == 0 {
                variant.to_string()
            } else {
                format!("{variant}-{}", n + 1)
            };
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu).pp("backbone");
            let net = ResNet::new(&cfg.backbone, vb.pp("body"))?;
            let fpn = Fpn::new(
                &cfg.fpn,
                &arfpn_backbone::Backbone::output_shapes(&net),
                vb.pp("fpn"),
            )?;
            let report =
                load_safetensors(&vm, file).map_err(|e| format!("{}: {e}", file.display()))?;
            if !report.missing.is_empty() {
                return Err(format!(
                    "{}: backbone/FPN tensors missing: {}",
                    file.display(),
                    report.missing.join(", ")
                )
                .into());
            }
            println!(
                "{name}: {} ({} backbone and FPN tensors loaded)",
                file.display(),
                report.loaded.len()
            );
            let x = to_tensor(&img, cfg.input.pixel_mean, cfg.input.pixel_std)?;
            draw(&name, &net, &fpn, &x, &img, out)?;
        }
        println!("PNGs in {}", out.display());
        return Ok(());
    }
    let x = to_tensor(&img, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])?;
    if args.weights.is_empty() {
        println!(
            "no --weights: random initialisation (the maps show mechanics, not learnt attention)"
        );
    }

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
        if let Some((_, file)) = args.weights.iter().find(|(k, _)| k == name) {
            let report =
                load_safetensors(&vm, file).map_err(|e| format!("{}: {e}", file.display()))?;
            println!("{name}: {report}");
        }
        draw(name, &net, &fpn, &x, &img, out)?;
    }
    println!("PNGs in {}", out.display());
    Ok(())
}

/// Writes `NAME_C2..C5.png`, `NAME_P2..P6.png` and the spatial attention of the last unit of
/// layer1–layer3 (for attention with a spatial map) over `img`.
fn draw(
    name: &str,
    net: &ResNet,
    fpn: &Fpn,
    x: &Tensor,
    img: &RgbImage,
    out: &Path,
) -> AnyResult<()> {
    let x = pad_to_multiple(x, 32)?;
    let trace = net.forward_traced(&x, false)?;
    let p = fpn.forward(&trace.features)?;
    let mut written = Vec::new();
    // The heat maps cover the padded tensor; crop them back to the image's area.
    for f in trace.features.iter().chain(p.iter()) {
        let crop = crop_to_image(&f.tensor, f.stride, img)?;
        save(
            &overlay(img, &crop, Scale::Interior)?,
            &out.join(format!("{name}_{}.png", f.name)),
        )?;
        written.push(f.name.clone());
    }
    // Spatial attention of the last unit of layer1..layer3 (units are named `layerL.U`).
    for layer in 1..=3usize {
        let prefix = format!("layer{layer}.");
        let Some(u) = trace
            .attention
            .iter()
            .filter(|u| u.unit.starts_with(&prefix))
            .max_by_key(|u| u.unit[prefix.len()..].parse::<usize>().unwrap_or(0))
        else {
            continue;
        };
        if let Some(m) = u.maps.iter().find(|m| m.name == "spatial") {
            let stride = 4 << (layer - 1);
            let crop = crop_to_image(&m.tensor, stride, img)?;
            save(
                &overlay(img, &crop, Scale::Fixed(0.0, 1.0))?,
                &out.join(format!("{name}_attention_{}.png", u.unit)),
            )?;
            written.push(format!("attention {}", u.unit));
        }
    }
    println!("{name}: wrote {}", written.join(", "));
    Ok(())
}

/// The cells of a stride-`stride` map that cover the (unpadded) image.
fn crop_to_image(t: &Tensor, stride: usize, img: &RgbImage) -> candle_core::Result<Tensor> {
    let h = (img.height() as usize).div_ceil(stride).min(t.dim(2)?);
    let w = (img.width() as usize).div_ceil(stride).min(t.dim(3)?);
    t.narrow(2, 0, h)?.narrow(3, 0, w)
}
