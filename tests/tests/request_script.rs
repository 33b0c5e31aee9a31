//! The script in `index.html` that issues the page's requests
//! (`window.keepaliveLabBurst`), in real headless Chromium, driven directly
//! in a document of the lab's origin (not the lab page, whose frame
//! dispatcher would take the steps first), against the server's record:
//!
//! - each request gets its own Resource Timing entry, even when several
//!   requests share one URL and a later one ends first (the entry whose
//!   `startTime` lies between this request's `fetch()` and the next one's
//!   with that URL, never simply the newest);
//! - the Resource Timing buffer is emptied only when none of the page's
//!   requests is in flight, so an ended request's entry is never cleared
//!   before it is read;
//! - the requests go out from a Worker, through the page's own connection
//!   pool: six held there hold the page's own `fetch` back too.

use std::net::SocketAddr;
use std::time::Duration;

use keepalive_lab_server::sessions::Access;
use keepalive_lab_tests::chromium::{Chromium, Page};
use keepalive_lab_tests::{eventually, start_page_server};
use protocol::{ReleaseRequest, RequestId, ServerEvent};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);

/// One step the script recorded, as `burst::parse_steps` reads them.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    kind: u8,
    index: u32,
    at: f64,
    /// A head's status, connection, request and sequence; a body's Resource
    /// Timing figures (fetchStart first); a failure's two numbers.
    rest: Vec<f64>,
}

/// A browser with a document of the lab at `addr` (one of its JSON answers)
/// into which the shipped script (the first classic `<script>` of
/// `index.html`, as the server serves it) is loaded.
async fn script_page(addr: SocketAddr) -> (Chromium, Page) {
    script_page_where(addr, true).await
}

/// The same, with the page's `Worker` taken away first when `worker` is
/// false (a page where none can start: the script's main-thread path).
async fn script_page_where(addr: SocketAddr, worker: bool) -> (Chromium, Page) {
    let mut chrome = Chromium::launch().await;
    let page = chrome.open(&format!("http://{addr}/api/fast")).await;
    eventually("a document of the lab's origin", LIMIT, async || {
        chrome
            .eval_across_loads(
                &page,
                "document.readyState === 'complete' && location.pathname",
            )
            .await
            .filter(|v| v == "/api/fast")
    })
    .await;
    let loaded = chrome
        .eval(
            &page,
            &format!(
                "{}fetch('/').then(r => r.text()).then(t => {{ \
                   const d = new DOMParser().parseFromString(t, 'text/html'); \
                   const s = [...d.scripts].find(s => !s.type); \
                   (0, eval)(s.textContent); \
                   return typeof window.keepaliveLabBurst.issue; }})",
                if worker {
                    ""
                } else {
                    "window.Worker = undefined; "
                }
            ),
        )
        .await;
    assert_eq!(loaded, "function", "the request script loaded");
    // "worker" once the Worker has started and answered.
    let expected = if worker { "worker" } else { "main thread" };
    eventually(
        &format!("requests issued on the {expected}"),
        LIMIT,
        async || {
            let place = chrome
                .eval(&page, "document.documentElement.dataset.requests")
                .await;
            (place == expected).then_some(())
        },
    )
    .await;
    (chrome, page)
}

/// Issues request `index` of run 1 to `url`, as the page does (no-store, so
/// two requests to one URL do not wait for each other in the HTTP cache).
async fn issue(chrome: &mut Chromium, page: &Page, index: u32, url: &str) {
    chrome
        .eval(
            page,
            &format!(
                "(window.keepaliveLabBurst.issue(1, {index}, {url:?}, false, true, 'same-origin', '', -1), true)"
            ),
        )
        .await;
}

