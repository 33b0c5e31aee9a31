//! The Node-style agent from the page, in real headless Chromium: the
//! workbench's agent composer (options by Node's names, Start over the
//! WebSocket), the agent's requests and sockets drawn on the timeline beside
//! the server's lanes of the same connections, and the agent lessons, each
//! checked against the server's (and the middlebox's) record.
//!
//! One at a time: the lessons measure timing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use keepalive_lab_server::Config;
use keepalive_lab_tests::chromium::{Chromium, Page};
use keepalive_lab_tests::{dist_dir, eventually, start_lab_with_middlebox};
use protocol::{AgentEvent, ConnId, Micros, RequestId, ServerEvent};
use tokio::sync::broadcast::Receiver;

const LIMIT: Duration = Duration::from_secs(60);

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// Every event recorded so far.
fn drain(events: &mut Receiver<ServerEvent>, into: &mut Vec<ServerEvent>) {
    while let Ok(event) = events.try_recv() {
        into.push(event);
    }
}

/// One agent request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    conn: ConnId,
    target: String,
    started: Micros,
    finished: Option<Micros>,
}

/// The agent's requests (tag `a…`) the server saw, by request id order.
fn agent_requests(events: &[ServerEvent]) -> Vec<Seen> {
    let mut seen: BTreeMap<RequestId, Seen> = BTreeMap::new();
    for event in events {
        match event {
            ServerEvent::RequestStarted {
                conn,
                request,
                target,
                at_us,
                ..
            } if target.contains("&id=a") || target.contains("?id=a") => {
                seen.insert(
                    *request,
                    Seen {
                        conn: *conn,
                        target: target.clone(),
                        started: *at_us,
                        finished: None,
                    },
                );
            }
            ServerEvent::RequestFinished { request, at_us, .. } => {
                if let Some(s) = seen.get_mut(request) {
                    s.finished = Some(*at_us);
                }
            }
            _ => {}
        }
    }
    seen.into_values().collect()
}

/// Sets a composer field (`change` event, as a person would).
async fn set(chrome: &mut Chromium, page: &Page, id: &str, value: &str) {
    let js = format!(
        "(() => {{ const e = document.getElementById('{id}'); \
           const proto = e instanceof HTMLSelectElement ? HTMLSelectElement.prototype : HTMLInputElement.prototype; \
           Object.getOwnPropertyDescriptor(proto, 'value').set.call(e, '{value}'); \
           e.dispatchEvent(new Event('change', {{ bubbles: true }})); return e.value; }})()"
    );
    assert_eq!(chrome.eval(page, &js).await, value, "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_composer_runs_max_sockets_2_and_the_timeline_joins_its_sockets_to_the_lanes() {
    let _one = serial().await;
    let (addr, _second, lab) = start_lab_with_middlebox(Config {
        dist_dir: dist_dir(),
        ..Config::default()
    })
    .await;
    let (_, mut events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    let page = chrome.open_live(&format!("http://{addr}/")).await;
    chrome
        .eval(&page, "document.getElementById('a-keep-alive').click()")
        .await;
    set(&mut chrome, &page, "a-max-sockets", "2").await;
    set(&mut chrome, &page, "a-path", "/api/slow?ms=400").await;
    set(&mut chrome, &page, "a-every", "0").await;
    set(&mut chrome, &page, "a-count", "4").await;
    chrome
        .eval(&page, "document.getElementById('agent-start').click()")
        .await;
    // The page draws four agent requests done and two sockets.
    eventually("four agent requests drawn as done", LIMIT, async || {
        let done = chrome
            .eval(
                &page,
                "document.querySelectorAll('g.agent-req[data-state=\"✓ done\"]').length",
            )
            .await;
        (done == 4).then_some(())
    })
    .await;
    let mut record = Vec::new();
    eventually("the agent run to finish", LIMIT, async || {
        drain(&mut events, &mut record);
        record
            .iter()
            .any(|e| {
                matches!(
                    e,
                    ServerEvent::Agent {
                        event: AgentEvent::Finished { .. },
                        ..
                    }
                )
            })
            .then_some(())
    })
    .await;
    // The server's record: 4 requests on 2 connections, never more than 2
    // at once (the other two waited in the agent's queue).
    let seen = agent_requests(&record);
    assert_eq!(seen.len(), 4, "{seen:?}");
    let conns: BTreeSet<ConnId> = seen.iter().map(|s| s.conn).collect();
    assert_eq!(conns.len(), 2, "maxSockets 2: two connections, {seen:?}");
    let first_done = seen
        .iter()
        .filter_map(|s| s.finished)
        .min()
        .expect("answered");
    let early = seen.iter().filter(|s| s.started < first_done).count();
    assert_eq!(early, 2, "two at the server before any answer: {seen:?}");
    assert!(seen.iter().all(|s| s.target.contains("session=")));

    // The page: two requests waited in the agent, two sockets, each drawn
    // right above the server's lane of its connection.
    let waited = chrome
        .eval(
            &page,
            "document.querySelectorAll('g.agent-req[data-waited=true]').length",
        )
        .await;
    assert_eq!(waited, 2);
    let drawn = chrome
        .eval(
            &page,
            "Array.from(document.querySelectorAll('g.agent-socket')).map(s => { \
               const lane = s.nextElementSibling; \
               return [s.dataset.events, lane && lane.classList.contains('lane') ? Number(lane.dataset.conn) : null]; })",
        )
        .await;
    let drawn = drawn.as_array().expect("an array").clone();
    assert_eq!(drawn.len(), 2, "{drawn:?}");
    let lanes: BTreeSet<u64> = drawn.iter().filter_map(|d| d[1].as_u64()).collect();
    assert_eq!(
        lanes,
        conns.iter().map(|c| c.0).collect::<BTreeSet<_>>(),
        "each socket above its own lane: {drawn:?}"
    );
    for d in &drawn {
        let words = d[0].as_str().unwrap_or_default();
        assert!(
            words.starts_with("socket → connect"),
            "Node's names: {words}"
        );
        assert!(words.contains("free"), "{words}");
    }
    // The agent's lanes are not counted among the browser's.
    let status = chrome
        .eval(&page, "document.getElementById('agent-status').textContent")
        .await;
    assert!(
        status
            .as_str()
            .unwrap_or_default()
            .contains("4 requests, 4 done"),
        "{status}"
    );
    chrome.screenshot_if_asked(&page, "agent-composer").await;
}
