//! The accept loop: why the lab does not use `axum::serve`.
//!
//! Released axum 0.8's `serve` hides each connection and sets no timer, so
//! idle keep-alive connections never close and nothing can be observed. Here
//! every accepted socket gets a [`Conn`] record, is wrapped in a
//! [`TrackedStream`], and is served by hyper's HTTP/1.1 connection with a
//! timer (`header_read_timeout`, which since hyper 1.6 is also the idle
//! timeout between requests). Each request gets a [`RequestGuard`] before it
//! reaches the router, and its response is stamped with `X-Conn-Id` and
//! friends on the way out.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use protocol::CloseReason;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::Lab;
use crate::conn::{Conn, TrackedStream};
use crate::routes;

/// How long shutdown waits for connections to wind down before giving up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts connections on `listener` until [`Lab::begin_shutdown`], then
/// waits (at most [`SHUTDOWN_GRACE`]) for open connections to close.
pub async fn serve(listener: TcpListener, lab: Lab) -> io::Result<()> {
    let router = routes::app(lab.clone());
    let mut shutdown = Box::pin(lab.shutting_down());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(serve_connection(stream, peer, lab.clone(), router.clone()));
                }
                Err(e) => {
                    // Out of file descriptors or a connection reset before we
                    // took it: both pass. Back off briefly instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    // Our own watcher counts as a task too: let go of it before waiting.
    drop(shutdown);
    lab.wait_for_tasks(SHUTDOWN_GRACE).await;
    Ok(())
}

/// Serves one TCP connection from accept to close.
async fn serve_connection(stream: TcpStream, peer: SocketAddr, lab: Lab, router: Router) {
    let local_port = stream.local_addr().map_or(0, |a| a.port());
    // Responses are small and latency is what the lab shows: no Nagle delay.
    let _ = stream.set_nodelay(true);
    let conn = Conn::open(&lab, peer.to_string(), local_port);
    let io = TokioIo::new(TrackedStream::new(stream, conn.clone()));

    let service = service_fn({
        let conn = conn.clone();
        move |mut request: hyper::Request<Incoming>| {
            let guard = conn.begin_request(request.method(), request.uri());
            request.extensions_mut().insert(guard.ctx().clone());
            let router = router.clone();
            async move {
                let response = router
                    .oneshot(request)
                    .await
                    .unwrap_or_else(|never| match never {});
                Ok::<_, Infallible>(guard.respond(response))
            }
        }
    });

    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(lab.config().idle_timeout);
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
