//! The HTTP API: `fn app(lab) -> Router`.
//!
//! The router knows nothing about sockets; the accept loop in
//! [`crate::listener`] gives each request a [`RequestCtx`](crate::conn::RequestCtx)
//! extension naming its connection. Called directly (`oneshot` in tests) the
//! handlers still work, they just have no connection to report.
//!
//! | endpoint | what it does |
//! |---|---|
//! | `/api/fast`, `/api/slow`, `/api/hang`, `/api/drip`, `/api/close`, `/api/sse` | the lesson endpoints, see [`crate::endpoints`] |
//! | `POST /api/release` | releases hanging requests: `{"request": 12}`, `{"id": "t"}`, or all (of `?session=` if given) |
//! | `GET /api/connections` | the policy and the open connections with their recent requests |
//! | `GET /api/config`, `PUT /api/config` | the keep-alive policy; PUT takes a partial JSON patch |
//! | `GET /api/events` | WebSocket: snapshot, then every event; accepts control messages |
//! | anything else | the built frontend from `dist/` |
//!
//! Every error, including axum's own rejections, is a JSON
//! [`ApiError`]. CORS answers any origin with credentials, so pages on the
//! lab's other origins (second port, `localhost`) can read every header.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::http::{HeaderName, Method, Uri, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use protocol::{PolicyPatch, ReleaseRequest, ReleaseResponse, ServerPolicy, headers};
use tower::ServiceExt;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;

use crate::Lab;
use crate::endpoints;
use crate::error::ApiError;
use crate::events;
use crate::params::Params;

/// Largest request body accepted anywhere (release and config bodies are tiny).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The lab's router.
pub fn app(lab: Lab) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/fast", get(endpoints::fast).post(endpoints::fast))
        .route("/api/slow", get(endpoints::slow).post(endpoints::slow))
        .route("/api/hang", get(endpoints::hang).post(endpoints::hang))
        .route("/api/drip", get(endpoints::drip).post(endpoints::drip))
        .route("/api/close", get(endpoints::close).post(endpoints::close))
        .route("/api/sse", get(endpoints::sse).post(endpoints::sse))
        .route("/api/release", post(release))
        .route("/api/connections", get(connections))
        .route("/api/config", get(get_config).put(put_config))
        .route("/api/events", get(events::upgrade))
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::method_not_allowed(method.as_str(), uri.path())
        })
        .fallback(assets)
        .layer(cors())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(lab)
}

/// Any origin may call the lab and read its headers, with credentials: the
/// lessons compare pools across origins and credentials modes.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_credentials(true)
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            HeaderName::from_static(headers::CONN_ID),
            HeaderName::from_static(headers::REQUEST_SEQ),
            HeaderName::from_static(headers::REQUEST_ID),
        ])
        .max_age(Duration::from_secs(600))
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

/// Files from `dist/` for GET and HEAD; a JSON 404 for anything else.
async fn assets(State(lab): State<Lab>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return ApiError::not_found(&path).into_response();
    }
    let files = ServeDir::new(&lab.config().dist_dir);
    match files.oneshot(request).await {
        Ok(response) if response.status().is_success() || response.status().is_redirection() => {
            response.into_response()
        }
        Ok(response) if response.status() == axum::http::StatusCode::NOT_MODIFIED => {
            response.into_response()
        }
        _ => ApiError::not_found(&path).into_response(),
    }
}

/// A body that could not be read (too large, cut short) as a JSON error.
fn body_error(rejection: &BytesRejection) -> ApiError {
    ApiError::with_status(
        rejection.status(),
        format!(
            "the request body could not be read: {}",
            rejection.body_text()
        ),
        format!("bodies are small JSON objects of at most {MAX_BODY_BYTES} bytes"),
    )
}

/// Parses a small JSON object body; `what` names it in errors.
fn json_object<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
    what: &str,
    hint: &str,
) -> Result<T, ApiError> {
    let text = body.trim_ascii();
    if text.is_empty() {
        return Ok(T::default());
    }
    if !text.starts_with(b"{") {
        return Err(ApiError::bad_request(
            format!("the {what} body must be a JSON object"),
            hint,
        ));
    }
    serde_json::from_slice(text)
        .map_err(|e| ApiError::bad_request(format!("the {what} body is not understood: {e}"), hint))
}

async fn release(
    State(lab): State<Lab>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReleaseResponse>, ApiError> {
    let params = Params::parse(
        "/api/release",
        query.as_deref(),
        &[],
        "/api/release?session=s-1",
    )?;
    let scope = params.session()?;
    let body = body.map_err(|r| body_error(&r))?;
    let filter = parse_release(&body)?;
    Ok(Json(ReleaseResponse {
        released: lab.hangs().release(&filter, scope.as_ref()),
    }))
}

/// Parses a release body: empty means "all".
pub fn parse_release(body: &[u8]) -> Result<ReleaseRequest, ApiError> {
    let hint = r#"send {"request": 12} or {"id": "demo-1"}, or an empty body to release every hanging request"#;
    let filter: ReleaseRequest = json_object(body, "release", hint)?;
    if filter.request.is_some() && filter.id.is_some() {
        return Err(ApiError::bad_request(
            "give either `request` or `id`, not both",
            hint,
        ));
    }
    Ok(filter)
}

async fn connections(State(lab): State<Lab>) -> Json<protocol::ServerEvent> {
    Json(lab.snapshot())
}

async fn get_config(State(lab): State<Lab>) -> Json<ServerPolicy> {
    Json(lab.policy())
}

async fn put_config(
    State(lab): State<Lab>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ServerPolicy>, ApiError> {
    let body = body.map_err(|r| body_error(&r))?;
    let hint = r#"send some of {"keep_alive": true, "idle_timeout_ms": 5000, "max_requests": 100, "advertise_keep_alive": true, "hang_timeout_ms": null, "tcp_keepalive": {"idle_s": 60, "interval_s": 10}}"#;
    let patch: PolicyPatch = json_object(&body, "config", hint)?;
    Ok(Json(lab.set_policy(&patch)?))
}
