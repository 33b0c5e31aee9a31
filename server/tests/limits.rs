//! Limits that keep one client from taking the server: per-session caps on
//! hangs and on requests in flight, the request head size, the WebSocket
//! message size, and the event buffer of a viewer that falls behind.

mod common;

use std::convert::Infallible;

use axum::extract::ws::Message;
use common::{
    Client, Viewer, eventually, get_once, session, start_server, start_server_with, within,
};
use futures_util::StreamExt;
use keepalive_lab_server::events::{self, MAX_MESSAGE_BYTES, Scope};
use keepalive_lab_server::sessions::{Access, Owner};
use keepalive_lab_server::{Config, Lab};
use protocol::{CloseReason, ServerEvent};

#[tokio::test]
async fn a_session_may_hold_only_its_share_of_hangs() {
    let (addr, lab) = start_server_with(Config {
        max_hangs_per_session: 2,
        ..common::config()
    })
    .await;
    let a = common::issue_session(addr).await;
    let b = common::issue_session(addr).await;
    let mut held = Vec::new();
    for tag in ["a1", "a2"] {
        let mut client = Client::connect(addr).await;
        client
            .send_request("GET", &format!("/api/hang?session={a}&id={tag}"), b"")
            .await;
        held.push(client);
    }
    common::wait_for_hangs(&lab, 2).await;

    let refused = get_once(addr, &format!("/api/hang?session={a}&id=a3")).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(refused.error_body().error.contains("per session"));
    assert_eq!(lab.hangs().len(), 2);

    // Another session still can.
    let mut other = Client::connect(addr).await;
    other
        .send_request("GET", &format!("/api/hang?session={b}&id=b1"), b"")
        .await;
    common::wait_for_hangs(&lab, 3).await;

    assert_eq!(
        common::release(addr, &format!("?key={}", common::KEY), "").await,
        3,
        "the instructor releases every session's hangs"
    );
    for client in held.iter_mut().chain([&mut other]) {
        assert_eq!(client.read_response().await.status, 200);
    }
}

#[tokio::test]
async fn a_session_may_have_only_its_share_of_requests_in_flight() {
    let (addr, lab) = start_server_with(Config {
        max_in_flight_per_session: 2,
        ..common::config()
    })
    .await;
    let a_id = common::issue_session(addr).await;
    let b_id = common::issue_session(addr).await;
    let a = Owner::Session(session(&a_id));
    let mut slow = Vec::new();
    for i in 0..2 {
        let mut client = Client::connect(addr).await;
        client
            .send_request(
                "GET",
                &format!("/api/slow?ms=2000&session={a_id}&id={i}"),
                b"",
            )
            .await;
        slow.push(client);
    }
    eventually("a's 2 requests in flight", || {
        lab.sessions().in_flight(&a) == 2
    })
    .await;

    // The third is refused at once: the first two are still in flight.
    let refused = get_once(addr, &format!("/api/slow?ms=2000&session={a_id}&id=2")).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    refused.error_body();
    assert_eq!(lab.sessions().in_flight(&a), 2);
    for client in &slow {
        assert!(!client.has_pending_bytes(), "still in flight");
    }
    // Another session is not affected.
    let other = get_once(addr, &format!("/api/slow?ms=0&session={b_id}")).await;
    assert_eq!(other.status, 200);

    for client in &mut slow {
        assert_eq!(client.read_response().await.status, 200);
    }
    eventually("a's requests to end", || lab.sessions().in_flight(&a) == 0).await;
    assert_eq!(
        get_once(addr, &format!("/api/slow?ms=0&session={a_id}"))
            .await
            .status,
        200,
        "a may send again"
    );

    // A closed tab leaves nothing behind: requests cut off by the client
    // give their places back.
    let c_id = common::issue_session(addr).await;
    let mut tab = Vec::new();
    for i in 0..2 {
        let mut client = Client::connect(addr).await;
        client
            .send_request(
                "GET",
                &format!("/api/slow?ms=60000&session={c_id}&id={i}"),
                b"",
            )
            .await;
        tab.push(client);
    }
    let c = Owner::Session(session(&c_id));
    eventually("c's requests in flight", || {
        lab.sessions().in_flight(&c) == 2
    })
    .await;
    drop(tab);
    eventually("every session to be forgotten", || {
        lab.sessions().active() == 0
    })
    .await;
}

