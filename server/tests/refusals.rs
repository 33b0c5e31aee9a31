//! Refusals of the `/api/events` WebSocket. A browser's WebSocket cannot
//! read the HTTP answer to its handshake: a page refused with a JSON 403 or
//! 503 saw only close code 1006 and reconnected in a loop, none the wiser.
//! So a valid upgrade that is refused (a session this server did not issue,
//! a wrong key, a request the endpoint does not take, a cap per address or
//! per session; the cap on viewers is in `limits.rs`) is accepted and closed
//! at once, with 1008 (policy: trying again will not help) or 1013 (Try
//! Again Later: a cap) and a reason of at most 123 bytes. It is no viewer:
//! no event reaches it, it holds no slot, and its connection, counted in its
//! address's cap, is gone within the close handshake. A request that is not
//! an upgrade still gets JSON `{error, hint}`, and another site's page is
//! still refused over HTTP (`origins.rs`).

mod common;

use std::net::SocketAddr;

use common::{Client, Viewer, get_once, start_server, start_server_with, within};
use futures_util::StreamExt;
use keepalive_lab_server::Config;
use keepalive_lab_server::sessions::UNKNOWN_SESSION_ON_SOCKET;
use protocol::{CloseReason, Initiator};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A well-formed session id that no server issued.
const FORGED: &str = "s-0123456789abcdef0123456789abcdef";

