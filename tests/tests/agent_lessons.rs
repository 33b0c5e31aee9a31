//! The Node-style agent from the page, in real headless Chromium: the
//! workbench's agent composer (options by Node's names, Start over the
//! WebSocket), the agent's requests and sockets drawn on the timeline beside
//! the server's lanes of the same connections, and the agent lessons, each
//! checked against the server's (and the middlebox's) record.
//!
//! One at a time: the lessons measure timing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use keepalive_lab_tests::chromium::{Chromium, Page};
use keepalive_lab_tests::{eventually, page_config, start_lab_with_middlebox};
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

/// A lab with its middlebox (kept alive by the returned handle), and its
/// event stream.
async fn start() -> (
    std::net::SocketAddr,
    keepalive_lab_server::Lab,
    Receiver<ServerEvent>,
) {
    let (addr, _second, lab) = start_lab_with_middlebox(page_config()).await;
    let (_, events) = lab.subscribe(None);
    (addr, lab, events)
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
    let (addr, _lab, mut events) = start().await;
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
    chrome
        .eval_until(
            &page,
            "four agent requests drawn as done",
            LIMIT,
            "document.querySelectorAll('g.agent-req[data-state=\"✓ done\"]').length",
            |done| (done == 4).then_some(()),
        )
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

/// A lab with its middlebox, Chromium, and lesson `id` taken with
/// `prediction`: the measured answer, the figures, and the server's record.
/// A lesson taken: its answer, its figures, the server's record and the
/// lesson's words on the page (its notes among them).
struct Taken {
    answer: String,
    figures: BTreeMap<String, String>,
    record: Vec<ServerEvent>,
    text: String,
}

async fn take(id: &str, prediction: u32) -> Taken {
    let (addr, _lab, mut events) = start().await;
    let mut chrome = Chromium::launch().await;
    let page = chrome.open_lesson(&format!("http://{addr}/"), id).await;
    let (answer, figures) = chrome.take_lesson(&page, prediction, LIMIT).await;
    chrome.screenshot_if_asked(&page, id).await;
    let text = chrome
        .eval(
            &page,
            "document.querySelector('section.lesson').textContent",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut record = Vec::new();
    drain(&mut events, &mut record);
    Taken {
        answer,
        figures,
        record,
        text,
    }
}

/// The agent's own events in the record, by run.
fn agent_events(record: &[ServerEvent]) -> BTreeMap<u64, Vec<AgentEvent>> {
    let mut runs: BTreeMap<u64, Vec<AgentEvent>> = BTreeMap::new();
    for e in record {
        if let ServerEvent::Agent { run, event, .. } = e {
            runs.entry(*run).or_default().push(event.clone());
        }
    }
    runs
}

fn close_of(record: &[ServerEvent], conn: ConnId) -> Option<&protocol::CloseReason> {
    record.iter().find_map(|e| match e {
        ServerEvent::ConnectionClosed {
            conn: c, reason, ..
        } if *c == conn => Some(reason),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_sockets_2_holds_two_in_the_agent_until_the_servers_timeout_frees_the_sockets() {
    let _one = serial().await;
    let Taken {
        answer,
        figures,
        record,
        text,
    } = take("agent-max-sockets", 1).await;
    let seen = agent_requests(&record);
    assert_eq!(seen.len(), 4, "{seen:?}");
    let mut starts: Vec<Micros> = seen.iter().map(|s| s.started).collect();
    starts.sort_unstable();
    // Two at once, the next two only after the server's 1.2 s timeout.
    let gap_ms = (starts[2] - starts[0]) / 1000;
    assert!(
        starts[1] - starts[0] < 500_000,
        "the first two together: {starts:?}"
    );
    assert!(
        gap_ms >= 1000,
        "the third waited for the timeout: {gap_ms} ms"
    );
    let first_wave: BTreeSet<ConnId> = seen
        .iter()
        .filter(|s| s.started < starts[2])
        .map(|s| s.conn)
        .collect();
    assert_eq!(first_wave.len(), 2);
    for conn in &first_wave {
        assert_eq!(
            close_of(&record, *conn),
            Some(&protocol::CloseReason::HangTimeout),
            "the server's timeout closed {conn}"
        );
    }
    // The agent's view: two waited in its queue.
    let waited = agent_events(&record)
        .values()
        .flatten()
        .filter(|e| {
            matches!(
                e,
                AgentEvent::Request {
                    event: protocol::RequestEvent::Queued { waiting: true, .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(waited, 2);
    assert_eq!(answer, "choice-1", "{figures:?}");
    assert_eq!(figures["at-once"], "2");
    assert_eq!(figures["waited"], "2");
    // Every hung request's connection, the second wave's too.
    assert_eq!(figures["hang-timeouts"], "4", "{figures:?}");
    // The page says its time is scaled.
    assert!(
        text.contains("Time is scaled: Node's old 2-minute server.timeout is 1200 ms here"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_timeout_reports_axios_timeout_aborts_keep_alive_msecs_sets_probes() {
    let _one = serial().await;
    let Taken {
        answer,
        figures,
        record,
        ..
    } = take("agent-timeouts", 0).await;
    let runs: Vec<Vec<AgentEvent>> = agent_events(&record).into_values().collect();
    assert_eq!(runs.len(), 3, "three agent runs");
    let has = |run: &[AgentEvent], f: &dyn Fn(&AgentEvent) -> bool| run.iter().any(f);
    // timeout: 500: the socket emitted 'timeout', the request was answered.
    assert!(has(&runs[0], &|e| matches!(
        e,
        AgentEvent::Socket {
            event: protocol::SocketEvent::Timeout { after_ms: 500, .. },
            ..
        }
    )));
    assert!(has(&runs[0], &|e| matches!(
        e,
        AgentEvent::Request {
            event: protocol::RequestEvent::Done { status: 200, .. },
            ..
        }
    )));
    // axios timeout: 500: aborted, and the server saw its request aborted.
    assert!(has(&runs[1], &|e| matches!(
        e,
        AgentEvent::Request {
            event: protocol::RequestEvent::Aborted {
                reason: protocol::AbortReason::RequestTimeout
            },
            ..
        }
    )));
    let aborted_at_server = record.iter().any(|e| {
        matches!(
            e,
            ServerEvent::RequestFinished {
                outcome: protocol::RequestOutcome::Aborted,
                ..
            }
        )
    });
    assert!(aborted_at_server, "the server saw the abort");
    // keepAliveMsecs: 1000: TCP_KEEPIDLE 1 s on the socket (as the
    // kernel reported it back), answered.
    assert!(
        has(&runs[2], &|e| matches!(
            e,
            AgentEvent::Socket {
                event: protocol::SocketEvent::Keepalive {
                    so_keepalive: true,
                    kernel_idle_s: Some(1),
                    ..
                },
                ..
            }
        )),
        "{:?}",
        runs[2]
    );
    assert_eq!(figures["keepalive-idle"], "1 s", "{figures:?}");
    assert_eq!(answer, "choice-0", "{figures:?}");
    assert!(
        figures["agent-timeout"].starts_with("answered"),
        "{figures:?}"
    );
    assert_eq!(figures["request-timeout"], "aborted");
    assert!(figures["keepalive"].starts_with("answered"), "{figures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_msecs_under_the_nats_timeout_keeps_a_long_request_alive() {
    let _one = serial().await;
    let Taken {
        answer,
        figures,
        record,
        text,
    } = take("agent-nat-keepalive", 2).await;
    // The middlebox's record, mapping by mapping, in the order opened.
    let mut mappings: BTreeMap<protocol::MappingId, Vec<protocol::MiddleboxEvent>> =
        BTreeMap::new();
    for e in &record {
        if let ServerEvent::Middlebox { mapping, event, .. } = e {
            mappings.entry(*mapping).or_default().push(event.clone());
        }
    }
    let mappings: Vec<Vec<protocol::MiddleboxEvent>> = mappings.into_values().collect();
    assert_eq!(mappings.len(), 2, "one mapping per agent run: {mappings:?}");
    let probes = |m: &[protocol::MiddleboxEvent]| -> u32 {
        m.iter()
            .filter_map(|e| match e {
                protocol::MiddleboxEvent::Refreshed {
                    side: protocol::Side::Client,
                    by: protocol::RefreshCause::Probe,
                    count,
                    ..
                } => Some(*count),
                _ => None,
            })
            .sum()
    };
    let expired = |m: &[protocol::MiddleboxEvent]| {
        m.iter()
            .any(|e| matches!(e, protocol::MiddleboxEvent::Expired { .. }))
    };
    assert!(
        probes(&mappings[0]) >= 2,
        "probes kept it: {:?}",
        mappings[0]
    );
    assert!(!expired(&mappings[0]), "{:?}", mappings[0]);
    assert_eq!(probes(&mappings[1]), 0, "{:?}", mappings[1]);
    assert!(expired(&mappings[1]), "{:?}", mappings[1]);
    // The server answered both; the agent got only the first.
    let runs: Vec<Vec<AgentEvent>> = agent_events(&record).into_values().collect();
    let done = |run: &[AgentEvent]| {
        run.iter().any(|e| {
            matches!(
                e,
                AgentEvent::Request {
                    event: protocol::RequestEvent::Done { .. },
                    ..
                }
            )
        })
    };
    assert!(done(&runs[0]) && !done(&runs[1]), "{runs:?}");
    assert_eq!(answer, "choice-2", "{figures:?}");
    assert_eq!(figures["expired-with"], "no");
    assert_eq!(figures["expired-without"], "yes");
    // Scaled, and the page says which clocks were.
    assert!(figures["timeout"].starts_with("3500 ms"), "{figures:?}");
    assert!(
        text.contains("Only the NAT's clock ran ×100 faster"),
        "{text}"
    );
}
