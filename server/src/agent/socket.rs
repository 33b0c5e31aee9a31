//! One agent socket: a task that owns its `TcpStream`, connects, serves one
//! request at a time, waits in the free pool, and closes, reporting each step
//! under Node's names. What it does at each turn is the pool's decision
//! ([`Shared`]); the timing rules are Node's:
//!
//! - **Idle timeout** (`socket.setTimeout`): one timer per socket, re-armed
//!   by every byte read or written, firing once per idle period
//!   (`lib/net.js`). Its value is the agent's `timeout` from creation
//!   (`net.createConnection` gets the agent's options); a request timeout
//!   (axios' `timeout`, which calls `req.setTimeout(ms)`) replaces it for the
//!   request, from the moment the request has a connected socket
//!   (`ClientRequest.prototype.setTimeout` waits for `'socket'` and
//!   `'connect'`, so time spent in the agent's queue does not count). After a
//!   response that keeps the socket, `responseKeepAlive` clears it
//!   (`socket.setTimeout(0)`) when the request listened for timeouts, and
//!   `keepSocketAlive` sets the free socket's (see `options::free_timeout`);
//!   a reused socket keeps that value for its next request (Node's
//!   `setRequestSocket` only changes it for a request with its own
//!   `timeout` option: nodejs/node#53458, open).
//! - **While a request is active**, the timeout only reports: socket
//!   `timeout` each idle period, and the request's `timeout` once
//!   (`listenSocketTimeout` in `lib/_http_client.js`, `socket.once`); a
//!   connect slower than the agent's `timeout` reports them too. Node docs, `http.ClientRequest` event
//!   `'timeout'`: "This only notifies that the socket has been idle. The
//!   request must be destroyed manually." The agent's own `onTimeout`
//!   destroys only free sockets ("TODO(ronag): Always destroy, even if not in
//!   free list"). axios' handler is what aborts: `lib/adapters/http.js`,
//!   `req.setTimeout(timeout, handleRequestTimeout)` → abort → the request is
//!   destroyed with its socket.
//! - **While free**, a timeout destroys the socket (`installListeners`,
//!   `onTimeout`); the server's FIN ends it (`'end'`, then `'close'` →
//!   `removeSocket`); an error destroys it (`freeSocketErrorListener`).
//! - **A request on a socket the server closed** fails with `ECONNRESET`
//!   `socket hang up` when nothing of a response arrived (`socketOnEnd`,
//!   `socketCloseListener`) or `aborted` mid-body, and is **not retried**:
//!   Node docs, `request.reusedSocket`: the application "may retry" based on
//!   it; the agent never does.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use protocol::{AbortReason, RequestEvent, SocketCloseReason, SocketEvent, TimeoutSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::engine::{Job, Next, Shared};
use super::http1::{AtEof, ResponseHead, ResponseReader, Step};
use super::options::{KEEPALIVE_COUNT, KEEPALIVE_INTERVAL_S, keepalive_idle_s};
use super::pool::SocketId;

/// Node's error code for an I/O error. Node's message is the system call
/// and the code (`read ECONNRESET`, `write EPIPE`, `connect ECONNREFUSED
/// 127.0.0.1:8080`: libuv's `UVException`), on the socket's `error` and the
/// request's alike, not the OS's words.
pub fn code_of(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "ECONNREFUSED",
        io::ErrorKind::ConnectionReset => "ECONNRESET",
        io::ErrorKind::ConnectionAborted => "ECONNABORTED",
        io::ErrorKind::BrokenPipe => "EPIPE",
        io::ErrorKind::TimedOut => "ETIMEDOUT",
        io::ErrorKind::AddrNotAvailable => "EADDRNOTAVAIL",
        io::ErrorKind::NotConnected => "ENOTCONN",
        io::ErrorKind::HostUnreachable => "EHOSTUNREACH",
        io::ErrorKind::NetworkUnreachable => "ENETUNREACH",
        _ => "EIO",
    }
}

