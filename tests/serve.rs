//! The `serve` web app, over loopback with a plain HTTP client: the page and model info, a
//! detection answer that agrees with the library, 4xx for bad uploads with the server still
//! serving, 503 beyond the queue bound, and a load test (`serve_load`) in which every request
//! is answered. The page itself is driven in Chromium by `tests/browser/serve.test.mjs`.

mod common;
#[path = "../examples/cli/http.rs"]
mod http;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use arfpn::lab::FieldTiling;
use arfpn::Detector;
use candle_core::Device;
use common::examples_dir;
use serde_json::Value;

/// A running `serve`, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let bin = examples_dir().join(format!("serve{}", std::env::consts::EXE_SUFFIX));
    let mut child = Command::new(&bin)
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the serving line");
    let addr = line
        .trim()
        .strip_prefix("serving on http://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "binds loopback: {addr}");
    Server { child, addr }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/arfpn/tests/fixtures/torchvision")
        .join(name)
}

fn json(r: &http::Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// A JPEG of a synthetic smear (the fixture's PNG re-encoded).
fn jpeg() -> Vec<u8> {
    let img = image::open(fixture("image-0.png"))
        .expect("fixture")
        .to_rgb8();
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .expect("encode");
    out
}

#[test]
fn serve_answers_detections_counts_and_clear_errors() {
    let server = start(&["--max-upload-mb", "1"]);
    let a = server.addr.as_str();

    let page = http::request(a, "GET", "/", b"").expect("page");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Cell counts") && page.text().contains("/api/detect"));
    // The page loads nothing from elsewhere.
    assert!(!page.text().contains("http://") && !page.text().contains("https://"));

    let model = json(&http::request(a, "GET", "/api/model", b"").expect("model"));
    assert_eq!(
        model["classes"],
        serde_json::json!(["Platelets", "RBC", "WBC"])
    );

    // A good upload: the answer is what the library's own detection gives.
    let png = std::fs::read(fixture("image-0.png")).expect("fixture");
    let r = http::request(
        a,
        "POST",
        "/api/detect?name=a.png&score=0.3&rescale=off",
        &png,
    )
    .expect("detect");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    assert_eq!(v["image"]["width"], 320);
    assert_eq!(v["image"]["height"], 256);
    let dets = v["detections"].as_array().expect("detections");
    let counts: u64 = v["counts"]
        .as_array()
        .expect("counts")
        .iter()
        .map(|c| c["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(counts as usize, dets.len());
    assert_eq!(v["total"].as_u64(), Some(counts));
    let detector = Detector::default_model(&Device::Cpu).expect("default model");
    let img = arfpn_voc::image_io::load_rgb(&fixture("image-0.png")).expect("load");
    let tiles = FieldTiling {
        tile: 512,
        overlap: 128,
        ..FieldTiling::default()
    };
    let ours = arfpn::lab::detect_at_scale(&detector, &img, 1.0, &tiles)
        .expect("detect")
        .above(0.3);
    assert_eq!(ours.len(), dets.len());
    for (k, d) in dets.iter().enumerate() {
        let b: Vec<f64> = serde_json::from_value(d["box"].clone()).expect("box");
        assert!((b[0] - ours.boxes[k].x1 as f64).abs() < 1e-3);
        assert!((d["score"].as_f64().expect("score") - ours.scores[k] as f64).abs() < 1e-6);
    }

    // Bad uploads: a 4xx each, with a message.
    let jpeg = jpeg();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty", Vec::new(), 400, "empty"),
        (
            "text",
            b"hello, not an image".to_vec(),
            422,
            "not a readable image",
        ),
        (
            "truncated JPEG",
            jpeg[..jpeg.len() / 2].to_vec(),
            422,
            "not a readable image",
        ),
        ("too large", vec![0u8; 1024 * 1024 + 10], 413, "larger than"),
    ];
    for (what, body, status, msg) in cases {
        let r = http::request(a, "POST", "/api/detect?name=x.jpg", &body).expect(what);
        assert_eq!(r.status, status, "{what}: {}", r.text());
        let e = json(&r)["error"].as_str().unwrap_or_default().to_string();
        assert!(e.contains(msg), "{what}: {e}");
    }
    let r = http::request(a, "POST", "/api/detect?score=2", &png).expect("bad score");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = http::request(a, "POST", "/api/detect?rescale=sideways", &png).expect("bad rescale");
    assert_eq!(r.status, 400, "{}", r.text());

    // Still serving, and a JPEG works too.
    let r = http::request(a, "POST", "/api/detect?name=b.jpg", &jpeg).expect("after errors");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn serve_bounds_its_queue_with_503() {
    // No request may wait: while one is detected, the others are refused at once.
    let server = start(&["--queue", "0"]);
    let big = {
        // A large field (slow enough that the others arrive while it runs).
        let tile = image::open(fixture("image-0.png"))
            .expect("fixture")
            .to_rgb8();
        let mut img = image::RgbImage::new(1280, 1024);
        for y in 0..1024 {
            for x in 0..1280 {
                img.put_pixel(x, y, *tile.get_pixel(x % 320, y % 256));
            }
        }
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encode");
        out
    };
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let r =
                        http::request(&server.addr, "POST", "/api/detect", &big).expect("answered");
                    (r.status, r.header("retry-after").map(str::to_string))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("client")).collect()
    });
    let ok = statuses.iter().filter(|s| s.0 == 200).count();
    let busy: Vec<_> = statuses.iter().filter(|s| s.0 == 503).collect();
    assert_eq!(ok + busy.len(), 6, "{statuses:?}");
    assert!(ok >= 1 && !busy.is_empty(), "{statuses:?}");
    assert!(
        busy.iter().all(|s| s.1.as_deref() == Some("1")),
        "{statuses:?}"
    );
}

#[test]
fn serve_load_test_answers_every_request() {
    let server = start(&["--queue", "8"]);
    let out = common::run(
        "serve_load",
        &[
            "--addr",
            &server.addr,
            "--clients",
            "8",
            "--per-client",
            "3",
            "--json",
            fixture("image-0.png").to_str().expect("path"),
            fixture("image-1.png").to_str().expect("path"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(text.trim()).expect("summary JSON");
    assert_eq!(v["requests"], 24);
    assert_eq!(v["answered_200"], 24);
    // With 8 clients and room for 8 waiting, nobody is turned away.
    assert_eq!(v["retried_503"], 0);
    assert!(v["latency_ms"]["p50"].as_f64().expect("p50") > 0.0);
}
