//! The TLS ports over real TLS, with a rustls client of our own (issue 13):
//! ALPN picks `h2` on the h2 port and `http/1.1` on the h1-only port; twelve
//! hangs on one HTTP/2 connection are twelve streams of one connection in the
//! lab's record, a release answers them all; close reasons are recorded
//! (the client's end, and `GOAWAY` at the idle timeout). `RST_STREAM` and
//! `GOAWAY` frames are recorded as the wire has them: the tests log the
//! frames their own client sends and receives ([`WireLog`], a frame reader
//! written apart from the server's) and compare the lab's record with them.

mod common;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use common::{Viewer, within};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keepalive_lab_server::tls::{self, Identity, Offer};
use keepalive_lab_server::{Config, Lab};
use protocol::{CloseReason, ConnId, Initiator, RequestId, RequestOutcome, ServerEvent};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

/// A lab with its main port, an h2 TLS port and an h1-only TLS port.
struct TlsLab {
    addr: SocketAddr,
    h2: SocketAddr,
    h1: SocketAddr,
    lab: Lab,
    identity: Identity,
}

async fn start_tls(config: Config) -> TlsLab {
    let (addr, lab) = common::start_server_with(config).await;
    let identity = Identity::generate(&[]).expect("a certificate");
    let h2_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let h1_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let h2 = h2_listener.local_addr().expect("address");
    let h1 = h1_listener.local_addr().expect("address");
    let ports = vec![
        (
            h2_listener,
            tls::server_config(&identity, Offer::H2AndHttp11).expect("config"),
        ),
        (
            h1_listener,
            tls::server_config(&identity, Offer::Http11Only).expect("config"),
        ),
    ];
    tokio::spawn(tls::serve_all(ports, lab.clone()));
    TlsLab {
        addr,
        h2,
        h1,
        lab,
        identity,
    }
}

/// A TLS connection to `addr` that trusts only the lab's certificate and
/// offers ALPN `h2` and `http/1.1`, as a browser does.
async fn connect(addr: SocketAddr, identity: &Identity) -> TlsStream<TcpStream> {
    let config = client_config(identity, &[b"h2", b"http/1.1"]);
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::IpAddress(addr.ip().into());
    within(
        "the TLS handshake",
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("the TLS handshake (the certificate is valid for 127.0.0.1)")
}

/// A TLS client's configuration that trusts `identity`'s certificate and
/// offers `alpn`.
fn client_config(identity: &Identity, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(identity.leaf()).expect("a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// An HTTP/2 client over `tls`, its connection driven by a task of its own
/// (returned, to see the connection end).
async fn h2_client(
    tls: TlsStream<TcpStream>,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let (send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("HTTP/2 handshake");
    (send, tokio::spawn(connection))
}

/// A `RST_STREAM` or `GOAWAY` frame as the test's client wrote or read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Reset { stream: u32, code: u32 },
    GoAway { last_stream: u32, code: u32 },
}

/// One direction of the client's HTTP/2 connection, parsed into frames.
#[derive(Debug, Default)]
struct Direction {
    bytes: Vec<u8>,
    at: usize,
    frames: Vec<Frame>,
}

impl Direction {
    fn push(&mut self, chunk: &[u8], preface: usize) {
        self.bytes.extend_from_slice(chunk);
        if self.at < preface {
            if self.bytes.len() < preface {
                return;
            }
            self.at = preface;
        }
        while self.bytes.len() - self.at >= 9 {
            let h = &self.bytes[self.at..self.at + 9];
            let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            let (kind, stream) = (h[3], u32::from_be_bytes([h[5], h[6], h[7], h[8]]));
            if self.bytes.len() - self.at < 9 + len {
                return;
            }
            let p = &self.bytes[self.at + 9..self.at + 9 + len];
            let word = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
            match kind {
                0x3 => self.frames.push(Frame::Reset {
                    stream: stream & 0x7fff_ffff,
                    code: word(0),
                }),
                0x7 => self.frames.push(Frame::GoAway {
                    last_stream: word(0) & 0x7fff_ffff,
                    code: word(4),
                }),
                _ => {}
            }
            self.at += 9 + len;
        }
    }
}

/// The `RST_STREAM` and `GOAWAY` frames a client sent and received.
#[derive(Debug, Default)]
struct Frames {
    sent: Mutex<Direction>,
    received: Mutex<Direction>,
}

impl Frames {
    fn sent(&self) -> Vec<Frame> {
        self.sent.lock().unwrap().frames.clone()
    }
    fn received(&self) -> Vec<Frame> {
        self.received.lock().unwrap().frames.clone()
    }
}

/// The client's TLS stream, its HTTP/2 frames logged as they pass.
struct WireLog {
    inner: TlsStream<TcpStream>,
    frames: Arc<Frames>,
}

impl AsyncRead for WireLog {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let chunk = &buf.filled()[before..];
            this.frames.received.lock().unwrap().push(chunk, 0);
        }
        poll
    }
}

impl AsyncWrite for WireLog {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            // The client's bytes start with the 24-byte connection preface.
            this.frames.sent.lock().unwrap().push(&buf[..n], 24);
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// [`h2_client`] whose `RST_STREAM` and `GOAWAY` frames, each way, are logged.
async fn h2_logged(
    tls: TlsStream<TcpStream>,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
    Arc<Frames>,
) {
    let frames = Arc::new(Frames::default());
    let io = WireLog {
        inner: tls,
        frames: frames.clone(),
    };
    let (send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("HTTP/2 handshake");
    (send, tokio::spawn(connection), frames)
}

/// The resets and GOAWAYs the lab recorded for `conn` sent by `by`, as frames.
fn recorded(events: &[ServerEvent], conn: ConnId, by: Initiator) -> Vec<Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::StreamReset {
                conn: c,
                by: b,
                stream,
                code,
                ..
            } if *c == conn && *b == by => Some(Frame::Reset {
                stream: *stream,
                code: *code,
            }),
            ServerEvent::GoAway {
                conn: c,
                by: b,
                last_stream,
                code,
                ..
            } if *c == conn && *b == by => Some(Frame::GoAway {
                last_stream: *last_stream,
                code: *code,
            }),
            _ => None,
        })
        .collect()
}

/// The `request_started` of the request tagged `tag`: its connection and id.
async fn started(viewer: &mut Viewer, tag: &str) -> (ConnId, RequestId) {
    let tag = format!("id={tag}");
    match viewer
        .next_matching(
            "the request's request_started",
            |e| matches!(e, ServerEvent::RequestStarted { target, .. } if target.ends_with(&tag)),
        )
        .await
    {
        ServerEvent::RequestStarted { conn, request, .. } => (conn, request),
        _ => unreachable!(),
    }
}

/// The HTTP/2 error code in a hyper client error's sources.
fn h2_code(error: &hyper::Error) -> Option<u32> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason().map(u32::from);
        }
        source = e.source();
    }
    None
}

fn alpn(tls: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

fn get(addr: SocketAddr, target: &str) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get(format!("https://{addr}{target}"))
        .body(Empty::new())
        .expect("a request")
}

/// The protocol of `conn`'s `connection_secured` event.
async fn secured(viewer: &mut Viewer, conn: ConnId) -> (String, Option<String>) {
    match viewer
        .next_matching(
            "connection_secured",
            |e| matches!(e, ServerEvent::ConnectionSecured { conn: c, .. } if *c == conn),
        )
        .await
    {
        ServerEvent::ConnectionSecured { protocol, alpn, .. } => (protocol, alpn),
        _ => unreachable!(),
    }
}

fn conn_id(response: &hyper::Response<hyper::body::Incoming>) -> ConnId {
    ConnId(
        response.headers()["x-conn-id"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("a number"),
    )
}

#[tokio::test]
async fn alpn_picks_h2_on_the_tls_port_and_http11_on_the_h1_only_port() {
    let lab = start_tls(common::config()).await;
    let mut viewer = Viewer::connect(lab.addr).await;

    let tls = connect(lab.h2, &lab.identity).await;
    assert_eq!(alpn(&tls).as_deref(), Some(&b"h2"[..]));
    let (mut send, _driver) = h2_client(tls).await;
    let response = within(
        "an HTTP/2 answer",
        send.send_request(get(lab.h2, "/api/fast?id=a")),
    )
    .await
    .expect("an answer");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    // Connection-specific headers are illegal in HTTP/2.
    assert!(response.headers().get("keep-alive").is_none());
    assert!(response.headers().get("connection").is_none());
    let h2_conn = conn_id(&response);
    assert_eq!(
        secured(&mut viewer, h2_conn).await,
        ("h2".to_owned(), Some("h2".to_owned()))
    );

    let tls = connect(lab.h1, &lab.identity).await;
    assert_eq!(alpn(&tls).as_deref(), Some(&b"http/1.1"[..]));
    let (mut send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    let request = hyper::Request::get("/api/fast?id=b")
        .header("host", lab.h1.to_string())
        .body(Empty::<Bytes>::new())
        .expect("a request");
    let response = within("an HTTP/1.1 answer", send.send_request(request))
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), hyper::Version::HTTP_11);
    // The same keep-alive policy as on the plain ports.
    assert!(response.headers().get("keep-alive").is_some());
    let h1_conn = conn_id(&response);
    assert_eq!(
        secured(&mut viewer, h1_conn).await,
        ("http/1.1".to_owned(), Some("http/1.1".to_owned()))
    );
    assert_ne!(h1_conn, h2_conn);
}

/// The handshake's end and a request head that came in the same read (a
/// client that sends its `Finished` and its first request in one write):
/// the handshake is stamped with that read, as the head is, so it is never
/// later than the request it carried (found in review: `connection_secured`
/// was stamped when the handshake was told, after `request_started`, and the
/// HAR's `connect` ran past its `send`).
#[tokio::test]
async fn a_request_in_the_read_that_ends_the_handshake_is_not_stamped_before_it() {
    use std::io::Write as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let lab = start_tls(common::config()).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let config = Arc::new(client_config(&lab.identity, &[b"http/1.1"]));
    let name = ServerName::IpAddress(lab.h1.ip().into());
    let mut tls = rustls::ClientConnection::new(config, name).expect("a client");
    let mut tcp = TcpStream::connect(lab.h1).await.expect("connect");
    let flush = |tls: &mut rustls::ClientConnection| {
        let mut out = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut out).expect("TLS records");
        }
        out
    };
    tcp.write_all(&flush(&mut tls)).await.expect("the hello");
    let mut buf = vec![0u8; 16 * 1024];
    while tls.is_handshaking() {
        let n = within("the server's flight", tcp.read(&mut buf))
            .await
            .expect("read");
        assert!(n > 0, "the server closed during the handshake");
        tls.read_tls(&mut &buf[..n]).expect("records");
        tls.process_new_packets().expect("a good handshake");
        if tls.is_handshaking() && tls.wants_write() {
            tcp.write_all(&flush(&mut tls)).await.expect("write");
        }
    }
    // The client's Finished is queued: the request goes in the same write.
    let head = format!(
        "GET /api/fast?id=same-read HTTP/1.1\r\nHost: {}\r\n\r\n",
        lab.h1
    );
    tls.writer()
        .write_all(head.as_bytes())
        .expect("the request");
    tcp.write_all(&flush(&mut tls))
        .await
        .expect("Finished and the request");
    let (conn, request) = started(&mut viewer, "same-read").await;
    let at = |secured: bool| {
        viewer.seen.iter().find_map(|e| match e {
            ServerEvent::ConnectionSecured { conn: c, at_us, .. } if secured && *c == conn => {
                Some(*at_us)
            }
            ServerEvent::RequestStarted {
                request: r, at_us, ..
            } if !secured && *r == request => Some(*at_us),
            _ => None,
        })
    };
    let secured_at = at(true).expect("the handshake, told before the request");
    let started_at = at(false).expect("its start");
    assert!(
        secured_at <= started_at,
        "secured at {secured_at}, its request at {started_at}"
    );
}

