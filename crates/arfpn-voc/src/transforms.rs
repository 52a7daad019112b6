//! Image + annotation transforms: resize to a min/max side, horizontal flip, Gaussian
//! denoising. Each returns the new image together with the matching [`Sample`] (boxes moved
//! with the pixels); pixel sizes in the sample are updated.

use image::{imageops, RgbImage};

use crate::annotation::Sample;
use crate::error::{Result, VocError};

/// The output `(width, height)` of [`resize_min_max`] for an input of `width × height`:
/// scale `s = min(min_side / short, max_side / long)` (torchvision's
/// `GeneralizedRCNNTransform` rule: the short side becomes `min_side` unless that would make
/// the long side exceed `max_side`), sides rounded to the nearest integer (at least 1).
pub fn resized_size(width: u32, height: u32, min_side: u32, max_side: u32) -> (u32, u32) {
    let short = width.min(height) as f64;
    let long = width.max(height) as f64;
    let s = (min_side as f64 / short).min(max_side as f64 / long);
    let w = ((width as f64 * s).round() as u32).max(1);
    let h = ((height as f64 * s).round() as u32).max(1);
    (w, h)
}

/// Resize so the short side is `min_side` and the long side at most `max_side` (see
/// [`resized_size`]); bilinear (triangle) filtering. Boxes are scaled by the per-axis ratio
/// of new to old size, exactly like torchvision's `resize_boxes`.
pub fn resize_min_max(
    img: &RgbImage,
    sample: &Sample,
    min_side: u32,
    max_side: u32,
) -> Result<(RgbImage, Sample)> {
    if min_side == 0 || max_side == 0 || min_side > max_side {
        return Err(VocError::InvalidArgument {
            name: "min_side/max_side",
            reason: format!("need 0 < min_side <= max_side, got {min_side}/{max_side}"),
        });
    }
    let (w, h) = img.dimensions();
    if (w, h) != (sample.width, sample.height) {
        return Err(size_error(sample, w, h));
    }
    let (nw, nh) = resized_size(w, h, min_side, max_side);
    let out = imageops::resize(img, nw, nh, imageops::FilterType::Triangle);
    let sx = nw as f32 / w as f32;
    let sy = nh as f32 / h as f32;
    let mut s = sample.clone();
    s.width = nw;
    s.height = nh;
    for o in &mut s.objects {
        o.bbox = o.bbox.scale(sx, sy);
    }
    Ok((out, s))
}

/// Mirror left-right: pixel column `x` moves to `W-1-x`, a box `[x1, x2]` to `[W-x2, W-x1]`.
pub fn hflip(img: &RgbImage, sample: &Sample) -> Result<(RgbImage, Sample)> {
    let (w, h) = img.dimensions();
    if (w, h) != (sample.width, sample.height) {
        return Err(size_error(sample, w, h));
    }
    let out = imageops::flip_horizontal(img);
    let mut s = sample.clone();
    for o in &mut s.objects {
        o.bbox = o.bbox.flip_horizontal(w as f32);
    }
    Ok((out, s))
}

fn size_error(sample: &Sample, w: u32, h: u32) -> VocError {
    VocError::SizeMismatch {
        path: sample.image_path.clone(),
        image: sample.image_path.clone(),
        xml_width: sample.width,
        xml_height: sample.height,
        width: w,
        height: h,
    }
}

/// The normalised 1-D Gaussian kernel of standard deviation `sigma`, radius `ceil(3 sigma)`
/// (at least 1): `k[i] ∝ exp(-(i-r)² / (2 sigma²))`, summing to 1.
pub fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil().max(1.0) as i32;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    k
}