/// How a served request left the socket.
enum Served {
    /// Both sides allowed reuse: the request, its `done` (reported with the
    /// socket's `free`, see [`Shared::released`]) and the response's
    /// `Keep-Alive` header.
    Reusable(u32, RequestEvent, Option<String>),
    /// The socket closes.
    Close(bool, SocketCloseReason),
    /// The socket closes, then the request fails with this event: a body
    /// cut by the server's FIN. Node's `socketCloseListener` destroys the
    /// response with `ECONNRESET` "aborted" in the socket's `close`, and the
    /// response's `error` comes after that `close`, and after the agent's
    /// own `close` listener (installed first) gave the queue its next
    /// socket (seen with Node v20.20.2).
    CloseThenFail(bool, SocketCloseReason, u32, RequestEvent),
}

/// The socket's state between turns.
struct Conn {
    stream: TcpStream,
    socket: SocketId,
    /// Requests carried.
    requests: u32,
    /// `socket.timeout`: milliseconds and where they come from.
    timeout: Option<(u64, TimeoutSource)>,
    /// An error met while free that the next request inherits.
    poisoned: Option<(String, String)>,
    /// The server's FIN was read and `end` told: a socket emits it once
    /// (found in review against Node v20.20.2: a FIN met while the socket
    /// was being handed to a request was told twice, once as it was read
    /// and again when that request read the closed connection).
    ended: bool,
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn deadline_of(timeout: Option<(u64, TimeoutSource)>) -> Option<Instant> {
    timeout.map(|(ms, _)| Instant::now() + Duration::from_millis(ms))
}

/// What the agent's [`Binder`](super::engine::Binder) says to hold while a
/// socket lives.
type Hold = Option<Box<dyn std::any::Any + Send + Sync>>;

/// Connects to `addr`, through the agent's [`Binder`](super::engine::Binder)
/// when it has one; with what the binder says to hold meanwhile.
async fn connect_one(shared: &Shared, addr: std::net::SocketAddr) -> io::Result<(TcpStream, Hold)> {
    match &shared.binder {
        Some(binder) => {
            let (socket, hold) = (binder.0)(addr)?;
            Ok((socket.connect(addr).await?, Some(hold)))
        }
        None => Ok((TcpStream::connect(addr).await?, None)),
    }
}

/// Connects to `dest`: its address, then, while attempts fail, each of its
/// fallbacks ([`crate::cli::connect_in_turn`], Node's `autoSelectFamily`).
/// The stream, what to hold, the address reached; or the first attempt's
/// error (whose code Node's `NodeAggregateError` takes, `errors[0].code`)
/// with Node's message: `connect ECONNREFUSED 127.0.0.1:8080` for one
/// address, and for several every attempt's, as the `errors` of the
/// `AggregateError` Node emits then (whose own message is empty), joined.
async fn connect(
    shared: &Shared,
    dest: &super::engine::Destination,
) -> Result<(TcpStream, Hold, std::net::SocketAddr), (io::Error, String)> {
    let deadline = tokio::time::Instant::now() + shared.connect_timeout;
    let attempt = |addr| connect_one(shared, addr);
    match crate::cli::connect_in_turn(dest.addr, &dest.fallbacks, deadline, attempt).await {
        Ok(((stream, hold), reached)) => Ok((stream, hold, reached)),
        Err(errors) => {
            // `connect ECONNREFUSED ::1:8080`: Node writes the address and
            // the port without brackets, IPv6 too.
            let message = errors
                .iter()
                .map(|(addr, e)| format!("connect {} {}:{}", code_of(e), addr.ip(), addr.port()))
                .collect::<Vec<_>>()
                .join(", ");
            let error = errors
                .into_iter()
                .next()
                .map_or_else(|| io::Error::other("no address to connect to"), |(_, e)| e);
            Err((error, message))
        }
    }
}

/// Runs socket `socket` for `first`, then for whatever the pool gives it.
pub(super) async fn run(
    shared: Arc<Shared>,
    socket: SocketId,
    first: Job,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    let mut stop = shared.stop.subscribe();
    let mut first = first;
    let addr = first.dest.addr;
    let dest = first.dest.clone();
    // Bounded by the lab's connect timeout, each address's attempt too
    // (a timed-out one is among the errors, as Node lists it).
    let connect = connect(&shared, &dest);
    tokio::pin!(connect);
    // The agent's `timeout` runs from the socket's creation: `net.connect`
    // gets it from `Agent.prototype.createSocket`, and the request already
    // listens for it (`tickOnSocket` → `listenSocketTimeout`). A connect
    // slower than it emits the socket's `timeout` and the request's, once
    // (nothing was read or written meanwhile to re-arm it), and goes on.
    let mut idle = shared
        .options
        .timeout
        .map(|ms| (ms, Box::pin(tokio::time::sleep(Duration::from_millis(ms)))));
    let connected = loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break None,
            result = &mut connect => break Some(result),
            () = async {
                match &mut idle {
                    Some((_, sleep)) => sleep.await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some((after_ms, _)) = idle.take() {
                    let source = TimeoutSource::Agent;
                    shared.socket_event(socket, SocketEvent::Timeout { after_ms, free: false, source });
                    first.timeout_told = true;
                    shared.request_event(first.id, RequestEvent::Timeout { socket, after_ms, source });
                }
            }
        }
    };
    let _bound;
    let stream = match connected {
        None => {
            shared.request_ended(
                first.id,
                RequestEvent::Aborted {
                    reason: AbortReason::AgentStopped,
                },
            );
            shared.closed(socket, false, SocketCloseReason::AgentStopped, 0);
            return;
        }
        Some(Ok((stream, bound, reached))) => {
            // Held until the socket task ends, with the connection.
            _bound = bound;
            (stream, reached)
        }
        Some(Err((error, message))) => {
            let code = code_of(&error);
            shared.socket_event(
                socket,
                SocketEvent::Error {
                    code: code.into(),
                    message: message.clone(),
                },
            );
            shared.request_ended(
                first.id,
                RequestEvent::Error {
                    socket: Some(socket),
                    code: code.into(),
                    message,
                    reused_socket: false,
                    retried: false,
                },
            );
            shared.closed(socket, true, SocketCloseReason::SocketError, 0);
            drain(&shared, &mut jobs);
            return;
        }
    };
    // The agent's sockets are created with `noDelay: true` (v24's `Agent`
    // constructor defaults `options.noDelay`).
    let (stream, reached) = stream;
    let _ = stream.set_nodelay(true);
    let local = stream
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    // Named only when it is not the address `socket` named: the first
    // refused and a fallback was reached.
    let remote = (reached != addr).then(|| reached.to_string());
    shared.socket_event(socket, SocketEvent::Connect { local, remote });
    if shared.options.keep_alive {
        let event = keepalive(&stream, shared.options.keep_alive_msecs);
        shared.socket_event(socket, event);
    }
    let mut conn = Conn {
        stream,
        socket,
        requests: 0,
        timeout: shared.options.timeout.map(|ms| (ms, TimeoutSource::Agent)),
        poisoned: None,
        ended: false,
    };
    let mut job = first;
    loop {
        let mut then_fails = None;
        let (had_error, reason) = match conn.serve(&shared, job, &mut stop).await {
            Served::Reusable(id, done, keep_alive) => {
                match shared.released(socket, id, done, keep_alive.as_deref()) {
                    Next::Serve(next) => {
                        job = next;
                        continue;
                    }
                    Next::Pooled(timeout) => {
                        conn.timeout = timeout;
                        match conn.wait_free(&shared, &mut jobs, &mut stop).await {
                            Ok(next) => {
                                job = next;
                                continue;
                            }
                            Err(close) => close,
                        }
                    }
                    Next::Destroy(reason) => (false, reason),
                }
            }
            Served::Close(had_error, reason) => (had_error, reason),
            Served::CloseThenFail(had_error, reason, id, event) => {
                then_fails = Some((id, event));
                (had_error, reason)
            }
        };
        // `socket.destroy()`: the descriptor is closed (a FIN, or an RST
        // when response bytes are left unread).
        let requests = conn.requests;
        drop(conn);
        shared.closed(socket, had_error, reason, requests);
        if let Some((id, event)) = then_fails {
            shared.request_ended(id, event);
        }
        drain(&shared, &mut jobs);
        return;
    }
}

