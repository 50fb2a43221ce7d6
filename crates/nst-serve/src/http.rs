//! The routes: the page and its assets, the JSON API, the files of runs, and the event stream
//! (server-sent events). Handlers never touch the engine: they read the studio's state or ask its
//! worker; file work runs on tokio's blocking pool.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{self, Guard};
use crate::settings::Settings;
use crate::store::{ImageRef, is_run_id};
use crate::studio::{Command, Studio};
use crate::{Error, Result, UPLOAD_LIMIT};

type Shared = Arc<Studio>;

/// How many uploads are read at once.
pub(crate) const UPLOAD_SLOTS: usize = 4;
/// How long an upload may take to arrive.
const UPLOAD_TIME: Duration = Duration::from_secs(60);

/// Above this many pixels an upload is checked from its header only: decoding it whole (as floats)
/// just to check it would take gigabytes; the run decodes it at its working size.
const DECODE_CHECK_PIXELS: u64 = 16 * 1024 * 1024;

/// The whole application.
pub(crate) fn router(studio: Shared) -> Router {
    let guard = Guard {
        token: studio.config.token.clone(),
    };
    let api = Router::new()
        .route("/api/state", get(state))
        .route("/api/defaults/{preset}", get(defaults))
        .route(
            "/api/uploads",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/images/{image}", get(image))
        .route("/api/runs", post(submit))
        .route("/api/runs/{id}", get(run_info))
        .route("/api/runs/{id}/{action}", post(action).get(run_file))
        .route("/api/events", get(events))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(studio);
    crate::assets::routes()
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(guard, auth::check))
}

/// Accepts connections until `stop`, serving each with hyper's HTTP/1 and a header-read timeout (a
/// client that never finishes its request is closed, not kept). Connections still open at `stop`
/// (event streams) are ended; the studio has stopped its run by then.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors, or a connection reset before it was accepted: wait a little
            // rather than spin, and go on.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            // A connection's failure (reset, malformed request, timeout) is that connection's alone.
            let _ = builder
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
    connections.abort_all();
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::QueueFull(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

async fn state(State(s): State<Shared>) -> impl IntoResponse {
    Json(s.state())
}

async fn defaults(Path(preset): Path<String>) -> Result<Json<Settings>> {
    let preset = preset.parse().map_err(|_| Error::NotFound)?;
    Ok(Json(Settings::defaults(preset)))
}

/// Stores an uploaded image under a server-chosen name, after checking its type (by content), its
/// size and its pixel count (from the header, before anything is decoded). At most
/// [`UPLOAD_SLOTS`] bodies are read at once, each within [`UPLOAD_TIME`], so that many or slow
/// uploads cannot hold the server's memory.
async fn upload(State(s): State<Shared>, body: Body) -> Result<impl IntoResponse> {
    let _slot = s
        .upload_slots
        .acquire()
        .await
        .map_err(|_| Error::Conflict("the server is shutting down".into()))?;
    let too_large = || {
        Error::TooLarge(format!(
            "an upload must be at most {} MiB and arrive within {} s",
            UPLOAD_LIMIT >> 20,
            UPLOAD_TIME.as_secs()
        ))
    };
    let body = tokio::time::timeout(UPLOAD_TIME, axum::body::to_bytes(body, UPLOAD_LIMIT))
        .await
        .map_err(|_| too_large())?
        .map_err(|_| too_large())?;
    let ext = match body.get(..8) {
        Some([0x89, b'P', b'N', b'G', ..]) => "png",
        Some([0xff, 0xd8, 0xff, ..]) => "jpg",
        Some([b'G', b'I', b'F', b'8', ..]) => "gif",
        _ => {
            return Err(Error::Unsupported(
                "not a PNG, JPEG or GIF image (judged by its content)".into(),
            ));
        }
    };
    let dir = s.store.uploads();
    let (name, w, h) = tokio::task::spawn_blocking(move || store_upload(&dir, ext, &body))
        .await
        .map_err(|e| Error::Runtime(std::io::Error::other(e)))??;
    Ok((
        StatusCode::CREATED,
        Json(json!({"image": format!("upload:{name}"), "width": w, "height": h})),
    ))
}

fn store_upload(dir: &std::path::Path, ext: &str, body: &[u8]) -> Result<(String, u32, u32)> {
    let name = format!("u{}.{ext}", &crate::new_token()[..16]);
    let tmp = dir.join(format!(".part-{name}"));
    std::fs::write(&tmp, body).map_err(|e| Error::io(&tmp, e))?;
    let checked = nst_engine::image_io::dimensions(&tmp).and_then(|(w, h)| {
        if u64::from(w) * u64::from(h) <= DECODE_CHECK_PIXELS {
            nst_engine::image_io::load(&tmp)?;
        }
        Ok((w, h))
    });
    match checked {
        Ok((w, h)) => {
            let dest = dir.join(&name);
            std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
            Ok((name, w, h))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            // The message names the temporary file: say "the upload" instead.
            let msg = e
                .to_string()
                .replace(&tmp.display().to_string(), "the upload");
            Err(Error::Unsupported(msg))
        }
    }
}

async fn image(State(s): State<Shared>, Path(image): Path<String>) -> Result<Response> {
    let path = s.store.image_path(&ImageRef::parse(&image)?)?;
    send_file(path).await
}

async fn submit(State(s): State<Shared>, body: Bytes) -> Result<impl IntoResponse> {
    let settings: Settings = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("the settings: {e}")))?;
    let id = tokio::task::spawn_blocking(move || s.submit(settings))
        .await
        .map_err(|e| Error::Runtime(std::io::Error::other(e)))??;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

