//! Sessions: capabilities the server issues (`POST /api/sessions`); a
//! connection belongs to the session of its first request; a viewer with
//! `?session=` sees only its own world (plus connections from its own host
//! not yet claimed by anyone); releases stay within a session; only the
//! instructor key sees and releases everything.

mod common;

use std::net::SocketAddr;

use common::{
    Client, KEY, Viewer, get_once, issue_session, kind, session, start_server, wait_for_hangs,
};
use protocol::{ConnId, RequestId, ServerEvent};

/// Sends `/api/fast?session=S&id=sync-N` on `client` and waits until
/// `viewer` has seen it finish. Events reach every viewer in one order, so
/// afterwards the viewer has seen everything that happened before.
async fn sync(client: &mut Client, viewer: &mut Viewer, session: &str, n: u32) -> RequestId {
    let response = client
        .get(&format!("/api/fast?session={session}&id=sync-{n}"))
        .await;
    assert_eq!(response.status, 200);
    viewer.timeline(response.request_id()).await;
    response.request_id()
}

/// Kinds of the events `viewer` saw about `conn`.
fn story(viewer: &Viewer, conn: ConnId) -> Vec<String> {
    viewer.events_for(conn).iter().map(kind).collect()
}

#[tokio::test]
async fn a_connection_belongs_to_the_session_of_its_first_request() {
    let (addr, _lab) = start_server().await;
    let (a, b) = (issue_session(addr).await, issue_session(addr).await);
    let mut everything = Viewer::connect(addr).await;
    let mut client = Client::connect(addr).await;
    let first = client.get(&format!("/api/fast?session={a}&id=1")).await;
    let second = client.get(&format!("/api/fast?session={b}&id=2")).await;
    let third = client.get("/api/fast?id=3").await;
    for response in [&first, &second, &third] {
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let conn = first.conn_id();
    assert_eq!(second.conn_id(), conn);
    everything.timeline(third.request_id()).await;
    assert_eq!(
        story(&everything, conn),
        [
            "connection_opened",
            "connection_attributed",
            "request_started",
            "response_started",
            "request_finished",
            "request_started",
            "response_started",
            "request_finished",
            "request_started",
            "response_started",
            "request_finished",
        ],
        "attributed once, before its first request: {:#?}",
        everything.events_for(conn)
    );
    assert!(everything.events_for(conn).iter().any(|e| matches!(
        e,
        ServerEvent::ConnectionAttributed { session: s, .. } if *s == session(&a)
    )));
    let snapshot = common::connections(addr).await;
    let record = snapshot.iter().find(|c| c.conn == conn).expect("open");
    assert_eq!(record.session, Some(session(&a)), "b did not take it over");
}

#[tokio::test]
async fn a_session_viewer_sees_its_own_connections_and_never_another_sessions_requests() {
    let (addr, _lab) = start_server().await;
    let (a, b) = (issue_session(addr).await, issue_session(addr).await);
    let mut everything = Viewer::connect(addr).await;
    let mut viewer_a = Viewer::connect_session(addr, &a).await;
    let mut viewer_b = Viewer::connect_session(addr, &b).await;
    let mut anonymous = Viewer::connect_anonymous(addr).await;

    let mut client_a = Client::connect(addr).await;
    let a1 = client_a.get(&format!("/api/fast?session={a}&id=a1")).await;
    let mut client_b = Client::connect(addr).await;
    let b1 = client_b.get(&format!("/api/fast?session={b}&id=b1")).await;
    let b2 = client_b
        .get(&format!("/api/slow?ms=0&session={b}&id=b2"))
        .await;
    let (conn_a, conn_b) = (a1.conn_id(), b1.conn_id());
    assert_ne!(conn_a, conn_b);

    sync(&mut client_a, &mut viewer_a, &a, 1).await;
    sync(&mut client_b, &mut viewer_b, &b, 2).await;
    everything.timeline(b2.request_id()).await;
    anonymous.barrier(addr, "").await;

    // a's viewer: all of a's connection...
    let a_story = story(&viewer_a, conn_a);
    assert_eq!(
        &a_story[..5],
        [
            "connection_opened",
            "connection_attributed",
            "request_started",
            "response_started",
            "request_finished"
        ],
        "{a_story:?}"
    );
    // ...and of b's only that it opened (unclaimed, from the same host)
    // and then was taken away: none of b's requests.
    assert_eq!(
        story(&viewer_a, conn_b),
        ["connection_opened", "connection_hidden"],
        "{:#?}",
        viewer_a.events_for(conn_b)
    );
    for request in [b1.request_id(), b2.request_id()] {
        assert!(
            !viewer_a.seen.iter().any(|e| mentions(e, request)),
            "a's viewer saw b's {request}: {:#?}",
            viewer_a.seen
        );
    }
    // The same from b's side.
    assert_eq!(
        story(&viewer_b, conn_a),
        ["connection_opened", "connection_hidden"]
    );
    assert!(!viewer_b.seen.iter().any(|e| mentions(e, a1.request_id())));
    assert!(viewer_b.seen.iter().any(|e| mentions(e, b2.request_id())));

    // The anonymous viewer (no session, no key) sees neither: both
    // connections opened unclaimed from its host, then were taken away.
    for conn in [conn_a, conn_b] {
        assert_eq!(
            story(&anonymous, conn),
            ["connection_opened", "connection_hidden"],
            "{:#?}",
            anonymous.events_for(conn)
        );
    }
    for request in [a1.request_id(), b1.request_id(), b2.request_id()] {
        assert!(!anonymous.seen.iter().any(|e| mentions(e, request)));
    }

    // The instructor's viewer (the key) sees everything, and never a hide.
    for request in [a1.request_id(), b1.request_id(), b2.request_id()] {
        assert!(everything.seen.iter().any(|e| mentions(e, request)));
    }
    assert!(
        !everything
            .seen
            .iter()
            .any(|e| matches!(e, ServerEvent::ConnectionHidden { .. }))
    );

    // A snapshot is trimmed the same way.
    let late_a = Viewer::connect_session(addr, &a).await;
    let shown: Vec<ConnId> = late_a.snapshot.iter().map(|c| c.conn).collect();
    assert!(shown.contains(&conn_a), "{shown:?}");
    assert!(!shown.contains(&conn_b), "{shown:?}");
    assert!(
        late_a
            .snapshot
            .iter()
            .all(|c| c.session.as_ref() != Some(&session(&b))),
        "nothing of b's (its monitor connection included): {:#?}",
        late_a.snapshot
    );
    let late_anonymous = Viewer::connect_anonymous(addr).await;
    assert!(
        late_anonymous.snapshot.iter().all(|c| c.session.is_none()),
        "nothing attributed to a session: {:#?}",
        late_anonymous.snapshot
    );
    let late_all = Viewer::connect(addr).await;
    let all: Vec<ConnId> = late_all.snapshot.iter().map(|c| c.conn).collect();
    assert!(all.contains(&conn_a) && all.contains(&conn_b), "{all:?}");
}

/// Whether `event` is about `request`.
fn mentions(event: &ServerEvent, request: RequestId) -> bool {
    matches!(
        event,
        ServerEvent::RequestStarted { request: r, .. }
            | ServerEvent::ResponseStarted { request: r, .. }
            | ServerEvent::RequestFinished { request: r, .. }
            if *r == request
    )
}

#[tokio::test]
async fn an_unclaimed_connection_is_shown_until_another_session_claims_it() {
    let (addr, _lab) = start_server().await;
    let (a, b) = (issue_session(addr).await, issue_session(addr).await);
    let mut everything = Viewer::connect(addr).await;
    let mut viewer_a = Viewer::connect_session(addr, &a).await;
    let mut client_a = Client::connect(addr).await;

    // A connection with no request yet (Chromium's spare socket) from the
    // viewer's own host: a's viewer is shown it.
    let mut spare = Client::connect(addr).await;
    let conn = viewer_a.opened_from(spare.local_addr()).await;
    // A request without a session leaves it unclaimed, and a sees it.
    let anonymous = spare.get("/api/fast?id=anon").await;
    assert_eq!(anonymous.conn_id(), conn);
    viewer_a.timeline(anonymous.request_id()).await;
    // Then b claims it: a's viewer is told to forget it.
    let claimed = spare.get(&format!("/api/fast?session={b}&id=mine")).await;
    assert_eq!(claimed.conn_id(), conn);
    let hidden = viewer_a
        .next_matching("connection_hidden", |e| {
            matches!(e, ServerEvent::ConnectionHidden { .. })
        })
        .await;
    assert_eq!(hidden, ServerEvent::ConnectionHidden { conn });

    // Nothing more about it reaches a: not b's request, not its close.
    drop(spare);
    everything.closed(conn).await;
    sync(&mut client_a, &mut viewer_a, &a, 1).await;
    assert_eq!(
        story(&viewer_a, conn),
        [
            "connection_opened",
            "request_started",
            "response_started",
            "request_finished",
            "connection_hidden"
        ],
        "{:#?}",
        viewer_a.events_for(conn)
    );
    assert!(
        !viewer_a
            .seen
            .iter()
            .any(|e| mentions(e, claimed.request_id()))
    );
}

#[tokio::test]
async fn a_connection_claimed_by_the_viewers_session_stays_visible() {
    let (addr, _lab) = start_server().await;
    let a = issue_session(addr).await;
    let mut viewer_a = Viewer::connect_session(addr, &a).await;
    let mut client = Client::connect(addr).await;
    let conn = viewer_a.opened_from(client.local_addr()).await;
    let response = client.get(&format!("/api/fast?session={a}")).await;
    viewer_a.timeline(response.request_id()).await;
    assert_eq!(
        story(&viewer_a, conn),
        [
            "connection_opened",
            "connection_attributed",
            "request_started",
            "response_started",
            "request_finished"
        ]
    );
    drop(client);
    viewer_a.closed(conn).await;
}

/// Starts a hang tagged `tag` for `session` on a new connection.
async fn hang(addr: SocketAddr, session: &str, tag: &str) -> Client {
    let mut client = Client::connect(addr).await;
    client
        .send_request("GET", &format!("/api/hang?session={session}&id={tag}"), b"")
        .await;
    client
}

#[tokio::test]
async fn releases_stay_within_their_session() {
    let (addr, lab) = start_server().await;
    let (sa, sb) = (issue_session(addr).await, issue_session(addr).await);
    let mut viewer_a = Viewer::connect_session(addr, &sa).await;
    let mut a = [hang(addr, &sa, "a1").await, hang(addr, &sa, "a2").await];
    let mut b = [hang(addr, &sb, "b1").await, hang(addr, &sb, "b2").await];
    wait_for_hangs(&lab, 4).await;

    // a's page releases "everything": everything of a's.
    viewer_a.send_text(r#"{"type":"release"}"#).await;
    assert_eq!(
        viewer_a.next_reply().await,
        ServerEvent::Released { count: 2 }
    );
    for (client, tag) in a.iter_mut().zip(["a1", "a2"]) {
        assert_eq!(client.read_response().await.json()["id"], tag);
    }
    assert_eq!(lab.hangs().len(), 2, "b's are still held");
    // a's page cannot release b's by tag either.
    viewer_a.send_text(r#"{"type":"release","id":"b1"}"#).await;
    assert_eq!(
        viewer_a.next_reply().await,
        ServerEvent::Released { count: 0 }
    );

    // The same over HTTP with ?session=a.
    let mut a3 = hang(addr, &sa, "a3").await;
    wait_for_hangs(&lab, 3).await;
    let response =
        common::request_once(addr, "POST", &format!("/api/release?session={sa}"), b"").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json(), serde_json::json!({"released": 1}));
    assert_eq!(a3.read_response().await.json()["id"], "a3");
    assert_eq!(lab.hangs().len(), 2);
    for client in &b {
        assert!(!client.has_pending_bytes(), "b's hangs were not released");
    }

    // Without a session (curl): the anonymous scope's only, none of b's.
    assert_eq!(common::release(addr, "", "").await, 0);
    assert_eq!(common::release(addr, "", r#"{"id":"b1"}"#).await, 0);
    assert_eq!(lab.hangs().len(), 2);
    // With the instructor key: every session's.
    assert_eq!(common::release(addr, &format!("?key={KEY}"), "").await, 2);
    for (client, tag) in b.iter_mut().zip(["b1", "b2"]) {
        assert_eq!(client.read_response().await.json()["id"], tag);
    }
    assert!(lab.hangs().is_empty());
}

#[tokio::test]
async fn invalid_session_values_are_refused_with_json_errors() {
    let (addr, lab) = start_server().await;
    let too_long = "x".repeat(protocol::SessionId::MAX_LEN + 1);
    let values = [
        "a%20b",
        "a+b",
        too_long.as_str(),
        "",
        "%C3%A4",
        "a/b",
        "a.b",
    ];
    let endpoints = [
        "GET /api/fast?",
        "GET /api/slow?ms=0&",
        "GET /api/hang?",
        "GET /api/drip?bytes=1&chunks=1&",
        "GET /api/close?mode=fin&",
        "GET /api/sse?count=1&",
        "GET /api/events?",
        "POST /api/release?",
    ];
    for value in values {
        for endpoint in endpoints {
            let (method, prefix) = endpoint.split_once(' ').unwrap();
            let target = format!("{prefix}session={value}");
            let response = common::request_once(addr, method, &target, b"").await;
            assert_eq!(
                response.status,
                400,
                "{method} {target}: {}",
                response.text()
            );
            let body = response.error_body();
            assert!(body.error.contains("session"), "{target}: {body:?}");
        }
    }
    assert!(lab.hangs().is_empty());
    assert_eq!(lab.sessions().active(), 0);
    // The longest well-formed id is not malformed, but this server did not
    // issue it: 403, on every endpoint.
    let longest = "y".repeat(protocol::SessionId::MAX_LEN);
    for endpoint in endpoints {
        let (method, prefix) = endpoint.split_once(' ').unwrap();
        let target = format!("{prefix}session={longest}");
        let response = common::request_once(addr, method, &target, b"").await;
        assert_eq!(
            response.status,
            403,
            "{method} {target}: {}",
            response.text()
        );
        let body = response.error_body();
        assert!(body.error.contains("not issued"), "{target}: {body:?}");
    }
    assert!(lab.hangs().is_empty());
    // An issued one is fine.
    let issued = issue_session(addr).await;
    let ok = get_once(addr, &format!("/api/fast?session={issued}")).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[tokio::test]
async fn an_unclaimed_connection_in_the_snapshot_is_hidden_once_claimed() {
    let (addr, _lab) = start_server().await;
    let mut everything = Viewer::connect(addr).await;
    let mut spare = Client::connect(addr).await;
    let conn = everything.opened_from(spare.local_addr()).await;
    // Opened before a's viewer: it is in a's snapshot, not in its events.
    let (a, b) = (issue_session(addr).await, issue_session(addr).await);
    let mut viewer_a = Viewer::connect_session(addr, &a).await;
    assert!(
        viewer_a.snapshot.iter().any(|c| c.conn == conn),
        "{:#?}",
        viewer_a.snapshot
    );
    let claimed = spare.get(&format!("/api/fast?session={b}")).await;
    assert_eq!(claimed.conn_id(), conn);
    let hidden = viewer_a
        .next_matching("connection_hidden", |e| {
            matches!(e, ServerEvent::ConnectionHidden { .. })
        })
        .await;
    assert_eq!(hidden, ServerEvent::ConnectionHidden { conn });
    assert!(
        !viewer_a
            .seen
            .iter()
            .any(|e| mentions(e, claimed.request_id()))
    );
}
