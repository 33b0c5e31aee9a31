//! The accept loop and the per-connection handler: why the lab does not use
//! `axum::serve`.
//!
//! Released axum 0.8's `serve` hides each connection and sets no timer, so
//! idle keep-alive connections never close and nothing can be observed. Here
//! every accepted socket
//!
//! 1. is counted against its address's cap ([`crate::peers`]): over it, the
//!    client gets a JSON 503 and the socket closes, untracked;
//! 2. gets a [`Conn`] record and is wrapped in a [`TrackedStream`];
//! 3. is served by hyper's HTTP/1.1 connection *without* hyper's header-read
//!    timer, next to the lab's [`watchdog`], which closes it when it sits idle
//!    longer than its owner's live policy allows (or breaks a guard);
//! 4. hands each request to a [`Handler`], which records it, refuses what a
//!    shared room must refuse (foreign `Host` or `Origin`, another site's
//!    request to the API without `Origin`, a session the server did not
//!    issue, a cap reached), drops it on purpose for the
//!    keep-alive race, or routes it, and applies the keep-alive policy to the
//!    response on the way out. A WebSocket upgrade of `/api/events` refused
//!    for anything but a foreign `Host` or `Origin` is routed too, carrying
//!    its refusal, to be told in a close frame a browser can read
//!    ([`crate::events::Refused`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header::{HOST, HeaderName, ORIGIN};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use protocol::{CloseReason, RaceClose, SessionId};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tower::ServiceExt;
use tower::util::Oneshot;

use crate::Lab;
use crate::conn::{Conn, GuardedBody, RequestGuard, TrackedBody, TrackedStream};
use crate::endpoints::{CloseOnPurpose, HeldHang};
use crate::error::ApiError;
use crate::routes;
use crate::sessions::Owner;
use crate::watchdog;

/// How long shutdown waits for connections to wind down before giving up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// hyper refuses a read buffer under 8 KiB (it would panic).
const MIN_HEADER_BYTES: usize = 8 * 1024;

/// How long the refusal to a connection over its address's cap may take.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// How long an accept loop waits after a failed accept before it tries again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// At most one warning per this long about failed accepts on one listener.
pub const ACCEPT_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Failed accepts on one listener (out of descriptors, or a connection
/// reset before it was taken): each backs off [`ACCEPT_BACKOFF`] instead of
/// spinning, and they are logged at most once per [`ACCEPT_WARNING_EVERY`],
/// with how many were not, instead of a line every 50 ms for as long as the
/// descriptors stay exhausted.
#[derive(Debug, Default)]
pub struct AcceptFailures {
    /// When the last warning was logged.
    warned_at: Option<tokio::time::Instant>,
    /// Failures since then, not logged.
    unreported: u64,
}

impl AcceptFailures {
    /// Counts a failure at `now`: `Some(n)` when it is to be logged, `n`
    /// failures before it having gone unlogged; `None` to stay quiet.
    pub fn failed_at(&mut self, now: tokio::time::Instant) -> Option<u64> {
        match self.warned_at {
            Some(at) if now.duration_since(at) < ACCEPT_WARNING_EVERY => {
                self.unreported += 1;
                None
            }
            _ => {
                self.warned_at = Some(now);
                Some(std::mem::take(&mut self.unreported))
            }
        }
    }

    /// Counts `error` on the listener `what` (`"middlebox"`, …), logs it if
    /// it is time, and backs off.
    pub async fn failed(&mut self, what: &str, error: &io::Error) {
        if let Some(quiet) = self.failed_at(tokio::time::Instant::now()) {
            let secs = ACCEPT_WARNING_EVERY.as_secs();
            let backoff = ACCEPT_BACKOFF.as_millis();
            if quiet == 0 {
                tracing::warn!(
                    "{what} accept failed: {error} (retrying every {backoff} ms; \
                     at most one such warning per {secs} s)"
                );
            } else {
                tracing::warn!(
                    "{what} accept failed: {error} ({quiet} more failed accepts since the \
                     last warning; retrying every {backoff} ms)"
                );
            }
        }
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

/// Why the handler ended a connection without answering: returned to hyper
/// as the service's error, which makes it close the connection.
#[derive(Debug)]
pub(crate) struct Deliberate(&'static str);

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
/// origin, each on IPv4 and IPv6 loopback). Their addresses become the lab's
/// own origins.
pub async fn serve_all(listeners: Vec<TcpListener>, lab: Lab) -> io::Result<()> {
    let addresses: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    lab.add_listeners(&addresses);
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
    let mut failures = AcceptFailures::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(serve_connection(stream, peer, lab.clone(), router.clone()));
                }
                // Out of file descriptors, or a connection reset before we
                // took it: both pass.
                Err(e) => failures.failed("lab", &e).await,
            },
            () = &mut shutdown => break,
        }
    }
}

