//! The page's clock. (What the lab's responses say is read by the request
//! script in `index.html` and [`super::burst::parse_steps`].)

/// `performance.now()`, the page's clock in milliseconds.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}
