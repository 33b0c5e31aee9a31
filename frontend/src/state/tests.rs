use super::*;
use crate::settings::BurstSettings;

const ORIGIN: &str = "http://127.0.0.1:8080";

/// A page's state with an exact clock sync (server = page clock).
pub(crate) fn fresh() -> LabState {
    let mut s = LabState::new(SessionId::parse("s-test").unwrap());
    // Server clock = page clock (offset 0), exact.
    s.apply(Action::Clock(Sample {
        sent_ms: 0.0,
        received_ms: 0.0,
        server_us: 0,
    }));
    s
}

fn pool(credentials: Credentials) -> PoolKey {
    PoolKey {
        origin: ORIGIN.into(),
        credentials,
    }
}

/// One server event, as the frame dispatcher hands it over.
pub(crate) fn event(e: ServerEvent) -> Action {
    Action::ServerBatch(vec![e])
}

/// `connection_opened` of `conn`, at `conn * 10` µs (server).
pub(crate) fn opened(conn: u64) -> Action {
    event(ServerEvent::ConnectionOpened {
        conn: ConnId(conn),
        at_us: conn * 10,
        peer: format!("127.0.0.1:{}", 40000 + conn),
        local_addr: "127.0.0.1:8080".into(),
        local_port: 8080,
    })
}

/// `request_started` of `/api/hang?id=TAG` on `conn`, at `at_ms` (server).
pub(crate) fn started(conn: u64, request: u64, seq: u32, tag: &str, at_ms: u64) -> Action {
    event(ServerEvent::RequestStarted {
        conn: ConnId(conn),
        request: RequestId(request),
        seq,
        method: "GET".into(),
        target: format!("/api/hang?id={tag}&session=s-test"),
        connection: None,
        at_us: at_ms * 1000,
    })
}

/// `request_finished` (completed) of `request` on `conn`, at `at_ms` (server).
pub(crate) fn finished(conn: u64, request: u64, at_ms: u64) -> Action {
    event(ServerEvent::RequestFinished {
        conn: ConnId(conn),
        request: RequestId(request),
        outcome: RequestOutcome::Completed,
        at_us: at_ms * 1000,
    })
}

/// Composes a run of `n` requests fired at page time `at_ms`, none issued
/// yet; returns its id and tags.
fn compose(
    s: &mut LabState,
    n: usize,
    credentials: impl Fn(usize) -> Credentials,
    at_ms: f64,
) -> (u32, Vec<String>) {
    let run = s.next_run();
    let requests: Vec<(String, String, PoolKey)> = (1..=n)
        .map(|i| {
            let tag = format!("b{run}-{i}");
            (
                tag.clone(),
                format!("{ORIGIN}/api/hang?id={tag}"),
                pool(credentials(i)),
            )
        })
        .collect();
    let tags = requests.iter().map(|r| r.0.clone()).collect();
    s.apply(Action::RunStarted {
        id: run,
        settings: BurstSettings::default(),
        requests,
        at_ms,
        epoch_ms: 1.7e12,
    });
    (run, tags)
}

/// Composes and issues a run of `n` requests at page time 0; returns tags.
pub(crate) fn fire(
    s: &mut LabState,
    n: usize,
    credentials: impl Fn(usize) -> Credentials,
) -> Vec<String> {
    let (run, tags) = compose(s, n, credentials, 0.0);
    for index in 0..n {
        s.apply(Action::Issued {
            run,
            index,
            at_ms: 0.0,
        });
    }
    tags
}

/// The page reads the answer to request `index` of the current run: its
/// head at `at_ms` (naming `conn`, `request` and `seq`), its end 1 ms later.
pub(crate) fn head(s: &mut LabState, index: usize, conn: u64, request: u64, seq: u32, at_ms: f64) {
    let run = s.current().unwrap().id;
    s.apply(Action::ResponseHead {
        run,
        index,
        head: Head {
            conn: Some(ConnId(conn)),
            request: Some(RequestId(request)),
            seq: Some(seq),
            status: 200,
            keep_alive: Default::default(),
        },
        at_ms,
    });
    s.apply(Action::Finished {
        run,
        index,
        at_ms: at_ms + 1.0,
        timing: None,
    });
}

#[test]
fn tags_name_their_run_and_index() {
    assert_eq!(tag_of("/api/hang?id=b1-3&session=s"), Some("b1-3"));
    assert_eq!(tag_of("/api/slow?ms=5"), None);
    assert_eq!(tag_of("/api/hang?id="), None);
    assert_eq!(parse_tag("b12-3"), Some((12, 2)));
    for bad in ["x1-1", "b1-0", "b-1", "b1", "bx-2"] {
        assert_eq!(parse_tag(bad), None, "{bad}");
    }
}

/// The six-lanes experiment as the page sees it: 12 fired, 6 reach the
/// server on 6 connections, 6 wait; after release the 6 waiting ones go out
/// on the same connections.
#[test]
fn measures_six_connections_queueing_and_reuse() {
    let mut s = fresh();
    let tags = fire(&mut s, 12, |_| Credentials::Default);
    for c in 1..=6 {
        s.apply(opened(c));
        s.apply(started(c, c, 1, &tags[c as usize - 1], 5));
    }
    let run = s.current().unwrap();
    assert_eq!(run.count(Phase::AtServer), 6);
    assert_eq!(run.count(Phase::Queued), 6);
    assert_eq!(
        run.pools[&pool(Credentials::Default)].max_concurrent_conns,
        6
    );

    // Release at 1000 ms: the first six finish, the next six reuse.
    for c in 1..=6u64 {
        s.apply(finished(c, c, 1000));
        head(&mut s, c as usize - 1, c, c, 1, 1001.0);
        s.apply(started(c, 6 + c, 2, &tags[5 + c as usize], 1002));
    }
    let run = s.current().unwrap();
    let stats = &run.pools[&pool(Credentials::Default)];
    assert_eq!(run.count(Phase::Done), 6);
    assert_eq!(run.count(Phase::AtServer), 6);
    assert_eq!(stats.max_concurrent_conns, 6, "never more than six at once");
    assert_eq!(stats.conns.len(), 6, "the second six reused the first six");
    let tally = crate::tally::Tally::of(run, &s);
    assert_eq!(
        tally.pools[0].on,
        [6, 6, 0, 0],
        "6 on new connections, 6 reused them"
    );
    assert_eq!((tally.pools[0].opened, tally.pools[0].queued), (6, 6));
    let queued = run.queued_in(&pool(Credentials::Default), &s.clock);
    assert_eq!(
        queued.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (6..12).collect::<Vec<_>>()
    );
    assert!(
        queued.iter().all(|(_, wait)| *wait == Some(1002.0)),
        "{queued:?}"
    );
    assert_eq!(s.lanes[&ConnId(3)].requests.len(), 2);
    let drawn = crate::timeline::LaneGroups::of(&s, Some(run));
    assert_eq!(drawn.run.len(), 6);
}

#[test]
fn pools_are_measured_separately() {
    let mut s = fresh();
    let tags = fire(&mut s, 12, |i| {
        if i <= 6 {
            Credentials::Default
        } else {
            Credentials::Omit
        }
    });
    for c in 1..=12 {
        s.apply(opened(c));
        s.apply(started(c, c, 1, &tags[c as usize - 1], 5));
    }
    let run = s.current().unwrap();
    assert_eq!(run.pools.len(), 2);
    assert!(run.pools.values().all(|p| p.max_concurrent_conns == 6));
    assert!(run.queued_in(&pool(Credentials::Omit), &s.clock).is_empty());
}

#[test]
fn a_request_the_server_saw_twice_is_flagged_as_resent() {
    let mut s = fresh();
    let tags = fire(&mut s, 1, |_| Credentials::Default);
    s.apply(opened(1));
    s.apply(opened(2));
    s.apply(started(1, 1, 3, &tags[0], 5));
    s.apply(started(1, 1, 3, &tags[0], 5)); // duplicate delivery: not a re-send
    assert!(!s.current().unwrap().requests[0].resent());
    s.apply(started(2, 2, 1, &tags[0], 6)); // the browser's silent retry
    let r = &s.current().unwrap().requests[0];
    assert!(r.resent());
    assert_eq!(
        r.conn,
        Some(ConnId(2)),
        "the retry's connection is the one that answered"
    );
}

