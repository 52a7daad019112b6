//! A local web app for differential cell counts: drop smear photos on a page, get each one
//! back with its boxes, the per-image and total counts with percentages, and CSV/JSON
//! downloads. Lab software calls the same JSON API.
//!
//! ```text
//! cargo run --release --example serve                      # the shipped blood-cell model
//! cargo run --release --example serve -- --checkpoint runs/bccd/best.safetensors --port 8080
//! curl --data-binary @smear.jpg 'http://127.0.0.1:8080/api/detect?name=smear.jpg'
//! ```
//!
//! Nothing leaves the machine: the server binds 127.0.0.1 unless `--bind` says otherwise,
//! the page loads no external resource, and images are decoded and detected in memory
//! (nothing is written to disk).
//!
//! The API (all answers JSON, errors as `{"error": "..."}` with a 4xx/5xx status):
//! - `POST /api/detect?name=NAME&score=S&rescale=warn|auto|off`, body = the image file's bytes
//!   (JPEG, PNG or BMP) → `{image: {name, width, height}, classes, score_threshold,
//!   detections: [{class, class_id, score, box: [x1, y1, x2, y2]}], counts: [{class, count,
//!   percent}], total, scale: {estimated_cell_px, training_cell_px, factor, note}, elapsed_ms}`.
//!   Boxes are in the uploaded image's pixels. 400: empty body or a bad parameter; 413: larger
//!   than `--max-upload-mb`; 422: not a readable image (unknown format, truncated, corrupt);
//!   503 with `Retry-After`: `--queue` requests are already waiting.
//! - `GET /api/model` → `{classes, colours, checkpoint, training_cell_px, max_upload_bytes,
//!   queue}`.
//! - `GET /` → the page.
//!
//! One detection runs at a time (it uses every core); up to `--queue` more wait in a bounded
//! queue. A request beyond that is answered 503 before its body is read, so at most
//! `queue + 1` uploads (each at most `--max-upload-mb`) are held in memory whatever the burst.

mod cli;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use arfpn::{Detections, Detector, RescaleDecision};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use candle_core::Device;
use clap::Parser;
use serde_json::{json, Value};

/// Serve a local web page and JSON API that detect and count cells in uploaded smear images.
#[derive(Parser, Debug)]
#[command(name = "serve", version)]
struct Args {
    /// A checkpoint written by `train` or `quickstart`; without it, the blood-cell model that
    /// ships with arfpn (Platelets, RBC, WBC; `models/README.md`).
    #[arg(long, value_parser = cli::existing_file)]
    checkpoint: Option<PathBuf>,
    /// Address to listen on. The default, 127.0.0.1, accepts connections from this machine
    /// only.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Port (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Largest accepted upload, in MiB (larger ones get 413).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=1024))]
    max_upload_mb: u64,
    /// Requests that may wait while one is detected; more get 503 (0: none waits).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(0..=1024))]
    queue: u64,
    /// Default score threshold of the detections returned and counted (`?score=` overrides).
    #[arg(long, default_value_t = 0.5, value_parser = cli::unit_f32)]
    score: f32,
    /// Precision of the network's matrix products: f32, or bf16 (CPUs with Intel AMX).
    #[arg(long, default_value = "f32")]
    precision: arfpn::MatmulPrecision,
    /// Keep subnormal floats instead of flushing them to zero.
    #[arg(long)]
    keep_denormals: bool,
}

/// One upload waiting for the detector.
struct Job {
    bytes: Bytes,
    name: String,
    score: f32,
    rescale: cli::Rescale,
    reply: tokio::sync::oneshot::Sender<Result<Value, ApiError>>,
}

/// An error answer: a status and a message for a person.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        r
    }
}

struct App {
    /// `queue + 1` permits: one per request admitted (detected or waiting).
    admission: Arc<tokio::sync::Semaphore>,
    jobs: SyncSender<Job>,
    model: Value,
    max_upload: usize,
    queue: usize,
    default_score: f32,
}

