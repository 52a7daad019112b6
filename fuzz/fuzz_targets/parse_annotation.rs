//! Fuzz the VOC XML reader: it must never panic, and whatever it accepts must survive a
//! write/read round trip unchanged.
//!
//! ```sh
//! cargo +nightly fuzz run parse_annotation -- -max_total_time=300
//! ```
#![no_main]

use std::path::Path;

use arfpn_voc::parse_annotation;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("fuzz.xml");
    if let Ok(parsed) = parse_annotation(text, path) {
        let xml = parsed.annotation.to_xml();
        let again = parse_annotation(&xml, path).expect("written XML must parse");
        assert!(again.object_errors.is_empty(), "{:?}", again.object_errors);
        assert_eq!(again.annotation, parsed.annotation);
    }
});