/// A one-request run with an identical (untagged) URL, issued at 0.
fn fire_untagged(s: &mut LabState) -> u32 {
    let run = s.next_run();
    s.apply(Action::RunStarted {
        id: run,
        settings: BurstSettings {
            identical_url: true,
            ..BurstSettings::default()
        },
        requests: vec![(
            format!("b{run}-1"),
            format!("{ORIGIN}/api/fast?session=s-test"),
            pool(Credentials::Default),
        )],
        at_ms: 0.0,
        epoch_ms: 0.0,
    });
    s.apply(Action::Issued {
        run,
        index: 0,
        at_ms: 0.0,
    });
    run
}

fn started_untagged(conn: u64, request: u64, seq: u32, at_ms: u64) -> Action {
    event(ServerEvent::RequestStarted {
        conn: ConnId(conn),
        request: RequestId(request),
        seq,
        method: "GET".into(),
        target: "/api/fast?session=s-test".into(),
        connection: None,
        at_us: at_ms * 1000,
    })
}

#[test]
fn identical_url_requests_are_matched_by_request_id() {
    let mut s = fresh();
    fire_untagged(&mut s);
    s.apply(opened(4));
    s.apply(started_untagged(4, 9, 1, 3));
    assert_eq!(
        s.current().unwrap().requests[0].phase,
        Phase::Queued,
        "no tag: unknown until the head"
    );
    head(&mut s, 0, 4, 9, 1, 5.0);
    let r = &s.current().unwrap().requests[0];
    assert_eq!(
        (r.phase, r.conn, r.server_start_us),
        (Phase::Done, Some(ConnId(4)), Some(3000))
    );
}

#[test]
fn duplicate_late_and_unknown_events_change_nothing() {
    let mut s = fresh();
    let tags = fire(&mut s, 1, |_| Credentials::Default);
    s.apply(opened(1));
    s.apply(started(1, 1, 1, &tags[0], 1));
    let once = s.clone();
    s.apply(started(1, 1, 1, &tags[0], 1));
    assert_eq!(s, once, "a duplicate request_started is ignored");
    s.apply(finished(1, 1, 2));
    let after = s.clone();
    s.apply(finished(1, 1, 2));
    assert_eq!(s, after);
    // Events for a connection or run never seen do not panic.
    s.apply(started(99, 5, 1, "b77-1", 3));
    s.apply(finished(99, 5, 4));
    s.apply(Action::Issued {
        run: 42,
        index: 0,
        at_ms: 1.0,
    });
    assert!(!s.lanes.contains_key(&ConnId(99)));
}

#[test]
fn finish_before_start_out_of_order_is_tolerated() {
    let mut s = fresh();
    let tags = fire(&mut s, 1, |_| Credentials::Default);
    s.apply(opened(1));
    // The page's own fetch resolving before the server's event arrives.
    head(&mut s, 0, 1, 1, 1, 3.0);
    s.apply(started(1, 1, 1, &tags[0], 1));
    let r = &s.current().unwrap().requests[0];
    assert_eq!(
        r.phase,
        Phase::Done,
        "a late server event does not move it back"
    );
    assert_eq!(r.server_sightings, 1);
}

#[test]
fn the_monitor_socket_is_listed_apart_and_unclaimed_connections_are_not_drawn() {
    let mut s = fresh();
    s.apply(opened(1));
    s.apply(opened(2));
    s.apply(started(2, 1, 1, "x", 1));
    s.apply(event(ServerEvent::ConnectionAttributed {
        conn: ConnId(2),
        session: s.session.clone(),
        at_us: 2,
    }));
    s.apply(event(ServerEvent::ConnectionUpgraded {
        conn: ConnId(2),
        role: UpgradeRole::Monitor,
        at_us: 3,
    }));
    s.apply(opened(3));
    // A tool on the same host (curl): no tag, no session.
    s.apply(event(ServerEvent::RequestStarted {
        conn: ConnId(3),
        request: RequestId(2),
        seq: 1,
        method: "GET".into(),
        target: "/api/fast".into(),
        connection: None,
        at_us: 1000,
    }));
    let g = crate::timeline::LaneGroups::of(&s, None);
    assert_eq!(
        g.monitors.iter().map(|l| l.conn.0).collect::<Vec<_>>(),
        vec![2]
    );
    assert!(g.run.is_empty() && g.page_load.is_empty());
    assert_eq!(g.foreign, 2, "1 and 3 never carried this page's requests");
}

/// A connection whose TLS handshake failed before any request (a browser
/// refusing the lab's certificate) is told apart from another tab's (found
/// in review: after a failed HTTPS burst, the page blamed another tool).
#[test]
fn failed_tls_handshakes_are_counted_apart_from_other_tools() {
    let mut s = fresh();
    for (c, message) in [
        (
            1,
            "TLS handshake failed: received fatal alert: BadCertificate",
        ),
        (2, "Connection reset by peer"),
    ] {
        s.apply(opened(c));
        s.apply(event(ServerEvent::ConnectionClosed {
            conn: ConnId(c),
            reason: CloseReason::Error {
                message: message.into(),
            },
            bytes_in: 300,
            bytes_out: 0,
            last_in_us: Some(50),
            last_out_us: None,
            requests: 0,
            at_us: 99,
        }));
    }
    let g = crate::timeline::LaneGroups::of(&s, None);
    assert_eq!((g.tls_refused, g.foreign), (1, 1));
}

/// The server's snapshot, as a (re)connected events socket gets it: open
/// connection `conn` only, carrying `requests` (see [`snap`]).
fn snapshot(conn: u64, requests: Vec<protocol::RequestSnapshot>) -> Action {
    snapshot_speaking(conn, requests, None)
}

/// [`snapshot`], its connection on a TLS port that chose `protocol`.
fn snapshot_speaking(
    conn: u64,
    requests: Vec<protocol::RequestSnapshot>,
    protocol: Option<&str>,
) -> Action {
    event(ServerEvent::Snapshot {
        now_us: 1_000_000,
        config: ServerPolicy::default(),
        listeners: vec!["127.0.0.1:8080".into(), "127.0.0.1:8081".into()],
        session: None,
        locked: false,
        room_lesson: None,
        connections: vec![ConnectionSnapshot {
            conn: ConnId(conn),
            opened_us: 10,
            peer: "127.0.0.1:40001".into(),
            local_addr: "127.0.0.1:8080".into(),
            local_port: 8080,
            session: None,
            upgraded: None,
            bytes_in: 0,
            bytes_out: 0,
            last_in_us: None,
            last_out_us: None,
            requests_total: requests.len() as u32,
            requests,
            protocol: protocol.map(str::to_owned),
        }],
    })
}

/// A request of a snapshot, tagged `tag`, started at `at_us`, answered and
/// done at `done_us` if given.
fn snap(
    request: u64,
    seq: u32,
    tag: &str,
    at_us: u64,
    done_us: Option<u64>,
) -> protocol::RequestSnapshot {
    protocol::RequestSnapshot {
        request: RequestId(request),
        seq,
        method: "GET".into(),
        target: format!("/api/hang?id={tag}&session=s-test"),
        started_us: at_us,
        response_us: done_us,
        finished_us: done_us,
        status: done_us.map(|_| 200),
        outcome: done_us.map(|_| RequestOutcome::Completed),
    }
}

#[test]
fn close_reason_snapshot_attribution_config_and_notices() {
    let mut s = fresh();
    s.apply(opened(1));
    s.apply(event(ServerEvent::ConnectionClosed {
        conn: ConnId(1),
        reason: CloseReason::IdleTimeout,
        bytes_in: 10,
        bytes_out: 20,
        last_in_us: Some(50),
        last_out_us: Some(60),
        requests: 0,
        at_us: 99,
    }));
    assert_eq!(
        s.lanes[&ConnId(1)].closed.as_ref().unwrap().reason,
        CloseReason::IdleTimeout
    );
    s.apply(opened(2)); // open, but the server will not list it
    s.apply(snapshot(3, vec![snap(7, 1, "z", 60, None)]));
    let ids: Vec<u64> = s.lanes.keys().map(|c| c.0).collect();
    assert_eq!(ids, vec![1, 3], "closed lane kept, stale open lane dropped");
    assert_eq!(s.lanes[&ConnId(3)].requests[0].tag.as_deref(), Some("z"));
    assert_eq!(s.config, Some(ServerPolicy::default()));
    assert_eq!(s.listeners.len(), 2);
    s.apply(event(ServerEvent::ConnectionAttributed {
        conn: ConnId(3),
        session: SessionId::parse("s-test").unwrap(),
        at_us: 101,
    }));
    assert_eq!(s.lanes[&ConnId(3)].session.as_ref(), Some(&s.session));
    s.apply(event(ServerEvent::ConnectionHidden { conn: ConnId(3) }));
    assert!(
        !s.lanes.contains_key(&ConnId(3)),
        "someone else's connection is forgotten"
    );
    let off = ServerPolicy {
        keep_alive: false,
        ..ServerPolicy::default()
    };
    s.apply(event(ServerEvent::ConfigChanged {
        config: off.clone(),
        session: None,
        locked: false,
        at_us: 102,
    }));
    assert_eq!(s.config, Some(off));
    s.apply(Action::ServerBatch(vec![
        ServerEvent::EventsDropped { count: 5 },
        ServerEvent::EventsDropped { count: 2 },
    ]));
    assert_eq!(s.events_dropped, 7, "a batch applies every event in it");
}

