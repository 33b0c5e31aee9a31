//! Firing a burst from the page: the requests the lab measures.

use std::time::Duration;

use gloo_timers::callback::Timeout;
use gloo_timers::future::sleep;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, RequestCache, RequestCredentials, RequestInit, Response};

use super::js_error;
use crate::hooks::FrameDispatch;
use crate::services::fetch::now_ms;
use crate::settings::{BurstSettings, Order, PageOrigin, Priority};
use crate::state::{Action, Head, PoolKey, ResourceTiming};

/// Resource Timing keeps 250 entries by default and then silently drops new
/// ones; a lab run can have more.
const RESOURCE_TIMING_BUFFER: u32 = 5_000;

/// A concurrent burst's `fetch` calls issued in one task; the rest follow in
/// later tasks (a `setTimeout(0)` apart), so 200 calls do not hold the main
/// thread for one long task in which no event is applied and no frame drawn
/// (bench figures 3 and 4). Every lesson's burst (at most 16) fits in one
/// slice, and each request's issue time is recorded as it happens.
const SLICE: usize = 20;

/// The page's own origin.
pub fn page_origin() -> Result<PageOrigin, String> {
    let location = web_sys::window().ok_or("no window")?.location();
    let port = location.port().map_err(js_error)?;
    let scheme = location.protocol().map_err(js_error)?;
    Ok(PageOrigin {
        port: port
            .parse()
            .unwrap_or(if scheme == "https:" { 443 } else { 80 }),
        host: location.hostname().map_err(js_error)?,
        scheme,
    })
}

/// Composes run `run` of `settings` aimed at `origin` and starts it; every
/// step is queued on `dispatch` (applied once per animation frame).
pub fn fire(
    settings: BurstSettings,
    run: u32,
    origin: String,
    session: &str,
    dispatch: FrameDispatch,
) {
    if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
        performance.clear_resource_timings();
        performance.set_resource_timing_buffer_size(RESOURCE_TIMING_BUFFER);
    }
    let pool = PoolKey {
        origin: origin.clone(),
        credentials: settings.credentials,
    };
    let requests: Vec<(String, String, PoolKey)> = (1..=settings.count)
        .map(|n| {
            let (tag, url) = settings.url(&origin, run, n, session);
            (tag, url, pool.clone())
        })
        .collect();
    let urls: Vec<String> = requests.iter().map(|r| r.1.clone()).collect();
    dispatch.send(Action::RunStarted {
        id: run,
        settings,
        requests,
        at_ms: now_ms(),
        epoch_ms: js_sys::Date::now(),
    });
    let spacing = Duration::from_millis(settings.spacing_ms.into());
    match settings.order {
        Order::Concurrent if spacing.is_zero() => wasm_bindgen_futures::spawn_local(async move {
            for (index, url) in urls.into_iter().enumerate() {
                if index > 0 && index % SLICE == 0 {
                    sleep(Duration::ZERO).await;
                }
                wasm_bindgen_futures::spawn_local(issue(
                    settings,
                    run,
                    index,
                    url,
                    dispatch.clone(),
                ));
            }
        }),
        Order::Concurrent => {
            for (index, url) in urls.into_iter().enumerate() {
                let dispatch = dispatch.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    sleep(spacing * index as u32).await;
                    issue(settings, run, index, url, dispatch).await;
                });
            }
        }
        Order::Sequential => wasm_bindgen_futures::spawn_local(async move {
            for (index, url) in urls.into_iter().enumerate() {
                issue(settings, run, index, url, dispatch.clone()).await;
                if !spacing.is_zero() {
                    sleep(spacing).await;
                }
            }
        }),
    }
}

/// One request, reported step by step.
async fn issue(
    settings: BurstSettings,
    run: u32,
    index: usize,
    url: String,
    dispatch: FrameDispatch,
) {
    // Only a request with a client timeout needs an abort signal; a burst of
    // hundreds should not allocate one per request for nothing.
    let controller = settings
        .timeout_ms
        .and_then(|_| AbortController::new().ok());
    let _timer = match (settings.timeout_ms, &controller) {
        (Some(ms), Some(c)) => {
            let c = c.clone();
            Some(Timeout::new(ms, move || c.abort()))
        }
        _ => None,
    };
    dispatch.send(Action::Issued {
        run,
        index,
        at_ms: now_ms(),
    });
    let outcome = fetch(&settings, &url, controller.as_ref(), |head| {
        dispatch.send(Action::ResponseHead {
            run,
            index,
            head,
            at_ms: now_ms(),
        })
    })
    .await;
    let action = match outcome {
        Ok(()) => Action::Finished {
            run,
            index,
            at_ms: now_ms(),
            timing: resource_timing(&url),
        },
        Err(error) => {
            let aborted = controller.as_ref().is_some_and(|c| c.signal().aborted());
            Action::Failed {
                run,
                index,
                error: if aborted {
                    format!(
                        "aborted by the page after {} ms (client timeout): {error}",
                        settings.timeout_ms.unwrap_or(0)
                    )
                } else {
                    error
                },
                aborted,
                at_ms: now_ms(),
            }
        }
    };
    dispatch.send(action);
}

async fn fetch(
    settings: &BurstSettings,
    url: &str,
    controller: Option<&AbortController>,
    on_head: impl FnOnce(Head),
) -> Result<(), String> {
    let window = web_sys::window().ok_or("no window")?;
    let init = RequestInit::new();
    init.set_method(if settings.post { "POST" } else { "GET" });
    // Identical URLs keep the default cache mode on purpose: that is what
    // shows Chromium's cache lock serialising them.
    if !settings.identical_url {
        init.set_cache(RequestCache::NoStore);
    }
    match settings.credentials.fetch_value() {
        Some("omit") => init.set_credentials(RequestCredentials::Omit),
        Some("include") => init.set_credentials(RequestCredentials::Include),
        _ => {}
    }
    let priority = match settings.priority {
        Priority::Auto => None,
        Priority::High => Some("high"),
        Priority::Low => Some("low"),
    };
    if let Some(priority) = priority {
        js_sys::Reflect::set(
            &init,
            &JsValue::from_str("priority"),
            &JsValue::from_str(priority),
        )
        .map_err(js_error)?;
    }
    if let Some(c) = controller {
        init.set_signal(Some(&c.signal()));
    }
    let response: Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(js_error)?
        .dyn_into()
        .map_err(js_error)?;
    on_head(super::fetch::head_of(&response));
    JsFuture::from(response.text().map_err(js_error)?)
        .await
        .map_err(js_error)?;
    Ok(())
}

/// The browser's Resource Timing entry for `url`, if it kept one.
fn resource_timing(url: &str) -> Option<ResourceTiming> {
    let performance = web_sys::window()?.performance()?;
    let entries = performance.get_entries_by_name(url);
    let last = entries.get(entries.length().checked_sub(1)?);
    let t: web_sys::PerformanceResourceTiming = last.dyn_into().ok()?;
    Some(ResourceTiming {
        fetch_start: t.fetch_start(),
        domain_lookup_start: t.domain_lookup_start(),
        connect_start: t.connect_start(),
        connect_end: t.connect_end(),
        request_start: t.request_start(),
        response_start: t.response_start(),
        response_end: t.response_end(),
    })
}