/// Serves one TCP connection from accept to close. (Not an `async fn`: one
/// copies its arguments into the future a second time, and this future is
/// kept for as long as the connection is open, bench figure 2.)
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep a second copy of its arguments"
)]
fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    lab: Lab,
    router: Router,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        // A client through the lab's middlebox is charged, not the
        // loopback address every mapping shares.
        let (charged, via) = lab.peers().take_accepted(peer);
        if via.is_none() && crate::peers::is_own_address(peer.ip()) {
            // The lab's own, accepted too late to be known: its client
            // closed it long ago (`peers::is_own_address`).
            return;
        }
        let slot = match lab.peers().connect(charged) {
            Ok(slot) => slot,
            Err(over) => {
                let refusal = lab.peers().over_cap_response(charged, over);
                let _ = tokio::time::timeout(REFUSAL_WRITE, stream.write_all(&refusal)).await;
                return;
            }
        };
        // Unknown (it cannot fail on an accepted socket): an address no peer
        // has.
        let local = stream.local_addr().unwrap_or(UNKNOWN_LOCAL);
        // Responses are small and latency is what the lab shows: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let conn = Conn::open(&lab, peer, (charged, via), local, Some(slot.in_flight()));
        // Its watchdog is polled after its I/O in every poll (below).
        conn.watch_in_this_task();
        let io = TokioIo::new(TrackedStream::new(stream, conn.clone(), slot));
        let handler = Handler::new(lab.clone(), conn.clone(), router);
        let service = service_fn(move |request| handler.call(request));

        let connection = http1_builder(&lab)
            .serve_connection(io, service)
            .with_upgrades();
        tokio::pin!(connection);
        let watchdog = watchdog::watch(
            conn.clone(),
            lab.config().header_read_timeout,
            lab.config().write_stall_timeout,
        );
        // Pinned here and polled in place: moved into `select!` it would be kept
        // twice in this task (bench figure 2).
        tokio::pin!(watchdog);

        let shutdown = lab.shutting_down();
        tokio::pin!(shutdown);
        // Polled once to register this task's waker (which stays the same
        // for the task's life), then only once shutdown has begun: polling a
        // channel's wait takes its lock, at every request (bench figure 1).
        let mut shutdown_registered = false;
        // What `tokio::select!` would do, except that a watchdog polled before
        // the connection is polled again after it if the connection changed
        // what it watches (`Conn::watch_in_this_task`): no second poll of the
        // task per request. Which of the two goes first stays random, so an
        // idle deadline and a request arriving together still race.
        let ended = std::future::poll_fn(|cx| {
            let mut seen = None;
            if coin() {
                seen = Some(conn.epoch());
                if let Poll::Ready(verdict) = watchdog.as_mut().poll(cx) {
                    return Poll::Ready(Ended::Watchdog(verdict));
                }
            }
            if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                return Poll::Ready(Ended::Connection(result));
            }
            if seen.is_none_or(|epoch| epoch != conn.epoch())
                && let Poll::Ready(verdict) = watchdog.as_mut().poll(cx)
            {
                return Poll::Ready(Ended::Watchdog(verdict));
            }
            if shutdown_registered && !lab.is_shutting_down() {
                return Poll::Pending;
            }
            shutdown_registered = true;
            shutdown.as_mut().poll(cx).map(|()| Ended::Shutdown)
        })
        .await;
        match ended {
            Ended::Connection(result) => conn.note_connection_end(&result),
            Ended::Watchdog(verdict) => {
                // Dropping the connection at the end of this function closes the
                // socket (a request in progress ends as aborted).
                if verdict.idle {
                    conn.closing_idle(verdict.reason);
                } else {
                    conn.set_reason(verdict.reason);
                }
            }
            Ended::Shutdown => {
                conn.set_reason(CloseReason::Shutdown);
                connection.as_mut().graceful_shutdown();
                // Bounded like the TLS ports: the watchdog is no longer
                // polled, so this timeout is what ends a connection whose
                // request or response never finishes (a body that never comes).
                if let Ok(result) = tokio::time::timeout(SHUTDOWN_GRACE, connection.as_mut()).await
                {
                    conn.note_connection_end(&result);
                }
            }
        }
    }
}

/// What ended a connection's service.
enum Ended {
    /// hyper's connection future finished (the peer closed, an error, an upgrade).
    Connection(Result<(), hyper::Error>),
    /// The watchdog decided to close it.
    Watchdog(watchdog::Verdict),
    /// The lab is shutting down.
    Shutdown,
}

/// A fair coin for the order of polling, as `tokio::select!` draws one: a
/// per-thread xorshift, seeded once from std's per-process random keys.
fn coin() -> bool {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::collections::hash_map::RandomState::new().build_hasher().finish() | 1,
        );
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x >> 63 == 1
    })
}

