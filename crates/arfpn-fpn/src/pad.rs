//! Padding images to a size the FPN accepts.

use candle_core::{Result, Tensor};

/// Pads `[N, C, H, W]` images with zeros at the bottom and right so that `H` and `W` become
/// multiples of `multiple` (torchvision's `batch_images(size_divisible=32)`, detectron2's
/// `ImageList.from_tensors`). Box coordinates are unchanged by this padding. Returns the input
/// itself when no padding is needed.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// let x = Tensor::ones((1, 3, 33, 64), DType::F32, &Device::Cpu).unwrap();
/// let y = arfpn_fpn::pad_to_multiple(&x, 32).unwrap();
/// assert_eq!(y.dims(), [1, 3, 64, 64]);
/// ```
pub fn pad_to_multiple(x: &Tensor, multiple: usize) -> Result<Tensor> {
    if multiple == 0 {
        candle_core::bail!("pad_to_multiple: `multiple` must be at least 1");
    }
    let (_, _, h, w) = x.dims4()?;
    let ph = h.div_ceil(multiple) * multiple - h;
    let pw = w.div_ceil(multiple) * multiple - w;
    let x = if ph > 0 {
        x.pad_with_zeros(2, 0, ph)?
    } else {
        x.clone()
    };
    if pw > 0 {
        x.pad_with_zeros(3, 0, pw)
    } else {
        Ok(x)
    }
}
