//! Every lesson, taken in real headless Chromium through its own controls
//! (predict, run, read the measured answer), and checked against the
//! server's own record: the phenomenon each lesson teaches really happened
//! on the wire, and the page's measured answer agrees with it.
//!
//! The tests run one at a time (a lesson measures timing: thirteen browsers
//! at once on two cores would measure the machine, not the browser).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use keepalive_lab_tests::chromium::{Chromium, Page};
use keepalive_lab_tests::{page_config, start_lab_with_middlebox};
use protocol::{CloseReason, ConnId, Micros, RequestId, ServerEvent};
use tokio::sync::broadcast::Receiver;

const LIMIT: Duration = Duration::from_secs(60);

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A lab on two origins, Chromium, and lesson `id` open in a tab.
struct Setup {
    events: Receiver<ServerEvent>,
    chrome: Chromium,
    page: Page,
}

async fn open(id: &str) -> Setup {
    let (addr, _second, lab) = start_lab_with_middlebox(page_config()).await;
    let (_, events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    let page = chrome.open_lesson(&format!("http://{addr}/"), id).await;
    Setup {
        events,
        chrome,
        page,
    }
}

impl Setup {
    async fn take(&mut self, prediction: u32) -> (String, BTreeMap<String, String>) {
        self.chrome.take_lesson(&self.page, prediction, LIMIT).await
    }

    /// Every event the server recorded so far.
    fn record(&mut self) -> Record {
        let mut record = Record { events: Vec::new() };
        record.take(&mut self.events);
        record
    }
}

/// The server's record of one lesson.
struct Record {
    events: Vec<ServerEvent>,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    conn: ConnId,
    seq: u32,
    target: String,
    /// Its `Connection` header, as the server received it.
    connection: Option<String>,
    started: Micros,
    finished: Option<Micros>,
}

impl Record {
    /// Adds every event `events` holds now.
    fn take(&mut self, events: &mut Receiver<ServerEvent>) {
        while let Ok(event) = events.try_recv() {
            self.events.push(event);
        }
    }

    /// The connections of the events `pick` names, in the record's order.
    fn conns(&self, pick: impl Fn(&ServerEvent) -> Option<ConnId>) -> Vec<ConnId> {
        self.events.iter().filter_map(pick).collect()
    }

    fn requests(&self, prefix: &str) -> Vec<Seen> {
        let mut seen: BTreeMap<RequestId, Seen> = BTreeMap::new();
        for event in &self.events {
            match event {
                ServerEvent::RequestStarted {
                    conn,
                    request,
                    seq,
                    target,
                    connection,
                    at_us,
                    ..
                } if target.starts_with(prefix) => {
                    seen.insert(
                        *request,
                        Seen {
                            conn: *conn,
                            seq: *seq,
                            target: target.clone(),
                            connection: connection.clone(),
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

    /// Most requests of `prefix` at the server at the same moment.
    fn peak(&self, prefix: &str) -> usize {
        let mut edges: Vec<(Micros, i32)> = Vec::new();
        for r in self.requests(prefix) {
            edges.push((r.started, 1));
            if let Some(f) = r.finished {
                edges.push((f, -1));
            }
        }
        edges.sort();
        let (mut now, mut peak) = (0, 0);
        for (_, d) in edges {
            now += d;
            peak = peak.max(now);
        }
        usize::try_from(peak).unwrap_or(0)
    }

    fn close_of(&self, conn: ConnId) -> Option<&CloseReason> {
        self.events.iter().find_map(|e| match e {
            ServerEvent::ConnectionClosed {
                conn: c, reason, ..
            } if *c == conn => Some(reason),
            _ => None,
        })
    }

    fn closed_at(&self, conn: ConnId) -> Option<Micros> {
        self.events.iter().find_map(|e| match e {
            ServerEvent::ConnectionClosed { conn: c, at_us, .. } if *c == conn => Some(*at_us),
            _ => None,
        })
    }
}

/// The tag (`id=`) of a target.
fn tag(target: &str) -> &str {
    target
        .split("id=")
        .nth(1)
        .and_then(|t| t.split('&').next())
        .unwrap_or_default()
}

/// The run number in a tag `b<run>-<n>`.
fn run_of(target: &str) -> u32 {
    tag(target)
        .strip_prefix('b')
        .and_then(|t| t.split('-').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// What the page's timeline draws once the lesson has settled: its
/// heading, each request row's tag, and each connection lane's
/// (conn, close reason or "open").
struct Drawn {
    heading: String,
    tags: Vec<String>,
    lanes: BTreeMap<ConnId, String>,
}

impl Setup {
    /// The timeline as drawn, once its rows are the `rows` expected (the
    /// drawing follows the events at the page's next flush).
    async fn drawn(&mut self, rows: usize) -> Drawn {
        let js = "JSON.stringify({ \
            heading: document.querySelector('.timeline .zoom h2')?.textContent ?? '', \
            tags: [...document.querySelectorAll('svg#timeline g.req')].map(g => g.dataset.tag), \
            lanes: [...document.querySelectorAll('svg#timeline g.lane')] \
              .map(g => [g.dataset.conn, g.dataset.reason ?? 'open']) })";
        let v: serde_json::Value = self
            .chrome
            .eval_until(&self.page, "the timeline drawn", LIMIT, js, |v| {
                let v: serde_json::Value = serde_json::from_str(v.as_str()?).ok()?;
                (v["tags"].as_array()?.len() == rows).then_some(v)
            })
            .await;
        Drawn {
            heading: v["heading"].as_str().unwrap_or_default().to_owned(),
            tags: v["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            lanes: v["lanes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| {
                    let conn = ConnId(l[0].as_str()?.parse().ok()?);
                    Some((conn, l[1].as_str()?.to_owned()))
                })
                .collect(),
        }
    }
}

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_lanes_measures_six_at_the_server_and_the_rest_queued_in_the_browser() {
    let _one = serial().await;
    let mut s = open("six-lanes").await;
    let (answer, figures) = s.take(6).await;
    let record = s.record();
    assert_eq!(record.requests("/api/hang").len(), 12);
    assert_eq!(record.peak("/api/hang"), 6, "the server held 6 at once");
    assert_eq!(answer, "6", "the page measured what the server saw");
    assert_eq!(figures["queued"], "6");
    // The queued six went out on connections that had already carried one.
    let mut hangs = record.requests("/api/hang");
    hangs.sort_by_key(|r| r.started);
    let reused = hangs.iter().skip(6).filter(|r| r.seq > 1).count();
    assert_eq!(reused, 6, "{hangs:?}");
    assert_eq!(figures["reused"], "6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_are_per_origin_port_host_name_and_credentials_mode() {
    let _one = serial().await;
    let mut s = open("pools").await;
    let (answer, figures) = s.take(24).await;
    let record = s.record();
    assert_eq!(record.requests("/api/hang").len(), 32);
    assert_eq!(record.peak("/api/hang"), 24, "four pools of six");
    assert_eq!(answer, "24");
    for pool in [
        "pool-same",
        "pool-second-port",
        "pool-other-host",
        "pool-omit",
    ] {
        assert_eq!(figures[pool], "6", "{pool}: {figures:?}");
    }
    // All four bursts drawn, not only the last one's eight.
    let drawn = s.drawn(32).await;
    s.chrome.screenshot_if_asked(&s.page, "pools").await;
    let runs: BTreeSet<u32> = drawn
        .tags
        .iter()
        .map(|t| run_of(&format!("id={t}")))
        .collect();
    assert_eq!(runs.len(), 4, "{:?}", drawn.tags);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_off_needs_a_connection_per_request() {
    let _one = serial().await;
    let mut s = open("keep-alive-off").await;
    let (answer, figures) = s.take(6).await;
    let record = s.record();
    let fast = record.requests("/api/fast");
    let first_run = fast.iter().map(|r| run_of(&r.target)).min().unwrap_or(0);
    let conns = |run: u32| -> BTreeSet<ConnId> {
        fast.iter()
            .filter(|r| run_of(&r.target) == run)
            .map(|r| r.conn)
            .collect()
    };
    assert_eq!(conns(first_run).len(), 1, "keep-alive on: one connection");
    let off = conns(first_run + 1);
    assert_eq!(off.len(), 6, "keep-alive off: one per request");
    for conn in &off {
        assert_eq!(record.close_of(*conn), Some(&CloseReason::KeepAliveOff));
    }
    assert_eq!(answer, "6");
    assert_eq!(figures["connections-on"], "1");
    // The timeline draws both runs, not only the last: the twelve requests
    // by their tags, and every connection either run used, each with the
    // close the server recorded.
    let drawn = s.drawn(12).await;
    s.chrome
        .screenshot_if_asked(&s.page, "keep-alive-off")
        .await;
    let mut tags: Vec<String> = fast.iter().map(|r| tag(&r.target).to_owned()).collect();
    tags.sort();
    let mut drawn_tags = drawn.tags.clone();
    drawn_tags.sort();
    assert_eq!(drawn_tags, tags, "{:?}", drawn.tags);
    assert!(
        drawn
            .heading
            .contains(&format!("runs b{first_run} and b{}", first_run + 1)),
        "{}",
        drawn.heading
    );
    for conn in conns(first_run).iter().chain(&off) {
        let shown = drawn.lanes.get(conn).map(String::as_str);
        let recorded = record.close_of(*conn).map_or("open", |r| r.kind());
        assert_eq!(shown, Some(recorded), "{conn}: {:?}", drawn.lanes);
    }
}

/// The workbench left keep-alive off for the learner's session: the lesson
/// still runs over the lab's defaults (its "keep-alive on" run keeps one
/// connection, on the wire), and the learner's own setting is put back
/// afterwards (found in review: a lesson without a policy step of its own
/// ran under whatever the workbench left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lesson_runs_over_the_labs_defaults_whatever_the_workbench_left() {
    let _one = serial().await;
    let (addr, _second, lab) = start_lab_with_middlebox(page_config()).await;
    let session = lab
        .sessions()
        .issue(Some(std::net::Ipv4Addr::LOCALHOST.into()))
        .expect("a session");
    let owner = keepalive_lab_server::sessions::Owner::Session(session.clone());
    // Keep-alive off, and a setting the lesson itself never touches.
    let left = protocol::PolicyPatch {
        keep_alive: Some(false),
        idle_timeout_ms: Some(7_000),
        ..protocol::PolicyPatch::default()
    };
    lab.set_policy(&owner, &left)
        .expect("the workbench's settings");
    let learners = lab.policy(&owner);
    let (_, events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    // The page takes the session over, as the workbench hands it to the
    // lesson track.
    let page = chrome.open(&format!("http://{addr}/")).await;
    keepalive_lab_tests::eventually("the lesson track, live", LIMIT, async || {
        chrome
            .eval_across_loads(
                &page,
                "document.querySelector('main')?.dataset.socket === 'open'",
            )
            .await
            .and_then(|v| v.as_bool())
            .filter(|b| *b)
    })
    .await;
    chrome
        .eval(
            &page,
            &format!(
                "sessionStorage.setItem('keepalive-lab.session', '{session}'); \
                 location.hash = '#lesson=keep-alive-off'; location.reload()"
            ),
        )
        .await;
    let ready = format!(
        "document.querySelector('main')?.dataset.session === '{session}' \
         && document.querySelector('main')?.dataset.socket === 'open' \
         && document.querySelector('section.lesson')?.dataset.lesson === 'keep-alive-off'"
    );
    keepalive_lab_tests::eventually("the lesson, live, on the session", LIMIT, async || {
        chrome
            .eval_across_loads(&page, &ready)
            .await
            .and_then(|v| v.as_bool())
            .filter(|b| *b)
    })
    .await;
    let mut s = Setup {
        events,
        chrome,
        page,
    };
    let (answer, figures) = s.take(6).await;
    let record = s.record();
    let fast = record.requests("/api/fast");
    let first_run = fast.iter().map(|r| run_of(&r.target)).min().unwrap_or(0);
    let on: BTreeSet<ConnId> = fast
        .iter()
        .filter(|r| run_of(&r.target) == first_run)
        .map(|r| r.conn)
        .collect();
    assert_eq!(on.len(), 1, "the defaults' keep-alive: one connection");
    assert_eq!(figures["connections-on"], "1");
    assert_eq!(answer, "6");
    // The learner's own settings, put back.
    keepalive_lab_tests::eventually("the learner's policy put back", LIMIT, async || {
        (lab.policy(&owner) == learners).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_closed_by_the_server_is_replaced_silently() {
    let _one = serial().await;
    let mut s = open("idle-timeout").await;
    let (answer, _) = s.take(1).await;
    let record = s.record();
    let fast = record.requests("/api/fast");
    assert_eq!(fast.len(), 2, "{fast:?}");
    let (first, second) = (&fast[0], &fast[1]);
    assert_ne!(first.conn, second.conn);
    assert_eq!(record.close_of(first.conn), Some(&CloseReason::IdleTimeout));
    assert!(
        record.closed_at(first.conn).unwrap() < second.started,
        "closed before the second request started"
    );
    assert_eq!(answer, "choice-1");
    // Both requests drawn, and the first connection with its idle-timeout
    // close beside the second (they were folded into "earlier connections"
    // when only the last run was drawn).
    let drawn = s.drawn(2).await;
    s.chrome.screenshot_if_asked(&s.page, "idle-timeout").await;
    assert_eq!(
        drawn.tags,
        [tag(&first.target), tag(&second.target)],
        "{:?}",
        drawn.tags
    );
    assert_eq!(
        drawn.lanes.get(&first.conn).map(String::as_str),
        Some("idle_timeout"),
        "{:?}",
        drawn.lanes
    );
    assert!(drawn.lanes.contains_key(&second.conn), "{:?}", drawn.lanes);
}

/// "Again" right after an answer: the second run must save the learner's
/// policy, not the one the first run set, so the session ends where it
/// started (the page holds "Again" until the policy put back is in force).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_a_lesson_again_at_once_still_puts_the_policy_back() {
    let _one = serial().await;
    let mut s = open("idle-timeout").await;
    for round in 0..2 {
        let (answer, _) = s.take(1).await;
        assert_eq!(answer, "choice-1", "round {round}");
        if round == 0 {
            s.chrome
                .eval_until(
                    &s.page,
                    "Again, then a new prediction",
                    LIMIT,
                    "(() => { const b = document.getElementById('again'); \
                       if (b && !b.disabled) { b.click(); } \
                       return document.querySelector('section.lesson')?.dataset.stage ?? ''; })()",
                    |stage| (stage == "predict").then_some(()),
                )
                .await;
        }
    }
    // Two runs, each set the lesson's 1 s idle timeout and put the session's
    // own policy back: the last policy the server announced is the default.
    let mut policies = Vec::new();
    keepalive_lab_tests::eventually("the policy put back", LIMIT, async || {
        policies.extend(s.record().events.into_iter().filter_map(|e| match e {
            ServerEvent::ConfigChanged { config, .. } => Some(config),
            _ => None,
        }));
        (policies.last() == Some(&protocol::ServerPolicy::default())
            && policies
                .iter()
                .filter(|p| p.idle_timeout_ms == 1000)
                .count()
                == 2)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keep_alive_header_counts_max_down_to_connection_close() {
    let _one = serial().await;
    let mut s = open("keep-alive-header").await;
    let (answer, figures) = s.take(2).await;
    let record = s.record();
    let fast = record.requests("/api/fast");
    assert_eq!(fast.len(), 4);
    let seqs: Vec<u32> = fast.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 1], "the 4th on a new connection");
    assert_eq!(
        record.close_of(fast[0].conn),
        Some(&CloseReason::MaxRequests)
    );
    assert_eq!(answer, "choice-2");
    let headers = &figures["headers"];
    for shown in ["max=2", "max=1", "Connection: close"] {
        assert!(headers.contains(shown), "{shown} in {headers}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_timeout_closes_from_the_browser_an_idle_timeout_from_the_server() {
    let _one = serial().await;
    let mut s = open("client-vs-idle-timeout").await;
    let (answer, _) = s.take(2).await;
    let record = s.record();
    let hang = &record.requests("/api/hang")[0];
    let fast = &record.requests("/api/fast")[0];
    assert_ne!(hang.conn, fast.conn);
    assert!(matches!(
        record.close_of(hang.conn),
        Some(CloseReason::PeerClosed | CloseReason::PeerReset)
    ));
    assert_eq!(record.close_of(fast.conn), Some(&CloseReason::IdleTimeout));
    assert_eq!(answer, "choice-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_socket_timeout_frees_the_browsers_queue() {
    let _one = serial().await;
    let mut s = open("hang-timeout").await;
    let (answer, figures) = s.take(1).await;
    let record = s.record();
    let hangs = record.requests("/api/hang");
    let tags: BTreeSet<&str> = hangs.iter().map(|r| tag(&r.target)).collect();
    assert_eq!(tags.len(), 12, "every request reached the server");
    let cut = record
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ServerEvent::ConnectionClosed {
                    reason: CloseReason::HangTimeout,
                    ..
                }
            )
        })
        .count();
    assert!(cut >= 6, "the first six were cut: {cut}");
    assert_eq!(answer, "choice-1");
    let gap: u64 = figures["second-wave-ms"].parse().expect("a gap in ms");
    assert!(gap >= 1500, "the queued six waited for the cut: {gap} ms");
    assert_eq!(
        figures["first-wave"], "6",
        "Chromium's six lanes: {figures:?}"
    );
    // The same from the server's record: each tag's first arrival, in
    // order; six came at once, the seventh only once the hang timeout had
    // cut a connection, and the page's gap is the record's.
    let mut first: BTreeMap<&str, Micros> = BTreeMap::new();
    for r in &hangs {
        let at = first.entry(tag(&r.target)).or_insert(r.started);
        *at = (*at).min(r.started);
    }
    let mut arrivals: Vec<Micros> = first.values().copied().collect();
    arrivals.sort_unstable();
    let first_cut = record
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::ConnectionClosed {
                reason: CloseReason::HangTimeout,
                at_us,
                ..
            } => Some(*at_us),
            _ => None,
        })
        .min()
        .expect("a hang timeout's close");
    assert!(
        arrivals[5] < first_cut && arrivals[6] >= first_cut,
        "six before the first cut, the seventh after it: {arrivals:?}, cut at {first_cut}"
    );
    assert_eq!(
        gap,
        (arrivals[6] - arrivals[0]) / 1000,
        "the page's gap is the record's: {arrivals:?}"
    );
    // Every request is counted once: answered or failed in the page; and
    // the re-sends the page counts are the tags the server saw twice.
    let num = |name: &str| -> usize { figures[name].parse().expect("a count") };
    assert_eq!(num("failed") + num("answered"), 12, "{figures:?}");
    let seen_twice = hangs.len() - tags.len();
    let resent_tags = {
        let mut n: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &hangs {
            *n.entry(tag(&r.target)).or_default() += 1;
        }
        n.values().filter(|&&k| k > 1).count()
    };
    assert_eq!(
        num("resent") + num("resent-failed"),
        resent_tags,
        "re-sent tags ({seen_twice} extra attempts at the server): {figures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_events_are_named_as_node_names_them() {
    let _one = serial().await;
    let mut s = open("node-events").await;
    let (answer, figures) = s.take(0).await;
    let record = s.record();
    let hang = &record.requests("/api/hang")[0];
    let close = &record.requests("/api/close")[0];
    let fast = &record.requests("/api/fast")[0];
    assert_eq!(record.close_of(hang.conn), Some(&CloseReason::PeerClosed));
    assert_eq!(
        record.close_of(close.conn),
        Some(&CloseReason::ServerClose {
            mode: protocol::CloseMode::Rst
        })
    );
    assert_eq!(record.close_of(fast.conn), Some(&CloseReason::IdleTimeout));
    assert_eq!(answer, "choice-0");
    assert!(figures["abort"].contains("'end'"), "{figures:?}");
    assert!(figures["idle"].contains("'timeout'"), "{figures:?}");
    // The three runs' connections drawn, each with its close as recorded.
    let drawn = s.drawn(3).await;
    s.chrome.screenshot_if_asked(&s.page, "node-events").await;
    for conn in [hang.conn, close.conn, fast.conn] {
        let recorded = record.close_of(conn).map_or("open", |r| r.kind());
        assert_eq!(
            drawn.lanes.get(&conn).map(String::as_str),
            Some(recorded),
            "{conn}: {:?}",
            drawn.lanes
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_urls_wait_for_the_cache_lock() {
    let _one = serial().await;
    let mut s = open("cache-lock").await;
    let (answer, figures) = s.take(1).await;
    let record = s.record();
    let slow = record.requests("/api/slow");
    assert_eq!(slow.len(), 6);
    assert_eq!(record.peak("/api/slow"), 1, "one at a time");
    assert_eq!(answer, "1");
    // Six identical URLs, each at the server only once the one before it
    // had its answer...
    let targets: BTreeSet<&str> = slow.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets.len(), 1, "one URL: {targets:?}");
    let mut in_order = slow.clone();
    in_order.sort_by_key(|r| r.started);
    for pair in in_order.windows(2) {
        let before = pair[0].finished.expect("answered");
        assert!(pair[1].started >= before, "{in_order:?}");
    }
    // ...though the page issued all six at once (sent one after another,
    // each would take its own 300 ms): the last waited for the other five.
    let slowest: f64 = figures["slowest-ms"].parse().expect("ms");
    assert!(slowest >= 1500.0, "{figures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_holds_one_of_the_six_lanes() {
    let _one = serial().await;
    let mut s = open("eventsource").await;
    let (answer, _) = s.take(5).await;
    let record = s.record();
    assert_eq!(record.requests("/api/sse").len(), 1);
    assert_eq!(record.peak("/api/hang"), 5, "the stream took the sixth");
    assert_eq!(answer, "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_priority_request_jumps_the_queue() {
    let _one = serial().await;
    let mut s = open("priority").await;
    let (answer, _) = s.take(1).await;
    let record = s.record();
    let hangs = record.requests("/api/hang");
    let runs: BTreeSet<u32> = hangs.iter().map(|r| run_of(&r.target)).collect();
    let high_run = *runs.iter().max().expect("runs");
    let full = *runs.iter().min().expect("runs");
    // The first request after the first six: the high-priority one.
    let mut later: Vec<&Seen> = hangs.iter().filter(|r| run_of(&r.target) != full).collect();
    later.sort_by_key(|r| r.started);
    assert_eq!(run_of(&later[0].target), high_run, "{later:?}");
    assert_eq!(answer, "choice-1");
    // It went out only once a lane was freed: after the first of the full
    // run's six was answered (released), not beside them.
    let freed = hangs
        .iter()
        .filter(|r| run_of(&r.target) == full)
        .filter_map(|r| r.finished)
        .min()
        .expect("a request of the full run answered");
    assert!(later[0].started >= freed, "{later:?}, freed at {freed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_loads_spare_is_counted_as_the_record_shows_and_told_when_none() {
    let _one = serial().await;
    let mut s = open("spare-socket").await;
    let (answer, figures) = s.take(1).await;
    let record = s.record();
    let upgraded: BTreeSet<ConnId> = record
        .conns(|e| match e {
            ServerEvent::ConnectionUpgraded { conn, .. } => Some(*conn),
            _ => None,
        })
        .into_iter()
        .collect();
    // What the page can know of: connections of the load, opened before and
    // still open when its events socket connected (Chromium may open and
    // drop one before that). One the page opens after it went live (for its
    // own requests) is not the load's, as the lesson's figure says.
    let live_at = record
        .events
        .iter()
        .find_map(|e| match e {
            ServerEvent::ConnectionUpgraded { at_us, .. } => Some(*at_us),
            _ => None,
        })
        .expect("the page's events socket");
    let page_load: Vec<ConnId> = record
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::ConnectionOpened { conn, at_us, .. }
                if *at_us < live_at
                    && !upgraded.contains(conn)
                    && record.closed_at(*conn).is_none_or(|c| c > live_at) =>
            {
                Some(*conn)
            }
            _ => None,
        })
        .collect();
    // The page loads its files and calls in parallel, so its load opens
    // several connections, spare or not.
    assert!(!page_load.is_empty(), "the page load's connections");
    assert_eq!(
        figures["page-load"],
        page_load.len().to_string(),
        "{figures:?} {page_load:?} {:#?}",
        record.events
    );
    // The answer: the load's connections that carried no request before
    // the lesson's own (this page loads its files and calls in parallel, so
    // several carried some; the question asks for those that carried none).
    let lesson_at = record
        .requests("/api/fast")
        .iter()
        .map(|r| r.started)
        .min()
        .expect("the lesson's request");
    let all = record.requests("");
    let spare = page_load
        .iter()
        .filter(|c| !all.iter().any(|r| r.conn == **c && r.started < lesson_at))
        .count();
    assert_eq!(
        (answer.as_str(), figures["spare"].as_str()),
        (spare.to_string().as_str(), spare.to_string().as_str()),
        "{figures:?} {page_load:?} {:#?}",
        record.events
    );
    // What the page says of it follows what was measured: a spare counted,
    // or (headless Chromium may open none, or the page's own first calls
    // took it) why there is none to see. This tab's first run.
    let notes = s
        .chrome
        .eval(
            &s.page,
            "document.querySelector('section.lesson').textContent",
        )
        .await;
    let notes = notes.as_str().unwrap_or_default();
    if spare == 0 {
        assert!(
            notes.contains("or your browser opened none here (headless Chromium may not)"),
            "{notes}"
        );
    } else {
        assert!(
            notes.contains(&format!("and {spare} carried nothing until then."))
                && !notes.contains("opened none here"),
            "{notes}"
        );
    }
}

/// The phenomenon the spare-socket lesson teaches, apart from the lesson's
/// page (whose own calls may take the spare): a fresh browser navigated to
/// one resource opens more connections than it needs, and one of them
/// carries no request, by the server's record (lab-notes: a spare socket
/// per navigation). The answer is a JSON document, so the page asks for no
/// file but its favicon, which goes out on the connection that carried it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_navigation_opens_a_connection_that_carries_nothing() {
    let _one = serial().await;
    let (addr, _second, lab) = start_lab_with_middlebox(page_config()).await;
    let (_, mut events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    let _tab = chrome
        .open(&format!("http://{addr}/api/fast?id=navigated"))
        .await;
    // The spare comes within tens of milliseconds (lab-notes); the favicon
    // after the document.
    let mut record = Record { events: Vec::new() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        record.take(&mut events);
        let answered = !record.requests("/favicon.ico").is_empty();
        if answered || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    record.take(&mut events);
    let opened = record.conns(|e| match e {
        ServerEvent::ConnectionOpened { conn, .. } => Some(*conn),
        _ => None,
    });
    let requests = record.requests("");
    let document = record.requests("/api/fast?id=navigated");
    assert_eq!(document.len(), 1, "{:#?}", record.events);
    let idle: Vec<&ConnId> = opened
        .iter()
        .filter(|c| !requests.iter().any(|r| r.conn == **c))
        .collect();
    assert!(
        opened.len() >= 2 && !idle.is_empty(),
        "one resource, {} connections, {} never used: {:#?}",
        opened.len(),
        idle.len(),
        record.events
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keep_alive_race_is_re_sent_silently() {
    let _one = serial().await;
    let mut s = open("keep-alive-race").await;
    let (answer, figures) = s.take(0).await;
    let record = s.record();
    let fast = record.requests("/api/fast");
    let mut attempts: BTreeMap<&str, u32> = BTreeMap::new();
    for r in &fast {
        *attempts.entry(tag(&r.target)).or_default() += 1;
    }
    assert_eq!(attempts.len(), 4);
    assert_eq!(attempts.values().filter(|n| **n == 2).count(), 3);
    assert_eq!(answer, "0", "the page saw no failure");
    assert_eq!(figures["resent"], "3");
    assert_eq!(figures["attempts"], "7");
    // Each request seen twice: its first attempt on a connection the
    // server closed in the race, its second on another.
    let races = record
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ServerEvent::ConnectionClosed {
                    reason: CloseReason::KeepAliveRace { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(races, 3, "{:#?}", record.events);
    assert_eq!(figures["races"], "3");
    for (t, _) in attempts.iter().filter(|(_, n)| **n == 2) {
        let mut twice: Vec<&Seen> = fast.iter().filter(|r| tag(&r.target) == *t).collect();
        twice.sort_by_key(|r| r.started);
        assert_ne!(twice[0].conn, twice[1].conn, "{t}: {twice:?}");
        assert!(
            matches!(
                record.close_of(twice[0].conn),
                Some(CloseReason::KeepAliveRace { .. })
            ),
            "{t}: {:?}",
            record.close_of(twice[0].conn)
        );
    }
}

/// The middlebox's events for the lesson's one mapping.
fn middlebox_events(record: &Record) -> Vec<protocol::MiddleboxEvent> {
    record
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Middlebox { event, .. } => Some(event.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nat_gateway_drops_the_servers_late_answer() {
    let _one = serial().await;
    let mut s = open("nat-gateway").await;
    let (answer, figures) = s.take(2).await;
    let record = s.record();
    // The server wrote its answer completely...
    let slow = &record.requests("/api/slow")[0];
    assert!(slow.finished.is_some(), "the server finished its answer");
    let completed = record.events.iter().any(|e| {
        matches!(
            e,
            ServerEvent::RequestFinished {
                outcome: protocol::RequestOutcome::Completed,
                ..
            }
        )
    });
    assert!(completed, "the lab recorded its response as written");
    // ...the middlebox had forgotten the mapping and dropped it...
    let events = middlebox_events(&record);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, protocol::MiddleboxEvent::Expired { .. })),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            protocol::MiddleboxEvent::Dropped { side: protocol::Side::Server, bytes, .. } if *bytes > 0
        )),
        "{events:?}"
    );
    // ...and the page gave up at its own timeout.
    assert_eq!(answer, "choice-2", "{figures:?}");
    assert_eq!(figures["expired"], "yes");
    // Scaled, and the page says so: the record's mapping ran 350 s ÷ 100.
    assert_eq!(opened_with(&mapping_of(&record, slow.conn)), (100, 3500));
    assert!(
        figures["timeout"].contains("3500 ms") && figures["timeout"].contains("×100"),
        "{figures:?}"
    );
    // The timeline's middlebox lane tells the same story as the record.
    s.chrome.screenshot_if_asked(&s.page, "nat-gateway").await;
    let lane = mapping_lane(&mut s).await;
    assert_eq!(lane["expired"], "true", "{lane}");
    let legend = s
        .chrome
        .eval(
            &s.page,
            "document.querySelectorAll('.legend .mb-legend').length",
        )
        .await;
    assert_eq!(legend, 7, "the middlebox's legend entries, with its lane");
    let words = lane["words"].as_str().unwrap_or_default();
    assert!(
        words.contains("expired") && words.contains("dropped server"),
        "{words}"
    );
}

/// The middlebox's events for the mapping that carried connection `conn`
/// (its `opened` names it, or its address towards the server is the
/// connection's peer), each with its stamp, oldest first.
fn mapping_of(record: &Record, conn: ConnId) -> Vec<(Micros, protocol::MiddleboxEvent)> {
    let peer = record.events.iter().find_map(|e| match e {
        ServerEvent::ConnectionOpened { conn: c, peer, .. } if *c == conn => Some(peer.clone()),
        _ => None,
    });
    let mapping = record
        .events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Middlebox {
                mapping,
                event:
                    protocol::MiddleboxEvent::Opened {
                        conn: c, upstream, ..
                    },
                ..
            } if *c == Some(conn) || (upstream.is_some() && *upstream == peer) => Some(*mapping),
            _ => None,
        })
        .unwrap_or_else(|| panic!("a mapping for {conn}: {:#?}", record.events));
    record
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Middlebox {
                mapping: m,
                event,
                at_us,
                ..
            } if *m == mapping => Some((*at_us, event.clone())),
            _ => None,
        })
        .collect()
}

/// The scale and the timeout in force a mapping opened with.
fn opened_with(events: &[(Micros, protocol::MiddleboxEvent)]) -> (u32, u64) {
    events
        .iter()
        .find_map(|(_, e)| match e {
            protocol::MiddleboxEvent::Opened {
                settings,
                in_force_ms,
                ..
            } => Some((settings.scale, *in_force_ms)),
            _ => None,
        })
        .expect("its opened")
}

/// The timeline's middlebox lane (the lesson's mapping): whether it is drawn
/// expired, and its words for a screen reader.
async fn mapping_lane(s: &mut Setup) -> serde_json::Value {
    s.chrome
        .eval_until(
            &s.page,
            "the middlebox lane in the timeline",
            Duration::from_secs(10),
            "(() => { const g = [...document.querySelectorAll('#timeline g.mb')].pop(); \
               return g ? {expired: g.dataset.expired, words: g.getAttribute('aria-label')} : null; })()",
            |lane| (!lane.is_null()).then_some(lane),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_the_nat_mapping_alive() {
    let _one = serial().await;
    let mut s = open("nat-heartbeat").await;
    let (answer, figures) = s.take(0).await;
    let record = s.record();
    let drips = record.requests("/api/drip?mode=heartbeat");
    assert_eq!(
        drips.len(),
        1,
        "the heartbeat endpoint, as the composer sends it"
    );
    // The mapping could have expired: its timeout in force (350 s ÷ 100)
    // was shorter than the answer the heartbeats carried it through, and
    // no silence between the server's data was as long as it.
    let mapping = mapping_of(&record, drips[0].conn);
    assert_eq!(opened_with(&mapping), (100, 3500));
    let took = drips[0].finished.expect("answered") - drips[0].started;
    assert!(took >= 6_000_000, "the answer took {took} µs");
    let server_data: Vec<(Micros, u32)> = mapping
        .iter()
        .filter_map(|(at, e)| match e {
            protocol::MiddleboxEvent::Refreshed {
                side: protocol::Side::Server,
                by: protocol::RefreshCause::Data,
                count,
                ..
            } => Some((*at, *count)),
            _ => None,
        })
        .collect();
    let stamps: Vec<Micros> = std::iter::once(drips[0].started)
        .chain(server_data.iter().map(|(at, _)| *at))
        .collect();
    let longest = stamps.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(
        longest < 3_500_000,
        "a silence of {longest} µs: {server_data:?}"
    );
    assert_eq!(figures["expired"], "no", "{figures:?}");
    let counted: u32 = server_data.iter().map(|(_, n)| n).sum();
    assert_eq!(
        figures["server-refreshes"],
        counted.to_string(),
        "{figures:?}"
    );
    assert!(figures["timeout"].contains("×100"), "{figures:?}");
    let events = middlebox_events(&record);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, protocol::MiddleboxEvent::Expired { .. })),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            protocol::MiddleboxEvent::Refreshed {
                side: protocol::Side::Server,
                ..
            }
        )),
        "{events:?}"
    );
    assert_eq!(answer, "choice-0", "{figures:?}");
    let lane = mapping_lane(&mut s).await;
    assert_eq!(lane["expired"], "false", "{lane}");
    let words = lane["words"].as_str().unwrap_or_default();
    assert!(
        words.contains("refreshed by data from the server"),
        "{words}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_tcp_keep_alive_probes_keep_the_nat_mapping_alive() {
    let _one = serial().await;
    let mut s = open("nat-tcp-keepalive").await;
    let (answer, figures) = s.take(0).await;
    let record = s.record();
    // The server answered the silent request, and the page got it...
    let slow = &record.requests("/api/slow")[0];
    assert!(slow.finished.is_some(), "the server finished its answer");
    assert_eq!(answer, "choice-0", "{figures:?}");
    // ...because the server's probes (one a second at ×100) refreshed the
    // mapping, as the middlebox recorded, and it never expired.
    let events = middlebox_events(&record);
    let probes: u32 = events
        .iter()
        .filter_map(|e| match e {
            protocol::MiddleboxEvent::Refreshed {
                side: protocol::Side::Server,
                by: protocol::RefreshCause::Probe,
                count,
                ..
            } => Some(*count),
            _ => None,
        })
        .sum();
    assert!(probes >= 2, "{events:?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, protocol::MiddleboxEvent::Expired { .. })),
        "{events:?}"
    );
    assert_eq!(figures["server-probes"], probes.to_string(), "{figures:?}");
    // The page's words for the setting, and the wire's own rhythm: the
    // middlebox saw the server's probes about a second apart (seen by
    // polling `TCP_INFO`, so give or take its poll interval), each one
    // before the 3.5 s timeout in force would have run out.
    assert!(figures["keepalive"].starts_with("first probe after 1 s, then every 1 s"));
    let mapping = mapping_of(&record, slow.conn);
    assert_eq!(opened_with(&mapping), (100, 3500));
    let seen: Vec<Micros> = mapping
        .iter()
        .filter_map(|(at, e)| match e {
            protocol::MiddleboxEvent::Refreshed {
                side: protocol::Side::Server,
                by: protocol::RefreshCause::Probe,
                ..
            } => Some(*at),
            _ => None,
        })
        .collect();
    for gap in seen.windows(2).map(|w| w[1] - w[0]) {
        assert!(
            (400_000..=2_000_000).contains(&gap),
            "probes {gap} µs apart: {seen:?}"
        );
    }
    // The timeline's middlebox lane shows the probes.
    let lane = mapping_lane(&mut s).await;
    assert_eq!(lane["expired"], "false", "{lane}");
    let words = lane["words"].as_str().unwrap_or_default();
    assert!(
        words.contains("refreshed by keep-alive probes from the server"),
        "{words}"
    );
}

/// The middlebox's events of each mapping, by mapping, in order.
fn mappings(record: &Record) -> BTreeMap<protocol::MappingId, Vec<protocol::MiddleboxEvent>> {
    let mut out: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for e in &record.events {
        if let ServerEvent::Middlebox { mapping, event, .. } = e {
            out.entry(*mapping).or_default().push(event.clone());
        }
    }
    out
}

/// The lesson's words on the page.
async fn lesson_text(s: &mut Setup) -> String {
    let text = s
        .chrome
        .eval(
            &s.page,
            "document.querySelector('section.lesson').textContent",
        )
        .await;
    text.as_str().unwrap_or_default().to_owned()
}

/// Real time, about two minutes: Chromium's own TCP keep-alive (a probe
/// after 45 s of silence, then every 45 s) keeps a 60 s mapping alive for a
/// 2-minute silent request; a 40 s mapping expires first and Chromium's probe
/// gets an RST. One test, both mappings at once (~2 min 10 s in all). What
/// is asserted is what the middlebox recorded. A Chromium that sent no
/// probe fails it: the lesson's usual answer would then be out of date
/// (what the lesson says to such a browser is a host test,
/// `real_time_says_so_when_the_browser_sent_no_probe`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromiums_own_probes_keep_a_60_s_mapping_in_real_time_not_a_40_s_one() {
    use protocol::{MiddleboxEvent as M, RefreshCause, Side};
    let _one = serial().await;
    let mut s = open("nat-real-time").await;
    assert!(
        lesson_text(&mut s).await.contains("Real time"),
        "the page says it runs in real time"
    );
    let (answer, figures) = s
        .chrome
        .take_lesson(&s.page, 1, Duration::from_secs(240))
        .await;
    let record = s.record();
    println!("measured in real time: answer {answer}, {figures:?}");
    // The two mappings, by their idle timeout in force (real time).
    let mut by_timeout = BTreeMap::new();
    for (mapping, events) in mappings(&record) {
        if let Some(M::Opened {
            in_force_ms,
            settings,
            ..
        }) = events.first()
        {
            assert_eq!(settings.scale, 1, "real time");
            by_timeout.insert(*in_force_ms, (mapping, events.clone()));
        }
    }
    let (Some((_, long)), Some((_, short))) = (by_timeout.get(&60_000), by_timeout.get(&40_000))
    else {
        panic!("a 60 s and a 40 s mapping: {by_timeout:#?}");
    };
    let client_probes = |events: &[M]| -> u32 {
        events
            .iter()
            .filter_map(|e| match e {
                M::Refreshed {
                    side: Side::Client,
                    by: RefreshCause::Probe,
                    count,
                    ..
                } => Some(*count),
                _ => None,
            })
            .sum()
    };
    let expired = |events: &[M]| events.iter().any(|e| matches!(e, M::Expired { .. }));
    let probes = client_probes(long);
    assert_eq!(figures["probes-60"], probes.to_string(), "{figures:?}");
    // Chromium probed (at ~45 s and ~90 s of silence), and the probes
    // refreshed the 60 s mapping: it lived and the page got the answer.
    assert!(
        probes >= 2,
        "Chromium's TCP keep-alive probes through the 60 s mapping during a 120 s \
         silent request: {probes} ({long:?})"
    );
    assert!(!expired(long), "{long:?}");
    assert_eq!(figures["page-60"], "done", "{figures:?}");
    // The 40 s one expired before the first probe; the probe got an RST
    // and the request failed.
    assert!(expired(short), "{short:?}");
    assert!(
        short
            .iter()
            .any(|e| matches!(e, M::RstSent { side: Side::Client })),
        "{short:?}"
    );
    assert_eq!(figures["page-40"], "failed", "{figures:?}");
    assert_eq!(answer, "choice-1", "{figures:?}");
    // The server answered the 2-minute request either way.
    let slow = record.requests("/api/slow");
    assert_eq!(slow.len(), 2, "{slow:?}");
    // The lesson put the session's middlebox back (the lab's default).
    let restored = |e: &ServerEvent| {
        matches!(e, ServerEvent::MiddleboxChanged { settings, .. }
            if *settings == protocol::Preset::AwsNat.settings(100))
    };
    if !record.events.iter().any(restored) {
        let events = &mut s.events;
        keepalive_lab_tests::eventually(
            "the middlebox put back",
            Duration::from_secs(10),
            async || {
                std::iter::from_fn(|| events.try_recv().ok())
                    .any(|e| restored(&e))
                    .then_some(())
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_agent_without_keep_alive_says_keep_alive_and_opens_a_connection_per_request() {
    let _one = serial().await;
    let mut s = open("node-agent").await;
    let (answer, figures) = s.take(1).await;
    let record = s.record();
    // The agent's requests carry tags a<run>-<n>; group them by run.
    let mut runs: BTreeMap<u64, Vec<Seen>> = BTreeMap::new();
    for r in record.requests("/api/fast") {
        let run = tag(&r.target)
            .trim_start_matches('a')
            .split('-')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("an agent's tag a<run>-<n>");
        runs.entry(run).or_default().push(r);
    }
    // The Connection header each request carried: as the agent reported
    // it when it queued the request (ServerEvent::Agent), by run...
    let mut reported: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for e in &record.events {
        if let ServerEvent::Agent {
            run,
            event:
                protocol::AgentEvent::Request {
                    event: protocol::RequestEvent::Queued { connection, .. },
                    ..
                },
            ..
        } = e
        {
            reported.entry(*run).or_default().push(connection.clone());
        }
    }
    // ...and as the server received it: the same, request by request.
    let mut headers: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (run, seen) in &runs {
        let received: Vec<String> = seen
            .iter()
            .map(|r| r.connection.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            Some(&received),
            reported.get(run),
            "run {run}: the server received the header the agent reported"
        );
        headers.insert(*run, received);
    }
    assert_eq!(runs.len(), 3, "three agent runs: {runs:?}");
    let conns = |run: &[Seen]| run.iter().map(|r| r.conn).collect::<BTreeSet<_>>().len();
    let [
        (off, off_headers),
        (infinity, inf_headers),
        (on, on_headers),
    ] = [0, 1, 2].map(|i| {
        let (run, seen) = runs.iter().nth(i).expect("a run");
        (seen.clone(), headers.get(run).cloned().unwrap_or_default())
    });
    for (run, seen) in [&off, &infinity, &on].into_iter().enumerate() {
        assert_eq!(seen.len(), 3, "run {}: three requests: {seen:?}", run + 1);
    }
    // keepAlive: false, maxSockets: 20: a connection per request, each
    // request saying Connection: keep-alive.
    assert_eq!(conns(&off), 3, "a connection per request: {off:?}");
    assert!(off.iter().all(|r| r.seq == 1), "{off:?}");
    assert_eq!(off_headers, ["keep-alive"; 3], "run 1's headers");
    // keepAlive: false, maxSockets: Infinity: Connection: close, and again
    // a connection per request.
    assert_eq!(
        conns(&infinity),
        3,
        "a connection per request: {infinity:?}"
    );
    assert_eq!(inf_headers, ["close"; 3], "run 2's headers");
    // keepAlive: true: one connection, reused.
    assert_eq!(conns(&on), 1, "one reused connection: {on:?}");
    assert_eq!(on_headers, ["keep-alive"; 3], "run 3's headers");
    // The page quotes what was measured.
    assert_eq!(answer, "choice-1", "{figures:?}");
    assert_eq!(figures["header-off"], "keep-alive", "{figures:?}");
    assert_eq!(figures["sockets-off"], "3");
    assert_eq!(figures["header-infinity"], "close");
    assert_eq!(figures["sockets-infinity"], "3");
    assert_eq!(figures["header-on"], "keep-alive");
    assert_eq!(figures["sockets-on"], "1");
    let notes = lesson_text(&mut s).await;
    assert!(notes.contains("Time is scaled ÷10"), "{notes}");
}
