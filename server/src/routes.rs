//! The HTTP API: `fn app(lab) -> Router`.
//!
//! The router knows nothing about sockets; the accept loop in
//! [`crate::listener`] gives each request a [`RequestCtx`] extension naming
//! its connection. Called directly (`oneshot` in tests) the handlers still
//! work, they just have no connection to report.
//!
//! | endpoint | what it does |
//! |---|---|
//! | `GET /api/hang?id=…&max_ms=…` | holds the request until released or `max_ms` (≤ the hang cap) |
//! | `GET /api/slow?ms=…&id=…` | answers after `ms` milliseconds (0 to 120 000) |
//! | `POST /api/release` | releases hanging requests: `{"request": 12}`, `{"id": "t"}`, or all |
//! | `GET /api/connections` | the open connections and their recent requests |
//! | `GET /api/events` | WebSocket: snapshot, then every event; accepts control messages |
//! | anything else | the built frontend from `dist/` |

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, RawQuery, State};
use axum::handler::HandlerWithoutStateExt;
use axum::http::{Method, Uri, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use protocol::{ReleaseRequest, ReleaseResponse, RequestId};
use serde::Serialize;
use tower_http::services::ServeDir;

use crate::Lab;
use crate::conn::RequestCtx;
use crate::error::ApiError;
use crate::events;
use crate::params::Params;

/// Longest `/api/slow` delay. Long enough for any lesson, short enough that a
/// forgotten request ends by itself.
pub const MAX_SLOW_MS: u64 = 120_000;

/// Largest request body accepted anywhere (the release body is tiny).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The lab's router.
pub fn app(lab: Lab) -> Router {
    let dist = lab.config().dist_dir.clone();
    let not_found = |uri: Uri| async move { ApiError::not_found(uri.path()) };
    Router::new()
        .route("/", get(index))
        .route("/api/hang", get(hang).post(hang))
        .route("/api/slow", get(slow).post(slow))
        .route("/api/release", post(release))
        .route("/api/connections", get(connections))
        .route("/api/events", get(events::upgrade))
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::method_not_allowed(method.as_str(), uri.path())
        })
        .fallback_service(ServeDir::new(dist).not_found_service(not_found.into_service()))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(lab)
}

/// The page itself. Served no-cache so a rebuilt frontend is picked up.
async fn index(State(lab): State<Lab>) -> Result<Response, ApiError> {
    let path = lab.config().dist_dir.join("index.html");
    match tokio::fs::read_to_string(&path).await {
        Ok(html) => Ok(([(header::CACHE_CONTROL, "no-cache")], Html(html)).into_response()),
        Err(_) => Err(ApiError::over_capacity(
            format!("the frontend is not built: {} is missing", path.display()),
            "run `cargo xtask run`, which builds the frontend and then starts the server",
        )),
    }
}

/// Body of a hang that ended because it was released.
#[derive(Debug, Serialize)]
struct HangAnswer {
    /// Server id of the request.
    request: RequestId,
    /// The page's tag, if it sent one.
    id: Option<String>,
    /// How long it was held.
    held_ms: u64,
}

async fn hang(
    State(lab): State<Lab>,
    ctx: Option<Extension<RequestCtx>>,
    RawQuery(query): RawQuery,
) -> Result<Json<HangAnswer>, ApiError> {
    let params = Params::parse(
        "/api/hang",
        query.as_deref(),
        &["id", "max_ms"],
        "/api/hang?id=demo-1&max_ms=30000",
    )?;
    let tag = params.tag()?;
    let cap_ms = u64::try_from(lab.config().hang_cap.as_millis()).unwrap_or(u64::MAX);
    let max_ms = params.u64_in("max_ms", 1..=cap_ms, Some(cap_ms), "milliseconds")?;
    let request = ctx.map_or_else(|| lab.tracker().next_request_id(), |c| c.request);
    let mut ticket = lab.hangs().hold(request, tag.clone())?;
    let started = Instant::now();
    tokio::select! {
        () = ticket.released() => Ok(Json(HangAnswer {
            request,
            id: tag,
            held_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })),
        () = tokio::time::sleep(Duration::from_millis(max_ms)) => Err(ApiError::gateway_timeout(
            format!("held for {max_ms} ms and nobody released it, so the server gave up"),
            "release hanging requests with POST /api/release (or the page's Release button), \
             or pass a smaller max_ms",
        )),
        () = lab.shutting_down() => Err(ApiError::shutting_down()),
    }
}

/// Body of a slow response.
#[derive(Debug, Serialize)]
struct SlowAnswer {
    /// The delay asked for.
    ms: u64,
    /// The page's tag, if it sent one.
    id: Option<String>,
}

async fn slow(
    State(lab): State<Lab>,
    RawQuery(query): RawQuery,
) -> Result<Json<SlowAnswer>, ApiError> {
    let params = Params::parse(
        "/api/slow",
        query.as_deref(),
        &["ms", "id"],
        "/api/slow?ms=1500",
    )?;
    let ms = params.u64_in("ms", 0..=MAX_SLOW_MS, None, "milliseconds")?;
    let id = params.tag()?;
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(Json(SlowAnswer { ms, id })),
        () = lab.shutting_down() => Err(ApiError::shutting_down()),
    }
}

async fn release(State(lab): State<Lab>, body: Bytes) -> Result<Json<ReleaseResponse>, ApiError> {
    let filter = parse_release(&body)?;
    Ok(Json(ReleaseResponse {
        released: lab.hangs().release(&filter),
    }))
}

/// Parses a release body: empty means "all".
pub fn parse_release(body: &[u8]) -> Result<ReleaseRequest, ApiError> {
    let hint = r#"send {"request": 12} or {"id": "demo-1"}, or an empty body to release every hanging request"#;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ReleaseRequest::default());
    }
    let filter: ReleaseRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the release body is not understood: {e}"), hint)
    })?;
    if filter.request.is_some() && filter.id.is_some() {
        return Err(ApiError::bad_request(
            "give either `request` or `id`, not both",
            hint,
        ));
    }
    Ok(filter)
}

async fn connections(State(lab): State<Lab>) -> Json<protocol::ServerEvent> {
    Json(lab.tracker().snapshot())
}
