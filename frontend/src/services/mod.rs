//! Browser I/O, kept out of the components: the events WebSocket and the
//! page's own `fetch` calls.

pub mod burst;
pub mod download;
pub mod events;
pub mod fetch;

use protocol::SessionId;
use wasm_bindgen::JsValue;

/// A fresh session id for this page load, e.g. `s-k3x9q2m1`.
pub fn new_session_id() -> SessionId {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let suffix: String = (0..10)
        .map(|_| {
            let i = (js_sys::Math::random() * DIGITS.len() as f64) as usize;
            char::from(DIGITS[i.min(DIGITS.len() - 1)])
        })
        .collect();
    SessionId::parse(&format!("s-{suffix}")).expect("a valid session id")
}

/// Turns a JS exception into text for the page.
pub fn js_error(value: JsValue) -> String {
    value
        .as_string()
        .or_else(|| {
            js_sys::Reflect::get(&value, &JsValue::from_str("message"))
                .ok()
                .and_then(|m| m.as_string())
                .map(|m| {
                    let name = js_sys::Reflect::get(&value, &JsValue::from_str("name"))
                        .ok()
                        .and_then(|n| n.as_string())
                        .unwrap_or_else(|| "Error".into());
                    format!("{name}: {m}")
                })
        })
        .unwrap_or_else(|| format!("{value:?}"))
}