/// Reflect an out-of-range index into `0..n` (`dcb|abcd|cba`, OpenCV's BORDER_REFLECT_101).
fn reflect(i: isize, n: isize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let mut i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

/// Separable Gaussian blur of an interleaved `channels`-channel `f32` image in place
/// (border: reflect-101, as OpenCV's `GaussianBlur`). `sigma <= 0` leaves it unchanged.
pub fn gaussian_blur_f32(
    data: &mut [f32],
    width: usize,
    height: usize,
    channels: usize,
    sigma: f32,
) {
    if sigma <= 0.0 || width == 0 || height == 0 {
        return;
    }
    debug_assert_eq!(data.len(), width * height * channels);
    let k = gaussian_kernel(sigma);
    let r = (k.len() / 2) as isize;
    let mut tmp = vec![0.0f32; data.len()];
    // Horizontal pass: data -> tmp.
    for y in 0..height {
        let row = y * width;
        for x in 0..width {
            for c in 0..channels {
                let mut acc = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let xx = reflect(x as isize + j as isize - r, width as isize);
                    acc += kv * data[(row + xx) * channels + c];
                }
                tmp[(row + x) * channels + c] = acc;
            }
        }
    }
    // Vertical pass: tmp -> data.
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                let mut acc = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let yy = reflect(y as isize + j as isize - r, height as isize);
                    acc += kv * tmp[(yy * width + x) * channels + c];
                }
                data[(y * width + x) * channels + c] = acc;
            }
        }
    }
}

