//! Tracking one TCP connection and the requests it carries.
//!
//! - [`Conn`]: what the lab knows about one connection while it lives.
//! - [`TrackedStream`]: the socket wrapper hyper reads and writes through. It
//!   counts bytes, notices EOF and resets, and reports the close from `Drop`:
//!   a WebSocket upgrade moves the socket out of hyper's connection future, so
//!   only the socket itself knows when the connection is really gone.
//! - [`RequestGuard`] and [`TrackedBody`]: report when a response has been
//!   handed over completely, or was dropped half-way (the client went away).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::header::ACCESS_CONTROL_EXPOSE_HEADERS;
use axum::http::{HeaderName, HeaderValue, Method, Response, StatusCode, Uri};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use protocol::{
    CloseReason, ConnId, RequestId, RequestOutcome, ServerEvent, ServerPolicy, SessionId,
    UpgradeRole, headers,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::Lab;
use crate::sessions::SessionPermit;
use crate::tracker::Counters;

/// Headers a page on another origin must be allowed to read (with CORS).
const EXPOSED_HEADERS: &str = "x-conn-id, x-request-seq, x-request-id";

// Header names as constants: inserting by `&str` checks the name against
// every standard header at run time, measurably on every response (bench).
const X_CONN_ID: HeaderName = HeaderName::from_static(headers::CONN_ID);
const X_REQUEST_SEQ: HeaderName = HeaderName::from_static(headers::REQUEST_SEQ);
const X_REQUEST_ID: HeaderName = HeaderName::from_static(headers::REQUEST_ID);
const TIMING_ALLOW_ORIGIN: HeaderName = HeaderName::from_static("timing-allow-origin");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// One open TCP connection as the lab tracks it.
#[derive(Debug)]
pub struct Conn {
    /// Its id, also sent as `X-Conn-Id`.
    id: ConnId,
    /// The client's address.
    peer: std::net::SocketAddr,
    /// Where events go.
    lab: Lab,
    /// Bytes each way, shared with the tracker's table.
    counters: Arc<Counters>,
    /// Requests started so far; the next one's `seq` is this plus one.
    requests: AtomicU32,
    /// `bytes_in` when the last request head was read or the last response
    /// finished. More bytes than this when the timer fires means a request
    /// head had started to arrive (header-read timeout), none means idle.
    bytes_in_mark: AtomicU64,
    /// The peer's FIN was read (a zero-byte read).
    saw_eof: AtomicBool,
    /// The connection became a WebSocket; hyper's future no longer owns it.
    /// Set when the 101 response is produced, before hyper's future ends, so
    /// that its `Ok(())` is not mistaken for the peer closing.
    upgraded: AtomicBool,
    /// The session of its first request that named one.
    session: OnceLock<SessionId>,
    /// The idle timeout it was accepted with (for `Keep-Alive: timeout=`).
    idle_timeout_ms: u64,
    /// Close abortively (`SO_LINGER` 0, so the peer gets a RST).
    reset_on_close: AtomicBool,
    /// The first cause of the close that anybody recorded. Later ones are
    /// consequences of the first (a shutdown causes errors, for instance).
    reason: Mutex<Option<CloseReason>>,
}

impl Conn {
    /// Registers a freshly accepted connection and announces it.
    /// `idle_timeout_ms` is the idle timeout its hyper connection was built with.
    pub fn open(
        lab: &Lab,
        peer: std::net::SocketAddr,
        local: std::net::SocketAddr,
        idle_timeout_ms: u64,
    ) -> Arc<Conn> {
        let counters = Arc::new(Counters::default());
        let id = lab.tracker().next_conn_id();
        lab.tracker().open(id, peer, local, counters.clone());
        Arc::new(Conn {
            id,
            peer,
            lab: lab.clone(),
            counters,
            requests: AtomicU32::new(0),
            bytes_in_mark: AtomicU64::new(0),
            saw_eof: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            session: OnceLock::new(),
            idle_timeout_ms,
            reset_on_close: AtomicBool::new(false),
            reason: Mutex::new(None),
        })
    }

    /// The client's address.
    pub fn peer(&self) -> std::net::SocketAddr {
        self.peer
    }

    /// The session this connection belongs to, once a request named one.
    pub fn session(&self) -> Option<&SessionId> {
        self.session.get()
    }

    /// Makes the close abortive: the peer will get a TCP reset.
    pub fn reset_on_close(&self) {
        self.reset_on_close.store(true, Ordering::Relaxed);
    }

    /// Its id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Records why the connection is ending, unless a cause is known already.
    pub fn set_reason(&self, reason: CloseReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(reason);
    }

    fn mark_bytes_in(&self) {
        let now = self.counters.bytes_in.load(Ordering::Relaxed);
        self.bytes_in_mark.store(now, Ordering::Relaxed);
    }

    /// A request head has been read: attributes the connection to the
    /// request's session (the first one named wins), numbers the request and
    /// announces it.
    pub fn begin_request(
        self: &Arc<Self>,
        method: &Method,
        uri: &Uri,
        session: Option<SessionId>,
    ) -> RequestGuard {
        self.mark_bytes_in();
        if let Some(session) = session
            && self.session.set(session.clone()).is_ok()
        {
            self.lab
                .tracker()
                .record(ServerEvent::ConnectionAttributed {
                    conn: self.id,
                    session,
                    at_us: self.lab.tracker().clock().now_us(),
                });
        }
        let seq = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let request = self.lab.tracker().next_request_id();
        let target = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
        self.lab.tracker().record(ServerEvent::RequestStarted {
            conn: self.id,
            request,
            seq,
            method: method.as_str().to_owned(),
            target,
            at_us: self.lab.tracker().clock().now_us(),
        });
        RequestGuard {
            ctx: RequestCtx {
                conn: self.clone(),
                request,
                seq,
            },
            upgraded: false,
            done: false,
            permit: None,
            client_closes: false,
        }
    }

    /// The connection was upgraded to a WebSocket serving `role`.
    pub fn mark_upgraded(&self, role: UpgradeRole) {
        self.upgraded.store(true, Ordering::Relaxed);
        self.lab.tracker().record(ServerEvent::ConnectionUpgraded {
            conn: self.id,
            role,
            at_us: self.lab.tracker().clock().now_us(),
        });
    }

    /// Works out the close reason from how hyper's connection future ended.
    pub fn note_connection_end(&self, result: &Result<(), hyper::Error>) {
        match result {
            Ok(()) if self.upgraded.load(Ordering::Relaxed) => {}
            Ok(()) => self.set_reason(CloseReason::PeerClosed),
            Err(e) if e.is_timeout() => {
                let read = self.counters.bytes_in.load(Ordering::Relaxed);
                let mark = self.bytes_in_mark.load(Ordering::Relaxed);
                self.set_reason(if read > mark {
                    CloseReason::HeaderReadTimeout
                } else {
                    CloseReason::IdleTimeout
                });
            }
            Err(_) if self.saw_eof.load(Ordering::Relaxed) => {
                self.set_reason(CloseReason::PeerClosed)
            }
            Err(e) => self.set_reason(CloseReason::Error {
                message: e.to_string(),
            }),
        }
    }

    fn note_io_error(&self, error: &io::Error) {
        match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => self.set_reason(CloseReason::PeerReset),
            _ => self.set_reason(CloseReason::Error {
                message: error.to_string(),
            }),
        }
    }

    /// The socket is gone: report the close once.
    fn closed(&self) {
        let reason = self
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| {
                if self.saw_eof.load(Ordering::Relaxed) {
                    CloseReason::PeerClosed
                } else {
                    CloseReason::Error {
                        message: "the server dropped the connection without a recorded cause"
                            .into(),
                    }
                }
            });
        self.lab
            .tracker()
            .close(self.id, reason, self.requests.load(Ordering::Relaxed));
    }

    /// Decides whether the response to the `seq`-th request keeps the
    /// connection open, per `policy`, and says so in its headers. When the
    /// client itself asked to close (`client_closes`), nothing is advertised.
    fn apply_keep_alive(
        &self,
        seq: u32,
        client_closes: bool,
        headers: &mut axum::http::HeaderMap,
        policy: &ServerPolicy,
    ) {
        use axum::http::header::CONNECTION;
        let closing_already = headers
            .get(CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if closing_already || client_closes {
            return; // the handler or the client decided (and hyper will close)
        }
        let close = if !policy.keep_alive {
            Some(CloseReason::KeepAliveOff)
        } else if policy.max_requests.is_some_and(|max| seq >= max) {
            Some(CloseReason::MaxRequests)
        } else {
            None
        };
        if let Some(reason) = close {
            self.set_reason(reason);
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        } else if policy.advertise_keep_alive {
            let timeout_s = self.idle_timeout_ms.div_ceil(1000);
            let value = match policy.max_requests {
                Some(max) => format!("timeout={timeout_s}, max={}", max - seq),
                None => format!("timeout={timeout_s}"),
            };
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(KEEP_ALIVE, value);
            }
        }
    }
}