/// Opens `ws://addr{target}` (with `headers`), expects the upgrade to be
/// accepted, and returns the close frame the server sends at once: its code
/// and reason. Fails if any event comes before it.
async fn refused_with(
    addr: SocketAddr,
    target: &str,
    headers: &[(&'static str, &str)],
) -> (u16, String) {
    let mut request = format!("ws://{addr}{target}")
        .into_client_request()
        .expect("a request");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("a header value"));
    }
    let (mut ws, response) = within("the handshake", tokio_tungstenite::connect_async(request))
        .await
        .unwrap_or_else(|e| {
            panic!("{target}: the upgrade is accepted, to say why it is refused: {e}")
        });
    assert_eq!(response.status().as_u16(), 101, "{target}");
    let close = loop {
        match within("the close frame", ws.next()).await {
            Some(Ok(Message::Close(Some(frame)))) => {
                break (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Text(text))) => panic!("{target}: a refused socket got {text}"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("{target}: no close frame with a reason: {other:?}"),
        }
    };
    // The client's close frame is answered by the server closing TCP.
    within("the end of the refused socket", async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    assert!(close.1.len() <= 123, "{close:?}");
    close
}

async fn refused(addr: SocketAddr, target: &str) -> (u16, String) {
    refused_with(addr, target, &[]).await
}

#[tokio::test]
async fn an_upgrade_naming_a_session_this_server_did_not_issue_is_closed_with_1008_and_why() {
    let (addr, _lab) = start_server().await;
    // The instructor sees the refused connection, and how it ended.
    let mut room = Viewer::connect(addr).await;
    let target = format!("/api/events?session={FORGED}");
    assert_eq!(
        refused(addr, &target).await,
        (1008, UNKNOWN_SESSION_ON_SOCKET.into())
    );
    assert!(UNKNOWN_SESSION_ON_SOCKET.contains("reload the page"));
    let (conn, _) = room.request_started(&target).await;
    let closed = room.closed(conn).await;
    assert_eq!(
        closed.reason,
        CloseReason::WebSocketClosed {
            code: 1008,
            initiator: Initiator::Server,
            reason: UNKNOWN_SESSION_ON_SOCKET.into(),
        }
    );
    // Not an upgrade: JSON {error, hint}, 403, as before.
    let plain = get_once(addr, &target).await;
    assert_eq!(plain.status, 403, "{}", plain.text());
    let body = plain.error_body();
    assert!(body.error.contains("not issued"), "{body:?}");
    assert!(!body.hint.is_empty());
}

#[tokio::test]
async fn an_upgrade_with_a_wrong_instructor_key_is_closed_with_1008_and_why() {
    let (addr, _lab) = start_server().await;
    let wrong = (
        1008,
        "that is not this server's instructor key; use the one printed on its console at start"
            .to_owned(),
    );
    assert_eq!(refused(addr, "/api/events?key=not-the-key").await, wrong);
    assert_eq!(
        refused_with(
            addr,
            "/api/events",
            &[("authorization", "Bearer not-the-key")]
        )
        .await,
        wrong
    );
    // A bearer token without a key (400): the error and hint, cut to fit.
    let (code, reason) = refused_with(addr, "/api/events", &[("authorization", "Bearer ")]).await;
    assert_eq!(code, 1008);
    assert!(
        reason.starts_with("Authorization: Bearer without a key; "),
        "{reason}"
    );
    // The right key still opens the whole server's view.
    let _room = Viewer::connect(addr).await;
    let plain = get_once(addr, "/api/events?key=not-the-key").await;
    assert_eq!(plain.status, 403, "{}", plain.text());
    plain.error_body();
}

#[tokio::test]
async fn an_upgrade_the_endpoint_does_not_take_is_closed_with_1008_and_why() {
    let (addr, _lab) = start_server().await;
    let (code, reason) = refused(addr, "/api/events?x=1").await;
    assert_eq!(code, 1008);
    assert!(
        reason.starts_with("`/api/events` does not take a `x` parameter; accepted parameters: "),
        "{reason}"
    );
    // Its example names no port the lab may not be on (found in review:
    // `e.g. ws://127.0.0.1:8080/api/events?ses`, cut), and fits whole.
    assert!(reason.ends_with("e.g. /api/events?session=s-…"), "{reason}");
    assert!(reason.len() <= 123, "{reason}");
    let (code, reason) = refused(addr, "/api/events?session=a%20b").await;
    assert_eq!(code, 1008);
    assert!(reason.contains("session"), "{reason}");
    let session = common::issue_session(addr).await;
    let (code, reason) = refused(
        addr,
        &format!("/api/events?session={session}&session={session}"),
    )
    .await;
    assert_eq!(code, 1008);
    assert!(
        reason.starts_with("`session` is given more than once"),
        "{reason}"
    );
    // Not an upgrade: JSON {error, hint}, 400, as before.
    let plain = get_once(addr, "/api/events?x=1").await;
    assert_eq!(plain.status, 400, "{}", plain.text());
    plain.error_body();
}

#[tokio::test]
async fn an_upgrade_past_the_sessions_requests_in_flight_is_closed_with_1013_and_why() {
    let (addr, lab) = start_server_with(Config {
        max_in_flight_per_session: 1,
        ..common::config()
    })
    .await;
    let session = common::issue_session(addr).await;
    let mut hang = Client::connect(addr).await;
    hang.send_request("GET", &format!("/api/hang?session={session}"), b"")
        .await;
    common::wait_for_hangs(&lab, 1).await;
    let target = format!("/api/events?session={session}");
    assert_eq!(
        refused(addr, &target).await,
        (
            1013,
            "this session has 1 requests in flight, its cap; wait for some to end, or release \
             hanging ones"
                .into()
        )
    );
    // Once the hang is released (by the instructor: the session's own
    // release would be over its cap too), the same upgrade opens a viewer.
    assert_eq!(
        common::release(addr, &format!("?key={}", common::KEY), "").await,
        1
    );
    assert_eq!(hang.read_response().await.status, 200);
    common::eventually("the session's request ended", || {
        lab.sessions()
            .in_flight(&keepalive_lab_server::sessions::Owner::Session(
                common::session(&session),
            ))
            == 0
    })
    .await;
    let _viewer = Viewer::connect_to(addr, &target).await;
}

#[tokio::test]
async fn an_upgrade_past_the_addresss_requests_in_flight_is_closed_with_1013_and_why() {
    let (addr, lab) = start_server_with(Config {
        max_in_flight_per_peer: 1,
        ..common::config()
    })
    .await;
    let mut hang = Client::connect(addr).await;
    hang.send_request("GET", "/api/hang", b"").await;
    common::wait_for_hangs(&lab, 1).await;
    assert_eq!(
        refused(addr, "/api/events").await,
        (
            1013,
            "your address has 1 requests in flight, its cap; wait for some to end".into()
        )
    );
    // Not an upgrade: JSON {error, hint}, 429, as before.
    let plain = get_once(addr, "/api/events").await;
    assert_eq!(plain.status, 429, "{}", plain.text());
    plain.error_body();
}

/// The raw bytes of a refused upgrade, from a client that reads them and
/// never answers the close frame.
fn raw_upgrade(addr: SocketAddr, target: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A refused upgrade costs its connection, counted in its address's cap, and
/// only until the close handshake ends: a client that never answers the
/// close frame is closed within about a second, as is every refused upgrade
/// at once; meanwhile the cap holds.
#[tokio::test]
async fn a_refused_upgrade_is_bounded_by_the_cap_per_address_and_ends_by_itself() {
    let (addr, _lab) = start_server_with(Config {
        max_connections_per_peer: 2,
        ..common::config()
    })
    .await;
    let target = format!("/api/events?session={FORGED}");
    let mut silent = Vec::new();
    for _ in 0..2 {
        let mut client = Client::connect(addr).await;
        client.send_raw(&raw_upgrade(addr, &target)).await;
        silent.push(client);
    }
    // Both connections are held: a third from the same address is over the
    // cap (the accept loop's own 503, written before any request is read).
    let mut third = Client::connect(addr).await;
    let over = String::from_utf8_lossy(&third.read_to_close().await).into_owned();
    assert!(over.starts_with("HTTP/1.1 503"), "{over}");
    assert!(over.contains("connections open"), "{over}");
    // Each refused upgrade got its 101 and the close frame, then the server
    // closed it without waiting longer for the client's answer.
    for client in &mut silent {
        let bytes = within(
            "the server to close a silent client",
            client.read_to_close(),
        )
        .await;
        let head_end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head")
            + 4;
        let head = String::from_utf8_lossy(&bytes[..head_end]);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // One close frame: FIN + opcode 8, unmasked, the code, the reason.
        let frame = &bytes[head_end..];
        assert_eq!(frame[0], 0x88, "{frame:?}");
        let len = usize::from(frame[1]);
        assert_eq!(
            frame.len(),
            2 + len,
            "nothing but the close frame: {frame:?}"
        );
        assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1008);
        assert_eq!(&frame[4..], UNKNOWN_SESSION_ON_SOCKET.as_bytes());
    }
    // Their slots are free again.
    let ok = get_once(addr, "/api/lessons").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

/// Refusals that are not the lab's to explain to a page stay HTTP: another
/// site's page gets no WebSocket with the lab, not even one closed at once.
#[tokio::test]
async fn a_foreign_page_is_still_refused_before_any_upgrade() {
    let (addr, _lab) = start_server().await;
    let mut request = format!("ws://{addr}/api/events?session={FORGED}&key=wrong")
        .into_client_request()
        .expect("a request");
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().expect("a value"));
    match within("the handshake", tokio_tungstenite::connect_async(request)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403);
        }
        Ok(_) => panic!("a foreign page got a WebSocket"),
        Err(other) => panic!("expected a 403, got {other}"),
    }
}