/// Gaussian denoising (the paper filters every image with a Gaussian before cropping):
/// [`gaussian_blur_f32`] on the RGB pixels, rounded back to `u8`. Boxes do not move; the
/// sample is returned unchanged for symmetry with the other transforms.
pub fn gaussian_denoise(img: &RgbImage, sample: &Sample, sigma: f32) -> Result<(RgbImage, Sample)> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(VocError::InvalidArgument {
            name: "sigma",
            reason: format!("must be finite and >= 0, got {sigma}"),
        });
    }
    let (w, h) = img.dimensions();
    if (w, h) != (sample.width, sample.height) {
        return Err(size_error(sample, w, h));
    }
    let mut f: Vec<f32> = img.as_raw().iter().map(|&v| v as f32).collect();
    gaussian_blur_f32(&mut f, w as usize, h as usize, 3, sigma);
    let raw: Vec<u8> = f
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    let out = RgbImage::from_raw(w, h, raw).ok_or_else(|| VocError::InvalidArgument {
        name: "img",
        reason: "buffer size mismatch".into(),
    })?;
    Ok((out, sample.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotation::Object;
    use arfpn_boxes::{BBox, ClassId};

    fn sample(w: u32, h: u32, boxes: &[BBox]) -> Sample {
        Sample {
            id: "t".into(),
            image_path: "t.png".into(),
            width: w,
            height: h,
            objects: boxes
                .iter()
                .map(|&bbox| Object {
                    bbox,
                    class: ClassId::new(0),
                    difficult: false,
                    truncated: false,
                })
                .collect(),
        }
    }

    /// A black image with a white rectangle exactly covering `b` (integer box).
    fn rect_image(w: u32, h: u32, b: BBox) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let inside =
                x as f32 >= b.x1 && (x as f32) < b.x2 && y as f32 >= b.y1 && (y as f32) < b.y2;
            image::Rgb(if inside { [255; 3] } else { [0; 3] })
        })
    }

    /// Bounding box of pixels brighter than `thr`.
    fn bright_bbox(img: &RgbImage, thr: u8) -> BBox {
        let (mut x1, mut y1, mut x2, mut y2) = (u32::MAX, u32::MAX, 0, 0);
        for (x, y, p) in img.enumerate_pixels() {
            if p.0[0] > thr {
                x1 = x1.min(x);
                y1 = y1.min(y);
                x2 = x2.max(x + 1);
                y2 = y2.max(y + 1);
            }
        }
        BBox::new(x1 as f32, y1 as f32, x2 as f32, y2 as f32)
    }

    #[test]
    fn resized_size_follows_torchvision_rule() {
        assert_eq!(resized_size(640, 480, 800, 1333), (1067, 800));
        assert_eq!(resized_size(500, 375, 800, 1000), (1000, 750));
        assert_eq!(resized_size(2000, 100, 800, 1333), (1333, 67));
        assert_eq!(resized_size(64, 64, 32, 32), (32, 32));
    }

    #[test]
    fn resize_moves_boxes_with_pixels() {
        let b = BBox::new(8.0, 4.0, 24.0, 20.0);
        let img = rect_image(40, 32, b);
        let (out, s) = resize_min_max(&img, &sample(40, 32, &[b]), 64, 80).unwrap();
        assert_eq!(out.dimensions(), (80, 64));
        assert_eq!((s.width, s.height), (80, 64));
        assert_eq!(s.objects[0].bbox, BBox::new(16.0, 8.0, 48.0, 40.0));
        // The white region of the resized image matches the scaled box (±1 px of filtering).
        let bb = bright_bbox(&out, 127);
        for (a, e) in bb.to_array().iter().zip(s.objects[0].bbox.to_array()) {
            assert!((a - e).abs() <= 1.0, "{bb:?} vs {:?}", s.objects[0].bbox);
        }
        assert!(resize_min_max(&img, &sample(40, 32, &[b]), 0, 10).is_err());
        assert!(resize_min_max(&img, &sample(41, 32, &[b]), 10, 10).is_err());
    }

    #[test]
    fn hflip_mirrors_boxes_and_pixels() {
        let b = BBox::new(2.0, 3.0, 7.0, 9.0);
        let img = rect_image(20, 12, b);
        let (out, s) = hflip(&img, &sample(20, 12, &[b])).unwrap();
        assert_eq!(s.objects[0].bbox, BBox::new(13.0, 3.0, 18.0, 9.0));
        assert_eq!(bright_bbox(&out, 127), s.objects[0].bbox);
        assert_eq!(out.get_pixel(19 - 2, 3), img.get_pixel(2, 3));
        // Flipping twice is the identity.
        let (back, s2) = hflip(&out, &s).unwrap();
        assert_eq!(back, img);
        assert_eq!(s2.objects[0].bbox, b);
    }

    #[test]
    fn gaussian_kernel_hand_values() {
        let k = gaussian_kernel(1.0);
        assert_eq!(k.len(), 7);
        let e = [(-4.5f32).exp(), (-2.0f32).exp(), (-0.5f32).exp(), 1.0];
        let z = 2.0 * (e[0] + e[1] + e[2]) + e[3];
        for (i, &v) in k.iter().enumerate() {
            let want = e[3 - (i as i32 - 3).unsigned_abs() as usize] / z;
            assert!((v - want).abs() < 1e-7);
        }
    }

    #[test]
    fn denoise_preserves_constants_and_mass_and_boxes() {
        let b = BBox::new(1.0, 1.0, 3.0, 3.0);
        let flat = RgbImage::from_pixel(9, 7, image::Rgb([100, 150, 200]));
        let (out, s) = gaussian_denoise(&flat, &sample(9, 7, &[b]), 1.5).unwrap();
        assert_eq!(out, flat);
        assert_eq!(s.objects[0].bbox, b);
        // An impulse in the middle spreads symmetrically; its mass is preserved.
        let mut f = vec![0.0f32; 15 * 15];
        f[7 * 15 + 7] = 1000.0;
        gaussian_blur_f32(&mut f, 15, 15, 1, 1.0);
        let total: f32 = f.iter().sum();
        assert!((total - 1000.0).abs() < 1e-2);
        assert!((f[7 * 15 + 6] - f[7 * 15 + 8]).abs() < 1e-4);
        assert!((f[6 * 15 + 7] - f[7 * 15 + 6]).abs() < 1e-4);
        let k = gaussian_kernel(1.0);
        assert!((f[7 * 15 + 7] - 1000.0 * k[3] * k[3]).abs() < 1e-3);
        assert!(gaussian_denoise(&flat, &sample(9, 7, &[]), f32::NAN).is_err());
    }

    #[test]
    fn reflect_101() {
        let v: Vec<usize> = (-3..8).map(|i| reflect(i, 5)).collect();
        assert_eq!(v, [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
    }
}