/// A client that finishes the TLS handshake with ALPN `h2` and never sends
/// the HTTP/2 preface: hyper has no `GOAWAY` to send before it, so the lab
/// ends the connection itself, at the idle deadline and at a shutdown at
/// once, with TLS's `close_notify` (found in review: the idle close waited
/// out the `GOAWAY` grace, a second late, and a shutdown its 5 s, each
/// ending in a bare FIN).
#[tokio::test]
async fn an_h2_connection_without_its_preface_is_closed_on_time_with_close_notify() {
    use tokio::io::AsyncReadExt;
    let lab = start_tls(common::config_with_idle(std::time::Duration::from_millis(
        300,
    )))
    .await;
    // A subscriber that outlives the shutdown, to see every close.
    let (_, mut events) = lab.lab.subscribe(None);
    let closed = |events: &mut tokio::sync::broadcast::Receiver<ServerEvent>, peer: String| {
        let mut conn = None;
        let mut reason = None;
        while let Ok(event) = events.try_recv() {
            match event {
                ServerEvent::ConnectionOpened {
                    conn: c, peer: p, ..
                } if p == peer => {
                    conn = Some(c);
                }
                ServerEvent::ConnectionClosed {
                    conn: c, reason: r, ..
                } if Some(c) == conn => reason = Some(r),
                _ => {}
            }
        }
        reason
    };
    // Idle: closed at the idle timeout, with `close_notify` (a clean end
    // of the TLS stream, not an unexpected EOF).
    let mut tls = connect(lab.h2, &lab.identity).await;
    assert_eq!(alpn(&tls).as_deref(), Some(&b"h2"[..]));
    let peer = tls.get_ref().0.local_addr().expect("address").to_string();
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    within("the idle close", tls.read_to_end(&mut got))
        .await
        .expect("a close_notify, then the end");
    let took = start.elapsed();
    assert!(
        took < std::time::Duration::from_millis(1_100),
        "closed {took:?} after the handshake (idle timeout 300 ms)"
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(closed(&mut events, peer), Some(CloseReason::IdleTimeout));
    // Shutdown: at once, not after its grace (once the server has the
    // handshake done, as the client has). A lab of its own, with the
    // default idle timeout, so that no idle close comes first on a slow
    // machine.
    let lab = start_tls(common::config()).await;
    let (_, mut events) = lab.lab.subscribe(None);
    let mut viewer = Viewer::connect(lab.addr).await;
    let mut tls = connect(lab.h2, &lab.identity).await;
    let peer = tls.get_ref().0.local_addr().expect("address").to_string();
    let conn = opened_from(&mut viewer, &peer).await;
    secured(&mut viewer, conn).await;
    lab.lab.begin_shutdown();
    let start = std::time::Instant::now();
    within("the shutdown's close", tls.read_to_end(&mut got))
        .await
        .expect("a close_notify, then the end");
    let took = start.elapsed();
    assert!(
        took < std::time::Duration::from_secs(2),
        "closed {took:?} after the shutdown began"
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(closed(&mut events, peer), Some(CloseReason::Shutdown));
}

/// A WebSocket over TLS (`wss://…/api/events` on the HTTP/1.1 port) closed
/// in order ends with TLS's `close_notify` before the FIN (found in review:
/// the upgraded stream was dropped without one, and the client read an
/// unexpected EOF after the close handshake).
#[tokio::test]
async fn a_websocket_over_tls_closed_in_order_ends_with_close_notify() {
    use futures_util::StreamExt as _;
    use tokio::io::AsyncReadExt as _;
    let lab = start_tls(common::config()).await;
    let tls = connect(lab.h1, &lab.identity).await;
    let url = format!("wss://{}/api/events", lab.h1);
    let (mut ws, _) = within(
        "the WebSocket handshake",
        tokio_tungstenite::client_async(url.as_str(), tls),
    )
    .await
    .expect("an events socket over TLS");
    let first = within("the snapshot", ws.next()).await;
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
    within("the close frame sent", ws.close(None))
        .await
        .expect("a close frame");
    // The server's close frame, then the end of the stream: a clean one.
    while let Some(message) = within("the server's close", ws.next()).await {
        if let Err(e) = message {
            panic!("the WebSocket ended with {e}");
        }
    }
    let mut rest = Vec::new();
    within(
        "the end of the TLS stream",
        ws.get_mut().read_to_end(&mut rest),
    )
    .await
    .expect("close_notify, then the end");
}

#[tokio::test]
async fn twelve_hangs_over_h2_are_twelve_streams_of_one_connection_released_at_once() {
    let lab = start_tls(common::config()).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let tls = connect(lab.h2, &lab.identity).await;
    let (send, driver) = h2_client(tls).await;

    let mut pending = Vec::new();
    for n in 1..=12 {
        let mut send = send.clone();
        let request = get(lab.h2, &format!("/api/hang?id=h2-{n}"));
        pending.push(tokio::spawn(
            async move { send.send_request(request).await },
        ));
    }
    // All twelve are at the server at once: no pool of six in the way.
    common::wait_for_hangs(&lab.lab, 12).await;
    let conn = match viewer
        .next_matching("connection_secured", |e| {
            matches!(e, ServerEvent::ConnectionSecured { .. })
        })
        .await
    {
        ServerEvent::ConnectionSecured { conn, protocol, .. } => {
            assert_eq!(protocol, "h2");
            conn
        }
        _ => unreachable!(),
    };
    // A viewer that connects later (a page that reconnected) is told it too.
    let late = Viewer::connect(lab.addr).await;
    assert_eq!(
        late.snapshot
            .iter()
            .find(|c| c.conn == conn)
            .and_then(|c| c.protocol.as_deref()),
        Some("h2")
    );

    let mut started = Vec::new();
    while started.len() < 12 {
        if let ServerEvent::RequestStarted { conn, seq, target, .. } = viewer
            .next_matching("request_started of a hang", |e| {
                matches!(e, ServerEvent::RequestStarted { target, .. } if target.starts_with("/api/hang"))
            })
            .await
        {
            started.push((conn, seq, target));
        }
    }
    assert!(
        started.iter().all(|(c, ..)| *c == conn),
        "one connection: {started:?}"
    );
    let mut seqs: Vec<u32> = started.iter().map(|(_, s, _)| *s).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=12).collect::<Vec<_>>(),
        "streams numbered 1 to 12"
    );
    let mut tags: Vec<String> = started.iter().map(|(.., t)| t.clone()).collect();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), 12, "every tag once: {tags:?}");
    let open = common::connections(lab.addr).await;
    let record = open
        .iter()
        .find(|c| c.conn == conn)
        .expect("the connection is open");
    assert_eq!(
        record
            .requests
            .iter()
            .filter(|r| r.outcome.is_none())
            .count(),
        12
    );

    assert_eq!(common::release(lab.addr, "", "").await, 12);
    for answer in pending {
        let response = within("a released hang", answer)
            .await
            .expect("the task")
            .expect("an answer");
        assert_eq!(response.status(), 200);
        assert_eq!(conn_id(&response), conn);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the body")
            .to_bytes();
        assert!(body.starts_with(b"{"), "{body:?}");
    }
    for _ in 0..12 {
        viewer
            .next_matching(
                "request_finished",
                |e| matches!(e, ServerEvent::RequestFinished { conn: c, .. } if *c == conn),
            )
            .await;
    }

    // The client goes away: the connection closes as the peer's doing.
    drop(send);
    let _ = within("the client's connection to end", driver).await;
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::PeerClosed);
    assert_eq!(closed.requests, 12);
}

#[tokio::test]
async fn an_idle_h2_connection_gets_goaway_and_closes_as_idle_timeout() {
    let lab = start_tls(common::config_with_idle(std::time::Duration::from_millis(
        300,
    )))
    .await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let tls = connect(lab.h2, &lab.identity).await;
    let (mut send, driver, wire) = h2_logged(tls).await;
    let response = within(
        "an answer",
        send.send_request(get(lab.h2, "/api/fast?id=idle")),
    )
    .await
    .expect("an answer");
    let conn = conn_id(&response);
    // The server says GOAWAY and closes; the client's connection ends.
    within("the server's GOAWAY", driver)
        .await
        .expect("the task")
        .expect("a clean end after GOAWAY");
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::IdleTimeout);
    graceful_goaways_as_received(&viewer, conn, &wire);
}

/// The lab's record of its GOAWAYs on `conn` is what the client received
/// (`wire`): h2's graceful NO_ERROR, first naming the highest stream id
/// possible (a second one, naming the last stream processed, would follow
/// the client's answer to the PING sent with it; a client with nothing in
/// flight may close first). The lab records each frame as hyper hands it to
/// TLS: the client received those it read before it closed (typically not
/// the second GOAWAY), each with the code recorded.
fn graceful_goaways_as_received(viewer: &Viewer, conn: ConnId, wire: &Frames) {
    let received = wire.received();
    assert_eq!(
        received.first(),
        Some(&Frame::GoAway {
            last_stream: 0x7fff_ffff,
            code: 0
        }),
        "{received:?}"
    );
    let sent = recorded(&viewer.seen, conn, Initiator::Server);
    assert!(sent.starts_with(&received), "{sent:?} against {received:?}");
    assert!(
        sent.iter()
            .all(|f| matches!(f, Frame::GoAway { code: 0, .. })),
        "{sent:?}"
    );
}

#[tokio::test]
async fn a_client_that_refuses_the_certificate_is_recorded_as_a_failed_handshake() {
    let lab = start_tls(common::config()).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    // A client that trusts another certificate: it refuses the lab's.
    let other = Identity::generate(&[]).expect("another certificate");
    let tcp = TcpStream::connect(lab.h2).await.expect("connect");
    let local = tcp.local_addr().expect("address");
    let config = client_config(&other, &[]);
    let refused = TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(lab.h2.ip().into()), tcp)
        .await;
    assert!(refused.is_err());
    let conn = opened_from(&mut viewer, &local.to_string()).await;
    let closed = viewer.closed(conn).await;
    match closed.reason {
        CloseReason::Error { message } => {
            assert!(message.starts_with("TLS handshake failed"), "{message}")
        }
        other => panic!("expected a failed handshake, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_answers_a_hang_over_h2_says_goaway_and_records_shutdown() {
    let lab = start_tls(common::config()).await;
    // A subscriber that outlives the shutdown, to see every close.
    let (_, mut events) = lab.lab.subscribe(None);
    let tls = connect(lab.h2, &lab.identity).await;
    let (mut send, driver, wire) = h2_logged(tls).await;
    let hang = tokio::spawn(send.send_request(get(lab.h2, "/api/hang?id=held")));
    common::wait_for_hangs(&lab.lab, 1).await;

    lab.lab.begin_shutdown();
    let answer = within("the hang's answer", hang)
        .await
        .expect("the task")
        .expect("an answer");
    assert_eq!(answer.status(), 503);
    let conn = conn_id(&answer);
    within("the connection to end after GOAWAY", driver)
        .await
        .expect("the task")
        .expect("a clean end");
    let mut seen = Vec::new();
    let reason = within("the close", async {
        loop {
            match events.recv().await {
                Ok(ServerEvent::ConnectionClosed {
                    conn: c, reason, ..
                }) if c == conn => {
                    break reason;
                }
                Ok(event) => seen.push(event),
                Err(e) => panic!("the event stream ended: {e}"),
            }
        }
    })
    .await;
    assert_eq!(reason, CloseReason::Shutdown);
    // Recorded as received: the graceful GOAWAY (NO_ERROR).
    let received = wire.received();
    assert_eq!(
        received.first(),
        Some(&Frame::GoAway {
            last_stream: 0x7fff_ffff,
            code: 0
        }),
        "{received:?}"
    );
    let sent = recorded(&seen, conn, Initiator::Server);
    assert!(sent.starts_with(&received), "{sent:?} against {received:?}");
    assert!(
        sent.iter()
            .all(|f| matches!(f, Frame::GoAway { code: 0, .. })),
        "{sent:?}"
    );
}

#[tokio::test]
async fn api_tls_lists_the_tls_ports_and_they_are_the_labs_own_origins() {
    let lab = start_tls(common::config()).await;
    let response = common::get_once(lab.addr, "/api/tls").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let listed: protocol::TlsListeners =
        serde_json::from_slice(&response.body).expect("TlsListeners");
    assert_eq!(listed.h2, vec![lab.h2.to_string()]);
    assert_eq!(listed.http1_only, vec![lab.h1.to_string()]);
    assert_eq!(
        listed.max_concurrent_streams,
        Some(tls::MAX_CONCURRENT_STREAMS)
    );
    assert!(
        lab.lab
            .origins()
            .allows_origin(&format!("https://localhost:{}", lab.h2.port()))
    );
    let bad = common::get_once(lab.addr, "/api/tls?x=1").await;
    assert_eq!(bad.status, 400);
}

/// The scheme of an own origin is the one its port speaks: a page on a TLS
/// port is `https://`, on a plain port `http://`. The other pairings name no
/// page the lab serves, and are refused like any foreign origin.
#[tokio::test]
async fn an_own_origin_has_the_scheme_of_its_port() {
    let lab = start_tls(common::config()).await;
    common::eventually("the TLS ports among the origins", || {
        lab.lab.tls().http1_only.len() == 1
    })
    .await;
    let (plain, h2, h1) = (lab.addr.port(), lab.h2.port(), lab.h1.port());
    for (origin, status) in [
        (format!("http://localhost:{plain}"), 200),
        (format!("https://localhost:{h2}"), 200),
        (format!("https://127.0.0.1:{h1}"), 200),
        (format!("https://127.0.0.1:{plain}"), 403),
        (format!("https://localhost:{plain}"), 403),
        (format!("http://127.0.0.1:{h2}"), 403),
        (format!("http://localhost:{h1}"), 403),
    ] {
        let mut client = common::Client::connect(lab.addr).await;
        client
            .send_request_with("GET", "/api/fast", &[("Origin", &origin)], b"")
            .await;
        let response = client.read_response().await;
        assert_eq!(response.status, status, "{origin}: {}", response.text());
        let allowed = response.header("access-control-allow-origin");
        if status == 200 {
            assert_eq!(allowed, Some(origin.as_str()));
        } else {
            assert!(response.error_body().error.contains("refused"), "{origin}");
            assert_eq!(allowed, None, "{origin}");
        }
    }
}

#[tokio::test]
async fn a_hang_timeout_over_h2_resets_its_stream_and_the_connection_goes_on() {
    let mut config = common::config();
    config.policy.hang_timeout_ms = Some(200);
    let lab = start_tls(config).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let tls = connect(lab.h2, &lab.identity).await;
    let (mut send, driver, wire) = h2_logged(tls).await;
    let reset = within(
        "the hang's stream reset",
        send.send_request(get(lab.h2, "/api/hang?id=late")),
    )
    .await;
    let error = reset.expect_err("the stream is reset, unanswered");
    // What the client got: RST_STREAM on the hang's stream (the first, 1),
    // with hyper's code for a failed service, INTERNAL_ERROR.
    let code = h2_code(&error).expect("an HTTP/2 error code in the client's error");
    assert_eq!(code, u32::from(h2::Reason::INTERNAL_ERROR), "{error:?}");
    assert_eq!(wire.received(), vec![Frame::Reset { stream: 1, code }]);
    // What the lab recorded: the server reset that stream, that request,
    // with that code; the request itself ended aborted.
    let (conn, request) = started(&mut viewer, "late").await;
    let recorded_reset = viewer
        .next_matching(
            "the server's stream_reset",
            |e| matches!(e, ServerEvent::StreamReset { conn: c, .. } if *c == conn),
        )
        .await;
    assert_eq!(
        recorded_reset,
        ServerEvent::StreamReset {
            conn,
            stream: 1,
            request: Some(request),
            by: Initiator::Server,
            code,
            at_us: match recorded_reset {
                ServerEvent::StreamReset { at_us, .. } => at_us,
                _ => unreachable!(),
            },
        }
    );
    assert!(viewer.seen.iter().any(|e| matches!(
        e,
        ServerEvent::RequestFinished { request: r, outcome: RequestOutcome::Aborted, .. } if *r == request
    )));
    // The same connection still answers.
    let response = within(
        "an answer after the reset",
        send.send_request(get(lab.h2, "/api/fast?id=after")),
    )
    .await
    .expect("an answer");
    assert_eq!(response.status(), 200);
    let conn = conn_id(&response);
    drop((response, send));
    let _ = within("the client's connection to end", driver).await;
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::PeerClosed);
    assert_eq!(closed.requests, 2);
}

