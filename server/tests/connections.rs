//! The life of one TCP connection as the event stream tells it: opened,
//! requests, and why it closed (FIN, RST, idle timeout, header read timeout,
//! shutdown).

mod common;

use std::time::Duration;

use common::{
    Client, Viewer, config_with_idle, eventually, kind, spawn_server, start_server,
    start_server_with, wait_for_hangs, within,
};
use keepalive_lab_server::listener::SHUTDOWN_GRACE;
use protocol::{CloseReason, ConnId, RequestOutcome, ServerEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The connection that carried the request whose target is `target`.
async fn conn_of_request(viewer: &mut Viewer, target: &str) -> (ConnId, protocol::RequestId) {
    match viewer
        .next_matching(
            &format!("request_started for {target}"),
            |e| matches!(e, ServerEvent::RequestStarted { target: t, .. } if t == target),
        )
        .await
    {
        ServerEvent::RequestStarted { conn, request, .. } => (conn, request),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn peer_close_is_reported_with_the_whole_story_of_the_connection() {
    let (addr, _lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;

    let mut client = Client::connect(addr).await;
    let response = client.get("/api/slow?ms=0").await;
    assert_eq!(response.status, 200);
    let conn = response.conn_id();
    let (sent, received) = (client.sent, client.received);
    assert_eq!(
        received, response.wire_len,
        "nothing more than one response"
    );
    // FIN from our side, then wait for the server to close too.
    within("shutdown", client.stream.shutdown())
        .await
        .expect("shut down the write half");
    assert!(client.read_to_close().await.is_empty());

    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::PeerClosed);
    assert_eq!(closed.requests, 1);
    assert!(
        closed.bytes_in >= sent as u64,
        "bytes_in {} < {sent} sent",
        closed.bytes_in
    );
    assert!(
        closed.bytes_out >= received as u64,
        "bytes_out {} < {received} received",
        closed.bytes_out
    );
    let reason = serde_json::to_value(&closed.reason).unwrap();
    assert_eq!(reason, serde_json::json!({"kind": "peer_closed"}));

    let story = viewer.events_for(conn);
    let kinds: Vec<String> = story.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "connection_opened",
            "request_started",
            "response_started",
            "request_finished",
            "connection_closed"
        ],
        "{story:#?}"
    );
    let request = response.request_id();
    match &story[1] {
        ServerEvent::RequestStarted {
            request: r,
            seq,
            method,
            target,
            ..
        } => {
            assert_eq!(*r, request);
            assert_eq!(*seq, 1);
            assert_eq!(method, "GET");
            assert_eq!(target, "/api/slow?ms=0");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &story[2],
        ServerEvent::ResponseStarted { request: r, status: 200, .. } if *r == request
    ));
    assert!(matches!(
        &story[3],
        ServerEvent::RequestFinished { request: r, outcome: RequestOutcome::Completed, .. }
            if *r == request
    ));
    match &story[0] {
        ServerEvent::ConnectionOpened {
            peer, local_port, ..
        } => {
            assert_eq!(*peer, client.stream.local_addr().unwrap().to_string());
            assert_eq!(*local_port, addr.port());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dropping_a_connection_is_a_peer_close_too() {
    let (addr, _lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;
    let mut client = Client::connect(addr).await;
    let first = client.get("/api/slow?ms=0").await;
    let second = client.get("/api/slow?ms=0").await;
    drop(client);
    let closed = viewer.closed(first.conn_id()).await;
    assert_eq!(closed.reason, CloseReason::PeerClosed);
    assert_eq!(closed.requests, 2);
    assert_eq!(second.conn_id(), first.conn_id());
}

#[tokio::test]
async fn reset_during_a_hang_is_a_peer_reset_and_aborts_the_request() {
    let (addr, lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;

    let mut client = Client::connect(addr).await;
    client
        .send_request("GET", "/api/hang?id=reset-me", b"")
        .await;
    let (conn, request) = conn_of_request(&mut viewer, "/api/hang?id=reset-me").await;
    wait_for_hangs(&lab, 1).await;
    // SO_LINGER 0: closing sends RST instead of FIN.
    client.stream.set_zero_linger().expect("SO_LINGER 0");
    drop(client);

    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::PeerReset, "{closed:?}");
    assert_eq!(closed.requests, 1);
    eventually("the hang to be dropped", || lab.hangs().is_empty()).await;

    let story = viewer.events_for(conn);
    let finished: Vec<&ServerEvent> = story
        .iter()
        .filter(|e| matches!(e, ServerEvent::RequestFinished { .. }))
        .collect();
    assert_eq!(finished.len(), 1, "finished exactly once: {story:#?}");
    assert!(
        matches!(
            finished[0],
            ServerEvent::RequestFinished { request: r, outcome: RequestOutcome::Aborted, .. }
                if *r == request
        ),
        "{story:#?}"
    );
    assert!(
        !story
            .iter()
            .any(|e| matches!(e, ServerEvent::ResponseStarted { .. })),
        "the hang never answered: {story:#?}"
    );
    assert_eq!(kind(story.last().unwrap()), "connection_closed");
}

#[tokio::test]
async fn fin_during_a_hang_is_a_peer_close_and_aborts_the_request() {
    let (addr, lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;

    let mut client = Client::connect(addr).await;
    client.send_request("GET", "/api/hang?id=fin-me", b"").await;
    let (conn, request) = conn_of_request(&mut viewer, "/api/hang?id=fin-me").await;
    wait_for_hangs(&lab, 1).await;
    drop(client);

    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::PeerClosed, "{closed:?}");
    eventually("the hang to be dropped", || lab.hangs().is_empty()).await;
    assert!(viewer.events_for(conn).iter().any(|e| matches!(
        e,
        ServerEvent::RequestFinished { request: r, outcome: RequestOutcome::Aborted, .. }
            if *r == request
    )));
}

const SHORT_IDLE: Duration = Duration::from_millis(300);

/// The header-read guard is fixed for the server (`Config::header_read_timeout`,
/// 10 s by default) and no longer follows the idle timeout: tests of the guard
/// shorten it themselves.
const SHORT_GUARD: Duration = Duration::from_millis(300);

/// [`config_with_idle`] with the header-read guard shortened too.
fn config_with_short_guard() -> keepalive_lab_server::Config {
    keepalive_lab_server::Config {
        header_read_timeout: SHORT_GUARD,
        ..config_with_idle(SHORT_IDLE)
    }
}

#[tokio::test]
async fn idle_kept_alive_connection_is_closed_with_idle_timeout() {
    let (addr, _lab) = start_server_with(config_with_idle(SHORT_IDLE)).await;
    let mut viewer = Viewer::connect(addr).await;
    let mut client = Client::connect(addr).await;
    let response = client.get("/api/slow?ms=0").await;
    assert_eq!(response.status, 200);
    // Sit idle: the server closes the connection.
    assert!(client.read_to_close().await.is_empty(), "closed silently");
    let closed = viewer.closed(response.conn_id()).await;
    assert_eq!(closed.reason, CloseReason::IdleTimeout, "{closed:?}");
    assert_eq!(closed.requests, 1);
}

#[tokio::test]
async fn half_sent_request_head_is_closed_with_header_read_timeout() {
    let (addr, _lab) = start_server_with(config_with_short_guard()).await;
    let mut viewer = Viewer::connect(addr).await;
    let mut client = Client::connect(addr).await;
    let local = client.stream.local_addr().unwrap().to_string();
    client.send_raw(b"GET /api/slow?ms=0 HTTP/1.1\r\nHo").await;
    client.read_to_close().await;
    let conn = opened_from(&mut viewer, &local).await;
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::HeaderReadTimeout, "{closed:?}");
    assert_eq!(closed.requests, 0);
    assert_eq!(closed.bytes_in, client.sent as u64);
}

#[tokio::test]
async fn stall_in_the_second_request_head_is_a_header_read_timeout() {
    let (addr, _lab) = start_server_with(config_with_short_guard()).await;
    let mut viewer = Viewer::connect(addr).await;
    let mut client = Client::connect(addr).await;
    let response = client.get("/api/slow?ms=0").await;
    client.send_raw(b"GET /api/slow?ms=0 HTTP/1.1\r\n").await;
    client.read_to_close().await;
    let closed = viewer.closed(response.conn_id()).await;
    assert_eq!(closed.reason, CloseReason::HeaderReadTimeout, "{closed:?}");
    assert_eq!(closed.requests, 1);
}

#[tokio::test]
async fn a_slow_head_within_the_guard_outlives_a_shorter_idle_timeout() {
    // The idle timer runs only while nothing arrives; once a head has begun,
    // the (fixed, 10 s) header-read guard applies instead, whatever the
    // owner's idle timeout.
    let (addr, _lab) = start_server_with(config_with_idle(SHORT_IDLE)).await;
    let mut viewer = Viewer::connect(addr).await;
    let mut client = Client::connect(addr).await;
    let first = client.get("/api/fast?id=1").await;
    client.send_raw(b"GET /api/fast?id=2 HTTP/1.1\r\n").await;
    tokio::time::sleep(SHORT_IDLE * 3).await;
    client.send_raw(b"\r\n").await;
    let second = client.read_response().await;
    assert_eq!(second.status, 200);
    assert_eq!(second.conn_id(), first.conn_id(), "not closed as idle");
    // Idle again afterwards: the short idle timeout closes it.
    assert!(client.read_to_close().await.is_empty());
    let closed = viewer.closed(first.conn_id()).await;
    assert_eq!(closed.reason, CloseReason::IdleTimeout);
    assert_eq!(closed.requests, 2);
}

#[tokio::test]
async fn silent_connection_is_closed_with_idle_timeout() {
    let (addr, _lab) = start_server_with(config_with_idle(SHORT_IDLE)).await;
    let mut viewer = Viewer::connect(addr).await;
    let mut client = Client::connect(addr).await;
    let local = client.stream.local_addr().unwrap().to_string();
    assert!(client.read_to_close().await.is_empty(), "closed silently");
    let conn = opened_from(&mut viewer, &local).await;
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::IdleTimeout, "{closed:?}");
    assert_eq!(
        (closed.requests, closed.bytes_in, closed.bytes_out),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn upgraded_viewer_outlives_the_idle_timeout() {
    let (addr, _lab) = start_server_with(config_with_idle(SHORT_IDLE)).await;
    let mut watcher = Viewer::connect(addr).await;
    let mut quiet = Viewer::connect(addr).await;
    let quiet_conn = quiet.conn_of_viewer(&quiet);
    // Two idle timeouts of other connections prove that time has passed.
    let mut client = Client::connect(addr).await;
    let response = client.get("/api/slow?ms=0").await;
    client.read_to_close().await;
    watcher.closed(response.conn_id()).await;
    let mut silent = Client::connect(addr).await;
    silent.read_to_close().await;
    // The quiet viewer is still served: a ping is answered.
    quiet
        .send_text(r#"{"type":"ping","client_time_ms":1}"#)
        .await;
    assert!(matches!(quiet.next_reply().await, ServerEvent::Pong { .. }));
    assert!(
        !watcher
            .events_for(quiet_conn)
            .iter()
            .any(|e| kind(e) == "connection_closed"),
        "the quiet viewer's connection was not closed: {:#?}",
        watcher.seen
    );
}

/// The id of the connection opened from the client address `local`.
async fn opened_from(viewer: &mut Viewer, local: &str) -> ConnId {
    match viewer
        .next_matching(
            &format!("connection_opened from {local}"),
            |e| matches!(e, ServerEvent::ConnectionOpened { peer, .. } if peer == local),
        )
        .await
    {
        ServerEvent::ConnectionOpened { conn, .. } => conn,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn shutdown_answers_hangs_closes_every_connection_and_ends_serve() {
    let (addr, lab, serve) = spawn_server(common::config()).await;
    // A subscriber that outlives the shutdown, to see every close.
    let (_, mut events) = lab.subscribe(None);
    let mut viewer = Viewer::connect(addr).await;

    let mut hanging = Client::connect(addr).await;
    hanging.send_request("GET", "/api/hang?id=held", b"").await;
    let mut idle = Client::connect(addr).await;
    let idle_conn = idle.get("/api/slow?ms=0").await.conn_id();
    let (hang_conn, _) = conn_of_request(&mut viewer, "/api/hang?id=held").await;
    wait_for_hangs(&lab, 1).await;
    let viewer_conn = viewer.conn_of_viewer(&viewer);

    lab.begin_shutdown();

    let answer = hanging.read_response().await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    answer.error_body();
    hanging.read_to_close().await;
    assert!(
        idle.read_to_close().await.is_empty(),
        "idle closed silently"
    );
    viewer.read_until_end().await;

    let result = within(
        "the accept loop to finish",
        tokio::time::timeout(SHUTDOWN_GRACE * 2, serve),
    )
    .await;
    result
        .expect("serve ends within its grace period")
        .expect("serve task did not panic")
        .expect("serve returns Ok");
    assert!(
        lab.tracker().connections().is_empty(),
        "every connection closed before serve returned"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );

    let mut closes = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let ServerEvent::ConnectionClosed { conn, reason, .. } = event {
            closes.push((conn, reason));
        }
    }
    let reasons_of = |conn: ConnId| -> Vec<&CloseReason> {
        closes
            .iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, r)| r)
            .collect()
    };
    for conn in [hang_conn, idle_conn] {
        assert_eq!(
            reasons_of(conn),
            [&CloseReason::Shutdown],
            "{conn}: {closes:?}"
        );
    }
    // The viewer's own connection closes once too, for the same reason.
    assert_eq!(
        reasons_of(viewer_conn),
        [&CloseReason::Shutdown],
        "{viewer_conn}: {closes:?}"
    );
}

/// The record keeps each request's `Connection` header as received: what
/// tells a client's `keep-alive` from its `close` on the wire (Node's
/// `keepAlive: false` still sends `keep-alive`), every value of a repeated
/// header, and nothing when the request had none.
#[tokio::test]
async fn each_request_records_its_connection_header_as_received() {
    let (addr, _lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;
    let mut client = Client::connect(addr).await;
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);
    let cases: [Case<'_>; 3] = [
        ("/api/fast?id=none", &[], None),
        (
            "/api/fast?id=two",
            &[("Connection", "keep-alive"), ("Connection", "X-Custom")],
            Some("keep-alive, X-Custom"),
        ),
        (
            "/api/fast?id=close",
            &[("Connection", "close")],
            Some("close"),
        ),
    ];
    for (target, headers, expected) in cases {
        client.send_request_with("GET", target, headers, b"").await;
        assert_eq!(client.read_response().await.status, 200);
        let started = viewer
            .next_matching(
                &format!("request_started for {target}"),
                |e| matches!(e, ServerEvent::RequestStarted { target: t, .. } if t == target),
            )
            .await;
        let ServerEvent::RequestStarted { connection, .. } = started else {
            unreachable!()
        };
        assert_eq!(connection.as_deref(), expected, "{target}");
    }
}

#[tokio::test]
async fn what_nobody_watched_is_recorded_with_the_heads_and_stamps_it_had_on_the_wire() {
    // With nobody listening, a small answer's head is kept for its request's
    // end and recorded with it (one update of the table instead of two: bench
    // figure 1), a trickled one's when it is handed over. A viewer who comes
    // later finds both with their status, and stamps in the order the wire
    // had them: the head was read, the response's head handed over, its last
    // byte written.
    let (addr, lab) = start_server().await;
    let mut client = Client::connect(addr).await;
    let fast = client.get("/api/fast?id=unwatched").await;
    assert_eq!(fast.status, 200);
    let mut trickle = Client::connect(addr).await;
    trickle
        .send_raw(
            format!(
                "GET /api/drip?bytes=40&chunks=4&interval_ms=400 HTTP/1.1\r\nHost: {addr}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    // The trickled answer's head is out (its first chunk follows it at once).
    let mut first = [0u8; 64];
    let read = within("the trickled head", trickle.stream.read(&mut first))
        .await
        .expect("read");
    assert!(
        first[..read].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &first[..read]
    );

    let (_, connections, _rx) = lab.tracker().subscribe();
    let record = |conn: ConnId| {
        connections
            .iter()
            .find(|c| c.conn == conn)
            .unwrap_or_else(|| panic!("{conn:?} is open: {connections:?}"))
    };
    let fast_record = record(fast.conn_id())
        .requests
        .iter()
        .find(|r| r.request == fast.request_id())
        .expect("the fast request is kept");
    assert_eq!(fast_record.status, Some(200));
    assert_eq!(fast_record.outcome, Some(RequestOutcome::Completed));
    let head = fast_record.response_us.expect("its head's stamp");
    let end = fast_record.finished_us.expect("its end's stamp");
    assert!(
        fast_record.started_us <= head && head <= end,
        "started {} <= head {head} <= end {end}",
        fast_record.started_us
    );
    let trickled: Vec<_> = connections
        .iter()
        .flat_map(|c| &c.requests)
        .filter(|r| r.target.starts_with("/api/drip"))
        .collect();
    assert_eq!(trickled.len(), 1, "{connections:?}");
    assert_eq!(
        trickled[0].status,
        Some(200),
        "its head is recorded while its body trickles"
    );
    assert!(trickled[0].response_us.is_some() && trickled[0].outcome.is_none());
}
