//! Image decoding (JPEG, PNG and BMP to 8-bit RGB) and the integrity checks every decode
//! path goes through.
//!
//! A truncated JPEG decodes "successfully" with most decoders: the missing scan data is
//! filled with flat grey and the boxes of its annotation would go into training on an
//! image that is mostly empty. Therefore:
//!
//! - [`check_image_file`] is the cheap structural check (no pixel decoding): the header's
//!   size within [`MAX_IMAGE_PIXELS`] ([`VocError::ImageTooLarge`]), and for JPEG a walk of
//!   the marker segments — start-of-image, every segment inside the file, at least one
//!   non-empty scan, the end-of-image marker `FF D9` after the last scan
//!   ([`VocError::CorruptImage`]); for PNG the final `IEND` chunk, for BMP the declared
//!   file size. [`crate::ImageCheck::Header`] runs it on every image of a dataset.
//! - [`decode_rgb`] / [`load_rgb`] run the same check, then decode; JPEG is decoded by
//!   zune-jpeg in strict mode, so decoder warnings (corrupt entropy-coded data, short scan
//!   data, bad restart markers) are errors too.
//!
//! Not detected: a file cut inside its scan data and then given a new end-of-image marker
//! (the decoder pads the missing data as it does at a marker; no decoder can tell short
//! from complete scan data without decoding every block). A plain cut is always caught.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, RgbImage};
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use crate::error::{Result, VocError};

/// Largest image accepted, in pixels (width × height as declared in the header): 100
/// million, i.e. 300 MB as 8-bit RGB. Larger declared sizes are refused with
/// [`VocError::ImageTooLarge`] before any pixel memory is allocated (a 30-byte corrupt
/// header can declare 65535 × 65535).
pub const MAX_IMAGE_PIXELS: u64 = 100_000_000;

/// What [`check_image_file`] learnt from a file's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// Width in pixels, as declared in the header.
    pub width: u32,
    /// Height in pixels, as declared in the header.
    pub height: u32,
    /// The format detected from the file's content (not its extension).
    pub format: ImageFormat,
}

/// Decode the image at `path` as 8-bit RGB. The format is taken from the file's content,
/// not its extension (TXL-PBC's upstream `.png` files hold JPEG data). Grayscale is
/// replicated to three channels; an alpha channel is discarded (not composited: the
/// datasets' RGBA PNGs are fully opaque); 16-bit channels are scaled to 8 bits.
///
/// Errors: [`VocError::Io`] when the file cannot be read (`NotFound` for a missing file),
/// [`VocError::CorruptImage`] for a truncated or corrupt file (see the module docs),
/// [`VocError::ImageTooLarge`] above [`MAX_IMAGE_PIXELS`], [`VocError::UnreadableImage`]
/// when it cannot be decoded otherwise.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| VocError::io(path, e))?;
    decode_rgb(&bytes, path)
}

/// Decode in-memory image bytes (see [`load_rgb`]); `path` names the source in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    let info = check_image_bytes(bytes, path)?;
    if info.format == ImageFormat::Jpeg {
        return decode_jpeg_strict(bytes, path, info);
    }
    let img = image::load_from_memory_with_format(bytes, info.format).map_err(|e| {
        VocError::UnreadableImage {
            image: path.to_path_buf(),
            message: e.to_string(),
        }
    })?;
    Ok(img.into_rgb8())
}

/// The cheap structural check of an image file (no pixel decoding; see the module docs),
/// for every image input: the format (from the content), the declared size against
/// [`MAX_IMAGE_PIXELS`], and the end-of-data markers that a truncated file lacks.
///
/// Errors as [`load_rgb`].
pub fn check_image_file(path: &Path) -> Result<ImageInfo> {
    let bytes = std::fs::read(path).map_err(|e| VocError::io(path, e))?;
    check_image_bytes(&bytes, path)
}