#[tokio::test]
async fn api_close_over_h2_is_refused_with_a_hint() {
    let lab = start_tls(common::config()).await;
    let tls = connect(lab.h2, &lab.identity).await;
    let (mut send, _driver) = h2_client(tls).await;
    let response = within(
        "an answer",
        send.send_request(get(lab.h2, "/api/close?mode=fin")),
    )
    .await
    .expect("an answer");
    assert_eq!(response.status(), 400);
    let response = within(
        "the connection goes on",
        send.send_request(get(lab.h2, "/api/fast")),
    )
    .await
    .expect("an answer");
    assert_eq!(response.status(), 200);
}

/// The lab with only its stream-limited HTTPS port ([`tls::LIMITED_STREAMS`]
/// streams at once): its plain address, the lab, the limited port's address
/// and its certificate.
async fn start_limited_port() -> (SocketAddr, Lab, SocketAddr, Identity) {
    let (addr, lab) = common::start_server_with(common::config()).await;
    let identity = Identity::generate(&[]).expect("a certificate");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let limited = listener.local_addr().expect("address");
    let config = tls::server_config(&identity, Offer::H2AndHttp11).expect("config");
    tokio::spawn(tls::serve_ports(
        vec![(listener, config, tls::LIMITED_STREAMS)],
        lab.clone(),
    ));
    (addr, lab, limited, identity)
}

#[tokio::test]
async fn the_limited_port_says_four_streams_and_a_client_holds_the_rest_back() {
    let (addr, lab, limited, identity) = start_limited_port().await;
    let listed: protocol::TlsListeners =
        serde_json::from_slice(&common::get_once(addr, "/api/tls").await.body).expect("JSON");
    assert_eq!(listed.h2_limited, vec![limited.to_string()]);
    assert_eq!(listed.limited_streams, Some(tls::LIMITED_STREAMS));
    assert!(listed.h2.is_empty(), "{listed:?}");

    let tls = connect(limited, &identity).await;
    let (send, _driver) = h2_client(tls).await;
    // One answered request first, so the client has read the server's
    // SETTINGS (a client may open streams before it has; the server then
    // refuses the ones over the limit with REFUSED_STREAM).
    let first = send
        .clone()
        .send_request(get(limited, "/api/fast"))
        .await
        .expect("a first answer");
    assert_eq!(first.status(), 200);
    let mut pending = Vec::new();
    for n in 1..=6 {
        let mut send = send.clone();
        let request = get(limited, &format!("/api/hang?id=limited-{n}"));
        pending.push(tokio::spawn(
            async move { send.send_request(request).await },
        ));
    }
    // The client honours SETTINGS_MAX_CONCURRENT_STREAMS: four at the server,
    // two waiting in the client, on the one connection.
    common::wait_for_hangs(&lab, 4).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(lab.hangs().len(), 4, "four streams at once");
    let everyone = keepalive_lab_server::sessions::Access::All;
    let all = protocol::ReleaseRequest {
        request: None,
        id: None,
    };
    assert_eq!(lab.hangs().release(&all, &everyone, None), 4);
    common::wait_for_hangs(&lab, 2).await;
    assert_eq!(lab.hangs().release(&all, &everyone, None), 2);
    for answer in pending {
        let response = answer.await.expect("task").expect("response");
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn a_stream_the_client_cancels_is_recorded_as_reset_by_the_client_with_cancel() {
    let lab = start_tls(common::config()).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let tls = connect(lab.h2, &lab.identity).await;
    let (send, driver, wire) = h2_logged(tls).await;
    // Three held requests, three streams of one connection; the middle one
    // is cancelled, so the record must tell the streams apart.
    let mut held = Vec::new();
    for (n, tag) in ["c1", "c2", "c3"].into_iter().enumerate() {
        let mut send = send.clone();
        let request = get(lab.h2, &format!("/api/hang?id={tag}"));
        held.push(tokio::spawn(
            async move { send.send_request(request).await },
        ));
        common::wait_for_hangs(&lab.lab, n + 1).await;
    }
    let (conn, _) = started(&mut viewer, "c1").await;
    let (_, cancelled) = started(&mut viewer, "c2").await;
    // Dropping a response future: hyper's client resets its stream with
    // CANCEL (hyper's documented cancellation over HTTP/2).
    let middle = held.remove(1);
    middle.abort();
    let _ = middle.await;
    let recorded_reset = viewer
        .next_matching(
            "the client's stream_reset",
            |e| matches!(e, ServerEvent::StreamReset { conn: c, .. } if *c == conn),
        )
        .await;
    let ServerEvent::StreamReset {
        stream,
        request,
        by,
        code,
        ..
    } = recorded_reset
    else {
        unreachable!()
    };
    assert_eq!(by, Initiator::Client);
    assert_eq!(code, 0x8, "CANCEL");
    assert_eq!(protocol::h2_error_name(code), Some("CANCEL"));
    assert_eq!(
        request,
        Some(cancelled),
        "the reset is the cancelled request's"
    );
    // The frame the client sent, exactly.
    assert_eq!(wire.sent(), vec![Frame::Reset { stream, code: 8 }]);
    assert_eq!(stream, 3, "the second stream the client opened");
    viewer
        .next_matching("the cancelled request's end", |e| {
            matches!(e, ServerEvent::RequestFinished { request: r, outcome: RequestOutcome::Aborted, .. } if *r == cancelled)
        })
        .await;
    common::wait_for_hangs(&lab.lab, 2).await;

    // The others go on and are answered on their own streams.
    assert_eq!(common::release(lab.addr, "", "").await, 2);
    for answer in held {
        let response = within("a released hang", answer)
            .await
            .expect("the task")
            .expect("an answer");
        assert_eq!(response.status(), 200);
    }
    // The client goes away: whatever GOAWAY it sent is what the lab recorded
    // as the client's, and the lab reset nothing.
    drop(send);
    let _ = within("the client's connection to end", driver).await;
    viewer.closed(conn).await;
    let client_goaways: Vec<Frame> = wire
        .sent()
        .into_iter()
        .filter(|f| matches!(f, Frame::GoAway { .. }))
        .collect();
    let recorded_client: Vec<Frame> = recorded(&viewer.seen, conn, Initiator::Client)
        .into_iter()
        .filter(|f| matches!(f, Frame::GoAway { .. }))
        .collect();
    assert_eq!(recorded_client, client_goaways);
    assert!(
        !recorded(&viewer.seen, conn, Initiator::Server)
            .iter()
            .any(|f| matches!(f, Frame::Reset { .. }))
    );
}

#[tokio::test]
async fn streams_the_server_refuses_are_recorded_as_reset_by_the_server_without_a_request() {
    let (addr, lab, limited, identity) = start_limited_port().await;
    let mut viewer = Viewer::connect(addr).await;
    let frames = Arc::new(Frames::default());
    let io = WireLog {
        inner: connect(limited, &identity).await,
        frames: frames.clone(),
    };
    // h2's own client, which opens streams before it has read the server's
    // SETTINGS: six at once, two over the port's four.
    let (mut client, connection) = h2::client::handshake(io).await.expect("HTTP/2 handshake");
    let mut streams = Vec::new();
    for n in 1..=6 {
        let request = hyper::Request::get(format!("https://{limited}/api/hang?id=r{n}"))
            .body(())
            .expect("a request");
        let (response, _) = client.send_request(request, true).expect("a stream");
        streams.push((format!("r{n}"), u32::from(response.stream_id()), response));
    }
    let driver = tokio::spawn(connection);
    common::wait_for_hangs(&lab, 4).await;
    let mut refused = Vec::new();
    let mut held = Vec::new();
    for (tag, stream, mut response) in streams {
        match tokio::time::timeout(std::time::Duration::from_millis(300), &mut response).await {
            Ok(Err(e)) => {
                assert_eq!(e.reason(), Some(h2::Reason::REFUSED_STREAM), "{tag}: {e}");
                refused.push(stream);
            }
            Ok(Ok(r)) => panic!("{tag} answered: {r:?}"),
            // Still held (kept: dropping it would cancel the stream).
            Err(_) => held.push((tag, stream, response)),
        }
    }
    assert_eq!((held.len(), refused.len()), (4, 2), "{held:?} {refused:?}");
    assert_eq!(lab.hangs().len(), 4);
    // Each held request is on its own stream; the refused never became
    // requests: the record says the server reset them, REFUSED_STREAM (7),
    // with no request, exactly the frames the client received.
    let conn = match viewer
        .next_matching("connection_secured", |e| {
            matches!(e, ServerEvent::ConnectionSecured { .. })
        })
        .await
    {
        ServerEvent::ConnectionSecured { conn, .. } => conn,
        _ => unreachable!(),
    };
    let mut requests = Vec::new();
    for (tag, ..) in &held {
        requests.push(started(&mut viewer, tag).await.1);
    }
    for _ in 0..2 {
        viewer
            .next_matching(
                "a refusal",
                |e| matches!(e, ServerEvent::StreamReset { conn: c, .. } if *c == conn),
            )
            .await;
    }
    let expected: Vec<Frame> = refused
        .iter()
        .map(|&stream| Frame::Reset { stream, code: 7 })
        .collect();
    assert_eq!(recorded(&viewer.seen, conn, Initiator::Server), expected);
    assert_eq!(frames.received(), expected);
    assert!(viewer.seen.iter().all(|e| !matches!(
        e,
        ServerEvent::StreamReset {
            request: Some(_),
            by: Initiator::Server,
            ..
        }
    )));

    // Each request is on the stream the client opened for it: the client
    // cancels the third held one (dropping its response), and the record
    // names that request and stream.
    let (_, stream, response) = held.remove(2);
    drop(response);
    let cancelled = requests.remove(2);
    viewer
        .next_matching("the client's reset", |e| {
            matches!(
                e,
                ServerEvent::StreamReset {
                    by: Initiator::Client,
                    ..
                }
            )
        })
        .await;
    assert_eq!(
        recorded(&viewer.seen, conn, Initiator::Client),
        vec![Frame::Reset { stream, code: 8 }]
    );
    assert_eq!(frames.sent(), vec![Frame::Reset { stream, code: 8 }]);
    assert!(viewer.seen.iter().any(|e| matches!(
        e,
        ServerEvent::StreamReset { request: Some(r), stream: s, .. } if *r == cancelled && *s == stream
    )));
    common::wait_for_hangs(&lab, 3).await;
    let everyone = keepalive_lab_server::sessions::Access::All;
    let all = protocol::ReleaseRequest {
        request: None,
        id: None,
    };
    assert_eq!(lab.hangs().release(&all, &everyone, None), 3);
    for (tag, _, response) in held {
        let response = within("a released hang", response)
            .await
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(response.status(), 200);
    }
    drop(client);
    driver.abort();
}

/// A request body fed from a channel: what is sent goes out as it is sent,
/// and the body ends when the sender is dropped.
struct ChannelBody(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// Over HTTP/2 bodies are read side by side. A body that stops coming meets
/// the body guard even when another stream's body ends meanwhile. (Found in
/// review: the guard's stamp was the connection's, and the other body's end
/// cleared it, so the stalled handler waited with no timeout.)
#[tokio::test]
async fn one_streams_body_ending_leaves_the_guard_on_another_that_stopped() {
    let lab = start_tls(Config {
        header_read_timeout: std::time::Duration::from_millis(600),
        ..common::config()
    })
    .await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let tls = connect(lab.h2, &lab.identity).await;
    let (mut send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("HTTP/2 handshake");
    let driver = tokio::spawn(connection);
    let put = |target: &str, length: usize, body| {
        hyper::Request::put(format!("https://{}{target}", lab.h2))
            .header("content-length", length)
            .body(ChannelBody(body))
            .expect("a request")
    };

    // Stream 1: 40 bytes announced, 13 sent, then nothing.
    let (stalled_tx, stalled_rx) = tokio::sync::mpsc::unbounded_channel();
    stalled_tx
        .send(Bytes::from_static(b"{\"keep_alive\""))
        .expect("the channel is open");
    let stalled = send.send_request(put("/api/config?id=stalled", 40, stalled_rx));
    let stalled = tokio::spawn(stalled);
    let (conn, stalled_request) = viewer.request_started("/api/config?id=stalled").await;

    // Stream 2, while stream 1's handler waits: a whole body that ends
    // 300 ms later, answered.
    send.ready().await.expect("ready for a second stream");
    let (whole_tx, whole_rx) = tokio::sync::mpsc::unbounded_channel();
    let whole = tokio::spawn(send.send_request(put("/api/config?id=whole", 2, whole_rx)));
    viewer.request_started("/api/config?id=whole").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    whole_tx.send(Bytes::from_static(b"{}")).expect("open");
    drop(whole_tx);
    let answered = within("the whole body's answer", whole)
        .await
        .expect("the task")
        .expect("an answer");
    assert_eq!(answered.status(), 200);

    // Stream 1 is still held to the guard: the connection is closed for it.
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::BodyReadTimeout, "{closed:?}");
    assert_eq!(
        viewer.timeline(stalled_request).await.outcome,
        RequestOutcome::Aborted
    );
    assert!(
        within("the stalled request's end", stalled)
            .await
            .expect("the task")
            .is_err(),
        "never answered"
    );
    drop(stalled_tx);
    driver.abort();
}

/// A response the client reads slowly: h2 sends what the client's window
/// takes and holds the rest back. The request ends in the record when its
/// `END_STREAM` goes out, not when hyper was handed the body; meanwhile the
/// connection is busy, not idle, so the idle timeout does not cut it (found
/// in review: recorded complete at once, then closed as idle mid-way).
#[tokio::test]
async fn an_h2_response_read_slowly_ends_when_its_last_frame_goes_out_and_is_never_cut_as_idle() {
    const SIZE: usize = 1_048_576;
    let lab = start_tls(common::config_with_idle(std::time::Duration::from_millis(
        300,
    )))
    .await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let (mut send, driver) = h2_small_window(&lab).await;
    let target = format!("/api/drip?bytes={SIZE}&chunks=1&id=slow-reader");
    let response = within("the head", send.send_request(get(lab.h2, &target)))
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    let (conn, request) = viewer.request_started(&target).await;
    let mut body = response.into_body();
    let mut got = 0;
    while got < SIZE / 4 {
        let frame = within("a frame", body.frame())
            .await
            .expect("more")
            .expect("data");
        got += frame.data_ref().map_or(0, Bytes::len);
    }

    // The reader pauses for three idle timeouts: the window fills and the
    // rest of the body waits in the server.
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let ServerEvent::Snapshot { connections, .. } = lab.lab.snapshot(None) else {
        unreachable!()
    };
    let record = connections
        .iter()
        .find(|c| c.conn == conn)
        .expect("the connection is open");
    let r = record
        .requests
        .iter()
        .find(|r| r.request == request)
        .expect("the request");
    assert_eq!(
        (r.finished_us, r.outcome),
        (None, None),
        "{got} of {SIZE} bytes read: the response is not out yet"
    );

    // The rest, all of it, with its END_STREAM.
    while let Some(frame) = within("a frame", body.frame()).await {
        got += frame.expect("no error").data_ref().map_or(0, Bytes::len);
    }
    assert_eq!(got, SIZE);
    assert_eq!(
        viewer.timeline(request).await.outcome,
        RequestOutcome::Completed
    );
    // Then, idle, it closes as such.
    assert_eq!(viewer.closed(conn).await.reason, CloseReason::IdleTimeout);
    driver.abort();
}

/// An HTTP/2 client whose windows stay at the protocol's initial 65 535
/// bytes: the server may send no more than it has read.
async fn h2_small_window(
    lab: &TlsLab,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    h2_window(lab, 65_535).await
}

/// An HTTP/2 client whose streams' initial window is `window` bytes.
async fn h2_window(
    lab: &TlsLab,
    window: u32,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let tls = connect(lab.h2, &lab.identity).await;
    let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(window)
        .initial_connection_window_size(65_535)
        .adaptive_window(false)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
        .await
        .expect("HTTP/2 handshake");
    (send, tokio::spawn(connection))
}

/// The body handed to hyper whole, the client cancels the stream before its
/// end went out: the response was cut, the request aborted.
#[tokio::test]
async fn an_h2_response_cancelled_before_its_end_went_out_is_aborted() {
    let lab = start_tls(common::config()).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let (mut send, driver) = h2_small_window(&lab).await;
    let target = "/api/drip?bytes=1048576&chunks=1&id=cancelled";
    let response = within("the head", send.send_request(get(lab.h2, target)))
        .await
        .expect("an answer");
    let (_, request) = viewer.request_started(target).await;
    let mut body = response.into_body();
    within("a frame", body.frame())
        .await
        .expect("more")
        .expect("data");
    // Dropping the body unread resets the stream (CANCEL).
    drop(body);
    assert_eq!(
        viewer.timeline(request).await.outcome,
        RequestOutcome::Aborted
    );
    // The reset came first, then the request's end (the timeline above).
    let reset = viewer.seen.iter().find_map(|e| match e {
        ServerEvent::StreamReset {
            request: r,
            by,
            code,
            ..
        } if *r == Some(request) => Some((*by, *code)),
        _ => None,
    });
    assert_eq!(reset, Some((Initiator::Client, 8)));
    driver.abort();
}

/// A client that keeps reading the socket but never opens its window: h2
/// sends nothing and no write ever blocks, yet the response cannot go out.
/// The write-stall guard closes it (found in review: held for ever). A
/// response the server has not started yet (a slow handler) is not the
/// client's stall.
#[tokio::test]
async fn an_h2_client_that_never_opens_its_window_is_closed_as_write_stalled() {
    let lab = start_tls(Config {
        write_stall_timeout: std::time::Duration::from_millis(400),
        ..common::config()
    })
    .await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let (mut send, driver) = h2_window(&lab, 0).await;
    let target = "/api/slow?ms=1200&id=window-zero";
    let answer = tokio::spawn(send.send_request(get(lab.h2, target)));
    let (conn, request) = viewer.request_started(target).await;
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::WriteStalled, "{closed:?}");
    let timeline = viewer.timeline(request).await;
    assert_eq!(timeline.outcome, RequestOutcome::Aborted);
    assert!(
        viewer.seen.iter().any(|e| matches!(
            e,
            ServerEvent::ResponseStarted { request: r, status: 200, .. } if *r == request
        )),
        "the slow handler answered before the guard ran: {:#?}",
        viewer.seen
    );
    let _ = within("the client's end", answer).await;
    driver.abort();
}

/// A client that opens its window a little just before each stall would
/// trip the guard (a `WINDOW_UPDATE` for each frame it reads, one a second)
/// is cut when the stalls of the streams under way add up to the total
/// (found in the hostile-room review of December 5, 2026: a one-byte
/// `WINDOW_UPDATE` every 9 s held a response for as long as it liked).
#[tokio::test]
async fn an_h2_client_that_opens_its_window_just_before_each_stall_would_trip_is_cut_at_the_total()
{
    const STALL: std::time::Duration = std::time::Duration::from_secs(2);
    const TOTAL: std::time::Duration = std::time::Duration::from_secs(3);
    const PAUSE: std::time::Duration = std::time::Duration::from_secs(1);
    let lab = start_tls(Config {
        write_stall_timeout: STALL,
        write_stall_total: TOTAL,
        ..common::config()
    })
    .await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let (mut send, driver) = h2_window(&lab, 4096).await;
    let target = "/api/drip?bytes=1048576&chunks=1&id=window-by-window";
    // Stamped before the request goes: the server's stalls cannot begin
    // earlier (stamped at the head's arrival, a busy client read it a few
    // milliseconds after the server began counting).
    let asked = std::time::Instant::now();
    let response = within("the head", send.send_request(get(lab.h2, target)))
        .await
        .expect("an answer");
    let (conn, request) = viewer.request_started(target).await;
    // A frame read (4 KiB, which hyper gives back to the window) a second:
    // 1 MiB would take four minutes.
    let reader = tokio::spawn(async move {
        let mut body = response.into_body();
        let mut read = 0;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, Bytes::len);
            tokio::time::sleep(PAUSE).await;
        }
        read
    });
    let closed = viewer.closed(conn).await;
    let cut_after = asked.elapsed();
    assert_eq!(closed.reason, CloseReason::WriteStalled, "{closed:?}");
    assert!(
        cut_after >= TOTAL,
        "cut after {cut_after:?}, before the stalls could add up to {TOTAL:?}"
    );
    assert_eq!(
        viewer.timeline(request).await.outcome,
        RequestOutcome::Aborted
    );
    let read = within("the reader's end", reader)
        .await
        .expect("the reader");
    assert!(
        read > 0 && closed.bytes_out as usize > read,
        "the client read {read} bytes of body, the record says {} went out: {closed:?}",
        closed.bytes_out
    );
    driver.abort();
}