/// Requests sent to a socket that is closing: reported aborted (cannot
/// happen in practice, see [`Shared::leave_free`]).
fn drain(shared: &Shared, jobs: &mut mpsc::UnboundedReceiver<Job>) {
    while let Ok(job) = jobs.try_recv() {
        shared.request_ended(
            job.id,
            RequestEvent::Aborted {
                reason: AbortReason::AgentStopped,
            },
        );
    }
}

/// Switches TCP keep-alive on as Node does for `keepAlive: true` and reads
/// it back (see `options::keepalive_idle_s`).
fn keepalive(stream: &TcpStream, msecs: u64) -> SocketEvent {
    let sock = socket2::SockRef::from(stream);
    let idle_s = keepalive_idle_s(msecs);
    match idle_s {
        Some(seconds) => {
            let params =
                socket2::TcpKeepalive::new().with_time(Duration::from_secs(u64::from(seconds)));
            #[cfg(any(target_os = "linux", target_os = "macos"))]
            let params = params
                .with_interval(Duration::from_secs(u64::from(KEEPALIVE_INTERVAL_S)))
                .with_retries(KEEPALIVE_COUNT);
            let _ = sock.set_tcp_keepalive(&params);
        }
        // `TCP_KEEPIDLE=0` is refused by the kernel; libuv leaves the rest.
        None => {
            let _ = sock.set_keepalive(true);
        }
    }
    #[cfg(not(windows))]
    let kernel_idle_s = sock
        .tcp_keepalive_time()
        .ok()
        .and_then(|d| u32::try_from(d.as_secs()).ok());
    #[cfg(windows)]
    let kernel_idle_s = None;
    // What the kernel has, read back: libuv's 1 s and 10 probes when it set
    // them, the system's own when `idle_s` is none (libuv returns before
    // setting anything but `SO_KEEPALIVE`; found in review: the event said
    // 1 s and 10 either way).
    #[cfg(not(windows))]
    let (interval_s, count) = (
        sock.tcp_keepalive_interval()
            .ok()
            .and_then(|d| u32::try_from(d.as_secs()).ok()),
        sock.tcp_keepalive_retries().ok(),
    );
    #[cfg(windows)]
    let (interval_s, count) = (None, None);
    let asked = idle_s.is_some();
    SocketEvent::Keepalive {
        requested_ms: msecs,
        idle_s,
        interval_s: interval_s.or(asked.then_some(KEEPALIVE_INTERVAL_S)),
        count: count.or(asked.then_some(KEEPALIVE_COUNT)),
        so_keepalive: sock.keepalive().unwrap_or(false),
        kernel_idle_s,
    }
}