/// Which connection and request a handler is serving, put into the request's
/// extensions by the accept loop. Absent when the router is called directly
/// (`oneshot` in tests): handlers must cope with that.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// The connection carrying the request.
    pub conn: Arc<Conn>,
    /// Server-wide request id.
    pub request: RequestId,
    /// n-th request on the connection.
    pub seq: u32,
}

/// Reports the end of one request exactly once: completed when its body was
/// handed over, aborted when dropped earlier (the client went away).
#[derive(Debug)]
pub struct RequestGuard {
    /// The request.
    ctx: RequestCtx,
    /// Answered with 101 Switching Protocols.
    upgraded: bool,
    /// Already reported.
    done: bool,
    /// Counts the request against its session's cap until it ends.
    permit: Option<SessionPermit>,
    /// The client asked to close after this request (`Connection: close`,
    /// or HTTP/1.0 without `Connection: keep-alive`).
    client_closes: bool,
}

impl RequestGuard {
    /// The request's identity, to hand to handlers.
    pub fn ctx(&self) -> &RequestCtx {
        &self.ctx
    }

    /// Notes that the client asked to close the connection after this request.
    pub fn client_closes(&mut self) {
        self.client_closes = true;
    }

    /// Holds `permit` until the request ends.
    pub fn hold(&mut self, permit: SessionPermit) {
        self.permit = Some(permit);
    }

