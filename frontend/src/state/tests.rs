use super::*;
use crate::settings::BurstSettings;

const ORIGIN: &str = "http://127.0.0.1:8080";

fn fresh() -> LabState {
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

fn event(e: ServerEvent) -> Action {
    Action::ServerBatch(vec![e])
}

fn opened(conn: u64) -> Action {
    event(ServerEvent::ConnectionOpened {
        conn: ConnId(conn),
        at_us: conn * 10,
        peer: format!("127.0.0.1:{}", 40000 + conn),
        local_addr: "127.0.0.1:8080".into(),
        local_port: 8080,
    })
}

fn started(conn: u64, request: u64, seq: u32, tag: &str, at_ms: u64) -> Action {
    event(ServerEvent::RequestStarted {
        conn: ConnId(conn),
        request: RequestId(request),
        seq,
        method: "GET".into(),
        target: format!("/api/hang?id={tag}&session=s-test"),
        at_us: at_ms * 1000,
    })
}

fn finished(conn: u64, request: u64, at_ms: u64) -> Action {
    event(ServerEvent::RequestFinished {
        conn: ConnId(conn),
        request: RequestId(request),
        outcome: RequestOutcome::Completed,
        at_us: at_ms * 1000,
    })
}

/// Composes and issues a run of `n` requests at page time 0; returns tags.
fn fire(s: &mut LabState, n: usize, credentials: impl Fn(usize) -> Credentials) -> Vec<String> {
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
        id: s.next_run(),
        settings: BurstSettings::default(),
        requests,
        at_ms: 0.0,
        epoch_ms: 1.7e12,
    });
    for index in 0..n {
        s.apply(Action::Issued {
            run,
            index,
            at_ms: 0.0,
        });
    }
    tags
}

fn head(s: &mut LabState, index: usize, conn: u64, request: u64, seq: u32, at_ms: f64) {
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
    assert_eq!(run.reused(), 6);
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
    assert!(s.lanes[&ConnId(3)].is_http());
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

#[test]
fn identical_url_requests_are_matched_by_request_id() {
    let mut s = fresh();
    let run = s.next_run();
    s.apply(Action::RunStarted {
        id: s.next_run(),
        settings: BurstSettings::default(),
        requests: vec![(
            "b1-1".into(),
            format!("{ORIGIN}/api/fast"),
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
    s.apply(opened(4));
    s.apply(event(ServerEvent::RequestStarted {
        conn: ConnId(4),
        request: RequestId(9),
        seq: 1,
        method: "GET".into(),
        target: "/api/fast".into(),
        at_us: 3000,
    }));
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
fn monitor_and_spare_connections_do_not_count() {
    let mut s = fresh();
    s.apply(opened(1));
    s.apply(opened(2));
    s.apply(started(2, 1, 1, "x", 1));
    s.apply(event(ServerEvent::ConnectionUpgraded {
        conn: ConnId(2),
        role: UpgradeRole::Monitor,
        at_us: 3,
    }));
    s.apply(opened(3));
    s.apply(started(3, 2, 1, "y", 1));
    let http: Vec<u64> = s
        .lanes
        .values()
        .filter(|l| l.is_http())
        .map(|l| l.conn.0)
        .collect();
    assert_eq!(http, vec![3], "1 never carried a request, 2 is the monitor");
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
    s.apply(event(ServerEvent::Snapshot {
        now_us: 100,
        config: ServerPolicy::default(),
        listeners: vec!["127.0.0.1:8080".into(), "127.0.0.1:8081".into()],
        session: None,
        locked: false,
        room_lesson: None,
        connections: vec![ConnectionSnapshot {
            conn: ConnId(3),
            opened_us: 50,
            peer: "127.0.0.1:1".into(),
            local_addr: "127.0.0.1:8080".into(),
            local_port: 8080,
            session: None,
            upgraded: None,
            bytes_in: 0,
            bytes_out: 0,
            last_in_us: None,
            last_out_us: None,
            requests_total: 1,
            requests: vec![protocol::RequestSnapshot {
                request: RequestId(7),
                seq: 1,
                method: "GET".into(),
                target: "/api/hang?id=z".into(),
                started_us: 60,
                response_us: None,
                finished_us: None,
                status: None,
                outcome: None,
            }],
        }],
    }));
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
    s.apply(event(ServerEvent::Error(protocol::ErrorBody {
        error: "`idle_timeout_ms` = 5 is out of range".into(),
        hint: "send idle_timeout_ms between 100 and 600000 (ms)".into(),
    })));
    assert_eq!(s.config_revision, start + 1);
    assert!(s.server_error.as_deref().unwrap().contains("out of range"));
    s.apply(event(ServerEvent::ConfigChanged {
        config: ServerPolicy::default(),
        session: None,
        locked: false,
        at_us: 1,
    }));
    assert_eq!(s.config_revision, start + 2);
}