impl Conn {
    /// Serves `job` on this socket.
    async fn serve(
        &mut self,
        shared: &Shared,
        mut job: Job,
        stop: &mut watch::Receiver<bool>,
    ) -> Served {
        let socket = self.socket;
        self.requests += 1;
        let reused = job.reused_socket;
        let request_timeout = shared.options.request_timeout;
        // `listenSocketTimeout`: with a request timeout or an agent timeout,
        // the socket's `timeout` becomes the request's.
        let listen = request_timeout.is_some() || shared.options.timeout.is_some();
        if let Some(ms) = request_timeout {
            self.timeout = Some((ms, TimeoutSource::Request));
        }
        let fail = |code: &str, message: String, close: (bool, SocketCloseReason)| {
            shared.request_ended(
                job.id,
                RequestEvent::Error {
                    socket: Some(socket),
                    code: code.to_owned(),
                    message,
                    reused_socket: reused,
                    retried: false,
                },
            );
            Served::Close(close.0, close.1)
        };
        if let Some((code, message)) = self.poisoned.take() {
            return fail(&code, message, (true, SocketCloseReason::SocketError));
        }
        let written = tokio::select! {
            biased;
            () = stopped(stop) => None,
            result = self.stream.write_all(&job.head) => Some(result),
        };
        match written {
            None => return abort_stopped(shared, &job),
            Some(Err(e)) => {
                let code = code_of(&e);
                shared.socket_event(
                    socket,
                    SocketEvent::Error {
                        code: code.into(),
                        message: format!("write {code}"),
                    },
                );
                return fail(
                    code,
                    format!("write {code}"),
                    (true, SocketCloseReason::SocketError),
                );
            }
            Some(Ok(())) => {}
        }
        shared.request_event(
            job.id,
            RequestEvent::Sent {
                socket,
                reused,
                socket_requests: self.requests,
            },
        );
        let mut deadline = deadline_of(self.timeout);
        let mut reader = ResponseReader::new(&job.method);
        let mut head: Option<ResponseHead> = None;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let read = tokio::select! {
                biased;
                () = stopped(stop) => return abort_stopped(shared, &job),
                () = sleep_until(deadline) => None,
                result = self.stream.read(&mut buf) => Some(result),
            };
            let Some(read) = read else {
                // The socket's idle timeout fired.
                deadline = None;
                let Some((after_ms, source)) = self.timeout else {
                    continue;
                };
                shared.socket_event(
                    socket,
                    SocketEvent::Timeout {
                        after_ms,
                        free: false,
                        source,
                    },
                );
                if listen && !job.timeout_told {
                    job.timeout_told = true;
                    shared.request_event(
                        job.id,
                        RequestEvent::Timeout {
                            socket,
                            after_ms,
                            source,
                        },
                    );
                }
                if source == TimeoutSource::Request {
                    shared.request_ended(
                        job.id,
                        RequestEvent::Aborted {
                            reason: AbortReason::RequestTimeout,
                        },
                    );
                    return Served::Close(false, SocketCloseReason::RequestTimeout);
                }
                continue;
            };
            match read {
                Ok(0) => {
                    if !std::mem::replace(&mut self.ended, true) {
                        shared.socket_event(socket, SocketEvent::End { free: false });
                    }
                    return match reader.eof() {
                        AtEof::Complete { body_bytes } => {
                            let status = head.as_ref().map_or(0, |h| h.status);
                            shared.request_ended(
                                job.id,
                                RequestEvent::Done {
                                    socket,
                                    status,
                                    body_bytes,
                                    reusable: false,
                                },
                            );
                            Served::Close(false, SocketCloseReason::ResponseConnectionClose)
                        }
                        AtEof::Truncated if head.is_some() => Served::CloseThenFail(
                            false,
                            SocketCloseReason::PeerClosed,
                            job.id,
                            RequestEvent::Error {
                                socket: Some(socket),
                                code: "ECONNRESET".into(),
                                message: "aborted".into(),
                                reused_socket: reused,
                                retried: false,
                            },
                        ),
                        AtEof::NoResponse | AtEof::Truncated => fail(
                            "ECONNRESET",
                            "socket hang up".into(),
                            (false, SocketCloseReason::PeerClosed),
                        ),
                    };
                }
                Ok(n) => {
                    deadline = deadline_of(self.timeout);
                    let steps = match reader.feed(&buf[..n]) {
                        Ok(steps) => steps,
                        Err(e) => {
                            return fail(
                                e.code,
                                e.message,
                                (false, SocketCloseReason::BadResponse),
                            );
                        }
                    };
                    for step in steps {
                        match step {
                            Step::Head(h) => {
                                shared.request_event(
                                    job.id,
                                    RequestEvent::Response {
                                        socket,
                                        status: h.status,
                                        http_version: h.version.into(),
                                        connection: h.connection.clone(),
                                        keep_alive: h.keep_alive.clone(),
                                    },
                                );
                                head = Some(h);
                            }
                            Step::Done { body_bytes, extra } => {
                                let Some(h) = head.take() else {
                                    continue;
                                };
                                // Bytes after the response in the same read:
                                // Node's parser reads them as the next
                                // response's start, fails, and `socketOnData`
                                // destroys the socket and emits the parse
                                // error on the request, before its response
                                // ends (seen with Node v20).
                                if extra > 0 {
                                    return fail(
                                        "HPE_INVALID_CONSTANT",
                                        "Expected HTTP/, RTSP/ or ICE/".into(),
                                        (false, SocketCloseReason::BadResponse),
                                    );
                                }
                                // `parserOnIncomingClient`: the server must
                                // agree to keep the connection.
                                let reusable = job.rule.should_keep_alive && h.keeps_alive();
                                let done = RequestEvent::Done {
                                    socket,
                                    status: h.status,
                                    body_bytes,
                                    reusable,
                                };
                                if !reusable {
                                    shared.request_ended(job.id, done);
                                    // `responseOnEnd`: `destroySoon()`.
                                    let reason = if !job.rule.should_keep_alive {
                                        SocketCloseReason::RequestConnectionClose
                                    } else {
                                        SocketCloseReason::ResponseConnectionClose
                                    };
                                    return Served::Close(false, reason);
                                }
                                if listen {
                                    // `responseKeepAlive`: `socket.setTimeout(0)`.
                                    self.timeout = None;
                                }
                                return Served::Reusable(job.id, done, h.keep_alive);
                            }
                        }
                    }
                }
                Err(e) => {
                    let code = code_of(&e);
                    shared.socket_event(
                        socket,
                        SocketEvent::Error {
                            code: code.into(),
                            message: format!("read {code}"),
                        },
                    );
                    return fail(
                        code,
                        format!("read {code}"),
                        (true, SocketCloseReason::SocketError),
                    );
                }
            }
        }
    }

    /// Waits in the free pool for the next request. `Err`: the socket
    /// closes (`had_error`, reason).
    async fn wait_free(
        &mut self,
        shared: &Shared,
        jobs: &mut mpsc::UnboundedReceiver<Job>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Job, (bool, SocketCloseReason)> {
        let socket = self.socket;
        let mut deadline = deadline_of(self.timeout);
        let mut buf = [0u8; 512];
        loop {
            tokio::select! {
                biased;
                job = jobs.recv() => {
                    return job.ok_or((false, SocketCloseReason::AgentStopped));
                }
                () = stopped(stop) => return Err((false, SocketCloseReason::AgentStopped)),
                () = sleep_until(deadline) => {
                    deadline = None;
                    let Some((after_ms, source)) = self.timeout else { continue };
                    let left = shared.leave_free(socket, |free| SocketEvent::Timeout {
                        after_ms,
                        free,
                        source,
                    });
                    if left {
                        return Err((false, SocketCloseReason::FreeSocketTimeout));
                    }
                }
                read = self.stream.read(&mut buf) => match read {
                    Ok(0) => {
                        if shared.leave_free(socket, |free| SocketEvent::End { free }) {
                            return Err((false, SocketCloseReason::PeerClosed));
                        }
                        // Given to a request just now: it will meet the
                        // closed connection (and fail, not be retried).
                        self.ended = true;
                        return jobs.recv().await.ok_or((false, SocketCloseReason::PeerClosed));
                    }
                    // Bytes the server sends to a free socket are read by
                    // no parser: Node's `responseKeepAlive` takes the
                    // socket's `data` listener off when it frees it, so they
                    // are dropped and the socket stays free for the next
                    // request (seen with Node v20 against a server that
                    // writes after its response; `mod.rs`, the rule table).
                    // Read, they restart its idle timer, as every read does
                    // (`onStreamRead` calls `stream[kUpdateTimer]()`,
                    // `lib/internal/stream_base_commons.js`; found in review
                    // against Node v20.20.2: the lab timed such a socket out
                    // as idle, Node kept it).
                    Ok(_) => deadline = deadline_of(self.timeout),
                    Err(e) => {
                        let code = code_of(&e);
                        let event = SocketEvent::Error { code: code.into(), message: format!("read {code}") };
                        if shared.error_while_free(socket, event) {
                            return Err((true, SocketCloseReason::SocketError));
                        }
                        self.poisoned = Some((code.into(), format!("read {code}")));
                        return jobs.recv().await.ok_or((true, SocketCloseReason::SocketError));
                    }
                },
            }
        }
    }
}

fn abort_stopped(shared: &Shared, job: &Job) -> Served {
    shared.request_ended(
        job.id,
        RequestEvent::Aborted {
            reason: AbortReason::AgentStopped,
        },
    );
    Served::Close(false, SocketCloseReason::AgentStopped)
}