/// A request head that arrives a few bytes at a time over HTTP/2 is bounded
/// by the header-read guard, as over HTTP/1.1 (found in review: only the
/// owner's idle timeout bounded it, and recorded it as `idle_timeout`); so
/// is any other frame but `DATA` that stops part-way (found in review: a
/// `PING` or a frame of an unknown type was idle). The client is told the
/// close: `GOAWAY`, then `close_notify`.
#[tokio::test]
async fn an_h2_head_that_stops_part_way_is_closed_by_the_header_read_guard() {
    use tokio::io::AsyncWriteExt as _;
    let (lab, mut viewer) = guarded_lab().await;
    // Alone, and beside a stream in flight (a hang, which no timer ends):
    // the connection is busy then, and the slow head was not bounded
    // (found in review).
    for (busy, kind) in [(false, 0x1), (true, 0x1), (false, 0x6), (false, 0xfa)] {
        let mut tls = connect(lab.h2, &lab.identity).await;
        assert_eq!(alpn(&tls).as_deref(), Some(&b"h2"[..]));
        let local = tls.get_ref().0.local_addr().expect("address");
        let mut wire = raw_preface();
        let mut stream = 1;
        if busy {
            wire.extend(raw_get(1, &lab.h2.to_string(), "/api/hang"));
            stream = 3;
        }
        match kind {
            // HEADERS, 20 bytes announced, END_HEADERS: 5 of them sent.
            0x1 => {
                wire.extend([0, 0, 20, 0x1, 0x4, 0, 0, 0, stream]);
                wire.extend([0x82, 0x86, 0x84, 0x41, 0x8a]);
            }
            // PING, its 8 bytes announced: 3 of them sent.
            0x6 => wire.extend([0, 0, 8, 0x6, 0, 0, 0, 0, 0, 1, 2, 3]),
            // A frame of an unknown type, 100 bytes announced: 1 sent.
            _ => wire.extend([0, 0, 100, kind, 0, 0, 0, 0, 0, 1]),
        }
        tls.write_all(&wire).await.expect("write");
        tls.flush().await.expect("flush");
        let conn = opened_from(&mut viewer, &local.to_string()).await;
        if busy {
            let started = viewer
                .next_matching(
                    "the hang started",
                    |e| matches!(e, ServerEvent::RequestStarted { conn: c, .. } if *c == conn),
                )
                .await;
            assert!(
                matches!(&started, ServerEvent::RequestStarted { target, .. } if target == "/api/hang"),
                "{started:?}"
            );
        }
        let closed = viewer.closed(conn).await;
        assert_eq!(
            closed.reason,
            CloseReason::HeaderReadTimeout,
            "busy {busy}, frame {kind:#x}: {closed:?}"
        );
        // Told: the server's GOAWAY, then `close_notify` (a clean end, not
        // an unexpected EOF), as the idle close is (found in review: a bare
        // FIN).
        told_goaway_then_close_notify(&mut tls).await;
        assert!(
            recorded(&viewer.seen, conn, Initiator::Server)
                .iter()
                .any(|f| matches!(f, Frame::GoAway { code: 0, .. })),
            "busy {busy}, frame {kind:#x}: the GOAWAY is in the record"
        );
    }
}

/// The types of the HTTP/2 frames in `bytes`, whole frames only, in order.
fn frame_kinds(bytes: &[u8]) -> Vec<u8> {
    let mut kinds = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 9 {
        let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
        if bytes.len() - at < 9 + len {
            break;
        }
        kinds.push(bytes[at + 3]);
        at += 9 + len;
    }
    kinds
}

/// A body a handler waits for that stops part-way over HTTP/2 is closed by
/// the body-read guard, and the client is told: `GOAWAY`, then TLS's
/// `close_notify` (found in review: a bare FIN, an unexpected EOF).
#[tokio::test]
async fn an_h2_body_that_stops_is_closed_by_its_guard_with_goaway_and_close_notify() {
    use tokio::io::AsyncWriteExt as _;
    let (lab, mut viewer) = guarded_lab().await;
    let mut tls = connect(lab.h2, &lab.identity).await;
    let local = tls.get_ref().0.local_addr().expect("address");
    let authority = lab.h2.to_string();
    let mut wire = raw_preface();
    // POST /api/release: HEADERS without END_STREAM, then 1 byte of DATA.
    let mut headers = raw_get(1, &authority, "/api/release");
    headers[4] = 0x4; // END_HEADERS only
    headers[9] = 0x83; // :method POST
    wire.extend(headers);
    wire.extend([0, 0, 1, 0x0, 0, 0, 0, 0, 1, b'{']);
    tls.write_all(&wire).await.expect("write");
    tls.flush().await.expect("flush");
    let conn = opened_from(&mut viewer, &local.to_string()).await;
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::BodyReadTimeout, "{closed:?}");
    told_goaway_then_close_notify(&mut tls).await;
}

/// A TLS lab whose header- and body-read guards cut at 400 ms and whose
/// idle timer waits 30 s, and the instructor's view of it.
async fn guarded_lab() -> (TlsLab, Viewer) {
    let lab = start_tls(Config {
        header_read_timeout: std::time::Duration::from_millis(400),
        ..common::config_with_idle(std::time::Duration::from_secs(30))
    })
    .await;
    let viewer = Viewer::connect(lab.addr).await;
    (lab, viewer)
}

