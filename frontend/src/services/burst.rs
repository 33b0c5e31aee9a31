//! Firing a burst from the page: the requests the lab measures.

use std::time::Duration;

use gloo_timers::future::sleep;
use protocol::{ConnId, RequestId};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::js_error;
use crate::frames::FrameDispatch;
use crate::services::fetch::now_ms;
use crate::settings::{BurstSettings, Order, PageOrigin};
use crate::state::{Action, Head, KeepAliveHeaders, PoolKey, ResourceTiming};

/// A concurrent burst's requests handed to the request script in one task;
/// the rest follow in later tasks (a `setTimeout(0)` apart). The script
/// sends each task's requests to its Worker as one message, and the Worker
/// issues them; on the main thread (where no Worker can start) a slice is
/// that many `fetch` calls, so 200 do not hold it for one long task in
/// which no event is applied and no frame drawn (bench figures 3 and 4).
/// Every lesson's burst (at most 16) fits in one slice, and each request's
/// issue time is recorded where and when its `fetch` is called.
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
    wake_on_steps(&dispatch);
    dispatch.send(Action::RunStarted {
        id: run,
        settings,
        requests,
        at_ms: now_ms(),
        epoch_ms: js_sys::Date::now(),
    });
    let spacing = Duration::from_millis(settings.spacing_ms.into());
    wasm_bindgen_futures::spawn_local(async move {
        // The run is drawn at the next flush (the action above); its requests
        // go out after the next frame's style, layout and paint, so the events
        // they bring do not queue behind the run's drawing, which on a
        // page's first run is a 20 ms frame (bench figure 3, `causes.md`).
        // The run's clock starts at its first request (`Action::Issued`).
        if let Ok(drawn) = js_after_drawing() {
            let _ = JsFuture::from(drawn).await;
        }
        match settings.order {
            Order::Concurrent if spacing.is_zero() => {
                for (index, url) in urls.into_iter().enumerate() {
                    if index > 0 && index % SLICE == 0 {
                        sleep(Duration::ZERO).await;
                    }
                    start(settings, run, index, &url, &dispatch);
                }
            }
            Order::Concurrent => {
                for (index, url) in urls.into_iter().enumerate() {
                    let dispatch = dispatch.clone();
                    wasm_bindgen_futures::spawn_local(async move {
                        sleep(spacing * index as u32).await;
                        start(settings, run, index, &url, &dispatch);
                    });
                }
            }
            Order::Sequential => {
                for (index, url) in urls.into_iter().enumerate() {
                    if let Some(ended) = start(settings, run, index, &url, &dispatch) {
                        let _ = JsFuture::from(ended).await;
                    }
                    if !spacing.is_zero() {
                        sleep(spacing).await;
                    }
                }
            }
        }
    });
}

/// The script in `index.html` that issues the page's requests from a
/// Worker (through the page's own connection pools; on the main thread
/// where no Worker can start) and records their steps on the page's clock
/// (`window.keepaliveLabBurst`).
#[wasm_bindgen]
extern "C" {
    /// Issues request `index` of run `run`; the promise resolves when it has
    /// ended, either way. `timeout_ms` below 0: no client timeout.
    #[wasm_bindgen(catch, js_namespace = keepaliveLabBurst, js_name = issue)]
    #[allow(clippy::too_many_arguments)]
    fn js_issue(
        run: u32,
        index: u32,
        url: &str,
        post: bool,
        no_store: bool,
        credentials: &str,
        priority: &str,
        timeout_ms: i32,
    ) -> Result<js_sys::Promise, JsValue>;

    /// A promise that resolves once the next animation frame has been drawn
    /// (or after 100 ms, in a tab that draws no frames).
    #[wasm_bindgen(catch, js_namespace = keepaliveLabBurst, js_name = afterDrawing)]
    fn js_after_drawing() -> Result<js_sys::Promise, JsValue>;

    /// The numbers of the steps recorded since the last call ([`parse_steps`]).
    #[wasm_bindgen(catch, js_namespace = keepaliveLabBurst, js_name = take)]
    fn js_take() -> Result<Vec<f64>, JsValue>;

    /// Their words, joined by U+001F ([`parse_steps`]).
    #[wasm_bindgen(catch, js_namespace = keepaliveLabBurst, js_name = takeWords)]
    fn js_take_words() -> Result<String, JsValue>;

    /// `f` is called when a step is recorded and none was waiting.
    #[wasm_bindgen(catch, js_namespace = keepaliveLabBurst, js_name = wake)]
    fn js_wake(f: &js_sys::Function) -> Result<(), JsValue>;

    /// Ends every request of the page still under way.
    #[wasm_bindgen(catch, js_namespace = keepaliveLabBurst, js_name = abortAll)]
    fn js_abort_all() -> Result<(), JsValue>;
}

/// Ends every request the page has under way (a lesson left while it
/// runs: its requests queued in the browser would hold the lanes the next
/// one needs).
pub fn abort_all() {
    let _ = js_abort_all();
}