/// hyper's HTTP/1 settings for the lab's connections (also the TLS ports').
pub(crate) fn http1_builder(lab: &Lab) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Off: the watchdog is the idle timer and the header-read guard.
        .header_read_timeout(None)
        .max_buf_size(lab.config().max_header_bytes.max(MIN_HEADER_BYTES));
    builder
}

/// Handles each request of one connection (mini-redis's per-connection
/// handler): record, refuse, drop on purpose, or route.
#[derive(Debug, Clone)]
pub(crate) struct Handler {
    /// Shared state.
    lab: Lab,
    /// The connection the requests arrive on.
    conn: Arc<Conn>,
    /// The lab's routes.
    router: Router,
}

/// What [`Handler::start`] decided.
enum Start {
    /// Admitted: to be routed.
    Route(Route),
    /// Refused, or dropped on purpose.
    Done(Result<Response<TrackedBody>, Deliberate>),
}

/// An admitted request, being routed.
struct Route {
    /// Reports the request's end (and knows its connection).
    guard: RequestGuard,
    /// The router's future (boxed: freed as soon as the router has answered).
    routed: Pin<Box<Oneshot<Router, axum::http::Request<Body>>>>,
    /// The owner's hang timeout when the request started.
    hang_timeout_ms: Option<u64>,
}

impl Route {
    /// Waits for the router's answer (and for a held `/api/hang`, which comes
    /// back at once as a placeholder and is waited on here, after the router's
    /// futures are gone), within the hang timeout. A future written by hand
    /// ([`Answer`]) rather than combinators or an `async` block: an `async`
    /// block would keep a copy of each awaited future's captures (this future
    /// lasts as long as the request), and combinators moved the answer from
    /// one step's future into the next's (about 560 instructions a request,
    /// bench figure 1).
    fn run(
        self,
    ) -> impl Future<Output = Result<Response<TrackedBody>, Deliberate>> + Send + 'static {
        let Route {
            guard,
            routed,
            hang_timeout_ms,
        } = self;
        Answer {
            guard: Some(guard),
            step: Step::Routing { routed },
            // No timer at all when the hang timeout is off (the default): a
            // timer per request is measurable at 40k req/s. When it is on,
            // it is boxed, so that requests without one do not carry its room.
            deadline: hang_timeout_ms.map(|ms| {
                Box::pin(tokio::task::coop::unconstrained(tokio::time::sleep(
                    Duration::from_millis(ms),
                )))
            }),
            held_answer: HeldHang::answer,
            take_unread_body: Conn::take_unread_body,
        }
    }
}