/// Reads `tls` to its end: a `GOAWAY` among the server's last frames, then
/// TLS's `close_notify` (a clean end, not an unexpected EOF).
async fn told_goaway_then_close_notify(tls: &mut TlsStream<TcpStream>) {
    use tokio::io::AsyncReadExt as _;
    let mut got = Vec::new();
    within("the close", tls.read_to_end(&mut got))
        .await
        .expect("a close_notify, then the end");
    let kinds = frame_kinds(&got);
    assert!(kinds.contains(&0x7), "a GOAWAY before the end: {kinds:?}");
}

/// A connection to a TLS port from one of the lab's own addresses that the
/// lab did not register is closed at its accept, before any handshake, and
/// never recorded (as on the plain ports: `isolation.rs`).
#[tokio::test]
async fn an_unregistered_connection_from_the_labs_own_addresses_is_closed_on_the_tls_ports() {
    use tokio::io::AsyncReadExt as _;
    let lab = start_tls(common::config()).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let own = std::net::IpAddr::from([127, 77, 0, 201]);
    let mut stray = common::connect_from(lab.h2, own).await;
    let mut got = Vec::new();
    let _ = within("the close", stray.read_to_end(&mut got)).await;
    assert!(got.is_empty(), "{got:?}");
    viewer.barrier(lab.addr, "").await;
    assert!(
        !viewer.seen.iter().any(|e| matches!(
            e,
            ServerEvent::ConnectionOpened { peer, .. } if peer.starts_with("127.77.0.201:")
        )),
        "{:?}",
        viewer.seen
    );
}

/// Before a TLS handshake: a client that sends nothing is idle, as on the
/// plain ports; one that starts its hello and stops is cut by the
/// header-read guard (found in review: both were `header_read_timeout`);
/// one that closes part-way closed it (it was an `error`).
#[tokio::test]
async fn before_the_handshake_silence_is_idle_a_hello_that_stops_is_a_slow_head_and_a_fin_closed() {
    use tokio::io::AsyncWriteExt as _;
    let lab = start_tls(Config {
        header_read_timeout: std::time::Duration::from_millis(600),
        ..common::config_with_idle(std::time::Duration::from_millis(300))
    })
    .await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let silent = TcpStream::connect(lab.h2).await.expect("connect");
    let mut started = TcpStream::connect(lab.h2).await.expect("connect");
    // The first bytes of a TLS record carrying a ClientHello, then nothing.
    let hello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
    started.write_all(&hello).await.expect("write");
    // The same, then the client's FIN: it left.
    let mut left = TcpStream::connect(lab.h2).await.expect("connect");
    left.write_all(&hello).await.expect("write");
    left.shutdown().await.expect("FIN");
    for (stream, expected) in [
        (&silent, CloseReason::IdleTimeout),
        (&started, CloseReason::HeaderReadTimeout),
        (&left, CloseReason::PeerClosed),
    ] {
        let local = stream.local_addr().expect("address").to_string();
        let conn = opened_from(&mut viewer, &local).await;
        assert_eq!(viewer.closed(conn).await.reason, expected, "{local}");
    }
}

/// The connection the viewer saw opened from the client address `peer`.
async fn opened_from(viewer: &mut Viewer, peer: &str) -> ConnId {
    let opened = viewer
        .next_matching(
            "the connection opened",
            |e| matches!(e, ServerEvent::ConnectionOpened { peer: p, .. } if p == peer),
        )
        .await;
    let ServerEvent::ConnectionOpened { conn, .. } = opened else {
        unreachable!()
    };
    conn
}

#[tokio::test]
async fn over_the_per_address_cap_a_tls_port_closes_at_once_untracked_counting_every_port() {
    use tokio::io::AsyncReadExt as _;
    let lab = start_tls(Config {
        max_connections_per_peer: 3,
        ..common::config()
    })
    .await;
    // The viewer (plain port) and one TLS connection on each TLS port: three,
    // the cap, counted together whatever the port.
    let mut viewer = Viewer::connect(lab.addr).await;
    let (mut send, _driver) = h2_client(connect(lab.h2, &lab.identity).await).await;
    let first = send
        .send_request(get(lab.h2, "/api/fast"))
        .await
        .expect("an answer");
    assert_eq!(first.status(), 200);
    let _h1 = connect(lab.h1, &lab.identity).await;
    common::eventually("three connections open", || {
        lab.lab.tracker().open_count() == 3
    })
    .await;

    // The fourth, on either TLS port: closed before any handshake, nothing
    // written (a clear-text 503 would mean nothing to a TLS client).
    let mut refused = Vec::new();
    for port in [lab.h2, lab.h1] {
        let mut over = TcpStream::connect(port).await.expect("connect");
        let mut read = Vec::new();
        within("the refusal's close", over.read_to_end(&mut read))
            .await
            .expect("closed without a reset");
        assert!(read.is_empty(), "nothing answered: {read:?}");
        assert_eq!(lab.lab.tracker().open_count(), 3, "never tracked");
        refused.push(over.local_addr().expect("address").to_string());
    }
    // Once the viewer has read past a request made after the refusals, the
    // record has no connection opened from either refused socket.
    let again = send
        .send_request(get(lab.h2, "/api/fast"))
        .await
        .expect("an answer");
    let id = again.headers()["x-request-id"].to_str().expect("ascii");
    viewer
        .timeline(RequestId(id.parse().expect("a number")))
        .await;
    assert!(
        !viewer.seen.iter().any(
            |e| matches!(e, ServerEvent::ConnectionOpened { peer, .. } if refused.contains(peer))
        ),
        "a refused connection was opened in the record: {:#?}",
        viewer.seen
    );
    assert_eq!(lab.lab.tracker().open_count(), 3);
}

#[tokio::test]
async fn max_requests_over_h2_says_goaway_answers_the_streams_already_open_and_closes_as_max_requests()
 {
    let mut config = common::config();
    config.policy.max_requests = Some(2);
    let lab = start_tls(config).await;
    let mut viewer = Viewer::connect(lab.addr).await;

    // One after the other: the second answer is the last; the server says
    // GOAWAY and the connection ends without the client doing anything.
    let (mut send, driver, wire) = h2_logged(connect(lab.h2, &lab.identity).await).await;
    let mut conn = None;
    for n in 0..2 {
        let response = within(
            "an answer",
            send.send_request(get(lab.h2, &format!("/api/fast?id=seq{n}"))),
        )
        .await
        .expect("an answer");
        assert_eq!(response.status(), 200);
        conn = Some(conn_id(&response));
    }
    let conn = conn.expect("a connection");
    within("the server's GOAWAY and close", driver)
        .await
        .expect("the task")
        .expect("a clean end after GOAWAY");
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::MaxRequests);
    assert_eq!(closed.requests, 2);
    graceful_goaways_as_received(&viewer, conn, &wire);

    // Four at once: the second answer says GOAWAY, but the streams the
    // client had already opened are still answered (h2's graceful
    // shutdown), and the record counts all four.
    let (send, driver, _wire) = h2_logged(connect(lab.h2, &lab.identity).await).await;
    let mut pending = Vec::new();
    for n in 0..4 {
        let mut send = send.clone();
        let request = get(lab.h2, &format!("/api/slow?ms=300&id=at-once{n}"));
        pending.push(tokio::spawn(
            async move { send.send_request(request).await },
        ));
    }
    let mut conns = Vec::new();
    for answer in pending {
        let response = within("an answer", answer)
            .await
            .expect("the task")
            .expect("answered, not refused");
        assert_eq!(response.status(), 200);
        conns.push(conn_id(&response));
    }
    drop(send);
    assert!(
        conns.windows(2).all(|w| w[0] == w[1]),
        "one connection: {conns:?}"
    );
    within("the close", driver)
        .await
        .expect("the task")
        .expect("a clean end after GOAWAY");
    let closed = viewer.closed(conns[0]).await;
    assert_eq!(closed.reason, CloseReason::MaxRequests);
    assert_eq!(closed.requests, 4);
    assert!(
        recorded(&viewer.seen, conns[0], Initiator::Server)
            .iter()
            .any(|f| matches!(f, Frame::GoAway { code: 0, .. })),
        "the server's GOAWAY is in the record"
    );
}

/// A raw HTTP/2 `HEADERS` frame (END_STREAM | END_HEADERS) for `GET
/// https://{authority}{path}` on `stream` (HPACK: indexed `:method GET` and
/// `:scheme https`, literal `:path` and `:authority`, not indexed).
/// The client's connection preface and an empty `SETTINGS`, as raw bytes.
fn raw_preface() -> Vec<u8> {
    let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    wire.extend([0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // SETTINGS, empty
    wire
}

/// A raw HTTP/2 connection to the lab's h2 port, whose `max_requests` is
/// one, that sent `GET /api/fast?id={tag}` on stream 1, saw it finish, and
/// read the server's first `GOAWAY`; and the lab's record of it.
async fn past_the_goaway(
    lab: &TlsLab,
    viewer: &mut Viewer,
    tag: &str,
) -> (TlsStream<TcpStream>, ConnId) {
    use tokio::io::AsyncWriteExt as _;
    let mut tls = connect(lab.h2, &lab.identity).await;
    assert_eq!(alpn(&tls).as_deref(), Some(&b"h2"[..]));
    let local = tls.get_ref().0.local_addr().expect("address");
    let mut wire = raw_preface();
    wire.extend(raw_get(
        1,
        &lab.h2.to_string(),
        &format!("/api/fast?id={tag}"),
    ));
    tls.write_all(&wire).await.expect("write");
    tls.flush().await.expect("flush");
    let conn = opened_from(viewer, &local.to_string()).await;
    let (_, first) = started(viewer, tag).await;
    viewer
        .next_matching(
            "the first request finished",
            |e| matches!(e, ServerEvent::RequestFinished { request, .. } if *request == first),
        )
        .await;
    read_until_goaway(&mut tls).await;
    (tls, conn)
}

fn raw_get(stream: u8, authority: &str, path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x87, 0x04, u8::try_from(path.len()).expect("short")];
    block.extend(path.as_bytes());
    block.extend([0x01, u8::try_from(authority.len()).expect("short")]);
    block.extend(authority.as_bytes());
    let mut frame = vec![0, 0, u8::try_from(block.len()).expect("short"), 0x1, 0x5];
    frame.extend([0, 0, 0, stream]);
    frame.extend(block);
    frame
}

/// Reads server frames from `tls` until a `GOAWAY` has been read.
async fn read_until_goaway(tls: &mut TlsStream<TcpStream>) {
    read_frames_until(tls, |kind, _, _| kind == 0x7).await;
}

/// Reads server frames from `tls`, handing each whole one to `seen` (its
/// type, stream and payload) until `seen` says it is the last one wanted.
async fn read_frames_until(
    tls: &mut TlsStream<TcpStream>,
    mut seen: impl FnMut(u8, u32, &[u8]) -> bool,
) {
    use tokio::io::AsyncReadExt as _;
    let mut bytes = Vec::new();
    let mut at = 0;
    loop {
        while bytes.len() - at >= 9 {
            let h: &[u8] = &bytes[at..at + 9];
            let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            if bytes.len() - at < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            if seen(h[3], stream, &bytes[at + 9..at + 9 + len]) {
                return;
            }
            at += 9 + len;
        }
        let mut chunk = [0; 4096];
        let n = within("the server's frames", tls.read(&mut chunk))
            .await
            .expect("read");
        assert!(n > 0, "the server closed before the frames awaited");
        bytes.extend(&chunk[..n]);
    }
}

/// [`one_request_lab`] with an idle timeout of 30 s (nothing the tests
/// wait for), and the authority of its HTTP/2 port.
async fn one_request_lab_kept_idle() -> (TlsLab, Viewer, String) {
    let idle = std::time::Duration::from_secs(30);
    let (lab, viewer) = one_request_lab(common::config_with_idle(idle)).await;
    let authority = lab.h2.to_string();
    (lab, viewer, authority)
}

/// A lab on TLS whose policy's `max_requests` is one, given `config`
/// otherwise, and the instructor's view of it.
async fn one_request_lab(mut config: Config) -> (TlsLab, Viewer) {
    config.policy.max_requests = Some(1);
    let lab = start_tls(config).await;
    let viewer = Viewer::connect(lab.addr).await;
    (lab, viewer)
}

/// After the `GOAWAY` for `max_requests` and before its second one (the
/// client has not answered the `PING`), a client may still open streams:
/// they are answered. A connection the client then ends with one of them
/// still in flight was ended by the client, as documented (a reset with a
/// response in flight is `peer_reset`; a FIN `peer_closed`), not closed as
/// `max_requests` (found in audit: the reason was fixed as `max_requests`
/// the moment the first stream ended, before the later one began).
#[tokio::test]
async fn a_stream_opened_after_the_max_requests_goaway_and_cut_by_the_client_is_not_max_requests() {
    use tokio::io::AsyncWriteExt as _;
    let (lab, mut viewer, authority) = one_request_lab_kept_idle().await;
    for (reset, expected) in [
        (true, CloseReason::PeerReset),
        (false, CloseReason::PeerClosed),
    ] {
        let (mut tls, conn) = past_the_goaway(&lab, &mut viewer, "first").await;
        // Stream 3 after the first GOAWAY (last stream 2^31-1): accepted.
        tls.write_all(&raw_get(3, &authority, "/api/hang?id=after-goaway"))
            .await
            .expect("write");
        tls.flush().await.expect("flush");
        let (c, _) = started(&mut viewer, "after-goaway").await;
        assert_eq!(c, conn);
        if reset {
            tls.get_ref().0.set_zero_linger().expect("SO_LINGER 0");
            drop(tls);
        } else {
            tls.get_mut().0.shutdown().await.expect("FIN");
            // Keep the socket until the server closes.
            let closed = viewer.closed(conn).await;
            assert_eq!(closed.reason, expected, "FIN: {closed:?}");
            assert_eq!(closed.requests, 2);
            continue;
        }
        let closed = viewer.closed(conn).await;
        assert_eq!(closed.reason, expected, "reset {reset}: {closed:?}");
        assert_eq!(closed.requests, 2);
    }
}

/// After the `GOAWAY` for `max_requests`, with nothing in flight, a new
/// stream's head that stops part-way is cut by the header-read guard: the
/// record says so, not `max_requests` (found in audit: the reason was fixed
/// as `max_requests` when the last stream ended, and the guard's verdict
/// could not replace it).
#[tokio::test]
async fn a_head_that_stops_after_the_max_requests_goaway_is_closed_as_header_read_timeout() {
    use tokio::io::AsyncWriteExt as _;
    let (lab, mut viewer) = one_request_lab(Config {
        header_read_timeout: std::time::Duration::from_millis(400),
        ..common::config_with_idle(std::time::Duration::from_secs(30))
    })
    .await;
    let (mut tls, conn) = past_the_goaway(&lab, &mut viewer, "only").await;
    // HEADERS on stream 3, 20 bytes announced, END_HEADERS: 5 of them sent.
    tls.write_all(&[0, 0, 20, 0x1, 0x4, 0, 0, 0, 3, 0x82, 0x87, 0x84, 0x41, 0x8a])
        .await
        .expect("write");
    tls.flush().await.expect("flush");
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::HeaderReadTimeout, "{closed:?}");
    assert_eq!(closed.requests, 1);
}

