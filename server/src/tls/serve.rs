//! The TLS ports' accept loop: handshake, then HTTP/2 or HTTP/1.1 by ALPN,
//! through the lab's own handler, router and tracking.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::HOST;
use futures_util::TryFutureExt as _;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use protocol::CloseReason;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::{TlsAcceptor, rustls};

use super::frames::FrameTap;
use super::{ALPN_H2, MAX_CONCURRENT_STREAMS};
use crate::Lab;
use crate::conn::{Activity, CloseWatch, Conn, TrackedStream};
use crate::listener::{AcceptFailures, Handler, SHUTDOWN_GRACE, http1_builder};
use crate::routes;
use crate::watchdog;

/// How long an HTTP/2 connection closed for idleness may take to say
/// `GOAWAY` and end; and, after `max_requests`' `GOAWAY`, how long streams
/// that crossed it are still taken.
const GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// Why a TLS port's service answered a request with no response: the accept
/// loop's deliberate close, or a stream refused past `max_requests`' grace
/// (hyper resets a stream with the code of the `h2::Error` it finds among
/// the error's sources).
#[derive(Debug)]
enum NoAnswer {
    Deliberate(crate::listener::Deliberate),
    Refused(h2::Error),
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoAnswer::Deliberate(deliberate) => deliberate.fmt(f),
            NoAnswer::Refused(_) => f.write_str("refused: past max_requests' GOAWAY and its grace"),
        }
    }
}

impl std::error::Error for NoAnswer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NoAnswer::Deliberate(_) => None,
            NoAnswer::Refused(reset) => Some(reset),
        }
    }
}

/// How long the `close_notify` of an HTTP/1.1 close the lab makes itself
/// (the idle timer's, a guard's) may take to go out: a record and a FIN
/// into the socket's buffer, so the bound only matters for a client whose
/// window is shut.
const CLOSE_NOTIFY_GRACE: Duration = Duration::from_millis(100);

/// Accepts TLS connections on each listener with its configuration (which
/// protocols it offers) until [`Lab::begin_shutdown`]. Their addresses
/// become the lab's own origins (`https://localhost:PORT` may drive it).
pub async fn serve_all(
    ports: Vec<(TcpListener, Arc<rustls::ServerConfig>)>,
    lab: Lab,
) -> io::Result<()> {
    let ports = ports
        .into_iter()
        .map(|(listener, config)| (listener, config, MAX_CONCURRENT_STREAMS))
        .collect();
    serve_ports(ports, lab).await
}

/// [`serve_all`], with each port's `SETTINGS_MAX_CONCURRENT_STREAMS` for its
/// HTTP/2 connections.
pub async fn serve_ports(
    ports: Vec<(TcpListener, Arc<rustls::ServerConfig>, u32)>,
    lab: Lab,
) -> io::Result<()> {
    for (listener, config, streams) in &ports {
        if let Ok(address) = listener.local_addr() {
            let h2 = config.alpn_protocols.iter().any(|p| p == ALPN_H2);
            lab.add_tls_listener(address, h2.then_some(*streams));
        }
    }
    let router = routes::app(lab.clone());
    let mut loops = JoinSet::new();
    for (listener, config, streams) in ports {
        loops.spawn(accept_loop(
            listener,
            TlsAcceptor::from(config),
            streams,
            lab.clone(),
            router.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    streams: u32,
    lab: Lab,
    router: Router,
) {
    let shutdown = lab.shutting_down();
    tokio::pin!(shutdown);
    let mut failures = AcceptFailures::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(serve_connection(
                        stream,
                        peer,
                        acceptor.clone(),
                        streams,
                        lab.clone(),
                        router.clone(),
                    ));
                }
                Err(e) => failures.failed("TLS port", &e).await,
            },
            () = &mut shutdown => break,
        }
    }
}