#[test]
fn failures_aborts_and_error_statuses() {
    let mut s = fresh();
    fire(&mut s, 3, |_| Credentials::Default);
    s.apply(Action::Failed {
        run: 1,
        index: 0,
        error: "TypeError: Failed to fetch".into(),
        aborted: false,
        at_ms: 3.0,
    });
    s.apply(Action::Failed {
        run: 1,
        index: 1,
        error: "AbortError: timed out after 1000 ms".into(),
        aborted: true,
        at_ms: 3.0,
    });
    s.apply(Action::ResponseHead {
        run: 1,
        index: 2,
        head: Head {
            status: 504,
            ..Head::default()
        },
        at_ms: 4.0,
    });
    s.apply(Action::Finished {
        run: 1,
        index: 2,
        at_ms: 4.0,
        timing: None,
    });
    let run = s.current().unwrap();
    assert_eq!(run.count(Phase::Failed), 2);
    assert_eq!(run.count(Phase::Aborted), 1);
    assert_eq!(run.requests[2].error.as_deref(), Some("HTTP 504"));
    assert!(!run.is_live());
}

#[test]
fn runs_and_closed_lanes_are_bounded() {
    let mut s = fresh();
    for _ in 0..(MAX_RUNS + 2) {
        fire(&mut s, 1, |_| Credentials::Default);
    }
    assert_eq!(s.runs.len(), MAX_RUNS);
    assert_eq!(s.runs.front().unwrap().id, 3, "the oldest runs go first");
    for c in 1..=(MAX_CLOSED_LANES as u64 + 10) {
        s.apply(opened(c));
        s.apply(event(ServerEvent::ConnectionClosed {
            conn: ConnId(c),
            reason: CloseReason::PeerClosed,
            bytes_in: 0,
            bytes_out: 0,
            last_in_us: None,
            last_out_us: None,
            requests: 0,
            at_us: c,
        }));
    }
    assert_eq!(s.lanes.len(), MAX_CLOSED_LANES);
    assert!(!s.lanes.contains_key(&ConnId(1)), "the oldest go first");
}

#[test]
fn resource_timing_tells_new_from_reused() {
    let reused = ResourceTiming {
        fetch_start: 10.0,
        domain_lookup_start: 10.0,
        connect_start: 10.0,
        connect_end: 10.0,
        ..ResourceTiming::default()
    };
    assert!(!reused.new_connection());
    let fresh_conn = ResourceTiming {
        domain_lookup_start: 10.2,
        ..reused
    };
    assert!(fresh_conn.new_connection());
}