pin_project_lite::pin_project! {
    /// What an admitted request waits for, in order.
    #[project = StepProj]
    enum Step<H, D> {
        /// The router's answer (boxed: freed as soon as the router has
        /// answered).
        Routing { routed: Pin<Box<Oneshot<Router, axum::http::Request<Body>>>> },
        /// A held `/api/hang`'s answer, in place (boxing it costs a held
        /// connection about 150 bytes more: bench figure 2).
        Held { #[pin] held: H },
        /// A request body the endpoint left unread, read first (up to
        /// `conn::DRAIN_LIMIT`) so that the response can keep the connection;
        /// then the answer.
        Draining { drain: Pin<Box<D>>, response: Option<Response> },
        /// Answered.
        Done,
    }
}

pin_project_lite::pin_project! {
    /// [`Route::run`]'s future. `H` and `D` are the futures of
    /// [`HeldHang::answer`] and [`Conn::take_unread_body`], named through the
    /// functions themselves (`A`, `T`: zero-sized).
    ///
    /// Fields drop in the order they are declared: what the request waits on
    /// (`step`, `deadline`) goes before its `guard` reports it aborted (a
    /// client gone, a reset stream, a closed connection), so a held hang has
    /// left the lab's table and freed its ticket by then, as with the
    /// combinators this replaced.
    struct Answer<A, H, T, D> {
        // Where it is.
        #[pin]
        step: Step<H, D>,
        // The owner's hang timeout, when it has one: it covers every step.
        // Unconstrained by tokio's budget, so that a step that used the
        // budget up does not put the deadline off by a turn (tokio's own
        // `timeout` does the same).
        deadline: Option<Pin<Box<tokio::task::coop::Unconstrained<tokio::time::Sleep>>>>,
        // Reports the request's end (`None` once answered), and knows the
        // connection the request arrived on (no reference of its own to
        // take and drop: bench figure 1).
        guard: Option<RequestGuard>,
        // [`HeldHang::answer`].
        held_answer: A,
        // [`Conn::take_unread_body`].
        take_unread_body: T,
    }
}

impl<A, H, T, D> Answer<A, H, T, D> {
    /// Drops what the request waited on, so that it is gone before the
    /// request's end is reported; returns its guard (`None` once answered).
    fn settle(self: Pin<&mut Self>) -> Option<RequestGuard> {
        let mut this = self.project();
        this.step.set(Step::Done);
        *this.deadline = None;
        this.guard.take()
    }

    /// The answer as the client gets it, or the connection closed instead.
    fn answer(
        mut self: Pin<&mut Self>,
        response: Response,
    ) -> Result<Response<TrackedBody>, Deliberate> {
        let Some(guard) = self.as_mut().settle() else {
            return Err(Deliberate("already answered"));
        };
        // `/api/close`'s close, recorded now that it takes effect (a
        // client's reset or a guard's verdict while an upload it left unread
        // was read stays the cause).
        if let Some(&CloseOnPurpose(mode)) = response.extensions().get::<CloseOnPurpose>() {
            guard.ctx().conn.server_closes(mode);
            if mode != protocol::CloseMode::Header {
                return Err(Deliberate("closed without a response on purpose"));
            }
        }
        // Read per response: policy changes apply to the next response.
        let policy = guard.ctx().conn.policy();
        Ok(guard.respond(response, &policy))
    }

    /// The owner's hang timeout passed first: closed without an answer.
    fn timed_out(mut self: Pin<&mut Self>) -> Result<Response<TrackedBody>, Deliberate> {
        let guard = self.as_mut().settle();
        // Over HTTP/2 only the stream is reset (the connection and its
        // other streams go on). (No guard: answered already, and this is
        // never reached.)
        if let Some(conn) = guard.as_ref().map(|guard| &guard.ctx().conn)
            && !conn.is_http2()
        {
            conn.set_reason(CloseReason::HangTimeout);
        }
        // Then the request's end is reported (the guard's drop).
        drop(guard);
        Err(Deliberate("hang timeout: closed without a response"))
    }
}

impl<A, H, T, D> Future for Answer<A, H, T, D>
where
    A: Fn(HeldHang, Response) -> H,
    H: Future<Output = Response>,
    T: Fn(&Arc<Conn>) -> Option<D>,
    D: Future<Output = ()>,
{
    type Output = Result<Response<TrackedBody>, Deliberate>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            let response = match this.step.project() {
                StepProj::Routing { routed } => {
                    let Poll::Ready(response) = routed.as_mut().poll(cx) else {
                        break;
                    };
                    let mut response = response.unwrap_or_else(|never| match never {});
                    if let Some(held) = response.extensions_mut().remove::<HeldHang>() {
                        let held = (this.held_answer)(held, response);
                        self.as_mut().project().step.set(Step::Held { held });
                        continue;
                    }
                    response
                }
                StepProj::Held { held } => {
                    let Poll::Ready(response) = held.poll(cx) else {
                        break;
                    };
                    response
                }
                StepProj::Draining { drain, response } => {
                    if drain.as_mut().poll(cx).is_pending() {
                        break;
                    }
                    // `None` only if polled again after its answer.
                    let Some(response) = response.take() else {
                        return Poll::Ready(Err(Deliberate("already answered")));
                    };
                    return Poll::Ready(self.answer(response));
                }
                // Polled again after its answer (hyper does not): nothing
                // to send.
                StepProj::Done => return Poll::Ready(Err(Deliberate("already answered"))),
            };
            // The endpoint has answered: what it left unread of the request
            // body is read first, if anything.
            let mut this = self.as_mut().project();
            // (No guard: answered already, and `answer` says so.)
            let unread = this
                .guard
                .as_ref()
                .and_then(|guard| (this.take_unread_body)(&guard.ctx().conn));
            match unread {
                None => return Poll::Ready(self.answer(response)),
                Some(drain) => this.step.set(Step::Draining {
                    drain: Box::pin(drain),
                    response: Some(response),
                }),
            }
        }
        // As `tokio::time::timeout`: the answer first, then the timer.
        let elapsed = self
            .as_mut()
            .project()
            .deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
        if elapsed {
            return Poll::Ready(self.timed_out());
        }
        Poll::Pending
    }
}

/// The lab's address for a connection whose own cannot be read: one no
/// peer has (it is compared with a request's `Host` and `Origin`,
/// `Handler::foreign`).
pub(crate) const UNKNOWN_LOCAL: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// What a request's query says of its caller, read in one pass.
#[derive(Debug, Default)]
struct Caller {
    /// The `session=` parameter, if present and well-formed (a malformed
    /// one is left to the endpoint, which answers it with a 400).
    session: Option<SessionId>,
    /// A `session=` was given, well-formed or not.
    names_one: bool,
    /// More than one `session=` was given: refused before any session is
    /// looked up (found in review: `session=a&session=b` was told `a` was
    /// not issued, a 403, where a parameter given twice is a 400).
    repeated: bool,
    /// The query has a `key=` (the instructor key, checked before routing).
    key: bool,
}