/// Serves one TLS connection from accept to close.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    streams: u32,
    lab: Lab,
    router: Router,
) {
    // Over its address's cap or the server's: closed untracked (a JSON refusal in clear
    // text would mean nothing to a TLS client).
    let (charged, via) = lab.peers().take_accepted(peer);
    if via.is_none() && crate::peers::is_own_address(peer.ip()) {
        return; // as on the plain ports (`listener::serve_connection`)
    }
    let Ok(slot) = lab.peers().connect(charged) else {
        return;
    };
    let local = stream
        .local_addr()
        .unwrap_or(crate::listener::UNKNOWN_LOCAL);
    let _ = stream.set_nodelay(true);
    let conn = Conn::open(&lab, peer, (charged, via), local, Some(slot.in_flight()));
    let tracked = TrackedStream::new(stream, conn.clone(), slot).over_tls();
    // The handshake is bounded like a request head (a slowloris guard), and
    // a client that sends nothing at all like an idle one (as on the plain
    // ports: found in review, it was `header_read_timeout` at 10 s here,
    // `idle_timeout` at 5 s there). The reason is recorded before the
    // socket is dropped (its `Drop` reports).
    let accept = acceptor.accept(tracked).into_fallible();
    tokio::pin!(accept);
    let idle = Duration::from_millis(conn.policy().idle_timeout_ms);
    let shaken = tokio::select! {
        shaken = &mut accept => shaken,
        reason = handshake_deadline(&conn, lab.config().header_read_timeout, idle) => {
            conn.set_reason(reason);
            return;
        }
        () = lab.shutting_down() => {
            conn.set_reason(CloseReason::Shutdown);
            return;
        }
    };
    let mut tls = match shaken {
        Ok(tls) => tls,
        Err((e, socket)) => {
            // A browser that refuses the certificate ends here (its alert),
            // as does a client that is not speaking TLS; one that closed
            // (a FIN) before finishing its hello just left.
            conn.set_reason(if e.kind() == io::ErrorKind::UnexpectedEof {
                CloseReason::PeerClosed
            } else {
                CloseReason::Error {
                    message: format!("TLS handshake failed: {e}"),
                }
            });
            drop(socket);
            return;
        }
    };
    // Request bytes that came with the client's last handshake flight are
    // read and decrypted already (`Conn::secured`'s `early`).
    let early = tls
        .get_mut()
        .1
        .process_new_packets()
        .is_ok_and(|state| state.plaintext_bytes_to_read() > 0);
    let (tracked, session) = tls.get_ref();
    // Declared before the connection, so dropped after it: the socket
    // closes when both are gone.
    let watch = tracked.close_watch();
    // The idle deadline's verdict, unless the client's FIN or RST is already
    // in: then the client closed first (as on the plain ports, where the
    // socket is looked at as it closes).
    let idle_reason = |verdict: CloseReason| {
        watch
            .as_ref()
            .and_then(CloseWatch::client_closed)
            .unwrap_or(verdict)
    };
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let version = session
        .protocol_version()
        .and_then(|v| v.as_str())
        .unwrap_or("TLS")
        .to_owned();
    let h2 = alpn.as_deref() == Some(ALPN_H2);
    conn.secured(
        h2,
        alpn.map(|a| String::from_utf8_lossy(&a).into_owned()),
        version,
        early,
    );

    let handler = Handler::new(lab.clone(), conn.clone(), router);
    let refuses = conn.clone();
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        if refuses.is_http2() && refuses.h2_refuses() {
            // Past `max_requests`' `GOAWAY` and its grace: hyper resets the
            // stream with the code of the `h2::Error` it is given
            // (`REFUSED_STREAM`); the tap records that reset, as h2's own
            // refusals past the streams allowed at once.
            let refused = h2::Error::from(h2::Reason::REFUSED_STREAM);
            return Either::Right(std::future::ready(Err(NoAnswer::Refused(refused))));
        }
        // HTTP/2 carries the host in `:authority`: the Host check applies
        // to it the same (DNS rebinding).
        if !request.headers().contains_key(HOST)
            && let Some(value) = request
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            request.headers_mut().insert(HOST, value);
        }
        Either::Left(handler.call(request).map_err(NoAnswer::Deliberate))
    });
    let (guard, stall) = (
        lab.config().header_read_timeout,
        lab.config().write_stall_timeout,
    );
    let watchdog = watchdog::watch(conn.clone(), guard, stall);

    if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(streams)
            .max_header_list_size(u32::try_from(lab.config().max_header_bytes).unwrap_or(u32::MAX));
        // Its RST_STREAM and GOAWAY frames, and each request's stream, read
        // from the decrypted bytes (hyper reports none of them).
        let tap = FrameTap::new(tls, conn.clone());
        let gate = tap.gate();
        let connection = builder.serve_connection(TokioIo::new(tap), service);
        tokio::pin!(connection);
        tokio::pin!(watchdog);
        let shutdown = lab.shutting_down();
        tokio::pin!(shutdown);
        // The policy's `max_requests` reached: `GOAWAY`, then the streams in
        // flight finish (still under the watchdog's guards) and hyper closes.
        let goaway_due = conn.h2_goaway_due();
        let mut goaway_said = false;
        // The grace after that `GOAWAY` for streams that crossed it; then
        // new streams are refused (`Conn::h2_refuse_new_streams`).
        let refusing_from = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
        tokio::pin!(refusing_from);
        let mut refusing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if goaway_said {
                        conn.h2_max_requests_end(&result);
                    } else {
                        conn.note_connection_end(&result);
                    }
                    break;
                }
                () = goaway_due.notified(), if !goaway_said => {
                    goaway_said = true;
                    connection.as_mut().graceful_shutdown();
                    refusing_from
                        .as_mut()
                        .reset(tokio::time::Instant::now() + GOAWAY_GRACE);
                }
                () = &mut refusing_from, if goaway_said && !refusing => {
                    refusing = true;
                    conn.h2_refuse_new_streams();
                }
                verdict = &mut watchdog => {
                    if verdict.idle && goaway_said {
                        // After `max_requests`' GOAWAY hyper closes once the
                        // client answers h2's PING; a client that never does
                        // is closed by this timer, and the record says so.
                        conn.set_guard_reason(verdict.reason);
                        connection.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(GOAWAY_GRACE, connection.as_mut()).await;
                    } else if verdict.idle && !gate.arrived() {
                        // No preface yet: hyper has nothing to say GOAWAY
                        // with; the tap ends it (`PrefaceGate`).
                        conn.set_reason(idle_reason(verdict.reason));
                        gate.close_now();
                        let _ = tokio::time::timeout(CLOSE_NOTIFY_GRACE, connection.as_mut()).await;
                    } else if verdict.idle {
                        conn.set_reason(idle_reason(verdict.reason));
                        // Idle (or its session ended): say GOAWAY, then close.
                        connection.as_mut().graceful_shutdown();
                        let ended = tokio::time::timeout(GOAWAY_GRACE, connection.as_mut()).await;
                        if ended.is_err() && matches!(conn.activity(), Activity::Busy) {
                            // A stream that crossed the GOAWAY (sent before
                            // the client read it) was accepted, and the
                            // client cannot send it again: it is served to
                            // its end, under the guards of a watchdog of its
                            // own, and the connection closes once idle again
                            // (found in review: it was cut at the grace's
                            // end, a request the record showed aborted).
                            // Streams opened from now on are refused, as
                            // after `max_requests`' grace: else a client that
                            // never answers the PING and keeps one stream in
                            // flight is served forever, also once its
                            // session has ended (found in review).
                            conn.h2_refuse_new_streams();
                            let guards = watchdog::watch(conn.clone(), guard, stall);
                            tokio::select! {
                                _ = connection.as_mut() => {}
                                verdict = guards => {
                                    if !verdict.idle {
                                        conn.set_guard_reason(verdict.reason);
                                    }
                                }
                            }
                        }
                    } else {
                        let slow_client = matches!(
                            verdict.reason,
                            CloseReason::HeaderReadTimeout | CloseReason::BodyReadTimeout
                        );
                        conn.set_guard_reason(verdict.reason);
                        if slow_client {
                            // A client that is slow to send, not to read:
                            // told `GOAWAY` (after its preface), then TLS's
                            // `close_notify` and the FIN, as the idle close
                            // and the HTTP/1.1 guards tell theirs (found in
                            // review: a bare FIN). A stalled writer's close
                            // (`write_stalled`) could not go out.
                            if gate.arrived() {
                                connection.as_mut().graceful_shutdown();
                                let _ = tokio::time::timeout(CLOSE_NOTIFY_GRACE, connection.as_mut()).await;
                            }
                            gate.close_now();
                            let _ = tokio::time::timeout(CLOSE_NOTIFY_GRACE, connection.as_mut()).await;
                        }
                    }
                    break;
                }
                () = &mut shutdown => {
                    conn.set_reason(CloseReason::Shutdown);
                    if !gate.arrived() {
                        gate.close_now();
                        let _ = tokio::time::timeout(CLOSE_NOTIFY_GRACE, connection.as_mut()).await;
                        break;
                    }
                    connection.as_mut().graceful_shutdown();
                    if let Ok(result) = tokio::time::timeout(SHUTDOWN_GRACE, connection.as_mut()).await {
                        conn.note_connection_end(&result);
                    }
                    break;
                }
            }
        }
    } else {
        // Not pinned in place: it is `Unpin`, and the idle and guards'
        // closes take its stream back (`into_parts`).
        let mut connection = http1_builder(&lab)
            .serve_connection(TokioIo::new(PeerEof::new(tls, conn.clone())), service)
            .with_upgrades();
        tokio::select! {
            result = &mut connection => conn.note_connection_end(&result),
            verdict = watchdog => {
                let reason = if verdict.idle {
                    h1_idle_close(&conn, watch.as_ref(), verdict.reason)
                } else {
                    verdict.reason
                };
                // The close is the lab's own, hyper not polled again (what
                // is unread stays unread): the `close_notify` TLS asks of it
                // (RFC 8446 §6.1) is written on the stream hyper gives back,
                // but to a client that stopped reading (it would wait).
                let notify = reason != CloseReason::WriteStalled;
                conn.set_reason(reason);
                if notify
                    && let Some(parts) = connection.into_parts()
                    && let Some(mut tls) = parts.io.into_inner().into_inner()
                {
                    use tokio::io::AsyncWriteExt as _;
                    let _ = tokio::time::timeout(CLOSE_NOTIFY_GRACE, tls.shutdown()).await;
                }
            }
            () = lab.shutting_down() => {
                conn.set_reason(CloseReason::Shutdown);
                Pin::new(&mut connection).graceful_shutdown();
                // Bounded like the HTTP/2 branch: the watchdog is no longer
                // polled, so a request or response that never finishes
                // cannot hold this task past the grace.
                let ended = tokio::time::timeout(SHUTDOWN_GRACE, &mut connection);
                if let Ok(result) = ended.await {
                    conn.note_connection_end(&result);
                }
            }
        }
    }
}