#[tokio::test]
async fn an_oversized_request_head_gets_431_and_the_server_keeps_serving() {
    let (addr, lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;
    let mut client = Client::connect(addr).await;
    let big = "x".repeat(20 * 1024);
    assert!(big.len() > lab.config().max_header_bytes);
    client
        .send_request_with("GET", "/api/fast", &[("X-Big", &big)], b"")
        .await;
    let response = client.read_response().await;
    assert_eq!(response.status, 431, "{response:?}");
    client.read_to_close().await;
    let conn = viewer.opened_from(client.local_addr()).await;
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.requests, 0, "no request was started: {closed:?}");

    let mut next = Client::connect(addr).await;
    assert_eq!(next.get("/api/fast").await.status, 200);
    // A head just under the limit is fine.
    let fits = "y".repeat(8 * 1024);
    next.send_request_with("GET", "/api/fast", &[("X-Fits", &fits)], b"")
        .await;
    assert_eq!(next.read_response().await.status, 200);
}

#[tokio::test]
async fn an_oversized_websocket_message_ends_that_viewer_only() {
    let (addr, _lab) = start_server().await;
    let mut watcher = Viewer::connect(addr).await;
    let mut greedy = Viewer::connect(addr).await;
    let greedy_conn = greedy.conn_of_viewer(&greedy);

    greedy
        .send_text(&"x".repeat(MAX_MESSAGE_BYTES + 1024))
        .await;
    greedy.read_until_end().await;
    assert!(greedy.ended);
    assert!(
        !greedy
            .seen
            .iter()
            .any(|e| matches!(e, ServerEvent::Pong { .. } | ServerEvent::Released { .. })),
        "{:#?}",
        greedy.seen
    );
    let closed = watcher.closed(greedy_conn).await;
    assert!(
        !matches!(
            closed.reason,
            CloseReason::PeerClosed | CloseReason::PeerReset
        ),
        "the server ended it, not the client: {closed:?}"
    );

    // The watcher and new viewers are served as before.
    watcher
        .send_text(r#"{"type":"ping","client_time_ms":1}"#)
        .await;
    assert!(matches!(
        watcher.next_reply().await,
        ServerEvent::Pong { .. }
    ));
    let mut fresh = Viewer::connect(addr).await;
    fresh
        .send_text(r#"{"type":"ping","client_time_ms":2}"#)
        .await;
    assert!(matches!(fresh.next_reply().await, ServerEvent::Pong { .. }));
    assert_eq!(get_once(addr, "/api/fast").await.status, 200);
}

#[tokio::test]
async fn a_message_just_under_the_limit_is_answered() {
    let (addr, _lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;
    // A valid ping padded with whitespace to just under 16 KiB.
    let message = format!(
        r#"{{"type":"ping","client_time_ms":3{}}}"#,
        " ".repeat(MAX_MESSAGE_BYTES - 64)
    );
    viewer.send_text(&message).await;
    assert!(matches!(
        viewer.next_reply().await,
        ServerEvent::Pong { .. }
    ));
}

/// A viewer driven through [`events::run_viewer`] whose outgoing messages
/// go into a channel of capacity 1: when the test stops reading, the viewer
/// stops reading the event stream too, exactly like one on a slow socket.
fn slow_viewer(lab: &Lab) -> tokio::sync::mpsc::Receiver<Message> {
    slow_viewer_of(lab, Scope::new(Access::All, None))
}

/// [`slow_viewer`] with a scope of its own (a participant's).
fn slow_viewer_of(lab: &Lab, scope: Scope) -> tokio::sync::mpsc::Receiver<Message> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Message>(1);
    let sink = Box::pin(futures_util::sink::unfold(
        tx,
        |tx, message: Message| async move {
            tx.send(message).await.map_err(|_| ())?;
            Ok::<_, ()>(tx)
        },
    ));
    let incoming = futures_util::stream::pending::<Result<Message, Infallible>>();
    tokio::spawn(events::run_viewer(lab.clone(), None, scope, sink, incoming));
    rx
}

async fn next_message(rx: &mut tokio::sync::mpsc::Receiver<Message>) -> Option<Message> {
    within("a message to the slow viewer", rx.recv()).await
}

async fn next_event(rx: &mut tokio::sync::mpsc::Receiver<Message>) -> ServerEvent {
    match next_message(rx).await {
        Some(Message::Text(text)) => serde_json::from_str(text.as_str())
            .unwrap_or_else(|e| panic!("not a ServerEvent ({e}): {}", text.as_str())),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Sends `n` requests on fresh connections while the slow viewer is not
/// read, and waits until their connections have closed (so every event of
/// the flood has been emitted); returns the last one's request id.
async fn flood(lab: &Lab, addr: std::net::SocketAddr, tag: &str, n: usize) -> protocol::RequestId {
    let mut last = None;
    for i in 0..n {
        let response = get_once(addr, &format!("/api/fast?id={tag}-{i}")).await;
        assert_eq!(response.status, 200);
        last = Some(response.request_id());
    }
    eventually("the flood's connections to close", || {
        lab.tracker().open_count() == 0
    })
    .await;
    last.expect("at least one request")
}

/// A lab whose viewers' feeds hold 16 events: a few requests overflow one.
fn small_buffers() -> Config {
    Config {
        event_buffer: 16,
        ..common::config()
    }
}

/// Past a new slow viewer's snapshot, a flood that puts it behind once, up
/// to its `events_dropped`.
async fn behind_once(
    lab: &Lab,
    addr: std::net::SocketAddr,
    rx: &mut tokio::sync::mpsc::Receiver<Message>,
) {
    past_snapshot(rx).await;
    flood(lab, addr, "first", 10).await;
    while !matches!(next_event(rx).await, ServerEvent::EventsDropped { .. }) {}
}

/// Reads a new viewer's first message, its snapshot.
async fn past_snapshot(rx: &mut tokio::sync::mpsc::Receiver<Message>) {
    assert!(matches!(next_event(rx).await, ServerEvent::Snapshot { .. }));
}

#[tokio::test]
async fn a_viewer_that_falls_behind_is_told_how_many_events_it_missed_then_sent_a_fresh_snapshot() {
    let (addr, lab) = start_server_with(small_buffers()).await;
    let mut rx = slow_viewer(&lab);
    past_snapshot(&mut rx).await;

    // Not reading: a kept connection's two requests and 10 one-shot
    // requests make far more than 16 events meanwhile.
    let mut kept = Client::connect(addr).await;
    let first = kept.get("/api/fast?id=kept-1").await;
    kept.get("/api/fast?id=kept-2").await;
    let mut flooded = std::collections::HashSet::new();
    for i in 0..10 {
        let response = get_once(addr, &format!("/api/fast?id=flood-{i}")).await;
        assert_eq!(response.status, 200);
        flooded.insert(response.conn_id());
    }
    eventually("the flood's connections to close", || {
        lab.tracker().open_count() == 1
    })
    .await;

    let dropped = within("events_dropped", async {
        loop {
            if let ServerEvent::EventsDropped { count } = next_event(&mut rx).await {
                break count;
            }
        }
    })
    .await;
    assert!(dropped > 0);
    // At once, the server's record as it is now: the kept connection with
    // both its requests, and none of the flood's (closed meanwhile).
    let ServerEvent::Snapshot { connections, .. } = next_event(&mut rx).await else {
        panic!("a snapshot right after events_dropped");
    };
    assert_eq!(connections.len(), 1, "{connections:?}");
    let record = &connections[0];
    assert_eq!(record.conn, first.conn_id());
    assert_eq!(record.requests_total, 2);
    let targets: Vec<&str> = record.requests.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/api/fast?id=kept-1", "/api/fast?id=kept-2"]);

    // Then the stream goes on live from that snapshot: the events still
    // queued in the old feed (the flood's) are not sent after it.
    let response = get_once(addr, "/api/fast?id=after-the-flood").await;
    within("the request after the flood to finish", async {
        loop {
            let event = next_event(&mut rx).await;
            if let Some(conn) = common::conn_of(&event) {
                assert!(
                    !flooded.contains(&conn),
                    "an event of the flood after the snapshot: {event:?}"
                );
            }
            if let ServerEvent::RequestFinished { request, .. } = event
                && request == response.request_id()
            {
                break;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_participant_that_falls_behind_is_sent_a_fresh_snapshot_of_its_own_connections_only() {
    let (addr, lab) = start_server_with(small_buffers()).await;
    let a_id = common::issue_session(addr).await;
    let b_id = common::issue_session(addr).await;
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    let a = Owner::Session(session(&a_id));
    let mut rx = slow_viewer_of(&lab, Scope::new(Access::Of(a), Some(loopback)));
    past_snapshot(&mut rx).await;
    let mut mine = Client::connect(addr).await;
    let kept = mine
        .get(&format!("/api/fast?session={a_id}&id=a-kept"))
        .await;
    let mut theirs = Client::connect(addr).await;
    theirs
        .get(&format!("/api/fast?session={b_id}&id=b-kept"))
        .await;
    // Not reading: 10 of this session's one-shot requests overflow its feed
    // of 16.
    for i in 0..10 {
        get_once(addr, &format!("/api/fast?session={a_id}&id=a-{i}")).await;
    }
    eventually("the flood's connections to close", || {
        lab.tracker().open_count() == 2
    })
    .await;
    within("events_dropped", async {
        while !matches!(next_event(&mut rx).await, ServerEvent::EventsDropped { .. }) {}
    })
    .await;
    let ServerEvent::Snapshot {
        connections,
        session,
        ..
    } = next_event(&mut rx).await
    else {
        panic!("a snapshot right after events_dropped");
    };
    assert_eq!(session.as_ref().map(|s| s.as_str()), Some(a_id.as_str()));
    let conns: Vec<_> = connections.iter().map(|c| c.conn).collect();
    assert_eq!(
        conns,
        [kept.conn_id()],
        "only this session's open connection"
    );
    // And its feed is still this session's: the other session's next
    // request is not shown, this one's is.
    theirs
        .get(&format!("/api/fast?session={b_id}&id=b-after"))
        .await;
    let after = mine
        .get(&format!("/api/fast?session={a_id}&id=a-after"))
        .await;
    within("this session's next request", async {
        loop {
            match next_event(&mut rx).await {
                ServerEvent::RequestStarted { target, .. } => {
                    assert!(
                        target.contains(&a_id),
                        "another session's request: {target}"
                    );
                }
                ServerEvent::RequestFinished { request, .. } if request == after.request_id() => {
                    break;
                }
                _ => {}
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_viewer_that_falls_behind_twice_within_ten_seconds_is_closed_with_1008() {
    let (addr, lab) = start_server_with(small_buffers()).await;
    // A participant's view (here the anonymous scope's, whose requests the
    // flood makes); the instructor's is kept open (the next test).
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut rx = slow_viewer_of(
        &lab,
        Scope::new(Access::Of(Owner::Anonymous), Some(loopback)),
    );
    behind_once(&lab, addr, &mut rx).await;
    // Behind again, well within 10 s of the first time: a close frame 1008
    // saying why, and the stream ends.
    flood(&lab, addr, "second", 10).await;
    let frame = within("the close frame", async {
        loop {
            match next_message(&mut rx).await {
                Some(Message::Text(_)) => {}
                Some(Message::Close(frame)) => break frame,
                other => panic!("expected events then a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame with a code");
    assert_eq!(frame.code, 1008, "{frame:?}");
    assert!(frame.reason.contains("fell behind"), "{frame:?}");
    assert!(
        next_message(&mut rx).await.is_none(),
        "nothing after the close"
    );
    // Other viewers and the API are not affected.
    let mut viewer = Viewer::connect(addr).await;
    viewer
        .send_text(r#"{"type":"ping","client_time_ms":1}"#)
        .await;
    assert!(matches!(
        viewer.next_reply().await,
        ServerEvent::Pong { .. }
    ));
    assert_eq!(get_once(addr, "/api/fast").await.status, 200);
}

/// The instructor's whole-server view, behind twice within ten seconds, is
/// not closed (one participant's flood must not end it, found in review):
/// it is sent nothing for a moment, then told how many events it missed
/// and sent a fresh snapshot, and it goes on.
#[tokio::test]
async fn the_instructors_view_behind_twice_is_resynced_not_closed() {
    let (addr, lab) = start_server_with(small_buffers()).await;
    let mut rx = slow_viewer(&lab);
    behind_once(&lab, addr, &mut rx).await;
    flood(&lab, addr, "second", 10).await;
    // Events already sent before the second lag may come first; then
    // `events_dropped` and a snapshot, after the pause, and no close.
    let missed = within("events_dropped again", async {
        loop {
            match next_message(&mut rx).await {
                Some(Message::Text(text)) => {
                    if let Ok(ServerEvent::EventsDropped { count }) =
                        serde_json::from_str::<ServerEvent>(text.as_str())
                    {
                        break count;
                    }
                }
                other => panic!("expected events, got {other:?}"),
            }
        }
    })
    .await;
    assert!(missed > 0);
    assert!(matches!(
        next_event(&mut rx).await,
        ServerEvent::Snapshot { .. }
    ));
    // And it goes on: the next request's events arrive.
    let after = get_once(addr, "/api/fast?id=after").await.request_id();
    within("the next request's events", async {
        loop {
            if let ServerEvent::RequestFinished { request, .. } = next_event(&mut rx).await
                && request == after
            {
                break;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_full_anonymous_scope_does_not_lock_out_the_instructor() {
    let (addr, lab) = start_server_with(Config {
        max_in_flight_per_session: 2,
        ..common::config()
    })
    .await;
    // Someone without a session fills the anonymous scope's share.
    let mut slow = Vec::new();
    for i in 0..2 {
        let mut client = Client::connect(addr).await;
        client
            .send_request("GET", &format!("/api/slow?ms=3000&id=fill{i}"), b"")
            .await;
        slow.push(client);
    }
    eventually("the anonymous scope full", || {
        lab.sessions().in_flight(&Owner::Anonymous) == 2
    })
    .await;
    let refused = get_once(addr, "/api/slow?ms=0").await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    refused.error_body();

    // What every page reads without a session, answered at once, is not
    // held back by it (found in review: the lesson list failed with 503).
    for path in ["/api/lessons", "/api/lessons/six-lanes", "/api/tls"] {
        let response = get_once(addr, path).await;
        assert_eq!(response.status, 200, "{path}: {}", response.text());
    }

    // The instructor's key, in the URL or as a bearer token, still works.
    let room = get_once(addr, &format!("/api/connections?key={}", common::KEY)).await;
    assert_eq!(room.status, 200, "{}", room.text());
    let mut client = Client::connect(addr).await;
    client
        .send_raw(
            format!(
                "GET /api/config HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
                common::KEY
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(client.read_response().await.status, 200);
    // A wrong key is no way around the cap, and is refused as wrong.
    let wrong = get_once(addr, "/api/connections?key=not-the-key").await;
    assert_eq!(wrong.status, 403, "{}", wrong.text());
    assert_eq!(lab.sessions().in_flight(&Owner::Anonymous), 2);

    for client in &mut slow {
        assert_eq!(client.read_response().await.status, 200);
    }
}

/// A session may have `max_viewers_per_session` event viewers open; one more
/// is accepted and closed at once with 1013 (Try Again Later) and a reason a
/// browser's page can read (it cannot read an HTTP answer to its handshake),
/// without becoming a viewer; a request that is not an upgrade still gets
/// JSON `{error, hint}`; and a closed viewer makes room for exactly one.
/// Another session, and the instructor, are not held back by it (found in
/// review: 500 viewers of one session slowed every participant's requests).
#[tokio::test]
async fn a_sessions_event_viewers_are_capped() {
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    let (addr, _lab) = start_server_with(Config {
        max_viewers_per_session: 3,
        ..common::config()
    })
    .await;
    let session = common::issue_session(addr).await;
    let url = format!("ws://{addr}/api/events?session={session}");
    // The handshake's status, and the first message after it: its close
    // frame's code and reason, or a snapshot (a viewer).
    let handshake = async || {
        let (mut ws, response) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("the handshake: {e}"));
        let first = within("the first message", ws.next()).await;
        let first = match first {
            Some(Ok(WsMessage::Close(Some(frame)))) => {
                Err((u16::from(frame.code), frame.reason.to_string()))
            }
            Some(Ok(WsMessage::Text(text))) => Ok(text.to_string()),
            other => panic!("neither a close frame nor an event: {other:?}"),
        };
        (response.status().as_u16(), first, ws)
    };
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(Viewer::connect_session(addr, &session).await);
    }
    for _ in 0..2 {
        let (status, first, _ws) = handshake().await;
        assert_eq!(
            status, 101,
            "the upgrade is accepted, to say why it is refused"
        );
        assert_eq!(
            first,
            Err((
                1013,
                "3 viewers already watch this session; close another tab of it".into()
            )),
            "a close frame, and no event"
        );
    }
    // Not an upgrade: JSON {error, hint}, as before (it would be no viewer,
    // so the viewers' cap is not what it is told).
    let plain = get_once(addr, &format!("/api/events?session={session}")).await;
    assert_eq!(plain.status, 400, "{}", plain.text());
    let body = plain.error_body();
    assert!(body.error.contains("is a WebSocket"), "{body:?}");
    assert!(!body.hint.is_empty(), "{body:?}");
    // Another session, and the instructor's whole-server view, still open.
    let other = common::issue_session(addr).await;
    let _other = Viewer::connect_session(addr, &other).await;
    let _instructor = Viewer::connect(addr).await;
    // A closed viewer makes room, for one: the refused upgrades held no
    // slot and freed none.
    drop(viewers.pop());
    let _again = within("a viewer of the session again", async {
        loop {
            if let (101, Ok(snapshot), ws) = handshake().await {
                assert!(snapshot.contains("\"snapshot\""), "{snapshot}");
                break ws;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let (_, first, _ws) = handshake().await;
    assert!(matches!(first, Err((1013, _))), "{first:?}");
}
