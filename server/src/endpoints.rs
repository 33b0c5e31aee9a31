//! The lesson endpoints: each produces one connection behaviour on demand.
//!
//! | endpoint | behaviour |
//! |---|---|
//! | `/api/fast` | answers at once (reuse, throughput) |
//! | `/api/fast?next=drop_fin\|drop_rst` | answers, and marks the connection: the *next* request on it is read and dropped unanswered (FIN or RST), the keep-alive race on demand |
//! | `/api/slow?ms=N&phase=headers\|body` | waits before the head (time to first byte) or between head and body |
//! | `/api/hang?max_ms=N` | held until released, or `max_ms` (then 504) |
//! | `/api/drip?bytes=N&chunks=N&interval_ms=N` | a chunked body trickled over time |
//! | `/api/drip?mode=heartbeat&interval_ms=N&duration_ms=N` | a long wait that sends a byte every interval: the application-level fix for idle timeouts |
//! | `/api/close?mode=header\|fin\|rst\|mid_body` | ends the connection on purpose, four ways |
//! | `/api/sse?interval_ms=N&count=N` | an EventSource stream (takes one of the browser's six slots) |
//!
//! Every endpoint answers GET and POST (the keep-alive race lesson shows
//! Chromium re-sending a POST), and takes `id=` (the page's tag) and
//! `session=`. Handlers run with or without a connection ([`RequestCtx`] is
//! absent under `oneshot`).

use std::convert::Infallible;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use futures_util::future::Either;
use futures_util::stream;
use futures_util::{FutureExt as _, StreamExt as _};
use protocol::{CloseMode, RaceClose, RequestId};
use serde::Serialize;
use serde_json::json;

use crate::Lab;
use crate::conn::RequestCtx;
use crate::error::ApiError;
use crate::params::Params;
use crate::sessions::Owner;

/// Longest wait any endpoint accepts (`ms`, `duration_ms`, a drip's total).
/// Long enough for any lesson, short enough that a forgotten request ends.
pub const MAX_WAIT_MS: u64 = 120_000;
/// Largest body `/api/drip` sends.
pub const MAX_DRIP_BYTES: u64 = 1024 * 1024;
/// Most chunks `/api/drip` splits a body into, and most beats a heartbeat
/// sends.
pub const MAX_DRIP_CHUNKS: u64 = 1000;
/// Most events one `/api/sse` stream sends.
pub const MAX_SSE_EVENTS: u64 = 10_000;
/// Bytes `/api/close?mode=mid_body` announces; it sends half of them.
pub const MID_BODY_BYTES: usize = 4096;

/// Put in a response's extensions by `/api/close` (`header`, `fin`,
/// `rst`): the accept loop records the close as the answer goes out
/// (`Conn::server_closes`), and for `fin` and `rst` ends the connection
/// instead of writing the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseOnPurpose(pub CloseMode);

/// Body of `/api/fast`.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// Endpoint that answered.
    pub endpoint: &'static str,
    /// The page's tag, if it sent one.
    pub id: Option<String>,
}

/// Sleeps `ms`, or returns early (false) when the server shuts down.
async fn wait(lab: &Lab, ms: u64) -> bool {
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => true,
        () = lab.shutting_down() => false,
    }
}

/// Like [`wait`], but (for one wait at a time, [`Spinner`]) ends within a
/// few microseconds of `ms` after `start`
/// instead of tokio's timer granularity (which rounds up to the next
/// millisecond): `/api/slow?ms=1000` is used to check the lab's own timing.
/// The last stretch yields in a loop, so it costs under 2 ms of CPU per call;
/// only `/api/slow` uses it.
async fn wait_precisely(lab: &Lab, start: tokio::time::Instant, ms: u64) -> bool {
    const SPIN: Duration = Duration::from_millis(2);
    let deadline = start + Duration::from_millis(ms);
    let coarse = deadline.checked_sub(SPIN).unwrap_or(start);
    tokio::select! {
        () = tokio::time::sleep_until(coarse) => {}
        () = lab.shutting_down() => return false,
    }
    // One spinner at a time; the others sleep (found in review: a client
    // sending `/api/slow?ms=2` a thousand times a second kept every core
    // busy yielding).
    match Spinner::take() {
        Some(_spinner) => {
            while tokio::time::Instant::now() < deadline {
                tokio::task::yield_now().await;
            }
        }
        None => tokio::time::sleep_until(deadline).await,
    }
    true
}