/// Takes the steps recorded since the last call (as the page's frame
/// dispatcher does) and appends them to `into`.
async fn take(chrome: &mut Chromium, page: &Page, into: &mut Vec<Step>) {
    let numbers = chrome
        .eval(page, "Array.from(window.keepaliveLabBurst.take())")
        .await;
    let numbers: Vec<f64> = serde_json::from_value(numbers).expect("numbers");
    let mut i = 0;
    while i < numbers.len() {
        let kind = numbers[i] as u8;
        let fixed = 4;
        let extra = match kind {
            0 => 0,
            1 => 4,
            2 => 1 + numbers[i + 4] as usize,
            3 => 2,
            other => panic!("unknown step {other} in {numbers:?}"),
        };
        into.push(Step {
            kind,
            index: numbers[i + 2] as u32,
            at: numbers[i + 3],
            rest: numbers[i + fixed..i + fixed + extra].to_vec(),
        });
        i += fixed + extra;
    }
}

fn step(steps: &[Step], kind: u8, index: u32) -> Option<&Step> {
    steps.iter().find(|s| s.kind == kind && s.index == index)
}

/// The server ids of the hangs it has started, in the order it saw them.
fn hangs_seen(
    events: &mut tokio::sync::broadcast::Receiver<ServerEvent>,
    into: &mut Vec<RequestId>,
) {
    while let Ok(event) = events.try_recv() {
        if let ServerEvent::RequestStarted {
            request, target, ..
        } = event
            && target.starts_with("/api/hang")
        {
            into.push(request);
        }
    }
}

/// Waits until request `index`'s body has been read (its step 2 taken).
async fn body_read(chrome: &mut Chromium, page: &Page, steps: &mut Vec<Step>, index: u32) {
    eventually(
        &format!("request {index}'s body to be read"),
        LIMIT,
        async || {
            take(chrome, page, steps).await;
            step(steps, 2, index).map(|_| ())
        },
    )
    .await;
}

