//! Browser I/O, kept out of the components: the events WebSocket and the
//! page's own `fetch` calls.

pub mod burst;
pub mod download;
pub mod events;
pub mod fetch;
pub mod live_link;
pub mod session;

use wasm_bindgen::JsValue;

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
