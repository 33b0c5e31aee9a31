//! Reading what the lab's responses say, and the page's clock.

use protocol::{ConnId, RequestId, headers};
use web_sys::Response;

pub use crate::state::Head;

/// `performance.now()`, the page's clock in milliseconds.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// What a response's headers say about its connection.
pub fn head_of(response: &Response) -> Head {
    let headers = response.headers();
    let number = |name: &str| -> Option<u64> {
        headers
            .get(name)
            .ok()
            .flatten()
            .and_then(|v| v.trim().parse().ok())
    };
    Head {
        conn: number(headers::CONN_ID).map(ConnId),
        request: number(headers::REQUEST_ID).map(RequestId),
        seq: number(headers::REQUEST_SEQ).and_then(|s| u32::try_from(s).ok()),
        status: response.status(),
        keep_alive: crate::state::KeepAliveHeaders::parse(
            headers.get("connection").ok().flatten().as_deref(),
            headers.get("keep-alive").ok().flatten().as_deref(),
        ),
    }
}