/// Why an HTTP/1.1 connection over TLS closes at its idle deadline (`idle`,
/// or the client's close already in), as the wire will have it. Not
/// `closing_idle`: a raced request's bytes are encrypted here and cannot be
/// named as the plain ports' keep-alive race names them. Hyper is not
/// polled again, so what is unread now stays unread and the close resets:
/// `records_unread` after the idle close, also behind the client's FIN
/// (a request sent before a half-close), but for the client's
/// `close_notify` alone, which is read so that the close is a FIN after
/// the client's own.
fn h1_idle_close(conn: &Conn, watch: Option<&CloseWatch>, idle: CloseReason) -> CloseReason {
    let Some(watch) = watch else {
        return idle;
    };
    let unread = |idle| CloseReason::RecordsUnread {
        after: Box::new(idle),
    };
    match watch.client_closed() {
        Some(CloseReason::PeerClosed) if watch.bytes_unread() && !watch.take_close_notify(conn) => {
            unread(idle)
        }
        Some(closed) => closed,
        None if watch.bytes_unread() => unread(idle),
        None => idle,
    }
}

/// When a handshake that has not completed is given up, and why: a client
/// that has sent nothing by the `idle` timeout is idle; one that has sent
/// something is cut by the `head` guard (or at `idle`, if its first byte came
/// after that guard would have passed).
async fn handshake_deadline(conn: &Conn, head: Duration, idle: Duration) -> CloseReason {
    let first = head.min(idle);
    tokio::time::sleep(first).await;
    if conn.bytes_read() == 0 {
        tokio::time::sleep(idle - first).await;
        if conn.bytes_read() == 0 {
            return CloseReason::IdleTimeout;
        }
        return CloseReason::HeaderReadTimeout;
    }
    tokio::time::sleep(head - first).await;
    CloseReason::HeaderReadTimeout
}