/// [`check_image_file`] on bytes already in memory; `path` names the source in errors.
pub fn check_image_bytes(bytes: &[u8], path: &Path) -> Result<ImageInfo> {
    let unreadable = |message: String| VocError::UnreadableImage {
        image: path.to_path_buf(),
        message,
    };
    let format =
        image::guess_format(bytes).map_err(|e| unreadable(format!("unknown image format: {e}")))?;
    if format == ImageFormat::Jpeg {
        // Before the header read: a cut inside the header is reported as truncation.
        check_jpeg_structure(bytes, path)?;
    }
    let (width, height) = image::ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| match format {
            ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Bmp => VocError::CorruptImage {
                path: path.to_path_buf(),
                reason: format!("unreadable header: {e}"),
            },
            _ => unreadable(e.to_string()),
        })?;
    check_pixels(width, height, path)?;
    match format {
        ImageFormat::Png => check_png_end(bytes, path)?,
        ImageFormat::Bmp => check_bmp_size(bytes, path)?,
        _ => {}
    }
    Ok(ImageInfo {
        width,
        height,
        format,
    })
}

fn check_pixels(width: u32, height: u32, path: &Path) -> Result<()> {
    if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
        return Err(VocError::ImageTooLarge {
            path: path.to_path_buf(),
            width,
            height,
            limit: MAX_IMAGE_PIXELS,
        });
    }
    Ok(())
}