fn main() -> std::process::ExitCode {
    cli::exit_with(run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    if !a.keep_denormals {
        arfpn_kernels::flush_denormals();
    }
    let max_upload = (a.max_upload_mb * 1024 * 1024) as usize;
    // The detector lives on its own thread; uploads reach it through a bounded channel.
    // Admission (below) bounds the requests in flight; the channel has room for all of them.
    let (jobs, inbox) = sync_channel::<Job>(a.queue as usize + 1);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let checkpoint = a.checkpoint.clone();
    let precision = a.precision;
    std::thread::Builder::new()
        .name("detector".into())
        .spawn(move || {
            let loaded = match &checkpoint {
                Some(p) => Detector::load(p, &Device::Cpu),
                None => Detector::default_model(&Device::Cpu),
            };
            let mut detector = match loaded {
                Ok(d) => d,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            detector.set_matmul_precision(precision);
            let _ = ready_tx.send(Ok(json!({
                "classes": detector.classes(),
                "colours": (0..detector.classes().len()).map(arfpn::lab::class_colour).collect::<Vec<_>>(),
                "checkpoint": checkpoint.as_ref().map(|p| p.display().to_string())
                    .unwrap_or_else(|| "built-in blood-cell model".into()),
                "training_cell_px": detector.config().data.cell_size_px,
            })));
            for job in inbox {
                let result = detect_job(&detector, &job);
                let _ = job.reply.send(result);
            }
        })?;
    let mut model = ready_rx.recv()??;
    model["max_upload_bytes"] = json!(max_upload);
    model["queue"] = json!(a.queue);
    let app = Arc::new(App {
        admission: Arc::new(tokio::sync::Semaphore::new(a.queue as usize + 1)),
        jobs,
        model,
        max_upload,
        queue: a.queue as usize,
        default_score: a.score,
    });
    let router = Router::new()
        .route("/", get(page))
        .route("/api/model", get(model_info))
        .route(
            "/api/detect",
            post(detect).layer(middleware::from_fn_with_state(app.clone(), admit)),
        )
        // The limit is enforced while the body streams in (no larger body is buffered);
        // `detect` turns the rejection into a JSON 413.
        .layer(DefaultBodyLimit::max(max_upload))
        .with_state(app);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(a.bind, a.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", a.bind, a.port))?;
        let addr = listener.local_addr()?;
        println!("serving on http://{addr}/");
        if !a.bind.is_loopback() {
            eprintln!("warning: listening on {addr}: other machines can reach this server");
        }
        axum::serve(listener, router).await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

fn busy(queue: usize) -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("busy: one image is being detected and {queue} are waiting; retry shortly"),
    )
}

/// Admits a detection request only while fewer than `queue + 1` are in flight, before its
/// body is read; the permit is held until the answer is sent.
async fn admit(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Ok(_permit) = app.admission.clone().try_acquire_owned() else {
        return busy(app.queue).into_response();
    };
    next.run(request).await
}

async fn page() -> Html<&'static str> {
    Html(include_str!("serve/index.html"))
}

async fn model_info(State(app): State<Arc<App>>) -> Json<Value> {
    Json(app.model.clone())
}

#[derive(serde::Deserialize)]
struct DetectQuery {
    name: Option<String>,
    score: Option<f32>,
    rescale: Option<String>,
}

async fn detect(
    State(app): State<Arc<App>>,
    query: Result<Query<DetectQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the upload is larger than the server's cap of {} MiB (--max-upload-mb)",
                    app.max_upload / (1024 * 1024)
                ),
            )
        } else {
            ApiError(e.status(), e.body_text())
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "the upload is empty: send the image file's bytes as the request body".into(),
        ));
    }
    let score = q.score.unwrap_or(app.default_score);
    if !(0.0..=1.0).contains(&score) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("score {score} is outside [0, 1]"),
        ));
    }
    let rescale: cli::Rescale = q
        .rescale
        .as_deref()
        .unwrap_or("warn")
        .parse()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("rescale={e}")))?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = Job {
        bytes,
        name: q.name.unwrap_or_else(|| "upload".into()),
        score,
        rescale,
        reply,
    };
    match app.jobs.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => return Err(busy(app.queue)),
        Err(TrySendError::Disconnected(_)) => {
            return Err(ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the detector thread has stopped".into(),
            ))
        }
    }
    match answer.await {
        Ok(r) => r.map(Json),
        Err(_) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the detector dropped the request".into(),
        )),
    }
}

/// Decodes, detects and counts one upload (on the detector thread).
fn detect_job(detector: &Detector, job: &Job) -> Result<Value, ApiError> {
    let start = Instant::now();
    let image = arfpn_voc::image_io::decode_rgb(&job.bytes, Path::new(&job.name)).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("not a readable image (JPEG, PNG or BMP): {e}"),
        )
    })?;
    let train = detector.config().data;
    let scale = cli::estimated_scale(job.rescale, &train, &image);
    let (estimate, factor) = (scale.estimate, scale.factor);
    // Without an estimate (rescale=off) the note says why the image was kept, as for any
    // image without one.
    let reason = scale
        .reason
        .unwrap_or_else(|| match train.rescale_decision(None) {
            RescaleDecision::Keep { reason } | RescaleDecision::Rescale { reason, .. } => reason,
        });
    let note = if scale.unheeded {
        format!("{reason}; not rescaled (rescale=auto would): counts may be unreliable")
    } else if factor != 1.0 {
        format!("{reason}: rescaled by {factor:.2}")
    } else {
        reason
    };
    let tiles = cli::field_tiling(512);
    let dets: Detections = arfpn::lab::detect_at_scale(detector, &image, factor, &tiles)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .above(job.score);
    let classes = detector.classes();
    let counts = dets.counts(classes.len());
    let total: usize = counts.iter().sum();
    let detections: Vec<Value> = (0..dets.len())
        .map(|k| {
            let b = dets.boxes[k];
            let c = dets.classes[k].index();
            json!({
                "class": classes.get(c).map(String::as_str).unwrap_or("?"),
                "class_id": c,
                "score": dets.scores[k],
                "box": [b.x1, b.y1, b.x2, b.y2],
            })
        })
        .collect();
    Ok(json!({
        "image": {"name": job.name, "width": image.width(), "height": image.height()},
        "classes": classes,
        "score_threshold": job.score,
        "detections": detections,
        "counts": classes.iter().zip(&counts).map(|(name, &n)| json!({
            "class": name,
            "count": n,
            "percent": if total == 0 { 0.0 } else { 100.0 * n as f64 / total as f64 },
        })).collect::<Vec<_>>(),
        "total": total,
        "scale": {
            "estimated_cell_px": estimate.map(|e| e.size_px),
            "training_cell_px": train.cell_size_px,
            "factor": factor,
            "note": note,
        },
        "elapsed_ms": start.elapsed().as_secs_f64() * 1e3,
    }))
}
