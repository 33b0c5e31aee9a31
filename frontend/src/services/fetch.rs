//! The page's own requests, the ones the lab is about.

use protocol::{ConnId, RequestId, headers};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestCache, RequestInit, Response};

use super::js_error;

/// What a response head told the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// `X-Conn-Id`: the only reliable way for a page to know its connection.
    pub conn: Option<ConnId>,
    /// `X-Request-Id`.
    pub request: Option<RequestId>,
    /// `X-Request-Seq`: 1 on a new connection, more on a reused one.
    pub seq: Option<u32>,
    /// HTTP status.
    pub status: u16,
}

/// `performance.now()`, the page's clock in milliseconds.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// GETs `url` bypassing the HTTP cache (`cache: 'no-store'`), reports the
/// head to `on_head` as soon as it arrives, then reads the whole body.
pub async fn fetch_no_store(url: &str, on_head: impl FnOnce(Head)) -> Result<(), String> {
    let window = web_sys::window().ok_or("no window")?;
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_cache(RequestCache::NoStore);
    let response: Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(js_error)?
        .dyn_into()
        .map_err(js_error)?;
    let headers = response.headers();
    let number = |name: &str| -> Option<u64> {
        headers
            .get(name)
            .ok()
            .flatten()
            .and_then(|v| v.trim().parse().ok())
    };
    on_head(Head {
        conn: number(headers::CONN_ID).map(ConnId),
        request: number(headers::REQUEST_ID).map(RequestId),
        seq: number(headers::REQUEST_SEQ).and_then(|s| u32::try_from(s).ok()),
        status: response.status(),
    });
    JsFuture::from(response.text().map_err(js_error)?)
        .await
        .map_err(js_error)?;
    Ok(())
}