thread_local! {
    /// The closure the script calls when steps are waiting: it asks the
    /// frame dispatcher to take them (replaced by each run, so one lives).
    static WAKE: std::cell::RefCell<Option<Closure<dyn Fn()>>> = const { std::cell::RefCell::new(None) };
}

/// Has the script call `dispatch` when steps are waiting.
fn wake_on_steps(dispatch: &FrameDispatch) {
    let dispatch = dispatch.clone();
    let wake = Closure::<dyn Fn()>::new(move || dispatch.steps_waiting());
    if js_wake(wake.as_ref().unchecked_ref()).is_ok() {
        WAKE.with(|w| *w.borrow_mut() = Some(wake));
    }
}

/// The steps the script recorded since the last call, as actions. The
/// script keeps one buffer for the page, and the dispatcher of the last
/// [`fire`] takes all of it: a page has one lab (`crate::page::Lab`), so
/// one dispatcher.
pub fn take_steps() -> Vec<Action> {
    match (js_take(), js_take_words()) {
        (Ok(numbers), Ok(words)) => parse_steps(&numbers, &words),
        _ => Vec::new(),
    }
}

/// Hands one request to the script, which reports its every step through
/// [`take_steps`]; returns the promise of its end (awaited only when the
/// next request waits for it: a concurrent burst awaits nothing).
fn start(
    settings: BurstSettings,
    run: u32,
    index: usize,
    url: &str,
    dispatch: &FrameDispatch,
) -> Option<js_sys::Promise> {
    let credentials = settings.credentials.fetch_value().unwrap_or("");
    let priority = settings.priority.fetch_value().unwrap_or("");
    let timeout_ms = settings
        .timeout_ms
        .map_or(-1, |ms| i32::try_from(ms).unwrap_or(i32::MAX));
    // Identical URLs keep the default cache mode on purpose: that is what
    // shows Chromium's cache lock serialising them.
    let started = js_issue(
        run,
        u32::try_from(index).unwrap_or(u32::MAX),
        url,
        settings.post,
        !settings.identical_url,
        credentials,
        priority,
        timeout_ms,
    );
    started
        .map_err(|error| {
            dispatch.send(Action::Failed {
                run,
                index,
                error: format!(
                    "the page could not issue this request ({}): reload the page",
                    js_error(error)
                ),
                aborted: false,
                at_ms: now_ms(),
            })
        })
        .ok()
}

/// Reads the script's steps (its comment in `index.html` has the layout):
/// numbers for what they are, when, and what the response said; words for
/// headers and errors. Numbers, not text, so the page needs no float parser
/// (about 17 KB of WebAssembly). What it cannot read ends the reading (the
/// script writes these; nothing else does).
pub fn parse_steps(numbers: &[f64], words: &str) -> Vec<Action> {
    let mut words = words.split('\u{1f}');
    let mut rest = numbers;
    let mut actions = Vec::new();
    while let Some((action, used)) = parse_step(rest, &mut words) {
        actions.push(action);
        rest = &rest[used..];
    }
    actions
}

/// A whole number the script wrote (run, index, status, ids); `None` for
/// anything else, including its -1 for "absent".
fn whole(v: f64) -> Option<u64> {
    (v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_991.0).then_some(v as u64)
}

