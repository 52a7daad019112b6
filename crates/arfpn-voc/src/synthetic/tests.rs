//! Unit tests of the generator (the default profile's output is pinned here).

use super::*;
use crate::error::VocError;
use crate::labels::{rbc, RBC14_CLASSES};

fn small() -> SyntheticConfig {
    SyntheticConfig {
        width: 192,
        height: 144,
        min_per_class: 1,
        ..Default::default()
    }
}

#[test]
fn huge_or_tiny_sizes_are_rejected_at_once() {
    let t0 = std::time::Instant::now();
    for (w, h, field) in [
        (100_000, 100_000, "width"),
        (63, 500, "width"),
        (500, 20_000, "height"),
        (8192, 8192, "width/height"),
    ] {
        let cfg = SyntheticConfig {
            width: w,
            height: h,
            ..Default::default()
        };
        match cfg.validate() {
            Err(VocError::InvalidArgument { name, .. }) => assert_eq!(name, field, "{w}x{h}"),
            other => panic!("{w}x{h}: {other:?}"),
        }
        assert!(render_image(&cfg, 0).is_err());
        let dir = std::env::temp_dir().join(format!("arfpn_synth_huge_{}", std::process::id()));
        assert!(write_dataset(&dir, 1, 0, &cfg).is_err());
        assert!(!dir.exists(), "nothing is written for an invalid config");
    }
    assert!(t0.elapsed().as_secs() < 5);
    let ok = SyntheticConfig {
        width: 4096,
        height: 4096,
        ..Default::default()
    };
    ok.validate().unwrap();
    let bad_frac = SyntheticConfig {
        val_fraction: 0.7,
        test_fraction: 0.7,
        ..Default::default()
    };
    assert!(bad_frac.validate().is_err());
}

#[test]
fn every_class_is_drawn_with_valid_boxes() {
    for seed in 0..3 {
        let s = render_image(&small(), seed).unwrap();
        let (w, h) = (192.0, 144.0);
        let mut seen = [0usize; 14];
        for o in &s.objects {
            seen[o.class.index()] += 1;
            let b = o.bbox;
            assert!(
                b.is_valid() && b.x1 >= 0.0 && b.y1 >= 0.0 && b.x2 <= w && b.y2 <= h,
                "{b:?}"
            );
            for v in b.to_array() {
                assert_eq!(v.fract(), 0.0, "boxes are whole pixels: {b:?}");
            }
            let on_border = b.x1 == 0.0 || b.y1 == 0.0 || b.x2 == w || b.y2 == h;
            assert_eq!(on_border, o.class == rbc::EDGE, "{o:?}");
            assert_eq!(o.truncated, o.class == rbc::EDGE);
            let side = b.width().max(b.height());
            match o.class {
                rbc::MICROCYTE => assert!(side <= 18.0, "microcyte {b:?}"),
                rbc::MACROCYTE => assert!(b.width().min(b.height()) >= 25.0, "macrocyte {b:?}"),
                rbc::NORMAL => assert!((19.0..=25.0).contains(&side), "normal {b:?}"),
                rbc::ELLIPTOCYTE => {
                    let (lo, hi) = (b.width().min(b.height()), side);
                    assert!(hi >= 12.0 && lo >= 6.0, "elliptocyte {b:?}");
                }
                _ => {}
            }
        }
        for (c, n) in seen.iter().enumerate() {
            assert!(*n >= 1, "seed {seed}: class {} missing", RBC14_CLASSES[c]);
        }
        assert!(s.objects.len() > 40, "dense: {} objects", s.objects.len());
    }
}

#[test]
fn deterministic_per_seed() {
    let a = render_image(&small(), 5).unwrap();
    let b = render_image(&small(), 5).unwrap();
    let c = render_image(&small(), 6).unwrap();
    assert_eq!(a.image, b.image);
    assert_eq!(a.objects, b.objects);
    assert_ne!(a.image, c.image);
    assert_ne!(image_seed(1, 0), image_seed(1, 1));
    assert_ne!(image_seed(1, 0), image_seed(2, 0));
}

#[test]
fn pixels_look_like_a_stained_smear() {
    let s = render_image(&small(), 1).unwrap();
    // Background pale, cells reddish: red channel dominates, image not flat.
    let (mut r, mut g, mut b) = (0u64, 0u64, 0u64);
    for p in s.image.pixels() {
        r += p.0[0] as u64;
        g += p.0[1] as u64;
        b += p.0[2] as u64;
    }
    let n = (192 * 144) as u64;
    assert!(
        r / n > 180 && r > g && g > 0 && b > 0,
        "{} {} {}",
        r / n,
        g / n,
        b / n
    );
    // Inside a normal cell the green channel is darker than on the background.
    let cell = s
        .objects
        .iter()
        .find(|o| o.class == rbc::HYPERCHROMIC)
        .unwrap();
    let (cx, cy) = cell.bbox.center();
    let inside = s.image.get_pixel(cx as u32, cy as u32).0[1];
    assert!(inside < 150, "hyperchromic centre green {inside}");
}

