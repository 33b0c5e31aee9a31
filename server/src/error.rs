//! The one error type of the HTTP API.
//!
//! Every failure a client can cause is answered with a JSON
//! [`ErrorBody`]: what was wrong, and what to send
//! instead. Nothing a client sends is allowed to panic a handler.
//!
//! A browser's WebSocket cannot read an HTTP answer to its handshake (the
//! page sees only close code 1006), so a refusal of a valid upgrade of
//! `/api/events` is told as a close frame instead ([`ApiError::close_frame`]):
//! a code, and a reason of at most 123 bytes saying what happened and what
//! to do ([`ApiError::on_socket`] gives the short words).

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
    /// The same in at most [`MAX_CLOSE_REASON`] bytes, for a close frame;
    /// `None`: the error and hint, cut to fit.
    pub socket_reason: Option<String>,
}

/// The longest reason a close frame may carry (RFC 6455 §5.5: a control
/// frame's payload is at most 125 bytes, two of them the code).
pub const MAX_CLOSE_REASON: usize = 123;

/// Close code 1008, policy violation (RFC 6455 §7.4.1): a refusal that
/// trying again will not change (a session this server does not know, a
/// wrong key, a request it does not take).
pub const CLOSE_POLICY: u16 = 1008;

/// Close code 1013, Try Again Later (IANA's WebSocket close code registry):
/// a cap reached, which frees itself.
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// `text` cut to at most [`MAX_CLOSE_REASON`] bytes, on a character boundary.
pub fn close_reason(text: &str) -> &str {
    let mut end = text.len().min(MAX_CLOSE_REASON);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody::new(error, hint),
            socket_reason: None,
        }
    }

    /// The same refusal, told over a WebSocket as `reason`: what happened
    /// and what to do, in at most [`MAX_CLOSE_REASON`] bytes (cut to fit).
    #[must_use]
    pub fn on_socket(mut self, reason: impl Into<String>) -> ApiError {
        let reason = reason.into();
        self.socket_reason = Some(close_reason(&reason).to_owned());
        self
    }

    /// This refusal as a close frame's code and reason: 1013 (Try Again
    /// Later) for a cap (429, 503), which frees itself; 1008 (policy
    /// violation) for the rest, which trying again will not change. The
    /// reason is [`ApiError::on_socket`]'s words, else the error and its
    /// hint, cut to [`MAX_CLOSE_REASON`] bytes.
    pub fn close_frame(&self) -> (u16, String) {
        let code = match self.status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                CLOSE_TRY_AGAIN_LATER
            }
            _ => CLOSE_POLICY,
        };
        let reason = match &self.socket_reason {
            Some(reason) => reason.clone(),
            None => {
                let ErrorBody { error, hint, .. } = &self.body;
                close_reason(&format!("{error}; {hint}")).to_owned()
            }
        };
        (code, reason)
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(error: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error, hint)
    }

    /// 404: no such endpoint. The hint lists every endpoint, from the list
    /// the router is built from ([`crate::routes::ENDPOINTS`]).
    pub fn not_found(path: &str) -> ApiError {
        static HINT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let listed: Vec<String> = crate::routes::ENDPOINTS
                .iter()
                .map(|(methods, path)| match *methods {
                    "" => (*path).to_owned(),
                    methods => format!("{methods} {path}"),
                })
                .collect();
            format!("endpoints: {}; see docs/api.md", listed.join(", "))
        });
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no endpoint at `{path}`"),
            HINT.as_str(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_becomes_a_close_frame_of_at_most_123_bytes() {
        let cap = ApiError::over_capacity("a cap", "wait").on_socket("full; wait");
        assert_eq!(cap.close_frame(), (1013, "full; wait".into()));
        let busy = ApiError::too_many("busy", "slow down");
        assert_eq!(busy.close_frame(), (1013, "busy; slow down".into()));
        let forbidden = ApiError::forbidden("no", "ask the instructor");
        assert_eq!(
            forbidden.close_frame(),
            (1008, "no; ask the instructor".into())
        );
        // Cut on a character boundary: `é` is two bytes.
        let long = ApiError::bad_request("é".repeat(100), "hint");
        let (code, reason) = long.close_frame();
        assert_eq!(code, 1008);
        assert_eq!(reason.len(), 122, "{reason}");
        let words = ApiError::bad_request("x", "y").on_socket("w".repeat(200));
        assert_eq!(words.close_frame().1.len(), MAX_CLOSE_REASON);
    }
}
