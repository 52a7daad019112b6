//! Nearest-neighbour 2× upsampling whose backward accumulates.
//!
//! candle 0.11's `upsample_nearest2d` backward *overwrites* the gradient already accumulated
//! for its input (`*sum_grad = ..`), so when the input also feeds another branch — the FPN
//! top-down pattern, where a lateral map is both upsampled and output — the other branch's
//! gradient is silently dropped. This version is a reshape/broadcast composition, whose
//! backward is candle's (correct) broadcast reduction, on every device.

use crate::error::shape_err;
use candle_core::{Result, Tensor};

/// Nearest 2× upsampling of `x: [N, C, H, W]` to `[N, C, 2H, 2W]`, each cell copied into a 2×2
/// block (`torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")`).
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[[[1f32, 2.]]]], &Device::Cpu)?;
/// let y = arfpn_nn::upsample_nearest2x(&x)?;
/// assert_eq!(y.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?, [[1., 1., 2., 2.], [1., 1., 2., 2.]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let &[n, c, h, w] = x.dims() else {
        return Err(shape_err(
            "upsample_nearest2x",
            "x",
            x.dims(),
            "[N, C, H, W]",
        ));
    };
    x.reshape((n, c, h, 1, w, 1))?
        .broadcast_as((n, c, h, 2, w, 2))?
        .contiguous()?
        .reshape((n, c, 2 * h, 2 * w))
}
