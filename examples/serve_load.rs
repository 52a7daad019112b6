//! A load test of the `serve` web app on loopback: `--clients` concurrent clients each post
//! `--per-client` images to `/api/detect`, and the latency percentiles and status counts are
//! printed (JSON with `--json`). Exits with an error unless every request got a 200 with
//! detections JSON (a 503 is retried after its `Retry-After`, for up to two minutes per
//! request, and counted; latency includes the waits).
//!
//! ```text
//! cargo run --release --example serve -- --port 8080 &
//! cargo run --release --example serve_load -- --addr 127.0.0.1:8080 --clients 8 --per-client 10 \
//!     ../shared/data/bccd/JPEGImages/BloodImage_0000{7,8,9}.jpg
//! ```

mod cli;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

/// Load-test a running `serve`: concurrent clients posting images, latency percentiles.
#[derive(Parser, Debug)]
#[command(name = "serve_load", version)]
struct Args {
    /// The server's address, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    clients: u64,
    /// Requests per client (the images in turn).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10000))]
    per_client: u64,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
    /// Images to post.
    #[arg(required = true, value_parser = cli::existing_file)]
    images: Vec<PathBuf>,
}

struct Outcome {
    latency: Duration,
    retries_503: usize,
    ok: Result<(), String>,
}

fn main() -> std::process::ExitCode {
    cli::exit_with(run())
}

fn one(addr: &str, name: &str, bytes: &[u8]) -> Outcome {
    let start = Instant::now();
    let mut retries_503 = 0;
    loop {
        let path = format!("/api/detect?name={name}");
        let ok = match cli::http::request(addr, "POST", &path, bytes) {
            // Busy: wait as the server asks (Retry-After, seconds), for up to two minutes.
            Ok(r) if r.status == 503 && start.elapsed() < Duration::from_secs(120) => {
                retries_503 += 1;
                let wait = r.header("retry-after").and_then(|v| v.parse::<f64>().ok());
                std::thread::sleep(Duration::from_secs_f64(
                    wait.unwrap_or(1.0).clamp(0.05, 10.0),
                ));
                continue;
            }
            Ok(r) if r.status == 200 => {
                match serde_json::from_slice::<serde_json::Value>(&r.body) {
                    Ok(v) if v["detections"].is_array() && v["total"].is_u64() => Ok(()),
                    _ => Err(format!("200 without detections JSON: {}", r.text())),
                }
            }
            Ok(r) => Err(format!("status {}: {}", r.status, r.text())),
            Err(e) => Err(format!("no answer: {e}")),
        };
        return Outcome {
            latency: start.elapsed(),
            retries_503,
            ok,
        };
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let images: Vec<(String, Vec<u8>)> = a
        .images
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map_or("image".into(), |n| n.to_string_lossy().into_owned());
            std::fs::read(p)
                .map(|b| (name, b))
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.clients as usize)
            .map(|c| {
                let (images, addr) = (&images, &a.addr);
                s.spawn(move || {
                    (0..a.per_client as usize)
                        .map(|k| {
                            let (name, bytes) = &images[(c + k) % images.len()];
                            one(addr, name, bytes)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let mut ms: Vec<f64> = outcomes
        .iter()
        .map(|o| o.latency.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((p / 100.0) * (ms.len() - 1) as f64).round() as usize];
    let failed: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| o.ok.as_ref().err())
        .collect();
    let retried: usize = outcomes.iter().map(|o| o.retries_503).sum();
    let expected = (a.clients * a.per_client) as usize;
    let summary = serde_json::json!({
        "clients": a.clients, "per_client": a.per_client, "requests": expected,
        "answered_200": outcomes.len() - failed.len(), "failed": failed.len(),
        "retried_503": retried, "wall_s": wall,
        "throughput_per_s": outcomes.len() as f64 / wall,
        "latency_ms": {"p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0), "max": pct(100.0)},
    });
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "{} clients × {} requests: {}/{} answered 200 ({} 503s retried) in {wall:.1} s, \
             {:.2} req/s; latency ms p50 {:.0}, p90 {:.0}, p99 {:.0}, max {:.0}",
            a.clients,
            a.per_client,
            outcomes.len() - failed.len(),
            expected,
            retried,
            outcomes.len() as f64 / wall,
            pct(50.0),
            pct(90.0),
            pct(99.0),
            pct(100.0)
        );
    }
    if let Some(e) = failed.first() {
        return Err(format!("{} of {expected} requests failed; first: {e}", failed.len()).into());
    }
    if outcomes.len() != expected {
        return Err(format!("{} of {expected} requests answered", outcomes.len()).into());
    }
    Ok(())
}