/// FNV-1a 64 over the pixels and the object list (box corners as f32 bits, class,
/// truncated flag).
fn render_hash(s: &SyntheticImage) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for &b in s.image.as_raw() {
        eat(b);
    }
    for o in &s.objects {
        for v in o.bbox.to_array() {
            for b in v.to_bits().to_le_bytes() {
                eat(b);
            }
        }
        for b in (o.class.index() as u32).to_le_bytes() {
            eat(b);
        }
        eat(u8::from(o.truncated));
    }
    h
}

/// The default profile's output is pinned: the quickstart's reported figures depend on
/// it. A change here must be deliberate (and the README's figures re-measured).
#[test]
fn default_profile_output_is_pinned() {
    let s = render_image(&SyntheticConfig::default(), 0).unwrap();
    assert_eq!(
        s.objects.len(),
        PIN_FULL_OBJECTS,
        "objects of the 500x375 seed-0 render"
    );
    assert_eq!(s.image.get_pixel(250, 187).0, PIN_FULL_PIXEL);
    assert_eq!(render_hash(&s), PIN_FULL_HASH, "500x375 seed 0");
    let s = render_image(&small(), 3).unwrap();
    assert_eq!(render_hash(&s), PIN_SMALL_HASH, "192x144 seed 3");
}
const PIN_FULL_OBJECTS: usize = 317;
const PIN_FULL_PIXEL: [u8; 3] = [240, 197, 204];
const PIN_FULL_HASH: u64 = 0xe6e8_3f41_68d6_6527;
const PIN_SMALL_HASH: u64 = 0x9929_06c1_cc8c_415f;

/// `(min, max)` of the longest box side of microcytes, normal cells and macrocytes over
/// `n` renders.
fn size_ranges(cfg: &SyntheticConfig, n: u64) -> [(f32, f32); 3] {
    let mut out = [(f32::MAX, f32::MIN); 3];
    for seed in 0..n {
        for o in render_image(cfg, 100 + seed).unwrap().objects {
            let k = match o.class {
                rbc::MICROCYTE => 0,
                rbc::NORMAL => 1,
                rbc::MACROCYTE => 2,
                _ => continue,
            };
            let side = o.bbox.width().max(o.bbox.height());
            out[k] = (out[k].0.min(side), out[k].1.max(side));
        }
    }
    out
}

#[test]
fn realistic_sizes_overlap_between_micro_normal_macro() {
    let [mi, no, ma] = size_ranges(&SyntheticConfig::default(), 3);
    assert!(mi.1 < no.0 && no.1 < ma.0, "default: {mi:?} {no:?} {ma:?}");
    let [mi, no, ma] = size_ranges(&SyntheticConfig::realistic(), 3);
    assert!(mi.1 > no.0, "realistic microcyte/normal: {mi:?} {no:?}");
    assert!(no.1 > ma.0, "realistic normal/macrocyte: {no:?} {ma:?}");
    assert!(
        mi.0 < no.0 && no.1 < ma.1,
        "means still ordered: {mi:?} {no:?} {ma:?}"
    );
}

#[test]
fn realistic_is_deterministic_and_differs_from_default() {
    let cfg = SyntheticConfig {
        width: 192,
        height: 144,
        min_per_class: 1,
        ..SyntheticConfig::realistic()
    };
    let a = render_image(&cfg, 5).unwrap();
    let b = render_image(&cfg, 5).unwrap();
    assert_eq!(a.image, b.image);
    assert_eq!(a.objects, b.objects);
    assert_ne!(a.image, render_image(&cfg, 6).unwrap().image);
    assert_ne!(a.image, render_image(&small(), 5).unwrap().image);
    let mut seen = [0usize; 14];
    for o in &a.objects {
        seen[o.class.index()] += 1;
        assert!(o.bbox.is_valid(), "{o:?}");
    }
    assert!(seen.iter().all(|&n| n >= 1), "every class drawn: {seen:?}");
}

