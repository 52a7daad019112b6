//! Image decoding: JPEG, PNG and BMP to 8-bit RGB.

use std::path::Path;

use image::RgbImage;

use crate::error::{Result, VocError};

/// Decode the image at `path` as 8-bit RGB. The format is taken from the file's content,
/// not its extension (TXL-PBC's upstream `.png` files hold JPEG data). Grayscale is
/// replicated to three channels; an alpha channel is discarded (not composited: the
/// datasets' RGBA PNGs are fully opaque); 16-bit channels are scaled to 8 bits.
///
/// Errors: [`VocError::Io`] when the file cannot be read (`NotFound` for a missing file),
/// [`VocError::UnreadableImage`] when it cannot be decoded.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| VocError::io(path, e))?;
    decode_rgb(&bytes, path)
}

/// Decode in-memory image bytes (see [`load_rgb`]); `path` names the source in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    let img = image::load_from_memory(bytes).map_err(|e| VocError::UnreadableImage {
        image: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(img.into_rgb8())
}

/// The `(width, height)` of an image from its header only (fast: no pixel decoding).
pub fn image_size(path: &Path) -> Result<(u32, u32)> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| VocError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| VocError::io(path, e))?;
    reader
        .into_dimensions()
        .map_err(|e| VocError::UnreadableImage {
            image: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Save an RGB image; the format follows the extension (`.png`, `.jpg`, `.bmp`).
pub fn save_rgb(img: &RgbImage, path: &Path) -> Result<()> {
    img.save(path).map_err(|e| match e {
        image::ImageError::IoError(io) => VocError::io(path, io),
        other => VocError::UnreadableImage {
            image: path.to_path_buf(),
            message: format!("cannot encode: {other}"),
        },
    })
}