async fn run_info(State(s): State<Shared>, Path(id): Path<String>) -> Result<impl IntoResponse> {
    Ok(Json(s.run_info(&id)?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct More {
    iterations: usize,
}

async fn action(
    State(s): State<Shared>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse> {
    if !is_run_id(&id) {
        return Err(Error::NotFound);
    }
    match action.as_str() {
        "pause" => s.command(&id, Command::Pause)?,
        "resume" => s.command(&id, Command::Resume)?,
        "stop" => s.command(&id, Command::Stop)?,
        "up" => s.move_up(&id)?,
        "continue" => {
            let more: More = serde_json::from_slice(&body)
                .map_err(|e| Error::BadRequest(format!("continue: {e}")))?;
            s.extend(&id, more.iterations)?;
        }
        _ => return Err(Error::NotFound),
    }
    Ok(Json(json!({"ok": true})))
}

async fn run_file(
    State(s): State<Shared>,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response> {
    match file.as_str() {
        "result.png" => send_file(s.store.run_file(&id, "result.png")?).await,
        "run.gif" => send_file(s.store.run_file(&id, "run.gif")?).await,
        "preview.jpg" => {
            let p = s.preview(&id).ok_or(Error::NotFound)?;
            Ok((
                [
                    (header::CONTENT_TYPE, "image/jpeg".to_owned()),
                    (header::CACHE_CONTROL, "no-store".to_owned()),
                    (
                        header::HeaderName::from_static("x-iteration"),
                        p.iteration.to_string(),
                    ),
                ],
                p.jpeg.as_ref().clone(),
            )
                .into_response())
        }
        _ => Err(Error::NotFound),
    }
}

/// A file the store named, with its type from the extension.
async fn send_file(path: std::path::PathBuf) -> Result<Response> {
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        _ => "application/octet-stream",
    };
    let bytes = tokio::fs::read(&path).await.map_err(|_| Error::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response())
}

/// The event stream: every studio event as one `data:` line of JSON; a page that falls behind gets
/// `{"type":"resync"}` and reloads the state. The page counts as watching while it is connected.
async fn events(State(s): State<Shared>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let (rx, guard) = s.subscribe();
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        use tokio::sync::broadcast::error::RecvError;
        let data: Arc<str> = match rx.recv().await {
            Ok(text) if &*text == crate::studio::CLOSING => return None,
            Ok(text) => text,
            Err(RecvError::Lagged(_)) => Arc::from(r#"{"type":"resync"}"#),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(SseEvent::default().data(&*data)), (rx, guard)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