    fn finish(&mut self, completed: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let outcome = match (completed, self.upgraded) {
            (_, true) => RequestOutcome::Upgraded,
            (true, false) => RequestOutcome::Completed,
            (false, false) => RequestOutcome::Aborted,
        };
        let conn = &self.ctx.conn;
        conn.mark_bytes_in();
        self.permit = None;
        conn.lab.tracker().record(ServerEvent::RequestFinished {
            conn: conn.id,
            request: self.ctx.request,
            outcome,
            at_us: conn.lab.tracker().clock().now_us(),
        });
    }

    /// Stamps the lab's headers on a response, applies the keep-alive
    /// `policy`, announces the head and wraps the body so its end is reported.
    pub fn respond(
        mut self,
        response: Response<Body>,
        policy: &ServerPolicy,
    ) -> Response<TrackedBody> {
        let (mut parts, body) = response.into_parts();
        self.upgraded = parts.status == StatusCode::SWITCHING_PROTOCOLS;
        if self.upgraded {
            self.ctx.conn.upgraded.store(true, Ordering::Relaxed);
        } else {
            self.ctx.conn.apply_keep_alive(
                self.ctx.seq,
                self.client_closes,
                &mut parts.headers,
                policy,
            );
        }
        let h = &mut parts.headers;
        h.insert(X_CONN_ID, HeaderValue::from(self.ctx.conn.id.0));
        h.insert(X_REQUEST_SEQ, HeaderValue::from(self.ctx.seq));
        h.insert(X_REQUEST_ID, HeaderValue::from(self.ctx.request.0));
        h.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
        h.insert(TIMING_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        let conn = &self.ctx.conn;
        conn.lab.tracker().record(ServerEvent::ResponseStarted {
            conn: conn.id,
            request: self.ctx.request,
            status: parts.status.as_u16(),
            at_us: conn.lab.tracker().clock().now_us(),
        });
        let expected = http_body::Body::size_hint(&body).exact().or_else(|| {
            // Streamed bodies (files) announce their length in the header.
            parts
                .headers
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
        });
        Response::from_parts(
            parts,
            TrackedBody {
                inner: body,
                guard: self,
                expected,
                sent: 0,
            },
        )
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// A response body that reports, through its [`RequestGuard`], when it ended.
#[derive(Debug)]
pub struct TrackedBody {
    /// The handler's body.
    inner: Body,
    /// Reports the end.
    guard: RequestGuard,
    /// The body's length when known up front (it then goes out with a
    /// `Content-Length`, and hyper stops polling once it has that many bytes).
    expected: Option<u64>,
    /// Data bytes handed to hyper so far.
    sent: u64,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.guard.finish(true),
            Poll::Ready(Some(Err(_))) => this.guard.finish(false),
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        // hyper stops polling a body whose length it knows once it has it all,
        // then drops it: that is a completed response, not an aborted one.
        let completed = http_body::Body::is_end_stream(&self.inner)
            || self.expected.is_some_and(|n| n == self.sent);
        self.guard.finish(completed);
    }
}

/// The socket as hyper sees it: counts bytes, notes EOF and resets, and
/// reports the connection closed when dropped.
#[derive(Debug)]
pub struct TrackedStream {
    /// The accepted socket.
    inner: TcpStream,
    /// Its tracking record.
    conn: Arc<Conn>,
}

impl TrackedStream {
    /// Wraps an accepted socket.
    pub fn new(inner: TcpStream, conn: Arc<Conn>) -> TrackedStream {
        TrackedStream { inner, conn }
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        if self.conn.reset_on_close.load(Ordering::Relaxed) {
            // Linger 0: closing now sends a RST instead of a FIN.
            let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
        }
        self.conn.closed();
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &poll {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                if n == 0 {
                    this.conn.saw_eof.store(true, Ordering::Relaxed);
                } else {
                    let now = this.conn.lab.tracker().clock().now_us();
                    this.conn.counters.record_in(n, now);
                }
            }
            Poll::Ready(Err(e)) => this.conn.note_io_error(e),
            Poll::Pending => {}
        }
        poll
    }
}

impl TrackedStream {
    fn count_write(&self, poll: &Poll<io::Result<usize>>) {
        match poll {
            Poll::Ready(Ok(n)) => {
                let now = self.conn.lab.tracker().clock().now_us();
                self.conn.counters.record_out(*n as u64, now);
            }
            Poll::Ready(Err(e)) => self.conn.note_io_error(e),
            Poll::Pending => {}
        }
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.count_write(&poll);
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.count_write(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