/// The TLS stream of an HTTP/1.1 connection.
type Tls = tokio_rustls::server::TlsStream<TrackedStream>;

/// The TLS stream of an HTTP/1.1 connection, telling its connection the
/// plaintext read ([`Conn::note_plain_read`]: where heads end) and when
/// the client's `close_notify` ends what it sends ([`Conn::peer_eof`]):
/// TLS reads nothing after it, so the socket's own read never sees the FIN
/// that follows (found in review: a client that closed mid-head with
/// `close_notify` was recorded as the server's `error`). (HTTP/2's
/// [`FrameTap`] does the same.)
///
/// Upgraded to a WebSocket, it is dropped by the WebSocket's task once the
/// close handshake is over, and nothing shuts it down first (tungstenite
/// does not, and axum does not hand the stream back): its drop writes TLS's
/// `close_notify` then (RFC 8446 §6.1), without waiting, before the socket
/// closes (found in review: a `wss://` close ended in a bare FIN).
struct PeerEof {
    /// `None` once taken back ([`PeerEof::into_inner`]).
    inner: Option<Tls>,
    conn: Arc<Conn>,
    /// Shut down already (its `close_notify` went out that way).
    shut: bool,
}

impl std::fmt::Debug for PeerEof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerEof").field("shut", &self.shut).finish()
    }
}