fn corrupt(path: &Path, reason: impl Into<String>) -> VocError {
    VocError::CorruptImage {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Walk the JPEG marker segments: `FF D8`, segments with lengths inside the file, at
/// least one scan (`FF DA`) with entropy-coded data, and `FF D9` after the last scan.
/// Bytes after the end-of-image marker are allowed (some cameras append data).
pub fn check_jpeg_structure(bytes: &[u8], path: &Path) -> Result<()> {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return Err(corrupt(path, "JPEG without start-of-image marker FF D8"));
    }
    let n = bytes.len();
    let mut pos = 2;
    let mut scans = 0usize;
    loop {
        if pos >= n {
            return Err(corrupt(
                path,
                format!("truncated JPEG: {n} bytes end before the end-of-image marker FF D9"),
            ));
        }
        if bytes[pos] != 0xFF {
            return Err(corrupt(
                path,
                format!(
                    "JPEG: expected a marker at byte {pos}, found 0x{:02X}",
                    bytes[pos]
                ),
            ));
        }
        // Fill bytes: any number of 0xFF before the marker code.
        while pos < n && bytes[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos) else {
            continue; // reported at the top of the loop
        };
        let at = pos - 1;
        pos += 1;
        match marker {
            0xD9 => {
                return if scans == 0 {
                    Err(corrupt(path, "JPEG: end-of-image marker before any scan"))
                } else {
                    Ok(())
                };
            }
            0x01 | 0xD0..=0xD7 => continue,
            0x00 | 0xD8 => {
                return Err(corrupt(
                    path,
                    format!("JPEG: unexpected marker FF {marker:02X} at byte {at}"),
                ))
            }
            _ => {}
        }
        if pos + 2 > n {
            return Err(corrupt(
                path,
                format!("truncated JPEG: file ends inside segment FF {marker:02X} at byte {at}"),
            ));
        }
        let len = usize::from(u16::from_be_bytes([bytes[pos], bytes[pos + 1]]));
        if len < 2 || pos + len > n {
            return Err(corrupt(
                path,
                format!(
                    "truncated JPEG: segment FF {marker:02X} at byte {at} declares {len} bytes, {} left",
                    n - pos
                ),
            ));
        }
        pos += len;
        if marker == 0xDA {
            // Entropy-coded data up to the next marker that is neither a stuffed 0xFF00
            // nor a restart marker.
            let start = pos;
            let mut end = None;
            let mut i = pos;
            while i + 1 < n {
                if bytes[i] == 0xFF {
                    let next = bytes[i + 1];
                    if next != 0x00 && !(0xD0..=0xD7).contains(&next) && next != 0xFF {
                        end = Some(i);
                        break;
                    }
                    if next == 0xFF {
                        i += 1;
                        continue;
                    }
                    i += 2;
                } else {
                    i += 1;
                }
            }
            let Some(end) = end else {
                return Err(corrupt(
                    path,
                    format!(
                        "truncated JPEG: the file ({n} bytes) ends inside the scan data that starts at byte {start}, no end-of-image marker FF D9"
                    ),
                ));
            };
            if end == start {
                return Err(corrupt(
                    path,
                    format!("JPEG: empty scan data at byte {start}"),
                ));
            }
            scans += 1;
            pos = end;
        }
    }
}

fn check_png_end(bytes: &[u8], path: &Path) -> Result<()> {
    const IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];
    if !bytes.ends_with(&IEND) {
        return Err(corrupt(
            path,
            format!(
                "truncated PNG: {} bytes without the final IEND chunk",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

fn check_bmp_size(bytes: &[u8], path: &Path) -> Result<()> {
    if bytes.len() < 6 {
        return Err(corrupt(path, "truncated BMP header"));
    }
    let declared = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
    // 0 is common in the wild ("unknown"); only a file shorter than declared is truncated.
    if declared != 0 && bytes.len() < declared {
        return Err(corrupt(
            path,
            format!(
                "truncated BMP: header declares {declared} bytes, file has {}",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

/// zune-jpeg in strict mode: what the lenient default treats as warnings (corrupt or short
/// entropy-coded data, bad restart markers) is an error here.
fn decode_jpeg_strict(bytes: &[u8], path: &Path, info: ImageInfo) -> Result<RgbImage> {
    let opts = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX))
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(
        zune_jpeg::zune_core::bytestream::ZCursor::new(bytes),
        opts,
    );
    let pixels = dec
        .decode()
        .map_err(|e| corrupt(path, format!("JPEG decoder: {e:?}")))?;
    let colorspace = dec.output_colorspace();
    if colorspace != Some(ColorSpace::RGB) {
        return Err(VocError::UnreadableImage {
            image: path.to_path_buf(),
            message: format!("JPEG decoded to {colorspace:?}, not RGB"),
        });
    }
    RgbImage::from_raw(info.width, info.height, pixels).ok_or_else(|| VocError::CorruptImage {
        path: path.to_path_buf(),
        reason: format!(
            "JPEG decoder output does not match the {}x{} header",
            info.width, info.height
        ),
    })
}

/// The `(width, height)` of an image from its header, after [`check_image_file`] (reads
/// the file but decodes no pixels).
pub fn image_size(path: &Path) -> Result<(u32, u32)> {
    check_image_file(path).map(|i| (i.width, i.height))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A small JPEG with real texture (so the scan data is not trivially short).
    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x ^ y) % 256) as u8,
            ])
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn is_corrupt<T>(r: Result<T>, name: &str) -> String {
        match r {
            Err(e @ VocError::CorruptImage { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(name), "{msg}");
                msg
            }
            Err(e) => panic!("expected CorruptImage, got {e}"),
            Ok(_) => panic!("expected CorruptImage, got Ok"),
        }
    }

    #[test]
    fn intact_images_pass() {
        let p = Path::new("ok.jpg");
        let b = jpeg(80, 60);
        let info = check_image_bytes(&b, p).unwrap();
        assert_eq!(
            (info.width, info.height, info.format),
            (80, 60, ImageFormat::Jpeg)
        );
        let img = decode_rgb(&b, p).unwrap();
        assert_eq!(img.dimensions(), (80, 60));
        // Same pixels as the `image` crate's own decoder.
        let reference = image::load_from_memory(&b).unwrap().into_rgb8();
        assert_eq!(img, reference);
        assert_eq!(decode_rgb(&png(9, 7), p).unwrap().dimensions(), (9, 7));
        // Grayscale JPEG.
        let g = image::GrayImage::from_fn(33, 17, |x, y| image::Luma([(x * y) as u8]));
        let mut out = Cursor::new(Vec::new());
        g.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        let rgb = decode_rgb(&out.into_inner(), p).unwrap();
        assert_eq!(rgb.dimensions(), (33, 17));
    }

    #[test]
    fn truncated_jpeg_is_corrupt_at_every_cut() {
        let b = jpeg(96, 64);
        let p = Path::new("cut.jpg");
        for keep in [b.len() / 3, b.len() / 2, b.len() - 2, b.len() - 1, 200, 20] {
            let cut = &b[..keep];
            is_corrupt(check_image_bytes(cut, p), "cut.jpg");
            is_corrupt(decode_rgb(cut, p), "cut.jpg");
        }
        // Trailing bytes after EOI are fine.
        let mut trailing = b.clone();
        trailing.extend_from_slice(b"exif trailer");
        decode_rgb(&trailing, p).unwrap();
    }

    #[test]
    fn every_prefix_is_an_error_and_no_byte_flip_panics() {
        let b = jpeg(24, 16);
        let p = Path::new("fuzz.jpg");
        for keep in 0..b.len() {
            assert!(
                check_image_bytes(&b[..keep], p).is_err(),
                "{keep} of {}",
                b.len()
            );
            assert!(decode_rgb(&b[..keep], p).is_err(), "{keep} of {}", b.len());
        }
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0xFF;
            // Ok or Err, never a panic or a huge allocation.
            let _ = decode_rgb(&bad, p);
        }
    }

    #[test]
    fn corrupt_scan_data_is_reported() {
        let b = jpeg(96, 64);
        let p = Path::new("bad.jpg");
        // Find the scan start and overwrite the middle of the scan with a bogus marker
        // sequence and garbage.
        let sos = b.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let mut bad = b.clone();
        let mid = sos + (b.len() - sos) / 2;
        bad[mid] = 0xFF;
        bad[mid + 1] = 0xC4; // a DHT marker in the middle of the scan
        assert!(
            check_image_bytes(&bad, p).is_err() || decode_rgb(&bad, p).is_err(),
            "a marker inside the scan data must be detected"
        );
    }

    #[test]
    fn truncated_png_is_corrupt() {
        let b = png(40, 30);
        let cut = &b[..b.len() - 20];
        is_corrupt(check_image_bytes(cut, Path::new("cut.png")), "cut.png");
        assert!(decode_rgb(cut, Path::new("cut.png")).is_err());
    }

    #[test]
    fn huge_declared_size_is_refused_before_decoding() {
        // A valid JPEG whose SOF0 header is patched to declare 60000 x 60000.
        let mut b = jpeg(16, 16);
        let sof = b.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        // FF C0, length (2), precision (1), height (2), width (2).
        b[sof + 5..sof + 7].copy_from_slice(&60000u16.to_be_bytes());
        b[sof + 7..sof + 9].copy_from_slice(&60000u16.to_be_bytes());
        let p = Path::new("huge.jpg");
        for r in [
            check_image_bytes(&b, p).map(|_| ()),
            decode_rgb(&b, p).map(|_| ()),
        ] {
            match r {
                Err(VocError::ImageTooLarge {
                    width,
                    height,
                    limit,
                    ..
                }) => {
                    assert_eq!((width, height, limit), (60000, 60000, MAX_IMAGE_PIXELS));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn check_image_file_names_the_file() {
        let dir = std::env::temp_dir().join(format!("arfpn_image_io_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("third.jpg");
        let b = jpeg(64, 48);
        std::fs::write(&f, &b[..b.len() / 3]).unwrap();
        let msg = is_corrupt(check_image_file(&f), "third.jpg");
        assert!(msg.contains("truncated"), "{msg}");
        is_corrupt(load_rgb(&f), "third.jpg");
        std::fs::write(&f, &b).unwrap();
        assert_eq!(image_size(&f).unwrap(), (64, 48));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