/// Waits spinning their last stretch now (see [`wait_precisely`]).
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// The one place for a spinner, given back when dropped (a request cut
/// mid-spin included).
struct Spinner;

impl Spinner {
    /// Most spinners at once: one, so that a flood of short waits leaves the
    /// other cores to everyone else.
    fn most() -> usize {
        1
    }

    /// A place, if one is free.
    fn take() -> Option<Spinner> {
        SPINNING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < Self::most()).then_some(n + 1)
            })
            .ok()
            .map(|_| Spinner)
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        SPINNING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `size` dots from one buffer made once (`/api/drip`'s chunks): a chunk
/// costs no memory of its own, however many are held (found in review:
/// each chunk was a new buffer of up to 1 MiB, and a client that reads
/// slowly held hundreds of them).
fn dots(size: usize) -> Bytes {
    static DOTS: OnceLock<Bytes> = OnceLock::new();
    let all = DOTS.get_or_init(|| Bytes::from(vec![b'.'; MAX_DRIP_BYTES as usize]));
    all.slice(..size.min(all.len()))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `GET /api/fast[?next=drop_fin|drop_rst]`
pub async fn fast(
    ctx: Option<Extension<RequestCtx>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(
        "/api/fast",
        query.as_deref(),
        &["next"],
        "/api/fast?id=demo-1&next=drop_fin",
    )?;
    params.session()?;
    let next = params.one_of(
        "next",
        &[
            ("answer", None),
            ("drop_fin", Some(RaceClose::Fin)),
            ("drop_rst", Some(RaceClose::Rst)),
        ],
        None,
    )?;
    let id = params.tag()?;
    if let (Some(close), Some(Extension(ctx))) = (next, &ctx) {
        ctx.conn.drop_next(close);
    }
    let answer = Answer {
        endpoint: "fast",
        id,
    };
    // Serialising two strings cannot fail.
    let body = serde_json::to_vec(&answer).unwrap_or_default();
    Ok(json_response(Body::from(body)))
}

/// Where `/api/slow` waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the response head: a long time to first byte.
    Headers,
    /// After the head, before the body: a long download.
    Body,
}

/// `GET /api/slow?ms=N&phase=headers|body`
pub async fn slow(State(lab): State<Lab>, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(
        "/api/slow",
        query.as_deref(),
        &["ms", "phase"],
        "/api/slow?ms=1500&phase=headers",
    )?;
    let ms = params.u64_in("ms", 0..=MAX_WAIT_MS, None, "milliseconds")?;
    let phase = params.one_of(
        "phase",
        &[("headers", Phase::Headers), ("body", Phase::Body)],
        Phase::Headers,
    )?;
    params.session()?;
    let body = json!({ "endpoint": "slow", "ms": ms, "id": params.tag()? }).to_string();
    let start = tokio::time::Instant::now();
    match phase {
        Phase::Headers => {
            if !wait_precisely(&lab, start, ms).await {
                return Err(ApiError::shutting_down());
            }
            Ok(json_response(Body::from(body)))
        }
        Phase::Body => {
            let late = stream::once(async move {
                wait_precisely(&lab, start, ms).await;
                Ok::<_, Infallible>(Bytes::from(body))
            });
            Ok(json_response(Body::from_stream(late)))
        }
    }
}

/// Headers a lab answer ends up with: its own, the CORS layer's and the
/// lab's (`x-conn-id`, `x-request-seq`, `x-request-id`, `keep-alive`), with
/// room to spare. The map is made that large up front: grown on the way, it
/// is reallocated and every header rehashed, twice per answer, which was
/// about 3 000 instructions a request (bench figure 1, `causes.md`).
const ANSWER_HEADERS: usize = 12;

fn json_response(body: Body) -> Response {
    let mut headers = axum::http::HeaderMap::with_capacity(ANSWER_HEADERS);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut response = Response::new(body);
    *response.headers_mut() = headers;
    response
}

/// Body of a hang that ended because it was released.
#[derive(Debug, Serialize)]
struct HangAnswer {
    /// Server id of the request.
    request: RequestId,
    /// The page's tag, if it sent one.
    id: Option<String>,
    /// How long it was held.
    held_ms: u64,
}

/// `GET /api/hang?id=…&max_ms=N`
///
/// Under the lab's accept loop ([`RequestCtx`] present) the request is held
/// *after* routing: the router answers at once with a placeholder carrying a
/// [`HeldHang`], and the accept loop waits on it, so the router's boxed
/// futures and the parsed query are not kept for as long as the hang lasts
/// (bench figure 2). Without a connection (plain `axum::serve`, `oneshot`)
/// the handler holds the request itself.
pub async fn hang(
    State(lab): State<Lab>,
    ctx: Option<Extension<RequestCtx>>,
    method: Method,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(
        "/api/hang",
        query.as_deref(),
        &["max_ms"],
        "/api/hang?id=demo-1&max_ms=30000",
    )?;
    let tag = params.tag()?;
    let owner = Owner::of(params.session()?);
    let cap_ms = millis(lab.config().hang_cap);
    let max_ms = params.u64_in("max_ms", 1..=cap_ms, Some(cap_ms), "milliseconds")?;
    drop(params);
    let request = ctx
        .as_ref()
        .map_or_else(|| lab.tracker().next_request_id(), |c| c.request);
    let ip = ctx.as_ref().map(|c| c.conn.charged_ip());
    let ticket = lab.hangs().hold(request, tag.clone(), owner, ip)?;
    let hold = Hold {
        lab,
        ticket,
        request,
        tag,
        max_ms,
        started: Instant::now(),
        head: method == Method::HEAD,
    };
    if ctx.is_none() {
        return hold.answer().await;
    }
    let mut placeholder = Response::new(Body::empty());
    placeholder
        .extensions_mut()
        .insert(HeldHang(std::sync::Arc::new(std::sync::Mutex::new(Some(
            hold,
        )))));
    Ok(placeholder)
}

/// Gives `response` the `Content-Length` of its body, if it has none and
/// the body's length is known; for a `HEAD` (`head`), it then keeps no
/// body: the length is the one a `GET` would get (RFC 9110 §9.3.2), and
/// hyper sends no body for a `HEAD`, so a body left in place would never be
/// polled, and its request would be recorded as cut short (`TrackedBody`'s
/// drop) though its answer went out whole. For answers the router's layers
/// do not make: a held hang's, a refusal's (`listener::Handler::start`).
pub(crate) fn with_length(response: &mut Response, head: bool) {
    if !response.headers().contains_key(header::CONTENT_LENGTH)
        && let Some(length) = http_body::Body::size_hint(response.body()).exact()
    {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if head {
        *response.body_mut() = Body::empty();
    }
}

/// A request `/api/hang` holds: its place in [`Lab::hangs`] and what its
/// answer needs.
#[derive(Debug)]
struct Hold {
    /// For the shutdown signal.
    lab: Lab,
    /// The place in the table; dropping it removes the entry.
    ticket: crate::hangs::HangTicket,
    /// Server id of the request.
    request: RequestId,
    /// The page's tag, if it sent one.
    tag: Option<String>,
    /// Answer 504 after this long.
    max_ms: u64,
    /// When the hold began.
    started: Instant,
    /// A `HEAD` request (`get` routes take those): its answer has no body.
    head: bool,
}

impl Hold {
    /// Waits until released (200), `max_ms` (504) or shutdown (503).
    async fn answer(mut self) -> Result<Response, ApiError> {
        // Fields are used in place, not moved into locals: this future is
        // kept for as long as the request is held.
        tokio::select! {
            () = self.ticket.released() => Ok(Json(HangAnswer {
                request: self.request,
                id: self.tag,
                held_ms: millis(self.started.elapsed()),
            }).into_response()),
            () = tokio::time::sleep(Duration::from_millis(self.max_ms)) => Err(ApiError::gateway_timeout(
                format!("held for {} ms and nobody released it, so the server gave up", self.max_ms),
                "release hanging requests with POST /api/release (or the page's Release button), \
                 or pass a smaller max_ms",
            )),
            () = self.lab.shutting_down() => Err(ApiError::shutting_down()),
        }
    }
}

/// Put in the placeholder response of a `/api/hang` routed by the lab's
/// accept loop: the request is held, and the accept loop must wait on it
/// with [`HeldHang::answer`] instead of writing the placeholder. (Shared and
/// locked only because response extensions must be `Clone + Sync`.)
#[derive(Debug, Clone)]
pub struct HeldHang(std::sync::Arc<std::sync::Mutex<Option<Hold>>>);

impl HeldHang {
    /// Waits for the hang to end and returns its answer as the router would
    /// have returned it had it waited itself: with the headers its layers
    /// put on `placeholder` (CORS) applied on top, then, as axum's router
    /// does last, a `Content-Length` from the body and no body for `HEAD`.
    pub fn answer(self, mut placeholder: Response) -> impl Future<Output = Response> + use<> {
        let hold = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        // Only the headers are kept while held (not the placeholder's
        // emptied extensions). Combinators rather than an `async` block: a
        // block would keep a second copy of the hold's future.
        let mut headers = std::mem::take(placeholder.headers_mut());
        drop(placeholder);
        // The router set this one from the placeholder's empty body.
        headers.remove(header::CONTENT_LENGTH);
        match hold {
            Some(hold) => {
                let head = hold.head;
                Either::Left(hold.answer().map(move |answer| {
                    let mut response = answer.into_response();
                    response.headers_mut().extend(headers);
                    with_length(&mut response, head);
                    response
                }))
            }
            // Cannot happen: the accept loop takes the extension out once.
            None => Either::Right(std::future::ready(
                ApiError::with_status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "this hang was answered already",
                    "send the request again",
                )
                .into_response(),
            )),
        }
    }
}

/// `GET /api/drip?bytes=N&chunks=N&interval_ms=N` (`mode=data`, the
/// default) or `GET /api/drip?mode=heartbeat&interval_ms=N&duration_ms=N`;
/// a parameter of the other mode is refused.
pub async fn drip(State(lab): State<Lab>, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(
        "/api/drip",
        query.as_deref(),
        &["mode", "bytes", "chunks", "interval_ms", "duration_ms"],
        "/api/drip?bytes=1000&chunks=10&interval_ms=200",
    )?;
    params.session()?;
    let tag = params.tag()?;
    let heartbeat = params.one_of("mode", &[("data", false), ("heartbeat", true)], false)?;
    // What applies only to the other mode is refused, not ignored.
    if heartbeat {
        params.refuse_with(&["bytes", "chunks"], "mode=heartbeat")?;
    } else {
        params.refuse_with(&["duration_ms"], "mode=data (the default)")?;
    }
    let interval_ms = params.u64_in("interval_ms", 0..=MAX_WAIT_MS, Some(500), "milliseconds")?;
    if heartbeat {
        let duration_ms =
            params.u64_in("duration_ms", 1..=MAX_WAIT_MS, Some(30_000), "milliseconds")?;
        if interval_ms == 0 {
            return Err(ApiError::bad_request(
                "a heartbeat needs interval_ms of at least 1",
                "e.g. /api/drip?mode=heartbeat&interval_ms=1000&duration_ms=30000",
            ));
        }
        // As many beats as a data drip has chunks at most (found in review:
        // a beat every millisecond for 120 s, one timer and one write each,
        // from every request an address may hold, took the server's cores).
        let (beats, rest_ms) = (duration_ms / interval_ms, duration_ms % interval_ms);
        if beats > MAX_DRIP_CHUNKS {
            return Err(ApiError::bad_request(
                format!(
                    "a heartbeat every {interval_ms} ms for {duration_ms} ms is {beats} beats, \
                     more than {MAX_DRIP_CHUNKS}"
                ),
                format!(
                    "use interval_ms={} or more for this duration_ms, or a shorter duration_ms",
                    duration_ms / (MAX_DRIP_CHUNKS + 1) + 1
                ),
            ));
        }
        return Ok(heartbeat_response(lab, interval_ms, (beats, rest_ms), tag));
    }
    let bytes = params.u64_in("bytes", 1..=MAX_DRIP_BYTES, Some(1024), "bytes")?;
    let chunks = params.u64_in("chunks", 1..=MAX_DRIP_CHUNKS, Some(10), "chunks")?;
    if chunks > bytes {
        return Err(ApiError::bad_request(
            format!("{chunks} chunks cannot be cut from {bytes} bytes"),
            "send at least as many bytes as chunks, e.g. /api/drip?bytes=1000&chunks=10",
        ));
    }
    if interval_ms.saturating_mul(chunks - 1) > MAX_WAIT_MS {
        return Err(ApiError::bad_request(
            format!(
                "{chunks} chunks every {interval_ms} ms would take longer than {MAX_WAIT_MS} ms"
            ),
            "send fewer chunks or a shorter interval_ms",
        ));
    }
    let pieces = stream::unfold(0_u64, move |i| {
        let lab = lab.clone();
        async move {
            if i == chunks || (i > 0 && !wait(&lab, interval_ms).await) {
                return None;
            }
            // Spread the bytes evenly; the first chunks take the remainder.
            let size = bytes / chunks + u64::from(i < bytes % chunks);
            let size = usize::try_from(size).unwrap_or(0);
            Some((Ok::<_, Infallible>(dots(size)), i + 1))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        Body::from_stream(pieces),
    )
        .into_response())
}

/// A JSON answer that sends a space (valid leading JSON whitespace) every
/// `interval_ms`, `beats` times, so the connection is never idle for longer
/// than the interval, and its body `rest_ms` after the last (the duration's
/// remainder).
fn heartbeat_response(
    lab: Lab,
    interval_ms: u64,
    (beats, rest_ms): (u64, u64),
    tag: Option<String>,
) -> Response {
    let pieces = stream::unfold(0_u64, move |i| {
        let (lab, tag) = (lab.clone(), tag.clone());
        async move {
            if i > beats {
                return None;
            }
            if i < beats {
                if !wait(&lab, interval_ms).await {
                    return None;
                }
                return Some((Ok::<_, Infallible>(Bytes::from_static(b" ")), i + 1));
            }
            wait(&lab, rest_ms).await;
            let done =
                json!({ "endpoint": "drip", "mode": "heartbeat", "heartbeats": beats, "id": tag });
            Some((Ok(Bytes::from(done.to_string())), i + 1))
        }
    });
    json_response(Body::from_stream(pieces))
}

/// `GET /api/close?mode=header|fin|rst|mid_body`
pub async fn close(
    ctx: Option<Extension<RequestCtx>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(
        "/api/close",
        query.as_deref(),
        &["mode"],
        "/api/close?mode=rst",
    )?;
    params.session()?;
    let choices: Vec<(&str, Option<CloseMode>)> = CloseMode::ALL
        .iter()
        .map(|m| (m.as_str(), Some(*m)))
        .collect();
    let Some(mode) = params.one_of("mode", &choices, None)? else {
        return Err(ApiError::bad_request(
            "`/api/close` needs a `mode`",
            "send mode=header, fin, rst or mid_body; e.g. /api/close?mode=rst",
        ));
    };
    if ctx.as_ref().is_some_and(|Extension(c)| c.conn.is_http2()) {
        // A deliberate error over HTTP/2 would reset one stream only.
        return Err(ApiError::bad_request(
            "`/api/close` closes an HTTP/1.1 connection; this one speaks HTTP/2",
            "an HTTP/2 connection ends with GOAWAY (the idle timeout or the policy's max \
             requests sends one); use the \
             HTTP/1.1-only TLS port or the plain ports for /api/close",
        ));
    }
    let id = params.tag()?;
    // The close is recorded when it takes effect, by the accept loop or
    // the body's cut: a client's reset or a guard's verdict first (an upload
    // left unread is read before the answer) is the close's cause instead.
    Ok(match mode {
        CloseMode::Header => {
            let mut response = (
                [(header::CONNECTION, "close")],
                Json(json!({ "endpoint": "close", "mode": "header", "id": id })),
            )
                .into_response();
            response.extensions_mut().insert(CloseOnPurpose(mode));
            response
        }
        CloseMode::Fin | CloseMode::Rst => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            response.extensions_mut().insert(CloseOnPurpose(mode));
            response
        }
        CloseMode::MidBody => {
            // Announce MID_BODY_BYTES, send half, pause so the page shows a
            // download in progress, then fail: hyper aborts the connection.
            // (A HEAD's body is never sent: nothing is cut.)
            let half = Bytes::from(vec![b'.'; MID_BODY_BYTES / 2]);
            let conn = ctx.map(|Extension(ctx)| ctx.conn);
            let pieces = stream::iter([Ok(half)]).chain(stream::once(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(conn) = conn {
                    conn.server_closes(CloseMode::MidBody);
                }
                Err(std::io::Error::other("closed mid-body on purpose"))
            }));
            (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
                    (header::CONTENT_LENGTH, HeaderValue::from(MID_BODY_BYTES)),
                ],
                Body::from_stream(pieces),
            )
                .into_response()
        }
    })
}

