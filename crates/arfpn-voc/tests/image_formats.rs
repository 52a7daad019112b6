//! JPEG, PNG and BMP decode to RGB; grayscale is replicated, alpha dropped.

use arfpn_voc::image_io::{image_size, load_rgb};
use arfpn_voc::VocError;

#[test]
fn formats_and_colour_types_decode_to_rgb() {
    let dir = std::env::temp_dir().join(format!("arfpn-voc-img-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gray = image::GrayImage::from_fn(5, 4, |x, y| image::Luma([(x * 10 + y) as u8]));
    let rgba = image::RgbaImage::from_fn(5, 4, |x, y| image::Rgba([x as u8, y as u8, 7, 128]));
    let rgb = image::RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 40, 90]));
    gray.save(dir.join("g.png")).unwrap();
    rgba.save(dir.join("a.png")).unwrap();
    rgb.save(dir.join("c.bmp")).unwrap();
    rgb.save(dir.join("j.jpg")).unwrap();
    // PNG data behind a .jpg name: the format comes from the content.
    std::fs::copy(dir.join("a.png"), dir.join("a_misnamed.jpg")).unwrap();

    let g = load_rgb(&dir.join("g.png")).unwrap();
    assert_eq!(g.get_pixel(3, 2).0, [32, 32, 32]);
    let a = load_rgb(&dir.join("a.png")).unwrap();
    assert_eq!(a.get_pixel(3, 2).0, [3, 2, 7]);
    assert_eq!(load_rgb(&dir.join("a_misnamed.jpg")).unwrap(), a);
    assert_eq!(load_rgb(&dir.join("c.bmp")).unwrap(), rgb);
    let j = load_rgb(&dir.join("j.jpg")).unwrap();
    assert_eq!(j.dimensions(), (5, 4));
    assert_eq!(image_size(&dir.join("c.bmp")).unwrap(), (5, 4));

    std::fs::write(dir.join("bad.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    assert!(matches!(
        load_rgb(&dir.join("bad.png")),
        Err(VocError::CorruptImage { .. })
    ));
    assert!(matches!(
        load_rgb(&dir.join("none.png")),
        Err(VocError::Io { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
