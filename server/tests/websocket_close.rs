//! How an `/api/events` WebSocket ends, frame by frame: the client's close
//! handshake (answered with a close frame), and the close
//! frames the server sends for protocol violations (1002), bad UTF-8 (1007)
//! and messages over 16 KiB (1009). Each end is recorded as
//! `web_socket_closed` with its code and initiator, and the server keeps
//! serving. Frames are written by hand over a `TcpStream`, so that the test
//! can send what no well-behaved client library would.

mod common;

use std::net::SocketAddr;

use std::time::{Duration, Instant};

use common::{
    KEY, Viewer, config, eventually, get_once, issue_session, session, start_server,
    start_server_with, within,
};
use keepalive_lab_server::Config;
use keepalive_lab_server::events::MAX_MESSAGE_BYTES;
use keepalive_lab_server::sessions::Owner;
use protocol::{CloseReason, ConnId, Initiator, ServerEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Frame opcodes (RFC 6455 §5.2).
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
/// The FIN bit of the first byte.
const FIN: u8 = 0x80;

/// A WebSocket client that writes frames byte by byte.
struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Upgrades `GET /api/events?key=…` by hand and reads the 101.
    async fn connect(addr: SocketAddr) -> RawWs {
        RawWs::connect_to(addr, &format!("/api/events?key={KEY}")).await
    }

    /// Upgrades `GET {target}` by hand and reads the 101.
    async fn connect_to(addr: SocketAddr, target: &str) -> RawWs {
        let mut stream = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        let head = format!(
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        within("the handshake", stream.write_all(head.as_bytes()))
            .await
            .expect("write the handshake");
        let mut ws = RawWs {
            stream,
            buf: Vec::new(),
        };
        let end = loop {
            if let Some(pos) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            assert!(ws.fill().await > 0, "closed during the handshake");
        };
        let head = String::from_utf8_lossy(&ws.buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{head}"
        );
        ws.buf.drain(..end);
        ws
    }

    fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local address")
    }

    /// Reads more bytes; 0 at EOF or on a reset.
    async fn fill(&mut self) -> usize {
        let mut chunk = [0_u8; 8192];
        match within("bytes from the lab", self.stream.read(&mut chunk)).await {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(_) => 0,
        }
    }

    /// Writes one frame: `first` is FIN/RSV/opcode, the payload masked
    /// (as a client must) unless `masked` is false.
    async fn send_frame(&mut self, first: u8, masked: bool, payload: &[u8]) {
        let mut frame = vec![first];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => frame.push(mask_bit | n as u8),
            n if n <= 0xffff => {
                frame.push(mask_bit | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(mask_bit | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let key = [0x37, 0xfa, 0x21, 0x3d];
        if masked {
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        // The server may close while a large frame is being written.
        let _ = within("a frame", self.stream.write_all(&frame)).await;
    }

    /// The next frame from the server (never masked): (first byte, payload),
    /// or `None` once the connection ended.
    async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                let first = self.buf[0];
                assert_eq!(self.buf[1] & 0x80, 0, "server frames are not masked");
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    ),
                    127 if self.buf.len() >= 10 => {
                        let mut n = [0_u8; 8];
                        n.copy_from_slice(&self.buf[2..10]);
                        (usize::try_from(u64::from_be_bytes(n)).expect("size"), 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (usize::from(n), 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((first, payload));
                }
            }
            if self.fill().await == 0 {
                return None;
            }
        }
    }

    /// Skips events until the server's close frame; returns its code and
    /// reason.
    async fn close_frame(&mut self) -> (u16, String) {
        loop {
            match self.next_frame().await {
                Some((first, payload)) if first & 0x0f == CLOSE => {
                    assert_eq!(first & FIN, FIN);
                    assert!(payload.len() >= 2, "a close frame with a code");
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    let reason = String::from_utf8(payload[2..].to_vec()).expect("UTF-8");
                    return (code, reason);
                }
                Some((first, _)) if first & 0x0f == TEXT => {}
                Some(other) => panic!("unexpected frame {other:?}"),
                None => panic!("the connection ended without a close frame"),
            }
        }
    }

    /// Reads until the server closes TCP.
    async fn until_closed(&mut self) {
        while self.fill().await > 0 {}
    }
}

/// A close frame's payload.
fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// Waits for the server's close of `conn` and returns its reason.
async fn reason_of(watcher: &mut Viewer, conn: ConnId) -> CloseReason {
    watcher.closed(conn).await.reason
}

#[tokio::test]
async fn a_client_close_frame_is_answered_with_a_close_frame_and_recorded() {
    let (addr, lab) = start_server().await;
    let mut watcher = Viewer::connect(addr).await;
    let mut ws = RawWs::connect(addr).await;
    let conn = watcher.opened_from(ws.local_addr()).await;
    let (first, snapshot) = ws.next_frame().await.expect("the snapshot");
    assert_eq!(first, FIN | TEXT);
    assert!(String::from_utf8_lossy(&snapshot).contains("\"snapshot\""));

    ws.send_frame(FIN | CLOSE, true, &close_payload(1000, "done"))
        .await;
    // The server answers with a close frame (echoing the code), before the
    // TCP connection ends.
    let (code, _) = ws.close_frame().await;
    assert_eq!(code, 1000);
    // Nothing follows the close frame. (Who closes TCP first is not checked:
    // see `a_client_that_never_closes_tcp_after_the_handshake_is_not_kept`.)
    assert_eq!(ws.next_frame().await, None, "no frame after the close");
    drop(ws);
    eventually("the connection to close", || {
        lab.tracker().connection(conn).is_none()
    })
    .await;
    assert_eq!(
        reason_of(&mut watcher, conn).await,
        CloseReason::WebSocketClosed {
            code: 1000,
            initiator: Initiator::Client,
            reason: "done".into(),
        }
    );
}

// The server's code means to wait up to `CLOSE_WAIT` for the client to
// close TCP after the close handshake (`events::wait_for_client_close`), but
// the WebSocket stream it reads ends as soon as the handshake is complete, so
// in fact the server closes TCP right after its close frame. That is what
// RFC 6455 §7.1.1 recommends (the server closes first and holds TIME_WAIT);
// this test checks only what holds either way: a client that never closes
// does not keep the socket, and the record says the client started the close.
#[tokio::test]
async fn a_client_that_never_closes_tcp_after_the_handshake_is_not_kept() {
    let (addr, _lab) = start_server().await;
    let mut watcher = Viewer::connect(addr).await;
    let mut ws = RawWs::connect(addr).await;
    let conn = watcher.opened_from(ws.local_addr()).await;
    ws.send_frame(FIN | CLOSE, true, &close_payload(4000, "bye"))
        .await;
    assert_eq!(ws.close_frame().await.0, 4000);
    // Bounded by `LIMIT` (the server would wait `CLOSE_WAIT` at most).
    ws.until_closed().await;
    assert_eq!(
        reason_of(&mut watcher, conn).await,
        CloseReason::WebSocketClosed {
            code: 4000,
            initiator: Initiator::Client,
            reason: "bye".into(),
        }
    );
}

#[tokio::test]
async fn a_close_frame_without_a_code_is_recorded_as_1005() {
    let (addr, _lab) = start_server().await;
    let mut watcher = Viewer::connect(addr).await;
    let mut ws = RawWs::connect(addr).await;
    let conn = watcher.opened_from(ws.local_addr()).await;
    ws.send_frame(FIN | CLOSE, true, b"").await;
    // The reply carries no code either (1005 is never sent on the wire).
    loop {
        match ws.next_frame().await {
            Some((first, payload)) if first & 0x0f == CLOSE => {
                assert!(payload.is_empty(), "{payload:?}");
                break;
            }
            Some(_) => {}
            None => panic!("no close frame"),
        }
    }
    drop(ws);
    assert_eq!(
        reason_of(&mut watcher, conn).await,
        CloseReason::WebSocketClosed {
            code: 1005,
            initiator: Initiator::Client,
            reason: String::new(),
        }
    );
}

/// One violation: the frames a client sends and the code it must get.
struct Violation {
    name: &'static str,
    frames: Vec<(u8, bool, Vec<u8>)>,
    code: u16,
}

fn violations() -> Vec<Violation> {
    let big = vec![b' '; MAX_MESSAGE_BYTES + 1024];
    let half = vec![b' '; MAX_MESSAGE_BYTES / 2 + 512];
    vec![
        Violation {
            name: "text frame that is not UTF-8",
            frames: vec![(FIN | TEXT, true, vec![b'{', 0xff, 0xfe, b'}'])],
            code: 1007,
        },
        Violation {
            name: "text frame with a lone surrogate (CESU-8)",
            frames: vec![(FIN | TEXT, true, vec![0xed, 0xa0, 0x80])],
            code: 1007,
        },
        Violation {
            name: "a close frame whose reason is not UTF-8",
            frames: vec![(FIN | CLOSE, true, vec![0x03, 0xe8, b'x', 0xff])],
            code: 1007,
        },
        Violation {
            name: "one frame over 16 KiB",
            frames: vec![(FIN | TEXT, true, big)],
            code: 1009,
        },
        Violation {
            name: "a message over 16 KiB in three fragments",
            frames: vec![
                (TEXT, true, half.clone()),
                (CONTINUATION, true, half.clone()),
                (FIN | CONTINUATION, true, half),
            ],
            code: 1009,
        },
        Violation {
            name: "unmasked frame from the client",
            frames: vec![(
                FIN | TEXT,
                false,
                br#"{"type":"ping","client_time_ms":1}"#.to_vec(),
            )],
            code: 1002,
        },
        Violation {
            name: "reserved data opcode 0x3",
            frames: vec![(FIN | 0x3, true, b"x".to_vec())],
            code: 1002,
        },
        Violation {
            name: "reserved control opcode 0xB",
            frames: vec![(FIN | 0xb, true, Vec::new())],
            code: 1002,
        },
        Violation {
            name: "RSV1 set without an extension",
            frames: vec![(FIN | 0x40 | TEXT, true, b"{}".to_vec())],
            code: 1002,
        },
        Violation {
            name: "a fragmented ping",
            frames: vec![(PING, true, b"x".to_vec())],
            code: 1002,
        },
        Violation {
            name: "a ping with more than 125 bytes",
            frames: vec![(FIN | PING, true, vec![b'x'; 126])],
            code: 1002,
        },
        Violation {
            name: "a continuation with nothing to continue",
            frames: vec![(FIN | CONTINUATION, true, b"x".to_vec())],
            code: 1002,
        },
        Violation {
            name: "a new message inside a fragmented one",
            frames: vec![
                (TEXT, true, b"{".to_vec()),
                (FIN | BINARY, true, b"x".to_vec()),
            ],
            code: 1002,
        },
    ]
}

#[tokio::test]
async fn protocol_violations_get_a_close_frame_with_the_right_code_and_are_recorded() {
    let (addr, _lab) = start_server().await;
    let mut watcher = Viewer::connect(addr).await;
    for violation in violations() {
        let name = violation.name;
        let mut ws = RawWs::connect(addr).await;
        let conn = watcher.opened_from(ws.local_addr()).await;
        for (first, masked, payload) in &violation.frames {
            ws.send_frame(*first, *masked, payload).await;
        }
        let (code, reason) = ws.close_frame().await;
        assert_eq!(code, violation.code, "{name}: {reason}");
        assert!(!reason.is_empty(), "{name}: a close frame says why");
        assert!(reason.len() <= 123, "{name}: {reason}");
        if violation.code == 1007 {
            // Not told apart by the WebSocket library: both are named.
            assert!(
                reason.contains("text message") && reason.contains("close frame"),
                "{name}: {reason}"
            );
        }
        // The client closes TCP, as after any close handshake.
        drop(ws);
        match reason_of(&mut watcher, conn).await {
            CloseReason::WebSocketClosed {
                code,
                initiator,
                reason: recorded,
            } => {
                assert_eq!(code, violation.code, "{name}");
                assert_eq!(initiator, Initiator::Server, "{name}");
                assert!(
                    recorded.starts_with(&reason),
                    "{name}: {recorded} / {reason}"
                );
            }
            other => panic!("{name}: recorded as {other:?}"),
        }
        // The server keeps serving: HTTP, and the watcher's own socket.
        assert_eq!(
            get_once(addr, "/api/fast").await.status,
            200,
            "after {name}"
        );
    }
    watcher
        .send_text(r#"{"type":"ping","client_time_ms":9}"#)
        .await;
    assert!(matches!(
        watcher.next_reply().await,
        ServerEvent::Pong { client_time_ms, .. } if client_time_ms == 9.0
    ));
}

#[tokio::test]
async fn a_well_formed_fragmented_message_and_pings_are_accepted() {
    let (addr, _lab) = start_server().await;
    let mut ws = RawWs::connect(addr).await;
    ws.send_frame(FIN | PING, true, b"hi").await;
    ws.send_frame(TEXT, true, br#"{"type":"ping","#).await;
    ws.send_frame(FIN | PING, true, b"between").await;
    ws.send_frame(FIN | CONTINUATION, true, br#""client_time_ms":4}"#)
        .await;
    let mut pongs = Vec::new();
    let answer = loop {
        match ws.next_frame().await {
            Some((first, payload)) if first & 0x0f == 0xa => pongs.push(payload),
            Some((first, payload)) if first & 0x0f == TEXT => {
                let event: ServerEvent = serde_json::from_slice(&payload).expect("an event");
                if let ServerEvent::Pong { client_time_ms, .. } = event {
                    break client_time_ms;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(answer, 4.0);
    assert_eq!(pongs, [b"hi".to_vec(), b"between".to_vec()]);
}

/// How long a viewer may stay silent in the two tests below.
const SILENCE: Duration = Duration::from_millis(600);

/// A server whose viewers may be silent for `silence`.
async fn start_server_silent_after(silence: Duration) -> (SocketAddr, keepalive_lab_server::Lab) {
    start_server_with(Config {
        viewer_silence_timeout: silence,
        ..config()
    })
    .await
}

/// Whether the page of `id` is online, as the instructor's room shows it.
fn online(lab: &keepalive_lab_server::Lab, id: &str) -> bool {
    lab.sessions()
        .participant(&Owner::Session(session(id)))
        .is_some_and(|p| p.online)
}

/// A viewer gone without a word (a laptop asleep: no close frame, no FIN, no
/// answer to pings) is pinged half-way through `viewer_silence_timeout` and
/// closed at its end, with 1001 and why; the record says the server closed
/// it, and its session goes offline. (Found in review: such a viewer held its
/// slot, and kept its session online, for as long as the server ran.)
#[tokio::test]
async fn a_viewer_silent_past_the_deadline_is_pinged_then_closed_and_its_page_counts_as_gone() {
    let (addr, lab) = start_server_silent_after(SILENCE).await;
    let mut events = lab.subscribe(None).1;
    let id = issue_session(addr).await;
    let started = Instant::now();
    let mut ws = RawWs::connect_to(addr, &format!("/api/events?session={id}")).await;
    let peer = ws.local_addr().to_string();
    eventually("the page online", || online(&lab, &id)).await;

    // Nothing is sent: the frames that come are the snapshot, one ping, and
    // the close.
    let mut pinged_at = None;
    let (code, reason) = loop {
        match ws.next_frame().await {
            Some((first, _)) if first & 0x0f == TEXT => {}
            Some((first, _)) if first & 0x0f == PING => {
                assert!(pinged_at.is_none(), "one ping, then the close");
                pinged_at = Some(started.elapsed());
            }
            Some((first, payload)) if first & 0x0f == CLOSE => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                break (code, String::from_utf8_lossy(&payload[2..]).into_owned());
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    let closed_at = started.elapsed();
    let pinged_at = pinged_at.expect("a ping before the close");
    assert!(pinged_at >= SILENCE / 2, "pinged at {pinged_at:?}");
    assert!(closed_at >= SILENCE, "closed at {closed_at:?}");
    assert_eq!(code, 1001);
    assert!(
        reason.contains("nothing from this viewer") && reason.contains("ping"),
        "{reason}"
    );
    ws.until_closed().await;

    // The record: the server closed it, with that code.
    let conn = within("the viewer's connection in the record", async {
        let mut conn = None;
        loop {
            match events.recv().await.expect("the lab's events") {
                ServerEvent::ConnectionOpened {
                    conn: c, peer: p, ..
                } if p == peer => conn = Some(c),
                ServerEvent::ConnectionClosed {
                    conn: c, reason, ..
                } if Some(c) == conn => {
                    break reason;
                }
                _ => {}
            }
        }
    })
    .await;
    match conn {
        CloseReason::WebSocketClosed {
            code, initiator, ..
        } => {
            assert_eq!(code, 1001);
            assert_eq!(initiator, Initiator::Server);
        }
        other => panic!("recorded as {other:?}"),
    }
    eventually("the page counted as gone", || !online(&lab, &id)).await;
}

/// A viewer that answers the server's pings (as every browser does by
/// itself, even in a background tab) stays however long it says nothing
/// else.
#[tokio::test]
async fn a_viewer_that_answers_pings_stays_however_quiet() {
    let (addr, lab) = start_server_silent_after(SILENCE).await;
    let id = issue_session(addr).await;
    let mut ws = RawWs::connect_to(addr, &format!("/api/events?session={id}")).await;
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < SILENCE * 4 {
        match ws.next_frame().await {
            Some((first, _)) if first & 0x0f == TEXT => {}
            Some((first, payload)) if first & 0x0f == PING => {
                pings += 1;
                ws.send_frame(FIN | PONG, true, &payload).await;
            }
            other => panic!("after {:?}: unexpected {other:?}", started.elapsed()),
        }
    }
    assert!(
        pings >= 4,
        "pinged {pings} times in {:?}",
        started.elapsed()
    );
    assert!(online(&lab, &id), "still online");
    // And it still hears its session's events.
    get_once(addr, &format!("/api/fast?session={id}&id=still-here")).await;
    loop {
        match ws.next_frame().await {
            Some((first, text)) if first & 0x0f == TEXT => {
                if String::from_utf8_lossy(&text).contains("still-here") {
                    break;
                }
            }
            Some((first, payload)) if first & 0x0f == PING => {
                ws.send_frame(FIN | PONG, true, &payload).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