/// An I/O call on a stream already taken back (none is made).
fn taken() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the TLS stream was taken back")
}

impl PeerEof {
    fn new(inner: Tls, conn: Arc<Conn>) -> PeerEof {
        PeerEof {
            inner: Some(inner),
            conn,
            shut: false,
        }
    }

    /// The TLS stream, for a close of the lab's own (hyper's connection
    /// ended without it, so nothing of it is upgraded).
    fn into_inner(mut self) -> Option<Tls> {
        self.inner.take()
    }
}

impl Drop for PeerEof {
    fn drop(&mut self) {
        if self.shut || !self.conn.is_upgraded() {
            return;
        }
        let Some(tls) = self.inner.as_mut() else {
            return;
        };
        let (socket, session) = tls.get_mut();
        session.send_close_notify();
        let mut alert = Vec::new();
        while session.wants_write() && session.write_tls(&mut alert).is_ok() {}
        socket.write_now(&alert);
    }
}

impl AsyncRead for PeerEof {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(taken()));
        };
        let (before, room) = (buf.filled().len(), buf.remaining());
        let poll = Pin::new(inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && room > 0 {
            let read = &buf.filled()[before..];
            if read.is_empty() {
                this.conn.peer_eof();
            } else {
                this.conn.note_plain_read(read);
            }
        }
        poll
    }
}

impl AsyncWrite for PeerEof {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_write(cx, buf),
            None => Poll::Ready(Err(taken())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(taken())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(Tls::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_flush(cx),
            None => Poll::Ready(Err(taken())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shut = true;
        match this.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_shutdown(cx),
            None => Poll::Ready(Err(taken())),
        }
    }
}