/// After the `GOAWAY` for `max_requests`, hyper closes the connection once
/// the client answers h2's `PING` (then its second `GOAWAY` goes). A client
/// that never answers keeps it open until the idle timer closes it: the
/// record says `idle_timeout`, not `max_requests` (it said `max_requests`).
#[tokio::test]
async fn a_client_that_never_answers_the_goaways_ping_is_closed_by_the_idle_timer() {
    let idle = std::time::Duration::from_millis(400);
    let (lab, mut viewer) = one_request_lab(common::config_with_idle(idle)).await;
    // The `PING` that came with the first `GOAWAY` is never answered.
    let (tls, conn) = past_the_goaway(&lab, &mut viewer, "only").await;
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::IdleTimeout, "{closed:?}");
    assert_eq!(closed.requests, 1);
    drop(tls);
}

/// After the `GOAWAY` for `max_requests`, a client that never answers its
/// `PING` (so h2 never sends the second `GOAWAY`) has its new streams taken
/// only within the grace: later ones are refused, `REFUSED_STREAM`, and
/// recorded as the server's resets with no request (found in review: each
/// was served, ten answers on a connection whose `max_requests` was two).
#[tokio::test]
async fn streams_opened_long_after_the_max_requests_goaway_are_refused() {
    use tokio::io::AsyncWriteExt as _;
    let (lab, mut viewer, authority) = one_request_lab_kept_idle().await;
    let (mut tls, conn) = past_the_goaway(&lab, &mut viewer, "first").await;
    // Past the grace (one second), without answering the PING.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for stream in [3, 5] {
        tls.write_all(&raw_get(stream, &authority, "/api/fast?id=too-late"))
            .await
            .expect("write");
        tls.flush().await.expect("flush");
    }
    let mut resets = Vec::new();
    read_frames_until(&mut tls, |kind, stream, payload| {
        assert_ne!(kind, 0x1, "stream {stream} was answered");
        if kind == 0x3 {
            let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            resets.push(Frame::Reset { stream, code });
        }
        resets.len() == 2
    })
    .await;
    let expected = vec![
        Frame::Reset { stream: 3, code: 7 },
        Frame::Reset { stream: 5, code: 7 },
    ];
    assert_eq!(resets, expected);
    for _ in 0..2 {
        viewer
            .next_matching(
                "a refusal",
                |e| matches!(e, ServerEvent::StreamReset { conn: c, by: Initiator::Server, .. } if *c == conn),
            )
            .await;
    }
    let resets: Vec<Frame> = recorded(&viewer.seen, conn, Initiator::Server)
        .into_iter()
        .filter(|f| matches!(f, Frame::Reset { .. }))
        .collect();
    assert_eq!(resets, expected);
    assert!(
        !viewer.seen.iter().any(|e| matches!(
            e,
            ServerEvent::RequestStarted { target, .. } if target.contains("too-late")
        )),
        "a refused stream became a request"
    );
    drop(tls);
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.requests, 1, "{closed:?}");
}

