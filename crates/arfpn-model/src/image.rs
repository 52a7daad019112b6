//! Images in, tensors out: what the detector expects as input.

use std::path::Path;

use arfpn_voc::RgbImage;
use candle_core::{Device, Tensor};

use crate::Result;

/// An RGB image as the detector's input: `[3, H, W]` `f32` in `[0, 1]` (channel `c` of pixel
/// `(x, y)` is `image[(x, y)][c] / 255`). The detector normalises it with the configuration's
/// `pixel_mean` / `pixel_std` itself.
///
/// ```
/// let img = arfpn_voc::RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 51]));
/// let t = arfpn_model::image_tensor(&img, &candle_core::Device::Cpu).unwrap();
/// assert_eq!(t.dims(), [3, 2, 4]);
/// assert_eq!(t.get(2).unwrap().get(1).unwrap().get(3).unwrap().to_scalar::<f32>().unwrap(), 0.2);
/// ```
pub fn image_tensor(image: &RgbImage, device: &Device) -> Result<Tensor> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let raw = image.as_raw();
    let mut planar = vec![0f32; 3 * h * w];
    for (i, px) in raw.chunks_exact(3).enumerate() {
        for c in 0..3 {
            planar[c * h * w + i] = px[c] as f32 / 255.0;
        }
    }
    Ok(Tensor::from_vec(planar, (3, h, w), device)?)
}

/// Decodes an image file (JPEG, PNG, BMP; corrupt data is an error naming the file) into
/// [`image_tensor`]'s layout.
pub fn load_image(path: impl AsRef<Path>, device: &Device) -> Result<Tensor> {
    let img = arfpn_voc::image_io::load_rgb(path.as_ref())?;
    image_tensor(&img, device)
}
