//! Batches of images padded to a size the backbone and the FPN accept: [`ImageBatch`].

use arfpn_boxes::ImageSize;
use candle_core::{Result, Tensor};

use crate::error::{config_err, shape_err};

/// Pads `[N, C, H, W]` images with zeros at the bottom and right so that `H` and `W` become
/// multiples of `multiple` (torchvision's `batch_images(size_divisible=32)`, detectron2's
/// `ImageList.from_tensors`). Box coordinates are unchanged by this padding. Returns the input
/// itself when no padding is needed.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// let x = Tensor::ones((1, 3, 33, 64), DType::F32, &Device::Cpu).unwrap();
/// let y = arfpn_nn::pad_to_multiple(&x, 32).unwrap();
/// assert_eq!(y.dims(), [1, 3, 64, 64]);
/// ```
pub fn pad_to_multiple(x: &Tensor, multiple: usize) -> Result<Tensor> {
    if multiple == 0 {
        candle_core::bail!("pad_to_multiple: `multiple` must be at least 1");
    }
    let (_, _, h, w) = x.dims4()?;
    let ph = h.div_ceil(multiple) * multiple - h;
    let pw = w.div_ceil(multiple) * multiple - w;
    pad_to(x, ph, pw)
}

/// A batch of images of possibly different sizes, zero-padded at the bottom and right to one
/// shape whose sides are multiples of the backbone's `size_divisibility` (torchvision's
/// `ImageList` / `batch_images`, detectron2's `ImageList.from_tensors`), with each image's own
/// size kept: boxes stay in each image's pixels, and the RPN and the head clip to `sizes`.
///
/// ```
/// use arfpn_boxes::ImageSize;
/// use arfpn_nn::ImageBatch;
/// use candle_core::{DType, Device, Tensor};
/// let dev = Device::Cpu;
/// let a = Tensor::ones((3, 40, 50), DType::F32, &dev).unwrap();
/// let b = Tensor::ones((3, 70, 20), DType::F32, &dev).unwrap();
/// let batch = ImageBatch::from_images(&[a, b], 32).unwrap();
/// assert_eq!(batch.tensor.dims(), [2, 3, 96, 64]);
/// assert_eq!(batch.sizes, [ImageSize::new(40, 50), ImageSize::new(70, 20)]);
/// ```
#[derive(Clone, Debug)]
pub struct ImageBatch {
    /// `[N, C, H, W]`, `H` and `W` multiples of the divisibility given at construction.
    pub tensor: Tensor,
    /// The real (unpadded) size of each image.
    pub sizes: Vec<ImageSize>,
}

impl ImageBatch {
    /// Pads `[C, H, W]` images (same `C`, dtype and device) into one batch.
    pub fn from_images(images: &[Tensor], size_divisibility: usize) -> Result<Self> {
        let op = "ImageBatch::from_images";
        if images.is_empty() {
            return Err(config_err(op, "images", "the batch is empty"));
        }
        let mut sizes = Vec::with_capacity(images.len());
        for im in images {
            let &[c, h, w] = im.dims() else {
                return Err(shape_err(op, "images", im.dims(), "[C, H, W]"));
            };
            if c != images[0].dim(0)? || im.dtype() != images[0].dtype() {
                return Err(shape_err(
                    op,
                    "images",
                    im.dims(),
                    format!(
                        "{} channels and {:?} like the first image",
                        images[0].dim(0)?,
                        images[0].dtype()
                    ),
                ));
            }
            if h == 0 || w == 0 {
                return Err(shape_err(op, "images", im.dims(), "a non-empty image"));
            }
            sizes.push(ImageSize::new(h, w));
        }
        let max_h = sizes.iter().map(|s| s.height).max().unwrap_or(0);
        let max_w = sizes.iter().map(|s| s.width).max().unwrap_or(0);
        let target = ImageSize::new(max_h, max_w).padded_to(size_divisibility);
        let padded: Vec<Tensor> = images
            .iter()
            .zip(&sizes)
            .map(|(im, s)| {
                pad_to(
                    &im.unsqueeze(0)?,
                    target.height - s.height,
                    target.width - s.width,
                )
            })
            .collect::<Result<_>>()?;
        let tensor = if padded.len() == 1 {
            padded.into_iter().next().expect("one image")
        } else {
            Tensor::cat(&padded, 0)?
        };
        Ok(Self { tensor, sizes })
    }

    /// A batch of `[N, C, H, W]` images that all have size `H × W`, padded.
    pub fn from_tensor(images: &Tensor, size_divisibility: usize) -> Result<Self> {
        let (n, _, h, w) = images.dims4()?;
        if n == 0 || h == 0 || w == 0 {
            return Err(shape_err(
                "ImageBatch::from_tensor",
                "images",
                images.dims(),
                "non-empty [N, C, H, W]",
            ));
        }
        Ok(Self {
            tensor: pad_to_multiple(images, size_divisibility)?,
            sizes: vec![ImageSize::new(h, w); n],
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    /// No images (never true for a batch built by the constructors).
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// The padded size shared by every image of the tensor.
    pub fn padded_size(&self) -> Result<ImageSize> {
        let (_, _, h, w) = self.tensor.dims4()?;
        Ok(ImageSize::new(h, w))
    }
}

/// `x` with `ph` zero rows and `pw` zero columns added at the bottom and right.
fn pad_to(x: &Tensor, ph: usize, pw: usize) -> Result<Tensor> {
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
