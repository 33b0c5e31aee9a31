//! The accept loop: why the lab does not use `axum::serve`.
//!
//! Released axum 0.8's `serve` hides each connection and sets no timer, so
//! idle keep-alive connections never close and nothing can be observed. Here
//! every accepted socket gets a [`Conn`] record, is wrapped in a
//! [`TrackedStream`], and is served by hyper's HTTP/1.1 connection with a
//! timer (`header_read_timeout`, which since hyper 1.6 is also the idle
//! timeout between requests). Each request gets a [`RequestGuard`](crate::conn::RequestGuard)
//! before it reaches the router; the keep-alive policy is applied to its
//! response on the way out.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use protocol::{CloseReason, SessionId};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::Lab;
use crate::conn::{Conn, TrackedStream};
use crate::endpoints::CloseNow;
use crate::routes;

/// How long shutdown waits for connections to wind down before giving up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// hyper refuses a read buffer under 8 KiB (it would panic).
const MIN_HEADER_BYTES: usize = 8 * 1024;

/// Why the accept loop ended a connection without answering: returned to
/// hyper as the service's error, which makes it close the connection.
#[derive(Debug)]
struct Deliberate(&'static str);

impl std::fmt::Display for Deliberate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Deliberate {}

/// Accepts connections on `listener` until [`Lab::begin_shutdown`], then
/// waits (at most [`SHUTDOWN_GRACE`]) for open connections to close.
pub async fn serve(listener: TcpListener, lab: Lab) -> io::Result<()> {
    serve_all(vec![listener], lab).await
}

/// Like [`serve`], on several listeners at once (the lab's main and second
/// origin, each on IPv4 and IPv6 loopback).
pub async fn serve_all(listeners: Vec<TcpListener>, lab: Lab) -> io::Result<()> {
    let router = routes::app(lab.clone());
    let mut loops = JoinSet::new();
    for listener in listeners {
        loops.spawn(accept_loop(listener, lab.clone(), router.clone()));
    }
    while loops.join_next().await.is_some() {}
    lab.wait_for_tasks(SHUTDOWN_GRACE).await;
    Ok(())
}

async fn accept_loop(listener: TcpListener, lab: Lab, router: Router) {
    let shutdown = lab.shutting_down();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(serve_connection(stream, peer, lab.clone(), router.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, or a connection reset before we
                    // took it: both pass. Back off briefly instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
}

/// The `session=` query parameter, if present and well-formed. A malformed
/// one is left to the endpoint, which answers it with a 400.
fn session_in(uri: &hyper::Uri) -> Option<SessionId> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "session")
        .and_then(|(_, value)| SessionId::parse(&value).ok())
}

/// Whether the client asked to close the connection after this request:
/// `Connection: close`, or HTTP/1.0 without `Connection: keep-alive`.
fn client_closes<B>(request: &hyper::Request<B>) -> bool {
    let has = |token: &str| {
        request
            .headers()
            .get_all(hyper::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has("close") || (request.version() == hyper::Version::HTTP_10 && !has("keep-alive"))
}

/// Serves one TCP connection from accept to close.
async fn serve_connection(stream: TcpStream, peer: SocketAddr, lab: Lab, router: Router) {
    let policy = lab.policy();
    let local = stream.local_addr().unwrap_or(peer);
    // Responses are small and latency is what the lab shows: no Nagle delay.
    let _ = stream.set_nodelay(true);
    if let Some(tcp) = policy.tcp_keepalive {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(tcp.idle_s.into()))
            .with_interval(Duration::from_secs(tcp.interval_s.into()));
        if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
            tracing::warn!("could not enable TCP keep-alive: {e}");
        }
    }
    let conn = Conn::open(&lab, peer, local, policy.idle_timeout_ms);
    let io = TokioIo::new(TrackedStream::new(stream, conn.clone()));

    let service = service_fn({
        let (conn, lab) = (conn.clone(), lab.clone());
        move |mut request: hyper::Request<Incoming>| {
            let session = session_in(request.uri());
            let mut guard = conn.begin_request(request.method(), request.uri(), session.clone());
            if client_closes(&request) {
                guard.client_closes();
            }
            request.extensions_mut().insert(guard.ctx().clone());
            let permit = session.map(|s| lab.sessions().enter(&s)).transpose();
            let (router, lab, conn) = (router.clone(), lab.clone(), conn.clone());
            async move {
                // Read per request: policy changes apply to the next response.
                let policy = lab.policy();
                let response = match permit {
                    Err(refused) => refused.into_response(),
                    Ok(permit) => {
                        if let Some(permit) = permit {
                            guard.hold(permit);
                        }
                        let routed = router.oneshot(request);
                        // No timer at all when the hang timeout is off: a
                        // timer per request is measurable at 40k req/s.
                        let response = match policy.hang_timeout_ms {
                            None => routed.await,
                            Some(ms) => {
                                let Ok(response) =
                                    tokio::time::timeout(Duration::from_millis(ms), routed).await
                                else {
                                    conn.set_reason(CloseReason::HangTimeout);
                                    return Err(Deliberate(
                                        "hang timeout: closed without a response",
                                    ));
                                };
                                response
                            }
                        };
                        response.unwrap_or_else(|never| match never {})
                    }
                };
                if response.extensions().get::<CloseNow>().is_some() {
                    return Err(Deliberate("closed without a response on purpose"));
                }
                Ok::<_, Deliberate>(guard.respond(response, &policy))
            }
        }
    });

    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(policy.idle_timeout_ms))
        .max_buf_size(lab.config().max_header_bytes.max(MIN_HEADER_BYTES));
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);

    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = lab.shutting_down() => {
            conn.set_reason(CloseReason::Shutdown);
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    conn.note_connection_end(&result);
}