/// The header-read guard over HTTP/2 bounds a head part-way in, not a busy
/// healthy connection: beside a hang, a request body sent in many DATA
/// frames, then many small streams one after another for three times the
/// guard, and the connection goes on.
#[tokio::test]
async fn an_upload_and_many_streams_beside_a_hang_are_not_cut_by_the_header_read_guard() {
    let guard = std::time::Duration::from_millis(300);
    let lab = start_tls(Config {
        header_read_timeout: guard,
        ..common::config_with_idle(std::time::Duration::from_secs(30))
    })
    .await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let tls = connect(lab.h2, &lab.identity).await;
    let (client, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let url = |target: &str| format!("https://{}{target}", lab.h2);
    let (hang, _) = client
        .send_request(
            hyper::Request::get(url("/api/hang?id=beside"))
                .body(())
                .unwrap(),
            true,
        )
        .expect("the hang");
    let (conn, _) = started(&mut viewer, "beside").await;
    // A release of no hang (`{"id":"nobody"` and spaces, `}`), its body
    // read to the end by the handler, sent a little at a time.
    let (answer, mut body) = client
        .send_request(
            hyper::Request::post(url("/api/release"))
                .header("content-type", "application/json")
                .body(())
                .unwrap(),
            false,
        )
        .expect("the upload");
    body.send_data(Bytes::from_static(br#"{"id":"nobody""#), false)
        .expect("the start");
    // Within the body guard, which bounds a whole body from the handler's
    // first wait (`body_read_timeout`), in many DATA frames.
    let begun = std::time::Instant::now();
    while begun.elapsed() < guard * 2 / 3 {
        if let Err(e) = body.send_data(Bytes::from(vec![b' '; 1500]), false) {
            let at = begun.elapsed();
            let closed = viewer.closed(conn).await;
            panic!("a chunk at {at:?}: {e}; {closed:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    body.send_data(Bytes::from_static(b"}"), true)
        .expect("the end");
    let answer = within("the upload's answer", answer)
        .await
        .expect("answered");
    assert_eq!(answer.status(), 200);
    let begun = std::time::Instant::now();
    let mut n = 0;
    while begun.elapsed() < guard * 3 {
        let mut ready = client.clone().ready().await.expect("ready");
        let (answer, _) = ready
            .send_request(
                hyper::Request::get(url(&format!("/api/fast?id=small{n}")))
                    .body(())
                    .unwrap(),
                true,
            )
            .expect("a small one");
        let answer = within("a small answer", answer).await.expect("answered");
        assert_eq!(answer.status(), 200);
        n += 1;
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    // The hang is still waiting: the connection is open.
    assert!(
        tokio::time::timeout(guard, hang).await.is_err(),
        "the hang ended: the connection was cut after {n} small streams"
    );
    assert!(
        lab.lab.tracker().connection(conn).is_some(),
        "the connection is still open after {n} small streams"
    );
}

/// `max_requests` counts requests in all: when the max-th request gets no
/// response (the client cancels its stream), the server still says
/// `GOAWAY` once it ends, and the connection carries no more (found in
/// audit: the `GOAWAY` waited for a later response, so a third request
/// was served on a connection whose policy said two).
#[tokio::test]
async fn a_max_th_request_the_client_cancels_still_ends_the_connection_with_goaway() {
    let mut config = common::config_with_idle(std::time::Duration::from_secs(30));
    config.policy.max_requests = Some(2);
    let lab = start_tls(config).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let (mut send, driver, wire) = h2_logged(connect(lab.h2, &lab.identity).await).await;
    let first = within(
        "an answer",
        send.send_request(get(lab.h2, "/api/fast?id=one")),
    )
    .await
    .expect("an answer");
    let conn = conn_id(&first);
    let mut cancelled = Box::pin(send.send_request(get(lab.h2, "/api/hang?id=two")));
    let _ = tokio::time::timeout(std::time::Duration::from_millis(50), &mut cancelled).await;
    let (_, two) = started(&mut viewer, "two").await;
    drop(cancelled); // RST_STREAM CANCEL
    viewer
        .next_matching(
            "the cancelled request ended",
            |e| matches!(e, ServerEvent::RequestFinished { request, .. } if *request == two),
        )
        .await;
    within("the server's GOAWAY and close", driver)
        .await
        .expect("the task")
        .expect("a clean end after GOAWAY");
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::MaxRequests, "{closed:?}");
    assert_eq!(closed.requests, 2);
    assert!(
        wire.received()
            .iter()
            .any(|f| matches!(f, Frame::GoAway { code: 0, .. })),
        "the client read the server's GOAWAY"
    );
}

/// On the TLS ports too, the client's FIN (bare, or behind its TLS
/// `close_notify`) or RST already in as the idle deadline passes is the
/// client's close, whichever of the two the connection's task looks at
/// first: over HTTP/1.1, and over HTTP/2 (where the server's `GOAWAY` goes
/// out and hyper reads the close after the deadline). (Found in review: the
/// record said `idle_timeout` whenever the deadline was looked at first; the
/// plain ports' check reads request bytes that TLS encrypts here, so only
/// the close itself is looked for.)
#[tokio::test]
async fn an_idle_tls_close_that_finds_the_clients_fin_or_rst_is_the_clients_close() {
    use tokio::io::AsyncWriteExt as _;
    const IDLE: std::time::Duration = std::time::Duration::from_millis(200);
    const ATTEMPTS: usize = 12;
    let lab = start_tls(common::config_with_idle(IDLE)).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    for (h2, port) in [(false, lab.h1), (true, lab.h2)] {
        let mut judged = 0;
        for attempt in 0..ATTEMPTS {
            // A bare FIN, a RST, or TLS's `close_notify` then a FIN.
            let (reset, notify) = (attempt % 3 == 1, attempt % 3 == 2);
            let tag = format!("tls-close-{h2}-{attempt}");
            let mut tls = connect(port, &lab.identity).await;
            let local = tls.get_ref().0.local_addr().expect("address");
            let wire = if h2 {
                let mut wire = raw_preface();
                wire.extend(raw_get(
                    1,
                    &port.to_string(),
                    &format!("/api/fast?id={tag}"),
                ));
                wire
            } else {
                format!("GET /api/fast?id={tag} HTTP/1.1\r\nHost: {port}\r\n\r\n").into_bytes()
            };
            tls.write_all(&wire).await.expect("write");
            tls.flush().await.expect("flush");
            let conn = opened_from(&mut viewer, &local.to_string()).await;
            let (_, request) = started(&mut viewer, &tag).await;
            viewer
                .next_matching(
                    "the request finished",
                    |e| matches!(e, ServerEvent::RequestFinished { request: r, .. } if *r == request),
                )
                .await;
            let idle_since = std::time::Instant::now();
            // Let the server settle into waiting (its idle timer armed).
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if reset {
                tls.get_ref().0.set_zero_linger().expect("SO_LINGER 0");
                drop(tls);
            } else if notify {
                // `close_notify`, then the FIN (curl, Go and rustls
                // clients): the FIN is behind bytes the server has not read.
                tls.shutdown().await.expect("close_notify and the FIN");
            } else {
                // A bare FIN, as a browser closing a socket sends. The
                // socket is kept until the end of the attempt.
                tls.get_mut().0.shutdown().await.expect("the client's FIN");
            }
            // On a machine so loaded that the client's close came late, the
            // server's deadline may really have come first: not judged.
            let in_time = idle_since.elapsed() < IDLE / 2;
            // Nobody runs now, the server included, while the deadline
            // passes: the client's close and the deadline are both there
            // when the server next looks.
            std::thread::sleep(IDLE * 2);
            let closed = viewer.closed(conn).await;
            let expected = if reset {
                CloseReason::PeerReset
            } else {
                CloseReason::PeerClosed
            };
            assert_eq!(closed.requests, 1);
            if !in_time {
                continue;
            }
            judged += 1;
            assert_eq!(
                closed.reason, expected,
                "h2 {h2}, attempt {attempt} (reset {reset}, close_notify {notify}): the \
                 client's close came before the server's"
            );
        }
        assert!(
            judged >= ATTEMPTS / 2,
            "h2 {h2}: only {judged} of {ATTEMPTS} closes came in time to be judged"
        );
    }
}

/// The idle timer's `GOAWAY` (last stream 2^31-1, with h2's `PING`) and a
/// stream the client sent before reading it: the server accepted that
/// stream, and the client cannot send it again, so it is served to its end
/// and the connection closes as `idle_timeout` after it (found in review:
/// the stream was cut when the `GOAWAY`'s 1 s grace ended, recorded as
/// aborted, the connection as idle). A stream opened after the grace is
/// refused, `REFUSED_STREAM`.
#[tokio::test]
async fn a_stream_that_crosses_the_idle_goaway_is_served_to_its_end() {
    use tokio::io::AsyncWriteExt as _;
    let lab = start_tls(common::config_with_idle(std::time::Duration::from_millis(
        300,
    )))
    .await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let mut tls = connect(lab.h2, &lab.identity).await;
    let local = tls.get_ref().0.local_addr().expect("address");
    let authority = lab.h2.to_string();
    let mut wire = raw_preface();
    wire.extend(raw_get(1, &authority, "/api/fast?id=first"));
    tls.write_all(&wire).await.expect("write");
    tls.flush().await.expect("flush");
    let conn = opened_from(&mut viewer, &local.to_string()).await;
    let _ = started(&mut viewer, "first").await;
    // Idle for 300 ms: the GOAWAY and its PING, which the client leaves
    // unanswered (so h2 still takes new streams).
    read_until_goaway(&mut tls).await;
    // Longer than the grace of 1 s.
    tls.write_all(&raw_get(3, &authority, "/api/slow?ms=1600&id=late"))
        .await
        .expect("write");
    tls.flush().await.expect("flush");
    let (c, late) = started(&mut viewer, "late").await;
    assert_eq!(c, conn);
    // Past the grace, with that stream in flight: a new one is refused
    // (found in review: each was served, for as long as the client kept
    // one stream going without answering the PING).
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    tls.write_all(&raw_get(5, &authority, "/api/fast?id=after-grace"))
        .await
        .expect("write");
    tls.flush().await.expect("flush");
    read_frames_until(&mut tls, |kind, stream, payload| {
        assert!(!(kind == 0x1 && stream == 5), "stream 5 was answered");
        kind == 0x3 && stream == 5 && payload[..4] == [0, 0, 0, 7]
    })
    .await;
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::IdleTimeout, "{closed:?}");
    assert_eq!(closed.requests, 2);
    assert!(
        !viewer.seen.iter().any(|e| matches!(
            e,
            ServerEvent::RequestStarted { target, .. } if target.contains("after-grace")
        )),
        "the refused stream became a request"
    );
    let outcome = viewer.seen.iter().find_map(|e| match e {
        ServerEvent::RequestFinished {
            request, outcome, ..
        } if *request == late => Some(*outcome),
        _ => None,
    });
    assert_eq!(outcome, Some(RequestOutcome::Completed));
    drop(tls);
}

// ---- found in review (December 4, 2026): TLS and HTTP/2 record against wire ----

/// As `a_stream_opened_after_the_max_requests_goaway_and_cut_by_the_client_is_not_max_requests`,
/// but the client ends the connection the way curl, Go and rustls clients
/// do: TLS `close_notify`, then its FIN.
#[tokio::test]
async fn a_close_notify_that_cuts_a_stream_after_the_max_requests_goaway_is_the_clients() {
    use tokio::io::AsyncWriteExt as _;
    let (lab, mut viewer, authority) = one_request_lab_kept_idle().await;
    let (mut tls, conn) = past_the_goaway(&lab, &mut viewer, "first").await;
    tls.write_all(&raw_get(3, &authority, "/api/hang?id=after-goaway"))
        .await
        .expect("write");
    tls.flush().await.expect("flush");
    let (c, hang) = started(&mut viewer, "after-goaway").await;
    assert_eq!(c, conn);
    // close_notify, then the FIN; the socket is kept.
    tls.shutdown().await.expect("close_notify and FIN");
    let closed = viewer.closed(conn).await;
    let hang_outcome = viewer.seen.iter().find_map(|e| match e {
        ServerEvent::RequestFinished {
            request, outcome, ..
        } if *request == hang => Some(*outcome),
        _ => None,
    });
    assert_eq!(hang_outcome, Some(RequestOutcome::Aborted));
    assert_eq!(closed.requests, 2);
    assert_eq!(closed.reason, CloseReason::PeerClosed, "{closed:?}");
    drop(tls);
}

/// HTTP/1.1 over TLS: a client that sent part of a head and then closed.
/// With a bare FIN the record says `peer_closed`; with `close_notify` then
/// the FIN it must say the same.
#[tokio::test]
async fn a_close_notify_mid_head_on_the_h1_tls_port_is_the_clients_close() {
    use tokio::io::AsyncWriteExt as _;
    let lab = start_tls(common::config_with_idle(std::time::Duration::from_secs(30))).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let mut got = Vec::new();
    for notify in [false, true] {
        let mut tls = connect(lab.h1, &lab.identity).await;
        let local = tls.get_ref().0.local_addr().expect("address");
        tls.write_all(format!("GET /api/fast?id=mid-head HTTP/1.1\r\nHost: {}", lab.h1).as_bytes())
            .await
            .expect("write");
        tls.flush().await.expect("flush");
        let conn = opened_from(&mut viewer, &local.to_string()).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if notify {
            tls.shutdown().await.expect("close_notify and FIN");
        } else {
            tls.get_mut().0.shutdown().await.expect("FIN");
        }
        let closed = viewer.closed(conn).await;
        got.push((notify, closed.reason));
        drop(tls);
    }
    for (notify, reason) in got {
        assert_eq!(reason, CloseReason::PeerClosed, "close_notify {notify}");
    }
}

/// A TCP stream that passes the first write (the ClientHello) and then,
/// while `kept` is `Some`, keeps every write there for the test to send in
/// one write of its own, so that the client's last handshake
/// flight and what it writes next reach the server in one segment, as a
/// client writing them back to back may.
struct Coalesce {
    tcp: TcpStream,
    writes: usize,
    kept: Arc<Mutex<Option<Vec<u8>>>>,
}

impl AsyncRead for Coalesce {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Coalesce {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.writes > 0
            && let Some(kept) = this.kept.lock().unwrap().as_mut()
        {
            kept.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        let poll = Pin::new(&mut this.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = poll {
            this.writes += 1;
        }
        poll
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// HTTP/1.1 over TLS: a head that stops part-way is the header-read
/// guard's, as on the plain ports, also when its first bytes came in the
/// same segment as the client's `Finished`.
#[tokio::test]
async fn a_partial_head_that_came_with_the_clients_finished_is_a_slow_head() {
    use tokio::io::AsyncWriteExt as _;
    let guard = std::time::Duration::from_millis(500);
    let lab = start_tls(Config {
        header_read_timeout: guard,
        ..common::config_with_idle(std::time::Duration::from_secs(3))
    })
    .await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let mut got = Vec::new();
    for coalesced in [false, true] {
        let config = client_config(&lab.identity, &[b"http/1.1"]);
        let tcp = TcpStream::connect(lab.h1).await.expect("connect");
        let local = tcp.local_addr().expect("address");
        let kept = Arc::new(Mutex::new(coalesced.then(Vec::new)));
        let io = Coalesce {
            tcp,
            writes: 0,
            kept: kept.clone(),
        };
        let name = ServerName::IpAddress(lab.h1.ip().into());
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(name, io)
            .await
            .expect("handshake");
        let conn = opened_from(&mut viewer, &local.to_string()).await;
        if !coalesced {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        tls.write_all(
            format!("GET /api/fast?id=slow HTTP/1.1\r\nHost: {}\r\nX-A:", lab.h1).as_bytes(),
        )
        .await
        .expect("write");
        tls.flush().await.expect("flush");
        let held = kept.lock().unwrap().take();
        if let Some(bytes) = held {
            // Finished and the partial head, in one write.
            tls.get_mut()
                .0
                .tcp
                .write_all(&bytes)
                .await
                .expect("one write");
        }
        let closed = viewer.closed(conn).await;
        // The guard's close writes the `close_notify` TLS asks for before
        // its FIN (not a FIN alone: an unexpected end to rustls).
        use tokio::io::AsyncReadExt as _;
        let read = within("the guard's close", tls.read_to_end(&mut Vec::new())).await;
        assert!(read.is_ok(), "coalesced {coalesced}: {read:?}");
        got.push((coalesced, closed.reason));
        drop(tls);
    }
    for (coalesced, reason) in got {
        assert_eq!(
            reason,
            CloseReason::HeaderReadTimeout,
            "coalesced {coalesced}"
        );
    }
}

/// A client's own `GOAWAY` ends the connection: `peer_closed` (api.md),
/// whatever its error code.
#[tokio::test]
async fn a_clients_goaway_with_an_error_code_is_the_clients_close() {
    use tokio::io::AsyncWriteExt as _;
    let lab = start_tls(common::config_with_idle(std::time::Duration::from_secs(30))).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let authority = lab.h2.to_string();
    let mut got = Vec::new();
    for code in [0_u32, 2, 11] {
        let tag = format!("goaway-{code}");
        let mut tls = connect(lab.h2, &lab.identity).await;
        let local = tls.get_ref().0.local_addr().expect("address");
        let mut wire = raw_preface();
        wire.extend(raw_get(1, &authority, &format!("/api/fast?id={tag}")));
        tls.write_all(&wire).await.expect("write");
        tls.flush().await.expect("flush");
        let conn = opened_from(&mut viewer, &local.to_string()).await;
        let (_, first) = started(&mut viewer, &tag).await;
        viewer
            .next_matching(
                "the request finished",
                |e| matches!(e, ServerEvent::RequestFinished { request, .. } if *request == first),
            )
            .await;
        // GOAWAY, last stream 0, the code; no FIN, the socket kept.
        let mut goaway = vec![0, 0, 8, 0x7, 0, 0, 0, 0, 0];
        goaway.extend(0_u32.to_be_bytes());
        goaway.extend(code.to_be_bytes());
        tls.write_all(&goaway).await.expect("write");
        tls.flush().await.expect("flush");
        let closed = viewer.closed(conn).await;
        got.push((code, closed.reason));
        drop(tls);
    }
    for (code, reason) in got {
        assert_eq!(reason, CloseReason::PeerClosed, "code {code}");
    }
}

/// HTTP/1.1 over TLS: a close the server meant as an orderly one (the
/// policy's `max_requests` and keep-alive off, the request's own
/// `Connection: close`, `/api/close?mode=fin`) with records the client sent behind the last
/// request still in the kernel's buffer is answered by the kernel with a
/// RST, and the record says so: `records_unread`, naming no request (the
/// records are encrypted and never read). Checked against the wire: the
/// server's `bytes_in` is short of what the client sent, and the client
/// sees the reset. (Found in review: the close kept the meant reason.)
#[tokio::test]
async fn a_meant_close_over_tls_with_records_left_unread_is_a_reset() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let lab = start_tls(common::config()).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    for (case, after) in [
        CloseReason::MaxRequests,
        CloseReason::KeepAliveOff,
        CloseReason::ClientRequestedClose,
        CloseReason::ServerClose {
            mode: protocol::CloseMode::Fin,
        },
    ]
    .into_iter()
    .enumerate()
    {
        let closing = common::policy_for_close(&lab.lab, &after, 1);
        let endpoint = match after {
            CloseReason::ServerClose { .. } => "/api/close?mode=fin&id=",
            _ => "/api/fast?id=",
        };
        let target = format!("{endpoint}records-{case}");
        let sent = [
            common::request_bytes_with("GET", &target, closing, b""),
            common::request_bytes("POST", "/api/fast?id=next", &vec![b'x'; 100_000]),
        ]
        .concat();
        let mut tls = connect(lab.h1, &lab.identity).await;
        // Part of it may meet the close: what got through is what counts.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tls.write_all(&sent)).await;
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tls.read_to_end(&mut Vec::new()),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let reset = tls.get_mut().0.write_all(b"x").await.is_err();
        let (conn, _) = viewer.request_started(&target).await;
        let closed = viewer.closed(conn).await;
        assert!(
            closed.bytes_in < sent.len() as u64,
            "{after:?}: the server read it all: {closed:?}"
        );
        assert_eq!(
            closed.reason,
            CloseReason::RecordsUnread {
                after: Box::new(after.clone()),
            },
            "{closed:?}"
        );
        assert!(reset, "{after:?}: the client saw no reset: {closed:?}");
        assert_eq!(closed.requests, 1, "{after:?}");
        // The same request alone: nothing is left, the close is orderly
        // and keeps the meant reason.
        let alone = format!("{endpoint}alone-{case}");
        let mut tls = connect(lab.h1, &lab.identity).await;
        within(
            "the request alone",
            tls.write_all(&common::request_bytes_with("GET", &alone, closing, b"")),
        )
        .await
        .expect("write");
        let read = within("the close", tls.read_to_end(&mut Vec::new())).await;
        // `/api/close?mode=fin` closes without a `close_notify`.
        if endpoint.starts_with("/api/fast") {
            read.expect("an answer ending in the server's close_notify, not a reset");
        }
        let (conn, _) = viewer.request_started(&alone).await;
        assert_eq!(viewer.closed(conn).await.reason, after);
    }
}

/// Whether the server's close came to `tls`'s socket as a RST, once `read`
/// (to the end of the TLS stream) is done: a reset `read` saw, or the
/// socket's error. A `close_notify` ends the TLS reads before a RST behind
/// it is read, and after the server's FIN a RST reads as the end of the
/// stream, so the socket's error tells it (`EPIPE` for a RST after a FIN,
/// `ECONNRESET` before one).
fn reset_seen(tls: &TlsStream<TcpStream>, read: &io::Result<usize>) -> bool {
    let reset = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        )
    };
    read.as_ref().err().is_some_and(reset)
        || tls
            .get_ref()
            .0
            .take_error()
            .ok()
            .flatten()
            .is_some_and(|e| reset(&e))
}

/// A connection to the h1-only TLS port that has had `first` answered and
/// waits, its idle timer armed; with when the viewer heard the answer end
/// (the idle timer started no later).
async fn answered_then_idle(
    lab: &TlsLab,
    viewer: &mut Viewer,
    first: &str,
) -> (TlsStream<TcpStream>, ConnId, std::time::Instant) {
    use tokio::io::AsyncWriteExt as _;
    let mut tls = connect(lab.h1, &lab.identity).await;
    tls.write_all(&common::request_bytes("GET", first, b""))
        .await
        .expect("write");
    let (conn, request) = viewer.request_started(first).await;
    viewer
        .next_matching(
            "the first request finished",
            |e| matches!(e, ServerEvent::RequestFinished { request: r, .. } if *r == request),
        )
        .await;
    let idle_since = std::time::Instant::now();
    // Let the server settle into waiting (its idle timer armed).
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    (tls, conn, idle_since)
}

/// HTTP/1.1 over TLS: the idle timer fires while the client's next request
/// is already in the receive buffer, unread. The server's close then resets
/// the connection, and the record says so: `records_unread` after
/// `idle_timeout` (the plain ports' keep-alive race, whose request cannot
/// be named here: its bytes are encrypted), never `idle_timeout` over a
/// reset. Each attempt blocks the whole runtime, the server included, while
/// the deadline passes, so the request and the deadline are both there when
/// the server next looks; it takes either about as often, and attempts
/// repeat until the race has been seen.
#[tokio::test]
async fn an_idle_tls_close_with_the_next_request_unread_is_a_reset_with_records_unread() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const IDLE: std::time::Duration = std::time::Duration::from_millis(200);
    const ATTEMPTS: usize = 40;
    let lab = start_tls(common::config_with_idle(IDLE)).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let mut answered = 0;
    for attempt in 0..ATTEMPTS {
        let (first, next) = (
            format!("/api/fast?id=tls-race-{attempt}-1"),
            format!("/api/fast?id=tls-race-{attempt}-2"),
        );
        let (mut tls, conn, idle_since) = answered_then_idle(&lab, &mut viewer, &first).await;
        tls.write_all(&common::request_bytes("GET", &next, b""))
            .await
            .expect("write");
        tls.flush().await.expect("flush");
        // On a machine so loaded that the request went out late, the
        // deadline may really have come first: not judged.
        if idle_since.elapsed() >= IDLE / 2 {
            continue;
        }
        std::thread::sleep(IDLE * 2);
        let mut bytes = Vec::new();
        let read = within("the close", tls.read_to_end(&mut bytes)).await;
        let closed = viewer.closed(conn).await;
        let reset = reset_seen(&tls, &read);
        match closed.reason {
            CloseReason::RecordsUnread { after } => {
                assert_eq!(*after, CloseReason::IdleTimeout);
                assert!(
                    reset,
                    "closing with the request unread resets the connection \
                     (read after the first answer: {:?}, {read:?})",
                    String::from_utf8_lossy(&bytes)
                );
                assert_eq!(closed.requests, 1, "the raced request was never read");
                assert!(
                    !viewer.saw_started(&next),
                    "never started: the server closed instead of reading it"
                );
                println!("the race happened on attempt {attempt} ({answered} answered before)");
                return;
            }
            CloseReason::IdleTimeout => {
                // The idle close after the second answer: its
                // `close_notify`, then a FIN.
                read.expect("an orderly close after the second answer");
                assert!(!reset, "an orderly close after the second answer");
                assert_eq!(closed.requests, 2, "{closed:?}");
                answered += 1;
            }
            other => panic!("attempt {attempt}: unexpected close {other:?}"),
        }
    }
    panic!("no race in {ATTEMPTS} attempts ({answered} answered): the select is not random?");
}

/// The same, but the client resets the connection right after its next
/// request: its bytes and then its RST are in as the idle deadline passes.
/// The client reset it, and the record says `peer_reset`, whichever the
/// server looks at first (found in review: a peek still returns the bytes
/// queued before a RST, and the idle close took them for bytes its own
/// close would reset: `records_unread`).
#[tokio::test]
async fn an_idle_tls_close_that_finds_bytes_then_the_clients_rst_is_the_clients_reset() {
    use tokio::io::AsyncWriteExt as _;
    const IDLE: std::time::Duration = std::time::Duration::from_millis(200);
    let lab = start_tls(common::config_with_idle(IDLE)).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let mut judged = 0;
    for attempt in 0..8 {
        let first = format!("/api/fast?id=tls-reset-{attempt}");
        let (mut tls, conn, idle_since) = answered_then_idle(&lab, &mut viewer, &first).await;
        tls.write_all(&common::request_bytes(
            "GET",
            "/api/fast?id=then-reset",
            b"",
        ))
        .await
        .expect("write");
        tls.flush().await.expect("flush");
        tls.get_ref().0.set_zero_linger().expect("SO_LINGER 0");
        drop(tls);
        // Not judged if the reset went out so late that the deadline may
        // really have come first.
        let in_time = idle_since.elapsed() < IDLE / 2;
        std::thread::sleep(IDLE * 2);
        let closed = viewer.closed(conn).await;
        if !in_time {
            continue;
        }
        judged += 1;
        assert_eq!(
            closed.reason,
            CloseReason::PeerReset,
            "attempt {attempt}: {closed:?}"
        );
    }
    assert!(
        judged >= 4,
        "only {judged} of 8 resets came in time to be judged"
    );
}

/// HTTP/1.1 over TLS: the client's `close_notify` and FIN are in as the
/// idle deadline passes. The client closed first (`peer_closed`), and the
/// server's close is a FIN, not a RST: it reads the `close_notify` it would
/// otherwise leave unread, whichever the server looks at first. (Found in
/// review: the record said `peer_closed` while the client saw a reset.)
#[tokio::test]
async fn a_close_notify_found_at_the_idle_deadline_is_read_and_the_close_is_a_fin() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const IDLE: std::time::Duration = std::time::Duration::from_millis(200);
    let lab = start_tls(common::config_with_idle(IDLE)).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    // Hyper reads the `close_notify` first about as often as the idle
    // deadline is looked at first (a race the test cannot see from outside:
    // both closes are the server's `close_notify` and FIN, and the RST a
    // close with it unread would send behind them reaches this client, its
    // own side closed, unseen); a build that left it unread records that
    // close as `records_unread`, so twelve judged attempts leave it a chance
    // of 1 in 4 096 to pass.
    let mut judged = 0;
    for attempt in 0..40 {
        let first = format!("/api/fast?id=tls-notify-{attempt}");
        let (mut tls, conn, idle_since) = answered_then_idle(&lab, &mut viewer, &first).await;
        tls.shutdown().await.expect("close_notify and the FIN");
        let in_time = idle_since.elapsed() < IDLE / 2;
        std::thread::sleep(IDLE * 2);
        let closed = viewer.closed(conn).await;
        let read = within("the server's close", tls.read_to_end(&mut Vec::new())).await;
        if !in_time {
            continue;
        }
        judged += 1;
        assert_eq!(closed.reason, CloseReason::PeerClosed, "attempt {attempt}");
        read.unwrap_or_else(|e| panic!("attempt {attempt}: no close_notify from the server: {e}"));
        if judged == 12 {
            return;
        }
    }
    panic!("only {judged} of 40 closes came in time to be judged");
}

/// HTTP/1.1 over TLS: a request, then the client's FIN (a half-close, no
/// `close_notify`), in as the idle deadline passes. The server that looks
/// at the deadline first closes with the request unread (its kernel sends a
/// RST behind its FIN), recorded as `records_unread` after `idle_timeout`
/// (the plain ports' `keep_alive_race`), not as the client's orderly close;
/// the server that reads first answers it. Attempts repeat until the race
/// has been seen.
#[tokio::test]
async fn a_request_then_a_fin_at_the_idle_deadline_is_records_unread_when_not_read() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const IDLE: std::time::Duration = std::time::Duration::from_millis(200);
    let lab = start_tls(common::config_with_idle(IDLE)).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let mut answered = 0;
    for attempt in 0..40 {
        let first = format!("/api/fast?id=tls-half-{attempt}");
        let (mut tls, conn, idle_since) = answered_then_idle(&lab, &mut viewer, &first).await;
        let half = format!("/api/fast?id=half-{attempt}");
        tls.write_all(&common::request_bytes("GET", &half, b""))
            .await
            .expect("write");
        tls.flush().await.expect("flush");
        tls.get_mut().0.shutdown().await.expect("the client's FIN");
        if idle_since.elapsed() >= IDLE / 2 {
            continue;
        }
        std::thread::sleep(IDLE * 2);
        let read = within("the server's close", tls.read_to_end(&mut Vec::new())).await;
        let closed = viewer.closed(conn).await;
        if closed.requests == 2 {
            // Read and answered, then the client's FIN read: its close.
            assert_eq!(closed.reason, CloseReason::PeerClosed, "attempt {attempt}");
            answered += 1;
            continue;
        }
        assert_eq!(
            closed.reason,
            CloseReason::RecordsUnread {
                after: Box::new(CloseReason::IdleTimeout)
            },
            "attempt {attempt}"
        );
        // The server's `close_notify` and FIN came, and the request was
        // never read; the RST its kernel sends behind them reaches a
        // client that has closed its own side too (its socket gone to
        // TIME_WAIT) unseen.
        read.expect("the server's close_notify");
        assert_eq!(
            closed.requests, 1,
            "attempt {attempt}: the request was never read"
        );
        assert!(!viewer.saw_started(&half), "attempt {attempt}");
        println!("the race happened on attempt {attempt} ({answered} answered before)");
        return;
    }
    panic!("no race in 40 attempts ({answered} answered)");
}

/// HTTP/1.1 over TLS: the next request's head begun in the same record as
/// the request before it (a client that pipelines), then stopped part-way,
/// is a head arriving once that request is answered: the header-read guard
/// closes it, not the idle timer, as on the plain ports (was `idle_timeout`
/// at the idle timeout: the bytes counted there are TLS records, which say
/// nothing of where a head ends, so all were the first request's).
#[tokio::test]
async fn a_head_pipelined_in_the_same_record_as_the_request_before_is_arriving_not_idle() {
    use tokio::io::AsyncWriteExt as _;
    const IDLE: std::time::Duration = std::time::Duration::from_secs(5);
    let lab = start_tls(Config {
        header_read_timeout: std::time::Duration::from_millis(400),
        ..common::config_with_idle(IDLE)
    })
    .await;
    let mut viewer = Viewer::connect(lab.addr).await;
    for whole in [1, 2] {
        let mut sent = Vec::new();
        for _ in 0..whole {
            sent.extend(common::request_bytes("GET", "/api/fast", b""));
        }
        sent.extend_from_slice(b"GET /api/fast HTTP/1.1\r\nHo");
        let (mut tls, conn) = connected_h1(&lab, &mut viewer).await;
        let started = std::time::Instant::now();
        tls.write_all(&sent).await.expect("one write, one record");
        tls.flush().await.expect("flush");
        closed_after_its_answers(
            (&mut viewer, conn, &mut tls),
            CloseReason::HeaderReadTimeout,
            whole,
            (started, IDLE),
        )
        .await;
    }
}

/// HTTP/1.1 over TLS: a head pipelined part-way and finished in a later
/// record is its own request's: answered, the connection is idle and the
/// idle timer closes it, not the header-read guard.
#[tokio::test]
async fn a_pipelined_head_finished_in_a_later_record_leaves_the_connection_idle() {
    use tokio::io::AsyncWriteExt as _;
    const HEAD: std::time::Duration = std::time::Duration::from_secs(5);
    let lab = start_tls(Config {
        header_read_timeout: HEAD,
        ..common::config_with_idle(std::time::Duration::from_millis(400))
    })
    .await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let get = common::request_bytes("GET", "/api/fast", b"");
    let (mut tls, conn) = connected_h1(&lab, &mut viewer).await;
    tls.write_all(&[&get[..], &get[..9]].concat())
        .await
        .expect("write");
    tls.flush().await.expect("flush");
    // Its own record, read on its own: the server has taken in the first.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    tls.write_all(&get[9..]).await.expect("write");
    tls.flush().await.expect("flush");
    let started = std::time::Instant::now();
    closed_after_its_answers(
        (&mut viewer, conn, &mut tls),
        CloseReason::IdleTimeout,
        2,
        (started, HEAD),
    )
    .await;
}

/// A connection to the h1-only TLS port, and its id as the viewer heard it
/// opened.
async fn connected_h1(lab: &TlsLab, viewer: &mut Viewer) -> (TlsStream<TcpStream>, ConnId) {
    let tls = connect(lab.h1, &lab.identity).await;
    let local = tls.get_ref().0.local_addr().expect("address");
    let conn = opened_from(viewer, &local.to_string()).await;
    (tls, conn)
}

/// `conn`'s close, checked to be `reason` after `requests` requests, sooner
/// than `limit` after `since`, in order (`close_notify`, FIN) after an
/// answer to each.
async fn closed_after_its_answers(
    (viewer, conn, tls): (&mut Viewer, ConnId, &mut TlsStream<TcpStream>),
    reason: CloseReason,
    requests: u32,
    (since, limit): (std::time::Instant, std::time::Duration),
) {
    use tokio::io::AsyncReadExt as _;
    let closed = viewer.closed(conn).await;
    assert_eq!(
        (&closed.reason, closed.requests),
        (&reason, requests),
        "{closed:?}"
    );
    assert!(
        since.elapsed() < limit,
        "closed after {:?}",
        since.elapsed()
    );
    let mut answers = Vec::new();
    within("the close", tls.read_to_end(&mut answers))
        .await
        .expect("an orderly close");
    let answers = String::from_utf8_lossy(&answers);
    assert_eq!(
        answers.matches("HTTP/1.1 200").count(),
        requests as usize,
        "{answers}"
    );
}