/// `GET /api/sse?interval_ms=N&count=N`
pub async fn sse(State(lab): State<Lab>, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(
        "/api/sse",
        query.as_deref(),
        &["interval_ms", "count"],
        "/api/sse?interval_ms=1000&count=60",
    )?;
    params.session()?;
    let interval_ms = params.u64_in("interval_ms", 100..=60_000, Some(1000), "milliseconds")?;
    let count = params.u64_in("count", 1..=MAX_SSE_EVENTS, Some(100), "events")?;
    if interval_ms.saturating_mul(count - 1) > MAX_WAIT_MS {
        return Err(ApiError::bad_request(
            format!(
                "{count} events every {interval_ms} ms would last longer than {MAX_WAIT_MS} ms"
            ),
            "every stream ends within 120 s: send fewer events or a shorter interval_ms, \
             e.g. /api/sse?interval_ms=1000&count=60",
        ));
    }
    let events = stream::unfold(0_u64, move |n| {
        let lab = lab.clone();
        async move {
            if n == count || (n > 0 && !wait(&lab, interval_ms).await) {
                return None;
            }
            let data =
                json!({ "n": n + 1, "of": count, "server_us": lab.tracker().clock().now_us() });
            let retry = if n == 0 {
                format!("retry: {interval_ms}\n")
            } else {
                String::new()
            };
            let text = format!("{retry}id: {}\nevent: tick\ndata: {data}\n\n", n + 1);
            Some((Ok::<_, Infallible>(Bytes::from(text)), n + 1))
        }
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(events),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drip_chunks_share_one_buffer() {
        let (a, b) = (dots(1 << 20), dots(10));
        assert_eq!(a.len(), 1 << 20);
        assert!(a.iter().all(|&b| b == b'.'));
        assert_eq!(a.as_ptr(), b.as_ptr(), "one buffer, not one per chunk");
    }

    #[test]
    fn one_wait_spins_at_a_time() {
        let held: Vec<Spinner> = std::iter::from_fn(Spinner::take).take(1000).collect();
        assert_eq!(held.len(), Spinner::most());
        assert!(Spinner::take().is_none());
        drop(held);
        assert!(Spinner::take().is_some(), "given back when dropped");
    }
}
