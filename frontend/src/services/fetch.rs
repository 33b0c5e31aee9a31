//! The page's clock. (What the lab's responses say is read by the request
//! script in `index.html` and [`super::burst::parse_steps`].)

thread_local! {
    /// The page's `performance` object, looked up once: the page reads its
    /// clock for every event and every request step, and finding `window`
    /// and its `performance` each time cost more than the reading.
    static PERFORMANCE: Option<web_sys::Performance> =
        web_sys::window().and_then(|w| w.performance());
}

/// `performance.now()`, the page's clock in milliseconds.
pub fn now_ms() -> f64 {
    PERFORMANCE.with(|p| p.as_ref().map_or(0.0, web_sys::Performance::now))
}