/// The `session=` and `key=` parameters of `uri`'s query ([`Caller`]).
fn session_in(uri: &hyper::Uri) -> Caller {
    let Some(query) = uri.query() else {
        return Caller::default();
    };
    let mut session = None;
    let (mut key, mut repeated) = (false, false);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "session" {
            if session.is_none() {
                session = Some(value);
            } else {
                repeated = true;
            }
        } else if name == "key" {
            key = true;
        }
    }
    Caller {
        names_one: session.is_some(),
        session: session.and_then(|value| SessionId::parse(&value).ok()),
        key,
        repeated,
    }
}

/// `Sec-Fetch-Site` (Fetch Metadata), which browsers send on every request
/// they make; `hyper::header` has no constant for it.
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Whether a `Sec-Fetch-Site` value says another site's page made the
/// request: `cross-site`, or `same-site` (another port or scheme of the
/// same host, or another subdomain; the lab's own pages there fetch with
/// CORS and send `Origin`, which decides instead).
fn from_another_site(value: &hyper::header::HeaderValue) -> bool {
    let value = value.as_bytes();
    value.eq_ignore_ascii_case(b"cross-site") || value.eq_ignore_ascii_case(b"same-site")
}

/// The request headers the lab reads before routing, found in one pass over
/// the headers instead of one hashed lookup each (every request: bench
/// figure 1).
struct Head<'a> {
    /// `Host`.
    host: Option<&'a hyper::header::HeaderValue>,
    /// `Origin`.
    origin: Option<&'a hyper::header::HeaderValue>,
    /// It has a `Connection` header.
    connection: bool,
    /// It has an `Authorization` header (perhaps the instructor key).
    authorization: bool,
    /// A `Sec-Fetch-Site` of `cross-site` or `same-site` (any of them, if
    /// several): a browser's request made by another site's page.
    another_site: bool,
    /// `Expect: 100-continue` (the last `Expect`), over HTTP/1.1: hyper then
    /// sends `100 Continue` when the body is first read.
    expects_continue: bool,
    /// More than one `Host` or `Origin`: only the first would be checked, so
    /// the request is refused (RFC 9112 §3.2: 400 for more than one `Host`).
    repeated: Option<&'static str>,
}