#[test]
fn a_batch_applies_in_order_and_a_run_id_is_never_reused() {
    let mut s = fresh();
    let compose = |id: u32| Action::RunStarted {
        id,
        settings: BurstSettings::default(),
        requests: vec![(
            "b1-1".into(),
            format!("{ORIGIN}/api/fast?id=b{id}-1"),
            pool(Credentials::Default),
        )],
        at_ms: 0.0,
        epoch_ms: 0.0,
    };
    // One frame: the run starts, its request is issued and reaches the server.
    s.apply(Action::Batch(vec![
        compose(1),
        Action::Issued {
            run: 1,
            index: 0,
            at_ms: 1.0,
        },
        opened(1),
        started(1, 1, 1, "b1-1", 2),
        compose(1), // a duplicate (a second click read the same id): ignored
    ]));
    assert_eq!(s.runs.len(), 1);
    assert_eq!(s.current().unwrap().requests[0].phase, Phase::AtServer);
    s.apply(compose(2));
    assert_eq!(s.runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(s.next_run(), 3);
}

#[test]
fn response_started_marks_the_lane_and_the_request_and_replies_change_nothing() {
    let mut s = fresh();
    let tags = fire(&mut s, 1, |_| Credentials::Default);
    s.apply(opened(1));
    s.apply(started(1, 7, 1, &tags[0], 10));
    s.apply(event(ServerEvent::ResponseStarted {
        conn: ConnId(1),
        request: RequestId(7),
        status: 504,
        at_us: 20_000,
    }));
    let lane_request = &s.lanes[&ConnId(1)].requests[0];
    assert_eq!(
        (lane_request.status, lane_request.response_us),
        (Some(504), Some(20_000))
    );
    assert_eq!(
        s.current().unwrap().requests[0].server_response_us,
        Some(20_000)
    );
    // Answers meant for this page alone leave the picture as it is.
    let before = s.clone();
    s.apply(Action::ServerBatch(vec![
        ServerEvent::Pong {
            client_time_ms: 1.0,
            server_us: 2,
        },
        ServerEvent::Released { count: 3 },
    ]));
    assert_eq!(s, before);
}

#[test]
fn a_refused_policy_change_bumps_the_revision_so_the_form_resets() {
    let mut s = fresh();
    let start = s.config_revision;
    s.apply(event(ServerEvent::Error(protocol::ErrorBody::new(
        "`idle_timeout_ms` = 5 is out of range",
        "send idle_timeout_ms between 100 and 600000 (ms)",
    ))));
    assert_eq!(s.config_revision, start + 1);
    assert!(s.server_error.as_deref().unwrap().contains("out of range"));
    // Not a refusal of a settings change (it names no message): not
    // counted as one.
    assert_eq!(s.settings_refused, 0);
    s.apply(event(ServerEvent::ConfigChanged {
        config: ServerPolicy::default(),
        session: None,
        locked: false,
        at_us: 1,
    }));
    assert_eq!(s.config_revision, start + 2);
}

// --- Attempts, counters and lanes (the timeline a room can trust) ---

use crate::tally::{ConnUse, Tally};
use crate::timeline::{Kind, LaneGroups, request_segments};

/// `connection_closed` of `conn` for `reason` at `at_ms` (server).
pub(crate) fn close(conn: u64, reason: CloseReason, at_ms: u64) -> Action {
    event(ServerEvent::ConnectionClosed {
        conn: ConnId(conn),
        reason,
        bytes_in: 0,
        bytes_out: 0,
        last_in_us: None,
        last_out_us: None,
        requests: 0,
        at_us: at_ms * 1000,
    })
}

/// What the server reports when a connection closes with a request still
/// unanswered on it: the request aborted, then the close.
fn dropped(conn: u64, request: u64, reason: CloseReason, at_ms: u64) -> Action {
    Action::Batch(vec![
        event(ServerEvent::RequestFinished {
            conn: ConnId(conn),
            request: RequestId(request),
            outcome: RequestOutcome::Aborted,
            at_us: at_ms * 1000,
        }),
        close(conn, reason, at_ms),
    ])
}

fn race() -> CloseReason {
    CloseReason::KeepAliveRace {
        method: "GET".into(),
        target: "/api/fast?id=b1-1".into(),
        close: protocol::RaceClose::Fin,
        on_purpose: true,
    }
}

fn attributed(conn: u64, s: &LabState) -> Action {
    event(ServerEvent::ConnectionAttributed {
        conn: ConnId(conn),
        session: s.session.clone(),
        at_us: 0,
    })
}

/// Every counter of the current run agrees with every other.
fn assert_consistent(s: &LabState, step: &str) {
    let run = s.current().unwrap();
    let t = Tally::of(run, s);
    let now = t.pending + t.waiting + t.at_server + t.downloading + t.done + t.failed + t.aborted;
    assert_eq!(
        now, t.total,
        "{step}: each request is in exactly one state: {t:?}"
    );
    assert_eq!(
        t.pools.iter().map(|p| p.waiting_now).sum::<usize>(),
        t.waiting,
        "{step}: the pools' waiting add up to the run's"
    );
    for p in &t.pools {
        assert!(
            p.queued >= p.waiting_now,
            "{step}: queued in the browser ({}) is never below waiting there now ({})",
            p.queued,
            p.waiting_now
        );
        assert!(p.max_conns <= p.conns, "{step}: {p:?}");
    }
    assert_eq!(
        t.at_server, t.busy_conns,
        "{step}: HTTP/1.1 holds one request per connection at the server"
    );
    let open_lanes: SortedSet<ConnId> = s
        .lanes
        .values()
        .filter(|l| l.closed.is_none())
        .map(|l| l.conn)
        .collect();
    for r in &run.requests {
        if r.phase == Phase::AtServer {
            assert!(
                r.conn.is_some_and(|c| open_lanes.contains(&c)),
                "{step}: {} is at the server on a connection that is open",
                r.tag
            );
        }
    }
    let summary = t.summary();
    for wrong in ["1 connections", "1 requests"] {
        assert!(
            !summary
                .match_indices(wrong)
                .any(|(i, _)| !summary[..i].ends_with(|c: char| c.is_ascii_digit())),
            "{step}: {summary}"
        );
    }
    if t.waiting > 0 && t.at_server > 0 {
        assert!(
            summary.contains(&format!(
                "holds {}",
                crate::tally::count(t.waiting, "request")
            )),
            "{summary}"
        );
    }
}

#[test]
fn a_re_sent_request_keeps_both_attempts_each_on_its_connection() {
    let mut s = fresh();
    let tags = fire(&mut s, 1, |_| Credentials::Default);
    s.apply(opened(1));
    s.apply(opened(2));
    // Attempt 1 on a kept-alive connection; the server closes it unanswered.
    s.apply(started(1, 1, 3, &tags[0], 5));
    s.apply(dropped(1, 1, race(), 6));
    let r = &s.current().unwrap().requests[0];
    assert_eq!(
        r.phase,
        Phase::Queued,
        "back in the browser, not 'at the server'"
    );
    assert_eq!(r.attempts[0].dropped, Some(race()));
    assert_consistent(&s, "dropped");
    // Chromium re-sends it on another connection; the page gets a 200.
    s.apply(started(2, 2, 1, &tags[0], 7));
    assert_consistent(&s, "re-sent");
    head(&mut s, 0, 2, 2, 1, 9.0);
    let r = &s.current().unwrap().requests[0];
    assert_eq!(r.attempts.len(), 2);
    let (first, second) = (&r.attempts[0], &r.attempts[1]);
    assert_eq!(
        (first.conn, first.seq, first.start_us, first.end_us),
        (ConnId(1), 3, 5000, Some(6000))
    );
    assert!(first.unanswered() && first.dropped == Some(race()));
    assert_eq!(
        (second.conn, second.seq, second.start_us),
        (ConnId(2), 1, 7000)
    );
    assert!(!second.unanswered());
    assert!(r.resent() && r.server_sightings == 2);
    assert_eq!(
        (r.conn, r.seq, r.server_start_us, r.phase),
        (Some(ConnId(2)), Some(1), Some(7000), Phase::Done),
        "the summary fields are the attempt that answered"
    );
    // Drawn as both attempts, not as one long queued bar.
    let segments = request_segments(r, &s.clock);
    let kinds: Vec<(Kind, Option<usize>)> = segments.iter().map(|s| (s.kind, s.attempt)).collect();
    assert_eq!(
        kinds,
        [
            (Kind::Queued, None),
            (Kind::Dropped, Some(0)),
            (Kind::Queued, None),
            (Kind::Waiting, Some(1)),
            (Kind::Downloading, Some(1)),
        ]
    );
    let spans: Vec<(f64, f64)> = segments.iter().map(|s| (s.from_ms, s.to_ms)).collect();
    assert_eq!(spans[..3], [(0.0, 5.0), (5.0, 6.0), (6.0, 7.0)]);
    assert_consistent(&s, "answered");
}

#[test]
fn the_attempt_that_answered_stays_the_requests_whatever_the_order_of_events() {
    let mut s = fresh();
    let tags = fire(&mut s, 1, |_| Credentials::Default);
    s.apply(opened(1));
    s.apply(opened(2));
    // The page's response (attempt 2, on c2) arrives before the server's
    // events reach it.
    head(&mut s, 0, 2, 2, 1, 9.0);
    s.apply(started(1, 1, 3, &tags[0], 5));
    s.apply(dropped(1, 1, race(), 6));
    s.apply(started(2, 2, 1, &tags[0], 7));
    let r = &s.current().unwrap().requests[0];
    assert_eq!(
        r.attempts.iter().map(|a| a.conn.0).collect::<Vec<_>>(),
        [1, 2],
        "in the server's order"
    );
    assert_eq!(
        (r.conn, r.request, r.phase),
        (Some(ConnId(2)), Some(RequestId(2)), Phase::Done)
    );
}

#[test]
fn a_hang_timeout_puts_its_requests_back_in_the_browser_and_every_counter_follows() {
    let mut s = fresh();
    let tags = fire(&mut s, 12, |_| Credentials::Default);
    assert_consistent(&s, "fired, nothing at the server");
    for c in 1..=6u64 {
        s.apply(opened(c));
        s.apply(attributed(c, &s.clone()));
        s.apply(started(c, c, 1, &tags[c as usize - 1], 5));
        assert_consistent(&s, "arriving");
    }
    let t = Tally::of(s.current().unwrap(), &s);
    assert_eq!((t.at_server, t.waiting, t.busy_conns), (6, 6, 6));
    assert_eq!(
        t.pools[0].queued, 6,
        "the six waiting now are queued in the browser"
    );
    // The server's hang timeout closes the six connections unanswered.
    for c in 1..=6u64 {
        s.apply(dropped(c, c, CloseReason::HangTimeout, 2000));
        assert_consistent(&s, "hang timeout");
    }
    let t = Tally::of(s.current().unwrap(), &s);
    assert_eq!(
        (t.at_server, t.waiting),
        (0, 12),
        "none of them is at the server any more"
    );
    // The six that waited go out on new connections; #1 and #2 are re-sent.
    for c in 7..=12u64 {
        s.apply(opened(c));
        s.apply(started(c, c, 1, &tags[c as usize - 1], 2001));
        assert_consistent(&s, "the queue moves");
    }
    for (i, c) in [(0, 13u64), (1, 14)] {
        s.apply(opened(c));
        s.apply(started(c, c, 1, &tags[i], 2002));
        assert_consistent(&s, "re-sent");
    }
    let t = Tally::of(s.current().unwrap(), &s);
    assert_eq!(
        (t.at_server, t.waiting, t.busy_conns, t.resent),
        (8, 4, 8, 2)
    );
    // Some answers, an abort, a failure.
    s.apply(finished(7, 7, 2100));
    head(&mut s, 6, 7, 7, 1, 2101.0);
    s.apply(Action::Failed {
        run: 1,
        index: 2,
        error: "AbortError".into(),
        aborted: true,
        at_ms: 2200.0,
    });
    s.apply(Action::Failed {
        run: 1,
        index: 3,
        error: "TypeError: Failed to fetch".into(),
        aborted: false,
        at_ms: 2200.0,
    });
    assert_consistent(&s, "mixed");
    let t = Tally::of(s.current().unwrap(), &s);
    assert_eq!((t.done, t.aborted, t.failed), (1, 1, 1));
}

#[test]
fn counters_agree_in_every_phase_mix_of_a_sequential_run() {
    let mut s = fresh();
    let run = s.next_run();
    s.apply(Action::RunStarted {
        id: run,
        settings: BurstSettings::default(),
        requests: (1..=4)
            .map(|i| {
                let tag = format!("b{run}-{i}");
                (
                    tag.clone(),
                    format!("{ORIGIN}/api/fast?id={tag}"),
                    pool(Credentials::Default),
                )
            })
            .collect(),
        at_ms: 0.0,
        epoch_ms: 0.0,
    });
    assert_consistent(&s, "composed, nothing sent");
    let t = Tally::of(s.current().unwrap(), &s);
    assert_eq!((t.pending, t.attempts), (4, 0));
    assert_eq!(t.summary(), "No request has reached the server yet.");
    s.apply(Action::Issued {
        run,
        index: 0,
        at_ms: 1.0,
    });
    assert_consistent(&s, "one issued");
    s.apply(opened(1));
    s.apply(started(1, 1, 1, "b1-1", 2));
    assert_consistent(&s, "one at the server");
    s.apply(event(ServerEvent::ResponseStarted {
        conn: ConnId(1),
        request: RequestId(1),
        status: 200,
        at_us: 2500,
    }));
    s.apply(Action::ResponseHead {
        run,
        index: 0,
        head: Head {
            conn: Some(ConnId(1)),
            request: Some(RequestId(1)),
            seq: Some(1),
            status: 200,
            keep_alive: Default::default(),
        },
        at_ms: 3.0,
    });
    let t = Tally::of(s.current().unwrap(), &s);
    assert_eq!((t.downloading, t.pending), (1, 3));
    assert_consistent(&s, "downloading");
}

/// A page that loaded over c1 (its files) and c2 (Chromium's spare), with
/// its events socket on c4, beside another client's connection c3.
fn loaded_page() -> LabState {
    loaded_page_of(&[("/", 1), ("/app.js", 2), ("/app_bg.wasm", 3)])
}

/// [`loaded_page`], its files on c1 being `files`.
fn loaded_page_of(files: &[(&str, u32)]) -> LabState {
    let mut s = fresh();
    let conn = |conn: u64,
                opened_us: u64,
                session: Option<SessionId>,
                upgraded,
                requests: &[(&str, u32)]| {
        ConnectionSnapshot {
            conn: ConnId(conn),
            opened_us,
            peer: format!("127.0.0.1:{}", 40000 + conn),
            local_addr: "127.0.0.1:8080".into(),
            local_port: 8080,
            session,
            upgraded,
            bytes_in: 0,
            bytes_out: 0,
            last_in_us: None,
            last_out_us: None,
            requests_total: requests.len() as u32,
            requests: requests
                .iter()
                .map(|(target, seq)| protocol::RequestSnapshot {
                    request: RequestId(100 + conn * 10 + u64::from(*seq)),
                    seq: *seq,
                    method: "GET".into(),
                    target: (*target).into(),
                    started_us: opened_us + 100,
                    response_us: Some(opened_us + 200),
                    finished_us: Some(opened_us + 300),
                    status: Some(200),
                    outcome: Some(RequestOutcome::Completed),
                })
                .collect(),
            protocol: None,
        }
    };
    let me = s.session.clone();
    s.apply(event(ServerEvent::Snapshot {
        now_us: 1_000_000,
        config: ServerPolicy::default(),
        listeners: vec![],
        session: None,
        locked: false,
        room_lesson: None,
        connections: vec![
            conn(1, 900_000, None, None, files),
            conn(2, 910_000, None, None, &[]),
            conn(3, 950_000, None, None, &[("/api/fast", 1)]),
            conn(
                4,
                990_000,
                Some(me),
                Some(UpgradeRole::Monitor),
                &[("/api/events", 1)],
            ),
        ],
    }));
    s
}

#[test]
fn every_participant_page_loads_over_a_page_load_connection() {
    // The lesson track, the workbench (a bundle of its own), and either one
    // taking over a handed-over session instead of asking for a new one.
    for files in [
        &[
            ("/", 1),
            ("/app.js", 2),
            ("/app_bg.wasm", 3),
            ("/api/sessions", 4),
        ][..],
        &[("/", 1), ("/workbench.js", 2), ("/workbench_bg.wasm", 3)][..],
        // A lesson page also asks for its TLS ports, the lessons and its
        // text as it starts (found when the spare-socket lesson counted
        // these connections out).
        &[
            ("/", 1),
            ("/app.js", 2),
            ("/api/tls", 3),
            ("/api/lessons", 4),
            ("/api/lessons/spare-socket", 5),
        ][..],
    ] {
        let s = loaded_page_of(files);
        let lane = |c: u64| s.lanes.get(&ConnId(c)).expect("a lane");
        assert!(s.is_page_load(lane(1)), "{files:?}");
        assert!(s.is_page_load(lane(2)), "the spare");
        assert!(!s.is_ours(lane(3)), "another client's");
    }
    // A handed-over session is checked with the server by name: that
    // request names the page's own session.
    let me = fresh().session;
    let check = format!("/api/config?session={me}");
    let s = loaded_page_of(&[("/", 1), ("/app.js", 2), (check.as_str(), 3)]);
    assert!(s.is_page_load(s.lanes.get(&ConnId(1)).expect("a lane")));
}

/// What each of a lane's requests is to the page is read once, when it is
/// recorded; the lane's verdicts follow its requests as they come and as the
/// oldest are forgotten.
#[test]
fn a_lane_stays_the_page_loads_while_it_carries_only_its_files_and_our_requests() {
    let mut s = loaded_page_of(&[("/", 1), ("/app.js", 2)]);
    let me = s.session.clone();
    let page_load = |s: &LabState| s.is_page_load(s.lanes.get(&ConnId(1)).expect("a lane"));
    let mut request = 0;
    let mut carry = |s: &mut LabState, target: String| {
        request += 1;
        let seq = s.lanes.get(&ConnId(1)).map_or(0, |l| l.requests_total) + 1;
        s.apply(event(ServerEvent::RequestStarted {
            conn: ConnId(1),
            request: RequestId(10_000 + request),
            seq,
            method: "GET".into(),
            target,
            connection: None,
            at_us: 2_000_000 + request,
        }));
    };
    assert!(page_load(&s));
    carry(&mut s, format!("/api/fast?tag=b1-1&session={me}"));
    assert!(page_load(&s), "our own request keeps it the page load's");
    carry(&mut s, "/api/fast?tag=b1-1&session=s-another".into());
    let lane = s.lanes.get(&ConnId(1)).expect("a lane");
    assert!(!s.is_page_load(lane), "another session's request on it");
    assert_eq!(lane.requests.last().map(|r| r.whose), Some(Whose::Other));
    // Once that request is forgotten (a lane keeps its latest requests),
    // the lane carries only the page's files and ours again.
    for _ in 0..crate::state::MAX_REQUESTS_PER_LANE {
        carry(&mut s, format!("/api/fast?session={me}"));
    }
    let lane = s.lanes.get(&ConnId(1)).expect("a lane");
    assert!(lane.requests.iter().all(|r| r.whose == Whose::Ours));
    assert!(page_load(&s) && s.is_ours(s.lanes.get(&ConnId(1)).expect("a lane")));
}

#[test]
fn the_page_load_connection_is_named_and_not_counted_as_a_reuse() {
    let mut s = loaded_page();
    let tags = fire(&mut s, 2, |_| Credentials::Default);
    let me = s.clone();
    // #1 goes on the page-load connection (its 4th request), #2 on the spare.
    s.apply(attributed(1, &me));
    s.apply(started(1, 1, 4, &tags[0], 1100));
    s.apply(attributed(2, &me));
    s.apply(started(2, 2, 1, &tags[1], 1100));
    let run = s.current().unwrap();
    let t = Tally::of(run, &s);
    assert_eq!(
        t.on_page_load,
        [
            (0, ConnId(1), ConnUse::PageLoad),
            (1, ConnId(2), ConnUse::Spare)
        ]
    );
    let p = &t.pools[0];
    assert_eq!((p.conns, p.opened, p.page_load, p.kept), (2, 0, 2, 0));
    assert_eq!(
        p.on,
        [0, 0, 0, 2],
        "neither went on a connection opened for the run, nor reused one"
    );
    for c in 1..=2u64 {
        s.apply(finished(c, c, 1200));
    }
    for i in 0..2u64 {
        head(
            &mut s,
            i as usize,
            i + 1,
            i + 1,
            if i == 0 { 4 } else { 1 },
            1201.0,
        );
    }
    let summary = Tally::of(s.current().unwrap(), &s).summary();
    assert!(
        summary.contains("#1 went on the page-load connection c1"),
        "{summary}"
    );
    assert!(
        summary.contains("#2 went on the spare connection c2 opened at page load"),
        "{summary}"
    );
    assert!(
        summary.contains("0 reused a connection of this run"),
        "{summary}"
    );
}

fn opened_at(conn: u64, at_ms: u64) -> Action {
    event(ServerEvent::ConnectionOpened {
        conn: ConnId(conn),
        at_us: at_ms * 1000,
        peer: format!("127.0.0.1:{}", 40000 + conn),
        local_addr: "127.0.0.1:8080".into(),
        local_port: 8080,
    })
}

/// A run of one request fired at 2 000 ms (page clock), which starts on a
/// new connection c8 of this page (`me`: the page as it was before).
fn run_on_new_connection_at_2_s(s: &mut LabState, me: &LabState) {
    let (run, tags) = compose(s, 1, |_| Credentials::Default, 2000.0);
    s.apply(Action::Issued {
        run,
        index: 0,
        at_ms: 2000.0,
    });
    s.apply(opened_at(8, 2000));
    s.apply(attributed(8, me));
    s.apply(started(8, 8, 1, &tags[0], 2001));
}

#[test]
fn only_this_pages_lanes_are_drawn_the_page_load_apart_earlier_collapsed_foreign_never() {
    let mut s = loaded_page();
    // After the page went live: curl from the same host, and another tab's
    // page load, neither carrying this page's requests.
    s.apply(opened_at(5, 1040));
    s.apply(event(ServerEvent::RequestStarted {
        conn: ConnId(5),
        request: RequestId(50),
        seq: 1,
        method: "GET".into(),
        target: "/api/slow?ms=10".into(),
        connection: None,
        at_us: 1_050_000,
    }));
    s.apply(opened_at(6, 1055));
    s.apply(event(ServerEvent::RequestStarted {
        conn: ConnId(6),
        request: RequestId(60),
        seq: 1,
        method: "GET".into(),
        target: "/".into(),
        connection: None,
        at_us: 1_060_000,
    }));
    // Run 1: #1 on the page-load connection, #2 on a new one (c7).
    let tags = fire(&mut s, 2, |_| Credentials::Default);
    let me = s.clone();
    s.apply(attributed(1, &me));
    s.apply(started(1, 1, 4, &tags[0], 1100));
    s.apply(opened_at(7, 1099));
    s.apply(attributed(7, &me));
    s.apply(started(7, 7, 1, &tags[1], 1100));
    for (i, c) in [(0usize, 1u64), (1, 7)] {
        s.apply(finished(c, c, 1150));
        head(&mut s, i, c, c, if c == 1 { 4 } else { 1 }, 1151.0);
    }
    let run1 = s.current().unwrap().clone();
    // Both close before run 2 (idle timeout); an earlier run's lanes.
    s.apply(close(1, CloseReason::IdleTimeout, 1300));
    s.apply(close(7, CloseReason::IdleTimeout, 1300));
    // Run 2 at 2000 ms, on a new connection c8.
    run_on_new_connection_at_2_s(&mut s, &me);

    let conns = |lanes: &[Rc<Lane>]| lanes.iter().map(|l| l.conn.0).collect::<Vec<_>>();
    let g = LaneGroups::of(&s, s.current().map(|r| &**r));
    assert_eq!(conns(&g.run), [8], "this run's connection");
    assert_eq!(conns(&g.page_load), [2], "the spare, still open, apart");
    assert_eq!(g.earlier, 2, "c1 and c7 closed before this run: one line");
    assert_eq!(
        g.foreign, 3,
        "curl (c3, c5) and the other tab (c6): never drawn"
    );
    assert_eq!(conns(&g.monitors), [4]);
    assert_eq!(g.uses, [Some(ConnUse::New)]);

    let g = LaneGroups::of(&s, Some(&run1));
    assert_eq!(conns(&g.run), [7], "run 1's own connection");
    assert_eq!(
        conns(&g.page_load),
        [1, 2],
        "the page load's, which run 1 used or overlapped"
    );
    assert_eq!(g.uses, [Some(ConnUse::PageLoad), Some(ConnUse::New)]);
    assert_eq!(g.foreign, 3);
}

#[test]
fn another_pages_request_with_the_same_tag_is_not_this_pages() {
    let mut s = fresh();
    fire(&mut s, 1, |_| Credentials::Default);
    s.apply(opened(1));
    s.apply(event(ServerEvent::RequestStarted {
        conn: ConnId(1),
        request: RequestId(1),
        seq: 1,
        method: "GET".into(),
        target: "/api/hang?id=b1-1&session=s-other".into(),
        connection: None,
        at_us: 5,
    }));
    let r = &s.current().unwrap().requests[0];
    assert!(r.attempts.is_empty() && r.phase == Phase::Queued, "{r:?}");
}

// ------------------------------------- identical URLs, reconnects, queued counts

#[test]
fn an_untagged_answer_that_comes_before_its_server_event_is_joined_when_the_event_does() {
    let mut s = fresh();
    fire_untagged(&mut s);
    s.apply(opened(4));
    head(&mut s, 0, 4, 9, 1, 5.0); // the page's head + body first
    s.apply(started_untagged(4, 9, 1, 3)); // then the server's events
    s.apply(finished(4, 9, 4));
    let run = s.current().unwrap();
    let r = &run.requests[0];
    assert_eq!(r.phase, Phase::Done);
    let t = Tally::of(run, &s);
    assert_eq!(
        (r.server_sightings, r.server_start_us, t.attempts),
        (1, Some(3000), 1),
        "summary: {}",
        t.summary()
    );
}

#[test]
fn a_connection_kept_from_an_untagged_run_counts_as_kept_not_reused() {
    let mut s = fresh();
    fire_untagged(&mut s); // run 1: identical URLs
    s.apply(opened(1));
    s.apply(started_untagged(1, 1, 1, 1));
    s.apply(finished(1, 1, 2));
    head(&mut s, 0, 1, 1, 1, 3.0);
    let tags = fire(&mut s, 1, |_| Credentials::Default); // run 2, tagged
    s.apply(started(1, 2, 2, &tags[0], 10)); // on run 1's connection
    let run = s.current().unwrap();
    assert_eq!(crate::tally::conn_use(&s, run, ConnId(1), 2), ConnUse::Kept);
    let p = &Tally::of(run, &s).pools[0];
    assert_eq!((p.kept, p.opened), (1, 0));
}

#[test]
fn a_request_that_waited_and_waits_again_counts_as_queued_once() {
    let mut s = fresh();
    let tags = fire(&mut s, 2, |_| Credentials::Default);
    s.apply(opened(1));
    s.apply(started(1, 1, 1, &tags[0], 5)); // #1 at once
    s.apply(finished(1, 1, 100));
    head(&mut s, 0, 1, 1, 1, 100.5);
    s.apply(started(1, 2, 2, &tags[1], 101)); // #2 waited for #1
    s.apply(dropped(1, 2, CloseReason::HangTimeout, 200)); // dropped: waits again
    let run = s.current().unwrap();
    let p = &Tally::of(run, &s).pools[0];
    assert_eq!(p.waiting_now, 1);
    assert_eq!(p.queued, 1, "only #2 was ever queued; #1 went out at once");
}

#[test]
fn after_a_reconnect_a_request_the_snapshot_shows_at_the_server_is_at_the_server() {
    let mut s = fresh();
    let tags = fire(&mut s, 1, |_| Credentials::Default);
    // The events socket was down while #1 reached the server; it reconnects.
    s.apply(snapshot(1, vec![snap(1, 1, &tags[0], 5_000, None)]));
    assert_eq!(s.current().unwrap().requests[0].phase, Phase::AtServer);
}

#[test]
fn after_a_reconnect_an_attempt_answered_meanwhile_is_never_called_dropped() {
    let mut s = fresh();
    let tags = fire(&mut s, 1, |_| Credentials::Default);
    s.apply(opened(1));
    s.apply(started(1, 1, 1, &tags[0], 5));
    // Socket down: the answer's events are missed; the page's steps are not.
    head(&mut s, 0, 1, 1, 1, 50.0);
    s.apply(snapshot(1, vec![snap(1, 1, &tags[0], 5_000, Some(49_000))]));
    // Later the idle connection is closed by the server.
    s.apply(close(1, CloseReason::IdleTimeout, 5000));
    let r = &s.current().unwrap().requests[0];
    assert_eq!(
        r.attempts[0].dropped, None,
        "it was answered, not dropped: {:?}",
        r.attempts[0]
    );
}

#[test]
fn after_events_dropped_the_snapshot_that_follows_puts_the_run_right_and_counts_one_gap() {
    let mut s = fresh();
    s.apply(snapshot(9, vec![]));
    assert_eq!(s.gaps, 0, "the first snapshot is no hole");
    let tags = fire(&mut s, 1, |_| Credentials::Default);
    s.apply(opened(1));
    s.apply(started(1, 1, 1, &tags[0], 5));
    head(&mut s, 0, 1, 1, 1, 50.0);
    // The page fell behind: connection 1's close was among what it missed.
    s.apply(event(ServerEvent::EventsDropped { count: 40 }));
    s.apply(snapshot(9, vec![]));
    assert_eq!((s.events_dropped, s.gaps), (40, 1), "one hole, not two");
    assert!(
        s.current().unwrap().in_flight.is_empty(),
        "connection 1 is gone: its attempt is no longer at the server"
    );
    assert!(s.lanes.get(&ConnId(1)).is_none(), "its close was missed");
    // A later reconnect is a hole of its own.
    s.apply(snapshot(9, vec![]));
    assert_eq!(s.gaps, 2);
}

#[test]
fn requests_aborted_while_queued_still_count_as_queued_in_the_browser() {
    let mut s = fresh();
    let tags = fire(&mut s, 12, |_| Credentials::Default);
    for c in 1..=6u64 {
        s.apply(opened(c));
        s.apply(started(c, c, 1, &tags[c as usize - 1], 5));
    }
    assert_eq!(Tally::of(s.current().unwrap(), &s).pools[0].queued, 6);
    // The page's client timeout (1 s) aborts all twelve.
    for index in 0..12 {
        s.apply(Action::Failed {
            run: 1,
            index,
            error: "AbortError".into(),
            aborted: true,
            at_ms: 1000.0,
        });
    }
    for c in 1..=6u64 {
        s.apply(dropped(c, c, CloseReason::PeerClosed, 1001));
    }
    let p = &Tally::of(s.current().unwrap(), &s).pools[0];
    assert_eq!(p.queued, 6, "#7-#12 waited in the browser their whole life");
}

#[test]
fn after_a_reconnect_an_earlier_page_loads_request_with_the_same_tag_is_not_joined() {
    let mut s = fresh();
    // Run 1 of this page, issued at 10 s; the session was handed over from
    // an earlier page load, whose own run 1 used the same tags.
    s.apply(Action::RunStarted {
        id: 1,
        settings: BurstSettings::default(),
        requests: vec![(
            "b1-1".into(),
            format!("{ORIGIN}/api/hang?id=b1-1&session=s-test"),
            pool(Credentials::Default),
        )],
        at_ms: 10_000.0,
        epoch_ms: 0.0,
    });
    s.apply(Action::Issued {
        run: 1,
        index: 0,
        at_ms: 10_000.0,
    });
    // The earlier page's b1-1 (at 5 ms) is still on the kept connection.
    s.apply(snapshot(1, vec![snap(1, 1, "b1-1", 5_000, Some(6_000))]));
    let r = &s.current().unwrap().requests[0];
    assert!(r.attempts.is_empty() && r.phase == Phase::Queued, "{r:?}");
    // This page's own, at 10.002 s, is.
    s.apply(snapshot(
        1,
        vec![
            snap(1, 1, "b1-1", 5_000, Some(6_000)),
            snap(2, 2, "b1-1", 10_002_000, None),
        ],
    ));
    let r = &s.current().unwrap().requests[0];
    assert_eq!(
        (r.attempts.len(), r.request, r.phase),
        (1, Some(RequestId(2)), Phase::AtServer)
    );
}

#[test]
fn a_sequential_request_issued_just_after_the_one_before_ended_did_not_queue() {
    // #1 answered at 100 ms (server); #2 issued at `second` (page), reaching
    // the server at 101 ms on #1's connection. The clocks agree, but the
    // sync (round trip 2 ms: ±1 ms) estimates the server 0.5 ms behind.
    let waits = |second: f64| {
        let mut s = LabState::new(SessionId::parse("s-test").unwrap());
        s.apply(Action::Clock(Sample {
            sent_ms: 0.0,
            received_ms: 2.0,
            server_us: 500,
        }));
        s.apply(Action::RunStarted {
            id: 1,
            settings: BurstSettings::default(),
            requests: (1..=2)
                .map(|n| {
                    let tag = format!("b1-{n}");
                    (
                        tag.clone(),
                        format!("{ORIGIN}/api/hang?id={tag}"),
                        pool(Credentials::Default),
                    )
                })
                .collect(),
            at_ms: 0.0,
            epoch_ms: 0.0,
        });
        for (index, at_ms) in [(0, 0.0), (1, second)] {
            s.apply(Action::Issued {
                run: 1,
                index,
                at_ms,
            });
        }
        s.apply(opened(1));
        s.apply(started(1, 1, 1, "b1-1", 5));
        s.apply(finished(1, 1, 100));
        s.apply(started(1, 2, 2, "b1-2", 101));
        s.current()
            .unwrap()
            .queued_in(&pool(Credentials::Default), &s.clock)
    };
    // Issued 0.2 ms after #1 ended (by the true clocks), which the sync puts
    // 0.3 ms before that end: not counted as waiting.
    assert_eq!(waits(100.2), vec![]);
    // Issued well before that end, it did wait (101 ms at the server is
    // 101.5 ms on the page's clock by the sync).
    assert_eq!(waits(95.0), vec![(1, Some(6.5))]);
}

#[test]
fn a_snapshot_tells_a_lane_its_protocol_so_a_reconnect_keeps_the_h2_label() {
    let mut s = fresh();
    s.apply(snapshot_speaking(9, Vec::new(), Some("h2")));
    assert_eq!(s.lanes[&ConnId(9)].protocol.as_deref(), Some("h2"));
}

/// The events socket closed with `code` and the server's `reason`.
fn socket_closed(code: u16, reason: &str) -> Action {
    Action::SocketClosed {
        code,
        reason: reason.into(),
    }
}

#[test]
fn a_refusal_for_a_cap_is_shown_in_the_servers_words_until_the_link_is_live_again() {
    let mut s = fresh();
    // The socket opened (the page does not count it live before its
    // snapshot) and was closed at once.
    let reason = "8 viewers already watch this session; close another tab of it";
    s.apply(socket_closed(1013, reason));
    assert_eq!(s.socket, SocketStatus::Closed, "the page tries again");
    assert_eq!(
        s.socket_problem.as_deref(),
        Some(
            "The server refused the live link (1013): 8 viewers already watch this session; \
             close another tab of it. The page tries again by itself, less and less often."
        )
    );
    // The next try is refused again, or drops without a word: the words stay.
    s.apply(Action::Socket(SocketStatus::Connecting));
    s.apply(socket_closed(1006, ""));
    assert!(s.socket_problem.as_deref().unwrap().contains(reason));
    assert_eq!(s.socket, SocketStatus::Closed);
    // Live again (its snapshot): the words go.
    s.apply(snapshot(1, Vec::new()));
    assert_eq!(s.socket_problem, None);
    assert_eq!(s.socket, SocketStatus::Open);
    // Not the composer's error: that is for the control messages.
    assert_eq!(s.server_error, None);
}

#[test]
fn a_refusal_that_retrying_will_not_change_stops_the_page_and_says_so() {
    let mut s = fresh();
    s.apply(socket_closed(
        1008,
        "this server does not know this session (it expired, or the server restarted); \
         reload the page for a new one",
    ));
    assert_eq!(s.socket, SocketStatus::Refused);
    assert_eq!(s.socket.name(), "refused");
    let shown = s.socket_problem.clone().unwrap();
    assert!(
        shown.starts_with(
            "The server refused the live link (1008): this server does not know this session"
        ),
        "{shown}"
    );
    assert!(
        shown.ends_with("The page does not retry by itself: reload the page."),
        "{shown}"
    );
    // Reconnect: the words that asked for it go; refused again, they are
    // back; a silent drop after it (retried every second) is not shown
    // under "press Reconnect".
    s.apply(Action::Socket(SocketStatus::Connecting));
    assert_eq!(s.socket, SocketStatus::Connecting);
    assert_eq!(s.socket_problem, None);
    s.apply(socket_closed(
        1008,
        "this server does not know this session",
    ));
    assert!(s.socket_problem.is_some());
    s.apply(Action::Socket(SocketStatus::Connecting));
    s.apply(socket_closed(1006, ""));
    assert_eq!(s.socket, SocketStatus::Closed);
    assert_eq!(s.socket_problem, None);
}

/// A live link the server ends with 1008 (a participant's view that fell
/// behind twice) is not a refusal: the page says "closed", and waits for
/// Reconnect as the server asked (review: it said "refused").
#[test]
fn a_live_link_ended_with_1008_is_closed_not_refused_and_waits_for_reconnect() {
    let mut s = fresh();
    s.apply(snapshot(1, Vec::new()));
    assert_eq!(s.socket, SocketStatus::Open, "live from its snapshot");
    s.apply(socket_closed(
        1008,
        "fell behind the event stream again (5000 events missed); reload to see a complete picture",
    ));
    assert_eq!(s.socket, SocketStatus::Ended);
    assert_eq!(s.socket.name(), "ended");
    assert!(s.socket.waits_for_reconnect());
    assert_eq!(reconnect_after_ms(1008, 0), None);
    let shown = s.socket_problem.clone().unwrap();
    assert!(
        shown.starts_with("The server closed the live link (1008): fell behind")
            && shown.ends_with("press Reconnect, or reload the page."),
        "{shown}"
    );
    // Refused before it was live: a refusal.
    let mut t = fresh();
    t.apply(socket_closed(
        1008,
        "that is not this server's instructor key",
    ));
    assert_eq!(t.socket, SocketStatus::Refused);
    assert!(t.socket.waits_for_reconnect());
}

#[test]
fn a_close_the_server_explains_is_shown_and_a_silent_drop_is_not() {
    let mut s = fresh();
    s.apply(socket_closed(1006, ""));
    assert_eq!(s.socket, SocketStatus::Closed);
    assert_eq!(s.socket_problem, None, "a drop: the status says it");
    s.apply(socket_closed(1001, "server shutting down"));
    assert_eq!(s.socket, SocketStatus::Closed);
    assert_eq!(
        s.socket_problem.as_deref(),
        Some(
            "The server closed the live link (1001): server shutting down. The page \
             reconnects by itself; reload for a complete picture."
        )
    );
}

#[test]
fn the_page_waits_longer_after_each_cap_refusal_and_not_at_all_after_1008() {
    assert_eq!(reconnect_after_ms(1008, 0), None);
    assert_eq!(reconnect_after_ms(1008, 3), None);
    let waits: Vec<_> = (1..=7).map(|n| reconnect_after_ms(1013, n)).collect();
    assert_eq!(
        waits,
        [2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000].map(Some)
    );
    assert_eq!(reconnect_after_ms(1013, u32::MAX), Some(30_000));
    for code in [1000, 1001, 1006, 1009, 1011] {
        assert_eq!(reconnect_after_ms(code, 0), Some(1_000), "{code}");
    }
}

/// The instructor moving the room counts a move each time; clearing the
/// room's lesson moves nobody and leaves the page's last move as it was.
#[test]
fn a_cleared_room_lesson_moves_nobody() {
    let mut s = fresh();
    let room = |lesson: Option<&str>| {
        event(ServerEvent::RoomLesson {
            lesson: lesson.map(str::to_owned),
        })
    };
    s.apply(room(Some("pools")));
    assert_eq!(s.room_lesson, Some(("pools".to_owned(), 0)));
    s.apply(room(None));
    assert_eq!(s.room_lesson, Some(("pools".to_owned(), 0)));
    s.apply(room(Some("pools")));
    assert_eq!(s.room_lesson, Some(("pools".to_owned(), 1)));
}

#[test]
fn a_run_starts_when_its_first_request_goes_out_not_when_it_was_fired() {
    // The page draws a run before its requests go out
    // (`services::burst::fire`): the run's clock, and its wall-clock start
    // for exports, move to its first request's issue, and no later one.
    let mut s = fresh();
    let (run, _) = compose(&mut s, 2, |_| Credentials::Default, 100.0);
    let start = |s: &LabState| {
        let r = s.current().unwrap();
        (r.started_ms, r.started_epoch_ms)
    };
    assert_eq!(start(&s), (100.0, 1.7e12));
    s.apply(Action::Issued {
        run,
        index: 0,
        at_ms: 112.5,
    });
    assert_eq!(start(&s), (112.5, 1.7e12 + 12.5));
    s.apply(Action::Issued {
        run,
        index: 1,
        at_ms: 113.0,
    });
    assert_eq!(start(&s), (112.5, 1.7e12 + 12.5));
    assert_eq!(s.current().unwrap().requests[1].issued_ms, Some(113.0));
}

#[test]
fn a_lessons_runs_joined_keep_every_request_and_each_ones_connection_use() {
    let mut s = fresh();
    // Run 1: two requests, one after the other, on c1.
    let first = fire(&mut s, 2, |_| Credentials::Default);
    s.apply(opened(1));
    for (i, tag) in first.iter().enumerate() {
        let (request, seq) = (i as u64 + 1, i as u32 + 1);
        s.apply(started(1, request, seq, tag, 10 * request));
        s.apply(finished(1, request, 10 * request + 5));
        head(&mut s, i, 1, request, seq, (10 * request + 6) as f64);
    }
    // Run 2: one request, on c1 kept alive from run 1.
    let second = fire(&mut s, 1, |_| Credentials::Default);
    s.apply(started(1, 3, 3, &second[0], 40));
    s.apply(finished(1, 3, 45));
    head(&mut s, 0, 1, 3, 3, 46.0);

    let runs: Vec<Rc<Run>> = s.runs.iter().cloned().collect();
    let joined = Run::joined(&runs).unwrap();
    assert!(joined.is_joined() && joined.joins(&runs));
    assert_eq!(joined.title(), "runs b1 and b2");
    assert_eq!(runs[1].title(), "run b2");
    let tags: Vec<&str> = joined.requests.iter().map(|r| r.tag.as_str()).collect();
    assert_eq!(
        tags,
        ["b1-1", "b1-2", "b2-1"],
        "every request, in the order fired"
    );
    assert!(
        joined
            .requests
            .iter()
            .zip(runs.iter().flat_map(|r| r.requests.iter()))
            .all(|(a, b)| Rc::ptr_eq(a, b)),
        "the same requests, not copies: a row that did not change is not drawn again"
    );
    assert_eq!(joined.started_ms, runs[0].started_ms);
    assert_eq!(joined.connections_used(), 1);
    assert!(!joined.is_live());
    // Each request's use as its own run saw it: the third was kept alive
    // from run 1, not reused within its run.
    let g = LaneGroups::of(&s, Some(&joined));
    assert_eq!(
        g.uses,
        [
            Some(ConnUse::New),
            Some(ConnUse::Reused),
            Some(ConnUse::Kept)
        ]
    );
    // One run is itself; none is nothing.
    assert!(Rc::ptr_eq(&Run::joined(&runs[1..]).unwrap(), &runs[1]));
    assert!(Run::joined(&[]).is_none());
}

#[test]
fn a_lessons_runs_joined_draw_the_connection_the_first_one_closed() {
    let mut s = loaded_page();
    let me = s.clone();
    // Run 1 on c7, closed by the server's idle timeout before run 2.
    let tags = fire(&mut s, 1, |_| Credentials::Default);
    s.apply(opened_at(7, 1099));
    s.apply(attributed(7, &me));
    s.apply(started(7, 7, 1, &tags[0], 1100));
    s.apply(finished(7, 7, 1150));
    head(&mut s, 0, 7, 7, 1, 1151.0);
    s.apply(close(7, CloseReason::IdleTimeout, 1300));
    // Run 2 at 2000 ms, on a new connection c8.
    run_on_new_connection_at_2_s(&mut s, &me);

    let conns = |lanes: &[Rc<Lane>]| lanes.iter().map(|l| l.conn.0).collect::<Vec<_>>();
    let last = LaneGroups::of(&s, s.current().map(|r| &**r));
    assert_eq!(
        conns(&last.run),
        [8],
        "the last run alone: c7 is folded away"
    );
    let runs: Vec<Rc<Run>> = s.runs.iter().cloned().collect();
    let joined = Run::joined(&runs).unwrap();
    assert!(joined.is_live(), "run 2 is still at the server");
    let g = LaneGroups::of(&s, Some(&joined));
    assert_eq!(
        conns(&g.run),
        [7, 8],
        "both runs' connections, c7 with its close"
    );
    assert_eq!(g.uses, [Some(ConnUse::New), Some(ConnUse::New)]);
}