/// Waits until the server has started `n` hangs, their ids in `into`.
async fn held(
    events: &mut tokio::sync::broadcast::Receiver<ServerEvent>,
    into: &mut Vec<RequestId>,
    n: usize,
) {
    eventually(
        &format!("the server to hold {n} requests"),
        LIMIT,
        async || {
            hangs_seen(events, into);
            (into.len() == n).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_reads_its_own_resource_timing_entry_even_when_a_later_one_with_its_url_ends_first()
 {
    let (addr, lab) = start_page_server().await;
    let (_, mut events) = lab.subscribe(None);
    let (mut chrome, page) = script_page(addr).await;

    // Two requests to one URL, the second issued once the server holds the
    // first: both hang until the test releases them, the second first.
    let url = format!("http://{addr}/api/hang?max_ms=20000");
    let mut hangs = Vec::new();
    let page_now = async |chrome: &mut Chromium| -> f64 {
        let v: Value = chrome.eval(&page, "performance.now()").await;
        v.as_f64().expect("a time")
    };
    let before = page_now(&mut chrome).await;
    issue(&mut chrome, &page, 0, &url).await;
    held(&mut events, &mut hangs, 1).await;
    issue(&mut chrome, &page, 1, &url).await;
    held(&mut events, &mut hangs, 2).await;
    // The server announces a request (`request_started`) before its handler
    // holds it, so a release right after the event can find nothing yet
    // (seen once in CI): released once the hang is there.
    let release = async |request: RequestId| {
        let filter = ReleaseRequest {
            request: Some(request),
            id: None,
        };
        eventually(&format!("{request} released"), LIMIT, async || {
            let released = lab.hangs().release(&filter, &Access::All, None);
            assert!(released <= 1, "released {request} {released} times");
            (released == 1).then_some(())
        })
        .await;
    };
    let mut steps = Vec::new();
    release(hangs[1]).await;
    body_read(&mut chrome, &page, &mut steps, 1).await;
    release(hangs[0]).await;
    body_read(&mut chrome, &page, &mut steps, 0).await;

    let issued = |index| step(&steps, 0, index).expect("issued").at;
    let fetch_start = |index| {
        let body = step(&steps, 2, index).expect("body read");
        assert_eq!(
            body.rest[0], 7.0,
            "request {index} has its 7 Resource Timing figures: {body:?}"
        );
        body.rest[1]
    };
    let (first, second) = (issued(0), issued(1));
    assert!(first < second, "issued in order: {first} then {second}");
    // The Worker's times are on the page's clock (its own starts later).
    let after = page_now(&mut chrome).await;
    assert!(
        before <= first && second <= after,
        "issued at {first} and {second}, on the page's clock between {before} and {after}"
    );
    // Each entry's fetchStart lies between its own fetch() and the next one's.
    assert!(
        (first..second).contains(&fetch_start(0)),
        "the first request ({first}..{second}) got the entry starting at {}, not the second's",
        fetch_start(0)
    );
    assert!(
        fetch_start(1) >= second,
        "the second request (from {second}) got its own entry, starting at {}",
        fetch_start(1)
    );
    // The server's record: each was answered, on a connection of its own.
    let head = |index| step(&steps, 1, index).expect("head").rest.clone();
    assert_eq!(
        (head(0)[0], head(1)[0]),
        (200.0, 200.0),
        "both answered 200"
    );
    assert_eq!(
        (head(0)[2], head(1)[2]),
        (hangs[0].0 as f64, hangs[1].0 as f64),
        "each head carries the server's id for that request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resource_timing_buffer_is_emptied_only_when_nothing_is_in_flight() {
    let (addr, lab) = start_page_server().await;
    let (_, mut events) = lab.subscribe(None);
    let (mut chrome, page) = script_page(addr).await;
    let entries = async |chrome: &mut Chromium, url: &str| -> u64 {
        let v: Value = chrome
            .eval(&page, &format!("window.keepaliveLabBurst.entries({url:?})"))
            .await;
        v.as_u64().expect("a count")
    };

    // A request held by the server, then a quick one beside it.
    let hang_url = format!("http://{addr}/api/hang?max_ms=20000&id=held");
    let quick = |n: u32| format!("http://{addr}/api/fast?id=quick-{n}");
    let mut hangs = Vec::new();
    let mut steps = Vec::new();
    issue(&mut chrome, &page, 0, &hang_url).await;
    held(&mut events, &mut hangs, 1).await;
    issue(&mut chrome, &page, 1, &quick(1)).await;
    body_read(&mut chrome, &page, &mut steps, 1).await;
    assert_eq!(
        entries(&mut chrome, &quick(1)).await,
        1,
        "its entry is in the buffer"
    );

    // A new request while the held one is in flight keeps the buffer.
    issue(&mut chrome, &page, 2, &quick(2)).await;
    body_read(&mut chrome, &page, &mut steps, 2).await;
    assert_eq!(
        entries(&mut chrome, &quick(1)).await,
        1,
        "a request issued while another is in flight clears nothing"
    );

    // Once nothing is in flight, the next request empties the buffer.
    let released = lab
        .hangs()
        .release(&ReleaseRequest::default(), &Access::All, None);
    assert_eq!(released, 1);
    body_read(&mut chrome, &page, &mut steps, 0).await;
    issue(&mut chrome, &page, 3, &quick(3)).await;
    body_read(&mut chrome, &page, &mut steps, 3).await;
    assert_eq!(
        (
            entries(&mut chrome, &quick(1)).await,
            entries(&mut chrome, &quick(3)).await
        ),
        (0, 1),
        "issued with nothing in flight, the third emptied the buffer first"
    );
    // Every request read its own entry.
    for index in 0..4 {
        let body = step(&steps, 2, index).expect("body read");
        assert_eq!(
            body.rest[0], 7.0,
            "request {index} has its timing: {body:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_requests_and_the_pages_own_share_one_pool_of_six() {
    let (addr, lab) = start_page_server().await;
    let (_, mut events) = lab.subscribe(None);
    let (mut chrome, page) = script_page(addr).await;

    // Six requests from the Worker, held by the server: the pool's six.
    let mut hangs = Vec::new();
    for index in 0..6 {
        let url = format!("http://{addr}/api/hang?max_ms=20000&id=worker-{index}");
        issue(&mut chrome, &page, index, &url).await;
    }
    held(&mut events, &mut hangs, 6).await;

    // The page's own fetch, on its main thread, to the same pool: it waits.
    chrome
        .eval(
            &page,
            &format!(
                "(window.mainDone = null, fetch('http://{addr}/api/fast?id=main', {{cache: 'no-store'}}) \
                   .then(r => r.text()).then(() => {{ window.mainDone = performance.now(); }}), true)"
            ),
        )
        .await;
    let reached = |events: &mut tokio::sync::broadcast::Receiver<ServerEvent>| {
        let mut seen = false;
        while let Ok(event) = events.try_recv() {
            if let ServerEvent::RequestStarted { target, .. } = event
                && target.contains("id=main")
            {
                seen = true;
            }
        }
        seen
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !reached(&mut events),
        "the page's own request reached the server while the Worker's six held the pool"
    );
    let done = chrome.eval(&page, "window.mainDone").await;
    assert!(done.is_null(), "the page's fetch ended early: {done}");

    // Released, the six free the pool and the page's request goes out.
    let released = lab
        .hangs()
        .release(&ReleaseRequest::default(), &Access::All, None);
    assert_eq!(released, 6);
    eventually("the page's own request at the server", LIMIT, async || {
        reached(&mut events).then_some(())
    })
    .await;
    eventually("the page's own request answered", LIMIT, async || {
        let done = chrome.eval(&page, "window.mainDone").await;
        (!done.is_null()).then_some(())
    })
    .await;
    // The six were answered, each step reported to the page.
    let mut steps = Vec::new();
    for index in 0..6 {
        body_read(&mut chrome, &page, &mut steps, index).await;
    }
    // They went out from the Worker: their Resource Timing entries are in
    // its timeline, none in the page's.
    let url = format!("http://{addr}/api/hang?max_ms=20000&id=worker-0");
    let count = |v: Value| v.as_u64().expect("a count");
    let in_page = chrome
        .eval(
            &page,
            &format!("performance.getEntriesByName({url:?}).length"),
        )
        .await;
    let in_worker = chrome
        .eval(&page, &format!("window.keepaliveLabBurst.entries({url:?})"))
        .await;
    assert_eq!(
        (count(in_page), count(in_worker)),
        (0, 1),
        "the entry is the Worker's, not the page's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_worker_the_main_thread_issues_and_records_the_same_steps() {
    let (addr, lab) = start_page_server().await;
    let (_, mut events) = lab.subscribe(None);
    let (mut chrome, page) = script_page_where(addr, false).await;

    // One request held, one answered at once beside it.
    let mut hangs = Vec::new();
    let mut steps = Vec::new();
    issue(
        &mut chrome,
        &page,
        0,
        &format!("http://{addr}/api/hang?max_ms=20000&id=held"),
    )
    .await;
    held(&mut events, &mut hangs, 1).await;
    issue(
        &mut chrome,
        &page,
        1,
        &format!("http://{addr}/api/fast?id=quick"),
    )
    .await;
    body_read(&mut chrome, &page, &mut steps, 1).await;
    let released = lab
        .hangs()
        .release(&ReleaseRequest::default(), &Access::All, None);
    assert_eq!(released, 1);
    body_read(&mut chrome, &page, &mut steps, 0).await;

    for index in 0..2 {
        let issued = step(&steps, 0, index).expect("issued").at;
        let head = step(&steps, 1, index).expect("head");
        let body = step(&steps, 2, index).expect("body read");
        assert_eq!(head.rest[0], 200.0, "request {index} answered: {head:?}");
        assert_eq!(body.rest[0], 7.0, "request {index}'s timing: {body:?}");
        assert!(
            issued <= body.rest[1] && head.at <= body.at,
            "request {index}'s steps in order on the page's clock: {steps:?}"
        );
    }
    // The held one carries the server's id for it.
    assert_eq!(step(&steps, 1, 0).expect("head").rest[2], hangs[0].0 as f64);
}
