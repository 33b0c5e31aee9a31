//! The one error type of the HTTP API.
//!
//! Every failure a client can cause is answered with a JSON
//! [`ErrorBody`]: what was wrong, and what to send
//! instead. Nothing a client sends is allowed to panic a handler.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::ErrorBody;

/// An HTTP API error: a status code and a JSON body with a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// 4xx for the client's mistakes, 5xx for limits and shutdown.
    pub status: StatusCode,
    /// What went wrong and what to do instead.
    pub body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                hint: hint.into(),
            },
        }
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(error: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error, hint)
    }

    /// 404: no such endpoint.
    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no endpoint at `{path}`"),
            "endpoints: POST /api/sessions, /api/fast, /api/slow, /api/hang, /api/drip, \
             /api/close, /api/sse, POST /api/release, GET /api/connections, GET /api/lessons[/ID], \
             GET|PUT /api/config, GET|PUT /api/room, /api/events (WebSocket); see docs/api.md",
        )
    }

    /// Any status, for rejections from axum's extractors (413, 400...).
    pub fn with_status(
        status: StatusCode,
        error: impl Into<String>,
        hint: impl Into<String>,
    ) -> ApiError {
        ApiError::new(status, error, hint)
    }

    /// 405: the endpoint exists but not for this method.
    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("`{method}` is not accepted on `{path}`"),
            "see docs/api.md for the methods each endpoint takes",
        )
    }

    /// 429: one client (a session or an address) has reached its cap.
    pub fn too_many(error: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, error, hint)
    }

    /// 403: not allowed (another site's page, a wrong key, a forged session).
    pub fn forbidden(error: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, error, hint)
    }

    /// 503: a server-wide cap is reached.
    pub fn over_capacity(error: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error, hint)
    }

    /// 504: the server gave up waiting (the hang cap).
    pub fn gateway_timeout(error: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::GATEWAY_TIMEOUT, error, hint)
    }

    /// 503: the server is shutting down.
    pub fn shutting_down() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
            "start it again with `cargo xtask run`",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