/// One step from the front of `n`, and how many numbers it took.
fn parse_step<'a>(n: &[f64], words: &mut impl Iterator<Item = &'a str>) -> Option<(Action, usize)> {
    let (&kind, fields) = n.split_first()?;
    let run = u32::try_from(whole(*fields.first()?)?).ok()?;
    let index = usize::try_from(whole(*fields.get(1)?)?).ok()?;
    let at_ms = *fields.get(2)?;
    let f = |i: usize| fields.get(3 + i).copied();
    Some(match whole(kind)? {
        0 => (Action::Issued { run, index, at_ms }, 4),
        1 => {
            let (connection, keep_alive) = (words.next()?, words.next()?);
            let head = Head {
                status: u16::try_from(whole(f(0)?)?).ok()?,
                conn: whole(f(1)?).map(ConnId),
                request: whole(f(2)?).map(RequestId),
                seq: whole(f(3)?).and_then(|s| u32::try_from(s).ok()),
                keep_alive: KeepAliveHeaders::parse(
                    connection.strip_prefix('+'),
                    keep_alive.strip_prefix('+'),
                ),
            };
            (
                Action::ResponseHead {
                    run,
                    index,
                    head,
                    at_ms,
                },
                8,
            )
        }
        2 => {
            let count = usize::try_from(whole(f(0)?)?).ok()?;
            let timing = match count {
                0 => None,
                7 => Some(ResourceTiming {
                    fetch_start: f(1)?,
                    domain_lookup_start: f(2)?,
                    connect_start: f(3)?,
                    connect_end: f(4)?,
                    request_start: f(5)?,
                    response_start: f(6)?,
                    response_end: f(7)?,
                }),
                _ => return None,
            };
            (
                Action::Finished {
                    run,
                    index,
                    at_ms,
                    timing,
                },
                5 + count,
            )
        }
        3 => {
            let aborted = f(0)? == 1.0;
            let timeout_ms = f(1)?;
            let error = words.next()?;
            let error = if aborted {
                format!(
                    "aborted by the page after {} ms (client timeout): {error}",
                    whole(timeout_ms).unwrap_or(0)
                )
            } else {
                error.to_owned()
            };
            (
                Action::Failed {
                    run,
                    index,
                    error,
                    aborted,
                    at_ms,
                },
                6,
            )
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script's header names are the protocol's.
    #[test]
    fn the_script_reads_the_protocols_headers() {
        let page = include_str!("../../../index.html");
        for name in [
            protocol::headers::CONN_ID,
            protocol::headers::REQUEST_ID,
            protocol::headers::REQUEST_SEQ,
        ] {
            assert!(page.contains(&format!("h.get(\"{name}\")")), "{name}");
        }
    }

    #[test]
    fn steps_are_read_back_as_the_actions_they_record() {
        let numbers = [
            [0.0, 3.0, 0.0, 10.5].as_slice(),
            &[1.0, 3.0, 0.0, 12.25, 200.0, 7.0, 41.0, 2.0],
            &[2.0, 3.0, 0.0, 13.0, 7.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            &[2.0, 3.0, 1.0, 14.0, 0.0],
            &[3.0, 3.0, 2.0, 15.0, 1.0, 250.0],
            &[1.0, 3.0, 3.0, 15.5, 503.0, -1.0, -1.0, -1.0],
            &[3.0, 3.0, 4.0, 16.0, 0.0, -1.0],
        ]
        .concat();
        let words = [
            "",
            "+timeout=5, max=99",
            "AbortError: signal is aborted without reason",
            "+close",
            "",
            "TypeError: Failed to fetch",
        ]
        .join("\u{1f}");
        let actions = parse_steps(&numbers, &words);
        assert_eq!(actions.len(), 7);
        assert!(matches!(actions[0], Action::Issued { run: 3, index: 0, at_ms } if at_ms == 10.5));
        let Action::ResponseHead { head, at_ms, .. } = &actions[1] else {
            panic!("a head: {:?}", actions[1]);
        };
        assert_eq!(*at_ms, 12.25);
        assert_eq!(head.status, 200);
        assert_eq!(head.conn, Some(ConnId(7)));
        assert_eq!(head.request, Some(RequestId(41)));
        assert_eq!(head.seq, Some(2));
        // `Connection` absent, `Keep-Alive` present.
        assert_eq!(
            head.keep_alive,
            KeepAliveHeaders::parse(None, Some("timeout=5, max=99"))
        );
        let Action::Finished {
            timing: Some(t), ..
        } = &actions[2]
        else {
            panic!("finished with its timing: {:?}", actions[2]);
        };
        assert_eq!((t.fetch_start, t.response_end), (1.0, 7.0));
        assert!(matches!(
            actions[3],
            Action::Finished {
                index: 1,
                timing: None,
                ..
            }
        ));
        let Action::Failed {
            error,
            aborted: true,
            ..
        } = &actions[4]
        else {
            panic!("aborted: {:?}", actions[4]);
        };
        assert_eq!(
            error,
            "aborted by the page after 250 ms (client timeout): AbortError: signal is aborted without reason"
        );
        // A head without the lab's headers: no ids; `Connection: close`.
        let Action::ResponseHead { head, .. } = &actions[5] else {
            panic!("a head: {:?}", actions[5]);
        };
        assert_eq!(
            (head.status, head.conn, head.request, head.seq),
            (503, None, None, None)
        );
        assert_eq!(
            head.keep_alive,
            KeepAliveHeaders::parse(Some("close"), None)
        );
        assert!(
            matches!(&actions[6], Action::Failed { aborted: false, error, .. } if error == "TypeError: Failed to fetch")
        );
    }

    #[test]
    fn what_it_cannot_read_ends_the_reading_never_a_panic() {
        let issued = [0.0, 1.0, 0.0, 1.0];
        for bad in [
            [].as_slice(),
            &[0.0],
            &[0.0, 1.5, 0.0, 1.0],
            &[0.0, -1.0, 0.0, 1.0],
            &[9.0, 1.0, 0.0, 1.0],
            &[1.0, 1.0, 0.0, 1.0, 200.0],
            &[2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 2.0, 3.0],
            &[f64::NAN, 1.0, 0.0, 1.0],
        ] {
            assert!(parse_steps(bad, "").is_empty(), "{bad:?}");
            // What came before it is kept.
            let both = [issued.as_slice(), bad].concat();
            assert_eq!(parse_steps(&both, "").len(), 1, "{bad:?}");
        }
        // A head needs its two words, a failure its one.
        assert!(parse_steps(&[1.0, 1.0, 0.0, 1.0, 200.0, 1.0, 1.0, 1.0], "").is_empty());
        assert_eq!(parse_steps(&[3.0, 1.0, 0.0, 1.0, 0.0, -1.0], "").len(), 1);
    }
}