/// Median of the longest box side of the non-`edge` objects.
fn median_side(s: &SyntheticImage) -> f32 {
    let mut v: Vec<f32> = s
        .objects
        .iter()
        .filter(|o| o.class != rbc::EDGE && o.class != rbc::OVERLAP)
        .map(|o| o.bbox.width().max(o.bbox.height()))
        .collect();
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

#[test]
fn cell_scale_scales_the_boxes() {
    for base in [SyntheticConfig::default(), SyntheticConfig::realistic()] {
        let one = median_side(&render_image(&base, 2).unwrap());
        let cfg = SyntheticConfig {
            cell_scale: 2.0,
            ..base.clone()
        };
        let s = render_image(&cfg, 2).unwrap();
        let two = median_side(&s);
        let ratio = two / one;
        assert!(
            (1.8..=2.2).contains(&ratio),
            "{:?}: {one} -> {two}",
            base.profile
        );
        assert!(s.objects.len() > 30, "still dense: {}", s.objects.len());
    }
    // BCCD-like: ~95 px cells, about a dozen per 500x375 image.
    let bccd = SyntheticConfig {
        cell_scale: 4.5,
        ..SyntheticConfig::realistic()
    };
    let s = render_image(&bccd, 0).unwrap();
    let m = median_side(&s);
    assert!((75.0..=115.0).contains(&m), "median side {m}");
    assert!(
        (5..=40).contains(&s.objects.len()),
        "{} objects",
        s.objects.len()
    );
}

#[test]
fn bad_cell_scale_and_profile_are_rejected() {
    for profile in [SmearProfile::Default, SmearProfile::Realistic] {
        for (scale, w, h) in [
            (0.0, 500, 375),
            (-1.0, 500, 375),
            (0.49, 500, 375),
            (8.5, 4096, 4096),
            (f32::NAN, 500, 375),
            (f32::INFINITY, 500, 375),
            // Valid scale, but the image cannot hold three such cells.
            (6.5, 500, 375),
            (2.0, 192, 100),
        ] {
            let cfg = SyntheticConfig {
                profile,
                cell_scale: scale,
                width: w,
                height: h,
                ..SyntheticConfig::default()
            };
            match cfg.validate() {
                Err(VocError::InvalidArgument { name, reason }) => {
                    assert_eq!(name, "cell_scale", "{scale} {w}x{h}: {reason}")
                }
                other => panic!("{profile:?} {scale} {w}x{h}: {other:?}"),
            }
            assert!(render_image(&cfg, 0).is_err());
        }
        for scale in [0.5, 1.0, 4.5] {
            let cfg = SyntheticConfig {
                profile,
                cell_scale: scale,
                ..SyntheticConfig::default()
            };
            cfg.validate().unwrap();
        }
    }
    assert_eq!(
        "realistic".parse::<SmearProfile>().unwrap(),
        SmearProfile::Realistic
    );
    assert_eq!(
        "default".parse::<SmearProfile>().unwrap(),
        SmearProfile::Default
    );
    match "fancy".parse::<SmearProfile>() {
        Err(VocError::InvalidArgument { name, .. }) => assert_eq!(name, "profile"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_json_old_and_new() {
    // JSON written before the profile existed still parses, as the default profile.
    let mut v = serde_json::to_value(SyntheticConfig::default()).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("profile");
    obj.remove("cell_scale");
    let old: SyntheticConfig = serde_json::from_value(v).unwrap();
    assert_eq!(old, SyntheticConfig::default());
    let r = SyntheticConfig {
        cell_scale: 4.5,
        ..SyntheticConfig::realistic()
    };
    let text = serde_json::to_string(&r).unwrap();
    assert!(text.contains("\"profile\":\"realistic\""), "{text}");
    assert_eq!(serde_json::from_str::<SyntheticConfig>(&text).unwrap(), r);
    let bad = text.replace("\"realistic\"", "\"fancy\"");
    assert!(serde_json::from_str::<SyntheticConfig>(&bad).is_err());
}

#[test]
fn split_sizes_cover_all_images() {
    assert_eq!(split_sizes(24, 0.15, 0.15), (16, 4, 4));
    assert_eq!(split_sizes(3, 0.15, 0.15), (1, 1, 1));
    assert_eq!(split_sizes(1, 0.15, 0.15), (1, 0, 0));
    assert_eq!(split_sizes(2, 0.5, 0.5), (0, 1, 1));
    for n in 1..50 {
        let (a, b, c) = split_sizes(n, 0.2, 0.1);
        assert_eq!(a + b + c, n);
    }
}

#[test]
fn rejects_bad_config() {
    let mut c = small();
    c.width = 10;
    assert!(render_image(&c, 0).is_err());
    let mut c = small();
    c.fill = 0.0;
    assert!(render_image(&c, 0).is_err());
}