impl<'a> Head<'a> {
    fn of<B>(request: &'a hyper::Request<B>) -> Head<'a> {
        let mut head = Head {
            host: None,
            origin: None,
            connection: false,
            authorization: false,
            another_site: false,
            expects_continue: false,
            repeated: None,
        };
        for (name, value) in request.headers() {
            if name == HOST {
                if head.host.replace(value).is_some() {
                    head.repeated = Some("Host");
                }
            } else if name == ORIGIN {
                if head.origin.replace(value).is_some() {
                    head.repeated = Some("Origin");
                }
            } else if name == hyper::header::CONNECTION {
                head.connection = true;
            } else if name == hyper::header::AUTHORIZATION {
                head.authorization = true;
            } else if name == SEC_FETCH_SITE {
                head.another_site |= from_another_site(value);
            } else if name == hyper::header::EXPECT {
                // The last one counts, as hyper reads it (and only above
                // HTTP/1.0 does hyper answer it with `100 Continue`).
                head.expects_continue = request.version() > hyper::Version::HTTP_10
                    && value.as_bytes().eq_ignore_ascii_case(b"100-continue");
            }
        }
        head
    }
}

/// Whether the client asked to close the connection after this request:
/// `Connection: close`, or HTTP/1.0 without `Connection: keep-alive`
/// (`has_connection`: it has a `Connection` header at all).
fn client_closes<B>(request: &hyper::Request<B>, has_connection: bool) -> bool {
    let has = |token: &str| {
        has_connection
            && request
                .headers()
                .get_all(hyper::header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has("close") || (request.version() == hyper::Version::HTTP_10 && !has("keep-alive"))
}

/// The request's `Connection` header as received, for the record: every
/// value joined with ", " (bytes that are not text as `?`), cut to 64
/// characters; `None` when it has none.
fn connection_header<B>(request: &hyper::Request<B>) -> Option<String> {
    let values: Vec<String> = request
        .headers()
        .get_all(hyper::header::CONNECTION)
        .iter()
        .map(|v| {
            v.as_bytes()
                .iter()
                .map(|b| if b.is_ascii() { *b as char } else { '?' })
                .collect()
        })
        .collect();
    (!values.is_empty()).then(|| values.join(", ").chars().take(64).collect())
}

/// Whether `request` asks to upgrade `/api/events` to a WebSocket (`GET`
/// with `Upgrade: websocket`, HTTP/1.1): a refusal before routing is then
/// told in a close frame (`events::refuse`). Whether it is a valid upgrade
/// is axum's to say; one that is not gets the refusal as JSON.
fn asks_for_events_socket<B>(request: &hyper::Request<B>) -> bool {
    request.method() == hyper::Method::GET
        && request.version() == hyper::Version::HTTP_11
        && request.uri().path() == "/api/events"
        && request
            .headers()
            .get_all(hyper::header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
}

/// Requests that count against their owner's cap: the API, except what is
/// answered at once from what the server knows and what every page reads,
/// with or without a session: asking for a session, the lessons' catalogue
/// and texts, the TLS ports (the page's files are not the API either).
/// Found in review: one client holding the anonymous scope's in-flight
/// requests made every page's lesson list, and the instructor's, fail with
/// 503, since the page asks for them without `session=`.
fn counts_for_owner(path: &str) -> bool {
    path.starts_with("/api/")
        && !matches!(path, "/api/sessions" | "/api/lessons" | "/api/tls")
        && !path.starts_with("/api/lessons/")
}

impl Handler {
    /// The handler of `conn`'s requests (also the TLS ports', `crate::tls`).
    pub(crate) fn new(lab: Lab, conn: Arc<Conn>, router: Router) -> Handler {
        Handler { lab, conn, router }
    }

    /// Handles one request. What can be decided at once (record, refuse,
    /// drop on purpose) is, before the returned future exists; the future
    /// itself holds only the guard, the connection and the boxed routing, so
    /// that a request held for minutes (`/api/hang`) keeps little (bench
    /// figure 2).
    pub(crate) fn call(
        &self,
        request: hyper::Request<Incoming>,
    ) -> impl Future<Output = Result<Response<TrackedBody>, Deliberate>> + Send + use<> {
        match self.start(request) {
            Start::Route(route) => Either::Left(route.run()),
            Start::Done(done) => Either::Right(std::future::ready(done)),
        }
    }

    /// The part of [`Handler::call`] that needs no waiting: the request to
    /// route, or its answer (refused, or dropped on purpose).
    ///
    /// Inlined into [`Handler::call`], as is [`Handler::route`]: called,
    /// each copied the request and its `Start` across the call (callgrind:
    /// 220 instructions a request more, bench figure 1).
    #[inline(always)]
    fn start(&self, request: hyper::Request<Incoming>) -> Start {
        let Caller {
            session: named,
            names_one,
            key: has_key,
            repeated,
        } = session_in(request.uri());
        // Only a session this server issued may claim a connection.
        let owner = Owner::of(named.clone());
        let known = self.lab.sessions().knows(&owner);
        let has_body = !http_body::Body::is_end_stream(request.body());
        let head = Head::of(&request);
        let mut guard = self.conn.begin_request(
            request.method(),
            request.uri(),
            head.connection
                .then(|| connection_header(&request))
                .flatten(),
            named.filter(|_| known),
            has_body,
        );
        if client_closes(&request, head.connection) {
            guard.client_closes();
        } else if request.version() == hyper::Version::HTTP_10 {
            guard.http10();
        }
        if head.origin.is_some() {
            guard.has_origin();
        }
        // Over HTTP/2 a deliberate error resets one stream, not the
        // connection: no keep-alive race to stage there.
        if !self.conn.is_http2()
            && let Some(close) = self.conn.take_drop()
        {
            return Start::Done(Err(self.drop_on_purpose(&request, close)));
        }
        let credentials = has_key || head.authorization;
        // Another site's request is refused outright, also an upgrade (a
        // foreign page gets no WebSocket with the lab, not even one closed
        // at once); past that, what an events socket's upgrade is refused is
        // told in a close frame, which a browser's WebSocket can read
        // (`events::refuse`): it is routed, carrying the refusal.
        let refused = match self.foreign(&head, request.uri()) {
            Err(refused) => Some((refused, false)),
            Ok(()) if repeated => Some((
                ApiError::bad_request(
                    "`session` is given more than once",
                    "send each parameter once: one `session=`, the one this server issued \
                     to your page",
                ),
                !has_body && asks_for_events_socket(&request),
            )),
            Ok(()) => self
                .admit(
                    &request,
                    (&owner, known, names_one),
                    credentials,
                    &mut guard,
                )
                .err()
                .map(|refused| (refused, !has_body && asks_for_events_socket(&request))),
        };
        if let Some((refused, true)) = refused {
            return self.route(request, guard, Some(refused), false);
        }
        if let Some((refused, _)) = refused {
            let mut response = refused.into_response();
            if request.method() == hyper::Method::HEAD {
                crate::endpoints::with_length(&mut response, true);
            }
            // The router's CORS layer never sees a refusal: the lab's own
            // page on another of its origins is given the same headers, so
            // that it reads the error and its hint (two `Origin`s: neither).
            if let Some(origin) = head.origin.filter(|_| head.repeated != Some("Origin")) {
                routes::cors_for_refusal(
                    &self.lab,
                    origin,
                    self.conn.local(),
                    response.headers_mut(),
                );
            }
            return Start::Done(Ok(guard.respond(response, &self.conn.policy())));
        }
        let expects_continue = has_body && head.expects_continue;
        self.route(request, guard, None, expects_continue)
    }

    /// Hands `request` to the router: admitted, or (`refused`) an events
    /// socket's upgrade to be closed with its refusal (`events::Refused`).
    /// Inlined: see [`Handler::start`].
    #[inline(always)]
    fn route(
        &self,
        request: hyper::Request<Incoming>,
        guard: RequestGuard,
        refused: Option<ApiError>,
        expects_continue: bool,
    ) -> Start {
        let (parts, body) = request.into_parts();
        // A request that came without a body (nearly every one) has nothing
        // to guard, wait for or drain: it gets an empty body, which allocates
        // nothing (bench figure 1).
        let body = if http_body::Body::is_end_stream(&body) {
            Body::empty()
        } else {
            Body::new(GuardedBody::new(body, self.conn.clone(), expects_continue))
        };
        let mut request = axum::http::Request::from_parts(parts, body);
        request.extensions_mut().insert(guard.ctx().clone());
        if let Some(refused) = refused {
            request
                .extensions_mut()
                .insert(crate::events::Refused(refused));
        }
        Start::Route(Route {
            guard,
            // Boxed: freed as soon as the router has answered.
            routed: Box::pin(self.router.clone().oneshot(request)),
            hang_timeout_ms: self.conn.policy().hang_timeout_ms,
        })
    }

    /// The keep-alive race on purpose: the previous request asked for this
    /// one to be read and dropped unanswered.
    fn drop_on_purpose(&self, request: &hyper::Request<Incoming>, close: RaceClose) -> Deliberate {
        let target = request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().path(), |pq| pq.as_str());
        self.conn.set_reason(CloseReason::KeepAliveRace {
            method: request.method().as_str().to_owned(),
            // Recorded like every target (the instructor key blanked).
            target: crate::conn::recorded_target(target),
            close,
            on_purpose: true,
        });
        if close == RaceClose::Rst {
            self.conn.reset_on_close();
        }
        Deliberate("dropped unanswered on purpose (next=drop_…)")
    }

    /// What a shared room refuses before anything else: more than one
    /// `Host` or `Origin`, a host name or a page that is not the lab's, and
    /// another site's request to the API that carries no `Origin` at all.
    fn foreign(&self, head: &Head<'_>, uri: &hyper::Uri) -> Result<(), ApiError> {
        self.lab
            .with_origins(|origins| self.foreign_to(origins, head, uri))
    }

    /// [`Handler::foreign`], given the lab's origins.
    fn foreign_to(
        &self,
        origins: &crate::web::Origins,
        head: &Head<'_>,
        uri: &hyper::Uri,
    ) -> Result<(), ApiError> {
        let path = uri.path();
        // The address the client connected to is the lab's own, whatever the
        // interface (a workshop machine's LAN address): not a rebound name.
        // Written out only when a header is not one of the lab's origins.
        let local = || self.conn.local().to_string();
        if let Some(name) = head.repeated {
            return Err(ApiError::bad_request(
                format!("more than one {name} header"),
                format!("send one {name} header (a browser always does)"),
            ));
        }
        // The authority the request is addressed to: an absolute-form
        // target's own (RFC 9112 §3.2.2: the server ignores `Host` then;
        // found in review: `GET http://evil.com/…` with the lab's `Host`
        // was served), HTTP/2's `:authority`, or else `Host`.
        let authority = uri
            .authority()
            .map(|a| a.as_str().as_bytes())
            .or(head.host.map(axum::http::HeaderValue::as_bytes));
        if let Some(authority) = authority
            && !origins.allows_authority(authority)
            && !authority.eq_ignore_ascii_case(local().as_bytes())
        {
            return Err(ApiError::forbidden(
                format!(
                    "this lab does not answer to the host `{}`",
                    String::from_utf8_lossy(authority)
                ),
                format!(
                    "open it as http://127.0.0.1:PORT/ or http://localhost:PORT/ (ports {:?}); \
                     a foreign host name is refused so that DNS rebinding cannot reach the lab",
                    origins.ports()
                ),
            ));
        }
        if let Some(value) = head.origin {
            let origin = value.to_str().unwrap_or("");
            if !origins.allows_origin_at(origin, self.conn.local()) {
                return Err(ApiError::forbidden(
                    format!(
                        "requests from pages at `{}` are refused",
                        String::from_utf8_lossy(value.as_bytes())
                    ),
                    "only the lab's own pages (its ports on 127.0.0.1, localhost, [::1] and \
                     its address) may drive it",
                ));
            }
        } else if head.another_site && path.starts_with("/api/") {
            // Found in review: a browser sends no `Origin` on a no-cors GET
            // (`<img src>`, `<script src>`, `fetch(url, {mode: 'no-cors'})`)
            // nor on a link followed, so another site's page could hold hangs
            // in the room's shared anonymous scope. Its `Sec-Fetch-Site` tells
            // it apart; a request without one (curl, a script) or with
            // `same-origin` or `none` (an address typed) is not a page's of
            // another site. The page's files are not the API: a link on a
            // slide to the lab's page still opens it.
            return Err(ApiError::forbidden(
                "requests to the API from another site's page are refused",
                "only the lab's own pages may drive it; open the lab's page \
                 (http://127.0.0.1:PORT/) and use it from there, or use curl",
            ));
        }
        Ok(())
    }

    /// What a shared room refuses past [`Handler::foreign`] (a wrong key, a
    /// session the server did not issue, no session from another machine,
    /// a cap), or the permits the request holds until it ends. `caller`:
    /// the request's owner, whether this server knows it, and whether the
    /// query named a session at all (a malformed one is the endpoint's 400).
    fn admit<B>(
        &self,
        request: &hyper::Request<B>,
        (owner, known, names_one): (&Owner, bool, bool),
        credentials: bool,
        guard: &mut RequestGuard,
    ) -> Result<(), ApiError> {
        // A key given anywhere (`key=`, `Authorization: Bearer`) must be
        // right, whatever the request and its session: a wrong one is
        // refused (403), never taken as "no key". Only a request that
        // carries one pays for the check.
        let instructor = credentials && self.instructor(request)?;
        if !known && let Owner::Session(id) = owner {
            return Err(crate::sessions::unknown_session(id));
        }
        // No session from another machine: refused (the anonymous scope is
        // the lab machine's own; `sessions::session_needed`). Charged as at
        // the accept, so through the lab's middlebox its client's machine.
        // Only where a scope is acted in: the room's endpoints need the
        // key (and say so), and an unknown path is a 404 that lists them.
        // The lab's machine: over loopback, to a loopback name
        // (`conn::loopback_authority`: to another name of the lab, even one
        // that leads to 127.0.0.1, a browser sends no `Sec-Fetch-Site`, so
        // another site's page could not be told apart; found in review).
        let path = request.uri().path();
        let outsider = *owner == Owner::Anonymous
            && !instructor
            && !(self.conn.from_labs_machine()
                && crate::conn::loopback_authority(crate::web::addressed_to(
                    request.uri(),
                    request.headers(),
                )));
        if outsider && !names_one && routes::acts_in_a_scope(path) {
            return Err(crate::sessions::session_needed());
        }
        let counts = counts_for_owner(path);
        guard.hold_peer(self.conn.enter_peer()?);
        // The instructor's requests (the key, no session) are not counted
        // in the anonymous scope that the lab machine's clients without a
        // session share: filling that scope's cap must not lock the room's
        // controls. Nor are another machine's that pass the rule above (a
        // malformed session, the room's endpoints without the key, an
        // unknown path: each ends in an error, and a body the client never
        // sends could hold a place for 10 s; found in review): the scope is
        // the lab machine's.
        if counts && !(*owner == Owner::Anonymous && instructor) && !outsider {
            guard.hold(self.lab.sessions().enter(owner)?);
        }
        Ok(())
    }

    /// Whether `request` carries the instructor key (`key=`, a bearer
    /// token, or both); a wrong one is refused here (403), whatever the
    /// scope's load, and so is any other `key=` that is not the key (a
    /// second `key=` is an endpoint's 400, but the page's files take any).
    fn instructor<B>(&self, request: &hyper::Request<B>) -> Result<bool, ApiError> {
        let mut keys = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .filter(|(name, _)| name == "key")
            .map(|(_, value)| value);
        let instructor_key = &self.lab.config().instructor_key;
        let first = keys.next();
        let given = instructor_key.check(first.as_deref(), request.headers())?;
        if keys.any(|key| !instructor_key.matches(&key)) {
            return Err(crate::sessions::key::wrong_key());
        }
        Ok(given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_accepts_are_logged_at_most_once_per_interval_with_the_count_between() {
        let mut failures = AcceptFailures::default();
        let start = tokio::time::Instant::now();
        assert_eq!(failures.failed_at(start), Some(0), "the first is logged");
        // EMFILE for a while: one failure per backoff, none logged.
        let per_interval = (ACCEPT_WARNING_EVERY.as_millis() / ACCEPT_BACKOFF.as_millis()) as u32;
        for n in 1..per_interval {
            assert_eq!(failures.failed_at(start + ACCEPT_BACKOFF * n), None, "{n}");
        }
        assert_eq!(
            failures.failed_at(start + ACCEPT_WARNING_EVERY),
            Some(u64::from(per_interval) - 1),
            "the next, with the count of those not logged"
        );
        assert_eq!(failures.failed_at(start + ACCEPT_WARNING_EVERY), None);
        assert_eq!(
            failures.failed_at(start + ACCEPT_WARNING_EVERY * 5),
            Some(1),
            "after a quiet spell, at once"
        );
    }
}
